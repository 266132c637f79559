use super::*;

/// One row per entry of the IANA Special-Purpose Address Registries (see the module docs), plus
/// multicast and the addresses on either side of a block's edges. `None`: a delivery may go
/// there; `Some(name)`: refused, named so.
const IPV4: &[(&str, Option<&str>)] = &[
    // 0.0.0.0/8 "this network", and 0.0.0.0/32 "this host on this network".
    ("0.0.0.0", Some("\"this network\"")),
    ("0.255.255.255", Some("\"this network\"")),
    // 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 private-use.
    ("10.0.0.0", Some("private-use")),
    ("10.255.255.255", Some("private-use")),
    ("172.16.0.1", Some("private-use")),
    ("172.31.255.255", Some("private-use")),
    ("192.168.1.1", Some("private-use")),
    // 100.64.0.0/10 shared address space.
    (
        "100.64.0.1",
        Some("shared address space (carrier-grade NAT)"),
    ),
    (
        "100.127.255.255",
        Some("shared address space (carrier-grade NAT)"),
    ),
    // 127.0.0.0/8 loopback.
    ("127.0.0.1", Some("loopback")),
    ("127.255.255.254", Some("loopback")),
    // 169.254.0.0/16 link-local, with the cloud metadata service.
    ("169.254.169.254", Some("link-local")),
    // 192.0.0.0/24 IETF protocol assignments and its entries: 192.0.0.0/29 IPv4 service
    // continuity (DS-Lite), 192.0.0.8 IPv4 dummy, 192.0.0.9 PCP anycast and 192.0.0.10 TURN
    // anycast (both globally reachable per IANA, refused by decision), 192.0.0.170 and
    // 192.0.0.171 NAT64/DNS64 discovery.
    ("192.0.0.1", Some("IETF protocol assignments")),
    ("192.0.0.8", Some("IETF protocol assignments")),
    ("192.0.0.9", Some("IETF protocol assignments")),
    ("192.0.0.10", Some("IETF protocol assignments")),
    ("192.0.0.170", Some("IETF protocol assignments")),
    ("192.0.0.171", Some("IETF protocol assignments")),
    ("192.0.0.255", Some("IETF protocol assignments")),
    // Documentation: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24.
    ("192.0.2.1", Some("documentation (TEST-NET-1)")),
    ("198.51.100.7", Some("documentation (TEST-NET-2)")),
    ("203.0.113.255", Some("documentation (TEST-NET-3)")),
    // Globally reachable per IANA, refused by decision: AS112, AMT, AS112 direct delegation.
    ("192.31.196.1", Some("AS112")),
    ("192.52.193.1", Some("AMT")),
    ("192.175.48.1", Some("AS112 direct delegation")),
    // 192.88.99.0/24 deprecated 6to4 relay anycast.
    ("192.88.99.1", Some("deprecated 6to4 relay anycast")),
    // 198.18.0.0/15 benchmarking.
    ("198.18.0.1", Some("benchmarking")),
    ("198.19.255.255", Some("benchmarking")),
    // 224.0.0.0/4 multicast (IANA multicast registry).
    ("224.0.0.1", Some("multicast")),
    ("239.255.255.255", Some("multicast")),
    // 240.0.0.0/4 reserved, and 255.255.255.255/32 limited broadcast.
    ("240.0.0.1", Some("reserved")),
    ("255.255.255.254", Some("reserved")),
    ("255.255.255.255", Some("reserved")),
    // Public, some just outside a block's edges.
    ("1.1.1.1", None),
    ("8.8.8.8", None),
    ("93.184.216.34", None),
    ("1.0.0.0", None),
    ("9.255.255.255", None),
    ("11.0.0.0", None),
    ("100.63.255.255", None),
    ("100.128.0.0", None),
    ("126.255.255.255", None),
    ("128.0.0.0", None),
    ("169.253.255.255", None),
    ("169.255.0.0", None),
    ("172.15.255.255", None),
    ("172.32.0.0", None),
    ("191.255.255.255", None),
    ("192.0.1.0", None),
    ("192.0.3.0", None),
    ("192.167.255.255", None),
    ("192.169.0.0", None),
    ("198.17.255.255", None),
    ("198.20.0.0", None),
    ("223.255.255.255", None),
];

