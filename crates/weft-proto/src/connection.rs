//! [`ConnectionDecoder`]: picks HTTP/1 or HTTP/2 for a connection and
//! follows `h2c` and WebSocket upgrades.

use crate::http1::Http1Decoder;
use crate::http2::{Http2Decoder, PrefaceMatch, match_preface, plausible_frame_header};
use crate::websocket::{DeflateParams, WsDecoder};
use crate::{Counters, Direction, Event, Limits, Protocol};

/// Decodes one connection whatever its HTTP version.
///
/// The protocol comes from the TLS ALPN result when the caller knows it
/// (`h2` -> [`Protocol::Http2`], `http/1.1` -> [`Protocol::Http1`]), else it
/// is detected: the HTTP/2 client preface, or a request line, at the start of
/// the client's bytes (for a connection joined mid-way, also a response line
/// or a plausible HTTP/2 frame header at the start of a record). Bytes that
/// arrive before the decision are held (bounded by
/// `Limits::h1_max_header_bytes` per direction). An HTTP/1 connection that
/// upgrades to `h2c` continues in an HTTP/2 decoder, one that upgrades to
/// `websocket` in a [`WsDecoder`] (with the permessage-deflate parameters of
/// the `101` response), which emits [`Event::WebSocket`] messages; the
/// HTTP/2 decoder does the same for extended CONNECT streams (RFC 8441).
/// Other upgrades (CONNECT tunnels, ...) and unrecognised protocols are
/// counted in [`Counters::undecoded_bytes`] and otherwise ignored.
#[derive(Debug, Clone)]
pub struct ConnectionDecoder {
    limits: Limits,
    mid_connection: bool,
    /// The connection is known to have started after the capture did (its
    /// TLS handshake was seen): HTTP/2 client streams start at 1, even when
    /// the first bytes captured are not its first (see
    /// [`Self::streams_start_at_one`]).
    started_seen: bool,
    inner: Inner,
    /// Bytes per direction held until the protocol is known.
    early: [Vec<u8>; 2],
    counters: OwnCounters,
}

/// What this decoder counts itself (the protocol decoders keep their own
/// [`Counters`]): not a whole `Counters` (304 bytes) in every live
/// connection, which costs 3 MB with 10,000 of them.
#[derive(Debug, Clone, Default)]
struct OwnCounters {
    undecoded_bytes: u64,
    gap_bytes: u64,
    /// Rare counts, boxed: those of an HTTP/1 decoder replaced by an
    /// upgrade, and holes skipped while no protocol decoder runs.
    replaced: Option<Box<Counters>>,
}

#[derive(Debug, Clone)]
enum Inner {
    Detecting,
    Http1(Box<Http1Decoder>),
    Http2(Box<Http2Decoder>),
    /// WebSocket after an HTTP/1.1 upgrade.
    WebSocket(Box<WsDecoder>),
    /// Not a protocol we decode.
    Opaque,
}

/// How long a client prefix may stay ambiguous at connection start.
const MAX_DETECT: usize = 32;

impl ConnectionDecoder {
    /// A decoder for a connection observed from its first byte. `alpn` is
    /// the negotiated protocol when known.
    pub fn new(limits: &Limits, alpn: Option<Protocol>) -> Self {
        let mut d = ConnectionDecoder {
            limits: *limits,
            mid_connection: false,
            started_seen: false,
            inner: Inner::Detecting,
            early: [Vec::new(), Vec::new()],
            counters: OwnCounters::default(),
        };
        d.inner = match alpn {
            Some(Protocol::Http1) => Inner::Http1(Box::new(Http1Decoder::new(limits))),
            Some(Protocol::Http2) => Inner::Http2(Box::new(Http2Decoder::new(limits))),
            None => Inner::Detecting,
        };
        d
    }

    /// A decoder for a connection already in progress.
    pub fn new_mid_connection(limits: &Limits, alpn: Option<Protocol>) -> Self {
        let mut d = ConnectionDecoder::new(limits, None);
        d.mid_connection = true;
        d.inner = match alpn {
            Some(Protocol::Http1) => {
                Inner::Http1(Box::new(Http1Decoder::new_mid_connection(limits)))
            }
            Some(Protocol::Http2) => {
                Inner::Http2(Box::new(Http2Decoder::new_mid_connection(limits)))
            }
            None => Inner::Detecting,
        };
        d
    }

    /// The HTTP version in use, once known; `None` after a switch to a
    /// protocol other than HTTP/2 (see [`is_websocket`](Self::is_websocket)).
    pub fn protocol(&self) -> Option<Protocol> {
        match self.inner {
            Inner::Http1(_) => Some(Protocol::Http1),
            Inner::Http2(_) => Some(Protocol::Http2),
            Inner::Detecting | Inner::Opaque | Inner::WebSocket(_) => None,
        }
    }

