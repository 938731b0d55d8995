//! TLS hellos on the wire (issue 5): traffic that is only forwarded
//! through the host. Three network namespaces, client -- router -- server,
//! joined by two veth pairs, IP forwarding on in the router only; curl in
//! the client fetches a page from `openssl s_server` in the server. weft
//! watches only the router's two veths (`--interface`) and runs with
//! `--no-plaintext`: no socket on this host carries the connection through
//! the router, so the TLS facts on the router's flow events can only come
//! from the packets (tc.bpf.c's wire hello records).
//!
//! Ground truth: tcpdump on the router's client-side veth; the test takes
//! the raw ClientHello and ServerHello from that capture (tshark, joining
//! segments) and computes JA4/JA4S with the independent reference
//! (`weft_itest::ja4`, tests/py/ja4_ref.py), and the SNI tshark reads.

use std::time::Duration;

use serde_json::Value;
use weft_itest::ja4::{reference, server_names};
use weft_itest::netns::{Netns, VethEnd, sh, veth};
use weft_itest::tcpdump::Tcpdump;
use weft_itest::*;

const CLIENT_IP: &str = "10.78.1.2";
const ROUTER_C_IP: &str = "10.78.1.1";
const ROUTER_S_IP: &str = "10.78.2.1";
const SERVER_IP: &str = "10.78.2.2";

/// client (`{tag}c`) -- (`{tag}rc`) router (`{tag}rs`) -- (`{tag}s`) server.
/// Field order is drop order: every namespace (and so every veth) goes.
struct Routed {
    client: Netns,
    router: Netns,
    server: Netns,
    tag: String,
    rc: String,
    rs: String,
}

impl Routed {
    /// `client_mtu` on the client's link: a small one makes the client
    /// send its ClientHello in two segments (one packet each: the client's
    /// veth gets `gso_max_segs 1`, else the veth would hand the router one
    /// GSO packet holding both).
    fn new(client_mtu: u32) -> TestResult<Routed> {
        let tag = format!("wh{:06x}", rand_u64() & 0xff_ffff);
        let r = Routed {
            client: Netns::new(&format!("{tag}-c"))?,
            router: Netns::new(&format!("{tag}-r"))?,
            server: Netns::new(&format!("{tag}-s"))?,
            rc: format!("{tag}rc"),
            rs: format!("{tag}rs"),
            tag,
        };
        let (c, s) = (format!("{}c", r.tag), format!("{}s", r.tag));
        veth(
            &VethEnd {
                ns: &r.client,
                dev: &c,
                cidr: &format!("{CLIENT_IP}/24"),
            },
            &VethEnd {
                ns: &r.router,
                dev: &r.rc,
                cidr: &format!("{ROUTER_C_IP}/24"),
            },
            client_mtu,
        )?;
        veth(
            &VethEnd {
                ns: &r.router,
                dev: &r.rs,
                cidr: &format!("{ROUTER_S_IP}/24"),
            },
            &VethEnd {
                ns: &r.server,
                dev: &s,
                cidr: &format!("{SERVER_IP}/24"),
            },
            1500,
        )?;
        if client_mtu < 1500 {
            sh(&[
                "ip",
                "-n",
                &r.client.name,
                "link",
                "set",
                &c,
                "gso_max_segs",
                "1",
            ])?;
        }
        for (ns, via) in [(&r.client, ROUTER_C_IP), (&r.server, ROUTER_S_IP)] {
            sh(&["ip", "-n", &ns.name, "route", "add", "default", "via", via])?;
        }
        r.router.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        Ok(r)
    }
}

/// The flow event of the connection on `iface`: from the client to `port`.
fn flow_on<'a>(events: &'a [Value], iface: &str, port: u16) -> Option<&'a Value> {
    events.iter().find(|e| {
        field_str(e, "event.action") == Some("flow")
            && field_str(e, "source.ip") == Some(CLIENT_IP)
            && field_u64(e, "destination.port") == Some(u64::from(port))
            && (field_str(e, "observer.egress.interface.name") == Some(iface)
                || field_str(e, "observer.ingress.interface.name") == Some(iface))
    })
}

/// Frames of the capture whose ClientHello tshark had to join from
/// several segments.
fn joined_client_hellos(pcap: &std::path::Path) -> TestResult<usize> {
    let out = sh(&[
        "tshark",
        "-r",
        &pcap.to_string_lossy(),
        "-Y",
        "tls.handshake.type == 1 && tcp.reassembled.length",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ])?;
    Ok(String::from_utf8(out.stdout)?.lines().count())
}

