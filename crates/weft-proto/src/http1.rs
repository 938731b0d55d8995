//! HTTP/1.x (RFC 9112): per-connection request/response decoding.
//!
//! [`Http1Decoder`] is fed the bytes of both directions of one connection
//! and emits a [`Transaction`] per request/response pair, in order
//! (pipelined requests wait in a FIFO, bounded by `Limits::h1_max_pipeline`).
//! Start lines and header sections are parsed by `httparse` (lenient
//! settings, as browsers are); message framing is ours: Content-Length,
//! chunked transfer coding with trailers, close-delimited responses, no body
//! for HEAD requests and 1xx/204/304 responses, interim 1xx responses, and
//! protocol upgrades (101, successful CONNECT), after which an
//! [`Event::Upgrade`] hands the connection's remaining bytes to the caller.
//!
//! # Resynchronisation
//!
//! On a parse error, a limit hit, or a [`gap`](Http1Decoder::gap), the
//! direction is marked lost: the rest of that input is dropped (counted) and
//! each later [`feed`](Http1Decoder::feed) call's first bytes are tried as a
//! message start (`<METHOD> ` from clients, `HTTP/1.` from servers).
//! A decoder created with [`Http1Decoder::new_mid_connection`] starts lost.
//! When a response resynchronises while several requests wait, the older
//! ones are emitted as [`End::Desync`] and the response pairs with the newest
//! (right unless the client pipelines). Pairing assumes each request is fed
//! before its response.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::mem::MaybeUninit;

use httparse::Status;

use crate::{Counters, Direction, End, Event, Headers, Limits, Message, Protocol, Transaction};

/// Decodes both directions of one HTTP/1.x connection into [`Transaction`]s.
#[derive(Debug, Clone)]
pub struct Http1Decoder {
    limits: Limits,
    sides: [Side; 2],
    /// Transactions in request order; `txs[responded]` receives the next
    /// response bytes.
    txs: VecDeque<Pending>,
    /// Transactions at the front whose response is complete but whose
    /// request is still arriving.
    responded: usize,
    next_id: u32,
    upgraded: bool,
    counters: Counters,
    /// Request-direction library calls lost whole at a message boundary
    /// that no response head has answered yet (see [`Self::lost_call`]).
    unanswered_lost: u32,
}

#[derive(Debug, Clone)]
struct Pending {
    /// Boxed from the start: emitting it hands the box on, no copy.
    tx: Box<Transaction>,
    method: Method,
    /// The request asked to switch protocols (Upgrade header or CONNECT).
    wants_upgrade: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Head,
    Connect,
    Other,
    /// The request was not seen.
    Unknown,
}

#[derive(Debug, Clone, Default)]
struct Side {
    state: State,
    /// Partial start line + header section, chunk-size line or trailers;
    /// or, in `Hold`, bytes waiting for an upgrade decision.
    buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Resynchronise on the next input's start.
    Lost,
    /// Expecting (or inside) a start line and header section.
    #[default]
    Head,
    /// `u64` body bytes left.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Body runs until the connection closes.
    UntilClose,
    /// Client side: the request asked for an upgrade; buffer until the
    /// response says yes or no.
    Hold,
    /// The connection switched protocols; nothing more for us.
    Upgraded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// `u64` bytes of chunk data left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Expecting the trailer section.
    Trailers,
}

/// A parsed start line and header section.
#[derive(Debug)]
struct Head {
    headers: Headers,
    status: Option<u16>,
    method: Method,
    content_length: Option<u64>,
    /// Transfer-Encoding present, and whether its last coding is chunked.
    transfer_encoding: Option<bool>,
    upgrade: Option<Vec<u8>>,
    /// The minor version of the start line (`HTTP/1.x`).
    minor_version: u8,
}

impl Head {
    /// A copy, its header list in a spare buffer when there is one.
    fn clone_pooled(&self) -> Head {
        Head {
            headers: self.headers.clone_pooled(),
            status: self.status,
            method: self.method,
            content_length: self.content_length,
            transfer_encoding: self.transfer_encoding,
            upgrade: self.upgrade.clone(),
            minor_version: self.minor_version,
        }
    }
}

/// A message head could not be parsed.
#[derive(Debug)]
struct ParseError;

const MAX_CHUNK_LINE: usize = 1024;
/// Buffer capacity kept between messages.
const BUFFER_KEEP: usize = 16 * 1024;
const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PROPFIND ",
    b"PROPPATCH ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
    b"LOCK ",
    b"UNLOCK ",
    b"REPORT ",
    b"SEARCH ",
    b"PURGE ",
    b"PRI ",
];

impl Http1Decoder {
    /// A decoder for a connection observed from its first byte.
    pub fn new(limits: &Limits) -> Self {
        Http1Decoder {
            limits: *limits,
            sides: [Side::default(), Side::default()],
            txs: VecDeque::new(),
            responded: 0,
            next_id: 1,
            upgraded: false,
            counters: Counters::default(),
            unanswered_lost: 0,
        }
    }

    /// A decoder for a connection already in progress: each direction
    /// starts at the first input that begins like a message.
    pub fn new_mid_connection(limits: &Limits) -> Self {
        let mut d = Http1Decoder::new(limits);
        for s in &mut d.sides {
            s.state = State::Lost;
        }
        d
    }

    /// Whether `bytes` (the start of a client stream) look like an HTTP/1 request.
    pub fn looks_like_request(bytes: &[u8]) -> bool {
        METHODS.iter().any(|m| bytes.starts_with(m))
    }

