//! Content codings: streaming decompression with output and ratio caps.
//!
//! * [`decode`]: removes a chain of content codings (`Content-Encoding:
//!   gzip, br` = gzip applied first, so decoded br then gzip) from a body,
//!   as a stream: each coding is a [`Read`](std::io::Read) stage pulling
//!   from the previous one, no stage ever holds a whole intermediate
//!   output, and every stage stops at the caps below.
//!   HTTP bodies are decoded this way when their transaction is emitted,
//!   from the raw bytes kept (`Limits::max_body_size`); a body cut there
//!   decodes as far as it goes ([`DecodeError::Truncated`]).
//! * The raw-DEFLATE inflater behind WebSocket permessage-deflate (RFC 7692)
//!   lives here too, sharing the caps; it is fed as frames arrive and keeps
//!   its history across messages (context takeover).
//!
//! # Decompression bombs
//!
//! Every decompression is bounded by three values of [`Limits`]:
//! `max_decompressed_size` (bytes any one stage may produce),
//! `max_decompression_ratio` (bytes produced per compressed byte consumed,
//! checked once a stage has produced more than [`RATIO_GRACE`] bytes, so a
//! tiny body that decodes to a few KiB is not flagged) and
//! `max_decompression_window` (the history a brotli or zstd stream may ask
//! the decoder to keep). Hitting one stops decoding; what was produced so far
//! is kept and the stop is reported as a [`DecodeError`].

mod body;
mod inflate;

pub use body::{Coding, Decoded, decode, parse_codings};
pub(crate) use inflate::Inflater;

use crate::Limits;

/// Output a stage may produce before the ratio cap applies: a small body
/// that expands to a few KiB is normal, not a bomb.
pub const RATIO_GRACE: u64 = 64 * 1024;

/// Why decoding stopped before the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// A content coding this crate does not decode (the body is left as is).
    #[error("unsupported content coding")]
    Unsupported,
    /// More codings than `Limits::max_content_codings` were applied.
    #[error("more content codings than Limits::max_content_codings")]
    TooManyCodings,
    /// The data is not valid for its coding.
    #[error("corrupt {0} data")]
    Corrupt(Coding),
    /// The data ends before its coding's end marker (the body was cut by a
    /// limit or capture gap, or the sender stopped early).
    #[error("{0} data ends early")]
    Truncated(Coding),
    /// A stage produced `Limits::max_decompressed_size` bytes.
    #[error("decompressed output reached Limits::max_decompressed_size")]
    OutputLimit,
    /// A stage produced more than `Limits::max_decompression_ratio` bytes per
    /// compressed byte.
    #[error("decompression ratio above Limits::max_decompression_ratio")]
    RatioLimit,
    /// The stream asks for more history than `Limits::max_decompression_window`.
    #[error("{0} window larger than Limits::max_decompression_window")]
    WindowTooLarge(Coding),
}

/// The output caps of one decompression stage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    max_out: u64,
    ratio: u64,
}

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Self {
        Budget {
            max_out: u64::from(limits.max_decompressed_size),
            ratio: u64::from(limits.max_decompression_ratio),
        }
    }

    /// How many more bytes may be produced after `produced`, and the error
    /// to report when that is zero.
    pub(crate) fn room(&self, produced: u64, consumed: u64) -> (u64, DecodeError) {
        let by_size = self.max_out.saturating_sub(produced);
        if self.ratio == 0 {
            return (by_size, DecodeError::OutputLimit);
        }
        let allowed = self.ratio.saturating_mul(consumed).max(RATIO_GRACE);
        let by_ratio = allowed.saturating_sub(produced);
        if by_ratio < by_size {
            (by_ratio, DecodeError::RatioLimit)
        } else {
            (by_size, DecodeError::OutputLimit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_room() {
        let limits = Limits {
            max_decompressed_size: 1_000_000,
            max_decompression_ratio: 10,
            ..Limits::default()
        };
        let b = Budget::new(&limits);
        assert_eq!(b.room(0, 0), (RATIO_GRACE, DecodeError::RatioLimit));
        assert_eq!(b.room(0, 50_000), (500_000, DecodeError::RatioLimit));
        assert_eq!(
            b.room(900_000, 500_000),
            (100_000, DecodeError::OutputLimit)
        );
        assert_eq!(b.room(2_000_000, 500_000), (0, DecodeError::OutputLimit));
        let off = Budget::new(&Limits {
            max_decompression_ratio: 0,
            max_decompressed_size: 7,
            ..Limits::default()
        });
        assert_eq!(off.room(3, 0), (4, DecodeError::OutputLimit));
    }
}
