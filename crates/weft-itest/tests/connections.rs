//! End-to-end: TCP connection start/end events (sock_ops on the cgroup v2
//! root, accept/connect owners, seeding of connections older than weft).
//!
//! Each test builds two network namespaces joined by a veth pair (deleted
//! on drop, also on failure), runs a Python server in one and a Python
//! client in the other. Ground truth is what the peers print: their pids,
//! the client's port, the bytes each really sent and received.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weft_itest::*;

const V4: (&str, &str) = ("10.231.0.1", "10.231.0.2");
const V6: (&str, &str) = ("fd00:231::1", "fd00:231::2");

/// Two network namespaces `<tag>a` and `<tag>b` joined by a veth pair with
/// IPv4 and IPv6 addresses; both namespaces (and so the pair) are deleted
/// on drop.
struct NetPair {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> TestResult {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

impl NetPair {
    fn new() -> TestResult<NetPair> {
        require_root();
        let tag = format!("wc{:06x}", rand_u64() & 0xff_ffff);
        let pair = NetPair {
            a: format!("{tag}a"),
            b: format!("{tag}b"),
        };
        let (va, vb) = (format!("{tag}va"), format!("{tag}vb"));
        ip(&["netns", "add", &pair.a])?;
        ip(&["netns", "add", &pair.b])?;
        // Created inside namespace a: never an interface of the host's.
        ip(&[
            "-n", &pair.a, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns",
            &pair.b,
        ])?;
        for (ns, dev, v4, v6) in [(&pair.a, &va, V4.0, V6.0), (&pair.b, &vb, V4.1, V6.1)] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            ip(&[
                "-n",
                ns,
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// Accepts one connection, reads until the client's EOF, answers with
/// `reply` bytes and closes. Prints `ready PID`, then `done RECEIVED SENT`.
const SERVER: &str = r#"
import os, socket, sys
addr, port, reply = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
l = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(1)
print("ready", os.getpid(), flush=True)
c, _ = l.accept()
got = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    got += len(b)
c.sendall(b"s" * reply)
c.close()
print("done", got, reply, flush=True)
"#;

/// Connects, sends `n` bytes (with `wait`: half, then the rest after a line
/// on stdin), shuts its side down and reads until EOF. Prints
/// `connected PID LOCAL_PORT`, then `done SENT RECEIVED`. With `late`, it
/// first prints `pid PID` and connects after a line on stdin.
const CLIENT: &str = r#"
import os, socket, sys
addr, port, n, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "wait"
if sys.argv[4] == "late":
    print("pid", os.getpid(), flush=True)
    sys.stdin.readline()
s = socket.create_connection((addr, port))
first = n // 2 if wait else n
s.sendall(b"c" * first)
print("connected", os.getpid(), s.getsockname()[1], flush=True)
if wait:
    sys.stdin.readline()
    s.sendall(b"c" * (n - first))
s.shutdown(socket.SHUT_WR)
got = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    got += len(b)
s.close()
print("done", n, got, flush=True)
"#;

/// A Python script running in a namespace, read line by line; killed (by
/// pid) on drop.
struct Peer(Helper);

impl Peer {
    fn start(ns: &str, script: &str, args: &[&str]) -> TestResult<Peer> {
        // `ip netns exec` execs python3: the child's pid is the script's.
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "python3", "-c", script])
            .args(args);
        Ok(Peer(Helper::spawn(cmd)?))
    }

    /// The words of the next line, which must start with `word`.
    fn expect(&self, word: &str) -> TestResult<Vec<u64>> {
        let line = self
            .0
            .read_line(Duration::from_secs(20))
            .map_err(|_| format!("no `{word}` line from peer within 20 s"))?;
        let mut it = line.split_whitespace();
        if it.next() != Some(word) {
            return Err(format!("expected `{word} ...`, got {line:?}").into());
        }
        Ok(it.filter_map(|w| w.parse().ok()).collect())
    }

    fn send_line(&mut self) -> TestResult {
        self.0.write_line("go")
    }
}

/// What the peers did, as they report it.
struct Truth {
    client_ip: &'static str,
    server_ip: &'static str,
    port: u16,
    client_pid: u64,
    client_port: u64,
    server_pid: u64,
    /// Bytes the client sent (and the server received).
    sent: u64,
    /// Bytes the server sent (and the client received).
    received: u64,
}

/// Connection events of this connection seen from `role`'s side.
fn conn_events<'a>(events: &'a [Value], t: &Truth, role: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| field_str(e, "event.action").is_some_and(|a| a.starts_with("connection-")))
        .filter(|e| field_str(e, "weft.flow.role") == Some(role))
        .filter(|e| {
            field_str(e, "destination.ip") == Some(t.server_ip)
                && field_u64(e, "destination.port") == Some(u64::from(t.port))
                && field_str(e, "source.ip") == Some(t.client_ip)
                && field_u64(e, "source.port") == Some(t.client_port)
        })
        .collect()
}

/// The exit summary counts no lost connection records or ends.
fn no_connection_losses(stderr: &str) {
    for what in [
        "connection ends not reported",
        "ring buffer full: connection start/end records",
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no `{what}` line in the summary:\n{stderr}"));
        assert!(line.trim_end().ends_with(" 0"), "{line}");
    }
}

fn ends_seen(w: &Weft, t: &Truth) -> bool {
    w.wait_for(Duration::from_secs(15), |_| {
        let ev = w.events_so_far();
        ["client", "server"].iter().all(|r| {
            conn_events(&ev, t, r)
                .iter()
                .any(|e| field_str(e, "event.action") == Some("connection-end"))
        })
    })
}

/// Start and end of one side: right process, tuple, community id, bytes.
fn check_side(events: &[Value], t: &Truth, role: &str, seeded: bool) -> TestResult<i64> {
    let evs = conn_events(events, t, role);
    let start_action = if seeded {
        "connection-seeded"
    } else {
        "connection-start"
    };
    let start = evs
        .iter()
        .find(|e| field_str(e, "event.action") == Some(start_action))
        .ok_or_else(|| format!("no {start_action} event on the {role} side: {evs:#?}"))?;
    let end = evs
        .iter()
        .find(|e| field_str(e, "event.action") == Some("connection-end"))
        .ok_or_else(|| format!("no connection-end event on the {role} side: {evs:#?}"))?;
    let pid = if role == "client" {
        t.client_pid
    } else {
        t.server_pid
    };
    let community =
        community_id_reference(t.client_ip, t.client_port, t.server_ip, u64::from(t.port))?;
    for e in [start, end] {
        assert_eq!(field_u64(e, "process.pid"), Some(pid), "{role} owner: {e}");
        assert_eq!(
            field(e, "event.category"),
            Some(&serde_json::json!(["network"]))
        );
        assert_eq!(field_str(e, "network.transport"), Some("tcp"));
        assert_eq!(
            field_str(e, "network.type"),
            Some(if t.client_ip.contains(':') {
                "ipv6"
            } else {
                "ipv4"
            })
        );
        assert_eq!(
            field_str(e, "network.community_id"),
            Some(community.as_str())
        );
        assert!(field_u64(e, "weft.flow.cookie").is_some_and(|c| c != 0));
        assert_eq!(
            field(e, "weft.connection.seeded"),
            Some(&Value::Bool(seeded))
        );
    }
    assert_eq!(
        field(start, "event.type"),
        Some(&serde_json::json!(["connection", "start"]))
    );
    assert_eq!(
        field(end, "event.type"),
        Some(&serde_json::json!(["connection", "end"]))
    );
    assert_eq!(
        field_u64(start, "weft.flow.cookie"),
        field_u64(end, "weft.flow.cookie")
    );
    // Client = source: what the client sent, what the server sent.
    assert_eq!(
        field_u64(end, "source.bytes"),
        Some(t.sent),
        "{role} source.bytes: {end}"
    );
    assert_eq!(
        field_u64(end, "destination.bytes"),
        Some(t.received),
        "{role} destination.bytes: {end}"
    );
    if seeded {
        // Established before weft: the duration is not known.
        assert!(field(end, "event.duration").is_none());
    } else {
        assert!(field_u64(end, "event.duration").is_some_and(|d| d > 0));
    }
    field(end, "weft.connection.netns_cookie")
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("no netns cookie: {end}").into())
}

fn start_and_end(family: (&'static str, &'static str)) -> TestResult {
    let net = NetPair::new()?;
    let weft = Weft::start(&[])?;
    let port = 20000 + (rand_u64() % 20000) as u16;
    let (sent, reply) = (12_345u64, 54_321u64);
    let server = Peer::start(
        &net.b,
        SERVER,
        &[family.1, &port.to_string(), &reply.to_string()],
    )?;
    let server_pid = server.expect("ready")?[0];
    let client = Peer::start(
        &net.a,
        CLIENT,
        &[family.1, &port.to_string(), &sent.to_string(), "no"],
    )?;
    let c = client.expect("connected")?;
    let (client_pid, client_port) = (c[0], c[1]);
    let c_done = client.expect("done")?;
    let s_done = server.expect("done")?;
    // The peers' own counts agree with each other.
    assert_eq!((c_done[0], c_done[1]), (sent, reply));
    assert_eq!((s_done[0], s_done[1]), (sent, reply));
    let t = Truth {
        client_ip: family.0,
        server_ip: family.1,
        port,
        client_pid,
        client_port,
        server_pid,
        sent: c_done[0],
        received: c_done[1],
    };
    let seen = ends_seen(&weft, &t);
    let run = weft.stop()?;
    assert!(
        seen,
        "no connection-end on both sides; stderr:\n{}",
        run.stderr
    );
    no_connection_losses(&run.stderr);
    let client_ns = check_side(&run.events, &t, "client", false)?;
    let server_ns = check_side(&run.events, &t, "server", false)?;
    assert_ne!(
        client_ns, server_ns,
        "client and server live in different network namespaces"
    );
    drop(net);
    Ok(())
}

#[test]
fn connection_start_and_end_across_namespaces_ipv4() -> TestResult {
    start_and_end(V4)
}

#[test]
fn connection_start_and_end_across_namespaces_ipv6() -> TestResult {
    start_and_end(V6)
}

/// A connection opened before weft starts and closed while it runs (IPv4
/// and IPv6; the iterator runs in each namespace): a
/// seeded start with its owners, then its end with the whole connection's
/// bytes.
#[test]
fn connection_older_than_weft_is_seeded_ipv4() -> TestResult {
    seeded(V4)
}

#[test]
fn connection_older_than_weft_is_seeded_ipv6() -> TestResult {
    seeded(V6)
}

fn seeded(family: (&'static str, &'static str)) -> TestResult {
    let net = NetPair::new()?;
    let port = 20000 + (rand_u64() % 20000) as u16;
    let (sent, reply) = (4_000u64, 777u64);
    let server = Peer::start(
        &net.b,
        SERVER,
        &[family.1, &port.to_string(), &reply.to_string()],
    )?;
    let server_pid = server.expect("ready")?[0];
    let mut client = Peer::start(
        &net.a,
        CLIENT,
        &[family.1, &port.to_string(), &sent.to_string(), "wait"],
    )?;
    let c = client.expect("connected")?;
    let (client_pid, client_port) = (c[0], c[1]);

    let weft = Weft::start(&[])?;
    client.send_line()?;
    let c_done = client.expect("done")?;
    let s_done = server.expect("done")?;
    assert_eq!((c_done[0], c_done[1]), (sent, reply));
    assert_eq!((s_done[0], s_done[1]), (sent, reply));
    let t = Truth {
        client_ip: family.0,
        server_ip: family.1,
        port,
        client_pid,
        client_port,
        server_pid,
        sent: c_done[0],
        received: c_done[1],
    };
    let seen = ends_seen(&weft, &t);
    let run = weft.stop()?;
    assert!(
        seen,
        "no connection-end on both sides; stderr:\n{}",
        run.stderr
    );
    no_connection_losses(&run.stderr);
    check_side(&run.events, &t, "client", true)?;
    check_side(&run.events, &t, "server", true)?;
    drop(net);
    Ok(())
}

/// `--no-connections`: no connection events at all.
#[test]
fn no_connections_flag_turns_them_off() -> TestResult {
    let net = NetPair::new()?;
    let weft = Weft::start(&["--no-connections"])?;
    let port = 20000 + (rand_u64() % 20000) as u16;
    let server = Peer::start(&net.b, SERVER, &[V4.1, &port.to_string(), "10"])?;
    server.expect("ready")?;
    let client = Peer::start(&net.a, CLIENT, &[V4.1, &port.to_string(), "10", "no"])?;
    client.expect("connected")?;
    client.expect("done")?;
    server.expect("done")?;
    let run = weft.stop()?;
    let conn: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| field_str(e, "event.action").is_some_and(|a| a.starts_with("connection-")))
        .collect();
    assert!(conn.is_empty(), "{conn:#?}");
    assert!(run.success);
    drop(net);
    Ok(())
}

