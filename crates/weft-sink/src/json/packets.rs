//! JSON of the packet path's flow events (`event.action: flow`,
//! docs/schema.md "Packet flow event fields").

use weft_core::packets::{FlowSide, PacketFlow};

use super::{Obj, event_head};
use crate::SCHEMA_VERSION;

fn side(j: &mut Obj<'_>, key: &str, ep: &weft_core::event::Endpoint, s: &FlowSide) {
    j.begin(key);
    j.ip("ip", ep.ip);
    if ep.port != 0 {
        j.u64("port", u64::from(ep.port));
    }
    j.u64("packets", s.packets);
    j.u64("bytes", s.bytes);
    j.end();
}

fn flags(j: &mut Obj<'_>, key: &str, f: u8) {
    let names: Vec<String> = PacketFlow::tcp_flag_names(f)
        .into_iter()
        .map(String::from)
        .collect();
    j.str_array(key, &names);
}

pub(super) fn encode_packet_flow(f: &PacketFlow, out: &mut Vec<u8>) {
    let mut j = Obj::new(out);
    event_head(
        &mut j,
        f.timestamp_ns,
        "event",
        "[\"network\"]",
        "[\"connection\",\"end\"]",
    );
    j.str("action", "flow");
    j.str("reason", f.end.as_str());
    j.timestamp("start", f.start_ns);
    j.timestamp("end", f.timestamp_ns);
    j.u64("duration", f.timestamp_ns.saturating_sub(f.start_ns));
    j.end();
    side(&mut j, "source", &f.source, &f.source_side);
    side(&mut j, "destination", &f.destination, &f.destination_side);
    j.begin("network");
    j.str("transport", &f.transport());
    j.str("iana_number", &f.proto.to_string());
    j.str("type", if f.ipv6 { "ipv6" } else { "ipv4" });
    if let Some(id) = f.community_id() {
        j.str("community_id", &id);
    }
    j.u64(
        "packets",
        f.source_side.packets + f.destination_side.packets,
    );
    j.u64("bytes", f.source_side.bytes + f.destination_side.bytes);
    if f.vlan != 0 {
        j.begin("vlan");
        j.u64_as_str("id", u64::from(f.vlan));
        j.end();
    }
    if f.vlan_inner != 0 {
        j.begin("inner");
        j.begin("vlan");
        j.u64_as_str("id", u64::from(f.vlan_inner));
        j.end();
        j.end();
    }
    j.end();
    j.begin("observer");
    for (key, hooks) in [
        ("ingress", &["tc-ingress", "xdp"][..]),
        ("egress", &["tc-egress"][..]),
    ] {
        if !f.hooks.iter().any(|h| hooks.contains(h)) {
            continue;
        }
        j.begin(key);
        j.begin("interface");
        if let Some(n) = &f.interface {
            j.str("name", n);
        }
        j.u64_as_str("id", u64::from(f.ifindex));
        j.end();
        j.end();
    }
    j.end();
    j.begin("weft");
    j.begin("schema");
    j.str("version", SCHEMA_VERSION);
    j.end();
    if f.cookie != 0 {
        j.begin("flow");
        j.u64("cookie", f.cookie);
        j.end();
    }
    j.begin("netns");
    j.u64("inode", f.netns);
    if let Some(n) = &f.netns_name {
        j.str("name", n);
    }
    j.end();
    j.begin("packets");
    let hooks: Vec<String> = f.hooks.iter().map(|h| h.to_string()).collect();
    j.str_array("hooks", &hooks);
    j.str(
        "opener",
        if f.opener_from_syn {
            "syn"
        } else {
            "first-packet"
        },
    );
    if f.proto == 6 {
        flags(&mut j, "source_tcp_flags", f.source_side.tcp_flags);
        flags(
            &mut j,
            "destination_tcp_flags",
            f.destination_side.tcp_flags,
        );
    }
    j.end();
    j.end();
    j.finish();
}
