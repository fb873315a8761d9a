//! What the service knows of the request: the client address it may trust and a hash of the
//! user agent.

use std::net::IpAddr;

use crate::session::TokenHash;
use sha2::{Digest, Sha256};

/// What the portal knows about the client making a request.
///
/// # Security
/// Give the address the portal *trusts*: the socket peer, or the client address your own
/// reverse proxy reports. A raw `X-Forwarded-For` header is attacker-controlled; passing it
/// here lets an attacker pick a fresh address for every guess (the per-account throttle
/// still holds).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct ClientContext {
    pub(super) addr: Option<IpAddr>,
    pub(super) user_agent: Option<[u8; 32]>,
}

impl ClientContext {
    /// No client address known: only the per-account throttle applies.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// A request from `addr`.
    pub fn from_addr(addr: IpAddr) -> Self {
        Self {
            addr: Some(addr),
            ..Self::default()
        }
    }

    /// The request's `User-Agent` (kept only as a hash, for the optional soft signals).
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = Some(Sha256::digest(user_agent.as_bytes()).into());
        self
    }

    /// The client address, if known.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addr
    }

    /// Digest of the soft signals: the address prefix (IPv4 /24, IPv6 /48) and the user-agent
    /// hash. `None` when neither is known.
    pub(crate) fn signals(&self) -> Option<TokenHash> {
        if self.addr.is_none() && self.user_agent.is_none() {
            return None;
        }
        let prefix = self.addr.map(|addr| match addr.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()),
        });
        let mut hasher = Sha256::new();
        hasher.update(b"verrou soft signals v1\0");
        hasher.update(prefix.map(|p| p.to_string()).unwrap_or_default().as_bytes());
        hasher.update(b"\0");
        hasher.update(self.user_agent.unwrap_or_default());
        Some(TokenHash::from_bytes(hasher.finalize().into()))
    }
}
