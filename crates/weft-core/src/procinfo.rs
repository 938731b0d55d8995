//! Process context for events: who made the call.
//!
//! The kernel supplies what was true at the time of the event (pid, parent,
//! ids, cgroup, start time, `comm`); `/proc` fills in the rest (the
//! executable's path). [`ProcCache`] keeps one [`ProcessInfo`] per process
//! (pid + start time), so `/proc` is read once per process, not per event.
//!
//! # Start times and clocks
//!
//! `/proc/PID/stat` field 22 is the start time in clock ticks (`USER_HZ`,
//! 100 on every Linux architecture weft targets; weft assumes 100 rather than
//! calling `sysconf(_SC_CLK_TCK)`), taken from `task->start_boottime`
//! (`CLOCK_BOOTTIME`, which counts time suspended). Everything that must agree
//! between kernel- and `/proc`-supplied start times (the cache key, the
//! [`entity_id`], the check that a pid was not reused) uses the start time
//! rounded down to ticks, `start_time_ns / 10_000_000`, as the kernel itself
//! rounds for `/proc`. That agreement needs the BPF side to read the same
//! clock: `task->group_leader->start_boottime`. If it reads `start_time`
//! (`CLOCK_MONOTONIC`) instead, the two differ by the time the host spent
//! suspended: on a host that never suspended they agree, on a laptop they do
//! not, and then executables stay unknown (counted in
//! [`ProcCacheStats::identity_mismatch`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::ProcessInfo;

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`): 100 on Linux.
pub const USER_HZ: u64 = 100;
/// Nanoseconds per clock tick.
pub const NS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;
/// Processes kept by [`ProcCache::new`].
pub const DEFAULT_CAPACITY: usize = 65_536;

/// What the kernel says about the process behind an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelProc {
    /// Thread-group id.
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    /// Start of the thread-group leader, nanoseconds since boot; see the
    /// module documentation for which clock.
    pub start_time_ns: u64,
    /// The thread-group leader's `comm`: up to 15 bytes of name, NUL-padded.
    /// (A thread's own `comm` would make [`ProcCache`] rebuild the entry
    /// whenever threads with different names alternate.)
    pub comm: [u8; 16],
}

impl KernelProc {
    /// The same facts read from `/proc/PID/stat` and `/proc/PID/status`, for
    /// processes seen only through `/proc` (e.g. those running when weft
    /// starts). The start time has tick precision, and `cgroup_id` is 0
    /// (unknown: `/proc` gives the cgroup's path, not its id).
    pub fn from_proc(proc_root: &Path, pid: u32) -> Result<Self, ProcInfoError> {
        let stat = read_stat(proc_root, pid)?;
        let status_path = proc_root.join(pid.to_string()).join("status");
        let status = read_proc_file(&status_path, pid)?;
        let (uid, gid) = parse_status_ids(&status).ok_or_else(|| ProcInfoError::Parse {
            path: status_path.clone(),
            reason: "no Uid:/Gid: lines",
        })?;
        let mut comm = [0u8; 16];
        let n = stat.comm.len().min(15);
        comm[..n].copy_from_slice(&stat.comm[..n]);
        Ok(KernelProc {
            pid,
            ppid: stat.ppid,
            uid,
            gid,
            cgroup_id: 0,
            start_time_ns: stat.start_ticks.saturating_mul(NS_PER_TICK),
            comm,
        })
    }
}

/// Why process information could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcInfoError {
    /// The process exited: normal, not worth a warning.
    #[error("process {pid} exited")]
    ProcessGone { pid: u32 },
    #[error("cannot read the boot id from {path}: {source} (is /proc mounted there?)")]
    BootId {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds {found:?}, which is not a boot id (a UUID)")]
    BadBootId { path: PathBuf, found: String },
    #[error("cannot read {path}: {source}{hint}", hint = hint(.source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: &'static str },
    #[error("cannot list processes in {path}: {source}")]
    ListProcesses {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ProcInfoError {
    /// True when the process simply exited.
    pub fn is_process_gone(&self) -> bool {
        matches!(self, ProcInfoError::ProcessGone { .. })
    }
}

fn hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (run weft as root: other processes' /proc entries need CAP_SYS_PTRACE)"
    } else {
        ""
    }
}

const ESRCH: i32 = 3;

fn read_proc_file(path: &Path, pid: u32) -> Result<Vec<u8>, ProcInfoError> {
    fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(ESRCH) {
            ProcInfoError::ProcessGone { pid }
        } else {
            ProcInfoError::Read {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// The fields weft uses from `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// `comm`, raw bytes (may contain spaces and parentheses).
    pub comm: Vec<u8>,
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: u8,
    pub ppid: u32,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Parse `/proc/PID/stat` (sans-IO). `comm` is found between the first `(`
