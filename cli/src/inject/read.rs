//! Reading `weft inject`'s inputs: files, folders (walked recursively) and
//! stdin, each split into the documents it holds (a multi-document YAML stream
//! or a stream of JSON values).
//!
//! Documents are kept as `serde_yaml::Value` whatever their format, because its
//! mappings keep the order the user wrote keys in (`serde_json::Value` would
//! sort them), so objects come out looking like they went in.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

/// How a source is written, and how the output is written by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A YAML stream of `---`-separated documents.
    Yaml,
    /// One or more JSON values, one after the other.
    Json,
}

/// One input (a file or stdin) and the documents it holds, in order.
#[derive(Debug)]
pub struct Source {
    /// The path as the user named it (or as found in a folder), or `<stdin>`.
    pub name: String,
    /// How the source is written.
    pub format: Format,
    /// Its documents, in order; an empty YAML document is `Value::Null`.
    pub documents: Vec<Value>,
}

/// Why the inputs could not be read; each names the file (and the document).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("{path}: document {index}: invalid YAML: {message}")]
    Yaml {
        path: String,
        index: usize,
        message: String,
    },
    #[error("{path}: document {index}: invalid JSON: {message}")]
    Json {
        path: String,
        index: usize,
        message: String,
    },
    #[error("{path}: no *.yaml, *.yml or *.json files in this folder")]
    EmptyFolder { path: String },
    #[error("stdin (`-`) can be read only once")]
    StdinTwice,
}

/// The name stdin goes by in messages.
pub const STDIN: &str = "<stdin>";

/// Reads every input in order: `-` is `stdin`, a folder contributes its
/// manifests in path order, anything else is read as a file.
pub fn read_inputs(inputs: &[PathBuf], mut stdin: impl Read) -> Result<Vec<Source>, ReadError> {
    let mut sources = Vec::new();
    let mut stdin_read = false;
    for input in inputs {
        if input.as_os_str() == "-" {
            if stdin_read {
                return Err(ReadError::StdinTwice);
            }
            stdin_read = true;
            let mut bytes = Vec::new();
            stdin
                .read_to_end(&mut bytes)
                .map_err(|source| ReadError::Io {
                    path: STDIN.to_owned(),
                    source,
                })?;
            sources.push(parse_source(STDIN, None, bytes)?);
            continue;
        }
        let display = input.display().to_string();
        let metadata = std::fs::metadata(input).map_err(|source| ReadError::Io {
            path: display.clone(),
            source,
        })?;
        if metadata.is_dir() {
            let files = manifests_in(input)?;
            if files.is_empty() {
                return Err(ReadError::EmptyFolder { path: display });
            }
            for file in files {
                sources.push(read_file(&file)?);
            }
        } else {
            sources.push(read_file(input)?);
        }
    }
    Ok(sources)
}

/// Lists the manifests under `folder`, recursively, sorted by path so the
/// output does not depend on the order the filesystem returns entries in.
/// Symlinked folders are not followed (a link to a parent would never end);
/// symlinked files are read.
fn manifests_in(folder: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let io_err = |source| ReadError::Io {
            path: dir.display().to_string(),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(io_err)?;
            if file_type.is_dir() {
                pending.push(path);
            } else if is_manifest_name(&path) && !path.is_dir() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether a file found in a folder is a manifest, by its extension.
fn is_manifest_name(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            ["yaml", "yml", "json"]
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

fn read_file(path: &Path) -> Result<Source, ReadError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: display.clone(),
        source,
    })?;
    parse_source(&display, path.extension().and_then(|e| e.to_str()), bytes)
}

/// Splits one input into documents. The extension decides the format
/// (`.json` or `.yaml`/`.yml`); without one (stdin, other names) a text that
/// starts with `{` or `[` is JSON, anything else YAML.
pub fn parse_source(
    name: &str,
    extension: Option<&str>,
    bytes: Vec<u8>,
) -> Result<Source, ReadError> {
    let text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 {
        path: name.to_owned(),
    })?;
    // Editors on some platforms start files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let format = match extension.map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ if text.trim_start().starts_with(['{', '[']) => Format::Json,
        _ => Format::Yaml,
    };
    let documents = match format {
        Format::Yaml => split_yaml(name, text)?,
        Format::Json => split_json(name, text)?,
    };
    Ok(Source {
        name: name.to_owned(),
        format,
        documents,
    })
}

/// Splits a YAML stream into documents (numbered from 1 in errors). Aliases
/// are resolved by the parser and `<<` merge keys are applied, as
/// `kubectl apply` would see them.
pub fn split_yaml(name: &str, text: &str) -> Result<Vec<Value>, ReadError> {
    let mut documents = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let yaml_err = |err: serde_yaml::Error| ReadError::Yaml {
            path: name.to_owned(),
            index: i + 1,
            message: err.to_string(),
        };
        let mut value = Value::deserialize(document).map_err(yaml_err)?;
        value.apply_merge().map_err(yaml_err)?;
        documents.push(value);
    }
    Ok(documents)
}