    /// Decodes `bytes` sent in direction `dir`, appending events to `out`.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], out: &mut Vec<Event>) {
        let d = dir.index();
        let mut input = bytes;
        if self.sides[d].state == State::Lost {
            let ok = match dir {
                Direction::ClientToServer => Self::looks_like_request(input),
                Direction::ServerToClient => input.starts_with(b"HTTP/1."),
            };
            if !ok {
                self.counters.dropped_bytes += input.len() as u64;
                return;
            }
            self.sides[d].state = State::Head;
            self.sides[d].buf.clear();
            if dir == Direction::ServerToClient {
                self.resync_responses(out);
            }
        }
        let mut stalls = 0;
        while !input.is_empty() {
            let n = match dir {
                Direction::ClientToServer => self.client_step(input, out),
                Direction::ServerToClient => self.server_step(input, out),
            };
            input = &input[n.min(input.len())..];
            stalls = if n == 0 { stalls + 1 } else { 0 };
            if stalls > 4 {
                // Defensive: every state consumes or changes; never spin.
                self.lose(dir, input.len());
                break;
            }
        }
    }

    /// Stamp the open transactions' messages with `now` (see
    /// [`crate::Message::stamp`]).
    pub fn stamp_open(&mut self, now: u64) {
        for p in &mut self.txs {
            p.tx.stamp(now);
        }
    }

    /// Tells the decoder that `lost` bytes of direction `dir` were not
    /// captured: the message in progress is flagged [`Message::data_lost`]
    /// and the direction resynchronises on a later input.
    pub fn gap(&mut self, dir: Direction, lost: u64) {
        self.counters.gap_bytes += lost;
        if self.sides[dir.index()].state == State::Upgraded {
            return;
        }
        self.lose(dir, 0);
    }

    /// Tells the decoder that `n` bytes of direction `dir`, right after the
    /// bytes fed so far, were not captured because the capture judged them
    /// body bytes past `Limits::max_body_size`.
    ///
    /// Inside a body whose remaining length is known (a Content-Length
    /// body, or a chunk's data) with at least `n` bytes of it left, the
    /// direction passes over them in sync: the message's body counts them
    /// in its real size and is cut as by the body bound (not
    /// [`Message::data_lost`]), and the message completes if they were its
    /// last bytes (emitting to `out`). Anywhere else (a head, a body of
    /// unknown length, a hole longer than the rest of the body, after an
    /// upgrade) the hole is a [`gap`](Self::gap), also counted in
    /// `Counters::skip_gaps`.
    pub fn skip(&mut self, dir: Direction, n: u64, out: &mut Vec<Event>) {
        if n == 0 {
            return;
        }
        let d = dir.index();
        let (next, done) = match self.sides[d].state {
            State::Length(left) if n <= left => {
                let left = left - n;
                if left == 0 {
                    (State::Head, true)
                } else {
                    (State::Length(left), false)
                }
            }
            State::Chunked(Chunk::Data(left)) if n <= left => {
                let left = left - n;
                let chunk = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                (State::Chunked(chunk), false)
            }
            _ => {
                self.counters.skip_gaps += 1;
                self.gap(dir, n);
                return;
            }
        };
        self.counters.body_bytes_skipped += n;
        let already_cut = self.current(dir).map(|m| {
            m.seen = true;
            let was = m.body.truncated;
            m.body.skip(n);
            was
        });
        if let Some(already_cut) = already_cut {
            self.counters.body_cut(already_cut, n);
        }
        self.sides[d].state = next;
        if done {
            self.message_complete(dir, out);
        }
    }

    /// One library call of direction `dir` was lost whole (none of its
    /// bytes arrived; [`Self::gap`] is told the byte count). HTTP/1 has no
    /// sequence number, so this is how a request that vanished together with
    /// its response is still counted: a request-direction call lost at a
    /// message boundary that no response head answers before the next
    /// request starts (or the connection ends) is counted in
    /// `Counters::h1_requests_unseen`. Exact for clients that send one
    /// request per call and wait for its response (what HTTP/1.1 clients
    /// do); pipelined or split requests make it an estimate.
    pub fn lost_call(&mut self, dir: Direction) {
        let side = &self.sides[dir.index()];
        let boundary =
            (side.state == State::Head && side.buf.is_empty()) || side.state == State::Lost;
        if dir == Direction::ClientToServer && boundary && !self.upgraded {
            self.settle_lost();
            self.unanswered_lost += 1;
        }
    }

    /// `n` more calls of direction `dir` lost whole, right after a lost
    /// call and its [`Self::gap`]: the same counts as `n` calls of
    /// [`Self::lost_call`], without a loop (the direction is lost, so each
    /// is at a message boundary).
    pub fn more_lost_calls(&mut self, dir: Direction, n: u32) {
        if n == 0
            || dir != Direction::ClientToServer
            || self.upgraded
            || self.sides[dir.index()].state != State::Lost
        {
            return;
        }
        self.counters.h1_requests_unseen +=
            u64::from(std::mem::take(&mut self.unanswered_lost)) + u64::from(n - 1);
        self.unanswered_lost = 1;
    }

    /// Requests lost whole that were not answered are counted as unseen.
    fn settle_lost(&mut self) {
        self.counters.h1_requests_unseen += u64::from(std::mem::take(&mut self.unanswered_lost));
    }

    /// The connection is gone: completes a close-delimited response and
    /// emits every waiting transaction.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.settle_lost();
        if self.sides[1].state == State::UntilClose
            && let Some(p) = self.txs.get_mut(self.responded)
        {
            p.tx.response.complete = true;
        }
        for s in &mut self.sides {
            s.state = State::Head;
            s.buf.clear();
        }
        self.responded = 0;
        while let Some(p) = self.txs.pop_front() {
            let done = p.tx.response.complete && (p.tx.request.complete || !p.tx.request.seen);
            self.emit(
                p.tx,
                if done {
                    End::Complete
                } else {
                    End::ConnectionClosed
                },
                out,
            );
        }
    }

    /// Counters accumulated so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Returns the counters accumulated so far and resets them.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    /// Requests waiting for (the end of) their response.
    pub fn pending(&self) -> usize {
        self.txs.len()
    }

    /// Whether the connection switched protocols ([`Event::Upgrade`] was emitted).
    pub fn is_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Marks `dir` lost, flagging its message in progress; `dropped` bytes
    /// of the current input are discarded.
    fn lose(&mut self, dir: Direction, dropped: usize) {
        self.counters.dropped_bytes += dropped as u64;
        self.counters.desyncs += 1;
        let side = &mut self.sides[dir.index()];
        let mid_message = side.state != State::Head || !side.buf.is_empty();
        side.state = State::Lost;
        side.buf.clear();
        let msg = match dir {
            Direction::ClientToServer => self
                .txs
                .back_mut()
                .map(|p| &mut p.tx.request)
                .filter(|m| m.seen && !m.complete),
            Direction::ServerToClient => self
                .txs
                .get_mut(self.responded)
                .map(|p| &mut p.tx.response)
                .filter(|m| m.seen),
        };
        if let Some(m) = msg {
            m.data_lost = true;
        } else if mid_message
            && dir == Direction::ServerToClient
            && let Some(p) = self.txs.get_mut(self.responded)
        {
            p.tx.response.data_lost = true;
        }
    }

    /// A response is about to start after the server side was lost: a
    /// response cut short is finished, and older waiting requests most
    /// likely lost their responses.
    fn resync_responses(&mut self, out: &mut Vec<Event>) {
        if let Some(p) = self.txs.get(self.responded)
            && p.tx.response.seen
            && !p.tx.response.complete
            && let Some(p) = self.txs.remove(self.responded)
        {
            let mut tx = p.tx;
            tx.response.data_lost = true;
            self.emit(tx, End::Desync, out);
        }
        while self.txs.len() > self.responded + 1 {
            if let Some(p) = self.txs.remove(self.responded) {
                let mut tx = p.tx;
                tx.response.data_lost = true;
                self.emit(tx, End::Desync, out);
            }
        }
    }

    fn client_step(&mut self, input: &[u8], out: &mut Vec<Event>) -> usize {
        let side = &mut self.sides[0];
        match side.state {
            State::Head => {
                let max_headers = self.limits.h1_max_headers as usize;
                let limit = self.limits.h1_max_header_bytes as usize;
                match parse_buffered(&mut side.buf, input, limit, |b| {
                    parse_request(b, max_headers)
                }) {
                    Ok((n, None)) => n,
                    Ok((n, Some(head))) => {
                        self.on_request_head(head, out);
                        n
                    }
                    Err(ParseError) => {
                        self.counters.h1_parse_errors += 1;
                        self.lose(Direction::ClientToServer, input.len());
                        input.len()
                    }
                }
            }
            State::Hold => {
                let room =
                    (self.limits.h1_max_header_bytes as usize).saturating_sub(side.buf.len());
                let keep = room.min(input.len());
                side.buf.extend_from_slice(&input[..keep]);
                self.counters.dropped_bytes += (input.len() - keep) as u64;
                input.len()
            }
            State::Upgraded | State::Lost => {
                self.counters.dropped_bytes += input.len() as u64;
                input.len()
            }
            _ => self.body_step(Direction::ClientToServer, input, out),
        }
    }

    fn server_step(&mut self, input: &[u8], out: &mut Vec<Event>) -> usize {
        let side = &mut self.sides[1];
        match side.state {
            State::Head => {
                let max_headers = self.limits.h1_max_headers as usize;
                let limit = self.limits.h1_max_header_bytes as usize;
                match parse_buffered(&mut side.buf, input, limit, |b| {
                    parse_response(b, max_headers)
                }) {
                    Ok((n, None)) => n,
                    Ok((n, Some(head))) => {
                        let rest = &input[n.min(input.len())..];
                        if self.on_response_head(head, rest, out) {
                            // The rest went out with the upgrade event.
                            input.len()
                        } else {
                            n
                        }
                    }
                    Err(ParseError) => {
                        self.counters.h1_parse_errors += 1;
                        self.lose(Direction::ServerToClient, input.len());
                        input.len()
                    }
                }
            }
            State::Upgraded | State::Lost | State::Hold => {
                self.counters.dropped_bytes += input.len() as u64;
                input.len()
            }
            _ => self.body_step(Direction::ServerToClient, input, out),
        }
    }

    fn on_request_head(&mut self, head: Head, out: &mut Vec<Event>) {
        self.settle_lost();
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut tx = crate::recycle::transaction(Protocol::Http1, id);
        let wants_upgrade = head.method == Method::Connect || head.upgrade.is_some();
        tx.request.headers = head.headers;
        tx.request.seen = true;
        tx.http1_minor = Some(head.minor_version);
        let body = match (head.transfer_encoding, head.content_length) {
            (Some(true), _) => State::Chunked(Chunk::Size),
            (Some(false), _) => {
                // A request body must be chunked if transfer-coded (RFC 9112 §6.3).
                self.counters.h1_parse_errors += 1;
                tx.request.data_lost = true;
                State::Lost
            }
            (None, Some(n)) if n > 0 => State::Length(n),
            (None, _) => State::Head,
        };
        self.make_room(out);
        self.txs.push_back(Pending {
            tx,
            method: head.method,
            wants_upgrade,
        });
        self.sides[0].state = body;
        if body == State::Lost {
            self.counters.desyncs += 1;
        } else if body == State::Head {
            self.request_complete(out);
        }
    }

    /// Keeps the queue under `Limits::h1_max_pipeline` before a push by
    /// evicting the oldest transaction.
    fn make_room(&mut self, out: &mut Vec<Event>) {
        while self.txs.len() >= self.limits.h1_max_pipeline.max(1) as usize {
            let Some(p) = self.txs.pop_front() else { break };
            self.counters.h1_pipeline_evicted += 1;
            self.responded = self.responded.saturating_sub(1);
            self.emit(p.tx, End::Evicted, out);
        }
    }

    /// The request at the back of the queue is complete.
    fn request_complete(&mut self, out: &mut Vec<Event>) {
        let Some(p) = self.txs.back_mut() else { return };
        p.tx.request.complete = true;
        if p.wants_upgrade && !self.upgraded {
            // Hold later client bytes until the response accepts or refuses.
            self.sides[0].state = State::Hold;
        }
        self.emit_ready(out);
    }

    /// Handles a response head; returns true when the connection switched
    /// protocols and `rest` was handed over in an [`Event::Upgrade`].
    fn on_response_head(&mut self, head: Head, rest: &[u8], out: &mut Vec<Event>) -> bool {
        let status = head.status.unwrap_or(0);
        if self.txs.len() <= self.responded {
            // A response to a request we did not see (reported: its request
            // is no longer unseen).
            self.unanswered_lost = self.unanswered_lost.saturating_sub(1);
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let tx = crate::recycle::transaction(Protocol::Http1, id);
            self.make_room(out);
            self.txs.push_back(Pending {
                tx,
                method: Method::Unknown,
                wants_upgrade: false,
            });
        }
        let Some(p) = self.txs.get_mut(self.responded) else {
            return false;
        };
        let switching =
            status == 101 || (p.method == Method::Connect && (200..300).contains(&status));
        if (100..200).contains(&status) && status != 101 {
            p.tx.interim.push(head.headers);
            p.tx.response.seen = true;
            return false;
        }
        p.tx.response.headers = head.headers;
        p.tx.response.seen = true;
        // The exchange speaks the lower of the two versions (RFC 9110 §6.2):
        // nginx answers an HTTP/1.0 request with `HTTP/1.1 200`.
        p.tx.http1_minor = Some(
            p.tx.http1_minor
                .map_or(head.minor_version, |m| m.min(head.minor_version)),
        );
        let no_body = p.method == Method::Head || status == 204 || status == 304 || switching;
        let body = if no_body {
            State::Head
        } else if head.minor_version == 0 && head.transfer_encoding.is_some() {
            // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has
            // faulty framing (an HTTP/1.1 hop's chunking forwarded as is):
            // it ends when the connection does.
            State::UntilClose
        } else {
            match (head.transfer_encoding, head.content_length) {
                (Some(true), _) => State::Chunked(Chunk::Size),
                (Some(false), _) => State::UntilClose,
                (None, Some(0)) => State::Head,
                (None, Some(n)) => State::Length(n),
                (None, None) => State::UntilClose,
            }
        };
        self.sides[1].state = body;
        if switching && p.wants_upgrade {
            let protocol = head
                .upgrade
                .or_else(|| p.tx.request.headers.get(b"upgrade").map(<[u8]>::to_vec));
            let stream_id = p.tx.stream_id;
            self.upgraded = true;
            let client_data = std::mem::take(&mut self.sides[0].buf);
            for s in &mut self.sides {
                s.state = State::Upgraded;
                s.buf.clear();
            }
            self.response_complete(out);
            out.push(Event::Upgrade {
                stream_id,
                protocol: protocol.unwrap_or_default(),
                client_data,
                server_data: rest.to_vec(),
            });
            return true;
        }
        if body == State::Head {
            self.response_complete(out);
        }
        false
    }

    /// The response of `txs[responded]` is complete.
    fn response_complete(&mut self, out: &mut Vec<Event>) {
        let Some(p) = self.txs.get_mut(self.responded) else {
            return;
        };
        p.tx.response.complete = true;
        let declined_upgrade = p.wants_upgrade && p.tx.request.complete;
        self.responded += 1;
        self.emit_ready(out);
        if declined_upgrade && !self.upgraded && self.sides[0].state == State::Hold {
            // The server refused the upgrade: held bytes are HTTP/1 after all.
            let held = std::mem::take(&mut self.sides[0].buf);
            self.sides[0].state = State::Head;
            self.feed(Direction::ClientToServer, &held, out);
        }
    }

    /// Emits transactions at the front whose messages are both complete.
    fn emit_ready(&mut self, out: &mut Vec<Event>) {
        while self.responded > 0 {
            let Some(p) = self.txs.front() else { break };
            let req = &p.tx.request;
            // A request cut by a gap or parse error will not progress either.
            if !(req.complete || !req.seen || req.data_lost) {
                break;
            }
            if let Some(p) = self.txs.pop_front() {
                self.responded -= 1;
                self.emit(p.tx, End::Complete, out);
            }
        }
    }

    fn body_step(&mut self, dir: Direction, input: &[u8], out: &mut Vec<Event>) -> usize {
        let d = dir.index();
        let max_body = self.limits.max_body_size as usize;
        let state = self.sides[d].state;
        let (consumed, data, next, done) = match state {
            State::Length(left) => {
                let n = (left.min(input.len() as u64)) as usize;
                let left = left - n as u64;
                let next = if left == 0 {
                    State::Head
                } else {
                    State::Length(left)
                };
                (n, &input[..n], next, left == 0)
            }
            State::UntilClose => (input.len(), input, State::UntilClose, false),
            State::Chunked(Chunk::Data(left)) => {
                let n = (left.min(input.len() as u64)) as usize;
                let left = left - n as u64;
                let next = State::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                (n, &input[..n], next, false)
            }
            State::Chunked(chunk) => return self.chunk_framing(dir, chunk, input, out),
            _ => return 0,
        };
        if let Some(m) = self.current(dir) {
            m.seen = true;
            if let State::Length(left) = state {
                m.body.presize(left, max_body);
            }
            let was = m.body.truncated;
            let dropped = m.body.append(data, max_body);
            self.counters.body_cut(was, dropped as u64);
        }
        self.sides[d].state = next;
        if done {
            self.message_complete(dir, out);
        }
        consumed
    }

    /// Chunk-size lines, the CRLF after chunk data, and trailers.
    fn chunk_framing(
        &mut self,
        dir: Direction,
        chunk: Chunk,
        input: &[u8],
        out: &mut Vec<Event>,
    ) -> usize {
        let d = dir.index();
        match chunk {
            Chunk::Size => {
                let r = parse_buffered(&mut self.sides[d].buf, input, MAX_CHUNK_LINE, |b| {
                    match httparse::parse_chunk_size(b) {
                        Ok(Status::Complete((n, size))) => Ok(Status::Complete((n, size))),
                        Ok(Status::Partial) => Ok(Status::Partial),
                        Err(_) => Err(ParseError),
                    }
                });
                match r {
                    Ok((n, None)) => n,
                    Ok((n, Some(0))) => {
                        self.sides[d].state = State::Chunked(Chunk::Trailers);
                        n
                    }
                    Ok((n, Some(size))) => {
                        self.sides[d].state = State::Chunked(Chunk::Data(size));
                        n
                    }
                    Err(ParseError) => self.framing_error(dir, input.len()),
                }
            }
            Chunk::DataEnd => {
                // CRLF (tolerate a bare LF), possibly split across inputs.
                let buf = &mut self.sides[d].buf;
                let mut n = 0;
                while n < input.len() {
                    let b = input[n];
                    if b == b'\r' && buf.is_empty() {
                        buf.push(b);
                        n += 1;
                    } else if b == b'\n' {
                        buf.clear();
                        self.sides[d].state = State::Chunked(Chunk::Size);
                        return n + 1;
                    } else {
                        return self.framing_error(dir, input.len());
                    }
                }
                n
            }
            Chunk::Trailers => {
                let max_headers = self.limits.h1_max_headers as usize;
                let limit = self.limits.h1_max_header_bytes as usize;
                match parse_buffered(&mut self.sides[d].buf, input, limit, |b| {
                    parse_trailers(b, max_headers)
                }) {
                    Ok((n, None)) => n,
                    Ok((n, Some(trailers))) => {
                        if let Some(m) = self.current(dir) {
                            m.trailers = trailers;
                        }
                        self.sides[d].state = State::Head;
                        self.message_complete(dir, out);
                        n
                    }
                    Err(ParseError) => self.framing_error(dir, input.len()),
                }
            }
            Chunk::Data(_) => 0,
        }
    }

    fn framing_error(&mut self, dir: Direction, dropped: usize) -> usize {
        self.counters.h1_parse_errors += 1;
        self.lose(dir, dropped);
        dropped
    }

    /// The message being received in `dir`.
    fn current(&mut self, dir: Direction) -> Option<&mut Message> {
        match dir {
            Direction::ClientToServer => self.txs.back_mut().map(|p| &mut p.tx.request),
            Direction::ServerToClient => {
                self.txs.get_mut(self.responded).map(|p| &mut p.tx.response)
            }
        }
    }

    fn message_complete(&mut self, dir: Direction, out: &mut Vec<Event>) {
        match dir {
            Direction::ClientToServer => self.request_complete(out),
            Direction::ServerToClient => self.response_complete(out),
        }
    }

    fn emit(&mut self, tx: Box<Transaction>, end: End, out: &mut Vec<Event>) {
        let mut tx = tx;
        tx.end = end;
        crate::content::process(&mut tx.request, &self.limits, &mut self.counters);
        crate::content::process(&mut tx.response, &self.limits, &mut self.counters);
        self.counters.transactions += 1;
        if !tx.is_complete() {
            self.counters.transactions_incomplete += 1;
        }
        out.push(Event::Transaction(tx));
    }
}

