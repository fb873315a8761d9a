//! Cookie headers, as plain strings any web framework can send: verrou never depends on one.
//!
//! Both cookies carry the `__Host-` prefix, so the browser accepts them only with `Secure`,
//! `Path=/` and no `Domain` (no sibling subdomain can set or shadow them), and they are
//! `HttpOnly` (no script reads them) and `SameSite=Strict` (no cross-site request carries
//! them).

use std::time::Duration;

use super::token::SessionToken;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-verrou-session";
/// The short-lived bound cookie's name (renewed only with a device-key proof).
pub const BOUND_COOKIE: &str = "__Host-verrou-bound";

/// The attributes verrou's cookies carry (the DBSC session instructions repeat them).
pub const COOKIE_ATTRIBUTES: &str = "Path=/; Secure; HttpOnly; SameSite=Strict";

/// A `Set-Cookie` header value for `token` under `name`, expiring after `max_age`.
pub fn set_cookie(name: &str, token: &SessionToken, max_age: Duration) -> String {
    format!(
        "{name}={}; {COOKIE_ATTRIBUTES}; Max-Age={}",
        token.expose_secret(),
        max_age.as_secs()
    )
}

/// A `Set-Cookie` header value that deletes the cookie `name` (at logout or revocation).
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; {COOKIE_ATTRIBUTES}; Max-Age=0")
}

/// The value of the cookie `name` in a `Cookie` request header, if it is there exactly once.
///
/// Two cookies of one name (a `__Host-` cookie and a shadow an attacker planted without the
/// prefix cannot share a name, but a browser may still send duplicates) are treated as none:
/// verrou will not guess which one is real.
pub fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    let mut found = None;
    for pair in header.split(';') {
        let Some((key, value)) = pair.trim().split_once('=') else {
            continue;
        };
        if key == name {
            if found.is_some() {
                return None;
            }
            found = Some(value.trim());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_has_every_attribute() {
        let token = SessionToken::generate().unwrap();
        let header = set_cookie(SESSION_COOKIE, &token, Duration::from_secs(43_200));
        assert!(header.starts_with("__Host-verrou-session="));
        for attribute in [
            "; Path=/",
            "; Secure",
            "; HttpOnly",
            "; SameSite=Strict",
            "; Max-Age=43200",
        ] {
            assert!(header.contains(attribute), "{attribute} missing");
        }
        assert!(!header.to_ascii_lowercase().contains("domain"));
        assert_eq!(
            clear_cookie(BOUND_COOKIE),
            "__Host-verrou-bound=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn cookie_value_finds_one_and_refuses_duplicates() {
        let header = "theme=dark; __Host-verrou-session=abc; __Host-verrou-bound=def";
        assert_eq!(cookie_value(header, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(header, BOUND_COOKIE), Some("def"));
        assert_eq!(cookie_value(header, "missing"), None);
        assert_eq!(
            cookie_value(
                "__Host-verrou-session=a; __Host-verrou-session=b",
                SESSION_COOKIE
            ),
            None
        );
        assert_eq!(cookie_value("garbage;;=;", SESSION_COOKIE), None);
    }
}
