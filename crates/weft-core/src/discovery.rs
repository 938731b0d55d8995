//! Finding the TLS libraries to put uprobes on.
//!
//! weft attaches uprobes once per *file* (device + inode), whichever
//! processes map it. Discovery walks `/proc/PID/maps`, keeps executable
//! file-backed mappings, skips files already seen, and inspects each new file's
//! ELF symbol tables against the [`LibrarySpec`] table: shared libraries such
//! as `libssl.so.3` and executables that embed a library (`node` exports
//! OpenSSL's `SSL_write`) are found the same way, by the symbols they define.
//!
//! # Which path is opened, and which is handed to the attacher
//!
//! The path in `maps` is relative to the process' own root and may no longer
//! name the mapped file. For each mapping these are tried in order, and the
//! first whose `(st_dev, st_ino)` equals the mapping's is used both to read the
//! ELF and as [`ProbeTarget::path`] (a uprobe binds to the inode, so any path
//! to the same inode attaches the same probe):
//!
//! 1. the path itself, in weft's mount namespace: survives the process' exit,
//!    and is what a host process (the common case) gives;
//! 2. `/proc/PID/root/<path>`: the file as the process sees it, through its
//!    root (containers, chroots, other mount namespaces);
//! 3. `/proc/PID/map_files/<start>-<end>`: the mapped file itself, even when
//!    it was deleted or replaced on disk (`(deleted)` in maps, e.g. a running
//!    service after a package upgrade), or when a kernel reports an overlay
//!    file's lower device in `maps` but the overlay's through the path (6.18
//!    shows the overlay's in both, so step 1 or 2 suffices). Opening it needs
//!    `CAP_SYS_ADMIN`, and the path is valid only while the process maps the
//!    file, so attach soon after discovery.
//!
//! Each candidate is `stat`ed before it is opened, so a path that now names a
//! FIFO or a device is never opened (and cannot block the scan).

mod boringssl;
mod elf;
pub mod go;
pub mod keylog;
mod maps;
mod spec;

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use elf::MAX_TABLE_BYTES;
pub use maps::{Mapping, parse_maps};
pub use spec::{
    ALL_LIBRARIES, BORINGSSL, DEFAULT_LIBRARIES, GNUTLS, GO, LibrarySpec, NSS, OPENSSL, WOLFSSL,
};

use crate::event::TlsLibrary;

/// A file's identity: device and inode. `dev` uses the userspace `st_dev`
/// encoding (glibc's `makedev`), as returned by `stat(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// glibc's `makedev`: the userspace `dev_t` for a major and minor number.
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

impl FileId {
    /// From a kernel-internal device number (`inode->i_sb->s_dev`, as BPF
    /// reads it: `MAJOR << 20 | MINOR`) and an inode number.
    pub fn from_kernel_dev(kdev: u64, ino: u64) -> Self {
        let major = ((kdev >> 20) & 0xfff) as u32;
        let minor = (kdev & 0xf_ffff) as u32;
        Self::from_major_minor(major, minor, ino)
    }

    /// From the major and minor numbers (`maps` shows them as `maj:min` in hex).
    pub fn from_major_minor(major: u32, minor: u32, ino: u64) -> Self {
        FileId {
            dev: makedev(major, minor),
            ino,
        }
    }

    /// The identity of a file from its metadata (`stat`/`fstat`).
    pub fn from_metadata(md: &fs::Metadata) -> Self {
        FileId {
            dev: md.dev(),
            ino: md.ino(),
        }
    }

    pub fn major(&self) -> u32 {
        (((self.dev >> 32) & 0xffff_f000) | ((self.dev >> 8) & 0xfff)) as u32
    }

    pub fn minor(&self) -> u32 {
        (((self.dev >> 12) & 0xffff_ff00) | (self.dev & 0xff)) as u32
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} inode {}", self.major(), self.minor(), self.ino)
    }
}

/// One function to probe: its name and its offset in the file (what uprobes
/// and libbpf's `func_offset` take, not its virtual address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolOffset {
    pub name: String,
    pub offset: u64,
}