/// Runs `parse` on `buf` + `input` without copying when `buf` is empty.
/// Returns bytes of `input` consumed and the parsed value once complete.
/// More than `limit` buffered bytes without a complete parse is an error.
fn parse_buffered<T>(
    buf: &mut Vec<u8>,
    input: &[u8],
    limit: usize,
    parse: impl Fn(&[u8]) -> Result<Status<(usize, T)>, ParseError>,
) -> Result<(usize, Option<T>), ParseError> {
    if buf.is_empty() {
        return match parse(input)? {
            Status::Complete((n, t)) => Ok((n, Some(t))),
            Status::Partial if input.len() > limit => Err(ParseError),
            Status::Partial => {
                buf.extend_from_slice(input);
                Ok((input.len(), None))
            }
        };
    }
    let old = buf.len();
    let take = input.len().min((limit + 1).saturating_sub(old));
    buf.extend_from_slice(&input[..take]);
    match parse(buf) {
        Ok(Status::Complete((n, t))) => {
            buf.clear();
            if buf.capacity() > BUFFER_KEEP {
                *buf = Vec::new();
            }
            Ok((n.saturating_sub(old).min(take), Some(t)))
        }
        Ok(Status::Partial) if buf.len() > limit => Err(ParseError),
        Ok(Status::Partial) => Ok((take, None)),
        Err(e) => Err(e),
    }
}

