//! The binaries weft's images carry, built static so the images need no
//! libc: `weft-proxy`, `weft-injector`, `weft-control` and the demo app's
//! `emojivoto` for Rust's musl target, and our own `pause` from
//! `pause/pause.c`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::elf::ensure_static;
use crate::error::{ImageError, Result, io};

/// The Rust target of the shipped binaries.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The workspace packages built for the images, each with its binary.
pub const RUST_PACKAGES: [(&str, &str); 4] = [
    ("weft-proxy", "weft-proxy"),
    ("weft-injector", "weft-injector"),
    ("weft-control", "weft-control"),
    ("weft-emojivoto", "emojivoto"),
];

/// The binaries of [`RUST_PACKAGES`].
pub const RUST_BINARIES: [&str; 4] = ["weft-proxy", "weft-injector", "weft-control", "emojivoto"];

/// The pause binary's file name.
pub const PAUSE_BINARY: &str = "pause";

/// `pause.c`, compiled in so the binary can build it from anywhere.
pub const PAUSE_SOURCE: &str = include_str!("../pause/pause.c");

/// The workspace this crate was built in, which holds the packages of
/// [`RUST_BINARIES`].
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the shipped Rust binaries as static musl executables and copies
/// them into `out` (created if needed) without debug info; returns their
/// paths there.
///
/// Runs `cargo build --release --target x86_64-unknown-linux-musl -p
/// weft-proxy -p weft-injector -p weft-control -p weft-emojivoto --bins` in
/// `workspace`, with
/// cargo's own output on this process's stderr. ring compiles C, which for
/// musl needs a musl C compiler: `musl-gcc` is used when it is on `PATH`
/// (apt package `musl-tools`) and `CC_x86_64_unknown_linux_musl` is unset.
pub fn build_static_bins(workspace: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", MUSL_TARGET, "--bins"])
        // JSON on stdout names each binary's path whatever the target
        // folder is; diagnostics stay readable on stderr.
        .arg("--message-format=json-render-diagnostics");
    for (package, _) in RUST_PACKAGES {
        cmd.args(["-p", package]);
    }
    // Run from a test or `cargo run`, this process has the variables cargo
    // sets for a crate (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...). ring's
    // build script asks to rerun when those change, so passing them on
    // would rebuild ring and all above it whenever the caller differs.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_by_cargo_for_a_crate) {
            cmd.env_remove(&key);
        }
    }
    let cc_var = format!("CC_{}", MUSL_TARGET.replace('-', "_"));
    if std::env::var_os(&cc_var).is_none() && find_program("musl-gcc").is_some() {
        cmd.env(&cc_var, "musl-gcc");
    }
    let program = describe(&cmd);
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| ImageError::Spawn {
            program: program.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ImageError::CommandFailed {
            program,
            status: output.status,
            stderr: "cargo's errors are above".into(),
        });
    }

    let built = executables(&String::from_utf8_lossy(&output.stdout))?;
    std::fs::create_dir_all(out).map_err(io(format!("creating {}", out.display())))?;
    let mut copied = Vec::new();
    for name in RUST_BINARIES {
        let from = built
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .ok_or_else(|| ImageError::MissingArtifact(name.to_owned()))?;
        ensure_static(from)?;
        let to = out.join(name);
        strip_debug(from, &to)?;
        copied.push(to);
    }
    Ok(copied)
}

/// Whether `key` is one of the variables cargo sets when it runs a crate's
/// binary, test or build script, rather than one a user sets to configure
/// cargo (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_PROFILE_*`, ...).
pub fn set_by_cargo_for_a_crate(key: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_CFG_",
        "DEP_",
    ];
    const NAMES: [&str; 6] = [
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "CARGO_ENCODED_RUSTFLAGS",
        "OUT_DIR",
        "TARGET",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p)) || NAMES.contains(&key)
}

