//! The per-address connection limit: which peers count together, which are
//! exempt, and how many connections each group has open.
//!
//! One person on one machine, or one attacker on one host, should not be
//! able to take the server's connections from everyone else, so each source
//! may hold at most [`MAX_PER_ADDRESS`] at once (ergo's default). A source
//! is an IPv4 address, or an IPv6 /64 ([`IPV6_GROUP_PREFIX_BITS`]): one
//! IPv6 host is routinely given a whole /64 and can pick any address in it,
//! so counting single IPv6 addresses would limit nothing. An IPv4-mapped
//! IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener on `::` sees
//! for an IPv4 peer) is its IPv4 address, so a peer counts the same on
//! either kind of listener. Loopback is exempt unless the operator asks
//! (as in ergo): local tools and load tests open many connections from the
//! one machine whose owner already controls the server.
//!
//! This module only counts; it holds no socket and reads no clock. The
//! accept loop asks it before admitting a socket and releases the count
//! when that connection's task ends.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Connections one source may have open at once: ergo's default of 16,
/// many more than one person's clients need, and few enough that 128
/// sources are needed to fill the server's 2,048 sockets.
pub const MAX_PER_ADDRESS: usize = 16;

/// IPv6 addresses that share this many leading bits count as one source:
/// a /64, the smallest prefix a site or a host is normally assigned.
pub(crate) const IPV6_GROUP_PREFIX_BITS: u32 = 64;

/// Peers that count as one source. Shown as an IPv4 address or an IPv6
/// prefix (`2001:db8::/64`) in the refusal's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum AddressGroup {
    /// One IPv4 address (also reached as IPv4-mapped IPv6).
    V4(Ipv4Addr),
    /// One IPv6 /64: the address with its last 64 bits cleared.
    V6(Ipv6Addr),
}

impl AddressGroup {
    /// The source `ip` belongs to.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressGroup::V4(v4),
            IpAddr::V6(v6) => {
                let mask = u128::MAX << (128 - IPV6_GROUP_PREFIX_BITS);
                AddressGroup::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

impl fmt::Display for AddressGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressGroup::V4(v4) => write!(f, "{v4}"),
            AddressGroup::V6(net) => write!(f, "{net}/{IPV6_GROUP_PREFIX_BITS}"),
        }
    }
}

/// The operator's settings: how many per source, and whether loopback
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddressLimit {
    /// Connections one source may have open; 0 turns the limit off.
    pub max_per_address: usize,
    /// Whether loopback peers are limited too.
    pub limit_loopback: bool,
}

impl AddressLimit {
    /// The group `ip` is counted in, or `None` if the limit does not apply
    /// to it (it is off, or `ip` is loopback and loopback is exempt).
    pub(crate) fn group_for(&self, ip: IpAddr) -> Option<AddressGroup> {
        (self.max_per_address > 0 && !is_exempt(ip, self.limit_loopback))
            .then(|| AddressGroup::of(ip))
    }
}

/// Whether `ip` is exempt from the per-source limits (this one and the
/// connection rate, [`super::connect_rate`]): loopback is, unless the
/// operator asked for `limit_loopback`.
pub(crate) fn is_exempt(ip: IpAddr, limit_loopback: bool) -> bool {
    ip.to_canonical().is_loopback() && !limit_loopback
}

/// The connections each source has open.
#[derive(Debug, Default)]
pub(crate) struct AddressCounts {
    /// Connections open per source; a source with none has no entry.
    open: BTreeMap<AddressGroup, usize>,
}

impl AddressCounts {
    /// Counts a new connection from `ip` if the limit allows it: `Ok` with
    /// the group to [`release`](Self::release) when it ends (`None` if it
    /// is not counted), or `Err` with the group that is full.
    pub(crate) fn admit(
        &mut self,
        limit: &AddressLimit,
        ip: IpAddr,
    ) -> Result<Option<AddressGroup>, AddressGroup> {
        let Some(group) = limit.group_for(ip) else {
            return Ok(None);
        };
        let open = self.open.entry(group).or_default();
        if *open >= limit.max_per_address {
            return Err(group);
        }
        *open += 1;
        Ok(Some(group))
    }

