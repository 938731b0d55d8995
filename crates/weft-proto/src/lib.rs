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
//! * [`ConnectionDecoder`]: picks HTTP/1 or HTTP/2 per connection (ALPN or
//!   detection) and follows `h2c` upgrades.
//!
//! Connection decoders share one shape: created per connection with a
//! [`Limits`], fed `(Direction, &[u8])` as bytes are captured, they append
//! [`Event`]s to a caller-owned `Vec`, take `gap` notices for bytes the
//! capture lost, and flush open work on `finish`.
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

pub mod hpack;
pub mod http1;
pub mod http2;

mod connection;
mod counters;
mod headers;
mod limits;
mod transaction;

pub use connection::ConnectionDecoder;
pub use counters::Counters;
pub use headers::{Field, Headers};
pub use limits::Limits;
pub use transaction::{Body, End, Event, Message, Protocol, Transaction};

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
