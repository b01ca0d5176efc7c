//! The files `weft certs` reads and writes: certificates world-readable,
//! private keys readable by their owner only, and nothing overwritten
//! unless asked (a lost trust anchor key cannot be made again).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// A file to write: where, what, and whether it is a secret.
pub struct Output<'a> {
    /// Its path.
    pub path: PathBuf,
    /// Its content.
    pub text: &'a str,
    /// Mode 0600 instead of 0644.
    pub secret: bool,
}

/// Writes every file into place, after checking that none exists yet
/// (unless `force`), so a refusal leaves nothing half written.
pub fn write_all(dir: &Path, outputs: &[Output<'_>], force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if !force {
        let existing: Vec<String> = outputs
            .iter()
            .filter(|o| o.path.exists())
            .map(|o| o.path.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already exist{}; refusing to overwrite (pass --force to replace)",
                existing.join(" and "),
                if existing.len() == 1 { "s" } else { "" }
            );
        }
    }
    for output in outputs {
        let mode = if output.secret { 0o600 } else { 0o644 };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&output.path)
            .with_context(|| format!("cannot write {}", output.path.display()))?;
        file.write_all(output.text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", output.path.display()))?;
    }
    Ok(())
}

/// Reads a PEM file, naming the flag that pointed at it in the error.
pub fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn keys_are_private_and_nothing_is_overwritten() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let outputs = [
            Output {
                path: dir.path().join("ca.crt"),
                text: "cert",
                secret: false,
            },
            Output {
                path: dir.path().join("ca.key"),
                text: "key",
                secret: true,
            },
        ];
        write_all(dir.path(), &outputs, false)?;
        let mode = |name: &str| -> anyhow::Result<u32> {
            Ok(std::fs::metadata(dir.path().join(name))?
                .permissions()
                .mode()
                & 0o777)
        };
        assert_eq!(mode("ca.key")?, 0o600);
        assert_eq!(mode("ca.crt")?, 0o644);

        let again = [Output {
            path: dir.path().join("ca.key"),
            text: "other",
            secret: true,
        }];
        let error = write_all(dir.path(), &again, false)
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("--force")));
        assert_eq!(std::fs::read_to_string(dir.path().join("ca.key"))?, "key");
        write_all(dir.path(), &again, true)?;
        assert_eq!(std::fs::read_to_string(dir.path().join("ca.key"))?, "other");
        Ok(())
    }
}
