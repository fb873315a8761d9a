//! Device Bound Session Credentials (W3C WebAppSec DBSC draft): the header values and the
//! session-instructions JSON the registration and refresh endpoints send, as plain strings.
//!
//! The protocol state (challenges, the registered key, the bound cookie) lives in the store
//! and is driven by [`crate::Verrou::register_binding`] and [`crate::Verrou::refresh_binding`];
//! this module only spells what goes on the wire.

use serde::Serialize;

use super::cookie::{BOUND_COOKIE, COOKIE_ATTRIBUTES};
use super::Challenge;
use crate::ids::SessionId;

/// Response header that offers the browser to bind the session (sent once, on the response
/// that completes the second factor).
pub const REGISTRATION_HEADER: &str = "Secure-Session-Registration";
/// Response header carrying a fresh challenge (with a 403 on refresh, or on a 200 for the
/// next refresh).
pub const CHALLENGE_HEADER: &str = "Secure-Session-Challenge";
/// Request header carrying the browser's signed proof (a JWT).
pub const RESPONSE_HEADER: &str = "Secure-Session-Response";
/// Request header naming the bound session on refresh.
pub const SESSION_ID_HEADER: &str = "Sec-Secure-Session-Id";

/// Paths of the two endpoints the portal serves. Validated: they go into a header.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct DbscPaths {
    registration: String,
    refresh: String,
}

impl DbscPaths {
    /// Defaults: `/verrou/dbsc/register` and `/verrou/dbsc/refresh`.
    pub fn new() -> Self {
        Self {
            registration: "/verrou/dbsc/register".to_owned(),
            refresh: "/verrou/dbsc/refresh".to_owned(),
        }
    }

    /// Other paths: each must start with `/` and hold only visible ASCII other than `"`, `\`
    /// and `;`.
    ///
    /// # Errors
    /// [`crate::leaf_errors::ConfigError::Session`] otherwise.
    pub fn with_paths(
        registration: &str,
        refresh: &str,
    ) -> Result<Self, crate::leaf_errors::ConfigError> {
        for path in [registration, refresh] {
            let plain = path.starts_with('/')
                && path.len() <= 256
                && path
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';'));
            if !plain {
                return Err(crate::leaf_errors::ConfigError::Session("DBSC path"));
            }
        }
        Ok(Self {
            registration: registration.to_owned(),
            refresh: refresh.to_owned(),
        })
    }

    /// The registration endpoint's path.
    pub fn registration(&self) -> &str {
        &self.registration
    }

    /// The refresh endpoint's path.
    pub fn refresh(&self) -> &str {
        &self.refresh
    }

    /// The `Secure-Session-Registration` value offering ES256 with `challenge`.
    pub fn registration_header(&self, challenge: &Challenge) -> String {
        format!(
            "(ES256);path=\"{}\";challenge=\"{}\"",
            self.registration,
            challenge.as_str()
        )
    }

    /// The session instructions JSON a successful registration or refresh answers with.
    pub fn instructions(&self, session: SessionId) -> String {
        let instructions = Instructions {
            session_identifier: session.to_string(),
            refresh_url: &self.refresh,
            scope: Scope {
                include_site: false,
            },
            credentials: [Credential {
                kind: "cookie",
                name: BOUND_COOKIE,
                attributes: COOKIE_ATTRIBUTES,
            }],
        };
        // Serialising plain strings and a bool cannot fail; an empty object would only make
        // the browser end the bound session.
        serde_json::to_string(&instructions).unwrap_or_else(|_| "{}".to_owned())
    }
}

impl Default for DbscPaths {
    fn default() -> Self {
        Self::new()
    }
}

/// The `Secure-Session-Challenge` value: the challenge and the session it is for.
pub fn challenge_header(challenge: &Challenge, session: SessionId) -> String {
    format!("\"{}\";id=\"{session}\"", challenge.as_str())
}

/// The body that tells the browser to end the bound session.
pub const END_SESSION_BODY: &str = r#"{"continue":false}"#;

#[derive(Serialize)]
struct Instructions<'a> {
    session_identifier: String,
    refresh_url: &'a str,
    scope: Scope,
    credentials: [Credential<'a>; 1],
}

#[derive(Serialize)]
struct Scope {
    include_site: bool,
}

#[derive(Serialize)]
struct Credential<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    name: &'a str,
    attributes: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_instructions_follow_the_draft() {
        let paths = DbscPaths::new();
        let challenge = Challenge::generate().unwrap();
        let session = SessionId::generate().unwrap();
        assert_eq!(
            paths.registration_header(&challenge),
            format!(
                "(ES256);path=\"/verrou/dbsc/register\";challenge=\"{}\"",
                challenge.as_str()
            )
        );
        assert_eq!(
            challenge_header(&challenge, session),
            format!("\"{}\";id=\"{session}\"", challenge.as_str())
        );
        let json: serde_json::Value = serde_json::from_str(&paths.instructions(session)).unwrap();
        assert_eq!(json["session_identifier"], session.to_string());
        assert_eq!(json["refresh_url"], "/verrou/dbsc/refresh");
        assert_eq!(json["scope"]["include_site"], false);
        assert_eq!(json["credentials"][0]["type"], "cookie");
        assert_eq!(json["credentials"][0]["name"], BOUND_COOKIE);
        assert_eq!(json["credentials"][0]["attributes"], COOKIE_ATTRIBUTES);
    }

    #[test]
    fn paths_that_could_break_the_header_are_refused() {
        for bad in ["relative", "/a\"b", "/a;b", "/a b", "/a\\b", ""] {
            assert!(DbscPaths::with_paths(bad, "/ok").is_err(), "{bad:?}");
            assert!(DbscPaths::with_paths("/ok", bad).is_err(), "{bad:?}");
        }
        assert!(DbscPaths::with_paths("/a/register", "/a/refresh").is_ok());
    }
}
