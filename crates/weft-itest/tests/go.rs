//! End-to-end against Go's crypto/tls (issue: every TLS stack users run):
//! a Go HTTPS client against nginx and a Go HTTPS server (stripped, so its
//! functions come from the pclntab) with curl, asserting plaintext, pids,
//! the 5-tuple and cookies; the memory layout go.bpf.c relies on; and a Go
//! program weft cannot verify, which must get no probe and a warning.
//!
//! The Go programs in tests/go/ use the standard library only and are built
//! offline with Debian's golang-1.23-go (scripts/deps.sh).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use weft_itest::exchange::*;
use weft_itest::*;

const GO: &str = "/usr/lib/go-1.23/bin/go";

/// Build tests/go/NAME/main.go into `dir` with extra `go build` flags.
fn go_build(name: &str, dir: &Path, flags: &[&str]) -> TestResult<PathBuf> {
    if !Path::new(GO).exists() {
        return Err(format!("{GO} is missing: install golang-1.23-go (scripts/deps.sh)").into());
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/go")
        .join(name);
    // Shared between runs (and with weft-core's discovery tests): a cold
    // build of net/http takes tens of seconds on two cores.
    let cache = std::env::temp_dir().join("weft-go-cache");
    let out = dir.join(name);
    let res = Command::new(GO)
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg("main.go")
        .current_dir(&src)
        .env("GOCACHE", cache.join("build"))
        .env("GOPATH", cache.join("path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOENV", "off")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .output()?;
    if !res.status.success() {
        return Err(format!(
            "go build {name} failed: {}",
            String::from_utf8_lossy(&res.stderr)
        )
        .into());
    }
    Ok(out)
}

/// A Go program of tests/go/ talking line by line on stdin/stdout.
struct GoProc(Helper);

impl GoProc {
    fn start(bin: &Path, args: &[&str]) -> TestResult<GoProc> {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Ok(GoProc(Helper::spawn(cmd)?))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn read_line(&self, timeout: Duration) -> TestResult<String> {
        self.0
            .read_line(timeout)
            .map_err(|_| format!("no line from the Go program within {timeout:?}").into())
    }

    fn go_ahead(&mut self) -> TestResult {
        self.0.write_line("go")
    }

    /// Wait for exit (bounded) and return the rest of stdout.
    fn finish(&mut self, timeout: Duration) -> TestResult<String> {
        if !self.0.wait(timeout)? {
            return Err("the Go program failed".into());
        }
        Ok(self.0.remaining_lines(Duration::from_millis(500)))
    }
}

#[test]
fn go_client_against_nginx() -> TestResult {
    let dir = TempDir::new("go-client");
    // Not stripped: the functions come from .symtab.
    let bin = go_build("client", dir.path(), &[])?;
    let nginx = Nginx::start()?;
    let uri = format!("/go-{:x}", rand_u64());
    let url = format!("https://127.0.0.1:{}{uri}", nginx.port);
    // Started before weft, waiting: weft's start-up scan probes it, so its
    // first TLS call is already seen.
    let mut client = GoProc::start(&bin, &[&url])?;
    assert_eq!(client.read_line(Duration::from_secs(10))?, "ready");
    let weft = Weft::start(&["--raw"])?;
    client.go_ahead()?;
    let out = client.finish(CLIENT_TIMEOUT)?;
    let body = format!("body-{uri}");
    assert_eq!(out, format!("{body}\n"));
    let request = format!("GET {uri} HTTP/1.1\r\n");
    check_exchange(
        weft,
        &nginx,
        &Expect {
            client_pid: client.pid(),
            request: request.as_bytes(),
            server_read: request.as_bytes(),
            body: body.as_bytes(),
            uri: &uri,
            library: "go",
        },
    )
}

#[test]
fn go_server_with_curl() -> TestResult {
    let dir = TempDir::new("go-server");
    // Stripped (-s -w): no .symtab, the functions come from the pclntab.
    let bin = go_build("server", dir.path(), &["-ldflags=-s -w"])?;
    let (cert, key) = make_cert(dir.path())?;
    let port = free_port();
    let server = GoProc::start(
        &bin,
        &[
            &port.to_string(),
            cert.to_str().ok_or("path")?,
            key.to_str().ok_or("path")?,
        ],
    )?;
    assert_eq!(server.read_line(Duration::from_secs(10))?, "listening");
    let weft = Weft::start(&["--raw"])?;
    let uri = format!("/go-server-{:x}", rand_u64());
    let (curl_pid, out) = curl(&["--http1.1"], &format!("https://127.0.0.1:{port}{uri}"))?;
    let body = format!("go-body-{uri}");
    assert_eq!(out, format!("{body}\n").as_bytes());
    // Ground truth for the client's side of the connection.
    let logged = server.read_line(Duration::from_secs(5))?;
    let client_port: u64 = logged
        .strip_prefix("request 127.0.0.1:")
        .and_then(|r| r.split_once(' '))
        .filter(|(_, path)| *path == uri)
        .ok_or_else(|| format!("unexpected server line {logged:?}"))?
        .0
        .parse()?;

    let spid = u64::from(server.pid());
    let request = format!("GET {uri} HTTP/1.1\r\n");
    let got = weft.wait_for(SEEN_TIMEOUT, |e| {
        field_u64(e, "process.pid") == Some(spid)
            && is_dir(e, "write")
            && contains(&payload(e), body.as_bytes())
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(
        got,
        "no write event of the Go server with the body; stderr:\n{}",
        run.stderr
    );
    let want_tuple = (
        "127.0.0.1".to_string(),
        client_port,
        "127.0.0.1".to_string(),
        u64::from(port),
    );

    // The server's side: its pid, Go, role server, the client's tuple.
    let mine = of_pid(&run.events, server.pid());
    let read = mine
        .iter()
        .find(|e| is_dir(e, "read") && contains(&payload(e), request.as_bytes()))
        .ok_or("the Go server's read of the request is missing")?;
    let write = mine
        .iter()
        .find(|e| is_dir(e, "write") && contains(&payload(e), body.as_bytes()))
        .ok_or("the Go server's write of the response is missing")?;
    for e in [read, write] {
        assert_eq!(field_str(e, "weft.tls.library"), Some("go"));
        assert_eq!(field_str(e, "weft.flow.role"), Some("server"));
        assert_eq!(field_str(e, "network.transport"), Some("tcp"));
        assert_eq!(tuple(e), want_tuple, "tuple of a Go server event");
    }
    let server_cookies: HashSet<u64> = mine
        .iter()
        .filter_map(|e| field_u64(e, "weft.flow.cookie"))
        .collect();
    assert_eq!(server_cookies.len(), 1, "server cookies {server_cookies:?}");
    assert!(
        mine.iter()
            .all(|e| field_u64(e, "weft.flow.cookie").is_some())
    );

    // curl's side of the same connection: another socket, same tuple.
    let theirs = of_pid(&run.events, curl_pid);
    let cw = theirs
        .iter()
        .find(|e| is_dir(e, "write") && contains(&payload(e), request.as_bytes()))
        .ok_or("curl's write of the request is missing")?;
    let cr = theirs
        .iter()
        .find(|e| is_dir(e, "read") && contains(&payload(e), body.as_bytes()))
        .ok_or("curl's read of the response is missing")?;
    assert_eq!(tuple(cw), want_tuple);
    assert_eq!(tuple(cr), want_tuple);
    assert_eq!(field_str(cw, "weft.flow.role"), Some("client"));
    let curl_cookie = field_u64(cw, "weft.flow.cookie").ok_or("curl cookie")?;
    assert_ne!(curl_cookie, 0);
    assert!(!server_cookies.contains(&curl_cookie));
    Ok(())
}

/// `#define NAME VALUE` lines of bpf/go.bpf.c.
fn bpf_defines() -> TestResult<Vec<(String, u64)>> {
    let src = std::fs::read_to_string(workspace().join("bpf/go.bpf.c"))?;
    let mut out = Vec::new();
    for line in src.lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let value = value.trim_end_matches('u');
        let parsed = match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => value.parse(),
        };
        if let Ok(v) = parsed {
            out.push((name.to_string(), v));
        }
    }
    Ok(out)
}

#[test]
fn go_memory_layout_matches_go_bpf() -> TestResult {
    let dir = TempDir::new("go-offsets");
    let bin = go_build("offsets", dir.path(), &[])?;
    let (_, out) = run_client(&mut Command::new(&bin), CLIENT_TIMEOUT)?;
    let defines = bpf_defines()?;
    let measured = String::from_utf8(out)?;
    let mut checked = 0;
    for line in measured.lines() {
        let (name, value) = line.split_once(' ').ok_or("bad line")?;
        let value = match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16)?,
            None => value.parse()?,
        };
        let define = defines
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("bpf/go.bpf.c has no #define {name}"))?;
        assert_eq!(define.1, value, "{name}: go.bpf.c vs Go 1.23");
        checked += 1;
    }
    assert_eq!(checked, 6, "offsets program printed:\n{measured}");
    Ok(())
}

