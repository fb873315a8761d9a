//! A DBSC-capable browser, played by the test against a minimal portal wired to verrou,
//! following the W3C WebAppSec DBSC draft: the registration offer header, the single-round-trip
//! registration with a signed JWT, the session instructions, the bound cookie, the 403
//! challenge on refresh, and the one-round-trip refreshes after it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::time::Duration;

use verrou::session::cookie::{set_cookie, BOUND_COOKIE, SESSION_COOKIE};
use verrou::session::dbsc::{
    CHALLENGE_HEADER, END_SESSION_BODY, REGISTRATION_HEADER, RESPONSE_HEADER, SESSION_ID_HEADER,
};
use verrou::session::{BindingKind, Requirement};
use verrou::store::MemoryStore;
use verrou::testing::{InsecureDevice, InsecureManualClock};
use verrou::{
    ClientContext, Clock, ElevationOutcome, RefreshOutcome, SessionCookies, SessionStatus,
    TotpOutcome, Verrou,
};

use crate::support::http::{refresh_answer, registration_answer, Request, Response};
use crate::support::{config, enrolled, Enrolled};

/// The portal: what an axum or actix-web handler would do with verrou, minus the framework.
struct Portal {
    e: Enrolled<MemoryStore>,
}

impl Portal {
    fn verrou(&self) -> &Verrou<MemoryStore, InsecureManualClock> {
        &self.e.verrou
    }

    async fn handle(&self, request: Request) -> Response {
        let ctx = ClientContext::unknown();
        let cookie_header = request.header("Cookie").unwrap_or_default().to_owned();
        let cookies = SessionCookies::from_header(&cookie_header);
        let paths = self.verrou().config().session_policy().dbsc_paths().clone();
        match request.path.as_str() {
            // The password was checked: a password-only session.
            "/login" => {
                let new = self
                    .verrou()
                    .create_session(&self.e.user, None, &ctx)
                    .await
                    .unwrap();
                Response::status(303).with(
                    "Set-Cookie",
                    set_cookie(SESSION_COOKIE, &new.token, new.max_age),
                )
            }
            // The second factor: elevate, rotate the cookie, offer binding.
            "/second-factor" => {
                let code = request.body.clone();
                let TotpOutcome::Accepted(accepted) = self
                    .verrou()
                    .verify_totp(&self.e.user, &code, &ctx)
                    .await
                    .unwrap()
                else {
                    return Response::status(401);
                };
                let session = cookies.unwrap().session();
                let ElevationOutcome::Elevated(elevated) = self
                    .verrou()
                    .record_second_factor(session, accepted.proof, &ctx)
                    .await
                    .unwrap()
                else {
                    return Response::status(401);
                };
                let mut response = Response::status(303).with(
                    "Set-Cookie",
                    set_cookie(SESSION_COOKIE, &elevated.token, elevated.max_age),
                );
                if let Some(offer) = &elevated.binding_offer {
                    response = response.with(REGISTRATION_HEADER, paths.registration_header(offer));
                }
                response
            }
            path if path == paths.registration() => {
                let proof = request.header(RESPONSE_HEADER).unwrap_or_default();
                let session = cookies.unwrap().session();
                let outcome = self
                    .verrou()
                    .register_binding(session, proof, BindingKind::Dbsc, &ctx)
                    .await
                    .unwrap();
                registration_answer(self.verrou(), outcome)
            }
            path if path == paths.refresh() => {
                let Some(cookies) = cookies else {
                    return Response::status(401);
                };
                let proof = request.header(RESPONSE_HEADER);
                let outcome = self
                    .verrou()
                    .refresh_binding(cookies.session(), proof, &ctx)
                    .await
                    .unwrap();
                if let RefreshOutcome::Challenge { session, .. } = &outcome {
                    // The browser names the session it refreshes.
                    let named = request.header(SESSION_ID_HEADER);
                    assert_eq!(named, Some(session.to_string().as_str()));
                }
                refresh_answer(self.verrou(), outcome)
            }
            // An ordinary page: second factor and, once bound, the bound cookie.
            _ => {
                let Some(cookies) = cookies else {
                    return Response::status(401);
                };
                let status = self
                    .verrou()
                    .authenticate(&cookies, Requirement::SecondFactor, &ctx)
                    .await
                    .unwrap();
                match status {
                    SessionStatus::Active(_) => {
                        Response::status(200).body("job-seekers".to_owned())
                    }
                    _ => Response::status(401),
                }
            }
        }
    }
}

/// The browser: a cookie jar with expiries, a device key, and the DBSC state the draft keeps.
struct Browser {
    jar: HashMap<String, (String, u64)>,
    device: Option<InsecureDevice>,
    session_identifier: Option<String>,
    refresh_url: Option<String>,
    cached_challenge: Option<String>,
    clock: InsecureManualClock,
}

