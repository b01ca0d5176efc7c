//! The crate's one error type: every way building an image can fail, each
//! naming the file, program or image involved.

use std::path::PathBuf;

/// Why an image, a layer or a binary could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file or folder operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file the image copies from this machine is not there.
    #[error("{path} is missing on this machine; install it with `apt-get install {package}`")]
    HostFileMissing {
        /// The missing file.
        path: PathBuf,
        /// The Debian package that ships it.
        package: &'static str,
    },

    /// A layer entry's path or contents cannot go into a tar.
    #[error("layer entry {path:?}: {reason}")]
    BadEntry {
        /// The entry's path in the image.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Two different entries of one layer have the same path.
    #[error("layer has two different entries at {0:?}")]
    DuplicateEntry(String),

    /// An image name is not `registry/repository:tag`.
    #[error("image name {name:?}: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A program could not be started.
    #[error("starting {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A program ran and failed.
    #[error("{program} failed ({status}){}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    CommandFailed {
        /// The command line, for copying into a shell.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of what it printed to stderr.
        stderr: String,
    },

    /// `ldd` printed a line this crate does not understand, or a library it
    /// could not find.
    #[error("ldd {binary}: {reason}")]
    Ldd {
        /// The binary ldd looked at.
        binary: PathBuf,
        /// The offending line or library.
        reason: String,
    },

    /// A file that must be an ELF executable is not one this crate reads.
    #[error("{path} is not a 64-bit little-endian ELF file: {reason}")]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },

    /// A binary that must run in an image without libc is dynamically
    /// linked.
    #[error(
        "{path} is dynamically linked (it asks for the loader {interpreter}); \
         weft's images carry no libc, so it must be a static musl build"
    )]
    NotStatic {
        /// The binary.
        path: PathBuf,
        /// Its PT_INTERP: the dynamic loader it wants.
        interpreter: String,
    },

    /// `cargo build` finished without producing a binary it was asked for.
    #[error("cargo built no binary named {0}")]
    MissingArtifact(String),

    /// No C compiler can build the static pause binary.
    #[error(
        "no C compiler for the static pause binary: install `musl-tools` (musl-gcc) \
         or `gcc` with `libc6-dev` (cc -static)"
    )]
    NoCompiler,

    /// Serialising an image's JSON or reading cargo's failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The crate's result type.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// An [`ImageError::Io`] with `context`, for `map_err`.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}
