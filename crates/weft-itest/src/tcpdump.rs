//! tcpdump as ground truth: what really crossed the wire (`lo`, or an
//! interface in a test's network namespace).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Proc, TestResult, signal};

/// tcpdump on `lo` for one TCP port, writing a pcap until stopped.
pub struct Tcpdump {
    proc: Proc,
}

impl Tcpdump {
    /// Start on `lo` and wait until tcpdump says it captures.
    pub fn start(port: u16, out: &Path) -> TestResult<Tcpdump> {
        Self::start_on(None, "lo", port, out)
    }

    /// Start on `iface` of network namespace `netns` (None: weft's own)
    /// and wait until tcpdump says it captures.
    pub fn start_on(
        netns: Option<&str>,
        iface: &str,
        port: u16,
        out: &Path,
    ) -> TestResult<Tcpdump> {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "tcpdump"]);
                c
            }
            None => Command::new("tcpdump"),
        };
        // --immediate-mode and -U: packets reach the file as they come.
        let mut child = cmd
            .args(["-Z", "root", "--immediate-mode", "-i", iface, "-U", "-w"])
            .arg(out)
            .args(["tcp", "port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start tcpdump ({e}): install it (scripts/deps.sh)"))?;
        let err = child.stderr.take().ok_or("no tcpdump stderr")?;
        let proc = Proc { child };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains("listening on") => return Ok(Tcpdump { proc }),
                Ok(_) => {}
                Err(_) => return Err("tcpdump did not start listening within 10 s".into()),
            }
        }
    }

    /// SIGINT and wait: the capture file is complete afterwards.
    pub fn stop(mut self) -> TestResult {
        signal(self.proc.pid(), "INT");
        let end = Instant::now() + Duration::from_secs(10);
        while self.proc.child.try_wait()?.is_none() {
            if Instant::now() > end {
                return Err("tcpdump did not stop within 10 s of SIGINT".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// (request URI, response body) of every HTTP/1.x exchange tshark finds in
/// `pcap` (TLS on `port`) when it decrypts it with the key log `keys` alone.
pub fn tshark_http(
    pcap: &std::path::Path,
    keys: &std::path::Path,
    port: u16,
) -> TestResult<Vec<(String, String)>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keys.display()))
        .args(["-d", &format!("tcp.port=={port},tls")])
        .args(["-Y", "http.response", "-T", "fields", "-E", "separator=|"])
        .args(["-e", "http.response_for.uri", "-e", "http.file_data"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tshark ({e}): install it (scripts/deps.sh)"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Ok(text
        .lines()
        .filter_map(|l| {
            let (uri, body) = l.split_once('|')?;
            // http.response_for.uri is the full URI: keep its path.
            let path = uri.find("://").map_or(uri, |i| {
                let rest = &uri[i + 3..];
                rest.find('/').map_or("", |j| &rest[j..])
            });
            Some((path.to_string(), unescape(body)))
        })
        .collect())
}

/// tshark writes the body's text with `\n` for newlines.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
}
