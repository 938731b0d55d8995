//! Connection records (bpf/conn.bpf.c) -> connection events, and the
//! wiring of connection tracking at start (`--no-connections` turns it off).

use std::sync::Arc;

use weft_bpf::Sensor;
use weft_bpf::abi::{self, ConnRec, OwnerRec};
use weft_bpf::conn::ConnLinks;
use weft_core::event::{Connection, ConnectionPhase, Event, ProcessInfo, Role};
use weft_core::procinfo::KernelProc;

/// Owners of seeded connections kept for their end events at most (the
/// kernel follows as many connections: `conns` in bpf/conn.bpf.c).
pub const SEEDED_OWNERS_MAX: usize = 65_536;

/// The owner a connection record carries, as the process cache takes it.
pub fn kernel_proc(o: &OwnerRec) -> KernelProc {
    KernelProc {
        pid: o.pid,
        ppid: o.ppid,
        uid: o.uid,
        gid: o.gid,
        cgroup_id: o.cgroup_id,
        start_time_ns: o.proc_start_ns,
        comm: o.comm,
    }
}

/// The event for one connection record; `unix_ns` turns the kernel's
/// monotonic times into wall-clock ones.
pub fn connection_event(
    c: &ConnRec,
    process: Option<Arc<ProcessInfo>>,
    unix_ns: impl Fn(u64) -> u64,
) -> Event {
    let s = &c.sock;
    let role = match s.role {
        abi::ROLE_CLIENT => Role::Client,
        abi::ROLE_SERVER => Role::Server,
        _ => Role::Unknown,
    };
    let phase = match c.kind {
        abi::REC_CONN_END => ConnectionPhase::End,
        abi::REC_CONN_UPDATE => ConnectionPhase::Update,
        _ => ConnectionPhase::Start,
    };
    // Ends and updates carry the counts (updates: so far).
    let end = phase != ConnectionPhase::Start;
    Event::Connection(Connection {
        timestamp_ns: unix_ns(c.ts_ns),
        phase,
        seeded: c.flags & abi::CONN_SEEDED != 0,
        process,
        flow: crate::reader::flow_of(s, role),
        netns_cookie: c.netns_cookie,
        bytes_sent: end.then_some(c.bytes_sent),
        bytes_received: end.then_some(c.bytes_received),
        rtt_us: end.then_some(c.srtt_us),
        duration_ns: (end && c.established_ns != 0)
            .then(|| c.ts_ns.saturating_sub(c.established_ns)),
        destination_domain: None,
        lost_before: crate::reader::lost_calls_of(&c.lost),
        h2_last_stream: if c.kind == abi::REC_CONN_END {
            c.h2_last_stream
        } else {
            0
        },
    })
}

/// Update records of long connections (`--flow-update`): every interval
/// the kernel's open connections are read (`Sensor::connection_progress`);
/// one established at least an interval ago (or before weft) whose counts
/// changed since its last update is reported. Remembers only connections
/// the kernel still follows (rebuilt every round).
pub struct ConnUpdater {
    every: std::time::Duration,
    last: std::time::Instant,
    /// Cookie -> (sent, received) at its last update.
    reported: std::collections::HashMap<u64, (u64, u64)>,
}

impl ConnUpdater {
    /// `None` when updates are off (`secs == 0`).
    pub fn new(secs: u64) -> Option<ConnUpdater> {
        (secs > 0).then(|| ConnUpdater {
            every: std::time::Duration::from_secs(secs),
            last: std::time::Instant::now(),
            reported: std::collections::HashMap::new(),
        })
    }

    /// The update records due now (empty between intervals).
    pub fn poll(&mut self, sensor: &Sensor) -> Vec<ConnRec> {
        if self.last.elapsed() < self.every {
            return Vec::new();
        }
        self.last = std::time::Instant::now();
        let recs = match sensor.connection_progress() {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("connection updates: {e}");
                return Vec::new();
            }
        };
        let read = recs.len();
        let out = self.select(recs, weft_bpf::packets::monotonic_ns());
        tracing::debug!(
            read,
            reported = out.len(),
            elapsed_us = self.last.elapsed().as_micros() as u64,
            "connection updates"
        );
        out
    }

    fn select(&mut self, recs: Vec<ConnRec>, now_ns: u64) -> Vec<ConnRec> {
        let every = u64::try_from(self.every.as_nanos()).unwrap_or(u64::MAX);
        let mut reported = std::collections::HashMap::with_capacity(recs.len());
        let mut out = Vec::new();
        for r in recs {
            if r.kind != abi::REC_CONN_UPDATE {
                continue;
            }
            let counts = (r.bytes_sent, r.bytes_received);
            let before = self.reported.get(&r.sock.cookie).copied();
            let old_enough =
                r.established_ns == 0 || now_ns.saturating_sub(r.established_ns) >= every;
            if old_enough && before.unwrap_or((0, 0)) != counts {
                reported.insert(r.sock.cookie, counts);
                out.push(r);
            } else if let Some(b) = before {
                reported.insert(r.sock.cookie, b);
            }
        }
        self.reported = reported;
        out
    }
}

