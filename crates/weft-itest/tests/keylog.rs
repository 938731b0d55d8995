//! `--keylog`: tcpdump records curl's sessions with nginx on loopback while
//! weft runs with `--keylog FILE`; tshark decrypts the capture with that key
//! log alone, and the decrypted HTTP must be what curl and nginx really
//! exchanged (curl's output, nginx's log) and what weft captured.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use weft_itest::exchange::*;
use weft_itest::tcpdump::{Tcpdump, tshark_http};
use weft_itest::*;

#[test]
fn tshark_decrypts_curl_sessions_with_wefts_key_log() -> TestResult {
    let nginx = Nginx::start()?;
    let dir = TempDir::new("keylog");
    let keys = dir.path().join("keys.log");
    let pcap = dir.path().join("lo.pcap");
    let keys_arg = keys.display().to_string();
    // Whole host: with a --comm filter a curl born after weft gets its
    // uprobes a few ms after exec, and its first handshake can pass before
    // (README, known limits). nginx logs the same sessions' secrets.
    let weft = Weft::start(&["--keylog", &keys_arg])?;
    let mode = std::fs::metadata(&keys)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key log mode {mode:o}");
    let tcpdump = Tcpdump::start(nginx.port, &pcap)?;

    // TLS 1.3 and TLS 1.2 (CLIENT_RANDOM): both kinds of secrets.
    let mut sent = Vec::new();
    for tls_max in ["1.3", "1.2"] {
        let uri = format!("/keylog-{tls_max}-{:x}", rand_u64());
        let (pid, out) = curl(
            &["--http1.1", "--tls-max", tls_max],
            &format!("https://127.0.0.1:{}{uri}", nginx.port),
        )?;
        let body = String::from_utf8(out)?;
        assert_eq!(body, format!("body-{uri}\n"));
        assert!(nginx.wait_logged(&uri).is_some(), "nginx did not log {uri}");
        sent.push((pid, uri, body));
    }
    tcpdump.stop()?;
    let pid1 = u64::from(sent[1].0);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(pid1)
            && field_str(e, "event.action") == Some("http-transaction")
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(seen, "weft saw no http event of curl:\n{}", run.stderr);

    let key_text = std::fs::read_to_string(&keys)?;
    assert!(key_text.contains("CLIENT_TRAFFIC_SECRET_0 "), "{key_text}");
    assert!(key_text.contains("CLIENT_RANDOM "), "{key_text}");

    // Only the key log weft wrote lets tshark see HTTP inside.
    let decrypted = tshark_http(&pcap, &keys, nginx.port)?;
    for (pid, uri, body) in &sent {
        assert!(
            decrypted.iter().any(|(u, b)| u == uri && b == body),
            "tshark did not decrypt {uri} with body {body:?}: {decrypted:?}\nkeys:\n{key_text}"
        );
        // And weft's own http event says the same.
        let http = of_pid(&run.events, *pid)
            .into_iter()
            .find(|e| field_str(e, "event.action") == Some("http-transaction"))
            .ok_or_else(|| format!("no http event of curl {pid}"))?;
        assert_eq!(field_str(http, "url.path"), Some(uri.as_str()));
        assert_eq!(
            field_str(http, "http.response.body.content"),
            Some(body.as_str())
        );
    }
    assert_eq!(decrypted.len(), 2, "{decrypted:?}");
    Ok(())
}

/// A symbolic link at the key-log path is refused: weft does not start and
/// the link's target is untouched.
#[test]
fn keylog_refuses_a_symlink() -> TestResult {
    require_root();
    let dir = TempDir::new("keylog-link");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious")?;
    let link = dir.path().join("keys.log");
    std::os::unix::fs::symlink(&victim, &link)?;
    let out = Command::new(weft_bin())
        .arg("--keylog")
        .arg(&link)
        .stdin(Stdio::null())
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim)?, "precious");
    Ok(())
}
