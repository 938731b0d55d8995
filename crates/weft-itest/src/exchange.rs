//! Shared shapes of the end-to-end tests: a client's exchange with nginx
//! as weft must report it, and the Python TLS peer.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::*;

pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
pub const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

pub fn is_dir(e: &Value, dir: &str) -> bool {
    field_str(e, "weft.tls.direction") == Some(dir)
}

pub fn tuple(e: &Value) -> (String, u64, String, u64) {
    (
        field_str(e, "source.ip").unwrap_or("").to_string(),
        field_u64(e, "source.port").unwrap_or(0),
        field_str(e, "destination.ip").unwrap_or("").to_string(),
        field_u64(e, "destination.port").unwrap_or(0),
    )
}

/// What a client's exchange with nginx must look like in weft's events.
pub struct Expect<'a> {
    pub client_pid: u32,
    /// Bytes the client's write must contain.
    pub request: &'a [u8],
    /// Bytes nginx's read of the request must contain.
    pub server_read: &'a [u8],
    /// Bytes of the response body the client must have read.
    pub body: &'a [u8],
    pub uri: &'a str,
    /// `weft.tls.library` of the client's events.
    pub library: &'a str,
}

/// Checks the client's exchange with nginx: its capture events (weft must
/// run with `--raw`) and its decoded HTTP transaction.
pub fn check_exchange(weft: Weft, nginx: &Nginx, x: &Expect<'_>) -> TestResult {
    check_exchange_run(weft, nginx, x).map(drop)
}

/// [`check_exchange`], handing back weft's run for further checks.
pub fn check_exchange_run(weft: Weft, nginx: &Nginx, x: &Expect<'_>) -> TestResult<WeftRun> {
    let body = x.body.to_vec();
    let pid = u64::from(x.client_pid);
    let got = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(pid)
            && is_dir(e, "read")
            && contains(&payload(e), &body)
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(
        got,
        "no read event of pid {} with the body; stderr:\n{}",
        x.client_pid, run.stderr
    );
    let client = of_pid(&run.events, x.client_pid);
    let write = client
        .iter()
        .find(|e| is_dir(e, "write") && contains(&payload(e), x.request))
        .ok_or("the client's request is not among its write events")?;
    let read = client
        .iter()
        .find(|e| is_dir(e, "read") && contains(&payload(e), x.body))
        .ok_or("the response body is not among the client's read events")?;
    assert_eq!(field_str(write, "weft.tls.library"), Some(x.library));
    assert_eq!(field_str(read, "weft.tls.library"), Some(x.library));
    assert!(field_u64(write, "process.thread.id").is_some());

    // The 5-tuple: source is the client's side; nginx logged its port.
    let logged_port = nginx
        .wait_logged(x.uri)
        .ok_or_else(|| format!("nginx did not log {}", x.uri))?;
    let t = tuple(write);
    assert_eq!(
        t.1,
        u64::from(logged_port),
        "source.port vs nginx $remote_port"
    );
    assert_eq!(t.0, "127.0.0.1");
    assert_eq!(t.2, "127.0.0.1");
    assert_eq!(t.3, u64::from(nginx.port));
    assert_eq!(field_str(write, "network.transport"), Some("tcp"));
    assert_eq!(field_str(write, "network.type"), Some("ipv4"));
    assert_eq!(
        tuple(read),
        t,
        "read and write events disagree on the tuple"
    );

    // One connection, one cookie, for every event of the client.
    let cookies: HashSet<u64> = client
        .iter()
        .filter_map(|e| field_u64(e, "weft.flow.cookie"))
        .collect();
    assert_eq!(cookies.len(), 1, "client events carry cookies {cookies:?}");
    assert!(
        client
            .iter()
            .all(|e| field_u64(e, "weft.flow.cookie").is_some())
    );
    let cookie = *cookies.iter().next().ok_or("no cookie")?;
    assert_ne!(cookie, 0);

    // The decoded transaction of the same exchange, on the same connection.
    let path = x.uri.split('?').next().unwrap_or(x.uri);
    let http = client
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("http-transaction")
                && field_str(e, "url.path") == Some(path)
        })
        .ok_or("no http-transaction event of the client for the uri")?;
    assert_eq!(field_u64(http, "http.response.status_code"), Some(200));
    assert_eq!(field_u64(http, "weft.flow.cookie"), Some(cookie));
    assert_eq!(tuple(http), t);

    // nginx's read of the same request: its worker's pid, the same tuple.
    let workers = nginx.worker_pids();
    let server_read = run
        .events
        .iter()
        .find(|e| {
            is_dir(e, "read")
                && field_u64(e, "process.pid").is_some_and(|p| workers.contains(&(p as u32)))
                && contains(&payload(e), x.server_read)
                && tuple(e) == t
        })
        .ok_or("nginx's read of the request (worker pid, same tuple) is missing")?;
    assert_eq!(field_str(server_read, "process.name"), Some("nginx"));
    assert_eq!(field_str(server_read, "weft.flow.role"), Some("server"));
    assert_ne!(
        field_u64(server_read, "weft.flow.cookie"),
        Some(cookie),
        "the server's socket is another socket than the client's"
    );
    Ok(run)
}

pub fn curl(args: &[&str], url: &str) -> TestResult<(u32, Vec<u8>)> {
    run_client(
        Command::new("curl")
            .args(["-sk", "--max-time", "20"])
            .args(args)
            .arg(url),
        CLIENT_TIMEOUT,
    )
}

pub fn pattern(n: usize) -> Vec<u8> {
    // Same bytes as tests/py/tls_peer.py's pattern().
    (0..n)
        .map(|i| ((i * 31 + n * 7 + (i >> 8)) % 256) as u8)
        .collect()
}

pub struct PeerServer {
    pub port: u16,
    pub helper: Helper,
    _dir: TempDir,
}

pub fn peer_server() -> TestResult<PeerServer> {
    let dir = TempDir::new("peer");
    let (cert, key) = make_cert(dir.path())?;
    let port = free_port();
    let helper = Helper::python(
        "tls_peer.py",
        &[
            "server",
            &port.to_string(),
            cert.to_str().ok_or("path")?,
            key.to_str().ok_or("path")?,
        ],
    )?;
    assert_eq!(helper.read_line(Duration::from_secs(10))?, "listening");
    Ok(PeerServer {
        port,
        helper,
        _dir: dir,
    })
}
