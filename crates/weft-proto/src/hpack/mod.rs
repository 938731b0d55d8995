//! HPACK header block decoder (RFC 7541).
//!
//! [`Decoder`] turns complete header blocks into [`Headers`], keeping the
//! dynamic table of one direction of one HTTP/2 connection. It never panics,
//! bounds everything by [`Limits`], and can join a connection mid-way
//! ([`Decoder::new_mid_connection`]): header blocks then decode as far as the
//! entries we have seen allow, and the [`BlockStatus`] says how many fields
//! could not be decoded. See the `table` module for the reasoning.
//!
//! Errors are typed ([`HpackError`]). After an error the table can no longer
//! be trusted (part of the block's insertions may be missing), so the decoder
//! resets itself to the mid-connection state and recovers as the encoder
//! refills its table.

mod huffman;
mod table;

pub use huffman::{HuffmanError, encode as huffman_encode, encoded_len as huffman_encoded_len};

use std::cell::RefCell;

use crate::headers::{Span, Writer, lowercase_in};
use crate::{Headers, Limits};

/// Per-thread working state of block decoding (one per thread, not per
/// connection).
struct Scratch {
    /// Records of the fields of the block being decoded, kept aside until
    /// its bytes are all written.
    spans: Vec<Span>,
    /// Recently decoded Huffman strings.
    memo: huffman::Memo,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            spans: Vec::new(),
            memo: huffman::Memo::new(),
        })
    };
}
use table::{DynamicTable, ENTRY_OVERHEAD, STATIC, Slot};

/// The initial SETTINGS_HEADER_TABLE_SIZE of HTTP/2 (RFC 7540 §6.5.2).
pub const DEFAULT_TABLE_SIZE: u32 = 4_096;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a field representation (a truncated integer or
    /// string); header blocks must be decoded whole.
    #[error("header block ends inside a field representation (truncated block)")]
    Truncated,
    /// An integer does not fit in 32 bits or uses more than 5 continuation bytes.
    #[error("HPACK integer overflows 32 bits")]
    IntegerOverflow,
    /// Index 0 is not a valid table index (RFC 7541 §6.1).
    #[error("HPACK index 0 is not valid")]
    ZeroIndex,
    /// The index is past the end of the static and dynamic tables.
    #[error("HPACK index {index} is out of range (dynamic table holds {table_len} entries)")]
    IndexOutOfRange {
        /// The index received.
        index: u32,
        /// Entries in our dynamic table.
        table_len: usize,
    },
    /// A Huffman-coded string contains EOS or has invalid padding.
    #[error("invalid Huffman-coded string: {0:?}")]
    Huffman(HuffmanError),
    /// A string literal is longer than `Limits::max_header_string_len`.
    #[error(
        "HPACK string of {len} bytes exceeds the {max}-byte limit (Limits::max_header_string_len)"
    )]
    StringTooLong {
        /// Declared (or decoded) length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// A dynamic table size update exceeds the SETTINGS_HEADER_TABLE_SIZE in force.
    #[error("HPACK dynamic table size update to {requested} exceeds the allowed maximum {max}")]
    TableSizeTooLarge {
        /// The size the encoder asked for.
        requested: u32,
        /// The maximum allowed by SETTINGS.
        max: u32,
    },
    /// A dynamic table size update after the first field of a block (RFC 7541 §4.2).
    #[error("HPACK dynamic table size update after a header field")]
    SizeUpdateNotAtStart,
}

/// What happened while decoding one header block, beyond the fields themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStatus {
    /// Fields that referenced a dynamic-table entry (or entry name) we never
    /// saw because we joined the connection late; they are missing from the
    /// output. Non-zero means the header list is incomplete.
    pub unknown_references: u32,
    /// Fields dropped because the list exceeded `Limits::max_header_list_size`.
    pub dropped_fields: u32,
    /// The decoded header list size (RFC 7540 §6.5.2) of the whole block,
    /// including dropped and unknown fields where their size is known.
    pub list_size: u64,
    /// The encoder asked for a table larger than `Limits::hpack_max_table_size`
    /// and we keep a smaller one.
    pub table_clamped: bool,
}

impl BlockStatus {
    /// Whether some fields of the block are missing because we joined late.
    pub fn is_incomplete(&self) -> bool {
        self.unknown_references > 0
    }

    /// Whether some fields were dropped by the header list size limit.
    pub fn is_truncated(&self) -> bool {
        self.dropped_fields > 0
    }
}

