//! Tests against real files and processes on the build host. The fixtures are
//! Debian's `libssl3` (`/usr/lib/x86_64-linux-gnu/libssl.so.3`), `nodejs`
//! (`/usr/bin/node`, OpenSSL linked in), `libgnutls30`, `libnspr4` and
//! `python3`; a missing fixture fails the test with the package to install.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use object::read::ReadCache;
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection, ObjectSymbol};

use super::*;

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
const NODE: &str = "/usr/bin/node";
const OPENSSL_FUNCS: [&str; 7] = [
    "SSL_write",
    "SSL_read",
    "SSL_write_ex",
    "SSL_read_ex",
    "SSL_do_handshake",
    "SSL_free",
    "SSL_get0_alpn_selected",
];

fn fixture<'a>(path: &'a str, package: &str) -> &'a Path {
    let p = Path::new(path);
    assert!(
        p.exists(),
        "test fixture {path} is missing: install the Debian package {package}"
    );
    p
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "weft-discovery-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `cmd`, which must print a line once it is ready.
fn spawn_ready(cmd: &mut Command) -> Kid {
    let mut child = Kid(cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn fixture process"));
    let stdout = child.0.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        !line.is_empty(),
        "fixture process exited before it was ready"
    );
    child
}

/// Offsets computed independently of `elf.rs`: `object`'s high-level API,
/// through the containing *section* (`st_value - sh_addr + sh_offset`, what
/// libbpf does), where `elf.rs` goes through the containing `PT_LOAD`.
fn reference_offsets(path: &Path) -> HashMap<String, u64> {
    let cache = ReadCache::new(File::open(path).unwrap());
    let file = ElfFile64::<Endianness, _>::parse(&cache).unwrap();
    let mut out = HashMap::new();
    for sym in file.dynamic_symbols() {
        let Ok(name) = sym.name() else { continue };
        if !OPENSSL_FUNCS.contains(&name) || sym.is_undefined() {
            continue;
        }
        let section = file.section_by_index(sym.section_index().unwrap()).unwrap();
        let (file_start, _) = section.file_range().unwrap();
        out.insert(
            name.to_owned(),
            sym.address() - section.address() + file_start,
        );
    }
    out
}

fn assert_openssl(target: &ProbeTarget, path: &Path) {
    assert_eq!(target.library, TlsLibrary::OpenSsl);
    // The key-log function is not exported: keylog.rs finds it (and has
    // its own tests); libssl.so must have it, others need not.
    let keylog = target
        .symbols
        .iter()
        .any(|s| s.name == super::keylog::KEYLOG_SYMBOL);
    let is_libssl = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("libssl.so"));
    assert_eq!(keylog, is_libssl, "key-log point of {}", path.display());
    let exported: Vec<&crate::discovery::SymbolOffset> = target
        .symbols
        .iter()
        .filter(|s| s.name != super::keylog::KEYLOG_SYMBOL)
        .collect();
    let names: Vec<&str> = exported.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, OPENSSL_FUNCS, "symbols of {}", path.display());
    let reference = reference_offsets(path);
    for s in exported {
        assert_eq!(
            Some(&s.offset),
            reference.get(&s.name),
            "{} in {}",
            s.name,
            path.display()
        );
    }
    let id = target.build_id.as_ref().expect("build-id");
    assert_eq!(id.len(), 20, "GNU build-ids are SHA-1 sized");
}

#[test]
fn libssl_yields_openssl_offsets() {
    let path = fixture(LIBSSL, "libssl3");
    let target = inspect_file(path, DEFAULT_LIBRARIES)
        .unwrap()
        .expect("libssl is OpenSSL");
    assert_openssl(&target, path);
    let md = fs::metadata(path).unwrap();
    assert_eq!(target.file_id, FileId::from_metadata(&md));
    // Checked by hand: `nm -D` shows SSL_write@@OPENSSL_3.0.0 at 0x359c0 and
    // `readelf -lW` a `PT_LOAD` with VirtAddr = Offset covering it, so its file
    // offset is 0x359c0 too; `reference_offsets` checks the same for all six.
}

#[test]
fn node_yields_openssl_offsets() {
    let path = fixture(NODE, "nodejs");
    let started = Instant::now();
    let target = inspect_file(path, DEFAULT_LIBRARIES)
        .unwrap()
        .expect("node embeds OpenSSL");
    eprintln!("inspecting {NODE} took {:?}", started.elapsed());
    assert_openssl(&target, path);
    // Here the text segment's offset and address differ (0x772000 vs
    // 0xb72000 in Debian's node 20), so the conversion is exercised: the
    // reference offsets come from section headers, ours from segments.
    let sym = target.offset("SSL_write").unwrap();
    let reference = reference_offsets(path)["SSL_write"];
    assert_eq!(sym, reference);
}

