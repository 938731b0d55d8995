//! [`Http2Decoder`]: one HTTP/2 connection, both directions, into transactions.

use std::collections::BTreeMap;

use super::frame::{Frame, FrameDecoder, FrameError, Skipped, setting};
use crate::hpack;
use crate::transaction::parse_status;
use crate::websocket::{DeflateParams, WsDecoder};
use crate::{Counters, Direction, End, Event, Headers, Limits, Message, Protocol, Transaction};

/// Decodes both directions of one HTTP/2 connection into [`Transaction`]s.
///
/// Feed it the plaintext of each direction as it is captured
/// ([`feed`](Http2Decoder::feed)); it keeps one [`FrameDecoder`] and one
/// [`hpack::Decoder`] per direction and a bounded map of open streams. A
/// stream becomes a [`Transaction`] when both sides have ended it
/// (END_STREAM), when it is reset (RST_STREAM), refused by GOAWAY, evicted by
/// `Limits::h2_max_streams`, or when [`finish`](Http2Decoder::finish) is called
/// at connection close. A PUSH_PROMISE opens the promised stream with its
/// request already complete.
///
/// An extended CONNECT (RFC 8441) with `:protocol = websocket` is emitted
/// as a transaction as soon as the server accepts it (2xx, both messages
/// marked complete); the DATA frames of that stream then go to a
/// [`WsDecoder`] (emitting [`Event::WebSocket`]s) instead of the bodies,
/// until the stream ends.
///
/// Memory is bounded by `Limits`: open streams (each with capped bodies and
/// header lists), two HPACK tables and two frame buffers.
#[derive(Debug, Clone)]
pub struct Http2Decoder {
    frames: [FrameDecoder; 2],
    core: Core,
}

/// Skipped stream ids waiting to be counted as unseen, at most.
const UNSEEN_PENDING_MAX: usize = 1024;
/// A skipped id this far below the newest header block's is counted unseen.
const UNSEEN_WINDOW: u32 = 512;

#[derive(Debug, Clone)]
struct Core {
    limits: Limits,
    /// HPACK decoder for header blocks sent in each direction.
    hpack: [hpack::Decoder; 2],
    /// Largest SETTINGS_HEADER_TABLE_SIZE governing each direction's encoder.
    table_setting: [u32; 2],
    /// SETTINGS_MAX_FRAME_SIZE to hand to each direction's frame decoder.
    pending_frame_size: [Option<u32>; 2],
    /// Inline: a stream is small (its transaction is boxed), so a B-tree
    /// leaf's eleven slots cost little, and a stream costs one allocation.
    streams: BTreeMap<u32, Stream>,
    /// Highest stream id of a request HEADERS seen from the client.
    max_client_stream: u32,
    /// Highest client-initiated (odd) stream id of a header block seen in
    /// either direction: ids skipped below it are streams whose request
    /// header block was lost (clients open streams in order; losses can fall
    /// on frame boundaries, where the byte stream shows no seam).
    max_block_stream: u32,
    /// Seen from the connection's first byte: client streams start at 1, so
    /// ids below the first header block seen were lost too (a connection
    /// joined midway may have used them before weft started).
    from_start: bool,
    /// Skipped ids, ascending, not yet counted in `streams_unseen`: the
    /// response of such a stream can still come (multiplexed responses
    /// trail the requests). Counted once `UNSEEN_WINDOW` ids older than the
    /// newest, or at `finish`; dropped when a block of theirs arrives.
    unseen_pending: std::collections::VecDeque<u32>,
    /// Hint: streams whose response ended before their request was seen
    /// may exist (exact after each `flush_orphans`).
    orphans: usize,
    /// Size (fields, bytes) of the last header list decoded per direction:
    /// with the dynamic table a 30-byte block decodes to 700 bytes, so the
    /// block length alone under-sizes the list and it would grow by
    /// reallocation, field by field.
    list_hint: [(usize, usize); 2],
    /// The caller's clock during the current feed (0: not known).
    now: u64,
    /// When idle streams were last looked for.
    last_sweep: u64,
    counters: Counters,
}

