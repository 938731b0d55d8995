//! The decoding stage: per-connection plaintext -> HTTP transactions.
//!
//! Runs inside the pipeline's workers ([`crate::pipeline::Processor`]), so
//! each connection's state has exactly one owner. Capture events are joined
//! per connection and direction in arrival order (the kernel emits each
//! thread's calls in order, and one socket's calls do not overlap), fed to
//! `weft_proto`'s connection decoder, and truncated calls are reported to it
//! as gaps so it resynchronises instead of misparsing what follows.
//!
//! Capture events are forwarded too when asked (`raw`), or when the
//! connection is not (or not yet) something the decoders understand, so no
//! traffic disappears from the output.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_proto::{ConnectionDecoder, Counters, Direction as Wire, Limits, Protocol};

use crate::FastMap;
use crate::event::{
    Direction, Event, Flow, Http, ProcessInfo, Role, TlsData, TlsLibrary, WebSocket,
};
use crate::pipeline::{Processor, flow_key};
use crate::redact::{Http1PayloadMasker, Http2PayloadMasker};

/// Settings of the decoding stage.
#[derive(Debug, Clone, Copy)]
pub struct DecodeConfig {
    pub limits: Limits,
    /// Also forward the capture events of traffic that was decoded.
    pub raw: bool,
    /// Connections with no traffic for this long are closed (pending
    /// transactions emitted) and forgotten.
    pub idle_timeout: Duration,
    /// Connections tracked per worker at most; the least recently active is
    /// closed first when full.
    pub max_flows: usize,
    /// Mask credentials in the capture events this stage forwards (`--raw`,
    /// undecoded traffic), in place: HTTP/1 header values and query
    /// parameters, HTTP/2 header blocks blanked (`crate::redact`). Off for
    /// `--no-redact`.
    pub redact: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            limits: Limits::default(),
            raw: false,
            idle_timeout: Duration::from_secs(120),
            max_flows: 65_536,
            redact: true,
        }
    }
}

/// Counters of the decoding stage, shared by all workers.
#[derive(Debug, Default, Clone)]
pub struct DecodeStats {
    /// The decoders' own counters (desyncs, limits hit, undecoded bytes...).
    pub proto: Counters,
    pub http_events: u64,
    pub websocket_messages: u64,
    pub flows_opened: u64,
    pub flows_idle_closed: u64,
    /// Connections closed early because the flow table was full.
    pub flows_evicted: u64,
    /// Connections closed because weft stopped.
    pub flows_finished: u64,
    /// Connections closed because the kernel reported their end.
    pub flows_closed: u64,
    /// Bytes the capture did not deliver (truncated calls), told to decoders.
    pub gap_bytes: u64,
    /// Calls lost whole with their call records (ring full) that the
    /// kernel attributed to their connection, told to decoders.
    pub calls_lost_whole: u64,
    /// Forwarded capture events whose payload had credentials masked.
    pub payloads_redacted: u64,
}

struct FlowState {
    dec: ConnectionDecoder,
    /// Capture events fed while the protocol was still being detected: shown
    /// if it turns out to be one no decoder understands, dropped if decoded.
    held: Vec<TlsData>,
    /// Payload bytes held so far (set past the limit once released, so a
    /// flow is held at most once).
    held_bytes: usize,
    last_active: Instant,
    process: Arc<ProcessInfo>,
    flow: Option<Flow>,
    library: TlsLibrary,
    role: Role,
    /// The name the destination's address was resolved from (DNS).
    domain: Option<Arc<str>>,
    /// Payload maskers per wire direction (used when redacting).
    h1_mask: [Http1PayloadMasker; 2],
    h2_mask: [Http2PayloadMasker; 2],
    /// The direction's last payload was not forwarded: the HTTP/1 masker
    /// does not know where the next one starts.
    skipped: [bool; 2],
    /// The kernel's connection end, held for [`END_GRACE`]: an application
    /// may still read what arrived before the close (a client that
    /// half-closed first reads the response after its socket reached
    /// TCP_CLOSE), and those calls come after the end record. Emitted
    /// after the flow's last transactions. Boxed: set in the last
    /// fraction of a second of a flow's life, and an `Event` inline would
    /// cost every live flow its 176 bytes.
    end: Option<Box<(Instant, Event)>>,
}

impl FlowState {
    /// Show what was held for detection, and hold nothing more on this flow.
    fn release_held(&mut self, redact: bool, stats: &mut DecodeStats, emit: &mut dyn FnMut(Event)) {
        self.held_bytes = usize::MAX / 2;
        let held = std::mem::take(&mut self.held);
        for mut h in held {
            if redact {
                let wire = wire_direction(h.direction, self.role);
                self.mask(wire, &mut h, false, stats);
            }
            emit(Event::TlsData(h));
        }
    }

    /// Masks credentials in `d`, about to be forwarded: HTTP/2 header blocks
    /// once the flow is HTTP/2, nothing in WebSocket frames (`was_websocket`:
    /// the flow was WebSocket before `d` was fed; the record that carried
    /// the 101 response is still HTTP/1), HTTP/1 rules otherwise (HTTP/1,
    /// not yet known, or not decodable: credential header lines are masked
    /// in any text).
    fn mask(&mut self, wire: Wire, d: &mut TlsData, was_websocket: bool, stats: &mut DecodeStats) {
        let i = wire.index();
        let masked = if self.dec.protocol() == Some(Protocol::Http2) {
            self.h2_mask[i].mask(&mut d.payload)
        } else if was_websocket {
            false
        } else {
            if std::mem::take(&mut self.skipped[i]) {
                self.h1_mask[i].reset();
            }
            self.h1_mask[i].mask(&mut d.payload)
        };
        if d.truncated() {
            // What follows the captured part is unknown.
            self.h2_mask[i].lost();
            self.h1_mask[i].reset();
        }
        if masked {
            stats.payloads_redacted += 1;
        }
    }
}

/// The time of the event being processed, without a clock read per event:
/// read again once the events' own timestamps moved by a millisecond (or
/// went back), every [`CoarseClock::EVERY`] events, and after each tick.
/// What it stamps (a flow's last activity) is at most that much old, far
/// below the timeouts it serves (200 ms quiet, 120 s idle).
#[derive(Debug)]
pub(crate) struct CoarseClock {
    now: Instant,
    /// The event timestamp (ns) when `now` was read.
    at_ns: u64,
    /// Events since `now` was read.
    uses: u32,
}

impl CoarseClock {
    const EVERY: u32 = 64;
    const DRIFT_NS: u64 = 1_000_000;

    pub(crate) fn new() -> Self {
        CoarseClock {
            now: Instant::now(),
            at_ns: 0,
            uses: Self::EVERY,
        }
    }

    /// The current time for an event stamped `event_ns`.
    pub(crate) fn now(&mut self, event_ns: u64) -> Instant {
        if self.uses >= Self::EVERY || event_ns.abs_diff(self.at_ns) >= Self::DRIFT_NS {
            self.now = Instant::now();
            self.at_ns = event_ns;
            self.uses = 0;
        }
        self.uses += 1;
        self.now
    }

    /// A tick read the clock: the next event reads it again.
    pub(crate) fn expire(&mut self) {
        self.uses = Self::EVERY;
    }
}

