//! End-to-end: the real weft binary, real BPF, real TLS programs.
//!
//! Ground truth is what the peers really sent and logged (nginx's access log,
//! the helper scripts' own bytes and ports), never weft's own output.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::*;

#[test]
fn curl_http1_against_nginx() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/curl-h1-{:x}", rand_u64());
    let (pid, out) = curl(
        &["--http1.1"],
        &format!("https://127.0.0.1:{}{uri}", nginx.port),
    )?;
    assert_eq!(out, format!("body-{uri}\n").as_bytes());
    let request = format!("GET {uri} HTTP/1.1\r\n");
    check_exchange(
        weft,
        &nginx,
        &Expect {
            client_pid: pid,
            request: request.as_bytes(),
            server_read: request.as_bytes(),
            body: format!("body-{uri}").as_bytes(),
            uri: &uri,
            library: "openssl",
        },
    )
}

#[test]
fn curl_http2_against_nginx() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/curl-h2-{:x}", rand_u64());
    let (pid, out) = curl(
        &["--http2"],
        &format!("https://127.0.0.1:{}{uri}", nginx.port),
    )?;
    assert_eq!(out, format!("body-{uri}\n").as_bytes());
    // HPACK hides the path; the connection preface and the DATA frame's
    // body are plaintext.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    check_exchange(
        weft,
        &nginx,
        &Expect {
            client_pid: pid,
            request: preface,
            server_read: preface,
            body: format!("body-{uri}").as_bytes(),
            uri: &uri,
            library: "openssl",
        },
    )
}

#[test]
fn python_urllib_against_nginx() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/python-{:x}", rand_u64());
    let url = format!("https://127.0.0.1:{}{uri}", nginx.port);
    let script = "import sys, ssl, urllib.request\n\
        ctx = ssl._create_unverified_context()\n\
        sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], context=ctx).read())\n";
    let (pid, out) = run_client(
        Command::new("/usr/bin/python3").args(["-c", script, &url]),
        CLIENT_TIMEOUT,
    )?;
    assert_eq!(out, format!("body-{uri}\n").as_bytes());
    let request = format!("GET {uri} HTTP/1.1\r\n");
    check_exchange(
        weft,
        &nginx,
        &Expect {
            client_pid: pid,
            request: request.as_bytes(),
            server_read: request.as_bytes(),
            body: format!("body-{uri}").as_bytes(),
            uri: &uri,
            library: "openssl",
        },
    )
}

#[test]
fn node_https_against_nginx() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/node-{:x}", rand_u64());
    let script = "const https = require('https');\
        https.get({host: '127.0.0.1', port: +process.argv[1], path: process.argv[2],\
                   rejectUnauthorized: false, agent: false},\
          r => { r.on('data', d => process.stdout.write(d)); });";
    let (pid, out) = run_client(
        Command::new("node").args(["-e", script, &nginx.port.to_string(), &uri]),
        CLIENT_TIMEOUT,
    )?;
    assert_eq!(out, format!("body-{uri}\n").as_bytes());
    let request = format!("GET {uri} HTTP/1.1\r\n");
    check_exchange(
        weft,
        &nginx,
        &Expect {
            client_pid: pid,
            request: request.as_bytes(),
            server_read: request.as_bytes(),
            body: format!("body-{uri}").as_bytes(),
            uri: &uri,
            library: "openssl",
        },
    )
}

#[test]
fn connection_opened_before_weft_started() -> TestResult {
    let server = peer_server()?;
    let mut client = Helper::python(
        "tls_peer.py",
        &["client", &server.port.to_string(), "--wait", "300", "7"],
    )?;
    let line = client.read_line(Duration::from_secs(10))?;
    let local_port: u64 = line
        .strip_prefix("connected ")
        .ok_or_else(|| format!("unexpected {line:?}"))?
        .parse()?;
    // The TLS connection exists (handshake done) before weft starts.
    let weft = Weft::start(&[])?;
    client.write_line("go")?;
    assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "done");
    let pid = u64::from(client.pid());
    let want = pattern(300);
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(pid) && payload(e) == want
    });
    let run = weft.stop()?;
    let mine = of_pid(&run.events, client.pid());
    let w = mine
        .iter()
        .find(|e| is_dir(e, "write") && payload(e) == want)
        .ok_or_else(|| {
            format!(
                "write of the pre-existing connection missing\n{}",
                run.stderr
            )
        })?;
    assert_eq!(
        tuple(w),
        (
            "127.0.0.1".to_string(),
            local_port,
            "127.0.0.1".to_string(),
            u64::from(server.port)
        )
    );
    assert_eq!(field_str(w, "weft.flow.role"), Some("client"));
    assert_ne!(field_u64(w, "weft.flow.cookie").unwrap_or(0), 0);
    // The server side of the same connection, also opened before weft.
    let s = of_pid(&run.events, server.helper.pid());
    assert!(
        s.iter()
            .any(|e| is_dir(e, "read") && tuple(e) == tuple(w) && payload(e) == want),
        "server read of the pre-existing connection missing"
    );
    Ok(())
}