/// The golden thread: curl's HTTPS request to nginx, its http event and its
/// connection's start and end carry the same socket cookie, and the end
/// comes after the connection's decoded traffic (it closes the decoder's
/// flow). Ground truth: curl's own local port (`-w %{local_port}`, the
/// port nginx logs), its pid, nginx's worker pids.
#[test]
fn tls_connection_events_share_the_http_event_cookie() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&[])?;
    let uri = format!("/conn-{:x}", rand_u64());
    let (pid, out) = weft_itest::exchange::curl(
        &["--http1.1", "-o", "/dev/null", "-w", "%{local_port}"],
        &format!("https://127.0.0.1:{}{uri}", nginx.port),
    )?;
    let local_port: u64 = String::from_utf8_lossy(&out).trim().parse()?;
    // nginx logged the same client port.
    assert_eq!(
        nginx.wait_logged(&uri).map(u64::from),
        Some(local_port),
        "nginx's log"
    );
    let pid = u64::from(pid);
    let is_curl_end = |e: &Value| {
        field_str(e, "event.action") == Some("connection-end")
            && field_u64(e, "process.pid") == Some(pid)
    };
    let seen = weft.wait_for(Duration::from_secs(15), is_curl_end);
    let run = weft.stop()?;
    assert!(seen, "no connection-end of curl; stderr:\n{}", run.stderr);
    let pos = |pred: &dyn Fn(&Value) -> bool| run.events.iter().position(pred);
    let http = pos(&|e| {
        field_str(e, "event.action") == Some("http-transaction")
            && field_u64(e, "process.pid") == Some(pid)
            && field_str(e, "url.path") == Some(uri.as_str())
    })
    .ok_or("no http event of curl")?;
    let cookie =
        field_u64(&run.events[http], "weft.flow.cookie").ok_or("http event without cookie")?;
    let same_conn = |e: &Value, action: &str| {
        field_str(e, "event.action") == Some(action)
            && field_u64(e, "weft.flow.cookie") == Some(cookie)
    };
    let start = pos(&|e| same_conn(e, "connection-start")).ok_or("no start with the cookie")?;
    let end = pos(&|e| same_conn(e, "connection-end")).ok_or("no end with the cookie")?;
    assert!(
        start < http && http < end,
        "order: start {start}, http {http}, end {end}"
    );
    for i in [start, end] {
        let e = &run.events[i];
        assert_eq!(field_u64(e, "process.pid"), Some(pid), "{e}");
        assert_eq!(field_str(e, "weft.flow.role"), Some("client"));
        assert_eq!(field_u64(e, "source.port"), Some(local_port));
        assert_eq!(
            field_u64(e, "destination.port"),
            Some(u64::from(nginx.port))
        );
    }
    // nginx's side of the same connection: one of its workers accepted it.
    let workers: Vec<u64> = nginx.worker_pids().into_iter().map(u64::from).collect();
    let server_start = run
        .events
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("connection-start")
                && field_str(e, "weft.flow.role") == Some("server")
                && field_u64(e, "source.port") == Some(local_port)
                && field_u64(e, "destination.port") == Some(u64::from(nginx.port))
        })
        .ok_or("no server-side start")?;
    assert!(
        field_u64(server_start, "process.pid").is_some_and(|p| workers.contains(&p)),
        "server start owned by {:?}, workers {workers:?}",
        field_u64(server_start, "process.pid")
    );
    Ok(())
}

