//! weft-core: the event model shared by every stage, process and TLS library
//! discovery from `/proc` and ELF files, and the assembly of kernel records
//! into whole events.
#![forbid(unsafe_code)]

pub mod decode;
pub mod discovery;
pub mod event;
pub mod packets;
pub mod pipeline;
pub mod procinfo;
pub mod redact;
pub mod resolved;
pub mod tls;
pub mod wire_tls;

/// The hash map of the per-event paths: keys are kernel ids (socket cookies,
/// thread ids), hashed with a seeded `foldhash` (a tenth of SipHash's cost,
/// still randomised per process) instead of the standard SipHash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Give back most of a map's table once it holds far fewer entries than it
/// has room for: hash tables never shrink by themselves, so a table grown
/// for a burst of 10,000 connections would keep its memory (and pin the heap
/// pages around it) for the life of the process. Shrinks below an eighth
/// full, to twice the entries left, so a steady number of entries never
/// makes the table shrink and grow in turn. Called from the stages' ticks.
pub fn shrink_sparse<K, V, S>(map: &mut std::collections::HashMap<K, V, S>)
where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
{
    const SMALL: usize = 256;
    if map.capacity() > SMALL && map.len() < map.capacity() / 8 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod shrink_tests {
    use super::shrink_sparse;
    use std::collections::HashMap;

    #[test]
    fn a_sparse_table_shrinks_and_a_full_one_does_not() {
        let mut m: HashMap<u64, u64> = (0..10_000).map(|i| (i, i)).collect();
        let grown = m.capacity();
        shrink_sparse(&mut m);
        assert_eq!(m.capacity(), grown, "full: kept");
        m.retain(|k, _| *k < 100);
        shrink_sparse(&mut m);
        assert!(m.capacity() < grown / 16, "{} of {grown}", m.capacity());
        assert!(m.capacity() >= 200);
        assert_eq!(m.len(), 100);
        assert!((0..100).all(|k| m.get(&k) == Some(&k)));
        // Small tables are left alone.
        let mut small: HashMap<u64, u64> = (0..200).map(|i| (i, i)).collect();
        small.clear();
        let cap = small.capacity();
        shrink_sparse(&mut small);
        assert_eq!(small.capacity(), cap);
    }
}
