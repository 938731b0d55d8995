//! TLS hellos seen on the wire (the packet path, bpf/tc.bpf.c): the kernel
//! copies the first payload each way of a TCP flow when it starts a TLS
//! handshake record, and the segment after it when that first record does
//! not fit (at most two segments, 2 KiB per direction). This stage joins
//! those segments per flow and direction by TCP sequence number, parses them
//! with the same hello parser as the syscall path (`weft_proto::tls`) and
//! turns them into the same [`TlsSession`] facts, JA4/JA4S included
//! ([`crate::tls::hello_facts`]), which the flow event of that flow carries.
//!
//! Sans-IO and bounded: at most [`MAX_FLOWS`] flows are held (new ones are
//! dropped and counted when full); the caller forgets flows that are gone
//! ([`WireHellos::retain`]). Every segment that cannot be used is counted.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weft_proto::tls::{HandshakeParser, Side};

use crate::event::TlsSession;
use crate::tls::hello_facts;

/// Flows with hello bytes held at most (as many as the kernel's flow table
/// holds by default).
pub const MAX_FLOWS: usize = 65_536;

/// Counters of the wire hello stage.
#[derive(Debug, Default)]
pub struct WireTlsStats {
    /// Segments received from the kernel.
    pub segments: AtomicU64,
    /// Flows whose TLS facts went onto a flow event.
    pub sessions: AtomicU64,
    /// Directions whose bytes gave no hello: cut at the copy limit, the
    /// continuation missing or not adjacent, or not parsable.
    pub incomplete: AtomicU64,
    /// Segments not used: a continuation that did not follow the first
    /// segment (retransmission, reordering), or a second first segment.
    pub gaps: AtomicU64,
    /// Flows not followed: the table was full.
    pub table_full: AtomicU64,
}

/// One copied segment, as the kernel reported it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// 0: sent from the flow's endpoint a to b, 1: from b to a.
    pub dir: usize,
    /// 0: the direction's first payload, 1: the segment after it.
    pub index: u8,
    /// TCP sequence number of the first byte.
    pub seq: u32,
    /// The packet carried more payload than was copied.
    pub cut: bool,
    /// CLOCK_MONOTONIC of the packet, ns.
    pub ts_ns: u64,
    pub bytes: &'a [u8],
}

#[derive(Debug, Default)]
struct Dir {
    /// The first segment was fed; `next` is the sequence number after it.
    started: bool,
    next: u32,
    /// A continuation that arrived before the first segment.
    pending: Option<(u32, Vec<u8>)>,
    fed: bool,
    learned: bool,
    /// No more bytes can be fed (cut, gap).
    closed: bool,
}

#[derive(Debug)]
struct Entry {
    /// Dropped once both directions gave their hello (or can give no
    /// more): a long-lived flow keeps only its facts.
    parser: Option<Box<HandshakeParser>>,
    facts: Option<Arc<TlsSession>>,
    dirs: [Dir; 2],
    last_ns: u64,
}

impl Entry {
    /// Refresh the facts from the parser; drop it when it is done.
    fn settle(&mut self) {
        let Some(p) = &self.parser else { return };
        if p.client_hello().is_some() || p.server_hello().is_some() {
            let mut s = TlsSession::default();
            hello_facts(p, &mut s);
            self.facts = Some(Arc::new(s));
        }
        if self.dirs.iter().all(|d| d.learned || d.closed) {
            self.parser = None;
        }
    }
}

/// Hello bytes per flow, keyed by the packet path's flow key.
#[derive(Debug)]
pub struct WireHellos<K> {
    flows: HashMap<K, Entry>,
    max: usize,
    stats: Arc<WireTlsStats>,
}

fn side(dir: usize) -> Side {
    if dir == 0 { Side::Sent } else { Side::Received }
}

impl<K: Hash + Eq + Clone> WireHellos<K> {
    pub fn new(stats: Arc<WireTlsStats>) -> Self {
        Self::with_capacity(MAX_FLOWS, stats)
    }