/// A file to attach uprobes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub file_id: FileId,
    /// A path to this very file that weft can open and attach to (see the
    /// module documentation for which form and why).
    pub path: PathBuf,
    /// The path as the process sees it (from `maps`), for people.
    pub display_path: String,
    pub library: TlsLibrary,
    /// Required symbols first, then the optional ones that are present.
    pub symbols: Vec<SymbolOffset>,
    /// The GNU build-id, when the file has one.
    pub build_id: Option<Vec<u8>>,
    /// The process whose maps led to the file (`None` from [`inspect_file`]).
    /// When `path` is under `/proc/<pid>/`, it is valid while that process
    /// lives: if attaching fails because the path is gone, remove `file_id`
    /// from the `seen` set so that the next scan finds the file through
    /// another process.
    pub pid: Option<u32>,
}

impl ProbeTarget {
    /// The offset of `name`, if it is probed.
    pub fn offset(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.offset)
    }
}

/// Why a process or file could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The process exited while it was being scanned: normal, count it but do
    /// not warn (see [`DiscoveryError::is_process_gone`]).
    #[error("process {pid} exited during the scan")]
    ProcessGone { pid: u32 },
    #[error("cannot list processes in {path}: {source}{hint}", hint = hint(.source))]
    ListProcesses {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the memory maps of process {pid} ({path}): {source}{hint}", hint = hint(.source))]
    ReadMaps {
        pid: u32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot open {display_path} mapped by process {pid} (last tried {path}): {source}{hint}",
        hint = hint(.source)
    )]
    OpenMapped {
        pid: u32,
        display_path: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{display_path} mapped by process {pid} ({file_id}) was replaced on disk and the mapped \
         copy is not reachable through /proc/{pid}/map_files; restart the process to probe it"
    )]
    FileReplaced {
        pid: u32,
        display_path: String,
        file_id: FileId,
    },
    #[error("cannot open {path}: {source}{hint}", hint = hint(.source))]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not a valid ELF file ({reason}); it may be truncated or corrupt, so it is not probed"
    )]
    MalformedElf { path: PathBuf, reason: String },
    #[error(
        "{path}: {table} is {size} bytes, over the {MAX_TABLE_BYTES}-byte limit, so it is not \
         searched for TLS functions"
    )]
    TableTooLarge {
        path: PathBuf,
        table: &'static str,
        size: u64,
    },
    #[error(
        "{path}: Go program not probed: weft cannot verify where its crypto/tls functions are \
         ({reason}); a probe at a wrong offset would corrupt the program"
    )]
    GoUnverified { path: PathBuf, reason: String },
    #[error(transparent)]
    BoringSsl(#[from] boringssl::LocateError),
}

impl DiscoveryError {
    /// True when the process simply exited: not worth a warning.
    pub fn is_process_gone(&self) -> bool {
        matches!(self, DiscoveryError::ProcessGone { .. })
    }
}

fn hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (run weft as root: reading other processes' files through /proc needs CAP_SYS_PTRACE \
         and CAP_DAC_READ_SEARCH, /proc/PID/map_files needs CAP_SYS_ADMIN; a process holding \
         capabilities weft lacks stays unreadable)"
    } else {
        ""
    }
}

const ESRCH: i32 = 3;

/// The error a vanished process gives: its /proc entries are gone (ENOENT) or
/// the task is being torn down (ESRCH).
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH)
}

