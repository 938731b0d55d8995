//! End-to-end: plaintext from the socket syscalls (bpf/plain.bpf.c,
//! docs/adr/0005-plaintext-and-first-bytes.md). `curl http://` is decoded
//! like `curl https://`; a TLS connection's ciphertext is never reported as
//! plaintext; the first bytes of a connection that is neither come as one
//! capture event per direction; node (whose OpenSSL does no socket I/O of
//! its own) gets handshake facts from its socket's first bytes.
//! Ground truth: nginx's access log, what curl and the peers printed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::*;

fn http_of(events: &[Value], pid: u32) -> Vec<&Value> {
    of_pid(events, pid)
        .into_iter()
        .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
        .collect()
}

/// One logged line of nginx for `uri`: (remote port, status, protocol).
fn logged(nginx: &Nginx, uri: &str) -> TestResult<(u64, u64, String)> {
    nginx.wait_logged(uri).ok_or("nginx did not log it")?;
    let line = nginx
        .access_log_lines()
        .into_iter()
        .find(|l| l.split_whitespace().nth(2) == Some(uri))
        .ok_or("no log line")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Ok((f[1].parse()?, f[3].parse()?, f[4].to_string()))
}

/// curl over plain HTTP (`extra` picks the version) of a file nginx serves;
/// weft's http event of curl carries what curl got and nginx logged.
fn curl_plain(extra: &[&str], h2: bool) -> TestResult {
    let files = TempDir::new("plain-files");
    let tag = format!("{:x}", rand_u64());
    let body = format!("served file {tag}\nsecond line\n");
    std::fs::write(files.path().join("served.txt"), &body)?;
    let nginx = Nginx::start_with(
        None,
        &format!(
            "location = /served-{tag}.txt {{ default_type text/plain; alias {}/served.txt; }}",
            files.path().display()
        ),
    )?;
    let port = if h2 { nginx.h2c_port } else { nginx.plain_port };
    let weft = Weft::start(&[])?;
    let uri = format!("/served-{tag}.txt");
    let (pid, out) = run_client(
        Command::new("curl")
            .args(["-s", "--max-time", "20"])
            .args(extra)
            .arg(format!("http://127.0.0.1:{port}{uri}")),
        CLIENT_TIMEOUT,
    )?;
    assert_eq!(out, body.as_bytes(), "curl did not get the file");
    let p = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "event.action") == Some("http-transaction")
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(seen, "no http event of curl; stderr:\n{}", run.stderr);
    let (remote_port, status, protocol) = logged(&nginx, &uri)?;

    let mine = http_of(&run.events, pid);
    assert_eq!(mine.len(), 1, "curl's transactions: {mine:#?}");
    let e = mine[0];
    assert_eq!(field_str(e, "http.request.method"), Some("GET"));
    assert_eq!(field_str(e, "url.path"), Some(uri.as_str()));
    assert_eq!(field_str(e, "url.scheme"), Some("http"));
    assert_eq!(
        field_str(e, "url.full"),
        Some(format!("http://127.0.0.1:{port}{uri}").as_str())
    );
    assert_eq!(field_u64(e, "http.response.status_code"), Some(status));
    assert_eq!(
        field_str(e, "http.response.body.content"),
        Some(body.as_str())
    );
    let version = if h2 { "2" } else { "1.1" };
    assert_eq!(field_str(e, "http.version"), Some(version));
    assert_eq!(protocol, if h2 { "HTTP/2.0" } else { "HTTP/1.1" });
    assert_eq!(field_str(e, "weft.tls.library"), Some("none"));
    assert!(field(e, "tls").is_none(), "plaintext has no TLS facts: {e}");
    assert_eq!(field_str(e, "source.ip"), Some("127.0.0.1"));
    assert_eq!(field_u64(e, "source.port"), Some(remote_port));
    assert_eq!(field_u64(e, "destination.port"), Some(u64::from(port)));
    assert_eq!(field_str(e, "weft.flow.role"), Some("client"));

    // nginx decoded the same transaction from its side.
    let workers = nginx.worker_pids();
    let server = run
        .events
        .iter()
        .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
        .find(|e| {
            field_u64(e, "process.pid").is_some_and(|p| workers.contains(&(p as u32)))
                && field_str(e, "url.path") == Some(uri.as_str())
        })
        .ok_or("no http event of nginx")?;
    assert_eq!(field_str(server, "weft.flow.role"), Some("server"));
    assert_eq!(field_u64(server, "source.port"), Some(remote_port));
    Ok(())
}

#[test]
fn curl_http1_is_decoded_as_an_http_transaction() -> TestResult {
    curl_plain(&["--http1.1"], false)
}

#[test]
fn curl_h2c_prior_knowledge_is_decoded_as_an_http_transaction() -> TestResult {
    curl_plain(&["--http2-prior-knowledge"], true)
}

