//! Removing content codings from a body: a chain of streaming `Read` stages.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};

use super::{Budget, DecodeError};
use crate::Limits;

/// A content coding this crate can remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `gzip` / `x-gzip` (RFC 1952; concatenated members are decoded too).
    Gzip,
    /// `deflate`: zlib-wrapped (RFC 1950) as specified, or raw DEFLATE
    /// (RFC 1951) as some servers send; told apart by the first two bytes.
    Deflate,
    /// `br` (RFC 7932).
    Brotli,
    /// `zstd` (RFC 8878; concatenated frames are decoded too).
    Zstd,
}

impl Coding {
    /// The coding named by a `Content-Encoding` token (ASCII
    /// case-insensitive); `None` for unknown names and `identity`.
    pub fn from_name(name: &[u8]) -> Option<Coding> {
        let name = name.trim_ascii();
        [
            (&b"gzip"[..], Coding::Gzip),
            (b"x-gzip", Coding::Gzip),
            (b"deflate", Coding::Deflate),
            (b"br", Coding::Brotli),
            (b"zstd", Coding::Zstd),
        ]
        .into_iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, c)| c)
    }

    /// The token as it appears in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `Content-Encoding` values (one per header field, each a
/// comma-separated list) into the codings in the order they were applied.
/// `identity` and empty items are skipped. An unknown coding makes the whole
/// chain undecodable ([`DecodeError::Unsupported`]); more than `max` codings
/// is [`DecodeError::TooManyCodings`].
pub fn parse_codings<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    max: usize,
) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for value in values {
        for item in value.split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || item.eq_ignore_ascii_case(b"identity") {
                continue;
            }
            let c = Coding::from_name(item).ok_or(DecodeError::Unsupported)?;
            if out.len() >= max {
                return Err(DecodeError::TooManyCodings);
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// A body with its content codings removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The decoded bytes kept (at most `Limits::max_decoded_body_size`).
    pub data: Vec<u8>,
    /// Decoded bytes produced, including those not kept. When decoding
    /// reached the end of the data ([`error`](Self::error) is `None`) this is
    /// the real decoded size.
    pub size: u64,
    /// `data` is not the whole decoded body: cut by
    /// `Limits::max_decoded_body_size`, or decoding stopped early (see
    /// [`error`](Self::error)).
    pub truncated: bool,
    /// Why decoding stopped before the end, if it did.
    pub error: Option<DecodeError>,
}

/// Removes `codings` (in the order they were applied) from `input`.
///
/// Decoding is streamed stage by stage, never holding a whole intermediate
/// result, and stops at `Limits::max_decompressed_size`,
/// `Limits::max_decompression_ratio` and `Limits::max_decompression_window`
/// (see the [module docs](super)); at most `Limits::max_decoded_body_size`
/// decoded bytes are kept. `input_complete` says whether `input` is the
/// whole body: if not, running out of input is reported as
/// [`DecodeError::Truncated`] rather than corruption.
pub fn decode(codings: &[Coding], input: &[u8], input_complete: bool, limits: &Limits) -> Decoded {
    let keep = limits.max_decoded_body_size as usize;
    let mut d = Decoded::default();
    if codings.len() > limits.max_content_codings as usize {
        d.error = Some(DecodeError::TooManyCodings);
        d.truncated = true;
        return d;
    }
    let consumed = Cell::new(0u64);
    let stop = Cell::new(None);
    let ctx = Ctx {
        consumed: &consumed,
        stop: &stop,
        budget: Budget::new(limits),
        window: u64::from(limits.max_decompression_window),
    };
    let mut reader: Box<dyn Read + '_> = Box::new(Source {
        data: input,
        consumed: &consumed,
    });
    for &coding in codings.iter().rev() {
        let inner: Box<dyn Read + '_> = match coding {
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Coding::Deflate => Box::new(Inflate::new(reader)),
            Coding::Brotli => Box::new(Brotli::new(reader, ctx)),
            Coding::Zstd => Box::new(Zstd::new(reader, ctx)),
        };
        reader = Box::new(Stage {
            inner,
            coding,
            produced: 0,
            ctx,
        });
    }
    // Small bodies (most API responses) get a small zeroed buffer: the
    // 16 KiB one cost more than inflating a 1 KiB gzip body.
    let mut buf = vec![0u8; (input.len().saturating_mul(8)).clamp(1024, 16 * 1024)];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let n = n.min(buf.len());
                d.size += n as u64;
                let room = keep.saturating_sub(d.data.len());
                d.data.extend_from_slice(&buf[..n.min(room)]);
                if n > room {
                    d.truncated = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    d.error = stop.get();
    if let Some(DecodeError::Corrupt(c)) = d.error
        && !input_complete
        && consumed.get() >= input.len() as u64
    {
        // Most likely just the cut, not bad data.
        d.error = Some(DecodeError::Truncated(c));
    }
    if d.error.is_some() {
        d.truncated = true;
    }
    d
}

