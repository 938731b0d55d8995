//! End-to-end: DNS over UDP and TCP (bpf/plain.bpf.c, weft_proto::dns,
//! weft_core::resolved). A tiny resolver started by the test answers a
//! process that resolves a name with glibc (`getaddrinfo`, resolv.conf
//! pointing at the resolver in a private mount namespace) and then connects
//! to the answer. Ground truth: the resolver's own log of what it answered,
//! the HTTP server's log and what the client printed.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::*;

/// The resolver's next log line starting with `prefix`, split in words.
fn logged(server: &Helper, prefix: &str) -> TestResult<Vec<String>> {
    loop {
        let l = server.read_line(Duration::from_secs(5))?;
        if l.starts_with(prefix) {
            return Ok(l.split_whitespace().map(str::to_string).collect());
        }
    }
}

#[test]
fn a_lookup_is_attributed_to_the_asker_and_the_connection_carries_the_name() -> TestResult {
    lookup_then_connect("socket.AF_INET", false, false)
}

/// A dual-stack client: the A answer, then an AF_INET6 socket connecting
/// to the IPv4-mapped `::ffff:a.b.c.d`. The connection's capture, http and
/// connection events show the IPv4 address (`network.type: ipv4`) and
/// carry the name, like an AF_INET socket's.
#[test]
fn a_dual_stack_socket_to_a_mapped_ipv4_address_is_reported_as_ipv4() -> TestResult {
    lookup_then_connect("socket.AF_INET", false, true)
}

/// AF_UNSPEC: glibc sends the A and AAAA queries together with sendmmsg.
#[test]
fn parallel_a_and_aaaa_queries_are_seen() -> TestResult {
    lookup_then_connect("socket.AF_UNSPEC", false, false)
}

/// `options use-vc`: glibc asks over TCP (length-prefixed messages; it
/// reads an answer's length and its body in two calls).
#[test]
fn a_lookup_over_tcp_is_seen_too() -> TestResult {
    lookup_then_connect("socket.AF_UNSPEC", true, false)
}

