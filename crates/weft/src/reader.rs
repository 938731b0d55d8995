//! The reader stage: raw ring-buffer records -> whole events with process
//! and connection context. Runs on the thread that polls the ring buffer.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use crossbeam_channel::{Sender, TrySendError};
use weft_bpf::abi::{self, CallRec, Record};
use weft_bpf::assemble::{Assembler, AssemblyStats};
use weft_core::event::{
    Direction, Endpoint, Event, Flow, ProcessInfo, Role, TlsData, TlsLibrary, TlsWire,
};
use weft_core::pipeline::Pipeline;
use weft_core::procinfo::{KernelProc, ProcCache};

use crate::record::{Header, Recorder};
use crate::stats::Stats;

struct Inner {
    asm: Assembler,
    host: Host,
    events: Option<Pipeline>,
    discovery: Option<Sender<(u32, u64, u64)>>,
    recorder: Option<Recorder>,
    stats: Arc<Stats>,
    keylog: Option<crate::keylog::KeylogFile>,
    /// Owners of the connections seeded at start, by cookie, for their end
    /// event (the kernel does not know them); removed at the end.
    seeded_owners: std::collections::HashMap<u64, Arc<ProcessInfo>>,
    /// Addresses the host just resolved (DNS answers): names for the
    /// connections this host opens to them.
    resolved: weft_core::resolved::Resolved,
    /// DNS over TCP: per connection and direction, the bytes of a
    /// length-prefixed message not yet whole (bounded: see `dns_tcp_of`).
    dns_tcp: weft_core::FastMap<(u64, bool), Vec<u8>>,
    /// Packet path: TLS hello segments from the wire, per flow, until the
    /// flow's event takes their facts (`FlowReporter`).
    wire: weft_core::wire_tls::WireHellos<weft_bpf::packets::PktKey>,
    /// The processes of recent calls, direct-mapped by pid: most calls come
    /// from a few processes, whose facts are then compared here instead of
    /// searched for in `host.procs`. Emptied of a pid when the cache is.
    recent: [Option<(KernelProc, Arc<ProcessInfo>)>; RECENT_PROCS],
    /// Call records read since `Stats::calls_in` was last updated: counted
    /// here and published once per pass over the ring, not per call (the
    /// counter shares a cache line with what the output thread counts per
    /// write; one atomic add per call cost ~2 us per request at 64 KiB).
    calls_unpublished: u64,
}

/// Slots of `Inner::recent`.
const RECENT_PROCS: usize = 8;

/// What the reader needs to know of the host the records come from: this
/// one (live), or the one a recording was made on (replay).
pub struct Host {
    pub clock_offset_ns: i128,
    /// The kernel's ephemeral port range: a socket whose local port is in it
    /// and whose peer's is not was most likely connected, not accepted.
    pub ephemeral: (u16, u16),
    pub procs: ProcCache,
}

impl Host {
    pub fn live() -> Result<Self> {
        Ok(Host {
            clock_offset_ns: weft_bpf::sensor::monotonic_to_unix_offset_ns(),
            ephemeral: ephemeral_range(),
            procs: ProcCache::new("/proc".into()).context("cannot read process information")?,
        })
    }

    /// The recording host: its clock and boot id, and no `/proc` to read
    /// (the processes are gone, and this host's pids are other processes).
    pub fn replayed(h: &Header) -> Self {
        Host {
            clock_offset_ns: i128::from(h.clock_offset_ns),
            ephemeral: h.ephemeral,
            procs: ProcCache::detached(h.boot_id.clone()),
        }
    }

    /// The header a recording of this host starts with.
    pub fn header(&self) -> Header {
        Header {
            abi: abi::ABI_VERSION,
            clock_offset_ns: i64::try_from(self.clock_offset_ns).unwrap_or(0),
            ephemeral: self.ephemeral,
            boot_id: self.procs.boot_id().to_owned(),
        }
    }
}

pub struct Reader {
    inner: Rc<RefCell<Inner>>,
}

fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

