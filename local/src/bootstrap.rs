//! A built `bootstrap`, run as Lambda's `provided.al2023` runtime runs it:
//! the very file `make package` zipped, started directly when this machine
//! can execute it, and through qemu-user when it is an aarch64 binary on
//! another architecture.
//!
//! qemu-user is Debian's `qemu-user-static` (`qemu-aarch64-static`) or
//! `qemu-user` (`qemu-aarch64`); the aarch64 C library it needs is
//! `libc6-arm64-cross` (under `/usr/aarch64-linux-gnu`, passed as
//! `QEMU_LD_PREFIX`) or, after `dpkg --add-architecture arm64`,
//! `libc6:arm64`. `tools/install-qemu` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// ELF's `e_machine` for aarch64.
const EM_AARCH64: u16 = 183;
/// Where `libc6-arm64-cross` puts the aarch64 C library and loader.
const CROSS_LIBC: &str = "/usr/aarch64-linux-gnu";
const QEMU: [&str; 2] = ["qemu-aarch64-static", "qemu-aarch64"];

/// The `e_machine` of the ELF file at `path`.
pub fn elf_machine(path: &Path) -> Result<u16> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match bytes.get(..20) {
        Some(head) if head.starts_with(b"\x7fELF") && head[5] == 1 => Ok(u16::from_le_bytes([head[18], head[19]])),
        _ => Err(format!("{} is not a little-endian ELF file", path.display()).into()),
    }
}

/// A command that runs the `bootstrap` at `path` on this machine.
pub fn command(path: &Path) -> Result<Command> {
    let path = std::fs::canonicalize(path).map_err(|e| format!("bootstrap {}: {e}", path.display()))?;
    if elf_machine(&path)? != EM_AARCH64 || cfg!(target_arch = "aarch64") {
        return Ok(Command::new(path));
    }
    let qemu = QEMU.iter().find_map(|name| on_path(name)).ok_or_else(|| {
        format!(
            "{} is an aarch64 binary and this machine is not: it runs under qemu-user, which is not installed \
             (tools/install-qemu, or apt-get install qemu-user-static libc6-arm64-cross)",
            path.display()
        )
    })?;
    let mut command = Command::new(qemu);
    if Path::new(CROSS_LIBC).join("lib/ld-linux-aarch64.so.1").exists() {
        command.env("QEMU_LD_PREFIX", CROSS_LIBC);
    }
    command.arg(path);
    Ok(command)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_of_this_test_s_own_binary() {
        let me = std::env::current_exe().unwrap();
        let expected = if cfg!(target_arch = "x86_64") { 62 } else { EM_AARCH64 };
        assert_eq!(elf_machine(&me).unwrap(), expected);
        let not_elf = std::env::temp_dir().join(format!("bridge-local-not-elf-{}", std::process::id()));
        std::fs::write(&not_elf, b"#!/bin/sh\n").unwrap();
        assert!(elf_machine(&not_elf).is_err());
        let _ = std::fs::remove_file(not_elf);
    }
}