/// A [`Processor`] that decodes HTTP from capture events.
pub struct HttpDecoder {
    cfg: DecodeConfig,
    /// Boxed: the table keeps ~1.6 slots per flow, so an inline 670-byte
    /// state would cost its size again in empty slots.
    flows: FastMap<u64, Box<FlowState>>,
    out: Vec<weft_proto::Event>,
    stats: Arc<Mutex<DecodeStats>>,
    local: DecodeStats,
    clock: CoarseClock,
    /// Payload buffers of decoded capture events, for the reader to reuse
    /// (`Processor::take_spare_buffers`; <= BATCH).
    spare: crate::pipeline::Buffers,
    /// Large buffers in `spare` (<= `SPARE_LARGE_PER_BUNDLE`).
    spare_large: usize,
    /// Process records of decoded capture events, released once per batch
    /// (<= BATCH): the reader counts a reference up for every call, and a
    /// release per call here would pull the count's cache line over to
    /// this core and back once per call instead of once per batch.
    retired: Vec<Arc<ProcessInfo>>,
    /// This worker's own copies of the reader's process records (the
    /// reader's record, then the copy), for its flows and events: their
    /// reference counts change on this core only. Direct-mapped by address.
    own_procs: Vec<Option<(Arc<ProcessInfo>, Arc<ProcessInfo>)>>,
}

/// Slots of `HttpDecoder::own_procs`.
const OWN_PROCS: usize = 16;

impl HttpDecoder {
    pub fn new(cfg: DecodeConfig, stats: Arc<Mutex<DecodeStats>>) -> Self {
        HttpDecoder {
            cfg,
            flows: FastMap::default(),
            out: Vec::new(),
            stats,
            local: DecodeStats::default(),
            clock: CoarseClock::new(),
            spare: Vec::new(),
            spare_large: 0,
            retired: Vec::new(),
            own_procs: vec![None; OWN_PROCS],
        }
    }

    /// Connections currently tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    fn publish(&mut self) {
        for f in self.flows.values_mut() {
            self.local.proto.add(&f.dec.take_counters());
        }
        if let Ok(mut s) = self.stats.lock() {
            let l = std::mem::take(&mut self.local);
            s.proto.add(&l.proto);
            s.http_events += l.http_events;
            s.websocket_messages += l.websocket_messages;
            s.flows_opened += l.flows_opened;
            s.flows_idle_closed += l.flows_idle_closed;
            s.flows_evicted += l.flows_evicted;
            s.flows_finished += l.flows_finished;
            s.flows_closed += l.flows_closed;
            s.gap_bytes += l.gap_bytes;
            s.calls_lost_whole += l.calls_lost_whole;
            s.payloads_redacted += l.payloads_redacted;
        }
    }

    fn close_flow(&mut self, key: u64, emit: &mut dyn FnMut(Event)) {
        if let Some(mut f) = self.flows.remove(&key) {
            // Never decided: what was held is shown as it was captured.
            f.release_held(self.cfg.redact, &mut self.local, emit);
            let mut out = std::mem::take(&mut self.out);
            // HTTP/2 streams lost whole after the last block this decoder
            // saw: the kernel's end record says how far the streams went.
            if let Some(end) = &f.end
                && let Event::Connection(c) = &end.1
                && c.h2_last_stream != 0
            {
                f.dec.streams_until(c.h2_last_stream);
            }
            f.dec.finish(&mut out);
            self.local.proto.add(&f.dec.take_counters());
            emit_decoded(&mut self.local, &f, &mut out, None, emit);
            self.out = out;
            if let Some(end) = f.end.take() {
                let (_, end) = *end;
                emit(end);
            }
        }
    }

    /// Make room for one more connection.
    fn evict_oldest(&mut self, emit: &mut dyn FnMut(Event)) {
        let oldest = self
            .flows
            .iter()
            .min_by_key(|(_, f)| f.last_active)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.local.flows_evicted += 1;
            self.close_flow(k, emit);
        }
    }
}

/// Emits what the decoder produced; `tls`: the connection's session facts
/// when known here (else `tls::TlsSessions` looks them up).
fn emit_decoded(
    stats: &mut DecodeStats,
    f: &FlowState,
    out: &mut Vec<weft_proto::Event>,
    tls: Option<&Arc<crate::event::TlsSession>>,
    emit: &mut dyn FnMut(Event),
) {
    for ev in out.drain(..) {
        match ev {
            weft_proto::Event::Transaction(tx) => {
                stats.http_events += 1;
                let start = if tx.request.first_ns != 0 {
                    tx.request.first_ns
                } else {
                    tx.response.first_ns
                };
                emit(Event::Http(Http {
                    timestamp_ns: start,
                    duration_ns: tx.duration_ns(),
                    process: Arc::clone(&f.process),
                    flow: f.flow,
                    library: f.library,
                    role: f.role,
                    transaction: tx,
                    tls: tls.cloned(),
                    destination_domain: f.domain.clone(),
                }));
            }
            weft_proto::Event::WebSocket(m) => {
                stats.websocket_messages += 1;
                emit(Event::WebSocket(WebSocket {
                    timestamp_ns: if m.first_ns != 0 {
                        m.first_ns
                    } else {
                        m.last_ns
                    },
                    process: Arc::clone(&f.process),
                    flow: f.flow,
                    library: f.library,
                    role: f.role,
                    message: Box::new(m),
                }));
            }
            // Upgrades: the decoder follows h2c and WebSocket itself; other
            // protocols are counted by it as undecoded bytes.
            _ => {}
        }
    }
}

/// This worker's copy of the reader's process record `p` (`slots`:
/// `HttpDecoder::own_procs`).
fn own_process(
    slots: &mut [Option<(Arc<ProcessInfo>, Arc<ProcessInfo>)>],
    p: &Arc<ProcessInfo>,
) -> Arc<ProcessInfo> {
    let i = (Arc::as_ptr(p) as usize >> 4) % slots.len().max(1);
    match slots.get_mut(i) {
        // The slot holds the reader's record: its address is not reused.
        Some(Some((theirs, ours))) if Arc::ptr_eq(theirs, p) => Arc::clone(ours),
        Some(slot) => {
            let ours = Arc::new(ProcessInfo::clone(p));
            *slot = Some((Arc::clone(p), Arc::clone(&ours)));
            ours
        }
        None => Arc::clone(p),
    }
}

/// Tells a flow's decoder about calls lost whole with their records (the
/// owner's writes first, then its reads: their order is not known).
fn tell_lost(local: &mut DecodeStats, f: &mut FlowState, l: crate::event::LostCalls) {
    for (dir, calls, bytes) in [
        (Direction::Write, l.writes, l.write_bytes),
        (Direction::Read, l.reads, l.read_bytes),
    ] {
        if calls > 0 {
            local.gap_bytes += bytes;
            local.calls_lost_whole += u64::from(calls);
            f.dec.lost_calls(wire_direction(dir, f.role), calls, bytes);
        }
    }
}

