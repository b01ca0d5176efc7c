//! Whether an executable is static: an ELF file with no `PT_INTERP`
//! program header asks the kernel for no dynamic loader, so it runs in an
//! image that has no libc. (A static-PIE binary, as Rust's musl target
//! builds, still has `PT_DYNAMIC` for its own relocations; only `PT_INTERP`
//! matters.)

use std::path::Path;

use crate::error::{ImageError, Result, io};

const PT_INTERP: u32 = 3;

/// The dynamic loader `elf` asks for, or `None` for a static binary.
///
/// Reads only what it needs of a 64-bit little-endian ELF file (x86-64 and
/// the other architectures weft could ship): the program header table's
/// place from the file header, then each header's type.
pub fn interpreter(elf: &[u8]) -> Result<Option<String>, &'static str> {
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err("no ELF magic");
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not ELFCLASS64 with little-endian data");
    }
    let phoff = usize::try_from(u64_at(elf, 0x20)?).map_err(|_| "program headers out of range")?;
    let phentsize = usize::from(u16_at(elf, 0x36)?);
    let phnum = usize::from(u16_at(elf, 0x38)?);
    if phentsize < 0x38 {
        return Err("program header entries are too small");
    }
    for i in 0..phnum {
        let ph = phoff
            .checked_add(
                i.checked_mul(phentsize)
                    .ok_or("program headers out of range")?,
            )
            .ok_or("program headers out of range")?;
        if u32_at(elf, ph)? != PT_INTERP {
            continue;
        }
        let offset =
            usize::try_from(u64_at(elf, ph + 0x08)?).map_err(|_| "PT_INTERP out of range")?;
        let size =
            usize::try_from(u64_at(elf, ph + 0x20)?).map_err(|_| "PT_INTERP out of range")?;
        let end = offset.checked_add(size).ok_or("PT_INTERP out of range")?;
        let name = elf
            .get(offset..end)
            .ok_or("PT_INTERP past the end of the file")?;
        let name = name.split(|b| *b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(name).into_owned()));
    }
    Ok(None)
}

/// Fails unless the file at `path` is a static ELF executable.
pub fn ensure_static(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    match interpreter(&bytes) {
        Ok(None) => Ok(()),
        Ok(Some(interpreter)) => Err(ImageError::NotStatic {
            path: path.to_owned(),
            interpreter,
        }),
        Err(reason) => Err(ImageError::NotElf {
            path: path.to_owned(),
            reason,
        }),
    }
}

fn bytes_at<const N: usize>(elf: &[u8], at: usize) -> Result<[u8; N], &'static str> {
    at.checked_add(N)
        .and_then(|end| elf.get(at..end))
        .and_then(|b| b.try_into().ok())
        .ok_or("truncated ELF headers")
}

fn u16_at(elf: &[u8], at: usize) -> Result<u16, &'static str> {
    bytes_at(elf, at).map(u16::from_le_bytes)
}

fn u32_at(elf: &[u8], at: usize) -> Result<u32, &'static str> {
    bytes_at(elf, at).map(u32::from_le_bytes)
}

fn u64_at(elf: &[u8], at: usize) -> Result<u64, &'static str> {
    bytes_at(elf, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_host_binary_names_its_loader() {
        let sh = std::fs::read("/bin/sh").expect("read /bin/sh");
        let interp = interpreter(&sh).expect("elf").expect("dynamic");
        assert!(interp.contains("ld-linux"), "{interp}");
        let err = ensure_static(Path::new("/bin/sh")).expect_err("dynamic");
        assert!(matches!(err, ImageError::NotStatic { .. }), "{err}");
    }

    #[test]
    fn an_elf_without_pt_interp_is_static() {
        // A minimal ELF64 header with two program headers, PT_LOAD and
        // PT_DYNAMIC: a static-PIE's shape.
        let mut elf = vec![0u8; 0x40 + 2 * 0x38];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        elf[0x78..0x7c].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(interpreter(&elf), Ok(None));
        // Turning the second into PT_INTERP pointing at a name finds it.
        elf[0x78..0x7c].copy_from_slice(&PT_INTERP.to_le_bytes());
        elf.extend_from_slice(b"/lib/ld.so\0");
        let at = (0x40 + 2 * 0x38) as u64;
        elf[0x80..0x88].copy_from_slice(&at.to_le_bytes());
        elf[0x98..0xa0].copy_from_slice(&11u64.to_le_bytes());
        assert_eq!(interpreter(&elf), Ok(Some("/lib/ld.so".into())));
    }

    #[test]
    fn truncated_and_foreign_files_are_not_elf() {
        assert!(interpreter(b"#!/bin/sh\n").is_err());
        assert!(interpreter(b"\x7fELF\x02\x01").is_err());
        assert!(interpreter(b"\x7fELF\x01\x01\0\0\0\0\0\0\0\0\0\0").is_err());
    }
}
