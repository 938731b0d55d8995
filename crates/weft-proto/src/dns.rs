//! DNS messages (RFC 1035), sans-IO: one message in, its question and
//! answers out, or a typed error. Never panics.
//!
//! * Names follow compression pointers (RFC 1035 §4.1.4) only backwards,
//!   at most [`MAX_POINTER_HOPS`] of them, and stop at [`MAX_NAME_LEN`]
//!   bytes of text: a pointer loop or an endless name is an error, not a hang.
//! * At most [`MAX_RECORDS`] answers are kept (the rest are counted in
//!   [`Message::answers_skipped`]); record data a reader cannot use is kept
//!   as a short description, never as raw bytes.
//! * Over TCP a message is prefixed by its 2-byte length: [`parse_tcp`].
//!
//! Record data is decoded for A, AAAA, CNAME, NS, PTR, DNAME (a name), MX
//! (preference and name), TXT (strings), SRV, SOA, and HTTPS/SVCB (priority,
//! target, ALPN, port, ipv4hint/ipv6hint). Names are returned as text with
//! bytes outside printable ASCII, `.` inside a label and `\` escaped as
//! `\DDD` (RFC 4343 presentation format), so they are safe for any sink.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Text bytes of a name at most (RFC 1035: 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 1024;
/// Compression pointers followed per name at most.
pub const MAX_POINTER_HOPS: usize = 32;
/// Answer records decoded per message at most.
pub const MAX_RECORDS: usize = 64;
/// Questions decoded per message at most (real messages have one).
pub const MAX_QUESTIONS: usize = 4;
/// TXT bytes kept per record at most.
pub const MAX_TXT: usize = 512;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The message ends before a field it announces.
    #[error("DNS message truncated")]
    Truncated,
    /// A compression pointer goes forward, loops or hops too often.
    #[error("DNS name has a bad compression pointer")]
    BadPointer,
    /// A label type other than a plain label or a pointer (0x40, 0x80).
    #[error("DNS name has an unsupported label type")]
    BadLabel,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("DNS name too long")]
    NameTooLong,
}

/// A decoded message: header facts, the question(s) and the answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The transaction id.
    pub id: u16,
    /// `true` for an answer (QR bit).
    pub response: bool,
    /// OPCODE (0 = standard query).
    pub opcode: u8,
    /// RCODE of the header (0 = NOERROR).
    pub rcode: u8,
    /// TC: the answer did not fit (UDP) and is incomplete.
    pub truncated: bool,
    /// The questions (normally one).
    pub questions: Vec<Question>,
    /// The answer section's records (at most [`MAX_RECORDS`]).
    pub answers: Vec<Record>,
    /// Answer records announced but not decoded (over [`MAX_RECORDS`]).
    pub answers_skipped: u16,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked for, presentation format without the final dot.
    pub name: String,
    /// QTYPE (1 = A, 28 = AAAA, 65 = HTTPS...).
    pub qtype: u16,
    /// QCLASS (1 = IN).
    pub qclass: u16,
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owner name.
    pub name: String,
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// The decoded data.
    pub data: RData,
}

/// Record data, decoded as far as weft uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// A or AAAA: an address.
    Addr(IpAddr),
    /// CNAME, NS, PTR, DNAME: a name.
    Name(String),
    /// MX: preference and exchange.
    Mx(u16, String),
    /// TXT: the character strings (lossy UTF-8, at most [`MAX_TXT`] bytes).
    Txt(Vec<String>),
    /// HTTPS / SVCB: priority, target and the parameters weft reads.
    Svcb(Svcb),
    /// SRV, SOA and others: presentation text or a `\# LEN` note.
    Other(String),
}

/// The parts of an HTTPS/SVCB record (RFC 9460) weft reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Svcb {
    /// SvcPriority (0 = alias mode).
    pub priority: u16,
    /// TargetName (`.` when the owner itself).
    pub target: String,
    /// `alpn` values.
    pub alpn: Vec<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `ipv4hint` and `ipv6hint` addresses.
    pub hints: Vec<IpAddr>,
}

impl Message {
    /// Addresses of the A and AAAA answers, in order.
    pub fn resolved_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.answers.iter().filter_map(|r| match r.data {
            RData::Addr(ip) => Some(ip),
            _ => None,
        })
    }
}