/// and the *last* `)`, since it may itself contain `)`.
pub fn parse_stat(bytes: &[u8]) -> Result<Stat, &'static str> {
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or("no '(' before comm")?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .ok_or("no ')' after comm")?;
    if close < open {
        return Err("')' before '('");
    }
    let pid = std::str::from_utf8(&bytes[..open])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("bad pid")?;
    let comm = bytes[open + 1..close].to_vec();
    let rest = std::str::from_utf8(&bytes[close + 1..]).map_err(|_| "fields are not text")?;
    // Fields after comm, numbered from 3 (state).
    let mut fields = rest.split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|s| s.bytes().next())
        .ok_or("no state")?;
    let ppid = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("bad ppid")?;
    let start_ticks = fields
        .nth(22 - 5)
        .and_then(|s| s.parse().ok())
        .ok_or("bad start time (field 22)")?;
    Ok(Stat {
        pid,
        comm,
        state,
        ppid,
        start_ticks,
    })
}

/// Real uid and gid from the text of `/proc/PID/status`.
fn parse_status_ids(status: &[u8]) -> Option<(u32, u32)> {
    let text = String::from_utf8_lossy(status);
    let first_id = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((first_id("Uid:")?, first_id("Gid:")?))
}

fn read_stat(proc_root: &Path, pid: u32) -> Result<Stat, ProcInfoError> {
    let path = proc_root.join(pid.to_string()).join("stat");
    let bytes = read_proc_file(&path, pid)?;
    parse_stat(&bytes).map_err(|reason| ProcInfoError::Parse { path, reason })
}

/// The start time of `pid` from `/proc/PID/stat`, in nanoseconds since boot
/// (`CLOCK_BOOTTIME`), with tick (10 ms) precision.
pub fn start_time_from_proc(proc_root: &Path, pid: u32) -> Result<u64, ProcInfoError> {
    Ok(start_ticks_from_proc(proc_root, pid)?.saturating_mul(NS_PER_TICK))
}

/// The start time of `pid` from `/proc/PID/stat` (field 22), in clock ticks
/// after boot: what tells a process from a later one with the same pid.
pub fn start_ticks_from_proc(proc_root: &Path, pid: u32) -> Result<u64, ProcInfoError> {
    Ok(read_stat(proc_root, pid)?.start_ticks)
}

/// The stable id of a process, unique across pid reuse and across boots:
/// 32 lowercase hex digits, the FNV-1a 128-bit hash of
/// `b"weft.entity.v1\0" ‖ boot_id ‖ b"\0" ‖ pid (u32 LE) ‖ ticks (u64 LE)`,
/// where `boot_id` is the text of `/proc/sys/kernel/random/boot_id` (trimmed)
/// and `ticks = start_time_ns / 10_000_000`, so that kernel (ns) and `/proc`
/// (tick) start times give the same id. FNV-1a is fixed by its
/// specification, so ids stay the same across weft versions and hosts; it is
/// not a cryptographic hash and the id is not a secret.
pub fn entity_id(boot_id: &str, pid: u32, start_time_ns: u64) -> String {
    let ticks = start_time_ns / NS_PER_TICK;
    let h = fnv1a_128(&[
        b"weft.entity.v1\0",
        boot_id.as_bytes(),
        b"\0",
        &pid.to_le_bytes(),
        &ticks.to_le_bytes(),
    ]);
    format!("{h:032x}")
}

/// FNV-1a, 128-bit, over the concatenation of `parts`.
fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

