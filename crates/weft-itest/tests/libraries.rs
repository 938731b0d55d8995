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

/// OpenSSL linked into the executable, its functions in `.symtab` only (not
/// exported): weft finds them there when the program starts after weft.
#[test]
fn openssl_static_in_an_executable() -> TestResult {
    let dir = TempDir::new("openssl-static");
    let bin = dir.path().join("openssl_static_client");
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/openssl_static_client.c");
    let st = Command::new("gcc")
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .args([
            "-Wl,-Bstatic",
            "-lssl",
            "-lcrypto",
            "-Wl,-Bdynamic",
            "-ldl",
            "-pthread",
        ])
        .stderr(std::process::Stdio::null())
        .status()?;
    assert!(
        st.success(),
        "cannot build the static OpenSSL client (libssl-dev installed?)"
    );
    // The case under test: SSL_write defined in .symtab, not exported, and
    // no shared libssl that weft would probe instead.
    let nm = |args: &[&str]| -> TestResult<String> {
        let out = Command::new("nm").args(args).arg(&bin).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(nm(&[])?.lines().any(|l| l.ends_with(" T SSL_write")));
    assert!(!nm(&["-D"])?.contains("SSL_write"));
    let ldd = Command::new("ldd").arg(&bin).output()?;
    assert!(!String::from_utf8_lossy(&ldd.stdout).contains("libssl"));
    h1_exchange("openssl", |nginx, uri| {
        run_client(
            Command::new(&bin)
                .arg(nginx.port.to_string())
                .arg(uri)
                .arg("500"),
            CLIENT_TIMEOUT,
        )
    })
}

/// The bytes of one direction of one connection as weft captured them, in
/// order: `dir` capture events of `pids` on tuple `t` (client -> server).
/// Fails on a truncated capture.
fn stream(
    events: &[serde_json::Value],
    pids: &[u32],
    t: &(String, u64, String, u64),
    dir: &str,
) -> TestResult<Vec<u8>> {
    let mut out = Vec::new();
    for e in events.iter().filter(|e| {
        field_str(e, "event.action").is_some_and(|a| a.starts_with("tls-"))
            && is_dir(e, dir)
            && field_u64(e, "process.pid").is_some_and(|p| pids.contains(&(p as u32)))
            && tuple(e) == *t
    }) {
        if field(e, "weft.payload.truncated").and_then(serde_json::Value::as_bool) != Some(false) {
            return Err(format!("a truncated capture: {e}").into());
        }
        out.extend_from_slice(&payload(e));
    }
    Ok(out)
}

/// What one side read must be what the other side wrote, byte for byte
/// (the reader may stop before the end: a prefix). Both sides are captured
/// by weft through different libraries, so a duplicated or lost byte on
/// either side shows.
fn check_same_bytes(what: &str, read: &[u8], written: &[u8]) -> TestResult {
    if read.is_empty() || !written.starts_with(read) {
        let at = read.iter().zip(written).take_while(|(a, b)| a == b).count();
        return Err(format!(
            "{what}: the reader's {} bytes are not a prefix of the writer's {}; \
             first difference at byte {at}: read {:?}, written {:?}",
            read.len(),
            written.len(),
            &read[at..read.len().min(at + 16)],
            &written[at..written.len().min(at + 16)],
        )
        .into());
    }
    Ok(())
}

/// One line per event, for failure messages.
fn describe(events: &[&serde_json::Value]) -> String {
    events
        .iter()
        .map(|e| {
            let p = payload(e);
            format!(
                "{} pid {} tid {} cookie {} {}:{} len {} {:?}",
                field_str(e, "event.action").unwrap_or("?"),
                field_u64(e, "process.pid").unwrap_or(0),
                field_u64(e, "process.thread.id").unwrap_or(0),
                field_u64(e, "weft.flow.cookie").unwrap_or(0),
                field_u64(e, "source.port").unwrap_or(0),
                field_u64(e, "destination.port").unwrap_or(0),
                p.len(),
                String::from_utf8_lossy(&p[..p.len().min(48)]),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const FIREFOX: &str = "/usr/lib/firefox-esr/firefox-esr";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Prefs of the test profile: no background traffic of Firefox's own
/// (updates, telemetry, safe browsing, push, remote settings...), so that
/// the page load is the only TLS it does.
const FIREFOX_PREFS: &str = r#"
user_pref("app.normandy.enabled", false);
user_pref("app.update.auto", false);
user_pref("browser.region.update.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("dom.push.connection.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("services.settings.server", "data:,");
user_pref("toolkit.telemetry.enabled", false);
"#;

/// A fresh Firefox profile in `dir` that trusts the test CA `ca`.
fn firefox_profile(dir: &std::path::Path, ca: &std::path::Path) -> TestResult<std::path::PathBuf> {
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile)?;
    let db = format!("sql:{}", profile.display());
    let certutil = |args: &[&std::ffi::OsStr]| -> TestResult {
        let out = Command::new("certutil")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                format!("cannot run certutil ({e}): install libnss3-tools (scripts/deps.sh)")
            })?;
        if !out.status.success() {
            return Err(format!(
                "certutil {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    };
    let os = std::ffi::OsStr::new;
    certutil(&[os("-N"), os("-d"), os(&db), os("--empty-password")])?;
    certutil(&[
        os("-A"),
        os("-d"),
        os(&db),
        os("-n"),
        os("test-ca"),
        os("-t"),
        os("CT,,"),
        os("-i"),
        ca.as_os_str(),
    ])?;
    std::fs::write(profile.join("user.js"), FIREFOX_PREFS)?;
    Ok(profile)
}

/// Firefox headless loads a page from nginx. Firefox bundles NSS, whose TLS
/// layer sits on the system NSPR (`libnspr4.so`); weft probes
/// `PR_Write`/`PR_Read`/`PR_Send`/`PR_Recv` and keeps only descriptors with
/// a layer on top (TLS), so Firefox's file and pipe I/O through the same
/// functions must not show up. Firefox negotiates h2 with nginx.
///
/// Firefox also calls `PR_Recv(fd, buf, 1, PR_MSG_PEEK)` on a connection
/// it picks up (liveness check); when data is already there, a probe that
/// reports the peek as a read duplicates that byte: the byte-for-byte
/// comparison with nginx's side catches it.
#[test]
fn firefox_nss() -> TestResult {
    require_root();
    assert!(
        std::path::Path::new(FIREFOX).exists(),
        "{FIREFOX} is missing: install firefox-esr (scripts/deps.sh)"
    );
    let dir = TempDir::new("firefox");
    let (ca, cert, key) = make_ca_signed_cert(dir.path())?;
    let nginx = Nginx::start_with_cert(&cert, &key)?;
    let profile = firefox_profile(dir.path(), &ca)?;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;
    let shot = dir.path().join("shot.png");

    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/firefox-{:x}", rand_u64());
    let url = format!("https://127.0.0.1:{}{uri}", nginx.port);
    let ff = run_tree(
        Command::new(FIREFOX)
            .args(["--headless", "--no-remote", "--profile"])
            .arg(&profile)
            // Firefox resolves a relative path elsewhere: always absolute.
            .arg("--screenshot")
            .arg(&shot)
            .arg(&url)
            .env("HOME", &home)
            .env("MOZ_CRASHREPORTER_DISABLE", "1"),
        std::time::Duration::from_secs(60),
    )?;

    // Ground truth: Firefox rendered the page, nginx served it (status 200
    // to this port, over this protocol).
    let png = std::fs::read(&shot)
        .map_err(|e| format!("no screenshot ({e}); firefox stderr:\n{}", ff.stderr))?;
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    let logged_port = nginx
        .wait_logged(&uri)
        .ok_or_else(|| format!("nginx did not log {uri}; firefox stderr:\n{}", ff.stderr))?;
    let protocol = nginx.logged_protocol(&uri).ok_or("no protocol logged")?;
    let h2 = protocol == "HTTP/2.0";
    let body = format!("body-{uri}");

    let nss = |e: &serde_json::Value| field_str(e, "weft.tls.library") == Some("nss");
    let got = weft.wait_for(SEEN_TIMEOUT, |e| {
        nss(e) && is_dir(e, "read") && contains(&payload(e), body.as_bytes())
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(
        got,
        "no nss read event with {body:?}; stderr:\n{}",
        run.stderr
    );

    // Firefox's events: the launched process or one of its descendants (a
    // socket process, when networking runs in one).
    let of_firefox = |e: &serde_json::Value| {
        field_u64(e, "process.pid").is_some_and(|p| ff.contains(p as u32))
            || field_u64(e, "process.parent.pid").is_some_and(|p| ff.contains(p as u32))
    };
    let events: Vec<&serde_json::Value> = run.events.iter().filter(|e| of_firefox(e)).collect();
    let read = events
        .iter()
        .find(|e| nss(e) && is_dir(e, "read") && contains(&payload(e), body.as_bytes()))
        .ok_or_else(|| {
            format!(
                "the body was read by a process outside firefox's tree (root {}, {:?})",
                ff.root, ff.tree
            )
        })?;
    let pid = field_u64(read, "process.pid").ok_or("no process.pid")?;
    assert_eq!(field_str(read, "process.executable"), Some(FIREFOX));
    assert!(field_u64(read, "process.thread.id").is_some());

    // The connection that carried the request: one cookie, its tuple is
    // the one nginx logged, Firefox's side is the client.
    let cookie = field_u64(read, "weft.flow.cookie").ok_or("no cookie on the read")?;
    assert_ne!(cookie, 0);
    let conn: Vec<&&serde_json::Value> = events
        .iter()
        .filter(|e| nss(e) && field_u64(e, "weft.flow.cookie") == Some(cookie))
        .collect();
    let request = if h2 {
        H2_PREFACE.to_vec()
    } else {
        format!("GET {uri} HTTP/1.1\r\n").into_bytes()
    };
    let write = conn
        .iter()
        .find(|e| is_dir(e, "write") && contains(&payload(e), &request))
        .ok_or_else(|| {
            format!("no nss write with the request ({protocol}) on the body's connection {cookie}")
        })?;
    let t = tuple(write);
    assert_eq!(t.0, "127.0.0.1");
    assert_eq!(
        t.1,
        u64::from(logged_port),
        "source.port vs nginx $remote_port"
    );
    assert_eq!(t.2, "127.0.0.1");
    assert_eq!(t.3, u64::from(nginx.port));
    assert_eq!(field_str(write, "network.transport"), Some("tcp"));
    assert_eq!(field_str(write, "network.type"), Some("ipv4"));
    assert_eq!(field_str(write, "weft.flow.role"), Some("client"));
    for e in &conn {
        assert_eq!(
            tuple(e),
            t,
            "an event of connection {cookie} has another tuple: {e}"
        );
        assert_eq!(field_u64(e, "process.pid"), Some(pid), "{e}");
    }

    // Byte for byte, Firefox read what nginx wrote and nginx read what
    // Firefox wrote on this connection (a PR_Recv(PR_MSG_PEEK) reported as
    // a read would duplicate bytes here).
    let workers = nginx.worker_pids();
    let ff_pids = [pid as u32];
    check_same_bytes(
        "nginx -> firefox",
        &stream(&run.events, &ff_pids, &t, "read")?,
        &stream(&run.events, &workers, &t, "write")?,
    )?;
    check_same_bytes(
        "firefox -> nginx",
        &stream(&run.events, &workers, &t, "read")?,
        &stream(&run.events, &ff_pids, &t, "write")?,
    )?;

    // The decoded transaction, on the same connection.
    let tx = events
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("http-transaction")
                && field_str(e, "url.path") == Some(uri.as_str())
        })
        .ok_or_else(|| {
            format!(
                "no http-transaction event of firefox for {uri}; firefox's events:\n{}\nweft:\n{}",
                describe(&events),
                run.stderr
            )
        })?;
    assert_eq!(field_u64(tx, "http.response.status_code"), Some(200));
    assert_eq!(field_str(tx, "weft.tls.library"), Some("nss"));
    assert_eq!(field_u64(tx, "weft.flow.cookie"), Some(cookie));
    assert_eq!(field_u64(tx, "process.pid"), Some(pid));
    assert_eq!(tuple(tx), t);
    assert_eq!(
        field_str(tx, "http.version"),
        Some(if h2 { "2" } else { "1.1" })
    );
    assert!(
        field_str(tx, "http.response.body.content").is_some_and(|b| b.contains(&body)),
        "{tx}"
    );

    // NSPR also carries Firefox's file and pipe I/O: none of it may be
    // reported. Every nss event of Firefox is on a TCP connection.
    let ff_nss: Vec<&&serde_json::Value> = events.iter().filter(|e| nss(e)).collect();
    for e in &ff_nss {
        assert!(
            field_u64(e, "weft.flow.cookie").is_some_and(|c| c != 0)
                && field_str(e, "network.transport") == Some("tcp")
                && field_u64(e, "destination.port").is_some_and(|p| p != 0),
            "an nss event of firefox without a TCP connection (non-socket I/O?): {e}"
        );
    }

    // nginx read the same request on the same connection, from its side.
    assert!(
        run.events.iter().any(|e| {
            is_dir(e, "read")
                && field_u64(e, "process.pid").is_some_and(|p| workers.contains(&(p as u32)))
                && contains(&payload(e), &request)
                && tuple(e) == t
        }),
        "nginx's read of firefox's request (same tuple) is missing"
    );
    Ok(())
}

/// The Debian git (its `git-remote-https` links libcurl-gnutls); not
/// whatever `git` comes first in PATH.
const GIT: &str = "/usr/bin/git";

/// `git ARGS` in `dir`, hermetic (no system or global config); stdout.
fn git(dir: &std::path::Path, args: &[&str]) -> TestResult<String> {
    let out = Command::new(GIT)
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "weft")
        .env("GIT_AUTHOR_EMAIL", "weft@example.invalid")
        .env("GIT_COMMITTER_NAME", "weft")
        .env("GIT_COMMITTER_EMAIL", "weft@example.invalid")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {GIT} ({e}): install git (scripts/deps.sh)"))?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// From git's own trace (`GIT_TRACE2_EVENT`): `(pid, parent pid)` of the
/// `git-remote-https` started by the git whose pid is `git_pid`. Each
/// process' session id is its parent's, `/`, then its own ending in
/// `-P<pid in hex>`; the helper runs two levels down (`git` -> `git
/// remote-https` -> `git-remote-https`), too briefly to be caught in /proc.
fn git_remote_https_pid(trace: &std::path::Path, git_pid: u32) -> TestResult<(u32, u32)> {
    let text = std::fs::read_to_string(trace)?;
    let pid_of =
        |part: &str| -> Option<u32> { u32::from_str_radix(part.rsplit_once("-P")?.1, 16).ok() };
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        if field_str(&e, "event") != Some("start") {
            continue;
        }
        let argv0 = e
            .get("argv")
            .and_then(|a| a.get(0))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if !argv0.ends_with("/git-remote-https") {
            continue;
        }
        let sid = field_str(&e, "sid").ok_or("a trace2 start event without sid")?;
        let pids: Vec<Option<u32>> = sid.split('/').map(pid_of).collect();
        let (Some(Some(first)), Some(Some(pid))) = (pids.first(), pids.last()) else {
            return Err(format!("trace2 session id without pids: {sid}").into());
        };
        if *first != git_pid || pids.len() < 2 {
            return Err(
                format!("git-remote-https {sid} does not descend from git {git_pid}").into(),
            );
        }
        let parent = pids[pids.len() - 2].ok_or("no parent pid in the session id")?;
        return Ok((*pid, parent));
    }
    Err(format!("no git-remote-https in git's trace2:\n{text}").into())
}

/// `git ls-remote` over https (libcurl-gnutls) of a bare repository nginx
/// serves as static files (git's "dumb" HTTP protocol). The HTTP is done by
/// `git-remote-https`, a grandchild of the launched git.
#[test]
fn git_ls_remote_gnutls() -> TestResult {
    require_root();
    let dir = TempDir::new("git");
    let work = dir.path().join("work");
    let bare = dir.path().join("repo.git");
    std::fs::create_dir_all(&work)?;
    git(&work, &["init", "-q", "-b", "main"])?;
    std::fs::write(work.join("README"), "weft\n")?;
    git(&work, &["add", "README"])?;
    git(&work, &["commit", "-q", "-m", "one"])?;
    git(dir.path(), &["clone", "-q", "--bare", "work", "repo.git"])?;
    // Dumb HTTP serves info/refs as a file: write it.
    git(&bare, &["update-server-info"])?;
    let head = git(&bare, &["rev-parse", "HEAD"])?.trim().to_string();
    assert_eq!(head.len(), 40, "rev-parse HEAD: {head:?}");
    let ref_line = format!("{head}\trefs/heads/main");

    let (ca, cert, key) = make_ca_signed_cert(dir.path())?;
    let nginx = Nginx::start_with(
        Some((&cert, &key)),
        &format!("location /repo.git/ {{ alias {}/; }}", bare.display()),
    )?;
    let weft = Weft::start(&["--raw"])?;
    let url = format!("https://127.0.0.1:{}/repo.git", nginx.port);
    let trace = dir.path().join("trace2.json");
    // HTTP/1.1: curl would negotiate h2 with nginx, whose request line is
    // HPACK-encoded; h1 keeps `GET /repo.git/info/refs` in the plaintext.
    let (git_pid, out) = run_client(
        Command::new(GIT)
            .args(["-c", "http.version=HTTP/1.1", "ls-remote"])
            .arg(&url)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_SSL_CAINFO", &ca)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_TRACE2_EVENT", &trace),
        CLIENT_TIMEOUT,
    )?;
    let (helper_pid, helper_ppid) = git_remote_https_pid(&trace, git_pid)?;
    assert!(
        contains(&out, ref_line.as_bytes()),
        "ls-remote output: {}",
        String::from_utf8_lossy(&out)
    );

    // Ground truth: nginx served info/refs (the smart-protocol probe, which
    // nginx answers with the static file) to this port.
    let refs_uri = "/repo.git/info/refs?service=git-upload-pack";
    let logged_port = nginx
        .wait_logged(refs_uri)
        .ok_or_else(|| format!("nginx did not log {refs_uri}"))?;

    let gnutls = |e: &serde_json::Value| field_str(e, "weft.tls.library") == Some("gnutls");
    let of_helper =
        |e: &serde_json::Value| field_u64(e, "process.pid") == Some(u64::from(helper_pid));
    let got = weft.wait_for(SEEN_TIMEOUT, |e| {
        gnutls(e) && of_helper(e) && is_dir(e, "read") && contains(&payload(e), ref_line.as_bytes())
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let summary: Vec<String> = run
        .events
        .iter()
        .filter(|e| gnutls(e))
        .map(|e| {
            format!(
                "{:?} pid {:?} ppid {:?} {:?} {:?}",
                field_str(e, "event.action"),
                field_u64(e, "process.pid"),
                field_u64(e, "process.parent.pid"),
                field_str(e, "process.name"),
                String::from_utf8_lossy(&payload(e)),
            )
        })
        .collect();
    assert!(
        got,
        "no gnutls read with {ref_line:?} from git-remote-https {helper_pid}; gnutls events:\n{}\nstderr:\n{}",
        summary.join("\n"),
        run.stderr
    );
    assert!(
        !run.events.iter().any(|e| {
            gnutls(e)
                && field_u64(e, "process.pid")
                    .is_some_and(|p| p == u64::from(git_pid) || p == u64::from(helper_ppid))
        }),
        "git and `git remote-https` do no HTTP themselves, yet have gnutls events"
    );

    // The helper: git-remote-https (comm truncated to 15 bytes).
    let read = run
        .events
        .iter()
        .find(|e| {
            gnutls(e)
                && of_helper(e)
                && is_dir(e, "read")
                && contains(&payload(e), ref_line.as_bytes())
        })
        .ok_or("no read with the ref line")?;
    let pid = helper_pid;
    assert_eq!(field_str(read, "process.name"), Some("git-remote-http"));
    assert_eq!(
        field_u64(read, "process.parent.pid"),
        Some(u64::from(helper_ppid))
    );
    assert!(
        field_str(read, "process.executable").is_some_and(|x| x.ends_with("/git-remote-http")),
        "{read}"
    );
    let helper = of_pid(&run.events, pid);
    let request = format!("GET {refs_uri} HTTP/1.1\r\n");
    let write = helper
        .iter()
        .find(|e| gnutls(e) && is_dir(e, "write") && contains(&payload(e), request.as_bytes()))
        .ok_or("git-remote-https's request for info/refs is not among its writes")?;
    assert!(field_u64(write, "process.thread.id").is_some());

    // The 5-tuple nginx logged; one connection for all of the helper's
    // events (curl reuses it for HEAD).
    let t = tuple(write);
    assert_eq!(
        t,
        (
            "127.0.0.1".to_string(),
            u64::from(logged_port),
            "127.0.0.1".to_string(),
            u64::from(nginx.port)
        ),
        "the request's tuple vs nginx's $remote_port"
    );
    assert_eq!(field_str(write, "network.transport"), Some("tcp"));
    assert_eq!(field_str(write, "weft.flow.role"), Some("client"));
    assert_eq!(tuple(read), t);
    let cookies: std::collections::HashSet<Option<u64>> = helper
        .iter()
        .map(|e| field_u64(e, "weft.flow.cookie"))
        .collect();
    assert_eq!(
        cookies.len(),
        1,
        "the helper's events carry cookies {cookies:?}"
    );
    let cookie = field_u64(write, "weft.flow.cookie").ok_or("no cookie")?;
    assert_ne!(cookie, 0);

    // Byte for byte, each side read what the other wrote.
    let workers = nginx.worker_pids();
    check_same_bytes(
        "nginx -> git-remote-https",
        &stream(&run.events, &[pid], &t, "read")?,
        &stream(&run.events, &workers, &t, "write")?,
    )?;
    check_same_bytes(
        "git-remote-https -> nginx",
        &stream(&run.events, &workers, &t, "read")?,
        &stream(&run.events, &[pid], &t, "write")?,
    )?;

    // The decoded transaction.
    let tx = helper
        .iter()
        .find(|e| {
            field_str(e, "event.action") == Some("http-transaction")
                && field_str(e, "url.path") == Some("/repo.git/info/refs")
        })
        .ok_or("no http-transaction event of git-remote-https for info/refs")?;
    assert_eq!(field_u64(tx, "http.response.status_code"), Some(200));
    assert_eq!(field_str(tx, "url.query"), Some("service=git-upload-pack"));
    assert_eq!(field_str(tx, "weft.tls.library"), Some("gnutls"));
    assert_eq!(field_u64(tx, "weft.flow.cookie"), Some(cookie));
    assert_eq!(tuple(tx), t);
    assert!(
        field_str(tx, "http.response.body.content").is_some_and(|b| b.contains(&ref_line)),
        "{tx}"
    );

    // nginx read the same request on the same connection.
    assert!(
        run.events.iter().any(|e| {
            is_dir(e, "read")
                && field_u64(e, "process.pid").is_some_and(|p| workers.contains(&(p as u32)))
                && contains(&payload(e), request.as_bytes())
                && tuple(e) == t
        }),
        "nginx's read of git's request (same tuple) is missing"
    );
    Ok(())
}
