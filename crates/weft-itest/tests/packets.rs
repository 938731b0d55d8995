//! The packet path (issue 5): TC flow counters in the kernel, reported as
//! one flow event per flow, on veth pairs between two network namespaces
//! that each test creates (unique names) and always deletes. Nothing here
//! touches the machine's own interfaces: weft runs with `--interface` set
//! to the test's veth names.
//!
//! Ground truth: the veths' own counters (`ip -s link`, counted by the veth
//! driver per packet, link-layer header included) with nothing else on the
//! link (IPv6 off, static neighbours: no ARP, no ND), and the byte counts
//! the client and the server report themselves.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_itest::netns::sh;
use weft_itest::*;

/// Two namespaces joined by a veth pair: `a` (10.77.0.1, MAC ..:01) in
/// `ns_a`, `b` (10.77.0.2) in `ns_b`. Deleted on drop, also on failure.
struct Pair {
    ns_a: String,
    ns_b: String,
    a: String,
    b: String,
    /// Prefix of every name of this pair: weft's `--interface` glob.
    tag: String,
}

const IP_A: &str = "10.77.0.1";
const IP_B: &str = "10.77.0.2";
const MAC_A: &str = "02:77:00:00:00:01";
const MAC_B: &str = "02:77:00:00:00:02";

