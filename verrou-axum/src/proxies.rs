//! Which peers may say who the client is: the portal's own reverse proxies, and the rule for
//! reading `X-Forwarded-For` behind them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The networks of the portal's own reverse proxies (load balancers, TLS terminators).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

/// A trusted-proxy network that does not parse.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct InvalidNetwork {
    /// The text given.
    pub given: String,
}

impl fmt::Display for InvalidNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is neither an address nor a network (10.0.0.0/8, fd00::/8)",
            self.given
        )
    }
}

impl std::error::Error for InvalidNetwork {}

impl TrustedProxies {
    /// No proxy: the TCP peer is the client (the portal faces the Internet itself).
    pub fn none() -> Self {
        Self::default()
    }

    /// The proxies in these networks (`10.0.0.0/8`, `fd00::/8`) or at these addresses
    /// (`127.0.0.1`, `::1`).
    ///
    /// # Errors
    /// [`InvalidNetwork`] for the first entry that is neither.
    pub fn new<'a>(networks: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidNetwork> {
        let networks = networks
            .into_iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| InvalidNetwork {
                        given: text.to_owned(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.networks.iter().any(|net| net.contains(&addr))
    }

    /// The client's address for a request from `peer` carrying `headers`.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // Every X-Forwarded-For header, in order, as one list; walked from the nearest hop.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("").split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A hop a trusted proxy wrote that does not parse: stop at the last proxy known.
            let Some(addr) = parse_hop(hop) else {
                return client;
            };
            client = addr;
            if !self.trusts(addr) {
                return addr;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .map(|addr| addr.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&["198.51.100.7"]);
        assert_eq!(
            proxies.client_addr(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::none().client_addr(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "::1"]).unwrap();
        // The client wrote "1.1.1.1" itself; the proxies appended what they saw.
        let chain = headers(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(
            proxies.client_addr(ip("10.0.0.1"), &chain),
            ip("203.0.113.9")
        );
        assert_eq!(proxies.client_addr(ip("::1"), &chain), ip("203.0.113.9"));
        // Ports and IPv4-mapped IPv6 addresses.
        let ported = headers(&["203.0.113.9:5555", "[::ffff:10.0.0.3]:80"]);
        assert_eq!(
            proxies.client_addr(ip("::ffff:10.0.0.1"), &ported),
            ip("203.0.113.9")
        );
        // Only proxies in the chain: the farthest one is the best known.
        let inner = headers(&["10.0.0.5, 10.0.0.4"]);
        assert_eq!(proxies.client_addr(ip("10.0.0.1"), &inner), ip("10.0.0.5"));
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(
            proxies.client_addr(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn garbage_a_proxy_passed_on_stops_the_walk() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let chain = headers(&["203.0.113.9, not-an-address, 10.0.0.2"]);
        assert_eq!(proxies.client_addr(ip("10.0.0.1"), &chain), ip("10.0.0.2"));
    }

    #[test]
    fn networks_that_do_not_parse_are_refused() {
        assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::new(["proxy.internal"]).is_err());
        let err = TrustedProxies::new(["10.0.0.0/8", "nope"]).unwrap_err();
        assert_eq!(err.given, "nope");
    }
}
