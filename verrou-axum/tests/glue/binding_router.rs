//! The binding endpoints, branch by branch.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Response, StatusCode};
use verrou::session::cookie::{BOUND_COOKIE, SESSION_COOKIE};
use verrou::session::dbsc::{CHALLENGE_HEADER, RESPONSE_HEADER, SESSION_ID_HEADER};
use verrou::session::webcrypto;
use verrou::testing::InsecureDevice;
use verrou_axum::BOUND_MAX_AGE_HEADER;

use crate::support::{json, offered_challenge, send, text, Jar, World};

const REFRESH: &str = "/verrou/dbsc/refresh";
const DBSC_REGISTER: &str = "/verrou/dbsc/register";

async fn refresh(w: &World, jar: &Jar, proof: Option<&str>, id: Option<&str>) -> Response<Body> {
    let mut request = jar.request("POST", REFRESH);
    if let Some(proof) = proof {
        request = request.header(RESPONSE_HEADER, proof);
    }
    if let Some(id) = id {
        request = request.header(SESSION_ID_HEADER, id);
    }
    send(w.app(false), request.body(Body::empty()).unwrap()).await
}

/// The challenge and session id of a `Secure-Session-Challenge` header.
fn challenge_of(response: &Response<Body>) -> (String, String) {
    let value = response.headers()[CHALLENGE_HEADER].to_str().unwrap();
    let (challenge, id) = value.split_once(";id=").unwrap();
    (
        challenge.trim_matches('"').to_owned(),
        id.trim_matches('"').to_owned(),
    )
}