/// Splits a stream of JSON values (whitespace between them is optional).
pub fn split_json(name: &str, text: &str) -> Result<Vec<Value>, ReadError> {
    let mut documents = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        documents.push(value.map_err(|err| ReadError::Json {
            path: name.to_owned(),
            index: i + 1,
            message: err.to_string(),
        })?);
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(documents: &[Value]) -> Vec<Option<&str>> {
        documents
            .iter()
            .map(|d| d.get("kind").and_then(Value::as_str))
            .collect()
    }

    #[test]
    fn yaml_stream_keeps_every_document_in_order() {
        let text = "---\nkind: A\n---\n# only a comment\n---\nkind: B\n...\n---\nkind: C\n";
        let docs = split_yaml("x.yaml", text).expect("valid YAML");
        assert_eq!(kinds(&docs), vec![Some("A"), None, Some("B"), Some("C")]);
        assert_eq!(docs[1], Value::Null);
    }

    #[test]
    fn yaml_keeps_key_order_and_applies_merge_keys() {
        let text = "base: &b {cpu: 1m}\nzeta: 1\nalpha:\n  <<: *b\n  memory: 2Mi\n";
        let docs = split_yaml("x.yaml", text).expect("valid YAML");
        let keys: Vec<_> = docs[0]
            .as_mapping()
            .expect("a mapping")
            .keys()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(keys, ["base", "zeta", "alpha"]);
        assert_eq!(docs[0]["alpha"]["cpu"], Value::from("1m"));
    }

    #[test]
    fn bad_yaml_names_the_file_and_the_document() {
        let text = "kind: A\n---\nkind: B\n---\nkind: [unclosed\n";
        let err = split_yaml("app.yaml", text).expect_err("invalid YAML");
        let message = err.to_string();
        assert!(
            message.starts_with("app.yaml: document 3: invalid YAML"),
            "{message}"
        );
    }

    #[test]
    fn json_stream_and_single_value() {
        let docs = split_json("-", "{\"kind\":\"A\"}\n{\"kind\":\"B\"}{\"kind\":\"C\"}")
            .expect("valid JSON");
        assert_eq!(kinds(&docs), vec![Some("A"), Some("B"), Some("C")]);
        let err = split_json("a.json", "{\"kind\":\"A\"}\n{\"kind\":").expect_err("truncated");
        assert!(
            err.to_string()
                .starts_with("a.json: document 2: invalid JSON"),
            "{err}"
        );
    }

    #[test]
    fn format_follows_the_extension_then_the_content() {
        let json = |ext, text: &str| {
            parse_source("s", ext, text.as_bytes().to_vec())
                .map(|s| s.format)
                .expect("parses")
        };
        assert_eq!(json(None, "  {\"kind\":\"A\"}"), Format::Json);
        assert_eq!(json(None, "kind: A"), Format::Yaml);
        assert_eq!(json(Some("yml"), "{\"kind\": \"A\"}"), Format::Yaml);
        assert_eq!(json(Some("JSON"), "{\"kind\": \"A\"}"), Format::Json);
        assert_eq!(json(None, "\u{feff}kind: A"), Format::Yaml);
    }

    #[test]
    fn non_utf8_is_an_error_not_a_panic() {
        let err =
            parse_source("bin.yaml", Some("yaml"), vec![0xff, 0xfe, 0x00]).expect_err("not text");
        assert_eq!(err.to_string(), "bin.yaml: not UTF-8 text");
    }

    #[test]
    fn folders_are_walked_recursively_in_path_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/nested")).expect("mkdir");
        for (file, kind) in [
            ("b/nested/z.yml", "Z"),
            ("a.json", "A"),
            ("b/m.YAML", "M"),
            ("notes.txt", "ignored"),
        ] {
            let text = if file.ends_with(".json") {
                format!("{{\"kind\":\"{kind}\"}}")
            } else {
                format!("kind: {kind}\n")
            };
            std::fs::write(root.join(file), text).expect("write");
        }
        let sources = read_inputs(&[root.to_path_buf()], io::empty()).expect("reads");
        let found: Vec<_> = sources.iter().flat_map(|s| kinds(&s.documents)).collect();
        assert_eq!(found, vec![Some("A"), Some("M"), Some("Z")]);
        assert_eq!(sources[0].format, Format::Json);
    }

    #[test]
    fn stdin_missing_files_and_empty_folders() {
        let sources = read_inputs(&[PathBuf::from("-")], "kind: Pod\n".as_bytes()).expect("reads");
        assert_eq!(sources[0].name, STDIN);
        assert_eq!(kinds(&sources[0].documents), vec![Some("Pod")]);

        let twice = read_inputs(&[PathBuf::from("-"), PathBuf::from("-")], io::empty());
        assert!(matches!(twice, Err(ReadError::StdinTwice)));

        let missing = read_inputs(&[PathBuf::from("no/such/file.yaml")], io::empty())
            .expect_err("missing file");
        assert!(
            missing.to_string().starts_with("no/such/file.yaml: "),
            "{missing}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let empty = read_inputs(&[dir.path().to_path_buf()], io::empty()).expect_err("empty");
        assert!(matches!(empty, ReadError::EmptyFolder { .. }));
    }
}
