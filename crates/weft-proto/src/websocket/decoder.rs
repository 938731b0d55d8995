//! [`WsDecoder`]: both directions of one WebSocket connection into messages.

use super::frame::{
    FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, parse_frame_header, plausible_frame, unmask,
};
use super::{DeflateParams, Opcode, WsMessage};
use crate::compression::{Budget, Coding, DecodeError, Inflater};
use crate::{Counters, Direction, Event, Limits};

/// The empty stored block permessage-deflate strips from each message and
/// the receiver appends again (RFC 7692 §7.2.2).
const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Unmasking scratch size for compressed payloads.
const SCRATCH: usize = 4096;

/// Decodes both directions of one WebSocket connection (RFC 6455) into
/// [`Event::WebSocket`] messages.
///
/// Created when a connection switches to WebSocket (HTTP/1.1 `101`, or an
/// HTTP/2 extended CONNECT stream, RFC 8441), with the permessage-deflate
/// parameters from the server's `Sec-WebSocket-Extensions`. Frames are
/// parsed incrementally (split anywhere), unmasked, reassembled from
/// fragments (control frames may arrive between fragments) and, when RSV1
/// marks a compressed message, inflated as the payload arrives.
///
/// * One event per message: text, binary, close (code + reason), ping, pong.
/// * Payloads are kept up to `Limits::ws_max_message_size` (control frames:
///   their at most 125 bytes); [`WsMessage::size`] is the real size.
/// * Inflating is capped by `Limits::max_decompressed_size` and
///   `Limits::max_decompression_ratio` per message.
/// * A gap or an impossible frame header marks the direction lost: the open
///   message is flagged [`WsMessage::data_lost`] and each later input's
///   first bytes are tried as a frame start ([`super::plausible_frame`]).
///   With context takeover, compressed messages that refer to history we
///   lost fail to inflate (flagged, counted) until 32 KiB of new history
///   has been seen.
/// * RSV1 without negotiated permessage-deflate is a protocol error, but
///   the message is still inflated (the upgrade may have been missed).
#[derive(Debug, Clone)]
pub struct WsDecoder {
    limits: Limits,
    stream_id: u32,
    deflate: Option<DeflateParams>,
    sides: [Side; 2],
    counters: Counters,
}

#[derive(Debug, Clone, Default)]
struct Side {
    phase: Phase,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: usize,
    frame: Frame,
    /// The data message being assembled (possibly fragmented).
    data: Option<Partial>,
    /// The control frame being read.
    control: Option<Partial>,
    /// Created at the first compressed message.
    inflater: Option<Box<Inflater>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Header,
    Payload,
    /// Resynchronise at the next input that starts like a frame.
    Lost,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    control: bool,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes of this frame already read (the mask phase).
    pos: u64,
    remaining: u64,
}

#[derive(Debug, Clone)]
struct Partial {
    opcode: Opcode,
    payload: Vec<u8>,
    size: u64,
    wire_size: u64,
    truncated: bool,
    compressed: bool,
    frames: u32,
    data_lost: bool,
    error: Option<DecodeError>,
    /// The DEFLATE stream ended (a BFINAL block) inside this message.
    inflate_end: bool,
    first_ns: u64,
}

impl Partial {
    fn new(opcode: Opcode, compressed: bool) -> Self {
        Partial {
            opcode,
            payload: Vec::new(),
            size: 0,
            wire_size: 0,
            truncated: false,
            compressed,
            frames: 1,
            data_lost: false,
            error: None,
            inflate_end: false,
            first_ns: 0,
        }
    }

    /// Appends decoded bytes, keeping at most `keep` in total.
    fn append(&mut self, b: &[u8], keep: usize) {
        self.size += b.len() as u64;
        let room = keep.saturating_sub(self.payload.len());
        let n = room.min(b.len());
        self.payload.extend_from_slice(&b[..n]);
        if n < b.len() {
            self.truncated = true;
        }
    }
}

impl WsDecoder {
    /// A decoder for WebSocket connection `stream_id` (the HTTP/1
    /// transaction number or HTTP/2 stream that upgraded), with
    /// permessage-deflate if `deflate` is set (see
    /// [`DeflateParams::from_headers`]).
    pub fn new(limits: &Limits, stream_id: u32, deflate: Option<DeflateParams>) -> Self {
        WsDecoder {
            limits: *limits,
            stream_id,
            deflate,
            sides: [Side::default(), Side::default()],
            counters: Counters::default(),
        }
    }

