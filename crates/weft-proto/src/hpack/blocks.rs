//! Header blocks decoded recently, by their bytes (one cache per decoding
//! thread, not per connection).
//!
//! Encoders send the same block again and again: a client repeating a
//! request refers to the same table entries (h2load, gRPC stubs, API
//! clients), and nginx encodes every response's `server`, `date`,
//! `content-type` and `content-length` as the same literals. What a block
//! decodes to depends only on its bytes, on the decoder's settings and, when
//! it refers to dynamic-table entries, on the table's state; what it does to
//! the table (insertions) depends only on its bytes. So a block seen before
//! costs a compare, a copy of the header list and the insertions replayed.
//!
//! The table's state is named by a *stamp*: a number no other table state
//! of any decoder ever had, taken afresh whenever a table changes (see
//! [`next_stamp`]). An entry for a block without dynamic references holds
//! stamp 0 and serves any decoder with the same settings.
//!
//! Only "clean" blocks are kept: no error, no unknown reference, no field
//! dropped by a limit, no table size update, no inserted name changed by
//! lower-casing (the table keeps names as received, the list lower-cased);
//! every inserted entry is then a field of the list, byte for byte.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Blocks longer than this are not kept.
pub(super) const MAX_BLOCK: usize = 256;
/// Header lists (bytes and records) larger than this are not kept.
pub(super) const MAX_LIST: usize = 2048;
/// Slots (direct-mapped, two candidate slots per block).
const SLOTS: usize = 64;
const _: () = assert!(SLOTS <= 256, "slots are named by a u8");

/// Stamps are handed to threads in runs of this many.
const RUN: u64 = 1 << 20;
static NEXT_RUN: AtomicU64 = AtomicU64::new(RUN);

thread_local! {
    /// `(next, end)` of this thread's run of stamps.
    static RUN_LEFT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A stamp never handed out before (never 0), for a table state.
pub(super) fn next_stamp() -> u64 {
    RUN_LEFT.with(|r| {
        let (mut next, mut end) = r.get();
        if next >= end {
            next = NEXT_RUN.fetch_add(RUN, Ordering::Relaxed);
            end = next + RUN;
        }
        r.set((next + 1, end));
        next
    })
}

/// What a decoder's output depends on besides the block and the table.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Settings {
    pub(super) lowercase: bool,
    pub(super) max_list: u64,
    pub(super) max_string: u32,
}

/// An inserted entry: `len` bytes at `start` of the list's bytes, the first
/// `name_len` of them the name.
#[derive(Clone, Copy)]
pub(super) struct Insert {
    pub(super) start: u32,
    pub(super) len: u32,
    pub(super) name_len: u32,
}

/// One decoded block.
#[derive(Default)]
pub(super) struct Entry {
    /// 0 when the block has no dynamic reference; else the table state
    /// it was decoded against.
    stamp: u64,
    settings: Settings,
    block: Vec<u8>,
    /// The header list: its bytes and where its records start.
    pub(super) list: Vec<u8>,
    pub(super) index: usize,
    pub(super) list_size: u64,
    pub(super) inserts: Vec<Insert>,
}

/// The cache (see the module docs).
#[derive(Default)]
pub(super) struct Blocks {
    slots: Vec<Entry>,
}

fn hash(block: &[u8]) -> u64 {
    let (words, rest) = block.as_chunks::<8>();
    let mut h = block.len() as u64;
    for w in words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(*w)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let mut last = 0u64;
    for &b in rest {
        last = last << 8 | u64::from(b);
    }
    (h.rotate_left(5) ^ last).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The slot for a block of hash `h`: stamp-free entries by the bytes alone,
/// the others by the bytes and the stamp.
fn slot(h: u64, stamp: u64) -> usize {
    let x = if stamp == 0 {
        h
    } else {
        (h ^ stamp).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    (x >> 58) as usize % SLOTS
}

impl Blocks {
    pub(super) const fn new() -> Self {
        Blocks { slots: Vec::new() }
    }

    /// The entry for `block` decoded by a decoder with `settings` whose table
    /// is in state `stamp`, if kept, and its slot. Slot `hint` is looked at
    /// first: an entry that serves the block serves it from whichever slot
    /// holds it (an entry of stamp 0 is kept only for blocks without
    /// dynamic references, whose decoding no table state changes), so when
    /// the hint holds it the block is not hashed.
    pub(super) fn get(
        &self,
        block: &[u8],
        settings: Settings,
        stamp: u64,
        hint: u8,
    ) -> Option<(u8, &Entry)> {
        let serves = |e: &Entry, s: u64| e.stamp == s && e.settings == settings && e.block == block;
        if let Some(e) = self.slots.get(usize::from(hint))
            && (e.stamp == 0 || e.stamp == stamp)
            && serves(e, e.stamp)
        {
            return Some((hint, e));
        }
        if self.slots.is_empty() {
            return None;
        }
        let h = hash(block);
        [0, stamp].into_iter().find_map(|s| {
            let i = slot(h, s);
            let e = self.slots.get(i)?;
            serves(e, s).then_some((i as u8, e))
        })
    }

    /// Keeps `block`'s decoding: `list`/`index` the header list, `stamp` the
    /// table state it was decoded against (0 if it has no dynamic
    /// reference).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put(
        &mut self,
        block: &[u8],
        settings: Settings,
        stamp: u64,
        list: &[u8],
        index: usize,
        list_size: u64,
        inserts: &[Insert],
    ) -> Option<u8> {
        if block.is_empty() || block.len() > MAX_BLOCK || list.len() > MAX_LIST {
            return None;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Entry::default);
        }
        let i = slot(hash(block), stamp);
        let e = self.slots.get_mut(i)?;
        e.stamp = stamp;
        e.settings = settings;
        e.block.clear();
        e.block.extend_from_slice(block);
        e.list.clear();
        e.list.extend_from_slice(list);
        e.index = index;
        e.list_size = list_size;
        e.inserts.clear();
        e.inserts.extend_from_slice(inserts);
        Some(i as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_unique_and_never_zero() {
        let mut seen: Vec<u64> = (0..1000).map(|_| next_stamp()).collect();
        let other: Vec<u64> = std::thread::spawn(|| (0..1000).map(|_| next_stamp()).collect())
            .join()
            .unwrap_or_default();
        assert_eq!(other.len(), 1000);
        seen.extend(other);
        assert!(!seen.contains(&0));
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n);
    }
}