/// The binaries cargo's JSON messages say it built, as (name, path).
pub fn executables(messages: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let message: serde_json::Value = serde_json::from_str(line)?;
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_bin = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
        if let (true, Some(name), Some(exe)) = (
            is_bin,
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            found.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    Ok(found)
}

/// Compiles [`PAUSE_SOURCE`] into `out/pause`, static and stripped, and
/// returns its path.
///
/// `musl-gcc -static -Os -s` when `musl-gcc` is on `PATH` (a binary of about
/// 10 kB), else `cc -static -Os -s` against glibc's static libc (larger, and
/// just as self-contained).
pub fn build_pause(out: &Path) -> Result<PathBuf> {
    let compiler = ["musl-gcc", "cc"]
        .into_iter()
        .find(|c| find_program(c).is_some())
        .ok_or(ImageError::NoCompiler)?;
    std::fs::create_dir_all(out).map_err(io(format!("creating {}", out.display())))?;
    let source = out.join(".pause.c");
    std::fs::write(&source, PAUSE_SOURCE).map_err(io(format!("writing {}", source.display())))?;
    let partial = out.join(".pause.partial");
    let mut cmd = Command::new(compiler);
    cmd.args(["-static", "-Os", "-s", "-o"])
        .arg(&partial)
        .arg(&source);
    let program = describe(&cmd);
    let output = cmd.output().map_err(|source| ImageError::Spawn {
        program: program.clone(),
        source,
    });
    // The source is scratch whatever the outcome.
    let _ = std::fs::remove_file(&source);
    let output = output?;
    succeeded(program, &output)?;
    ensure_static(&partial)?;
    let to = out.join(PAUSE_BINARY);
    std::fs::rename(&partial, &to).map_err(io(format!("renaming {}", partial.display())))?;
    Ok(to)
}

/// [`build_static_bins`] and [`build_pause`]: everything the images of
/// [`crate::weft`] read from their `bins` folder.
pub fn build_all(workspace: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let mut bins = build_static_bins(workspace, out)?;
    bins.push(build_pause(out)?);
    Ok(bins)
}

/// An error naming `program` and its stderr unless it exited 0.
fn succeeded(program: String, output: &std::process::Output) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    Err(ImageError::CommandFailed {
        program,
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr)
            .trim_end()
            .to_owned(),
    })
}

/// The first executable file called `program` in a `PATH` folder.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|f| {
            f.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Copies `from` to `to` without its DWARF: the release profile keeps line
/// tables, which are most of a binary's size (the proxy is 52 MB with them,
/// 11 MB without). The symbol table stays, so a panic's backtrace still names
/// functions. Stripping the copy rather than building with `strip` keeps
/// the build's profile, and so its cached artifacts, shared with other
/// release builds.
fn strip_debug(from: &Path, to: &Path) -> Result<()> {
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut cmd = Command::new("strip");
    cmd.arg("--strip-debug").arg("-o").arg(&partial).arg(from);
    let program = describe(&cmd);
    let output = cmd.output().map_err(|source| ImageError::Spawn {
        program: format!("{program} (apt package binutils)"),
        source,
    })?;
    succeeded(program, &output)?;
    std::fs::rename(&partial, to).map_err(io(format!("renaming {}", partial.display())))
}

fn describe(cmd: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            words.push(format!(
                "{}={}",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    words.push(cmd.get_program().to_string_lossy().into_owned());
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_messages_name_the_binaries_and_nothing_else() {
        let messages = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"weft_proxy"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"weft-proxy"},"executable":"/t/release/weft-proxy"}
{"reason":"build-script-executed","package_id":"ring"}
{"reason":"compiler-artifact","target":{"kind":["custom-build"],"name":"build-script-build"},"executable":null}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executables(messages).expect("parse"),
            [(
                "weft-proxy".to_owned(),
                PathBuf::from("/t/release/weft-proxy")
            )]
        );
    }

    #[test]
    fn only_what_cargo_sets_for_a_crate_is_dropped() {
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_BIN_EXE_x",
            "OUT_DIR",
        ] {
            assert!(set_by_cargo_for_a_crate(key), "{key}");
        }
        for key in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_INCREMENTAL",
            "PATH",
        ] {
            assert!(!set_by_cargo_for_a_crate(key), "{key}");
        }
    }

    #[test]
    fn the_pause_binary_is_static_and_exits_0_on_sigterm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pause = build_pause(dir.path()).expect("build pause");
        ensure_static(&pause).expect("static");
        // Only the binary is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [PAUSE_BINARY]);

        let mut child = Command::new(&pause).spawn().expect("spawn pause");
        // Give it time to install its handlers before the signal comes.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "pause exited early"
        );
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "{status}");
    }
}
