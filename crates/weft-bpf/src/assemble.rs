//! Joins the data records of one library call back into its whole payload.
//!
//! The kernel emits a call's payload as data records (at most
//! `WEFT_CHUNK_MAX` bytes each) and then one call record. All records of one
//! thread are produced in order by that thread, so pieces are kept per thread
//! id: a data record for a new call id means the previous call's closing
//! record was lost (ring full), and its pieces are dropped and counted.
//!
//! A call whose record says [`CALL_HOLES`] left body bytes out on purpose
//! (the kernel's body skip): its pieces jump over them, and the bytes left
//! out after its last piece are the rest of `skipped`. Such jumps in a call
//! without the flag are never trusted (pieces out of order).

use std::collections::HashMap;

use crate::abi::{CALL_HOLES, CallRec};

/// A call with its payload joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub call: CallRec,
    /// Exactly the bytes the kernel copied, from offset 0 (but for holes).
    pub payload: Vec<u8>,
    /// Bytes left out on purpose, in order (empty unless [`CALL_HOLES`]).
    pub holes: Vec<Hole>,
}

/// `len` bytes of the call left out (not copied) right before
/// `payload[at]` (or at its end when `at == payload.len()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    pub at: usize,
    pub len: u64,
}

/// Counters of everything the assembler had to drop or repair.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AssemblyStats {
    /// Pieces whose call record never came (lost to a full ring buffer).
    pub orphaned_calls: u64,
    pub orphaned_bytes: u64,
    /// Pieces that did not continue where the previous one ended.
    pub out_of_order: u64,
    /// Call records whose captured length disagreed with the pieces seen.
    pub length_mismatch: u64,
    /// Pieces dropped because the per-call limit was reached.
    pub over_limit_bytes: u64,
}

struct Partial {
    call_id: u64,
    buf: Vec<u8>,
    /// Jumps between pieces (holes, if the call record says so).
    holes: Vec<Hole>,
    /// Offset in the call where the next piece should start.
    end: u64,
    broken: bool,
}

/// Sans-IO joiner: feed it records in ring order.
pub struct Assembler {
    /// The thread whose pieces came last, and its call: a call's pieces
    /// and its record are mostly adjacent in the ring, so most calls never
    /// touch the map. A thread's pieces are here or in `partial`, never both.
    last: Option<(u32, Partial)>,
    partial: HashMap<u32, Partial, foldhash::fast::RandomState>,
    max_payload: usize,
    stats: AssemblyStats,
    /// Emptied payload buffers to fill again (`recycle`), <= `POOL_MAX`,
    /// of at most `SMALL` bytes' capacity.
    pool: Vec<Vec<u8>>,
    /// Larger ones, <= `POOL_LARGE_BYTES` of capacity in all: a call of
    /// many bytes (a body) fills one of these instead of a new allocation.
    large: Vec<Vec<u8>>,
    large_bytes: usize,
}

/// Most small emptied buffers the assembler keeps for reuse.
const POOL_MAX: usize = 256;
/// Capacity of the largest buffer kept in the small pool.
const SMALL: usize = 2048;
/// Capacity of a new buffer for a piece of more than `SMALL` bytes (at
/// least): one data record's most (`WEFT_CHUNK_MAX`), and the largest
/// buffer the workers send back (`weft_core::pipeline::SPARE_BUFFER_MAX`).
const LARGE: usize = 16 << 10;
/// Capacity of all large buffers kept for reuse, at most: what stays
/// allocated when the traffic stops.
const POOL_LARGE_BYTES: usize = 1 << 20;

impl Assembler {
    /// `max_payload`: the per-call cap the kernel was loaded with.
    pub fn new(max_payload: usize) -> Self {
        Assembler {
            last: None,
            partial: HashMap::default(),
            max_payload,
            stats: AssemblyStats::default(),
            pool: Vec::new(),
            large: Vec::new(),
            large_bytes: 0,
        }
    }

    pub fn stats(&self) -> AssemblyStats {
        self.stats
    }