#[derive(Debug, Clone)]
struct Stream {
    /// Boxed from the start: emitting it hands the box on, no copy.
    tx: Box<Transaction>,
    /// Header blocks received per direction (0 = awaiting headers).
    blocks: [u8; 2],
    /// Extended CONNECT to `websocket`: the WebSocket decoder for the
    /// stream's DATA frames.
    ws: Option<Box<WsDecoder>>,
    /// The server accepted the WebSocket and the transaction was emitted.
    ws_established: bool,
    /// Caller's clock at the stream's last frame (0: not known).
    touched: u64,
}

impl Http2Decoder {
    /// A decoder for a connection observed from its first byte: the client
    /// direction must start with the connection preface.
    pub fn new(limits: &Limits) -> Self {
        Http2Decoder {
            frames: [
                FrameDecoder::new_client(limits),
                FrameDecoder::new_server(limits),
            ],
            core: Core::new(
                limits,
                [hpack::Decoder::new(limits), hpack::Decoder::new(limits)],
            ),
        }
    }

    /// The connection started while the capture ran (its TLS handshake was
    /// seen), even if this decoder joined after its first bytes: client
    /// streams started at 1, so ids below the first header block seen were
    /// lost too.
    pub fn set_streams_from_start(&mut self) {
        self.core.from_start = true;
    }

    /// The capture saw a header block of client stream `last` (odd), in a
    /// call whose bytes may never have reached this decoder (lost to a
    /// full ring): every client stream after the last block seen here, up
    /// to and including `last`, is counted as lost whole (`streams_unseen`)
    /// unless a block of it still comes. Only the end of a connection needs
    /// it: before, a later block reveals the skipped ids.
    pub fn streams_until(&mut self, last: u32) {
        let last = last & 0x7fff_ffff;
        if last & 1 == 0 || last <= self.core.max_block_stream {
            return;
        }
        // Every client stream after the last block seen, `last` included.
        self.core.skip_streams_before(last + 2);
        self.core.max_block_stream = last;
        self.core.count_stale_unseen();
    }

    /// After an HTTP/1.1 `Upgrade: h2c`: stream 1 was the upgraded request
    /// (seen as HTTP/1), so the client's first HTTP/2 stream is 3.
    pub(crate) fn note_h2c_upgrade(&mut self) {
        self.core.max_block_stream = self.core.max_block_stream.max(1);
    }

    /// A decoder for a connection already in progress: frame boundaries are
    /// found by resynchronisation, and header fields that reference HPACK
    /// entries sent before we joined are reported missing
    /// ([`Message::headers_incomplete`]) until the tables refill.
    pub fn new_mid_connection(limits: &Limits) -> Self {
        let mut core = Core::new(
            limits,
            [
                hpack::Decoder::new_mid_connection(limits),
                hpack::Decoder::new_mid_connection(limits),
            ],
        );
        core.table_setting = [limits.hpack_max_table_size; 2];
        core.from_start = false;
        Http2Decoder {
            frames: [
                FrameDecoder::new_mid_connection(limits),
                FrameDecoder::new_mid_connection(limits),
            ],
            core,
        }
    }

