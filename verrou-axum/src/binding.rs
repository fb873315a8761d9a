//! The device-binding endpoints: DBSC registration and refresh (which the WebCrypto fallback
//! shares), the fallback's own registration, and its script as a static file.
//!
//! | request | answer |
//! |---|---|
//! | registration, valid proof | 200, the bound cookie, the session instructions (JSON); no challenge header (Chrome reports one as an error) |
//! | registration, refused proof | 400 `{"error":"proof_refused"}` (audited by verrou) |
//! | registration, session bound already | 409 `{"error":"already_bound"}`: the fallback stands down |
//! | registration or refresh without a live session | 401, cookies cleared, `{"continue":false}` |
//! | refresh without proof, or with a stale challenge | 403 with `Secure-Session-Challenge` |
//! | refresh, valid proof | 200, a new bound cookie, the next challenge, the instructions |
//! | refresh, wrong key or bad signature | the session is revoked: 200, cookies cleared, `{"continue":false}` |
//! | refresh of a session that is not bound | 200 `{"continue":false}` (the bound cookie cleared, the session kept) |
//! | refresh whose `Sec-Secure-Session-Id` names another session | 400 `{"error":"session_mismatch"}`, nothing checked |
//!
//! The last rule protects a session from a key this browser kept for an earlier one: its
//! proof would fail and end the session, though nobody stole anything.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use verrou::session::cookie::{BOUND_COOKIE, SESSION_COOKIE};
use verrou::session::dbsc::{
    challenge_header, CHALLENGE_HEADER, END_SESSION_BODY, RESPONSE_HEADER, SESSION_ID_HEADER,
};
use verrou::session::{webcrypto, BindingKind, Requirement};
use verrou::{
    BindingOutcome, BoundCredential, ExposeSecret, RefreshOutcome, SessionCookies, SessionStatus,
};

use crate::answer;
use crate::client::client_context;
use crate::guard::Guard;
use crate::session::joined_cookies;

/// The response header that tells the binding script how long the bound cookie lives (in
/// seconds), so it renews the cookie before it expires while a page is open.
pub const BOUND_MAX_AGE_HEADER: &str = "Verrou-Bound-Max-Age";

impl Guard {
    /// The binding endpoints, to merge into the portal's router (their paths come from
    /// verrou's [`verrou::session::dbsc::DbscPaths`] and [`crate::Settings`]). They read the session
    /// cookie themselves; put no session extractor in front of them.
    pub fn binding_router<St: Clone + Send + Sync + 'static>(&self) -> Router<St> {
        let dbsc = self.sessions().policy().dbsc_paths();
        Router::new()
            .route(&route(dbsc.registration()), post(register_dbsc))
            .route(&route(dbsc.refresh()), post(refresh))
            .route(
                &route(self.settings().fallback_registration_path()),
                post(register_fallback),
            )
            .route(&route(self.script_path()), get(script))
            .with_state(self.clone())
    }
}

/// A literal path as an axum route (braces are axum's capture syntax).
fn route(path: &str) -> String {
    path.replace('{', "{{").replace('}', "}}")
}

async fn register_dbsc(State(guard): State<Guard>, parts: Parts) -> Response {
    register(&guard, &parts, BindingKind::Dbsc).await
}

async fn register_fallback(State(guard): State<Guard>, parts: Parts) -> Response {
    register(&guard, &parts, BindingKind::WebCrypto).await
}

async fn register(guard: &Guard, parts: &Parts, kind: BindingKind) -> Response {
    let Ok(ctx) = client_context(guard, parts) else {
        return answer::internal_error();
    };
    let cookies = joined_cookies(&parts.headers);
    let Some(session) = SessionCookies::from_header(cookies.expose_secret()) else {
        return no_session();
    };
    let Some(proof) = header_text(&parts.headers, RESPONSE_HEADER) else {
        return answer::error(StatusCode::BAD_REQUEST, "proof_missing");
    };
    let outcome = guard
        .sessions()
        .register(session.session(), proof, kind, &ctx)
        .await;
    match outcome {
        Ok(BindingOutcome::Bound(bound)) => bound_answer(guard, &bound, false),
        Ok(BindingOutcome::Refused(reason)) => {
            tracing::info!(?reason, ?kind, "device registration refused");
            answer::error(StatusCode::BAD_REQUEST, "proof_refused")
        }
        Ok(BindingOutcome::AlreadyBound) => answer::error(StatusCode::CONFLICT, "already_bound"),
        Ok(_) => no_session(),
        Err(error) => crate::refusal::Failure::Internal(error).into_response(),
    }
}