    /// Calls in flight (pieces waiting for their call record).
    pub fn pending(&self) -> usize {
        self.partial.len() + usize::from(self.last.is_some())
    }

    /// Whether the assembler has no emptied buffer left to fill.
    pub fn wants_buffers(&self) -> bool {
        self.pool.is_empty()
    }

    /// Whether a piece of `len` bytes starting a call would find no kept
    /// buffer of its size.
    pub fn wants_buffers_for(&self, len: usize) -> bool {
        self.pool.is_empty() || (len > SMALL && self.large.is_empty())
    }

    /// Payload buffers to fill again instead of allocating new ones (kept
    /// up to a bound; the rest are freed).
    pub fn recycle(&mut self, buffers: impl IntoIterator<Item = Vec<u8>>) {
        for mut b in buffers {
            let cap = b.capacity();
            if cap <= SMALL {
                if self.pool.len() < POOL_MAX {
                    b.clear();
                    self.pool.push(b);
                }
            } else if self.large_bytes + cap <= POOL_LARGE_BYTES {
                b.clear();
                self.large_bytes += cap;
                self.large.push(b);
            }
        }
    }

    /// An emptied buffer for a call whose first piece has `first` bytes:
    /// a large one for a large piece (most likely the first of several), a
    /// small one for a small piece; a new one when none is kept (a small
    /// buffer grown to a large piece would be allocated again and copied).
    fn buffer_for(&mut self, first: usize) -> Vec<u8> {
        let kept = if first > SMALL {
            let b = self.large.pop();
            if let Some(b) = &b {
                self.large_bytes -= b.capacity();
            }
            b
        } else {
            self.pool.pop()
        };
        // Large ones all get one size, so any kept one fits any piece.
        let size = if first > SMALL {
            first.max(LARGE)
        } else {
            first
        };
        kept.unwrap_or_else(|| Vec::with_capacity(size))
    }

    /// `tid`'s pieces, taken out of wherever they are.
    fn take(&mut self, tid: u32) -> Option<Partial> {
        match self.last.take() {
            Some((t, p)) if t == tid => Some(p),
            other => {
                self.last = other;
                self.partial.remove(&tid)
            }
        }
    }

    pub fn on_data(&mut self, tid: u32, call_id: u64, offset: u32, bytes: &[u8]) {
        if !matches!(&self.last, Some((t, _)) if *t == tid) {
            let p = match self.partial.remove(&tid) {
                Some(p) => p,
                None => Partial {
                    call_id,
                    buf: self.buffer_for(bytes.len()),
                    holes: Vec::new(),
                    end: 0,
                    broken: false,
                },
            };
            if let Some((t, parked)) = self.last.replace((tid, p)) {
                self.partial.insert(t, parked);
            }
        }
        let Some((_, p)) = self.last.as_mut() else {
            return;
        };
        if p.call_id != call_id {
            self.stats.orphaned_calls += 1;
            self.stats.orphaned_bytes += p.buf.len() as u64;
            p.call_id = call_id;
            p.buf.clear();
            p.holes.clear();
            p.end = 0;
            p.broken = false;
        }
        if p.broken {
            return;
        }
        let offset = u64::from(offset);
        if offset != p.end {
            if offset < p.end {
                // Never splice bytes at the wrong place: keep what is contiguous.
                self.stats.out_of_order += 1;
                p.broken = true;
                return;
            }
            // A hole, if the call record confirms it (else out of order).
            p.holes.push(Hole {
                at: p.buf.len(),
                len: offset - p.end,
            });
        }
        let room = self.max_payload.saturating_sub(p.buf.len());
        if bytes.len() > room {
            self.stats.over_limit_bytes += (bytes.len() - room) as u64;
        }
        let n = bytes.len().min(room);
        p.buf.extend_from_slice(&bytes[..n]);
        p.end = offset + n as u64;
    }

    /// Close a call: returns it with every piece seen for it.
    pub fn on_call(&mut self, call: CallRec) -> Assembled {
        let mut call = call;
        let (payload, holes) = self.take_payload(&mut call);
        Assembled {
            call,
            payload,
            holes,
        }
    }

