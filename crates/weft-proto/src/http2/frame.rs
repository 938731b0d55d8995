//! HTTP/2 frame decoder (RFC 9113 §4, §6), sans-IO.
//!
//! [`FrameDecoder`] is fed the bytes of one direction of a connection, in
//! any split, and returns one [`Frame`] at a time. It buffers only what it
//! must: DATA payloads are streamed (a large DATA frame comes out as several
//! [`Frame::Data`] chunks, the last one carrying `end_stream`), header blocks
//! are assembled from HEADERS/PUSH_PROMISE and CONTINUATION frames up to
//! `Limits::max_header_block_size`, other frames are buffered whole (they are
//! small). A frame entirely inside one input slice is returned without
//! copying.
//!
//! "Need more bytes" is `Ok(None)`, distinct from an error. Errors come in
//! two kinds:
//!
//! * frame errors (bad padding, a stray CONTINUATION, an oversized header
//!   block, ...): the frame is skipped by its length and decoding goes on;
//! * a frame header that cannot be right (impossible length for its type,
//!   stream id rules broken, longer than `Limits::h2_max_frame_size`): the
//!   decoder assumes it lost alignment with the frame boundaries, drops the
//!   rest of the current input and, on each later call, tries the first bytes
//!   of the input as a frame header (capture records usually start on a frame
//!   boundary), accepting only a strictly plausible one. A decoder created
//!   with [`FrameDecoder::new_mid_connection`] starts in that state.
//!
//! Errors for which [`FrameError::loses_header_block`] is true mean a header
//! block was dropped, so the HPACK decoder of this direction must resync.

use std::ops::Range;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 9;

/// Frame type codes (RFC 9113 §6).
#[allow(missing_docs)]
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flag bits (RFC 9113 §6).
#[allow(missing_docs)]
pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Settings identifiers (RFC 9113 §6.5.2).
#[allow(missing_docs)]
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// Whether bytes begin with the client connection preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefaceMatch {
    /// The input starts with the whole preface.
    Match,
    /// The input is a proper prefix of the preface: need more bytes.
    NeedMore,
    /// The input does not start with the preface.
    Mismatch,
}

/// Checks whether `input` starts with the HTTP/2 client preface.
pub fn match_preface(input: &[u8]) -> PrefaceMatch {
    let n = input.len().min(PREFACE.len());
    if input[..n] != PREFACE[..n] {
        PrefaceMatch::Mismatch
    } else if n < PREFACE.len() {
        PrefaceMatch::NeedMore
    } else {
        PrefaceMatch::Match
    }
}

/// Whether `bytes` start with a frame header that a peer would plausibly
/// send (known type, defined flags only, stream id rules, a length valid for
/// the type and at most the default SETTINGS_MAX_FRAME_SIZE). Used to spot
/// HTTP/2 in a connection joined mid-way.
pub fn plausible_frame_header(bytes: &[u8]) -> bool {
    let Some(h) = bytes
        .first_chunk::<FRAME_HEADER_LEN>()
        .map(FrameHeader::parse)
    else {
        return false;
    };
    let d = FrameDecoder::new_server(&crate::Limits::default());
    d.plausible(&h)
}

/// A decoded 9-byte frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub length: u32,
    /// Frame type (see [`kind`]).
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream_id: u32,
    /// The reserved bit was set (ignored by receivers, but implausible).
    pub reserved: bool,
}

impl FrameHeader {
    /// Parses a frame header from exactly 9 bytes.
    pub fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        FrameHeader {
            length: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5] & 0x7f, b[6], b[7], b[8]]),
            reserved: b[5] & 0x80 != 0,
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Stream priority information (RFC 9113 §5.3.2, deprecated but still sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// Exclusive dependency flag.
    pub exclusive: bool,
    /// The stream this one depends on.
    pub dependency: u32,
    /// Weight as on the wire (0..=255; the effective weight is one more).
    pub weight: u8,
}

impl Priority {
    fn parse(b: &[u8]) -> Self {
        Priority {
            exclusive: b[0] & 0x80 != 0,
            dependency: u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]),
            weight: b[4],
        }
    }
}

/// The parameters of a SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a>(&'a [u8]);

impl<'a> Settings<'a> {
    /// `(identifier, value)` pairs in order (see [`setting`]).
    pub fn iter(&self) -> impl Iterator<Item = (u16, u32)> + 'a {
        self.0.chunks_exact(6).map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
    }
}