#[test]
fn programs_without_tls_or_importing_it_are_not_targets() {
    // ls links no TLS; curl *imports* SSL_write (undefined in its dynsym),
    // which is not a definition to probe.
    assert!(
        inspect_file(Path::new("/bin/ls"), ALL_LIBRARIES)
            .unwrap()
            .is_none()
    );
    let curl = fixture("/usr/bin/curl", "curl");
    assert!(inspect_file(curl, ALL_LIBRARIES).unwrap().is_none());
    // Not ELF at all.
    assert!(
        inspect_file(Path::new("/etc/passwd"), ALL_LIBRARIES)
            .unwrap()
            .is_none()
    );
}

#[test]
fn other_libraries_in_the_table() {
    let gnutls = fixture("/usr/lib/x86_64-linux-gnu/libgnutls.so.30", "libgnutls30");
    let t = inspect_file(gnutls, ALL_LIBRARIES)
        .unwrap()
        .expect("gnutls");
    assert_eq!(t.library, TlsLibrary::GnuTls);
    assert!(t.offset("gnutls_record_send").is_some());
    assert!(t.offset("gnutls_record_recv").is_some());
    let nspr = fixture("/usr/lib/x86_64-linux-gnu/libnspr4.so", "libnspr4");
    let t = inspect_file(nspr, ALL_LIBRARIES).unwrap().expect("nspr");
    assert_eq!(t.library, TlsLibrary::Nss);
    assert_eq!(t.symbols.len(), 4);
    // OpenSSL is not mistaken for BoringSSL.
    let t = inspect_file(Path::new(LIBSSL), ALL_LIBRARIES)
        .unwrap()
        .unwrap();
    assert_eq!(t.library, TlsLibrary::OpenSsl);
    // Debian's shared BoringSSL with its exported symbols is BoringSSL, with
    // the plaintext and handshake functions it defines (no `_ex` variants)
    // and the verified key-log point (its `.symtab` is stripped: found from
    // the known build-id).
    let boring = fixture(
        "/usr/lib/x86_64-linux-gnu/android/libssl.so.0",
        "android-libboringssl",
    );
    let t = inspect_file(boring, ALL_LIBRARIES)
        .unwrap()
        .expect("android libboringssl");
    assert_eq!(t.library, TlsLibrary::BoringSsl);
    let names: Vec<&str> = t.symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "SSL_write",
            "SSL_read",
            "SSL_do_handshake",
            "SSL_free",
            "SSL_get0_alpn_selected",
            "ssl_log_secret@s3=0x30@client_random=0x30"
        ],
        "{t:#?}"
    );
    // GnuTLS's OpenSSL compatibility layer is not OpenSSL.
    let compat = Path::new("/usr/lib/x86_64-linux-gnu/libgnutls-openssl.so.27");
    if compat.exists() {
        assert!(inspect_file(compat, ALL_LIBRARIES).unwrap().is_none());
    }
}

#[test]
fn garbage_and_truncated_files_do_not_panic() {
    let dir = TempDir::new();
    let lib = fs::read(fixture(LIBSSL, "libssl3")).unwrap();
    let path = dir.0.join("libssl.so.3");
    let check = |bytes: &[u8]| {
        fs::write(&path, bytes).unwrap();
        // Any answer is fine, as long as it is an answer.
        let _ = inspect_file(&path, ALL_LIBRARIES);
    };
    check(b"");
    check(b"\x7fELF");
    check(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    check(&[0xff; 4096]);
    let mut elf_garbage = b"\x7fELF\x02\x01\x01".to_vec();
    elf_garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    check(&elf_garbage);
    for len in [16, 52, 64, 100, 1000, 4096, lib.len() / 2, lib.len() - 1] {
        check(&lib[..len]);
    }
    // Corrupt bytes in the headers and tables, deterministically.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut bytes = lib.clone();
        for _ in 0..4 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = if rng & 1 == 0 {
                (rng >> 8) as usize % 64
            } else {
                (rng >> 8) as usize % bytes.len()
            };
            bytes[at] = (rng >> 40) as u8;
        }
        check(&bytes);
    }
    // The section header table pointing past the end is an error, not a panic.
    let mut bytes = lib.clone();
    bytes[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let err = inspect_file(&path, ALL_LIBRARIES).unwrap_err();
    assert!(matches!(err, DiscoveryError::MalformedElf { .. }), "{err}");
    assert!(err.to_string().contains("libssl.so.3"), "{err}");
}