    /// Decodes `bytes` sent in direction `dir`, appending finished
    /// transactions to `out`. Bytes may be split anywhere; each call's first
    /// byte is also where the decoder tries to resynchronise after losing
    /// frame alignment.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], out: &mut Vec<Event>) {
        let d = dir.index();
        let mut input = bytes;
        let mut stalls = 0;
        loop {
            let (n, result) = self.frames[d].decode(input);
            input = &input[n..];
            let frame_done = match result {
                Ok(Some(frame)) => {
                    self.core.on_frame(dir, frame, out);
                    true
                }
                Ok(None) => break,
                Err(e) => {
                    self.core.on_frame_error(dir, e);
                    false
                }
            };
            // Defensive: every path consumes input or changes state; never spin.
            stalls = if n == 0 { stalls + 1 } else { 0 };
            if stalls > 4 {
                break;
            }
            for (fd, size) in self
                .frames
                .iter_mut()
                .zip(self.core.pending_frame_size.iter_mut())
            {
                if let Some(size) = size.take() {
                    fd.set_peer_max_frame_size(size);
                }
            }
            // After a frame (not after an error, which may leave an empty
            // frame to finish) the decoder waits for more input: no call
            // just to hear that (a third of the calls with small frames).
            if frame_done && input.is_empty() {
                debug_assert!(matches!(self.frames[d].decode(&[]), (0, Ok(None))));
                break;
            }
        }
        // An emptied B-tree keeps its root node (~400 bytes): a connection
        // between requests, most of them most of the time, holds none.
        if self.core.streams.is_empty() {
            self.core.streams = BTreeMap::new();
        }
    }

    /// Sets the caller's clock for the next [`feed`](Self::feed) (streams
    /// remember when they last had a frame, for
    /// [`expire_idle`](Self::expire_idle)).
    pub fn set_now(&mut self, now: u64) {
        self.core.now = now;
    }

    /// Emits (as [`End::Evicted`], counted in `Counters::streams_evicted`)
    /// and forgets the streams without a frame for
    /// `Limits::h2_stream_idle_secs` by `now`; WebSocket streams stay.
    /// Cheap to call on every feed: it looks at the streams at most four
    /// times per idle period.
    pub fn expire_idle(&mut self, now: u64, out: &mut Vec<Event>) {
        let idle = u64::from(self.core.limits.h2_stream_idle_secs) * 1_000_000_000;
        if idle == 0 || now == 0 || now < self.core.last_sweep.saturating_add(idle / 4) {
            return;
        }
        self.core.last_sweep = now;
        let stale: Vec<u32> = self
            .core
            .streams
            .iter()
            .filter(|(_, s)| {
                s.ws.is_none() && s.touched != 0 && now.saturating_sub(s.touched) >= idle
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(s) = self.core.streams.remove(&id) {
                self.core.counters.streams_evicted += 1;
                self.core.emit(s, End::Evicted, out);
            }
        }
    }

    /// Stamp the open streams' messages with `now` (see
    /// [`crate::Message::stamp`]).
    pub fn stamp_open(&mut self, now: u64) {
        for s in self.core.streams.values_mut() {
            s.tx.stamp(now);
            if let Some(ws) = &mut s.ws {
                ws.stamp_open(now);
            }
        }
    }

    /// Tells the decoder that `lost` bytes of direction `dir` were not
    /// captured. The direction's frame decoder resynchronises on the next
    /// [`feed`](Http2Decoder::feed) and its HPACK decoder forgets its table;
    /// open messages in that direction are flagged [`Message::data_lost`].
    pub fn gap(&mut self, dir: Direction, lost: u64) {
        let d = dir.index();
        self.frames[d].lose_sync();
        let c = &mut self.core;
        c.hpack[d].resync();
        c.counters.gap_bytes += lost;
        c.counters.desyncs += 1;
        c.counters.hpack_resyncs += 1;
        for s in c.streams.values_mut() {
            let m = s.message(dir);
            if !m.complete {
                m.data_lost = true;
            }
            // The lost bytes may have held this stream's WebSocket frames
            // (the connection's gap bytes are already counted).
            if let Some(ws) = &mut s.ws {
                ws.gap(dir, 0);
                c.counters.add(&ws.take_counters());
            }
        }
    }

    /// Tells the decoder that `n` bytes of direction `dir`, right after the
    /// bytes fed so far, were not captured because the capture judged them
    /// body bytes past `Limits::max_body_size`.
    ///
    /// Inside the payload of the DATA frame being read (data or padding)
    /// with at least `n` bytes of it left, the frame decoder passes over
    /// them in sync (no HPACK resync): the stream's message counts the data
    /// bytes among them in its body's real size and its body is cut as by
    /// the body bound (not [`Message::data_lost`]); if they end a frame
    /// carrying END_STREAM, the side ends (emitting to `out` when the
    /// stream is done). On a WebSocket stream the WebSocket decoder takes
    /// the data bytes as a gap. Anywhere else the hole is a
    /// [`gap`](Self::gap), also counted in `Counters::skip_gaps`.
    pub fn skip(&mut self, dir: Direction, n: u64, out: &mut Vec<Event>) {
        if n == 0 {
            return;
        }
        match self.frames[dir.index()].skip(n) {
            Some(skipped) => self.core.on_skip(dir, n, skipped, out),
            None => {
                self.core.counters.skip_gaps += 1;
                self.gap(dir, n);
            }
        }
        if self.core.streams.is_empty() {
            self.core.streams = BTreeMap::new();
        }
    }

    /// The connection is gone: emits every open stream as a transaction
    /// ending in [`End::ConnectionClosed`].
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let streams = std::mem::take(&mut self.core.streams);
        self.core.orphans = 0;
        let pending = std::mem::take(&mut self.core.unseen_pending);
        self.core.counters.streams_unseen += pending.len() as u64;
        for (_, s) in streams {
            let end = if s.is_done() {
                End::Complete
            } else {
                End::ConnectionClosed
            };
            self.core.emit(s, end, out);
        }
    }

    /// Counters accumulated so far.
    pub fn counters(&self) -> &Counters {
        &self.core.counters
    }

    /// Returns the counters accumulated so far and resets them.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.core.counters)
    }

    /// Streams currently tracked.
    pub fn open_streams(&self) -> usize {
        self.core.streams.len()
    }

    /// Approximate bytes held by this decoder (buffers, tables, open
    /// streams), for memory accounting and tests.
    pub fn memory_footprint(&self) -> usize {
        let streams: usize = self
            .core
            .streams
            .values()
            .map(|s| {
                std::mem::size_of::<Stream>()
                    + std::mem::size_of::<Transaction>()
                    + s.ws.as_ref().map_or(0, |w| w.memory_footprint())
                    + [&s.tx.request, &s.tx.response]
                        .iter()
                        .map(|m| {
                            m.headers.bytes_len() + m.trailers.bytes_len() + m.body.data.capacity()
                        })
                        .sum::<usize>()
            })
            .sum();
        self.frames
            .iter()
            .map(FrameDecoder::buffer_capacity)
            .sum::<usize>()
            + self
                .core
                .hpack
                .iter()
                .map(hpack::Decoder::table_size)
                .sum::<usize>()
            + streams
            + std::mem::size_of::<Self>()
    }

    /// The HPACK decoder for header blocks sent in `dir` (diagnostics).
    pub fn hpack(&self, dir: Direction) -> &hpack::Decoder {
        &self.core.hpack[dir.index()]
    }
}