    /// Close `call` in place (no copy of the record): returns every piece
    /// seen for it and the holes between them; `call.captured` and
    /// `call.skipped` are corrected to what really arrived (what does not
    /// add up is cut at the first doubt: the decoder gets a gap there).
    pub fn take_payload(&mut self, call: &mut CallRec) -> (Vec<u8>, Vec<Hole>) {
        let (payload, holes) = match self.take(call.tid) {
            Some(p) if p.call_id == call.call_id => (p.buf, p.holes),
            Some(p) => {
                self.stats.orphaned_calls += 1;
                self.stats.orphaned_bytes += p.buf.len() as u64;
                (Vec::new(), Vec::new())
            }
            None => (Vec::new(), Vec::new()),
        };
        self.finish(call, payload, holes)
    }

    /// Close an inline call (`REC_CALL_INLINE`: the call record with its
    /// payload `bytes`) in place: exactly what its payload as one data
    /// record at offset 0, then its call record, would give
    /// ([`take_payload`](Self::take_payload)), with one copy of the bytes.
    pub fn take_inline(&mut self, call: &mut CallRec, bytes: &[u8]) -> (Vec<u8>, Vec<Hole>) {
        // Pieces of this thread's earlier call, whose record was lost (its
        // buffer is filled again).
        let mut buf = if self.last.is_none() && self.partial.is_empty() {
            None
        } else {
            self.take(call.tid).map(|mut p| {
                self.stats.orphaned_calls += 1;
                self.stats.orphaned_bytes += p.buf.len() as u64;
                p.buf.clear();
                p.buf
            })
        }
        .unwrap_or_else(|| self.buffer_for(bytes.len()));
        let n = bytes.len().min(self.max_payload);
        if n < bytes.len() {
            self.stats.over_limit_bytes += (bytes.len() - n) as u64;
        }
        buf.extend_from_slice(&bytes[..n]);
        self.finish(call, buf, Vec::new())
    }

    /// A call's pieces checked against its record (see `take_payload`).
    fn finish(
        &mut self,
        call: &mut CallRec,
        mut payload: Vec<u8>,
        mut holes: Vec<Hole>,
    ) -> (Vec<u8>, Vec<Hole>) {
        if call.flags & CALL_HOLES == 0 {
            if !holes.is_empty() {
                // Jumps the kernel did not announce: keep what is contiguous.
                self.stats.out_of_order += 1;
                payload.truncate(holes[0].at);
                holes.clear();
            }
            call.skipped = 0;
        } else {
            let inner: u64 = holes.iter().map(|h| h.len).sum();
            if inner > call.skipped {
                // (Counted below: the bytes kept are fewer than captured.)
                payload.truncate(holes[0].at);
                holes.clear();
                call.skipped = 0;
            } else if call.skipped > inner {
                holes.push(Hole {
                    at: payload.len(),
                    len: call.skipped - inner,
                });
            }
        }
        if payload.len() as u64 != call.captured {
            self.stats.length_mismatch += 1;
            // Only claim the bytes that really arrived.
            call.captured = payload.len() as u64;
        }
        (payload, holes)
    }

