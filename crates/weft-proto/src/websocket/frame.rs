//! WebSocket frame headers (RFC 6455 §5.2).

use crate::Direction;

/// The longest frame header: 2 bytes, 8 bytes of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: the last frame of a message.
    pub fin: bool,
    /// RSV1 (permessage-deflate: the message is compressed).
    pub rsv1: bool,
    /// The 4-bit opcode (0 continuation, 1 text, 2 binary, 8 close, 9 ping,
    /// 10 pong).
    pub opcode: u8,
    /// The masking key (set on every client-to-server frame).
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub payload_len: u64,
    /// Header length in bytes (2 to 14).
    pub header_len: usize,
    /// The length was not encoded in its shortest form (a protocol error
    /// tolerated here).
    pub non_minimal_length: bool,
}

impl FrameHeader {
    /// Whether this is a control frame (close, ping, pong or reserved 0xB-0xF).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// A frame header that cannot be right: the stream is not where we think
/// (or the peer is broken); decoding resynchronises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Opcodes 3-7 and 0xB-0xF are reserved.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV2 or RSV3 set without an extension that defines them.
    #[error("reserved bits RSV2/RSV3 set")]
    ReservedBits,
    /// A 64-bit length with its most significant bit set.
    #[error("64-bit payload length with the most significant bit set")]
    LengthOverflow,
    /// A control frame longer than 125 bytes.
    #[error("control frame with a {0}-byte payload (at most 125 allowed)")]
    ControlTooLong(u64),
}

/// Parses a frame header at the start of `b`: `Ok(None)` means more bytes
/// are needed. Never reads past the header.
pub fn parse_frame_header(b: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
    let Some(&b0) = b.first() else {
        return Ok(None);
    };
    let opcode = b0 & 0x0f;
    if matches!(opcode, 3..=7 | 0xb..=0xf) {
        return Err(FrameError::ReservedOpcode(opcode));
    }
    if b0 & 0x30 != 0 {
        return Err(FrameError::ReservedBits);
    }
    let Some(&b1) = b.get(1) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    let control = opcode & 0x8 != 0;
    if control && len7 > 125 {
        return Err(FrameError::ControlTooLong(u64::from(len7)));
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + ext + if masked { 4 } else { 0 };
    if b.len() < header_len {
        // Report an impossible 64-bit length as soon as its first byte is here.
        if ext == 8 && b.get(2).is_some_and(|&x| x & 0x80 != 0) {
            return Err(FrameError::LengthOverflow);
        }
        return Ok(None);
    }
    let (payload_len, non_minimal_length) = match ext {
        2 => {
            let n = u64::from(u16::from_be_bytes([b[2], b[3]]));
            (n, n < 126)
        }
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[2..10]);
            let n = u64::from_be_bytes(a);
            if n >> 63 != 0 {
                return Err(FrameError::LengthOverflow);
            }
            (n, n <= 0xffff)
        }
        _ => (u64::from(len7), false),
    };
    let mask = masked.then(|| {
        let m = 2 + ext;
        [b[m], b[m + 1], b[m + 2], b[m + 3]]
    });
    Ok(Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode,
        mask,
        payload_len,
        header_len,
        non_minimal_length,
    }))
}

/// Whether `b` plausibly starts a frame sent in `dir`: valid header bits,
/// masked exactly when sent by the client, RSV1 only on the first frame of
/// a data message and only when `deflate` was negotiated, control frames
/// unfragmented, lengths in their shortest form. Used to find frame
/// boundaries again after a gap; a prefix too short to tell is accepted.
pub fn plausible_frame(dir: Direction, deflate: bool, b: &[u8]) -> bool {
    let h = match parse_frame_header(b) {
        Ok(Some(h)) => h,
        Ok(None) => {
            // Check what is there.
            return match b {
                [] => false,
                [b0] => rsv1_ok(*b0, deflate) && !(b0 & 0x08 != 0 && b0 & 0x80 == 0),
                [b0, b1, ..] => {
                    rsv1_ok(*b0, deflate) && (b1 & 0x80 != 0) == (dir == Direction::ClientToServer)
                }
            };
        }
        Err(_) => return false,
    };
    let masked_ok = h.mask.is_some() == (dir == Direction::ClientToServer);
    let rsv1_ok = !h.rsv1 || (deflate && matches!(h.opcode, 1 | 2));
    let control_ok = !h.is_control() || h.fin;
    masked_ok && rsv1_ok && control_ok && !h.non_minimal_length
}

