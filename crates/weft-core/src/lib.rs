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
