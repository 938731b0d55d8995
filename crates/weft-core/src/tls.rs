//! TLS session facts per connection: the stage that turns the kernel's
//! handshake bytes and handshake results ([`TlsWire`]) into [`TlsSession`]
//! facts, stamps them on the connection's capture and http events, and emits
//! one [`TlsHandshake`] event when a handshake completes or fails.
//!
//! It wraps the decoding processor so that it runs on the worker that owns
//! the connection (events are sharded by socket cookie), in ring order.
//!
//! When a handshake counts as done (docs/adr/0003-tls-handshake-facts.md):
//! - completed: the handshake function reported success (OpenSSL/BoringSSL
//!   and wolfSSL return 1, GnuTLS 0), or the first plaintext moved on the
//!   connection (no library moves application data before its handshake);
//! - failed: a fatal plaintext alert went either way, GnuTLS returned a
//!   fatal error, OpenSSL returned 0, or the library freed the connection
//!   before completion.
//!
//! Only connections whose ClientHello weft saw get facts and events.

mod alpn;

use std::sync::Arc;

use crate::FastMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use weft_proto::tls::{HandshakeParser, Side, cipher_name, version_name, version_protocol};

use crate::event::{
    Direction, Event, Flow, ProcessInfo, Role, TlsHandshake, TlsLibrary, TlsSession, TlsWire,
};
use crate::pipeline::Processor;

/// Counters of the session stage, shared by all workers.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshake events emitted: completed.
    pub established: AtomicU64,
    /// Handshake events emitted: failed.
    pub failed: AtomicU64,
    /// Handshake byte records that did not continue their stream (lost in
    /// the ring or out of order): that direction is not parsed further.
    pub hello_gaps: AtomicU64,
    /// Connections forgotten because the table was full.
    pub evicted: AtomicU64,
}

/// Connections tracked per worker at most (least recently active dropped).
pub const MAX_CONNS: usize = 65_536;
/// A connection with no TLS activity for this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(120);

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    Pending,
    Done,
}

struct Conn {
    /// Gone once the handshake is decided with both hellos seen: its
    /// buffers and parsed hellos are not needed after that, and every live
    /// connection holds a `Conn`.
    parser: Option<Box<HandshakeParser>>,
    /// A ClientHello was parsed (kept when the parser is dropped).
    hello_seen: bool,
    /// The version the ServerHello chose, once parsed.
    server_version: Option<u16>,
    /// When the kernel reported the connection's end.
    ended: Option<Instant>,
    next_offset: [u32; 2],
    broken: [bool; 2],
    first_ns: Option<u64>,
    ctx: Option<(Arc<ProcessInfo>, Flow, TlsLibrary)>,
    session: Arc<TlsSession>,
    state: State,
    /// A failure decided before the process was known: emitted when it is.
    failure_unreported: Option<u64>,
    /// The client's first application bytes were looked at (`alpn`).
    client_data_seen: bool,
    last_active: Instant,
}

impl Conn {
    fn new() -> Self {
        Conn {
            parser: Some(Box::new(HandshakeParser::new())),
            hello_seen: false,
            server_version: None,
            ended: None,
            next_offset: [0; 2],
            broken: [false; 2],
            first_ns: None,
            ctx: None,
            session: Arc::new(TlsSession::default()),
            state: State::Pending,
            failure_unreported: None,
            client_data_seen: false,
            last_active: Instant::now(),
        }
    }

    fn seen_hello(&self) -> bool {
        self.hello_seen
    }

    /// Drops the parser once nothing it could still parse matters: the
    /// handshake is decided and the ServerHello (or a failure) is known.
    fn release_parser(&mut self) {
        if self.state == State::Done
            && (self.session.established == Some(false)
                || self
                    .parser
                    .as_ref()
                    .is_some_and(|p| p.server_hello().is_some()))
        {
            self.parser = None;
        }
    }

