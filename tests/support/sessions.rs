//! A browser's view of a session, and the enrolled user's session steps (sign in, pass the
//! second factor, bind the device, refresh), for tests that drive sessions.

use std::time::Duration;

use verrou::session::{BindingKind, BindingMode, Challenge, Requirement, SessionPolicy};
use verrou::store::Store;
use verrou::testing::InsecureDevice;
use verrou::{
    BindingOutcome, ClientContext, ElevationOutcome, OrgId, RefreshOutcome, SessionCookies,
    SessionId, SessionStatus,
};

use super::*;

/// Binding off, to look at lifetimes and assurance alone.
pub fn unbound_config() -> VerrouConfig {
    let policy = SessionPolicy::new()
        .with_binding(BindingMode::Off, Duration::from_secs(300))
        .unwrap();
    config().with_session_policy(policy)
}

/// A status's kind, and the session it names (for the statuses that name one).
pub fn status_for(status: SessionStatus) -> (&'static str, Option<SessionId>) {
    match status {
        SessionStatus::Active(session) => ("Active", Some(session.id)),
        SessionStatus::SecondFactorRequired(session) => ("SecondFactorRequired", Some(session.id)),
        SessionStatus::StepUpRequired { session, .. } => ("StepUpRequired", Some(session.id)),
        SessionStatus::RefreshRequired { session } => ("RefreshRequired", Some(session.id)),
        SessionStatus::BindingMissing { session } => ("BindingMissing", Some(session.id)),
        SessionStatus::Expired(_) => ("Expired", None),
        SessionStatus::NotFound => ("NotFound", None),
        SessionStatus::Malformed => ("Malformed", None),
        _ => ("other", None),
    }
}

/// A user's browser: its cookies, and its device key once bound.
pub struct Browser {
    pub session: String,
    pub bound: Option<String>,
    pub id: SessionId,
}

impl Browser {
    pub fn cookies(&self) -> SessionCookies<'_> {
        SessionCookies::new(&self.session, self.bound.as_deref())
    }
}

impl<S: Store> Enrolled<S> {
    /// Signs in with the password: a password-only session.
    pub async fn sign_in(&self, org: Option<&str>) -> Browser {
        let org = org.map(|org| OrgId::new(org).unwrap());
        let new = self
            .verrou
            .create_session(&self.user, org.as_ref(), &ClientContext::unknown())
            .await
            .unwrap();
        Browser {
            session: new.token.expose_secret().to_owned(),
            bound: None,
            id: new.session,
        }
    }

    /// Passes the second factor in the browser's session; returns the binding offer.
    pub async fn elevate(&self, browser: &mut Browser) -> Option<Challenge> {
        self.advance_steps(1);
        let proof = self.accept(&self.code(0)).await.proof;
        let outcome = self
            .verrou
            .record_second_factor(&browser.session, proof, &ClientContext::unknown())
            .await
            .unwrap();
        let ElevationOutcome::Elevated(elevated) = outcome else {
            panic!("elevation refused: {outcome:?}");
        };
        browser.session = elevated.token.expose_secret().to_owned();
        elevated.binding_offer
    }

    pub async fn status(&self, browser: &Browser, requirement: Requirement) -> SessionStatus {
        self.verrou
            .authenticate(&browser.cookies(), requirement, &ClientContext::unknown())
            .await
            .unwrap()
    }

    /// Two elevated sessions of the user: the one acting, with its step-up proof, and
    /// another one.
    pub async fn acting_and_other(&self) -> (Browser, Browser, verrou::SecondFactorProof) {
        let mut acting = self.sign_in(None).await;
        let mut other = self.sign_in(None).await;
        self.elevate(&mut other).await;
        self.elevate(&mut acting).await;
        let SessionStatus::Active(session) =
            self.status(&acting, Requirement::RecentSecondFactor).await
        else {
            panic!("fresh session refused");
        };
        (acting, other, session.step_up_proof().unwrap())
    }

    /// Signs in, passes the second factor and registers `device` (the DBSC flow).
    pub async fn bound_browser(&self, device: &InsecureDevice) -> Browser {
        let mut browser = self.sign_in(Some("org-1")).await;
        let challenge = self.elevate(&mut browser).await.expect("binding offered");
        let proof = device.registration_proof(challenge.as_str());
        let outcome = self
            .verrou
            .register_binding(
                &browser.session,
                &proof,
                BindingKind::Dbsc,
                &ClientContext::unknown(),
            )
            .await
            .unwrap();
        let BindingOutcome::Bound(credential) = outcome else {
            panic!("registration refused: {outcome:?}");
        };
        browser.bound = Some(credential.cookie.expose_secret().to_owned());
        browser
    }

    /// The browser refreshes its bound cookie: asks for a challenge, signs it with `device`.
    pub async fn refresh(&self, browser: &mut Browser, device: &InsecureDevice) -> RefreshOutcome {
        let ctx = ClientContext::unknown();
        let first = self
            .verrou
            .refresh_binding(&browser.session, None, &ctx)
            .await
            .unwrap();
        let RefreshOutcome::Challenge { challenge, .. } = first else {
            return first;
        };
        let proof = device.refresh_proof(challenge.as_str());
        let outcome = self
            .verrou
            .refresh_binding(&browser.session, Some(&proof), &ctx)
            .await
            .unwrap();
        if let RefreshOutcome::Refreshed(credential) = &outcome {
            browser.bound = Some(credential.cookie.expose_secret().to_owned());
        }
        outcome
    }
}
