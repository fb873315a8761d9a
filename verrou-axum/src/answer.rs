//! The few shapes every answer of this crate takes: JSON that no cache keeps, cleared
//! cookies, and a 500 that names no cause.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use verrou::session::cookie::clear_cookie;

/// `body` as JSON, `Cache-Control: no-store`.
pub(crate) fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `{"error":"<code>"}`.
pub(crate) fn error(status: StatusCode, code: &str) -> Response {
    json(status, serde_json::json!({ "error": code }).to_string())
}

/// Deletes the cookies `names` with the response.
pub(crate) fn clear_cookies(response: &mut Response, names: &[&str]) {
    for name in names {
        if let Ok(value) = HeaderValue::from_str(&clear_cookie(name)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// 500 with a body that names no cause.
pub(crate) fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CACHE_CONTROL, "no-store")],
        "internal error",
    )
        .into_response()
}
