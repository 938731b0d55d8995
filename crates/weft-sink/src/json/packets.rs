//! JSON of the packet path's flow events (`event.action: flow`,
//! docs/schema.md "Packet flow event fields").

use weft_core::packets::{FlowEnd, FlowSide, PacketFlow};

use super::{Obj, client_versions, event_head, weft_tls, write_ecs_tls};
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
    // An update is not an end: its own action, so that summing `flow`
    // events never counts a flow twice.
    let (types, action) = if f.end == FlowEnd::Update {
        ("[\"connection\",\"info\"]", "flow-update")
    } else {
        ("[\"connection\",\"end\"]", "flow")
    };
    event_head(&mut j, f.timestamp_ns, "event", "[\"network\"]", types);
    j.str("action", action);
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
    // TLS facts from the hellos seen on this interface (wire_tls).
    if let Some(s) = &f.tls {
        write_ecs_tls(&mut j, s, false);
    }
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
    if let Some(s) = &f.tls {
        j.begin("tls");
        j.str("source", "wire");
        weft_tls(&mut j, s);
        client_versions(&mut j, s);
        if !s.client_ciphers.is_empty() {
            j.str_iter(
                "client_ciphers",
                s.client_ciphers
                    .iter()
                    .map(|c| weft_proto::tls::cipher_name(*c)),
            );
        }
        j.end();
    }
    j.end();
    j.finish();
}

#[cfg(test)]
mod tests {
    use weft_core::event::{Endpoint, Event};
    use weft_core::packets::{FlowEnd, FlowSide, PacketFlow};

    use crate::{ConsoleOptions, ConsoleSink, Sink, encode_event};

    fn flow() -> PacketFlow {
        PacketFlow {
            timestamp_ns: 1_764_291_075_923_593_263,
            start_ns: 1_764_291_075_916_110_832,
            end: FlowEnd::Fin,
            proto: 6,
            ipv6: false,
            source: Endpoint {
                ip: "::ffff:10.0.0.1".parse().expect("ip"),
                port: 55842,
            },
            destination: Endpoint {
                ip: "10.0.0.2".parse().expect("ip"),
                port: 9999,
            },
            source_side: FlowSide {
                packets: 11,
                bytes: 100_580,
                tcp_flags: 0x1b,
            },
            destination_side: FlowSide {
                packets: 7,
                bytes: 384,
                tcp_flags: 0x13,
            },
            opener_from_syn: true,
            cookie: 26413,
            vlan: 100,
            vlan_inner: 0,
            ifindex: 6,
            interface: Some("veth\u{1b}[31m0".into()),
            netns: 4026532177,
            netns_name: Some("ns-a".into()),
            hooks: vec!["tc-ingress", "tc-egress"],
            tls: None,
        }
    }

    #[test]
    fn flow_event_fields() {
        let mut out = Vec::new();
        encode_event(&Event::PacketFlow(Box::new(flow())), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["event"]["action"], "flow");
        assert_eq!(v["event"]["type"], serde_json::json!(["connection", "end"]));
        assert_eq!(v["event"]["reason"], "fin");
        assert_eq!(v["event"]["duration"], 7_482_431);
        assert_eq!(v["source"]["ip"], "10.0.0.1", "IPv4-mapped shown as IPv4");
        assert_eq!(v["source"]["packets"], 11);
        assert_eq!(v["destination"]["bytes"], 384);
        assert_eq!(v["network"]["packets"], 18);
        assert_eq!(v["network"]["bytes"], 100_964);
        assert_eq!(v["network"]["vlan"]["id"], "100");
        assert!(v["network"].get("inner").is_none());
        assert_eq!(v["network"]["transport"], "tcp");
        assert_eq!(
            v["observer"]["egress"]["interface"]["name"],
            "veth\u{1b}[31m0"
        );
        assert_eq!(v["observer"]["ingress"]["interface"]["id"], "6");
        assert_eq!(v["weft"]["flow"]["cookie"], 26413);
        assert_eq!(v["weft"]["netns"]["name"], "ns-a");
        assert_eq!(
            v["weft"]["packets"]["source_tcp_flags"],
            serde_json::json!(["FIN", "SYN", "PSH", "ACK"])
        );
        // The control character is escaped in the JSON text itself.
        assert!(!out.contains(&0x1b));
        assert!(v.get("tls").is_none(), "no TLS facts, no tls object");
        assert!(v["weft"].get("tls").is_none());
    }

    #[test]
    fn flow_event_with_tls_facts_from_the_wire() {
        let mut f = flow();
        f.tls = Some(std::sync::Arc::new(weft_core::event::TlsSession {
            version: Some("1.3".into()),
            version_protocol: Some("tls"),
            cipher: Some("TLS_AES_256_GCM_SHA384".into()),
            server_name: Some("weft.test".into()),
            alpn_offered: vec!["h2".into(), "http/1.1".into()],
            client_versions: vec![0x0304, 0x0303],
            client_ciphers: vec![0x1302],
            ja4: Some("t13d3112h2_e8f1e7e78f70_6bebaf5329ec".into()),
            ja4s: Some("t130200_1302_a56c5b993250".into()),
            ..Default::default()
        }));
        let mut out = Vec::new();
        encode_event(&Event::PacketFlow(Box::new(f)), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["tls"]["version"], "1.3");
        assert_eq!(v["tls"]["cipher"], "TLS_AES_256_GCM_SHA384");
        assert_eq!(v["tls"]["client"]["server_name"], "weft.test");
        assert_eq!(
            v["tls"]["client"]["ja4"],
            "t13d3112h2_e8f1e7e78f70_6bebaf5329ec"
        );
        assert_eq!(v["tls"]["server"]["ja4s"], "t130200_1302_a56c5b993250");
        assert!(v["tls"].get("established").is_none());
        assert_eq!(v["weft"]["tls"]["source"], "wire");
        assert_eq!(
            v["weft"]["tls"]["alpn_offered"],
            serde_json::json!(["h2", "http/1.1"])
        );
        assert_eq!(
            v["weft"]["tls"]["client_versions"],
            serde_json::json!(["1.3", "1.2"])
        );
    }

    #[test]
    fn flow_update_has_its_own_action_and_type() {
        let mut f = flow();
        f.end = FlowEnd::Update;
        let mut out = Vec::new();
        encode_event(&Event::PacketFlow(Box::new(f)), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["event"]["action"], "flow-update");
        assert_eq!(
            v["event"]["type"],
            serde_json::json!(["connection", "info"])
        );
        assert_eq!(v["event"]["reason"], "update");
        assert_eq!(v["source"]["packets"], 11);
    }

    #[test]
    fn flow_console_line_escapes_the_interface_name() {
        let mut sink = ConsoleSink::new(Vec::new(), ConsoleOptions::default().color(false));
        sink.write(&Event::PacketFlow(Box::new(flow())))
            .expect("write");
        let line = String::from_utf8(sink.into_inner()).expect("utf-8");
        assert!(
            line.contains("flow tcp 10.0.0.1:55842 -> 10.0.0.2:9999 vlan 100 on veth"),
            "{line}"
        );
        assert!(line.contains("netns 4026532177 (ns-a) 11 pkts 100580 B -> / <- 7 pkts 384 B"));
        assert!(line.ends_with(" fin\n"), "{line}");
        assert!(
            !line.contains('\u{1b}'),
            "raw escape reached the terminal: {line:?}"
        );
    }
}
