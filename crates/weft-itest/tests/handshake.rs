//! Handshake facts and handshake events, end to end: real curl (OpenSSL) and
//! gnutls-cli against nginx. Ground truth is what the client itself printed
//! about the session it negotiated (curl -v, gnutls-cli's description) and
//! what nginx logged, never weft's own output.

use std::process::Command;

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::*;

/// Runs curl with `-v` into a file and returns (pid, exit ok, verbose text).
fn curl_verbose(args: &[&str], url: &str, dir: &TempDir) -> TestResult<(u32, Vec<u8>, String)> {
    let log = dir.path().join("curl-verbose.txt");
    let (pid, out) = run_client(
        Command::new("curl")
            .args(["-sv", "--max-time", "20", "--stderr"])
            .arg(&log)
            .args(args)
            .arg(url),
        CLIENT_TIMEOUT,
    )?;
    Ok((pid, out, std::fs::read_to_string(&log)?))
}

/// What curl -v says: (TLS version as `1.3`, cipher, ALPN offered, ALPN
/// accepted).
fn curl_session(verbose: &str) -> (String, String, Vec<String>, Option<String>) {
    let mut version = String::new();
    let mut cipher = String::new();
    let mut offered = Vec::new();
    let mut accepted = None;
    for l in verbose.lines() {
        if let Some(r) = l.strip_prefix("* SSL connection using ") {
            let mut it = r.split(" / ");
            version = it
                .next()
                .unwrap_or("")
                .trim_start_matches("TLSv")
                .to_string();
            cipher = it.next().unwrap_or("").to_string();
        }
        if let Some(r) = l.strip_prefix("* ALPN: offers ") {
            offered = r.split(',').map(str::to_string).collect();
        }
        if let Some(r) = l.strip_prefix("* ALPN: server accepted ") {
            accepted = Some(r.trim().to_string());
        }
    }
    (version, cipher, offered, accepted)
}

fn handshakes(events: &[Value], pid: u32) -> Vec<&Value> {
    of_pid(events, pid)
        .into_iter()
        .filter(|e| field_str(e, "event.action") == Some("tls-handshake"))
        .collect()
}

/// Stops weft once `pid`'s handshake event has come (bounded wait): the run
/// and that event, which must be the process' only one.
fn only_handshake_of(weft: Weft, pid: u32, who: &str) -> TestResult<(WeftRun, Value)> {
    let pid64 = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(pid64)
            && field_str(e, "event.action") == Some("tls-handshake")
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(seen, "no handshake event of {who}; stderr:\n{}", run.stderr);
    let hs = handshakes(&run.events, pid);
    assert_eq!(hs.len(), 1, "{hs:#?}");
    let h = hs[0].clone();
    Ok((run, h))
}

