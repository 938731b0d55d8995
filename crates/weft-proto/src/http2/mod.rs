//! HTTP/2 (RFC 9113): frame decoding and per-connection transaction assembly.
//!
//! * [`FrameDecoder`]: bytes of one direction in, [`Frame`]s out.
//! * [`Http2Decoder`]: both directions of one connection in,
//!   [`Event::Transaction`](crate::Event::Transaction)s out.

mod conn;
pub mod frame;

pub use conn::Http2Decoder;
pub use frame::{
    Frame, FrameDecoder, FrameError, FrameHeader, PREFACE, PrefaceMatch, Priority, Settings,
    Skipped, match_preface, plausible_frame_header,
};
