//! `--keylog` for BoringSSL inside stripped Chromium: headless chromium
//! fetches a page from nginx over HTTP/2 while weft runs with `--keylog` and
//! tcpdump records the connection on `lo`. Ground truth is chromium's own
//! `--ssl-key-log-file`: every line it wrote must be in weft's file,
//! byte for byte, and tshark must decrypt the capture with weft's key log
//! alone and find the request path. TLS 1.3 (traffic secrets) and TLS 1.2
//! (`CLIENT_RANDOM`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_itest::exchange::SEEN_TIMEOUT;
use weft_itest::tcpdump::Tcpdump;
use weft_itest::*;

const CHROMIUM: &str = "/usr/lib/chromium/chromium";

fn chromium(url: &str, keys: &Path) -> TestResult<TreeRun> {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install the Debian package chromium (scripts/deps.sh)"
    );
    let profile = TempDir::new("chromium-keylog-profile");
    run_tree(
        Command::new(CHROMIUM)
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
            .arg(format!("--ssl-key-log-file={}", keys.display()))
            .arg("--dump-dom")
            .arg(url),
        Duration::from_secs(60),
    )
}

/// The HTTP/2 request paths tshark finds when it decrypts `pcap` with `keys`.
fn tshark_h2_paths(pcap: &Path, keys: &Path, port: u16) -> TestResult<Vec<String>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keys.display()))
        .args(["-d", &format!("tcp.port=={port},tls")])
        .args(["-Y", "http2.headers.path", "-T", "fields"])
        .args(["-e", "http2.headers.path"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tshark ({e}): install it (scripts/deps.sh)"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| l.split(','))
        .map(str::to_string)
        .collect())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// `nginx_conf`: server-level directives (TLS 1.2 only: the server's
/// choice, chromium offers both).
fn one_session(tls: &str, nginx_conf: &str) -> TestResult {
    let nginx = Nginx::start_with(None, nginx_conf)?;
    let dir = TempDir::new("boring-keylog");
    let keys = dir.path().join("weft-keys.log");
    let chrome_keys = dir.path().join("chromium-keys.log");
    let pcap = dir.path().join("lo.pcap");
    let keys_arg = keys.display().to_string();
    let weft = Weft::start(&["--keylog", &keys_arg])?;
    let mode = std::fs::metadata(&keys)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key log mode {mode:o}");
    let tcpdump = Tcpdump::start(nginx.port, &pcap)?;

    let uri = format!("/boring-keylog-{tls}-{:x}", rand_u64());
    let run = chromium(
        &format!("https://127.0.0.1:{}{uri}", nginx.port),
        &chrome_keys,
    )?;
    let body = format!("body-{uri}");
    assert!(
        contains(&run.stdout, body.as_bytes()),
        "chromium's DOM lacks the body: {}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert!(nginx.wait_logged(&uri).is_some(), "nginx did not log {uri}");
    tcpdump.stop()?;

    // Chromium's own key log is the ground truth.
    let truth = lines(&chrome_keys);
    assert!(!truth.is_empty(), "chromium wrote no key log");
    let want_label = if tls == "1.2" {
        "CLIENT_RANDOM "
    } else {
        "CLIENT_TRAFFIC_SECRET_0 "
    };
    assert!(
        truth.iter().any(|l| l.starts_with(want_label)),
        "chromium's key log has no {want_label}line: {truth:?}"
    );
    // weft appends from its reader thread: wait (bounded) for every line.
    let end = Instant::now() + SEEN_TIMEOUT;
    let mut got = lines(&keys);
    while !truth.iter().all(|l| got.contains(l)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        got = lines(&keys);
    }
    let out = weft.stop()?;
    assert!(out.success, "weft failed:\n{}", out.stderr);
    assert!(
        !out.stderr.contains("--keylog will not see"),
        "weft refused the key-log point:\n{}",
        out.stderr
    );
    for l in &truth {
        assert!(
            got.contains(l),
            "chromium's key-log line is missing from weft's file:\n{l}\nweft wrote:\n{}\nstderr:\n{}",
            got.join("\n"),
            out.stderr
        );
    }

    // tshark decrypts the capture with weft's key log alone.
    let paths = tshark_h2_paths(&pcap, &keys, nginx.port)?;
    assert!(
        paths.iter().any(|p| p == &uri),
        "tshark did not decrypt the request for {uri} with weft's key log: {paths:?}"
    );
    Ok(())
}

#[test]
fn chromium_tls13_secrets_match_chromiums_own_key_log() -> TestResult {
    one_session("1.3", "")
}

#[test]
fn chromium_tls12_client_random_matches_chromiums_own_key_log() -> TestResult {
    one_session("1.2", "ssl_conf_command MaxProtocol TLSv1.2;")
}
