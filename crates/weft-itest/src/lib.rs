//! Helpers for weft's privileged end-to-end tests: start the real `weft`
//! binary, real servers (nginx, small Python TLS servers) and real clients,
//! and read back what weft reported.
//!
//! These tests need root and the packages of `scripts/deps.sh`; when either
//! is missing they fail with a message that says so (they never skip).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod exchange;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `weft` binary under test: `$WEFT_BIN`, else target/debug/weft.
pub fn weft_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WEFT_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let p = target.join("debug/weft");
    assert!(
        p.exists(),
        "{} does not exist: run `cargo build -p weft` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Fail loudly when not root: these tests load BPF.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "privileged tests must run as root (they load BPF programs)"
    );
}

/// A private temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "weft-itest-{tag}-{}-{}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A random-enough u64 for unique names and paths (no external crate).
pub fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Wait until something listens on 127.0.0.1:port.
pub fn wait_port(port: u16, timeout: Duration) -> TestResult {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on 127.0.0.1:{port} after {timeout:?}").into())
}

/// Send a signal to a process we started.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A running child that is killed (by pid) when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running weft with JSON output going to a file.
pub struct Weft {
    proc: Proc,
    out: PathBuf,
    stderr_rx: mpsc::Receiver<String>,
    stderr: String,
    _dir: TempDir,
}

/// What a stopped weft left behind.
pub struct WeftRun {
    pub events: Vec<Value>,
    pub stderr: String,
    pub success: bool,
}