impl Reader {
    /// `discovery` gets the files processes exec or map (live only);
    /// `recorder` gets every record as it arrives (`--record`).
    pub fn new(
        payload_cap: u64,
        host: Host,
        events: Pipeline,
        discovery: Option<Sender<(u32, u64, u64)>>,
        recorder: Option<Recorder>,
        stats: Arc<Stats>,
    ) -> Self {
        Reader {
            inner: Rc::new(RefCell::new(Inner {
                asm: Assembler::new(usize::try_from(payload_cap).unwrap_or(usize::MAX)),
                host,
                events: Some(events),
                discovery,
                recorder,
                keylog: None,
                seeded_owners: std::collections::HashMap::new(),
                resolved: Default::default(),
                dns_tcp: Default::default(),
                wire: weft_core::wire_tls::WireHellos::new(Arc::clone(&stats.wire_tls)),
                recent: Default::default(),
                calls_unpublished: 0,
                stats,
            })),
        }
    }

    /// Feed one record (replay).
    pub fn feed(&self, data: &[u8]) {
        self.inner.borrow_mut().on_record(data);
    }

    /// The ring-buffer callback. Never fails the poll: bad records are counted.
    pub fn callback(&self) -> impl FnMut(&[u8]) -> i32 + 'static {
        let inner = Rc::clone(&self.inner);
        move |data: &[u8]| {
            inner.borrow_mut().on_record(data);
            0
        }
    }

    /// Write the session secrets the kernel reports to `k` (`--keylog`).
    pub fn set_keylog(&self, k: crate::keylog::KeylogFile) {
        self.inner.borrow_mut().keylog = Some(k);
    }

    /// Report the connections that existed at start (`Sensor::seed_connections`)
    /// as seeded start events; `owners` maps socket inodes to the process
    /// holding them, read from `/proc` when the connections were seeded.
    pub fn seed_connections(
        &self,
        recs: Vec<abi::ConnRec>,
        owners: &std::collections::HashMap<u64, weft_core::procinfo::KernelProc>,
    ) {
        let mut inner = self.inner.borrow_mut();
        for rec in recs {
            let process = owners.get(&rec.ino).map(|k| inner.host.procs.get(*k));
            // Bounded like the kernel's `conns` map: past it, an end is
            // reported without its owner.
            if let Some(p) = &process
                && inner.seeded_owners.len() < crate::conn::SEEDED_OWNERS_MAX
            {
                inner.seeded_owners.insert(rec.sock.cookie, Arc::clone(p));
            }
            let ev = crate::conn::connection_event(&rec, process, |ns| inner.unix_ns(ns));
            inner.send(ev);
        }
        if let Some(p) = &mut inner.events {
            p.flush();
        }
    }

    /// Report long connections' counts so far (`conn::ConnUpdater`) as
    /// update events, with their owners and names like their ends.
    pub fn connection_updates(&self, recs: Vec<abi::ConnRec>) {
        if recs.is_empty() {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        for c in recs {
            let process = if c.owner.pid != 0 {
                Some(inner.host.procs.get(crate::conn::kernel_proc(&c.owner)))
            } else {
                inner.seeded_owners.get(&c.sock.cookie).cloned()
            };
            let mut ev = crate::conn::connection_event(&c, process, |ns| inner.unix_ns(ns));
            if let Event::Connection(conn) = &mut ev
                && conn.flow.role == Role::Client
            {
                conn.destination_domain = inner
                    .resolved
                    .name_of(conn.flow.remote.ip, std::time::Instant::now());
            }
            inner.send(ev);
        }
        if let Some(p) = &mut inner.events {
            p.flush();
        }
    }

    /// Hand an event of weft's own (a loss report) to the pipeline.
    pub fn inject(&self, ev: Event) {
        if let Some(p) = &mut self.inner.borrow_mut().events {
            p.send(ev);
            p.flush();
        }
    }

    /// Send the events of this pass over the ring to the workers now.
    pub fn flush(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.publish_counts();
        // Buffers the workers emptied: kept up to the assembler's bounds,
        // the rest freed here, so none wait in the queue when traffic stops.
        while let Some(b) = inner.events.as_ref().and_then(|p| p.spare_buffers()) {
            inner.asm.recycle(b);
        }
        if let Some(p) = &mut inner.events
            && !p.flush()
        {
            inner.events = None;
        }
    }

    /// The TLS facts the wire gave for a packet flow, forgetting them.
    pub fn take_wire_tls(
        &self,
        key: &weft_bpf::packets::PktKey,
    ) -> Option<Arc<weft_core::event::TlsSession>> {
        self.inner.borrow_mut().wire.take(key)
    }

    /// The TLS facts of a flow seen on the wire so far, kept for its end.
    pub fn wire_tls_of(
        &self,
        key: &weft_bpf::packets::PktKey,
    ) -> Option<Arc<weft_core::event::TlsSession>> {
        self.inner.borrow().wire.peek(key)
    }

    /// Forget wire hellos of flows no longer in the kernel's table
    /// (`live` false), unless a segment came at or after `since_ns`.
    pub fn retain_wire_tls(
        &self,
        since_ns: u64,
        live: impl FnMut(&weft_bpf::packets::PktKey) -> bool,
    ) {
        self.inner.borrow_mut().wire.retain(since_ns, live);
    }

    /// What the assembler counted so far.
    pub fn assembly_stats(&self) -> AssemblyStats {
        self.inner.borrow().asm.stats()
    }

    /// Close the pipeline's input and return what the assembler counted,
    /// and the recorder, closed.
    pub fn finish(self) -> (AssemblyStats, Option<Recorder>) {
        let mut inner = self.inner.borrow_mut();
        inner.publish_counts();
        // Closing the pipeline drains its workers into the sink queue.
        if let Some(p) = inner.events.take() {
            p.close();
        }
        inner.discovery = None;
        let mut recorder = inner.recorder.take();
        if let Some(r) = &mut recorder {
            r.finish();
        }
        (inner.asm.stats(), recorder)
    }
}

