//! Chromium headless against nginx over HTTP/2. Chromium links BoringSSL
//! statically and ships stripped: weft finds `SSL_write`/`SSL_read` through
//! `data/boringssl.json` (keyed by build-id) and verifies them before
//! attaching (crates/weft-core/src/discovery/boringssl.rs). Network I/O runs
//! in the network service, a child process of the browser.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_itest::exchange::*;
use weft_itest::*;

const CHROMIUM: &str = "/usr/lib/chromium/chromium";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install the Debian package chromium (scripts/deps.sh)"
    );
}

/// `pid -> ppid` of every process in /proc.
fn process_table() -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok())
        {
            out.insert(pid, ppid);
        }
    }
    out
}

/// Run headless chromium on `url`; returns its pid, the DOM it dumped and
/// `pid -> ppid` of every process seen descending from it while it ran.
fn run_chromium(url: &str) -> TestResult<(u32, Vec<u8>, HashMap<u32, u32>)> {
    let profile = TempDir::new("chromium-profile");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {CHROMIUM}: {e}"))?;
    let root = child.id();
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // The descendants, recorded while they live (they are gone afterwards).
    let mut tree: HashMap<u32, u32> = HashMap::new();
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let table = process_table();
        let mut changed = true;
        while changed {
            changed = false;
            for (&pid, &ppid) in &table {
                if (ppid == root || tree.contains_key(&ppid)) && !tree.contains_key(&pid) {
                    tree.insert(pid, ppid);
                    changed = true;
                }
            }
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err("chromium did not finish within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let dom = reader.join().map_err(|_| "reader thread panicked")?;
    let stderr = err_reader.join().map_err(|_| "reader thread panicked")?;
    if !status.success() {
        return Err(format!("chromium failed ({status}): {stderr}").into());
    }
    Ok((root, dom, tree))
}

/// Whether this weft decodes HTTP into transaction events, which then
/// replace the per-call capture events unless `--raw` is given.
fn decodes_http() -> TestResult<bool> {
    let help = Command::new(weft_bin()).arg("--help").output()?;
    Ok(contains(&help.stdout, b"--raw"))
}

#[test]
fn chromium_h2_boringssl_stripped() -> TestResult {
    require_chromium();
    let decodes = decodes_http()?;
    let nginx = Nginx::start()?;
    let weft = Weft::start(if decodes { &["--raw"] } else { &[] })?;
    let uri = format!("/chromium-{:x}", rand_u64());
    let url = format!("https://127.0.0.1:{}{uri}", nginx.port);
    let (root, dom, tree) = run_chromium(&url)?;
    let body = format!("body-{uri}");
    assert!(
        contains(&dom, body.as_bytes()),
        "chromium's DOM lacks the body: {}",
        String::from_utf8_lossy(&dom)
    );
    let boring = |e: &serde_json::Value| field_str(e, "weft.tls.library") == Some("boringssl");
    let got = weft.wait_for(SEEN_TIMEOUT, |e| {
        boring(e) && is_dir(e, "read") && contains(&payload(e), body.as_bytes())
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(
        !run.stderr.contains("not attaching BoringSSL"),
        "weft refused chromium:\n{}",
        run.stderr
    );
    assert!(
        got,
        "no boringssl read event with {body:?}; stderr:\n{}",
        run.stderr
    );

    // Both directions of chromium's h2 connection, from the same process.
    let read = run
        .events
        .iter()
        .find(|e| boring(e) && is_dir(e, "read") && contains(&payload(e), body.as_bytes()))
        .ok_or("the response body is not among the boringssl read events")?;
    let pid = field_u64(read, "process.pid").ok_or("no process.pid")? as u32;
    let write = run
        .events
        .iter()
        .find(|e| {
            boring(e)
                && is_dir(e, "write")
                && field_u64(e, "process.pid") == Some(u64::from(pid))
                && contains(&payload(e), H2_PREFACE)
        })
        .ok_or("no boringssl write with the HTTP/2 preface from the process that read the body")?;

    // That process is chromium, the launched one or one of its descendants
    // (the network service).
    assert!(
        pid == root || tree.contains_key(&pid),
        "pid {pid} is not chromium {root} nor one of its descendants {tree:?}"
    );
    assert_eq!(field_str(read, "process.name"), Some("chromium"));
    if let Some(exe) = field_str(read, "process.executable") {
        assert_eq!(exe, CHROMIUM);
    }
    let ppid = field_u64(read, "process.parent.pid").ok_or("no process.parent.pid")? as u32;
    assert!(
        ppid == root || tree.contains_key(&ppid) || pid == root,
        "parent {ppid} of {pid} is outside chromium's tree"
    );

    // The 5-tuple: chromium's side is the source; nginx logged its port.
    let logged_port = nginx
        .wait_logged(&uri)
        .ok_or_else(|| format!("nginx did not log {uri}"))?;
    let t = tuple(write);
    assert_eq!(t.0, "127.0.0.1");
    assert_eq!(
        t.1,
        u64::from(logged_port),
        "source.port vs nginx $remote_port"
    );
    assert_eq!(t.2, "127.0.0.1");
    assert_eq!(t.3, u64::from(nginx.port));
    assert_eq!(field_str(write, "network.transport"), Some("tcp"));
    assert_eq!(
        tuple(read),
        t,
        "read and write events disagree on the tuple"
    );
    let cookie = field_u64(write, "weft.flow.cookie").ok_or("no cookie on the write")?;
    assert_ne!(cookie, 0);
    assert_eq!(field_u64(read, "weft.flow.cookie"), Some(cookie));
    assert_eq!(field_str(write, "weft.flow.role"), Some("client"));

    // The HTTP/2 exchange decodes to the right path and body.
    if decodes {
        let tx = run
            .events
            .iter()
            .find(|e| {
                field_str(e, "event.action") == Some("http-transaction")
                    && field_u64(e, "process.pid") == Some(u64::from(pid))
            })
            .ok_or("no http-transaction event of chromium's network process")?;
        assert_eq!(field_str(tx, "url.path"), Some(uri.as_str()));
        assert_eq!(field_str(tx, "http.version"), Some("2"));
        assert_eq!(field_str(tx, "weft.tls.library"), Some("boringssl"));
        assert!(
            field_str(tx, "http.response.body.content").is_some_and(|b| b.contains(&body)),
            "{tx}"
        );
        assert_eq!(tuple(tx), t);

        // Handshake facts from the socket's first bytes (Chromium's TLS
        // records cross the socket outside the hooked BoringSSL calls): the
        // version nginx logged, and JA4 saying the client offered TLS 1.3
        // and h2 first. The chosen ALPN travels encrypted in TLS 1.3 and
        // stripped Chromium's SSL_get0_alpn_selected is not located: it is
        // inferred from chromium's first bytes (the h2 preface), and must be
        // the protocol nginx logged.
        let hs = run
            .events
            .iter()
            .find(|e| {
                field_str(e, "event.action") == Some("tls-handshake")
                    && field_u64(e, "weft.flow.cookie") == Some(cookie)
            })
            .ok_or("no tls-handshake event of chromium's connection")?;
        assert_eq!(field_u64(hs, "process.pid"), Some(u64::from(pid)));
        assert_eq!(
            field(hs, "tls.established").and_then(|v| v.as_bool()),
            Some(true)
        );
        let logged = nginx
            .logged_tls_version(&uri)
            .ok_or("nginx did not log the TLS version")?;
        assert_eq!(
            field_str(hs, "tls.version").map(|v| format!("TLSv{v}")),
            Some(logged.clone())
        );
        if logged == "TLSv1.2" {
            assert_eq!(field_str(hs, "tls.next_protocol"), Some("h2"));
        }
        assert_eq!(
            nginx.logged_protocol(&uri).as_deref(),
            Some("HTTP/2.0"),
            "nginx's protocol for {uri}"
        );
        assert_eq!(field_str(tx, "tls.next_protocol"), Some("h2"), "{tx}");
        let inferred = field(tx, "weft.tls.next_protocol_inferred").and_then(|v| v.as_bool());
        assert_eq!(inferred, (logged == "TLSv1.3").then_some(true), "{tx}");
        // The handshake event may leave before chromium's first write (it
        // waits for the next event or a tick): when it has the protocol, it
        // is h2.
        if let Some(p) = field_str(hs, "tls.next_protocol") {
            assert_eq!(p, "h2", "{hs}");
        }
        assert!(
            field_str(hs, "tls.client.ja4")
                .is_some_and(|j| j.starts_with("t13") && j.get(8..10) == Some("h2")),
            "{hs}"
        );
        assert_eq!(field_str(tx, "tls.version"), field_str(hs, "tls.version"));
    }

    // nginx read the same preface on the same connection, from its side.
    let workers = nginx.worker_pids();
    assert!(
        run.events.iter().any(|e| {
            is_dir(e, "read")
                && field_u64(e, "process.pid").is_some_and(|p| workers.contains(&(p as u32)))
                && contains(&payload(e), H2_PREFACE)
                && tuple(e) == t
        }),
        "nginx's read of chromium's preface (same tuple) is missing"
    );
    Ok(())
}

/// An executable named like a browser that is not a BoringSSL build weft
/// knows or can verify gets no probe and a warning that says why.
#[test]
fn unknown_browser_build_is_refused_with_a_warning() -> TestResult {
    let dir = TempDir::new("fake-chromium");
    let fake = dir.path().join("chromium");
    std::fs::copy("/usr/bin/sleep", &fake)?;
    let weft = Weft::start(&[])?;
    let status = Command::new(&fake).arg("1").status()?;
    assert!(status.success());
    // The file is inspected on the discovery thread right after its exec.
    std::thread::sleep(Duration::from_millis(500));
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("not attaching BoringSSL probes") && l.contains("chromium"))
        .ok_or_else(|| format!("no refusal warning for {}:\n{}", fake.display(), run.stderr))?;
    assert!(line.contains("cannot verify"), "{line}");
    assert!(line.contains("WARN"), "{line}");
    Ok(())
}
