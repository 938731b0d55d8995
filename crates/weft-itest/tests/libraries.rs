//! End-to-end against clients of each TLS library weft probes besides
//! OpenSSL (issue: every TLS stack users run). Same assertions as the
//! OpenSSL clients: request and response plaintext, the client's pid, the
//! 5-tuple nginx logged, one cookie, nginx's own read.

use std::process::Command;

use weft_itest::exchange::*;
use weft_itest::*;

fn h1_exchange(
    library: &str,
    client: impl FnOnce(&Nginx, &str) -> TestResult<(u32, Vec<u8>)>,
) -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/{library}-{:x}", rand_u64());
    let (pid, out) = client(&nginx, &uri)?;
    let body = format!("body-{uri}");
    assert!(
        contains(&out, body.as_bytes()),
        "client output: {}",
        String::from_utf8_lossy(&out)
    );
    let request = format!("GET {uri} HTTP/1.1\r\n");
    check_exchange(
        weft,
        &nginx,
        &Expect {
            client_pid: pid,
            request: request.as_bytes(),
            server_read: request.as_bytes(),
            body: body.as_bytes(),
            uri: &uri,
            library,
        },
    )
}

#[test]
fn wget_gnutls() -> TestResult {
    h1_exchange("gnutls", |nginx, uri| {
        run_client(
            Command::new("wget")
                .args(["-q", "--no-check-certificate", "-O", "-"])
                .arg(format!("https://127.0.0.1:{}{uri}", nginx.port)),
            CLIENT_TIMEOUT,
        )
    })
}

#[test]
fn gnutls_cli() -> TestResult {
    h1_exchange("gnutls", |nginx, uri| {
        let dir = TempDir::new("gnutls-cli");
        let req = dir.path().join("req");
        std::fs::write(
            &req,
            format!("GET {uri} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )?;
        // gnutls-cli quits at the end of its input: keep stdin open until
        // nginx has answered and closed (Connection: close). `exec` keeps
        // the pid of the shell for gnutls-cli.
        let script = format!(
            "exec gnutls-cli --insecure --logfile=/dev/null -p {} 127.0.0.1 < <(cat {}; sleep 3)",
            nginx.port,
            req.display()
        );
        run_client(Command::new("bash").args(["-c", &script]), CLIENT_TIMEOUT)
    })
}

#[test]
fn wolfssl_c_client() -> TestResult {
    let dir = TempDir::new("wolfssl");
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
    h1_exchange("wolfssl", |nginx, uri| {
        run_client(
            Command::new(&bin).arg(nginx.port.to_string()).arg(uri),
            CLIENT_TIMEOUT,
        )
    })
}
