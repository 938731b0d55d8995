//! The packet path's flow events: reads the kernel's per-flow counters
//! (weft_bpf::packets) once a second and emits one event per flow that
//! ended (TCP FIN both ways or RST, after a grace second for the last
//! ACKs) or went idle (`--flow-idle`), then forgets it in the kernel.
//! At exit every remaining flow is emitted (`end: exit` unless it ended).
//! A flow still active after `--flow-update` seconds (and every such
//! interval after) gives an update event with its counts so far
//! (cumulative, as at its end), left in the table.
//! A flow whose TLS hellos the kernel copied (wire hello records, joined by
//! the reader) carries their facts (`tls.*`, JA4/JA4S), updates included.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use weft_bpf::Sensor;
use weft_bpf::netdev::NetdevNames;
use weft_bpf::packets::{self, PktFlow};
use weft_core::event::{Endpoint, Event};
use weft_core::packets::{FlowEnd, FlowSide, PacketFlow};

use crate::reader::Reader;
use crate::stats::Stats;

/// Quiet time after a flow's FIN/RST before it is reported (its last ACKs).
const GRACE_NS: u64 = 1_000_000_000;

pub struct FlowReporter {
    names: NetdevNames,
    idle_ns: u64,
    /// Active timeout: 0 = no updates.
    update_ns: u64,
    /// Raw key -> CLOCK_MONOTONIC of the flow's last update event; only
    /// flows in the kernel's table (rebuilt at every poll: bounded by it).
    updated: HashMap<Vec<u8>, u64>,
    /// CLOCK_MONOTONIC -> Unix nanoseconds.
    offset_ns: i128,
}

impl FlowReporter {
    pub fn new(
        names: NetdevNames,
        idle_secs: u64,
        update_secs: u64,
        offset_ns: i128,
    ) -> FlowReporter {
        FlowReporter {
            names,
            idle_ns: idle_secs.saturating_mul(1_000_000_000),
            update_ns: update_secs.saturating_mul(1_000_000_000),
            updated: HashMap::new(),
            offset_ns,
        }
    }

    fn unix(&self, mono: u64) -> u64 {
        u64::try_from(i128::from(mono) + self.offset_ns).unwrap_or(0)
    }

    /// Flows that ended now (all of them when `last`), removed from the
    /// kernel's table, and updates of long flows still in it.
    pub fn poll(
        &mut self,
        sensor: &Sensor,
        stats: &Stats,
        reader: &Reader,
        last: bool,
    ) -> Vec<Event> {
        // Flows created so far, read before the table: a flow created
        // while it is read is then counted live, never as evicted.
        let created = sensor
            .kernel_stats()
            .iter()
            .find(|(n, _)| *n == "pkt_flows")
            .map_or(0, |(_, v)| *v);
        let now = packets::monotonic_ns();
        let mut out = Vec::new();
        let mut updates = Vec::new();
        let mut live = 0u64;
        let mut updated = HashMap::new();
        let mut live_keys = std::collections::HashSet::new();
        for (key, f) in sensor.pkt_flows() {
            let idle = now.saturating_sub(f.last_ns);
            let end = match f.tcp_ended() {
                Some(r) if idle >= GRACE_NS || last => {
                    if r == "rst" {
                        FlowEnd::Rst
                    } else {
                        FlowEnd::Fin
                    }
                }
                _ if idle >= self.idle_ns => FlowEnd::Idle,
                _ if last => FlowEnd::Exit,
                _ => {
                    live += 1;
                    live_keys.insert(f.key());
                    // Active timeout: counted from the flow's first packet,
                    // then from its last update; only with packets since.
                    let since = self.updated.get(&key).copied().unwrap_or(f.first_ns);
                    if self.update_ns > 0
                        && now.saturating_sub(since) >= self.update_ns
                        && f.last_ns > since
                    {
                        let mut ev = self.event(&f, FlowEnd::Update);
                        ev.tls = reader.wire_tls_of(&f.key());
                        updates.push(Event::PacketFlow(Box::new(ev)));
                        updated.insert(key, now);
                    } else if let Some(t) = self.updated.get(&key) {
                        updated.insert(key, *t);
                    }
                    continue;
                }
            };
            sensor.pkt_flow_delete(&key);
            let mut ev = self.event(&f, end);
            ev.tls = reader.take_wire_tls(&f.key());
            out.push(Event::PacketFlow(Box::new(ev)));
        }
        // Hellos of flows the table no longer has (evicted) are forgotten;
        // those that came after the table was read are kept.
        reader.retain_wire_tls(now, |k| live_keys.contains(k));
        let emitted = stats
            .pkt_flows_emitted
            .fetch_add(out.len() as u64, Ordering::Relaxed)
            + out.len() as u64;
        // Created, but neither reported nor in the table: the LRU evicted
        // them (table full) before they ended.
        stats
            .pkt_flows_evicted
            .fetch_max(created.saturating_sub(emitted + live), Ordering::Relaxed);
        stats
            .pkt_flow_updates
            .fetch_add(updates.len() as u64, Ordering::Relaxed);
        self.updated = updated;
        out.extend(updates);
        out
    }

    fn event(&self, f: &PktFlow, end: FlowEnd) -> PacketFlow {
        let o = f.opener();
        let ends = [f.a, f.b];
        let side = |i: usize| FlowSide {
            packets: f.packets[i],
            bytes: f.bytes[i],
            tcp_flags: f.tcp_flags(i),
        };
        let ep = |(ip, port): (std::net::IpAddr, u16)| Endpoint { ip, port };
        let mut hooks = Vec::new();
        for (bit, name) in [
            (packets::PKT_SEEN_TC_INGRESS, "tc-ingress"),
            (packets::PKT_SEEN_TC_EGRESS, "tc-egress"),
            (packets::PKT_SEEN_XDP, "xdp"),
        ] {
            if f.seen & bit != 0 {
                hooks.push(name);
            }
        }
        PacketFlow {
            timestamp_ns: self.unix(f.last_ns),
            start_ns: self.unix(f.first_ns),
            end,
            proto: f.proto,
            ipv6: f.flags & packets::PKT_IPV6 != 0,
            source: ep(ends[o]),
            destination: ep(ends[1 - o]),
            source_side: side(o),
            destination_side: side(1 - o),
            opener_from_syn: f.flags & packets::PKT_ORIG_SYN != 0,
            cookie: f.cookie,
            vlan: f.vlan,
            vlan_inner: f.vlan_inner,
            ifindex: f.ifindex,
            interface: self.names.interface(f.netns, f.ifindex),
            netns: f.netns,
            netns_name: self.names.netns(f.netns),
            hooks,
            tls: None,
        }
    }
}