/// curl over TLS: its http event comes from OpenSSL's plaintext, and no
/// capture or http event of its connection claims to be plaintext (the
/// ciphertext on the socket is not reported).
#[test]
fn tls_ciphertext_is_never_reported_as_plaintext() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/tls-{:x}", rand_u64());
    let (pid, out) = run_client(
        Command::new("curl")
            .args(["-sk", "--http1.1", "--max-time", "20"])
            .arg(format!("https://127.0.0.1:{}{uri}", nginx.port)),
        CLIENT_TIMEOUT,
    )?;
    assert_eq!(out, format!("body-{uri}\n").as_bytes());
    let p = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "event.action") == Some("http-transaction")
    });
    let run = weft.stop()?;
    assert!(seen, "no http event of curl; stderr:\n{}", run.stderr);
    let (remote_port, _, _) = logged(&nginx, &uri)?;
    let on_conn: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| {
            let ports = [
                field_u64(e, "source.port"),
                field_u64(e, "destination.port"),
            ];
            ports.contains(&Some(remote_port)) && ports.contains(&Some(u64::from(nginx.port)))
        })
        .collect();
    assert!(!on_conn.is_empty());
    for e in &on_conn {
        assert_ne!(
            field_str(e, "weft.tls.library"),
            Some("none"),
            "ciphertext reported as plaintext: {e}"
        );
    }
    let http = http_of(&run.events, pid);
    assert_eq!(http.len(), 1);
    assert_eq!(field_str(http[0], "weft.tls.library"), Some("openssl"));
    assert_eq!(field_str(http[0], "url.scheme"), Some("https"));
    Ok(())
}

/// A protocol weft does not decode: each direction's first bytes arrive
/// once, as a capture event, with the exact bytes the peers sent (at most
/// 512), and later bytes are not reported.
#[test]
fn first_bytes_of_an_undecoded_connection_come_once_per_direction() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let weft = Weft::start(&["--raw"])?;
    let banner = format!("SSH-2.0-weft_test_{:x}\r\n", rand_u64());
    let hello = vec![b'x'; 700];
    let server = {
        let banner = banner.clone();
        std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
            let (mut s, _) = listener.accept()?;
            s.write_all(banner.as_bytes())?;
            let mut got = vec![0u8; 700 + 5];
            s.read_exact(&mut got)?;
            s.write_all(b"later")?;
            Ok(got)
        })
    };
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
    let local = c.local_addr()?.port();
    let mut b = vec![0u8; banner.len()];
    c.read_exact(&mut b)?;
    c.write_all(&hello)?;
    c.write_all(b"again")?;
    let mut later = [0u8; 5];
    c.read_exact(&mut later)?;
    drop(c);
    let got = server.join().map_err(|_| "server thread")??;
    assert_eq!(&got[..700], &hello[..]);
    let me = u64::from(std::process::id());
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(me)
            && field_str(e, "weft.tls.direction") == Some("write")
            && field_u64(e, "source.port") == Some(u64::from(local))
    });
    let run = weft.stop()?;
    let client: Vec<&Value> = of_pid(&run.events, std::process::id())
        .into_iter()
        .filter(|e| {
            field_u64(e, "source.port") == Some(u64::from(local))
                && field_u64(e, "destination.port") == Some(u64::from(port))
                && field_str(e, "weft.flow.role") == Some("client")
        })
        .collect();
    let writes: Vec<&&Value> = client
        .iter()
        .filter(|e| field_str(e, "weft.tls.direction") == Some("write"))
        .collect();
    let reads: Vec<&&Value> = client
        .iter()
        .filter(|e| field_str(e, "weft.tls.direction") == Some("read"))
        .collect();
    assert_eq!(
        writes.len(),
        1,
        "client writes: {writes:#?}\n{}",
        run.stderr
    );
    assert_eq!(reads.len(), 1, "client reads: {reads:#?}");
    let w = writes[0];
    assert_eq!(field_str(w, "weft.tls.library"), Some("none"));
    assert_eq!(
        field(w, "weft.payload.first_bytes"),
        Some(&Value::Bool(true))
    );
    assert_eq!(payload(w), &hello[..512]);
    assert_eq!(field_u64(w, "weft.payload.length"), Some(700));
    assert_eq!(payload(reads[0]), banner.as_bytes());
    Ok(())
}

/// node's OpenSSL works on memory buffers and libuv does the socket I/O:
/// the handshake bytes come from the socket's first bytes, and the
/// handshake event carries the name node asked for.
#[test]
fn node_gets_handshake_facts_from_its_socket() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&[])?;
    let uri = format!("/node-{:x}", rand_u64());
    let host = "node.weft.test";
    let script = format!(
        "require('https').get({{host:'127.0.0.1',port:{},path:'{uri}',servername:'{host}',\
         rejectUnauthorized:false,agent:false}},r=>{{r.pipe(process.stdout)}})",
        nginx.port
    );
    let (pid, out) = run_client(Command::new("node").args(["-e", &script]), CLIENT_TIMEOUT)?;
    assert_eq!(out, format!("body-{uri}\n").as_bytes());
    let p = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "event.action") == Some("tls-handshake")
    });
    let run = weft.stop()?;
    assert!(seen, "no handshake event of node; stderr:\n{}", run.stderr);
    let (remote_port, _, _) = logged(&nginx, &uri)?;
    let hs = of_pid(&run.events, pid)
        .into_iter()
        .find(|e| field_str(e, "event.action") == Some("tls-handshake"))
        .ok_or("no handshake")?;
    assert_eq!(field_str(hs, "tls.client.server_name"), Some(host));
    assert_eq!(field(hs, "tls.established"), Some(&Value::Bool(true)));
    assert_eq!(field_u64(hs, "source.port"), Some(remote_port));
    assert!(field_str(hs, "tls.version").is_some());
    Ok(())
}

