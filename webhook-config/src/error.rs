//! The one error type of `weft-webhook-config`.

/// Why the manifests could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option would make an invalid or unsafe manifest.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidOption {
        /// Which option.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is expected instead.
        reason: String,
    },
    /// A template file is broken (a bug in weft, caught by its tests).
    #[error("manifest template {file}: {reason}")]
    Template {
        /// The template file.
        file: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The rendered documents could not be written as YAML.
    #[error("could not write the manifests as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}
