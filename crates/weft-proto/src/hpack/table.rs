//! The HPACK static table and the dynamic table (RFC 7541 §2.3, §4).
//!
//! # Dynamic table storage
//!
//! Entry bytes live in one ring of bytes ([`ByteRing`]: name then value,
//! oldest at the front) and entry metadata in a `VecDeque<Entry>`; inserting
//! an entry is one or two copies into the ring, evicting one is an index
//! moved, and neither allocates once the buffers have grown to the table's
//! working size. Entries are addressed by absolute byte offsets (`Entry::start`),
//! translated through `base`, the absolute offset of the first stored byte;
//! both count modulo 2^32 (the stored bytes never reach 4 GiB: the table's
//! maximum is a `u32`), so an entry's metadata takes 12 bytes.
//!
//! Both buffers grow by a quarter instead of doubling: an HTTP/2 connection
//! holds two tables per direction for its whole life (nginx inserts four
//! response headers per response, filling its peer's 4 KiB table in ~20
//! responses), and with thousands of connections the slack of doubled
//! buffers was most of the tables' memory (benches/memory.sh).
//!
//! # Joining mid-connection
//!
//! HPACK indices count from the newest entry, so an entry's index depends only
//! on how many entries were inserted after it, never on evictions. A decoder
//! that starts late therefore knows the exact index of every entry inserted
//! after it started; what it does not know is:
//!
//! * the entries that existed before it started (the *unknown tail*: an
//!   unknown number of entries of unknown sizes, all older than every entry
//!   we know), and
//! * the name of an entry inserted with a name reference into that tail.
//!
//! We keep each entry's size as a lower bound (an unknown name counts as zero
//! bytes) and evict oldest-first when the lower-bound total exceeds our
//! working maximum. While the encoder's maximum is not known exactly (after a
//! late join, until the encoder sends a size update; or when its size exceeds
//! our `Limits` cap and we clamp), anything we evict or never saw counts as
//! the unknown tail, and references into it resolve to [`Slot::Unknown`]
//! ("incomplete") instead of an error. Resolving an index is therefore always
//! right or "unknown", never wrong: a valid encoder only references entries it
//! still holds, and those we hold sit at the same index. Evicting early only
//! costs completeness; keeping entries longer than the encoder costs only
//! memory (bounded by the working maximum) and error detection.
//!
//! The tail is known to be empty when the encoder's maximum is exact and the
//! known entries plus one minimal (32-byte) entry no longer fit, after a size
//! update to 0, or after an insertion larger than an exact maximum. Invariant:
//! `!max_exact` implies `unknown_tail`.

use std::collections::VecDeque;

use super::blocks::Insert;

/// RFC 7541 Appendix A. Index 1 is `STATIC[0]`.
pub(crate) static STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// Per-entry overhead counted by RFC 7541 §4.1.
pub(crate) const ENTRY_OVERHEAD: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Absolute offset of the entry's first byte (name, then value), modulo
    /// 2^32.
    start: u32,
    /// Length of the name; [`NAME_UNKNOWN`] when the name came from an entry
    /// we never saw (joined late): no name bytes are stored then.
    name_len: u32,
    value_len: u32,
}

/// `Entry::name_len` of an entry whose name is unknown. A known name is
/// shorter: an entry never exceeds the table's maximum, a `u32`.
const NAME_UNKNOWN: u32 = u32::MAX;

impl Entry {
    fn name_known(&self) -> bool {
        self.name_len != NAME_UNKNOWN
    }

    /// Name bytes stored for this entry.
    fn stored_name_len(&self) -> usize {
        if self.name_known() {
            self.name_len as usize
        } else {
            0
        }
    }

    /// Bytes stored for this entry.
    fn stored_len(&self) -> usize {
        self.stored_name_len() + self.value_len as usize
    }

    /// Size per RFC 7541 §4.1 when the name is known, else a lower bound.
    fn size(&self) -> usize {
        self.stored_len() + ENTRY_OVERHEAD
    }
}

/// What a dynamic-table lookup found.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// A known entry: byte ranges into the table (each may wrap, hence two parts).
    Known { name: Parts, value: Parts },
    /// An entry whose value is known but whose name is not.
    NameUnknown { value: Parts },
    /// An entry in the unknown tail (decoder joined mid-connection).
    Unknown,
}

/// Up to two byte ranges `(offset, len)` into the table's byte deque, because
/// an entry may wrap around the ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts {
    off: usize,
    len: usize,
}

