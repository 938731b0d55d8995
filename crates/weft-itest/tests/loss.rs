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
