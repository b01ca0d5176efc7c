//! Helpers shared by the `init_*` tests: golden files.
//!
//! Golden files live in tests/golden/init/. After an intended change to the
//! rules, regenerate them with
//! `WEFT_UPDATE_GOLDEN=1 cargo test -p weft-proxy --test init_rules --test init_cli`
//! and review the diff.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;

/// The path of golden file `name`.
pub fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/init")
        .join(name)
}

/// Compares `actual` with golden file `name`, or rewrites the file when
/// `WEFT_UPDATE_GOLDEN` is set.
pub fn assert_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        if let Err(e) = std::fs::write(&path, actual) {
            panic!("could not write {}: {e}", path.display());
        }
        return;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "could not read {} ({e}); create it with WEFT_UPDATE_GOLDEN=1",
            path.display()
        ),
    };
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "{} differs; if the change is intended, rerun with WEFT_UPDATE_GOLDEN=1",
        path.display()
    );
}
