//! The event model: what every later stage (sinks, decoders, rules) sees.
//!
//! Nothing here knows about the kernel ABI; `weft-bpf` turns raw records into
//! these owned values at the boundary.

use std::net::IpAddr;
use std::sync::Arc;

/// Which side of a TLS call the bytes travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// This process sent the bytes (`SSL_write` and friends).
    Write,
    /// This process received the bytes (`SSL_read` and friends).
    Read,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Write => "write",
            Direction::Read => "read",
        }
    }
}

/// The TLS library whose function produced the plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsLibrary {
    OpenSsl,
    BoringSsl,
    GnuTls,
    Nss,
    WolfSsl,
    GoTls,
    /// No TLS: plaintext read and written by the socket syscalls.
    None,
}

impl TlsLibrary {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsLibrary::OpenSsl => "openssl",
            TlsLibrary::BoringSsl => "boringssl",
            TlsLibrary::GnuTls => "gnutls",
            TlsLibrary::Nss => "nss",
            TlsLibrary::WolfSsl => "wolfssl",
            TlsLibrary::GoTls => "go",
            TlsLibrary::None => "none",
        }
    }
}

/// Everything weft knows about the process (and thread) behind an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Thread-group id (what users call the pid).
    pub pid: u32,
    /// Parent's pid.
    pub ppid: u32,
    /// Process name (the thread-group leader's `comm`), as raw kernel bytes.
    pub name: String,
    /// Executable path as seen from the process' own mount namespace, when known.
    pub executable: Option<String>,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// cgroup v2 id of the process.
    pub cgroup_id: u64,
    /// Start time of the process in nanoseconds since boot (monotonic).
    pub start_time_ns: u64,
    /// Stable id that survives pid reuse: derived from boot id, pid and start time.
    pub entity_id: String,
}

/// One end of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// Who opened the TCP connection, seen from the process that made the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This process' socket connected (it is the source).
    Client,
    /// This process' socket was accepted (the peer is the source).
    Server,
    /// Not known (connection predates weft and no listener was seen).
    Unknown,
}

/// The TCP connection behind an event: the golden thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Socket cookie: the kernel's stable id for this socket. 0 = not known.
    pub cookie: u64,
    /// This process' end of the connection.
    pub local: Endpoint,
    /// The peer's end.
    pub remote: Endpoint,
    pub role: Role,
}

impl Flow {
    /// The side that opened the TCP connection (ECS `source`). When the role is
    /// unknown the local side is taken as source.
    pub fn source(&self) -> Endpoint {
        match self.role {
            Role::Server => self.remote,
            Role::Client | Role::Unknown => self.local,
        }
    }

    /// The side that accepted the TCP connection (ECS `destination`).
    pub fn destination(&self) -> Endpoint {
        match self.role {
            Role::Server => self.local,
            Role::Client | Role::Unknown => self.remote,
        }
    }

    /// `ipv4` or `ipv6` as on the wire: an IPv4-mapped IPv6 socket
    /// address carries IPv4 packets.
    pub fn network_type(&self) -> &'static str {
        match self.local.ip.to_canonical() {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        }
    }

    /// The connection's Community ID v1 (seed 0, TCP; ECS
    /// `network.community_id`), the id other tools (Zeek, Suricata,
    /// Elastic) give the same 5-tuple. IPv4-mapped IPv6 addresses are taken
    /// as the IPv4 addresses they carry on the wire.
    pub fn community_id(&self) -> String {
        communityid::Flow::new(
            communityid::Protocol::TCP,
            self.local.ip.to_canonical(),
            self.local.port,
            self.remote.ip.to_canonical(),
            self.remote.port,
        )
        .community_id_v1(0)
        .base64()
    }
}