/// The process name from a kernel `comm`: the bytes before the first NUL,
/// as UTF-8 with invalid sequences replaced.
pub fn comm_name(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// Pids of every descendant of `pid` (children, their children, ...), not
/// including `pid`, in ascending order, from `/proc/*/stat`. Processes that
/// exit during the walk are left out.
pub fn descendants(proc_root: &Path, pid: u32) -> Result<Vec<u32>, ProcInfoError> {
    let entries = fs::read_dir(proc_root).map_err(|source| ProcInfoError::ListProcesses {
        path: proc_root.to_owned(),
        source,
    })?;
    let mut pairs = Vec::new();
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = read_stat(proc_root, child) {
            pairs.push((child, stat.ppid));
        }
    }
    Ok(descendants_of(pid, pairs))
}

/// [`descendants`] over `(pid, ppid)` pairs (sans-IO).
pub fn descendants_of(pid: u32, pairs: impl IntoIterator<Item = (u32, u32)>) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (child, parent) in pairs {
        if child != parent {
            children.entry(parent).or_default().push(child);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![pid];
    let mut visited = std::collections::HashSet::from([pid]);
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if visited.insert(c) {
                out.push(c);
                queue.push(c);
            }
        }
    }
    out.sort_unstable();
    out
}

/// What the cache did, for statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProcCacheStats {
    pub hits: u64,
    /// Lookups that built a new entry (first sight, or changed kernel facts).
    pub misses: u64,
    /// Entries dropped because the cache was full.
    pub evicted: u64,
    /// Entries dropped by [`ProcCache::forget`].
    pub forgotten: u64,
    /// New entries whose executable could not be read (process gone, or no
    /// permission); they keep `executable: None`.
    pub executable_unknown: u64,
    /// New entries whose pid in `/proc` had another start time than the
    /// kernel's: the pid was reused, or the clocks differ (see the module
    /// documentation). Their executable is left unknown.
    pub identity_mismatch: u64,
}

type Key = (u32, u64); // (pid, start time in ticks)

#[derive(Debug)]
struct Entry {
    info: Arc<ProcessInfo>,
    seq: u64,
}

/// Process information per (pid, start time), bounded: beyond its capacity the
/// oldest entry is evicted. Call [`ProcCache::forget`] when a process exits
/// or execs.
#[derive(Debug)]
pub struct ProcCache {
    proc_root: PathBuf,
    boot_id: String,
    capacity: usize,
    entries: BTreeMap<Key, Entry>,
    /// Insertion order; entries whose `seq` no longer matches are stale.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
    stats: ProcCacheStats,
}

impl ProcCache {
    /// A cache of [`DEFAULT_CAPACITY`] processes reading `proc_root`
    /// (normally `/proc`); reads the boot id now.
    pub fn new(proc_root: PathBuf) -> Result<Self, ProcInfoError> {
        Self::with_capacity(proc_root, DEFAULT_CAPACITY)
    }

    /// As [`ProcCache::new`], keeping at most `capacity` (at least 1) processes.
    pub fn with_capacity(proc_root: PathBuf, capacity: usize) -> Result<Self, ProcInfoError> {
        let path = proc_root.join("sys/kernel/random/boot_id");
        let text = fs::read_to_string(&path).map_err(|source| ProcInfoError::BootId {
            path: path.clone(),
            source,
        })?;
        let boot_id = text.trim();
        let uuid_like =
            boot_id.len() == 36 && boot_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !uuid_like {
            return Err(ProcInfoError::BadBootId {
                path,
                found: boot_id.to_owned(),
            });
        }
        Ok(ProcCache {
            boot_id: boot_id.to_owned(),
            proc_root,
            capacity: capacity.max(1),
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            stats: ProcCacheStats::default(),
        })
    }