impl Stream {
    fn new(id: u32) -> Self {
        Stream {
            tx: crate::recycle::transaction(Protocol::Http2, id),
            blocks: [0; 2],
            ws: None,
            ws_established: false,
            touched: 0,
        }
    }

    fn message(&mut self, dir: Direction) -> &mut Message {
        match dir {
            Direction::ClientToServer => &mut self.tx.request,
            Direction::ServerToClient => &mut self.tx.response,
        }
    }

    /// Both sides ended, or the response ended and the request will never
    /// be seen (decided by the caller for orphans).
    fn is_done(&self) -> bool {
        self.tx.request.complete && self.tx.response.complete
    }
}

impl Core {
    fn new(limits: &Limits, mut hpack: [hpack::Decoder; 2]) -> Self {
        for h in &mut hpack {
            h.set_lowercase(true);
        }
        Core {
            limits: *limits,
            hpack,
            table_setting: [hpack::DEFAULT_TABLE_SIZE; 2],
            pending_frame_size: [None; 2],
            streams: BTreeMap::new(),
            max_client_stream: 0,
            max_block_stream: 0,
            from_start: true,
            unseen_pending: std::collections::VecDeque::new(),
            orphans: 0,
            list_hint: [(16, 0); 2],
            now: 0,
            last_sweep: 0,
            counters: Counters::default(),
        }
    }

    fn on_frame_error(&mut self, dir: Direction, e: FrameError) {
        match e {
            FrameError::Unsynchronised { dropped } => {
                self.counters.dropped_bytes += dropped as u64;
            }
            FrameError::BadFrameHeader { .. } | FrameError::BadPreface => {
                self.counters.desyncs += 1;
            }
            FrameError::HeaderBlockTooLarge { .. } => self.counters.header_blocks_too_large += 1,
            _ => self.counters.frame_errors += 1,
        }
        // (While unsynchronised the resync already happened when sync was lost.)
        if e.loses_header_block() && !matches!(e, FrameError::Unsynchronised { .. }) {
            self.hpack[dir.index()].resync();
            self.counters.hpack_resyncs += 1;
        }
        if let FrameError::HeaderBlockTooLarge { stream_id, .. } = e
            && let Some(s) = self.streams.get_mut(&stream_id)
        {
            let m = s.message(dir);
            m.seen = true;
            m.headers_incomplete = true;
            m.headers_truncated = true;
        }
    }

