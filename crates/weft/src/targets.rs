//! Per-process attachment: with `--pid`, `--comm` or `--tree`, the TLS
//! uprobes go into the selected processes only.
//!
//! A uprobe.multi link made for one process (libbpf's `pid`) carries a
//! filter: the kernel installs its breakpoints only in address spaces the
//! filter accepts (`uprobe_multi_link_filter`: the link's task's mm), when
//! the link is made and whenever a file is mapped later, and the handler
//! also ignores other thread groups. Other processes' code pages keep their
//! original bytes: they pay nothing, not even the trap. The kernel-side
//! pid/comm filters stay on as a second fence.
//!
//! New processes are followed through the kernel's process records, which
//! proc.bpf.c sends in this mode for every exec, every executable mapping
//! of a selected process, and every fork whose child is selected. A process
//! seen for the first time has its maps scanned; later mappings are looked
//! up by file (device, inode) in a cache of inspected files, so a library
//! already known (every installed TLS library is, from start-up) is
//! attached without reading anything. Links of processes that exit (or
//! exec into something not selected) are released on a thread of their own,
//! since each detach waits for an RCU grace period.
//!
//! The window between a new process mapping its TLS library and its link
//! being made (a few milliseconds) is not covered: calls in it are not
//! seen. Whole-host mode (no filter) has no such window.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use weft_bpf::Sensor;
use weft_core::discovery::{self, FileId, ProbeTarget};
use weft_core::event::TlsLibrary;

use crate::stats::Stats;

/// How often processes with links are checked for having exited (the
/// safety net when an exit record was lost; exits are found this way).
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// A process that has (or was checked for) links of its own.
struct Followed {
    /// Start time (clock ticks after boot, /proc/PID/stat field 22): a pid
    /// reused by a new process is a different process.
    start: u64,
    /// TLS files attached for it.
    files: HashSet<FileId>,
}

/// The user's selection and what was attached for it.
pub struct Targets {
    proc_root: PathBuf,
    pids: HashSet<u32>,
    tree: Vec<u32>,
    comms: Vec<String>,
    /// The TLS libraries found so far.
    known: HashMap<FileId, ProbeTarget>,
    /// The shared TLS libraries installed on the system (from start-up).
    installed: Vec<ProbeTarget>,
    followed: HashMap<u32, Followed>,
    /// Whether the syscall hooks are attached.
    hooks_on: bool,
    records: Receiver<(u32, u64, u64)>,
    /// Files not known to be TLS libraries go to the discovery thread,
    /// which inspects each file once; what it finds comes back through
    /// [`Targets::found`].
    inspect: Sender<(u32, u64, u64)>,
    last_sweep: Instant,
}

/// `/proc/PID/stat` field 22 (start time), `None` when the process is gone.
fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    weft_core::procinfo::start_ticks_from_proc(proc_root, pid).ok()
}

fn comm_of(proc_root: &Path, pid: u32) -> Option<String> {
    let c = std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).ok()?;
    Some(c.trim_end_matches('\n').to_string())
}

impl Targets {
    /// The selection (`None` when the user selected nothing: whole-host
    /// mode). `installed` are the TLS files found at start-up; `records`
    /// carries the kernel's exec, mmap and fork records (pid, device,
    /// inode); `inspect` goes to the discovery thread.
    pub fn new(
        pids: &[u32],
        tree: &[u32],
        comms: &[String],
        installed: Vec<ProbeTarget>,
        records: Receiver<(u32, u64, u64)>,
        inspect: Sender<(u32, u64, u64)>,
    ) -> Option<Targets> {
        if pids.is_empty() && tree.is_empty() && comms.is_empty() {
            return None;
        }
        let known = installed.iter().map(|t| (t.file_id, t.clone())).collect();
        // Shared libraries only: an executable embedding TLS is mapped by
        // an exec, which is reported (and its process rescanned).
        let mut installed: Vec<ProbeTarget> = installed
            .into_iter()
            .filter(|t| t.display_path.contains(".so"))
            .collect();
        // A process born after weft races its links (each library's take
        // milliseconds): the most used library first.
        installed.sort_by_key(|t| match t.library {
            TlsLibrary::OpenSsl => 0,
            TlsLibrary::GnuTls => 1,
            TlsLibrary::Nss => 2,
            _ => 3,
        });
        Some(Targets {
            proc_root: PathBuf::from("/proc"),
            pids: pids.iter().copied().collect(),
            tree: tree.to_vec(),
            comms: comms.to_vec(),
            known,
            installed,
            followed: HashMap::new(),
            hooks_on: false,
            records,
            inspect,
            last_sweep: Instant::now(),
        })
    }

    /// Is `pid` one the user asked for? The same rule as the kernel's
    /// filter: the pid (or a `--tree` descendant, which the kernel adds to
    /// its map), or the process name.
    fn selected(&self, sensor: &Sensor, pid: u32) -> bool {
        if self.pids.contains(&pid) || sensor.pid_in_filter(pid) {
            return true;
        }
        !self.comms.is_empty()
            && comm_of(&self.proc_root, pid).is_some_and(|c| self.comms.contains(&c))
    }