    /// A thread ended: its unfinished pieces will never complete.
    pub fn forget_thread(&mut self, tid: u32) {
        if let Some(p) = self.take(tid) {
            self.stats.orphaned_calls += 1;
            self.stats.orphaned_bytes += p.buf.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::SockRec;
    use std::net::{IpAddr, Ipv4Addr};

    fn call(tid: u32, call_id: u64, len: u64, captured: u64) -> CallRec {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        CallRec {
            flags: 0,
            call_id,
            start_ns: 0,
            end_ns: 0,
            len,
            captured,
            skipped: 0,
            ssl: 0,
            cgroup_id: 0,
            proc_start_ns: 0,
            pid: tid,
            tid,
            ppid: 0,
            uid: 0,
            gid: 0,
            lib: 1,
            op: 1,
            comm: [0; 16],
            sock: SockRec {
                cookie: 1,
                local: ip,
                remote: ip,
                family: 2,
                local_port: 1,
                remote_port: 2,
                role: 0,
                fd: 3,
            },
            lost: Default::default(),
        }
    }

    fn holed(tid: u32, call_id: u64, len: u64, captured: u64, skipped: u64) -> CallRec {
        let mut c = call(tid, call_id, len, captured);
        c.flags |= CALL_HOLES;
        c.skipped = skipped;
        c
    }

    /// Pieces that jump over body bytes the kernel left out, announced by
    /// the call record: the holes where they were, and the rest of
    /// `skipped` after the last piece.
    #[test]
    fn holes_between_and_after_pieces() {
        let mut a = Assembler::new(1 << 20);
        a.on_data(5, 1, 0, &[1; 100]);
        a.on_data(5, 1, 300, &[2; 100]);
        let out = a.on_call(holed(5, 1, 450, 200, 250));
        assert_eq!(out.payload.len(), 200);
        assert_eq!(&out.payload[..100], &[1; 100]);
        assert_eq!(&out.payload[100..], &[2; 100]);
        assert_eq!(
            out.holes,
            vec![Hole { at: 100, len: 200 }, Hole { at: 200, len: 50 }]
        );
        assert_eq!(out.call.skipped, 250);
        assert_eq!(a.stats(), AssemblyStats::default());
    }

    /// A call inside a body from its first byte to its last: no piece.
    #[test]
    fn call_all_hole() {
        let mut a = Assembler::new(1 << 20);
        let out = a.on_call(holed(5, 1, 16384, 0, 16384));
        assert!(out.payload.is_empty());
        assert_eq!(out.holes, vec![Hole { at: 0, len: 16384 }]);
        // The next call of the thread starts clean.
        a.on_data(5, 2, 0, b"abc");
        let out = a.on_call(call(5, 2, 3, 3));
        assert_eq!(out.payload, b"abc");
        assert!(out.holes.is_empty());
    }

    /// Jumps the call record does not announce are never trusted: the
    /// bytes before the first one are kept, the rest is a gap.
    #[test]
    fn unannounced_jump_is_out_of_order() {
        let mut a = Assembler::new(1 << 20);
        a.on_data(5, 1, 0, &[1; 10]);
        a.on_data(5, 1, 20, &[2; 10]);
        let out = a.on_call(call(5, 1, 30, 30));
        assert_eq!(out.payload, vec![1; 10]);
        assert!(out.holes.is_empty());
        assert_eq!(out.call.captured, 10);
        assert_eq!(a.stats().out_of_order, 1);

        // Announced, but more jumped over than the record says.
        a.on_data(5, 2, 0, &[1; 10]);
        a.on_data(5, 2, 20, &[2; 10]);
        let out = a.on_call(holed(5, 2, 30, 20, 5));
        assert_eq!(out.payload, vec![1; 10]);
        assert!(out.holes.is_empty());
        assert_eq!(out.call.skipped, 0);
        assert_eq!(a.stats().length_mismatch, 2);
    }

    #[test]
    fn joins_pieces_in_order() {
        let mut a = Assembler::new(1 << 20);
        let data: Vec<u8> = (0..40000u32).map(|i| (i % 251) as u8).collect();
        for (i, chunk) in data.chunks(16384).enumerate() {
            a.on_data(5, 1, (i * 16384) as u32, chunk);
        }
        let out = a.on_call(call(5, 1, 40000, 40000));
        assert_eq!(out.payload, data);
        assert_eq!(a.stats(), AssemblyStats::default());
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn interleaved_threads_stay_apart() {
        let mut a = Assembler::new(1 << 20);
        a.on_data(1, 10, 0, b"aa");
        a.on_data(2, 11, 0, b"bb");
        a.on_data(1, 10, 2, b"AA");
        let x = a.on_call(call(2, 11, 2, 2));
        let y = a.on_call(call(1, 10, 4, 4));
        assert_eq!(x.payload, b"bb");
        assert_eq!(y.payload, b"aaAA");
    }

    /// Pieces parked in the map when another thread's come, and found there
    /// again; a forgotten thread's pieces counted wherever they were.
    #[test]
    fn threads_move_between_the_last_slot_and_the_map() {
        let mut a = Assembler::new(1 << 20);
        a.on_data(1, 10, 0, b"one");
        a.on_data(2, 20, 0, b"two");
        a.on_data(3, 30, 0, b"three");
        a.on_data(1, 10, 3, b"ONE");
        assert_eq!(a.pending(), 3);
        assert_eq!(a.on_call(call(2, 20, 3, 3)).payload, b"two");
        assert_eq!(a.on_call(call(1, 10, 6, 6)).payload, b"oneONE");
        a.forget_thread(3);
        assert_eq!(a.pending(), 0);
        assert_eq!(a.stats().orphaned_calls, 1);
        assert_eq!(a.stats().orphaned_bytes, 5);
        a.on_data(4, 40, 0, b"x");
        a.forget_thread(4);
        assert_eq!(a.stats().orphaned_calls, 2);
        assert_eq!(
            a.stats(),
            AssemblyStats {
                orphaned_calls: 2,
                orphaned_bytes: 6,
                ..AssemblyStats::default()
            }
        );
    }

    #[test]
    fn lost_call_record_orphans_pieces() {
        let mut a = Assembler::new(1 << 20);
        a.on_data(1, 10, 0, b"lost");
        a.on_data(1, 11, 0, b"kept");
        let x = a.on_call(call(1, 11, 4, 4));
        assert_eq!(x.payload, b"kept");
        assert_eq!(a.stats().orphaned_calls, 1);
        assert_eq!(a.stats().orphaned_bytes, 4);
    }

    #[test]
    fn missing_piece_never_claims_bytes() {
        let mut a = Assembler::new(1 << 20);
        a.on_data(1, 10, 0, b"first");
        a.on_data(1, 10, 99, b"later");
        let x = a.on_call(call(1, 10, 200, 104));
        assert_eq!(x.payload, b"first");
        assert_eq!(x.call.captured, 5);
        assert_eq!(a.stats().out_of_order, 1);
        assert_eq!(a.stats().length_mismatch, 1);
    }

    /// Recycled buffers are filled again (emptied first), up to a bound.
    #[test]
    fn recycled_buffers_are_reused() {
        let mut a = Assembler::new(1 << 20);
        assert!(a.wants_buffers());
        let mut old = Vec::with_capacity(1024);
        old.extend_from_slice(b"stale");
        a.recycle([old]);
        assert!(!a.wants_buffers());
        a.on_data(1, 10, 0, b"new");
        let x = a.on_call(call(1, 10, 3, 3));
        assert_eq!(x.payload, b"new");
        assert!(x.payload.capacity() >= 1024, "the recycled buffer");
        assert!(a.wants_buffers());
        a.recycle((0..POOL_MAX + 10).map(|_| Vec::with_capacity(8)));
        assert_eq!(a.pool.len(), POOL_MAX);
    }

    /// A large first piece takes a large kept buffer, a small one a small
    /// buffer; large ones are kept up to a byte bound.
    #[test]
    fn large_pieces_fill_large_buffers() {
        let mut a = Assembler::new(1 << 20);
        let big = vec![7u8; 16 << 10];
        assert!(a.wants_buffers_for(big.len()));
        let mut large = Vec::with_capacity(16 << 10);
        large.extend_from_slice(b"stale");
        a.recycle([large, Vec::with_capacity(64)]);
        assert!(!a.wants_buffers_for(big.len()));
        assert!(!a.wants_buffers_for(10));
        a.on_data(1, 10, 0, &big);
        let x = a.on_call(call(1, 10, big.len() as u64, big.len() as u64));
        assert_eq!(x.payload, big);
        assert_eq!(x.payload.capacity(), 16 << 10, "the kept large buffer");
        assert!(a.wants_buffers_for(big.len()), "none left");
        assert!(!a.wants_buffers_for(10), "the small one is still there");
        // A new large buffer has the one large size.
        let mid = vec![1u8; SMALL + 1];
        a.on_data(1, 12, 0, &mid);
        let z = a.on_call(call(1, 12, mid.len() as u64, mid.len() as u64));
        assert_eq!(z.payload, mid);
        assert_eq!(z.payload.capacity(), LARGE);
        a.on_data(1, 11, 0, b"small");
        let y = a.on_call(call(1, 11, 5, 5));
        assert_eq!(y.payload, b"small");
        assert!(y.payload.capacity() < 1024, "not a large buffer");
        // Past the byte bound, buffers are freed.
        a.recycle((0..100).map(|_| Vec::with_capacity(16 << 10)));
        assert_eq!(a.large_bytes, POOL_LARGE_BYTES);
        assert_eq!(a.large.len(), POOL_LARGE_BYTES / (16 << 10));
        a.recycle([Vec::with_capacity(SMALL + 1)]);
        assert_eq!(a.large_bytes, POOL_LARGE_BYTES);
    }

    /// An inline call gives what the same payload as a data record, then
    /// its call record, gives: payload, holes, corrected record, counters.
    #[test]
    fn inline_call_is_data_then_call() {
        let cases: Vec<(CallRec, Vec<u8>)> = vec![
            (call(5, 0, 3, 3), b"abc".to_vec()),
            (call(5, 0, 900, 300), vec![9; 300]),
            // Captured disagrees with the bytes: corrected, counted.
            (call(5, 0, 10, 10), b"short".to_vec()),
            // Copy fault: nothing captured.
            (call(5, 0, 40, 0), Vec::new()),
            // A (bogus) hole flag: the rest of `skipped` after the bytes.
            (holed(5, 0, 20, 4, 16), b"head".to_vec()),
        ];
        for (c, bytes) in cases {
            let mut old = Assembler::new(1 << 20);
            if !bytes.is_empty() {
                old.on_data(c.tid, 77, 0, &bytes);
            }
            let mut oc = c;
            oc.call_id = 77;
            let want = old.on_call(oc);
            let mut new = Assembler::new(1 << 20);
            let mut nc = c;
            let (payload, holes) = new.take_inline(&mut nc, &bytes);
            assert_eq!(payload, want.payload);
            assert_eq!(holes, want.holes);
            nc.call_id = 77;
            assert_eq!(nc, want.call);
            assert_eq!(new.stats(), old.stats());
            assert_eq!(new.pending(), 0);
        }
    }

    /// Inline calls between another thread's pieces leave them alone; a
    /// thread's pieces whose call record was lost are counted when its
    /// next call comes inline, whose bytes stay its own.
    #[test]
    fn inline_calls_interleave_and_orphan() {
        let mut a = Assembler::new(1 << 20);
        a.on_data(1, 10, 0, b"big-");
        a.on_data(2, 20, 0, b"lost");
        let mut c = call(3, 0, 5, 5);
        assert_eq!(a.take_inline(&mut c, b"small").0, b"small");
        a.on_data(1, 10, 4, b"call");
        // Thread 2's call record never came: its next call is inline.
        let mut c = call(2, 0, 2, 2);
        assert_eq!(a.take_inline(&mut c, b"ok").0, b"ok");
        assert_eq!(a.stats().orphaned_calls, 1);
        assert_eq!(a.stats().orphaned_bytes, 4);
        assert_eq!(a.on_call(call(1, 10, 8, 8)).payload, b"big-call");
        assert_eq!(a.pending(), 0);
        // The per-call limit holds for inline bytes too.
        let mut a = Assembler::new(4);
        let mut c = call(1, 0, 6, 6);
        assert_eq!(a.take_inline(&mut c, b"abcdef").0, b"abcd");
        assert_eq!(c.captured, 4);
        assert_eq!(a.stats().over_limit_bytes, 2);
        assert_eq!(a.stats().length_mismatch, 1);
    }

    #[test]
    fn zero_byte_call() {
        let mut a = Assembler::new(16);
        let x = a.on_call(call(1, 3, 0, 0));
        assert!(x.payload.is_empty());
        assert_eq!(a.stats(), AssemblyStats::default());
    }
}