/// The dynamic table.
#[derive(Debug, Clone)]
pub(crate) struct DynamicTable {
    entries: VecDeque<Entry>,
    bytes: ByteRing,
    /// Absolute offset of `bytes[0]`, modulo 2^32.
    base: u32,
    /// Sum of entry sizes (lower bound when some names are unknown).
    size: usize,
    /// Our working maximum: the encoder's maximum when `max_exact`, else our
    /// memory bound (late join, or the encoder's size exceeds our cap).
    max_size: usize,
    /// Whether `max_size` is the encoder's own maximum (connection start, or a
    /// size update within our cap).
    max_exact: bool,
    /// Entries older than all of `entries` may exist that we never saw.
    unknown_tail: bool,
}

impl DynamicTable {
    /// A table at connection start: empty, maximum `max_size`, fully known.
    pub(crate) fn new(max_size: usize) -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            bytes: ByteRing::default(),
            base: 0,
            size: 0,
            max_size,
            max_exact: true,
            unknown_tail: false,
        }
    }

    /// A table joined mid-connection: nothing known; `working_max` bounds how
    /// much we keep until the encoder tells us its maximum.
    #[cfg(test)]
    pub(crate) fn new_joined(working_max: usize) -> Self {
        DynamicTable {
            max_exact: false,
            unknown_tail: true,
            ..DynamicTable::new(working_max)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn max_size(&self) -> usize {
        self.max_size
    }

    /// True when every entry the encoder holds is known to us, with its size.
    pub(crate) fn is_exact(&self) -> bool {
        !self.unknown_tail && self.max_exact && self.entries.iter().all(Entry::name_known)
    }

    #[cfg(test)]
    pub(crate) fn has_unknown_tail(&self) -> bool {
        self.unknown_tail
    }

    /// Looks up dynamic index `idx` (1 = newest). `None` = out of range.
    pub(crate) fn get(&self, idx: usize) -> Option<Slot> {
        if idx == 0 {
            return None;
        }
        if idx > self.entries.len() {
            return if self.unknown_tail {
                Some(Slot::Unknown)
            } else {
                None
            };
        }
        let e = self.entries[self.entries.len() - idx];
        let off = e.start.wrapping_sub(self.base) as usize;
        let name = Parts {
            off,
            len: e.stored_name_len(),
        };
        let value = Parts {
            off: off + e.stored_name_len(),
            len: e.value_len as usize,
        };
        Some(if e.name_known() {
            Slot::Known { name, value }
        } else {
            Slot::NameUnknown { value }
        })
    }

    /// The bytes of `p`, as one or two slices.
    pub(crate) fn slices(&self, p: Parts) -> (&[u8], &[u8]) {
        let (a, b) = self.bytes.as_slices();
        let end = p.off + p.len;
        if end <= a.len() {
            (&a[p.off..end], &[])
        } else if p.off >= a.len() {
            (&b[p.off - a.len()..end - a.len()], &[])
        } else {
            (&a[p.off..], &b[..end - a.len()])
        }
    }

    /// Copies the bytes of `p` to the end of `out`.
    pub(crate) fn copy_to(&self, p: Parts, out: &mut Vec<u8>) {
        let (x, y) = self.slices(p);
        out.extend_from_slice(x);
        out.extend_from_slice(y);
    }

    /// Inserts an entry (RFC 7541 §4.4). `name` is `None` when unknown.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, name: Option<&[u8]>, value: &[u8]) {
        match name {
            Some(n) => self.insert_joined(&[n, value].concat(), Some(n.len())),
            None => self.insert_joined(value, None),
        }
    }

    /// Inserts an entry (RFC 7541 §4.4) whose name (`name_len` bytes; `None`
    /// when unknown) and value are `bytes`, one after the other as the
    /// decoder wrote them: one copy into the table.
    pub(crate) fn insert_joined(&mut self, bytes: &[u8], name_len: Option<usize>) {
        let name_known = name_len.is_some();
        let name_len = name_len.unwrap_or(0).min(bytes.len());
        let new_size = bytes.len() + ENTRY_OVERHEAD;
        // Lengths are stored as u32 below NAME_UNKNOWN; `max_size` comes
        // from a u32, so only a table built with a larger one could fail this.
        let lens = u32::try_from(name_len)
            .ok()
            .filter(|&n| n != NAME_UNKNOWN)
            .zip(u32::try_from(bytes.len() - name_len).ok());
        let Some((stored_name_len, value_len)) = lens.filter(|_| new_size <= self.max_size) else {
            // With an exact maximum the encoder empties its table and inserts
            // nothing (our size is a lower bound, so this holds even with
            // unknown names). Otherwise it may have kept it: all unknown.
            self.clear();
            self.unknown_tail = !self.max_exact;
            return;
        };
        self.evict_to(self.max_size - new_size);
        // Modulo 2^32 by design (see the module comment).
        #[allow(clippy::cast_possible_truncation)]
        let start = self.base.wrapping_add(self.bytes.len() as u32);
        self.bytes.push(bytes);
        grow_gently(&mut self.entries, 1);
        self.entries.push_back(Entry {
            start,
            name_len: if name_known {
                stored_name_len
            } else {
                NAME_UNKNOWN
            },
            value_len,
        });
        self.size += new_size;
        self.prune_tail();
    }

    /// Inserts the entries `inserts` describes (each `len` bytes of `list`
    /// at `start`, the first `name_len` of them its name), in order: the
    /// table ends as [`insert_joined`](Self::insert_joined) for each would
    /// leave it. When their bytes follow one another in `list`, every entry
    /// fits the table and no unknown tail is pending, that is one eviction
    /// pass and one copy for all of them (the table then holds the longest
    /// run of newest entries that fits, old ones evicted oldest first:
    /// what inserting them one by one leaves); otherwise one by one.
    pub(crate) fn insert_all(&mut self, list: &[u8], inserts: &[Insert]) {
        let first = inserts.first().map_or(0, |i| i.start as usize);
        let mut next = first;
        let mut total = 0usize;
        let mut batch = !self.unknown_tail;
        for i in inserts {
            let len = i.len as usize;
            batch &= i.start as usize == next && i.name_len <= i.len;
            next = next.saturating_add(len);
            total = total.saturating_add(len + ENTRY_OVERHEAD);
        }
        let joined = list
            .get(first..next)
            .filter(|_| batch && total <= self.max_size);
        let Some(joined) = joined else {
            for i in inserts {
                let bytes = list.get(i.start as usize..(i.start as usize + i.len as usize));
                self.insert_joined(bytes.unwrap_or_default(), Some(i.name_len as usize));
            }
            return;
        };
        self.evict_to(self.max_size - total);
        // Modulo 2^32 by design (see the module comment).
        #[allow(clippy::cast_possible_truncation)]
        let mut start = self.base.wrapping_add(self.bytes.len() as u32);
        self.bytes.push(joined);
        grow_gently(&mut self.entries, inserts.len());
        for i in inserts {
            // Each entry is smaller than the table's maximum, so its name
            // length is below NAME_UNKNOWN.
            self.entries.push_back(Entry {
                start,
                name_len: i.name_len,
                value_len: i.len - i.name_len,
            });
            start = start.wrapping_add(i.len);
        }
        self.size += total;
        self.prune_tail();
    }

    /// Applies a dynamic table size update from the encoder (RFC 7541 §6.3).
    /// `clamp` is our memory cap: a larger size is honoured only up to it, and
    /// what we then forget becomes the unknown tail.
    pub(crate) fn set_max_size(&mut self, new_max: usize, clamp: usize) {
        if new_max > clamp {
            self.max_size = clamp;
            self.max_exact = false;
            self.unknown_tail = true;
        } else {
            self.max_size = new_max;
            self.max_exact = true;
        }
        self.evict_to(self.max_size);
        if new_max == 0 {
            self.unknown_tail = false;
        }
        self.prune_tail();
    }

    /// Whether the working maximum is the encoder's own.
    pub(crate) fn max_is_exact(&self) -> bool {
        self.max_exact
    }

    /// Forgets everything: the state of a decoder that joins now.
    pub(crate) fn reset_joined(&mut self, working_max: usize) {
        self.clear();
        self.max_size = working_max;
        self.max_exact = false;
        self.unknown_tail = true;
    }

    fn clear(&mut self) {
        #[allow(clippy::cast_possible_truncation)]
        let n = self.bytes.len() as u32;
        self.base = self.base.wrapping_add(n);
        self.bytes.clear();
        self.entries.clear();
        self.size = 0;
    }

    /// Capacity of the byte deque and of the entry deque, for tests.
    #[cfg(test)]
    fn capacities(&self) -> (usize, usize) {
        (self.bytes.capacity(), self.entries.capacity())
    }

    /// Evicts oldest entries until `size <= target`.
    fn evict_to(&mut self, target: usize) {
        if self.size <= target {
            if self.entries.is_empty() {
                self.size = 0;
            }
            return;
        }
        // The evicted entries' bytes leave the ring in one step.
        let mut bytes = 0usize;
        let mut size = self.size;
        while size > target {
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            bytes += e.stored_len();
            size -= e.size();
        }
        self.size = size;
        let n = bytes.min(self.bytes.len());
        self.bytes.pop_front(n);
        #[allow(clippy::cast_possible_truncation)]
        let n = n as u32;
        self.base = self.base.wrapping_add(n);
        if self.entries.is_empty() {
            self.size = 0;
        }
    }

    /// The unknown tail cannot exist once not even a minimal entry would fit
    /// next to the entries we know (only sound when `max_size` is exact).
    fn prune_tail(&mut self) {
        if self.unknown_tail && self.max_exact && self.size + ENTRY_OVERHEAD > self.max_size {
            self.unknown_tail = false;
        }
    }

    /// Entries newest first, for diagnostics and tests: `(name, value)`,
    /// `name` is `None` when unknown.
    pub(crate) fn snapshot(&self) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
        (1..=self.entries.len())
            .filter_map(|i| match self.get(i)? {
                Slot::Known { name, value } => {
                    let (mut n, mut v) = (Vec::new(), Vec::new());
                    self.copy_to(name, &mut n);
                    self.copy_to(value, &mut v);
                    Some((Some(n), v))
                }
                Slot::NameUnknown { value } => {
                    let mut v = Vec::new();
                    self.copy_to(value, &mut v);
                    Some((None, v))
                }
                Slot::Unknown => None,
            })
            .collect()
    }
}