    fn on_frame(&mut self, dir: Direction, frame: Frame<'_>, out: &mut Vec<Event>) {
        let ids = match &frame {
            Frame::Data { stream_id, .. }
            | Frame::Headers { stream_id, .. }
            | Frame::Priority { stream_id, .. }
            | Frame::RstStream { stream_id, .. }
            | Frame::WindowUpdate { stream_id, .. } => [*stream_id, 0],
            Frame::PushPromise {
                stream_id,
                promised_stream_id,
                ..
            } => [*stream_id, *promised_stream_id],
            _ => [0, 0],
        };
        self.dispatch(dir, frame, out);
        if self.now != 0 {
            for id in ids {
                // (Stream 0 is the connection: never in the map.)
                if id != 0
                    && let Some(s) = self.streams.get_mut(&id)
                {
                    s.touched = self.now;
                }
            }
        }
    }

    fn dispatch(&mut self, dir: Direction, frame: Frame<'_>, out: &mut Vec<Event>) {
        match frame {
            Frame::Data {
                stream_id,
                data,
                end_stream,
                ..
            } => self.on_data(dir, stream_id, data, end_stream, out),
            Frame::Headers {
                stream_id,
                end_stream,
                block,
                ..
            } => self.on_headers(dir, stream_id, end_stream, block, out),
            Frame::PushPromise {
                stream_id,
                promised_stream_id,
                block,
            } => self.on_push_promise(dir, stream_id, promised_stream_id, block, out),
            Frame::RstStream {
                stream_id,
                error_code,
            } => {
                if let Some(s) = self.streams.remove(&stream_id) {
                    self.emit(
                        s,
                        End::Reset {
                            by: dir,
                            error_code,
                        },
                        out,
                    );
                }
            }
            Frame::Settings {
                ack: false,
                settings,
            } => {
                let other = dir.reverse().index();
                for (id, value) in settings.iter() {
                    match id {
                        setting::HEADER_TABLE_SIZE => {
                            // Only ever raise: the two directions may be
                            // captured out of order relative to each other.
                            let v = self.table_setting[other].max(value);
                            self.table_setting[other] = v;
                            self.hpack[other].set_max_table_size_setting(v);
                        }
                        setting::MAX_FRAME_SIZE => self.pending_frame_size[other] = Some(value),
                        _ => {}
                    }
                }
            }
            Frame::GoAway {
                last_stream_id,
                error_code,
                ..
            } => {
                // Streams initiated by the GOAWAY's receiver above last_stream_id
                // were not processed. Clients initiate odd streams.
                let receiver_parity = match dir {
                    Direction::ServerToClient => 1,
                    Direction::ClientToServer => 0,
                };
                let refused: Vec<u32> = self
                    .streams
                    .range(last_stream_id.saturating_add(1)..)
                    .map(|(&id, _)| id)
                    .filter(|id| id % 2 == receiver_parity)
                    .collect();
                for id in refused {
                    if let Some(s) = self.streams.remove(&id) {
                        self.emit(s, End::GoAway { error_code }, out);
                    }
                }
            }
            Frame::Unknown { .. } => self.counters.frames_unknown_type += 1,
            Frame::Settings { ack: true, .. }
            | Frame::Priority { .. }
            | Frame::Ping { .. }
            | Frame::WindowUpdate { .. } => {}
        }
    }

    /// Decodes a header block with the direction's HPACK decoder; always
    /// called, even for untracked streams, to keep the table in sync.
    fn decode_block(&mut self, dir: Direction, block: &[u8]) -> (Headers, bool, bool) {
        let (hint_fields, hint_bytes) = self.list_hint[dir.index()];
        let mut headers = Headers::with_capacity(
            hint_fields.min(128),
            (block.len() * 2).max(hint_bytes).min(16384),
        );
        let (incomplete, truncated) = match self.hpack[dir.index()].decode(block, &mut headers) {
            Ok(st) => {
                self.counters.hpack_unknown_references += u64::from(st.unknown_references);
                self.counters.header_fields_dropped += u64::from(st.dropped_fields);
                if st.table_clamped {
                    self.counters.hpack_table_clamped += 1;
                }
                (st.is_incomplete(), st.is_truncated())
            }
            Err(_) => {
                self.counters.hpack_errors += 1;
                self.counters.hpack_resyncs += 1;
                (true, false)
            }
        };
        // (Names come lower-cased from the HPACK decoders: see `Core::new`.)
        self.list_hint[dir.index()] = (headers.len(), headers.bytes_len());
        (headers, incomplete, truncated)
    }