/// One TLS library call with its whole (possibly capped) plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsData {
    /// Wall-clock time of the call's return, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Duration of the call in nanoseconds.
    pub duration_ns: u64,
    pub process: Arc<ProcessInfo>,
    /// Thread that made the call.
    pub tid: u32,
    /// The connection, when the socket behind the call was found.
    pub flow: Option<Flow>,
    pub library: TlsLibrary,
    pub direction: Direction,
    /// The bytes captured: the first `payload.len()` bytes of the call,
    /// but for `holes`.
    pub payload: Vec<u8>,
    /// The real number of bytes the call moved (may exceed `payload.len()`).
    pub length: u64,
    /// Body bytes the capture left out on purpose (past `--max-body`,
    /// inside a body whose length the kernel read), in order; empty for
    /// almost every call. `payload` holds the bytes around them.
    pub holes: Vec<Hole>,
    /// The connection's TLS session facts, when its handshake was seen.
    pub tls: Option<Arc<TlsSession>>,
    /// Only the first bytes of this direction of a connection weft does not
    /// decode (`library` is `None`): kept to classify it, never decoded.
    pub first_bytes: bool,
    /// The name the host just resolved to the peer's address (DNS), when
    /// this process opened the connection (`weft_core::resolved`).
    pub destination_domain: Option<Arc<str>>,
    /// Calls of this connection that happened before this one and were
    /// lost whole, their records included (the kernel's ring was full):
    /// the decoder accounts for them before this call's bytes.
    pub lost_before: LostCalls,
}

/// `len` bytes of a call left out (not copied) right before `payload[at]`
/// (at its end when `at == payload.len()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    pub at: usize,
    pub len: u64,
}

/// Library calls of one connection lost whole, with the bytes they moved,
/// by direction as seen by the calling process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostCalls {
    pub reads: u32,
    pub writes: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

impl LostCalls {
    pub fn is_empty(&self) -> bool {
        self.reads == 0 && self.writes == 0
    }
}

impl TlsData {
    /// True when bytes the call moved are missing at its end: fewer were
    /// captured or left out on purpose (`holes`) than it moved.
    pub fn truncated(&self) -> bool {
        (self.payload.len() as u64) + self.skipped() < self.length
    }

    /// Bytes left out on purpose (`holes`).
    pub fn skipped(&self) -> u64 {
        self.holes.iter().map(|h| h.len).sum()
    }

    /// The payload up to its first hole: the call's first bytes, as an
    /// event that carries raw bytes shows them.
    pub fn contiguous_len(&self) -> usize {
        self.holes.first().map_or(self.payload.len(), |h| h.at)
    }
}

/// One HTTP exchange (request + response) decoded from a connection's
/// plaintext, as seen by one process (a client and a server on the same
/// host each give their own event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// Wall-clock time the request began (first bytes seen), Unix ns; the
    /// time the event was produced when that is unknown.
    pub timestamp_ns: u64,
    /// From the first request bytes to the end of the response, when known.
    pub duration_ns: Option<u64>,
    pub process: Arc<ProcessInfo>,
    pub flow: Option<Flow>,
    /// The TLS library the plaintext came from.
    pub library: TlsLibrary,
    /// Whether this process is the client (sent the request) or the server.
    pub role: Role,
    pub transaction: Box<weft_proto::Transaction>,
    /// The connection's TLS session facts, when its handshake was seen.
    pub tls: Option<Arc<TlsSession>>,
    /// As [`TlsData::destination_domain`].
    pub destination_domain: Option<Arc<str>>,
}

/// One DNS message a process sent or received over UDP (port 53).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// Wall-clock time the syscall returned, Unix ns.
    pub timestamp_ns: u64,
    pub process: Arc<ProcessInfo>,
    pub tid: u32,
    /// The UDP endpoints (`cookie` may be 0); `Role::Client` for the asker's
    /// socket (peer port 53), `Role::Server` for a resolver's (local port 53).
    pub flow: Option<Flow>,
    /// Sent (`Write`) or received (`Read`) by this process.
    pub direction: Direction,
    pub message: Box<weft_proto::dns::Message>,
    /// Carried over TCP (port 53) rather than UDP.
    pub tcp: bool,
}

/// One WebSocket message decoded from a connection's plaintext (after an
/// HTTP/1.1 upgrade or an HTTP/2 extended CONNECT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocket {
    /// Wall-clock time the message's first bytes were seen, Unix ns.
    pub timestamp_ns: u64,
    pub process: Arc<ProcessInfo>,
    pub flow: Option<Flow>,
    pub library: TlsLibrary,
    /// This process' role on the connection (client: it sent the upgrade).
    pub role: Role,
    pub message: Box<weft_proto::websocket::WsMessage>,
}

