//! `--keylog FILE`: session secrets in the NSS key-log format (what
//! `SSLKEYLOGFILE` writes and Wireshark reads): `LABEL <client random hex>
//! <secret hex>` per line.
//!
//! The file is opened once at start: created with mode 0600, appended to
//! when it exists, never through a symbolic link (`O_NOFOLLOW`), refused when
//! it is not a regular file or has other hard links (a link to a file
//! someone else cares about), and set to 0600 through the opened descriptor.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Labels of the NSS key-log format that OpenSSL produces.
const LABELS: [&[u8]; 9] = [
    b"CLIENT_RANDOM",
    b"CLIENT_EARLY_TRAFFIC_SECRET",
    b"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    b"SERVER_HANDSHAKE_TRAFFIC_SECRET",
    b"CLIENT_TRAFFIC_SECRET_0",
    b"SERVER_TRAFFIC_SECRET_0",
    b"EARLY_EXPORTER_SECRET",
    b"EXPORTER_SECRET",
    b"RSA",
];

pub struct KeylogFile {
    file: File,
    line: String,
    pub lines: u64,
    pub rejected: u64,
    pub write_errors: u64,
}

/// Open (or create, 0600) the key-log file for appending, safely.
pub fn open(path: &Path) -> Result<KeylogFile> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| {
            format!(
                "cannot open the key log {} (it must not be a symbolic link)",
                path.display()
            )
        })?;
    let md = file
        .metadata()
        .with_context(|| format!("cannot stat the key log {}", path.display()))?;
    if !md.file_type().is_file() {
        bail!("the key log {} is not a regular file", path.display());
    }
    if md.nlink() > 1 {
        bail!(
            "the key log {} has {} hard links: refusing to write secrets into a file shared with another name",
            path.display(),
            md.nlink()
        );
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make the key log {} private (0600)", path.display()))?;
    Ok(KeylogFile {
        file,
        line: String::with_capacity(256),
        lines: 0,
        rejected: 0,
        write_errors: 0,
    })
}

/// One key-log line, or `None` for a label the format does not know.
pub fn format_line(label: &[u8], random: &[u8], secret: &[u8], out: &mut String) -> bool {
    use std::fmt::Write as _;
    if !LABELS.contains(&label) || random.is_empty() || secret.is_empty() {
        return false;
    }
    out.clear();
    out.push_str(std::str::from_utf8(label).unwrap_or_default());
    out.push(' ');
    for b in random {
        let _ = write!(out, "{b:02x}");
    }
    out.push(' ');
    for b in secret {
        let _ = write!(out, "{b:02x}");
    }
    out.push('\n');
    true
}

impl KeylogFile {
    /// Append one secret (flushed at once: readers may follow the file).
    pub fn write(&mut self, label: &[u8], random: &[u8], secret: &[u8]) {
        let mut line = std::mem::take(&mut self.line);
        if format_line(label, random, secret, &mut line) {
            match self.file.write_all(line.as_bytes()) {
                Ok(()) => self.lines += 1,
                Err(e) => {
                    if self.write_errors == 0 {
                        tracing::warn!("cannot write the key log: {e}");
                    }
                    self.write_errors += 1;
                }
            }
        } else {
            self.rejected += 1;
        }
        self.line = line;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nss_line_format() {
        let mut s = String::new();
        assert!(format_line(
            b"CLIENT_RANDOM",
            &[0xab, 0x01],
            &[0xff],
            &mut s
        ));
        assert_eq!(s, "CLIENT_RANDOM ab01 ff\n");
        assert!(!format_line(b"EVIL\nLINE", &[1], &[1], &mut s));
        assert!(!format_line(b"CLIENT_RANDOM", &[], &[1], &mut s));
    }

    #[test]
    fn created_private_and_never_through_a_symlink() {
        let dir = std::env::temp_dir().join(format!("weft-keylog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("keys");
        let mut k = open(&p).expect("create");
        k.write(b"CLIENT_RANDOM", &[1; 32], &[2; 48]);
        let md = std::fs::metadata(&p).expect("stat");
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&p).expect("read").lines().count(),
            1
        );

        // A symlink planted at the path is refused, its target untouched.
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").expect("victim");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        assert!(open(&link).is_err());
        // A hard link to another file is refused too.
        let hard = dir.join("hard");
        std::fs::hard_link(&victim, &hard).expect("hard link");
        assert!(open(&hard).is_err());
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
