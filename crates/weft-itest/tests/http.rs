//! End-to-end: HTTP transactions decoded from captured plaintext (issue:
//! protocol engine). Ground truth: the URIs the clients asked for, the
//! bodies nginx answers (`body-<uri>`), the counts the load generator
//! reports.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::*;

fn http_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
        .collect()
}

fn body_of(e: &Value) -> String {
    field_str(e, "http.response.body.content")
        .unwrap_or("")
        .to_string()
}

#[test]
fn parallel_http2_requests_on_one_connection_pair_correctly() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&[])?;
    let tag = format!("{:x}", rand_u64());
    let urls: Vec<String> = (0..6)
        .map(|i| format!("https://127.0.0.1:{}/par-{tag}-{i}", nginx.port))
        .collect();
    // --parallel multiplexes on one connection (--parallel-immediate would
    // open one connection per transfer instead).
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "--http2", "--parallel", "--max-time", "20"]);
    for u in &urls {
        cmd.arg(u).arg("-o").arg("/dev/null");
    }
    let (pid, _) = run_client(&mut cmd, CLIENT_TIMEOUT)?;
    let p = u64::from(pid);
    let want = urls.len();
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "url.path").is_some_and(|u| u.ends_with(&format!("-{}", want - 1)))
    });
    let run = weft.stop()?;
    let mine: Vec<&Value> = http_events(&run.events)
        .into_iter()
        .filter(|e| field_u64(e, "process.pid") == Some(p))
        .collect();
    assert_eq!(
        mine.len(),
        want,
        "curl's transactions: {mine:#?}\n{}",
        run.stderr
    );
    let mut streams = HashSet::new();
    let mut cookies = HashSet::new();
    for e in &mine {
        let path = field_str(e, "url.path").ok_or("no url.path")?;
        assert_eq!(field_str(e, "http.version"), Some("2"));
        assert_eq!(field_str(e, "http.request.method"), Some("GET"));
        assert_eq!(field_u64(e, "http.response.status_code"), Some(200));
        // The pairing: each response body names its own request's path.
        assert_eq!(body_of(e), format!("body-{path}\n"), "mispaired: {e}");
        streams.insert(field_u64(e, "weft.http.stream_id"));
        cookies.insert(field_u64(e, "weft.flow.cookie"));
        assert!(field_u64(e, "event.duration").is_some());
    }
    assert_eq!(streams.len(), want, "stream ids not distinct");
    assert_eq!(cookies.len(), 1, "not one connection: {cookies:?}");
    // nginx decoded the same transactions from its side.
    let workers = nginx.worker_pids();
    let server_side = http_events(&run.events)
        .into_iter()
        .filter(|e| {
            field_u64(e, "process.pid").is_some_and(|p| workers.contains(&(p as u32)))
                && field_str(e, "url.path").is_some_and(|u| u.contains(&tag))
        })
        .count();
    assert_eq!(server_side, want);
    Ok(())
}

#[test]
fn h2load_thousand_requests_give_exactly_thousand_transactions() -> TestResult {
    use std::io::{Read, Write};
    let nginx = Nginx::start()?;
    let uri = format!("/h2load-{:x}", rand_u64());
    // A shell selected by pid that execs h2load once weft is ready: its
    // uprobes are in before h2load maps libssl, so no request can pass
    // before them (a process born after weft could lose its first ones).
    let url = format!("https://127.0.0.1:{}{uri}", nginx.port);
    let shell = Command::new("bash")
        .args([
            "-c",
            &format!("read _; exec h2load -n 1000 -c 1 -m 100 {url}"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut shell = Proc { child: shell };
    let pid = shell.pid();
    let weft = Weft::start(&["--pid", &pid.to_string()])?;
    shell
        .child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(b"go\n")?;
    let mut out = Vec::new();
    shell
        .child
        .stdout
        .take()
        .ok_or("stdout")?
        .read_to_end(&mut out)?;
    assert!(shell.child.wait()?.success());
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("1000 succeeded"),
        "h2load did not complete 1000 requests:\n{out}"
    );
    let p = u64::from(pid);
    weft.wait_for(Duration::from_secs(15), |e| {
        field_u64(e, "process.pid") == Some(p) && field_u64(e, "weft.http.stream_id") == Some(1999)
    });
    let run = weft.stop()?;
    let mine: Vec<&Value> = http_events(&run.events)
        .into_iter()
        .filter(|e| field_u64(e, "process.pid") == Some(p))
        .collect();
    assert_eq!(mine.len(), 1000, "{}", run.stderr);
    for e in &mine {
        assert_eq!(field_str(e, "url.path"), Some(uri.as_str()));
        assert_eq!(field_u64(e, "http.response.status_code"), Some(200));
        assert_eq!(body_of(e), format!("body-{uri}\n"));
    }
    let ids: HashSet<u64> = mine
        .iter()
        .filter_map(|e| field_u64(e, "weft.http.stream_id"))
        .collect();
    assert_eq!(ids.len(), 1000, "stream ids not distinct");
    Ok(())
}

#[test]
fn pipelined_http1_requests_pair_in_order() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&[])?;
    let tag = format!("{:x}", rand_u64());
    // Three requests written back to back before any response is read.
    let script = r#"
import socket, ssl, sys
port, tag = int(sys.argv[1]), sys.argv[2]
ctx = ssl._create_unverified_context()
ctx.set_alpn_protocols(["http/1.1"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
reqs = b"".join(b"GET /pipe-%s-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (tag.encode(), i) for i in range(3))
s.sendall(reqs)
data = b""
while data.count(b"body-") < 3:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.count(b"HTTP/1.1 200"))
"#;
    let (pid, out) = run_client(
        Command::new("/usr/bin/python3").args(["-c", script, &nginx.port.to_string(), &tag]),
        CLIENT_TIMEOUT,
    )?;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "3");
    let p = u64::from(pid);
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "url.path") == Some(&format!("/pipe-{tag}-2"))
    });
    let run = weft.stop()?;
    let mine: Vec<&Value> = http_events(&run.events)
        .into_iter()
        .filter(|e| field_u64(e, "process.pid") == Some(p))
        .collect();
    assert_eq!(mine.len(), 3, "{mine:#?}");
    let by_path: HashMap<String, String> = mine
        .iter()
        .filter_map(|e| Some((field_str(e, "url.path")?.to_string(), body_of(e))))
        .collect();
    for i in 0..3 {
        let path = format!("/pipe-{tag}-{i}");
        assert_eq!(by_path.get(&path), Some(&format!("body-{path}\n")));
    }
    assert!(
        mine.iter()
            .all(|e| field_str(e, "http.version") == Some("1.1"))
    );
    Ok(())
}