/// Inspect one ELF file. `Ok(None)` when it is not ELF (no `\x7fELF`
/// magic) or not one of `libraries`; an error when it claims to be ELF but
/// cannot be read as one.
pub fn inspect_file(
    path: &Path,
    libraries: &[LibrarySpec],
) -> Result<Option<ProbeTarget>, DiscoveryError> {
    let open_err = |source| DiscoveryError::Open {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(open_err)?;
    let md = file.metadata().map_err(open_err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let display_path = path.display().to_string();
    inspect_open(file, &name, libraries, path).map(|found| {
        found.map(|f| ProbeTarget {
            file_id: FileId::from_metadata(&md),
            path: path.to_owned(),
            display_path,
            library: f.library,
            symbols: f.symbols,
            build_id: f.build_id,
            pid: None,
        })
    })
}

fn inspect_open(
    file: File,
    file_name: &str,
    libraries: &[LibrarySpec],
    path: &Path,
) -> Result<Option<elf::Found>, DiscoveryError> {
    // Go programs are go.rs' business (the symbol scan would find the entry
    // points of crypto/tls in an unstripped one, but not its RETs).
    let go_file = if libraries.iter().any(|l| l.library == TlsLibrary::GoTls) {
        Some(file.try_clone().map_err(|source| DiscoveryError::Open {
            path: path.to_owned(),
            source,
        })?)
    } else {
        None
    };
    let libraries: Vec<LibrarySpec> = libraries
        .iter()
        .filter(|l| l.library != TlsLibrary::GoTls)
        .copied()
        .collect();
    // Stripped executables embedding BoringSSL (Chromium) name nothing in
    // their symbol tables: boringssl.rs looks at them then.
    // OpenSSL's key-log function is located in the bytes of this very file
    // (`path` is the process' view, only for messages).
    let keylog_file = file_name
        .starts_with("libssl.so")
        .then(|| file.try_clone().ok())
        .flatten();
    let stripped = libraries
        .contains(&BORINGSSL)
        .then(|| file.try_clone().ok())
        .flatten();
    let found = elf::inspect(file, file_name, &libraries).map_err(|e| match e {
        elf::ElfError::Object(e) => DiscoveryError::MalformedElf {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        elf::ElfError::Malformed(reason) => DiscoveryError::MalformedElf {
            path: path.to_owned(),
            reason: reason.to_owned(),
        },
        elf::ElfError::TooLarge { table, size } => DiscoveryError::TableTooLarge {
            path: path.to_owned(),
            table,
            size,
        },
    })?;
    let mut found = match (found, stripped) {
        (None, Some(file)) => boringssl::inspect(&file, file_name, path)?,
        (Some(mut f), Some(file)) if f.library == TlsLibrary::BoringSsl => {
            boringssl::add_keylog_by_symbols(&mut f, &file, path);
            Some(f)
        }
        (found, _) => found,
    };
    if let Some(f) = found.as_mut()
        && f.library == TlsLibrary::OpenSsl
        && let Some(kf) = keylog_file
    {
        add_keylog_point(f, &kf, path);
    }
    match (found, go_file) {
        (None, Some(go_file)) => go::inspect(go_file).map_err(|e| go::discovery_error(e, path)),
        (found, _) => Ok(found),
    }
}

/// Locate OpenSSL's key-log function (`keylog`) in a `libssl.so*` and add
/// it as a probe point; when it cannot be verified, say so and leave it out
/// (the library's plaintext is captured all the same).
fn add_keylog_point(f: &mut elf::Found, file: &File, path: &Path) {
    use std::os::unix::fs::FileExt;
    let data = match file.metadata() {
        Ok(md) if md.len() as usize <= keylog::MAX_FILE => {
            let mut buf = vec![0u8; md.len() as usize];
            file.read_exact_at(&mut buf, 0).map(|()| buf)
        }
        Ok(_) => return,
        Err(e) => Err(e),
    };
    match data
        .map_err(|e| e.to_string())
        .and_then(|d| keylog::locate(&d).map_err(|e| e.to_string()))
    {
        Ok(offset) => f.symbols.push(SymbolOffset {
            name: keylog::KEYLOG_SYMBOL.to_string(),
            offset,
        }),
        Err(e) => tracing::warn!(
            path = %path.display(),
            "--keylog will not see sessions of this OpenSSL: {e}"
        ),
    }
}

/// What scanning one process found.
#[derive(Debug, Default)]
pub struct ProcessScan {
    /// Newly seen files that are TLS libraries.
    pub targets: Vec<ProbeTarget>,
    /// Files that could not be opened or read. Each file is reported once:
    /// it is added to `seen` even when it fails.
    pub errors: Vec<DiscoveryError>,
    /// The process exited part-way; `targets` holds what was found before.
    pub vanished: bool,
}

/// Scan one process: read `<proc_root>/<pid>/maps` and inspect every
/// executable mapped file not yet in `seen` (which is updated). `Err` only when
/// the maps cannot be read; [`DiscoveryError::ProcessGone`] when the process
/// had exited before (normal). A process that exits part-way yields what was
/// found so far with [`ProcessScan::vanished`] set.
pub fn scan_process(
    proc_root: &Path,
    pid: u32,
    libraries: &[LibrarySpec],
    seen: &mut HashSet<FileId>,
) -> Result<ProcessScan, DiscoveryError> {
    let maps_path = proc_root.join(pid.to_string()).join("maps");
    let bytes = fs::read(&maps_path).map_err(|source| {
        if is_gone(&source) {
            DiscoveryError::ProcessGone { pid }
        } else {
            DiscoveryError::ReadMaps {
                pid,
                path: maps_path.clone(),
                source,
            }
        }
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let mut scan = ProcessScan::default();
    for m in parse_maps(&text) {
        if seen.contains(&m.file_id) {
            continue;
        }
        let (file, path) = match open_mapping(proc_root, pid, &m) {
            Ok(opened) => opened,
            Err(e) if e.is_process_gone() => {
                scan.vanished = true;
                break;
            }
            Err(e) => {
                seen.insert(m.file_id);
                scan.errors.push(e);
                continue;
            }
        };
        seen.insert(m.file_id);
        let name = m.path.rsplit('/').next().unwrap_or_default();
        // Errors name the file as the process sees it, not a /proc path.
        match inspect_open(file, name, libraries, Path::new(&m.path)) {
            Ok(Some(found)) => {
                tracing::debug!(
                    pid,
                    path = %m.path,
                    library = found.library.as_str(),
                    symbols = found.symbols.len(),
                    "found TLS library"
                );
                scan.targets.push(ProbeTarget {
                    file_id: m.file_id,
                    path,
                    display_path: m.path,
                    library: found.library,
                    symbols: found.symbols,
                    build_id: found.build_id,
                    pid: Some(pid),
                });
            }
            Ok(None) => {}
            Err(e) => scan.errors.push(e),
        }
    }
    Ok(scan)
}

/// Open the mapped file through the first path that still names it (see the
/// module documentation).
fn open_mapping(
    proc_root: &Path,
    pid: u32,
    m: &Mapping,
) -> Result<(File, PathBuf), DiscoveryError> {
    let proc_dir = proc_root.join(pid.to_string());
    let mut candidates = Vec::with_capacity(3);
    if !m.deleted {
        candidates.push(PathBuf::from(&m.path));
        candidates.push(proc_dir.join("root").join(m.path.trim_start_matches('/')));
    }
    candidates.push(
        proc_dir
            .join("map_files")
            .join(format!("{:x}-{:x}", m.start, m.end)),
    );
    let mut failure: Option<(PathBuf, io::Error)> = None;
    for path in candidates {
        // stat first: a path that now names a FIFO must not be opened.
        let checked = fs::metadata(&path).and_then(|md| {
            if FileId::from_metadata(&md) != m.file_id {
                return Ok(None);
            }
            let file = File::open(&path)?;
            let md = file.metadata()?;
            Ok((FileId::from_metadata(&md) == m.file_id).then_some(file))
        });
        match checked {
            Ok(Some(file)) => return Ok((file, path)),
            Ok(None) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => failure = Some((path, e)),
        }
    }
    if !proc_dir.exists() {
        return Err(DiscoveryError::ProcessGone { pid });
    }
    Err(match failure {
        Some((path, source)) => DiscoveryError::OpenMapped {
            pid,
            display_path: m.path.clone(),
            path,
            source,
        },
        None => DiscoveryError::FileReplaced {
            pid,
            display_path: m.path.clone(),
            file_id: m.file_id,
        },
    })
}

/// What scanning every process found.
#[derive(Debug, Default)]
pub struct ScanSummary {
    pub targets: Vec<ProbeTarget>,
    /// Failures worth reporting, with the pid they came from. Processes that
    /// exited mid-scan are not here but in `vanished`.
    pub errors: Vec<(u32, DiscoveryError)>,
    /// Processes scanned (including those that vanished).
    pub processes: usize,
    /// Processes that exited during the scan.
    pub vanished: usize,
}

/// Scan every process under `proc_root` (in pid order), sharing `seen`.
pub fn scan_all(
    proc_root: &Path,
    libraries: &[LibrarySpec],
    seen: &mut HashSet<FileId>,
) -> Result<ScanSummary, DiscoveryError> {
    let mut pids = list_pids(proc_root)?;
    pids.sort_unstable();
    let mut summary = ScanSummary::default();
    for pid in pids {
        summary.processes += 1;
        match scan_process(proc_root, pid, libraries, seen) {
            Ok(scan) => {
                summary.vanished += usize::from(scan.vanished);
                summary.targets.extend(scan.targets);
                summary
                    .errors
                    .extend(scan.errors.into_iter().map(|e| (pid, e)));
            }
            Err(e) if e.is_process_gone() => summary.vanished += 1,
            Err(e) => summary.errors.push((pid, e)),
        }
    }
    Ok(summary)
}

/// The system's library directories, where shared TLS libraries that
/// processes started later will load from.
pub const SYSTEM_LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    // Debian's BoringSSL (android-libboringssl: libssl.so.0, bssl-tool).
    "/usr/lib/x86_64-linux-gnu/android",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// Find the shared TLS libraries installed in `dirs` (by their usual file
/// names; symlinks resolved and deduplicated through `seen`), so they can be
/// probed before any process loads them: a short-lived process that starts
/// after weft (wget, git) is then captured from its first call. Missing
/// directories are skipped; unreadable files are returned as errors.
pub fn scan_library_dirs(
    dirs: &[&str],
    libraries: &[LibrarySpec],
    seen: &mut HashSet<FileId>,
) -> (Vec<ProbeTarget>, Vec<DiscoveryError>) {
    let named_like_a_library = |p: &Path, _: &fs::Metadata| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.contains(".so")
            && libraries
                .iter()
                .any(|l| l.name_matches(&name) && l.name_allowed(&name))
    };
    scan_dirs(dirs, libraries, seen, named_like_a_library)
}

/// Inspect the regular files of `dirs` (in name order) that `keep` accepts,
/// once per file (symlinks resolved to the real path, which is the one
/// processes' maps show; deduplicated through `seen`). `keep` sees the path
/// as listed and the real file's metadata. Missing directories are skipped.
fn scan_dirs(
    dirs: &[&str],
    libraries: &[LibrarySpec],
    seen: &mut HashSet<FileId>,
    keep: impl Fn(&Path, &fs::Metadata) -> bool,
) -> (Vec<ProbeTarget>, Vec<DiscoveryError>) {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for dir in dirs {
        let Ok(rd) = fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for listed in paths {
            let Ok(path) = fs::canonicalize(&listed) else {
                continue;
            };
            let Ok(md) = fs::metadata(&path) else {
                continue;
            };
            if !md.is_file() || !keep(&listed, &md) || !seen.insert(FileId::from_metadata(&md)) {
                continue;
            }
            match inspect_file(&path, libraries) {
                Ok(Some(t)) => targets.push(t),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    (targets, errors)
}

/// Directories of the executables people start by name.
pub const SYSTEM_EXECUTABLE_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Executables smaller than this cannot embed a TLS library.
const MIN_EMBEDDING_SIZE: u64 = 1 << 20;

/// Find executables in `dirs` that embed a TLS library (node, a Go program,
/// a static OpenSSL build), so they are probed before their first run: an
/// executable found only when it starts races its own first TLS calls.
/// Only regular files of at least 1 MiB with an ELF header are inspected.
pub fn scan_executable_dirs(
    dirs: &[&str],
    libraries: &[LibrarySpec],
    seen: &mut HashSet<FileId>,
) -> (Vec<ProbeTarget>, Vec<DiscoveryError>) {
    let may_embed_tls =
        |_: &Path, md: &fs::Metadata| md.len() >= MIN_EMBEDDING_SIZE && md.mode() & 0o111 != 0;
    let (targets, errors) = scan_dirs(dirs, libraries, seen, may_embed_tls);
    // Files without an ELF header were inspected and yield nothing; only
    // real ELF failures are worth reporting.
    let errors = errors
        .into_iter()
        .filter(|e| !matches!(e, DiscoveryError::Open { .. }))
        .collect();
    (targets, errors)
}

/// The pids (thread-group ids) listed in `proc_root`.
pub fn list_pids(proc_root: &Path) -> Result<Vec<u32>, DiscoveryError> {
    let list_err = |source| DiscoveryError::ListProcesses {
        path: proc_root.to_owned(),
        source,
    };
    let mut pids = Vec::new();
    for entry in fs::read_dir(proc_root).map_err(list_err)? {
        // An entry that vanishes while listing is a process that exited.
        let Ok(entry) = entry else { continue };
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests;
