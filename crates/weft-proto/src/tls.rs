//! The cleartext start of a TLS connection (RFC 8446, RFC 5246): what the
//! ClientHello and ServerHello say, and plaintext alerts.
//!
//! Fed the first bytes a TLS library sent and received on one connection
//! (weft copies at most a couple of KiB per direction), [`HandshakeParser`]
//! reads the record layer, joins handshake messages across records and
//! extracts server name, offered ALPN, versions and cipher suites from the
//! ClientHello, and the chosen version, cipher suite and (TLS 1.2) ALPN from
//! the ServerHello, and what the JA4/JA4S fingerprints need ([`crate::ja4`]:
//! extension types in order, signature algorithms, the first ALPN's bytes).
//! Everything after is encrypted in TLS 1.3 (the chosen ALPN
//! there is in EncryptedExtensions: not visible here).
//!
//! Sans-IO: no I/O, never panics, every buffer bounded. A direction whose
//! bytes are not TLS, or break the grammar, is marked done with a
//! [`HelloError`]; nothing is guessed.

/// Bytes of one direction buffered at most while a record or message is
/// incomplete (a full TLS record plus header).
pub const MAX_BUFFER: usize = 16 * 1024 + 5;
/// Handshake message size accepted at most (hello messages are far smaller).
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Items kept from one list (cipher suites, ALPN names, versions) at most.
pub const MAX_ITEMS: usize = 64;

/// Which way the bytes went, from the point of view of the process whose
/// library moved them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The process sent them.
    Sent,
    /// The process received them.
    Received,
}

/// What a ClientHello offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// `legacy_version` of the hello (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// The `server_name` extension's host name (SNI), when present.
    pub server_name: Option<String>,
    /// ALPN protocol names offered, in order.
    pub alpn: Vec<String>,
    /// `supported_versions` (TLS 1.3 clients), GREASE values removed.
    pub versions: Vec<u16>,
    /// Cipher suites offered, in order, GREASE values removed.
    pub cipher_suites: Vec<u16>,
    /// Everything JA4 reads (complete lists, not cut at [`MAX_ITEMS`]).
    pub fingerprint: crate::ja4::Ja4Client,
}

impl ClientHello {
    /// The highest version the client offers.
    pub fn max_version(&self) -> u16 {
        self.versions
            .iter()
            .copied()
            .max()
            .unwrap_or(self.legacy_version)
    }
}

/// What a ServerHello chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// The negotiated version: `supported_versions` when present (TLS 1.3),
    /// else `legacy_version`.
    pub version: u16,
    /// The chosen cipher suite.
    pub cipher_suite: u16,
    /// The chosen ALPN protocol, when the ServerHello carries it (TLS 1.2;
    /// TLS 1.3 sends it encrypted).
    pub alpn: Option<String>,
    /// Everything JA4S reads.
    pub fingerprint: crate::ja4::Ja4Server,
}

/// A plaintext alert record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// 1 warning, 2 fatal.
    pub level: u8,
    /// The alert description code (RFC 8446 §6).
    pub description: u8,
    /// Who sent it, from the process' view.
    pub side: Side,
}

impl Alert {
    /// The RFC name of the description, `unknown` for codes not listed.
    pub fn description_name(&self) -> &'static str {
        alert_name(self.description)
    }
}

/// Why a direction stopped being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloError {
    /// The first bytes are not a TLS handshake record.
    NotTls,
    /// A record or message broke the grammar.
    Malformed,
    /// A record or message exceeded the bounds above.
    TooLong,
}

#[derive(Debug, Default)]
struct DirState {
    rec: Vec<u8>,
    hs: Vec<u8>,
    seen: u64,
    done: bool,
    error: Option<HelloError>,
}

/// Per-connection parser of the handshake's cleartext.
#[derive(Debug, Default)]
pub struct HandshakeParser {
    dirs: [DirState; 2],
    client_hello: Option<ClientHello>,
    server_hello: Option<ServerHello>,
    hello_retry: bool,
    alert: Option<Alert>,
}

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;

const HT_CLIENT_HELLO: u8 = 1;
const HT_SERVER_HELLO: u8 = 2;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;

/// SHA-256("HelloRetryRequest"): the random of a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

impl HandshakeParser {
    /// A parser for one connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ClientHello, once parsed (the last one after a HelloRetryRequest).
    pub fn client_hello(&self) -> Option<&ClientHello> {
        self.client_hello.as_ref()
    }