fn library_of(lib: u8) -> Option<TlsLibrary> {
    Some(match u64::from(lib) {
        abi::LIB_OPENSSL => TlsLibrary::OpenSsl,
        abi::LIB_BORINGSSL => TlsLibrary::BoringSsl,
        abi::LIB_GNUTLS => TlsLibrary::GnuTls,
        abi::LIB_NSS => TlsLibrary::Nss,
        abi::LIB_WOLFSSL => TlsLibrary::WolfSsl,
        abi::LIB_GO => TlsLibrary::GoTls,
        _ => return None,
    })
}

/// Hands the assembler a bundle of buffers the workers emptied when its
/// own are used up and a payload of `need` bytes is next (data records and
/// inline call records alike).
fn refill_buffers(asm: &mut Assembler, events: Option<&Pipeline>, need: usize) {
    if asm.wants_buffers_for(need)
        && let Some(p) = events
        && let Some(b) = p.spare_buffers()
    {
        asm.recycle(b);
    }
}

impl Inner {
    /// Counts kept locally go to the shared statistics.
    fn publish_counts(&mut self) {
        let n = std::mem::take(&mut self.calls_unpublished);
        if n > 0 {
            self.stats.calls_in.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn on_record(&mut self, data: &[u8]) {
        if let Some(r) = &mut self.recorder {
            // (An inline call record without the room its payload left.)
            r.write(&data[..abi::meaningful_len(data)]);
        }
        // Matched where it was parsed: a record is not copied (data and
        // call records; the rare others are moved to `on_other_record`).
        let mut parsed = abi::parse(data);
        let rec = match &mut parsed {
            Ok(r) => r,
            Err(e) => {
                self.stats.bad_records.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("{e}");
                return;
            }
        };
        match rec {
            Record::Data {
                tid,
                call_id,
                offset,
                bytes,
            } => {
                refill_buffers(&mut self.asm, self.events.as_ref(), bytes.len());
                self.asm.on_data(*tid, *call_id, *offset, bytes)
            }
            Record::Call(c) => {
                self.calls_unpublished += 1;
                let (payload, holes) = self.asm.take_payload(c);
                self.on_call(c, payload, holes);
            }
            Record::CallInline { call, bytes } => {
                self.calls_unpublished += 1;
                refill_buffers(&mut self.asm, self.events.as_ref(), bytes.len());
                let (payload, holes) = self.asm.take_inline(call, bytes);
                self.on_call(call, payload, holes);
            }
            Record::BenchCopy { len } => {
                // The capture floor: counted, dropped (nothing decodes it).
                self.stats.bench_copies.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bench_copy_bytes
                    .fetch_add(*len, Ordering::Relaxed);
            }
            _ => {
                if let Ok(rec) = parsed {
                    self.on_other_record(rec);
                }
            }
        }
    }

    /// A record other than a data or call record.
    fn on_other_record(&mut self, rec: Record<'_>) {
        match rec {
            Record::Data { .. }
            | Record::Call(_)
            | Record::CallInline { .. }
            | Record::BenchCopy { .. } => {}
            Record::Exec { pid, dev, ino } | Record::Mmap { pid, dev, ino } => {
                if let Some(tx) = &self.discovery {
                    match tx.try_send((pid, dev, ino)) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            self.stats.discovery_missed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => self.discovery = None,
                    }
                }
            }
            Record::Exit { pid, .. } => {
                self.host.procs.forget(pid);
                for slot in &mut self.recent {
                    if slot.as_ref().is_some_and(|(k, _)| k.pid == pid) {
                        *slot = None;
                    }
                }
                self.asm.forget_thread(pid);
            }
            Record::Hello {
                cookie,
                ts_ns,
                offset,
                op,
                bytes,
                ..
            } => {
                let ev = Event::TlsWire(TlsWire::Hello {
                    cookie,
                    timestamp_ns: self.unix_ns(ts_ns),
                    direction: if op == abi::OP_WRITE {
                        Direction::Write
                    } else {
                        Direction::Read
                    },
                    offset,
                    bytes: bytes.to_vec(),
                });
                self.send(ev);
            }
            Record::Alpn { cookie, proto, .. } => {
                let ev = Event::TlsWire(TlsWire::Alpn {
                    cookie,
                    protocol: String::from_utf8_lossy(proto).into_owned(),
                });
                self.send(ev);
            }
            Record::Keylog {
                label,
                random,
                secret,
                ..
            } => self.on_keylog(label, random, secret),
            Record::WireHello(w) => self.wire.on_segment(
                w.key,
                weft_core::wire_tls::Segment {
                    dir: usize::from(w.dir),
                    index: w.seg,
                    seq: w.seq,
                    cut: w.flags & abi::WIRE_HELLO_CUT != 0,
                    ts_ns: w.ts_ns,
                    bytes: w.bytes,
                },
            ),
            Record::Conn(c) => {
                let process = if c.owner.pid != 0 {
                    Some(self.host.procs.get(crate::conn::kernel_proc(&c.owner)))
                } else if c.kind == abi::REC_CONN_END {
                    self.seeded_owners.remove(&c.sock.cookie)
                } else {
                    None
                };
                if c.kind == abi::REC_CONN_END {
                    self.dns_tcp.remove(&(c.sock.cookie, true));
                    self.dns_tcp.remove(&(c.sock.cookie, false));
                }
                let mut ev = crate::conn::connection_event(&c, process, |ns| self.unix_ns(ns));
                if let Event::Connection(conn) = &mut ev
                    && conn.flow.role == Role::Client
                {
                    conn.destination_domain = self
                        .resolved
                        .name_of(conn.flow.remote.ip, std::time::Instant::now());
                }
                self.send(ev);
            }
        }
    }

    fn on_keylog(&mut self, label: &[u8], random: &[u8], secret: &[u8]) {
        if let Some(k) = &mut self.keylog {
            k.write(label, random, secret);
            self.stats.keylog_lines.store(k.lines, Ordering::Relaxed);
            self.stats
                .keylog_rejected
                .store(k.rejected + k.write_errors, Ordering::Relaxed);
        }
    }

    /// Hand an event to the workers. Blocking: the sink must not lose
    /// events; back pressure ends in the kernel ring, which counts.
    #[inline]
    fn send(&mut self, ev: Event) {
        if let Some(p) = &mut self.events
            && !p.send(ev)
        {
            self.events = None;
        }
    }

    /// The process behind a call record, with its context.
    fn process_of(&mut self, c: &CallRec) -> Arc<ProcessInfo> {
        let k = KernelProc {
            pid: c.pid,
            ppid: c.ppid,
            uid: c.uid,
            gid: c.gid,
            cgroup_id: c.cgroup_id,
            start_time_ns: c.proc_start_ns,
            comm: c.comm,
        };
        let slot = &mut self.recent[c.pid as usize % RECENT_PROCS];
        if let Some((seen, p)) = slot
            && *seen == k
        {
            return Arc::clone(p);
        }
        let p = self.host.procs.get(k);
        *slot = Some((k, Arc::clone(&p)));
        p
    }

    fn unix_ns(&self, mono_ns: u64) -> u64 {
        u64::try_from((i128::from(mono_ns) + self.host.clock_offset_ns).max(0)).unwrap_or(u64::MAX)
    }

    fn flow(&self, c: &CallRec) -> Option<Flow> {
        if c.flags & abi::CALL_NO_SOCK != 0 || c.sock.family == 0 {
            return None;
        }
        let s = &c.sock;
        let role = match s.role {
            abi::ROLE_CLIENT => Role::Client,
            abi::ROLE_SERVER => Role::Server,
            _ => {
                let (lo, hi) = self.host.ephemeral;
                let eph = |p: u16| (lo..=hi).contains(&p);
                match (eph(s.local_port), eph(s.remote_port)) {
                    (true, false) => Role::Client,
                    (false, true) => Role::Server,
                    _ => Role::Unknown,
                }
            }
        };
        Some(flow_of(s, role))
    }

    /// A handshake result or a freed library object: facts for the TLS
    /// session stage.
    fn handshake_event_of(&mut self, c: &CallRec) -> Option<Event> {
        let library = library_of(c.lib)?;
        let flow = self.flow(c)?;
        let process = self.process_of(c);
        let timestamp_ns = self.unix_ns(c.end_ns);
        Some(Event::TlsWire(if c.op == abi::OP_HANDSHAKE {
            TlsWire::HandshakeReturn {
                timestamp_ns,
                process,
                flow,
                library,
                value: c.len as i64,
            }
        } else {
            TlsWire::Freed {
                timestamp_ns,
                process,
                flow,
                library,
            }
        }))
    }

    /// A DNS message over UDP: the event, and what an answer teaches the
    /// resolved-name map.
    fn dns_event_of(
        &mut self,
        payload: Vec<u8>,
        timestamp_ns: u64,
        process: Arc<ProcessInfo>,
        flow: Option<Flow>,
        tid: u32,
        direction: Direction,
    ) -> Option<Event> {
        let message = match weft_proto::dns::parse(&payload) {
            Ok(m) => m,
            Err(e) => {
                self.stats.dns_malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("DNS message: {e}");
                return None;
            }
        };
        // What the asker received (a resolver's own answers teach the same).
        if direction == Direction::Read || flow.is_some_and(|f| f.role == Role::Server) {
            self.resolved.learn(&message, std::time::Instant::now());
        }
        Some(Event::Dns(weft_core::event::Dns {
            timestamp_ns,
            process,
            tid,
            flow,
            direction,
            message: Box::new(message),
            tcp: false,
        }))
    }

    /// DNS over TCP: the connection's bytes in this direction are joined
    /// until each 2-byte length prefix's message is whole, and every whole
    /// message becomes a DNS event. At most `DNS_TCP_FLOWS` connection
    /// directions wait at once (past it, the waiting bytes are dropped and
    /// counted as malformed DNS); a buffer never holds more than one
    /// message (<= 64 KiB) plus one call's bytes.
    fn dns_tcp_of(
        &mut self,
        payload: &[u8],
        timestamp_ns: u64,
        process: Arc<ProcessInfo>,
        flow: Option<Flow>,
        tid: u32,
        direction: Direction,
    ) {
        const DNS_TCP_FLOWS: usize = 1024;
        let Some(cookie) = flow.map(|f| f.cookie).filter(|&c| c != 0) else {
            self.stats.dns_malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let key = (cookie, direction == Direction::Write);
        if !self.dns_tcp.contains_key(&key) && self.dns_tcp.len() >= DNS_TCP_FLOWS {
            let dropped = self.dns_tcp.len() as u64;
            self.dns_tcp.clear();
            self.stats
                .dns_malformed
                .fetch_add(dropped, Ordering::Relaxed);
        }
        let buf = self.dns_tcp.entry(key).or_default();
        buf.extend_from_slice(payload);
        let mut messages = Vec::new();
        while let [hi, lo, ..] = buf[..] {
            let n = usize::from(u16::from_be_bytes([hi, lo]));
            if buf.len() < 2 + n {
                break;
            }
            messages.push(buf[2..2 + n].to_vec());
            buf.drain(..2 + n);
        }
        if buf.is_empty() {
            self.dns_tcp.remove(&key);
        }
        for m in messages {
            let ev = self.dns_event_of(m, timestamp_ns, Arc::clone(&process), flow, tid, direction);
            if let Some(Event::Dns(mut d)) = ev {
                d.tcp = true;
                self.send(Event::Dns(d));
            }
        }
    }

    /// A closed call: its event (if any) goes to the workers. The capture
    /// event is built as `send`'s argument: no copies of it on the way.
    fn on_call(&mut self, c: &CallRec, payload: Vec<u8>, holes: Vec<weft_bpf::assemble::Hole>) {
        if let Some(ev) = self.event_of(c, payload, holes) {
            self.send(ev);
        }
    }

    /// The event of a call other than a capture one (sent by `event_of`
    /// itself); `None` when there is none.
    fn event_of(
        &mut self,
        c: &CallRec,
        payload: Vec<u8>,
        holes: Vec<weft_bpf::assemble::Hole>,
    ) -> Option<Event> {
        let direction = match c.op {
            abi::OP_WRITE => Direction::Write,
            abi::OP_READ => Direction::Read,
            abi::OP_HANDSHAKE | abi::OP_FREE => return self.handshake_event_of(c),
            _ => return None,
        };
        let plain = c.flags & abi::CALL_PLAIN != 0;
        let Some(library) = (if plain {
            Some(TlsLibrary::None)
        } else {
            library_of(c.lib)
        }) else {
            self.stats.bad_records.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(lib = c.lib, "call record of an unknown library");
            return None;
        };
        let flow = self.flow(c);
        let process = self.process_of(c);
        let timestamp_ns = self.unix_ns(c.end_ns);
        if c.flags & abi::CALL_DNS_TCP != 0 {
            self.dns_tcp_of(&payload, timestamp_ns, process, flow, c.tid, direction);
            return None;
        }
        if c.flags & abi::CALL_DNS != 0 {
            return self.dns_event_of(payload, timestamp_ns, process, flow, c.tid, direction);
        }
        // (No clock read while no name is known.)
        let destination_domain = flow
            .filter(|f| f.role == Role::Client && !self.resolved.is_empty())
            .and_then(|f| {
                self.resolved
                    .name_of(f.remote.ip, std::time::Instant::now())
            });
        self.stats
            .bytes_out
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.send(Event::TlsData(TlsData {
            timestamp_ns,
            duration_ns: c.end_ns.saturating_sub(c.start_ns),
            process,
            tid: c.tid,
            flow,
            library,
            direction,
            payload,
            length: c.len,
            holes: holes
                .into_iter()
                .map(|h| weft_core::event::Hole {
                    at: h.at,
                    len: h.len,
                })
                .collect(),
            tls: None,
            first_bytes: c.flags & abi::CALL_FIRST != 0,
            destination_domain,
            lost_before: lost_calls_of(&c.lost),
        }));
        None
    }
}

/// Calls lost whole with their records, as the kernel told them (call and
/// connection-end records).
pub(crate) fn lost_calls_of(l: &abi::LostCalls) -> weft_core::event::LostCalls {
    weft_core::event::LostCalls {
        reads: l.reads,
        writes: l.writes,
        read_bytes: u64::from(l.read_bytes),
        write_bytes: u64::from(l.write_bytes),
    }
}

/// The connection a kernel socket record describes, from `role`'s side.
pub(crate) fn flow_of(s: &abi::SockRec, role: Role) -> Flow {
    Flow {
        cookie: s.cookie,
        local: Endpoint {
            ip: s.local,
            port: s.local_port,
        },
        remote: Endpoint {
            ip: s.remote,
            port: s.remote_port,
        },
        role,
    }
}
