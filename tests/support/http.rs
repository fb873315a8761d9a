//! A bare HTTP model and a portal's answers at the device-binding endpoints, shared by the
//! tests that put a browser (played, or headless Chromium) in front of a minimal portal.

use verrou::session::cookie::{clear_cookie, BOUND_COOKIE, SESSION_COOKIE};
use verrou::session::dbsc::{challenge_header, CHALLENGE_HEADER, END_SESSION_BODY};
use verrou::store::Store;
use verrou::{BindingOutcome, Clock, RefreshOutcome, Verrou};

#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn find<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

impl Response {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn with(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_owned(), value));
        self
    }

    pub fn body(mut self, body: String) -> Self {
        self.body = body;
        self
    }
}

/// The registration endpoint's answer: the bound cookie and the session instructions, and no
/// `Secure-Session-Challenge` (Chrome reports one there as an error; the first refresh starts
/// with a 403).
pub fn registration_answer<S: Store, C: Clock>(
    verrou: &Verrou<S, C>,
    outcome: BindingOutcome,
) -> Response {
    match outcome {
        BindingOutcome::Bound(bound) => Response::status(200)
            .with("Set-Cookie", bound.set_cookie_header())
            .body(verrou.dbsc_instructions(bound.session)),
        _ => Response::status(400),
    }
}

/// The refresh endpoint's answer: 403 with a challenge, 200 with the new cookie and the next
/// challenge, or the end of the bound session.
pub fn refresh_answer<S: Store, C: Clock>(
    verrou: &Verrou<S, C>,
    outcome: RefreshOutcome,
) -> Response {
    match outcome {
        RefreshOutcome::Challenge {
            session, challenge, ..
        } => Response::status(403).with(CHALLENGE_HEADER, challenge_header(&challenge, session)),
        RefreshOutcome::Refreshed(bound) => Response::status(200)
            .with("Set-Cookie", bound.set_cookie_header())
            .with(CHALLENGE_HEADER, bound.challenge_header())
            .body(verrou.dbsc_instructions(bound.session)),
        _ => Response::status(200)
            .with("Set-Cookie", clear_cookie(SESSION_COOKIE))
            .with("Set-Cookie", clear_cookie(BOUND_COOKIE))
            .body(END_SESSION_BODY.to_owned()),
    }
}