/// One decoded frame. Slices borrow the input or the decoder's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A chunk of a DATA frame's payload (padding removed). A frame may come
    /// out as several chunks; `end_stream` is set only on the last chunk of a
    /// frame carrying END_STREAM.
    Data {
        /// Stream.
        stream_id: u32,
        /// The chunk.
        data: &'a [u8],
        /// This chunk ends the frame.
        end_of_frame: bool,
        /// The frame carries END_STREAM and this is its last chunk.
        end_stream: bool,
    },
    /// A complete header block from HEADERS (+ CONTINUATION) frames.
    Headers {
        /// Stream.
        stream_id: u32,
        /// END_STREAM was set on the HEADERS frame.
        end_stream: bool,
        /// Priority fields, when present.
        priority: Option<Priority>,
        /// The HPACK-encoded header block (all fragments joined).
        block: &'a [u8],
    },
    /// PRIORITY frame.
    Priority {
        /// Stream.
        stream_id: u32,
        /// The fields.
        priority: Priority,
    },
    /// RST_STREAM frame.
    RstStream {
        /// Stream.
        stream_id: u32,
        /// Error code (RFC 9113 §7).
        error_code: u32,
    },
    /// SETTINGS frame.
    Settings {
        /// ACK flag (no parameters then).
        ack: bool,
        /// The parameters.
        settings: Settings<'a>,
    },
    /// A complete PUSH_PROMISE (+ CONTINUATION).
    PushPromise {
        /// The stream the promise was sent on.
        stream_id: u32,
        /// The stream reserved for the pushed response.
        promised_stream_id: u32,
        /// The HPACK-encoded request header block.
        block: &'a [u8],
    },
    /// PING frame.
    Ping {
        /// ACK flag.
        ack: bool,
        /// Opaque data.
        data: [u8; 8],
    },
    /// GOAWAY frame.
    GoAway {
        /// Highest stream id the sender may have processed.
        last_stream_id: u32,
        /// Error code.
        error_code: u32,
        /// Additional debug data.
        debug_data: &'a [u8],
    },
    /// WINDOW_UPDATE frame.
    WindowUpdate {
        /// Stream (0 = connection).
        stream_id: u32,
        /// Window size increment.
        increment: u32,
    },
    /// A frame of a type this decoder does not know; its payload is skipped.
    Unknown {
        /// Its header.
        header: FrameHeader,
    },
}

/// What [`FrameDecoder::skip`] passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// The DATA frame's stream; 0 when the bytes were padding after the
    /// frame's data or the payload of a frame skipped anyway.
    pub stream_id: u32,
    /// Data bytes among them (the rest was padding).
    pub data: u64,
    /// They reached the end of the frame's data and the frame carries
    /// END_STREAM: the stream's side ends here.
    pub end_stream: bool,
}

/// Why frames could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The client stream did not start with the connection preface.
    #[error("client bytes do not start with the HTTP/2 connection preface")]
    BadPreface,
    /// A frame header that cannot be valid; alignment is assumed lost.
    #[error("implausible frame header {header:?} ({reason}); resynchronising on the next record")]
    BadFrameHeader {
        /// The header as read.
        header: FrameHeader,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Padding longer than the payload.
    #[error("frame type {kind} on stream {stream_id}: padding exceeds payload")]
    BadPadding {
        /// Frame type.
        kind: u8,
        /// Stream.
        stream_id: u32,
    },
    /// CONTINUATION without a preceding HEADERS/PUSH_PROMISE on its stream.
    #[error("CONTINUATION on stream {stream_id} without an open header block")]
    UnexpectedContinuation {
        /// Stream.
        stream_id: u32,
    },
    /// A header block was interrupted by another frame; the partial block was dropped.
    #[error("header block on stream {stream_id} interrupted by a frame of type {kind}")]
    ExpectedContinuation {
        /// Stream of the interrupted block.
        stream_id: u32,
        /// Type of the interrupting frame.
        kind: u8,
    },
    /// A header block larger than `Limits::max_header_block_size`; skipped.
    #[error(
        "header block on stream {stream_id} exceeds {max} bytes (Limits::max_header_block_size)"
    )]
    HeaderBlockTooLarge {
        /// Stream.
        stream_id: u32,
        /// The limit.
        max: u32,
    },
    /// A control frame (SETTINGS, GOAWAY) larger than we buffer; skipped.
    #[error(
        "frame type {kind} of {length} bytes is larger than the {max}-byte control frame buffer"
    )]
    ControlFrameTooLarge {
        /// Frame type.
        kind: u8,
        /// Its length.
        length: u32,
        /// The buffer limit.
        max: u32,
    },
    /// Bytes dropped while looking for a frame boundary.
    #[error("{dropped} bytes dropped while resynchronising on frame boundaries")]
    Unsynchronised {
        /// Bytes dropped by this call.
        dropped: usize,
    },
}

impl FrameError {
    /// Whether a header block (or part of one) was dropped, which leaves the
    /// HPACK decoder of this direction out of sync.
    pub fn loses_header_block(&self) -> bool {
        match self {
            FrameError::BadPreface | FrameError::ControlFrameTooLarge { .. } => false,
            FrameError::BadPadding { kind, .. } => {
                *kind == kind::HEADERS || *kind == kind::PUSH_PROMISE
            }
            // A lost alignment may have swallowed a HEADERS frame.
            FrameError::BadFrameHeader { .. } | FrameError::Unsynchronised { .. } => true,
            FrameError::UnexpectedContinuation { .. }
            | FrameError::ExpectedContinuation { .. }
            | FrameError::HeaderBlockTooLarge { .. } => true,
        }
    }
}

/// Largest non-header, non-DATA frame we buffer (SETTINGS, GOAWAY).
const MAX_CONTROL_FRAME: u32 = 65_536;

/// Buffer capacity kept between frames.
const BUFFER_KEEP: usize = 32 * 1024;

