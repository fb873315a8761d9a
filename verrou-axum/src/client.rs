//! The client's address and user agent, as verrou's throttle and soft signals need them.
//!
//! The address is the TCP peer's, unless the peer is one of the portal's own reverse proxies:
//! then it is read from `X-Forwarded-For`, right to left, skipping the trusted proxies, up to
//! the first address the portal does not run. Anything a client writes into the header itself
//! sits to the left of that and is never read. From any other peer the header is ignored: an
//! attacker who could pick their address would get a fresh throttle bucket for every guess.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use verrou::ClientContext;

use crate::guard::Guard;

/// The client of a request: its trusted address and its user agent, ready for verrou.
///
/// Needs the TCP peer address: serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()` (tests insert
/// [`axum::extract::ConnectInfo`] or use `MockConnectInfo`). Without it the request fails
/// with 500: silently losing the address would switch the per-address throttle off.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a newtype to destructure in handlers"
)]
pub struct Client(pub ClientContext);

/// The app is served without the peer address (see [`Client`]).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct MissingPeerAddress;

impl IntoResponse for MissingPeerAddress {
    fn into_response(self) -> Response {
        tracing::error!(
            "verrou-axum: no peer address on the request; serve the app with \
             into_make_service_with_connect_info::<SocketAddr>()"
        );
        crate::answer::internal_error()
    }
}

impl<St: Send + Sync> FromRequestParts<St> for Client
where
    Guard: FromRef<St>,
{
    type Rejection = MissingPeerAddress;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let guard = Guard::from_ref(state);
        client_context(&guard, parts).map(Client)
    }
}

/// The request's client context (shared with the session extractors and the binding router).
pub(crate) fn client_context(
    guard: &Guard,
    parts: &Parts,
) -> Result<ClientContext, MissingPeerAddress> {
    let ConnectInfo(peer) = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .ok_or(MissingPeerAddress)?;
    let addr = guard
        .settings()
        .proxies
        .client_addr(peer.ip(), &parts.headers);
    let ctx = ClientContext::from_addr(addr);
    Ok(match parts.headers.get(header::USER_AGENT) {
        Some(agent) => ctx.with_user_agent(&String::from_utf8_lossy(agent.as_bytes())),
        None => ctx,
    })
}
