//! The IP allow-list: which peer addresses may connect at all.
//!
//! Entries are CIDR networks (`10.0.0.0/8`, `2001:db8::/32`) or bare addresses
//! (`192.0.2.7`, `::1`, a /32 or /128). An IPv4 peer that reaches an IPv6 socket
//! arrives as an IPv4-mapped address (`::ffff:192.0.2.7`) and is matched as the
//! IPv4 address it is. An empty list allows everyone.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// An IP network: an address and a prefix length (`192.0.2.0/24`, `::1/128`),
/// with the bits past the prefix cleared. The arithmetic is the `ipnet` crate's;
/// this type adds bare addresses and IPv4-mapped peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

/// Why an allow-list entry is not an IP network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadIpNet {
    entry: String,
    reason: &'static str,
}

impl fmt::Display for BadIpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an IP network ({}); write an address or CIDR such as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
            self.entry, self.reason
        )
    }
}

impl std::error::Error for BadIpNet {}

impl IpNet {
    /// The network of `addr` with `prefix` leading bits; `None` if the prefix is
    /// longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        ipnet::IpNet::new(addr, prefix).ok().map(|net| Self(net.trunc()))
    }

    /// Is `ip` inside this network? IPv4-mapped IPv6 addresses also match as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip) || self.0.contains(&ip.to_canonical())
    }
}

/// May a peer at `ip` connect? Yes when the list is empty or any entry contains it.
pub fn allowed(list: &[IpNet], ip: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|net| net.contains(ip))
}

impl FromStr for IpNet {
    type Err = BadIpNet;

    fn from_str(s: &str) -> Result<Self, BadIpNet> {
        let bad = |reason| BadIpNet { entry: s.to_string(), reason };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            // Digits only: `u8::from_str` would also take "+8".
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| bad("the prefix length is not a number"))?
            }
            Some(_) => return Err(bad("the prefix length is not a number")),
        };
        if prefix > bits {
            return Err(bad(if bits == 32 {
                "an IPv4 prefix length is at most 32"
            } else {
                "an IPv6 prefix length is at most 128"
            }));
        }
        Self::new(addr, prefix).ok_or_else(|| bad("the prefix length is too long"))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_networks() {
        let n = net("10.1.0.0/16");
        assert!(n.contains(ip("10.1.0.0")));
        assert!(n.contains(ip("10.1.255.255")));
        assert!(!n.contains(ip("10.2.0.0")));
        assert!(!n.contains(ip("9.255.255.255")));
        // Host bits in the entry are ignored, as routers do.
        assert_eq!(net("10.1.2.3/16"), n);
        assert_eq!(net("10.1.2.3/16").to_string(), "10.1.0.0/16");
        let odd = net("192.168.1.128/25");
        assert!(odd.contains(ip("192.168.1.200")));
        assert!(!odd.contains(ip("192.168.1.127")));
    }

    #[test]
    fn single_hosts_and_everything() {
        let host = net("127.0.0.1/32");
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        assert_eq!(net("127.0.0.1"), host);
        let all4 = net("0.0.0.0/0");
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(all4.contains(ip("0.0.0.0")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let all6 = net("::/0");
        assert!(all6.contains(ip("2001:db8::1")));
        assert!(all6.contains(ip("::1")));
        let one6 = net("::1/128");
        assert!(one6.contains(ip("::1")));
        assert!(!one6.contains(ip("::2")));
        assert_eq!(net("::1"), one6);
    }

    #[test]
    fn ipv6_networks() {
        let n = net("2001:db8:abcd::/48");
        assert!(n.contains(ip("2001:db8:abcd:1::5")));
        assert!(!n.contains(ip("2001:db8:abce::1")));
        assert!(!n.contains(ip("10.0.0.1")));
        let odd = net("fe80::/10");
        assert!(odd.contains(ip("febf::1")));
        assert!(!odd.contains(ip("fec0::1")));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_entries() {
        let n = net("192.0.2.0/24");
        assert!(n.contains(ip("::ffff:192.0.2.9")));
        assert!(!n.contains(ip("::ffff:192.0.3.9")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        // An entry written in the mapped form matches both spellings too.
        let mapped = net("::ffff:192.0.2.0/120");
        assert!(mapped.contains(ip("::ffff:192.0.2.9")));
        // Not an IPv4-compatible address (::a.b.c.d is not mapped).
        assert!(!n.contains(ip("::192.0.2.9")));
    }

    #[test]
    fn lists() {
        let list = [net("127.0.0.0/8"), net("::1/128")];
        assert!(allowed(&list, ip("127.9.9.9")));
        assert!(allowed(&list, ip("::1")));
        assert!(allowed(&list, ip("::ffff:127.0.0.1")));
        assert!(!allowed(&list, ip("192.0.2.1")));
        assert!(allowed(&[], ip("192.0.2.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "",
            "/",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.256",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/0008",
            "fe80::1%eth0",
        ] {
            let e = bad.parse::<IpNet>().expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert!(net(" 10.0.0.0/8 ").contains(ip("10.1.1.1")));
        let err = "10.0.0.0/40".parse::<IpNet>().unwrap_err().to_string();
        assert!(err.contains("at most 32"), "{err}");
    }

    #[test]
    fn deserializes_from_strings() {
        #[derive(Deserialize)]
        struct F {
            allow_ips: Vec<IpNet>,
        }
        let f: F = toml::from_str(r#"allow_ips = ["10.0.0.0/8", "::1"]"#).unwrap();
        assert_eq!(f.allow_ips, [net("10.0.0.0/8"), net("::1/128")]);
        let e = toml::from_str::<F>(r#"allow_ips = ["10.0.0.0/8", "10.0.0.0/99"]"#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"10.0.0.0/99\""), "{e}");
    }
}
