//! The packet path's flow table (`pkt_flows` in bpf/tc.bpf.c): decoding its
//! keys and values (`struct weft_pkt_key` / `weft_pkt_flow` in weft_abi.h)
//! field by field, reading it and deleting flows user space is done with.

use std::net::{IpAddr, Ipv6Addr};

use libbpf_rs::{MapCore, MapFlags};

use crate::sensor::Sensor;

/// sizeof(struct weft_pkt_key)
pub const PKT_KEY_SIZE: usize = 56;
/// sizeof(struct weft_pkt_flow)
pub const PKT_FLOW_SIZE: usize = 80;

pub const PKT_ORIG_B: u8 = 1 << 0;
pub const PKT_ORIG_SYN: u8 = 1 << 1;
pub const PKT_IPV6: u8 = 1 << 2;
pub const PKT_SEEN_TC_INGRESS: u32 = 1 << 16;
pub const PKT_SEEN_TC_EGRESS: u32 = 1 << 17;
pub const PKT_SEEN_XDP: u32 = 1 << 18;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;

/// A flow's key in the kernel's table (`struct weft_pkt_key`): the same
/// flow on another interface or namespace is another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PktKey {
    pub netns: u64,
    pub ifindex: u32,
    pub vlan: u16,
    pub proto: u8,
    /// Endpoint a (the lower one) and b; IPv4 addresses as IPv4.
    pub a: (IpAddr, u16),
    pub b: (IpAddr, u16),
}

impl PktKey {
    /// Decode `struct weft_pkt_key`; `None` when it has the wrong size.
    pub fn decode(key: &[u8]) -> Option<PktKey> {
        if key.len() != PKT_KEY_SIZE {
            return None;
        }
        Some(PktKey {
            netns: u64_at(key, 0),
            a: (addr_at(key, 8), u16_at(key, 40)),
            b: (addr_at(key, 24), u16_at(key, 42)),
            ifindex: u32_at(key, 44),
            vlan: u16_at(key, 48),
            proto: key[50],
        })
    }
}

/// One flow as one interface saw it (both directions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PktFlow {
    /// Network namespace inode (as `/proc/PID/ns/net` shows it).
    pub netns: u64,
    pub ifindex: u32,
    /// Outer VLAN id, 0 = untagged.
    pub vlan: u16,
    /// Inner VLAN id of double-tagged packets, 0 = none.
    pub vlan_inner: u16,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
    /// Endpoint a (the lower one) and b; IPv4 addresses as IPv4.
    pub a: (IpAddr, u16),
    pub b: (IpAddr, u16),
    /// CLOCK_MONOTONIC nanoseconds.
    pub first_ns: u64,
    pub last_ns: u64,
    /// `[a -> b, b -> a]`.
    pub packets: [u64; 2],
    /// L3 bytes, `[a -> b, b -> a]`.
    pub bytes: [u64; 2],
    pub cookie: u64,
    /// `WEFT_PKT_SEEN_*` and the TCP flags each way.
    pub seen: u32,
    /// `WEFT_PKT_*`.
    pub flags: u8,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_ne_bytes(a)
}
fn addr_at(b: &[u8], o: usize) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[o..o + 16]);
    // IPv4 is stored IPv4-mapped: give it back as IPv4.
    IpAddr::V6(Ipv6Addr::from(a)).to_canonical()
}

impl PktFlow {
    /// Decode a key and a value; `None` when either has the wrong size.
    pub fn decode(key: &[u8], val: &[u8]) -> Option<PktFlow> {
        if val.len() != PKT_FLOW_SIZE {
            return None;
        }
        let k = PktKey::decode(key)?;
        Some(PktFlow {
            netns: k.netns,
            a: k.a,
            b: k.b,
            ifindex: k.ifindex,
            vlan: k.vlan,
            proto: k.proto,
            first_ns: u64_at(val, 0),
            last_ns: u64_at(val, 8),
            packets: [u64_at(val, 16), u64_at(val, 24)],
            bytes: [u64_at(val, 32), u64_at(val, 40)],
            cookie: u64_at(val, 48),
            seen: u32_at(val, 56),
            flags: val[60],
            vlan_inner: u16_at(val, 62),
        })
    }