#[test]
fn credentials_are_masked_by_default_and_shown_with_no_redact() -> TestResult {
    let nginx = Nginx::start()?;
    let secret = format!("s3cr3t{:x}", rand_u64());
    let url = format!(
        "https://127.0.0.1:{}/login?user=a&token={secret}",
        nginx.port
    );
    // With --raw the capture events carry the request too: masked in place
    // unless --no-redact.
    for (args, visible) in [
        (&[][..], false),
        (&["--raw"][..], false),
        (&["--raw", "--no-redact"][..], true),
    ] {
        let weft = Weft::start(args)?;
        let (pid, _) = curl(
            &[
                "--http1.1",
                "-H",
                &format!("Authorization: Bearer {secret}"),
            ],
            &url,
        )?;
        let p = u64::from(pid);
        weft.wait_for(SEEN_TIMEOUT, |e| {
            field_u64(e, "process.pid") == Some(p) && field_str(e, "url.path").is_some()
        });
        let run = weft.stop()?;
        let mine: Vec<&Value> = http_events(&run.events)
            .into_iter()
            .filter(|e| field_u64(e, "process.pid") == Some(p))
            .collect();
        assert_eq!(mine.len(), 1, "{}", run.stderr);
        // The request side only: nginx echoes the URI in its body, which is
        // the server's content (bodies are masked where they are a form or
        // JSON login).
        let e = mine[0];
        let request = [
            field_str(e, "url.full").unwrap_or(""),
            field_str(e, "url.query").unwrap_or(""),
            field_str(e, "http.request.headers.authorization").unwrap_or(""),
        ]
        .join(" ");
        assert_eq!(
            request.contains(&secret),
            visible,
            "redaction {args:?}: {request}"
        );
        assert!(request.contains("Bearer"), "auth scheme kept: {request}");
        assert!(
            request.contains("user=a"),
            "other parameters kept: {request}"
        );
        if args.contains(&"--raw") {
            // curl's writes, as captured: the request line and the header.
            let writes: Vec<u8> = run
                .events
                .iter()
                .filter(|e| field_u64(e, "process.pid") == Some(p) && is_dir(e, "write"))
                .flat_map(payload)
                .collect();
            assert!(
                contains(&writes, b"GET /login?user=a&token="),
                "{}",
                String::from_utf8_lossy(&writes)
            );
            assert_eq!(
                contains(&writes, secret.as_bytes()),
                visible,
                "capture events {args:?}: {}",
                String::from_utf8_lossy(&writes)
            );
            if !visible {
                assert!(contains(&writes, b"Authorization: Bearer ******"));
            }
            // The summary counts the masked capture events (only when any).
            assert_eq!(
                run.stderr
                    .contains("capture events with credentials masked"),
                !visible,
                "{}",
                run.stderr
            );
        }
    }
    Ok(())
}