impl RData {
    /// Presentation text of the data (ECS `dns.answers.data`).
    pub fn to_text(&self) -> String {
        match self {
            RData::Addr(ip) => ip.to_string(),
            RData::Name(n) => n.clone(),
            RData::Mx(p, n) => format!("{p} {n}"),
            RData::Txt(parts) => parts
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(" "),
            RData::Svcb(s) => {
                let mut t = format!("{} {}", s.priority, s.target);
                if !s.alpn.is_empty() {
                    let _ = write!(t, " alpn={}", s.alpn.join(","));
                }
                if let Some(p) = s.port {
                    let _ = write!(t, " port={p}");
                }
                let (v4, v6): (Vec<&IpAddr>, Vec<&IpAddr>) =
                    s.hints.iter().partition(|ip| ip.is_ipv4());
                for (key, list) in [("ipv4hint", v4), ("ipv6hint", v6)] {
                    if !list.is_empty() {
                        let l: Vec<String> = list.iter().map(|ip| ip.to_string()).collect();
                        let _ = write!(t, " {key}={}", l.join(","));
                    }
                }
                t
            }
            RData::Other(s) => s.clone(),
        }
    }
}

/// Mnemonic of a record type (`A`, `AAAA`, `HTTPS`...), `TYPEnnn` otherwise
/// (RFC 3597).
pub fn type_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

/// Class mnemonic (`IN`...), `CLASSnnn` otherwise.
pub fn class_name(c: u16) -> String {
    match c {
        1 => "IN".into(),
        3 => "CH".into(),
        4 => "HS".into(),
        255 => "ANY".into(),
        _ => format!("CLASS{c}"),
    }
}

/// RCODE mnemonic (`NOERROR`, `NXDOMAIN`...), as ECS `dns.response_code`.
pub fn rcode_name(r: u8) -> String {
    match r {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        _ => format!("RCODE{r}"),
    }
}

/// One message over TCP: 2-byte length, then the message (which may be
/// followed by more messages: only the first is decoded).
pub fn parse_tcp(bytes: &[u8]) -> Result<Message, DnsError> {
    let len = usize::from(u16::from_be_bytes([
        *bytes.first().ok_or(DnsError::Truncated)?,
        *bytes.get(1).ok_or(DnsError::Truncated)?,
    ]));
    parse(bytes.get(2..2 + len).ok_or(DnsError::Truncated)?)
}

/// One message (UDP payload).
pub fn parse(msg: &[u8]) -> Result<Message, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qd = r.u16()?;
    let an = r.u16()?;
    let _ns = r.u16()?;
    let _ar = r.u16()?;
    let mut m = Message {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: (flags & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        questions: Vec::new(),
        answers: Vec::new(),
        answers_skipped: 0,
    };
    for i in 0..qd {
        let name = r.name()?;
        let qtype = r.u16()?;
        let qclass = r.u16()?;
        if usize::from(i) < MAX_QUESTIONS {
            m.questions.push(Question {
                name,
                qtype,
                qclass,
            });
        }
    }
    for i in 0..an {
        if usize::from(i) >= MAX_RECORDS {
            m.answers_skipped = an - i;
            break;
        }
        let name = r.name()?;
        let rtype = r.u16()?;
        let class = r.u16()?;
        let ttl = r.u32()?;
        let rdlen = usize::from(r.u16()?);
        let start = r.pos;
        let end = start.checked_add(rdlen).ok_or(DnsError::Truncated)?;
        if end > msg.len() {
            return Err(DnsError::Truncated);
        }
        let data = rdata(msg, start, end, rtype)?;
        r.pos = end;
        m.answers.push(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        });
    }
    Ok(m)
}

fn rdata(msg: &[u8], start: usize, end: usize, rtype: u16) -> Result<RData, DnsError> {
    let d = &msg[start..end];
    // Names inside the data may point anywhere before them in the message.
    let mut r = Reader { msg, pos: start };
    Ok(match rtype {
        1 if d.len() == 4 => RData::Addr(IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3]))),
        28 if d.len() == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(d);
            RData::Addr(IpAddr::V6(Ipv6Addr::from(a)))
        }
        2 | 5 | 12 | 39 => RData::Name(r.name_within(end)?),
        15 => {
            let p = r.u16()?;
            RData::Mx(p, r.name_within(end)?)
        }
        16 => {
            let mut parts = Vec::new();
            let mut i = 0;
            let mut kept = 0;
            while i < d.len() {
                let n = usize::from(d[i]);
                let s = d.get(i + 1..i + 1 + n).ok_or(DnsError::Truncated)?;
                let take = s.len().min(MAX_TXT - kept);
                if take > 0 {
                    parts.push(String::from_utf8_lossy(&s[..take]).into_owned());
                    kept += take;
                }
                i += 1 + n;
            }
            RData::Txt(parts)
        }
        33 => {
            let prio = r.u16()?;
            let weight = r.u16()?;
            let port = r.u16()?;
            let target = r.name_within(end)?;
            RData::Other(format!("{prio} {weight} {port} {target}"))
        }
        6 => {
            let mname = r.name_within(end)?;
            let rname = r.name_within(end)?;
            let serial = r.u32()?;
            RData::Other(format!("{mname} {rname} {serial}"))
        }
        64 | 65 => RData::Svcb(svcb(&mut r, end)?),
        _ => RData::Other(format!("\\# {}", d.len())),
    })
}