/// weft's own report that it lost data: counters that grew since the last
/// report (only the ones that grew), emitted periodically while loss goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// Wall-clock time of the report, Unix ns.
    pub timestamp_ns: u64,
    /// Length of the period the counts cover.
    pub interval_ns: u64,
    /// (reason, count in the period), by the stable reason names of the
    /// metrics endpoint (`weft_drops_total{reason=...}`).
    pub counts: Vec<(&'static str, u64)>,
}

/// What weft learned about a connection's TLS session from its handshake
/// (see `weft_core::tls`). Absent facts were not seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSession {
    /// Negotiated protocol version, ECS style: `1.3`, `1.2`...
    pub version: Option<String>,
    /// `tls` (or `ssl` for SSL 3.0).
    pub version_protocol: Option<&'static str>,
    /// Negotiated cipher suite, IANA name (`TLS_AES_256_GCM_SHA384`).
    pub cipher: Option<String>,
    /// The server name the client asked for (SNI).
    pub server_name: Option<String>,
    /// The chosen ALPN protocol (`h2`, `http/1.1`), when visible.
    pub next_protocol: Option<String>,
    /// `next_protocol` was inferred from the client's first application
    /// bytes (`tls::alpn`), neither seen in the ServerHello nor told by the
    /// library.
    pub next_protocol_inferred: bool,
    /// ALPN protocols the client offered.
    pub alpn_offered: Vec<String>,
    /// Versions the client offered (`supported_versions`, else its hello
    /// version), as wire codes (`weft_proto::tls::version_name` names them):
    /// kept as numbers because every connection holds its session facts.
    pub client_versions: Vec<u16>,
    /// Cipher suites the client offered, as wire codes
    /// (`weft_proto::tls::cipher_name` gives the IANA names).
    pub client_ciphers: Vec<u16>,
    /// `Some(true)` once the handshake completed, `Some(false)` when it failed.
    pub established: Option<bool>,
    /// From the first handshake byte to completion (or failure), ns.
    pub handshake_ns: Option<u64>,
    /// Why the handshake failed, in words (`alert unknown_ca received`).
    pub failure: Option<String>,
    /// JA4 fingerprint of the ClientHello (`weft_proto::ja4`).
    pub ja4: Option<String>,
    /// JA4S fingerprint of the ServerHello.
    pub ja4s: Option<String>,
}

/// A TLS handshake finished or failed, as one process saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsHandshake {
    /// Wall-clock time the handshake finished or failed, Unix ns.
    pub timestamp_ns: u64,
    pub process: Arc<ProcessInfo>,
    pub flow: Option<Flow>,
    pub library: TlsLibrary,
    pub session: Arc<TlsSession>,
}

/// What the kernel tells about a connection's TLS handshake; consumed by the
/// session stage (`weft_core::tls::TlsSessions`), never shown by sinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsWire {
    /// Handshake bytes the library sent (`Direction::Write`) or received on
    /// the connection `cookie`, at `offset` of that direction's stream.
    Hello {
        cookie: u64,
        timestamp_ns: u64,
        direction: Direction,
        offset: u32,
        bytes: Vec<u8>,
    },
    /// A handshake function returned `value` (OpenSSL: 1 = done; GnuTLS: 0 =
    /// done; wolfSSL: 1 = done; negative: error or "call again").
    HandshakeReturn {
        timestamp_ns: u64,
        process: Arc<ProcessInfo>,
        flow: Flow,
        library: TlsLibrary,
        value: i64,
    },
    /// The library told the application the chosen ALPN protocol
    /// (`SSL_get0_alpn_selected`).
    Alpn { cookie: u64, protocol: String },
    /// The library's connection object was freed.
    Freed {
        timestamp_ns: u64,
        process: Arc<ProcessInfo>,
        flow: Flow,
        library: TlsLibrary,
    },
}

impl TlsWire {
    /// The connection the record is about.
    pub fn cookie(&self) -> u64 {
        match self {
            TlsWire::Hello { cookie, .. } | TlsWire::Alpn { cookie, .. } => *cookie,
            TlsWire::HandshakeReturn { flow, .. } | TlsWire::Freed { flow, .. } => flow.cookie,
        }
    }
}

/// Whether a [`Connection`] event reports the start, the end, or (not an
/// end) the counts so far of a connection still open (`--flow-update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPhase {
    Start,
    End,
    Update,
}

