//! Helpers for weft's privileged end-to-end tests: start the real `weft`
//! binary, real servers (nginx, small Python TLS servers) and real clients,
//! and read back what weft reported.
//!
//! These tests need root and the packages of `scripts/deps.sh`; when either
//! is missing they fail with a message that says so (they never skip).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod exchange;
pub mod ja4;
pub mod netns;
pub mod tcpdump;

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

/// `N` distinct loopback TCP ports that were free a moment ago (all held at
/// once while chosen: separate [`free_port`] calls may return one twice).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local addr").port())
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
/// Tests never put programs on the machine's real NIC: unless a test
/// chooses its interfaces (`--interface`), turns the packet path off
/// (`--no-tc`), replays a recording or filters processes (`--pid`,
/// `--comm`, `--tree`: the packet path is then off unless interfaces are
/// named), weft's packet path goes on `lo` only.
pub fn packet_path_default(args: &[&str]) -> &'static [&'static str] {
    let chosen = args.iter().any(|a| {
        [
            "--no-tc",
            "--replay",
            "--interface",
            "--pid",
            "--comm",
            "--tree",
        ]
        .iter()
        .any(|f| a.starts_with(f))
    });
    if chosen { &[] } else { &["--interface", "lo"] }
}

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
            .args(packet_path_default(args))
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
    /// While weft runs its buffered output may end in the middle of a line:
    /// only complete lines count.
    pub fn events_so_far(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        parse_events(complete)
    }

    /// Wait until `pred` holds for some event (weft flushes within ~100 ms).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        self.wait_for_count(timeout, 1, pred)
    }

    /// Wait until `pred` holds for at least `n` events.
    pub fn wait_for_count(
        &self,
        timeout: Duration,
        n: usize,
        pred: impl Fn(&Value) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.events_so_far().iter().filter(|e| pred(e)).count() >= n {
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
            // After a clean exit every line must be whole.
            events: parse_events(&std::fs::read_to_string(&self.out).unwrap_or_default()),
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

/// The count on weft's exit-statistics line that starts with `label`
/// (its last field).
pub fn exit_stat(stderr: &str, label: &str) -> Option<u64> {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
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

/// Run `openssl ARGS`; its stderr goes into the error.
fn openssl(args: &[&std::ffi::OsStr]) -> TestResult {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl ({e}): install it (scripts/deps.sh)"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// A test CA and a leaf certificate it signed for 127.0.0.1/localhost, in
/// `dir`: `(ca.pem, cert.pem, key.pem)`. Browsers (Firefox) refuse the
/// self-signed CA:TRUE certificate of [`make_cert`] as a server's leaf;
/// trust `ca.pem` instead and serve `cert.pem`.
pub fn make_ca_signed_cert(dir: &Path) -> TestResult<(PathBuf, PathBuf, PathBuf)> {
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let cert = dir.join("leaf.pem");
    let key = dir.join("leaf-key.pem");
    let csr = dir.join("leaf.csr");
    let ext = dir.join("leaf.ext");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    openssl(&[
        os("req"),
        os("-x509"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-days"),
        os("2"),
        os("-subj"),
        os("/CN=weft test CA"),
        os("-addext"),
        os("basicConstraints=critical,CA:TRUE"),
        os("-addext"),
        os("keyUsage=critical,keyCertSign,cRLSign"),
        os("-keyout"),
        ca_key.as_os_str(),
        os("-out"),
        ca.as_os_str(),
    ])?;
    openssl(&[
        os("req"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-subj"),
        os("/CN=localhost"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ])?;
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    let serial = format!("0x{:x}", rand_u64() >> 1);
    openssl(&[
        os("x509"),
        os("-req"),
        os("-days"),
        os("2"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-set_serial"),
        std::ffi::OsStr::new(&serial),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ])?;
    Ok((ca, cert, key))
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
/// answers `body-<uri>` (except extra ones given to [`Nginx::start_with`]);
/// the access log records `$remote_port $request_uri $status
/// $server_protocol`.
pub struct Nginx {
    pub port: u16,
    /// The same server without TLS: HTTP/1.1 (plaintext capture tests).
    pub plain_port: u16,
    /// The same server without TLS: HTTP/2 with prior knowledge (h2c).
    pub h2c_port: u16,
    proc: Proc,
    dir: TempDir,
}

impl Nginx {
    /// With a fresh self-signed certificate.
    pub fn start() -> TestResult<Nginx> {
        Self::start_with(None, "")
    }

    /// Serving `cert` (PEM, may hold a chain) with `key`.
    pub fn start_with_cert(cert: &Path, key: &Path) -> TestResult<Nginx> {
        Self::start_with(Some((cert, key)), "")
    }

    /// `cert_key`: `(certificate, key)` to serve, else a fresh self-signed
    /// pair. `extra_locations`: nginx `location` blocks added to the server
    /// next to the catch-all `location /` (the longest prefix wins).
    pub fn start_with(
        cert_key: Option<(&Path, &Path)>,
        extra_locations: &str,
    ) -> TestResult<Nginx> {
        let dir = TempDir::new("nginx");
        let (cert, key) = match cert_key {
            Some((c, k)) => (c.to_path_buf(), k.to_path_buf()),
            None => make_cert(dir.path())?,
        };
        let [port, plain_port, h2c_port] = free_ports();
        std::fs::create_dir_all(dir.path().join("logs"))?;
        let conf = format!(
            r#"
worker_processes 1;
error_log {d}/logs/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    log_format weft '$remote_addr $remote_port $request_uri $status $server_protocol $ssl_protocol';
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        listen 127.0.0.1:{plain_port};
        listen 127.0.0.1:{h2c_port} http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        access_log {d}/logs/access.log weft;
        {extra_locations}
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
        let mut proc = Proc { child };
        if let Err(e) = wait_port(port, Duration::from_secs(10)) {
            // Say why when nginx itself gave up (its error log has the cause).
            if let Ok(Some(status)) = proc.child.try_wait() {
                let log =
                    std::fs::read_to_string(dir.path().join("logs/error.log")).unwrap_or_default();
                return Err(format!("nginx exited ({status}): {}", log.trim()).into());
            }
            return Err(e);
        }
        Ok(Nginx {
            port,
            plain_port,
            h2c_port,
            proc,
            dir,
        })
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

    /// The server's own directory (configuration, logs; files to serve).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The access log's lines: `$remote_addr $remote_port $request_uri
    /// $status $server_protocol`.
    pub fn access_log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The protocol (`$server_protocol`: `HTTP/1.1`, `HTTP/2.0`) of the
    /// first logged request for `uri`, waiting as [`Nginx::wait_logged`].
    pub fn logged_protocol(&self, uri: &str) -> Option<String> {
        self.logged_field(uri, 4)
    }

    /// The TLS version nginx logged for `uri` (`$ssl_protocol`: `TLSv1.3`,
    /// `-` over plain HTTP).
    pub fn logged_tls_version(&self, uri: &str) -> Option<String> {
        self.logged_field(uri, 5)
    }

    fn logged_field(&self, uri: &str, index: usize) -> Option<String> {
        self.wait_logged(uri)?;
        let text =
            std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default();
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&uri)).then(|| f.get(index).map(|p| p.to_string()))?
        })
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

/// `(ppid, start time in clock ticks)` of `pid` from `/proc/PID/stat`; the
/// pair tells a process from a later one that reuses its pid.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state (3), ppid (4), ..., starttime (22).
    Some((f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// `pid -> (ppid, start time)` of every process.
fn proc_table() -> HashMap<u32, (u32, u64)> {
    let mut out = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some(st) = proc_stat(pid)
            {
                out.insert(pid, st);
            }
        }
    }
    out
}

/// A finished command and the processes it started.
pub struct TreeRun {
    /// The pid of the command itself.
    pub root: u32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// `pid -> ppid` of every descendant seen while the command ran.
    pub tree: HashMap<u32, u32>,
}

impl TreeRun {
    /// The command itself or one of its recorded descendants.
    pub fn contains(&self, pid: u32) -> bool {
        pid == self.root || self.tree.contains_key(&pid)
    }
}

/// Run `cmd` to completion within `timeout`, recording its descendants
/// while it runs (polled every 25 ms: a very short-lived one can be missed).
/// On timeout the command is killed, then its recorded descendants; those
/// that outlive a finished command by 5 s are killed too. Kills go by pid,
/// only while the pid is still the recorded process (same start time).
/// Fails when the command fails or times out.
pub fn run_tree(cmd: &mut Command, timeout: Duration) -> TestResult<TreeRun> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let root = child.id();
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // pid -> (ppid, start time), recorded while alive.
    let mut tree: HashMap<u32, (u32, u64)> = HashMap::new();
    let record = |tree: &mut HashMap<u32, (u32, u64)>| {
        let table = proc_table();
        let mut changed = true;
        while changed {
            changed = false;
            for (&pid, &(ppid, start)) in &table {
                if (ppid == root || tree.contains_key(&ppid)) && !tree.contains_key(&pid) {
                    tree.insert(pid, (ppid, start));
                    changed = true;
                }
            }
        }
    };
    let alive = |tree: &HashMap<u32, (u32, u64)>| -> Vec<u32> {
        tree.iter()
            .filter(|(pid, (_, start))| proc_stat(**pid).is_some_and(|(_, s)| s == *start))
            .map(|(pid, _)| *pid)
            .collect()
    };
    let end = Instant::now() + timeout;
    let status = loop {
        record(&mut tree);
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    if status.is_none() {
        // The command first, so that it starts nothing more.
        let _ = child.kill();
        let _ = child.wait();
    }
    // Descendants normally exit with the command; give them a moment.
    let linger = Instant::now() + Duration::from_secs(if status.is_some() { 5 } else { 0 });
    while !alive(&tree).is_empty() && Instant::now() < linger {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors = alive(&tree);
    for &pid in &survivors {
        signal(pid, "KILL");
    }
    let Some(status) = status else {
        return Err(format!(
            "{cmd:?} did not finish within {timeout:?} (killed it and {survivors:?})"
        )
        .into());
    };
    if !survivors.is_empty() {
        eprintln!("run_tree: killed {survivors:?}, still running 5 s after {cmd:?} exited");
    }
    let stdout = out_reader.join().map_err(|_| "reader thread panicked")?;
    let stderr = err_reader.join().map_err(|_| "reader thread panicked")?;
    if !status.success() {
        return Err(format!("{cmd:?} failed ({status}): {stderr}").into());
    }
    Ok(TreeRun {
        root,
        stdout,
        stderr,
        tree: tree
            .into_iter()
            .map(|(pid, (ppid, _))| (pid, ppid))
            .collect(),
    })
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
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(path).args(args);
        Helper::spawn(cmd)
    }

    /// Start any program that talks line by line on stdin/stdout (its
    /// stderr goes to the test's).
    pub fn spawn(mut cmd: Command) -> TestResult<Helper> {
        let mut child = cmd
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

    /// The lines the helper printed until it stayed quiet for `quiet`.
    pub fn remaining_lines(&self, quiet: Duration) -> String {
        let mut rest = String::new();
        while let Ok(l) = self.lines.recv_timeout(quiet) {
            rest.push_str(&l);
            rest.push('\n');
        }
        rest
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

/// The Community ID v1 (TCP, seed 0) of a connection, computed outside weft
/// (Python's hashlib, following the spec), as ground truth.
pub fn community_id_reference(a: &str, a_port: u64, b: &str, b_port: u64) -> TestResult<String> {
    const SCRIPT: &str = r#"
import base64, hashlib, ipaddress, struct, sys
a, ap, b, bp = ipaddress.ip_address(sys.argv[1]).packed, int(sys.argv[2]), ipaddress.ip_address(sys.argv[3]).packed, int(sys.argv[4])
if (a, ap) > (b, bp):
    a, ap, b, bp = b, bp, a, ap
d = hashlib.sha1(struct.pack(">H", 0) + a + b + bytes([6, 0]) + struct.pack(">HH", ap, bp)).digest()
print("1:" + base64.b64encode(d).decode())
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT, a, &a_port.to_string(), b, &b_port.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
