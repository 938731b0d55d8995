//! HPACK Huffman code (RFC 7541 Appendix B) and a table-driven decoder.
//!
//! The decoder is a finite-state machine that consumes four bits at a time.
//! Its states are the 256 internal nodes of the Huffman code tree; the table
//! (`256 x 16` transitions of 4 bytes, 16 KiB) is computed at compile time from the code
//! table below by `const fn`s, so there is no generated file to keep in sync.
//! Each transition emits at most one symbol (the shortest code is 5 bits).
//!
//! Validity rules (RFC 7541 §5.2): a string that decodes the EOS symbol is an
//! error, and so is padding that is longer than 7 bits or is not a prefix of
//! EOS (i.e. not all ones).

/// `(code, bit length)` for symbols `0..=255` and `256` (EOS), RFC 7541 Appendix B.
///
/// The code is canonical (a unit test checks this and Kraft's equality), so a
/// transcription error would not go unnoticed.
pub(crate) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// Symbol number of EOS.
const EOS: u16 = 256;
/// Marks a tree child as a leaf; the low bits are the symbol.
const LEAF: u16 = 0x8000;

/// Builds the code tree: `tree[node][bit]` is an internal node id (`< 256`,
/// never 0 since the root is nobody's child) or `LEAF | symbol`.
const fn build_tree() -> [[u16; 2]; 256] {
    let mut tree = [[0u16; 2]; 256];
    let mut next: usize = 1;
    let mut sym = 0;
    while sym < 257 {
        let (code, len) = CODES[sym];
        let mut node = 0usize;
        let mut i = len;
        while i > 1 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if tree[node][bit] == 0 {
                tree[node][bit] = next as u16;
                next += 1;
            }
            node = tree[node][bit] as usize;
        }
        tree[node][(code & 1) as usize] = LEAF | sym as u16;
        sym += 1;
    }
    // A complete prefix code with 257 leaves has exactly 256 internal nodes.
    assert!(next == 256);
    tree
}

/// Transition bit: this step emits the symbol in bits 8..16.
const EMIT: u32 = 1 << 16;
/// Transition bit: this step decoded EOS, which is an error.
const FAIL: u32 = 1 << 17;

/// The 4-bit state machine: entry `state * 16 + nibble` is one transition,
/// packed as `next | symbol << 8 | EMIT? | FAIL?` (bits 0..8 are the next
/// state), so a step is one load and no branch.
const fn build_decode_table() -> [u32; 256 * 16] {
    let tree = build_tree();
    let mut table = [0u32; 256 * 16];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut step = 0u32;
            let mut b = 4;
            while b > 0 {
                b -= 1;
                let bit = (nibble >> b) & 1;
                let child = tree[node][bit];
                if child & LEAF != 0 {
                    let sym = child & !LEAF;
                    if sym == EOS {
                        step |= FAIL;
                    } else {
                        step |= EMIT | ((sym as u32) << 8);
                    }
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            table[state * 16 + nibble] = step | node as u32;
            nibble += 1;
        }
        state += 1;
    }
    table
}

/// States in which the string may end: the root and the nodes reached from it
/// by one to seven 1-bits (a proper prefix of EOS no longer than 7 bits).
const fn build_accepting() -> [bool; 256] {
    let tree = build_tree();
    let mut accept = [false; 256];
    let mut node = 0usize;
    accept[0] = true;
    let mut depth = 0;
    while depth < 7 {
        node = tree[node][1] as usize;
        accept[node] = true;
        depth += 1;
    }
    accept
}

static DECODE: [u32; 256 * 16] = build_decode_table();
static ACCEPTING: [bool; 256] = build_accepting();

/// Why a Huffman-coded string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The string contains the EOS symbol.
    Eos,
    /// The padding is longer than 7 bits or is not all ones.
    Padding,
}

