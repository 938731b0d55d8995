//! Names the host just resolved: address -> the name asked for, from the DNS
//! answers weft sees, so that a connection to that address carries
//! `destination.domain`.
//!
//! Host-wide (not per process): a name one process resolved through a
//! local cache (systemd-resolved, nscd) is the name the asking process
//! meant, and the resolver's own lookups are the same names. An entry lives
//! as long as the answer's TTL, at least [`MIN_TTL`] (an answer with TTL 0
//! is still what the next connect uses), at most [`MAX_TTL`]. Bounded:
//! [`MAX_ENTRIES`] addresses; when full, expired entries go first, then the
//! oldest insertion.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_proto::dns::{Message, RData};

/// Addresses remembered at most.
pub const MAX_ENTRIES: usize = 65_536;
/// Shortest life of an entry.
pub const MIN_TTL: Duration = Duration::from_secs(10);
/// Longest life of an entry.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// The map; owned by the reader thread (events are stamped in ring order).
#[derive(Default)]
pub struct Resolved {
    by_ip: HashMap<IpAddr, (Arc<str>, Instant)>,
    order: VecDeque<IpAddr>,
    /// Entries pushed out while still valid (table full).
    pub evicted: u64,
}

impl Resolved {
    /// Learn the addresses of an answer (`response` with A/AAAA records),
    /// under the name the question asked (not the CNAME target: that is
    /// the name the application used).
    pub fn learn(&mut self, m: &Message, now: Instant) {
        if !m.response || m.rcode != 0 {
            return;
        }
        let Some(q) = m.questions.first() else {
            return;
        };
        if q.name.is_empty() {
            return;
        }
        let name: Arc<str> = Arc::from(q.name.as_str());
        for a in &m.answers {
            let RData::Addr(ip) = a.data else { continue };
            let ttl = Duration::from_secs(u64::from(a.ttl)).clamp(MIN_TTL, MAX_TTL);
            self.insert(ip.to_canonical(), Arc::clone(&name), now + ttl, now);
        }
    }

    fn insert(&mut self, ip: IpAddr, name: Arc<str>, until: Instant, now: Instant) {
        if !self.by_ip.contains_key(&ip) {
            while self.by_ip.len() >= MAX_ENTRIES {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if let Some((_, t)) = self.by_ip.remove(&old)
                    && t > now
                {
                    self.evicted += 1;
                }
            }
            self.order.push_back(ip);
        }
        self.by_ip.insert(ip, (name, until));
    }

    /// The name `ip` was resolved from, while its answer is valid.
    pub fn name_of(&self, ip: IpAddr, now: Instant) -> Option<Arc<str>> {
        self.by_ip
            .get(&ip.to_canonical())
            .filter(|(_, t)| *t > now)
            .map(|(n, _)| Arc::clone(n))
    }

    /// Addresses remembered now (expired ones included until pushed out).
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_proto::dns::{Question, Record};

    fn answer(name: &str, ips: &[(&str, u32)]) -> Message {
        Message {
            id: 1,
            response: true,
            opcode: 0,
            rcode: 0,
            truncated: false,
            questions: vec![Question {
                name: name.into(),
                qtype: 1,
                qclass: 1,
            }],
            answers: ips
                .iter()
                .map(|(ip, ttl)| Record {
                    name: "cdn.example".into(),
                    rtype: 1,
                    class: 1,
                    ttl: *ttl,
                    data: RData::Addr(ip.parse().expect("ip")),
                })
                .collect(),
            answers_skipped: 0,
        }
    }

    #[test]
    fn names_live_as_long_as_their_ttl_within_bounds() {
        let mut r = Resolved::default();
        let t0 = Instant::now();
        r.learn(
            &answer("www.example", &[("10.0.0.1", 0), ("10.0.0.2", 600)]),
            t0,
        );
        let ip1: IpAddr = "10.0.0.1".parse().expect("ip");
        let ip2: IpAddr = "::ffff:10.0.0.2".parse().expect("ip");
        assert_eq!(r.name_of(ip1, t0).as_deref(), Some("www.example"));
        // TTL 0 still lives MIN_TTL; the mapped form finds the IPv4 entry.
        assert_eq!(r.name_of(ip1, t0 + Duration::from_secs(11)), None);
        assert_eq!(
            r.name_of(ip2, t0 + Duration::from_secs(599)).as_deref(),
            Some("www.example")
        );
        assert_eq!(r.name_of(ip2, t0 + Duration::from_secs(601)), None);
    }

    #[test]
    fn errors_and_queries_teach_nothing_and_the_table_is_bounded() {
        let mut r = Resolved::default();
        let t0 = Instant::now();
        let mut m = answer("a.example", &[("10.0.0.1", 60)]);
        m.rcode = 3;
        r.learn(&m, t0);
        m.rcode = 0;
        m.response = false;
        r.learn(&m, t0);
        assert!(r.is_empty());
        for i in 0..(MAX_ENTRIES + 10) as u32 {
            let ip = std::net::Ipv4Addr::from(i).to_string();
            r.learn(&answer("many.example", &[(&ip, 60)]), t0);
        }
        assert_eq!(r.len(), MAX_ENTRIES);
        assert_eq!(r.evicted, 10);
    }
}