fn str_list(v: &Value, path: &str) -> Vec<String> {
    field(v, path)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// curl's negotiated session, as curl printed it, equals weft's facts on the
/// handshake event and on the http event, for both client and server.
fn curl_facts(tls_max: Option<&str>) -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&[])?;
    let dir = TempDir::new("curl-hs");
    let uri = format!("/hs-{:x}", rand_u64());
    let host = "weft.test";
    let resolve = format!("{host}:{}:127.0.0.1", nginx.port);
    let mut args = vec!["-k", "--http2", "--resolve", &resolve];
    if let Some(m) = tls_max {
        args.extend(["--tls-max", m]);
    }
    let (pid, out, verbose) =
        curl_verbose(&args, &format!("https://{host}:{}{uri}", nginx.port), &dir)?;
    assert_eq!(out, format!("body-{uri}\n").as_bytes());
    let (version, cipher, offered, accepted) = curl_session(&verbose);
    assert!(
        !version.is_empty() && !cipher.is_empty(),
        "curl -v said:\n{verbose}"
    );
    let pid64 = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(pid64)
            && field_str(e, "event.action") == Some("http-transaction")
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(seen, "no http event of curl; stderr:\n{}", run.stderr);

    let hs = handshakes(&run.events, pid);
    assert_eq!(hs.len(), 1, "one handshake event for curl: {hs:#?}");
    let h = hs[0];
    assert_eq!(field_str(h, "event.outcome"), Some("success"));
    assert_eq!(field(h, "tls.established"), Some(&Value::Bool(true)));
    assert_eq!(field_str(h, "tls.version"), Some(version.as_str()));
    assert_eq!(field_str(h, "tls.cipher"), Some(cipher_iana(&cipher)));
    assert_eq!(field_str(h, "tls.client.server_name"), Some(host));
    assert_eq!(str_list(h, "weft.tls.alpn_offered"), offered);
    // TLS 1.2: from the ServerHello; TLS 1.3: from SSL_get0_alpn_selected,
    // which curl calls.
    assert!(accepted.is_some(), "curl -v said:\n{verbose}");
    assert_eq!(field_str(h, "tls.next_protocol"), accepted.as_deref());
    assert_eq!(
        field_u64(h, "destination.port"),
        Some(u64::from(nginx.port))
    );
    let logged = nginx
        .wait_logged(&uri)
        .ok_or("nginx did not log the request")?;
    assert_eq!(field_u64(h, "source.port"), Some(u64::from(logged)));
    assert!(field_u64(h, "event.duration").is_some_and(|d| d > 0));

    // The same facts ride on curl's http event.
    let http = of_pid(&run.events, pid)
        .into_iter()
        .find(|e| field_str(e, "event.action") == Some("http-transaction"))
        .ok_or("no http event")?;
    assert_eq!(field_str(http, "url.path"), Some(uri.as_str()));
    assert_eq!(field_str(http, "tls.version"), Some(version.as_str()));
    assert_eq!(field_str(http, "tls.cipher"), Some(cipher_iana(&cipher)));
    assert_eq!(field_str(http, "tls.client.server_name"), Some(host));
    assert_eq!(field(http, "tls.established"), Some(&Value::Bool(true)));

    // nginx's side of the same connection: same facts, server's view.
    let server = run
        .events
        .iter()
        .filter(|e| field_str(e, "event.action") == Some("tls-handshake"))
        .find(|e| {
            field_u64(e, "source.port") == Some(u64::from(logged))
                && field_str(e, "weft.flow.role") == Some("server")
        })
        .ok_or("no handshake event of nginx for curl's connection")?;
    assert_eq!(field_str(server, "tls.version"), Some(version.as_str()));
    assert_eq!(field_str(server, "tls.client.server_name"), Some(host));
    // nginx asks OpenSSL for the chosen protocol too (to start HTTP/2).
    assert_eq!(field_str(server, "tls.next_protocol"), accepted.as_deref());
    assert_eq!(field_str(http, "tls.next_protocol"), accepted.as_deref());
    Ok(())
}

/// curl names TLS 1.3 suites by their IANA names and TLS 1.2 suites by
/// OpenSSL's; the ECS field carries IANA names.
fn cipher_iana(openssl: &str) -> &str {
    match openssl {
        "ECDHE-RSA-AES256-GCM-SHA384" => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256" => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        other => other,
    }
}

#[test]
fn curl_tls13_handshake_facts() -> TestResult {
    curl_facts(None)
}

#[test]
fn curl_tls12_handshake_facts_with_alpn() -> TestResult {
    curl_facts(Some("1.2"))
}

/// curl refuses nginx's self-signed certificate (exit 60): one failed
/// handshake event for curl, with the alert curl sent.
#[test]
fn curl_refusing_the_certificate_is_a_failed_handshake() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&[])?;
    let dir = TempDir::new("curl-hs-fail");
    let log = dir.path().join("v.txt");
    let mut child = Command::new("curl")
        .args(["-sv", "--max-time", "20", "--stderr"])
        .arg(&log)
        .arg(format!("https://127.0.0.1:{}/refused", nginx.port))
        .spawn()?;
    let pid = child.id();
    let status = child.wait()?;
    let verbose = std::fs::read_to_string(&log)?;
    assert_eq!(status.code(), Some(60), "curl -v said:\n{verbose}");
    assert!(
        verbose.contains("TLS alert, unknown CA"),
        "curl -v said:\n{verbose}"
    );
    let (run, h) = only_handshake_of(weft, pid, "curl")?;
    assert_eq!(field_str(&h, "event.outcome"), Some("failure"));
    assert_eq!(field(&h, "tls.established"), Some(&Value::Bool(false)));
    assert_eq!(
        field_str(&h, "weft.tls.failure"),
        Some("alert unknown_ca sent")
    );
    assert_eq!(
        field_u64(&h, "destination.port"),
        Some(u64::from(nginx.port))
    );
    // No plaintext moved: no capture or http event of curl (its TCP
    // connection's own start and end events aside).
    let traffic: Vec<&Value> = of_pid(&run.events, pid)
        .into_iter()
        .filter(|e| !field_str(e, "event.action").is_some_and(|a| a.starts_with("connection-")))
        .collect();
    assert_eq!(traffic.len(), 1, "{traffic:#?}");
    Ok(())
}