/// The default SETTINGS_MAX_FRAME_SIZE, used to judge plausibility while resynchronising.
const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

#[derive(Debug, Clone, Copy)]
enum State {
    /// Matching the client preface; `usize` bytes matched so far.
    Preface(usize),
    /// Alignment lost: try each new input's start as a frame header.
    Lost,
    /// Reading a frame header (`hdr_len` bytes buffered).
    Header,
    /// Streaming a DATA payload.
    Data {
        stream_id: u32,
        end_stream: bool,
        pad_pending: bool,
        left: u32,
        pad: u32,
    },
    /// Buffering the payload of `FrameHeader`.
    Payload(FrameHeader),
    /// Skipping `u32` payload bytes.
    Skip(u32),
}

impl State {
    /// Skipping the `n` bytes left of a frame, then its next header.
    fn skipping(n: u32) -> State {
        if n == 0 {
            State::Header
        } else {
            State::Skip(n)
        }
    }
}

/// An open header block awaiting CONTINUATION frames.
#[derive(Debug, Clone, Copy)]
struct Cont {
    stream_id: u32,
    /// `None` for HEADERS, `Some(promised)` for PUSH_PROMISE.
    promised: Option<u32>,
    end_stream: bool,
    priority: Option<Priority>,
}

/// Where a returned slice lives.
#[derive(Debug, Clone)]
enum Loc {
    Input(Range<usize>),
    Buf(Range<usize>),
    Block,
}

/// A frame to return, described without borrows (see `FrameDecoder::decode`).
#[derive(Debug)]
enum Out {
    Data {
        stream_id: u32,
        data: Range<usize>,
        end_of_frame: bool,
        end_stream: bool,
    },
    Headers {
        stream_id: u32,
        end_stream: bool,
        priority: Option<Priority>,
        block: Loc,
    },
    PushPromise {
        stream_id: u32,
        promised: u32,
        block: Loc,
    },
    Priority {
        stream_id: u32,
        priority: Priority,
    },
    RstStream {
        stream_id: u32,
        error_code: u32,
    },
    Settings {
        ack: bool,
        payload: Loc,
    },
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream_id: u32,
        error_code: u32,
        debug: Loc,
    },
    WindowUpdate {
        stream_id: u32,
        increment: u32,
    },
    Unknown(FrameHeader),
}

/// Decoder for the frames of one direction of one HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: State,
    hdr: [u8; FRAME_HEADER_LEN],
    hdr_len: usize,
    /// Payload of the frame being buffered.
    buf: Vec<u8>,
    /// Header block being assembled from CONTINUATION frames.
    block: Vec<u8>,
    cont: Option<Cont>,
    /// Skip CONTINUATION frames of this stream (its block was too large).
    skip_cont: Option<u32>,
    max_frame_size: u32,
    max_block: u32,
    /// Frame size the peer allows (SETTINGS_MAX_FRAME_SIZE), for plausibility.
    peer_max_frame_size: u32,
    dropped: u64,
}

impl FrameDecoder {
    /// A decoder for the client-to-server direction from the connection's
    /// start: expects the connection preface first.
    pub fn new_client(limits: &crate::Limits) -> Self {
        FrameDecoder {
            state: State::Preface(0),
            ..FrameDecoder::new_server(limits)
        }
    }

    /// A decoder for the server-to-client direction from the connection's
    /// start (no preface; the first frame is SETTINGS).
    pub fn new_server(limits: &crate::Limits) -> Self {
        FrameDecoder {
            state: State::Header,
            hdr: [0; FRAME_HEADER_LEN],
            hdr_len: 0,
            buf: Vec::new(),
            block: Vec::new(),
            cont: None,
            skip_cont: None,
            max_frame_size: limits.h2_max_frame_size.min(0x00ff_ffff),
            max_block: limits.max_header_block_size,
            peer_max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            dropped: 0,
        }
    }

    /// A decoder that joins a connection mid-way (either direction): frame
    /// boundaries are unknown until a plausible frame header starts an input.
    pub fn new_mid_connection(limits: &crate::Limits) -> Self {
        FrameDecoder {
            state: State::Lost,
            ..FrameDecoder::new_server(limits)
        }
    }

    /// Forgets any partial frame, as after a gap in the captured bytes: the
    /// next input is searched for a frame boundary.
    pub fn lose_sync(&mut self) {
        self.state = State::Lost;
        self.hdr_len = 0;
        self.buf.clear();
        self.block.clear();
        self.cont = None;
        self.skip_cont = None;
    }