/// Decoder for the header blocks of one direction of one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    table: DynamicTable,
    /// Size updates may not exceed this (SETTINGS_HEADER_TABLE_SIZE).
    settings_max: u32,
    cap: u32,
    join_size: u32,
    max_list: u64,
    max_string: u32,
    /// Lower-case the names it outputs (ASCII), as HTTP/2 header lists are
    /// kept; names from the static table already are. The dynamic table
    /// keeps names as received.
    lowercase: bool,
}

impl Decoder {
    /// A decoder for a connection seen from its start: empty table of
    /// [`DEFAULT_TABLE_SIZE`].
    pub fn new(limits: &Limits) -> Self {
        let size = DEFAULT_TABLE_SIZE.min(limits.hpack_max_table_size);
        let mut table = DynamicTable::new(size as usize);
        if size < DEFAULT_TABLE_SIZE {
            // Our cap is below even the default: the encoder may hold more.
            table.set_max_size(DEFAULT_TABLE_SIZE as usize, size as usize);
        }
        Decoder {
            table,
            settings_max: DEFAULT_TABLE_SIZE,
            cap: limits.hpack_max_table_size,
            join_size: limits
                .hpack_join_table_size
                .min(limits.hpack_max_table_size),
            max_list: u64::from(limits.max_header_list_size),
            max_string: limits.max_header_string_len,
            lowercase: false,
        }
    }

    /// A decoder joining a connection mid-way: the encoder's table holds
    /// entries we never saw. Size updates are bounded only by the `Limits` cap
    /// until [`Decoder::set_max_table_size_setting`] is called.
    pub fn new_mid_connection(limits: &Limits) -> Self {
        let mut d = Decoder::new(limits);
        d.settings_max = limits.hpack_max_table_size;
        d.table.reset_joined(d.join_size as usize);
        d
    }

    /// Forgets the table, as after a gap in the captured bytes: the decoder
    /// behaves as if it had just joined the connection.
    pub fn resync(&mut self) {
        self.table.reset_joined(self.join_size as usize);
    }

    /// Makes the decoder lower-case the names it outputs (ASCII).
    pub(crate) fn set_lowercase(&mut self, on: bool) {
        self.lowercase = on;
    }

    /// Records the SETTINGS_HEADER_TABLE_SIZE the decoding peer advertised,
    /// which bounds the encoder's size updates. Because the two directions of
    /// a connection may be captured out of order, callers should pass the
    /// largest value seen rather than the latest.
    pub fn set_max_table_size_setting(&mut self, size: u32) {
        self.settings_max = size;
    }

    /// Entries in the dynamic table.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Size of the dynamic table (RFC 7541 §4.1; a lower bound when some
    /// entry names are unknown).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// Maximum size of the dynamic table we work with (the encoder's own
    /// maximum once [`Decoder::is_synced`]).
    pub fn max_table_size(&self) -> usize {
        self.table.max_size()
    }

    /// Whether the decoder knows every entry of the encoder's table (true for
    /// a decoder that saw the connection start; a joined decoder becomes
    /// synced once every unknown entry is provably evicted).
    pub fn is_synced(&self) -> bool {
        self.table.is_exact() && self.table.max_is_exact()
    }