#[test]
fn scanning_this_process_does_not_fail() {
    let mut seen = HashSet::new();
    let scan = scan_process(
        Path::new("/proc"),
        std::process::id(),
        DEFAULT_LIBRARIES,
        &mut seen,
    )
    .unwrap();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert!(!scan.vanished);
    // At least this test binary and libc were looked at, and are now seen.
    assert!(seen.len() >= 2, "{seen:?}");
    let again = scan_process(
        Path::new("/proc"),
        std::process::id(),
        DEFAULT_LIBRARIES,
        &mut seen,
    )
    .unwrap();
    assert!(again.targets.is_empty() && again.errors.is_empty());
}

#[test]
fn missing_process_is_gone_not_an_error() {
    let dir = TempDir::new();
    let err = scan_process(&dir.0, 4_000_000, DEFAULT_LIBRARIES, &mut HashSet::new()).unwrap_err();
    assert!(err.is_process_gone(), "{err}");
}

/// A fake /proc whose only process maps the real libssl: exercises the maps
/// parser, the (dev, ino) check and the plain-path candidate without needing a
/// process that loads libssl.
#[test]
fn fake_proc_root_finds_libssl() {
    let dir = TempDir::new();
    let md = fs::metadata(fixture(LIBSSL, "libssl3")).unwrap();
    let id = FileId::from_metadata(&md);
    fs::create_dir_all(dir.0.join("42")).unwrap();
    fs::create_dir_all(dir.0.join("43")).unwrap();
    let line = format!(
        "7f0000035000-7f00000a0000 r-xp 00035000 {:x}:{:02x} {} {LIBSSL}\n",
        id.major(),
        id.minor(),
        id.ino
    );
    fs::write(dir.0.join("42/maps"), &line).unwrap();
    fs::write(dir.0.join("43/maps"), &line).unwrap();
    // A mapping whose inode does not match what the path now names.
    fs::create_dir_all(dir.0.join("44")).unwrap();
    fs::write(
        dir.0.join("44/maps"),
        format!(
            "1000-2000 r-xp 00000000 {:x}:{:02x} 1 {LIBSSL}\n",
            id.major(),
            id.minor()
        ),
    )
    .unwrap();
    fs::create_dir_all(dir.0.join("not-a-pid")).unwrap();

    let mut seen = HashSet::new();
    let summary = scan_all(&dir.0, DEFAULT_LIBRARIES, &mut seen).unwrap();
    assert_eq!(summary.processes, 3);
    assert_eq!(summary.targets.len(), 1, "deduplicated by (dev, inode)");
    let t = &summary.targets[0];
    assert_eq!(t.path, Path::new(LIBSSL));
    assert_eq!(t.display_path, LIBSSL);
    assert_eq!(t.pid, Some(42));
    assert_eq!(t.file_id, id);
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    let (pid, err) = &summary.errors[0];
    assert_eq!(*pid, 44);
    assert!(matches!(err, DiscoveryError::FileReplaced { .. }), "{err}");
}

#[test]
fn finds_libssl_in_a_python_process() {
    fixture("/usr/bin/python3", "python3");
    let kid = spawn_ready(Command::new("python3").args([
        "-c",
        "import ssl, sys, time; print('ready', flush=True); time.sleep(30)",
    ]));
    let mut seen = HashSet::new();
    let scan = scan_process(Path::new("/proc"), kid.0.id(), DEFAULT_LIBRARIES, &mut seen).unwrap();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let t = scan
        .targets
        .iter()
        .find(|t| t.display_path.contains("libssl.so"))
        .expect("python's _ssl module loads libssl");
    assert_eq!(
        t.path,
        Path::new(&t.display_path),
        "host process: plain path"
    );
    assert_openssl(t, &t.path);
}

#[test]
fn finds_openssl_in_a_node_process() {
    fixture(NODE, "nodejs");
    let kid = spawn_ready(
        Command::new(NODE).args(["-e", "console.log('ready'); setTimeout(() => {}, 30000)"]),
    );
    let mut seen = HashSet::new();
    let started = Instant::now();
    let scan = scan_process(Path::new("/proc"), kid.0.id(), DEFAULT_LIBRARIES, &mut seen).unwrap();
    eprintln!("scanning the node process took {:?}", started.elapsed());
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let t = scan
        .targets
        .iter()
        .find(|t| t.display_path == NODE)
        .expect("node");
    assert_openssl(t, Path::new(NODE));
}