    /// Attach for every selected process already running. Returns how many
    /// processes were scanned.
    pub fn start(&mut self, sensor: &mut Sensor, stats: &Stats) -> usize {
        let mut initial: Vec<u32> = self.pids.iter().chain(&self.tree).copied().collect();
        if !self.comms.is_empty() {
            match discovery::list_pids(&self.proc_root) {
                Ok(all) => initial.extend(all.into_iter().filter(|p| {
                    comm_of(&self.proc_root, *p).is_some_and(|c| self.comms.contains(&c))
                })),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        initial.sort_unstable();
        initial.dedup();
        for pid in &initial {
            self.follow(sensor, *pid, stats);
        }
        self.syscall_hooks(sensor, stats);
        initial.len()
    }

    /// Handle the kernel's process records that arrived, and release the
    /// links of processes that are gone. Called by the main loop after
    /// each ring-buffer poll.
    pub fn step(&mut self, sensor: &mut Sensor, stats: &Stats) {
        self.step_records(sensor, stats);
        self.syscall_hooks(sensor, stats);
    }

    /// The syscall hooks are on while a selected process is followed. A
    /// TLS call is tied to its socket without them (the socket-I/O
    /// tracepoints, [`Sensor::sock_io_hooks_on`]): they are attached after
    /// a new process' uprobes, for what only they see (plaintext and first
    /// bytes outside TLS calls, DNS, accept owners, mappings), so a
    /// short-lived process may have done some of that before they are in.
    /// Without the socket-I/O tracepoints (kernels before 6.3) they are
    /// always on with `--comm` or `--tree`: a selected process can be born
    /// at any time, and attaching the hooks on its exec took longer than a
    /// short-lived curl lives (1 of 15 captured against 12 of 15 with the
    /// hooks already on).
    fn syscall_hooks(&mut self, sensor: &mut Sensor, stats: &Stats) {
        let want = hooks_wanted(
            !self.followed.is_empty(),
            !self.comms.is_empty() || !self.tree.is_empty(),
            sensor.sock_io_hooks_on(),
        );
        if want != self.hooks_on {
            match sensor.syscall_hooks(want) {
                Ok(()) => self.hooks_on = want,
                Err(e) => {
                    stats.attach_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{e}");
                }
            }
        }
    }

    fn step_records(&mut self, sensor: &mut Sensor, stats: &Stats) {
        while let Ok((pid, kdev, ino)) = self.records.try_recv() {
            self.on_record(sensor, pid, (kdev, ino), stats);
        }
        if self.last_sweep.elapsed() >= SWEEP_EVERY {
            self.last_sweep = Instant::now();
            let gone: Vec<u32> = self
                .followed
                .iter()
                .filter(|(pid, f)| start_time(&self.proc_root, **pid) != Some(f.start))
                .map(|(pid, _)| *pid)
                .collect();
            for pid in gone {
                self.release(sensor, pid);
            }
        }
    }

    fn on_record(&mut self, sensor: &mut Sensor, pid: u32, kfile: (u64, u64), stats: &Stats) {
        let file = FileId::from_kernel_dev(kfile.0, kfile.1);
        tracing::trace!(pid, %file, "process record");
        if !self.selected(sensor, pid) {
            // An exec into something not selected: its old links go.
            self.release(sensor, pid);
            return;
        }
        let same_process = match (self.followed.get(&pid), start_time(&self.proc_root, pid)) {
            (Some(f), Some(start)) => f.start == start,
            _ => false,
        };
        if !same_process {
            // First record of this process (an exec or a fork): all it maps.
            self.release(sensor, pid);
            self.follow(sensor, pid, stats);
        } else if let Some(t) = self.known.get(&file) {
            let t = t.clone();
            self.attach(sensor, pid, &t, stats);
        }
        if !self.known.contains_key(&file) {
            self.send_inspect(pid, kfile, stats);
        }
    }

    fn send_inspect(&mut self, pid: u32, kfile: (u64, u64), stats: &Stats) {
        match self.inspect.try_send((pid, kfile.0, kfile.1)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                stats.discovery_missed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The discovery thread found a TLS library in process `t.pid`.
    pub fn found(&mut self, sensor: &mut Sensor, t: ProbeTarget, stats: &Stats) {
        let id = t.file_id;
        self.known.insert(id, t.clone());
        // Every followed process that maps it (usually just `t.pid`; others
        // mapped it while it was being inspected).
        let pids: Vec<u32> = self.followed.keys().copied().collect();
        for pid in pids {
            if Some(pid) == t.pid || self.mapped_files(pid).contains(&id) {
                self.attach(sensor, pid, &t, stats);
            }
        }
    }

    fn mapped_files(&self, pid: u32) -> HashSet<FileId> {
        let Ok(maps) = std::fs::read(self.proc_root.join(pid.to_string()).join("maps")) else {
            return HashSet::new();
        };
        discovery::parse_maps(&String::from_utf8_lossy(&maps))
            .into_iter()
            .map(|m| m.file_id)
            .collect()
    }

    /// Attach what `pid` maps that is a known TLS library, then every
    /// installed TLS library it does not map (yet): a link made before the
    /// process maps the file puts its breakpoints in at mmap time, so a
    /// followed process that loads a library later, or execs a program that
    /// does, is seen from its first call. Files not inspected yet go to the
    /// discovery thread.
    fn follow(&mut self, sensor: &mut Sensor, pid: u32, stats: &Stats) {
        let Some(start) = start_time(&self.proc_root, pid) else {
            return;
        };
        self.followed.entry(pid).or_insert_with(|| Followed {
            start,
            files: HashSet::new(),
        });
        sensor.set_selected_live(true);
        if !sensor.sock_io_hooks_on() {
            // Before the uprobes: the first TLS call needs them for its socket.
            self.syscall_hooks(sensor, stats);
        }
        let mapped = self.mapped_files(pid);
        let found: Vec<ProbeTarget> = mapped
            .iter()
            .filter_map(|id| self.known.get(id).cloned())
            .collect();
        for t in found.iter().chain(self.installed.clone().iter()) {
            self.attach(sensor, pid, t, stats);
        }
        if let Some(id) = mapped.iter().find(|id| !self.known.contains_key(id)) {
            // One record is enough: the thread scans the whole process.
            self.send_inspect(pid, (crate::kernel_dev(id), id.ino), stats);
        }
        // After the uprobes (a no-op when they went on above).
        self.syscall_hooks(sensor, stats);
    }

    fn attach(&mut self, sensor: &mut Sensor, pid: u32, t: &ProbeTarget, stats: &Stats) {
        let Some(f) = self.followed.get_mut(&pid) else {
            return;
        };
        if !f.files.insert(t.file_id) {
            return;
        }
        // A path found through another process' /proc/PID/root lives only
        // as long as that process: go through this one's.
        let mut t = t.clone();
        if t.path.starts_with(&self.proc_root) {
            t.path = self
                .proc_root
                .join(pid.to_string())
                .join("root")
                .join(t.display_path.trim_start_matches('/'));
        }
        t.pid = Some(pid);
        tracing::debug!(pid, file = %t.display_path, "attaching for one process");
        crate::attach_for(sensor, &t, Some(pid), stats);
    }

    /// Drop `pid`'s links (off this thread: each detach waits for an RCU
    /// grace period).
    fn release(&mut self, sensor: &mut Sensor, pid: u32) {
        if self.followed.remove(&pid).is_some() {
            weft_bpf::sensor::release_links(sensor.detach_pid(pid));
            if self.followed.is_empty() {
                // The syscall programs idle until a selected process starts
                // (the kernel sets the flag at its exec or fork; a start
                // this side has not seen yet is set again when it is).
                sensor.set_selected_live(false);
            }
        }
    }
}

/// Whether the syscall hooks should be attached: while a selected process
/// is `followed`, and always for a selection that new processes can join
/// (`open_ended`: `--comm`, `--tree`) when TLS calls need them for their
/// sockets (no socket-I/O tracepoints).
fn hooks_wanted(followed: bool, open_ended: bool, sock_io: bool) -> bool {
    followed || (open_ended && !sock_io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_hooks_only_while_followed_when_sockets_come_from_socket_io() {
        // --comm / --tree with the socket-I/O tracepoints: off while idle.
        assert!(!hooks_wanted(false, true, true));
        assert!(hooks_wanted(true, true, true));
        // Without them a new process' first TLS call needs them already on.
        assert!(hooks_wanted(false, true, false));
        // --pid: only while the process lives, either way.
        assert!(!hooks_wanted(false, false, false));
        assert!(!hooks_wanted(false, false, true));
        assert!(hooks_wanted(true, false, true));
    }

    #[test]
    fn start_time_of_self_and_of_a_missing_process() {
        let me = std::process::id();
        let t = start_time(Path::new("/proc"), me).expect("own stat");
        assert!(t > 0);
        assert_eq!(start_time(Path::new("/proc"), me), Some(t));
        assert_eq!(start_time(Path::new("/nonexistent"), me), None);
    }

    #[test]
    fn start_time_with_parentheses_in_the_name() {
        let dir = std::env::temp_dir().join(format!("weft-targets-{}", std::process::id()));
        let p = dir.join("42");
        std::fs::create_dir_all(&p).expect("dir");
        // Field 22 is 123456; the name holds ") 9 9 (".
        let fields: Vec<String> = (3..=52)
            .map(|i| {
                if i == 22 {
                    "123456".into()
                } else {
                    i.to_string()
                }
            })
            .collect();
        std::fs::write(
            p.join("stat"),
            format!("42 (a) 9 9 (b) {}\n", fields.join(" ")),
        )
        .expect("write");
        assert_eq!(start_time(&dir, 42), Some(123_456));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
