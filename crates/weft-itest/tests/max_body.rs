//! End-to-end: `--max-body`, the body bytes each event keeps. nginx serves
//! a 100 KiB file over TLS; curl fetches it over HTTP/1.1 and HTTP/2.
//! Ground truth: the file itself and curl's own count of the bytes it got.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::*;

const FILE_SIZE: usize = 100 * 1024;

/// 100 KiB of printable text (so the body is `content`, not `base64`),
/// different at every offset.
fn file_bytes() -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_SIZE + 32);
    let mut i = 0u64;
    while out.len() < FILE_SIZE {
        out.extend(format!("{i:06} {:08x}\n", i.wrapping_mul(0x9e37_79b9) >> 3).bytes());
        i += 1;
    }
    out.truncate(FILE_SIZE);
    out
}

/// nginx serving `/files/` from a directory holding `name` (the file).
fn serve_file(dir: &Path, name: &str) -> TestResult<Nginx> {
    std::fs::create_dir_all(dir.join("files"))?;
    std::fs::write(dir.join("files").join(name), file_bytes())?;
    Nginx::start_with(
        None,
        &format!(
            "location /files/ {{ root {}; default_type text/plain; }}",
            dir.display()
        ),
    )
}

/// curl fetches `url` (`--http1.1` or `--http2`); returns its pid, the
/// bytes it got and its own count of them (`%{size_download}`).
fn fetch(proto: &str, url: &str, dir: &Path) -> TestResult<(u32, Vec<u8>, u64)> {
    let out = dir.join(format!("got{proto}"));
    let (pid, stdout) = run_client(
        Command::new("curl")
            .args(["-sk", "--max-time", "20", proto, "-o"])
            .arg(&out)
            .args(["-w", "%{size_download}"])
            .arg(url),
        CLIENT_TIMEOUT,
    )?;
    let counted = String::from_utf8_lossy(&stdout)
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("curl's size_download {stdout:?}: {e}"))?;
    Ok((pid, std::fs::read(&out)?, counted))
}

struct Seen {
    /// The transactions for the file: one from each end (curl, nginx) for
    /// each HTTP version.
    events: Vec<Value>,
    stderr: String,
}

/// Runs weft with `args`, fetches the file with HTTP/1.1 and HTTP/2, and
/// returns weft's transactions for it (both ends, both versions).
fn run(args: &[&str]) -> TestResult<Seen> {
    let dir = TempDir::new("maxbody");
    let name = format!("big-{:x}.txt", rand_u64());
    let nginx = serve_file(dir.path(), &name)?;
    let weft = Weft::start(args)?;
    let path = format!("/files/{name}");
    let url = format!("https://127.0.0.1:{}{path}", nginx.port);
    let want = file_bytes();
    let mut pids = Vec::new();
    for proto in ["--http1.1", "--http2"] {
        let (pid, got, counted) = fetch(proto, &url, dir.path())?;
        assert_eq!(counted, FILE_SIZE as u64, "curl {proto} counted");
        assert!(got == want, "curl {proto} got other bytes than the file");
        pids.push(u64::from(pid));
    }
    let ours = |e: &Value| {
        field_str(e, "event.action") == Some("http-transaction")
            && field_str(e, "url.path") == Some(path.as_str())
    };
    // Both clients' transactions, and nginx's two (checked below).
    weft.wait_for_count(SEEN_TIMEOUT, 4, ours);
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let events: Vec<Value> = run.events.into_iter().filter(|e| ours(e)).collect();
    for pid in &pids {
        assert!(
            events
                .iter()
                .any(|e| field_u64(e, "process.pid") == Some(*pid)),
            "no transaction of curl (pid {pid}): {events:#?}\n{}",
            run.stderr
        );
    }
    let versions: Vec<&str> = events
        .iter()
        .filter_map(|e| field_str(e, "http.version"))
        .collect();
    assert!(
        versions.contains(&"1.1") && versions.contains(&"2"),
        "versions {versions:?}"
    );
    assert_eq!(events.len(), 4, "client and server, two versions");
    Ok(Seen {
        events,
        stderr: run.stderr,
    })
}