    /// Passes over `n` bytes of this direction that were not captured
    /// (a hole the capture left in what it judged a DATA frame's payload),
    /// when they lie inside the payload of the frame being read: the rest
    /// of a DATA frame's data and padding, or of a frame being skipped
    /// anyway. Frame alignment is kept. Returns `None`, changing nothing,
    /// anywhere else (in a frame header, in a buffered payload, before a
    /// DATA frame's pad length, past the frame's end, while lost): the
    /// caller then treats the hole as a gap ([`Self::lose_sync`]).
    pub fn skip(&mut self, n: u64) -> Option<Skipped> {
        match self.state {
            State::Data {
                stream_id,
                end_stream,
                pad_pending: false,
                left,
                pad,
            } => {
                let rest = (u64::from(left) + u64::from(pad)).checked_sub(n)?;
                let data = n.min(u64::from(left));
                if data < u64::from(left) {
                    self.state = State::Data {
                        stream_id,
                        end_stream,
                        pad_pending: false,
                        // Lossless: below `left`.
                        left: left - data as u32,
                        pad,
                    };
                    return Some(Skipped {
                        stream_id,
                        data,
                        end_stream: false,
                    });
                }
                // Lossless: at most `pad`.
                self.state = State::skipping(rest as u32);
                Some(Skipped {
                    stream_id,
                    data,
                    end_stream,
                })
            }
            State::Skip(left) => {
                let rest = u64::from(left).checked_sub(n)?;
                // Lossless: at most `left`.
                self.state = State::skipping(rest as u32);
                Some(Skipped {
                    stream_id: 0,
                    data: 0,
                    end_stream: false,
                })
            }
            State::Data { .. }
            | State::Preface(_)
            | State::Lost
            | State::Header
            | State::Payload(_) => None,
        }
    }

    /// Whether the decoder is searching for a frame boundary.
    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Records the SETTINGS_MAX_FRAME_SIZE the receiving peer allows, so that
    /// frames up to it are considered plausible when resynchronising.
    pub fn set_peer_max_frame_size(&mut self, size: u32) {
        self.peer_max_frame_size = size.clamp(DEFAULT_MAX_FRAME_SIZE, 0x00ff_ffff);
    }