    /// Rebuild the session facts from what the parser knows.
    fn refresh(&mut self) {
        let Some(parser) = self.parser.as_deref() else {
            return;
        };
        let mut s = (*self.session).clone();
        if parser.client_hello().is_some() {
            self.hello_seen = true;
        }
        if let Some(sh) = parser.server_hello() {
            self.server_version = Some(sh.version);
        }
        hello_facts(parser, &mut s);
        if s != *self.session {
            self.session = Arc::new(s);
        }
    }

    /// The client's first application bytes on this connection: when the
    /// chosen ALPN is hidden (TLS 1.3, or no ServerHello seen) and nobody
    /// told it, infer it from what the client speaks (`alpn`).
    fn first_client_data(&mut self, bytes: &[u8]) {
        if self.client_data_seen {
            return;
        }
        self.client_data_seen = true;
        let hidden = self.server_version.is_none_or(|v| v >= 0x0304);
        if !hidden || self.session.next_protocol.is_some() {
            return;
        }
        if let Some(p) = alpn::infer(&self.session.alpn_offered, bytes) {
            let mut s = (*self.session).clone();
            s.next_protocol = Some(p.to_string());
            s.next_protocol_inferred = true;
            self.session = Arc::new(s);
        }
    }

    /// Decide the handshake: `ok` or the failure's reason, at `ts`.
    fn decide(&mut self, ts: u64, failure: Option<String>) {
        if self.state != State::Pending {
            return;
        }
        self.state = State::Done;
        let mut s = (*self.session).clone();
        s.established = Some(failure.is_none());
        s.handshake_ns = self.first_ns.map(|f| ts.saturating_sub(f));
        s.failure = failure;
        self.session = Arc::new(s);
        self.failure_unreported = Some(ts);
    }

    /// The handshake event, once decided and the process is known.
    fn take_event(&mut self, stats: &TlsStats) -> Option<Event> {
        let ts = self.failure_unreported?;
        let (process, flow, library) = self.ctx.clone()?;
        self.failure_unreported = None;
        if self.session.established == Some(true) {
            stats.established.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        Some(Event::TlsHandshake(TlsHandshake {
            timestamp_ns: ts,
            process,
            flow: Some(flow),
            library,
            session: Arc::clone(&self.session),
        }))
    }
}

/// Put what the hellos say on `s`: server name, offered ALPN, versions and
/// cipher suites and JA4 from the ClientHello; version, cipher suite, TLS 1.2
/// ALPN and JA4S from the ServerHello. Shared by the syscall path (here) and
/// the packet path (`crate::wire_tls`).
pub fn hello_facts(parser: &HandshakeParser, s: &mut TlsSession) {
    if let Some(ch) = parser.client_hello() {
        s.server_name.clone_from(&ch.server_name);
        s.alpn_offered.clone_from(&ch.alpn);
        s.client_versions = if ch.versions.is_empty() {
            vec![ch.legacy_version]
        } else {
            ch.versions.clone()
        };
        s.client_ciphers.clone_from(&ch.cipher_suites);
        s.ja4 = Some(ch.fingerprint.ja4());
    }
    if let Some(sh) = parser.server_hello() {
        s.version = Some(version_name(sh.version));
        s.version_protocol = Some(version_protocol(sh.version));
        s.cipher = Some(cipher_name(sh.cipher_suite));
        if sh.alpn.is_some() {
            s.next_protocol.clone_from(&sh.alpn);
        }
        s.ja4s = Some(sh.fingerprint.ja4s());
    }
}

fn side_of(d: Direction) -> (Side, usize) {
    match d {
        Direction::Write => (Side::Sent, 0),
        Direction::Read => (Side::Received, 1),
    }
}

/// Whether a handshake function's return value means: done (`Some(true)`),
/// failed (`Some(false)`), or "call again" / not decidable (`None`).
fn handshake_result(lib: TlsLibrary, value: i64) -> Option<bool> {
    match lib {
        TlsLibrary::GnuTls => match value {
            0 => Some(true),
            // EAGAIN, INTERRUPTED, WARNING_ALERT_RECEIVED, REHANDSHAKE,
            // GOT_APPLICATION_DATA, and the TLS 1.3 post-handshake
            // REAUTH_REQUEST: not fatal.
            -28 | -52 | -16 | -37 | -38 | -111 => None,
            v if v < 0 => Some(false),
            _ => None,
        },
        // OpenSSL, BoringSSL, wolfSSL: 1 done, 0 failed (controlled shutdown),
        // < 0 "want read/write" or an error only SSL_get_error can tell.
        _ => match value {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        },
    }
}

/// The session stage wrapped around the decoding processor `P`.
pub struct TlsSessions<P> {
    inner: P,
    conns: FastMap<u64, Box<Conn>>,
    stats: Arc<TlsStats>,
    clock: crate::decode::CoarseClock,
}

impl<P: Processor> TlsSessions<P> {
    pub fn new(inner: P, stats: Arc<TlsStats>) -> Self {
        TlsSessions {
            inner,
            conns: FastMap::default(),
            stats,
            clock: crate::decode::CoarseClock::new(),
        }
    }

