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

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_itest::netns::sh;
use weft_itest::*;

/// The addresses of one family on the pair.
struct Family {
    a: &'static str,
    b: &'static str,
    prefix: u8,
    /// ECS `network.type`.
    name: &'static str,
    /// The smallest IP + TCP header of a packet.
    min_header: u64,
}

const V4: Family = Family {
    a: "10.77.0.1",
    b: "10.77.0.2",
    prefix: 24,
    name: "ipv4",
    min_header: 40,
};
const V6: Family = Family {
    a: "fd77::1",
    b: "fd77::2",
    prefix: 64,
    name: "ipv6",
    min_header: 60,
};
const MAC_A: &str = "02:77:00:00:00:01";
const MAC_B: &str = "02:77:00:00:00:02";

/// Where side `b` lives: an `ip netns` namespace, or the network namespace
/// of a process made with `unshare --net` (as a container runtime does: it
/// is in no /run/netns file, only in /proc/PID/ns/net).
enum NsB {
    Named(String),
    Container(Proc),
}

/// Two namespaces joined by a veth pair: `a` (family's `a`, MAC ..:01) in
/// `ns_a`, `b` in the other. Deleted on drop, also on failure (a container
/// namespace goes with its process, killed by pid).
struct Pair {
    ns_a: String,
    ns_b: NsB,
    a: String,
    b: String,
    fam: &'static Family,
    /// Prefix of every name of this pair: weft's `--interface` glob.
    tag: String,
}

/// Sysctls that keep a namespace's links quiet apart from the test's own
/// traffic: IPv6 off for IPv4 pairs; for IPv6 pairs no link-local address,
/// no router solicitation, no duplicate address detection.
fn quiet_sysctls(fam: &Family) -> &'static [&'static str] {
    if fam.name == "ipv4" {
        &[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]
    } else {
        &[
            "net.ipv6.conf.all.accept_ra=0",
            "net.ipv6.conf.default.accept_ra=0",
            "net.ipv6.conf.all.router_solicitations=0",
            "net.ipv6.conf.default.router_solicitations=0",
            "net.ipv6.conf.default.addr_gen_mode=1",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]
    }
}

impl Pair {
    fn new() -> TestResult<Pair> {
        Pair::with(&V4, false)
    }

    /// A pair of `fam`; with `container`, `b`'s namespace is a process'
    /// (`unshare --net sleep`), not an `ip netns` one.
    fn with(fam: &'static Family, container: bool) -> TestResult<Pair> {
        Pair::with_tag(Pair::new_tag(), fam, container)
    }

    /// A fresh name prefix (weft's `--interface` glob is `TAG*`).
    fn new_tag() -> String {
        format!("wp{:06x}", rand_u64() & 0xff_ffff)
    }