/// What every stage of one decode shares.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    /// Raw input bytes consumed so far (for the ratio cap).
    consumed: &'a Cell<u64>,
    /// The first reason decoding stopped.
    stop: &'a Cell<Option<DecodeError>>,
    budget: Budget,
    window: u64,
}

impl Ctx<'_> {
    /// Records `e` (unless an earlier stage already stopped) and returns an
    /// error for the `Read` chain.
    fn fail(&self, e: DecodeError) -> io::Error {
        if self.stop.get().is_none() {
            self.stop.set(Some(e));
        }
        io::Error::other(e)
    }
}

/// The raw body, counting what is consumed.
struct Source<'a> {
    data: &'a [u8],
    consumed: &'a Cell<u64>,
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

/// One coding's decoder, held to the output caps.
struct Stage<'a> {
    inner: Box<dyn Read + 'a>,
    coding: Coding,
    produced: u64,
    ctx: Ctx<'a>,
}

impl Read for Stage<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (room, why) = self.ctx.budget.room(self.produced, self.ctx.consumed.get());
        if room == 0 {
            return Err(self.ctx.fail(why));
        }
        let want = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        match self.inner.read(&mut buf[..want]) {
            Ok(n) => {
                let n = n.min(want);
                self.produced += n as u64;
                Ok(n)
            }
            Err(e) => {
                let mine = if e.kind() == io::ErrorKind::UnexpectedEof {
                    DecodeError::Truncated(self.coding)
                } else {
                    DecodeError::Corrupt(self.coding)
                };
                Err(self.ctx.fail(mine))
            }
        }
    }
}

/// Input buffer of the hand-driven stages.
const IN_BUF: usize = 16 * 1024;

/// `deflate`: zlib-wrapped or raw, detected from the first two bytes.
struct Inflate<'a> {
    src: Box<dyn Read + 'a>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    z: Option<Decompress>,
    done: bool,
}

impl<'a> Inflate<'a> {
    fn new(src: Box<dyn Read + 'a>) -> Self {
        Inflate {
            src,
            buf: vec![0; IN_BUF],
            start: 0,
            end: 0,
            eof: false,
            z: None,
            done: false,
        }
    }

    /// Reads more input after what is buffered.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(());
        }
        let n = self.src.read(&mut self.buf[self.end..])?;
        if n == 0 {
            self.eof = true;
        }
        self.end = (self.end + n).min(self.buf.len());
        Ok(())
    }
}

/// Whether `b` starts with a valid zlib (RFC 1950) header.
fn zlib_header(b: &[u8]) -> bool {
    match b {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

impl Read for Inflate<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        let mut stalls = 0;
        loop {
            if self.start == self.end && !self.eof {
                self.fill()?;
            }
            if self.z.is_none() {
                while self.end - self.start < 2 && !self.eof {
                    self.fill()?;
                }
                self.z = Some(Decompress::new(zlib_header(
                    &self.buf[self.start..self.end],
                )));
            }
            let Some(z) = self.z.as_mut() else {
                return Ok(0);
            };
            let input = &self.buf[self.start..self.end];
            let (i0, o0) = (z.total_in(), z.total_out());
            let r = z.decompress(input, out, FlushDecompress::None);
            let consumed = (z.total_in().saturating_sub(i0) as usize).min(input.len());
            let produced = (z.total_out().saturating_sub(o0) as usize).min(out.len());
            self.start += consumed;
            match r {
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                Ok(Status::StreamEnd) => {
                    self.done = true;
                    return Ok(produced);
                }
                Ok(Status::Ok | Status::BufError) => {
                    if produced > 0 {
                        return Ok(produced);
                    }
                    if self.eof && self.start == self.end {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    if consumed == 0 {
                        // Input is there, output has room, and nothing moves.
                        stalls += 1;
                        if stalls > 2 {
                            return Err(io::ErrorKind::InvalidData.into());
                        }
                    }
                }
            }
        }
    }
}

/// A reader that replays bytes it peeked before reading on.
struct Peeked<'a> {
    head: [u8; 4],
    pos: usize,
    len: usize,
    src: Box<dyn Read + 'a>,
}

impl<'a> Peeked<'a> {
    fn new(src: Box<dyn Read + 'a>) -> Self {
        Peeked {
            head: [0; 4],
            pos: 0,
            len: 0,
            src,
        }
    }

    /// Makes up to `n` (at most 4) next bytes visible without consuming them.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(self.head.len());
        if self.pos > 0 {
            self.head.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        while self.len < n {
            let got = self.src.read(&mut self.head[self.len..n])?;
            if got == 0 {
                break;
            }
            self.len += got;
        }
        Ok(&self.head[..self.len])
    }
}

impl Read for Peeked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.len {
            let n = (self.len - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.src.read(buf)
    }
}

/// `br`, refusing windows above `Limits::max_decompression_window`.
struct Brotli<'a> {
    state: BrotliState<'a>,
    ctx: Ctx<'a>,
}

