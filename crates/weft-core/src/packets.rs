//! Flow events of the packet path: one per flow (as one interface saw it)
//! when it ends, from the kernel's per-flow counters (bpf/tc.bpf.c).

use std::net::IpAddr;
use std::sync::Arc;

use crate::event::{Endpoint, TlsSession};

/// Why a flow event was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEnd {
    /// TCP FIN seen both ways.
    Fin,
    /// TCP RST seen.
    Rst,
    /// No packet for the idle timeout.
    Idle,
    /// weft stopped while the flow was active.
    Exit,
    /// Not an end: the flow is still active and has been for another
    /// `--flow-update` interval; the counts so far (cumulative).
    Update,
}

impl FlowEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowEnd::Fin => "fin",
            FlowEnd::Rst => "rst",
            FlowEnd::Idle => "idle",
            FlowEnd::Exit => "exit",
            FlowEnd::Update => "update",
        }
    }
}

/// Packets and L3 bytes one endpoint sent, and the OR of its TCP flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowSide {
    pub packets: u64,
    pub bytes: u64,
    pub tcp_flags: u8,
}

/// One flow on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketFlow {
    /// Last packet, Unix nanoseconds.
    pub timestamp_ns: u64,
    /// First packet, Unix nanoseconds.
    pub start_ns: u64,
    pub end: FlowEnd,
    /// IP protocol number.
    pub proto: u8,
    /// IPv6 on the wire.
    pub ipv6: bool,
    /// The endpoint that opened the flow (ECS source) and the other one.
    pub source: Endpoint,
    pub destination: Endpoint,
    pub source_side: FlowSide,
    pub destination_side: FlowSide,
    /// The opener is known from a SYN (else: the first packet seen).
    pub opener_from_syn: bool,
    /// Socket cookie of a local socket on the flow, 0 = unknown.
    pub cookie: u64,
    /// Outer and inner VLAN ids, 0 = none.
    pub vlan: u16,
    pub vlan_inner: u16,
    /// The interface and its namespace.
    pub ifindex: u32,
    pub interface: Option<String>,
    pub netns: u64,
    pub netns_name: Option<String>,
    /// Programs that counted it: `tc-ingress`, `tc-egress`, `xdp`.
    pub hooks: Vec<&'static str>,
    /// TLS facts from the hellos this interface saw on the flow
    /// (`crate::wire_tls`), when it carried TLS.
    pub tls: Option<Arc<TlsSession>>,
}

impl PacketFlow {
    /// ECS `network.transport`.
    pub fn transport(&self) -> String {
        match self.proto {
            6 => "tcp".into(),
            17 => "udp".into(),
            1 => "icmp".into(),
            58 => "ipv6-icmp".into(),
            132 => "sctp".into(),
            n => n.to_string(),
        }
    }

    /// Community ID v1 (seed 0) for TCP and UDP flows.
    pub fn community_id(&self) -> Option<String> {
        let proto = match self.proto {
            6 => communityid::Protocol::TCP,
            17 => communityid::Protocol::UDP,
            _ => return None,
        };
        let c = |ip: IpAddr| ip.to_canonical();
        Some(
            communityid::Flow::new(
                proto,
                c(self.source.ip),
                self.source.port,
                c(self.destination.ip),
                self.destination.port,
            )
            .community_id_v1(0)
            .base64(),
        )
    }

    /// Names of TCP flags set in `f`, in header order.
    pub fn tcp_flag_names(f: u8) -> Vec<&'static str> {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        (0..8)
            .filter(|i| f & (1 << i) != 0)
            .map(|i| NAMES[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_and_community_id() {
        assert_eq!(PacketFlow::tcp_flag_names(0x13), vec!["FIN", "SYN", "ACK"]);
        let f = PacketFlow {
            timestamp_ns: 0,
            start_ns: 0,
            end: FlowEnd::Fin,
            proto: 6,
            ipv6: false,
            source: Endpoint {
                ip: "128.232.110.120".parse().expect("ip"),
                port: 34855,
            },
            destination: Endpoint {
                ip: "66.35.250.204".parse().expect("ip"),
                port: 80,
            },
            source_side: FlowSide::default(),
            destination_side: FlowSide::default(),
            opener_from_syn: true,
            cookie: 0,
            vlan: 0,
            vlan_inner: 0,
            ifindex: 1,
            interface: None,
            netns: 1,
            netns_name: None,
            hooks: vec![],
            tls: None,
        };
        assert_eq!(
            f.community_id().as_deref(),
            Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        );
        assert_eq!(f.transport(), "tcp");
    }
}