fn parser_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    c
}

/// Header array entries kept on the stack (the default `h1_max_headers`:
/// 4 KiB, never cleared); more come from the heap.
const STACK_HEADERS: usize = 128;

/// Runs `f` with a header array of `max` entries (on the stack when small),
/// left uninitialised: httparse writes only the entries it parses, so the
/// common small head does not pay for clearing 64 entries.
fn with_headers<'b, R>(
    max: usize,
    f: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    if max <= STACK_HEADERS {
        let mut h: [MaybeUninit<httparse::Header<'b>>; STACK_HEADERS] =
            [const { MaybeUninit::uninit() }; STACK_HEADERS];
        f(&mut h[..max.max(1)])
    } else {
        let mut h: Vec<MaybeUninit<httparse::Header<'b>>> =
            std::iter::repeat_with(MaybeUninit::uninit)
                .take(max)
                .collect();
        f(&mut h)
    }
}

/// Like [`with_headers`], initialised (for `httparse::parse_headers`).
fn with_init_headers<'b, R>(max: usize, f: impl FnOnce(&mut [httparse::Header<'b>]) -> R) -> R {
    if max <= STACK_HEADERS {
        let mut h: [httparse::Header<'b>; STACK_HEADERS] = [httparse::EMPTY_HEADER; STACK_HEADERS];
        f(&mut h[..max.max(1)])
    } else {
        let mut h: Vec<httparse::Header<'b>> = vec![httparse::EMPTY_HEADER; max];
        f(&mut h)
    }
}

/// The range of `buf` (whose first `base` bytes are a prefix, then `raw`)
/// where `part`, a slice of `raw`, lies; `None` when it is not one.
fn range_in(raw: &[u8], base: usize, part: &[u8]) -> Option<std::ops::Range<usize>> {
    let off = (part.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
    let end = off.checked_add(part.len())?;
    (end <= raw.len()).then(|| base + off..base + end)
}

/// Names of the pseudo-header fields HTTP/1 heads get, as the prefix of
/// their header list's buffer.
const REQUEST_PREFIX: &[u8] = b":method:path";
const STATUS_NAME: &[u8] = b":status";

fn parse_request(buf: &[u8], max_headers: usize) -> Result<Status<(usize, Head)>, ParseError> {
    match cached_head(buf, max_headers, Kind::Request) {
        Some(done) => Ok(Status::Complete(done)),
        None => parse_request_general(buf, max_headers),
    }
}

/// [`parse_request`] by httparse: every head the fast path leaves.
fn parse_request_general(
    buf: &[u8],
    max_headers: usize,
) -> Result<Status<(usize, Head)>, ParseError> {
    with_headers(max_headers, |hs| {
        let mut req = httparse::Request::new(&mut []);
        let n = match parser_config().parse_request_with_uninit_headers(&mut req, buf, hs) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) => return Ok(Status::Partial),
            Err(_) => return Err(ParseError),
        };
        let raw = &buf[..n.min(buf.len())];
        let method = req.method.unwrap_or("");
        let path = req.path.unwrap_or("");
        // The head is copied once; the fields point into the copy.
        let mut headers = Headers::from_raw(REQUEST_PREFIX, raw, req.headers.len() + 2);
        let base = REQUEST_PREFIX.len();
        for (name, value) in [(0..7, method.as_bytes()), (7..12, path.as_bytes())] {
            let placed =
                range_in(raw, base, value).is_some_and(|v| headers.push_span(name.clone(), v));
            if !placed {
                headers.push(&REQUEST_PREFIX[name], value);
            }
        }
        let kind = match method {
            "HEAD" => Method::Head,
            "CONNECT" => Method::Connect,
            _ => Method::Other,
        };
        let mut head = head_from(headers, raw, base, req.headers)?;
        head.method = kind;
        head.minor_version = req.version.unwrap_or(1);
        Ok(Status::Complete((n, head)))
    })
}