#[test]
fn websocket_session_with_permessage_deflate_yields_its_messages() -> TestResult {
    let dir = TempDir::new("ws");
    let (cert, key) = make_cert(dir.path())?;
    let port = free_port();
    let server = Helper::python(
        "ws_peer.py",
        &[
            "server",
            &port.to_string(),
            cert.to_str().ok_or("path")?,
            key.to_str().ok_or("path")?,
        ],
    )?;
    assert_eq!(server.read_line(Duration::from_secs(10))?, "listening");
    let weft = Weft::start(&[])?;
    let tag = format!("{:x}", rand_u64());
    let msgs = [
        format!("hello {tag}"),
        format!("second {tag} message"),
        "x".repeat(3000),
    ];
    let client = Helper::python(
        "ws_peer.py",
        &[
            "client",
            &port.to_string(),
            "/chat",
            &msgs[0],
            &msgs[1],
            &msgs[2],
        ],
    )?;
    for m in &msgs {
        assert_eq!(
            &client.read_line(CLIENT_TIMEOUT)?,
            m,
            "the echo server misbehaved"
        );
    }
    assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "done");
    let p = u64::from(client.pid());
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "weft.websocket.opcode") == Some("close")
            && field_str(e, "weft.websocket.direction") == Some("server")
    });
    let run = weft.stop()?;
    let ws: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| {
            field_u64(e, "process.pid") == Some(p)
                && field_str(e, "event.action") == Some("websocket-message")
        })
        .collect();
    let texts = |side: &str| -> Vec<String> {
        ws.iter()
            .filter(|e| {
                field_str(e, "weft.websocket.direction") == Some(side)
                    && field_str(e, "weft.websocket.opcode") == Some("text")
            })
            .filter_map(|e| field_str(e, "weft.websocket.text").map(str::to_string))
            .collect()
    };
    assert_eq!(
        texts("client"),
        msgs,
        "client messages: {ws:#?}\n{}",
        run.stderr
    );
    assert_eq!(texts("server"), msgs, "server echoes");
    assert!(
        ws.iter()
            .filter(|e| field_str(e, "weft.websocket.opcode") == Some("text"))
            .all(|e| field(e, "weft.websocket.compressed").and_then(Value::as_bool) == Some(true)),
        "permessage-deflate was negotiated: every text message is compressed"
    );
    let close = ws
        .iter()
        .find(|e| {
            field_str(e, "weft.websocket.opcode") == Some("close")
                && field_str(e, "weft.websocket.direction") == Some("client")
        })
        .ok_or("no close message from the client")?;
    assert_eq!(field_u64(close, "weft.websocket.close_code"), Some(1000));
    // The upgrade itself is an HTTP transaction with status 101.
    assert!(run.events.iter().any(|e| {
        field_u64(e, "process.pid") == Some(p)
            && field_u64(e, "http.response.status_code") == Some(101)
            && field_str(e, "url.path") == Some("/chat")
    }));
    // The same messages from the server's side of the connection.
    let sp = u64::from(server.pid());
    let server_msgs = run
        .events
        .iter()
        .filter(|e| {
            field_u64(e, "process.pid") == Some(sp)
                && field_str(e, "weft.websocket.opcode") == Some("text")
        })
        .count();
    assert_eq!(server_msgs, 2 * msgs.len());
    Ok(())
}

#[test]
fn http2_connection_joined_midway_keeps_being_decoded() -> TestResult {
    let nginx = Nginx::start()?;
    let dir = TempDir::new("h2join");
    let tag = format!("{:x}", rand_u64());
    // Every request a new path: each is a fresh HPACK literal the decoder
    // can read even though it missed the table's start.
    let uris: String = (0..400)
        .map(|i| format!("https://127.0.0.1:{}/join-{tag}-{i}\n", nginx.port))
        .collect();
    let list = dir.path().join("uris");
    std::fs::write(&list, uris)?;
    // One connection, 40 requests a second for 10 s: weft starts in the middle.
    let load = Command::new("h2load")
        .args(["-n", "400", "-c", "1", "--rps", "40", "-i"])
        .arg(&list)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut load = Proc { child: load };
    std::thread::sleep(Duration::from_millis(1500));
    let weft = Weft::start(&["--comm", "h2load"])?;
    let status = {
        let end = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(st) = load.child.try_wait()? {
                break st;
            }
            if std::time::Instant::now() > end {
                return Err("h2load did not finish".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(status.success());
    let p = u64::from(load.pid());
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p)
            && field_str(e, "url.path") == Some(&format!("/join-{tag}-399"))
    });
    let run = weft.stop()?;
    let mine: Vec<&Value> = http_events(&run.events)
        .into_iter()
        .filter(|e| field_u64(e, "process.pid") == Some(p))
        .collect();
    // Joined late: the first requests were before weft, the rest decoded.
    assert!(
        mine.len() >= 100,
        "only {} transactions\n{}",
        mine.len(),
        run.stderr
    );
    assert!(mine.len() < 400, "weft cannot have seen the first requests");
    for e in &mine {
        assert_eq!(field_u64(e, "http.response.status_code"), Some(200), "{e}");
    }
    // Paths (fresh literals) decode, and each body names its own path.
    let with_path: Vec<&&Value> = mine
        .iter()
        .filter(|e| field_str(e, "url.path").is_some_and(|u| u.contains(&tag)))
        .collect();
    assert!(
        with_path.len() * 10 >= mine.len() * 9,
        "paths lost: {} of {}",
        with_path.len(),
        mine.len()
    );
    for e in with_path {
        let path = field_str(e, "url.path").unwrap_or("");
        assert_eq!(body_of(e), format!("body-{path}\n"));
    }
    Ok(())
}
