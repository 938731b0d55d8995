//! A push-driven DEFLATE inflater (raw or zlib-wrapped) over flate2/zlib-rs.

use flate2::{Decompress, FlushDecompress, Status};

use super::{Coding, DecodeError};

/// Output chunk size: one stage's output is handed on in pieces this big.
const CHUNK: usize = 16 * 1024;

/// Inflates DEFLATE data fed in pieces, handing output to a sink.
///
/// Holds the 32 KiB history the format needs plus one output chunk; the
/// history persists across [`push`](Inflater::push) calls until
/// [`reset`](Inflater::reset) (that is how permessage-deflate context
/// takeover works).
pub(crate) struct Inflater {
    z: Decompress,
    zlib: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("zlib", &self.zlib)
            .field("total_in", &self.z.total_in())
            .field("total_out", &self.z.total_out())
            .finish()
    }
}

impl Clone for Inflater {
    /// The history cannot be copied out of the inflater: a clone starts
    /// fresh (decoders that clone mid-stream resynchronise like after a gap).
    fn clone(&self) -> Self {
        Inflater::new(self.zlib)
    }
}

/// What one [`Inflater::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// Input bytes consumed (all of them unless the stream ended).
    pub consumed: usize,
    /// The DEFLATE stream's final block (or the zlib trailer) was reached;
    /// later input is not part of this stream.
    pub end: bool,
}

impl Inflater {
    /// A fresh inflater; `zlib` expects the RFC 1950 header and trailer.
    pub(crate) fn new(zlib: bool) -> Self {
        Inflater {
            z: Decompress::new(zlib),
            zlib,
            buf: Vec::new(),
        }
    }

    /// Forgets the history and starts a new stream.
    pub(crate) fn reset(&mut self) {
        self.z.reset(self.zlib);
    }

    /// Inflates `input`, calling `sink` with each piece of output; `sync`
    /// flushes everything decodable (used after permessage-deflate's
    /// `00 00 ff ff` tail). Stops at the first error (corrupt data, or the
    /// sink's own error, such as an output cap).
    pub(crate) fn push(
        &mut self,
        input: &[u8],
        sync: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), DecodeError>,
    ) -> Result<Pushed, DecodeError> {
        if self.buf.len() != CHUNK {
            self.buf.resize(CHUNK, 0);
        }
        let flush = if sync {
            FlushDecompress::Sync
        } else {
            FlushDecompress::None
        };
        let mut pos = 0usize;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let r = self.z.decompress(rest, &mut self.buf, flush);
            let consumed = usize::try_from(self.z.total_in().saturating_sub(in0))
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let produced = usize::try_from(self.z.total_out().saturating_sub(out0))
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            pos += consumed;
            if produced > 0 {
                sink(&self.buf[..produced])?;
            }
            match r {
                Err(_) => return Err(DecodeError::Corrupt(Coding::Deflate)),
                Ok(Status::StreamEnd) => {
                    return Ok(Pushed {
                        consumed: pos,
                        end: true,
                    });
                }
                Ok(Status::Ok | Status::BufError) => {
                    let drained = produced < self.buf.len() && pos >= input.len();
                    if drained || (consumed == 0 && produced == 0) {
                        return Ok(Pushed {
                            consumed: pos,
                            end: false,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(inf: &mut Inflater, input: &[u8], sync: bool) -> (Vec<u8>, Pushed) {
        let mut out = Vec::new();
        let p = inf
            .push(input, sync, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .expect("valid data");
        (out, p)
    }

    #[test]
    fn rfc7692_hello_with_and_without_context() {
        // RFC 7692 §7.2.3.1/§7.2.3.2: "Hello" twice, context takeover.
        let mut inf = Inflater::new(false);
        let (out, p) = inflate_all(&mut inf, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], false);
        assert_eq!(out, b"Hello");
        assert!(!p.end);
        let (out, _) = inflate_all(&mut inf, &[0x00, 0x00, 0xff, 0xff], true);
        assert!(out.is_empty());
        // The second "Hello" refers back to the first.
        let (out, _) = inflate_all(
            &mut inf,
            &[0xf2, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff],
            true,
        );
        assert_eq!(out, b"Hello");
        // Without the history the back-reference is an error.
        let mut fresh = Inflater::new(false);
        assert!(
            fresh
                .push(&[0xf2, 0x00, 0x11, 0x00, 0x00], true, &mut |_| Ok(()))
                .is_err()
        );
    }

    #[test]
    fn sink_error_stops() {
        let mut inf = Inflater::new(false);
        let r = inf.push(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            true,
            &mut |_| Err(DecodeError::OutputLimit),
        );
        assert_eq!(r, Err(DecodeError::OutputLimit));
    }
}
