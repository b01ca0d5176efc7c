//! Reading Prometheus histograms out of `/metrics` text (the API server's and
//! the injector's) and estimating quantiles from them the way PromQL's
//! `histogram_quantile` does, for the webhook latency benchmark.

/// A histogram's cumulative buckets (upper bound, count), sorted, `+Inf` last.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Cumulative counts by upper bound.
    pub buckets: Vec<(f64, f64)>,
    /// The sum of all observations.
    pub sum: f64,
    /// The number of observations.
    pub count: f64,
}

impl Histogram {
    /// The histogram `name` from exposition `text`, summed over every series
    /// whose labels contain all of `labels` (`key="value"` pairs).
    pub fn parse(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<Histogram> {
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        let (mut sum, mut count, mut seen) = (0.0, 0.0, false);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if !wanted.iter().all(|w| label_text.contains(w.as_str())) {
                continue;
            }
            if metric == format!("{name}_bucket") {
                let Some(le) = label_value(label_text, "le") else {
                    continue;
                };
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else if let Ok(b) = le.parse() {
                    b
                } else {
                    continue;
                };
                match buckets.iter_mut().find(|(b, _)| *b == bound) {
                    Some((_, c)) => *c += value,
                    None => buckets.push((bound, value)),
                }
                seen = true;
            } else if metric == format!("{name}_sum") {
                sum += value;
            } else if metric == format!("{name}_count") {
                count += value;
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        seen.then_some(Histogram {
            buckets,
            sum,
            count,
        })
    }

    /// The observations made between `earlier` and `self` (both cumulative
    /// snapshots of the same histogram).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let before = |bound: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(b, c)| (*b, c - before(*b)))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The mean observation.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The `q` quantile (0..=1), interpolated linearly inside its bucket,
    /// and the bucket's upper bound (the estimate is never above it).
    pub fn quantile(&self, q: f64) -> Option<(f64, f64)> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    // Above the highest finite bound: report that bound.
                    return Some((lower.0, bound));
                }
                let in_bucket = cumulative - lower.1;
                let fraction = if in_bucket > 0.0 {
                    (rank - lower.1) / in_bucket
                } else {
                    1.0
                };
                return Some((lower.0 + (bound - lower.0) * fraction, bound));
            }
            lower = (bound, cumulative);
        }
        None
    }
}

fn label_value<'t>(labels: &'t str, key: &str) -> Option<&'t str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP x_seconds a histogram
# TYPE x_seconds histogram
x_seconds_bucket{name="a",le="0.005"} 50
x_seconds_bucket{name="a",le="0.025"} 90
x_seconds_bucket{name="a",le="0.1"} 100
x_seconds_bucket{name="a",le="+Inf"} 100
x_seconds_sum{name="a"} 0.5
x_seconds_count{name="a"} 100
x_seconds_bucket{name="b",le="0.005"} 7
x_seconds_bucket{name="b",le="+Inf"} 7
x_seconds_sum{name="b"} 0.01
x_seconds_count{name="b"} 7
"#;

    #[test]
    fn reads_one_series() {
        let h = Histogram::parse(TEXT, "x_seconds", &[("name", "a")]).expect("found");
        assert_eq!(h.count, 100.0);
        assert_eq!(h.buckets.len(), 4);
        assert_eq!(h.mean(), Some(0.005));
    }

    #[test]
    fn sums_series_without_a_filter() {
        let h = Histogram::parse(TEXT, "x_seconds", &[]).expect("found");
        assert_eq!(h.count, 107.0);
        assert_eq!(h.buckets[0], (0.005, 57.0));
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let h = Histogram::parse(TEXT, "x_seconds", &[("name", "a")]).expect("found");
        let (p50, bound) = h.quantile(0.5).expect("p50");
        assert!((p50 - 0.005).abs() < 1e-12 && bound == 0.005);
        let (p70, bound) = h.quantile(0.7).expect("p70");
        assert!((p70 - 0.015).abs() < 1e-12 && bound == 0.025, "{p70}");
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let later = Histogram::parse(TEXT, "x_seconds", &[("name", "a")]).expect("found");
        let earlier = Histogram {
            buckets: vec![
                (0.005, 10.0),
                (0.025, 10.0),
                (0.1, 10.0),
                (f64::INFINITY, 10.0),
            ],
            sum: 0.01,
            count: 10.0,
        };
        let d = later.since(&earlier);
        assert_eq!(d.count, 90.0);
        assert_eq!(d.buckets[0], (0.005, 40.0));
        assert_eq!(d.buckets[1], (0.025, 80.0));
    }

    #[test]
    fn missing_metric_is_none() {
        assert!(Histogram::parse(TEXT, "y_seconds", &[]).is_none());
        assert!(Histogram::parse(TEXT, "x_seconds", &[("name", "c")]).is_none());
    }
}
