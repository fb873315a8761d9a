//! The client address verrou's throttle sees: `X-Forwarded-For` only from trusted proxies.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use verrou_axum::{Settings, TrustedProxies};

use crate::support::{send, text, World};

async fn client_seen(w: &World, peer: &str, forwarded: &[&str]) -> String {
    let mut request = Request::builder()
        .uri("/client")
        .extension(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    for value in forwarded {
        request = request.header("x-forwarded-for", *value);
    }
    text(send(w.app(false), request.body(Body::empty()).unwrap()).await).await
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
    let settings = Settings::new("/sign-in", "/second-factor")
        .unwrap()
        .with_trusted_proxies(proxies);
    let w = World::with(settings).await;
    // A client on the Internet claiming another address: its own address counts.
    assert_eq!(
        client_seen(&w, "203.0.113.9:5000", &["198.51.100.1"]).await,
        "203.0.113.9"
    );
    // Behind the portal's proxy: the address the proxy saw, not what the client wrote.
    assert_eq!(
        client_seen(&w, "10.0.0.1:5000", &["198.51.100.1, 203.0.113.9"]).await,
        "203.0.113.9"
    );
    // Two proxies, two headers.
    assert_eq!(
        client_seen(&w, "10.0.0.1:5000", &["203.0.113.9", "10.0.0.2"]).await,
        "203.0.113.9"
    );

    // With no proxy trusted (the default) the header is never read.
    let w = World::new().await;
    assert_eq!(
        client_seen(&w, "10.0.0.1:5000", &["203.0.113.9"]).await,
        "10.0.0.1"
    );
}

#[tokio::test]
async fn the_address_reaches_verrous_throttle() {
    // Guessing from one address is throttled across accounts once the address throttle is on;
    // here it is enough that the extracted context carries the address verrou compares.
    let w = World::new().await;
    let request = Request::builder()
        .uri("/client")
        .extension(ConnectInfo(
            "[2001:db8::7]:443".parse::<SocketAddr>().unwrap(),
        ))
        .header("user-agent", "Mozilla/5.0")
        .body(Body::empty())
        .unwrap();
    assert_eq!(text(send(w.app(false), request).await).await, "2001:db8::7");
}

#[tokio::test]
async fn the_user_agent_reaches_verrous_soft_signals() {
    use std::time::Duration;

    use axum::http::{header, StatusCode};
    use verrou::session::{BindingMode, SessionPolicy};
    use verrou::{ClientContext, VerrouConfig};
    use verrou_axum::Outcome;

    let policy = SessionPolicy::new()
        .with_binding(BindingMode::Off, Duration::from_secs(300))
        .unwrap()
        .with_soft_signals(true);
    let config = VerrouConfig::new("Portail Partenaires")
        .unwrap()
        .with_session_policy(policy);
    let settings = Settings::new("/sign-in", "/second-factor").unwrap();
    let w = World::with_config(settings, config).await;
    // The second factor passed from this address with this browser.
    let peer: SocketAddr = crate::support::PEER.parse().unwrap();
    let ctx = ClientContext::from_addr(peer.ip()).with_user_agent("Firefox/140");
    let jar = w.signed_in().await;
    let code = w.next_code();
    let proof = w
        .verrou
        .verify_totp(&w.user, &code, &ctx)
        .await
        .unwrap()
        .into_result()
        .unwrap()
        .proof;
    let elevated = w
        .verrou
        .record_second_factor(jar.session.as_deref().unwrap(), proof, &ctx)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let jar = crate::support::Jar {
        session: Some(elevated.token.expose_secret().to_owned()),
        bound: None,
    };
    let with_agent = |agent: &str| {
        jar.request("GET", "/page")
            .header(header::USER_AGENT, agent)
            .body(Body::empty())
            .unwrap()
    };
    let same = send(w.app(false), with_agent("Firefox/140")).await;
    assert_eq!(same.status(), StatusCode::OK);
    let other = send(w.app(false), with_agent("curl/8.5")).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        crate::support::json(other).await["error"],
        "step_up_required"
    );
}