const IPV6: &[(&str, Option<&str>)] = &[
    // ::1/128 loopback, ::/128 unspecified.
    ("::1", Some("loopback")),
    ("::", Some("unspecified")),
    // ::ffff:0:0/96 IPv4-mapped: judged by the IPv4 address.
    ("::ffff:127.0.0.1", Some("loopback")),
    ("::ffff:10.1.2.3", Some("private-use")),
    ("::ffff:169.254.169.254", Some("link-local")),
    ("::ffff:1.1.1.1", None),
    // IPv4-compatible (deprecated) and IPv4-translated: refused whatever they carry.
    ("::127.0.0.1", Some("IPv4-compatible (deprecated)")),
    ("::1.1.1.1", Some("IPv4-compatible (deprecated)")),
    ("::ffff:0:127.0.0.1", Some("IPv4-translated")),
    ("::ffff:0:1.1.1.1", Some("IPv4-translated")),
    // 64:ff9b::/96 NAT64 well-known prefix (globally reachable per IANA): judged by the IPv4
    // address, so a public one is allowed.
    ("64:ff9b::127.0.0.1", Some("loopback")),
    ("64:ff9b::10.0.0.1", Some("private-use")),
    ("64:ff9b::169.254.169.254", Some("link-local")),
    ("64:ff9b::192.0.0.9", Some("IETF protocol assignments")),
    ("64:ff9b::1.1.1.1", None),
    // 64:ff9b:1::/48 local-use translation: refused whatever it carries.
    (
        "64:ff9b:1::10.0.0.1",
        Some("local-use IPv4/IPv6 translation"),
    ),
    (
        "64:ff9b:1::1.1.1.1",
        Some("local-use IPv4/IPv6 translation"),
    ),
    (
        "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        Some("local-use IPv4/IPv6 translation"),
    ),
    // 100::/64 discard-only, 100:0:0:1::/64 dummy prefix.
    ("100::1", Some("discard-only")),
    ("100:0:0:1::1", Some("dummy prefix")),
    // 2001::/23 IETF protocol assignments and its entries.
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("Teredo")),
    ("2001:1::1", Some("PCP anycast")),
    ("2001:1::2", Some("TURN anycast")),
    ("2001:1::3", Some("DNS-SD SRP anycast")),
    ("2001:1::4", Some("IETF protocol assignments")),
    ("2001:2::1", Some("benchmarking")),
    ("2001:3::1", Some("AMT")),
    ("2001:4:112::1", Some("AS112-v6")),
    ("2001:10::1", Some("ORCHID (deprecated)")),
    ("2001:20::1", Some("ORCHIDv2")),
    ("2001:2f:ffff::1", Some("ORCHIDv2")),
    ("2001:30::1", Some("drone remote ID (DET)")),
    (
        "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
        Some("IETF protocol assignments"),
    ),
    // Documentation: 2001:db8::/32 and 3fff::/20.
    ("2001:db8::1", Some("documentation")),
    ("3fff::1", Some("documentation")),
    ("3fff:fff:ffff::1", Some("documentation")),
    // 2002::/16 6to4: judged by the IPv4 address in bits 16-47.
    ("2002:7f00:1::1", Some("loopback")),
    ("2002:c0a8:101::1", Some("private-use")),
    ("2002:a9fe:a9fe::", Some("link-local")),
    ("2002:808:808::1", None),
    // 2620:4f:8000::/48 AS112 direct delegation (globally reachable, refused by decision).
    ("2620:4f:8000::1", Some("AS112 direct delegation")),
    // 5f00::/16 SRv6 SIDs.
    ("5f00::1", Some("SRv6 SIDs")),
    // fc00::/7 unique local (with the EC2 metadata service's fd00:ec2::254).
    ("fc00::1", Some("unique local")),
    ("fd00:ec2::254", Some("unique local")),
    // fe80::/10 link-local; fec0::/10 deprecated site-local; ff00::/8 multicast.
    ("fe80::1", Some("link-local")),
    ("febf:ffff::1", Some("link-local")),
    ("fec0::1", Some("site-local (deprecated)")),
    ("ff02::1", Some("multicast")),
    ("ff0e::1", Some("multicast")),
    // Outside 2000::/3: reserved or unassigned.
    ("1::1", Some("reserved (outside 2000::/3)")),
    ("4000::1", Some("reserved (outside 2000::/3)")),
    ("e000::1", Some("reserved (outside 2000::/3)")),
    // Public, some just outside a block's edges.
    ("2606:4700:4700::1111", None),
    ("2001:4860:4860::8888", None),
    ("2001:200::1", None),
    ("2001:db7:ffff::1", None),
    ("2001:db9::1", None),
    ("2003::1", None),
    ("2620:4f:7fff::1", None),
    ("2620:4f:8001::1", None),
    ("3fff:1000::1", None),
    ("3ffe::1", None),
];