    /// A table of at most `max` flows.
    pub fn with_capacity(max: usize, stats: Arc<WireTlsStats>) -> Self {
        WireHellos {
            flows: HashMap::new(),
            max,
            stats,
        }
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Take one segment of `key`'s flow.
    pub fn on_segment(&mut self, key: K, s: Segment<'_>) {
        self.stats.segments.fetch_add(1, Ordering::Relaxed);
        if !self.flows.contains_key(&key) && self.flows.len() >= self.max {
            self.stats.table_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let e = self.flows.entry(key).or_insert_with(|| Entry {
            parser: Some(Box::default()),
            facts: None,
            dirs: Default::default(),
            last_ns: s.ts_ns,
        });
        e.last_ns = e.last_ns.max(s.ts_ns);
        Self::segment(e, s, &self.stats);
        e.settle();
    }

    fn segment(e: &mut Entry, s: Segment<'_>, stats: &WireTlsStats) {
        let Some(parser) = e.parser.as_deref_mut() else {
            // Both hellos are in: a late duplicate.
            stats.gaps.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let dir = s.dir & 1;
        let d = &mut e.dirs[dir];
        if s.index == 0 {
            if d.started {
                // A copy made twice (two CPUs raced on the flow entry).
                stats.gaps.fetch_add(1, Ordering::Relaxed);
                return;
            }
            d.started = true;
            d.next = s.seq.wrapping_add(s.bytes.len() as u32);
            Self::feed(parser, d, dir, s.bytes);
            if s.cut {
                d.closed = true;
            }
            if let Some((seq, bytes)) = e.dirs[dir].pending.take() {
                Self::continuation(parser, &mut e.dirs[dir], dir, seq, &bytes, stats);
            }
            return;
        }
        if !d.started {
            if d.pending.is_some() {
                stats.gaps.fetch_add(1, Ordering::Relaxed);
            } else {
                d.pending = Some((s.seq, s.bytes.to_vec()));
            }
            return;
        }
        Self::continuation(parser, d, dir, s.seq, s.bytes, stats);
    }

    fn continuation(
        parser: &mut HandshakeParser,
        d: &mut Dir,
        dir: usize,
        seq: u32,
        bytes: &[u8],
        stats: &WireTlsStats,
    ) {
        if d.closed {
            stats.gaps.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Bytes of this segment already fed (it overlaps the first one:
        // a retransmission that carries more): skip them.
        let skip = d.next.wrapping_sub(seq) as usize;
        if skip >= bytes.len() || skip > u32::MAX as usize / 2 {
            // Entirely old, or starting after a hole.
            stats.gaps.fetch_add(1, Ordering::Relaxed);
            d.closed = true;
            return;
        }
        let tail = &bytes[skip..];
        d.next = d.next.wrapping_add(tail.len() as u32);
        Self::feed(parser, d, dir, tail);
        d.closed = true;
    }

    fn feed(parser: &mut HandshakeParser, d: &mut Dir, dir: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        d.fed = true;
        d.learned |= parser.feed(side(dir), bytes);
    }

    /// The TLS facts of `key`'s flow so far, keeping it (a long flow's
    /// update events).
    pub fn peek(&self, key: &K) -> Option<Arc<TlsSession>> {
        self.flows.get(key)?.facts.clone()
    }

    /// The TLS facts of `key`'s flow, forgetting it: `None` when neither
    /// hello was seen whole.
    pub fn take(&mut self, key: &K) -> Option<Arc<TlsSession>> {
        let e = self.flows.remove(key)?;
        self.finish(e)
    }

    fn finish(&self, e: Entry) -> Option<Arc<TlsSession>> {
        for d in &e.dirs {
            if d.fed && !d.learned {
                self.stats.incomplete.fetch_add(1, Ordering::Relaxed);
            }
        }
        let facts = e.facts?;
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        Some(facts)
    }

    /// Keep only the flows for which `keep` says yes or that saw a
    /// segment at or after `since_ns` (their flow entry may be newer than
    /// the caller's view of the kernel's table).
    pub fn retain(&mut self, since_ns: u64, mut keep: impl FnMut(&K) -> bool) {
        let gone: Vec<K> = self
            .flows
            .iter()
            .filter(|(k, e)| e.last_ns < since_ns && !keep(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(e) = self.flows.remove(&k) {
                // Counted like a flow reported without its facts.
                let _ = self.finish(e);
            }
        }
        crate::shrink_sparse(&mut self.flows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C2S: &[u8] = include_bytes!("../../weft-proto/tests/fixtures/tls/tls13_c2s.bin");
    const S2C: &[u8] = include_bytes!("../../weft-proto/tests/fixtures/tls/tls13_s2c.bin");

    /// The first record of a stream: what one hello record takes.
    fn first_record(b: &[u8]) -> &[u8] {
        let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        &b[..5 + len]
    }

    /// What the syscall path's parser makes of the whole streams.
    fn reference() -> TlsSession {
        let mut p = HandshakeParser::new();
        p.feed(Side::Sent, C2S);
        p.feed(Side::Received, S2C);
        let mut s = TlsSession::default();
        hello_facts(&p, &mut s);
        assert!(
            s.ja4.is_some() && s.ja4s.is_some(),
            "fixture has both hellos"
        );
        s
    }

    fn seg(dir: usize, index: u8, seq: u32, bytes: &[u8]) -> Segment<'_> {
        Segment {
            dir,
            index,
            seq,
            cut: false,
            ts_ns: 1,
            bytes,
        }
    }

    fn table() -> (WireHellos<u32>, Arc<WireTlsStats>) {
        let stats = Arc::new(WireTlsStats::default());
        (WireHellos::new(Arc::clone(&stats)), stats)
    }

    #[test]
    fn a_client_hello_split_in_two_segments_is_joined() {
        let ch = first_record(C2S);
        assert!(ch.len() > 100);
        let (mut t, stats) = table();
        // The client is endpoint b here: direction 1; the server's first
        // segment carries its whole ServerHello and more.
        let cut = 100;
        t.on_segment(7, seg(1, 0, 1000, &ch[..cut]));
        t.on_segment(7, seg(0, 0, 5, &S2C[..S2C.len().min(1400)]));
        t.on_segment(7, seg(1, 1, 1000 + cut as u32, &ch[cut..]));
        let s = t.take(&7).expect("facts");
        assert_eq!(*s, reference());
        assert!(t.is_empty());
        assert_eq!(stats.incomplete.load(Ordering::Relaxed), 0);
        assert_eq!(stats.sessions.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn once_both_hellos_are_in_only_the_facts_are_kept() {
        let (mut t, stats) = table();
        t.on_segment(9, seg(0, 0, 0, first_record(C2S)));
        t.on_segment(9, seg(1, 0, 0, &S2C[..S2C.len().min(1400)]));
        assert!(t.flows[&9].parser.is_none(), "parser dropped");
        // A late copy changes nothing.
        t.on_segment(9, seg(0, 0, 0, first_record(C2S)));
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 1);
        assert_eq!(*t.take(&9).expect("facts"), reference());
    }

    #[test]
    fn continuation_before_first_and_overlapping_retransmission() {
        let ch = first_record(C2S);
        let (mut t, stats) = table();
        // Ring order can put the second segment first; and the second
        // one may re-send the first one's last 10 bytes.
        t.on_segment(1, seg(0, 1, (u32::MAX - 5).wrapping_add(90), &ch[90..]));
        t.on_segment(1, seg(0, 0, u32::MAX - 5, &ch[..100]));
        let s = t.take(&1).expect("facts");
        assert_eq!(s.ja4, reference().ja4);
        assert_eq!(s.server_name, reference().server_name);
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_hole_or_a_cut_is_counted_and_gives_no_client_facts() {
        let ch = first_record(C2S);
        let (mut t, stats) = table();
        t.on_segment(2, seg(0, 0, 0, &ch[..100]));
        t.on_segment(2, seg(0, 1, 150, &ch[150..]));
        assert_eq!(t.take(&2), None);
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 1);
        assert_eq!(stats.incomplete.load(Ordering::Relaxed), 1);

        let mut cut = seg(0, 0, 0, &ch[..100]);
        cut.cut = true;
        t.on_segment(3, cut);
        t.on_segment(3, seg(0, 1, 100, &ch[100..]));
        assert_eq!(t.take(&3), None);
        assert_eq!(stats.incomplete.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn garbage_never_panics_and_not_tls_gives_nothing() {
        let (mut t, _) = table();
        t.on_segment(4, seg(0, 0, 0, &[0x16, 3, 1, 0xff, 0xff, 1, 2, 3]));
        t.on_segment(4, seg(0, 1, 8, &[0; 40]));
        t.on_segment(4, seg(1, 0, 0, b"GET / HTTP/1.1\r\n"));
        t.on_segment(4, seg(1, 1, 3, b""));
        assert_eq!(t.take(&4), None);
        for n in 0..64usize {
            let b: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            t.on_segment(5, seg(n & 1, (n % 3) as u8, n as u32 * 7, &b));
        }
        let _ = t.take(&5);
    }

    #[test]
    fn bounded_and_forgets_flows_that_are_gone() {
        let stats = Arc::new(WireTlsStats::default());
        let mut t = WireHellos::with_capacity(2, Arc::clone(&stats));
        let ch = first_record(C2S);
        for k in 0..3u32 {
            let mut s = seg(0, 0, 0, ch);
            s.ts_ns = u64::from(k) * 10;
            t.on_segment(k, s);
        }
        assert_eq!(t.len(), 2);
        assert_eq!(stats.table_full.load(Ordering::Relaxed), 1);
        // Flow 0 is gone from the kernel's table; flow 1 too but it saw a
        // segment since the caller read the table.
        t.retain(10, |_| false);
        assert_eq!(t.len(), 1);
        assert!(t.take(&1).is_some());
    }
}