fn rsv1_ok(b0: u8, deflate: bool) -> bool {
    b0 & 0x40 == 0 || (deflate && matches!(b0 & 0x0f, 1 | 2))
}

/// XORs `data` with `mask`, `data[0]` being payload byte number `pos`.
pub(crate) fn unmask(data: &mut [u8], mask: [u8; 4], pos: u64) {
    let start = (pos % 4) as usize;
    let key = [
        mask[start],
        mask[(start + 1) % 4],
        mask[(start + 2) % 4],
        mask[(start + 3) % 4],
    ];
    let mut chunks = data.chunks_exact_mut(4);
    let k = u32::from_ne_bytes(key);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ k;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{ClientToServer as C2S, ServerToClient as S2C};

    #[test]
    fn rfc6455_examples() {
        // §5.7: unmasked "Hello".
        let h = parse_frame_header(&[0x81, 0x05, 0x48])
            .expect("valid")
            .expect("complete");
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, h.header_len),
            (true, 1, 5, 2)
        );
        assert_eq!(h.mask, None);
        // Masked "Hello".
        let b = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = parse_frame_header(&b).expect("valid").expect("complete");
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let mut p = b[6..].to_vec();
        unmask(&mut p, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(p, b"Hello");
        // Split unmasking keeps the key phase.
        let mut a = b[6..8].to_vec();
        let mut c = b[8..].to_vec();
        unmask(&mut a, [0x37, 0xfa, 0x21, 0x3d], 0);
        unmask(&mut c, [0x37, 0xfa, 0x21, 0x3d], 2);
        assert_eq!([a, c].concat(), b"Hello");
        // 256 bytes binary, 16-bit length; 64 KiB binary, 64-bit length.
        let h = parse_frame_header(&[0x82, 0x7e, 0x01, 0x00])
            .expect("ok")
            .expect("some");
        assert_eq!((h.payload_len, h.header_len), (256, 4));
        let h = parse_frame_header(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])
            .expect("ok")
            .expect("some");
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
        // Unmasked ping "Hello".
        let h = parse_frame_header(&[0x89, 0x05])
            .expect("ok")
            .expect("some");
        assert!(h.is_control() && h.fin);
    }

    #[test]
    fn errors_and_need_more() {
        assert_eq!(parse_frame_header(&[]), Ok(None));
        assert_eq!(parse_frame_header(&[0x81]), Ok(None));
        assert_eq!(parse_frame_header(&[0x81, 0xfe, 0x00]), Ok(None));
        assert_eq!(
            parse_frame_header(&[0x83]),
            Err(FrameError::ReservedOpcode(3))
        );
        assert_eq!(parse_frame_header(&[0xa1]), Err(FrameError::ReservedBits));
        assert_eq!(
            parse_frame_header(&[0x89, 0x7e]),
            Err(FrameError::ControlTooLong(126))
        );
        assert_eq!(
            parse_frame_header(&[0x82, 0x7f, 0x80]),
            Err(FrameError::LengthOverflow)
        );
        let h = parse_frame_header(&[0x82, 0x7e, 0x00, 0x05])
            .expect("ok")
            .expect("some");
        assert!(h.non_minimal_length);
    }

    #[test]
    fn plausibility() {
        assert!(plausible_frame(S2C, false, &[0x81, 0x05]));
        assert!(!plausible_frame(C2S, false, &[0x81, 0x05]));
        assert!(plausible_frame(C2S, false, &[0x81, 0x85, 1, 2, 3, 4]));
        assert!(!plausible_frame(S2C, false, &[0xc1, 0x05]));
        assert!(plausible_frame(S2C, true, &[0xc1, 0x05]));
        assert!(!plausible_frame(S2C, true, &[0xc0, 0x05]));
        assert!(!plausible_frame(S2C, false, &[0x09, 0x00]));
        assert!(!plausible_frame(S2C, false, b"GET / HTTP/1.1"));
        assert!(!plausible_frame(S2C, false, &[]));
    }
}