    /// The dynamic table, newest entry first, as `(name, value)`; `name` is
    /// `None` for entries whose name we never saw. For tests and diagnostics
    /// (allocates).
    pub fn dynamic_table(&self) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
        self.table.snapshot()
    }

    /// Decodes one complete header block, appending its fields to `out`.
    ///
    /// On error, `out` holds the fields decoded before the error and the
    /// decoder has reset itself (see [`Decoder::resync`]).
    pub fn decode(&mut self, block: &[u8], out: &mut Headers) -> Result<BlockStatus, HpackError> {
        let mut status = BlockStatus::default();
        let result = SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                let Scratch { spans, memo } = &mut *scratch;
                self.decode_inner(block, &mut out.writer(spans), memo, &mut status)
            }
            Err(_) => self.decode_inner(
                block,
                &mut out.writer(&mut Vec::new()),
                &mut huffman::Memo::new(),
                &mut status,
            ),
        });
        match result {
            Ok(()) => Ok(status),
            Err(e) => {
                self.resync();
                Err(e)
            }
        }
    }

    fn decode_inner(
        &mut self,
        block: &[u8],
        out: &mut Writer<'_>,
        memo: &mut huffman::Memo,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let mut pos = 0usize;
        let mut seen_field = false;
        while let Some(&first) = block.get(pos) {
            if first & 0x80 != 0 {
                // Indexed header field (§6.1).
                let index = decode_int(block, &mut pos, 7)?;
                seen_field = true;
                self.emit_indexed(index, out, st)?;
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing (§6.2.1).
                seen_field = true;
                self.literal(block, &mut pos, 6, true, false, out, memo, st)?;
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if seen_field {
                    return Err(HpackError::SizeUpdateNotAtStart);
                }
                let size = decode_int(block, &mut pos, 5)?;
                if size > self.settings_max {
                    return Err(HpackError::TableSizeTooLarge {
                        requested: size,
                        max: self.settings_max,
                    });
                }
                if size > self.cap {
                    st.table_clamped = true;
                }
                self.table.set_max_size(size as usize, self.cap as usize);
            } else {
                // Literal without indexing (0000) or never indexed (0001) (§6.2.2-3).
                seen_field = true;
                let never = first & 0x10 != 0;
                self.literal(block, &mut pos, 4, false, never, out, memo, st)?;
            }
        }
        Ok(())
    }

    /// Accounts for a field of `size` bytes and says whether it may be kept.
    fn admit(&self, size: usize, st: &mut BlockStatus) -> bool {
        st.list_size = st.list_size.saturating_add((size + ENTRY_OVERHEAD) as u64);
        if st.dropped_fields > 0 || st.list_size > self.max_list {
            st.dropped_fields += 1;
            false
        } else {
            true
        }
    }

    fn emit_indexed(
        &mut self,
        index: u32,
        out: &mut Writer<'_>,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let i = index as usize;
        if i == 0 {
            return Err(HpackError::ZeroIndex);
        }
        if let Some(&(name, value)) = STATIC.get(i - 1) {
            if self.admit(name.len() + value.len(), st) {
                out.push_field(name, value, false);
            }
            return Ok(());
        }
        match self.table.get(i - STATIC.len()) {
            None => Err(HpackError::IndexOutOfRange {
                index,
                table_len: self.table.len(),
            }),
            Some(Slot::Known { name, value }) => {
                let (n0, n1) = self.table.slices(name);
                let (v0, v1) = self.table.slices(value);
                let size = n0.len() + n1.len() + v0.len() + v1.len();
                if self.admit(size, st) {
                    let start = out.buf_mut().len();
                    out.push_parts([n0, n1], [v0, v1], false);
                    if self.lowercase {
                        lowercase_in(out.buf_mut(), start..start + n0.len() + n1.len());
                    }
                }
                Ok(())
            }
            Some(Slot::NameUnknown { .. } | Slot::Unknown) => {
                st.unknown_references += 1;
                Ok(())
            }
        }
    }

    /// Decodes a literal field representation whose first byte is at `*pos`,
    /// straight into `out`'s buffer (no intermediate copy); on error `out`
    /// is left as it was.
    #[allow(clippy::too_many_arguments)]
    fn literal(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        prefix: u8,
        index: bool,
        sensitive: bool,
        out: &mut Writer<'_>,
        memo: &mut huffman::Memo,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let start = out.buf_mut().len();
        let r = self.literal_into(block, pos, prefix, index, sensitive, out, memo, st);
        if r.is_err() {
            out.buf_mut().truncate(start);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn literal_into(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        prefix: u8,
        index: bool,
        sensitive: bool,
        out: &mut Writer<'_>,
        memo: &mut huffman::Memo,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let buf = out.buf_mut();
        let start = buf.len();
        let name_index = decode_int(block, pos, prefix)? as usize;
        // Whether the name is known (then it is in `buf[start..name_end]`).
        // Names not from the static table may need lower-casing.
        let mut from_static = false;
        let known = if name_index == 0 {
            read_string(block, pos, buf, memo, self.max_string)?;
            true
        } else if let Some(&(n, _)) = STATIC.get(name_index - 1) {
            buf.extend_from_slice(n);
            from_static = true;
            true
        } else {
            match self.table.get(name_index - STATIC.len()) {
                None => {
                    return Err(HpackError::IndexOutOfRange {
                        index: name_index as u32,
                        table_len: self.table.len(),
                    });
                }
                Some(Slot::Known { name, .. }) => {
                    self.table.copy_to(name, buf);
                    true
                }
                Some(Slot::NameUnknown { .. } | Slot::Unknown) => false,
            }
        };
        let name_end = buf.len();
        read_string(block, pos, buf, memo, self.max_string)?;
        let entry = &buf[start..];
        let (n, v) = entry.split_at(name_end - start);
        if index {
            self.table
                .insert_joined(entry, known.then_some(name_end - start));
        }
        if known {
            if self.admit(n.len() + v.len(), st) {
                if self.lowercase && !from_static {
                    // (After the table took the name as received.)
                    lowercase_in(buf, start..name_end);
                }
                out.push_written(start, name_end, sensitive);
                return Ok(());
            }
        } else {
            st.unknown_references += 1;
            st.list_size = st
                .list_size
                .saturating_add((v.len() + ENTRY_OVERHEAD) as u64);
        }
        buf.truncate(start);
        Ok(())
    }
}

/// Decodes an HPACK integer (§5.1) with an `prefix`-bit prefix at `*pos`.
fn decode_int(buf: &[u8], pos: &mut usize, prefix: u8) -> Result<u32, HpackError> {
    let mask = (1u32 << prefix) - 1;
    let Some(&first) = buf.get(*pos) else {
        return Err(HpackError::Truncated);
    };
    *pos += 1;
    let v = u32::from(first) & mask;
    if v < mask {
        return Ok(v);
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    loop {
        let Some(&b) = buf.get(*pos) else {
            return Err(HpackError::Truncated);
        };
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(value as u32);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Decodes a string literal (§5.2) at `*pos`, appending it to `out`.
fn read_string(
    buf: &[u8],
    pos: &mut usize,
    out: &mut Vec<u8>,
    memo: &mut huffman::Memo,
    max: u32,
) -> Result<(), HpackError> {
    let Some(&first) = buf.get(*pos) else {
        return Err(HpackError::Truncated);
    };
    let huffman = first & 0x80 != 0;
    let len = decode_int(buf, pos, 7)?;
    if len > max {
        return Err(HpackError::StringTooLong {
            len: u64::from(len),
            max,
        });
    }
    let end = pos.checked_add(len as usize).ok_or(HpackError::Truncated)?;
    let Some(raw) = buf.get(*pos..end) else {
        return Err(HpackError::Truncated);
    };
    *pos = end;
    if huffman {
        let before = out.len();
        memo.decode(raw, out).map_err(HpackError::Huffman)?;
        let decoded = out.len() - before;
        if decoded > max as usize {
            return Err(HpackError::StringTooLong {
                len: decoded as u64,
                max,
            });
        }
    } else {
        out.extend_from_slice(raw);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_names_when_asked_and_keeps_the_table_as_received() {
        // Literal with incremental indexing, new name "X-Up" = "V", then an
        // indexed reference to it (dynamic index 62), then a literal whose
        // name is that dynamic entry.
        let block = [
            &[0x40, 0x04][..],
            b"X-Up",
            &[0x01],
            b"V",
            &[0x80 | 62],
            &[0x0f, 0x2f, 0x01],
            b"W",
        ]
        .concat();
        let limits = Limits::default();
        for lower in [false, true] {
            let mut d = Decoder::new(&limits);
            d.set_lowercase(lower);
            let mut out = Headers::new();
            assert!(d.decode(&block, &mut out).is_ok());
            let name = if lower { "x-up" } else { "X-Up" };
            let want: Vec<(String, String)> = [(name, "V"), (name, "V"), (name, "W")]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(out.to_string_pairs(), want);
            assert_eq!(d.dynamic_table()[0].0.as_deref(), Some(&b"X-Up"[..]));
        }
    }

    #[test]
    fn integers() {
        // RFC 7541 C.1.1-C.1.3.
        let mut p = 0;
        assert_eq!(decode_int(&[0x0a], &mut p, 5), Ok(10));
        p = 0;
        assert_eq!(decode_int(&[0x1f, 0x9a, 0x0a], &mut p, 5), Ok(1337));
        assert_eq!(p, 3);
        p = 0;
        assert_eq!(decode_int(&[0x2a], &mut p, 8), Ok(42));
        p = 0;
        assert_eq!(
            decode_int(&[0x1f, 0x9a], &mut p, 5),
            Err(HpackError::Truncated)
        );
        p = 0;
        assert_eq!(
            decode_int(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x0f], &mut p, 5),
            Err(HpackError::IntegerOverflow)
        );
        p = 0;
        assert_eq!(
            decode_int(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut p, 5),
            Err(HpackError::IntegerOverflow)
        );
        p = 0;
        // 31 + (2^32 - 32) = u32::MAX fits.
        assert_eq!(
            decode_int(&[0x1f, 0xe0, 0xff, 0xff, 0xff, 0x0f], &mut p, 5),
            Ok(u32::MAX)
        );
    }
}
