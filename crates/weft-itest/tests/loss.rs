//! Loss accounting end to end: weft is stopped (SIGSTOP) while a client
//! keeps making requests on one connection, so the kernel's ring buffer
//! fills and call records are lost with their calls. Every request the
//! client made (its own count is the ground truth) must then be reported or
//! counted as lost: the connection's next call record that gets through
//! tells how many calls were lost before it.

use std::process::Command;
use std::time::Duration;

use weft_itest::exchange::*;
use weft_itest::*;

/// Requests on one keep-alive connection, `N` per line read from stdin;
/// prints `done <total responses>` after each batch.
const CLIENT: &str = r#"
import http.client, ssl, sys
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx)
n = 0
def batch(k):
    global n
    for _ in range(k):
        c.request("GET", "/lost")
        r = c.getresponse()
        assert r.read() == b"body-/lost\n"
        n += 1
batch(1)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        c.close()
        print("closed", flush=True)
        continue
    batch(int(line))
    print("done", n, flush=True)
"#;

#[test]
fn requests_lost_with_their_call_records_are_counted() -> TestResult {
    lost_requests_are_counted(false)
}

/// The connection closes right after the loss, with no call of its own to
/// tell it: the connection's end record does.
#[test]
fn requests_lost_at_a_connections_end_are_counted() -> TestResult {
    lost_requests_are_counted(true)
}

fn lost_requests_are_counted(close_after: bool) -> TestResult {
    // One connection for the whole test (nginx closes a keep-alive
    // connection after 1,000 requests by default).
    let nginx = Nginx::start_with(
        None,
        r#"location = /lost { keepalive_requests 100000; return 200 "body-/lost\n"; }"#,
    )?;
    // Only python3 (the client: one decoder, its counters alone in the
    // statistics), started after weft so that its connection is followed
    // from its start (its end record tells what no call told).
    let weft = Weft::start(&["--comm", "python3", "--ring-size", "256K"])?;
    let mut client = Helper::spawn({
        let mut c = Command::new("/usr/bin/python3");
        c.args(["-c", CLIENT, &nginx.port.to_string()]);
        c
    })?;
    assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "ready");
    let pid = client.pid();
    let mut total = 1u64;
    let mut batch = |client: &mut Helper, k: u64| -> TestResult {
        client.write_line(&k.to_string())?;
        total += k;
        assert_eq!(client.read_line(CLIENT_TIMEOUT)?, format!("done {total}"));
        Ok(())
    };
    batch(&mut client, 20)?;
    let seen = |n: usize| {
        let end = std::time::Instant::now() + SEEN_TIMEOUT;
        while std::time::Instant::now() < end {
            let got = weft
                .events_so_far()
                .iter()
                .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
                .count();
            if got >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(seen(21), "weft did not report the first requests");
    // The reader stopped, each request still makes four call records and
    // their payload in the 256 KiB ring: it is full long before 3,000.
    signal(weft.pid(), "STOP");
    let stopped = batch(&mut client, 3000);
    signal(weft.pid(), "CONT");
    stopped?;
    if close_after {
        // Room in the ring again first, for the connection's end record.
        std::thread::sleep(Duration::from_secs(1));
        client.write_line("close")?;
        assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "closed");
    } else {
        batch(&mut client, 20)?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let run = weft.stop()?;
    client.write_line("0")?;
    let http: Vec<_> = of_pid(&run.events, pid)
        .into_iter()
        .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
        .collect();
    let lost =
        exit_stat(&run.stderr, "ring buffer full: call records").ok_or("no call-record stat")?;
    let told = exit_stat(&run.stderr, "decoder: lost call records told").ok_or("no told stat")?;
    let untold = exit_stat(&run.stderr, "of which not told").ok_or("no untold stat")?;
    let unseen =
        exit_stat(&run.stderr, "decoder: HTTP/1 requests lost whole").ok_or("no unseen stat")?;
    assert!(lost > 0, "the ring never filled:\n{}", run.stderr);
    assert_eq!(told + untold, lost, "{}", run.stderr);
    assert_eq!(untold, 0, "losses not told:\n{}", run.stderr);
    assert_eq!(
        http.len() as u64 + unseen,
        total,
        "reported {} + counted {unseen} != {total} requests\n{}",
        http.len(),
        run.stderr
    );
    Ok(())
}

/// An HTTP/2 client on one connection, one stream at a time (`N` per line
/// read from stdin, as CLIENT): raw frames over Python's ssl (OpenSSL), the
/// request header block in HPACK without the dynamic table.
const H2_CLIENT: &str = r#"
import socket, ssl, struct, sys
ctx = ssl._create_unverified_context()
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
assert s.selected_alpn_protocol() == "h2"
def frame(t, f, sid, p=b""):
    return len(p).to_bytes(3, "big") + bytes([t, f]) + struct.pack(">I", sid) + p
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
buf = b""
def read_frame():
    global buf
    while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
        d = s.recv(65536)
        assert d, "connection closed"
        buf += d
    n = int.from_bytes(buf[:3], "big")
    t, f, sid, p = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n]
    buf = buf[9 + n:]
    return t, f, sid, p