/// The capacity to grow to for `need` items from `capacity`: by a quarter
/// (at least four items) instead of doubling, tables live as long as their
/// connections, and the slack of a doubled buffer is kept all that time.
fn gentle_target(capacity: usize, need: usize) -> usize {
    need.max(capacity + capacity / 4 + 4)
}

/// Makes room for `additional` more items (see [`gentle_target`]).
fn grow_gently<T>(d: &mut VecDeque<T>, additional: usize) {
    let need = d.len().saturating_add(additional);
    if need > d.capacity() {
        d.reserve_exact(gentle_target(d.capacity(), need) - d.len());
    }
}

/// A FIFO of bytes in one buffer used as a ring: appending copies the bytes
/// in (in at most two pieces), taking bytes off the front moves an index.
/// (A `VecDeque<u8>` does the same work byte by byte through its iterator
/// and drain machinery, several times the instructions for the few dozen
/// bytes of a header field.)
#[derive(Debug, Clone, Default)]
struct ByteRing {
    /// The ring; its length is the capacity.
    buf: Vec<u8>,
    /// Index in `buf` of the first stored byte (`< buf.len()` unless
    /// `buf` is empty).
    head: usize,
    /// Bytes stored.
    len: usize,
}

impl ByteRing {
    fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The stored bytes, oldest first, as one or two slices.
    fn as_slices(&self) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        let first = self.len.min(cap - self.head);
        let a = self
            .buf
            .get(self.head..self.head + first)
            .unwrap_or_default();
        let b = self.buf.get(..self.len - first).unwrap_or_default();
        (a, b)
    }

    /// Appends `bytes` at the back, growing the buffer gently when full.
    fn push(&mut self, bytes: &[u8]) {
        let need = self.len.saturating_add(bytes.len());
        if need > self.buf.len() {
            self.grow(need);
        }
        let cap = self.buf.len();
        if cap == 0 {
            return; // nothing to store
        }
        // Where the back is: `head + len`, wrapped once (both below `cap`).
        let mut tail = self.head + self.len;
        if tail >= cap {
            tail -= cap;
        }
        let first = bytes.len().min(cap - tail);
        let (x, y) = bytes.split_at(first);
        if let Some(d) = self.buf.get_mut(tail..tail + first) {
            d.copy_from_slice(x);
        }
        if !y.is_empty()
            && let Some(d) = self.buf.get_mut(..y.len())
        {
            d.copy_from_slice(y);
        }
        self.len += bytes.len();
    }

    /// Moves the stored bytes, in order, to the start of a buffer of at
    /// least `need` bytes.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, need: usize) {
        let target = gentle_target(self.buf.len(), need);
        let mut buf = Vec::new();
        buf.reserve_exact(target);
        let (a, b) = self.as_slices();
        buf.extend_from_slice(a);
        buf.extend_from_slice(b);
        buf.resize(target, 0);
        self.buf = buf;
        self.head = 0;
    }

    /// Takes `n` bytes (at most all of them) off the front.
    fn pop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head += n;
        if self.head >= self.buf.len() {
            self.head -= self.buf.len();
        }
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Forgets every byte, keeping the buffer.
    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_has_61_entries_in_rfc_order() {
        assert_eq!(STATIC.len(), 61);
        assert_eq!(STATIC[0].0, b":authority");
        assert_eq!(STATIC[15], (&b"accept-encoding"[..], &b"gzip, deflate"[..]));
        assert_eq!(STATIC[60].0, b"www-authenticate");
    }

    #[test]
    fn eviction_and_wrapping() {
        let mut t = DynamicTable::new(100);
        t.insert(Some(b"aaaa"), b"1111"); // 40
        t.insert(Some(b"bbbb"), b"2222"); // 80
        assert_eq!((t.len(), t.size()), (2, 80));
        t.insert(Some(b"cccc"), b"3333"); // evicts aaaa
        assert_eq!((t.len(), t.size()), (2, 80));
        let snap = t.snapshot();
        assert_eq!(snap[0], (Some(b"cccc".to_vec()), b"3333".to_vec()));
        assert_eq!(snap[1], (Some(b"bbbb".to_vec()), b"2222".to_vec()));
        for i in 0..100u32 {
            let v = i.to_string();
            t.insert(Some(b"k"), v.as_bytes());
            let snap = t.snapshot();
            assert_eq!(snap[0].1, v.as_bytes());
        }
        // Too large: empties the table.
        t.insert(Some(&[b'x'; 60]), &[b'y'; 60]);
        assert_eq!((t.len(), t.size()), (0, 0));
    }

    /// The ring holds what a `VecDeque<u8>` would through pushes that
    /// wrap, grow from a wrapped state, and pops of every size.
    #[test]
    fn byte_ring_matches_a_deque() {
        let mut ring = ByteRing::default();
        let mut model: VecDeque<u8> = VecDeque::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..5000u32 {
            let r = next();
            if r % 3 == 0 {
                let n = (next() % 40) as usize;
                ring.pop_front(n);
                let n = n.min(model.len());
                model.drain(..n);
            } else {
                let n = (next() % 30) as usize;
                let bytes: Vec<u8> = (0..n).map(|k| (i as usize + k) as u8).collect();
                ring.push(&bytes);
                model.extend(&bytes);
            }
            if i % 1000 == 999 {
                ring.clear();
                model.clear();
            }
            assert_eq!(ring.len(), model.len());
            let (a, b) = ring.as_slices();
            assert_eq!([a, b].concat(), model.iter().copied().collect::<Vec<u8>>());
            assert!(ring.capacity() >= ring.len());
        }
        // Empty pushes and pops on an empty ring.
        let mut r = ByteRing::default();
        r.push(b"");
        r.pop_front(3);
        assert_eq!(r.as_slices(), (&[][..], &[][..]));
    }

    /// The state of a table, as far as decoding can tell.
    fn state(t: &DynamicTable) -> impl PartialEq + std::fmt::Debug {
        (
            t.snapshot(),
            t.size(),
            t.len(),
            t.max_size(),
            t.has_unknown_tail(),
            t.is_exact(),
        )
    }

    /// Inserting a block's entries at once leaves the table as inserting
    /// them one by one does: contiguous or not, entries larger than the
    /// table, names longer than entries, ranges outside the list, tables
    /// joined late (unknown tails, unknown names) and exact ones.
    #[test]
    fn insert_all_matches_one_by_one() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let list: Vec<u8> = (0..400u32).map(|i| (i * 7) as u8).collect();
        for round in 0..3000 {
            let max = [0usize, 40, 100, 200, 4096][next(5) as usize];
            let mut a = if round % 3 == 0 {
                DynamicTable::new_joined(max)
            } else {
                DynamicTable::new(max)
            };
            if round % 5 == 0 {
                a.set_max_size(max / 2, max);
            }
            for _ in 0..next(6) {
                let n = next(40) as usize;
                if next(4) == 0 {
                    a.insert(None, &list[..n]);
                } else {
                    a.insert(Some(&list[..n / 2]), &list[n / 2..n]);
                }
            }
            let mut b = a.clone();
            let mut inserts = Vec::new();
            let mut start = next(20) as u32;
            for _ in 0..1 + next(5) {
                let len = if next(10) == 0 { 300 } else { next(60) as u32 };
                let name_len = if next(10) == 0 { len + 1 } else { len / 3 };
                if next(8) == 0 {
                    start += next(5) as u32; // a gap
                }
                inserts.push(Insert {
                    start,
                    len,
                    name_len,
                });
                start += len;
            }
            a.insert_all(&list, &inserts);
            for i in &inserts {
                let bytes = list.get(i.start as usize..(i.start + i.len) as usize);
                b.insert_joined(bytes.unwrap_or_default(), Some(i.name_len as usize));
            }
            assert_eq!(state(&a), state(&b), "round {round}");
            // And the tables go on the same way.
            a.insert(Some(b"n"), b"v");
            b.insert(Some(b"n"), b"v");
            assert_eq!(state(&a), state(&b), "round {round}, after");
        }
    }

    #[test]
    fn entry_metadata_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 12);
    }

    /// nginx inserts its response headers (with a new `date` each second)
    /// into a 4 KiB table: a full table's buffers stay within a quarter of
    /// what it holds, where doubling left up to twice.
    #[test]
    fn a_full_table_keeps_little_slack() {
        let mut t = DynamicTable::new(4096);
        for i in 0..1000u32 {
            t.insert(Some(b"server"), b"nginx");
            t.insert(
                Some(b"date"),
                format!("Sat, 28 Nov 2026 09:{:02}:{:02} GMT", i / 60 % 60, i % 60).as_bytes(),
            );
            t.insert(Some(b"content-type"), b"text/plain");
            t.insert(Some(b"content-length"), b"3");
        }
        let stored: usize = t.entries.iter().map(Entry::stored_len).sum();
        assert_eq!(stored, t.bytes.len());
        let (bytes_cap, entries_cap) = t.capacities();
        assert!(
            bytes_cap <= stored + stored / 4 + 8,
            "{bytes_cap} for {stored} bytes"
        );
        assert!(
            entries_cap <= t.len() + t.len() / 4 + 4,
            "{entries_cap} for {} entries",
            t.len()
        );
        assert_eq!(
            t.snapshot()[0],
            (Some(b"content-length".to_vec()), b"3".to_vec())
        );
    }

    /// Offsets count modulo 2^32: a table whose stored bytes have passed
    /// 4 GiB in total still resolves every entry.
    #[test]
    fn offsets_wrap_around_four_gib() {
        let mut t = DynamicTable::new(200);
        t.base = u32::MAX - 50;
        for i in 0..20u32 {
            let v = format!("value-{i}-{}", "x".repeat(i as usize));
            t.insert(Some(b"name"), v.as_bytes());
            assert_eq!(t.snapshot()[0], (Some(b"name".to_vec()), v.into_bytes()));
        }
        t.insert(None, b"no-name");
        assert!(matches!(t.get(1), Some(Slot::NameUnknown { .. })));
        assert!(matches!(t.get(2), Some(Slot::Known { .. })));
    }

    #[test]
    fn unknown_tail_resolves_to_unknown_until_proven_empty() {
        let mut t = DynamicTable::new_joined(4096);
        assert!(matches!(t.get(1), Some(Slot::Unknown)));
        // The encoder tells us its maximum: 128.
        t.set_max_size(128, 4096);
        assert!(t.has_unknown_tail());
        t.insert(Some(b"a"), b"b"); // 34
        assert!(matches!(t.get(1), Some(Slot::Known { .. })));
        assert!(matches!(t.get(2), Some(Slot::Unknown)));
        t.insert(Some(b"c"), b"d"); // 68
        t.insert(Some(b"e"), b"f"); // 102: no room for a 32-byte tail entry
        assert!(!t.has_unknown_tail());
        assert!(t.get(4).is_none());
        assert!(t.is_exact());
    }

    #[test]
    fn without_exact_maximum_the_tail_never_goes_away() {
        let mut t = DynamicTable::new_joined(100);
        for _ in 0..10 {
            t.insert(Some(b"aaaa"), b"bbbb");
        }
        assert_eq!(t.len(), 2);
        assert!(matches!(t.get(3), Some(Slot::Unknown)));
        // Clamped size update: still unknown beyond what we keep.
        t.set_max_size(1 << 20, 100);
        assert!(matches!(t.get(3), Some(Slot::Unknown)));
        t.set_max_size(0, 100);
        assert!(t.get(1).is_none());
        assert!(t.is_exact());
    }
}