    /// Bytes of buffer capacity held (frame payload and header block buffers).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity() + self.block.capacity()
    }

    /// Total bytes dropped so far (while resynchronising).
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped
    }

    /// Decodes at most one frame from `input`.
    ///
    /// Returns the number of bytes consumed (they are either part of the
    /// returned frame or buffered inside the decoder) and the outcome:
    /// `Ok(Some(frame))`, `Ok(None)` when all of `input` was consumed and more
    /// is needed, or an error (see the module docs; decoding can continue with
    /// the rest of the input). Call again with `&input[consumed..]` until it
    /// returns `Ok(None)`.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> (usize, Result<Option<Frame<'a>>, FrameError>) {
        if let Some((n, frame)) = self.whole_frame(input) {
            return (n, Ok(Some(frame)));
        }
        self.decode_by_states(input)
    }

    /// The frames most of a connection is made of, when one starts `input`
    /// at a frame boundary with its payload whole: HEADERS with
    /// END_HEADERS, without padding or priority, and unpadded DATA. The
    /// same frame, state and side effects as the state machine
    /// ([`Self::decode_by_states`]) gives them, without going through its
    /// states; `None` leaves everything else to it.
    #[inline]
    fn whole_frame<'a>(&mut self, input: &'a [u8]) -> Option<(usize, Frame<'a>)> {
        if !matches!(self.state, State::Header)
            || self.hdr_len != 0
            || self.cont.is_some()
            || self.skip_cont.is_some()
        {
            return None;
        }
        let h = FrameHeader::parse(input.first_chunk::<FRAME_HEADER_LEN>()?);
        // (`check_header` for these kinds: a stream, and no padding.)
        if h.stream_id == 0 || h.has(flags::PADDED) || h.length > self.max_frame_size {
            return None;
        }
        let end = FRAME_HEADER_LEN + h.length as usize;
        let payload = input.get(FRAME_HEADER_LEN..end)?;
        let frame = match h.kind {
            kind::HEADERS
                if h.has(flags::END_HEADERS)
                    && !h.has(flags::PRIORITY)
                    && u64::from(h.length) <= u64::from(self.max_block) + 300 =>
            {
                Frame::Headers {
                    stream_id: h.stream_id,
                    end_stream: h.has(flags::END_STREAM),
                    priority: None,
                    block: payload,
                }
            }
            kind::DATA => Frame::Data {
                stream_id: h.stream_id,
                data: payload,
                end_of_frame: true,
                end_stream: h.has(flags::END_STREAM),
            },
            _ => return None,
        };
        // What `begin` does to the buffers before any frame.
        self.buf.clear();
        if self.buf.capacity() > BUFFER_KEEP {
            self.buf = Vec::new();
        }
        if self.block.capacity() > BUFFER_KEEP {
            self.block = Vec::new();
        }
        Some((end, frame))
    }

    /// [`Self::decode`] by the state machine alone.
    fn decode_by_states<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> (usize, Result<Option<Frame<'a>>, FrameError>) {
        let mut pos = 0;
        let out = self.step(input, &mut pos);
        (pos, out.map(|o| o.map(|o| self.materialize(input, o))))
    }

    fn slice<'a>(&'a self, input: &'a [u8], loc: Loc) -> &'a [u8] {
        match loc {
            Loc::Input(r) => &input[r],
            Loc::Buf(r) => &self.buf[r],
            Loc::Block => &self.block,
        }
    }

    fn materialize<'a>(&'a self, input: &'a [u8], out: Out) -> Frame<'a> {
        match out {
            Out::Data {
                stream_id,
                data,
                end_of_frame,
                end_stream,
            } => Frame::Data {
                stream_id,
                data: &input[data],
                end_of_frame,
                end_stream,
            },
            Out::Headers {
                stream_id,
                end_stream,
                priority,
                block,
            } => Frame::Headers {
                stream_id,
                end_stream,
                priority,
                block: self.slice(input, block),
            },
            Out::PushPromise {
                stream_id,
                promised,
                block,
            } => Frame::PushPromise {
                stream_id,
                promised_stream_id: promised,
                block: self.slice(input, block),
            },
            Out::Priority {
                stream_id,
                priority,
            } => Frame::Priority {
                stream_id,
                priority,
            },
            Out::RstStream {
                stream_id,
                error_code,
            } => Frame::RstStream {
                stream_id,
                error_code,
            },
            Out::Settings { ack, payload } => Frame::Settings {
                ack,
                settings: Settings(self.slice(input, payload)),
            },
            Out::Ping { ack, data } => Frame::Ping { ack, data },
            Out::GoAway {
                last_stream_id,
                error_code,
                debug,
            } => Frame::GoAway {
                last_stream_id,
                error_code,
                debug_data: self.slice(input, debug),
            },
            Out::WindowUpdate {
                stream_id,
                increment,
            } => Frame::WindowUpdate {
                stream_id,
                increment,
            },
            Out::Unknown(header) => Frame::Unknown { header },
        }
    }

    /// The state machine; never holds a borrow across iterations.
    fn step(&mut self, input: &[u8], pos: &mut usize) -> Result<Option<Out>, FrameError> {
        loop {
            let avail = input.len() - *pos;
            match self.state {
                State::Preface(matched) => {
                    let n = avail.min(PREFACE.len() - matched);
                    if input[*pos..*pos + n] != PREFACE[matched..matched + n] {
                        self.lose_sync();
                        return Err(FrameError::BadPreface);
                    }
                    *pos += n;
                    if matched + n == PREFACE.len() {
                        self.state = State::Header;
                    } else {
                        self.state = State::Preface(matched + n);
                        return Ok(None);
                    }
                }
                State::Lost => {
                    if avail == 0 {
                        return Ok(None);
                    }
                    let rest = &input[*pos..];
                    if match_preface(rest) == PrefaceMatch::Match {
                        *pos += PREFACE.len();
                        self.state = State::Header;
                        continue;
                    }
                    let plausible = rest
                        .first_chunk::<FRAME_HEADER_LEN>()
                        .map(FrameHeader::parse)
                        .is_some_and(|h| self.plausible(&h));
                    if plausible {
                        self.state = State::Header;
                        continue;
                    }
                    *pos = input.len();
                    self.dropped += avail as u64;
                    return Err(FrameError::Unsynchronised { dropped: avail });
                }
                State::Header => {
                    let header = if self.hdr_len == 0 && avail >= FRAME_HEADER_LEN {
                        let mut h = [0u8; FRAME_HEADER_LEN];
                        h.copy_from_slice(&input[*pos..*pos + FRAME_HEADER_LEN]);
                        *pos += FRAME_HEADER_LEN;
                        FrameHeader::parse(&h)
                    } else {
                        let n = avail.min(FRAME_HEADER_LEN - self.hdr_len);
                        self.hdr[self.hdr_len..self.hdr_len + n]
                            .copy_from_slice(&input[*pos..*pos + n]);
                        self.hdr_len += n;
                        *pos += n;
                        if self.hdr_len < FRAME_HEADER_LEN {
                            return Ok(None);
                        }
                        self.hdr_len = 0;
                        FrameHeader::parse(&self.hdr)
                    };
                    match self.begin(header) {
                        Ok(Some(out)) => return Ok(Some(out)),
                        Ok(None) => {}
                        Err(e @ FrameError::BadFrameHeader { .. }) => {
                            let rest = input.len() - *pos;
                            self.dropped += (rest + FRAME_HEADER_LEN) as u64;
                            *pos = input.len();
                            return Err(e);
                        }
                        Err(e) => return Err(e),
                    }
                }
                State::Skip(left) => {
                    let n = avail.min(left as usize);
                    *pos += n;
                    let left = left - n as u32;
                    if left == 0 {
                        self.state = State::Header;
                    } else {
                        self.state = State::Skip(left);
                        return Ok(None);
                    }
                }
                State::Data {
                    stream_id,
                    end_stream,
                    pad_pending: true,
                    left,
                    ..
                } => {
                    let Some(&pad) = input.get(*pos) else {
                        return Ok(None);
                    };
                    *pos += 1;
                    let left = left - 1;
                    if u32::from(pad) > left {
                        self.state = State::Skip(left);
                        return Err(FrameError::BadPadding {
                            kind: kind::DATA,
                            stream_id,
                        });
                    }
                    self.state = State::Data {
                        stream_id,
                        end_stream,
                        pad_pending: false,
                        left: left - u32::from(pad),
                        pad: u32::from(pad),
                    };
                }
                State::Data {
                    stream_id,
                    end_stream,
                    pad_pending: false,
                    left,
                    pad,
                } => {
                    if avail == 0 && left > 0 {
                        return Ok(None);
                    }
                    let n = avail.min(left as usize);
                    let start = *pos;
                    *pos += n;
                    let left = left - n as u32;
                    let end_of_frame = left == 0;
                    self.state = if !end_of_frame {
                        State::Data {
                            stream_id,
                            end_stream,
                            pad_pending: false,
                            left,
                            pad,
                        }
                    } else {
                        State::skipping(pad)
                    };
                    return Ok(Some(Out::Data {
                        stream_id,
                        data: start..start + n,
                        end_of_frame,
                        end_stream: end_stream && end_of_frame,
                    }));
                }
                State::Payload(h) => {
                    let need = h.length as usize;
                    let (loc, done) = if self.buf.is_empty() && avail >= need {
                        let r = *pos..*pos + need;
                        *pos += need;
                        (Some(Loc::Input(r)), true)
                    } else {
                        let n = avail.min(need - self.buf.len());
                        self.buf.extend_from_slice(&input[*pos..*pos + n]);
                        *pos += n;
                        let done = self.buf.len() == need;
                        (done.then_some(Loc::Buf(0..need)), done)
                    };
                    if !done {
                        return Ok(None);
                    }
                    self.state = State::Header;
                    let loc = loc.unwrap_or(Loc::Buf(0..need));
                    if let Some(out) = self.finish(h, loc, input)? {
                        return Ok(Some(out));
                    }
                }
            }
        }
    }

    /// Strict plausibility test for a frame header found while resynchronising.
    fn plausible(&self, h: &FrameHeader) -> bool {
        let defined_flags = match h.kind {
            kind::DATA => flags::END_STREAM | flags::PADDED,
            kind::HEADERS => {
                flags::END_STREAM | flags::END_HEADERS | flags::PADDED | flags::PRIORITY
            }
            kind::SETTINGS | kind::PING => flags::ACK,
            kind::PUSH_PROMISE => flags::END_HEADERS | flags::PADDED,
            kind::PRIORITY | kind::RST_STREAM | kind::GOAWAY | kind::WINDOW_UPDATE => 0,
            _ => return false, // unknown types and CONTINUATION
        };
        !h.reserved
            && h.flags & !defined_flags == 0
            && h.length <= self.peer_max_frame_size.min(self.max_frame_size)
            && check_header(h).is_ok()
    }

    /// Validates a frame header and sets up the state for its payload.
    fn begin(&mut self, h: FrameHeader) -> Result<Option<Out>, FrameError> {
        if let Err(reason) = check_header(&h) {
            self.lose_sync();
            return Err(FrameError::BadFrameHeader { header: h, reason });
        }
        if h.length > self.max_frame_size {
            self.lose_sync();
            return Err(FrameError::BadFrameHeader {
                header: h,
                reason: "longer than Limits::h2_max_frame_size",
            });
        }
        self.buf.clear();
        if self.buf.capacity() > BUFFER_KEEP {
            // Do not hold a rare large frame's buffer for the connection's life.
            self.buf = Vec::new();
        }
        if self.cont.is_none() && self.block.capacity() > BUFFER_KEEP {
            self.block = Vec::new();
        }
        // Header block sequencing (RFC 9113 §6.10).
        if let Some(skip) = self.skip_cont {
            if h.kind == kind::CONTINUATION && h.stream_id == skip {
                if h.has(flags::END_HEADERS) {
                    self.skip_cont = None;
                }
                self.state = State::Skip(h.length);
                return Ok(None);
            }
            self.skip_cont = None;
        }
        if let Some(cont) = self.cont {
            if h.kind != kind::CONTINUATION || h.stream_id != cont.stream_id {
                // The open block is lost; the interrupting frame is decoded
                // normally unless it is itself a (mismatched) CONTINUATION.
                self.cont = None;
                self.block.clear();
                if h.kind == kind::CONTINUATION {
                    self.state = State::Skip(h.length);
                } else {
                    self.begin_payload(h)?;
                }
                return Err(FrameError::ExpectedContinuation {
                    stream_id: cont.stream_id,
                    kind: h.kind,
                });
            }
        } else if h.kind == kind::CONTINUATION {
            self.state = State::Skip(h.length);
            return Err(FrameError::UnexpectedContinuation {
                stream_id: h.stream_id,
            });
        }
        self.begin_payload(h)
    }

    fn begin_payload(&mut self, h: FrameHeader) -> Result<Option<Out>, FrameError> {
        match h.kind {
            kind::DATA => {
                self.state = State::Data {
                    stream_id: h.stream_id,
                    end_stream: h.has(flags::END_STREAM),
                    pad_pending: h.has(flags::PADDED),
                    left: h.length,
                    pad: 0,
                };
                Ok(None)
            }
            kind::HEADERS | kind::PUSH_PROMISE | kind::CONTINUATION => {
                let have = if h.kind == kind::CONTINUATION {
                    self.block.len()
                } else {
                    0
                };
                if have as u64 + u64::from(h.length) > u64::from(self.max_block) + 300 {
                    // (+300: room for padding and priority fields.)
                    self.cont = None;
                    self.block.clear();
                    if !h.has(flags::END_HEADERS) {
                        self.skip_cont = Some(h.stream_id);
                    }
                    self.state = State::Skip(h.length);
                    return Err(FrameError::HeaderBlockTooLarge {
                        stream_id: h.stream_id,
                        max: self.max_block,
                    });
                }
                self.state = State::Payload(h);
                Ok(None)
            }
            kind::SETTINGS | kind::GOAWAY if h.length > MAX_CONTROL_FRAME => {
                self.state = State::Skip(h.length);
                Err(FrameError::ControlFrameTooLarge {
                    kind: h.kind,
                    length: h.length,
                    max: MAX_CONTROL_FRAME,
                })
            }
            kind::PRIORITY
            | kind::RST_STREAM
            | kind::SETTINGS
            | kind::PING
            | kind::GOAWAY
            | kind::WINDOW_UPDATE => {
                self.state = State::Payload(h);
                Ok(None)
            }
            _ => {
                self.state = State::Skip(h.length);
                Ok(Some(Out::Unknown(h)))
            }
        }
    }

    /// Interprets a complete payload.
    fn finish(
        &mut self,
        h: FrameHeader,
        loc: Loc,
        input: &[u8],
    ) -> Result<Option<Out>, FrameError> {
        let (base, payload): (usize, &[u8]) = match &loc {
            Loc::Input(r) => (r.start, &input[r.clone()]),
            Loc::Buf(r) => (0, &self.buf[r.clone()]),
            // Payloads are never assembled blocks.
            Loc::Block => (0, &[]),
        };
        let in_input = matches!(loc, Loc::Input(_));
        let at = |r: Range<usize>| {
            if in_input {
                Loc::Input(base + r.start..base + r.end)
            } else {
                Loc::Buf(r)
            }
        };
        let u32_at = |i: usize| {
            u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]])
        };
        match h.kind {
            kind::HEADERS | kind::PUSH_PROMISE => {
                let mut start = 0usize;
                let mut end = payload.len();
                if h.has(flags::PADDED) {
                    let pad = usize::from(payload.first().copied().unwrap_or(0));
                    start = 1;
                    if pad + 1 > end {
                        self.skip_rest_of_block(h);
                        return Err(FrameError::BadPadding {
                            kind: h.kind,
                            stream_id: h.stream_id,
                        });
                    }
                    end -= pad;
                }
                let mut priority = None;
                let mut promised = None;
                if h.kind == kind::HEADERS && h.has(flags::PRIORITY) {
                    if start + 5 > end {
                        self.skip_rest_of_block(h);
                        return Err(FrameError::BadPadding {
                            kind: h.kind,
                            stream_id: h.stream_id,
                        });
                    }
                    priority = Some(Priority::parse(&payload[start..start + 5]));
                    start += 5;
                }
                if h.kind == kind::PUSH_PROMISE {
                    if start + 4 > end {
                        self.skip_rest_of_block(h);
                        return Err(FrameError::BadPadding {
                            kind: h.kind,
                            stream_id: h.stream_id,
                        });
                    }
                    promised = Some(u32_at(start) & 0x7fff_ffff);
                    start += 4;
                }
                let end_stream = h.kind == kind::HEADERS && h.has(flags::END_STREAM);
                if h.has(flags::END_HEADERS) {
                    let block = at(start..end);
                    return Ok(Some(match promised {
                        None => Out::Headers {
                            stream_id: h.stream_id,
                            end_stream,
                            priority,
                            block,
                        },
                        Some(p) => Out::PushPromise {
                            stream_id: h.stream_id,
                            promised: p,
                            block,
                        },
                    }));
                }
                self.block.clear();
                self.block.extend_from_slice(&payload[start..end]);
                self.cont = Some(Cont {
                    stream_id: h.stream_id,
                    promised,
                    end_stream,
                    priority,
                });
                Ok(None)
            }
            kind::CONTINUATION => {
                self.block.extend_from_slice(payload);
                if !h.has(flags::END_HEADERS) {
                    return Ok(None);
                }
                let Some(cont) = self.cont.take() else {
                    return Err(FrameError::UnexpectedContinuation {
                        stream_id: h.stream_id,
                    });
                };
                Ok(Some(match cont.promised {
                    None => Out::Headers {
                        stream_id: cont.stream_id,
                        end_stream: cont.end_stream,
                        priority: cont.priority,
                        block: Loc::Block,
                    },
                    Some(p) => Out::PushPromise {
                        stream_id: cont.stream_id,
                        promised: p,
                        block: Loc::Block,
                    },
                }))
            }
            kind::PRIORITY => Ok(Some(Out::Priority {
                stream_id: h.stream_id,
                priority: Priority::parse(payload),
            })),
            kind::RST_STREAM => Ok(Some(Out::RstStream {
                stream_id: h.stream_id,
                error_code: u32_at(0),
            })),
            kind::SETTINGS => Ok(Some(Out::Settings {
                ack: h.has(flags::ACK),
                payload: at(0..payload.len()),
            })),
            kind::PING => {
                let mut data = [0u8; 8];
                data.copy_from_slice(&payload[..8]);
                Ok(Some(Out::Ping {
                    ack: h.has(flags::ACK),
                    data,
                }))
            }
            kind::GOAWAY => Ok(Some(Out::GoAway {
                last_stream_id: u32_at(0) & 0x7fff_ffff,
                error_code: u32_at(4),
                debug: at(8..payload.len()),
            })),
            kind::WINDOW_UPDATE => Ok(Some(Out::WindowUpdate {
                stream_id: h.stream_id,
                increment: u32_at(0) & 0x7fff_ffff,
            })),
            _ => Ok(None),
        }
    }

    /// After a malformed HEADERS/PUSH_PROMISE: skip its CONTINUATION frames.
    fn skip_rest_of_block(&mut self, h: FrameHeader) {
        if !h.has(flags::END_HEADERS) {
            self.skip_cont = Some(h.stream_id);
        }
    }
}