impl Pair {
    fn new() -> TestResult<Pair> {
        require_root();
        let tag = format!("wp{:06x}", rand_u64() & 0xff_ffff);
        let p = Pair {
            ns_a: format!("{tag}-na"),
            ns_b: format!("{tag}-nb"),
            a: format!("{tag}a"),
            b: format!("{tag}b"),
            tag,
        };
        for ns in [&p.ns_a, &p.ns_b] {
            sh(&["ip", "netns", "add", ns])?;
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ])?;
        }
        Ok(p)
    }

    /// Create the veth pair inside the namespaces, addressed and up.
    fn link(&self) -> TestResult {
        sh(&[
            "ip", "link", "add", &self.a, "netns", &self.ns_a, "address", MAC_A, "type", "veth",
            "peer", "name", &self.b, "netns", &self.ns_b, "address", MAC_B,
        ])?;
        for (ns, dev, ip, peer_ip, peer_mac) in [
            (&self.ns_a, &self.a, IP_A, IP_B, MAC_B),
            (&self.ns_b, &self.b, IP_B, IP_A, MAC_A),
        ] {
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                dev,
            ])?;
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            sh(&[
                "ip",
                "-n",
                ns,
                "neigh",
                "replace",
                peer_ip,
                "lladdr",
                peer_mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        Ok(())
    }

    /// `(tx_packets, tx_bytes, rx_packets, rx_bytes)` of `a`.
    fn counters_a(&self) -> TestResult<[u64; 4]> {
        let out = sh(&["ip", "-n", &self.ns_a, "-s", "-j", "link", "show", &self.a])?;
        let v: Value = serde_json::from_slice(&out.stdout)?;
        let s = &v[0]["stats64"];
        let n = |d: &str, k: &str| s[d][k].as_u64().ok_or("no counter");
        Ok([
            n("tx", "packets")?,
            n("tx", "bytes")?,
            n("rx", "packets")?,
            n("rx", "bytes")?,
        ])
    }

    fn glob(&self) -> String {
        format!("{}*", self.tag)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth in it (and so its peer).
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Run `script` with python3 in `ns`, bounded by `timeout`; its stdout.
fn python_in(ns: &str, script: &str, args: &[&str], timeout: Duration) -> TestResult<String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let end = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                return Err(format!(
                    "python in {ns} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("python in {ns} did not finish within {timeout:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.settimeout(20); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    n += len(d)
c.sendall(b"r" * int(sys.argv[3])); c.close()
print(n)
"#;

const CLIENT: &str = r#"
import socket, sys, time
end = time.time() + 10
while True:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10); break
    except OSError:
        if time.time() > end: raise
        time.sleep(0.05)
print(s.getsockname()[1])
s.sendall(b"q" * int(sys.argv[3])); s.shutdown(socket.SHUT_WR); n = 0
while True:
    d = s.recv(65536)
    if not d: break
    n += len(d)
s.close()
print(n)
"#;

/// One TCP exchange from `a` to `b`: the client sends `up` bytes, the
/// server answers `down` bytes. Returns the client's port and what each
/// side says it received.
fn exchange(p: &Pair, port: u16, up: usize, down: usize) -> TestResult<(u16, u64, u64)> {
    let ns_b = p.ns_b.clone();
    let (port_s, down_s) = (port.to_string(), down.to_string());
    let server = std::thread::spawn(move || {
        python_in(
            &ns_b,
            SERVER,
            &[IP_B, &port_s, &down_s],
            Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())
    });
    let out = python_in(
        &p.ns_a,
        CLIENT,
        &[IP_B, &port.to_string(), &up.to_string()],
        Duration::from_secs(30),
    )?;
    let got_by_server: u64 = server
        .join()
        .map_err(|_| "server thread panicked")??
        .trim()
        .parse()?;
    let mut lines = out.lines();
    let cport: u16 = lines.next().ok_or("no client port")?.trim().parse()?;
    let got_by_client: u64 = lines.next().ok_or("no client count")?.trim().parse()?;
    Ok((cport, got_by_server, got_by_client))
}

fn is_flow_on(ev: &Value, iface: &str, dport: u16) -> bool {
    field_str(ev, "event.action") == Some("flow")
        && field_u64(ev, "destination.port") == Some(u64::from(dport))
        && (field_str(ev, "observer.egress.interface.name") == Some(iface)
            || field_str(ev, "observer.ingress.interface.name") == Some(iface))
}

/// Sum of `field` over every flow event on `iface` to `dport`: the client
/// may have tried before the server listened (SYN, RST: flows of their own,
/// on the link and in its counters too).
fn sum_on(events: &[Value], iface: &str, dport: u16, field: &str) -> u64 {
    events
        .iter()
        .filter(|e| is_flow_on(e, iface, dport))
        .filter_map(|e| field_u64(e, field))
        .sum()
}

/// The flow of the exchange itself: from the client's port.
fn the_flow<'a>(events: &'a [Value], iface: &str, dport: u16, cport: u16) -> TestResult<&'a Value> {
    events
        .iter()
        .find(|e| {
            is_flow_on(e, iface, dport) && field_u64(e, "source.port") == Some(u64::from(cport))
        })
        .ok_or_else(|| format!("no flow from port {cport} on {iface}").into())
}

/// Links of weft's packet programs the kernel holds now (tcx and XDP),
/// from bpftool (its `net` view predates tcx).
fn weft_packet_links() -> TestResult<usize> {
    let progs: Value = serde_json::from_slice(&sh(&["bpftool", "-j", "prog", "show"])?.stdout)?;
    let ids: Vec<u64> = progs
        .as_array()
        .ok_or("bpftool prog: not an array")?
        .iter()
        .filter(|p| {
            matches!(
                p["name"].as_str(),
                Some("weft_tc_ingress" | "weft_tc_egress" | "weft_xdp")
            )
        })
        .filter_map(|p| p["id"].as_u64())
        .collect();
    let links: Value = serde_json::from_slice(&sh(&["bpftool", "-j", "link", "show"])?.stdout)?;
    Ok(links
        .as_array()
        .ok_or("bpftool link: not an array")?
        .iter()
        .filter(|l| l["prog_id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .count())
}

/// The client's flow on `a`: packets and bytes match the veth's own counters
/// exactly (L3 bytes + 14 bytes of Ethernet header per packet), both ways;
/// the payload each side received is inside; the socket cookie is known.
#[test]
fn tc_counters_match_the_interface_counters() -> TestResult {
    let p = Pair::new()?;
    p.link()?;
    let glob = p.glob();
    let weft = Weft::start(&["--interface", &glob])?;
    assert!(
        weft_packet_links()? >= 4,
        "expected tcx links on both veths"
    );
    let before = p.counters_a()?;
    let port = 18000 + (rand_u64() % 1000) as u16;
    let (up, down) = (300_000usize, 20_000usize);
    let (cport, got_by_server, got_by_client) = exchange(&p, port, up, down)?;
    assert_eq!(
        (got_by_server, got_by_client),
        (up as u64, down as u64),
        "the peers' own counts"
    );
    let after = p.counters_a()?;
    let d: Vec<u64> = (0..4).map(|i| after[i] - before[i]).collect();
    let found = weft.wait_for(Duration::from_secs(10), |e| is_flow_on(e, &p.a, port));
    let run = weft.stop()?;
    assert!(found, "no flow event on {}; stderr:\n{}", p.a, run.stderr);
    let ev = the_flow(&run.events, &p.a, port, cport)?;
    let u = |f: &str| field_u64(ev, f).unwrap_or(u64::MAX);
    let all = |f: &str| sum_on(&run.events, &p.a, port, f);
    assert_eq!(field_str(ev, "source.ip"), Some(IP_A), "{ev}");
    assert_eq!(field_str(ev, "destination.ip"), Some(IP_B), "{ev}");
    assert_eq!(field_str(ev, "network.transport"), Some("tcp"));
    assert_eq!(field_str(ev, "network.type"), Some("ipv4"));
    assert_eq!(field_str(ev, "event.reason"), Some("fin"), "{ev}");
    // The interface's counters: a -> b is a's TX, b -> a its RX (summed
    // over the exchange's flow and any refused early attempt).
    assert_eq!(all("source.packets"), d[0], "TX packets of {}: {ev}", p.a);
    assert_eq!(
        all("destination.packets"),
        d[2],
        "RX packets of {}: {ev}",
        p.a
    );
    assert_eq!(all("source.bytes") + 14 * d[0], d[1], "TX bytes: {ev}");
    assert_eq!(all("destination.bytes") + 14 * d[2], d[3], "RX bytes: {ev}");
    // The payload is inside, with at least a 40-byte IPv4+TCP header per packet.
    assert!(
        u("source.bytes") >= up as u64 + 40 * u("source.packets"),
        "{ev}"
    );
    assert!(
        u("destination.bytes") >= down as u64 + 40 * u("destination.packets"),
        "{ev}"
    );
    assert_eq!(
        u("network.packets"),
        u("source.packets") + u("destination.packets"),
        "network.packets is the sum"
    );
    assert!(u("weft.flow.cookie") > 0, "no socket cookie: {ev}");
    assert_eq!(
        field_str(ev, "weft.netns.name"),
        Some(p.ns_a.as_str()),
        "{ev}"
    );
    assert_eq!(
        field_str(ev, "network.community_id"),
        Some(community_id_reference(IP_A, u64::from(cport), IP_B, u64::from(port))?.as_str())
    );
    // The server's side of the same flow, on b in the other namespace.
    assert!(
        run.events.iter().any(|e| is_flow_on(e, &p.b, port)),
        "no flow event on {}",
        p.b
    );
    assert!(
        run.stderr
            .contains(&format!("({}) {}: tc ingress, tc egress", p.ns_a, p.a))
    );
    assert_eq!(weft_packet_links()?, 0, "weft left links behind");
    Ok(())
}

/// Namespaces and interfaces that appear after weft started get programs
/// (rtnetlink, namespace rescan) and their traffic is counted; at exit
/// nothing stays attached.
#[test]
fn interfaces_added_after_start_get_programs() -> TestResult {
    let p = Pair::new()?;
    let glob = p.glob();
    let weft = Weft::start(&["--interface", &glob])?;
    assert_eq!(weft_packet_links()?, 0, "nothing matches yet");
    p.link()?;
    let end = Instant::now() + Duration::from_secs(10);
    while weft_packet_links()? < 4 {
        assert!(
            Instant::now() < end,
            "the new veths got no programs within 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = 19000 + (rand_u64() % 1000) as u16;
    let before = p.counters_a()?;
    let (cport, _, _) = exchange(&p, port, 5_000, 500)?;
    let after = p.counters_a()?;
    let found = weft.wait_for(Duration::from_secs(10), |e| is_flow_on(e, &p.a, port));
    let run = weft.stop()?;
    assert!(found, "no flow on the late veth; stderr:\n{}", run.stderr);

    let ev = the_flow(&run.events, &p.a, port, cport)?;
    assert_eq!(field_str(ev, "event.reason"), Some("fin"), "{ev}");
    let all = |f: &str| sum_on(&run.events, &p.a, port, f);
    assert_eq!(all("source.packets"), after[0] - before[0], "{ev}");
    assert_eq!(all("destination.packets"), after[2] - before[2], "{ev}");
    assert_eq!(weft_packet_links()?, 0, "weft left links behind");
    Ok(())
}

/// `--xdp offload` on a veth: one clear error naming the interface and its
/// driver, a non-zero exit, and nothing attached anywhere.
#[test]
fn xdp_offload_on_a_veth_fails_clearly_and_leaves_nothing() -> TestResult {
    let p = Pair::new()?;
    p.link()?;
    let mut child = Command::new(weft_bin())
        .args(["--interface", &p.a, "--xdp", "offload"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let end = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err("weft --xdp offload did not exit within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "weft succeeded: {err}");
    assert!(!err.contains("ready"), "{err}");
    assert!(
        err.contains(&format!("the driver of {} (veth) cannot offload XDP", p.a)),
        "unclear error: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "more than one line: {err}");
    let link = sh(&["ip", "-n", &p.ns_a, "link", "show", &p.a])?;
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(!link.contains("xdp"), "XDP left on {}: {link}", p.a);
    assert_eq!(weft_packet_links()?, 0, "weft left links behind");
    Ok(())
}

/// `--xdp generic`: received packets are counted by XDP instead of TC
/// ingress, with the same counters; weft's program is on the interface
/// while it runs and gone after.
#[test]
fn xdp_generic_counts_received_packets() -> TestResult {
    let p = Pair::new()?;
    p.link()?;
    let weft = Weft::start(&["--interface", &p.a, "--xdp", "generic"])?;
    let link = sh(&["ip", "-n", &p.ns_a, "link", "show", &p.a])?;
    assert!(
        String::from_utf8_lossy(&link.stdout).contains("weft_xdp"),
        "no XDP program on {}",
        p.a
    );
    let port = 20000 + (rand_u64() % 1000) as u16;
    let before = p.counters_a()?;
    let (cport, _, _) = exchange(&p, port, 50_000, 7_000)?;
    let after = p.counters_a()?;
    let found = weft.wait_for(Duration::from_secs(10), |e| is_flow_on(e, &p.a, port));
    let run = weft.stop()?;
    assert!(found, "no flow event; stderr:\n{}", run.stderr);
    let ev = the_flow(&run.events, &p.a, port, cport)?;
    let hooks = field(ev, "weft.packets.hooks").cloned().unwrap_or_default();
    assert_eq!(hooks, serde_json::json!(["tc-egress", "xdp"]), "{ev}");
    let all = |f: &str| sum_on(&run.events, &p.a, port, f);
    assert_eq!(all("source.packets"), after[0] - before[0], "{ev}");
    assert_eq!(all("destination.packets"), after[2] - before[2], "{ev}");
    assert_eq!(
        all("destination.bytes") + 14 * (after[2] - before[2]),
        after[3] - before[3],
        "{ev}"
    );
    let link = sh(&["ip", "-n", &p.ns_a, "link", "show", &p.a])?;
    assert!(!String::from_utf8_lossy(&link.stdout).contains("xdp"));
    assert_eq!(weft_packet_links()?, 0, "weft left links behind");
    Ok(())
}

/// The clsact fallback (kernels without tcx; forced here with the hidden
/// `--tc-clsact`): weft's filters count like the tcx links, and at exit
/// weft removes exactly what it added (filters outlive the process).
#[test]
fn clsact_fallback_counts_and_is_removed_at_exit() -> TestResult {
    let p = Pair::new()?;
    p.link()?;
    let weft = Weft::start(&["--interface", &p.a, "--tc-clsact"])?;
    let tc = |dir: &str| -> TestResult<String> {
        let out = sh(&[
            "ip", "netns", "exec", &p.ns_a, "tc", "filter", "show", "dev", &p.a, dir,
        ])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(
        tc("ingress")?.contains("weft_tc_ingress"),
        "{}",
        tc("ingress")?
    );
    assert!(
        tc("egress")?.contains("weft_tc_egress"),
        "{}",
        tc("egress")?
    );
    let port = 21000 + (rand_u64() % 1000) as u16;
    let before = p.counters_a()?;
    let (cport, _, _) = exchange(&p, port, 40_000, 3_000)?;
    let after = p.counters_a()?;
    let found = weft.wait_for(Duration::from_secs(10), |e| is_flow_on(e, &p.a, port));
    let run = weft.stop()?;
    assert!(found, "no flow event; stderr:\n{}", run.stderr);
    let ev = the_flow(&run.events, &p.a, port, cport)?;
    assert_eq!(field_str(ev, "event.reason"), Some("fin"), "{ev}");
    let all = |f: &str| sum_on(&run.events, &p.a, port, f);
    assert_eq!(all("source.packets"), after[0] - before[0], "{ev}");
    assert_eq!(all("destination.packets"), after[2] - before[2], "{ev}");
    assert!(
        !tc("ingress")?.contains("weft"),
        "filter left: {}",
        tc("ingress")?
    );
    assert!(
        !tc("egress")?.contains("weft"),
        "filter left: {}",
        tc("egress")?
    );
    let qdisc = sh(&[
        "ip", "netns", "exec", &p.ns_a, "tc", "qdisc", "show", "dev", &p.a,
    ])?;
    assert!(
        !String::from_utf8_lossy(&qdisc.stdout).contains("clsact"),
        "weft's clsact qdisc left behind"
    );
    Ok(())
}

const TAGGED: &str = r#"
import socket, struct, sys
dev, src_mac, dst_mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), bytes.fromhex(sys.argv[3].replace(":", ""))
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def frame(tags, sport, payload):
    udp = struct.pack("!HHHH", sport, 7777, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton("10.77.0.1"), socket.inet_aton("10.77.0.2"))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = dst_mac + src_mac
    for tpid, vid in tags:
        eth += struct.pack("!HH", tpid, vid)
    return eth + struct.pack("!H", 0x0800) + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
for _ in range(3):
    s.send(frame([(0x8100, 100)], 5001, b"v" * 100))
for _ in range(2):
    s.send(frame([(0x88a8, 200), (0x8100, 300)], 5002, b"q" * 50))
"#;

/// VLAN tags on the packet path: hand-made 802.1Q and 802.1ad+802.1Q
/// (QinQ) UDP frames sent raw on `a`. At `a`'s egress the tags are in the
/// frame; at `b`'s ingress the kernel has moved the outer tag into the
/// packet's metadata first: both ways give the ids, and the L3 bytes are
/// the IP packets' own lengths.
#[test]
fn vlan_tags_are_parsed_inline_and_from_metadata() -> TestResult {
    let p = Pair::new()?;
    p.link()?;
    let glob = p.glob();
    let weft = Weft::start(&["--interface", &glob])?;
    python_in(
        &p.ns_a,
        TAGGED,
        &[&p.a, MAC_A, MAC_B],
        Duration::from_secs(20),
    )?;
    // UDP flows end when idle or when weft stops: stop it now.
    std::thread::sleep(Duration::from_millis(300));
    let run = weft.stop()?;
    let udp_on = |dev: &str, sport: u64| {
        run.events
            .iter()
            .find(|e| {
                field_str(e, "event.action") == Some("flow")
                    && field_u64(e, "source.port") == Some(sport)
                    && (field_str(e, "observer.egress.interface.name") == Some(dev)
                        || field_str(e, "observer.ingress.interface.name") == Some(dev))
            })
            .cloned()
            .ok_or(format!(
                "no flow from port {sport} on {dev}; stderr:\n{}",
                run.stderr
            ))
    };
    for dev in [&p.a, &p.b] {
        let one = udp_on(dev, 5001)?;
        assert_eq!(field_str(&one, "network.vlan.id"), Some("100"), "{one}");
        assert_eq!(field(&one, "network.inner"), None, "{one}");
        assert_eq!(field_u64(&one, "source.packets"), Some(3), "{one}");
        assert_eq!(
            field_u64(&one, "source.bytes"),
            Some(3 * (20 + 8 + 100)),
            "{one}"
        );
        assert_eq!(field_str(&one, "network.transport"), Some("udp"));
        assert_eq!(field_str(&one, "event.reason"), Some("exit"));
        let qinq = udp_on(dev, 5002)?;
        assert_eq!(field_str(&qinq, "network.vlan.id"), Some("200"), "{qinq}");
        assert_eq!(
            field_str(&qinq, "network.inner.vlan.id"),
            Some("300"),
            "{qinq}"
        );
        assert_eq!(field_u64(&qinq, "source.packets"), Some(2), "{qinq}");
        assert_eq!(
            field_u64(&qinq, "source.bytes"),
            Some(2 * (20 + 8 + 50)),
            "{qinq}"
        );
    }
    Ok(())
}