fn parse_response(buf: &[u8], max_headers: usize) -> Result<Status<(usize, Head)>, ParseError> {
    match cached_head(buf, max_headers, Kind::Response) {
        Some(done) => Ok(Status::Complete(done)),
        None => parse_response_general(buf, max_headers),
    }
}

/// [`parse_response`] by httparse: every head the fast path leaves.
fn parse_response_general(
    buf: &[u8],
    max_headers: usize,
) -> Result<Status<(usize, Head)>, ParseError> {
    with_headers(max_headers, |hs| {
        let mut resp = httparse::Response::new(&mut []);
        let n = match parser_config().parse_response_with_uninit_headers(&mut resp, buf, hs) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) => return Ok(Status::Partial),
            Err(_) => return Err(ParseError),
        };
        let raw = &buf[..n.min(buf.len())];
        let code = resp.code.unwrap_or(0);
        let mut prefix = [0u8; 10];
        prefix[..7].copy_from_slice(STATUS_NAME);
        prefix[7] = b'0' + (code / 100 % 10) as u8;
        prefix[8] = b'0' + (code / 10 % 10) as u8;
        prefix[9] = b'0' + (code % 10) as u8;
        let mut headers = Headers::from_raw(&prefix, raw, resp.headers.len() + 1);
        headers.push_span(0..7, 7..10);
        let mut head = head_from(headers, raw, prefix.len(), resp.headers)?;
        head.status = Some(code);
        head.minor_version = resp.version.unwrap_or(1);
        Ok(Status::Complete((n, head)))
    })
}

fn parse_trailers(buf: &[u8], max_headers: usize) -> Result<Status<(usize, Headers)>, ParseError> {
    with_init_headers(max_headers, |hs| match httparse::parse_headers(buf, hs) {
        Ok(Status::Complete((n, fields))) => {
            let raw = &buf[..n.min(buf.len())];
            let mut t = Headers::from_raw(&[], raw, fields.len());
            for f in fields {
                let name = f.name.as_bytes();
                let placed = match (range_in(raw, 0, name), range_in(raw, 0, f.value)) {
                    (Some(n), Some(v)) => t.push_span(n, v),
                    _ => false,
                };
                if !placed {
                    t.push_lowercase(name, f.value);
                }
            }
            Ok(Status::Complete((n, t)))
        }
        Ok(Status::Partial) => Ok(Status::Partial),
        Err(_) => Err(ParseError),
    })
}

/// Collects regular fields (as ranges of `headers`' buffer, which holds
/// `raw` from `base` on) and the framing-relevant ones.
fn head_from(
    mut headers: Headers,
    raw: &[u8],
    base: usize,
    fields: &[httparse::Header<'_>],
) -> Result<Head, ParseError> {
    let mut framing = Framing::default();
    for f in fields {
        let name = f.name.as_bytes();
        let placed = match (range_in(raw, base, name), range_in(raw, base, f.value)) {
            (Some(n), Some(v)) => headers.push_span(n, v),
            _ => false,
        };
        if !placed {
            headers.push_lowercase(name, f.value);
        }
        framing.see(name, f.value)?;
    }
    Ok(framing.head(headers))
}

/// The fields of a head that decide its message's framing.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    /// Transfer-Encoding present, and whether its last coding is chunked.
    transfer_encoding: Option<bool>,
    upgrade: Option<Vec<u8>>,
}

