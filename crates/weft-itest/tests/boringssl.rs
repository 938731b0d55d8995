//! BoringSSL as a shared library with its `SSL_*` exported: Debian's
//! `android-libboringssl` (`/usr/lib/x86_64-linux-gnu/android/libssl.so.0`)
//! and its own client, `bssl-tool client`, against nginx, TLS 1.3 and 1.2.
//!
//! Ground truth: the request is what the test fed the client on stdin; the
//! response is what the client printed; nginx answers with its own account
//! of the connection (`$ssl_protocol`, `$ssl_server_name`,
//! `$ssl_alpn_protocol`, `$remote_port`) and logs it; the client prints its
//! own (version, cipher, ALPN) on stderr; and tshark decrypts a tcpdump
//! capture of the connection with weft's key log alone.
//!
//! The client is started as `sh -c 'read go; exec bssl-tool ...'`: its pid
//! is known before weft starts (the key-log test selects it with `--pid`, so
//! that nginx's own secrets, which weft logs too, cannot stand in for
//! BoringSSL's), and stdin stays open until the response has been read (on
//! stdin's end bssl half-closes the connection).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::tcpdump::{Tcpdump, tshark_http};
use weft_itest::*;

const BSSL: &str = "/usr/bin/bssl-tool";
const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/android/libssl.so.0";
const HOST: &str = "weft.test";

/// Every URI under `/boringssl/` answers with nginx's view of the connection.
const SESSION_INFO: &str = r#"location /boringssl/ {
            default_type text/plain;
            return 200 "session $ssl_protocol|$ssl_cipher|$ssl_server_name|$ssl_alpn_protocol|$remote_port\n";
        }"#;

/// A `bssl-tool client` waiting for the word to start.
struct Bssl {
    helper: Helper,
    stderr: PathBuf,
    _dir: TempDir,
}

/// What nginx said about the connection (the body it served).
struct Served {
    body: String,
    protocol: String,
    server_name: String,
    alpn: String,
    remote_port: u16,
}

/// What the client printed about its session (stderr).
#[derive(Debug, Default)]
struct ClientSession {
    version: String,
    cipher: String,
    alpn: String,
}