    /// A counted connection from `group` has ended.
    pub(crate) fn release(&mut self, group: AddressGroup) {
        if let Some(open) = self.open.get_mut(&group) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.open.remove(&group);
            }
        }
    }

    /// Connections `group` has open.
    #[cfg(test)]
    fn open(&self, group: AddressGroup) -> usize {
        self.open.get(&group).copied().unwrap_or(0)
    }

    /// Sources with a connection open.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const DEFAULT: AddressLimit = AddressLimit {
        max_per_address: MAX_PER_ADDRESS,
        limit_loopback: false,
    };

    #[test]
    fn ipv6_addresses_are_grouped_per_64() {
        let a = AddressGroup::of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
        let b = AddressGroup::of(ip("2001:db8:1:2::1"));
        let c = AddressGroup::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b, "same /64");
        assert_ne!(a, c, "next /64");
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_addresses_are_their_own_group_and_mapped_ones_are_ipv4() {
        let plain = AddressGroup::of(ip("192.0.2.7"));
        assert_eq!(plain, AddressGroup::of(ip("::ffff:192.0.2.7")));
        assert_ne!(plain, AddressGroup::of(ip("192.0.2.8")));
        assert_eq!(plain.to_string(), "192.0.2.7");
        // IPv4-compatible (deprecated) and NAT64 forms are plain IPv6.
        for other in ["::192.0.2.7", "64:ff9b::192.0.2.7"] {
            assert!(
                matches!(AddressGroup::of(ip(other)), AddressGroup::V6(_)),
                "{other}"
            );
        }
    }

    #[test]
    fn loopback_is_exempt_unless_asked() {
        for lo in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(DEFAULT.group_for(ip(lo)), None, "{lo}");
            let strict = AddressLimit {
                limit_loopback: true,
                ..DEFAULT
            };
            assert!(strict.group_for(ip(lo)).is_some(), "{lo}");
        }
        assert!(DEFAULT.group_for(ip("192.0.2.1")).is_some());
        assert!(DEFAULT.group_for(ip("2001:db8::1")).is_some());
    }

    #[test]
    fn zero_turns_the_limit_off_everywhere() {
        let off = AddressLimit {
            max_per_address: 0,
            limit_loopback: true,
        };
        let mut counts = AddressCounts::default();
        for _ in 0..1000 {
            assert_eq!(counts.admit(&off, ip("192.0.2.1")), Ok(None));
        }
        assert_eq!(counts.sources(), 0);
    }

    #[test]
    fn the_seventeenth_from_one_source_is_refused_until_one_ends() {
        let mut counts = AddressCounts::default();
        let group = AddressGroup::of(ip("2001:db8::1"));
        for i in 0..MAX_PER_ADDRESS {
            // Any address in the /64 counts against the same source.
            let peer = ip(&format!("2001:db8::{:x}", i + 1));
            assert_eq!(counts.admit(&DEFAULT, peer), Ok(Some(group)));
        }
        assert_eq!(counts.admit(&DEFAULT, ip("2001:db8::ffff")), Err(group));
        // Another source is unaffected, and loopback is not counted.
        assert!(counts.admit(&DEFAULT, ip("2001:db8:0:1::1")).is_ok());
        assert_eq!(counts.admit(&DEFAULT, ip("::1")), Ok(None));
        counts.release(group);
        assert_eq!(counts.open(group), MAX_PER_ADDRESS - 1);
        assert_eq!(counts.admit(&DEFAULT, ip("2001:db8::1")), Ok(Some(group)));
    }

    #[test]
    fn released_sources_are_forgotten() {
        let mut counts = AddressCounts::default();
        let group = counts
            .admit(&DEFAULT, ip("192.0.2.1"))
            .unwrap()
            .expect("counted");
        assert_eq!(counts.sources(), 1);
        counts.release(group);
        assert_eq!(counts.sources(), 0, "no entry left behind");
        counts.release(group);
        assert_eq!(counts.open(group), 0, "a stray release is harmless");
    }
}
