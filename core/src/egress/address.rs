//! Which kind of network an IP address belongs to, so outbound requests (webhooks, HTTP
//! upstreams) can be kept off the operator's own networks.
//!
//! Written out here rather than taken from `std`: `Ipv4Addr::is_global` and friends are still
//! unstable, and the stable predicates miss ranges that matter (CGNAT, benchmarking, the
//! IPv4 addresses hidden in IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 addresses).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kind of an address, as far as outbound requests care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Reachable on the public Internet: always allowed.
    Global,
    /// 127.0.0.0/8, ::1: this host.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 unique-local fc00::/7 and the old
    /// site-local fec0::/10, local-use NAT64 64:ff9b:1::/48.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT (RFC 6598): private to a provider's network.
    Shared,
    /// 169.254.0.0/16, fe80::/10; cloud metadata services (169.254.169.254) live here.
    LinkLocal,
    /// 0.0.0.0/8, ::: "this host" (connecting to 0.0.0.0 reaches the loopback on Linux).
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Everything else that is not routable on the Internet: 240/4, 192.0.0/24, 198.18/15
    /// (benchmarking), 192.88.99/24, 100::/64 (discard), 2001::/23 (IETF protocol
    /// assignments, Teredo included), IPv4-compatible ::a.b.c.d, unassigned IPv6 space.
    Reserved,
}

impl AddressClass {
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Global => "global",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::Shared => "shared (carrier-grade NAT)",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The class of `ip`. IPv6 forms that carry an IPv4 address a host would actually reach
/// (IPv4-mapped, NAT64, 6to4) are classed by that address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

pub fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, Shared),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, len, _)| in_v4(ip, *net, *len))
        .map_or(Global, |(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// The IPv4 address in the low 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from(u128::from(ip) as u32)
}

pub fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    // ::ffff:a.b.c.d reaches a.b.c.d.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // ::a.b.c.d (deprecated IPv4-compatible): never legitimate; a forbidden embedded address
    // says which rule it would dodge.
    if in_v6(ip, [0; 8], 96) {
        return match classify_v4(low_v4(ip)) {
            Global => Reserved,
            class => class,
        };
    }
    // NAT64 (64:ff9b::/96) reaches the embedded address through the translator.
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return classify_v4(low_v4(ip));
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        let v4 = Ipv4Addr::from((u128::from(ip) >> 80) as u32);
        return classify_v4(v4);
    }
    const TABLE: &[([u16; 8], u32, AddressClass)] = &[
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Private),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Reserved),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Private),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Private),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
    ];
    if let Some((_, _, class)) = TABLE.iter().find(|(net, len, _)| in_v6(ip, *net, *len)) {
        return *class;
    }
    // Only 2000::/3 is allocated for global unicast; the rest is unassigned or reserved.
    if in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        Global
    } else {
        Reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn ipv4_ranges() {
        for (ip, want) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("1.1.1.1", Global),
            ("8.8.8.8", Global),
            ("9.255.255.255", Global),
            ("10.0.0.0", Private),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("11.0.0.0", Global),
            ("100.63.255.255", Global),
            ("100.64.0.0", Shared),
            ("100.127.255.255", Shared),
            ("100.128.0.0", Global),
            ("126.255.255.255", Global),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("128.0.0.0", Global),
            ("169.253.255.255", Global),
            ("169.254.0.1", LinkLocal),
            ("169.254.169.254", LinkLocal),
            ("169.255.0.0", Global),
            ("172.15.255.255", Global),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Global),
            ("192.0.0.8", Reserved),
            ("192.0.2.1", Documentation),
            ("192.0.3.0", Global),
            ("192.88.99.1", Reserved),
            ("192.167.255.255", Global),
            ("192.168.0.1", Private),
            ("192.168.255.255", Private),
            ("192.169.0.0", Global),
            ("198.17.255.255", Global),
            ("198.18.0.0", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.0", Global),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("223.255.255.255", Global),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        for (ip, want) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::2", Unspecified),
            ("2606:4700:4700::1111", Global),
            ("2a00:1450:4007:80e::200e", Global),
            ("fc00::1", Private),
            ("fd00::1", Private),
            ("fdff:ffff::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("ff05::2", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", Reserved),
            ("2001:1ff::1", Reserved),
            ("100::1", Reserved),
            ("64:ff9b:1::1", Private),
            ("4000::1", Reserved),
            ("1::1", Reserved),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    /// IPv6 spellings of IPv4 addresses are classed by the IPv4 address they reach.
    #[test]
    fn ipv4_in_ipv6_forms() {
        for (ip, want) in [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:100.64.0.1", Shared),
            ("::ffff:8.8.8.8", Global),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("::169.254.169.254", LinkLocal),
            ("::8.8.8.8", Reserved),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::8.8.8.8", Global),
            ("2002:7f00:1::", Loopback),
            ("2002:a00:1::1", Private),
            ("2002:a9fe:a9fe::", LinkLocal),
            ("2002:808:808::1", Global),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }
}