    /// Bookkeeping of `streams_unseen` for a header block of client stream
    /// `id` (odd).
    fn note_block_stream(&mut self, id: u32) {
        if id > self.max_block_stream {
            self.skip_streams_before(id);
            self.max_block_stream = id;
        } else if let Some(i) = self.unseen_pending.iter().position(|&p| p == id) {
            self.unseen_pending.remove(i); // seen late: not lost
        }
        self.count_stale_unseen();
    }

    /// The client streams after the highest block seen and below `id` had
    /// no block: the oldest wait in the queue while it has room (a block
    /// of theirs may still come), the rest are counted at once (no loop
    /// over a peer's jump to 2^31 - 1). Nothing is known of the ids before
    /// the first block of a connection joined midway.
    fn skip_streams_before(&mut self, id: u32) {
        if self.max_block_stream == 0 && !self.from_start {
            return;
        }
        let first = if self.max_block_stream > 0 {
            self.max_block_stream + 2
        } else {
            1
        };
        let skipped = id.saturating_sub(first).div_ceil(2);
        let room = UNSEEN_PENDING_MAX.saturating_sub(self.unseen_pending.len());
        let queued = skipped.min(u32::try_from(room).unwrap_or(u32::MAX));
        self.unseen_pending
            .extend((0..queued).map(|k| first + 2 * k));
        self.counters.streams_unseen += u64::from(skipped - queued);
    }

    /// Pending ids `UNSEEN_WINDOW` older than the newest block: lost.
    fn count_stale_unseen(&mut self) {
        let horizon = self.max_block_stream.saturating_sub(UNSEEN_WINDOW);
        while self.unseen_pending.front().is_some_and(|&p| p < horizon) {
            self.unseen_pending.pop_front();
            self.counters.streams_unseen += 1;
        }
    }

    /// The stream `id`, created if needed (evicting the oldest at the limit).
    fn stream(&mut self, id: u32, out: &mut Vec<Event>) -> Option<&mut Stream> {
        // One search when the map has room (the common case).
        if self.streams.len() >= self.limits.h2_max_streams as usize
            && !self.streams.contains_key(&id)
        {
            if self.limits.h2_max_streams == 0 {
                return None;
            }
            while self.streams.len() >= self.limits.h2_max_streams as usize {
                let Some((_, oldest)) = self.streams.pop_first() else {
                    break;
                };
                self.counters.streams_evicted += 1;
                self.emit(oldest, End::Evicted, out);
            }
        }
        Some(self.streams.entry(id).or_insert_with(|| Stream::new(id)))
    }

    fn on_headers(
        &mut self,
        dir: Direction,
        id: u32,
        end_stream: bool,
        block: &[u8],
        out: &mut Vec<Event>,
    ) {
        let (headers, incomplete, truncated) = self.decode_block(dir, block);
        let limits = self.limits;
        if id % 2 == 1 {
            self.note_block_stream(id);
        }
        if dir == Direction::ClientToServer && id > self.max_client_stream {
            self.max_client_stream = id;
            self.flush_orphans(id, out);
        }
        let Some(s) = self.stream(id, out) else {
            self.counters.frames_unknown_stream += 1;
            return;
        };
        let d = dir.index();
        let first = s.blocks[d] == 0;
        s.blocks[d] = s.blocks[d].saturating_add(1);
        let is_interim = dir == Direction::ServerToClient
            && first
            && headers
                .get_leading(b":status")
                .and_then(parse_status)
                .is_some_and(|st| (100..200).contains(&st));
        if is_interim {
            s.blocks[d] = 0;
            s.tx.interim.push(headers);
            s.tx.response.seen = true;
            if incomplete {
                s.tx.response.headers_incomplete = true;
            }
            return;
        }
        let m = s.message(dir);
        if m.complete {
            // HEADERS after END_STREAM: a protocol error by the peer.
            self.counters.frame_errors += 1;
            return;
        }
        m.seen = true;
        m.headers_incomplete |= incomplete;
        m.headers_truncated |= truncated;
        let mut websocket_connect = false;
        if first {
            m.headers = headers;
            websocket_connect =
                dir == Direction::ClientToServer && is_websocket_connect(&m.headers);
        } else {
            // Trailers (several trailing blocks are merged).
            if m.trailers.is_empty() {
                m.trailers = headers;
            } else {
                for f in headers.iter() {
                    m.trailers.push_field(f.name, f.value, f.sensitive);
                }
            }
        }
        if end_stream {
            m.complete = true;
        }
        if websocket_connect {
            s.ws = Some(Box::new(WsDecoder::new(&limits, id, None)));
        }
        if first && dir == Direction::ServerToClient && s.ws.is_some() {
            self.websocket_response(id, out);
        }
        if end_stream {
            self.maybe_emit(dir, id, out);
        }
    }