    /// The ServerHello, once parsed (never a HelloRetryRequest).
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.server_hello.as_ref()
    }

    /// The first plaintext alert seen, if any.
    pub fn alert(&self) -> Option<Alert> {
        self.alert
    }

    /// True when the server asked the client to retry (HelloRetryRequest).
    pub fn hello_retry(&self) -> bool {
        self.hello_retry
    }

    /// Why a direction stopped, if it did on an error.
    pub fn error(&self, side: Side) -> Option<HelloError> {
        self.dirs[idx(side)].error
    }

    /// True when neither direction will yield anything more.
    pub fn done(&self) -> bool {
        self.dirs.iter().all(|d| d.done)
    }

    /// Feed the next bytes of one direction (in order, no gaps). Returns
    /// true when something new was learned (a hello or an alert).
    pub fn feed(&mut self, side: Side, bytes: &[u8]) -> bool {
        let i = idx(side);
        if self.dirs[i].done || bytes.is_empty() {
            return false;
        }
        if self.dirs[i].rec.len() + bytes.len() > MAX_BUFFER {
            self.stop(i, HelloError::TooLong);
            return false;
        }
        self.dirs[i].rec.extend_from_slice(bytes);
        let mut learned = false;
        loop {
            let d = &mut self.dirs[i];
            if d.done || d.rec.len() < 5 {
                break;
            }
            let ct = d.rec[0];
            let major = d.rec[1];
            let len = usize::from(u16::from_be_bytes([d.rec[3], d.rec[4]]));
            if !(CT_CCS..=24).contains(&ct) || major != 3 {
                let e = if d.seen == 0 {
                    HelloError::NotTls
                } else {
                    HelloError::Malformed
                };
                self.stop(i, e);
                break;
            }
            if d.seen == 0 && ct != CT_HANDSHAKE && ct != CT_ALERT {
                self.stop(i, HelloError::NotTls);
                break;
            }
            if len > 16 * 1024 + 2048 {
                self.stop(i, HelloError::TooLong);
                break;
            }
            if d.rec.len() < 5 + len {
                break;
            }
            let body: Vec<u8> = d.rec[5..5 + len].to_vec();
            d.rec.drain(..5 + len);
            d.seen += 1;
            match ct {
                CT_HANDSHAKE => learned |= self.on_handshake(i, &body),
                CT_ALERT if body.len() == 2 && self.alert.is_none() => {
                    self.alert = Some(Alert {
                        level: body[0],
                        description: body[1],
                        side,
                    });
                    learned = true;
                }
                CT_APPDATA => {
                    // Encrypted from here on.
                    self.dirs[i].done = true;
                }
                _ => {}
            }
        }
        if self.dirs[i].done {
            self.dirs[i].rec = Vec::new();
            self.dirs[i].hs = Vec::new();
        }
        learned
    }

    fn stop(&mut self, i: usize, e: HelloError) {
        let d = &mut self.dirs[i];
        d.done = true;
        d.error = Some(e);
        d.rec = Vec::new();
        d.hs = Vec::new();
    }

    fn on_handshake(&mut self, i: usize, fragment: &[u8]) -> bool {
        if self.dirs[i].hs.len() + fragment.len() > MAX_MESSAGE + 4 {
            self.stop(i, HelloError::TooLong);
            return false;
        }
        self.dirs[i].hs.extend_from_slice(fragment);
        let mut learned = false;
        loop {
            let hs = &self.dirs[i].hs;
            if hs.len() < 4 {
                break;
            }
            let ty = hs[0];
            let len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
            if len > MAX_MESSAGE {
                self.stop(i, HelloError::TooLong);
                return learned;
            }
            if hs.len() < 4 + len {
                break;
            }
            let msg: Vec<u8> = hs[4..4 + len].to_vec();
            self.dirs[i].hs.drain(..4 + len);
            match ty {
                HT_CLIENT_HELLO => match parse_client_hello(&msg) {
                    Some(ch) => {
                        self.client_hello = Some(ch);
                        learned = true;
                    }
                    None => {
                        self.stop(i, HelloError::Malformed);
                        return learned;
                    }
                },
                HT_SERVER_HELLO => match parse_server_hello(&msg) {
                    Some((sh, hrr)) => {
                        if hrr {
                            self.hello_retry = true;
                        } else {
                            self.server_hello = Some(sh);
                            // TLS 1.3: the rest of this direction is
                            // encrypted; TLS 1.2: certificates, not needed.
                            self.dirs[i].done = true;
                        }
                        learned = true;
                        if self.dirs[i].done {
                            return learned;
                        }
                    }
                    None => {
                        self.stop(i, HelloError::Malformed);
                        return learned;
                    }
                },
                _ => {}
            }
        }
        learned
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::Sent => 0,
        Side::Received => 1,
    }
}

/// A GREASE value (RFC 8701): 0x?A?A with both bytes equal.
fn is_grease(v: u16) -> bool {
    crate::ja4::is_grease(v)
}

/// A bounds-checked reader over one message.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&v, rest) = self.b.split_first()?;
        self.b = rest;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        let v = self.take(2)?;
        Some(u16::from_be_bytes([v[0], v[1]]))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (v, rest) = self.b.split_at(n);
        self.b = rest;
        Some(v)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

/// Every non-GREASE value of a u16 list (bounded by the message size).
fn u16_all(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .filter(|v| !is_grease(*v))
        .collect()
}