    /// Whether the protocol is still being detected (the bytes fed so far
    /// are held until it is known).
    pub fn is_detecting(&self) -> bool {
        matches!(self.inner, Inner::Detecting)
    }

    /// Whether the connection switched from HTTP/1.1 to WebSocket.
    pub fn is_websocket(&self) -> bool {
        matches!(self.inner, Inner::WebSocket(_))
    }

    /// Like [`feed`](Self::feed), with the caller's clock: messages get
    /// `first_ns`/`last_ns` from the feeds that began and completed them
    /// (ns in any clock the caller likes, 0 meaning unknown).
    pub fn feed_at(&mut self, dir: Direction, bytes: &[u8], now: u64, out: &mut Vec<Event>) {
        self.at(now, out, |d, out| d.feed(dir, bytes, out));
    }

    /// Like [`skip`](Self::skip), with the caller's clock (see
    /// [`feed_at`](Self::feed_at)).
    pub fn skip_at(&mut self, dir: Direction, n: u64, now: u64, out: &mut Vec<Event>) {
        self.at(now, out, |d, out| d.skip(dir, n, out));
    }

    /// Runs `step` with the caller's clock at `now`, stamping what it
    /// emitted and what is open.
    #[inline]
    fn at(
        &mut self,
        now: u64,
        out: &mut Vec<Event>,
        step: impl FnOnce(&mut Self, &mut Vec<Event>),
    ) {
        let before = out.len();
        if let Inner::Http2(d) = &mut self.inner {
            d.set_now(now);
        }
        step(self, out);
        if let Inner::Http2(d) = &mut self.inner {
            d.expire_idle(now, out);
        }
        for ev in &mut out[before..] {
            if let Event::WebSocket(m) = ev {
                m.stamp(now);
            }
            if let Event::Transaction(tx) = ev {
                tx.stamp(now);
                if tx.response.last_ns == 0 {
                    tx.response.last_ns = now;
                }
            }
        }
        match &mut self.inner {
            Inner::Http1(d) => d.stamp_open(now),
            Inner::Http2(d) => d.stamp_open(now),
            Inner::WebSocket(d) => d.stamp_open(now),
            Inner::Detecting | Inner::Opaque => {}
        }
    }

