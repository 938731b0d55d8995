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

/// One of the client scripts above on nginx's `port`, driven line by line:
/// it has made one request once it says `ready`.
struct Client {
    helper: Helper,
    total: u64,
}

impl Client {
    fn start(script: &str, port: u16) -> TestResult<Client> {
        let helper = Helper::spawn({
            let mut c = Command::new("/usr/bin/python3");
            c.args(["-c", script, &port.to_string()]);
            c
        })?;
        assert_eq!(helper.read_line(CLIENT_TIMEOUT)?, "ready");
        Ok(Client { helper, total: 1 })
    }

    fn pid(&self) -> u32 {
        self.helper.pid()
    }

    /// `k` more requests, answered.
    fn batch(&mut self, k: u64) -> TestResult {
        self.helper.write_line(&k.to_string())?;
        self.total += k;
        let line = self.helper.read_line(CLIENT_TIMEOUT)?;
        assert_eq!(line, format!("done {}", self.total));
        Ok(())
    }

    fn close(&mut self) -> TestResult {
        self.helper.write_line("close")?;
        assert_eq!(self.helper.read_line(CLIENT_TIMEOUT)?, "closed");
        Ok(())
    }
}

/// `k` requests while weft is stopped: its reader does not run, the ring
/// fills, and the kernel loses records.
fn batch_while_stopped(weft: &Weft, client: &mut Client, k: u64) -> TestResult {
    signal(weft.pid(), "STOP");
    let done = client.batch(k);
    signal(weft.pid(), "CONT");
    done
}

/// Closes the connection once the ring has room again (for its end record).
fn close_after_a_second(client: &mut Client) -> TestResult {
    std::thread::sleep(Duration::from_secs(1));
    client.close()
}

/// Each of the client's `total` requests was reported (`reported` events) or
/// counted as lost whole (`unseen`).
fn every_request_told(run: &WeftRun, reported: usize, unseen: u64, total: u64) -> TestResult {
    assert_eq!(
        reported as u64 + unseen,
        total,
        "reported {reported} + counted {unseen} != {total} requests\n{}",
        run.stderr
    );
    Ok(())
}

/// The http events of `pid`.
fn http_of(run: &WeftRun, pid: u32) -> Vec<&serde_json::Value> {
    of_pid(&run.events, pid)
        .into_iter()
        .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
        .collect()
}

/// Until weft has reported `n` http transactions (false after SEEN_TIMEOUT).
fn seen(weft: &Weft, n: usize) -> bool {
    weft.wait_for_count(SEEN_TIMEOUT, n, |e| {
        field_str(e, "event.action") == Some("http-transaction")
    })
}

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
    let mut client = Client::start(CLIENT, nginx.port)?;
    let pid = client.pid();
    client.batch(20)?;
    assert!(seen(&weft, 21), "weft did not report the first requests");
    // The reader stopped, each request still makes four call records and
    // their payload in the 256 KiB ring: it is full long before 3,000.
    batch_while_stopped(&weft, &mut client, 3000)?;
    if close_after {
        close_after_a_second(&mut client)?;
    } else {
        client.batch(20)?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let run = weft.stop()?;
    client.helper.write_line("0")?;
    let total = client.total;
    let http = http_of(&run, pid);
    let lost =
        exit_stat(&run.stderr, "ring buffer full: call records").ok_or("no call-record stat")?;
    let told = exit_stat(&run.stderr, "decoder: lost call records told").ok_or("no told stat")?;
    let untold = exit_stat(&run.stderr, "of which not told").ok_or("no untold stat")?;
    let unseen =
        exit_stat(&run.stderr, "decoder: HTTP/1 requests lost whole").ok_or("no unseen stat")?;
    assert!(lost > 0, "the ring never filled:\n{}", run.stderr);
    assert_eq!(told + untold, lost, "{}", run.stderr);
    assert_eq!(untold, 0, "losses not told:\n{}", run.stderr);
    every_request_told(&run, http.len(), unseen, total)
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
    let mut client = Client::start(H2_CLIENT, nginx.port)?;
    let pid = client.pid();
    client.batch(20)?;
    assert!(seen(&weft, 21), "weft did not report the first requests");
    // nginx serves 1,000 requests per connection: 900 more fit.
    batch_while_stopped(&weft, &mut client, 900)?;
    close_after_a_second(&mut client)?;
    std::thread::sleep(Duration::from_secs(1));
    let run = weft.stop()?;
    let total = client.total;
    let http = http_of(&run, pid);
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
    every_request_told(&run, http.len(), unseen, total)
}
