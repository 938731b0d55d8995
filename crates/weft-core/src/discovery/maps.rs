//! Parsing `/proc/PID/maps` (sans-IO).

use super::FileId;

/// One executable, file-backed mapping from `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Offset in the file of the first mapped byte.
    pub offset: u64,
    /// Device and inode of the mapped file, device in `st_dev` encoding.
    pub file_id: FileId,
    /// The path as the process sees it (relative to its own root), without
    /// the ` (deleted)` suffix. The kernel escapes a newline in a path as
    /// `\012`; that escape is undone. Paths that are not UTF-8 are converted
    /// lossily, so they may not open; callers must check `file_id` on
    /// whatever they open.
    pub path: String,
    /// The file was deleted (or replaced) after it was mapped: `path` now
    /// names another file or none.
    pub deleted: bool,
}

const DELETED_SUFFIX: &str = " (deleted)";

/// Parse the text of `/proc/PID/maps`, keeping executable (`x`) mappings of
/// files (inode ≠ 0, path starting with `/`). Malformed lines are skipped:
/// the format is the kernel's, so a bad line means a kernel we do not know,
/// and one unreadable line must not hide the others.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    // start-end perms offset maj:min inode [path]
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (f, r) = trimmed.split_at(end);
        rest = r;
        (!f.is_empty()).then_some(f)
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let dev = field()?;
    let inode = field()?;
    if perms.as_bytes().get(2) != Some(&b'x') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let offset = u64::from_str_radix(offset, 16).ok()?;
    let (major, minor) = dev.split_once(':')?;
    let major = u32::from_str_radix(major, 16).ok()?;
    let minor = u32::from_str_radix(minor, 16).ok()?;
    let ino: u64 = inode.parse().ok()?;
    let path = rest.trim_start_matches(' ');
    if ino == 0 || !path.starts_with('/') {
        return None;
    }
    let (path, deleted) = match path.strip_suffix(DELETED_SUFFIX) {
        Some(p) => (p, true),
        None => (path, false),
    };
    Some(Mapping {
        start,
        end,
        offset,
        file_id: FileId::from_major_minor(major, minor, ino),
        path: path.replace("\\012", "\n"),
        deleted,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 1048601                    /usr/bin/cat
55d0c0a02000-55d0c0a06000 r-xp 00002000 fe:00 1048601                    /usr/bin/cat
55d0c1b9d000-55d0c1bbe000 rw-p 00000000 00:00 0                          [heap]
7f3b11e9b000-7f3b11ff1000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f3b12000000-7f3b12010000 r-xp 00000000 103:02 77                        /opt/my app/lib ssl.so (deleted)
7f3b12010000-7f3b12020000 r-xp 00000000 00:01 2049                       /memfd:jit (deleted)
7f3b12020000-7f3b12030000 r-xp 00000000 00:00 0 
7ffd5a5f2000-7ffd5a5f4000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
garbage line
7f3b12030000-7f3b12040000 r-xp zz 08:01 5 /bad/offset
";

    #[test]
    fn keeps_executable_file_mappings() {
        let maps = parse_maps(SAMPLE);
        let paths: Vec<&str> = maps.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/usr/bin/cat",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/opt/my app/lib ssl.so",
                "/memfd:jit"
            ]
        );
        let cat = &maps[0];
        assert_eq!(cat.start, 0x55d0c0a02000);
        assert_eq!(cat.end, 0x55d0c0a06000);
        assert_eq!(cat.offset, 0x2000);
        assert_eq!(
            cat.file_id,
            FileId {
                dev: 0xfe00,
                ino: 1048601
            }
        );
        assert!(!cat.deleted);
        let spaced = &maps[2];
        assert!(spaced.deleted);
        // 103:02 is major 259 (NVMe), minor 2.
        assert_eq!(spaced.file_id, FileId::from_major_minor(259, 2, 77));
        assert_eq!(spaced.file_id.dev, (259 << 8) | 2);
    }

    #[test]
    fn unescapes_newlines() {
        let maps = parse_maps("1000-2000 r-xp 00000000 08:01 12 /tmp/a\\012b.so\n");
        assert_eq!(maps[0].path, "/tmp/a\nb.so");
    }

    #[test]
    fn empty_and_garbage() {
        assert!(parse_maps("").is_empty());
        assert!(parse_maps("\n\n  \n-\u{0} x").is_empty());
        assert!(parse_maps("1000-2000 r-xp").is_empty());
    }
}