fn one(tls_max: &str, client_mtu: u32, xdp: bool) -> TestResult {
    let r = Routed::new(client_mtu)?;
    let dir = TempDir::new("wirehello");
    let (cert, key) = make_cert(dir.path())?;
    let port = 30000 + (rand_u64() % 2000) as u16;
    let mut cmd = r.server.command("openssl");
    cmd.args(["s_server", "-accept", &format!("{SERVER_IP}:{port}")])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .args(["-www", "-alpn", "http/1.1"]);
    let server = Helper::spawn(cmd)?;
    loop {
        if server
            .read_line(Duration::from_secs(10))?
            .contains("ACCEPT")
        {
            break;
        }
    }
    let glob = format!("{}r*", r.tag);
    let mut args = vec!["--interface", glob.as_str(), "--no-plaintext"];
    if xdp {
        args.extend(["--xdp", "generic"]);
    }
    let weft = Weft::start(&args)?;
    let pcap = dir.path().join("rc.pcap");
    let tcpdump = Tcpdump::start_on(Some(&r.router.name), &r.rc, port, &pcap)?;
    let mut curl = r.client.command("curl");
    curl.args(["-sk", "--http1.1", "--tls-max", tls_max])
        // A name, so the ClientHello carries SNI (curl sends none for an IP).
        .args(["--resolve", &format!("weft.test:{port}:{SERVER_IP}")])
        .arg(format!("https://weft.test:{port}/"));
    let (_, body) = run_client(&mut curl, Duration::from_secs(30))?;
    assert!(
        String::from_utf8_lossy(&body).contains("s_server"),
        "s_server's page did not come back: {}",
        String::from_utf8_lossy(&body)
    );
    tcpdump.stop()?;
    let both = |e: &Value| {
        field_str(e, "event.action") == Some("flow")
            && field_u64(e, "destination.port") == Some(u64::from(port))
    };
    let seen = weft.wait_for(Duration::from_secs(15), |e| {
        both(e) && field_str(e, "observer.ingress.interface.name") == Some(&r.rs)
            || both(e) && field_str(e, "observer.egress.interface.name") == Some(&r.rs)
    });
    let run = weft.stop()?;
    assert!(run.success, "weft failed:\n{}", run.stderr);
    assert!(seen, "no flow event on {}:\n{}", r.rs, run.stderr);
    drop(server);
    // The exit summary counts the flows that got wire facts: this one, on
    // each of the router's two veths.
    assert!(
        run.stderr
            .contains(" flows reported (0 updates, 2 with TLS hellos)"),
        "{}",
        run.stderr
    );

    let (ja4, ja4s) = reference(&pcap)?;
    assert_eq!(ja4.len(), 1, "client hellos in the capture: {ja4:?}");
    assert_eq!(ja4s.len(), 1, "server hellos in the capture: {ja4s:?}");
    let version = if tls_max == "1.2" { "1.2" } else { "1.3" };
    assert!(
        ja4[0].starts_with(&format!("t{}d", version.replace('.', ""))),
        "{}",
        ja4[0]
    );
    assert_eq!(server_names(&pcap)?, vec!["weft.test".to_string()]);
    let joined = joined_client_hellos(&pcap)?;
    if client_mtu < 1000 {
        assert_eq!(joined, 1, "the ClientHello should span two segments");
    } else {
        assert_eq!(joined, 0, "the ClientHello should fit one segment");
    }

    for iface in [&r.rc, &r.rs] {
        let e = flow_on(&run.events, iface, port).ok_or_else(|| {
            format!(
                "no flow from {CLIENT_IP} to port {port} on {iface}:\n{}",
                run.stderr
            )
        })?;
        assert_eq!(
            field_str(e, "tls.client.ja4"),
            Some(ja4[0].as_str()),
            "{iface}: {e}"
        );
        assert_eq!(
            field_str(e, "tls.server.ja4s"),
            Some(ja4s[0].as_str()),
            "{iface}: {e}"
        );
        assert_eq!(
            field_str(e, "tls.client.server_name"),
            Some("weft.test"),
            "{e}"
        );
        assert_eq!(field_str(e, "tls.version"), Some(version), "{e}");
        assert_eq!(field_str(e, "weft.tls.source"), Some("wire"), "{e}");
        assert_eq!(
            field(e, "weft.tls.alpn_offered"),
            Some(&serde_json::json!(["http/1.1"])),
            "curl --http1.1 offers only http/1.1: {e}"
        );
        if version == "1.2" {
            // TLS 1.2 ServerHellos carry the chosen ALPN in the clear.
            assert_eq!(field_str(e, "tls.next_protocol"), Some("http/1.1"), "{e}");
        }
        // Forwarded: no socket of this host is on the connection.
        assert_eq!(field(e, "weft.flow.cookie"), None, "{e}");
        assert_eq!(
            field_str(e, "weft.netns.name"),
            Some(r.router.name.as_str())
        );
        if xdp {
            let hooks = field(e, "weft.packets.hooks").cloned().unwrap_or_default();
            assert_eq!(hooks, serde_json::json!(["tc-egress", "xdp"]), "{e}");
        }
    }
    Ok(())
}

#[test]
fn forwarded_tls13_flow_carries_ja4_ja4s_and_sni_from_the_wire() -> TestResult {
    one("1.3", 1500, false)
}

/// With `--xdp generic`: what the router receives is seen by XDP.
#[test]
fn forwarded_tls12_flow_carries_ja4_ja4s_sni_and_alpn_from_the_wire_with_xdp() -> TestResult {
    one("1.2", 1500, true)
}

/// MTU 400 on the client's link: curl's 517-byte TLS 1.3 ClientHello
/// crosses the router in two segments, which the kernel copies both and
/// user space joins.
#[test]
fn forwarded_tls13_client_hello_in_two_segments_is_joined() -> TestResult {
    one("1.3", 400, false)
}