/// A library deleted after it was mapped (a service after a package upgrade)
/// is reached through /proc/PID/map_files.
/// Needs root (CAP_SYS_ADMIN opens /proc/PID/map_files), like the rest of
/// the suite: it fails loudly without, never skips.
#[test]
fn finds_deleted_library_through_map_files() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
        "this test needs root: /proc/PID/map_files is readable only with CAP_SYS_ADMIN"
    );
    fixture("/usr/bin/python3", "python3");
    let dir = TempDir::new();
    let copy = dir.0.join("libssl.so.3");
    fs::copy(LIBSSL, &copy).unwrap();
    let kid = spawn_ready(Command::new("python3").args([
        "-c",
        "import ctypes, os, sys, time; ctypes.CDLL(sys.argv[1]); os.unlink(sys.argv[1]); \
         print('ready', flush=True); time.sleep(30)",
        copy.to_str().unwrap(),
    ]));
    let mut seen = HashSet::new();
    let scan = scan_process(Path::new("/proc"), kid.0.id(), DEFAULT_LIBRARIES, &mut seen).unwrap();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let t = scan
        .targets
        .iter()
        .find(|t| Path::new(&t.display_path) == copy)
        .expect("the deleted copy");
    let map_files = format!("/proc/{}/map_files/", kid.0.id());
    assert!(t.path.starts_with(&map_files), "{}", t.path.display());
    assert_eq!(t.library, TlsLibrary::OpenSsl);
    // The exported functions, and the key-log function found in the bytes
    // of the deleted copy itself.
    assert_eq!(t.symbols.len(), OPENSSL_FUNCS.len() + 1, "{:?}", t.symbols);
}

#[test]
fn scan_all_of_this_host() {
    let started = Instant::now();
    let mut seen = HashSet::new();
    let summary = scan_all(Path::new("/proc"), DEFAULT_LIBRARIES, &mut seen).unwrap();
    let took = started.elapsed();
    eprintln!(
        "scan_all: {} processes, {} files, {} targets, {} vanished, {} errors in {took:?}",
        summary.processes,
        seen.len(),
        summary.targets.len(),
        summary.vanished,
        summary.errors.len()
    );
    for (pid, e) in &summary.errors {
        eprintln!("  pid {pid}: {e}");
    }
    assert!(summary.processes > 0);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn device_numbers() {
    // 254:0 (virtio "fe:00" in maps) is 0xfe00 in st_dev and 254 << 20 in the kernel.
    assert_eq!(
        FileId::from_kernel_dev(254 << 20, 7),
        FileId {
            dev: 0xfe00,
            ino: 7
        }
    );
    assert_eq!(FileId::from_major_minor(0xfe, 0, 7).dev, 0xfe00);
    // Big numbers use the split encoding.
    let f = FileId::from_major_minor(0x1234, 0x5_6789, 1);
    assert_eq!(
        f.dev,
        (0x1000u64 << 32) | (0x234 << 8) | (0x5_6700 << 12) | 0x89
    );
    assert_eq!((f.major(), f.minor()), (0x1234, 0x5_6789));
    assert_eq!(
        FileId::from_kernel_dev((0x234 << 20) | 0x5_6789, 1),
        FileId::from_major_minor(0x234, 0x5_6789, 1)
    );
    // Agrees with stat(2) for a real file.
    let md = fs::metadata(LIBSSL).unwrap();
    let f = FileId::from_metadata(&md);
    assert_eq!(FileId::from_major_minor(f.major(), f.minor(), f.ino), f);
    assert_eq!(
        f.to_string(),
        format!("{}:{} inode {}", f.major(), f.minor(), md.ino())
    );
}

#[test]
fn library_dirs_yield_installed_tls_libraries_once() {
    let mut seen = HashSet::new();
    let (targets, errors) = scan_library_dirs(SYSTEM_LIBRARY_DIRS, ALL_LIBRARIES, &mut seen);
    assert!(errors.is_empty(), "{errors:?}");
    let libssl = targets
        .iter()
        .filter(|t| t.library == TlsLibrary::OpenSsl && t.display_path.contains("libssl.so.3"))
        .count();
    assert_eq!(libssl, 1, "libssl.so.3 found {libssl} times: {targets:#?}");
    assert!(targets.iter().any(|t| t.library == TlsLibrary::GnuTls));
    // Debian's BoringSSL is installed in a directory of its own.
    assert!(
        targets.iter().any(|t| t.library == TlsLibrary::BoringSsl
            && t.display_path.ends_with("/android/libssl.so.0")),
        "android-libboringssl not found: {targets:#?}"
    );
    // A second pass finds nothing new.
    let (again, _) = scan_library_dirs(SYSTEM_LIBRARY_DIRS, ALL_LIBRARIES, &mut seen);
    assert!(again.is_empty());
}

#[test]
fn executable_dirs_yield_node() {
    let mut seen = HashSet::new();
    let t0 = Instant::now();
    let (targets, _errors) = scan_executable_dirs(SYSTEM_EXECUTABLE_DIRS, ALL_LIBRARIES, &mut seen);
    eprintln!("scanned {} files in {:?}", seen.len(), t0.elapsed());
    assert!(
        targets.iter().any(|t| t.display_path.ends_with("/node")),
        "node not found: {:?}",
        targets.iter().map(|t| &t.display_path).collect::<Vec<_>>()
    );
    assert!(!targets.iter().any(|t| t.display_path.ends_with("/ls")));
}