/// GnuTLS: gnutls-cli's own session description gives version and cipher.
#[test]
fn gnutls_cli_handshake_facts() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&[])?;
    let uri = format!("/gnutls-hs-{:x}", rand_u64());
    let mut child = Command::new("gnutls-cli")
        .args([
            "--insecure",
            "--sni-hostname",
            "weft.test",
            "--alpn",
            "http/1.1",
        ])
        .args(["-p", &nginx.port.to_string(), "127.0.0.1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("stdin")?;
        // gnutls-cli sends what it reads once connected; EOF closes.
        stdin.write_all(
            format!("GET {uri} HTTP/1.1\r\nHost: weft.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!("body-{uri}")),
        "gnutls-cli said:\n{text}"
    );
    // "- Description: (TLS1.3-X.509)-(ECDHE-X25519)-(RSA-PSS-RSAE-SHA256)-(AES-256-GCM)"
    let desc = text
        .lines()
        .find_map(|l| l.strip_prefix("- Description: "))
        .ok_or_else(|| format!("no session description:\n{text}"))?;
    let version = desc
        .trim_start_matches("(TLS")
        .split(['-', ')'])
        .next()
        .unwrap_or("")
        .to_string();
    let (_, h) = only_handshake_of(weft, pid, "gnutls-cli")?;
    let h = &h;
    assert_eq!(field_str(h, "weft.tls.library"), Some("gnutls"));
    assert_eq!(field_str(h, "event.outcome"), Some("success"));
    assert_eq!(field_str(h, "tls.version"), Some(version.as_str()));
    assert_eq!(field_str(h, "tls.client.server_name"), Some("weft.test"));
    assert_eq!(str_list(h, "weft.tls.alpn_offered"), ["http/1.1"]);
    // The cipher's bulk part as gnutls-cli named it, e.g. AES-256-GCM.
    let bulk = desc.rsplit('(').next().unwrap_or("").trim_end_matches(')');
    let cipher = field_str(h, "tls.cipher").unwrap_or("");
    assert!(
        cipher.contains(&bulk.replace('-', "_")),
        "cipher {cipher} vs gnutls-cli {desc}"
    );
    Ok(())
}

/// nginx location that answers with what nginx negotiated on the connection.
const TLSINFO: &str = r#"location /tlsinfo {
            default_type text/plain;
            return 200 "$ssl_protocol|$ssl_cipher\n";
        }"#;

/// OpenSSL's names for TLS 1.2 suites nginx may pick, to IANA names.
fn nginx_cipher_iana(name: &str) -> String {
    cipher_iana(name).to_string()
}

/// The wolfSSL C client (wolfSSL_connect is the handshake hook): what nginx
/// says it negotiated with it equals weft's handshake event for the client.
#[test]
fn wolfssl_client_handshake_facts() -> TestResult {
    let dir = TempDir::new("wolfssl-hs");
    let bin = dir.path().join("wolfssl_client");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/wolfssl_client.c");
    let st = Command::new("gcc")
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .arg("-lwolfssl")
        .status()?;
    assert!(
        st.success(),
        "cannot build the wolfSSL client (libwolfssl-dev installed?)"
    );
    let nginx = Nginx::start_with(None, TLSINFO)?;
    let weft = Weft::start(&[])?;
    let (pid, out) = run_client(
        Command::new(&bin)
            .arg(nginx.port.to_string())
            .arg("/tlsinfo"),
        CLIENT_TIMEOUT,
    )?;
    let text = String::from_utf8_lossy(&out).to_string();
    // The body is the last line: "TLSv1.3|TLS_AES_256_GCM_SHA384".
    let info = text
        .lines()
        .rev()
        .find(|l| l.contains('|'))
        .ok_or_else(|| format!("no TLS info from nginx:\n{text}"))?;
    let (proto, cipher) = info.split_once('|').ok_or("bad TLS info")?;
    let version = proto.trim_start_matches("TLSv");
    let (_, h) = only_handshake_of(weft, pid, "the wolfSSL client")?;
    let h = &h;
    assert_eq!(field_str(h, "weft.tls.library"), Some("wolfssl"));
    assert_eq!(field_str(h, "event.outcome"), Some("success"));
    assert_eq!(field_str(h, "tls.version"), Some(version));
    assert_eq!(
        field_str(h, "tls.cipher"),
        Some(nginx_cipher_iana(cipher).as_str())
    );
    assert_eq!(
        field_u64(h, "destination.port"),
        Some(u64::from(nginx.port))
    );
    Ok(())
}