# :method GET, :scheme https, :path /lost, :authority 127.0.0.1 (literals not indexed)
block = b"\x82\x87\x04\x05/lost\x01\x09127.0.0.1"
sid, n = -1, 0
def batch(k):
    global sid, n
    for _ in range(k):
        sid += 2
        s.sendall(frame(1, 5, sid, block))
        while True:
            t, f, fsid, p = read_frame()
            if t == 4 and not f & 1:
                s.sendall(frame(4, 1, 0))
            elif t == 6 and not f & 1:
                s.sendall(frame(6, 1, 0, p))
            elif t == 3 and fsid == sid:
                raise SystemExit("stream %d reset" % sid)
            elif fsid == sid and t in (0, 1) and f & 1:
                break
        n += 1
batch(1)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        s.sendall(frame(7, 0, 0, struct.pack(">II", sid, 0)))
        s.close()
        print("closed", flush=True)
        continue
    batch(int(line))
    print("done", n, flush=True)
"#;

/// HTTP/2: the streams of a connection's last calls are lost whole while
/// weft is stopped, and the connection then closes: no later stream id
/// reveals them, so the connection's end record says how far its streams
/// went (the kernel's frame walk) and the decoder counts the rest as lost.
/// Every request the client made is reported or counted.
#[test]
fn http2_streams_lost_at_a_connections_end_are_counted() -> TestResult {
    let nginx = Nginx::start_with(None, r#"location = /lost { return 200 "body-/lost\n"; }"#)?;
    let weft = Weft::start(&["--comm", "python3", "--ring-size", "128K"])?;
    let mut client = Helper::spawn({
        let mut c = Command::new("/usr/bin/python3");
        c.args(["-c", H2_CLIENT, &nginx.port.to_string()]);
        c
    })?;
    assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "ready");
    let pid = client.pid();
    let mut total = 1u64;
    let mut batch = |client: &mut Helper, k: u64| -> TestResult {
        client.write_line(&k.to_string())?;
        total += k;
        assert_eq!(client.read_line(CLIENT_TIMEOUT)?, format!("done {total}"));
        Ok(())
    };
    batch(&mut client, 20)?;
    let got = weft.wait_for_count(SEEN_TIMEOUT, 21, |e| {
        field_str(e, "event.action") == Some("http-transaction")
    });
    assert!(got, "weft did not report the first requests");
    // nginx serves 1,000 requests per connection: 900 more fit.
    signal(weft.pid(), "STOP");
    let stopped = batch(&mut client, 900);
    signal(weft.pid(), "CONT");
    stopped?;
    // Room in the ring again first, for the connection's end record.
    std::thread::sleep(Duration::from_secs(1));
    client.write_line("close")?;
    assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "closed");
    std::thread::sleep(Duration::from_secs(1));
    let run = weft.stop()?;
    let http: Vec<_> = of_pid(&run.events, pid)
        .into_iter()
        .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
        .collect();
    let lost_calls = exit_stat(&run.stderr, "ring buffer full: call records").unwrap_or(0);
    let lost_payload = exit_stat(&run.stderr, "ring buffer full: payload chunks").unwrap_or(0);
    let unseen =
        exit_stat(&run.stderr, "decoder: HTTP/2 requests lost whole").ok_or("no unseen stat")?;
    assert!(
        lost_calls + lost_payload > 0,
        "the ring never filled:\n{}",
        run.stderr
    );
    assert!(unseen > 0, "no stream counted as lost:\n{}", run.stderr);
    assert_eq!(
        http.len() as u64 + unseen,
        total,
        "reported {} + counted {unseen} != {total} requests\n{}",
        http.len(),
        run.stderr
    );
    Ok(())
}
