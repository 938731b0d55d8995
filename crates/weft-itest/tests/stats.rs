//! The exit statistics say which files got which probes and which were
//! skipped and why (issue 4): a stripped executable weft does not know gets
//! no probe, a warning, and a line under "found but not probed".

use std::process::Command;
use std::time::Duration;

use weft_itest::*;

/// The lines of one section of weft's exit summary.
fn section<'a>(stderr: &'a str, title: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .skip_while(|l| l.trim() != title)
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(str::trim)
        .collect()
}

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

#[test]
fn summary_lists_probed_functions_and_refused_stripped_binaries() -> TestResult {
    // A stripped executable named like a browser, but no BoringSSL inside.
    let dir = TempDir::new("unknown-stripped");
    let fake = dir.path().join("chromium");
    std::fs::copy("/usr/bin/sleep", &fake)?;
    let weft = Weft::start(&[])?;
    assert!(Command::new(&fake).arg("0.2").status()?.success());
    // Inspected on the discovery thread right after its exec.
    std::thread::sleep(Duration::from_millis(800));
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let fake_s = fake.display().to_string();

    let warn = run
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&fake_s))
        .ok_or_else(|| format!("no warning about {fake_s}:\n{}", run.stderr))?;
    assert!(warn.contains("cannot verify"), "{warn}");

    let probed = section(&run.stderr, "probed files:");
    let skipped = section(&run.stderr, "found but not probed:");
    assert!(
        !probed.iter().any(|l| l.contains(&fake_s)),
        "{fake_s} must get no probe: {probed:#?}"
    );
    let refusal = skipped
        .iter()
        .find(|l| l.contains(&fake_s))
        .ok_or_else(|| format!("{fake_s} not among skipped files: {skipped:#?}"))?;
    assert!(refusal.contains("cannot verify"), "{refusal}");

    // Each probed file says which functions got probes (libssl exports
    // these; the key-log hook is only attached with --keylog).
    let ssl = probed
        .iter()
        .find(|l| l.starts_with(LIBSSL))
        .ok_or_else(|| format!("{LIBSSL} not probed: {probed:#?}"))?;
    for f in [
        "SSL_write",
        "SSL_read",
        "SSL_write_ex",
        "SSL_read_ex",
        "SSL_do_handshake",
        "SSL_free",
    ] {
        assert!(ssl.contains(&format!(" {f}")), "{f} missing: {ssl}");
    }
    assert!(!ssl.contains("nss_keylog_int"), "{ssl}");
    assert!(ssl.contains("found via"), "{ssl}");
    Ok(())
}

#[test]
fn keylog_hook_is_listed_when_asked_for() -> TestResult {
    let dir = TempDir::new("keylog-stats");
    let keys = dir.path().join("keys.log");
    let keys_s = keys.display().to_string();
    let weft = Weft::start(&["--keylog", &keys_s])?;
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let probed = section(&run.stderr, "probed files:");
    let ssl = probed
        .iter()
        .find(|l| l.starts_with(LIBSSL))
        .ok_or_else(|| format!("{LIBSSL} not probed: {probed:#?}"))?;
    assert!(ssl.contains("nss_keylog_int"), "{ssl}");
    Ok(())
}

/// `--bench-floor copy` (the capture floor of benches/overhead.sh): the TLS
/// probes copy each call's plaintext to the ring and weft only counts what
/// it read: no events, and the calls and bytes in the summary. Ground
/// truth: the bytes curl and nginx moved are at least the request line and
/// the body nginx served.
#[test]
fn bench_floor_copy_counts_the_calls_it_copied() -> TestResult {
    let nginx = Nginx::start()?;
    let weft = Weft::start(&["--bench-floor", "copy"])?;
    let uri = format!("/floor-{:x}", weft_itest::rand_u64());
    let url = format!("https://127.0.0.1:{}{uri}", nginx.port);
    let (_, body) = weft_itest::exchange::curl(&["--http1.1"], &url)?;
    assert_eq!(body, format!("body-{uri}\n").as_bytes());
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(run.events.is_empty(), "{:?}", run.events);
    let line = run
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("capture floor"))
        .ok_or_else(|| format!("no capture floor line:\n{}", run.stderr))?;
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // curl's request write and response read, nginx's read and write.
    let (calls, bytes) = (n[0], n[1]);
    assert!(calls >= 4, "{line}");
    let least = 2 * (format!("GET {uri} HTTP/1.1\r\n").len() + body.len());
    assert!(bytes >= least as u64, "{line}: fewer than {least} bytes");
    Ok(())
}
