//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692).
//!
//! * [`parse_frame_header`]: one frame header, need-more or a typed error.
//! * [`WsDecoder`]: both directions of one WebSocket connection in, one
//!   [`Event::WebSocket`](crate::Event::WebSocket) per message out.
//! * [`DeflateParams`]: what the server's `Sec-WebSocket-Extensions` accepted.
//!
//! [`ConnectionDecoder`](crate::ConnectionDecoder) starts a [`WsDecoder`]
//! by itself after an HTTP/1.1 `101` to `websocket`, and the HTTP/2 decoder
//! does for an extended CONNECT stream with `:protocol = websocket`
//! (RFC 8441), feeding it that stream's DATA frames.

mod decoder;
mod deflate;
mod frame;

pub use decoder::WsDecoder;
pub use deflate::DeflateParams;
pub use frame::{
    FrameError, FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, parse_frame_header,
    plausible_frame,
};

use crate::Direction;
use crate::compression::DecodeError;

/// What kind of message a [`WsMessage`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Continuation frames whose first frame was never seen (after a gap):
    /// the type of the message is unknown.
    Continuation,
    /// UTF-8 text (not validated here).
    Text,
    /// Binary data.
    Binary,
    /// Close, with an optional status code and reason.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    /// The opcode for a frame's 4-bit opcode field; `None` for reserved values.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    /// The frame opcode value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0,
            Opcode::Text => 1,
            Opcode::Binary => 2,
            Opcode::Close => 8,
            Opcode::Ping => 9,
            Opcode::Pong => 10,
        }
    }

    /// A lower-case name (`text`, `binary`, `close`, `ping`, `pong`,
    /// `continuation`).
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Continuation => "continuation",
            Opcode::Text => "text",
            Opcode::Binary => "binary",
            Opcode::Close => "close",
            Opcode::Ping => "ping",
            Opcode::Pong => "pong",
        }
    }

    /// Close, ping or pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One WebSocket message (all its frames reassembled), or one control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsMessage {
    /// The HTTP/1 transaction number (see [`crate::Transaction::stream_id`])
    /// or HTTP/2 stream that carried the upgrade.
    pub stream_id: u32,
    /// Who sent it.
    pub direction: Direction,
    /// Text, binary, close, ping, pong (continuation: see [`Opcode::Continuation`]).
    pub opcode: Opcode,
    /// The payload kept, unmasked and decompressed; for a close message the
    /// reason (the status code is in [`close_code`](Self::close_code)). At
    /// most `Limits::ws_max_message_size` bytes (control frames: 125).
    pub payload: Vec<u8>,
    /// The real payload size (decompressed; for close, without the code),
    /// including bytes not kept.
    pub size: u64,
    /// Payload bytes on the wire (compressed size when [`compressed`](Self::compressed)).
    pub wire_size: u64,
    /// `payload` is not the whole message (`ws_max_message_size`, or
    /// decompression stopped: see [`decode_error`](Self::decode_error)).
    pub truncated: bool,
    /// The message was compressed with permessage-deflate (RSV1).
    pub compressed: bool,
    /// The close status code (RFC 6455 §7.4), when the close frame had one.
    pub close_code: Option<u16>,
    /// Frames the message was sent in.
    pub frames: u32,
    /// The final frame was seen (false when emitted by `finish`, or cut by
    /// a new message).
    pub complete: bool,
    /// Bytes of the message were lost (capture gap or resynchronisation).
    pub data_lost: bool,
    /// Why inflating stopped early, for a compressed message.
    pub decode_error: Option<DecodeError>,
    /// Caller's clock when the message's first bytes were fed (0 if unknown).
    pub first_ns: u64,
    /// Caller's clock when the message was complete (0 if unknown).
    pub last_ns: u64,
}

impl WsMessage {
    /// Record `now` as first/last observation time where still unset.
    pub fn stamp(&mut self, now: u64) {
        if self.first_ns == 0 {
            self.first_ns = now;
        }
        if self.last_ns == 0 {
            self.last_ns = now;
        }
    }
}