fn svcb(r: &mut Reader<'_>, end: usize) -> Result<Svcb, DnsError> {
    let mut s = Svcb {
        priority: r.u16()?,
        target: r.name_within(end)?,
        ..Svcb::default()
    };
    if s.target.is_empty() {
        s.target = ".".into();
    }
    while r.pos < end {
        let key = r.u16()?;
        let len = usize::from(r.u16()?);
        let v = r
            .msg
            .get(r.pos..r.pos + len)
            .filter(|_| r.pos + len <= end)
            .ok_or(DnsError::Truncated)?;
        r.pos += len;
        match key {
            1 => {
                let mut i = 0;
                while i < v.len() && s.alpn.len() < MAX_RECORDS {
                    let n = usize::from(v[i]);
                    let id = v.get(i + 1..i + 1 + n).ok_or(DnsError::Truncated)?;
                    s.alpn.push(escape_text(id));
                    i += 1 + n;
                }
            }
            3 if v.len() == 2 => s.port = Some(u16::from_be_bytes([v[0], v[1]])),
            4 => {
                for c in v.chunks_exact(4).take(MAX_RECORDS) {
                    s.hints
                        .push(IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])));
                }
            }
            6 => {
                for c in v.chunks_exact(16).take(MAX_RECORDS) {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(c);
                    s.hints.push(IpAddr::V6(Ipv6Addr::from(a)));
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Printable ASCII as is; `.`, `\` and everything else as `\DDD` / `\.`.
fn escape_text(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        push_label_byte(&mut s, c);
    }
    s
}

fn push_label_byte(s: &mut String, c: u8) {
    match c {
        b'.' | b'\\' => {
            s.push('\\');
            s.push(char::from(c));
        }
        0x21..=0x7e => s.push(char::from(c)),
        _ => {
            let _ = write!(s, "\\{c:03}");
        }
    }
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self
            .msg
            .get(self.pos..self.pos + 2)
            .ok_or(DnsError::Truncated)?;
        self.pos += 2;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self
            .msg
            .get(self.pos..self.pos + 4)
            .ok_or(DnsError::Truncated)?;
        self.pos += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name inside record data ending at `end`: its wire form must end
    /// there too.
    fn name_within(&mut self, end: usize) -> Result<String, DnsError> {
        let n = self.name()?;
        if self.pos > end {
            return Err(DnsError::Truncated);
        }
        Ok(n)
    }

    /// A (possibly compressed) name; `pos` moves past its wire form.
    fn name(&mut self) -> Result<String, DnsError> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut hops = 0;
        // Where reading continues after the name: after the first pointer.
        let mut resume = None;
        // Pointers must go strictly backwards: no loops.
        let mut limit = self.pos;
        loop {
            let len = *self.msg.get(pos).ok_or(DnsError::Truncated)?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    pos += 1;
                    break;
                }
                0x00 => {
                    let n = usize::from(len);
                    let label = self
                        .msg
                        .get(pos + 1..pos + 1 + n)
                        .ok_or(DnsError::Truncated)?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    for &c in label {
                        push_label_byte(&mut out, c);
                    }
                    if out.len() > MAX_NAME_LEN {
                        return Err(DnsError::NameTooLong);
                    }
                    pos += 1 + n;
                }
                0xc0 => {
                    let lo = *self.msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                    hops += 1;
                    if target >= limit || hops > MAX_POINTER_HOPS {
                        return Err(DnsError::BadPointer);
                    }
                    if resume.is_none() {
                        resume = Some(pos + 2);
                    }
                    limit = target;
                    pos = target;
                }
                _ => return Err(DnsError::BadLabel),
            }
        }
        self.pos = resume.unwrap_or(pos);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(out: &mut Vec<u8>, n: &str) {
        for l in n.split('.').filter(|l| !l.is_empty()) {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    }

    /// A response to `www.example.com A` with a CNAME (compressed) and an A.
    fn response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        name(&mut m, "www.example.com");
        m.extend_from_slice(&[0, 1, 0, 1]);
        // CNAME: owner = pointer to the question (offset 12)
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10]);
        let mut target = Vec::new();
        target.extend_from_slice(&[3, b'w', b'e', b'b']);
        target.extend_from_slice(&[0xc0, 16]); // "example.com"
        m.extend_from_slice(&(target.len() as u16).to_be_bytes());
        let cname_at = m.len();
        m.extend_from_slice(&target);
        // A: owner = pointer to the CNAME target
        m.extend_from_slice(&[
            0xc0,
            cname_at as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            60,
            0,
            4,
            93,
            184,
            216,
            34,
        ]);
        m
    }

    #[test]
    fn a_response_with_a_compressed_cname() {
        let m = parse(&response()).expect("parses");
        assert_eq!(m.id, 0x1234);
        assert!(m.response);
        assert_eq!(m.rcode, 0);
        assert_eq!(m.questions.len(), 1);
        assert_eq!(m.questions[0].name, "www.example.com");
        assert_eq!(m.questions[0].qtype, 1);
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].name, "www.example.com");
        assert_eq!(m.answers[0].data, RData::Name("web.example.com".into()));
        assert_eq!(m.answers[0].ttl, 3600);
        assert_eq!(m.answers[1].name, "web.example.com");
        assert_eq!(m.answers[1].data.to_text(), "93.184.216.34");
        assert_eq!(
            m.resolved_ips().collect::<Vec<_>>(),
            vec!["93.184.216.34".parse::<IpAddr>().expect("ip")]
        );
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let full = response();
        for n in 0..full.len() {
            assert!(parse(&full[..n]).is_err(), "prefix of {n} bytes parsed");
        }
        let mut tcp = (full.len() as u16).to_be_bytes().to_vec();
        tcp.extend_from_slice(&full);
        assert_eq!(parse_tcp(&tcp), parse(&full));
        assert_eq!(parse_tcp(&tcp[..5]), Err(DnsError::Truncated));
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        // Question name = pointer to itself.
        let m = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(parse(&m), Err(DnsError::BadPointer));
        // Forward pointer.
        let m = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0, 0, 1, 0, 1];
        assert_eq!(parse(&m), Err(DnsError::BadPointer));
        // Extended label type.
        let m = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1];
        assert_eq!(parse(&m), Err(DnsError::BadLabel));
    }

    #[test]
    fn aaaa_mx_txt_https_and_escaped_labels() {
        let mut m = vec![0, 7, 0x81, 0x83, 0, 1, 0, 4, 0, 0, 0, 0];
        name(&mut m, "a.test");
        m.extend_from_slice(&[0, 65, 0, 1]);
        // AAAA
        m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 5, 0, 16]);
        m.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("ip").octets());
        // MX 10 mx.a.test
        m.extend_from_slice(&[
            0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 5, 0, 7, 0, 10, 2, b'm', b'x', 0xc0, 12,
        ]);
        // TXT with a dot and a control byte in a label-free string
        m.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 5, 0, 4, 3, b'h', b'i', b'!']);
        // HTTPS 1 . alpn=h2,h3 port=8443 ipv4hint=1.2.3.4
        let mut rd = vec![0, 1, 0];
        rd.extend_from_slice(&[0, 1, 0, 6, 2, b'h', b'2', 2, b'h', b'3']);
        rd.extend_from_slice(&[0, 3, 0, 2, 0x20, 0xfb]);
        rd.extend_from_slice(&[0, 4, 0, 4, 1, 2, 3, 4]);
        m.extend_from_slice(&[0xc0, 12, 0, 65, 0, 1, 0, 0, 0, 5]);
        m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        m.extend_from_slice(&rd);
        let msg = parse(&m).expect("parses");
        assert_eq!(rcode_name(msg.rcode), "NXDOMAIN");
        assert_eq!(type_name(msg.questions[0].qtype), "HTTPS");
        let texts: Vec<String> = msg.answers.iter().map(|a| a.data.to_text()).collect();
        assert_eq!(
            texts,
            [
                "2001:db8::1",
                "10 mx.a.test",
                "\"hi!\"",
                "1 . alpn=h2,h3 port=8443 ipv4hint=1.2.3.4"
            ]
        );
        assert_eq!(escape_text(b"a.b\\\x07 c"), "a\\.b\\\\\\007\\032c");
    }

    #[test]
    fn never_panics_on_noise() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let base = response();
        for _ in 0..20_000 {
            let mut m = base.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % m.len();
                m[i] = (x >> 32) as u8;
            }
            let _ = parse(&m);
            let _ = parse_tcp(&m);
        }
    }
}