    /// Decodes `bytes` sent in direction `dir`, appending events to `out`.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], out: &mut Vec<Event>) {
        if matches!(self.inner, Inner::Detecting) {
            self.detect(dir, bytes, out);
            return;
        }
        self.feed_inner(dir, bytes, out);
    }

    fn feed_inner(&mut self, dir: Direction, bytes: &[u8], out: &mut Vec<Event>) {
        let first_new = out.len();
        match &mut self.inner {
            Inner::Http1(d) => d.feed(dir, bytes, out),
            Inner::Http2(d) => d.feed(dir, bytes, out),
            Inner::WebSocket(d) => {
                d.feed(dir, bytes, out);
                return;
            }
            Inner::Opaque | Inner::Detecting => {
                self.counters.undecoded_bytes += bytes.len() as u64;
                return;
            }
        }
        // Follow protocol switches announced by the HTTP/1 decoder.
        let upgrade = out[first_new..].iter().find_map(|e| match e {
            Event::Upgrade {
                stream_id,
                protocol,
                client_data,
                server_data,
            } => Some((
                *stream_id,
                protocol.clone(),
                client_data.clone(),
                server_data.clone(),
            )),
            _ => None,
        });
        if let Some((stream_id, protocol, client, server)) = upgrade {
            // The transaction that switched was emitted just before.
            let deflate = out[first_new..].iter().rev().find_map(|e| match e {
                Event::Transaction(tx) if tx.stream_id == stream_id => {
                    Some(DeflateParams::from_headers(&tx.response.headers))
                }
                _ => None,
            });
            self.switch(
                stream_id,
                &protocol,
                deflate.flatten(),
                [&client, &server],
                out,
            );
        }
    }

    fn switch(
        &mut self,
        stream_id: u32,
        protocol: &[u8],
        deflate: Option<DeflateParams>,
        [client, server]: [&[u8]; 2],
        out: &mut Vec<Event>,
    ) {
        if let Inner::Http1(old) = &mut self.inner {
            let c = old.take_counters();
            self.counters
                .replaced
                .get_or_insert_with(Box::default)
                .add(&c);
        }
        if protocol == b"h2c" {
            let mut h2 = Box::new(Http2Decoder::new(&self.limits));
            h2.note_h2c_upgrade();
            self.inner = Inner::Http2(h2);
            self.feed_inner(Direction::ClientToServer, client, out);
            self.feed_inner(Direction::ServerToClient, server, out);
        } else if protocol
            .split(|&b| b == b',')
            .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"))
        {
            let ws = WsDecoder::new(&self.limits, stream_id, deflate);
            self.inner = Inner::WebSocket(Box::new(ws));
            self.feed_inner(Direction::ClientToServer, client, out);
            self.feed_inner(Direction::ServerToClient, server, out);
        } else {
            self.inner = Inner::Opaque;
            self.counters.undecoded_bytes += (client.len() + server.len()) as u64;
        }
    }

    fn detect(&mut self, dir: Direction, bytes: &[u8], out: &mut Vec<Event>) {
        let d = dir.index();
        let decided = if self.mid_connection {
            // Each record's start is a candidate.
            match dir {
                Direction::ClientToServer if Http1Decoder::looks_like_request(bytes) => {
                    Some(Protocol::Http1)
                }
                Direction::ServerToClient if bytes.starts_with(b"HTTP/1.") => Some(Protocol::Http1),
                _ if match_preface(bytes) == PrefaceMatch::Match
                    || plausible_frame_header(bytes) =>
                {
                    Some(Protocol::Http2)
                }
                _ => None,
            }
        } else {
            self.early[d].extend_from_slice(bytes);
            let client = &self.early[0];
            let preface = match_preface(client);
            if preface == PrefaceMatch::Match {
                Some(Protocol::Http2)
            } else if preface == PrefaceMatch::NeedMore && !client.is_empty() {
                None
            } else if Http1Decoder::looks_like_request(client)
                || self.early[1].starts_with(b"HTTP/1.")
            {
                Some(Protocol::Http1)
            } else if (preface == PrefaceMatch::NeedMore
                || (client.len() < MAX_DETECT && could_be_method(client)))
                && self
                    .early
                    .iter()
                    .all(|e| e.len() <= self.limits.h1_max_header_bytes as usize)
            {
                None
            } else {
                self.inner = Inner::Opaque;
                self.counters.undecoded_bytes +=
                    self.early.iter().map(Vec::len).sum::<usize>() as u64;
                self.early = [Vec::new(), Vec::new()];
                return;
            }
        };
        let Some(p) = decided else {
            if self.mid_connection {
                self.counters.undecoded_bytes += bytes.len() as u64;
            }
            return;
        };
        let limits = &self.limits;
        self.inner = match (p, self.mid_connection) {
            (Protocol::Http1, false) => Inner::Http1(Box::new(Http1Decoder::new(limits))),
            (Protocol::Http1, true) => {
                Inner::Http1(Box::new(Http1Decoder::new_mid_connection(limits)))
            }
            (Protocol::Http2, false) => Inner::Http2(Box::new(Http2Decoder::new(limits))),
            (Protocol::Http2, true) => {
                Inner::Http2(Box::new(Http2Decoder::new_mid_connection(limits)))
            }
        };
        if self.started_seen
            && let Inner::Http2(d) = &mut self.inner
        {
            d.set_streams_from_start();
        }
        if self.mid_connection {
            self.feed_inner(dir, bytes, out);
        } else {
            let [client, server] = std::mem::take(&mut self.early);
            self.feed_inner(Direction::ClientToServer, &client, out);
            self.feed_inner(Direction::ServerToClient, &server, out);
        }
    }

    /// Tells the decoder that `lost` bytes of direction `dir` were not captured.
    pub fn gap(&mut self, dir: Direction, lost: u64) {
        match &mut self.inner {
            Inner::Http1(d) => d.gap(dir, lost),
            Inner::Http2(d) => d.gap(dir, lost),
            Inner::WebSocket(d) => d.gap(dir, lost),
            Inner::Detecting => {
                self.counters.gap_bytes += lost;
                // The held prefix no longer starts the stream.
                self.counters.undecoded_bytes += self.early[dir.index()].len() as u64;
                self.early[dir.index()].clear();
                self.mid_connection = true;
            }
            Inner::Opaque => self.counters.gap_bytes += lost,
        }
    }

    /// Tells the decoder that `n` bytes of direction `dir`, right after the
    /// bytes fed so far, were not captured because the capture judged them
    /// body bytes past the body bound (`Limits::max_body_size`): a hole the
    /// capture left instead of copying them. The caller feeds a call with
    /// holes as `feed` (bytes before the hole), `skip` (the hole), `feed`
    /// (bytes after it), ...
    ///
    /// The decoder is the judge. A hole inside a body whose remaining
    /// length it knows (an HTTP/1 Content-Length body or chunk, an HTTP/2
    /// DATA frame's payload, a WebSocket frame's payload after an HTTP/1
    /// upgrade) with at least `n` bytes of it left is passed over in sync:
    /// the message's body counts the bytes in its real size and is cut as
    /// by the body bound (`Body::truncated`, `Counters::bodies_truncated`,
    /// `Counters::body_bytes_dropped`), not flagged
    /// [`data_lost`](crate::Message::data_lost); the message completes if
    /// they were its last bytes (emitting to `out`); counted in
    /// `Counters::body_bytes_skipped`. Any other hole (in a head, past a
    /// body's end, in a body of unknown length, while the protocol is being
    /// detected, ...) is a [`gap`](Self::gap), also counted in
    /// `Counters::skip_gaps`. `n = 0` does nothing.
    pub fn skip(&mut self, dir: Direction, n: u64, out: &mut Vec<Event>) {
        if n == 0 {
            return;
        }
        match &mut self.inner {
            Inner::Http1(d) => d.skip(dir, n, out),
            Inner::Http2(d) => d.skip(dir, n, out),
            Inner::WebSocket(d) => d.skip(dir, n, out),
            Inner::Detecting | Inner::Opaque => {
                self.counters
                    .replaced
                    .get_or_insert_with(Box::default)
                    .skip_gaps += 1;
                self.gap(dir, n);
            }
        }
    }

    /// Tells the decoder that one library call of direction `dir` was lost
    /// whole (before [`Self::gap`] with its byte count): HTTP/1 counts the
    /// requests that vanish this way (`Counters::h1_requests_unseen`).
    pub fn lost_call(&mut self, dir: Direction) {
        if let Inner::Http1(d) = &mut self.inner {
            d.lost_call(dir);
        }
    }

    /// `calls` library calls of direction `dir`, moving `bytes` in all, were
    /// lost whole, records included (the capture's ring was full): as many
    /// [`Self::lost_call`]s, with the gap after the first.
    pub fn lost_calls(&mut self, dir: Direction, calls: u32, bytes: u64) {
        if calls == 0 {
            return;
        }
        self.lost_call(dir);
        self.gap(dir, bytes);
        if let Inner::Http1(d) = &mut self.inner {
            d.more_lost_calls(dir, calls - 1);
        }
    }

    /// The connection started while the capture ran (its TLS handshake
    /// was seen), whatever its first captured bytes were: HTTP/2 stream ids
    /// lost before the first header block seen are then counted too
    /// (`Counters::streams_unseen`), as ids skipped between blocks are.
    pub fn streams_start_at_one(&mut self) {
        self.started_seen = true;
        if let Inner::Http2(d) = &mut self.inner {
            d.set_streams_from_start();
        }
    }

    /// HTTP/2: the capture saw a header block of client stream `last`,
    /// delivered to this decoder or not (see [`Http2Decoder::streams_until`]);
    /// other protocols: nothing.
    pub fn streams_until(&mut self, last: u32) {
        if let Inner::Http2(d) = &mut self.inner {
            d.streams_until(last);
        }
    }

    /// The connection is gone: flushes every open transaction.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        match &mut self.inner {
            Inner::Http1(d) => d.finish(out),
            Inner::Http2(d) => d.finish(out),
            Inner::WebSocket(d) => d.finish(out),
            Inner::Detecting | Inner::Opaque => {
                self.counters.undecoded_bytes +=
                    self.early.iter().map(Vec::len).sum::<usize>() as u64;
                self.early = [Vec::new(), Vec::new()];
            }
        }
    }

    /// Returns the counters accumulated so far (this decoder's and the
    /// protocol decoder's) and resets them.
    pub fn take_counters(&mut self) -> Counters {
        let own = std::mem::take(&mut self.counters);
        let mut c = own.replaced.map_or_else(Counters::default, |b| *b);
        c.undecoded_bytes += own.undecoded_bytes;
        c.gap_bytes += own.gap_bytes;
        match &mut self.inner {
            Inner::Http1(d) => c.add(&d.take_counters()),
            Inner::Http2(d) => c.add(&d.take_counters()),
            Inner::WebSocket(d) => c.add(&d.take_counters()),
            Inner::Detecting | Inner::Opaque => {}
        }
        c
    }
}

/// Whether `b` is a (possibly partial) request method followed by a space.
fn could_be_method(b: &[u8]) -> bool {
    let word = b.split(|&c| c == b' ').next().unwrap_or(b);
    word.len() <= 16 && word.iter().all(u8::is_ascii_uppercase)
}