/// Decodes Huffman-coded `src`, appending the result to `dst`.
///
/// On error `dst` may hold a partial result; the caller truncates.
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // Symbols go to a stack buffer first, written whether or not the step
    // emits (the count advances only when it does): no branch and no capacity
    // check per symbol. The shortest code is 5 bits, so 64 input bytes give
    // at most 102 symbols: `n & 127 == n` always (the mask only spares the
    // bounds check).
    let mut buf = [0u8; 128];
    let mut state = 0usize;
    let mut seen = 0u32;
    for chunk in src.chunks(64) {
        let mut n = 0usize;
        for &byte in chunk {
            let t = DECODE[(state << 4 | usize::from(byte >> 4)) & 0xfff];
            buf[n & 127] = (t >> 8) as u8;
            n += ((t & EMIT) >> 16) as usize;
            let u = DECODE[((t as usize & 0xff) << 4) | usize::from(byte & 0x0f)];
            buf[n & 127] = (u >> 8) as u8;
            n += ((u & EMIT) >> 16) as usize;
            seen |= t | u;
            state = u as usize & 0xff;
        }
        dst.extend_from_slice(&buf[..n.min(128)]);
    }
    if seen & FAIL != 0 {
        // (Decoding went on past EOS from the root; only the verdict counts.)
        Err(HuffmanError::Eos)
    } else if ACCEPTING[state] {
        Ok(())
    } else {
        Err(HuffmanError::Padding)
    }
}

/// Encoded strings up to this many bytes are remembered by [`Memo`].
const MEMO_RAW: usize = 32;
/// Their decoded form: at most `32 * 8 / 5` = 51 bytes (5-bit shortest code).
const MEMO_DEC: usize = 52;
/// Slots of a [`Memo`] (direct-mapped).
const MEMO_SLOTS: usize = 64;

#[derive(Clone, Copy)]
struct MemoSlot {
    /// 0 = empty (empty strings are never remembered).
    raw_len: u8,
    dec_len: u8,
    raw: [u8; MEMO_RAW],
    dec: [u8; MEMO_DEC],
}

/// Recently decoded short Huffman strings, by their encoded bytes.
///
/// Encoders repeat literals: nginx, for one, sends `server`, `date`,
/// `content-type` and `content-length` of every response as literals with
/// Huffman-coded values (inserting them in the dynamic table, never referring
/// to them), so the same encoded bytes arrive again and again. A hit is a
/// compare and a copy of bytes decoded and validated once. One per decoding
/// thread (not per connection): 64 slots of 86 bytes, allocated on first use.
#[derive(Default)]
pub(crate) struct Memo {
    slots: Vec<MemoSlot>,
}

impl Memo {
    pub(crate) const fn new() -> Self {
        Memo { slots: Vec::new() }
    }

    fn slot_of(raw: &[u8]) -> usize {
        // First and last 8 bytes (fixed-size loads, no copy loop) and the
        // length; strings that differ elsewhere share a slot and replace
        // each other.
        let word = |b: Option<&[u8]>| {
            b.and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let n = raw.len();
        let (head, tail) = if n >= 8 {
            (word(raw.get(..8)), word(raw.get(n - 8..)))
        } else {
            (raw.iter().fold(0u64, |w, &b| w << 8 | u64::from(b)), 0)
        };
        let h = head ^ tail.rotate_left(29) ^ n as u64;
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % MEMO_SLOTS
    }

    /// Decodes `src` like [`decode`], from memory when the same bytes were
    /// decoded recently.
    pub(crate) fn decode(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
        if src.is_empty() || src.len() > MEMO_RAW {
            return decode(src, dst);
        }
        let i = Memo::slot_of(src);
        if let Some(s) = self.slots.get(i)
            && usize::from(s.raw_len) == src.len()
            && s.raw[..src.len()] == *src
        {
            dst.extend_from_slice(&s.dec[..usize::from(s.dec_len)]);
            return Ok(());
        }
        let before = dst.len();
        decode(src, dst)?;
        let decoded = &dst[before..];
        if decoded.len() <= MEMO_DEC {
            if self.slots.is_empty() {
                self.slots = vec![
                    MemoSlot {
                        raw_len: 0,
                        dec_len: 0,
                        raw: [0; MEMO_RAW],
                        dec: [0; MEMO_DEC],
                    };
                    MEMO_SLOTS
                ];
            }
            if let Some(s) = self.slots.get_mut(i) {
                s.raw_len = src.len() as u8;
                s.raw[..src.len()].copy_from_slice(src);
                s.dec_len = decoded.len() as u8;
                s.dec[..decoded.len()].copy_from_slice(decoded);
            }
        }
        Ok(())
    }
}

/// Length in bytes of the Huffman encoding of `src` (for tests and encoders).
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src.iter().map(|&b| CODES[b as usize].1 as usize).sum();
    bits.div_ceil(8)
}

