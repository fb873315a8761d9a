//! Keeping a submitted form across a renewal of the bound cookie.
//!
//! A user who leaves a form open longer than the bound cookie lives (5 minutes by default)
//! and whose browser could not renew it in the background submits with an expired cookie.
//! The session extractor then answers with a page that renews the cookie with the device key
//! and submits the form again. It can only do so if it has the form: [`keep_forms`] keeps the
//! body of a form `POST` (`application/x-www-form-urlencoded`, up to [`FORM_REPLAY_LIMIT`]) in
//! the request's extensions, where the extractor finds it, and hands the handler the same body.
//! Without it, or for a file upload, the page renews the cookie and tells the user to submit
//! again (going back keeps what they typed in most browsers).

use std::fmt;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode;

/// The largest form body [`keep_forms`] keeps: 64 KiB.
pub const FORM_REPLAY_LIMIT: usize = 64 * 1024;

/// The body of a form `POST`, kept by [`keep_forms`]. Redacted in `Debug`: forms carry
/// personal data, and sometimes passwords.
#[derive(Clone)]
pub struct SubmittedForm(Bytes);

impl fmt::Debug for SubmittedForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubmittedForm({} bytes, [REDACTED])", self.0.len())
    }
}

impl SubmittedForm {
    /// The fields in order, duplicates kept; `None` if a name or value is not UTF-8 once
    /// decoded (a browser re-submitting it from a page would change it).
    pub(crate) fn fields(&self) -> Option<Vec<(String, String)>> {
        self.0
            .split(|&byte| byte == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = match pair.iter().position(|&byte| byte == b'=') {
                    Some(at) => (pair.get(..at)?, pair.get(at + 1..)?),
                    None => (pair, &[][..]),
                };
                Some((decode(name)?, decode(value)?))
            })
            .collect()
    }
}

fn decode(encoded: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = encoded
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    percent_decode(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

/// Middleware (`axum::middleware::from_fn(keep_forms)`) that keeps the body of form `POST`s
/// for the bound-cookie renewal page. It reads only bodies that declare a `Content-Length` of
/// at most [`FORM_REPLAY_LIMIT`] (browsers always do for forms); any other request passes
/// untouched. A body shorter than declared is answered 400.
pub async fn keep_forms(request: Request, next: Next) -> Response {
    let is_form = request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if !is_form || length.is_none_or(|length| length > FORM_REPLAY_LIMIT) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match axum::body::to_bytes(body, FORM_REPLAY_LIMIT).await {
        Ok(bytes) => {
            parts.extensions.insert(SubmittedForm(bytes.clone()));
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => (StatusCode::BAD_REQUEST, "the form could not be read").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fields_decode_in_order_with_duplicates() {
        let form = SubmittedForm(Bytes::from_static(
            b"a=1&note=caf%C3%A9+%3C%3E%26%22&a=2&empty=&flag&x=%0D%0A",
        ));
        assert_eq!(
            form.fields().unwrap(),
            [
                ("a", "1"),
                ("note", "café <>&\""),
                ("a", "2"),
                ("empty", ""),
                ("flag", ""),
                ("x", "\r\n"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn a_form_that_is_not_utf8_is_not_replayed() {
        let form = SubmittedForm(Bytes::from_static(b"name=%FF"));
        assert_eq!(form.fields(), None);
        assert_eq!(format!("{form:?}"), "SubmittedForm(8 bytes, [REDACTED])");
    }
}
