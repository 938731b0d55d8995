//! The independent JA4/JA4S reference (`tests/py/ja4_ref.py`, not weft's
//! code) applied to the TLS hellos of a capture.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{TestResult, workspace};

/// `(ja4s of client hellos, ja4s of server hellos)` of every connection in
/// `pcap`, computed by the independent reference from the raw hello bytes
/// tshark finds (the reassembled bytes when a hello spans segments).
pub fn reference(pcap: &Path) -> TestResult<(Vec<String>, Vec<String>)> {
    let tshark = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", "tls.handshake.type == 1 || tls.handshake.type == 2"])
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.reassembled.data",
            "-e",
            "tcp.payload",
        ])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tshark ({e}): install it (scripts/deps.sh)"))?;
    // One hex line per hello: reassembled data where tshark joined
    // segments, else the segment's own payload.
    let mut hex = String::new();
    for l in String::from_utf8(tshark.stdout)?.lines() {
        let (joined, own) = l.split_once('\t').unwrap_or((l, ""));
        hex.push_str(if joined.is_empty() { own } else { joined });
        hex.push('\n');
    }
    let script = workspace().join("crates/weft-itest/tests/py/ja4_ref.py");
    let mut py = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write as _;
        let mut stdin = py.stdin.take().ok_or("no stdin")?;
        stdin.write_all(hex.as_bytes())?;
    }
    let out = py.wait_with_output()?;
    assert!(out.status.success(), "ja4_ref.py failed");
    let text = String::from_utf8(out.stdout)?;
    let mut ja4 = Vec::new();
    let mut ja4s = Vec::new();
    for l in text.lines() {
        match l.split_once(' ') {
            Some(("ja4", v)) => ja4.push(v.to_string()),
            Some(("ja4s", v)) => ja4s.push(v.to_string()),
            _ => {}
        }
    }
    Ok((ja4, ja4s))
}

/// The server names (SNI) of the ClientHellos in `pcap`, as tshark reads them.
pub fn server_names(pcap: &Path) -> TestResult<Vec<String>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", "tls.handshake.type == 1"])
        .args(["-T", "fields", "-e", "tls.handshake.extensions_server_name"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tshark ({e}): install it (scripts/deps.sh)"))?;
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}
