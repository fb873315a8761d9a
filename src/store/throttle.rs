//! Throttle counters as stores keep them: what a counter is attached to ([`ThrottleKey`]), and
//! what counting one attempt does ([`Reservation::decide`]; the store makes it atomic).

use std::net::{IpAddr, Ipv6Addr};

use crate::clock::Timestamp;
use crate::ids::UserId;
use crate::lockout::{Gate, ThrottlePolicy, ThrottleState};

/// What a throttle counter is attached to (borrowed: building one costs nothing).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum ThrottleKey<'a> {
    /// One user's account: shared by every second-factor path.
    Account(&'a UserId),
    /// One client address: an IPv4 address, or an IPv6 prefix (by default a /64, one
    /// subscriber's allocation; see [`ThrottleKey::for_address_in_prefix`]).
    Address(IpAddr),
}

impl ThrottleKey<'_> {
    /// The IPv6 prefix length one address bucket covers by default: a /64, what one
    /// subscriber or LAN is given.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;

    /// The key for a client address, normalised: IPv4-mapped IPv6 becomes IPv4, other IPv6
    /// addresses are cut to their /64 so one client cannot rotate through its own prefix.
    pub fn for_address(addr: IpAddr) -> Self {
        Self::for_address_in_prefix(addr, Self::DEFAULT_IPV6_PREFIX)
    }

    /// Like [`ThrottleKey::for_address`], with IPv6 addresses cut to their
    /// `/ipv6_prefix` (at most 128) instead of their /64.
    pub fn for_address_in_prefix(addr: IpAddr, ipv6_prefix: u8) -> Self {
        let normalized = match addr.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let kept = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - kept).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        Self::Address(normalized)
    }

    /// A stable text form for SQL backends: `account:<user id>` or `address:<ip>`.
    pub fn storage_key(&self) -> String {
        match self {
            Self::Account(user) => format!("account:{user}"),
            Self::Address(addr) => format!("address:{addr}"),
        }
    }
}

/// Result of [`Store::reserve_attempt`](super::Store::reserve_attempt).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Reservation {
    /// The gate was open; the attempt is counted as a failure until a success resets it.
    /// Holds the counter after counting.
    Counted(ThrottleState),
    /// The gate was closed ([`Gate::Backoff`] or [`Gate::Locked`]); nothing was counted.
    Refused(Gate),
}

impl Reservation {
    /// What a store does atomically: evaluate `policy` on `state` at `now` and, if the gate is
    /// open, count one failure. Returns the new state to write (if any) and the reservation.
    pub fn decide(
        policy: &ThrottlePolicy,
        state: &ThrottleState,
        now: Timestamp,
    ) -> (Option<ThrottleState>, Self) {
        match policy.gate(state, now) {
            Gate::Open => {
                let next = policy.record_failure(state, now);
                (Some(next), Self::Counted(next))
            }
            closed => (None, Self::Refused(closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ThrottleKey::for_address(a), ThrottleKey::for_address(b));
        assert_ne!(ThrottleKey::for_address(a), ThrottleKey::for_address(c));
        assert_eq!(
            ThrottleKey::for_address(a).storage_key(),
            "address:2001:db8:1:2::"
        );
    }

    #[test]
    fn the_ipv6_prefix_is_configurable() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:2::1".parse().unwrap();
        let key = |addr, prefix| ThrottleKey::for_address_in_prefix(addr, prefix);
        // One /48 is 65,536 /64s: a /48 bucket holds them all.
        assert_eq!(key(a, 48), key(b, 48));
        assert_ne!(key(a, 48), key(c, 48));
        assert_eq!(key(a, 48).storage_key(), "address:2001:db8:1::");
        assert_ne!(key(a, 64), key(b, 64));
        assert_eq!(key(a, 128), ThrottleKey::Address(a));
        assert_eq!(key(a, 200), ThrottleKey::Address(a));
        assert_eq!(key(a, 0).storage_key(), "address:::");
        assert_eq!(ThrottleKey::for_address(a), key(a, 64));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let plain: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            ThrottleKey::for_address(mapped),
            ThrottleKey::for_address(plain)
        );
    }
}
