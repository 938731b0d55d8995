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

/// A Chromium whose `ssl_log_secret` is not byte for byte the known one (a
/// copy with one immediate changed) gets no key-log probe and a warning that
/// says why; its plaintext probes (verified separately) stay.
#[test]
fn altered_key_log_function_is_refused_with_a_warning() -> TestResult {
    const SSL_LOG_SECRET_CMP_IMM: u64 = 0x9da7b19; // `cmp qword [rax+0x268], 0`'s 0
    require_root();
    let dir = TempDir::new("boring-keylog-altered");
    let copy = dir.path().join("chromium");
    std::fs::copy(CHROMIUM, &copy)?;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&copy)?;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, SSL_LOG_SECRET_CMP_IMM)?;
        assert_eq!(b[0], 0, "not the chromium build this test knows");
        f.write_all_at(&[1], SSL_LOG_SECRET_CMP_IMM)?;
    }
    let keys = dir.path().join("keys.log");
    let keys_arg = keys.display().to_string();
    let weft = Weft::start(&["--keylog", &keys_arg])?;
    // Exec it (discovery inspects new executables); --version does no TLS.
    let (_, out) = run_client(
        Command::new(&copy).arg("--version"),
        Duration::from_secs(30),
    )?;
    assert!(
        contains(&out, b"Chromium"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let path = copy.display().to_string();
    // The file is inspected on the discovery thread right after its exec
    // (as in chromium.rs's refusal test).
    std::thread::sleep(Duration::from_millis(1000));
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("--keylog will not see this BoringSSL's sessions"))
        .ok_or_else(|| format!("no key-log refusal for {path}:\n{}", run.stderr))?;
    assert!(line.contains("WARN") && line.contains(&path), "{line}");
    assert!(line.contains("ssl_log_secret"), "{line}");
    // The plaintext probes are still on the copy, the key-log hook is not.
    let probed = run
        .stderr
        .lines()
        .find(|l| l.contains(&path) && l.contains("boringssl:"))
        .ok_or_else(|| format!("{path} not among the probed files:\n{}", run.stderr))?;
    assert!(
        probed.contains("SSL_write") && probed.contains("SSL_read"),
        "{probed}"
    );
    assert!(!probed.contains("ssl_log_secret"), "{probed}");
    Ok(())
}