/// Type-specific header rules (RFC 9113 §6) whose violation makes a frame
/// header implausible.
fn check_header(h: &FrameHeader) -> Result<(), &'static str> {
    let needs_stream = matches!(
        h.kind,
        kind::DATA
            | kind::HEADERS
            | kind::PRIORITY
            | kind::RST_STREAM
            | kind::PUSH_PROMISE
            | kind::CONTINUATION
    );
    let needs_zero = matches!(h.kind, kind::SETTINGS | kind::PING | kind::GOAWAY);
    if needs_stream && h.stream_id == 0 {
        return Err("stream id 0 on a stream frame");
    }
    if needs_zero && h.stream_id != 0 {
        return Err("connection frame on a stream");
    }
    let ok = match h.kind {
        kind::PRIORITY => h.length == 5,
        kind::RST_STREAM | kind::WINDOW_UPDATE => h.length == 4,
        kind::PING => h.length == 8,
        kind::SETTINGS => h.length.is_multiple_of(6) && !(h.has(flags::ACK) && h.length != 0),
        kind::GOAWAY => h.length >= 8,
        kind::PUSH_PROMISE => h.length >= 4,
        kind::DATA | kind::HEADERS => !(h.has(flags::PADDED) && h.length == 0),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err("impossible length for the frame type")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut for whole common frames changes nothing: decoders with
    /// and without it, fed the same chunks of frame sequences (every type,
    /// flag combinations, bad lengths and stream ids, bytes flipped), give
    /// the same answer to every call and stay in the same state.
    #[test]
    fn whole_frames_decode_as_by_the_states() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let small = crate::Limits {
            h2_max_frame_size: 40,
            max_header_block_size: 12,
            ..crate::Limits::default()
        };
        let mut fast_frames = 0;
        for round in 0..6000 {
            let mut wire = Vec::new();
            if round % 3 == 0 {
                wire.extend_from_slice(PREFACE);
            }
            for _ in 0..(next() % 12) {
                let kinds = [
                    kind::DATA,
                    kind::HEADERS,
                    kind::CONTINUATION,
                    kind::SETTINGS,
                    kind::WINDOW_UPDATE,
                    kind::RST_STREAM,
                    kind::PRIORITY,
                    kind::PING,
                    0x42,
                ];
                // Mostly the frames of a busy connection.
                let k = match next() % 10 {
                    0..=3 => kind::HEADERS,
                    4..=6 => kind::DATA,
                    _ => kinds[(next() % kinds.len() as u64) as usize],
                };
                let f = if next() % 2 == 0 {
                    [0, 1, 4, 5][(next() % 4) as usize]
                } else {
                    (next() % 64) as u8
                };
                let len = match next() % 4 {
                    0 => 0,
                    1 => 4,
                    2 => next() % 20,
                    _ => next() % 60,
                } as usize;
                let stream = if next() % 8 == 0 {
                    0
                } else {
                    1 + (next() % 3) as u32
                };
                wire.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
                wire.extend_from_slice(&[k, f]);
                wire.extend_from_slice(&stream.to_be_bytes());
                // A pad length that fits, then any bytes.
                if len > 0 {
                    wire.push((next() % len as u64) as u8);
                    wire.extend((1..len).map(|_| next() as u8));
                }
            }
            for _ in 0..(next() % 3) {
                if !wire.is_empty() {
                    let i = (next() as usize) % wire.len();
                    wire[i] = next() as u8;
                }
            }
            let limits = if round % 2 == 0 {
                crate::Limits::default()
            } else {
                small
            };
            let make = || match round % 3 {
                0 => FrameDecoder::new_client(&limits),
                1 => FrameDecoder::new_server(&limits),
                _ => FrameDecoder::new_mid_connection(&limits),
            };
            let (mut a, mut b) = (make(), make());
            let mut rest = &wire[..];
            while !rest.is_empty() {
                let cut = match next() % 3 {
                    0 => rest.len(),
                    _ => 1 + (next() as usize) % rest.len(),
                };
                let (chunk, after) = rest.split_at(cut);
                rest = after;
                let mut input = chunk;
                for _ in 0..1000 {
                    fast_frames += usize::from(a.clone().whole_frame(input).is_some());
                    let (n, ra) = a.decode(input);
                    let ra = format!("{ra:?}");
                    let (m, rb) = b.decode_by_states(input);
                    let rb = format!("{rb:?}");
                    assert_eq!((n, &ra), (m, &rb), "{wire:?}");
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "{wire:?}");
                    input = &input[n..];
                    if rb == "Ok(None)" {
                        break;
                    }
                }
            }
        }
        assert!(fast_frames > 1000, "{fast_frames}");
    }
}
