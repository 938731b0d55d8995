//! weft-proto: sans-IO protocol decoders for the plaintext weft captures.
//!
//! Decoders here do no I/O, start no threads and never panic on any input.
//! They are fed the bytes of one connection, one direction at a time, and
//! return what they decoded; every bound they enforce lives in [`Limits`] and
//! every place that drops or cannot decode data is counted in [`Counters`].
//!
//! * [`hpack`]: HPACK header block decoder (RFC 7541), able to join a
//!   connection mid-way.
//! * [`http2`]: HTTP/2 frame decoder and per-connection decoder that pairs
//!   requests and responses per stream into [`Transaction`]s.
//! * [`http1`]: HTTP/1.x per-connection decoder (pipelining, chunked
//!   bodies, upgrades).
//! * [`websocket`]: WebSocket frames and messages (RFC 6455) with
//!   permessage-deflate (RFC 7692), after an HTTP/1.1 upgrade or on an
//!   HTTP/2 extended CONNECT stream (RFC 8441).
//! * [`compression`]: content codings (gzip, deflate, br, zstd, chains),
//!   decoded as a stream with size and ratio caps.
//! * [`sniff`]: content identification by magic bytes.
//! * [`grpc`]: gRPC length-prefixed message framing.
//! * [`tls`]: the cleartext start of a TLS connection (ClientHello,
//!   ServerHello, plaintext alerts): handshake facts.
//! * [`dns`]: DNS messages (RFC 1035): questions and answers, compression
//!   pointers bounded.
//! * [`ConnectionDecoder`]: picks HTTP/1 or HTTP/2 per connection (ALPN or
//!   detection) and follows `h2c` and WebSocket upgrades.
//!
//! Every body of an emitted [`Transaction`] is post-processed the same way
//! (HTTP/1 and HTTP/2): its content codings are removed into
//! [`Body::decoded`], its type is sniffed into [`Body::sniffed_type`], and a
//! gRPC body is split into [`Body::grpc`] messages.
//!
//! Connection decoders share one shape: created per connection with a
//! [`Limits`], fed `(Direction, &[u8])` as bytes are captured, they append
//! [`Event`]s to a caller-owned `Vec`, take `gap` notices for bytes the
//! capture lost and `skip` notices for body bytes it chose not to copy
//! (past the body bound: passed over in sync inside a body of known
//! length, a gap anywhere else), and flush open work on `finish`.
//!
//! # Invariants
//!
//! * **No panics, no trust.** Every index, length and integer from the wire
//!   is checked; arithmetic on wire values saturates or is bounded first.
//!   Each decoder has a fuzz target (`fuzz/`) and a "never panics" test.
//! * **Need-more is not an error.** Partial input is buffered (bounded) or
//!   streamed; errors are typed and decoding continues after them.
//! * **Resynchronise, do not give up.** A gap (`gap()`), a parse error or an
//!   implausible frame marks one direction lost; each later input's first
//!   bytes are tried as a message/frame start. HPACK tables recover as the
//!   encoder re-sends entries (see [`hpack`]).
//! * **Everything bounded, everything counted.** All bounds are in
//!   [`Limits`]; every drop, skip, eviction or desync bumps a [`Counters`]
//!   field and is flagged on the affected [`Transaction`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compression;
pub mod dns;
pub mod grpc;
pub mod hpack;
pub mod http1;
pub mod http2;
pub mod ja4;
pub mod tls;
pub mod websocket;

mod connection;
mod content;
mod counters;
mod headers;
mod limits;
mod recycle;
mod signature;
mod transaction;

pub use compression::{Coding, DecodeError, Decoded};
pub use connection::ConnectionDecoder;
pub use counters::Counters;
pub use grpc::{GrpcMessage, GrpcMessages};
pub use headers::{Field, Headers};
pub use limits::Limits;
pub use recycle::recycle;
pub use signature::sniff;
pub use transaction::{Body, End, Event, Message, Protocol, Transaction};
pub use websocket::{Opcode, WsDecoder, WsMessage};

/// Which way bytes travel on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the side that opened the connection (the client).
    ClientToServer,
    /// From the side that accepted it (the server).
    ServerToClient,
}

impl Direction {
    /// 0 for client-to-server, 1 for server-to-client (array index).
    pub fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }
}
