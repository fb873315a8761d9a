//! Cookie headers and session tokens from the network: parsing never panics, a token that
//! parses is exactly its canonical 43-character form, and a cookie found in a header is a
//! substring of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verrou::session::cookie::{cookie_value, SESSION_COOKIE};
use verrou::session::SessionToken;

fuzz_target!(|text: &str| {
    if let Ok(token) = SessionToken::parse(text) {
        assert_eq!(token.expose_secret(), text);
        assert_eq!(text.len(), 43);
    }
    if let Some(value) = cookie_value(text, SESSION_COOKIE) {
        assert!(text.contains(value));
        let _ = SessionToken::parse(value);
    }
});