impl Weft {
    /// Start `weft --json ARGS` and wait for its `ready` line.
    pub fn start(args: &[&str]) -> TestResult<Weft> {
        require_root();
        let dir = TempDir::new("weft");
        let out = dir.path().join("events.ndjson");
        let file = std::fs::File::create(&out)?;
        let mut child = Command::new(weft_bin())
            .arg("--json")
            .args(args)
            .stdout(Stdio::from(file))
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()?;
        let err = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut w = Weft {
            proc: Proc { child },
            out,
            stderr_rx: rx,
            stderr: String::new(),
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("weft not ready after 30 s; stderr:\n{}", w.stderr).into());
            }
            match w
                .stderr_rx
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    w.stderr.push_str(&line);
                    w.stderr.push('\n');
                    if line.contains("ready") {
                        return Ok(w);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(st)) = w.proc.child.try_wait() {
                        return Err(
                            format!("weft exited ({st}) before ready:\n{}", w.stderr).into()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("weft closed stderr before ready:\n{}", w.stderr).into());
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Events written so far.
    pub fn events_so_far(&self) -> Vec<Value> {
        parse_events(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }

    /// Wait until `pred` holds for some event (weft flushes within ~100 ms).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.events_so_far().iter().any(&pred) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// SIGINT, wait for exit (bounded), and collect everything.
    pub fn stop(mut self) -> TestResult<WeftRun> {
        signal(self.pid(), "INT");
        let end = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = self.proc.child.try_wait()? {
                break st;
            }
            if Instant::now() > end {
                return Err("weft did not exit within 20 s of SIGINT".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.stderr_rx.recv_timeout(Duration::from_millis(500)) {
            self.stderr.push_str(&line);
            self.stderr.push('\n');
        }
        Ok(WeftRun {
            events: self.events_so_far(),
            stderr: std::mem::take(&mut self.stderr),
            success: status.success(),
        })
    }

    /// SIGKILL: no chance to clean up; the kernel must detach everything.
    pub fn kill(mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

pub fn parse_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// `a.b.c` lookup in nested JSON.
pub fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

pub fn field_u64(v: &Value, path: &str) -> Option<u64> {
    field(v, path).and_then(Value::as_u64)
}

pub fn field_str<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    field(v, path).and_then(Value::as_str)
}

/// The captured payload bytes of a TLS event (text or base64).
pub fn payload(v: &Value) -> Vec<u8> {
    if let Some(t) = field_str(v, "weft.payload.text") {
        return t.as_bytes().to_vec();
    }
    if let Some(b) = field_str(v, "weft.payload.base64") {
        return base64_decode(b);
    }
    Vec::new()
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Events of one process.
pub fn of_pid(events: &[Value], pid: u32) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| field_u64(e, "process.pid") == Some(u64::from(pid)))
        .collect()
}

/// True when `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A self-signed certificate and key for 127.0.0.1/localhost in `dir`.
pub fn make_cert(dir: &Path) -> TestResult<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !st.success() {
        return Err("openssl req failed (is openssl installed?)".into());
    }
    Ok((cert, key))
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL on the master would orphan its workers: ask the master to
        // stop them (SIGTERM = fast shutdown), then make sure nothing of
        // this nginx is left.
        let workers = self.worker_pids();
        signal(self.pid(), "TERM");
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.proc.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for w in workers {
            if std::path::Path::new(&format!("/proc/{w}")).exists() {
                signal(w, "KILL");
            }
        }
    }
}

/// nginx serving TLS (HTTP/1.1 and h2) on a loopback port. Every location
/// answers `body-<uri>`; the access log records `$remote_port $request_uri`.
pub struct Nginx {
    pub port: u16,
    proc: Proc,
    dir: TempDir,
}

impl Nginx {
    pub fn start() -> TestResult<Nginx> {
        let dir = TempDir::new("nginx");
        let (cert, key) = make_cert(dir.path())?;
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("logs"))?;
        let conf = format!(
            r#"
worker_processes 1;
error_log {d}/logs/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    log_format weft '$remote_addr $remote_port $request_uri $status';
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        access_log {d}/logs/access.log weft;
        location / {{
            default_type text/plain;
            return 200 "body-$request_uri\n";
        }}
    }}
}}
"#,
            d = dir.path().display(),
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start nginx ({e}): install it (scripts/deps.sh)"))?;
        let proc = Proc { child };
        wait_port(port, Duration::from_secs(10))?;
        Ok(Nginx { port, proc, dir })
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// pids of the worker processes (children of the master).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// `(remote_port, uri)` for each request nginx logged.
    pub fn access_log(&self) -> Vec<(u16, String)> {
        let text =
            std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let _addr = it.next()?;
                let port = it.next()?.parse().ok()?;
                let uri = it.next()?.to_string();
                Some((port, uri))
            })
            .collect()
    }

    /// Wait until nginx logged `uri` (it writes the log after the response).
    pub fn wait_logged(&self, uri: &str) -> Option<u16> {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Some((p, _)) = self.access_log().into_iter().find(|(_, u)| u == uri) {
                return Some(p);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Child pids of `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

/// Run a command to completion with a time limit; returns (pid, stdout).
pub fn run_client(cmd: &mut Command, timeout: Duration) -> TestResult<(u32, Vec<u8>)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} did not finish within {timeout:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = reader.join().map_err(|_| "reader thread panicked")?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("{cmd:?} failed ({status}): {err}").into());
    }
    Ok((pid, stdout))
}

/// A helper script (from tests/py/) talking line by line on stdin/stdout.
pub struct Helper {
    pub proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    /// Start `/usr/bin/python3 tests/py/SCRIPT ARGS`.
    pub fn python(script: &str, args: &[&str]) -> TestResult<Helper> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/py")
            .join(script);
        let mut child = Command::new("/usr/bin/python3")
            .arg(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Helper {
            proc: Proc { child },
            lines: rx,
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Next line of the helper's stdout (bounded wait).
    pub fn read_line(&self, timeout: Duration) -> TestResult<String> {
        self.lines
            .recv_timeout(timeout)
            .map_err(|_| format!("no line from helper within {timeout:?}").into())
    }

    /// Write one line to the helper's stdin.
    pub fn write_line(&mut self, line: &str) -> TestResult {
        let inp = self.proc.child.stdin.as_mut().ok_or("no stdin")?;
        inp.write_all(line.as_bytes())?;
        inp.write_all(b"\n")?;
        inp.flush()?;
        Ok(())
    }

    /// Wait for the helper to exit (bounded); true when it succeeded.
    pub fn wait(&mut self, timeout: Duration) -> TestResult<bool> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.proc.child.try_wait()? {
                return Ok(st.success());
            }
            if Instant::now() > end {
                return Err(format!("helper did not exit within {timeout:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Names of loaded BPF programs (from bpftool).
pub fn loaded_bpf_prog_names() -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .expect("bpftool must be installed (scripts/deps.sh)");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