    /// A cache that reads nothing: for records of another host or time
    /// (a replayed recording), whose pids are not this `/proc`'s processes.
    /// Executables stay unknown; entity ids use the recording's boot id.
    pub fn detached(boot_id: String) -> Self {
        ProcCache {
            boot_id,
            proc_root: PathBuf::new(),
            capacity: DEFAULT_CAPACITY,
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            stats: ProcCacheStats::default(),
        }
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> ProcCacheStats {
        self.stats
    }

    /// The process behind an event. The kernel's facts are used as given;
    /// the executable comes from `/proc/PID/exe` the first time the process
    /// is seen (or when its kernel facts change, e.g. `comm` after an exec),
    /// and stays `None`, cached, when it cannot be read.
    pub fn get(&mut self, k: KernelProc) -> Arc<ProcessInfo> {
        let key = (k.pid, k.start_time_ns / NS_PER_TICK);
        if let Some(e) = self.entries.get(&key) {
            let i = &e.info;
            // Compared without building the name: this runs for every
            // library call, and the name rarely changes.
            let comm = &k.comm[..k.comm.iter().position(|&b| b == 0).unwrap_or(k.comm.len())];
            let same_name = i.name.as_bytes() == comm
                || (std::str::from_utf8(comm).is_err() && i.name == comm_name(&k.comm));
            if i.ppid == k.ppid
                && i.uid == k.uid
                && i.gid == k.gid
                && i.cgroup_id == k.cgroup_id
                && same_name
            {
                self.stats.hits += 1;
                return Arc::clone(i);
            }
        }
        self.stats.misses += 1;
        let name = comm_name(&k.comm);
        let executable = self.read_executable(k.pid, key.1);
        if executable.is_none() {
            self.stats.executable_unknown += 1;
        }
        let info = Arc::new(ProcessInfo {
            pid: k.pid,
            ppid: k.ppid,
            name,
            executable,
            uid: k.uid,
            gid: k.gid,
            cgroup_id: k.cgroup_id,
            start_time_ns: k.start_time_ns,
            entity_id: entity_id(&self.boot_id, k.pid, k.start_time_ns),
        });
        self.insert(key, Arc::clone(&info));
        info
    }

    /// Drop everything cached for `pid` (it exited or exec'd).
    pub fn forget(&mut self, pid: u32) {
        let keys: Vec<Key> = self
            .entries
            .range((pid, 0)..=(pid, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.entries.remove(&k);
            self.stats.forgotten += 1;
        }
    }

    fn insert(&mut self, key: Key, info: Arc<ProcessInfo>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(key, Entry { info, seq });
        self.order.push_back((key, seq));
        while self.entries.len() > self.capacity {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|e| e.seq == old_seq) {
                self.entries.remove(&old);
                self.stats.evicted += 1;
            }
        }
        // Forgotten and rebuilt entries leave stale order records; keep the
        // queue within a constant factor of the cache.
        if self.order.len() > 2 * self.capacity + 1024 {
            let entries = &self.entries;
            self.order
                .retain(|(k, s)| entries.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    /// `readlink /proc/PID/exe`, if `pid` is still the process that started at
    /// `start_ticks` after the read (so a reused pid is never attributed).
    fn read_executable(&mut self, pid: u32, start_ticks: u64) -> Option<String> {
        if self.proc_root.as_os_str().is_empty() {
            return None;
        }
        let exe = fs::read_link(self.proc_root.join(pid.to_string()).join("exe")).ok()?;
        let stat = read_stat(&self.proc_root, pid).ok()?;
        if stat.start_ticks != start_ticks {
            self.stats.identity_mismatch += 1;
            return None;
        }
        let exe = exe.to_string_lossy();
        Some(exe.strip_suffix(" (deleted)").unwrap_or(&exe).to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    const BOOT_ID: &str = "0f0e0d0c-0b0a-4909-8807-060504030201";

    /// A fake /proc, removed on drop.
    struct FakeProc(PathBuf);

    impl FakeProc {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "weft-procinfo-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(p.join("sys/kernel/random")).unwrap();
            fs::write(p.join("sys/kernel/random/boot_id"), format!("{BOOT_ID}\n")).unwrap();
            FakeProc(p)
        }

        /// A process with this start time (ticks) and executable.
        fn add(&self, pid: u32, ppid: u32, start_ticks: u64, exe: &str) {
            let dir = self.0.join(pid.to_string());
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("stat"), stat_line(pid, "cat", ppid, start_ticks)).unwrap();
            let _ = fs::remove_file(dir.join("exe"));
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn stat_line(pid: u32, comm: &str, ppid: u32, start_ticks: u64) -> String {
        format!(
            "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 \
             {start_ticks} 5836800 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        )
    }

    fn kproc(pid: u32, start_ticks: u64) -> KernelProc {
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(b"cat");
        KernelProc {
            pid,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            cgroup_id: 77,
            // Kernel time has ns precision; anything within the tick agrees.
            start_time_ns: start_ticks * NS_PER_TICK + 9_999_999,
            comm,
        }
    }

    #[test]
    fn parses_stat_with_awkward_comm() {
        let s = parse_stat(stat_line(42, "we) (ird )", 7, 123_456).as_bytes()).unwrap();
        assert_eq!(s.pid, 42);
        assert_eq!(s.comm, b"we) (ird )");
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 7);
        assert_eq!(s.start_ticks, 123_456);
        assert!(parse_stat(b"").is_err());
        assert!(parse_stat(b"1 (x) S 0").is_err());
        assert!(parse_stat(b"1 )x( S 0").is_err());
        assert!(parse_stat(b"\xff\xfe (x)").is_err());
        // Non-UTF-8 comm is fine.
        let mut odd = b"5 (\xff\xfe) ".to_vec();
        odd.extend_from_slice(
            stat_line(5, "x", 1, 9)
                .split_once(") ")
                .unwrap()
                .1
                .as_bytes(),
        );
        assert_eq!(parse_stat(&odd).unwrap().start_ticks, 9);
    }

    #[test]
    fn fnv1a_128_test_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a_128(&[]), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(&[b"a"]), 0xd228cb696f1a8caf78912b704e4a8964);
        assert_eq!(fnv1a_128(&[b"foo", b"bar"]), fnv1a_128(&[b"foobar"]));
    }

    #[test]
    fn entity_id_is_deterministic_and_tick_rounded() {
        let a = entity_id(BOOT_ID, 4242, 1_234_567_890_123);
        assert_eq!(a, entity_id(BOOT_ID, 4242, 1_234_567_890_123));
        assert_eq!(a.len(), 32);
        // Same tick (10 ms) from the kernel (ns) or /proc (ticks): same id.
        assert_eq!(a, entity_id(BOOT_ID, 4242, 123_456 * NS_PER_TICK));
        assert_ne!(a, entity_id(BOOT_ID, 4243, 1_234_567_890_123));
        assert_ne!(a, entity_id(BOOT_ID, 4242, 1_234_577_890_123));
        assert_ne!(
            a,
            entity_id(
                "1f0e0d0c-0b0a-4909-8807-060504030201",
                4242,
                1_234_567_890_123
            )
        );
        // Pinned: changing the scheme changes every stored id, so it must be deliberate.
        assert_eq!(a, "eb052ac18fd3ec6d07f85451bc060385");
    }

    #[test]
    fn comm_names() {
        assert_eq!(comm_name(b"nginx\0\0\0\0\0\0\0\0\0\0\0"), "nginx");
        assert_eq!(comm_name(b"0123456789abcdef"), "0123456789abcdef");
        assert_eq!(comm_name(b"a\xffb\0junk"), "a\u{fffd}b");
        assert_eq!(comm_name(b""), "");
    }

    #[test]
    fn cache_fills_from_kernel_and_proc() {
        let fake = FakeProc::new();
        fake.add(100, 1, 5_000, "/usr/bin/cat");
        let mut cache = ProcCache::new(fake.0.clone()).unwrap();
        assert_eq!(cache.boot_id(), BOOT_ID);
        let info = cache.get(kproc(100, 5_000));
        assert_eq!(info.pid, 100);
        assert_eq!(info.name, "cat");
        assert_eq!(info.executable.as_deref(), Some("/usr/bin/cat"));
        assert_eq!((info.uid, info.gid, info.cgroup_id), (1000, 1000, 77));
        assert_eq!(info.start_time_ns, 5_000 * NS_PER_TICK + 9_999_999);
        assert_eq!(info.entity_id, entity_id(BOOT_ID, 100, 5_000 * NS_PER_TICK));
        let again = cache.get(kproc(100, 5_000));
        assert!(Arc::ptr_eq(&info, &again));
        assert_eq!(cache.stats().hits, 1);
        assert_eq!(cache.stats().misses, 1);

        // Kernel facts changed (setuid): rebuilt, kernel wins.
        let mut k = kproc(100, 5_000);
        k.uid = 0;
        let changed = cache.get(k);
        assert_eq!(changed.uid, 0);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn reused_or_vanished_pids_have_no_executable() {
        let fake = FakeProc::new();
        // /proc shows pid 200 started at another time: the pid was reused.
        fake.add(200, 1, 9_999, "/usr/bin/evil");
        let mut cache = ProcCache::new(fake.0.clone()).unwrap();
        assert_eq!(cache.get(kproc(200, 5_000)).executable, None);
        assert_eq!(cache.stats().identity_mismatch, 1);
        // Gone: None, and cached (not re-read when the pid reappears).
        let info = cache.get(kproc(300, 5_000));
        assert_eq!(info.executable, None);
        fake.add(300, 1, 5_000, "/usr/bin/cat");
        assert_eq!(cache.get(kproc(300, 5_000)).executable, None);
        assert_eq!(cache.stats().executable_unknown, 2);
        // Until forgotten.
        cache.forget(300);
        assert_eq!(cache.stats().forgotten, 1);
        assert_eq!(
            cache.get(kproc(300, 5_000)).executable.as_deref(),
            Some("/usr/bin/cat")
        );
    }

    #[test]
    fn cache_is_bounded() {
        let fake = FakeProc::new();
        let mut cache = ProcCache::with_capacity(fake.0.clone(), 3).unwrap();
        for pid in 1..=5 {
            cache.get(kproc(pid, 10));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.stats().evicted, 2);
        // The oldest went first.
        cache.get(kproc(1, 10));
        assert_eq!(cache.stats().misses, 6);
        cache.get(kproc(5, 10));
        assert_eq!(cache.stats().hits, 1);
        // Churn through forget does not grow the order queue without bound.
        for i in 0..10_000u64 {
            cache.get(kproc(7, i));
            cache.forget(7);
        }
        assert!(
            cache.order.len() <= 2 * 3 + 1024 + 1,
            "{}",
            cache.order.len()
        );
        assert!(cache.len() <= 3);
    }

    #[test]
    fn bad_boot_id_is_an_error() {
        let fake = FakeProc::new();
        fs::write(fake.0.join("sys/kernel/random/boot_id"), "nope\n").unwrap();
        let err = ProcCache::new(fake.0.clone()).unwrap_err();
        assert!(err.to_string().contains("not a boot id"), "{err}");
        let err = ProcCache::new(fake.0.join("missing")).unwrap_err();
        assert!(err.to_string().contains("boot_id"), "{err}");
    }

    #[test]
    fn this_process_from_real_proc() {
        let proc_root = Path::new("/proc");
        let pid = std::process::id();
        let k = KernelProc::from_proc(proc_root, pid).unwrap();
        assert_eq!(k.pid, pid);
        assert_eq!(
            k.start_time_ns,
            start_time_from_proc(proc_root, pid).unwrap()
        );
        assert_eq!(k.start_time_ns % NS_PER_TICK, 0);
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(uid_line.split_whitespace().nth(1) == Some(&k.uid.to_string()));
        let mut cache = ProcCache::new(proc_root.to_owned()).unwrap();
        let info = cache.get(k);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(info.executable.as_deref(), exe.to_str());
        assert_eq!(cache.stats().identity_mismatch, 0);
        assert!(
            KernelProc::from_proc(proc_root, 4_000_000)
                .unwrap_err()
                .is_process_gone()
        );
    }

    #[test]
    fn descendants_from_pairs() {
        let pairs = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (6, 1),
            (7, 7),
            (8, 9),
            (9, 8),
        ];
        assert_eq!(descendants_of(2, pairs), [3, 4, 5]);
        assert_eq!(descendants_of(1, pairs), [2, 3, 4, 5, 6]);
        assert_eq!(descendants_of(5, pairs), Vec::<u32>::new());
        // A cycle (impossible in a snapshot, possible across a racy walk) ends.
        assert_eq!(descendants_of(8, pairs), [9]);
    }

    #[test]
    fn descendants_of_a_real_process_tree() {
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(sh.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sleep: u32 = line.trim().parse().unwrap();
        let found = descendants(Path::new("/proc"), sh.id());
        let mine = descendants(Path::new("/proc"), std::process::id());
        let _ = Command::new("kill").arg(sleep.to_string()).status();
        let _ = sh.kill();
        let _ = sh.wait();
        assert_eq!(found.unwrap(), [sleep]);
        let mine = mine.unwrap();
        assert!(mine.contains(&sh.id()) && mine.contains(&sleep), "{mine:?}");
    }
}