    fn with_tag(tag: String, fam: &'static Family, container: bool) -> TestResult<Pair> {
        require_root();
        let ns_b = if container {
            let child = Command::new("unshare")
                .args(["--net", "sleep", "300"])
                .stdin(Stdio::null())
                .spawn()?;
            NsB::Container(Proc { child })
        } else {
            NsB::Named(format!("{tag}-nb"))
        };
        let p = Pair {
            ns_a: format!("{tag}-na"),
            ns_b,
            a: format!("{tag}a"),
            b: format!("{tag}b"),
            fam,
            tag,
        };
        sh(&["ip", "netns", "add", &p.ns_a])?;
        match &p.ns_b {
            NsB::Named(n) => {
                sh(&["ip", "netns", "add", n])?;
            }
            NsB::Container(c) => {
                // unshare has made the namespace once the process' differs.
                let ours = std::fs::metadata("/proc/self/ns/net")?.ino();
                let theirs = format!("/proc/{}/ns/net", c.pid());
                let end = Instant::now() + Duration::from_secs(5);
                while std::fs::metadata(&theirs).map(|m| m.ino()).unwrap_or(ours) == ours {
                    if Instant::now() > end {
                        return Err("unshare --net made no namespace within 5 s".into());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        for b in [false, true] {
            let mut cmd = p.exec_in(b);
            cmd.extend(["sysctl", "-qw"].map(String::from));
            cmd.extend(quiet_sysctls(fam).iter().map(|s| s.to_string()));
            sh(&cmd.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        Ok(p)
    }

    /// The command prefix that runs a program in `a`'s (false) or `b`'s
    /// (true) namespace.
    fn exec_in(&self, b: bool) -> Vec<String> {
        let v: Vec<&str> = match (&self.ns_b, b) {
            (_, false) => vec!["ip", "netns", "exec", &self.ns_a],
            (NsB::Named(n), true) => vec!["ip", "netns", "exec", n],
            (NsB::Container(c), true) => {
                return ["nsenter", "-t", &c.pid().to_string(), "-n"]
                    .map(String::from)
                    .to_vec();
            }
        };
        v.into_iter().map(String::from).collect()
    }

    /// Run `ip ARGS` in a's or b's namespace.
    fn ip(&self, b: bool, args: &[&str]) -> TestResult<Output> {
        let mut cmd = self.exec_in(b);
        cmd.push("ip".into());
        cmd.extend(args.iter().map(|s| s.to_string()));
        sh(&cmd.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `b`'s namespace as `ip link ... netns` takes it: a name or a pid.
    fn ns_b_arg(&self) -> String {
        match &self.ns_b {
            NsB::Named(n) => n.clone(),
            NsB::Container(c) => c.pid().to_string(),
        }
    }

    /// The inode of `b`'s namespace (weft's `netns` in its reports).
    fn ns_b_ino(&self) -> TestResult<u64> {
        let path = match &self.ns_b {
            NsB::Named(n) => format!("/run/netns/{n}"),
            NsB::Container(c) => format!("/proc/{}/ns/net", c.pid()),
        };
        Ok(std::fs::metadata(path)?.ino())
    }

    /// Create the veth pair inside the namespaces, addressed and up, with
    /// static neighbours (no ARP, no ND on the link).
    fn link(&self) -> TestResult {
        sh(&[
            "ip",
            "link",
            "add",
            &self.a,
            "netns",
            &self.ns_a,
            "address",
            MAC_A,
            "type",
            "veth",
            "peer",
            "name",
            &self.b,
            "netns",
            &self.ns_b_arg(),
            "address",
            MAC_B,
        ])?;
        let f = self.fam;
        for (side, dev, ip, peer_ip, peer_mac) in [
            (false, &self.a, f.a, f.b, MAC_B),
            (true, &self.b, f.b, f.a, MAC_A),
        ] {
            let cidr = format!("{ip}/{}", f.prefix);
            let mut add = vec!["addr", "add", &cidr, "dev", dev];
            if f.name == "ipv6" {
                add.push("nodad");
            }
            self.ip(side, &add)?;
            self.ip(side, &["link", "set", dev, "up"])?;
            self.ip(side, &["link", "set", "lo", "up"])?;
            self.ip(
                side,
                &[
                    "neigh",
                    "replace",
                    peer_ip,
                    "lladdr",
                    peer_mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ],
            )?;
        }
        if f.name == "ipv6" {
            self.settle()?;
        }
        Ok(())
    }

    /// Wait until the link is quiet (IPv6: the MLD reports of joining the
    /// addresses' multicast groups, repeated for about a second), so that
    /// the interface counters hold only the test's traffic.
    fn settle(&self) -> TestResult {
        let end = Instant::now() + Duration::from_secs(15);
        let mut last = self.counters(false)?;
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_millis(2500) {
            if Instant::now() > end {
                return Err(format!("{} still busy after 15 s", self.a).into());
            }
            std::thread::sleep(Duration::from_millis(250));
            let now = self.counters(false)?;
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
        Ok(())
    }

    /// `(tx_packets, tx_bytes, rx_packets, rx_bytes)` of `a` (false) or
    /// `b` (true).
    fn counters(&self, b: bool) -> TestResult<[u64; 4]> {
        let dev = if b { &self.b } else { &self.a };
        let out = self.ip(b, &["-s", "-j", "link", "show", dev])?;
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

    /// End the container's process (by pid): its namespace goes, and with
    /// it the veth pair, unless something still holds the namespace.
    fn end_container(&mut self) -> TestResult {
        let NsB::Container(c) = &mut self.ns_b else {
            return Err("not a container pair".into());
        };
        c.child.kill()?;
        c.child.wait()?;
        Ok(())
    }

    fn counters_a(&self) -> TestResult<[u64; 4]> {
        self.counters(false)
    }

    fn glob(&self) -> String {
        format!("{}*", self.tag)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth in it (and so its peer);
        // a container's goes with its process (Proc's drop kills it).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns_a])
            .output();
        if let NsB::Named(n) = &self.ns_b {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Run `script` with python3 behind `prefix` (a namespace's
/// [`Pair::exec_in`]), bounded by `timeout`; its stdout.
fn python_in(
    prefix: Vec<String>,
    script: &str,
    args: &[&str],
    timeout: Duration,
) -> TestResult<String> {
    let ns = prefix.join(" ");
    let mut child = Command::new(&prefix[0])
        .args(&prefix[1..])
        .args(["python3", "-c", script])
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
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
print(s.getsockname()[1], flush=True)
up, pause = int(sys.argv[3]), float(sys.argv[4])
if pause:
    # Half, a pause, the other half, a pause: a flow active for 2 * pause.
    s.sendall(b"q" * (up // 2)); time.sleep(pause)
    s.sendall(b"q" * (up - up // 2)); time.sleep(pause)
else:
    s.sendall(b"q" * up)
s.shutdown(socket.SHUT_WR); n = 0
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
    exchange_paced(p, port, up, down, 0.0)
}

/// [`exchange`], the client sending half of `up`, pausing `pause` seconds,
/// sending the rest and pausing again before it ends its side.
fn exchange_paced(
    p: &Pair,
    port: u16,
    up: usize,
    down: usize,
    pause: f64,
) -> TestResult<(u16, u64, u64)> {
    let ns_b = p.exec_in(true);
    let ip_b = p.fam.b;
    let (port_s, down_s) = (port.to_string(), down.to_string());
    let server = std::thread::spawn(move || {
        python_in(
            ns_b,
            SERVER,
            &[ip_b, &port_s, &down_s],
            Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())
    });
    let out = python_in(
        p.exec_in(false),
        CLIENT,
        &[
            p.fam.b,
            &port.to_string(),
            &up.to_string(),
            &pause.to_string(),
        ],
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
    tc_counters_match(&V4)
}

/// The same over IPv6 (extension-free TCP, 60-byte headers at least).
#[test]
fn tc_counters_match_the_interface_counters_ipv6() -> TestResult {
    tc_counters_match(&V6)
}

fn tc_counters_match(fam: &'static Family) -> TestResult {
    let p = Pair::with(fam, false)?;
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
    assert_eq!(field_str(ev, "source.ip"), Some(fam.a), "{ev}");
    assert_eq!(field_str(ev, "destination.ip"), Some(fam.b), "{ev}");
    assert_eq!(field_str(ev, "network.transport"), Some("tcp"));
    assert_eq!(field_str(ev, "network.type"), Some(fam.name));
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
    // The payload is inside, with at least an IP + TCP header per packet.
    let h = fam.min_header;
    assert!(
        u("source.bytes") >= up as u64 + h * u("source.packets"),
        "{ev}"
    );
    assert!(
        u("destination.bytes") >= down as u64 + h * u("destination.packets"),
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
        Some(community_id_reference(fam.a, u64::from(cport), fam.b, u64::from(port))?.as_str())
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

/// tcx and XDP links process `pid` holds (its /proc fdinfo): unlike
/// [`weft_packet_links`], blind to any other weft running on the machine.
fn packet_links_of(pid: u32) -> TestResult<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))?.flatten() {
        let info = std::fs::read_to_string(e.path()).unwrap_or_default();
        if info.contains("link_type:\ttcx\n") || info.contains("link_type:\txdp\n") {
            n += 1;
        }
    }
    Ok(n)
}

/// Wait (bounded) until the packet links weft `pid` holds number `want`
/// or more (`more`) or exactly `want` (not `more`).
fn wait_links(pid: u32, want: usize, more: bool, what: &str) -> TestResult {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let n = packet_links_of(pid)?;
        if (more && n >= want) || (!more && n == want) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("{what}: {n} links of weft after 10 s, want {want}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A container-style namespace (a process' `unshare --net`: no /run/netns
/// file, only /proc/PID/ns/net) made after weft started, joined to an
/// `ip netns` one by a veth moved into it by pid: its interface gets
/// programs, the server's side of an exchange on it matches the veth's own
/// counters, and when the process exits weft lets the namespace go: it and
/// the veth pair are destroyed (nothing of weft keeps them alive) and no
/// link of weft stays while weft still runs.
#[test]
fn container_namespace_made_after_start_is_followed_and_let_go() -> TestResult {
    let tag = Pair::new_tag();
    let weft = Weft::start(&["--interface", &format!("{tag}*")])?;
    assert_eq!(packet_links_of(weft.pid())?, 0, "nothing matches yet");
    let mut p = Pair::with_tag(tag, &V4, true)?;
    p.link()?;
    wait_links(weft.pid(), 4, true, "the container's veth pair")?;
    let ino = p.ns_b_ino()?;
    let port = 22000 + (rand_u64() % 1000) as u16;
    let (up, down) = (100_000usize, 3_000usize);
    let before = p.counters(true)?;
    let (cport, got_by_server, got_by_client) = exchange(&p, port, up, down)?;
    let after = p.counters(true)?;
    assert_eq!((got_by_server, got_by_client), (up as u64, down as u64));
    let d: Vec<u64> = (0..4).map(|i| after[i] - before[i]).collect();
    let found = weft.wait_for(Duration::from_secs(10), |e| is_flow_on(e, &p.b, port));

    // The process goes, and so must its namespace and the pair.
    p.end_container()?;
    let gone = wait_links(weft.pid(), 0, false, "after the container's namespace went");
    let pair_left = sh(&["ip", "-n", &p.ns_a, "link", "show", &p.a]).is_ok();
    let run = weft.stop()?;
    assert!(
        found,
        "no flow event on {}; stderr:
{}",
        p.b, run.stderr
    );
    gone?;
    assert!(
        !pair_left,
        "{} still exists: the container's namespace was kept alive",
        p.a
    );

    let ev = the_flow(&run.events, &p.b, port, cport)?;
    assert_eq!(field_str(ev, "event.reason"), Some("fin"), "{ev}");
    assert_eq!(field_str(ev, "source.ip"), Some(V4.a), "{ev}");
    assert_eq!(field_str(ev, "destination.ip"), Some(V4.b), "{ev}");
    assert_eq!(field_u64(ev, "weft.netns.inode"), Some(ino), "{ev}");
    assert_eq!(field(ev, "weft.netns.name"), None, "{ev}");
    // On b (the server's side) the client's packets are received.
    let all = |f: &str| sum_on(&run.events, &p.b, port, f);
    assert_eq!(all("source.packets"), d[2], "RX packets of {}: {ev}", p.b);
    assert_eq!(
        all("destination.packets"),
        d[0],
        "TX packets of {}: {ev}",
        p.b
    );
    assert_eq!(all("source.bytes") + 14 * d[2], d[3], "RX bytes: {ev}");
    assert_eq!(all("destination.bytes") + 14 * d[0], d[1], "TX bytes: {ev}");
    assert!(
        run.stderr
            .contains(&format!("netns {ino} {}: tc ingress, tc egress", p.b)),
        "{}",
        run.stderr
    );
    Ok(())
}

/// Long flows (`--flow-update 1`): a connection active for ~5 s (half its
/// bytes, 2.5 s, the other half, 2.5 s) gives `flow-update` events before
/// its end, with cumulative counts: the first after the first half only,
/// never decreasing, never above the end's, and the end still matches the
/// veth's own counters (updates are not ends: `event.action` differs).
#[test]
fn long_flows_give_updates_before_their_end() -> TestResult {
    let p = Pair::new()?;
    p.link()?;
    let weft = Weft::start(&["--interface", &p.glob(), "--flow-update", "1"])?;
    let port = 23000 + (rand_u64() % 1000) as u16;
    let (up, down) = (200_000u64, 1_000u64);
    let before = p.counters_a()?;
    let (cport, got_by_server, _) = exchange_paced(&p, port, up as usize, down as usize, 2.5)?;
    assert_eq!(got_by_server, up, "the server's own count");
    let after = p.counters_a()?;
    let found = weft.wait_for(Duration::from_secs(10), |e| is_flow_on(e, &p.a, port));
    let run = weft.stop()?;
    assert!(found, "no flow event; stderr:\n{}", run.stderr);
    let on_a = |e: &Value| {
        field_u64(e, "source.port") == Some(u64::from(cport))
            && field_u64(e, "destination.port") == Some(u64::from(port))
            && field_str(e, "observer.egress.interface.name") == Some(p.a.as_str())
    };
    let end_at = run
        .events
        .iter()
        .position(|e| on_a(e) && field_str(e, "event.action") == Some("flow"))
        .ok_or("no end of the flow")?;
    let end = &run.events[end_at];
    let updates: Vec<(usize, &Value)> = run
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| on_a(e) && field_str(e, "event.action") == Some("flow-update"))
        .collect();
    assert!(
        !updates.is_empty(),
        "no flow-update of a 5 s flow with --flow-update 1; stderr:\n{}",
        run.stderr
    );
    let u = |e: &Value, f: &str| field_u64(e, f).unwrap_or(u64::MAX);
    let mut prev = [0u64; 4];
    for (i, ev) in &updates {
        assert!(*i < end_at, "an update after the end: {ev}");
        assert_eq!(field_str(ev, "event.reason"), Some("update"), "{ev}");
        assert_eq!(
            field(ev, "event.type"),
            Some(&serde_json::json!(["connection", "info"]))
        );
        let now = [
            u(ev, "source.packets"),
            u(ev, "source.bytes"),
            u(ev, "destination.packets"),
            u(ev, "destination.bytes"),
        ];
        for k in 0..4 {
            assert!(prev[k] <= now[k], "counts went down: {ev}");
            let fin = [
                "source.packets",
                "source.bytes",
                "destination.packets",
                "destination.bytes",
            ][k];
            assert!(now[k] <= u(end, fin), "update above the end: {ev} {end}");
        }
        prev = now;
    }
    // The first update comes 1-2 s into the flow: the first half was sent
    // (with a 40-byte header per packet at least), the second not yet.
    let first = updates[0].1;
    let (pk, by) = (u(first, "source.packets"), u(first, "source.bytes"));
    assert!(
        by >= up / 2 + 40 * pk,
        "first update lacks the first half: {first}"
    );
    assert!(by < up, "first update already has the second half: {first}");
    // The end is whole: the veth's counters, as without updates.
    let d: Vec<u64> = (0..4).map(|i| after[i] - before[i]).collect();
    let all = |f: &str| sum_on(&run.events, &p.a, port, f);
    assert_eq!(all("source.packets"), d[0], "{end}");
    assert_eq!(all("destination.packets"), d[2], "{end}");
    assert_eq!(all("source.bytes") + 14 * d[0], d[1], "{end}");
    assert!(u(end, "source.bytes") >= up + 40 * u(end, "source.packets"));
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
        p.exec_in(false),
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