impl Browser {
    fn now(&self) -> u64 {
        self.clock.now().unwrap().unix_seconds()
    }

    fn store_cookies(&mut self, response: &Response) {
        for (name, value) in &response.headers {
            if !name.eq_ignore_ascii_case("Set-Cookie") {
                continue;
            }
            let mut parts = value.split("; ");
            let (cookie, content) = parts.next().unwrap().split_once('=').unwrap();
            let attributes: Vec<&str> = parts.collect();
            // What a browser enforces for a __Host- cookie.
            assert!(cookie.starts_with("__Host-"));
            for required in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
                assert!(attributes.contains(&required), "{value}");
            }
            assert!(!attributes.iter().any(|a| a.starts_with("Domain")));
            let max_age: u64 = attributes
                .iter()
                .find_map(|a| a.strip_prefix("Max-Age="))
                .unwrap()
                .parse()
                .unwrap();
            if max_age == 0 {
                self.jar.remove(cookie);
            } else {
                let expiry = self.now() + max_age;
                self.jar
                    .insert(cookie.to_owned(), (content.to_owned(), expiry));
            }
        }
    }

    fn cookie_header(&mut self) -> String {
        let now = self.now();
        self.jar.retain(|_, (_, expiry)| *expiry > now);
        self.jar
            .iter()
            .map(|(name, (value, _))| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(
        &mut self,
        portal: &Portal,
        path: &str,
        headers: Vec<(String, String)>,
    ) -> Response {
        self.send_form(portal, path, headers, None).await
    }

    async fn send_form(
        &mut self,
        portal: &Portal,
        path: &str,
        mut headers: Vec<(String, String)>,
        form: Option<String>,
    ) -> Response {
        headers.push(("Cookie".to_owned(), self.cookie_header()));
        let request = Request {
            method: "POST".to_owned(),
            path: path.to_owned(),
            headers,
            body: form.unwrap_or_default(),
        };
        let response = portal.handle(request).await;
        self.store_cookies(&response);
        if let Some(offer) = response.header(REGISTRATION_HEADER).map(str::to_owned) {
            self.register(portal, &offer).await;
        }
        response
    }

    /// Registration, as the draft has it: parse the structured header, make a key, sign the
    /// challenge, post it, keep the instructions.
    async fn register(&mut self, portal: &Portal, offer: &str) {
        let (algorithms, params) = offer.split_once(';').unwrap();
        assert_eq!(algorithms, "(ES256)");
        let param = |name: &str| {
            params
                .split(';')
                .find_map(|p| p.strip_prefix(&format!("{name}=\"")))
                .and_then(|v| v.strip_suffix('"'))
                .unwrap()
                .to_owned()
        };
        let (path, challenge) = (param("path"), param("challenge"));
        let device = InsecureDevice::generate().unwrap();
        let proof = device.registration_proof(&challenge);
        let headers = vec![(RESPONSE_HEADER.to_owned(), proof)];
        let response = Box::pin(self.send(portal, &path, headers)).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header(CHALLENGE_HEADER), None);
        let instructions: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        let credential = &instructions["credentials"][0];
        assert_eq!(credential["type"], "cookie");
        assert_eq!(credential["name"], BOUND_COOKIE);
        // The attributes repeat the Set-Cookie's exactly (lifetime aside).
        let set_cookie = response.header("Set-Cookie").unwrap();
        let (_, attributes) = set_cookie.split_once("; ").unwrap();
        let attributes = attributes.rsplit_once("; Max-Age=").unwrap().0;
        assert_eq!(credential["attributes"], attributes);
        assert_eq!(instructions["scope"]["include_site"], false);
        self.session_identifier = Some(
            instructions["session_identifier"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        self.refresh_url = Some(instructions["refresh_url"].as_str().unwrap().to_owned());
        self.device = Some(device);
    }

    /// Before a request in scope: if the bound cookie is missing, refresh it (the browser holds
    /// the request back meanwhile). Returns how many round trips it took.
    async fn ensure_bound_cookie(&mut self, portal: &Portal) -> usize {
        self.cookie_header();
        if self.jar.contains_key(BOUND_COOKIE) || self.device.is_none() {
            return 0;
        }
        let url = self.refresh_url.clone().unwrap();
        let id = self.session_identifier.clone().unwrap();
        let mut trips = 0;
        loop {
            let mut headers = vec![(SESSION_ID_HEADER.to_owned(), id.clone())];
            if let Some(challenge) = self.cached_challenge.take() {
                let proof = self.device.as_ref().unwrap().refresh_proof(&challenge);
                headers.push((RESPONSE_HEADER.to_owned(), proof));
            }
            let response = self.send(portal, &url, headers).await;
            trips += 1;
            let challenge = response.header(CHALLENGE_HEADER).map(str::to_owned);
            if let Some(value) = challenge {
                // "<nonce>";id="<session identifier>": the id parameter is required.
                let (nonce, rest) = value.strip_prefix('"').unwrap().split_once('"').unwrap();
                assert_eq!(rest, format!(";id=\"{id}\""));
                self.cached_challenge = Some(nonce.to_owned());
            }
            match response.status {
                403 => assert!(trips < 3, "refresh did not converge"),
                200 => return trips,
                other => panic!("refresh answered {other}"),
            }
        }
    }

    async fn get(&mut self, portal: &Portal, path: &str) -> Response {
        self.ensure_bound_cookie(portal).await;
        self.send(portal, path, Vec::new()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dbsc_browser_registers_and_refreshes_as_the_draft_describes() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let clock = e.clock.clone();
    let portal = Portal { e };
    let mut browser = Browser {
        jar: HashMap::new(),
        device: None,
        session_identifier: None,
        refresh_url: None,
        cached_challenge: None,
        clock: clock.clone(),
    };

    browser.send(&portal, "/login", Vec::new()).await;
    assert_eq!(browser.get(&portal, "/export").await.status, 401);
    portal.e.advance_steps(1);
    let code = portal.e.code(0);
    browser
        .send_form(&portal, "/second-factor", Vec::new(), Some(code))
        .await;
    // Registered during the second-factor response; the bound cookie is in the jar.
    assert!(browser.device.is_some());
    assert!(browser.jar.contains_key(BOUND_COOKIE));
    assert_eq!(browser.get(&portal, "/export").await.status, 200);

    // The bound cookie expires: the first refresh takes two round trips (403 + challenge,
    // then the proof), and renews the cookie with a new value.
    let first_value = browser.jar[BOUND_COOKIE].0.clone();
    clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(browser.ensure_bound_cookie(&portal).await, 2);
    assert_ne!(browser.jar[BOUND_COOKIE].0, first_value);
    assert_eq!(browser.get(&portal, "/export").await.status, 200);
    // Later refreshes use the challenge of the previous answer: one round trip.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(5 * 60 + 1));
        assert_eq!(browser.ensure_bound_cookie(&portal).await, 1);
        assert_eq!(browser.get(&portal, "/export").await.status, 200);
    }

    // A cookie jar copied to a machine without the key: refused once the cookie expires.
    let mut thief = Browser {
        jar: browser.jar.clone(),
        device: None,
        session_identifier: None,
        refresh_url: None,
        cached_challenge: None,
        clock: clock.clone(),
    };
    assert_eq!(thief.get(&portal, "/export").await.status, 200);
    clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(thief.get(&portal, "/export").await.status, 401);
    assert_eq!(browser.get(&portal, "/export").await.status, 200);

    // A refresh with a proof from another key ends the bound session: `continue: false`.
    let impostor = InsecureDevice::generate().unwrap();
    browser.device = Some(impostor);
    clock.advance(Duration::from_secs(5 * 60 + 1));
    let url = browser.refresh_url.clone().unwrap();
    let id = browser.session_identifier.clone().unwrap();
    let challenge = browser.cached_challenge.clone().unwrap();
    let proof = browser.device.as_ref().unwrap().refresh_proof(&challenge);
    let headers = vec![
        (SESSION_ID_HEADER.to_owned(), id),
        (RESPONSE_HEADER.to_owned(), proof),
    ];
    let ended = browser.send(&portal, &url, headers).await;
    assert_eq!(ended.body, END_SESSION_BODY);
    assert!(!browser.jar.contains_key(SESSION_COOKIE));
}

#[tokio::test]
async fn a_sessions_page_sees_how_each_session_is_bound_and_when_it_was_last_used() {
    let e = enrolled(MemoryStore::new(), config()).await;
    let device = InsecureDevice::generate().unwrap();
    let bound = e.bound_browser(&device).await;
    let mut unbound = e.sign_in(None).await;
    e.elevate(&mut unbound).await;
    assert_eq!(
        e.verrou.session_binding(bound.id).await.unwrap(),
        Some(BindingKind::Dbsc)
    );
    assert_eq!(e.verrou.session_binding(unbound.id).await.unwrap(), None);

    let before = e.clock.now().unwrap();
    // Within the binding grace, past the one-minute touch interval.
    e.clock.advance(Duration::from_secs(90));
    let status = e.status(&unbound, Requirement::AnySession).await;
    assert!(matches!(status, SessionStatus::Active(_)), "{status:?}");
    let sessions = e.verrou.user_sessions(&e.user).await.unwrap();
    let seen = |id| sessions.iter().find(|s| s.id == id).unwrap().last_seen;
    assert_eq!(seen(unbound.id), e.clock.now().unwrap(), "used just now");
    assert!(seen(bound.id) <= before, "not used since it bound");
}
