//! What the answers to a request depend on: which request it was (method, target, page load
//! or script, a kept form), and which `next` targets are safe to send a browser to.

use axum::extract::OriginalUri;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

use crate::forms::SubmittedForm;

/// What the answer depends on.
pub(crate) struct RequestView<'p> {
    pub(crate) method: &'p Method,
    /// The path and query the browser asked for (before any nesting).
    pub(crate) target: String,
    pub(crate) navigation: bool,
    pub(crate) form: Option<&'p SubmittedForm>,
}

impl<'p> RequestView<'p> {
    pub(crate) fn of(parts: &'p Parts) -> Self {
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |original| &original.0);
        let target = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        Self {
            method: &parts.method,
            target,
            navigation: is_navigation(&parts.headers),
            form: parts.extensions.get::<SubmittedForm>(),
        }
    }
}

/// A page load (the browser will show the answer), as opposed to a script's request.
fn is_navigation(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes() == b"navigate",
        // Browsers from before Fetch Metadata: a request that accepts HTML.
        None => headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html")),
    }
}

/// `next` if it is a path on this site, for the portal to redirect to after sign-in or the
/// second factor; `None` for anything else (`//evil.example`, `https://…`, `/\evil`, control
/// characters), which would make the portal an open redirect.
pub fn local_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic());
    local.then_some(next)
}