#[test]
fn payloads_are_byte_exact_at_every_size_and_truncated_above_the_cap() -> TestResult {
    let server = peer_server()?;
    // Cap at 2 MiB: 1 MiB fits, 3 MiB is truncated.
    let weft = Weft::start(&["--payload-cap", "2M"])?;
    let sizes = [0usize, 1, 16383, 16384, 16385, 1 << 20, 3 << 20];
    let mut args = vec!["client".to_string(), server.port.to_string()];
    args.extend(sizes.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = Helper::python("tls_peer.py", &argv)?;
    client.read_line(Duration::from_secs(10))?;
    assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "done");
    assert!(client.wait(Duration::from_secs(10))?);
    let pid = u64::from(client.pid());
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(pid)
            && field_u64(e, "weft.payload.length") == Some(3 << 20)
    });
    let run = weft.stop()?;
    let writes: Vec<&Value> = of_pid(&run.events, client.pid())
        .into_iter()
        .filter(|e| is_dir(e, "write"))
        .collect();
    for n in sizes {
        let want = pattern(n);
        let header = format!("{n}\n");
        // The header line is its own call; find the payload call by length.
        let ev = writes
            .iter()
            .find(|e| {
                field_u64(e, "weft.payload.length") == Some(n as u64)
                    && payload(e) != header.as_bytes()
            })
            .ok_or_else(|| format!("no write event of {n} bytes\n{}", run.stderr))?;
        let got = payload(ev);
        if n <= 2 << 20 {
            assert_eq!(got.len(), n, "size {n}: captured length");
            assert!(got == want, "size {n}: bytes differ");
            assert_eq!(
                field(ev, "weft.payload.truncated").and_then(Value::as_bool),
                Some(false)
            );
        } else {
            assert_eq!(got.len(), 2 << 20, "size {n}: capped length");
            assert!(got == want[..2 << 20], "size {n}: first bytes differ");
            assert_eq!(
                field(ev, "weft.payload.truncated").and_then(Value::as_bool),
                Some(true)
            );
            assert_eq!(field_u64(ev, "weft.payload.captured"), Some(2 << 20));
        }
    }
    // The statistics count the truncation.
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("truncated") && l.trim_end().ends_with(" 1")),
        "truncation not counted:\n{}",
        run.stderr
    );
    Ok(())
}

#[test]
fn tls_over_af_unix_is_not_reported() -> TestResult {
    let server = peer_server()?;
    let weft = Weft::start(&[])?;
    let mut unix = Helper::python("tls_peer.py", &["unix"])?;
    assert_eq!(unix.read_line(CLIENT_TIMEOUT)?, "done");
    // Same kind of process over TCP: its events must show (the check can fail).
    let tcp = Helper::python("tls_peer.py", &["client", &server.port.to_string(), "5"])?;
    tcp.read_line(Duration::from_secs(10))?;
    assert_eq!(tcp.read_line(CLIENT_TIMEOUT)?, "done");
    let tcp_pid = u64::from(tcp.pid());
    assert!(weft.wait_for(SEEN_TIMEOUT, |e| field_u64(e, "process.pid")
        == Some(tcp_pid)));
    let run = weft.stop()?;
    let leaked = of_pid(&run.events, unix.pid());
    assert!(leaked.is_empty(), "AF_UNIX TLS reported: {leaked:?}");
    assert!(unix.wait(Duration::from_secs(5))?);
    let dropped = run
        .stderr
        .lines()
        .find(|l| l.contains("non-TCP"))
        .ok_or("no non-TCP counter in the statistics")?;
    assert!(
        !dropped.trim_end().ends_with(" 0"),
        "drops not counted: {dropped}"
    );
    Ok(())
}

