//! Opt-in Prometheus endpoint (`--metrics ADDR`): events, bytes, drops by
//! reason, live flows, attachments, and each BPF program's run count and
//! run time. The main loop refreshes a snapshot; a small thread serves it.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// A metric family: its help text, type and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn counter(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind: "counter",
            samples: Vec::new(),
        }
    }

    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind: "gauge",
            samples: Vec::new(),
        }
    }

    pub fn with(mut self, labels: &[(&'static str, &str)], value: f64) -> Self {
        self.samples.push(Sample {
            name: self.name,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            value,
        });
        self
    }

    pub fn push(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push(Sample {
            name: self.name,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            value,
        });
    }
}

/// Label values are escaped per the text exposition format.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Prometheus text exposition format (version 0.0.4).
pub fn render(families: &[Family]) -> String {
    let mut s = String::new();
    for f in families {
        let _ = writeln!(s, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(s, "# TYPE {} {}", f.name, f.kind);
        for smp in &f.samples {
            s.push_str(smp.name);
            if !smp.labels.is_empty() {
                s.push('{');
                for (i, (k, v)) in smp.labels.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    let _ = write!(s, "{k}=\"{}\"", escape_label(v));
                }
                s.push('}');
            }
            let _ = writeln!(s, " {}", smp.value);
        }
    }
    s
}

/// The latest rendered page, shared with the server thread.
pub type Page = Arc<Mutex<String>>;

/// Bind `addr` and serve `page` at `/metrics` from a background thread.
pub fn serve(addr: SocketAddr, page: Page) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} for --metrics"))?;
    let bound = listener.local_addr().context("metrics listener address")?;
    std::thread::Builder::new()
        .name("weft-metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // One scrape at a time, bounded in time and size: a stuck
                // client cannot hold weft up.
                let _ = answer(conn, &page);
            }
        })
        .context("cannot start the metrics thread")?;
    Ok(bound)
}

fn answer(mut conn: TcpStream, page: &Page) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|b| *b == b'\n').next().unwrap_or_default();
    let ok = line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ");
    let (status, ctype, body) = if ok {
        let body = page.lock().map(|p| p.clone()).unwrap_or_default();
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let fams = vec![
            Family::counter("weft_events_total", "Events written.").with(&[], 3.0),
            Family::counter("weft_drops_total", "Drops by reason.")
                .with(&[("reason", "ring \"full\"")], 1.0),
        ];
        let text = render(&fams);
        assert!(text.contains("# TYPE weft_events_total counter\nweft_events_total 3\n"));
        assert!(text.contains("weft_drops_total{reason=\"ring \\\"full\\\"\"} 1\n"));
    }

    #[test]
    fn serves_metrics_over_http() {
        let page: Page = Arc::new(Mutex::new("weft_up 1\n".to_string()));
        let addr = serve("127.0.0.1:0".parse().expect("addr"), Arc::clone(&page)).expect("serve");
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut resp = String::new();
        c.read_to_string(&mut resp).expect("read");
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        assert!(resp.ends_with("weft_up 1\n"));
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(b"GET /nope HTTP/1.1\r\n\r\n").expect("write");
        let mut resp = String::new();
        c.read_to_string(&mut resp).expect("read");
        assert!(resp.starts_with("HTTP/1.1 404"));
    }
}