enum BrotliState<'a> {
    Start(Peeked<'a>),
    Running(Box<brotli_decompressor::Decompressor<Peeked<'a>>>),
    Done,
}

impl<'a> Brotli<'a> {
    fn new(src: Box<dyn Read + 'a>, ctx: Ctx<'a>) -> Self {
        Brotli {
            state: BrotliState::Start(Peeked::new(src)),
            ctx,
        }
    }
}

/// The window size a brotli stream header (RFC 7932 §9.1) declares, from
/// its first two bytes; `None` if not enough bytes.
fn brotli_window(head: &[u8]) -> Option<u64> {
    let bits = u16::from(*head.first()?) | u16::from(head.get(1).copied().unwrap_or(0)) << 8;
    let wbits = if bits & 1 == 0 {
        16
    } else if (bits >> 1) & 7 != 0 {
        17 + ((bits >> 1) & 7)
    } else if (bits >> 4) & 7 != 0 {
        8 + ((bits >> 4) & 7)
    } else {
        17
    };
    // Large-window streams (RFC 7932 extension: `0x11` then 6 bits) are
    // refused by the decoder anyway; report the largest standard window.
    Some((1u64 << wbits.min(24)) - 16)
}

impl Read for Brotli<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match &mut self.state {
                BrotliState::Start(src) => {
                    let window = brotli_window(src.peek(2)?);
                    if window.is_some_and(|w| w > self.ctx.window) {
                        self.state = BrotliState::Done;
                        return Err(self.ctx.fail(DecodeError::WindowTooLarge(Coding::Brotli)));
                    }
                    let BrotliState::Start(src) =
                        std::mem::replace(&mut self.state, BrotliState::Done)
                    else {
                        return Ok(0);
                    };
                    self.state = BrotliState::Running(Box::new(
                        brotli_decompressor::Decompressor::new(src, IN_BUF),
                    ));
                }
                BrotliState::Running(d) => return d.read(buf),
                BrotliState::Done => return Ok(0),
            }
        }
    }
}

/// `zstd`: one or more frames, each limited to
/// `Limits::max_decompression_window`.
struct Zstd<'a> {
    src: Peeked<'a>,
    dec: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
    frames: u32,
    ctx: Ctx<'a>,
}

impl<'a> Zstd<'a> {
    fn new(src: Box<dyn Read + 'a>, ctx: Ctx<'a>) -> Self {
        let mut dec = ruzstd::decoding::FrameDecoder::new();
        dec.set_max_window_size(ctx.window);
        Zstd {
            src: Peeked::new(src),
            dec,
            in_frame: false,
            frames: 0,
            ctx,
        }
    }
}

impl Read for Zstd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::BlockDecodingStrategy;
        use ruzstd::decoding::errors::FrameDecoderError;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                // Another frame follows, or the end (there must be at least one).
                if self.frames > 0 && self.src.peek(1)?.is_empty() {
                    return Ok(0);
                }
                match self.dec.reset(&mut self.src) {
                    Ok(()) => {}
                    Err(FrameDecoderError::WindowSizeTooBig { .. }) => {
                        return Err(self.ctx.fail(DecodeError::WindowTooLarge(Coding::Zstd)));
                    }
                    Err(e) => return Err(zstd_error(e)),
                }
                self.in_frame = true;
                self.frames = self.frames.saturating_add(1);
            }
            if self.dec.can_collect() > 0 {
                return self.dec.read(buf);
            }
            if self.dec.is_finished() {
                self.in_frame = false;
                continue;
            }
            self.dec
                .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                .map_err(zstd_error)?;
        }
    }
}

/// Keeps "ran out of input" apart from corruption.
fn zstd_error(e: ruzstd::decoding::errors::FrameDecoderError) -> io::Error {
    let eof = {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut eof = false;
        while let Some(s) = src {
            if s.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::UnexpectedEof)
            {
                eof = true;
                break;
            }
            src = s.source();
        }
        eof
    };
    if eof {
        io::ErrorKind::UnexpectedEof.into()
    } else {
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_coding_lists() {
        assert_eq!(
            parse_codings([&b"gzip, br"[..], b"identity", b" ZSTD "], 4),
            Ok(vec![Coding::Gzip, Coding::Brotli, Coding::Zstd])
        );
        assert_eq!(
            parse_codings([&b"gzip, compress"[..]], 4),
            Err(DecodeError::Unsupported)
        );
        assert_eq!(
            parse_codings([&b"gzip,gzip,gzip"[..]], 2),
            Err(DecodeError::TooManyCodings)
        );
        assert_eq!(parse_codings([&b""[..]], 2), Ok(vec![]));
    }

    #[test]
    fn zlib_header_detection() {
        assert!(zlib_header(&[0x78, 0x9c]));
        assert!(zlib_header(&[0x78, 0x01]));
        assert!(zlib_header(&[0x78, 0xda]));
        assert!(!zlib_header(&[0xf2, 0x48]));
        assert!(!zlib_header(&[0x78]));
    }

    #[test]
    fn brotli_window_bits() {
        assert_eq!(brotli_window(&[0x0b]), Some((1 << 22) - 16)); // quality 11 default lgwin 22
        assert_eq!(brotli_window(&[0x00]), Some((1 << 16) - 16));
        assert_eq!(brotli_window(&[]), None);
    }
}