/// `--plaintext-ports` narrows decoding to its ports: curl to another
/// port gives no http event, only its first bytes; `--no-plaintext` gives
/// nothing of it at all.
#[test]
fn plaintext_ports_and_no_plaintext_narrow_the_capture() -> TestResult {
    let nginx = Nginx::start()?;
    for (args, first_bytes) in [
        (vec!["--raw", "--plaintext-ports", "1"], true),
        (vec!["--raw", "--no-plaintext"], false),
    ] {
        let weft = Weft::start(&args)?;
        let uri = format!("/narrow-{:x}", rand_u64());
        let (pid, out) = run_client(
            Command::new("curl")
                .args(["-s", "--http1.1", "--max-time", "20"])
                .arg(format!("http://127.0.0.1:{}{uri}", nginx.plain_port)),
            CLIENT_TIMEOUT,
        )?;
        assert_eq!(out, format!("body-{uri}\n").as_bytes());
        let p = u64::from(pid);
        // Connection events (sock_ops) do not depend on the syscall capture.
        let traffic = |e: &serde_json::Value| {
            field_u64(e, "process.pid") == Some(p)
                && !field_str(e, "event.action").is_some_and(|a| a.starts_with("connection-"))
        };
        let seen = weft.wait_for(SEEN_TIMEOUT, traffic);
        let run = weft.stop()?;
        let mine: Vec<_> = run.events.iter().filter(|e| traffic(e)).collect();
        assert!(http_of(&run.events, pid).is_empty(), "{args:?}: {mine:#?}");
        assert_eq!(seen, first_bytes, "{args:?}: {mine:#?}");
        if first_bytes {
            let w = mine
                .iter()
                .find(|e| field_str(e, "weft.tls.direction") == Some("write"))
                .ok_or("no first bytes of curl's request")?;
            assert!(payload(w).starts_with(format!("GET {uri} HTTP/1.1\r\n").as_bytes()));
        }
    }
    Ok(())
}

/// Go's crypto/tls (goroutines are not followed by the TLS-call state, ADR
/// 0003): its handshake bytes come from the socket's first bytes too.
#[test]
fn go_client_gets_handshake_facts_from_its_socket() -> TestResult {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    const GO: &str = "/usr/lib/go-1.23/bin/go";
    let dir = TempDir::new("plain-go");
    // As tests/go.rs builds it (offline, shared cache).
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/client");
    let cache = std::env::temp_dir().join("weft-go-cache");
    let bin = dir.path().join("client");
    let res = Command::new(GO)
        .args(["build", "-o"])
        .arg(&bin)
        .arg("main.go")
        .current_dir(&src)
        .env("GOCACHE", cache.join("build"))
        .env("GOPATH", cache.join("path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOENV", "off")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{GO}: {e}: install golang-1.23-go (scripts/deps.sh)"))?;
    assert!(res.status.success(), "go build failed: {res:?}");
    let nginx = Nginx::start()?;
    let uri = format!("/go-hs-{:x}", rand_u64());
    let mut child = Command::new(&bin)
        .arg(format!("https://127.0.0.1:{}{uri}", nginx.port))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("stdout")?);
    let mut client = Proc { child };
    let mut line = String::new();
    out.read_line(&mut line)?;
    assert_eq!(line, "ready\n");
    let weft = Weft::start(&[])?;
    client
        .child
        .stdin
        .as_mut()
        .ok_or("stdin")?
        .write_all(b"go\n")?;
    let mut body = String::new();
    out.read_to_string(&mut body)?;
    assert_eq!(body, format!("body-{uri}\n"));
    let pid = client.pid();
    let p = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "event.action") == Some("tls-handshake")
    });
    let run = weft.stop()?;
    assert!(seen, "no handshake event of the Go client:\n{}", run.stderr);
    let (remote_port, _, _) = logged(&nginx, &uri)?;
    let hs = of_pid(&run.events, pid)
        .into_iter()
        .find(|e| field_str(e, "event.action") == Some("tls-handshake"))
        .ok_or("no handshake")?;
    assert_eq!(field(hs, "tls.established"), Some(&Value::Bool(true)));
    assert_eq!(field_str(hs, "weft.tls.library"), Some("go"));
    assert_eq!(field_u64(hs, "source.port"), Some(remote_port));
    assert!(field_str(hs, "tls.version").is_some() && field_str(hs, "tls.cipher").is_some());
    Ok(())
}