    /// The flow's key (what wire hello records name it by).
    pub fn key(&self) -> PktKey {
        PktKey {
            netns: self.netns,
            ifindex: self.ifindex,
            vlan: self.vlan,
            proto: self.proto,
            a: self.a,
            b: self.b,
        }
    }

    /// OR of the TCP flags sent from a (`0`) or from b (`1`).
    pub fn tcp_flags(&self, from: usize) -> u8 {
        (self.seen >> (8 * (from & 1))) as u8
    }

    /// Index of the endpoint that opened the flow: 0 = a, 1 = b.
    pub fn opener(&self) -> usize {
        usize::from(self.flags & PKT_ORIG_B != 0)
    }

    /// A TCP flow that ended: RST seen, or FIN seen both ways.
    pub fn tcp_ended(&self) -> Option<&'static str> {
        if self.proto != 6 {
            return None;
        }
        let (f0, f1) = (self.tcp_flags(0), self.tcp_flags(1));
        if (f0 | f1) & TCP_RST != 0 {
            Some("rst")
        } else if f0 & f1 & TCP_FIN != 0 {
            Some("fin")
        } else {
            None
        }
    }
}

/// CLOCK_MONOTONIC now, nanoseconds: the clock of `first_ns`/`last_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

impl Sensor {
    /// Every flow in the kernel's table now, with its raw key (to delete
    /// it later). Entries that change while read are read as they are.
    pub fn pkt_flows(&self) -> Vec<(Vec<u8>, PktFlow)> {
        let map = &self.skel.maps.pkt_flows;
        let mut out = Vec::new();
        for key in map.keys() {
            if let Ok(Some(val)) = map.lookup(&key, MapFlags::ANY)
                && let Some(f) = PktFlow::decode(&key, &val)
            {
                out.push((key, f));
            }
        }
        out
    }

    /// Forget a flow (it ended and was reported).
    pub fn pkt_flow_delete(&self, key: &[u8]) {
        // Gone already (evicted by the LRU): nothing to do.
        let _ = self.skel.maps.pkt_flows.delete(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_key_and_value_field_by_field() {
        let mut k = vec![0u8; PKT_KEY_SIZE];
        k[..8].copy_from_slice(&4026531840u64.to_ne_bytes());
        k[8 + 10] = 0xff;
        k[8 + 11] = 0xff;
        k[8 + 12..8 + 16].copy_from_slice(&[10, 0, 0, 1]);
        k[24 + 15] = 1; // ::1
        k[40..42].copy_from_slice(&443u16.to_ne_bytes());
        k[42..44].copy_from_slice(&50000u16.to_ne_bytes());
        k[44..48].copy_from_slice(&7u32.to_ne_bytes());
        k[48..50].copy_from_slice(&100u16.to_ne_bytes());
        k[50] = 6;
        let mut v = vec![0u8; PKT_FLOW_SIZE];
        for (i, n) in [1u64, 2, 3, 4, 5, 6, 77].iter().enumerate() {
            v[i * 8..i * 8 + 8].copy_from_slice(&n.to_ne_bytes());
        }
        v[56..60].copy_from_slice(&(0x0111u32 | PKT_SEEN_TC_EGRESS).to_ne_bytes());
        v[60] = PKT_ORIG_B | PKT_ORIG_SYN;
        v[62..64].copy_from_slice(&200u16.to_ne_bytes());
        let f = PktFlow::decode(&k, &v).expect("decodes");
        assert_eq!(f.netns, 4026531840);
        assert_eq!(f.a, ("10.0.0.1".parse().expect("ip"), 443));
        assert_eq!(f.b, ("::1".parse().expect("ip"), 50000));
        assert_eq!((f.ifindex, f.vlan, f.proto), (7, 100, 6));
        assert_eq!((f.first_ns, f.last_ns), (1, 2));
        assert_eq!((f.packets, f.bytes, f.cookie), ([3, 4], [5, 6], 77));
        assert_eq!((f.tcp_flags(0), f.tcp_flags(1)), (0x11, 0x01));
        assert_eq!(f.opener(), 1);
        assert_eq!(f.vlan_inner, 200);
        assert_eq!(f.tcp_ended(), Some("fin"));
        assert_eq!(PktKey::decode(&k), Some(f.key()));
        assert!(PktFlow::decode(&k[1..], &v).is_none());
        assert!(PktFlow::decode(&k, &v[1..]).is_none());
    }
}