/// `--pid`: only the selected process' connections are reported (the
/// server's side of the same connection is not).
#[test]
fn pid_filter_reports_only_the_selected_process_connections() -> TestResult {
    let net = NetPair::new()?;
    let port = 20000 + (rand_u64() % 20000) as u16;
    let server = Peer::start(&net.b, SERVER, &[V4.1, &port.to_string(), "300"])?;
    let server_pid = server.expect("ready")?[0];
    let mut client = Peer::start(&net.a, CLIENT, &[V4.1, &port.to_string(), "200", "late"])?;
    let client_pid = client.expect("pid")?[0];
    let weft = Weft::start(&["--pid", &client_pid.to_string()])?;
    client.send_line()?;
    let c = client.expect("connected")?;
    let c_done = client.expect("done")?;
    server.expect("done")?;
    let t = Truth {
        client_ip: V4.0,
        server_ip: V4.1,
        port,
        client_pid,
        client_port: c[1],
        server_pid,
        sent: c_done[0],
        received: c_done[1],
    };
    let seen = weft.wait_for(Duration::from_secs(15), |e| {
        field_str(e, "event.action") == Some("connection-end")
            && field_u64(e, "process.pid") == Some(client_pid)
    });
    let run = weft.stop()?;
    assert!(
        seen,
        "no connection-end of the client; stderr:\n{}",
        run.stderr
    );
    check_side(&run.events, &t, "client", false)?;
    let others: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| field_str(e, "event.action").is_some_and(|a| a.starts_with("connection-")))
        .filter(|e| field_u64(e, "process.pid") != Some(client_pid))
        .collect();
    assert!(
        others.is_empty(),
        "connections of unselected processes: {others:#?}"
    );
    drop(net);
    Ok(())
}