/// The first ALPN value's bytes.
fn first_alpn(b: &[u8]) -> Option<Vec<u8>> {
    let mut r = Rd { b };
    let mut list = Rd { b: r.vec16()? };
    list.vec8().map(<[u8]>::to_vec)
}

fn u16_list(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .filter(|v| !is_grease(*v))
        .take(MAX_ITEMS)
        .collect()
}

fn alpn_list(b: &[u8]) -> Option<Vec<String>> {
    let mut r = Rd { b };
    let mut list = Rd { b: r.vec16()? };
    let mut out = Vec::new();
    while !list.b.is_empty() {
        let name = list.vec8()?;
        if out.len() < MAX_ITEMS {
            out.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Some(out)
}

fn server_name(b: &[u8]) -> Option<String> {
    let mut r = Rd { b };
    let mut list = Rd { b: r.vec16()? };
    while !list.b.is_empty() {
        let ty = list.u8()?;
        let name = list.vec16()?;
        if ty == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

fn parse_client_hello(msg: &[u8]) -> Option<ClientHello> {
    let mut r = Rd { b: msg };
    let mut ch = ClientHello {
        legacy_version: r.u16()?,
        ..ClientHello::default()
    };
    r.take(32)?; // random
    r.vec8()?; // legacy_session_id
    let suites = r.vec16()?;
    ch.cipher_suites = u16_list(suites);
    ch.fingerprint.version = ch.legacy_version;
    ch.fingerprint.cipher_suites = u16_all(suites);
    r.vec8()?; // legacy_compression_methods
    if r.b.is_empty() {
        return Some(ch); // no extensions (old clients)
    }
    let mut exts = Rd { b: r.vec16()? };
    while !exts.b.is_empty() {
        let ty = exts.u16()?;
        let data = exts.vec16()?;
        if !is_grease(ty) {
            ch.fingerprint.extensions.push(ty);
        }
        match ty {
            EXT_SERVER_NAME => {
                ch.server_name = server_name(data);
                ch.fingerprint.has_sni = true;
            }
            EXT_ALPN => {
                ch.alpn = alpn_list(data)?;
                ch.fingerprint.first_alpn = first_alpn(data);
            }
            EXT_SUPPORTED_VERSIONS => {
                let mut d = Rd { b: data };
                let list = d.vec8()?;
                ch.versions = u16_list(list);
                ch.fingerprint.supported_versions = u16_all(list);
            }
            EXT_SIGNATURE_ALGORITHMS => {
                let mut d = Rd { b: data };
                ch.fingerprint.signature_algorithms = u16_all(d.vec16()?);
            }
            _ => {}
        }
    }
    Some(ch)
}

/// The ServerHello, and whether it is a HelloRetryRequest.
fn parse_server_hello(msg: &[u8]) -> Option<(ServerHello, bool)> {
    let mut r = Rd { b: msg };
    let mut sh = ServerHello {
        version: r.u16()?,
        ..ServerHello::default()
    };
    let random = r.take(32)?;
    let hrr = random == HRR_RANDOM;
    r.vec8()?; // legacy_session_id_echo
    sh.cipher_suite = r.u16()?;
    sh.fingerprint.version = sh.version;
    sh.fingerprint.cipher_suite = sh.cipher_suite;
    r.u8()?; // legacy_compression_method
    if !r.b.is_empty() {
        let mut exts = Rd { b: r.vec16()? };
        while !exts.b.is_empty() {
            let ty = exts.u16()?;
            let data = exts.vec16()?;
            if !is_grease(ty) {
                sh.fingerprint.extensions.push(ty);
            }
            match ty {
                EXT_SUPPORTED_VERSIONS if data.len() == 2 => {
                    sh.version = u16::from_be_bytes([data[0], data[1]]);
                    sh.fingerprint.supported_version = Some(sh.version);
                }
                EXT_ALPN => {
                    sh.alpn = alpn_list(data)?.into_iter().next();
                    sh.fingerprint.alpn = first_alpn(data);
                }
                _ => {}
            }
        }
    }
    Some((sh, hrr))
}

/// ECS `tls.version` text of a protocol version: `1.3`, `1.2`, ... (`ssl
/// 3.0`-era and unknown values as hex).
pub fn version_name(v: u16) -> String {
    match v {
        0x0304 => "1.3".into(),
        0x0303 => "1.2".into(),
        0x0302 => "1.1".into(),
        0x0301 => "1.0".into(),
        0x0300 => "3.0".into(),
        other => format!("0x{other:04x}"),
    }
}

/// The ECS `tls.version_protocol` of a version: `ssl` for SSL 3.0, else `tls`.
pub fn version_protocol(v: u16) -> &'static str {
    if v == 0x0300 { "ssl" } else { "tls" }
}

/// The IANA name of a cipher suite, for the common ones; `0x....` otherwise.
pub fn cipher_name(v: u16) -> String {
    let name = match v {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x00ff => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
        other => return format!("0x{other:04x}"),
    };
    name.into()
}

/// The RFC 8446 name of an alert description.
pub fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}
