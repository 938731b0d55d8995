//! JA4 and JA4S (issue 5): curl fetches a page from nginx over TLS 1.3 and
//! TLS 1.2 while weft runs and tcpdump records the connections on `lo`. The
//! test takes the raw ClientHello and ServerHello from the capture (tshark)
//! and computes JA4/JA4S with its own small implementation
//! (`tests/py/ja4_ref.py`, not weft's code); weft's `tls.client.ja4` and
//! `tls.server.ja4s` must be the same, on the handshake event and on the
//! connection's http event, next to `tls.client.server_name`.

use weft_itest::exchange::*;
use weft_itest::ja4::reference;
use weft_itest::tcpdump::Tcpdump;
use weft_itest::*;

fn one(tls_max: &str, http: &str) -> TestResult {
    let nginx = Nginx::start()?;
    let dir = TempDir::new("ja4");
    let pcap = dir.path().join("lo.pcap");
    let weft = Weft::start(&[])?;
    let tcpdump = Tcpdump::start(nginx.port, &pcap)?;
    let uri = format!("/ja4-{tls_max}-{:x}", rand_u64());
    // A name, so the ClientHello carries SNI (curl sends none for an IP).
    let (pid, body) = curl(
        &[
            http,
            "--tls-max",
            tls_max,
            "--resolve",
            &format!("weft.test:{}:127.0.0.1", nginx.port),
        ],
        &format!("https://weft.test:{}{uri}", nginx.port),
    )?;
    assert_eq!(String::from_utf8(body)?, format!("body-{uri}\n"));
    assert!(nginx.wait_logged(&uri).is_some(), "nginx did not log {uri}");
    tcpdump.stop()?;
    let of_curl = |e: &serde_json::Value| field_u64(e, "process.pid") == Some(u64::from(pid));
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        of_curl(e) && field_str(e, "event.action") == Some("http-transaction")
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(seen, "no http event of curl {pid}:\n{}", run.stderr);

    let (ja4, ja4s) = reference(&pcap)?;
    assert_eq!(ja4.len(), 1, "client hellos in the capture: {ja4:?}");
    assert_eq!(ja4s.len(), 1, "server hellos in the capture: {ja4s:?}");
    let want_version = if tls_max == "1.2" { "t12d" } else { "t13d" };
    assert!(ja4[0].starts_with(want_version), "{}", ja4[0]);

    let hs = run
        .events
        .iter()
        .find(|e| of_curl(e) && field_str(e, "event.action") == Some("tls-handshake"))
        .ok_or("no tls-handshake event of curl")?;
    let tx = run
        .events
        .iter()
        .find(|e| of_curl(e) && field_str(e, "event.action") == Some("http-transaction"))
        .ok_or("no http event of curl")?;
    for (what, e) in [("handshake", hs), ("http", tx)] {
        assert_eq!(
            field_str(e, "tls.client.ja4"),
            Some(ja4[0].as_str()),
            "{what} event: {e}"
        );
        assert_eq!(
            field_str(e, "tls.server.ja4s"),
            Some(ja4s[0].as_str()),
            "{what} event: {e}"
        );
        assert_eq!(field_str(e, "tls.client.server_name"), Some("weft.test"));
    }
    Ok(())
}

#[test]
fn curl_tls13_ja4_and_ja4s_match_an_independent_computation() -> TestResult {
    one("1.3", "--http2")
}

#[test]
fn curl_tls12_ja4_and_ja4s_match_an_independent_computation() -> TestResult {
    one("1.2", "--http1.1")
}
