//! Reading Prometheus text (a proxy's `/metrics`, weft-control's): the sum
//! of the series of one metric whose labels include the ones asked for.

/// The sum of `name`'s series carrying every `labels` pair; 0 when none.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let pairs = split_labels(label_text);
            let all = labels
                .iter()
                .all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v));
            if all { value.parse::<f64>().ok() } else { None }
        })
        .sum()
}

/// `a="x",b="y"` as pairs; values are unescaped (`\"`, `\\`, `\n`).
fn split_labels(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        pairs.push((key.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE response_total counter
response_total{direction="inbound",tls="true",client_id="spiffe://cluster.local/ns/emojivoto/sa/web",dst_port="8080",classification="success"} 3
response_total{direction="inbound",tls="false",dst_port="9090",classification="success"} 1
response_total{direction="outbound",tls="true",authority="a,b=\"c\"",dst_port="8080"} 2
weft_identity_certify_total{result="forbidden"} 1
"#;

    #[test]
    fn sums_the_matching_series() {
        assert_eq!(metric(TEXT, "response_total", &[]), 6.0);
        assert_eq!(
            metric(
                TEXT,
                "response_total",
                &[
                    ("tls", "true"),
                    ("client_id", "spiffe://cluster.local/ns/emojivoto/sa/web")
                ]
            ),
            3.0
        );
        assert_eq!(
            metric(TEXT, "response_total", &[("authority", "a,b=\"c\"")]),
            2.0
        );
        assert_eq!(
            metric(
                TEXT,
                "weft_identity_certify_total",
                &[("result", "forbidden")]
            ),
            1.0
        );
        assert_eq!(metric(TEXT, "response_total", &[("tls", "maybe")]), 0.0);
    }
}