impl Framing {
    /// Takes note of field `name: value` (any case); an unusable or
    /// conflicting Content-Length is an error.
    #[inline]
    fn see(&mut self, name: &[u8], value: &[u8]) -> Result<(), ParseError> {
        // Only three names matter for framing: compare lengths first.
        if !matches!(name.len(), 7 | 14 | 17) {
            return Ok(());
        }
        if token_is(name, b"content-length") {
            // The usual single number first.
            if (1..=19).contains(&value.len()) && value.iter().all(u8::is_ascii_digit) {
                let n = value
                    .iter()
                    .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
                if self.content_length.is_some_and(|c| c != n) {
                    return Err(ParseError);
                }
                self.content_length = Some(n);
                return Ok(());
            }
            for part in value.split(|&b| b == b',') {
                let n = parse_decimal(part.trim_ascii()).ok_or(ParseError)?;
                if self.content_length.is_some_and(|c| c != n) {
                    return Err(ParseError);
                }
                self.content_length = Some(n);
            }
        } else if token_is(name, b"transfer-encoding") {
            let last = value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or(&[])
                .trim_ascii();
            self.transfer_encoding = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if token_is(name, b"upgrade") {
            self.upgrade = Some(value.to_ascii_lowercase());
        }
        Ok(())
    }

    fn head(self, headers: Headers) -> Head {
        Head {
            headers,
            status: None,
            method: Method::Other,
            content_length: self.content_length,
            transfer_encoding: self.transfer_encoding,
            upgrade: self.upgrade,
            minor_version: 1,
        }
    }
}

// The fast path: the heads nearly every client and server send (one space
// between start-line parts, CRLF line ends, visible ASCII in the start
// line, names of token characters followed by a colon, non-empty values of
// value characters, no folding, at most `FAST_FIELDS` fields) are scanned
// here in one pass; anything else, including a head not yet whole, goes to
// httparse with its lenient settings. Whatever the fast path accepts, the
// general path parses the same way (`tests::fast_path_agrees`).

/// Most fields the fast path takes (the array of their places is cleared
/// for every head: kept small).
const FAST_FIELDS: usize = 24;

/// Header name bytes (RFC 9110 `tchar`, httparse's set).
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// One field's place in the head's header list (its prefix, then the
/// head): name start, name end, value start, value end. Heads are far
/// below 4 GiB (`h1_max_header_bytes` is a `u32`).
type FieldAt = [u32; 4];

/// Places for the pseudo-header fields (at most two), then the fields.
const FAST_SLOTS: usize = FAST_FIELDS + 2;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Where the field value (or reason phrase) starting at `i` ends: the
/// index of its CR. `None` at any byte that is not HT, SP, visible ASCII
/// or obs-text (bare LF, controls, DEL), or at the end of `buf`.
#[inline]
fn value_end(buf: &[u8], mut i: usize) -> Option<usize> {
    loop {
        if let Some(w) = buf.get(i..).and_then(|b| b.first_chunk::<8>()) {
            let x = u64::from_le_bytes(*w);
            // High bit of each byte below 0x20, and of each 0x7f (exact up
            // to the first such byte, which is all that is used).
            let ctl = x.wrapping_sub(0x20 * LO) & !x & HI;
            let y = x ^ (0x7f * LO);
            let del = y.wrapping_sub(LO) & !y & HI;
            let m = ctl | del;
            if m == 0 {
                i += 8;
                continue;
            }
            i += (m.trailing_zeros() / 8) as usize;
        } else {
            while let Some(&b) = buf.get(i) {
                if (b < 0x20 && b != b'\t') || b == 0x7f {
                    break;
                }
                i += 1;
            }
        }
        match *buf.get(i)? {
            b'\t' => i += 1,
            b'\r' => return Some(i),
            _ => return None,
        }
    }
}

/// The length of the header name `line` starts with (its token bytes;
/// `None` if the line ends in them), lower-cased in place (ASCII): eight
/// bytes at a time while they are letters, digits and `-`, then one at a
/// time.
#[inline]
fn name_len_lower(line: &mut [u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        if let Some(w) = line.get_mut(i..).and_then(|b| b.first_chunk_mut::<8>()) {
            let x = u64::from_le_bytes(*w);
            let low = x & (0x7f * LO);
            // High bit of each byte that is a letter, a digit or `-`
            // (exact per byte: no sum carries into the next one).
            let in_range = |v: u64, lo: u64, hi: u64| {
                v.wrapping_add((0x80 - lo) * LO) & !v.wrapping_add((0x7f - hi) * LO)
            };
            let letter = in_range(low | (0x20 * LO), 0x61, 0x7a);
            let digit = in_range(low, 0x30, 0x39);
            let d = low ^ (0x2d * LO);
            let dash = !((d & (0x7f * LO)).wrapping_add(0x7f * LO) | d);
            let common = (letter | digit | dash) & !x & HI;
            let other = !common & HI;
            // Upper-case letters (bit 5 clear) before the first other byte.
            let upper = letter & !x & !(x << 2) & HI & other.wrapping_sub(1) & !other;
            if upper != 0 {
                *w = (x | (upper >> 2)).to_le_bytes();
            }
            if other == 0 {
                i += 8;
                continue;
            }
            i += (other.trailing_zeros() / 8) as usize;
        }
        // The rest one byte at a time, from the first uncommon byte.
        let rest = line.get_mut(i..)?;
        let len = rest.iter().position(|&b| !TCHAR[usize::from(b)])?;
        rest[..len].make_ascii_lowercase();
        return Some(i + len);
    }
}

/// The header section from `i` on: fields into `fields` from `n` on, as
/// places in `buf`, their names lower-cased in `buf`; returns the end of
/// the head (after its empty line) and the number of places filled (`n`
/// and the fields).
#[inline]
fn scan_fields(
    buf: &mut [u8],
    mut i: usize,
    max_headers: usize,
    fields: &mut [FieldAt; FAST_SLOTS],
    mut n: usize,
) -> Option<(usize, usize)> {
    if u32::try_from(buf.len()).is_err() {
        return None;
    }
    let limit = (n + max_headers.min(FAST_FIELDS)).min(FAST_SLOTS);
    loop {
        let name_len = name_len_lower(buf.get_mut(i..)?)?;
        let line = buf.get(i..)?;
        if name_len == 0 {
            return (line.starts_with(b"\r\n")).then_some((i + 2, n));
        }
        if line[name_len] != b':' {
            return None;
        }
        // Usually one space.
        let ows = match line.get(name_len + 1..name_len + 3)? {
            [b' ', b] if !matches!(b, b' ' | b'\t') => 1,
            _ => line
                .get(name_len + 1..)?
                .iter()
                .position(|&b| b != b' ' && b != b'\t')?,
        };
        let value_start = i + name_len + 1 + ows;
        let cr = value_end(buf, value_start)?;
        let value = buf.get(value_start..cr)?;
        // Not empty and not starting with whitespace: trimming stops in it.
        let kept = match value.last()? {
            b' ' | b'\t' => value.iter().rposition(|&b| b != b' ' && b != b'\t')?,
            _ => value.len() - 1,
        };
        if n == limit {
            return None;
        }
        match buf.get(cr + 1..cr + 3)? {
            // A continuation line (obsolete folding) is the general path's.
            [b'\n', b' ' | b'\t'] => return None,
            [b'\n', _] => {}
            _ => return None,
        }
        // Lossless: `buf` is shorter than 4 GiB (checked first).
        let at = |x: usize| x as u32;
        fields[n] = [
            at(i),
            at(i + name_len),
            at(value_start),
            at(value_start + kept + 1),
        ];
        n += 1;
        i = cr + 2;
    }
}

/// Which fast path a head is for.
#[derive(Clone, Copy)]
enum Kind {
    Request,
    Response,
}

/// Heads the fast path parsed lately on this thread, per kind, most recent
/// first: a head equal byte for byte to one of them (a client repeating its
/// request, a server its response headers within the same second of its
/// `Date`, both ends of one connection decoded by the same worker) is a
/// compare and a copy instead of a scan. The fast path's result depends
/// only on the head's bytes (never on bytes after its empty line) and on
/// `max_headers`, which are the key; heads the fast path leaves to httparse
/// are not kept. Bounded: [`HEAD_CACHE_ENTRIES`] heads of at most
/// [`HEAD_CACHE_BYTES`] bytes per kind.
struct HeadCache {
    kinds: [Vec<CachedHead>; 2],
}

struct CachedHead {
    /// The head's bytes as received, up to and including its empty line.
    raw: Vec<u8>,
    max_headers: usize,
    head: Head,
}

const HEAD_CACHE_ENTRIES: usize = 4;
const HEAD_CACHE_BYTES: usize = 2048;

thread_local! {
    static HEADS: RefCell<HeadCache> = const {
        RefCell::new(HeadCache {
            kinds: [Vec::new(), Vec::new()],
        })
    };
}

/// [`fast_request`] or [`fast_response`] through this thread's
/// [`HeadCache`]: the same result, cheaper for a repeated head.
fn cached_head(buf: &[u8], max_headers: usize, kind: Kind) -> Option<(usize, Head)> {
    let fast = |buf: &[u8]| match kind {
        Kind::Request => fast_request(buf, max_headers),
        Kind::Response => fast_response(buf, max_headers),
    };
    let Ok(Ok(found)) = HEADS.try_with(|c| {
        c.try_borrow_mut().map(|mut c| {
            let list = &mut c.kinds[kind as usize];
            let at = list
                .iter()
                .position(|e| e.max_headers == max_headers && buf.starts_with(&e.raw))?;
            if at > 0 {
                list[..=at].rotate_right(1);
            }
            let e = &list[0];
            Some((e.raw.len(), e.head.clone_pooled()))
        })
    }) else {
        return fast(buf);
    };
    if found.is_some() {
        return found;
    }
    let (end, head) = fast(buf)?;
    if let Some(raw) = buf.get(..end).filter(|r| r.len() <= HEAD_CACHE_BYTES) {
        let _ = HEADS.try_with(|c| {
            let Ok(mut c) = c.try_borrow_mut() else {
                return;
            };
            let list = &mut c.kinds[kind as usize];
            let mut e = if list.len() < HEAD_CACHE_ENTRIES {
                CachedHead {
                    raw: Vec::with_capacity(raw.len()),
                    max_headers,
                    head: head.clone_pooled(),
                }
            } else {
                let Some(mut e) = list.pop() else {
                    return;
                };
                e.max_headers = max_headers;
                e.head = head.clone_pooled();
                e
            };
            e.raw.clear();
            e.raw.extend_from_slice(raw);
            list.insert(0, e);
        });
    }
    Some((end, head))
}

/// Most bytes of a message's start the fast path copies to scan (a head
/// that does not end within them takes the general path).
const HEAD_COPY: usize = 8 * 1024;

/// The head whose start line ends at `start` in `buf`, `prefix` the first
/// bytes of its list: (at most `HEAD_COPY` bytes of) `buf` copied after the
/// prefix, the fields scanned in the copy (names lower-cased as they are
/// scanned), the copy cut after the head, and the places in `fields` (the
/// first `pseudo` filled by the caller) pushed at once. Returns the end of
/// the head in `buf`, and the head with its framing.
#[inline]
fn fast_fields(
    prefix: &[u8],
    buf: &[u8],
    start: usize,
    max_headers: usize,
    fields: &mut [FieldAt; FAST_SLOTS],
    pseudo: usize,
) -> Option<(usize, Head)> {
    let base = prefix.len();
    let copy = buf.get(..buf.len().min(HEAD_COPY))?;
    // Room for the records of as many fields as the fast path takes: a
    // few hundred bytes more than needed, and no second allocation.
    let mut headers = Headers::from_raw(prefix, copy, FAST_SLOTS);
    let (end, n) = scan_fields(
        headers.bytes_mut(),
        base + start,
        max_headers,
        fields,
        pseudo,
    )?;
    headers.truncate_bytes(end, FAST_SLOTS);
    let fields = fields.get(..n)?;
    if !headers.push_spans(fields) {
        return None;
    }
    let mut framing = Framing::default();
    let bytes = headers.storage();
    for &[start, name_end, value_start, end] in fields.get(pseudo..)? {
        if matches!(name_end.wrapping_sub(start), 7 | 14 | 17) {
            let name = bytes.get(start as usize..name_end as usize)?;
            let value = bytes.get(value_start as usize..end as usize)?;
            framing.see(name, value).ok()?;
        }
    }
    Some((end.checked_sub(base)?, framing.head(headers)))
}

/// `HTTP/1.0` or `HTTP/1.1` at `i`: the minor version.
#[inline]
fn version_at(buf: &[u8], i: usize) -> Option<u8> {
    match buf.get(i..)?.first_chunk::<8>()? {
        b"HTTP/1.1" => Some(1),
        b"HTTP/1.0" => Some(0),
        _ => None,
    }
}

/// A whole request head in the common form; `None` leaves it to httparse.
fn fast_request(buf: &[u8], max_headers: usize) -> Option<(usize, Head)> {
    let mut i = 0;
    while TCHAR[usize::from(*buf.get(i)?)] {
        i += 1;
    }
    let method_end = i;
    if method_end == 0 || buf[i] != b' ' {
        return None;
    }
    i += 1;
    let target_start = i;
    while matches!(*buf.get(i)?, 0x21..=0x7e) {
        i += 1;
    }
    let target_end = i;
    if target_end == target_start || buf[i] != b' ' {
        return None;
    }
    let minor = version_at(buf, i + 1)?;
    i += 9;
    if buf.get(i..i + 2)? != b"\r\n" {
        return None;
    }
    let base = REQUEST_PREFIX.len();
    let mut fields = [FieldAt::default(); FAST_SLOTS];
    // A start line too long to be lossless here does not fit the copy the
    // fields are scanned in: the fast path turns it down.
    let at = |x: usize| (base + x) as u32;
    fields[0] = [0, 7, at(0), at(method_end)];
    fields[1] = [7, 12, at(target_start), at(target_end)];
    let (end, mut head) = fast_fields(REQUEST_PREFIX, buf, i + 2, max_headers, &mut fields, 2)?;
    head.method = match &buf[..method_end] {
        b"HEAD" => Method::Head,
        b"CONNECT" => Method::Connect,
        _ => Method::Other,
    };
    head.minor_version = minor;
    Some((end, head))
}

/// A whole response head in the common form; `None` leaves it to httparse.
fn fast_response(buf: &[u8], max_headers: usize) -> Option<(usize, Head)> {
    let minor = version_at(buf, 0)?;
    let [b' ', h, t, o, sep] = *buf.get(8..13)?.first_chunk::<5>()? else {
        return None;
    };
    if !(h.is_ascii_digit() && t.is_ascii_digit() && o.is_ascii_digit()) {
        return None;
    }
    let code = u16::from(h - b'0') * 100 + u16::from(t - b'0') * 10 + u16::from(o - b'0');
    let line_end = match sep {
        b'\r' => 12,
        // One space, then a reason phrase that does not start with another.
        b' ' if !matches!(*buf.get(13)?, b' ' | b'\r') => value_end(buf, 13)?,
        _ => return None,
    };
    if *buf.get(line_end + 1)? != b'\n' {
        return None;
    }
    let mut fields = [FieldAt::default(); FAST_SLOTS];
    fields[0] = [0, 7, 7, 10];
    let mut prefix = [0u8; 10];
    prefix[..7].copy_from_slice(STATUS_NAME);
    prefix[7..].copy_from_slice(&[h, t, o]);
    let (end, mut head) = fast_fields(&prefix, buf, line_end + 2, max_headers, &mut fields, 1)?;
    head.status = Some(code);
    head.minor_version = minor;
    Some((end, head))
}

/// Whether header name `name` is `lower` (lower-case letters and `-`, at
/// least 4 bytes) in any case, compared a word at a time: setting bit 5
/// lower-cases a letter, and no other byte of a token becomes one of
/// `lower`'s (`\r` would become `-`, but is no token byte; see the test).
#[inline]
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    if name.len() != lower.len() || name.len() < 4 {
        return false;
    }
    let n = name.len();
    if n >= 8 {
        let word = |b: &[u8], at: usize| {
            b.get(at..)
                .and_then(|b| b.first_chunk::<8>())
                .map_or(0, |w| u64::from_le_bytes(*w))
        };
        // Whole words, the last one overlapping the one before.
        let mut at = 0;
        loop {
            let at_now = at.min(n - 8);
            if word(name, at_now) | 0x2020_2020_2020_2020 != word(lower, at_now) {
                return false;
            }
            if at_now == n - 8 {
                return true;
            }
            at += 8;
        }
    }
    let word = |b: &[u8], at: usize| {
        b.get(at..)
            .and_then(|b| b.first_chunk::<4>())
            .map_or(0, |w| u32::from_le_bytes(*w))
    };
    word(name, 0) | 0x2020_2020 == word(lower, 0)
        && word(name, n - 4) | 0x2020_2020 == word(lower, n - 4)
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: &[&[u8]] = &[
        b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:50893\r\n\r\n",
        b"POST /api/v1/items?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\nContent-Length: 13\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n{\"a\":\"b\"}",
        b"HEAD / HTTP/1.0\r\nX-Tab:\tv\tw\t \r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nUpgrade: WebSocket\r\nContent-Length: 5, 5\r\n\r\n",
        b"PUT /u HTTP/1.1\r\nauthorization: Bearer abc.def\r\ncookie: a=b; c=d\r\nX-Long-Header-Name-That-Goes-On: a value that is rather longer than eight bytes  \r\n\r\n",
    ];
    const RESPONSES: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 06:32:23 GMT\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n",
        b"HTTP/1.1 204\r\nETag: \"x\"\r\n\r\n",
        b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 302 Found \t\r\nLocation: /elsewhere\r\nTransfer-Encoding: chunked\r\nX-Obs: caf\xc3\xa9\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];

    /// The fast path's result, when it takes `buf`, equals httparse's.
    fn check(buf: &[u8], request: bool) -> bool {
        for max in [0, 1, 3, 100] {
            let (fast, general) = if request {
                (fast_request(buf, max), parse_request_general(buf, max))
            } else {
                (fast_response(buf, max), parse_response_general(buf, max))
            };
            let Some((n, a)) = fast else {
                if max == 100 {
                    return false;
                }
                continue;
            };
            let Ok(Status::Complete((m, b))) = general else {
                panic!("fast path took {buf:?}, httparse gave {general:?}");
            };
            assert_eq!(n, m, "{buf:?}");
            assert_eq!(a.headers, b.headers, "{buf:?}");
            assert_eq!(
                (a.status, a.method, a.minor_version),
                (b.status, b.method, b.minor_version),
                "{buf:?}"
            );
            assert_eq!(
                (a.content_length, a.transfer_encoding, &a.upgrade),
                (b.content_length, b.transfer_encoding, &b.upgrade),
                "{buf:?}"
            );
        }
        true
    }

    /// The head cache gives what the fast path gives, hit or miss.
    #[test]
    fn head_cache_equals_the_fast_path() {
        let same = |a: Option<(usize, Head)>, b: Option<(usize, Head)>, what: &[u8]| match (a, b) {
            (None, None) => {}
            (Some((n, a)), Some((m, b))) => {
                assert_eq!(n, m, "{what:?}");
                assert_eq!(a.headers, b.headers, "{what:?}");
                assert_eq!(
                    (a.status, a.method, a.minor_version, a.content_length),
                    (b.status, b.method, b.minor_version, b.content_length),
                    "{what:?}"
                );
                assert_eq!(
                    (a.transfer_encoding, &a.upgrade),
                    (b.transfer_encoding, &b.upgrade),
                    "{what:?}"
                );
            }
            (a, b) => panic!(
                "{what:?}: cache {:?}, fast path {:?}",
                a.is_some(),
                b.is_some()
            ),
        };
        let mut inputs: Vec<(Vec<u8>, Kind)> = Vec::new();
        for (list, kind) in [(REQUESTS, Kind::Request), (RESPONSES, Kind::Response)] {
            for r in list {
                inputs.push((r.to_vec(), kind));
                // Other bytes after the head: the same head.
                let mut more = r.to_vec();
                more.extend_from_slice(b"GARBAGE\r\n\r\n");
                inputs.push((more, kind));
                // One byte changed anywhere: a different head (or none),
                // and a head cut short.
                for i in (0..r.len()).step_by(3) {
                    let mut other = r.to_vec();
                    other[i] ^= 0x21;
                    inputs.push((other, kind));
                }
                inputs.push((r[..r.len() / 2].to_vec(), kind));
            }
        }
        // Twice over, so that every input meets itself and the others in
        // the cache, with limits that take and turn down some heads.
        for round in 0..2 {
            for (buf, kind) in &inputs {
                for max in [1, 3, 100] {
                    let fast = match kind {
                        Kind::Request => fast_request(buf, max),
                        Kind::Response => fast_response(buf, max),
                    };
                    let cached = cached_head(buf, max, *kind);
                    same(cached, fast, buf);
                    if round == 1 {
                        same(
                            cached_head(buf, max, *kind),
                            cached_head(buf, max, *kind),
                            buf,
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fast_path_takes_common_heads() {
        for r in REQUESTS {
            assert!(check(r, true), "{r:?}");
        }
        for r in RESPONSES {
            assert!(check(r, false), "{r:?}");
        }
        // And leaves what it must: folding, bare LF, a space before the
        // colon, an empty value, a head not yet whole.
        for (r, request) in [
            (&b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"[..], true),
            (b"GET / HTTP/1.1\nA: b\n\n", true),
            (b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nA:\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nA: b\r\n", false),
            (b"GET  / HTTP/1.1\r\n\r\n", true),
        ] {
            assert!(!check(r, request), "{r:?}");
        }
    }

    /// A head that does not end within the fast path's copy is left to
    /// httparse, which takes it whole.
    #[test]
    fn long_heads_take_the_general_path() {
        let mut req = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        req.resize(HEAD_COPY + 10, b'v');
        req.extend_from_slice(b"\r\nAccept: */*\r\n\r\n");
        assert!(fast_request(&req, 100).is_none());
        match parse_request(&req, 100) {
            Ok(Status::Complete((n, head))) => {
                assert_eq!(n, req.len());
                assert_eq!(
                    head.headers.get(b"x-big").map(<[u8]>::len),
                    Some(HEAD_COPY + 10 - 32)
                );
                assert_eq!(head.headers.get(b"accept"), Some(&b"*/*"[..]));
            }
            other => panic!("{other:?}"),
        }
        // Just under the copy's size: the fast path.
        req.truncate(HEAD_COPY - 40);
        req.extend_from_slice(b"\r\n\r\n");
        assert!(check(&req, true));
    }

    /// The word-wise name scan stops where the byte-wise one does.
    #[test]
    fn name_scan_agrees() {
        let mut line = *b"abcdEFGHijklmNOPqrstUVWXyZ: v\r\n";
        for at in 0..26 {
            for b in 0..=255u8 {
                let was = line[at];
                line[at] = b;
                let want = line.iter().position(|&c| !TCHAR[usize::from(c)]);
                let mut ours = line;
                assert_eq!(name_len_lower(&mut ours), want, "{b:#x} at {at}");
                // The name lower-cased, nothing else touched.
                let mut lower = line;
                lower[..want.unwrap_or(0)].make_ascii_lowercase();
                assert_eq!(ours, lower, "{b:#x} at {at}");
                line[at] = was;
            }
        }
        let mut cl = *b"Content-Length: 3\r\n";
        assert_eq!(name_len_lower(&mut cl), Some(14));
        assert_eq!(&cl, b"content-length: 3\r\n");
        assert_eq!(name_len_lower(&mut b"X_Y.Z-1234567890abcd".clone()), None);
    }

    /// The word-wise name comparison agrees with `eq_ignore_ascii_case` on
    /// every token byte at every position.
    #[test]
    fn token_names_compare_like_ascii() {
        for lower in [&b"content-length"[..], b"transfer-encoding", b"upgrade"] {
            assert!(token_is(lower, lower));
            assert!(token_is(&lower.to_ascii_uppercase(), lower));
            for at in 0..lower.len() {
                for b in (0..=255u8).filter(|&b| TCHAR[usize::from(b)]) {
                    let mut name = lower.to_vec();
                    name[at] = b;
                    assert_eq!(
                        token_is(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{name:?}"
                    );
                }
            }
            assert!(!token_is(&lower[1..], lower));
        }
    }

    /// Content-Length values: one number, a list of equal ones, or an error.
    #[test]
    fn content_length_values() {
        for (value, want) in [
            (&b"3"[..], Ok(Some(3))),
            (b"00012", Ok(Some(12))),
            (b"9999999999999999999", Ok(Some(9_999_999_999_999_999_999))),
            (b"99999999999999999999", Err(())),
            (b"5 , 5", Ok(Some(5))),
            (b"5,6", Err(())),
            (b"", Err(())),
            (b"+5", Err(())),
        ] {
            let mut f = Framing::default();
            let got = f
                .see(b"Content-Length", value)
                .map(|()| f.content_length)
                .map_err(|_| ());
            assert_eq!(got, want, "{value:?}");
        }
        // A second, different value conflicts.
        let mut f = Framing::default();
        assert!(f.see(b"content-length", b"1").is_ok());
        assert!(f.see(b"CONTENT-LENGTH", b"2").is_err());
    }

    /// Mutated heads: the fast path never panics, and whatever it accepts
    /// httparse parses the same way.
    #[test]
    fn fast_path_agrees() {
        const ALPHABET: &[u8] = b" \t\r\n:,/;=\"aZ09-_.\x00\x01\x7f\x80\xff";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut taken = 0;
        for round in 0..40_000 {
            let request = round % 2 == 0;
            let pool = if request { REQUESTS } else { RESPONSES };
            let mut buf = pool[(next() % pool.len() as u64) as usize].to_vec();
            for _ in 0..=(next() % 3) {
                let at = (next() % (buf.len() as u64 + 1)) as usize;
                let b = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
                match next() % 4 {
                    0 if at < buf.len() => buf[at] = b,
                    1 => buf.insert(at, b),
                    2 if at < buf.len() => {
                        buf.remove(at);
                    }
                    _ => buf.truncate(at),
                }
            }
            taken += usize::from(check(&buf, request));
        }
        // The mutations leave a good share of heads whole.
        assert!(taken > 5_000, "{taken}");
    }
}
