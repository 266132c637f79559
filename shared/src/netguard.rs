//! Which IP addresses a delivery may go to: the address policy of the SSRF guard (subscriber
//! URLs are user input and must not reach loopback, internal networks or the cloud metadata
//! service). Used by the delivery client's resolver and IP-literal check and by the admin API's
//! check of subscription URLs.
//!
//! The ranges are those of the IANA IPv4 and IPv6 Special-Purpose Address Registries
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry/>,
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/>, contents as of 2025-10), plus
//! multicast, deprecated site-local IPv6 and, for IPv6, everything outside the global unicast
//! space 2000::/3 (IANA IPv6 Address Space registry): so a block IANA adds later outside
//! 2000::/3 is refused without a code change.
//!
//! Blocks the registries mark "globally reachable" are refused all the same, except the NAT64
//! well-known prefix (see [`embedded_v4`]): each is an anycast or infrastructure service (PCP
//! and TURN anycast, AMT relays, the AS112 DNS sinks) or an identifier space (ORCHIDv2, drone
//! DETs), never a webhook receiver. Anycast service addresses are the riskier kind: they are
//! answered by the nearest operator's box, often inside the sender's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8, name: &'static str) -> (Ipv4Net, &'static str) {
    (Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len), name)
}

const fn v6(segments: [u16; 8], len: u8, name: &'static str) -> (Ipv6Net, &'static str) {
    let [a, b, c, d, e, f, g, h] = segments;
    (
        Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len),
        name,
    )
}

/// Non-public IPv4 ranges; the first that contains an address names it.
const V4_BLOCKED: &[(Ipv4Net, &str)] = &[
    v4(0, 0, 0, 0, 8, "\"this network\""),
    v4(10, 0, 0, 0, 8, "private-use"),
    v4(
        100,
        64,
        0,
        0,
        10,
        "shared address space (carrier-grade NAT)",
    ),
    v4(127, 0, 0, 0, 8, "loopback"),
    v4(169, 254, 0, 0, 16, "link-local"),
    v4(172, 16, 0, 0, 12, "private-use"),
    // Globally reachable per IANA: PCP (192.0.0.9) and TURN (192.0.0.10) anycast. Refused with
    // the rest of the block (see the module docs).
    v4(192, 0, 0, 0, 24, "IETF protocol assignments"),
    v4(192, 0, 2, 0, 24, "documentation (TEST-NET-1)"),
    // Globally reachable per IANA; refused: DNS sinks for reverse lookups of private space.
    v4(192, 31, 196, 0, 24, "AS112"),
    // Globally reachable per IANA; refused: multicast tunnelling relays (anycast).
    v4(192, 52, 193, 0, 24, "AMT"),
    v4(192, 88, 99, 0, 24, "deprecated 6to4 relay anycast"),
    v4(192, 168, 0, 0, 16, "private-use"),
    // Globally reachable per IANA; refused: AS112 again (direct delegation).
    v4(192, 175, 48, 0, 24, "AS112 direct delegation"),
    v4(198, 18, 0, 0, 15, "benchmarking"),
    v4(198, 51, 100, 0, 24, "documentation (TEST-NET-2)"),
    v4(203, 0, 113, 0, 24, "documentation (TEST-NET-3)"),
    v4(224, 0, 0, 0, 4, "multicast"),
    // Includes the limited broadcast address 255.255.255.255.
    v4(240, 0, 0, 0, 4, "reserved"),
];

/// Non-public IPv6 ranges, more specific blocks first; the first that contains an address names
/// it. Addresses carrying an IPv4 address the policy looks through are handled before this
/// table ([`embedded_v4`]).
const V6_BLOCKED: &[(Ipv6Net, &str)] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"),
    // Deprecated (RFC 4291) and never routed, whatever IPv4 address it carries.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible (deprecated)"),
    v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96, "IPv4-translated"),
    // A site's own translator (RFC 8215): not globally reachable.
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use IPv4/IPv6 translation",
    ),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "dummy prefix"),
    // 2001::/23, IETF protocol assignments, entry by entry, then the rest of the block.
    // Teredo: tunnelled through relays to an obfuscated IPv4 address.
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo"),
    // Globally reachable per IANA: PCP, TURN and DNS-SD SRP anycast (see the module docs).
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, "PCP anycast"),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, "TURN anycast"),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, "DNS-SD SRP anycast"),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "benchmarking"),
    // Globally reachable per IANA; refused as AMT and AS112 are for IPv4.
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT"),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "AS112-v6"),
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "ORCHID (deprecated)"),
    // Globally reachable per IANA; refused: identifiers, not locators.
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2"),
    v6(
        [0x2001, 0x30, 0, 0, 0, 0, 0, 0],
        28,
        "drone remote ID (DET)",
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments",
    ),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
    // Globally reachable per IANA; refused: AS112 direct delegation.
    v6(
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
        "AS112 direct delegation",
    ),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "SRv6 SIDs"),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (deprecated)"),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
];

/// IANA's global unicast space; every other IPv6 address is reserved or special.
const V6_GLOBAL_UNICAST: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// The IPv4 address an IPv6 address stands for, in the forms judged by that IPv4 address:
/// IPv4-mapped (`::ffff:a.b.c.d`, the socket API's form of an IPv4 peer), the NAT64 well-known
/// prefix (`64:ff9b::a.b.c.d`: on a NAT64 network this is how public IPv4 hosts are reached;
/// globally reachable per IANA, and a translator forwards to exactly the embedded address) and
/// 6to4 (`2002:AABB:CCDD::/48` for `A.B.C.D`, relayed to that IPv4 address).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let [.., hi, lo] = s;
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if nat64 {
        return Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    None
}

/// The non-public range `ip` lies in (a short name for messages), or `None` when a delivery
/// may go there.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4_BLOCKED
            .iter()
            .find(|(net, _)| net.contains(&v4))
            .map(|(_, name)| *name),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return non_public_range(IpAddr::V4(v4));
            }
            V6_BLOCKED
                .iter()
                .find(|(net, _)| net.contains(&v6))
                .map(|(_, name)| *name)
                .or_else(|| {
                    (!V6_GLOBAL_UNICAST.contains(&v6)).then_some("reserved (outside 2000::/3)")
                })
        }
    }
}

/// Whether an address may be the target of a delivery while the SSRF guard is on.
pub fn is_public(ip: IpAddr) -> bool {
    non_public_range(ip).is_none()
}

/// The host of `url` when it is an IP literal (`http://10.0.0.1/`, `http://[::1]/`; the URL
/// parser has already normalised forms such as `0x7f.1`). Such hosts never reach a resolver.
pub fn ip_literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The IP literal host of the URL `raw` with the non-public range it lies in, when the guard
/// refuses it. `None` for a public literal, a host name or an unparsable URL.
pub fn refused_literal(raw: &str) -> Option<(IpAddr, &'static str)> {
    let ip = ip_literal(&url::Url::parse(raw).ok()?)?;
    non_public_range(ip).map(|range| (ip, range))
}

#[cfg(test)]
mod tests;