/// Which way the bytes of a call travelled on the wire.
fn wire_direction(dir: Direction, role: Role) -> Wire {
    match (role, dir) {
        (Role::Server, Direction::Write) | (Role::Client | Role::Unknown, Direction::Read) => {
            Wire::ServerToClient
        }
        (Role::Server, Direction::Read) | (Role::Client | Role::Unknown, Direction::Write) => {
            Wire::ClientToServer
        }
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Capture events and bytes held per flow while its protocol is detected
/// (HTTP/1 and HTTP/2 starts are recognised within a few dozen bytes).
const MAX_HELD: usize = 64;
const MAX_HELD_BYTES: usize = 64;
/// How long a flow must be quiet before what it holds is shown anyway.
const HOLD_QUIET: Duration = Duration::from_millis(200);

/// How long a flow outlives its connection's end (see `FlowState::end`).
pub(crate) const END_GRACE: Duration = Duration::from_millis(500);

/// The server connection preface: a SETTINGS frame (not an ACK) on
/// stream 0, whole in `b` (RFC 9113 §3.4).
fn is_server_preface(b: &[u8]) -> bool {
    match b {
        [l0, l1, l2, 4, flags, 0, 0, 0, 0, ..] => {
            let len = usize::from(*l0) << 16 | usize::from(*l1) << 8 | usize::from(*l2);
            flags & 1 == 0 && len % 6 == 0 && b.len() >= 9 + len
        }
        _ => false,
    }
}

/// `GET /x HTTP/1.1`: an upper-case method token, a space, a target; or
/// the first bytes of one (a server reading its request byte by byte sees
/// `G`, then `E`...).
fn looks_like_request_line(b: &[u8]) -> bool {
    let method_len = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if method_len == b.len() {
        return (1..=10).contains(&method_len);
    }
    (3..=10).contains(&method_len)
        && b.get(method_len) == Some(&b' ')
        && b.get(method_len + 1).is_none_or(|c| c.is_ascii_graphic())
}

/// The decoder for a new connection: the protocol named by the TLS ALPN
/// result when there is one weft decodes (`h2`, `http/1.1`, see
/// [`Protocol::from_alpn`]), else detected from the bytes; `first` is the
/// first captured payload, travelling `wire`; `after_handshake`: weft saw
/// the connection's TLS handshake and no call of it was lost before `first`.
///
/// A connection whose first bytes are the client's HTTP/2 preface was seen
/// from its start, and HTTP/1 keeps no state between requests, so one that
/// starts with a request line is as good as fresh. After a handshake weft
/// saw, so is an `h2` connection whose first bytes are the server's preface
/// (a server speaks first: its SETTINGS). Anything else may have begun
/// before weft did: HPACK must not trust an empty table, responses may
/// answer unseen requests.
pub fn choose_decoder(
    limits: &Limits,
    alpn: Option<&[u8]>,
    wire: Wire,
    first: &[u8],
    after_handshake: bool,
) -> ConnectionDecoder {
    let hint = alpn.and_then(Protocol::from_alpn);
    let fresh = match wire {
        Wire::ClientToServer => match hint {
            Some(Protocol::Http2) => first.starts_with(H2_PREFACE),
            Some(Protocol::Http1) => looks_like_request_line(first),
            None => first.starts_with(H2_PREFACE) || looks_like_request_line(first),
        },
        Wire::ServerToClient => {
            after_handshake && hint == Some(Protocol::Http2) && is_server_preface(first)
        }
    };
    if fresh {
        ConnectionDecoder::new(limits, hint)
    } else {
        ConnectionDecoder::new_mid_connection(limits, hint)
    }
}

impl Processor for HttpDecoder {
    fn process(&mut self, ev: Event, emit: &mut dyn FnMut(Event)) {
        // Matched in place: the common capture event is decoded and dropped
        // without being moved out of its `Event`.
        let d = match ev {
            Event::TlsData(ref mut_d) if !mut_d.first_bytes => mut_d,
            Event::TlsData(mut d) => {
                // A connection's first bytes, kept to classify it: not a stream
                // to decode, but text credential lines (HTTP-like, on a port
                // outside --plaintext-ports) are masked as in any capture event.
                if self.cfg.redact && Http1PayloadMasker::default().mask(&mut d.payload) {
                    self.local.payloads_redacted += 1;
                }
                emit(Event::TlsData(d));
                return;
            }
            Event::Connection(c) => {
                // The kernel saw the connection close: what its decoder
                // still holds goes out now, before the end event, and its
                // state is freed instead of waiting for the idle timeout.
                if c.phase == crate::event::ConnectionPhase::End
                    && let Some(f) = self.flows.get_mut(&c.flow.cookie)
                    && f.end.is_none()
                {
                    // Calls lost whole after the connection's last call
                    // record (it made no call after them).
                    if !c.lost_before.is_empty() {
                        tell_lost(&mut self.local, f, c.lost_before);
                    }
                    // Closed after END_GRACE (tick), with the end event
                    // after the flow's last transactions.
                    f.end = Some(Box::new((Instant::now(), Event::Connection(c))));
                    return;
                }
                emit(Event::Connection(c));
                return;
            }
            other => {
                emit(other);
                return;
            }
        };
        let key = flow_key(d.flow.as_ref(), d.tid);
        let role = d.flow.map_or(Role::Unknown, |f| f.role);
        let wire = wire_direction(d.direction, role);
        let now = self.clock.now(d.timestamp_ns);
        if self.flows.len() >= self.cfg.max_flows && !self.flows.contains_key(&key) {
            self.evict_oldest(emit);
        }
        let f = match self.flows.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // The ALPN the handshake chose (stamped by `tls::TlsSessions`)
                // decides before the first bytes do.
                let alpn = d
                    .tls
                    .as_ref()
                    .and_then(|t| t.next_protocol.as_deref())
                    .map(str::as_bytes);
                // Its TLS handshake was seen (the ClientHello gave a JA4):
                // the connection started while weft ran.
                let started = d.tls.as_ref().is_some_and(|t| t.ja4.is_some());
                let mut dec = choose_decoder(
                    &self.cfg.limits,
                    alpn,
                    wire,
                    &d.payload,
                    started && d.lost_before.is_empty(),
                );
                if started {
                    dec.streams_start_at_one();
                }
                self.local.flows_opened += 1;
                let process = own_process(&mut self.own_procs, &d.process);
                v.insert(Box::new(FlowState {
                    dec,
                    held: Vec::new(),
                    held_bytes: 0,
                    last_active: now,
                    process,
                    flow: d.flow,
                    library: d.library,
                    role,
                    domain: d.destination_domain.clone(),
                    h1_mask: Default::default(),
                    h2_mask: Default::default(),
                    skipped: [false; 2],
                    end: None,
                }))
            }
        };
        f.last_active = now;
        if !d.lost_before.is_empty() {
            // Calls of this connection lost whole before this one, their
            // records included: the decoder learns of them in order.
            tell_lost(&mut self.local, f, d.lost_before);
        }
        let was_websocket = f.dec.is_websocket();
        if d.holes.is_empty() {
            f.dec
                .feed_at(wire, &d.payload, d.timestamp_ns, &mut self.out);
        } else {
            // Body bytes the kernel did not copy: the decoder steps over
            // them inside the body it knows, or takes them as a gap.
            let mut from = 0;
            for h in &d.holes {
                let at = h.at.min(d.payload.len());
                f.dec
                    .feed_at(wire, &d.payload[from..at], d.timestamp_ns, &mut self.out);
                f.dec.skip_at(wire, h.len, d.timestamp_ns, &mut self.out);
                from = at;
            }
            f.dec
                .feed_at(wire, &d.payload[from..], d.timestamp_ns, &mut self.out);
        }
        if d.truncated() {
            let lost = d.length - d.payload.len() as u64 - d.skipped();
            self.local.gap_bytes += lost;
            if d.payload.is_empty() {
                f.dec.lost_call(wire);
            }
            f.dec.gap(wire, lost);
        }
        // Raw capture events only for what no decoder understands (or all
        // of them with --raw); while the protocol is being detected they
        // wait (detection needs at most a few dozen bytes).
        let decoded = f.dec.is_websocket()
            || matches!(f.dec.protocol(), Some(Protocol::Http1 | Protocol::Http2));
        if !self.out.is_empty() {
            // The session facts the call carries (`tls::TlsSessions` stamped
            // them just now) go on what it completed: no lookup per event.
            emit_decoded(&mut self.local, f, &mut self.out, d.tls.as_ref(), emit);
        }
        let redact = self.cfg.redact;
        let payload_len = d.payload.len();
        if !self.cfg.raw && decoded && !f.dec.is_detecting() {
            // The common case: decoded, the capture event is dropped and
            // its buffer kept for the reader.
            f.held.clear();
            f.skipped[wire.index()] = true;
            // Only the buffer moves out (not the whole event: a copy).
            if let Event::TlsData(TlsData {
                mut payload,
                process,
                ..
            }) = ev
            {
                if self.retired.len() >= crate::pipeline::BATCH {
                    self.retired.clear();
                }
                self.retired.push(process);
                let cap = payload.capacity();
                let large = cap > crate::pipeline::SPARE_SMALL_MAX;
                if cap <= crate::pipeline::SPARE_BUFFER_MAX
                    && self.spare.len() < crate::pipeline::BATCH
                    && (!large || self.spare_large < crate::pipeline::SPARE_LARGE_PER_BUNDLE)
                {
                    self.spare_large += usize::from(large);
                    payload.clear();
                    self.spare.push(payload);
                }
            }
            return;
        }
        let Event::TlsData(mut d) = ev else {
            return;
        };
        if !d.holes.is_empty() {
            // Shown as captured: the call's first bytes, up to the hole.
            d.payload.truncate(d.contiguous_len());
            d.holes.clear();
        }
        if self.cfg.raw {
            let mut d = d;
            if redact {
                f.mask(wire, &mut d, was_websocket, &mut self.local);
            }
            emit(Event::TlsData(d));
        } else if f.dec.is_detecting()
            && f.held.len() < MAX_HELD
            && f.held_bytes + payload_len <= MAX_HELD_BYTES
        {
            f.held_bytes += payload_len;
            f.held.push(d);
        } else if decoded {
            f.held.clear();
            f.skipped[wire.index()] = true;
        } else {
            // Undecodable, or still undecided after more bytes than any
            // protocol start needs: show everything as captured.
            f.release_held(redact, &mut self.local, emit);
            let mut d = d;
            if redact {
                f.mask(wire, &mut d, was_websocket, &mut self.local);
            }
            emit(Event::TlsData(d));
        }
    }

    fn tick(&mut self, now: Instant, emit: &mut dyn FnMut(Event)) {
        self.clock.expire();
        // Bytes held for detection are shown once the flow goes quiet: a
        // short exchange in a protocol nobody decodes must not wait for the
        // idle timeout.
        for f in self.flows.values_mut() {
            if !f.held.is_empty() && now.duration_since(f.last_active) >= HOLD_QUIET {
                f.release_held(self.cfg.redact, &mut self.local, emit);
            }
        }
        let ended: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| {
                f.end
                    .as_ref()
                    .is_some_and(|e| now.saturating_duration_since(e.0) >= END_GRACE)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in ended {
            self.local.flows_closed += 1;
            self.close_flow(k, emit);
        }
        let idle: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| now.duration_since(f.last_active) >= self.cfg.idle_timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            self.local.flows_idle_closed += 1;
            self.close_flow(k, emit);
        }
        crate::shrink_sparse(&mut self.flows);
        self.publish();
    }

    fn take_spare_buffers(&mut self, out: &mut crate::pipeline::Buffers) {
        // Called once per batch: the batch's process references go now.
        self.retired.clear();
        self.spare_large = 0;
        out.append(&mut self.spare);
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Event)) {
        let keys: Vec<u64> = self.flows.keys().copied().collect();
        for k in keys {
            self.local.flows_finished += 1;
            self.close_flow(k, emit);
        }
        self.publish();
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::event::{Endpoint, TlsData};
    use std::net::{IpAddr, Ipv4Addr};

    pub fn proc_info() -> Arc<ProcessInfo> {
        Arc::new(ProcessInfo {
            pid: 7,
            ppid: 1,
            name: "curl".into(),
            executable: None,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            start_time_ns: 0,
            entity_id: "e".into(),
        })
    }

    pub fn data(role: Role, dir: Direction, ts: u64, bytes: &[u8], length: u64) -> Event {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Event::TlsData(TlsData {
            timestamp_ns: ts,
            duration_ns: 0,
            process: proc_info(),
            tid: 7,
            flow: Some(Flow {
                cookie: 42,
                local: Endpoint { ip, port: 5000 },
                remote: Endpoint { ip, port: 443 },
                role,
            }),
            library: TlsLibrary::OpenSsl,
            direction: dir,
            payload: bytes.to_vec(),
            length,
            holes: Vec::new(),
            tls: None,
            first_bytes: false,
            destination_domain: None,
            lost_before: Default::default(),
        })
    }

    pub fn run(cfg: DecodeConfig, input: Vec<Event>) -> (Vec<Event>, Arc<Mutex<DecodeStats>>) {
        let stats = Arc::new(Mutex::new(DecodeStats::default()));
        let mut d = HttpDecoder::new(cfg, Arc::clone(&stats));
        let mut got = Vec::new();
        for ev in input {
            d.process(ev, &mut |e| got.push(e));
        }
        d.finish(&mut |e| got.push(e));
        (got, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    /// Every live flow holds one (10,000 with 5,000 HTTP/2 connections
    /// seen from both ends, benches/memory.sh): was 872 bytes, with the
    /// end event and the connection decoder's counters inline.
    #[test]
    fn flow_state_stays_small() {
        let size = std::mem::size_of::<FlowState>();
        assert!(size <= 432, "{size}");
    }

    const REQ: &[u8] = b"GET /users?id=1 HTTP/1.1\r\nHost: api.example\r\n\r\n";
    const RESP: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

    /// Decoded capture events leave their buffers for the reader (emptied,
    /// at most a batch of them, none too large); a shown one keeps its own.
    #[test]
    fn decoded_payload_buffers_go_back() {
        let stats = Arc::new(Mutex::new(DecodeStats::default()));
        let mut d = HttpDecoder::new(DecodeConfig::default(), Arc::clone(&stats));
        let mut got = Vec::new();
        for i in 0..(crate::pipeline::BATCH as u64 + 10) {
            d.process(
                data(Role::Client, Direction::Write, 2 * i, REQ, REQ.len() as u64),
                &mut |e| got.push(e),
            );
            d.process(
                data(
                    Role::Client,
                    Direction::Read,
                    2 * i + 1,
                    RESP,
                    RESP.len() as u64,
                ),
                &mut |e| got.push(e),
            );
        }
        let mut back = Vec::new();
        d.take_spare_buffers(&mut back);
        assert_eq!(back.len(), crate::pipeline::BATCH);
        assert!(
            back.iter()
                .all(|b| b.is_empty() && b.capacity() >= REQ.len())
        );
        d.take_spare_buffers(&mut back);
        assert_eq!(back.len(), crate::pipeline::BATCH, "taken once");
        // A payload too large to keep is freed, not returned.
        let body = crate::pipeline::SPARE_BUFFER_MAX + 1;
        let mut req = format!("POST / HTTP/1.1\r\nContent-Length: {body}\r\n\r\n").into_bytes();
        req.resize(req.len() + body, b'x');
        d.process(
            data(Role::Client, Direction::Write, 999, &req, req.len() as u64),
            &mut |e| got.push(e),
        );
        let mut none = Vec::new();
        d.take_spare_buffers(&mut none);
        assert!(none.is_empty());
        // Large ones (a body's calls) come back, a bounded number per bundle.
        let body = 4096;
        let mut req = format!("POST / HTTP/1.1\r\nContent-Length: {body}\r\n\r\n").into_bytes();
        req.resize(req.len() + body, b'x');
        let large = crate::pipeline::SPARE_LARGE_PER_BUNDLE;
        for round in 0..2 {
            for i in 0..large + 5 {
                let ts = 1000 + (round * 100 + i) as u64;
                d.process(
                    data(Role::Client, Direction::Write, ts, &req, req.len() as u64),
                    &mut |e| got.push(e),
                );
            }
            let mut back = Vec::new();
            d.take_spare_buffers(&mut back);
            assert_eq!(back.len(), large, "round {round}");
            assert!(back.iter().all(|b| b.is_empty() && b.capacity() >= body));
        }
        assert!(got.iter().all(|e| matches!(e, Event::Http(_))));
    }

    /// The reader's process record is released once per batch (at most a
    /// batch of references held), and http events carry the worker's own
    /// copy: equal in value, one per process.
    #[test]
    fn process_records_released_per_batch_events_carry_a_copy() {
        let stats = Arc::new(Mutex::new(DecodeStats::default()));
        let mut d = HttpDecoder::new(DecodeConfig::default(), stats);
        let theirs = proc_info();
        let mut got = Vec::new();
        let calls = crate::pipeline::BATCH as u64 + 10;
        for i in 0..calls {
            for (dir, ts, bytes) in [
                (Direction::Write, 2 * i, REQ),
                (Direction::Read, 2 * i + 1, RESP),
            ] {
                let mut ev = data(Role::Client, dir, ts, bytes, bytes.len() as u64);
                if let Event::TlsData(t) = &mut ev {
                    t.process = Arc::clone(&theirs);
                }
                d.process(ev, &mut |e| got.push(e));
                // Ours, the worker's slot, and at most a batch retired.
                assert!(Arc::strong_count(&theirs) <= 2 + crate::pipeline::BATCH);
            }
        }
        assert!(
            Arc::strong_count(&theirs) > 2,
            "released per batch, not per call"
        );
        d.take_spare_buffers(&mut Vec::new());
        assert_eq!(Arc::strong_count(&theirs), 2, "ours and the slot's");
        let procs: Vec<&Arc<ProcessInfo>> = got
            .iter()
            .filter_map(|e| match e {
                Event::Http(h) => Some(&h.process),
                _ => None,
            })
            .collect();
        assert_eq!(procs.len() as u64, calls);
        assert!(
            procs
                .iter()
                .all(|p| **p == theirs && !Arc::ptr_eq(p, &theirs))
        );
        assert!(procs.iter().all(|p| Arc::ptr_eq(p, procs[0])));
    }

    #[test]
    fn alpn_names_the_protocol_before_any_byte_is_sniffed() {
        let l = Limits::default();
        // Mid-connection bytes that look like nothing: the ALPN decides.
        let junk = b"\x17\x03 not a frame start";
        let d = choose_decoder(&l, Some(b"h2"), Wire::ServerToClient, junk, false);
        assert_eq!(d.protocol(), Some(Protocol::Http2));
        let d = choose_decoder(&l, Some(b"http/1.1"), Wire::ServerToClient, junk, false);
        assert_eq!(d.protocol(), Some(Protocol::Http1));
        let d = choose_decoder(&l, None, Wire::ServerToClient, junk, false);
        assert!(d.is_detecting());
        // ALPN wins over content: an HTTP/1.1 connection whose client
        // sends something preface-like stays HTTP/1.
        let d = choose_decoder(
            &l,
            Some(b"http/1.1"),
            Wire::ClientToServer,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            false,
        );
        assert_eq!(d.protocol(), Some(Protocol::Http1));
        // An identifier weft does not decode leaves it to the content.
        for other in [&b"h3"[..], b"imap", b"", b"H2"] {
            let d = choose_decoder(&l, Some(other), Wire::ClientToServer, REQ, false);
            assert!(d.is_detecting(), "{other:?}");
        }
    }

    /// First bytes are forwarded as they are, never decoded (even a whole
    /// exchange), with credential lines masked.
    #[test]
    fn first_bytes_are_forwarded_masked_and_never_decoded() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer secret\r\n\r\n";
        let mut input = Vec::new();
        for (dir, bytes) in [(Direction::Write, &req[..]), (Direction::Read, RESP)] {
            let mut ev = data(Role::Client, dir, 1, bytes, bytes.len() as u64);
            if let Event::TlsData(d) = &mut ev {
                d.library = TlsLibrary::None;
                d.first_bytes = true;
            }
            input.push(ev);
        }
        let (got, _) = run(DecodeConfig::default(), input);
        assert_eq!(got.len(), 2, "{got:#?}");
        let Event::TlsData(d) = &got[0] else {
            panic!("not a capture event: {got:#?}");
        };
        assert!(d.first_bytes);
        assert!(!contains(&d.payload, b"secret"), "not masked");
        assert_eq!(d.payload.len(), req.len());
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn alpn_http11_decodes_from_the_first_request() {
        let l = Limits::default();
        let mut d = choose_decoder(&l, Some(b"http/1.1"), Wire::ClientToServer, REQ, false);
        let mut out = Vec::new();
        d.feed(Wire::ClientToServer, REQ, &mut out);
        d.feed(Wire::ServerToClient, RESP, &mut out);
        assert_eq!(out.len(), 1);
        let weft_proto::Event::Transaction(tx) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(tx.is_complete());
        assert_eq!(tx.path(), Some(&b"/users?id=1"[..]));
        // h2 ALPN with the preface first: a fresh HTTP/2 connection whose
        // HPACK table is trusted from the start.
        let mut d = choose_decoder(
            &l,
            Some(b"h2"),
            Wire::ClientToServer,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            false,
        );
        d.feed(
            Wire::ClientToServer,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
            &mut out,
        );
        assert_eq!(d.take_counters().desyncs, 0);
        assert_eq!(d.protocol(), Some(Protocol::Http2));
        // A server speaks first: its SETTINGS as the first bytes make a
        // fresh decoder only after a handshake weft saw. Fresh, an HPACK
        // reference to a dynamic entry never sent is an error; joined
        // midway, an entry sent before weft joined.
        let settings = b"\0\0\x06\x04\0\0\0\0\0\0\x03\0\0\0\x80";
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
        // HEADERS, stream 1: :method GET, :scheme https, :path /, dynamic 62.
        let headers = b"\0\0\x04\x01\x05\0\0\0\x01\x82\x87\x84\xbe";
        for after_handshake in [true, false] {
            let mut d = choose_decoder(
                &l,
                Some(b"h2"),
                Wire::ServerToClient,
                settings,
                after_handshake,
            );
            d.feed(Wire::ServerToClient, settings, &mut out);
            d.feed(Wire::ClientToServer, preface, &mut out);
            d.feed(Wire::ClientToServer, headers, &mut out);
            let c = d.take_counters();
            assert_eq!(c.desyncs, 0);
            assert_eq!(
                (c.hpack_unknown_references > 0, c.hpack_errors > 0),
                (!after_handshake, after_handshake),
                "{after_handshake}: {c:?}"
            );
        }
    }

    /// The kernel's end of the connection `flow`, at `ts`.
    fn conn_end(flow: Flow, ts: u64, received: u64) -> Event {
        use crate::event::{Connection, ConnectionPhase};
        Event::Connection(Connection {
            timestamp_ns: ts,
            phase: ConnectionPhase::End,
            seeded: false,
            process: Some(proc_info()),
            flow,
            netns_cookie: 1,
            bytes_sent: Some(REQ.len() as u64),
            bytes_received: Some(received),
            rtt_us: Some(10),
            duration_ns: Some(ts - 1_000),
            destination_domain: None,
            lost_before: Default::default(),
            h2_last_stream: 0,
        })
    }

    /// A decoder that has seen a client's request (REQ at t=1000) and no
    /// response; the events it emitted so far (none); its stats and flow.
    fn request_pending() -> (HttpDecoder, Arc<Mutex<DecodeStats>>, Flow, Vec<Event>) {
        let stats = Arc::new(Mutex::new(DecodeStats::default()));
        let mut d = HttpDecoder::new(DecodeConfig::default(), Arc::clone(&stats));
        let mut got = Vec::new();
        let req = data(Role::Client, Direction::Write, 1_000, REQ, REQ.len() as u64);
        let Event::TlsData(td) = &req else { panic!() };
        let flow = td.flow.expect("flow");
        d.process(req, &mut |e| got.push(e));
        (d, stats, flow, got)
    }

    /// The kernel's connection end closes the flow (after END_GRACE): the
    /// pending request goes out (incomplete) before the end event, and the
    /// flow's state is gone, not left for the idle timeout.
    #[test]
    fn connection_end_flushes_and_frees_the_flow() {
        let (mut d, stats, flow, mut got) = request_pending();
        assert_eq!(d.flows(), 1);
        assert!(got.is_empty(), "{got:?}");
        d.process(conn_end(flow, 9_000, 0), &mut |e| got.push(e));
        // Held for the grace period: a late read may still come.
        assert_eq!(d.flows(), 1);
        assert!(got.is_empty(), "{got:?}");
        d.tick(Instant::now() + END_GRACE, &mut |e| got.push(e));
        assert_eq!(d.flows(), 0, "flow still held after its end");
        assert!(
            matches!(&got[..], [Event::Http(h), Event::Connection(_)] if h.transaction.status().is_none()),
            "{got:?}"
        );
        assert_eq!(stats.lock().expect("stats").flows_closed, 1);
    }

    /// Ends `flow` with a connection end record `edit` adjusts, lets the
    /// grace period pass, and returns the http events emitted in all and
    /// the statistics.
    fn end_flow(
        d: &mut HttpDecoder,
        stats: &Mutex<DecodeStats>,
        flow: Flow,
        got: &mut Vec<Event>,
        edit: impl FnOnce(&mut crate::event::Connection),
    ) -> (usize, DecodeStats) {
        let mut end = conn_end(flow, 9_000, 0);
        if let Event::Connection(c) = &mut end {
            edit(c);
        }
        d.process(end, &mut |e| got.push(e));
        d.tick(Instant::now() + END_GRACE, &mut |e| got.push(e));
        assert_eq!(d.flows(), 0);
        let http = got.iter().filter(|e| matches!(e, Event::Http(_))).count();
        (http, stats.lock().map(|s| s.clone()).unwrap_or_default())
    }

    /// Calls lost whole at the end of a connection (no later call told
    /// them): the connection's end record does, and the requests they
    /// carried are counted before the flow closes.
    #[test]
    fn calls_lost_at_the_end_are_told_by_the_connection_end() {
        let (mut d, stats, flow, mut got) = request_pending();
        let resp = data(
            Role::Client,
            Direction::Read,
            2_000,
            RESP,
            RESP.len() as u64,
        );
        d.process(resp, &mut |e| got.push(e));
        let (http, s) = end_flow(&mut d, &stats, flow, &mut got, |c| {
            c.lost_before = crate::event::LostCalls {
                reads: 3,
                writes: 3,
                read_bytes: 3 * RESP.len() as u64,
                write_bytes: 3 * REQ.len() as u64,
            };
        });
        assert_eq!(http, 1, "{got:?}");
        assert_eq!(s.proto.h1_requests_unseen, 3);
        assert_eq!(s.calls_lost_whole, 6);
    }

    /// HTTP/2 streams lost whole after the last header block the decoder
    /// saw (the end of a connection: no later stream id reveals them) are
    /// counted up to the kernel's last stream on the end record.
    #[test]
    fn h2_streams_lost_at_the_end_are_counted_from_the_connection_end() {
        for (last, unseen) in [(5, 2), (1, 0), (0, 0)] {
            let stats = Arc::new(Mutex::new(DecodeStats::default()));
            let mut d = HttpDecoder::new(DecodeConfig::default(), Arc::clone(&stats));
            let mut got = Vec::new();
            // Preface, SETTINGS, HEADERS of stream 1 (GET https /).
            let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
            out.extend_from_slice(b"\0\0\x03\x01\x05\0\0\0\x01\x82\x87\x84");
            let req = data(
                Role::Client,
                Direction::Write,
                1_000,
                &out,
                out.len() as u64,
            );
            let Event::TlsData(td) = &req else { panic!() };
            let flow = td.flow.expect("flow");
            d.process(req, &mut |e| got.push(e));
            // SETTINGS, HEADERS of stream 1 (:status 200, end of stream).
            let back = b"\0\0\0\x04\0\0\0\0\0\0\0\x01\x01\x05\0\0\0\x01\x88";
            let resp = data(
                Role::Client,
                Direction::Read,
                2_000,
                back,
                back.len() as u64,
            );
            d.process(resp, &mut |e| got.push(e));
            // Streams 3 and 5 went by in calls lost to a full ring.
            let (http, s) = end_flow(&mut d, &stats, flow, &mut got, |c| {
                c.h2_last_stream = last;
            });
            assert_eq!(http, 1, "{got:?}");
            assert_eq!(s.proto.streams_unseen, unseen, "last stream {last}");
            assert_eq!(s.proto.desyncs, 0);
        }
    }

    /// A client that half-closed reads the response after its socket
    /// reached TCP_CLOSE: those reads come after the connection's end and
    /// still complete its transaction, which goes out before the end event.
    #[test]
    fn reads_after_the_connection_end_complete_the_transaction() {
        let (mut d, _stats, flow, mut got) = request_pending();
        d.process(conn_end(flow, 2_000, RESP.len() as u64), &mut |e| {
            got.push(e)
        });
        let resp = data(
            Role::Client,
            Direction::Read,
            3_000,
            RESP,
            RESP.len() as u64,
        );
        d.process(resp, &mut |e| got.push(e));
        d.tick(Instant::now() + END_GRACE, &mut |e| got.push(e));
        assert!(
            matches!(&got[..], [Event::Http(h), Event::Connection(_)] if h.transaction.status() == Some(200)),
            "{got:?}"
        );
        assert_eq!(d.flows(), 0);
    }

    #[test]
    fn client_view_becomes_one_http_event() {
        let (got, stats) = run(
            DecodeConfig::default(),
            vec![
                data(Role::Client, Direction::Write, 1_000, REQ, REQ.len() as u64),
                data(
                    Role::Client,
                    Direction::Read,
                    5_000,
                    RESP,
                    RESP.len() as u64,
                ),
            ],
        );
        assert_eq!(got.len(), 1, "{got:?}");
        let Event::Http(h) = &got[0] else {
            panic!("not http: {got:?}")
        };
        assert_eq!(h.transaction.method(), Some(&b"GET"[..]));
        assert_eq!(h.transaction.path(), Some(&b"/users?id=1"[..]));
        assert_eq!(h.transaction.status(), Some(200));
        assert_eq!(h.timestamp_ns, 1_000);
        assert_eq!(h.duration_ns, Some(4_000));
        assert_eq!(h.role, Role::Client);
        let s = stats
            .lock()
            .map(|s| (s.http_events, s.flows_opened))
            .unwrap_or_default();
        assert_eq!(s, (1, 1));
    }

    #[test]
    fn server_view_maps_directions() {
        let (got, _) = run(
            DecodeConfig::default(),
            vec![
                data(Role::Server, Direction::Read, 1, REQ, REQ.len() as u64),
                data(Role::Server, Direction::Write, 2, RESP, RESP.len() as u64),
            ],
        );
        assert!(matches!(&got[..], [Event::Http(h)] if h.transaction.status() == Some(200)));
    }

    #[test]
    fn raw_mode_forwards_capture_events_too() {
        let cfg = DecodeConfig {
            raw: true,
            ..DecodeConfig::default()
        };
        let (got, _) = run(
            cfg,
            vec![
                data(Role::Client, Direction::Write, 1, REQ, REQ.len() as u64),
                data(Role::Client, Direction::Read, 2, RESP, RESP.len() as u64),
            ],
        );
        let raw = got
            .iter()
            .filter(|e| matches!(e, Event::TlsData(_)))
            .count();
        let http = got.iter().filter(|e| matches!(e, Event::Http(_))).count();
        assert_eq!((raw, http), (2, 1));
    }

    #[test]
    fn undecodable_traffic_stays_visible() {
        let junk = b"\x16\x03\x01 not a protocol weft decodes \x00\x01";
        let (got, _) = run(
            DecodeConfig::default(),
            vec![data(
                Role::Client,
                Direction::Write,
                1,
                junk,
                junk.len() as u64,
            )],
        );
        assert!(matches!(&got[..], [Event::TlsData(d)] if d.payload == junk));
    }

    #[test]
    fn truncated_call_is_a_gap_not_garbage() {
        // The response body was cut by the capture cap: the transaction is
        // flagged, and the next request on the connection still decodes.
        let big = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
        let (got, stats) = run(
            DecodeConfig::default(),
            vec![
                data(Role::Client, Direction::Write, 1, REQ, REQ.len() as u64),
                data(Role::Client, Direction::Read, 2, big, big.len() as u64 + 90),
                data(Role::Client, Direction::Write, 3, REQ, REQ.len() as u64),
                data(Role::Client, Direction::Read, 4, RESP, RESP.len() as u64),
            ],
        );
        let http = http_events(&got);
        assert_eq!(http.len(), 2, "{got:?}");
        assert!(http.iter().any(|h| h.transaction.status() == Some(200)));
        assert_eq!(stats.lock().map(|s| s.gap_bytes).unwrap_or(0), 90);
    }

    /// The http events among `got`.
    fn http_events(got: &[Event]) -> Vec<&crate::event::Http> {
        got.iter()
            .filter_map(|e| match e {
                Event::Http(h) => Some(h),
                _ => None,
            })
            .collect()
    }

    /// A call with `holes` (body bytes the kernel left out) at `at`.
    fn holed(mut ev: Event, holes: &[(usize, u64)]) -> Event {
        if let Event::TlsData(d) = &mut ev {
            d.holes = holes
                .iter()
                .map(|&(at, len)| crate::event::Hole { at, len })
                .collect();
        }
        ev
    }

    #[test]
    fn holes_inside_a_body_are_stepped_over() {
        // A 100-byte body of which the kernel copied 10, then (next call)
        // left out 85 before its last 5 bytes and the next response.
        let cfg = DecodeConfig {
            limits: Limits {
                max_body_size: 10,
                ..Limits::default()
            },
            ..DecodeConfig::default()
        };
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
        let tail = [&b"vwxyz"[..], RESP].concat();
        let (got, stats) = run(
            cfg,
            vec![
                data(Role::Client, Direction::Write, 1, REQ, REQ.len() as u64),
                data(Role::Client, Direction::Read, 2, head, head.len() as u64),
                data(Role::Client, Direction::Write, 3, REQ, REQ.len() as u64),
                holed(
                    data(
                        Role::Client,
                        Direction::Read,
                        4,
                        &tail,
                        tail.len() as u64 + 85,
                    ),
                    &[(0, 85)],
                ),
            ],
        );
        let http = http_events(&got);
        assert_eq!(http.len(), 2, "{got:?}");
        let first = &http[0].transaction.response;
        assert_eq!(first.body.size, 100);
        assert_eq!(&first.body.data[..], b"0123456789");
        assert!(first.body.truncated && !first.data_lost, "{first:?}");
        assert_eq!(http[1].transaction.status(), Some(200));
        let s = stats.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!((s.gap_bytes, s.proto.body_bytes_skipped), (0, 85));
        assert_eq!((s.proto.skip_gaps, s.proto.desyncs), (0, 0));
    }

    #[test]
    fn a_hole_outside_a_body_is_a_gap() {
        // The kernel got it wrong (a response to HEAD): the hole lands in
        // the next head. Counted, and the connection resynchronises.
        let (got, stats) = run(
            DecodeConfig::default(),
            vec![
                data(Role::Client, Direction::Write, 1, REQ, REQ.len() as u64),
                holed(
                    data(
                        Role::Client,
                        Direction::Read,
                        2,
                        RESP,
                        RESP.len() as u64 + 40,
                    ),
                    &[(5, 40)],
                ),
                data(Role::Client, Direction::Write, 3, REQ, REQ.len() as u64),
                data(Role::Client, Direction::Read, 4, RESP, RESP.len() as u64),
            ],
        );
        let s = stats.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!((s.proto.skip_gaps, s.gap_bytes), (1, 0), "{s:?}");
        assert!(
            got.iter()
                .any(|e| matches!(e, Event::Http(h) if h.transaction.status() == Some(200)))
        );
    }

    #[test]
    fn server_preface_is_a_whole_settings_frame_on_stream_zero() {
        let settings = b"\0\0\x06\x04\0\0\0\0\0\0\x03\0\0\0\x80";
        assert!(is_server_preface(settings));
        assert!(is_server_preface(
            &[&settings[..], b"\0\0\x04\x08"].concat()
        ));
        // An ACK, another stream, a cut frame, a length not of settings.
        assert!(!is_server_preface(b"\0\0\0\x04\x01\0\0\0\0"));
        assert!(!is_server_preface(
            b"\0\0\x06\x04\0\0\0\0\x01\0\x03\0\0\0\x80"
        ));
        assert!(!is_server_preface(&settings[..12]));
        assert!(!is_server_preface(b"\0\0\x05\x04\0\0\0\0\0\0\x03\0\0\0"));
        assert!(!is_server_preface(b""));
    }

    #[test]
    fn calls_lost_with_their_records_are_counted_on_the_connection() {
        // Server side: two exchanges vanish whole (their call records
        // too); the next request's call says so. Every transaction is then
        // either reported or counted.
        let mut next = data(Role::Server, Direction::Read, 5, REQ, REQ.len() as u64);
        if let Event::TlsData(d) = &mut next {
            d.lost_before = crate::event::LostCalls {
                reads: 2,
                writes: 2,
                read_bytes: 2 * REQ.len() as u64,
                write_bytes: 2 * RESP.len() as u64,
            };
        }
        let (got, stats) = run(
            DecodeConfig::default(),
            vec![
                data(Role::Server, Direction::Read, 1, REQ, REQ.len() as u64),
                data(Role::Server, Direction::Write, 2, RESP, RESP.len() as u64),
                next,
                data(Role::Server, Direction::Write, 6, RESP, RESP.len() as u64),
            ],
        );
        let http = got.iter().filter(|e| matches!(e, Event::Http(_))).count();
        let s = stats.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(http, 2, "{got:?}");
        assert_eq!(s.proto.h1_requests_unseen, 2);
        assert_eq!(s.calls_lost_whole, 4);
        assert_eq!(s.gap_bytes, 2 * (REQ.len() + RESP.len()) as u64);
    }
}

#[cfg(test)]
mod pipelining_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn pipelined_requests_in_one_call_pair_in_order() {
        let reqs = b"GET /p0 HTTP/1.1\r\nHost: x\r\n\r\nGET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut input = vec![data(
            Role::Client,
            Direction::Write,
            1,
            reqs,
            reqs.len() as u64,
        )];
        for i in 0..3 {
            let r = format!("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nbody-/p{i}\n");
            input.push(data(
                Role::Client,
                Direction::Read,
                2 + i,
                r.as_bytes(),
                r.len() as u64,
            ));
        }
        let (got, _) = run(DecodeConfig::default(), input);
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = got
            .iter()
            .filter_map(|e| match e {
                Event::Http(h) => Some((
                    h.transaction.path().unwrap_or_default().to_vec(),
                    h.transaction.response.body.data.clone(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(pairs.len(), 3, "{got:?}");
        for (path, body) in pairs {
            let mut want = b"body-".to_vec();
            want.extend_from_slice(&path);
            want.push(b'\n');
            assert_eq!(body, want);
        }
    }
}

#[cfg(test)]
mod websocket_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn upgraded_connection_yields_websocket_messages() {
        let req = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        // RFC 6455 5.7: a masked "Hello" from the client, unmasked from the server.
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (got, stats) = run(
            DecodeConfig::default(),
            vec![
                data(Role::Client, Direction::Write, 1, req, req.len() as u64),
                data(Role::Client, Direction::Read, 2, resp, resp.len() as u64),
                data(
                    Role::Client,
                    Direction::Write,
                    3,
                    &masked,
                    masked.len() as u64,
                ),
                data(
                    Role::Client,
                    Direction::Read,
                    4,
                    &unmasked,
                    unmasked.len() as u64,
                ),
            ],
        );
        let ws: Vec<_> = got
            .iter()
            .filter_map(|e| match e {
                Event::WebSocket(w) => Some(w),
                _ => None,
            })
            .collect();
        assert_eq!(ws.len(), 2, "{got:?}");
        assert!(ws.iter().all(|w| w.message.payload == b"Hello"));
        let raw: Vec<_> = got
            .iter()
            .filter_map(|e| match e {
                Event::TlsData(d) => Some(d.timestamp_ns),
                _ => None,
            })
            .collect();
        assert!(raw.is_empty(), "raw forwarded: {raw:?}");
        assert_eq!(stats.lock().map(|s| s.websocket_messages).unwrap_or(0), 2);
    }
}

#[cfg(test)]
mod byte_by_byte_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn server_reading_its_request_byte_by_byte_still_decodes() {
        let req = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut input: Vec<Event> = req
            .iter()
            .enumerate()
            .map(|(i, b)| data(Role::Server, Direction::Read, i as u64 + 1, &[*b], 1))
            .collect();
        input.push(data(
            Role::Server,
            Direction::Write,
            100,
            resp,
            resp.len() as u64,
        ));
        let (got, _) = run(DecodeConfig::default(), input);
        assert!(
            matches!(&got[..], [Event::Http(h)] if h.transaction.path() == Some(&b"/one"[..])
                && h.transaction.status() == Some(200)),
            "{got:?}"
        );
    }
}

#[cfg(test)]
mod redact_tests {
    use super::tests_support::*;
    use super::*;

    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

    fn payloads(got: &[Event]) -> Vec<Vec<u8>> {
        got.iter()
            .filter_map(|e| match e {
                Event::TlsData(d) => Some(d.payload.clone()),
                _ => None,
            })
            .collect()
    }

    const SECRET_REQ: &[u8] = b"GET /a?access_token=abc123 HTTP/1.1\r\nHost: h\r\n\
        Authorization: Bearer s3cr3t\r\nCookie: sid=xyz\r\n\r\n";

    #[test]
    fn raw_capture_events_are_masked_unless_no_redact() {
        let input = || {
            vec![
                // The request cut in two calls, inside the Authorization value.
                data(Role::Client, Direction::Write, 1, &SECRET_REQ[..70], 70),
                data(
                    Role::Client,
                    Direction::Write,
                    2,
                    &SECRET_REQ[70..],
                    (SECRET_REQ.len() - 70) as u64,
                ),
                data(Role::Client, Direction::Read, 3, RESP, RESP.len() as u64),
            ]
        };
        let raw = DecodeConfig {
            raw: true,
            ..DecodeConfig::default()
        };
        let (got, stats) = run(raw, input());
        let p = payloads(&got).concat();
        assert_eq!(p.len(), SECRET_REQ.len() + RESP.len(), "lengths kept");
        let text = String::from_utf8_lossy(&p);
        for secret in ["abc123", "s3cr3t", "xyz", "cr3t", "s3c"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("Authorization: Bearer ******"), "{text}");
        assert_eq!(stats.lock().expect("stats").payloads_redacted, 2);
        // The HTTP event is there too, masked by the sinks as before.
        assert!(got.iter().any(|e| matches!(e, Event::Http(_))));

        let (got, _) = run(
            DecodeConfig {
                redact: false,
                ..raw
            },
            input(),
        );
        assert_eq!(payloads(&got).concat()[..SECRET_REQ.len()], *SECRET_REQ);
    }

    #[test]
    fn raw_http2_header_blocks_are_blanked() {
        fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
            let len = payload.len() as u32;
            let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
            f.extend_from_slice(&stream.to_be_bytes());
            f.extend_from_slice(payload);
            f
        }
        // GET https://h/ with "authorization: Bearer s3cr3t" as a literal.
        let mut block = vec![0x82, 0x87, 0x84, 0x41, 0x01, b'h', 0x00, 13];
        block.extend_from_slice(b"authorization");
        block.push(13);
        block.extend_from_slice(b"Bearer s3cr3t");
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        client.extend(frame(4, 0, 0, &[]));
        client.extend(frame(1, 0x5, 1, &block));
        let mut server = frame(4, 0, 0, &[]);
        server.extend(frame(1, 0x4, 1, &[0x88]));
        server.extend(frame(0, 0x1, 1, b"hello"));
        let (got, _) = run(
            DecodeConfig {
                raw: true,
                ..DecodeConfig::default()
            },
            vec![
                data(
                    Role::Client,
                    Direction::Write,
                    1,
                    &client,
                    client.len() as u64,
                ),
                data(
                    Role::Client,
                    Direction::Read,
                    2,
                    &server,
                    server.len() as u64,
                ),
            ],
        );
        // Decoded into an HTTP event (masked by the sinks)...
        assert!(
            got.iter()
                .any(|e| matches!(e, Event::Http(h) if h.transaction.status() == Some(200)))
        );
        // ... and the capture events carry no header block, same lengths.
        let p = payloads(&got);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].len(), client.len());
        assert!(!p[0].windows(6).any(|w| w == b"s3cr3t"));
        assert!(p[0].ends_with(&vec![b'*'; block.len()]));
        assert!(p[0].starts_with(b"PRI * HTTP/2.0"));
        assert!(p[1].ends_with(b"hello"), "DATA kept");
    }
}
