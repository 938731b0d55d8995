//! End-to-end: `--record` keeps the kernel's records, `--replay` turns them
//! into the same events again without the kernel. Ground truth: the paths
//! curl asked for and the bodies nginx answers (`body-<uri>`).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;
use weft_itest::exchange::*;
use weft_itest::*;

fn http_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| field_str(e, "event.action") == Some("http-transaction"))
        .collect()
}

/// What must survive a replay unchanged: everything but the executable
/// (the processes are gone when a recording is replayed).
fn essentials(e: &Value) -> (String, String, String, u64, u64, u64, String) {
    (
        field_str(e, "url.path").unwrap_or("").to_owned(),
        field_str(e, "http.version").unwrap_or("").to_owned(),
        field_str(e, "http.response.body.content")
            .unwrap_or("")
            .to_owned(),
        field_u64(e, "process.pid").unwrap_or(0),
        field_u64(e, "weft.flow.cookie").unwrap_or(0),
        field_u64(e, "source.port").unwrap_or(0),
        field_str(e, "@timestamp").unwrap_or("").to_owned(),
    )
}

#[test]
fn a_recording_replays_into_the_same_http_events() -> TestResult {
    let nginx = Nginx::start()?;
    let dir = TempDir::new("record");
    let rec = dir.path().join("session.weftrec");
    let rec_arg = rec.to_str().ok_or("path")?;
    let weft = Weft::start(&["--record", rec_arg])?;
    let tag = format!("{:x}", rand_u64());
    let mut pids = Vec::new();
    for (i, proto) in ["--http2", "--http1.1"].iter().enumerate() {
        let url = format!("https://127.0.0.1:{}/rec-{tag}-{i}", nginx.port);
        let (pid, body) = run_client(
            Command::new("curl").args(["-sk", proto, "--max-time", "20", &url]),
            CLIENT_TIMEOUT,
        )?;
        assert_eq!(body, format!("body-/rec-{tag}-{i}\n").as_bytes());
        pids.push(u64::from(pid));
    }
    weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == pids.last().copied()
            && field_str(e, "event.action") == Some("http-transaction")
    });
    let live = weft.stop()?;
    assert!(live.success, "{}", live.stderr);
    assert!(
        live.stderr.contains("recorded"),
        "no recording summary: {}",
        live.stderr
    );
    let mode = std::fs::metadata(&rec)?.permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the recording holds plaintext: must be private"
    );

    let out = Command::new(weft_bin())
        .args(["--replay", rec_arg, "--json"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    assert!(stderr.contains("replayed"), "no replay summary: {stderr}");
    let replayed = parse_events(&String::from_utf8_lossy(&out.stdout));

    let mine = |events: &[Value]| {
        let mut v: Vec<_> = http_events(events)
            .into_iter()
            .filter(|e| field_u64(e, "process.pid").is_some_and(|p| pids.contains(&p)))
            .map(essentials)
            .collect();
        v.sort();
        v
    };
    // Every connection's Community ID is the one its 5-tuple gives.
    for e in http_events(&live.events) {
        let (Some(s), Some(sp), Some(d), Some(dp)) = (
            field_str(e, "source.ip"),
            field_u64(e, "source.port"),
            field_str(e, "destination.ip"),
            field_u64(e, "destination.port"),
        ) else {
            continue;
        };
        assert_eq!(
            field_str(e, "network.community_id"),
            Some(community_id_reference(s, sp, d, dp)?.as_str()),
            "{e}"
        );
    }
    let (live_mine, replayed_mine) = (mine(&live.events), mine(&replayed));
    assert_eq!(
        live_mine.len(),
        2,
        "curl's live transactions: {live_mine:?}"
    );
    for (path, version, body, ..) in &live_mine {
        assert_eq!(body, &format!("body-{path}\n"), "mispaired");
        assert!(version == "2" || version == "1.1", "{version}");
    }
    assert_eq!(
        live_mine, replayed_mine,
        "the replay differs from the live run"
    );
    // Every http event of the live run (nginx's too) is in the replay.
    assert_eq!(
        http_events(&live.events).len(),
        http_events(&replayed).len(),
        "replay:\n{stderr}"
    );
    Ok(())
}

#[test]
fn replay_refuses_bad_input_with_one_line() -> TestResult {
    let dir = TempDir::new("replay-bad");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"GET / HTTP/1.1\r\n\r\n")?;
    let junk_arg = junk.to_str().ok_or("path")?;
    for (args, want) in [
        (vec!["--replay", junk_arg], "is not a weft recording"),
        (
            vec!["--replay", "/nonexistent/r.weftrec"],
            "cannot open the recording",
        ),
        (
            vec!["--replay", junk_arg, "--pid", "1"],
            "--pid applies to live capture",
        ),
    ] {
        let out = Command::new(weft_bin()).args(&args).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    Ok(())
}
