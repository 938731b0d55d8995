//! Connection start/end events (`event.category: network`) as ECS JSON.

use weft_core::event::{Connection, ConnectionPhase};

use super::{Obj, event_head, process_fields};
use crate::SCHEMA_VERSION;
use crate::http;

/// One connection start or end: `event.action` `connection-start`,
/// `connection-seeded` (a start found when weft started) or
/// `connection-end`.
pub(super) fn encode_connection(c: &Connection, out: &mut Vec<u8>) {
    let mut j = Obj::new(out);
    let (types, action) = match (c.phase, c.seeded) {
        (ConnectionPhase::Start, false) => ("[\"connection\",\"start\"]", "connection-start"),
        (ConnectionPhase::Start, true) => ("[\"connection\",\"start\"]", "connection-seeded"),
        (ConnectionPhase::End, _) => ("[\"connection\",\"end\"]", "connection-end"),
        (ConnectionPhase::Update, _) => ("[\"connection\",\"info\"]", "connection-update"),
    };
    event_head(&mut j, c.timestamp_ns, "event", "[\"network\"]", types);
    j.str("action", action);
    if let Some(ns) = c.duration_ns {
        j.u64("duration", ns);
    }
    j.end();
    if let Some(p) = &c.process {
        process_fields(&mut j, p, None);
    }
    let flow = &c.flow;
    let (src_bytes, dst_bytes) = c.source_destination_bytes();
    for (key, ep, bytes) in [
        ("source", flow.source(), src_bytes),
        ("destination", flow.destination(), dst_bytes),
    ] {
        j.begin(key);
        j.ip("ip", ep.ip);
        j.u64("port", u64::from(ep.port));
        if let Some(b) = bytes {
            j.u64("bytes", b);
        }
        if key == "destination"
            && let Some(d) = &c.destination_domain
        {
            j.str("domain", d);
        }
        j.end();
    }
    j.begin("network");
    j.str("transport", "tcp");
    j.str("type", flow.network_type());
    j.str("community_id", &flow.community_id());
    j.end();
    j.begin("weft");
    j.begin("schema");
    j.str("version", SCHEMA_VERSION);
    j.end();
    if let Some(p) = &c.process {
        j.begin("process");
        j.u64("cgroup_id", p.cgroup_id);
        j.u64("start_time_ns", p.start_time_ns);
        j.end();
    }
    j.begin("flow");
    if flow.cookie != 0 {
        j.u64("cookie", flow.cookie);
    }
    j.str("role", http::role_name(flow.role));
    j.end();
    j.begin("connection");
    j.u64("netns_cookie", c.netns_cookie);
    j.bool("seeded", c.seeded);
    if let Some(rtt) = c.rtt_us {
        j.u64("rtt_us", u64::from(rtt));
    }
    if c.process.is_none() {
        // Passive connection closed before any process accepted it, or a
        // seeded one whose owner had gone.
        j.bool("owner_unknown", true);
    }
    j.end();
    j.end();
    j.end();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weft_core::event::{Endpoint, Event, Flow, ProcessInfo, Role};

    use super::super::encode_event;
    use super::*;

    fn conn(phase: ConnectionPhase, role: Role) -> Connection {
        Connection {
            timestamp_ns: 1_700_000_000_000_000_000,
            phase,
            seeded: false,
            process: Some(Arc::new(ProcessInfo {
                pid: 42,
                ppid: 1,
                name: "python3".into(),
                executable: None,
                uid: 0,
                gid: 0,
                cgroup_id: 9,
                start_time_ns: 5,
                entity_id: "e".into(),
            })),
            flow: Flow {
                cookie: 77,
                local: Endpoint {
                    ip: "10.0.0.1".parse().expect("ip"),
                    port: 40000,
                },
                remote: Endpoint {
                    ip: "10.0.0.2".parse().expect("ip"),
                    port: 8080,
                },
                role,
            },
            netns_cookie: 4096,
            bytes_sent: (phase == ConnectionPhase::End).then_some(100),
            bytes_received: (phase == ConnectionPhase::End).then_some(2000),
            rtt_us: (phase == ConnectionPhase::End).then_some(35),
            duration_ns: (phase == ConnectionPhase::End).then_some(1_000_000),
            destination_domain: None,
            lost_before: Default::default(),
            h2_last_stream: 0,
        }
    }

    fn json(c: Connection) -> serde_json::Value {
        let mut out = Vec::new();
        encode_event(&Event::Connection(c), &mut out);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn client_end_is_an_ecs_network_end_with_bytes_per_side() {
        let v = json(conn(ConnectionPhase::End, Role::Client));
        assert_eq!(v["event"]["category"], serde_json::json!(["network"]));
        assert_eq!(v["event"]["type"], serde_json::json!(["connection", "end"]));
        assert_eq!(v["event"]["action"], "connection-end");
        assert_eq!(v["event"]["duration"], 1_000_000);
        assert_eq!(v["source"]["ip"], "10.0.0.1");
        assert_eq!(v["source"]["bytes"], 100);
        assert_eq!(v["destination"]["port"], 8080);
        assert_eq!(v["destination"]["bytes"], 2000);
        assert_eq!(v["network"]["type"], "ipv4");
        assert_eq!(v["network"]["transport"], "tcp");
        assert!(
            v["network"]["community_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("1:"))
        );
        assert_eq!(v["process"]["pid"], 42);
        assert_eq!(v["weft"]["flow"]["cookie"], 77);
        assert_eq!(v["weft"]["connection"]["netns_cookie"], 4096);
        assert_eq!(v["weft"]["connection"]["rtt_us"], 35);
    }

    #[test]
    fn resolved_name_is_the_destination_domain() {
        let mut c = conn(ConnectionPhase::Start, Role::Client);
        c.destination_domain = Some("api.example\u{1b}[31m".into());
        let v = json(c);
        assert_eq!(v["destination"]["domain"], "api.example\u{1b}[31m");
        assert!(v["source"].get("domain").is_none());
        assert!(
            json(conn(ConnectionPhase::Start, Role::Client))["destination"]
                .get("domain")
                .is_none()
        );
    }

    #[test]
    fn server_side_puts_the_peer_as_source_and_swaps_bytes() {
        let v = json(conn(ConnectionPhase::End, Role::Server));
        assert_eq!(v["source"]["ip"], "10.0.0.2");
        assert_eq!(v["source"]["bytes"], 2000);
        assert_eq!(v["destination"]["ip"], "10.0.0.1");
        assert_eq!(v["destination"]["bytes"], 100);
    }

    #[test]
    fn seeded_start_without_owner_says_so() {
        let mut c = conn(ConnectionPhase::Start, Role::Client);
        c.seeded = true;
        c.process = None;
        let v = json(c);
        assert_eq!(v["event"]["action"], "connection-seeded");
        assert_eq!(
            v["event"]["type"],
            serde_json::json!(["connection", "start"])
        );
        assert!(v["source"].get("bytes").is_none());
        assert!(v.get("process").is_none());
        assert_eq!(v["weft"]["connection"]["seeded"], true);
        assert_eq!(v["weft"]["connection"]["owner_unknown"], true);
    }
}