/// The file offset of virtual address `vaddr` in a little-endian ELF64
/// executable, through its PT_LOAD program headers.
fn file_offset(elf: &[u8], vaddr: u64) -> Option<u64> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    for i in 0..u16_at(0x38)? as usize {
        let ph = phoff + i * phentsize;
        if u32_at(ph)? != 1 {
            continue; // not PT_LOAD
        }
        let (offset, start, filesz) = (u64_at(ph + 8)?, u64_at(ph + 16)?, u64_at(ph + 32)?);
        if vaddr >= start && vaddr < start + filesz {
            return Some(vaddr - start + offset);
        }
    }
    None
}

#[test]
fn go_program_weft_cannot_verify_is_refused_with_a_warning() -> TestResult {
    let dir = TempDir::new("go-unverified");
    let bin = go_build("client", dir.path(), &["-ldflags=-s -w"])?;
    let (_, pc) = run_client(Command::new(&bin).arg("-write-pc"), CLIENT_TIMEOUT)?;
    let pc: u64 = String::from_utf8(pc)?.trim().parse()?;
    let mut elf = std::fs::read(&bin)?;
    let at = file_offset(&elf, pc).ok_or("(*Conn).Write is outside the file")? as usize;
    // Go's stack check on R14 (`lea r12,[rsp-N]; cmp r12,[r14+0x10]` or
    // `cmp rsp,[r14+0x10]`): what weft's verification looks for.
    let head = elf.get(at..at + 9).ok_or("short file")?.to_vec();
    assert!(
        head.starts_with(&[0x4c, 0x8d, 0x64, 0x24]) || head.starts_with(&[0x49, 0x3b, 0x66, 0x10]),
        "(*Conn).Write does not start as expected: {head:02x?}"
    );
    // A copy whose function no longer starts like Go code: never called
    // here (the client waits for a go-ahead that never comes).
    elf[at..at + 9].copy_from_slice(&[0x90; 9]);
    let bad = dir.path().join("client-corrupt");
    std::fs::write(&bad, &elf)?;
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let url = "https://127.0.0.1:9/never";
    let client = GoProc::start(&bad, &[url])?;
    assert_eq!(client.read_line(Duration::from_secs(10))?, "ready");
    let weft = Weft::start(&[])?;
    let run = weft.stop()?;
    drop(client);
    assert!(run.success, "weft failed:\n{}", run.stderr);
    let warning = run
        .stderr
        .lines()
        .find(|l| l.contains("client-corrupt") && l.contains("Go program not probed"))
        .ok_or_else(|| format!("no warning about the corrupt Go program:\n{}", run.stderr))?;
    assert!(
        warning.contains("WARN") && warning.contains("stack check"),
        "{warning}"
    );
    Ok(())
}