fn flag(e: &Value, path: &str) -> Option<bool> {
    field(e, path).and_then(Value::as_bool)
}

/// A response body as the event reports it: the real size, the bytes kept,
/// and the transaction's and the body's truncated flags.
fn body_facts(e: &Value) -> (Option<u64>, Option<u64>, Option<bool>, Option<bool>) {
    (
        field_u64(e, "http.response.body.bytes"),
        field_u64(e, "weft.http.response.body.kept"),
        flag(e, "weft.http.body_truncated"),
        flag(e, "weft.http.response.body.truncated"),
    )
}

#[test]
fn bodies_are_cut_at_16k_by_default() -> TestResult {
    let seen = run(&[])?;
    let file = file_bytes();
    for e in &seen.events {
        let v = field_str(e, "http.version").unwrap_or("?");
        assert_eq!(field_u64(e, "http.response.status_code"), Some(200));
        // The real size, the bytes kept, and the flags.
        assert_eq!(
            body_facts(e),
            (Some(FILE_SIZE as u64), Some(16384), Some(true), Some(true)),
            "{v}: {e}"
        );
        // What is kept is the file's first 16 KiB.
        let content = field_str(e, "http.response.body.content").ok_or("no content")?;
        assert!(
            content.as_bytes() == &file[..16384],
            "{v}: the kept content is not the file's start"
        );
        // Nothing was lost on the way: the cut is weft's choice.
        assert_eq!(flag(e, "weft.http.data_lost"), Some(false), "{v}");
    }
    // The statistics count the cut bodies.
    let cut = exit_stat(&seen.stderr, "decoder: bodies cut at --max-body")
        .ok_or_else(|| format!("no body line in the statistics:\n{}", seen.stderr))?;
    assert!(cut >= 4, "{cut}\n{}", seen.stderr);
    // Past the first 16 KiB of each body (HTTP/1.1 Content-Length, HTTP/2
    // DATA), neither end's probes copied a byte, and the decoders stepped
    // over every one in sync (ADR 0008).
    let past = (FILE_SIZE - 16384) as u64;
    assert_eq!(
        exit_stat(&seen.stderr, "body bytes not copied"),
        Some(4 * past),
        "{}",
        seen.stderr
    );
    assert_eq!(
        exit_stat(&seen.stderr, "of which stepped over by the decoders"),
        Some(4 * past),
        "{}",
        seen.stderr
    );
    Ok(())
}

#[test]
fn max_body_1m_keeps_the_whole_file() -> TestResult {
    let seen = run(&["--max-body", "1M"])?;
    let file = file_bytes();
    for e in &seen.events {
        let v = field_str(e, "http.version").unwrap_or("?");
        let whole = Some(FILE_SIZE as u64);
        assert_eq!(
            body_facts(e),
            (whole, whole, Some(false), Some(false)),
            "{v}"
        );
        let content = field_str(e, "http.response.body.content").ok_or("no content")?;
        assert!(content.as_bytes() == file, "{v}: content is not the file");
    }
    Ok(())
}

#[test]
fn max_body_0_keeps_only_the_size() -> TestResult {
    let seen = run(&["--max-body", "0"])?;
    for e in &seen.events {
        let v = field_str(e, "http.version").unwrap_or("?");
        assert_eq!(
            field_u64(e, "http.response.body.bytes"),
            Some(FILE_SIZE as u64),
            "{v}"
        );
        assert_eq!(field_u64(e, "weft.http.response.body.kept"), Some(0));
        assert_eq!(flag(e, "weft.http.body_truncated"), Some(true), "{v}");
        assert!(field(e, "http.response.body.content").is_none(), "{v}");
        assert!(field(e, "http.response.body.base64").is_none(), "{v}");
    }
    Ok(())
}

