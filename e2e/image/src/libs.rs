//! The shared libraries a dynamically linked host binary needs, so an image
//! without a distribution can still carry it (iptables, for the proxy's
//! init).
//!
//! `ldd` is the authority: it runs the host's own dynamic loader, which
//! knows the search path, `RUNPATH` and the loader's name. Its output is
//! parsed by a pure function; each library is then copied to the path ldd
//! printed, which is the path the loader opens it by (a symlink on the host,
//! such as Debian's `/lib -> usr/lib`, is read through, so the image holds a
//! regular file there).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{ImageError, Result};
use crate::layer::{Entry, Layer};

/// What `ldd` said about a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    /// The binary needs these files: shared libraries and the dynamic
    /// loader, sorted and without repeats.
    Dynamic(Vec<PathBuf>),
    /// The binary needs no shared library.
    Static,
}

/// Parses what `ldd` printed (stdout and stderr together) for `binary`.
///
/// Lines look like `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`
/// for a library found through the search path, `/lib64/ld-linux-x86-64.so.2
/// (0x...)` for one named by path (the loader), `linux-vdso.so.1 (0x...)` for
/// the kernel's vDSO, which has no file, and `libfoo.so => not found` for a
/// library that is missing, which is an error: an image without it would fail
/// at run time.
pub fn parse_ldd(binary: &Path, output: &str) -> Result<Linkage> {
    let fail = |reason: String| ImageError::Ldd {
        binary: binary.to_owned(),
        reason,
    };
    let mut files = Vec::new();
    let mut saw_static = false;
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == "statically linked" || line.ends_with("not a dynamic executable") {
            saw_static = true;
            continue;
        }
        let (name, rest) = match line.split_once("=>") {
            Some((name, rest)) => (name.trim(), rest.trim()),
            None => ("", line),
        };
        if rest == "not found" {
            return Err(fail(format!("{name} not found")));
        }
        // What is left is `PATH (0xADDRESS)`, or only `(0xADDRESS)` for the
        // vDSO when an old ldd writes it as `linux-vdso.so.1 =>  (0x...)`.
        let path = match rest.rsplit_once(" (0x") {
            Some((path, _)) => path.trim(),
            None if rest.starts_with("(0x") => "",
            None => rest,
        };
        if path.is_empty() {
            continue;
        }
        if !path.starts_with('/') {
            // `linux-vdso.so.1 (0x...)` and `linux-gate.so.1`: in the
            // kernel, not on disk.
            if path.starts_with("linux-vdso") || path.starts_with("linux-gate") {
                continue;
            }
            return Err(fail(format!("unexpected line {line:?}")));
        }
        files.push(PathBuf::from(path));
    }
    if files.is_empty() {
        return if saw_static {
            Ok(Linkage::Static)
        } else {
            Err(fail(format!(
                "no library and no \"statically linked\" in {output:?}"
            )))
        };
    }
    files.sort();
    files.dedup();
    Ok(Linkage::Dynamic(files))
}

/// Runs `ldd binary` and parses its output.
pub fn shared_libs(binary: &Path) -> Result<Linkage> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|source| ImageError::Spawn {
            program: "ldd (apt package libc-bin)".into(),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    // ldd exits 1 for a static binary; the text says which case this is.
    parse_ldd(binary, &text)
}

/// Adds to `layer` every shared library `binary` needs, each a `0755`
/// regular file at the path the loader opens it by, read from the host.
pub fn add_shared_libs(layer: &mut Layer, binary: &Path) -> Result<()> {
    if let Linkage::Dynamic(files) = shared_libs(binary)? {
        for file in files {
            let path = file.to_str().ok_or_else(|| ImageError::Ldd {
                binary: binary.to_owned(),
                reason: format!("library path {} is not UTF-8", file.display()),
            })?;
            layer.add(Entry::host_file(path, 0o755, &file))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const XTABLES: &str = "\tlinux-vdso.so.1 (0x00007ffd3b1f2000)
\tlibxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f7ebcee6000)
\tlibmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f7ebcede000)
\tlibnftnl.so.11 => /lib/x86_64-linux-gnu/libnftnl.so.11 (0x00007f7ebceab000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7ebccc9000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f7ebcfae000)
";

    fn parse(text: &str) -> Result<Linkage> {
        parse_ldd(Path::new("/usr/sbin/xtables-nft-multi"), text)
    }

    #[test]
    fn libraries_and_the_loader_are_listed_and_the_vdso_is_not() {
        let Linkage::Dynamic(files) = parse(XTABLES).expect("parse") else {
            panic!("dynamic");
        };
        assert_eq!(
            files,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libmnl.so.0",
                "/lib/x86_64-linux-gnu/libnftnl.so.11",
                "/lib/x86_64-linux-gnu/libxtables.so.12",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn an_old_ldd_vdso_line_and_repeats_are_tolerated() {
        let text = "\tlinux-vdso.so.1 =>  (0x00007fff)\n\tlinux-gate.so.1 (0x1)\n\
                    \tlibc.so.6 => /lib/libc.so.6 (0x1)\n\tlibc.so.6 => /lib/libc.so.6 (0x2)\n";
        assert_eq!(
            parse(text).expect("parse"),
            Linkage::Dynamic(vec![PathBuf::from("/lib/libc.so.6")])
        );
    }

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let text = "\tlibxtables.so.12 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        let err = parse(text).expect_err("missing");
        assert!(
            err.to_string().contains("libxtables.so.12 not found"),
            "{err}"
        );
    }

    #[test]
    fn static_binaries_need_nothing() {
        assert_eq!(
            parse("\tstatically linked\n").expect("glibc"),
            Linkage::Static
        );
        assert_eq!(
            parse("\n\tnot a dynamic executable\n").expect("glibc's stderr"),
            Linkage::Static
        );
    }

    #[test]
    fn text_that_is_not_ldd_output_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("ldd: ./x: No such file or directory\n").is_err());
        assert!(parse("\tlibc.so.6 => lib/libc.so.6 (0x1)\n").is_err());
    }

    #[test]
    fn this_machine_s_ldd_lists_the_loader_for_a_dynamic_binary() {
        // /bin/sh is dynamically linked on every Debian.
        let Linkage::Dynamic(files) = shared_libs(Path::new("/bin/sh")).expect("ldd") else {
            panic!("/bin/sh is dynamic");
        };
        assert!(
            files
                .iter()
                .any(|f| f.to_string_lossy().contains("ld-linux")),
            "{files:?}"
        );
    }
}
