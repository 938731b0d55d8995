//! Network namespaces and veth pairs the packet-path tests create (unique
//! names, deleted on drop, also when a test fails). Nothing here touches
//! the machine's own interfaces.

use std::process::{Command, Output};

use crate::{TestResult, require_root};

/// Run a command to completion; an error with its stderr when it fails.
pub fn sh(args: &[&str]) -> TestResult<Output> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(format!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out)
}

/// A network namespace (`ip netns add`), IPv6 off (no router or neighbour
/// solicitations on its links), `lo` up; deleted on drop, with the veths in
/// it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> TestResult<Netns> {
        require_root();
        sh(&["ip", "netns", "add", name])?;
        let ns = Netns { name: name.into() };
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        sh(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Run `args` inside the namespace to completion.
    pub fn exec(&self, args: &[&str]) -> TestResult<Output> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// One end of a veth pair: its namespace, name and address (`10.0.0.1/24`).
pub struct VethEnd<'a> {
    pub ns: &'a Netns,
    pub dev: &'a str,
    pub cidr: &'a str,
}

/// A veth pair between two namespaces, addressed and up, with MTU `mtu`.
pub fn veth(a: &VethEnd<'_>, b: &VethEnd<'_>, mtu: u32) -> TestResult {
    let mtu = mtu.to_string();
    sh(&[
        "ip", "link", "add", a.dev, "netns", &a.ns.name, "mtu", &mtu, "type", "veth", "peer",
        "name", b.dev, "netns", &b.ns.name, "mtu", &mtu,
    ])?;
    for e in [a, b] {
        sh(&["ip", "-n", &e.ns.name, "addr", "add", e.cidr, "dev", e.dev])?;
        sh(&["ip", "-n", &e.ns.name, "link", "set", e.dev, "up"])?;
    }
    Ok(())
}