/// The kernel leaves out the body bytes past the bound (ADR 0008): on one
/// HTTP/1.1 connection curl fetches the 100 KiB file twice and then a
/// small file. Every transaction is reported whole in size and in order,
/// nothing is lost, and the bytes past 16 KiB of each big body were never
/// copied by either end's probes.
#[test]
fn kernel_skips_body_bytes_past_the_bound() -> TestResult {
    let dir = TempDir::new("bodyskip");
    let name = format!("big-{:x}.txt", rand_u64());
    let nginx = serve_file(dir.path(), &name)?;
    std::fs::write(dir.path().join("files").join("small.txt"), b"small body\n")?;
    let weft = Weft::start(&[])?;
    let base = format!("https://127.0.0.1:{}/files", nginx.port);
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let (pid, stdout) = run_client(
        Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "20",
                "--http1.1",
                "-w",
                "%{size_download} %{num_connects}\\n",
            ])
            .arg("-o")
            .arg(&a)
            .arg(format!("{base}/{name}"))
            .arg("-o")
            .arg(&b)
            .arg(format!("{base}/{name}"))
            .arg("-o")
            .arg(&c)
            .arg(format!("{base}/small.txt")),
        CLIENT_TIMEOUT,
    )?;
    // Ground truth: what curl got, and that it used one connection.
    let lines = String::from_utf8_lossy(&stdout).to_string();
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        vec![
            format!("{FILE_SIZE} 1"),
            format!("{FILE_SIZE} 0"),
            "11 0".to_string()
        ],
        "curl's sizes and connects"
    );
    let file = file_bytes();
    assert!(std::fs::read(&a)? == file && std::fs::read(&b)? == file);
    let ours = |e: &Value| field_str(e, "event.action") == Some("http-transaction");
    weft.wait_for_count(SEEN_TIMEOUT, 6, ours);
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let events: Vec<Value> = run.events.into_iter().filter(|e| ours(e)).collect();
    // curl's three and nginx's three, in each one's order.
    for side in [u64::from(pid), 0] {
        let seen: Vec<&Value> = events
            .iter()
            .filter(|e| {
                let p = field_u64(e, "process.pid");
                if side == 0 {
                    p != Some(u64::from(pid))
                } else {
                    p == Some(side)
                }
            })
            .collect();
        let paths: Vec<&str> = seen
            .iter()
            .filter_map(|e| field_str(e, "url.path"))
            .collect();
        let big = format!("/files/{name}");
        assert_eq!(
            paths,
            vec![big.as_str(), big.as_str(), "/files/small.txt"],
            "{}",
            run.stderr
        );
        for e in &seen[..2] {
            assert_eq!(
                body_facts(e),
                (Some(FILE_SIZE as u64), Some(16384), Some(true), Some(true)),
                "{e}"
            );
            let content = field_str(e, "http.response.body.content").ok_or("no content")?;
            assert!(
                content.as_bytes() == &file[..16384],
                "kept content is not the file's start"
            );
            let http = field(e, "weft.http");
            assert_eq!(flag(e, "weft.http.data_lost"), Some(false), "{http:?}");
        }
        assert_eq!(
            body_facts(seen[2]),
            (Some(11), Some(11), Some(false), Some(false))
        );
        assert_eq!(
            field_str(seen[2], "http.response.body.content"),
            Some("small body\n")
        );
    }
    // Both ends' probes left out the two big bodies past their first
    // 16 KiB, and the decoders stepped over every such byte in sync.
    let skipped = exit_stat(&run.stderr, "body bytes not copied")
        .ok_or_else(|| format!("no skip line in the statistics:\n{}", run.stderr))?;
    let past = (FILE_SIZE - 16384) as u64;
    assert_eq!(skipped, 4 * past, "{}", run.stderr);
    assert_eq!(
        exit_stat(&run.stderr, "of which stepped over by the decoders"),
        Some(skipped),
        "{}",
        run.stderr
    );
    assert_eq!(
        exit_stat(&run.stderr, "decoder: holes left by the kernel"),
        Some(0),
        "{}",
        run.stderr
    );
    assert_eq!(
        exit_stat(&run.stderr, "decoder: bytes lost to capture gaps"),
        Some(0),
        "{}",
        run.stderr
    );
    assert_eq!(
        exit_stat(&run.stderr, "decoder: desynchronisations"),
        Some(0),
        "{}",
        run.stderr
    );
    Ok(())
}

