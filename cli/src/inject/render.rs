//! Writing `weft inject`'s results: the objects (a YAML stream or JSON
//! values), the `--patch` review, and the report on stderr.

use serde_yaml::Value;

use super::apply::{Outcome, Report};
use super::read::Format;

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write output document {index} as YAML: {source}")]
    Yaml {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("cannot write output document {index} as JSON: {source}")]
    Json {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// The objects in `format`: YAML documents separated by `---`, or JSON
/// values one after the other (what `kubectl apply -f -` reads). Empty
/// documents (a stray `---`) are left out.
pub fn documents<'a>(
    documents: impl IntoIterator<Item = &'a Value>,
    format: Format,
) -> Result<String, RenderError> {
    let mut out = String::new();
    for (i, document) in documents.into_iter().filter(|d| !d.is_null()).enumerate() {
        let index = i + 1;
        match format {
            Format::Yaml => {
                if i > 0 {
                    out.push_str("---\n");
                }
                let text = serde_yaml::to_string(document)
                    .map_err(|source| RenderError::Yaml { index, source })?;
                out.push_str(&text);
            }
            Format::Json => {
                let text = serde_json::to_string_pretty(document)
                    .map_err(|source| RenderError::Json { index, source })?;
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// The `--patch` review: one entry per injected workload, with its kind,
/// name, namespace and the JSON patch that applies to the object as written.
pub fn patches(reports: &[Report], format: Format) -> Result<String, RenderError> {
    let entries: Vec<_> = reports.iter().filter_map(Report::patch_entry).collect();
    match format {
        Format::Json => serde_json::to_string_pretty(&entries)
            .map(|text| text + "\n")
            .map_err(|source| RenderError::Json { index: 1, source }),
        Format::Yaml => {
            serde_yaml::to_string(&entries).map_err(|source| RenderError::Yaml { index: 1, source })
        }
    }
}

/// The report: one line per workload, its warnings below it, and a summary.
pub fn report(reports: &[Report]) -> String {
    let mut out = String::new();
    for report in reports {
        out.push_str(&format!("{report}\n"));
        for warning in &report.warnings {
            // The planner words warnings for `kubectl`, where they need to
            // say they come from weft; here that is plain.
            let warning = warning.strip_prefix("weft: ").unwrap_or(warning);
            out.push_str(&format!("  warning: {warning}\n"));
        }
    }
    let injected = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Injected { .. }))
        .count();
    if reports.is_empty() {
        out.push_str("no workloads found: nothing to inject\n");
    } else {
        out.push_str(&format!(
            "{injected} of {} workloads injected, {} skipped\n",
            reports.len(),
            reports.len() - injected
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).expect("valid test YAML")
    }

    #[test]
    fn yaml_stream_drops_empty_documents() {
        let docs = [yaml("kind: A"), Value::Null, yaml("kind: B")];
        assert_eq!(
            documents(&docs, Format::Yaml).expect("renders"),
            "kind: A\n---\nkind: B\n"
        );
        assert_eq!(documents(&[], Format::Yaml).expect("renders"), "");
    }

    #[test]
    fn json_stream_keeps_key_order() {
        let docs = [yaml("{kind: A, apiVersion: v1}"), yaml("kind: B")];
        assert_eq!(
            documents(&docs, Format::Json).expect("renders"),
            "{\n  \"kind\": \"A\",\n  \"apiVersion\": \"v1\"\n}\n{\n  \"kind\": \"B\"\n}\n"
        );
    }

    #[test]
    fn yaml_only_keys_are_an_error_in_json() {
        let docs = [yaml("kind: A"), yaml("{[1, 2]: x}")];
        let err = documents(&docs, Format::Json).expect_err("a sequence key");
        assert!(
            err.to_string()
                .starts_with("cannot write output document 2 as JSON"),
            "{err}"
        );
    }

    #[test]
    fn report_summarises() {
        let report_of = |outcome| Report {
            kind: "Pod".into(),
            name: "p".into(),
            namespace: "ns".into(),
            outcome,
            warnings: vec!["config.weft.dev/typo: unknown key".into()],
            patch: None,
        };
        let reports = [
            report_of(Outcome::Injected { reasons: vec![] }),
            report_of(Outcome::Skipped {
                reason: "hostNetwork".into(),
            }),
        ];
        assert_eq!(
            report(&reports),
            "pod/p (ns ns): injected\n  warning: config.weft.dev/typo: unknown key\n\
             pod/p (ns ns): skipped: hostNetwork\n  warning: config.weft.dev/typo: unknown key\n\
             1 of 2 workloads injected, 1 skipped\n"
        );
        assert_eq!(report(&[]), "no workloads found: nothing to inject\n");
    }
}
