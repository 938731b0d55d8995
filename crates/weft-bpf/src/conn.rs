//! Connection events (bpf/conn.bpf.c): the sock_ops program on the cgroup v2
//! root, its accept and state-change companions, and the start-up iterator
//! that reports connections older than weft.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libbpf_rs::{Iter, Link};

use crate::abi::{self, ConnRec, Record};
use crate::sensor::{BpfError, Sensor};

/// The links that produce connection events; dropping them stops them.
pub struct ConnLinks {
    _links: Vec<Link>,
    /// Where sock_ops was attached.
    pub cgroup: PathBuf,
}

/// The cgroup v2 mount point, from a `/proc/mounts` text: the first
/// `cgroup2` file system (`/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones).
pub fn cgroup2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_src, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount(dir)))
    })
}

/// `/proc/mounts` writes space, tab, newline and backslash as octal escapes.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Sensor {
    /// Attach the connection programs: sock_ops on the cgroup v2 root
    /// (found in `/proc/mounts`) and the SYN_SENT/close state tracepoint
    /// (the accept exits come with [`Sensor::syscall_hooks`]). On error
    /// nothing stays attached; the caller carries on without connection
    /// events.
    pub fn attach_connections(&self) -> Result<ConnLinks, BpfError> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let cgroup = cgroup2_mount(&mounts).ok_or_else(|| {
            BpfError::Config(
                "no cgroup v2 file system in /proc/mounts (sock_ops needs one; mount it with \
                 `mount -t cgroup2 none /sys/fs/cgroup/unified`)"
                    .into(),
            )
        })?;
        let dir = std::fs::File::open(&cgroup).map_err(|e| {
            BpfError::Config(format!(
                "cannot open cgroup v2 root {}: {e}",
                cgroup.display()
            ))
        })?;
        let p = &self.skel().progs;
        let mut links = Vec::new();
        // Owners first: by the time sock_ops reports a connection, its
        // connect is watched. The accept exits are attached with the syscall hooks
        // (`Sensor::syscall_hooks`): with a process filter, only while a
        // selected process lives.
        links.push(
            p.conn_state_change
                .attach()
                .map_err(|source| BpfError::Libbpf {
                    what: "attach tp_btf/inet_sock_set_state (connections)".into(),
                    source,
                })?,
        );
        links.push(
            p.conn_sockops
                .attach_cgroup(dir.as_raw_fd())
                .map_err(|source| BpfError::Libbpf {
                    what: format!("attach sock_ops to the cgroup v2 root {}", cgroup.display()),
                    source,
                })?,
        );
        Ok(ConnLinks {
            _links: links,
            cgroup,
        })
    }

    /// Run the connection iterator (after [`Sensor::attach_connections`])
    /// once in every network namespace a process uses (a TCP iterator walks
    /// the namespace of the task that opens it): the TCP connections that
    /// exist now, as seeded start records carrying their socket inode; the
    /// kernel follows them until they close. A namespace that cannot be
    /// entered is skipped (debug log).
    pub fn seed_connections(&self) -> Result<Vec<ConnRec>, BpfError> {
        self.conn_iter_everywhere(&self.skel().progs.conn_seed, "connection iterator")
    }

    /// The counts so far of every open connection the kernel follows
    /// (`conn_progress`, run once in every network namespace in use):
    /// update records, for `--flow-update`. Runs on the calling thread,
    /// which enters each namespace and comes back.
    pub fn connection_progress(&self) -> Result<Vec<ConnRec>, BpfError> {
        self.conn_iter_everywhere(
            &self.skel().progs.conn_progress,
            "connection update iterator",
        )
    }

    fn conn_iter_everywhere(
        &self,
        prog: &libbpf_rs::ProgramMut<'_>,
        name: &str,
    ) -> Result<Vec<ConnRec>, BpfError> {
        let lb = |what: String| move |source| BpfError::Libbpf { what, source };
        let link = prog.attach().map_err(lb(format!("attach the {name}")))?;
        let run = || -> Result<Vec<u8>, BpfError> {
            let mut it = Iter::new(&link).map_err(lb(format!("start the {name}")))?;
            let mut buf = Vec::new();
            it.read_to_end(&mut buf)
                .map_err(|e| lb(format!("run the {name}"))(libbpf_rs::Error::from(e)))?;
            Ok(buf)
        };
        // Our own namespace first, then the others.
        let mut out = parse_seeded(&run()?);
        let own = std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| m.ino())
            .ok();
        let home = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| {
            BpfError::Config(format!("cannot open this thread's network namespace: {e}"))
        })?;
        for (ino, path) in net_namespaces(Path::new("/proc")) {
            if Some(ino) == own {
                continue;
            }
            let Ok(ns) = std::fs::File::open(&path) else {
                continue; // the process exited
            };
            if let Err(e) = enter_netns(&ns) {
                tracing::debug!(path = %path.display(), "cannot enter network namespace: {e}");
                continue;
            }
            let got = run();
            // Back home before anything else: this thread goes on to
            // open sockets (metrics endpoint) in weft's own namespace.
            enter_netns(&home).map_err(|e| {
                BpfError::Config(format!(
                    "cannot return to weft's network namespace after running the {name}: {e}"
                ))
            })?;
            match got {
                Ok(buf) => out.extend(parse_seeded(&buf)),
                Err(e) => tracing::debug!(path = %path.display(), "{e}"),
            }
        }
        Ok(out)
    }
}