/// Long connections (`--flow-update 1`): the client sends half its bytes
/// and holds the connection open until weft has reported it (bounded),
/// then sends the rest. Both sides give `connection-update` events before
/// their end, with the counts so far (cumulative, as the end's): the first
/// one the client's half exactly (acked; received by the server), nothing
/// from the server yet; none above the end's.
#[test]
fn long_connections_give_updates_with_the_bytes_so_far() -> TestResult {
    let net = NetPair::new()?;
    let weft = Weft::start(&["--flow-update", "1"])?;
    let port = 20000 + (rand_u64() % 20000) as u16;
    let (sent, reply) = (40_000u64, 3_000u64);
    let server = Peer::start(
        &net.b,
        SERVER,
        &[V4.1, &port.to_string(), &reply.to_string()],
    )?;
    let server_pid = server.expect("ready")?[0];
    let mut client = Peer::start(
        &net.a,
        CLIENT,
        &[V4.1, &port.to_string(), &sent.to_string(), "wait"],
    )?;
    let c = client.expect("connected")?;
    let (client_pid, client_port) = (c[0], c[1]);
    let mut t = Truth {
        client_ip: V4.0,
        server_ip: V4.1,
        port,
        client_pid,
        client_port,
        server_pid,
        sent,
        received: reply,
    };
    let updated = |ev: &[Value], role: &str| {
        conn_events(ev, &t, role)
            .iter()
            .any(|e| field_str(e, "event.action") == Some("connection-update"))
    };
    let both = weft.wait_for(Duration::from_secs(10), |_| {
        let ev = weft.events_so_far();
        updated(&ev, "client") && updated(&ev, "server")
    });
    client.send_line()?;
    let c_done = client.expect("done")?;
    let s_done = server.expect("done")?;
    assert_eq!((c_done[0], c_done[1]), (sent, reply));
    assert_eq!((s_done[0], s_done[1]), (sent, reply));
    t.sent = c_done[0];
    t.received = c_done[1];
    let seen = ends_seen(&weft, &t);
    let run = weft.stop()?;
    assert!(
        both,
        "no connection-update on both sides; stderr:\n{}",
        run.stderr
    );
    assert!(
        seen,
        "no connection-end on both sides; stderr:\n{}",
        run.stderr
    );
    for role in ["client", "server"] {
        check_side(&run.events, &t, role, false)?;
        let evs = conn_events(&run.events, &t, role);
        let end_at = evs
            .iter()
            .position(|e| field_str(e, "event.action") == Some("connection-end"))
            .ok_or("no end")?;
        let end = evs[end_at];
        let updates: Vec<(usize, &&Value)> = evs
            .iter()
            .enumerate()
            .filter(|(_, e)| field_str(e, "event.action") == Some("connection-update"))
            .collect();
        let pid = if role == "client" {
            client_pid
        } else {
            server_pid
        };
        let b = |e: &Value, f: &str| field_u64(e, f).unwrap_or(u64::MAX);
        for (i, u) in &updates {
            assert!(*i < end_at, "{role}: an update after the end: {u}");
            assert_eq!(field_u64(u, "process.pid"), Some(pid), "{u}");
            assert_eq!(
                field(u, "event.type"),
                Some(&serde_json::json!(["connection", "info"]))
            );
            assert_eq!(
                field_u64(u, "weft.flow.cookie"),
                field_u64(end, "weft.flow.cookie")
            );
            for f in ["source.bytes", "destination.bytes", "event.duration"] {
                assert!(
                    b(u, f) <= b(end, f),
                    "{role}: {f} above the end's: {u} {end}"
                );
            }
        }
        let first = updates.first().ok_or("no update")?.1;
        assert_eq!(
            field_u64(first, "source.bytes"),
            Some(sent / 2),
            "{role}: {first}"
        );
        assert_eq!(
            field_u64(first, "destination.bytes"),
            Some(0),
            "{role}: {first}"
        );
        assert!(b(first, "event.duration") >= 1_000_000_000, "{first}");
    }
    no_connection_losses(&run.stderr);
    drop(net);
    Ok(())
}