/// `mapped`: connect with an AF_INET6 socket to `::ffff:IP`.
fn lookup_then_connect(family: &str, tcp: bool, mapped: bool) -> TestResult {
    let dns_addr = "127.0.0.77";
    let answer_ip = "127.0.0.88";
    let port = free_port();
    let mut server = Helper::python("dns_server.py", &[dns_addr, answer_ip, &port.to_string()])?;
    assert_eq!(server.read_line(Duration::from_secs(10))?, "ready");
    let dir = TempDir::new("dns");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "nameserver {dns_addr}\noptions attempts:1 timeout:5{}\n",
            if tcp { " use-vc" } else { "" }
        ),
    )?;
    let tag = format!("{:x}", rand_u64());
    let name = format!("svc-{tag}.weft.test");
    let connect = if mapped {
        format!("s = socket.socket(socket.AF_INET6); s.connect(('::ffff:' + ip, {port}))")
    } else {
        format!("s = socket.create_connection((ip, {port}))")
    };
    let weft = Weft::start(&["--raw"])?;
    // unshare and sh exec: the pid run_client reports is python's.
    let script = format!(
        "import socket\n\
         ai = socket.getaddrinfo('{name}', {port}, {family}, socket.SOCK_STREAM)\n\
         ip = ai[0][4][0]\n\
         print(ip, flush=True)\n\
         {connect}\n\
         s.sendall(b'GET /dns-{tag} HTTP/1.1\\r\\nHost: {name}\\r\\n\\r\\n')\n\
         out = b''\n\
         while True:\n\
         \x20   b = s.recv(4096)\n\
         \x20   if not b: break\n\
         \x20   out += b\n\
         print(out.split(b'\\r\\n\\r\\n', 1)[1].decode(), end='')\n"
    );
    let (pid, out) = run_client(
        Command::new("unshare").args([
            "-m",
            "sh",
            "-c",
            &format!(
                "mount --bind {} /etc/resolv.conf && exec python3 -c \"$0\"",
                resolv.display()
            ),
            &script,
        ]),
        CLIENT_TIMEOUT,
    )?;
    let out = String::from_utf8(out)?;
    assert_eq!(out, format!("{answer_ip}\ndns-body /dns-{tag}\n"));
    // The resolver's and the HTTP server's own logs.
    let f = logged(&server, "answered ")?;
    assert_eq!(f[2], name);
    assert_eq!(f[3], answer_ip);
    let id: u64 = f[1].parse()?;
    assert_eq!(logged(&server, "http ")?[1], format!("/dns-{tag}"));

    let p = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "event.action") == Some("http-transaction")
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(seen, "no http event of the client:\n{}", run.stderr);
    let mine = of_pid(&run.events, pid);

    // The answer, as the asking process received it.
    let ans = mine
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("dns-answer")
                && field_str(e, "dns.question.name") == Some(name.as_str())
        })
        .ok_or_else(|| format!("no dns answer of the client: {mine:#?}"))?;
    assert_eq!(field_str(ans, "network.protocol"), Some("dns"));
    assert_eq!(field_str(ans, "dns.type"), Some("answer"));
    assert_eq!(field_u64(ans, "dns.id"), Some(id));
    assert_eq!(field_str(ans, "dns.question.type"), Some("A"));
    assert_eq!(field_str(ans, "dns.question.class"), Some("IN"));
    assert_eq!(field_str(ans, "dns.response_code"), Some("NOERROR"));
    assert_eq!(
        field(ans, "dns.resolved_ip"),
        Some(&Value::Array(vec![Value::String(answer_ip.into())]))
    );
    assert_eq!(field_str(ans, "destination.ip"), Some(dns_addr));
    assert_eq!(field_u64(ans, "destination.port"), Some(53));
    assert_eq!(field_str(ans, "source.ip"), Some("127.0.0.1"));
    let a0 = field(ans, "dns.answers")
        .and_then(|a| a.get(0))
        .ok_or("no dns.answers")?;
    assert_eq!(a0["data"], answer_ip);
    assert_eq!(a0["ttl"], 300);
    assert_eq!(a0["type"], "A");

    // The A query as the process sent it (with AF_UNSPEC, in one
    // sendmmsg with the AAAA query).
    let query = mine
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("dns-query")
                && field_str(e, "dns.question.type") == Some("A")
        })
        .ok_or_else(|| format!("no A query of the client: {mine:#?}"))?;
    assert_eq!(field_str(query, "dns.question.name"), Some(name.as_str()));
    assert_eq!(field_u64(query, "dns.id"), Some(id));
    assert_eq!(field_str(query, "dns.type"), Some("query"));
    assert_eq!(field_str(query, "destination.ip"), Some(dns_addr));
    let transport = if tcp { "tcp" } else { "udp" };
    assert_eq!(field_str(query, "network.transport"), Some(transport));
    assert_eq!(field_str(ans, "network.transport"), Some(transport));
    if family == "socket.AF_UNSPEC" {
        assert!(
            mine.iter().any(|e| {
                field_str(e, "event.action") == Some("dns-query")
                    && field_str(e, "dns.question.type") == Some("AAAA")
                    && field_str(e, "dns.question.name") == Some(name.as_str())
            }),
            "no AAAA query: {mine:#?}"
        );
    }

    // The following connection carries the name.
    let http = mine
        .iter()
        .find(|e| field_str(e, "event.action") == Some("http-transaction"))
        .ok_or("no http event")?;
    assert_eq!(
        field_str(http, "url.path"),
        Some(format!("/dns-{tag}").as_str())
    );
    assert_eq!(field_str(http, "destination.ip"), Some(answer_ip));
    assert_eq!(field_str(http, "source.ip"), Some("127.0.0.1"));
    assert_eq!(field_str(http, "network.type"), Some("ipv4"), "{http}");
    assert_eq!(field_str(http, "destination.domain"), Some(name.as_str()));
    let capture = mine
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("plain-write")
                && field_u64(e, "destination.port") == Some(u64::from(port))
        })
        .ok_or("no capture event of the connection")?;
    assert_eq!(
        field_str(capture, "destination.domain"),
        Some(name.as_str())
    );
    assert_eq!(field_str(capture, "destination.ip"), Some(answer_ip));
    assert_eq!(field_str(capture, "network.type"), Some("ipv4"));
    // So does its connection start (sock_ops, joined to the answer by the
    // reader).
    let start = mine
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("connection-start")
                && field_u64(e, "destination.port") == Some(u64::from(port))
        })
        .ok_or_else(|| format!("no connection-start of the client: {mine:#?}"))?;
    assert_eq!(field_str(start, "destination.ip"), Some(answer_ip));
    assert_eq!(field_str(start, "source.ip"), Some("127.0.0.1"));
    assert_eq!(field_str(start, "network.type"), Some("ipv4"), "{start}");
    assert_eq!(field_str(start, "destination.domain"), Some(name.as_str()));
    // The community id of the IPv4 tuple (computed outside weft).
    let cport = field_u64(start, "source.port").ok_or("no source.port")?;
    assert_eq!(
        field_str(start, "network.community_id"),
        Some(community_id_reference("127.0.0.1", cport, answer_ip, u64::from(port))?.as_str())
    );
    server.write_line("")?;
    Ok(())
}