impl Bssl {
    /// `max_version`: bssl's `-max-version` (`tls1.2`), else its default (1.3).
    fn spawn(port: u16, max_version: Option<&str>) -> TestResult<Bssl> {
        assert!(
            Path::new(BSSL).exists() && Path::new(LIBSSL).exists(),
            "{BSSL} or {LIBSSL} is missing: install android-boringssl and android-libboringssl \
             (scripts/deps.sh)"
        );
        let dir = TempDir::new("bssl");
        let stderr = dir.path().join("bssl.err");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"read go || exit 1; err=$1; shift; exec "$@" 2>"$err""#)
            .arg("sh")
            .arg(&stderr)
            .arg(BSSL)
            .arg("client")
            .args(["-connect", &format!("127.0.0.1:{port}")])
            .args(["-server-name", HOST, "-alpn-protos", "http/1.1"])
            // No key-log callback: weft must find the secrets without it.
            .env_remove("SSLKEYLOGFILE");
        if let Some(v) = max_version {
            cmd.args(["-max-version", v]);
        }
        Ok(Bssl {
            helper: Helper::spawn(cmd)?,
            stderr,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.helper.pid()
    }

    /// Start the client, send `request`, read until nginx's session line,
    /// then end stdin and wait for the client to exit. Returns the line.
    fn exchange(&mut self, request: &[u8]) -> TestResult<Served> {
        self.exchange_closing(request, false)
    }

    /// `half_close`: end stdin right after the request, so that bssl shuts
    /// down its sending side before the response comes.
    fn exchange_closing(&mut self, request: &[u8], half_close: bool) -> TestResult<Served> {
        self.helper.write_line("go")?;
        {
            let stdin = self.helper.proc.child.stdin.as_mut().ok_or("no stdin")?;
            stdin.write_all(request)?;
            stdin.flush()?;
        }
        if half_close {
            drop(self.helper.proc.child.stdin.take());
        }
        let end = Instant::now() + CLIENT_TIMEOUT;
        let body = loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self.helper.read_line(left).map_err(|e| {
                format!(
                    "{e}: bssl said:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                )
            })?;
            if line.starts_with("session ") {
                break line;
            }
        };
        drop(self.helper.proc.child.stdin.take());
        assert!(self.helper.wait(CLIENT_TIMEOUT)?, "bssl-tool failed");
        let f: Vec<&str> = body["session ".len()..].split('|').collect();
        let [protocol, _cipher, server_name, alpn, port] = f[..] else {
            return Err(format!("unexpected session line {body:?}").into());
        };
        Ok(Served {
            protocol: protocol.to_string(),
            server_name: server_name.to_string(),
            alpn: alpn.to_string(),
            remote_port: port.trim().parse()?,
            body: format!("{body}\n"),
        })
    }

    /// The client's own account: `  Version: TLSv1.3`, `  Cipher: ...`,
    /// `  ALPN protocol: http/1.1`.
    fn session(&self) -> TestResult<ClientSession> {
        let text = std::fs::read_to_string(&self.stderr)?;
        let mut s = ClientSession::default();
        for l in text.lines().map(str::trim) {
            if let Some(v) = l.strip_prefix("Version: TLSv") {
                s.version = v.to_string();
            } else if let Some(v) = l.strip_prefix("Cipher: ") {
                s.cipher = v.to_string();
            } else if let Some(v) = l.strip_prefix("ALPN protocol: ") {
                s.alpn = v.to_string();
            }
        }
        if s.version.is_empty() || s.cipher.is_empty() {
            return Err(format!("bssl printed no session:\n{text}").into());
        }
        Ok(s)
    }
}

fn request(uri: &str) -> String {
    format!("GET {uri} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: weft-bssl-test\r\n\r\n")
}

/// The statistics line weft printed for the android libssl.
fn probed_line(stderr: &str) -> TestResult<String> {
    stderr
        .lines()
        .find(|l| l.contains(LIBSSL) && l.contains('('))
        .map(str::to_string)
        .ok_or_else(|| format!("{LIBSSL} not among the probed files:\n{stderr}").into())
}

/// Plaintext both ways, pid, 5-tuple, the decoded transaction (check_exchange),
/// and the handshake facts as the client and nginx saw them.
fn capture_and_handshake(max_version: Option<&str>) -> TestResult {
    let nginx = Nginx::start_with(None, SESSION_INFO)?;
    let mut client = Bssl::spawn(nginx.port, max_version)?;
    let pid = client.pid();
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/boringssl/capture-{:x}", rand_u64());
    let req = request(&uri);
    let served = client.exchange(req.as_bytes())?;
    let session = client.session()?;
    let run = check_exchange_run(
        weft,
        &nginx,
        &Expect {
            client_pid: pid,
            request: req.as_bytes(),
            server_read: req.as_bytes(),
            body: served.body.as_bytes(),
            uri: &uri,
            library: "boringssl",
        },
    )?;

    // The library is BoringSSL, probed with the functions it defines.
    let line = probed_line(&run.stderr)?;
    assert!(line.contains("(boringssl: "), "{line}");
    for f in [
        "SSL_write",
        "SSL_read",
        "SSL_do_handshake",
        "SSL_free",
        "SSL_get0_alpn_selected",
    ] {
        assert!(line.contains(f), "{f} not probed: {line}");
    }
    assert!(!line.contains("ssl_log_secret"), "no --keylog: {line}");

    let client_events = of_pid(&run.events, pid);
    assert!(
        client_events
            .iter()
            .all(|e| field_str(e, "process.name") == Some("bssl-tool")),
        "{client_events:#?}"
    );
    let hs: Vec<&&Value> = client_events
        .iter()
        .filter(|e| field_str(e, "event.action") == Some("tls-handshake"))
        .collect();
    assert_eq!(hs.len(), 1, "one handshake event for bssl: {hs:#?}");
    let h = hs[0];
    assert_eq!(field_str(h, "weft.tls.library"), Some("boringssl"));
    assert_eq!(field_str(h, "event.outcome"), Some("success"));
    assert_eq!(field(h, "tls.established"), Some(&Value::Bool(true)));
    assert_eq!(
        served.protocol,
        format!("TLSv{}", session.version),
        "nginx and bssl disagree"
    );
    assert_eq!(field_str(h, "tls.version"), Some(session.version.as_str()));
    assert_eq!(
        max_version.is_some(),
        session.version == "1.2",
        "bssl negotiated {}",
        session.version
    );
    // bssl names the suite by its IANA name, as the ECS field does.
    assert_eq!(field_str(h, "tls.cipher"), Some(session.cipher.as_str()));
    assert_eq!(served.server_name, HOST);
    assert_eq!(field_str(h, "tls.client.server_name"), Some(HOST));
    assert_eq!(
        field(h, "weft.tls.alpn_offered"),
        Some(&serde_json::json!(["http/1.1"]))
    );
    assert_eq!(served.alpn, "http/1.1");
    assert_eq!(session.alpn, served.alpn);
    assert_eq!(
        field_str(h, "tls.next_protocol"),
        Some(served.alpn.as_str())
    );
    assert_eq!(
        field_u64(h, "source.port"),
        Some(u64::from(served.remote_port))
    );
    assert_eq!(
        field_u64(h, "destination.port"),
        Some(u64::from(nginx.port))
    );
    assert!(field_u64(h, "event.duration").is_some_and(|d| d > 0));
    // The same facts ride on the client's http event.
    let http = client_events
        .iter()
        .find(|e| field_str(e, "event.action") == Some("http-transaction"))
        .ok_or("no http event of bssl")?;
    assert_eq!(
        field_str(http, "tls.version"),
        Some(session.version.as_str())
    );
    assert_eq!(field_str(http, "tls.cipher"), Some(session.cipher.as_str()));
    assert_eq!(
        field_str(http, "tls.next_protocol"),
        Some(served.alpn.as_str())
    );
    assert_eq!(
        field_str(http, "http.response.body.content"),
        Some(served.body.as_str())
    );
    Ok(())
}

#[test]
fn bssl_tls13_capture_and_handshake_facts() -> TestResult {
    capture_and_handshake(None)
}

#[test]
fn bssl_tls12_capture_and_handshake_facts() -> TestResult {
    capture_and_handshake(Some("tls1.2"))
}

fn key_log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `--keylog` with only the client selected: the file is 0600, holds the
/// session's secrets, and tshark decrypts the capture with it alone.
fn key_log(max_version: Option<&str>) -> TestResult {
    let nginx = Nginx::start_with(None, SESSION_INFO)?;
    let dir = TempDir::new("bssl-keylog");
    let keys = dir.path().join("keys.log");
    let pcap = dir.path().join("lo.pcap");
    let mut client = Bssl::spawn(nginx.port, max_version)?;
    let pid = client.pid().to_string();
    let keys_arg = keys.display().to_string();
    let weft = Weft::start(&["--pid", &pid, "--keylog", &keys_arg])?;
    let mode = std::fs::metadata(&keys)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key log mode {mode:o}");
    let tcpdump = Tcpdump::start(nginx.port, &pcap)?;
    let uri = format!("/boringssl/keylog-{:x}", rand_u64());
    let served = client.exchange(request(&uri).as_bytes())?;
    let session = client.session()?;
    assert!(nginx.wait_logged(&uri).is_some(), "nginx did not log {uri}");
    tcpdump.stop()?;

    // TLS 1.3: two handshake and two traffic secrets (+ exporter); 1.2: the
    // master secret. All from this one session: one client random.
    let want: &[&str] = if session.version == "1.2" {
        &["CLIENT_RANDOM"]
    } else {
        &[
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
        ]
    };
    let has_all = |lines: &[String]| {
        want.iter()
            .all(|w| lines.iter().any(|l| l.starts_with(&format!("{w} "))))
    };
    let end = Instant::now() + SEEN_TIMEOUT;
    let mut got = key_log_lines(&keys);
    while !has_all(&got) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        got = key_log_lines(&keys);
    }
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(
        !run.stderr.contains("--keylog will not see"),
        "weft refused a key-log point:\n{}",
        run.stderr
    );
    let line = probed_line(&run.stderr)?;
    assert!(
        line.contains("(boringssl: ") && line.contains("ssl_log_secret"),
        "{line}"
    );
    assert!(
        has_all(&got),
        "weft's key log lacks {want:?}:\n{}",
        got.join("\n")
    );
    let randoms: std::collections::HashSet<&str> =
        got.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(randoms.len(), 1, "one session, one client random: {got:?}");
    for l in &got {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "{l}");
        assert_eq!(f[1].len(), 64, "{l}");
        assert!(f[2].len() >= 64 && f[2].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    // tshark decrypts the capture with weft's key log alone.
    let decrypted = tshark_http(&pcap, &keys, nginx.port)?;
    assert!(
        decrypted.contains(&(uri.clone(), served.body.clone())),
        "tshark did not decrypt {uri} -> {:?} with weft's key log: {decrypted:?}",
        served.body
    );
    Ok(())
}

#[test]
fn bssl_tls13_key_log_decrypts_the_capture() -> TestResult {
    key_log(None)
}

#[test]
fn bssl_tls12_key_log_decrypts_the_capture() -> TestResult {
    key_log(Some("tls1.2"))
}

/// `printf REQUEST | bssl-tool client`: on stdin's end bssl shuts down its
/// sending side, nginx answers and closes, and the socket has reached
/// TCP_CLOSE (the kernel zeroes its local port) before bssl reads the
/// response. The late reads keep the connection's 5-tuple.
#[test]
fn bssl_half_closed_connection_keeps_its_tuple_on_late_reads() -> TestResult {
    let nginx = Nginx::start_with(None, SESSION_INFO)?;
    let mut client = Bssl::spawn(nginx.port, None)?;
    let pid = client.pid();
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/boringssl/half-close-{:x}", rand_u64());
    let req = format!("GET {uri} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let served = client.exchange_closing(req.as_bytes(), true)?;
    let body = served.body.as_bytes();
    let got = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(u64::from(pid))
            && is_dir(e, "read")
            && contains(&payload(e), body)
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(got, "no read event of bssl with the body:\n{}", run.stderr);
    let client_events = of_pid(&run.events, pid);
    let write = client_events
        .iter()
        .find(|e| is_dir(e, "write") && contains(&payload(e), req.as_bytes()))
        .ok_or("the request is not among bssl's writes")?;
    let read = client_events
        .iter()
        .find(|e| is_dir(e, "read") && contains(&payload(e), body))
        .ok_or("the response is not among bssl's reads")?;
    let want = (
        "127.0.0.1".to_string(),
        u64::from(served.remote_port),
        "127.0.0.1".to_string(),
        u64::from(nginx.port),
    );
    assert_eq!(tuple(write), want, "{write}");
    assert_eq!(tuple(read), want, "late read: {read}");
    assert_eq!(
        field_u64(read, "weft.flow.cookie"),
        field_u64(write, "weft.flow.cookie")
    );
    Ok(())
}
