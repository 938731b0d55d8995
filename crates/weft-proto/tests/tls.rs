//! The TLS hello parser against real handshakes: the fixtures are the first
//! flights of OpenSSL 3.0 (Python's ssl module over memory BIOs) with SNI
//! `weft.test`, client ALPN `h2`,`http/1.1`, server ALPN `http/1.1`. What
//! the peers negotiated, as Python reported it: TLS 1.3 with
//! TLS_AES_256_GCM_SHA384, and (client capped at 1.2) TLS 1.2 with
//! ECDHE-ECDSA-AES256-GCM-SHA384 (0xc02c); ALPN `http/1.1` in both.

use weft_proto::tls::{HandshakeParser, HelloError, Side, cipher_name, version_name};

const TLS13_C2S: &[u8] = include_bytes!("fixtures/tls/tls13_c2s.bin");
const TLS13_S2C: &[u8] = include_bytes!("fixtures/tls/tls13_s2c.bin");
const TLS12_C2S: &[u8] = include_bytes!("fixtures/tls/tls12_c2s.bin");
const TLS12_S2C: &[u8] = include_bytes!("fixtures/tls/tls12_s2c.bin");

fn check_client(p: &HandshakeParser) {
    let ch = p.client_hello().expect("client hello parsed");
    assert_eq!(ch.server_name.as_deref(), Some("weft.test"));
    assert_eq!(ch.alpn, ["h2", "http/1.1"]);
    assert!(ch.cipher_suites.contains(&0xc02c));
}

#[test]
fn tls13_client_view() {
    let mut p = HandshakeParser::new();
    assert!(p.feed(Side::Sent, TLS13_C2S));
    assert!(p.feed(Side::Received, TLS13_S2C));
    check_client(&p);
    assert!(
        p.client_hello()
            .expect("ch")
            .cipher_suites
            .contains(&0x1302)
    );
    assert_eq!(p.client_hello().map(|c| c.max_version()), Some(0x0304));
    let sh = p.server_hello().expect("server hello parsed");
    assert_eq!(version_name(sh.version), "1.3");
    assert_eq!(cipher_name(sh.cipher_suite), "TLS_AES_256_GCM_SHA384");
    // TLS 1.3 sends the chosen ALPN encrypted.
    assert_eq!(sh.alpn, None);
    assert_eq!(p.alert(), None);
}

#[test]
fn tls12_server_view_sees_alpn() {
    let mut p = HandshakeParser::new();
    p.feed(Side::Received, TLS12_C2S);
    p.feed(Side::Sent, TLS12_S2C);
    check_client(&p);
    assert!(!p.client_hello().expect("ch").versions.contains(&0x0304));
    let sh = p.server_hello().expect("server hello parsed");
    assert_eq!(version_name(sh.version), "1.2");
    assert_eq!(sh.cipher_suite, 0xc02c);
    assert_eq!(sh.alpn.as_deref(), Some("http/1.1"));
}

#[test]
fn byte_by_byte_and_record_splits_give_the_same_facts() {
    for split in [1usize, 5, 7, 300] {
        let mut p = HandshakeParser::new();
        for c in TLS13_C2S.chunks(split) {
            p.feed(Side::Sent, c);
        }
        for c in TLS13_S2C.chunks(split) {
            p.feed(Side::Received, c);
        }
        check_client(&p);
        assert_eq!(p.server_hello().map(|s| s.cipher_suite), Some(0x1302));
    }
}

#[test]
fn truncated_hello_is_need_more_not_error() {
    let mut p = HandshakeParser::new();
    assert!(!p.feed(Side::Sent, &TLS13_C2S[..100]));
    assert!(p.client_hello().is_none());
    assert_eq!(p.error(Side::Sent), None);
    assert!(p.feed(Side::Sent, &TLS13_C2S[100..]));
}

#[test]
fn plaintext_alert_is_reported() {
    let mut p = HandshakeParser::new();
    p.feed(Side::Sent, TLS13_C2S);
    // A fatal unknown_ca alert as a client sends it after a bad certificate.
    assert!(p.feed(Side::Received, &[21, 3, 3, 0, 2, 2, 48]));
    let a = p.alert().expect("alert");
    assert_eq!((a.level, a.description, a.side), (2, 48, Side::Received));
    assert_eq!(a.description_name(), "unknown_ca");
}

#[test]
fn not_tls_and_garbage_stop_the_direction() {
    let mut p = HandshakeParser::new();
    assert!(!p.feed(Side::Sent, b"GET / HTTP/1.1\r\n"));
    assert_eq!(p.error(Side::Sent), Some(HelloError::NotTls));
    // Application data first (weft joined mid-connection): not a handshake.
    assert!(!p.feed(Side::Received, &[23, 3, 3, 0, 1, 0]));
    assert_eq!(p.error(Side::Received), Some(HelloError::NotTls));
    assert!(p.done());
    // A hello whose inner lengths lie.
    let mut bad = TLS13_C2S.to_vec();
    bad[9 + 34] = 0xff; // session id length far past the message
    let mut q = HandshakeParser::new();
    assert!(!q.feed(Side::Sent, &bad));
    assert_eq!(q.error(Side::Sent), Some(HelloError::Malformed));
}

#[test]
fn never_panics_on_mutations() {
    // Every single-byte change and every prefix of the real flights.
    for base in [TLS13_C2S, TLS13_S2C, TLS12_C2S, TLS12_S2C] {
        for i in 0..base.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut m = base.to_vec();
                m[i] = v;
                let mut p = HandshakeParser::new();
                p.feed(Side::Sent, &m);
                p.feed(Side::Received, &m[..i]);
            }
        }
    }
}

/// JA4/JA4S of the real hellos above equal what an independent
/// implementation computes from the same bytes
/// (`crates/weft-itest/tests/py/ja4_ref.py`, run once on these fixtures).
#[test]
fn ja4_and_ja4s_of_real_hellos() {
    for (c2s, s2c, ja4, ja4s) in [
        (
            TLS13_C2S,
            TLS13_S2C,
            "t13d1812h2_85036bcba153_d41ae481755e",
            "t130200_1302_a56c5b993250",
        ),
        (
            TLS12_C2S,
            TLS12_S2C,
            "t12d1508h2_d68b136fe8d9_e7e480e5a997",
            "t1205h1_c02c_1ece00aee4e9",
        ),
    ] {
        let mut p = HandshakeParser::new();
        p.feed(Side::Sent, c2s);
        p.feed(Side::Received, s2c);
        assert_eq!(p.client_hello().expect("ch").fingerprint.ja4(), ja4);
        assert_eq!(p.server_hello().expect("sh").fingerprint.ja4s(), ja4s);
    }
}