/// node's HTTP/2 server: `/big` answers the 100 KiB file. With
/// `connect_protocol` its SETTINGS allow extended CONNECT (RFC 8441:
/// WebSocket in DATA frames), which the kernel must then not cut.
fn node_h2(dir: &Path, connect_protocol: bool) -> TestResult<(Helper, u16)> {
    let (cert, key) = make_cert(dir)?;
    std::fs::write(dir.join("big.txt"), file_bytes())?;
    let port = free_port();
    let script = format!(
        r#"const h2 = require('http2'), fs = require('fs');
const body = fs.readFileSync({big:?});
const s = h2.createSecureServer({{ cert: fs.readFileSync({cert:?}), key: fs.readFileSync({key:?}),
  settings: {{ enableConnectProtocol: {connect_protocol} }} }});
s.on('stream', (st) => {{ st.respond({{ ':status': 200, 'content-type': 'text/plain' }}); st.end(body); }});
s.listen({port}, '127.0.0.1', () => console.log('ready'));"#,
        big = dir.join("big.txt").display().to_string(),
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    let mut cmd = Command::new("node");
    cmd.args(["-e", &script]);
    let h = Helper::spawn(cmd)?;
    let line = h.read_line(CLIENT_TIMEOUT)?;
    assert_eq!(line, "ready");
    Ok((h, port))
}

/// HTTP/2 bodies are cut in the kernel only where no WebSocket can ride
/// in DATA frames: against a server whose SETTINGS allow extended CONNECT
/// every byte is copied; against the same server without it, curl's side
/// leaves out the body past 16 KiB. The events are the same either way.
#[test]
fn h2_bodies_are_not_cut_where_websocket_may_use_data_frames() -> TestResult {
    for connect_protocol in [true, false] {
        let dir = TempDir::new("h2connect");
        let (server, port) = node_h2(dir.path(), connect_protocol)?;
        let weft = Weft::start(&[])?;
        let (pid, got, counted) = fetch(
            "--http2",
            &format!("https://127.0.0.1:{port}/big"),
            dir.path(),
        )?;
        assert_eq!((counted, got == file_bytes()), (FILE_SIZE as u64, true));
        let mine = |e: &Value| {
            field_str(e, "event.action") == Some("http-transaction")
                && field_u64(e, "process.pid") == Some(u64::from(pid))
        };
        weft.wait_for(SEEN_TIMEOUT, mine);
        let run = weft.stop()?;
        drop(server);
        assert!(run.success, "weft failed:\n{}", run.stderr);
        let e = run
            .events
            .iter()
            .find(|e| mine(e))
            .ok_or_else(|| format!("no event of curl:\n{}", run.stderr))?;
        let http = field(e, "weft.http");
        assert_eq!(
            body_facts(e),
            (Some(FILE_SIZE as u64), Some(16384), Some(true), Some(true)),
            "{http:?}"
        );
        assert_eq!(flag(e, "weft.http.data_lost"), Some(false), "{http:?}");
        let skipped = exit_stat(&run.stderr, "body bytes not copied").unwrap_or(0);
        if connect_protocol {
            assert_eq!(
                skipped, 0,
                "extended CONNECT allowed, yet cut:\n{}",
                run.stderr
            );
        } else {
            assert!(skipped >= (FILE_SIZE - 16384) as u64, "{}", run.stderr);
        }
    }
    Ok(())
}