    fn on_data(
        &mut self,
        dir: Direction,
        id: u32,
        data: &[u8],
        end_stream: bool,
        out: &mut Vec<Event>,
    ) {
        let max = self.limits.max_body_size as usize;
        let Some(s) = self.streams.get_mut(&id) else {
            self.counters.frames_unknown_stream += 1;
            return;
        };
        if let Some(ws) = &mut s.ws
            && (dir == Direction::ClientToServer || s.ws_established)
        {
            ws.feed(dir, data, out);
            let c = ws.take_counters();
            self.ws_fed(dir, id, end_stream, &c, out);
            return;
        }
        let awaiting_headers = s.blocks[dir.index()] == 0;
        let m = s.message(dir);
        if m.complete {
            self.counters.frame_errors += 1;
            return;
        }
        m.seen = true;
        if awaiting_headers {
            m.headers_incomplete = true;
        }
        // Only before the first byte: no header lookup per DATA frame; and
        // not for a body whose first bytes are its last (room for them is
        // made as they are kept).
        if m.body.data.is_empty()
            && !end_stream
            && let Some(len) = m
                .headers
                .get(b"content-length")
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            m.body.presize(len, max);
        }
        let was_truncated = m.body.truncated;
        let dropped = m.body.append(data, max);
        self.counters.body_cut(was_truncated, dropped as u64);
        if end_stream {
            m.complete = true;
            self.maybe_emit(dir, id, out);
        }
    }

    /// A WebSocket stream's DATA went to its decoder (fed or told of a
    /// gap): the decoder's counters `c` join the connection's, and
    /// END_STREAM completes the stream's message in `dir`.
    fn ws_fed(
        &mut self,
        dir: Direction,
        id: u32,
        end_stream: bool,
        c: &Counters,
        out: &mut Vec<Event>,
    ) {
        self.counters.add(c);
        if end_stream {
            if let Some(s) = self.streams.get_mut(&id) {
                s.message(dir).complete = true;
            }
            self.maybe_emit(dir, id, out);
        }
    }

    /// `n` bytes of a DATA frame's payload in `dir` were passed over by
    /// [`FrameDecoder::skip`]; `skipped.data` of them were data.
    fn on_skip(&mut self, dir: Direction, n: u64, skipped: Skipped, out: &mut Vec<Event>) {
        let Skipped {
            stream_id: id,
            data,
            end_stream,
        } = skipped;
        let now = self.now;
        let Some(s) = self.streams.get_mut(&id) else {
            // Padding only, or a stream not tracked: nothing to mark.
            self.counters.body_bytes_skipped += n;
            return;
        };
        if now != 0 {
            s.touched = now;
        }
        if let Some(ws) = &mut s.ws
            && (dir == Direction::ClientToServer || s.ws_established)
        {
            // The WebSocket decoder cannot pass over bytes inside frames
            // it does not see: for it, the data bytes are a gap.
            if data > 0 {
                ws.gap(dir, data);
                self.counters.skip_gaps += 1;
            }
            self.counters.body_bytes_skipped += n - data;
            let c = ws.take_counters();
            self.ws_fed(dir, id, end_stream, &c, out);
            return;
        }
        self.counters.body_bytes_skipped += n;
        let awaiting_headers = s.blocks[dir.index()] == 0;
        let m = s.message(dir);
        if m.complete {
            if data > 0 || end_stream {
                self.counters.frame_errors += 1;
            }
            return;
        }
        m.seen = true;
        if awaiting_headers {
            m.headers_incomplete = true;
        }
        let was_truncated = m.body.truncated;
        m.body.skip(data);
        self.counters.body_cut(was_truncated, data);
        if end_stream {
            m.complete = true;
            self.maybe_emit(dir, id, out);
        }
    }

    fn on_push_promise(
        &mut self,
        dir: Direction,
        id: u32,
        promised: u32,
        block: &[u8],
        out: &mut Vec<Event>,
    ) {
        let (headers, incomplete, truncated) = self.decode_block(dir, block);
        if dir != Direction::ServerToClient || promised == 0 {
            self.counters.frame_errors += 1;
            return;
        }
        let Some(s) = self.stream(promised, out) else {
            self.counters.frames_unknown_stream += 1;
            return;
        };
        s.tx.promised_by = Some(id);
        s.blocks[Direction::ClientToServer.index()] = 1;
        let m = &mut s.tx.request;
        m.headers = headers;
        m.seen = true;
        m.complete = true;
        m.headers_incomplete = incomplete;
        m.headers_truncated = truncated;
    }

    /// Emits stream `id` if it is finished. A response that ends before its
    /// request was seen waits (the client direction may be captured late)
    /// unless the client has already opened a later stream.
    fn maybe_emit(&mut self, dir: Direction, id: u32, out: &mut Vec<Event>) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        let done = s.is_done()
            || (s.tx.response.complete
                && !s.tx.request.seen
                && (id.is_multiple_of(2) || id <= self.max_client_stream));
        if done {
            if let Some(s) = self.streams.remove(&id) {
                self.emit(s, End::Complete, out);
            }
        } else if dir == Direction::ServerToClient && s.tx.response.complete && !s.tx.request.seen {
            self.orphans += 1;
        }
    }

    /// The client opened stream `below`: responses on earlier streams whose
    /// request we never saw will not get one.
    fn flush_orphans(&mut self, below: u32, out: &mut Vec<Event>) {
        if self.orphans == 0 {
            return;
        }
        let ids: Vec<u32> = self
            .streams
            .range(..below)
            .filter(|(_, s)| s.tx.response.complete && !s.tx.request.seen)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            if let Some(s) = self.streams.remove(&id) {
                self.emit(s, End::Complete, out);
            }
        }
        self.orphans = self
            .streams
            .values()
            .filter(|s| s.tx.response.complete && !s.tx.request.seen)
            .count();
    }

    /// The response to a WebSocket extended CONNECT: on 2xx, emit the
    /// transaction now and hand the stream's DATA to the WebSocket decoder;
    /// otherwise it is an ordinary response.
    fn websocket_response(&mut self, id: u32, out: &mut Vec<Event>) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let accepted =
            s.tx.response
                .headers
                .get(b":status")
                .and_then(parse_status)
                .is_some_and(|st| (200..300).contains(&st));
        if !accepted {
            s.ws = None;
            return;
        }
        if let Some(ws) = &mut s.ws {
            ws.set_deflate(DeflateParams::from_headers(&s.tx.response.headers));
        }
        s.ws_established = true;
        let mut tx = s.tx.clone();
        tx.request.complete = true;
        tx.response.complete = true;
        tx.end = End::Complete;
        self.counters.transactions += 1;
        if !tx.is_complete() {
            self.counters.transactions_incomplete += 1;
        }
        out.push(Event::Transaction(tx));
    }

    fn emit(&mut self, s: Stream, end: End, out: &mut Vec<Event>) {
        if let Some(mut ws) = s.ws {
            ws.finish(out);
            self.counters.add(&ws.take_counters());
        }
        if s.ws_established {
            // The transaction went out when the WebSocket was accepted.
            return;
        }
        let mut tx = s.tx;
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

/// An extended CONNECT (RFC 8441) for WebSocket: `:method = CONNECT` and
/// `:protocol = websocket`.
fn is_websocket_connect(h: &Headers) -> bool {
    h.get_leading(b":method") == Some(b"CONNECT")
        && h.get(b":protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case(b"websocket"))
}