    /// The negotiated permessage-deflate parameters.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref()
    }

    /// Sets the permessage-deflate parameters (HTTP/2: the response with
    /// the negotiation may be decoded after the client's first frames).
    pub fn set_deflate(&mut self, deflate: Option<DeflateParams>) {
        self.deflate = deflate;
    }

    /// Decodes `bytes` sent in direction `dir`, appending a
    /// [`Event::WebSocket`] per completed message to `out`.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], out: &mut Vec<Event>) {
        let d = dir.index();
        let mut input = bytes;
        if self.sides[d].phase == Phase::Lost {
            if !plausible_frame(dir, self.deflate.is_some(), input) {
                self.counters.dropped_bytes += input.len() as u64;
                return;
            }
            self.sides[d].phase = Phase::Header;
            self.sides[d].hdr_len = 0;
        }
        while !input.is_empty() {
            match self.sides[d].phase {
                Phase::Header => {
                    let side = &mut self.sides[d];
                    let have = side.hdr_len.min(MAX_HEADER_LEN);
                    let take = (MAX_HEADER_LEN - have).min(input.len());
                    side.hdr[have..have + take].copy_from_slice(&input[..take]);
                    match parse_frame_header(&side.hdr[..have + take]) {
                        Ok(None) => {
                            side.hdr_len = have + take;
                            input = &input[take..];
                        }
                        Ok(Some(h)) => {
                            let used = h.header_len.saturating_sub(have).min(input.len());
                            input = &input[used..];
                            side.hdr_len = 0;
                            self.start_frame(dir, &h, out);
                        }
                        Err(_) => {
                            self.counters.dropped_bytes += (have + input.len()) as u64;
                            self.lose(dir);
                            return;
                        }
                    }
                }
                Phase::Payload => {
                    let remaining = self.sides[d].frame.remaining;
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    self.payload(dir, &input[..n]);
                    input = &input[n..];
                    if self.sides[d].frame.remaining == 0 {
                        self.end_frame(dir, out);
                    }
                }
                Phase::Lost => {
                    self.counters.dropped_bytes += input.len() as u64;
                    return;
                }
            }
        }
    }

    /// Tells the decoder that `lost` bytes of direction `dir` were not
    /// captured: the open message is flagged [`WsMessage::data_lost`] and
    /// the direction resynchronises on a later input.
    pub fn gap(&mut self, dir: Direction, lost: u64) {
        self.counters.gap_bytes += lost;
        self.lose(dir);
    }

    /// Tells the decoder that `n` bytes of direction `dir`, right after the
    /// bytes fed so far, were not captured because the capture judged them
    /// body bytes past its bound. Inside the payload of an uncompressed
    /// data frame with at least `n` bytes left, they are passed over in
    /// sync: the message counts them in its size and is cut
    /// ([`WsMessage::truncated`], not [`WsMessage::data_lost`]), and the
    /// frame ends if they were its last bytes (emitting to `out`).
    /// Anywhere else (a frame header, a control frame, a compressed
    /// message, which cannot inflate past missing bytes) the hole is a
    /// [`gap`](Self::gap), also counted in `Counters::skip_gaps`.
    pub fn skip(&mut self, dir: Direction, n: u64, out: &mut Vec<Event>) {
        if n == 0 {
            return;
        }
        let side = &mut self.sides[dir.index()];
        let frame = &mut side.frame;
        let message = side.data.as_mut().filter(|p| !p.compressed);
        let Some(p) = message
            .filter(|_| side.phase == Phase::Payload && !frame.control && n <= frame.remaining)
        else {
            self.counters.skip_gaps += 1;
            self.gap(dir, n);
            return;
        };
        frame.pos = frame.pos.saturating_add(n);
        frame.remaining -= n;
        p.size = p.size.saturating_add(n);
        p.wire_size = p.wire_size.saturating_add(n);
        p.truncated = true;
        self.counters.body_bytes_skipped += n;
        if frame.remaining == 0 {
            self.end_frame(dir, out);
        }
    }

    /// The connection is gone: emits the open messages of both directions,
    /// flagged incomplete.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let side = &mut self.sides[dir.index()];
            let open = [side.control.take(), side.data.take()];
            for p in open.into_iter().flatten() {
                self.emit(dir, p, false, out);
            }
        }
    }

    /// Stamps the messages in progress with `now` as their first
    /// observation time, where still unset.
    pub fn stamp_open(&mut self, now: u64) {
        for side in &mut self.sides {
            for p in [&mut side.data, &mut side.control].into_iter().flatten() {
                if p.first_ns == 0 {
                    p.first_ns = now;
                }
            }
        }
    }

    /// Returns the counters accumulated so far and resets them.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    /// Approximate bytes held (messages in progress, inflaters).
    pub fn memory_footprint(&self) -> usize {
        let inflater = 64 * 1024;
        std::mem::size_of::<Self>()
            + self
                .sides
                .iter()
                .map(|s| {
                    s.data.as_ref().map_or(0, |p| p.payload.capacity())
                        + s.control.as_ref().map_or(0, |p| p.payload.capacity())
                        + s.inflater.as_ref().map_or(0, |_| inflater)
                })
                .sum::<usize>()
    }

    /// Loses frame alignment in `dir`.
    fn lose(&mut self, dir: Direction) {
        self.counters.desyncs += 1;
        let side = &mut self.sides[dir.index()];
        side.phase = Phase::Lost;
        side.hdr_len = 0;
        // The compression history is incomplete from here on.
        side.inflater = None;
        for p in [&mut side.data, &mut side.control].into_iter().flatten() {
            p.data_lost = true;
            if p.compressed && p.error.is_none() && !p.inflate_end {
                p.error = Some(DecodeError::Truncated(Coding::Deflate));
            }
        }
    }

    fn start_frame(&mut self, dir: Direction, h: &FrameHeader, out: &mut Vec<Event>) {
        self.counters.ws_frames += 1;
        let d = dir.index();
        let mut protocol_error =
            h.mask.is_some() != (dir == Direction::ClientToServer) || h.non_minimal_length;
        // A control frame left open was cut short (gap).
        if let Some(p) = self.sides[d].control.take() {
            self.emit(dir, p, false, out);
        }
        let opcode = Opcode::from_u8(h.opcode);
        let control = h.is_control();
        match opcode {
            Some(op @ (Opcode::Close | Opcode::Ping | Opcode::Pong)) => {
                protocol_error |= !h.fin || h.rsv1;
                self.sides[d].control = Some(Partial::new(op, false));
            }
            Some(Opcode::Continuation) => {
                protocol_error |= h.rsv1;
                match &mut self.sides[d].data {
                    Some(p) => p.frames = p.frames.saturating_add(1),
                    None => {
                        // The message's first frame was never seen.
                        protocol_error = true;
                        let mut p = Partial::new(Opcode::Continuation, false);
                        p.data_lost = true;
                        self.sides[d].data = Some(p);
                    }
                }
            }
            Some(op @ (Opcode::Text | Opcode::Binary)) => {
                if let Some(old) = self.sides[d].data.take() {
                    // A new message before the last one's final frame.
                    protocol_error |= !old.data_lost;
                    self.emit(dir, old, false, out);
                }
                if h.rsv1 {
                    protocol_error |= self.deflate.is_none();
                    self.sides[d]
                        .inflater
                        .get_or_insert_with(|| Box::new(Inflater::new(false)));
                }
                self.sides[d].data = Some(Partial::new(op, h.rsv1));
            }
            // Reserved opcodes are rejected by the header parser.
            None => protocol_error = true,
        }
        if protocol_error {
            self.counters.ws_protocol_errors += 1;
        }
        let side = &mut self.sides[d];
        side.frame = Frame {
            control,
            fin: h.fin,
            mask: h.mask,
            pos: 0,
            remaining: h.payload_len,
        };
        side.phase = Phase::Payload;
        if h.payload_len == 0 {
            self.end_frame(dir, out);
        }
    }

    fn payload(&mut self, dir: Direction, chunk: &[u8]) {
        let keep = self.limits.ws_max_message_size as usize;
        let budget = Budget::new(&self.limits);
        let Side {
            frame,
            data,
            control,
            inflater,
            ..
        } = &mut self.sides[dir.index()];
        let f = *frame;
        frame.pos += chunk.len() as u64;
        frame.remaining = frame.remaining.saturating_sub(chunk.len() as u64);
        let target = if f.control {
            control.as_mut()
        } else {
            data.as_mut()
        };
        let Some(p) = target else {
            return;
        };
        p.wire_size += chunk.len() as u64;
        if !p.compressed {
            let keep = if f.control {
                MAX_CONTROL_PAYLOAD as usize
            } else {
                keep
            };
            let start = p.payload.len();
            p.append(chunk, keep);
            if let Some(mask) = f.mask {
                unmask(&mut p.payload[start..], mask, f.pos);
            }
            return;
        }
        if p.error.is_some() || p.inflate_end {
            return;
        }
        let inf = inflater.get_or_insert_with(|| Box::new(Inflater::new(false)));
        let mut scratch = [0u8; SCRATCH];
        let mut pos = f.pos;
        for piece in chunk.chunks(SCRATCH) {
            let buf = &mut scratch[..piece.len()];
            buf.copy_from_slice(piece);
            if let Some(mask) = f.mask {
                unmask(buf, mask, pos);
            }
            pos += piece.len() as u64;
            inflate_into(inf, p, buf, false, keep, budget);
            if p.error.is_some() || p.inflate_end {
                break;
            }
        }
    }

    fn end_frame(&mut self, dir: Direction, out: &mut Vec<Event>) {
        let d = dir.index();
        let keep = self.limits.ws_max_message_size as usize;
        let budget = Budget::new(&self.limits);
        let reset_each = self
            .deflate
            .as_ref()
            .is_some_and(|p| p.no_context_takeover(dir));
        let side = &mut self.sides[d];
        side.phase = Phase::Header;
        if side.frame.control {
            if let Some(p) = side.control.take() {
                self.emit(dir, p, true, out);
            }
            return;
        }
        if !side.frame.fin {
            return;
        }
        let Some(mut p) = side.data.take() else {
            return;
        };
        if p.compressed {
            if let Some(inf) = side.inflater.as_mut() {
                if p.error.is_none() && !p.inflate_end {
                    inflate_into(inf, &mut p, &DEFLATE_TAIL, true, keep, budget);
                }
                if p.error.is_some() || p.inflate_end || reset_each {
                    inf.reset();
                }
            }
            match p.error {
                Some(DecodeError::OutputLimit | DecodeError::RatioLimit) => {
                    self.counters.decompression_capped += 1;
                }
                Some(DecodeError::Corrupt(_)) => self.counters.ws_inflate_errors += 1,
                _ => {}
            }
        }
        self.emit(dir, p, true, out);
    }

    fn emit(&mut self, dir: Direction, p: Partial, complete: bool, out: &mut Vec<Event>) {
        let mut msg = WsMessage {
            stream_id: self.stream_id,
            direction: dir,
            opcode: p.opcode,
            payload: p.payload,
            size: p.size,
            wire_size: p.wire_size,
            truncated: p.truncated || p.error.is_some(),
            compressed: p.compressed,
            close_code: None,
            frames: p.frames,
            complete,
            data_lost: p.data_lost,
            decode_error: p.error,
            first_ns: p.first_ns,
            last_ns: 0,
        };
        if msg.opcode == Opcode::Close {
            if msg.payload.len() >= 2 {
                msg.close_code = Some(u16::from_be_bytes([msg.payload[0], msg.payload[1]]));
                msg.payload.drain(..2);
                msg.size = msg.size.saturating_sub(2);
            } else if msg.payload.len() == 1 {
                self.counters.ws_protocol_errors += 1;
            }
        }
        let c = &mut self.counters;
        c.ws_messages += 1;
        if !complete || msg.data_lost {
            c.ws_messages_incomplete += 1;
        }
        if msg.truncated {
            c.ws_messages_truncated += 1;
            c.ws_bytes_dropped += msg.size.saturating_sub(msg.payload.len() as u64);
        }
        out.push(Event::WebSocket(msg));
    }
}

/// Inflates `input` into `p` (keeping at most `keep` bytes), recording a
/// stop (cap, corrupt data) or the end of the DEFLATE stream on `p`.
fn inflate_into(
    inf: &mut Inflater,
    p: &mut Partial,
    input: &[u8],
    sync: bool,
    keep: usize,
    budget: Budget,
) {
    let consumed = p.wire_size + DEFLATE_TAIL.len() as u64;
    let r = inf.push(input, sync, &mut |b| {
        let (room, why) = budget.room(p.size, consumed);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(b.len());
        p.append(&b[..take], keep);
        if take < b.len() {
            return Err(why);
        }
        Ok(())
    });
    match r {
        Ok(pushed) => p.inflate_end |= pushed.end,
        Err(e) => p.error = Some(e),
    }
}