/// One `/proc/<pid>/ns/net` path per network namespace in use, by inode.
fn net_namespaces(proc_root: &Path) -> Vec<(u64, PathBuf)> {
    let mut seen = std::collections::BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(proc_root) {
        for e in rd.flatten() {
            if e.file_name()
                .to_str()
                .is_none_or(|n| n.parse::<u32>().is_err())
            {
                continue;
            }
            let path = e.path().join("ns/net");
            if let Ok(m) = std::fs::metadata(&path) {
                seen.entry(m.ino()).or_insert(path);
            }
        }
    }
    seen.into_iter().collect()
}

/// Move the calling thread into the network namespace `ns` (an open
/// `/proc/PID/ns/net`). Only this thread moves.
fn enter_netns(ns: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: setns takes a file descriptor we keep open for the call and a
    // constant flag; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The iterator's output: whole `weft_conn_rec`s back to back.
fn parse_seeded(buf: &[u8]) -> Vec<ConnRec> {
    buf.chunks_exact(abi::CONN_SIZE)
        .filter_map(|b| match abi::parse(b) {
            Ok(Record::Conn(c)) => Some(c),
            _ => None,
        })
        .collect()
}

/// Socket inode -> pids that hold it open, from `/proc/<pid>/fd` links
/// (`socket:[INODE]`), for the inodes in `wanted`. The smallest pid is
/// first (a socket shared across fork is owned by all of them).
pub fn socket_owners(proc_root: &Path, wanted: &[u64]) -> std::collections::HashMap<u64, Vec<u32>> {
    let mut out: std::collections::HashMap<u64, Vec<u32>> = std::collections::HashMap::new();
    if wanted.is_empty() {
        return out;
    }
    let want: std::collections::HashSet<u64> = wanted.iter().copied().collect();
    let Ok(procs) = std::fs::read_dir(proc_root) else {
        return out;
    };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(ino) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if want.contains(&ino) {
                let v = out.entry(ino).or_default();
                if !v.contains(&pid) {
                    v.push(pid);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_is_found_in_hybrid_and_unified_layouts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(cgroup2_mount("proc /proc proc rw 0 0\n"), None);
        assert_eq!(cgroup2_mount(""), None);
        let spaced = "none /mnt/my\\040cg cgroup2 rw 0 0\n";
        assert_eq!(cgroup2_mount(spaced), Some(PathBuf::from("/mnt/my cg")));
        // A truncated escape stays as it is.
        assert_eq!(unescape_mount("/a\\04"), "/a\\04");
    }

    #[test]
    fn seeded_output_is_split_into_records() {
        let mut rec = vec![0u8; abi::CONN_SIZE];
        rec[..4].copy_from_slice(&abi::REC_CONN_START.to_ne_bytes());
        let mut buf = rec.clone();
        buf.extend_from_slice(&rec);
        buf.extend_from_slice(&rec[..10]); // a torn tail is ignored
        assert_eq!(parse_seeded(&buf).len(), 2);
    }

    #[test]
    fn socket_owners_reads_fd_links() {
        let dir = std::env::temp_dir().join(format!("weft-conn-owners-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fd = dir.join("123").join("fd");
        std::fs::create_dir_all(&fd).expect("mkdir");
        std::os::unix::fs::symlink("socket:[555]", fd.join("3")).expect("symlink");
        std::os::unix::fs::symlink("/dev/null", fd.join("4")).expect("symlink");
        std::os::unix::fs::symlink("socket:[556]", fd.join("5")).expect("symlink");
        let got = socket_owners(&dir, &[555]);
        assert_eq!(got.get(&555), Some(&vec![123]));
        assert!(!got.contains_key(&556));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
