//! Console line of the packet path's flow events.

use std::fmt::Write;

use weft_core::packets::PacketFlow;

use super::{CYAN, ConsoleSink, paint, push_endpoint, push_time};
use crate::escape_untrusted;

impl<W: std::io::Write> ConsoleSink<W> {
    /// `flow tcp 10.0.0.1:40000 -> 10.0.0.2:8080 on veth0 netns 4026532 (ns1)
    /// 5 pkts 600 B -> / <- 4 pkts 300 B [1.2 s] fin`
    pub(super) fn format_packet_flow(&mut self, f: &PacketFlow) {
        let color = self.opts.color;
        let line = &mut self.line;
        push_time(line, &self.zone, color, f.timestamp_ns);
        paint(line, color, CYAN, |l| {
            let _ = write!(l, "flow {} ", f.transport());
        });
        push_endpoint(line, f.source);
        line.push_str(" -> ");
        push_endpoint(line, f.destination);
        if f.vlan != 0 {
            let _ = write!(line, " vlan {}", f.vlan);
        }
        match &f.interface {
            Some(n) => {
                let _ = write!(line, " on {}", escape_untrusted(n.as_bytes(), 64));
            }
            None => {
                let _ = write!(line, " on ifindex {}", f.ifindex);
            }
        }
        let _ = write!(line, " netns {}", f.netns);
        if let Some(n) = &f.netns_name {
            let _ = write!(line, " ({})", escape_untrusted(n.as_bytes(), 64));
        }
        let _ = write!(
            line,
            " {} pkts {} B -> / <- {} pkts {} B [{:.1} s] {}",
            f.source_side.packets,
            f.source_side.bytes,
            f.destination_side.packets,
            f.destination_side.bytes,
            f.timestamp_ns.saturating_sub(f.start_ns) as f64 / 1e9,
            f.end.as_str()
        );
        // TLS facts from the hellos on the wire: untrusted text, escaped.
        if let Some(t) = &f.tls {
            line.push_str(" tls");
            if let Some(n) = &t.server_name {
                let _ = write!(line, " sni {}", escape_untrusted(n.as_bytes(), 128));
            }
            if let Some(v) = &t.ja4 {
                let _ = write!(line, " ja4 {v}");
            }
            if let Some(v) = &t.ja4s {
                let _ = write!(line, " ja4s {v}");
            }
        }
        line.push('\n');
    }
}
