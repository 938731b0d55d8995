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

mod blocks;
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
    aux: Aux,
    /// Recently decoded blocks.
    blocks: Blocks,
}

/// What decoding a block uses besides its output, and what it notes for
/// the block cache.
struct Aux {
    /// Recently decoded Huffman strings.
    memo: huffman::Memo,
    /// Entries the block inserted into the table, as fields of the list.
    inserts: Vec<Insert>,
    /// The block referred to the dynamic table.
    dynamic: bool,
    /// The block changed the table (insertion, size update).
    mutated: bool,
    /// The block may not be kept (size update; an inserted name that
    /// lower-casing changed).
    unkeepable: bool,
}

impl Aux {
    const fn new() -> Self {
        Aux {
            memo: huffman::Memo::new(),
            inserts: Vec::new(),
            dynamic: false,
            mutated: false,
            unkeepable: false,
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            spans: Vec::new(),
            aux: Aux::new(),
            blocks: Blocks::new(),
        })
    };
}
use blocks::{Blocks, Insert};
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
    max_list: u32,
    max_string: u32,
    /// Lower-case the names it outputs (ASCII), as HTTP/2 header lists are
    /// kept; names from the static table already are. The dynamic table
    /// keeps names as received.
    lowercase: bool,
    /// Names the table's present state for the block cache: taken afresh
    /// (`blocks::next_stamp`) whenever the table changes.
    stamp: u64,
    /// The block-cache slot this decoder's last block was found in or kept
    /// in: looked at first (a connection repeats its blocks), before the
    /// block is hashed.
    block_hint: u8,
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
            max_list: limits.max_header_list_size,
            max_string: limits.max_header_string_len,
            lowercase: false,
            stamp: blocks::next_stamp(),
            block_hint: 0,
        }
    }

    /// A decoder joining a connection mid-way: the encoder's table holds
    /// entries we never saw. Size updates are bounded only by the `Limits` cap
    /// until [`Decoder::set_max_table_size_setting`] is called.
    pub fn new_mid_connection(limits: &Limits) -> Self {
        let mut d = Decoder::new(limits);
        d.settings_max = limits.hpack_max_table_size;
        d.table.reset_joined(d.join_size as usize);
        d.stamp = blocks::next_stamp();
        d
    }

    /// Forgets the table, as after a gap in the captured bytes: the decoder
    /// behaves as if it had just joined the connection.
    pub fn resync(&mut self) {
        self.table.reset_joined(self.join_size as usize);
        self.stamp = blocks::next_stamp();
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
            Ok(mut scratch) => self.decode_cached(block, out, &mut scratch, &mut status),
            Err(_) => self.decode_inner(
                block,
                &mut out.writer(&mut Vec::new()),
                &mut Aux::new(),
                &mut status,
            ),
        });
        self.settle(result, status)
    }

    /// A block's outcome: its status, or its error after a resync.
    fn settle(
        &mut self,
        result: Result<(), HpackError>,
        status: BlockStatus,
    ) -> Result<BlockStatus, HpackError> {
        match result {
            Ok(()) => Ok(status),
            Err(e) => {
                self.resync();
                Err(e)
            }
        }
    }

    /// [`Decoder::decode`] without the block cache: the oracle of its tests.
    #[cfg(test)]
    fn decode_uncached(
        &mut self,
        block: &[u8],
        out: &mut Headers,
    ) -> Result<BlockStatus, HpackError> {
        let mut status = BlockStatus::default();
        let result = self.decode_inner(
            block,
            &mut out.writer(&mut Vec::new()),
            &mut Aux::new(),
            &mut status,
        );
        self.settle(result, status)
    }

    /// What the output depends on besides the block and the table.
    fn settings(&self) -> blocks::Settings {
        blocks::Settings {
            lowercase: self.lowercase,
            max_list: u64::from(self.max_list),
            max_string: self.max_string,
        }
    }

    /// [`Decoder::decode`] through the block cache (see the `blocks` module).
    fn decode_cached(
        &mut self,
        block: &[u8],
        out: &mut Headers,
        scratch: &mut Scratch,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let Scratch { spans, aux, blocks } = scratch;
        let settings = self.settings();
        // Kept lists are whole lists: only for an empty `out`.
        let fresh = out.is_empty() && out.bytes_len() == 0 && !block.is_empty();
        if fresh && let Some((slot, e)) = blocks.get(block, settings, self.stamp, self.block_hint) {
            self.block_hint = slot;
            out.set_raw(&e.list, e.index);
            st.list_size = e.list_size;
            if !e.inserts.is_empty() {
                self.table.insert_all(&e.list, &e.inserts);
                self.stamp = blocks::next_stamp();
            }
            return Ok(());
        }
        aux.inserts.clear();
        aux.dynamic = false;
        aux.mutated = false;
        aux.unkeepable = false;
        let before = self.stamp;
        let result = self.decode_inner(block, &mut out.writer(spans), aux, st);
        if aux.mutated {
            self.stamp = blocks::next_stamp();
        }
        if result.is_ok()
            && fresh
            && !aux.unkeepable
            && st.unknown_references == 0
            && st.dropped_fields == 0
            && !st.table_clamped
        {
            let (list, index) = out.raw_parts();
            let stamp = if aux.dynamic { before } else { 0 };
            if let Some(slot) = blocks.put(
                block,
                settings,
                stamp,
                list,
                index,
                st.list_size,
                &aux.inserts,
            ) {
                self.block_hint = slot;
            }
        }
        result
    }

    fn decode_inner(
        &mut self,
        block: &[u8],
        out: &mut Writer<'_>,
        aux: &mut Aux,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let mut pos = 0usize;
        let mut seen_field = false;
        while let Some(&first) = block.get(pos) {
            if first & 0x80 != 0 {
                // Indexed header field (§6.1).
                let index = decode_int(block, &mut pos, 7)?;
                seen_field = true;
                self.emit_indexed(index, out, aux, st)?;
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing (§6.2.1).
                seen_field = true;
                self.literal(block, &mut pos, 6, true, false, out, aux, st)?;
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
                aux.mutated = true;
                aux.unkeepable = true;
                self.table.set_max_size(size as usize, self.cap as usize);
            } else {
                // Literal without indexing (0000) or never indexed (0001) (§6.2.2-3).
                seen_field = true;
                let never = first & 0x10 != 0;
                self.literal(block, &mut pos, 4, false, never, out, aux, st)?;
            }
        }
        Ok(())
    }

    /// Accounts for a field of `size` bytes and says whether it may be kept.
    fn admit(&self, size: usize, st: &mut BlockStatus) -> bool {
        st.list_size = st.list_size.saturating_add((size + ENTRY_OVERHEAD) as u64);
        if st.dropped_fields > 0 || st.list_size > u64::from(self.max_list) {
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
        aux: &mut Aux,
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
        aux.dynamic = true;
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
        aux: &mut Aux,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let start = out.buf_mut().len();
        let r = self.literal_into(block, pos, prefix, index, sensitive, out, aux, st);
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
        aux: &mut Aux,
        st: &mut BlockStatus,
    ) -> Result<(), HpackError> {
        let buf = out.buf_mut();
        let start = buf.len();
        let name_index = decode_int(block, pos, prefix)? as usize;
        // Whether the name is known (then it is in `buf[start..name_end]`).
        // Names not from the static table may need lower-casing.
        let mut from_static = false;
        let known = if name_index == 0 {
            read_string(block, pos, buf, &mut aux.memo, self.max_string)?;
            true
        } else if let Some(&(n, _)) = STATIC.get(name_index - 1) {
            buf.extend_from_slice(n);
            from_static = true;
            true
        } else {
            aux.dynamic = true;
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
        read_string(block, pos, buf, &mut aux.memo, self.max_string)?;
        let entry = &buf[start..];
        let (n, v) = entry.split_at(name_end - start);
        if index {
            self.table
                .insert_joined(entry, known.then_some(name_end - start));
            aux.mutated = true;
            if self.lowercase && !from_static && n.iter().any(u8::is_ascii_uppercase) {
                // The table keeps this name as received, the list lower-cased.
                aux.unkeepable = true;
            }
            aux.inserts.push(Insert {
                start: start as u32,
                len: entry.len() as u32,
                name_len: (name_end - start) as u32,
            });
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

    /// Blocks of every kind the cache must tell apart: static and dynamic
    /// references (valid or not, depending on the table), literals that
    /// insert (static, new, upper-case and dynamic names, Huffman values),
    /// size updates, never-indexed fields, errors, and blocks big enough to
    /// evict.
    fn pool() -> Vec<Vec<u8>> {
        let mut huff = Vec::new();
        huffman_encode(b"Sat, 28 Nov 2026 06:32:19 GMT", &mut huff);
        let mut date = vec![0x40 | 33, 0x80 | huff.len() as u8];
        date.extend_from_slice(&huff);
        let mut big = vec![0x40, 0x03, b'b', b'i', b'g', 0x7f, 0x81, 0x01]; // value of 127 + 129 bytes
        big.extend(std::iter::repeat_n(b'z', 256));
        vec![
            vec![0x82, 0x84, 0x87],
            [&[0x76, 0x05][..], b"nginx"].concat(),
            [&[0x40, 0x04][..], b"X-Up", &[0x01], b"V"].concat(),
            [&[0x40, 0x04][..], b"x-up", &[0x01], b"v"].concat(),
            vec![0xbe],
            vec![0xbe, 0xbf, 0x82],
            [&[0x7e, 0x01][..], b"W"].concat(),
            [&[0x0f, 0x2f, 0x01][..], b"Q"].concat(), // name: dynamic 62, no indexing
            vec![0x20, 0x82],
            vec![0x3f, 0xe1, 0x1f, 0x88],
            vec![0x82, 0x20],
            [&[0x10, 0x04][..], b"auth", &[0x02], b"xy"].concat(),
            vec![0xff, 0x7f],
            vec![0x80],
            date.clone(),
            [date.clone(), vec![0x76, 0x01, b's', 0xbe]].concat(),
            big,
            [&[0x0f, 0x12, 0x02][..], b"hi"].concat(),
        ]
    }

    #[test]
    fn block_cache_gives_what_decoding_gives() {
        // Decoders share the thread's block cache; each has a twin that
        // decodes without it. After every block both must agree on the
        // result, the header list and the table.
        let limits = Limits::default();
        let pool = pool();
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut pairs: Vec<(Decoder, Decoder)> = (0..4)
            .map(|i| {
                let mut d = if i == 3 {
                    Decoder::new_mid_connection(&limits)
                } else {
                    Decoder::new(&limits)
                };
                d.set_lowercase(i != 2);
                (d.clone(), d)
            })
            .collect();
        let mut hits = 0;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let block = &pool[(x % pool.len() as u64) as usize];
            let (a, b) = &mut pairs[((x >> 32) % 4) as usize];
            let mut ha = Headers::new();
            let mut hb = Headers::new();
            let ra = a.decode(block, &mut ha);
            let rb = b.decode_uncached(block, &mut hb);
            assert_eq!(ra, rb, "step {step}, block {block:02x?}");
            assert_eq!(ha.to_string_pairs(), hb.to_string_pairs(), "step {step}");
            assert_eq!(ha.raw_parts(), hb.raw_parts(), "step {step}");
            assert_eq!(a.dynamic_table(), b.dynamic_table(), "step {step}");
            assert_eq!(
                (a.table_size(), a.max_table_size(), a.is_synced()),
                (b.table_size(), b.max_table_size(), b.is_synced()),
                "step {step}"
            );
            let before = a.stamp;
            let mut again = Headers::new();
            if a.clone().decode(block, &mut again).is_ok() && a.stamp == before {
                hits += 1;
            }
        }
        assert!(hits > 0);
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