    fn conn(&mut self, cookie: u64) -> &mut Conn {
        if !self.conns.contains_key(&cookie) && self.conns.len() >= MAX_CONNS {
            let oldest = self
                .conns
                .iter()
                .min_by_key(|(_, c)| c.last_active)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.conns.remove(&k);
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let c = self
            .conns
            .entry(cookie)
            .or_insert_with(|| Box::new(Conn::new()));
        c.last_active = Instant::now();
        c
    }

    fn on_wire(&mut self, w: TlsWire, emit: &mut dyn FnMut(Event)) {
        let stats = Arc::clone(&self.stats);
        match w {
            TlsWire::Hello {
                cookie,
                timestamp_ns,
                direction,
                offset,
                bytes,
            } => {
                let c = self.conn(cookie);
                let (side, i) = side_of(direction);
                if c.broken[i] {
                    return;
                }
                if offset != c.next_offset[i] {
                    c.broken[i] = true;
                    stats.hello_gaps.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                c.next_offset[i] = offset.saturating_add(bytes.len() as u32);
                c.first_ns = Some(c.first_ns.map_or(timestamp_ns, |f| f.min(timestamp_ns)));
                let Some(parser) = c.parser.as_deref_mut() else {
                    return;
                };
                if parser.feed(side, &bytes) {
                    let alert = parser.alert();
                    c.refresh();
                    if let Some(a) = alert.filter(|a| a.level == 2)
                        && c.seen_hello()
                    {
                        let how = match a.side {
                            Side::Sent => "sent",
                            Side::Received => "received",
                        };
                        c.decide(
                            timestamp_ns,
                            Some(format!("alert {} {how}", a.description_name())),
                        );
                    }
                }
                c.release_parser();
                if let Some(ev) = c.take_event(&stats) {
                    emit(ev);
                }
            }
            TlsWire::HandshakeReturn {
                timestamp_ns,
                process,
                flow,
                library,
                value,
            } => {
                let Some(c) = self.conns.get_mut(&flow.cookie) else {
                    return;
                };
                c.last_active = Instant::now();
                c.ctx = Some((process, flow, library));
                let mut hold = false;
                if c.seen_hello() {
                    match handshake_result(library, value) {
                        Some(true) => {
                            c.decide(timestamp_ns, None);
                            // Applications ask for the chosen ALPN right
                            // after: the event waits for it (or for the
                            // next event on the connection, or a tick).
                            hold = true;
                        }
                        Some(false) => c.decide(
                            timestamp_ns,
                            Some(format!("handshake function returned {value}")),
                        ),
                        None => {}
                    }
                }
                c.release_parser();
                if !hold && let Some(ev) = c.take_event(&stats) {
                    emit(ev);
                }
            }
            TlsWire::Alpn { cookie, protocol } => {
                let Some(c) = self.conns.get_mut(&cookie) else {
                    return;
                };
                if c.session.next_protocol.as_deref() != Some(protocol.as_str())
                    || c.session.next_protocol_inferred
                {
                    let mut s = (*c.session).clone();
                    s.next_protocol = Some(protocol);
                    s.next_protocol_inferred = false;
                    c.session = Arc::new(s);
                }
                if let Some(ev) = c.take_event(&stats) {
                    emit(ev);
                }
            }
            TlsWire::Freed {
                timestamp_ns,
                process,
                flow,
                library,
            } => {
                let Some(mut c) = self.conns.remove(&flow.cookie) else {
                    return;
                };
                c.ctx = Some((process, flow, library));
                if c.seen_hello() {
                    c.decide(
                        timestamp_ns,
                        Some("closed before the handshake completed".into()),
                    );
                }
                if let Some(ev) = c.take_event(&stats) {
                    emit(ev);
                }
            }
        }
    }
}

/// Put the connection's session facts on an http event.
fn stamp(conns: &FastMap<u64, Box<Conn>>, mut ev: Event) -> Event {
    if let Event::Http(h) = &mut ev
        && h.tls.is_none()
        && let Some(c) = h.flow.and_then(|f| conns.get(&f.cookie))
        && c.seen_hello()
    {
        h.tls = Some(Arc::clone(&c.session));
    }
    ev
}

impl<P: Processor> Processor for TlsSessions<P> {
    fn process(&mut self, mut ev: Event, emit: &mut dyn FnMut(Event)) {
        match &mut ev {
            Event::TlsWire(_) => {
                if let Event::TlsWire(w) = ev {
                    self.on_wire(w, emit);
                }
                return;
            }
            Event::TlsData(d) => {
                // Changed in place: the event is handed on without a move.
                if let Some(f) = d.flow
                    && let Some(c) = self.conns.get_mut(&f.cookie)
                    && c.seen_hello()
                {
                    c.last_active = self.clock.now(d.timestamp_ns);
                    if c.ctx.is_none() {
                        c.ctx = Some((Arc::clone(&d.process), f, d.library));
                    }
                    let from_client = matches!(
                        (f.role, d.direction),
                        (Role::Client, Direction::Write) | (Role::Server, Direction::Read)
                    );
                    if from_client {
                        c.first_client_data(&d.payload);
                    }
                    // Plaintext moved: the handshake is complete (at the
                    // latest when this call began).
                    let began = d.timestamp_ns.saturating_sub(d.duration_ns);
                    c.decide(began, None);
                    if let Some(hs) = c.take_event(&self.stats) {
                        emit(hs);
                    }
                    d.tls = Some(Arc::clone(&c.session));
                }
            }
            Event::Connection(c) if c.phase == crate::event::ConnectionPhase::End => {
                // Closed: a handshake event still held goes out, the
                // decoder flushes the flow (stamped with the session's
                // facts), then the session is forgotten.
                let cookie = c.flow.cookie;
                if let Some(conn) = self.conns.get_mut(&cookie) {
                    if let Some(hs) = conn.take_event(&self.stats) {
                        emit(hs);
                    }
                    // The decoder may hold the flow a moment longer (late
                    // reads, see decode::END_GRACE): the session stays until
                    // then to stamp what it flushes.
                    conn.ended = Some(Instant::now());
                }
            }
            _ => {}
        }
        let conns = &self.conns;
        self.inner.process(ev, &mut |e| emit(stamp(conns, e)));
    }

    fn take_spare_buffers(&mut self, out: &mut crate::pipeline::Buffers) {
        self.inner.take_spare_buffers(out);
    }

    fn tick(&mut self, now: Instant, emit: &mut dyn FnMut(Event)) {
        self.clock.expire();
        // Handshake events held for the chosen ALPN go out now.
        for c in self.conns.values_mut() {
            if let Some(ev) = c.take_event(&self.stats) {
                emit(ev);
            }
        }
        let conns = &self.conns;
        self.inner.tick(now, &mut |e| emit(stamp(conns, e)));
        // Ended connections go once the decoder has let their flows go
        // (twice its grace: the two stages' clocks were read apart).
        self.conns.retain(|_, c| {
            now.duration_since(c.last_active) < IDLE
                && c.ended
                    .is_none_or(|t| now.saturating_duration_since(t) < 2 * crate::decode::END_GRACE)
        });
        crate::shrink_sparse(&mut self.conns);
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Event)) {
        for c in self.conns.values_mut() {
            if let Some(ev) = c.take_event(&self.stats) {
                emit(ev);
            }
        }
        let conns = &self.conns;
        self.inner.finish(&mut |e| emit(stamp(conns, e)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Endpoint, Role, TlsData};
    use crate::pipeline::PassThrough;

    const C2S: &[u8] = include_bytes!("../../weft-proto/tests/fixtures/tls/tls13_c2s.bin");
    const S2C: &[u8] = include_bytes!("../../weft-proto/tests/fixtures/tls/tls13_s2c.bin");

    fn proc_info() -> Arc<ProcessInfo> {
        Arc::new(ProcessInfo {
            pid: 7,
            ppid: 1,
            name: "curl".into(),
            executable: None,
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            start_time_ns: 1,
            entity_id: "e".into(),
        })
    }

    fn flow() -> Flow {
        let ep = |port| Endpoint {
            ip: "127.0.0.1".parse().expect("ip"),
            port,
        };
        Flow {
            cookie: 42,
            local: ep(40000),
            remote: ep(443),
            role: Role::Client,
        }
    }

    fn hello(dir: Direction, offset: u32, ts: u64, b: &[u8]) -> Event {
        Event::TlsWire(TlsWire::Hello {
            cookie: 42,
            timestamp_ns: ts,
            direction: dir,
            offset,
            bytes: b.to_vec(),
        })
    }

    fn data(ts: u64) -> Event {
        Event::TlsData(TlsData {
            timestamp_ns: ts,
            duration_ns: 10,
            process: proc_info(),
            tid: 7,
            flow: Some(flow()),
            library: TlsLibrary::OpenSsl,
            direction: Direction::Write,
            payload: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            length: 18,
            holes: Vec::new(),
            tls: None,
            first_bytes: false,
            destination_domain: None,
            lost_before: Default::default(),
        })
    }

    fn run(input: Vec<Event>) -> (Vec<Event>, Arc<TlsStats>) {
        let stats = Arc::new(TlsStats::default());
        let mut s = TlsSessions::new(PassThrough, Arc::clone(&stats));
        let mut out = Vec::new();
        for ev in input {
            s.process(ev, &mut |e| out.push(e));
        }
        (out, stats)
    }

    #[test]
    fn handshake_then_data_gives_one_event_and_facts() {
        let (out, stats) = run(vec![
            hello(Direction::Write, 0, 1_000, &C2S[..5]),
            hello(Direction::Write, 5, 1_000, &C2S[5..]),
            hello(Direction::Read, 0, 3_000, S2C),
            Event::TlsWire(TlsWire::HandshakeReturn {
                timestamp_ns: 5_000,
                process: proc_info(),
                flow: flow(),
                library: TlsLibrary::OpenSsl,
                value: 1,
            }),
            data(9_000),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        let Event::TlsHandshake(h) = &out[0] else {
            panic!("handshake event first: {out:?}")
        };
        assert_eq!(h.session.established, Some(true));
        assert_eq!(h.session.handshake_ns, Some(4_000));
        assert_eq!(h.session.version.as_deref(), Some("1.3"));
        assert_eq!(h.session.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        assert_eq!(h.session.server_name.as_deref(), Some("weft.test"));
        assert_eq!(h.session.alpn_offered, ["h2", "http/1.1"]);
        let Event::TlsData(d) = &out[1] else {
            panic!("data second")
        };
        assert_eq!(d.tls.as_deref(), Some(&*h.session));
        assert_eq!(stats.established.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn fatal_alert_then_free_is_one_failure() {
        // The ClientHello record alone (the fixture goes on with the
        // client's CCS and encrypted Finished).
        let ch = 5 + usize::from(u16::from_be_bytes([C2S[3], C2S[4]]));
        let (out, stats) = run(vec![
            hello(Direction::Write, 0, 1_000, &C2S[..ch]),
            hello(Direction::Read, 0, 2_000, S2C),
            hello(Direction::Write, ch as u32, 2_500, &[21, 3, 3, 0, 2, 2, 48]),
            Event::TlsWire(TlsWire::Freed {
                timestamp_ns: 3_000,
                process: proc_info(),
                flow: flow(),
                library: TlsLibrary::OpenSsl,
            }),
        ]);
        assert_eq!(out.len(), 1, "{out:?}");
        let Event::TlsHandshake(h) = &out[0] else {
            panic!("handshake event")
        };
        assert_eq!(h.session.established, Some(false));
        assert_eq!(h.session.failure.as_deref(), Some("alert unknown_ca sent"));
        assert_eq!(h.session.handshake_ns, Some(1_500));
        assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn gap_stops_the_direction_and_data_without_hello_has_no_facts() {
        let (out, stats) = run(vec![
            hello(Direction::Write, 5, 1_000, &C2S[5..]),
            data(9_000),
        ]);
        assert_eq!(stats.hello_gaps.load(Ordering::Relaxed), 1);
        assert!(matches!(&out[..], [Event::TlsData(d)] if d.tls.is_none()));
    }

    fn data_with(payload: &[u8], role: Role, direction: Direction) -> Event {
        let Event::TlsData(mut d) = data(9_000) else {
            unreachable!()
        };
        d.payload = payload.to_vec();
        d.length = payload.len() as u64;
        d.direction = direction;
        if let Some(f) = d.flow.as_mut() {
            f.role = role;
        }
        Event::TlsData(d)
    }

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

    fn done() -> Event {
        Event::TlsWire(TlsWire::HandshakeReturn {
            timestamp_ns: 5_000,
            process: proc_info(),
            flow: flow(),
            library: TlsLibrary::BoringSsl,
            value: 1,
        })
    }

    fn next_protocol(ev: &Event) -> (Option<&str>, bool) {
        let s = match ev {
            Event::TlsHandshake(h) => Some(&*h.session),
            Event::TlsData(d) => d.tls.as_deref(),
            _ => None,
        };
        s.map_or((None, false), |s| {
            (s.next_protocol.as_deref(), s.next_protocol_inferred)
        })
    }

    #[test]
    fn tls13_alpn_is_inferred_from_the_clients_first_bytes() {
        // The client offered h2 and http/1.1; nobody asked the library.
        for (role, dir, first, want) in [
            (Role::Client, Direction::Write, PREFACE, Some("h2")),
            (Role::Server, Direction::Read, PREFACE, Some("h2")),
            (
                Role::Client,
                Direction::Write,
                &b"GET / HTTP/1.1\r\n\r\n"[..],
                Some("http/1.1"),
            ),
            // The server's first bytes say nothing about the client's.
            (Role::Client, Direction::Read, PREFACE, None),
            (Role::Unknown, Direction::Write, PREFACE, None),
        ] {
            let (out, _) = run(vec![
                hello(Direction::Write, 0, 1_000, C2S),
                hello(Direction::Read, 0, 3_000, S2C),
                done(),
                data_with(first, role, dir),
            ]);
            assert_eq!(out.len(), 2, "{out:?}");
            assert_eq!(
                next_protocol(&out[0]),
                (want, want.is_some()),
                "{role:?} {dir:?}"
            );
            assert_eq!(next_protocol(&out[1]), next_protocol(&out[0]));
        }
    }

    /// TLS 1.2 shows the server's choice in the clear: what it says (even
    /// "nothing chosen") is never overridden by a guess.
    #[test]
    fn tls12_server_hello_is_never_second_guessed() {
        const C12: &[u8] = include_bytes!("../../weft-proto/tests/fixtures/tls/tls12_c2s.bin");
        const S12: &[u8] = include_bytes!("../../weft-proto/tests/fixtures/tls/tls12_s2c.bin");
        let (out, _) = run(vec![
            hello(Direction::Write, 0, 1_000, C12),
            hello(Direction::Read, 0, 3_000, S12),
            done(),
            data_with(PREFACE, Role::Client, Direction::Write),
        ]);
        let Event::TlsHandshake(h) = &out[0] else {
            panic!("handshake event first: {out:?}")
        };
        assert_eq!(h.session.version.as_deref(), Some("1.2"));
        assert!(!h.session.next_protocol_inferred, "{h:?}");
    }

    #[test]
    fn only_the_first_client_bytes_count_and_the_library_wins() {
        let (out, _) = run(vec![
            hello(Direction::Write, 0, 1_000, C2S),
            hello(Direction::Read, 0, 3_000, S2C),
            done(),
            data_with(b"hello", Role::Client, Direction::Write),
            data_with(PREFACE, Role::Client, Direction::Write),
        ]);
        assert_eq!(next_protocol(&out[2]), (None, false));
        // The library's answer replaces an inferred one.
        let (out, _) = run(vec![
            hello(Direction::Write, 0, 1_000, C2S),
            hello(Direction::Read, 0, 3_000, S2C),
            done(),
            data_with(b"GET / HTTP/1.1\r\n\r\n", Role::Client, Direction::Write),
            Event::TlsWire(TlsWire::Alpn {
                cookie: 42,
                protocol: "h2".into(),
            }),
            data_with(PREFACE, Role::Client, Direction::Write),
        ]);
        assert_eq!(next_protocol(&out[1]), (Some("http/1.1"), true));
        assert_eq!(next_protocol(&out[2]), (Some("h2"), false));
    }

    #[test]
    fn alpn_from_the_library_joins_the_held_handshake_event() {
        let (out, _) = run(vec![
            hello(Direction::Write, 0, 1_000, C2S),
            hello(Direction::Read, 0, 3_000, S2C),
            Event::TlsWire(TlsWire::HandshakeReturn {
                timestamp_ns: 5_000,
                process: proc_info(),
                flow: flow(),
                library: TlsLibrary::OpenSsl,
                value: 1,
            }),
            Event::TlsWire(TlsWire::Alpn {
                cookie: 42,
                protocol: "h2".into(),
            }),
            data(9_000),
        ]);
        let Event::TlsHandshake(h) = &out[0] else {
            panic!("handshake event first: {out:?}")
        };
        assert_eq!(h.session.next_protocol.as_deref(), Some("h2"));
        let Event::TlsData(d) = &out[1] else {
            panic!("data second")
        };
        assert_eq!(
            d.tls.as_ref().and_then(|s| s.next_protocol.as_deref()),
            Some("h2")
        );
    }

    #[test]
    fn gnutls_eagain_is_not_a_failure() {
        assert_eq!(handshake_result(TlsLibrary::GnuTls, -28), None);
        assert_eq!(handshake_result(TlsLibrary::GnuTls, 0), Some(true));
        assert_eq!(handshake_result(TlsLibrary::GnuTls, -12), Some(false));
        assert_eq!(handshake_result(TlsLibrary::OpenSsl, -1), None);
    }
}