#[test]
fn comm_filter_keeps_only_named_processes() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--comm", "curl"])?;
    let url = format!("https://127.0.0.1:{}/comm-filter", nginx.port);
    // Twice, half a second apart: the first milliseconds of a process born
    // after weft may pass before its uprobes are in (README, known limits).
    let (curl_pid, _) = curl(&["--http1.1", "--rate", "2/s", &url], &url)?;
    let (py_pid, _) = run_client(
        Command::new("/usr/bin/python3").args([
            "-c",
            "import sys,ssl,urllib.request;urllib.request.urlopen(sys.argv[1],context=ssl._create_unverified_context()).read()",
            &url,
        ]),
        CLIENT_TIMEOUT,
    )?;
    let cp = u64::from(curl_pid);
    assert!(weft.wait_for(SEEN_TIMEOUT, |e| field_u64(e, "process.pid") == Some(cp)));
    std::thread::sleep(Duration::from_millis(300));
    let run = weft.stop()?;
    assert!(!run.events.is_empty());
    for e in &run.events {
        assert_eq!(field_str(e, "process.name"), Some("curl"), "{e}");
    }
    assert!(of_pid(&run.events, py_pid).is_empty());
    Ok(())
}

#[test]
fn pid_filter_keeps_only_that_process() -> TestResult {
    let nginx = Nginx::start()?;
    let server = peer_server()?;
    let mut client = Helper::python(
        "tls_peer.py",
        &["client", &server.port.to_string(), "--wait", "64"],
    )?;
    client.read_line(Duration::from_secs(10))?;
    let pid = client.pid();
    let weft = Weft::start(&["--pid", &format!("{pid},1")])?;
    client.write_line("go")?;
    assert_eq!(client.read_line(CLIENT_TIMEOUT)?, "done");
    let (curl_pid, _) = curl(
        &["--http1.1"],
        &format!("https://127.0.0.1:{}/pid-filter", nginx.port),
    )?;
    let p = u64::from(pid);
    assert!(weft.wait_for(SEEN_TIMEOUT, |e| field_u64(e, "process.pid") == Some(p)));
    std::thread::sleep(Duration::from_millis(300));
    let run = weft.stop()?;
    for e in &run.events {
        assert_eq!(field_u64(e, "process.pid"), Some(p), "{e}");
    }
    assert!(of_pid(&run.events, curl_pid).is_empty());
    Ok(())
}