/// Answers read with one `recvmmsg` call (a C client: Python has no
/// recvmmsg): two A queries sent with `sendto` on an unconnected socket,
/// both answers read in one batch. Each answer the client says it received
/// is a `dns-answer` event of the client with the id and address the
/// resolver logged, and the resolver as its peer (each message's own
/// `msg_name`).
#[test]
fn answers_read_with_recvmmsg_are_seen() -> TestResult {
    let dir = TempDir::new("recvmmsg");
    let bin = dir.path().join("recvmmsg_resolver");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/recvmmsg_resolver.c");
    let st = Command::new("gcc").arg(&src).arg("-o").arg(&bin).status()?;
    assert!(
        st.success(),
        "cannot build {} (gcc installed?)",
        src.display()
    );
    let dns_addr = "127.0.0.79";
    let answer_ip = "127.0.0.89";
    let mut server = Helper::python(
        "dns_server.py",
        &[dns_addr, answer_ip, &free_port().to_string()],
    )?;
    assert_eq!(server.read_line(Duration::from_secs(10))?, "ready");
    let tag = format!("{:x}", rand_u64());
    let names = [
        format!("one-{tag}.weft.test"),
        format!("two-{tag}.weft.test"),
    ];
    let weft = Weft::start(&[])?;
    let (pid, out) = run_client(
        Command::new(&bin).args([dns_addr, &names[0], &names[1]]),
        CLIENT_TIMEOUT,
    )?;
    let out = String::from_utf8(out)?;
    // The resolver's log: which id it answered for which name.
    let mut ids = Vec::new();
    for name in &names {
        let f = logged(&server, "answered ")?;
        assert_eq!(&f[2], name);
        ids.push(f[1].parse::<u64>()?);
    }
    // What the client's one recvmmsg returned.
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("got 2"),
        "one batch of both answers: {out}"
    );
    let got: Vec<(u64, String)> = lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(1)?.parse().ok()?, (*f.get(3)?).to_string()))
        })
        .collect();
    assert_eq!(got.len(), 2, "{out}");
    for (id, peer) in &got {
        assert!(
            ids.contains(id),
            "the client got id {id}, the resolver answered {ids:?}"
        );
        assert_eq!(peer, dns_addr);
    }
    let p = u64::from(pid);
    let answers = |evs: &[Value]| {
        evs.iter()
            .filter(|e| {
                field_u64(e, "process.pid") == Some(p)
                    && field_str(e, "event.action") == Some("dns-answer")
            })
            .count()
    };
    let end = std::time::Instant::now() + SEEN_TIMEOUT;
    while answers(&weft.events_so_far()) < 2 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let mine = of_pid(&run.events, pid);
    for (name, id) in names.iter().zip(&ids) {
        let ans = mine
            .iter()
            .find(|e| {
                field_str(e, "event.action") == Some("dns-answer")
                    && field_u64(e, "dns.id") == Some(*id)
            })
            .ok_or_else(|| format!("no dns-answer {id} of the client: {mine:#?}"))?;
        assert_eq!(field_str(ans, "dns.question.name"), Some(name.as_str()));
        assert_eq!(
            field(ans, "dns.resolved_ip"),
            Some(&Value::Array(vec![Value::String(answer_ip.into())]))
        );
        assert_eq!(field_str(ans, "destination.ip"), Some(dns_addr), "{ans}");
        assert_eq!(field_u64(ans, "destination.port"), Some(53));
        assert_eq!(field_str(ans, "network.transport"), Some("udp"));
    }
    server.write_line("")?;
    Ok(())
}
