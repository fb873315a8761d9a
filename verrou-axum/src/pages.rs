//! The two small pages the glue serves itself: after the second factor (bind the device,
//! then go on), and when a page load meets an expired bound cookie (renew, then retry).
//!
//! Neither has an inline script: the binding script reads its instructions from its own
//! `data-` attributes, so the pages carry a `Content-Security-Policy` that allows scripts
//! from the site only.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use verrou::session::dbsc::REGISTRATION_HEADER;
use verrou::Elevated;

use crate::guard::Guard;
use crate::request::{local_next, RequestView};

/// What the pages allow: scripts, fetches and form posts to this site, nothing else.
const POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                      form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `text` escaped for an HTML text node or a quoted attribute value (`&`, `<`, `>`, both
/// quotes, and line breaks as character references).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Character references, so the HTML parser's newline normalisation leaves them be.
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, head: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>{head}</head>\n<body>\n{body}\n</body></html>\n"
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The answer to a page load whose bound cookie expired: renew it with the device key, then
/// load the page again, or submit the kept form again.
pub(crate) fn retry(guard: &Guard, request: &RequestView<'_>) -> Response {
    let second_factor = escape(guard.settings().second_factor_path());
    let head = format!(
        r#"<script src="{}" data-verrou-retry></script>"#,
        escape(guard.script_path())
    );
    let failed = format!(
        "<p id=\"verrou-retry-failed\" hidden>This device could not confirm your session. \
         <a href=\"{second_factor}\">Confirm it is you</a> to go on.</p>"
    );
    let replay = if *request.method == Method::GET || *request.method == Method::HEAD {
        // The script reloads the page.
        String::new()
    } else if let Some(fields) = request.form.and_then(|form| form.fields()) {
        let inputs: String = fields
            .iter()
            .map(|(name, value)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    escape(name),
                    escape(value)
                )
            })
            .collect();
        format!(
            "<form id=\"verrou-retry-form\" method=\"post\" action=\"{}\" \
             accept-charset=\"utf-8\" hidden>{inputs}</form>",
            escape(&request.target)
        )
    } else {
        "<div id=\"verrou-retry-resubmit\" hidden><p>Your session is confirmed, but the form \
         you sent could not be kept. Go back and send it again: what you typed is usually \
         still there.</p><button type=\"button\" data-verrou-back>Go back</button></div>"
            .to_owned()
    };
    let body = format!(
        "<p id=\"verrou-retry-progress\">Confirming this device…</p>\n{failed}\n{replay}\n\
         <noscript><p>This page needs JavaScript to confirm your device. \
         <a href=\"{second_factor}\">Confirm it is you</a> instead.</p></noscript>"
    );
    page(
        StatusCode::UNAUTHORIZED,
        "Confirming this device",
        &head,
        &body,
    )
}

impl Guard {
    /// The answer to the request that passed the second factor: sets the session's new cookie
    /// and, when verrou offers device binding, binds the browser before going on to `next`:
    /// the `Secure-Session-Registration` header lets a browser with DBSC bind by itself; a
    /// short page runs the WebCrypto fallback for the others (after giving DBSC its head
    /// start, see [`crate::Settings::with_dbsc_head_start`]; a browser DBSC bound is not
    /// bound twice), then continues. Without an offer (binding off) it is a plain `303` to
    /// `next`. `next` must be a local path ([`crate::local_next`]); anything else goes to `/`.
    pub fn continue_after_second_factor(&self, elevated: &Elevated, next: &str) -> Response {
        let next = local_next(next).unwrap_or("/");
        let session_cookie = HeaderValue::from_str(&elevated.set_cookie_header());
        let Ok(session_cookie) = session_cookie else {
            return crate::answer::internal_error();
        };
        let Some(challenge) = &elevated.binding_offer else {
            let Ok(location) = HeaderValue::from_str(next) else {
                return crate::answer::internal_error();
            };
            let mut response =
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_cookie);
            return response;
        };
        let settings = self.settings();
        let head = format!(
            r#"<script src="{}" data-verrou-register="{}" data-verrou-registration="{}" data-verrou-next="{}" data-verrou-wait="{}"></script>"#,
            escape(self.script_path()),
            escape(challenge.as_str()),
            escape(settings.fallback_registration_path()),
            escape(next),
            settings.dbsc_head_start.as_millis(),
        );
        let body = format!(
            "<p>Securing this device…</p>\n<p id=\"verrou-binding-failed\" hidden>This browser \
             could not be tied to your session (it may block storage for this site). You can \
             go on, but you will be asked for a code again in a few minutes. \
             <a href=\"{}\">Go on</a></p>\n<noscript><p>This page needs JavaScript to secure \
             your session on this device.</p></noscript>",
            escape(next)
        );
        let mut response = page(StatusCode::OK, "Securing this device", &head, &body);
        let registration = self
            .sessions()
            .policy()
            .dbsc_paths()
            .registration_header(challenge);
        let headers = response.headers_mut();
        headers.insert(header::SET_COOKIE, session_cookie);
        if let Ok(registration) = HeaderValue::from_str(&registration) {
            headers.insert(REGISTRATION_HEADER, registration);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\" title='y'>&\r\n"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&#13;&#10;"
        );
        assert_eq!(escape("café"), "café");
    }
}