/// A TCP connection was established or closed (kernel `sock_ops`), or
/// existed when weft started (`seeded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Wall-clock time of the establishment, close, or (seeded) start of
    /// weft, Unix ns.
    pub timestamp_ns: u64,
    pub phase: ConnectionPhase,
    /// The connection predates weft (found at start).
    pub seeded: bool,
    /// The process that connected or accepted it, when known.
    pub process: Option<Arc<ProcessInfo>>,
    /// From the owner's side: role client = it connected.
    pub flow: Flow,
    /// The network namespace's cookie (`bpf_get_netns_cookie`).
    pub netns_cookie: u64,
    /// End and update: bytes the owner's socket sent (acknowledged by the
    /// peer), since the establishment (cumulative).
    pub bytes_sent: Option<u64>,
    /// End and update: bytes the owner's socket received.
    pub bytes_received: Option<u64>,
    /// End and update: smoothed round-trip time, microseconds.
    pub rtt_us: Option<u32>,
    /// End and update: time since establishment (unknown for seeded
    /// connections).
    pub duration_ns: Option<u64>,
    /// As [`TlsData::destination_domain`]: the name the host just resolved
    /// to the server's address, for connections this host opened.
    pub destination_domain: Option<Arc<str>>,
    /// End: library calls of the connection lost whole (records included)
    /// that no later call told, the owner's reads and writes (see
    /// [`TlsData::lost_before`]).
    pub lost_before: LostCalls,
    /// End: the highest client stream id of an HTTP/2 header block the
    /// kernel saw on the connection, its call delivered or lost (0: none,
    /// not followed): streams lost whole after the last block the decoder
    /// saw are counted up to it.
    pub h2_last_stream: u32,
}

impl Connection {
    /// Bytes sent by the source (client) and by the destination (server),
    /// ECS `source.bytes` / `destination.bytes`.
    pub fn source_destination_bytes(&self) -> (Option<u64>, Option<u64>) {
        match self.flow.role {
            Role::Server => (self.bytes_received, self.bytes_sent),
            Role::Client | Role::Unknown => (self.bytes_sent, self.bytes_received),
        }
    }
}

/// Everything that flows from capture to the sinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One TLS library call with its plaintext (a "capture" event).
    TlsData(TlsData),
    /// One decoded HTTP transaction.
    Http(Http),
    /// One decoded WebSocket message.
    WebSocket(WebSocket),
    /// weft lost data in the last period.
    Loss(Loss),
    /// A TLS handshake finished or failed.
    TlsHandshake(TlsHandshake),
    /// Handshake facts from the kernel for the session stage (not output).
    TlsWire(TlsWire),
    /// A TCP connection started or ended.
    Connection(Connection),
    /// A DNS query or answer.
    Dns(Dns),
    /// A flow of the packet path ended (`crate::packets`).
    PacketFlow(Box<crate::packets::PacketFlow>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(local: &str, lport: u16, remote: &str, rport: u16, role: Role) -> Flow {
        Flow {
            cookie: 1,
            local: Endpoint {
                ip: local.parse().expect("ip"),
                port: lport,
            },
            remote: Endpoint {
                ip: remote.parse().expect("ip"),
                port: rport,
            },
            role,
        }
    }

    /// Corelight's reference vectors (community-id-spec baseline), from
    /// either end of the connection.
    #[test]
    fn community_id_matches_the_reference_vectors() {
        for role in [Role::Client, Role::Server, Role::Unknown] {
            let f = flow("128.232.110.120", 34855, "66.35.250.204", 80, role);
            assert_eq!(f.community_id(), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
            let f = flow("66.35.250.204", 80, "128.232.110.120", 34855, role);
            assert_eq!(f.community_id(), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        }
        let f = flow(
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            63943,
            "2607:f8b0:400c:c03::1a",
            25,
            Role::Client,
        );
        assert_eq!(f.community_id(), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
    }

    /// An IPv4 connection on a dual-stack socket has the id of its IPv4
    /// packets.
    #[test]
    fn community_id_of_ipv4_mapped_addresses_is_the_ipv4_one() {
        let f = flow(
            "::ffff:128.232.110.120",
            34855,
            "::ffff:66.35.250.204",
            80,
            Role::Client,
        );
        assert_eq!(f.community_id(), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }
}
