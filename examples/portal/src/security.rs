//! The web-security layer every page shares: response headers, CSRF tokens, the error page.

use std::fmt;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::SysRng;
use rand::TryRng;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::app::Portal;

/// The CSRF cookie: random, `__Host-`, readable by no script.
pub const CSRF_COOKIE: &str = "__Host-portal-csrf";
/// The largest form the portal reads; larger bodies are answered 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Scripts and styles from this site only, no inline script, no framing, forms post here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// Sets the headers every answer carries (each only if the handler did not set its own).
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Every page shows personal data or a secret: no cache keeps any of it.
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// The key CSRF tokens are derived with. Every instance of the portal must hold the same one
/// (a form rendered by one is posted to another), and it survives restarts: it is kept in the
/// data directory, owner-only, made on first start.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfKey([REDACTED])")
    }
}

impl CsrfKey {
    /// The key in `dir/csrf-key`, made there first if missing.
    pub fn load_or_create(dir: &std::path::Path) -> Result<Self, Box<dyn std::error::Error>> {
        let path = dir.join("csrf-key");
        if !path.exists() {
            let mut key = [0u8; 32];
            SysRng.try_fill_bytes(&mut key)?;
            let text = Base64UrlUnpadded::encode_string(&key);
            // Another instance may have made it meanwhile: theirs stands.
            if let Err(error) = crate::write_private(&path, text.as_bytes()) {
                if error.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(error.into());
                }
            }
        }
        let text = std::fs::read_to_string(&path)?;
        let mut key = [0u8; 32];
        let decoded = Base64UrlUnpadded::decode(text.trim(), &mut key)
            .map_err(|_| "csrf-key does not hold a 32-byte key")?;
        if decoded.len() != 32 {
            return Err("csrf-key does not hold a 32-byte key".into());
        }
        Ok(Self(key))
    }

    /// The token forms carry for the browser holding `cookie`.
    fn token(&self, cookie: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(b"verrou-portal csrf v1\0");
        mac.update(cookie.as_bytes());
        Base64UrlUnpadded::encode_string(&mac.finalize().into_bytes())
    }
}

/// The CSRF token of this request's browser, for the page's forms.
#[derive(Clone, Debug)]
pub struct Csrf(pub String);

fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| value.len() == 43)
}

/// Gives every browser a CSRF cookie (once) and every request its token.
pub async fn csrf(
    axum::extract::State(portal): axum::extract::State<Portal>,
    mut request: Request,
    next: Next,
) -> Response {
    let (cookie, fresh) = match csrf_cookie(request.headers()) {
        Some(cookie) => (cookie, false),
        None => {
            let mut bytes = [0u8; 32];
            if SysRng.try_fill_bytes(&mut bytes).is_err() {
                return PortalError::Internal("the OS RNG failed".into()).into_response();
            }
            (Base64UrlUnpadded::encode_string(&bytes), true)
        }
    };
    request
        .extensions_mut()
        .insert(Csrf(portal.csrf_key.token(&cookie)));
    let mut response = next.run(request).await;
    if fresh {
        let value = format!("{CSRF_COOKIE}={cookie}; Path=/; Secure; HttpOnly; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Csrf {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Csrf>()
            .cloned()
            .ok_or_else(|| PortalError::Internal("the CSRF layer is missing".into()))
    }
}

/// A form whose CSRF token checked out (and that no other site sent). Every state-changing
/// handler takes its form through this.
#[derive(Debug)]
pub struct Checked<T>(pub T);

impl<S, T> FromRequest<S> for Checked<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    Portal: FromRef<S>,
{
    type Rejection = PortalError;

    async fn from_request(request: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let cross_site = request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|site| site != "same-origin" && site != "none");
        let expected = request.extensions().get::<Csrf>().cloned();
        let bytes: Bytes = to_bytes(request.into_body(), BODY_LIMIT)
            .await
            .map_err(|_| PortalError::TooLarge)?;
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| PortalError::BadForm)?;
        let sent = fields
            .iter()
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.as_str());
        let valid = match (expected, sent) {
            (Some(Csrf(expected)), Some(sent)) => {
                bool::from(expected.as_bytes().ct_eq(sent.as_bytes()))
            }
            _ => false,
        };
        if cross_site || !valid {
            return Err(PortalError::Csrf);
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(Checked)
            .map_err(|_| PortalError::BadForm)
    }
}

/// What a handler can fail with. The body never carries internal text.
#[derive(Debug)]
pub enum PortalError {
    /// A state-changing form without a valid token, or from another site: 403.
    Csrf,
    /// A form body over the limit: 413.
    TooLarge,
    /// A form that does not parse: 400.
    BadForm,
    /// Not found (or not this organisation's): 404.
    NotFound,
    /// The account may not see this page: 403.
    Forbidden,
    /// Anything else: 500, the cause in the log only.
    Internal(String),
}

impl<E: Into<verrou::Error>> From<E> for PortalError {
    fn from(error: E) -> Self {
        Self::Internal(error.into().to_string())
    }
}

impl From<crate::data::DataError> for PortalError {
    fn from(error: crate::data::DataError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired. Go back, reload the page and try again.",
            ),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "That form is too large."),
            Self::BadForm => (StatusCode::BAD_REQUEST, "That form could not be read."),
            Self::NotFound => (StatusCode::NOT_FOUND, "There is nothing here."),
            Self::Forbidden => (StatusCode::FORBIDDEN, "This page is not for your account."),
            Self::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. Try again in a moment.",
                )
            }
        };
        let page = crate::pages::Message {
            title: "Error",
            message,
        };
        (status, crate::pages::render(&page)).into_response()
    }
}