#[test]
fn every_special_purpose_block_is_judged() {
    for (table, name) in [(IPV4, "IPv4"), (IPV6, "IPv6")] {
        for (ip, expected) in table {
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert_eq!(non_public_range(ip), *expected, "{name} {ip}");
            assert_eq!(is_public(ip), expected.is_none(), "{name} {ip}");
        }
    }
}

#[test]
fn embedded_ipv4_forms() {
    let cases: [(&str, Option<&str>); 6] = [
        ("::ffff:10.0.0.1", Some("10.0.0.1")),
        ("64:ff9b::a00:1", Some("10.0.0.1")),
        ("2002:a00:1:5::1", Some("10.0.0.1")),
        // Not looked through: refused as a whole instead.
        ("::10.0.0.1", None),
        ("64:ff9b:1::a00:1", None),
        ("2001:db8::a00:1", None),
    ];
    for (ip, v4) in cases {
        let v4: Option<Ipv4Addr> = v4.map(|a| a.parse().unwrap());
        assert_eq!(embedded_v4(ip.parse().unwrap()), v4, "{ip}");
    }
}

#[test]
fn ip_literals_in_urls() {
    let cases: [(&str, Option<&str>); 6] = [
        ("http://127.0.0.1:9000/hook", Some("127.0.0.1")),
        // The URL parser normalises the odd IPv4 spellings.
        ("http://0x7f.1/hook", Some("127.0.0.1")),
        ("http://2130706433/", Some("127.0.0.1")),
        (
            "https://[::ffff:169.254.169.254]/",
            Some("::ffff:169.254.169.254"),
        ),
        ("http://localhost:9000/", None),
        ("https://hooks.example.com/", None),
    ];
    for (url, ip) in cases {
        let ip: Option<IpAddr> = ip.map(|a| a.parse().unwrap());
        assert_eq!(ip_literal(&url::Url::parse(url).unwrap()), ip, "{url}");
    }
}

#[test]
fn refused_literals() {
    let cases: [(&str, Option<(&str, &str)>); 5] = [
        ("http://127.0.0.1:9/", Some(("127.0.0.1", "loopback"))),
        (
            "http://[::ffff:a00:1]/",
            Some(("::ffff:10.0.0.1", "private-use")),
        ),
        ("https://1.1.1.1/", None),
        ("http://localhost/", None),
        ("not a url", None),
    ];
    for (url, expected) in cases {
        let expected = expected.map(|(ip, range)| (ip.parse::<IpAddr>().unwrap(), range));
        assert_eq!(refused_literal(url), expected, "{url}");
    }
}