/// Huffman-encodes `src` into `dst` (EOS-prefix padding). Provided for tests
/// and test encoders; the sensor itself only decodes.
pub fn encode(src: &[u8], dst: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in src {
        let (code, len) = CODES[b as usize];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            dst.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        dst.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_table_is_canonical_and_complete() {
        // Kraft equality: sum of 2^-len == 1, computed in units of 2^-30.
        let kraft: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
        assert_eq!(kraft, 1u64 << 30);
        // Canonical: sorted by (length, symbol), codes are consecutive.
        let mut order: Vec<usize> = (0..257).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        let mut code: u64 = 0;
        let mut prev_len = CODES[order[0]].1;
        for (i, &s) in order.iter().enumerate() {
            let (c, len) = CODES[s];
            if i > 0 {
                code = (code + 1) << (len - prev_len);
            }
            prev_len = len;
            assert_eq!(u64::from(c), code, "symbol {s}");
        }
    }

    /// Bit-by-bit reference decoder over the code table.
    fn reference_decode(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        let mut code: u32 = 0;
        let mut len: u8 = 0;
        for &byte in src {
            for i in (0..8).rev() {
                code = (code << 1) | u32::from((byte >> i) & 1);
                len += 1;
                if let Some(sym) = CODES.iter().position(|&(c, l)| l == len && c == code) {
                    if sym == 256 {
                        return Err(HuffmanError::Eos);
                    }
                    out.push(sym as u8);
                    code = 0;
                    len = 0;
                }
            }
        }
        if len > 7 || code != (1u32 << len) - 1 {
            return Err(HuffmanError::Padding);
        }
        Ok(out)
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        assert_eq!(enc.len(), encoded_len(&all));
        let mut dec = Vec::new();
        decode(&enc, &mut dec).expect("valid");
        assert_eq!(dec, all);
    }

    #[test]
    fn matches_reference_decoder_on_pseudo_random_input() {
        // xorshift: deterministic, no dev-dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in 0..3000 {
            let len = n % 9;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Bias towards all-ones bytes so EOS and long codes are reached.
                buf.push(if x.is_multiple_of(3) { 0xff } else { x as u8 });
            }
            let mut got = Vec::new();
            let fast = decode(&buf, &mut got).map(|()| got);
            assert_eq!(fast, reference_decode(&buf), "input {buf:02x?}");
        }
    }

    #[test]
    fn memo_gives_what_the_decoder_gives() {
        // Strings of every length around the memo's limits, repeated, with
        // colliding slots and invalid inputs mixed in: the memo must answer
        // exactly as the decoder does, hit or miss.
        let mut memo = Memo::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for n in 0..400usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut enc = Vec::new();
            if n % 5 == 0 {
                // Raw bytes (often invalid: EOS or bad padding).
                enc.extend((0..(n % 40)).map(|i| (x >> (i % 8 * 8)) as u8 | 0x0f));
            } else {
                let text: Vec<u8> = (0..(n % 60))
                    .map(|i| b'a' + ((x >> (i % 60)) % 26) as u8)
                    .collect();
                encode(&text, &mut enc);
            }
            inputs.push(enc);
        }
        for round in 0..3 {
            for enc in &inputs {
                let mut want = Vec::new();
                let want = decode(enc, &mut want).map(|()| want);
                let mut got = b"prefix".to_vec();
                let got = memo.decode(enc, &mut got).map(|()| got[6..].to_vec());
                assert_eq!(got, want, "round {round}, input {enc:02x?}");
            }
        }
    }

    #[test]
    fn rejects_eos_and_bad_padding() {
        // 30 ones then padding: EOS.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(HuffmanError::Eos)
        );
        // 8 bits of padding (a whole byte of ones).
        let mut enc = Vec::new();
        encode(b"a", &mut enc); // 'a' = 00011 + 111 padding
        enc.push(0xff);
        assert_eq!(decode(&enc, &mut Vec::new()), Err(HuffmanError::Padding));
        // Padding with a zero bit: '0' (00000) followed by 000.
        assert_eq!(decode(&[0x00], &mut Vec::new()), Err(HuffmanError::Padding));
        // Empty string is valid.
        assert_eq!(decode(&[], &mut Vec::new()), Ok(()));
    }
}