fn cleared(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|v| v.contains("Max-Age=0"))
        .map(|v| v.split('=').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dbsc_registration_binds_and_answers_the_instructions_without_a_challenge() {
    let w = World::new().await;
    let mut jar = w.signed_in().await;
    let offer = w.elevate(&mut jar).await;
    let device = InsecureDevice::generate().unwrap();
    let proof = device.registration_proof(&offered_challenge(&offer));
    let request = jar
        .request("POST", DBSC_REGISTER)
        .header(RESPONSE_HEADER, proof)
        .body(Body::empty())
        .unwrap();
    let response = send(w.app(false), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !response.headers().contains_key(CHALLENGE_HEADER),
        "Chrome reports a challenge here as an error"
    );
    assert_eq!(response.headers()[BOUND_MAX_AGE_HEADER], "300");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    jar.take(&response);
    let instructions = json(response).await;
    assert_eq!(instructions["refresh_url"], REFRESH);
    assert_eq!(instructions["credentials"][0]["name"], BOUND_COOKIE);
    let page = w.fetch(&jar, "/page").await;
    assert_eq!(page.status(), StatusCode::OK);
    let trail = w.verrou.audit_trail(Some(&w.user), 50).await.unwrap();
    assert!(trail.iter().any(|e| matches!(
        e.kind,
        verrou::AuditKind::BindingRegistered {
            kind: verrou::session::BindingKind::Dbsc,
            ..
        }
    )));
}

#[tokio::test]
async fn registration_refusals_have_their_own_answers() {
    let w = World::new().await;
    let mut jar = w.signed_in().await;
    let offer = w.elevate(&mut jar).await;
    let challenge = offered_challenge(&offer);
    let device = InsecureDevice::generate().unwrap();
    let register = |jar: &Jar, proof: Option<String>| {
        let mut request = jar.request("POST", "/verrou/webcrypto/register");
        if let Some(proof) = proof {
            request = request.header(RESPONSE_HEADER, proof);
        }
        request.body(Body::empty()).unwrap()
    };
    // No proof at all.
    let response = send(w.app(false), register(&jar, None)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "proof_missing");
    // A proof over another challenge, and one that is not a proof.
    for proof in [
        device.registration_proof("another-challenge"),
        "garbage".to_owned(),
    ] {
        let response = send(w.app(false), register(&jar, Some(proof))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json(response).await["error"], "proof_refused");
    }
    // No session cookie.
    let response = send(
        w.app(false),
        register(&Jar::default(), Some(device.registration_proof(&challenge))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(response).await, r#"{"continue":false}"#);
    // The valid one binds; a second registration (DBSC first, then the fallback) is 409.
    let response = send(
        w.app(false),
        register(&jar, Some(device.registration_proof(&challenge))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let other = InsecureDevice::generate().unwrap();
    let response = send(
        w.app(false),
        register(&jar, Some(other.registration_proof(&challenge))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(json(response).await["error"], "already_bound");
}

#[tokio::test]
async fn refresh_without_proof_challenges_and_a_signed_retry_renews() {
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let mut jar = w.bound(&device).await;
    w.clock.advance(Duration::from_secs(5 * 60 + 1));
    let first = refresh(&w, &jar, None, None).await;
    assert_eq!(first.status(), StatusCode::FORBIDDEN);
    let (challenge, id) = challenge_of(&first);
    let renewed = refresh(&w, &jar, Some(&device.refresh_proof(&challenge)), Some(&id)).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    assert_eq!(renewed.headers()[BOUND_MAX_AGE_HEADER], "300");
    let (next, next_id) = challenge_of(&renewed);
    assert_eq!(next_id, id);
    assert_ne!(next, challenge);
    let old_bound = jar.bound.clone();
    jar.take(&renewed);
    assert_ne!(jar.bound, old_bound, "a new bound cookie each time");
    assert_eq!(json(renewed).await["session_identifier"], id.as_str());
    let page = w.fetch(&jar, "/page").await;
    assert_eq!(page.status(), StatusCode::OK);
    // Later refreshes are one round trip with the challenge from the last 200.
    let again = refresh(&w, &jar, Some(&device.refresh_proof(&next)), Some(&id)).await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_proof_from_another_key_ends_the_session() {
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let jar = w.bound(&device).await;
    let first = refresh(&w, &jar, None, None).await;
    let (challenge, id) = challenge_of(&first);
    let thief = InsecureDevice::generate().unwrap();
    let ended = refresh(&w, &jar, Some(&thief.refresh_proof(&challenge)), Some(&id)).await;
    assert_eq!(ended.status(), StatusCode::OK);
    let mut gone = cleared(&ended);
    gone.sort();
    assert_eq!(gone, [BOUND_COOKIE, SESSION_COOKIE]);
    assert_eq!(text(ended).await, r#"{"continue":false}"#);
    let page = w.fetch(&jar, "/any").await;
    assert_eq!(
        page.status(),
        StatusCode::UNAUTHORIZED,
        "the session is revoked"
    );
}

#[tokio::test]
async fn a_proof_for_another_session_id_is_refused_unchecked_and_ends_nothing() {
    // A key the fallback kept from an earlier session would fail against this one.
    let w = World::new().await;
    let device = InsecureDevice::generate().unwrap();
    let jar = w.bound(&device).await;
    let (challenge, id) = challenge_of(&refresh(&w, &jar, None, None).await);
    let stale_key = InsecureDevice::generate().unwrap();
    let response = refresh(
        &w,
        &jar,
        Some(&stale_key.refresh_proof(&challenge)),
        Some("another-session"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "session_mismatch");
    let renewed = refresh(&w, &jar, Some(&device.refresh_proof(&challenge)), Some(&id)).await;
    assert_eq!(renewed.status(), StatusCode::OK, "the session lives on");
}

#[tokio::test]
async fn refresh_of_an_unknown_or_unbound_session() {
    let w = World::new().await;
    // No cookie, and a cookie of no session: 401 (Chrome stops refreshing), cookies cleared.
    for jar in [
        Jar::default(),
        Jar {
            session: Some("B".repeat(43)),
            bound: None,
        },
    ] {
        let response = refresh(&w, &jar, None, None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(cleared(&response).len(), 2);
        assert_eq!(text(response).await, r#"{"continue":false}"#);
    }
    // A session that never bound: the browser ends its bound session; the session stays.
    let mut jar = w.signed_in().await;
    let _ = w.elevate(&mut jar).await;
    let response = refresh(&w, &jar, None, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(cleared(&response), [BOUND_COOKIE]);
    assert_eq!(text(response).await, r#"{"continue":false}"#);
    let page = w.fetch(&jar, "/page").await;
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_script_is_a_static_file_cached_under_its_content_hash() {
    let w = World::new().await;
    let path = w.guard.script_path().to_owned();
    assert!(
        path.starts_with("/verrou/binding-") && path.ends_with(".js"),
        "{path}"
    );
    let response = send(
        w.app(false),
        Jar::default()
            .request("GET", &path)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        response.headers()[header::X_CONTENT_TYPE_OPTIONS],
        "nosniff"
    );
    let etag = response.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(text(response).await, webcrypto::SCRIPT);
    let cached = Jar::default()
        .request("GET", &path)
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    let response = send(w.app(false), cached).await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert!(text(response).await.is_empty());
}

#[tokio::test]
async fn colliding_or_unroutable_paths_are_refused_at_construction() {
    let w = World::new().await;
    // The fallback's endpoints move with the asset directory.
    let moved = verrou_axum::Settings::new("/sign-in", "/second-factor")
        .unwrap()
        .with_asset_directory("/assets/")
        .unwrap();
    assert_eq!(
        moved.fallback_registration_path(),
        "/assets/webcrypto/register"
    );
    let guard = verrou_axum::Guard::new(w.verrou.clone(), moved).unwrap();
    assert!(guard.script_path().starts_with("/assets/binding-"));
    for bad in ["relative", "//evil.example", "/a\"b", "/a<b"] {
        assert!(
            verrou_axum::Settings::new(bad, "/second-factor").is_err(),
            "{bad}"
        );
        assert!(
            verrou_axum::Settings::new("/sign-in", bad).is_err(),
            "{bad}"
        );
    }
    let policy = verrou::session::SessionPolicy::new().with_dbsc_paths(
        verrou::session::dbsc::DbscPaths::with_paths("/verrou/webcrypto/register", "/r").unwrap(),
    );
    let config = verrou::VerrouConfig::new("Portal")
        .unwrap()
        .with_session_policy(policy);
    let verrou = std::sync::Arc::new(verrou::Verrou::new(
        verrou::store::MemoryStore::new(),
        config,
    ));
    let settings = verrou_axum::Settings::new("/sign-in", "/second-factor").unwrap();
    assert!(verrou_axum::Guard::new(verrou.clone(), settings.clone()).is_err());
    let policy = verrou::session::SessionPolicy::new()
        .with_dbsc_paths(verrou::session::dbsc::DbscPaths::with_paths("/:register", "/r").unwrap());
    let config = verrou::VerrouConfig::new("Portal")
        .unwrap()
        .with_session_policy(policy);
    let verrou = std::sync::Arc::new(verrou::Verrou::new(
        verrou::store::MemoryStore::new(),
        config,
    ));
    assert!(verrou_axum::Guard::new(verrou, settings).is_err());
}