#[test]
fn tree_filter_follows_children_started_later() -> TestResult {
    let nginx = Nginx::start()?;
    let url = format!("https://127.0.0.1:{}/tree-filter", nginx.port);
    // A shell that waits, then runs curl: curl is born after weft starts.
    let child = Command::new("bash")
        .args([
            "-c",
            // Two transfers: see comm_filter_keeps_only_named_processes.
            &format!(
                "read _; curl -sk --http1.1 --max-time 20 --rate 2/s {url} {url} >/dev/null; \
                 echo done"
            ),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    // Killed on drop if the test fails half-way (bash would wait forever).
    let mut shell = Proc { child };
    let shell_pid = shell.pid();
    let weft = Weft::start(&["--tree", &shell_pid.to_string()])?;
    let (other_pid, _) = curl(&["--http1.1"], &url)?;
    {
        use std::io::Write;
        let stdin = shell.child.stdin.as_mut().ok_or("stdin")?;
        stdin.write_all(b"go\n")?;
    }
    let status = shell.child.wait()?;
    assert!(status.success());
    assert!(weft.wait_for(SEEN_TIMEOUT, |e| field_str(e, "process.name")
        == Some("curl")));
    std::thread::sleep(Duration::from_millis(300));
    let run = weft.stop()?;
    assert!(!run.events.is_empty());
    for e in &run.events {
        assert_eq!(
            field_u64(e, "process.parent.pid"),
            Some(u64::from(shell_pid)),
            "{e}"
        );
    }
    assert!(of_pid(&run.events, other_pid).is_empty());
    Ok(())
}

fn weft_programs_loaded() -> bool {
    loaded_bpf_prog_names()
        .iter()
        .any(|n| n == "ssl_ret" || n == "sock_state" || n == "seed_tcp")
}

fn wait_unloaded() -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end {
        if !weft_programs_loaded() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn programs_are_gone_after_sigint_and_sigkill() -> TestResult {
    assert!(wait_unloaded(), "weft programs loaded before the test");
    let weft = Weft::start(&[])?;
    assert!(
        weft_programs_loaded(),
        "bpftool does not show weft's programs"
    );
    let run = weft.stop()?;
    assert!(run.success);
    assert!(
        run.stderr.contains("events written"),
        "no statistics:\n{}",
        run.stderr
    );
    assert!(wait_unloaded(), "programs left after SIGINT");

    let weft = Weft::start(&[])?;
    assert!(weft_programs_loaded());
    weft.kill();
    assert!(wait_unloaded(), "programs left after SIGKILL");
    Ok(())
}

#[test]
fn missing_privileges_give_one_clear_line() -> TestResult {
    require_root();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(weft_bin())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "weft ran without privileges: {err}");
    assert!(err.contains("CAP_BPF"), "unclear error: {err}");
    assert_eq!(err.trim().lines().count(), 1, "more than one line: {err}");
    assert!(!err.contains("ready"));
    Ok(())
}

#[test]
fn library_loaded_later_in_another_mount_namespace_is_probed() -> TestResult {
    let server = peer_server()?;
    let weft = Weft::start(&[])?;
    // A private copy of libssl on a tmpfs that exists only in a new mount
    // namespace: weft must find it through /proc/PID/root after the process
    // maps it (a new inode, loaded after weft started).
    let dir = TempDir::new("mntns");
    let libdir = dir.path().join("lib");
    std::fs::create_dir_all(&libdir)?;
    let peer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/tls_peer.py");
    let script = format!(
        "set -e; mount -t tmpfs weft-test {lib}; \
         cp /usr/lib/x86_64-linux-gnu/libssl.so.3 {lib}/; \
         LD_LIBRARY_PATH={lib} exec /usr/bin/python3 {peer} client {port} --wait 4242",
        lib = libdir.display(),
        peer = peer.display(),
        port = server.port,
    );
    let child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "bash", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut child = Proc { child };
    let pid = child.pid();
    let mut out = std::io::BufReader::new(child.child.stdout.take().ok_or("stdout")?);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    assert!(line.starts_with("connected"), "{line:?}");
    // The copy is invisible from weft's mount namespace.
    assert!(!libdir.join("libssl.so.3").exists());
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    assert!(
        maps.contains(&format!("{}/libssl.so.3", libdir.display())),
        "python does not use the private libssl copy"
    );
    // Attaching happens off the hot path; give it a moment.
    std::thread::sleep(Duration::from_secs(1));
    {
        use std::io::Write;
        child
            .child
            .stdin
            .as_mut()
            .ok_or("stdin")?
            .write_all(b"go\n")?;
    }
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    assert_eq!(line.trim(), "done");
    let _ = child.child.wait();
    let want = pattern(4242);
    let p = u64::from(pid);
    let seen = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(p) && payload(e) == want
    });
    let run = weft.stop()?;
    assert!(
        seen,
        "write through the private libssl copy not captured:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("uprobes on"),
        "no attachment statistics:\n{}",
        run.stderr
    );
    Ok(())
}

#[test]
fn metrics_endpoint_reports_counters_and_bpf_program_costs() -> TestResult {
    let nginx = Nginx::start()?;
    let port = free_port();
    let weft = Weft::start(&["--metrics", &format!("127.0.0.1:{port}")])?;
    let (pid, _) = curl(
        &["--http1.1"],
        &format!("https://127.0.0.1:{}/metrics-test", nginx.port),
    )?;
    let p = u64::from(pid);
    assert!(weft.wait_for(SEEN_TIMEOUT, |e| field_u64(e, "process.pid") == Some(p)));
    // The page is refreshed once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, page) = run_client(
        Command::new("curl")
            .args(["-s", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{port}/metrics")),
        CLIENT_TIMEOUT,
    )?;
    let page = String::from_utf8_lossy(&page).into_owned();
    let value = |prefix: &str| -> Option<f64> {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert!(
        value("weft_events_total ").is_some_and(|v| v >= 1.0),
        "{page}"
    );
    assert!(
        value("weft_tls_calls_total ").is_some_and(|v| v >= 2.0),
        "{page}"
    );
    assert!(
        page.contains("weft_drops_total{reason=\"ring_full_data\"} 0"),
        "{page}"
    );
    assert!(
        value("weft_bpf_program_runs_total{program=\"ssl_ret\"}").is_some_and(|v| v >= 2.0),
        "{page}"
    );
    assert!(
        value("weft_attachments{kind=\"uprobe\"}").is_some_and(|v| v >= 1.0),
        "{page}"
    );
    // sys_exit_plain is loaded from the object's second open (split.rs):
    // listed too (a tail-call target: the kernel counts its runs in its
    // callers', sys_exit_sock's).
    assert!(
        value("weft_bpf_program_runs_total{program=\"sys_exit_plain\"}").is_some(),
        "{page}"
    );
    weft.stop()?;
    Ok(())
}