/// Connection tracking as started: its links (keep them alive) and the
/// connections that existed at start with the pids holding their sockets.
pub struct Started {
    pub links: ConnLinks,
    pub seeded: Vec<ConnRec>,
    /// Socket inode -> the process holding it (the smallest pid).
    pub owners: std::collections::HashMap<u64, KernelProc>,
}

/// Attach the connection programs and seed the connections that exist now.
/// A failure to attach is a warning: weft captures TLS without connection
/// events. With a process filter, connections older than weft are not
/// seeded (their owners are not known to the kernel filter).
pub fn start(sensor: &Sensor, targeted: bool) -> Option<Started> {
    let links = match sensor.attach_connections() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                "no connection events: {e} (TLS capture goes on; --no-connections silences this)"
            );
            return None;
        }
    };
    tracing::debug!(cgroup = %links.cgroup.display(), "sock_ops attached");
    let seeded = if targeted {
        Vec::new()
    } else {
        match sensor.seed_connections() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("connections older than weft are not reported: {e}");
                Vec::new()
            }
        }
    };
    let inodes: Vec<u64> = seeded.iter().map(|c| c.ino).filter(|i| *i != 0).collect();
    // Read the owners now: a process may exit before the reader starts.
    let proc_root = std::path::Path::new("/proc");
    let owners: std::collections::HashMap<u64, KernelProc> =
        weft_bpf::conn::socket_owners(proc_root, &inodes)
            .into_iter()
            .filter_map(|(ino, pids)| {
                let k = pids
                    .iter()
                    .find_map(|pid| KernelProc::from_proc(proc_root, *pid).ok())?;
                Some((ino, k))
            })
            .collect();
    tracing::debug!(
        seeded = seeded.len(),
        with_owner = owners.len(),
        "connections older than weft"
    );
    Some(Started {
        links,
        seeded,
        owners,
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn rec(kind: u32, role: u8) -> ConnRec {
        ConnRec {
            kind,
            flags: 0,
            ts_ns: 5_000,
            established_ns: 1_000,
            netns_cookie: 1,
            bytes_sent: 10,
            bytes_received: 20,
            ino: 0,
            srtt_us: 30,
            h2_last_stream: 0,
            owner: OwnerRec {
                cgroup_id: 0,
                proc_start_ns: 0,
                pid: 0,
                ppid: 0,
                uid: 0,
                gid: 0,
                comm: [0; 16],
            },
            sock: abi::SockRec {
                cookie: 9,
                local: IpAddr::from([10, 0, 0, 1]),
                remote: IpAddr::from([10, 0, 0, 2]),
                family: 2,
                local_port: 40000,
                remote_port: 80,
                role,
                fd: 0,
            },
            lost: Default::default(),
        }
    }

    #[test]
    fn end_record_has_bytes_duration_and_rtt() {
        let Event::Connection(c) =
            connection_event(&rec(abi::REC_CONN_END, abi::ROLE_CLIENT), None, |n| n)
        else {
            panic!()
        };
        assert_eq!(c.phase, ConnectionPhase::End);
        assert_eq!(c.duration_ns, Some(4_000));
        assert_eq!(c.source_destination_bytes(), (Some(10), Some(20)));
        assert_eq!(c.rtt_us, Some(30));
        assert_eq!(c.flow.source().port, 40000);
    }

    #[test]
    fn start_record_has_no_counts_and_server_role_flips_source() {
        let Event::Connection(c) =
            connection_event(&rec(abi::REC_CONN_START, abi::ROLE_SERVER), None, |n| n)
        else {
            panic!()
        };
        assert_eq!(c.phase, ConnectionPhase::Start);
        assert_eq!((c.bytes_sent, c.duration_ns, c.rtt_us), (None, None, None));
        assert_eq!(c.flow.source().port, 80);
    }

    #[test]
    fn update_records_are_reported_when_old_enough_and_changed() {
        let mut u = ConnUpdater::new(1).expect("on");
        assert!(ConnUpdater::new(0).is_none());
        let mut r = rec(abi::REC_CONN_UPDATE, abi::ROLE_CLIENT);
        r.established_ns = 1_000_000_000;
        // Younger than an interval: not yet.
        assert!(u.select(vec![r], 1_500_000_000).is_empty());
        assert_eq!(u.select(vec![r], 2_000_000_000).len(), 1);
        // Nothing moved since: no update.
        assert!(u.select(vec![r], 3_000_000_000).is_empty());
        r.bytes_sent += 1;
        assert_eq!(u.select(vec![r], 4_000_000_000).len(), 1);
        r.ts_ns = 4_000_000_000;
        let Event::Connection(c) = connection_event(&r, None, |n| n) else {
            panic!()
        };
        assert_eq!(c.phase, ConnectionPhase::Update);
        assert_eq!(c.source_destination_bytes(), (Some(11), Some(20)));
        assert_eq!(c.duration_ns, Some(3_000_000_000));
    }

    #[test]
    fn seeded_end_has_no_duration() {
        let mut r = rec(abi::REC_CONN_END, abi::ROLE_CLIENT);
        r.established_ns = 0;
        r.flags = abi::CONN_SEEDED;
        let Event::Connection(c) = connection_event(&r, None, |n| n) else {
            panic!()
        };
        assert!(c.seeded);
        assert_eq!(c.duration_ns, None);
    }
}