async fn refresh(State(guard): State<Guard>, parts: Parts) -> Response {
    let Ok(ctx) = client_context(&guard, &parts) else {
        return answer::internal_error();
    };
    let cookies = joined_cookies(&parts.headers);
    let Some(session) = SessionCookies::from_header(cookies.expose_secret()) else {
        return no_session();
    };
    let proof = header_text(&parts.headers, RESPONSE_HEADER);
    if let (Some(_), Some(claimed)) = (proof, header_text(&parts.headers, SESSION_ID_HEADER)) {
        let status = guard
            .sessions()
            .authenticate(session, Requirement::AnySession, &ctx)
            .await;
        let id = match status {
            Ok(
                SessionStatus::Active(active)
                | SessionStatus::RefreshRequired { session: active }
                | SessionStatus::BindingMissing { session: active },
            ) => active.id,
            Ok(_) => return no_session(),
            Err(error) => return crate::refusal::Failure::Internal(error).into_response(),
        };
        if claimed != id.to_string() {
            return answer::error(StatusCode::BAD_REQUEST, "session_mismatch");
        }
    }
    match guard
        .sessions()
        .refresh(session.session(), proof, &ctx)
        .await
    {
        Ok(RefreshOutcome::Refreshed(bound)) => bound_answer(&guard, &bound, true),
        Ok(RefreshOutcome::Challenge {
            session, challenge, ..
        }) => {
            let mut response = answer::error(StatusCode::FORBIDDEN, "challenge");
            if let Ok(value) = HeaderValue::from_str(&challenge_header(&challenge, session)) {
                response.headers_mut().insert(CHALLENGE_HEADER, value);
            }
            response
        }
        Ok(RefreshOutcome::Ended(_)) => end(StatusCode::OK, &[SESSION_COOKIE, BOUND_COOKIE]),
        Ok(RefreshOutcome::NotBound) => end(StatusCode::OK, &[BOUND_COOKIE]),
        Ok(_) => no_session(),
        Err(error) => crate::refusal::Failure::Internal(error).into_response(),
    }
}

/// 200 with the bound cookie, its lifetime, the instructions and (on refresh) the next
/// challenge.
fn bound_answer(guard: &Guard, bound: &BoundCredential, with_challenge: bool) -> Response {
    let body = guard.sessions().instructions(bound.session);
    let mut response = answer::json(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(
        BOUND_MAX_AGE_HEADER,
        HeaderValue::from(bound.max_age.as_secs()),
    );
    let Ok(cookie) = HeaderValue::from_str(&bound.set_cookie_header()) else {
        return answer::internal_error();
    };
    headers.insert(header::SET_COOKIE, cookie);
    if with_challenge {
        if let Ok(challenge) = HeaderValue::from_str(&bound.challenge_header()) {
            headers.insert(CHALLENGE_HEADER, challenge);
        }
    }
    response
}

/// No live session: 401 (which also makes Chrome stop refreshing), cookies cleared.
fn no_session() -> Response {
    end(StatusCode::UNAUTHORIZED, &[SESSION_COOKIE, BOUND_COOKIE])
}

/// `{"continue":false}`: the browser ends its bound session; `clear` cookies are deleted.
fn end(status: StatusCode, clear: &[&str]) -> Response {
    let mut response = answer::json(status, END_SESSION_BODY.to_owned());
    answer::clear_cookies(&mut response, clear);
    response
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The script: cached for a year under a name that changes with its content.
async fn script(State(guard): State<Guard>, headers: HeaderMap) -> Response {
    let etag = &guard.inner.script_etag;
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    let status = if cached {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if cached { "" } else { webcrypto::SCRIPT };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}
