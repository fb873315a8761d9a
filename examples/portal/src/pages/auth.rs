//! Sign-in, the second factor (app code or recovery code), forced enrolment, sign-out.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::Deserialize;
use verrou::session::cookie::{clear_cookie, BOUND_COOKIE, SESSION_COOKIE};
use verrou::{ExposeSecret, SecondFactorProof};
use verrou_axum::{local_next, Client, LiveSession, Outcome, Refusal, Session};

use super::{render, see_other, url_encode, with_status};
use crate::app::Portal;
use crate::data::Role;
use crate::passwords::{sign_in as sign_in_with_password, SignIn};
use crate::security::{Checked, Csrf, PortalError};

/// One message for a wrong password and an unknown login.
pub const SIGN_IN_REFUSED: &str = "Wrong login or password.";
/// One message for a wrong, reused or malformed code and a locked account.
pub const CODE_REFUSED: &str = "That code was not accepted.";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
    next: &'a str,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactor<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
    next: &'a str,
    next_encoded: String,
    recovery: bool,
}

#[derive(Template)]
#[template(path = "enrol.html")]
pub struct Enrol<'a> {
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub qr: &'a str,
    pub secret: &'a str,
    pub action: &'a str,
}

impl std::fmt::Debug for Enrol<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrol")
            .field("secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    method: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    login: String,
    password: String,
    next: Option<String>,
}

impl std::fmt::Debug for SignInForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInForm")
            .field("login", &self.login)
            .field("password", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    pub code: String,
    next: Option<String>,
    method: Option<String>,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm")
            .field("code", &"[REDACTED]")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// An empty form (its CSRF token is all it carries).
#[derive(Debug, Deserialize)]
pub struct Empty {}

fn next_of(next: Option<&str>) -> &str {
    next.and_then(local_next).unwrap_or("/")
}

pub async fn home(State(portal): State<Portal>, session: Session) -> Result<Response, PortalError> {
    let staff = portal.db.staff(session.user.as_str()).await?;
    Ok(match staff.map(|staff| staff.role) {
        Some(Role::Staff) => see_other("/seekers"),
        _ => see_other("/operator"),
    })
}

pub async fn sign_in_page(Csrf(csrf): Csrf, Query(query): Query<NextQuery>) -> Response {
    let next = next_of(query.next.as_deref());
    render(&SignInPage {
        csrf: &csrf,
        error: None,
        next,
    })
}

pub async fn sign_in(
    State(portal): State<Portal>,
    Client(ctx): Client,
    Csrf(csrf): Csrf,
    Checked(form): Checked<SignInForm>,
) -> Result<Response, PortalError> {
    let next = next_of(form.next.as_deref());
    let page = |error: &str| {
        render(&SignInPage {
            csrf: &csrf,
            error: Some(error),
            next,
        })
    };
    Ok(
        match sign_in_with_password(&portal, &form.login, &form.password, &ctx).await? {
            SignIn::Session { session, .. } => {
                let location = format!("/second-factor?next={}", url_encode(next));
                let cookie = [(header::SET_COOKIE, session.set_cookie_header())];
                (cookie, see_other(&location)).into_response()
            }
            SignIn::Refused => with_status(StatusCode::UNAUTHORIZED, page(SIGN_IN_REFUSED)),
            SignIn::Throttled { wait } => {
                let minutes = (wait + 59) / 60;
                let message =
                    format!("Too many sign-in attempts. Wait {minutes} minutes and try again.");
                let mut refused = with_status(StatusCode::TOO_MANY_REQUESTS, page(&message));
                refused
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                refused
            }
        },
    )
}

pub async fn second_factor_page(
    State(portal): State<Portal>,
    session: LiveSession,
    Csrf(csrf): Csrf,
    Query(query): Query<NextQuery>,
) -> Result<Response, PortalError> {
    if !portal.verrou.has_active_totp(&session.user).await? {
        return Ok(see_other("/enrol"));
    }
    let next = next_of(query.next.as_deref());
    Ok(render(&SecondFactor {
        csrf: &csrf,
        error: None,
        next,
        next_encoded: url_encode(next),
        recovery: query.method.as_deref() == Some("recovery"),
    }))
}

/// The sentence for a refused code: the same for every refusal but a wait.
fn refused(refusal: Refusal) -> String {
    match refusal.retry_after() {
        Some(wait) if matches!(refusal, Refusal::Throttled { .. } | Refusal::Busy { .. }) => {
            format!(
                "Too many attempts. Wait {} seconds and try again.",
                wait.as_secs().max(1)
            )
        }
        _ => CODE_REFUSED.to_owned(),
    }
}

pub async fn second_factor(
    State(portal): State<Portal>,
    session: LiveSession,
    Csrf(csrf): Csrf,
    Checked(form): Checked<CodeForm>,
) -> Result<Response, PortalError> {
    let (verrou, user, ctx) = (&portal.verrou, &session.user, session.client());
    let recovery = form.method.as_deref() == Some("recovery");
    let proof: Result<SecondFactorProof, Refusal> = if recovery {
        let outcome = verrou.verify_recovery_code(user, &form.code, ctx).await?;
        outcome.into_result().map(|(_, proof)| proof)
    } else {
        let outcome = verrou.verify_totp(user, &form.code, ctx).await?;
        outcome.into_result().map(|accepted| accepted.proof)
    };
    let next = next_of(form.next.as_deref());
    match proof {
        Ok(proof) => elevate(&portal, &session, proof, next).await,
        Err(refusal) => {
            tracing::info!(refusal = refusal.code(), "second factor refused");
            let message = refused(refusal);
            let page = render(&SecondFactor {
                csrf: &csrf,
                error: Some(&message),
                next,
                next_encoded: url_encode(next),
                recovery,
            });
            let status = match refusal {
                Refusal::Throttled { .. } | Refusal::Busy { .. } => refusal.status(),
                _ => StatusCode::UNAUTHORIZED,
            };
            Ok(with_status(status, page))
        }
    }
}

/// Raises the session with `proof` and binds the device on the way to `next`.
async fn elevate(
    portal: &Portal,
    session: &LiveSession,
    proof: SecondFactorProof,
    next: &str,
) -> Result<Response, PortalError> {
    let token = session.token().expose_secret();
    let outcome = portal
        .verrou
        .record_second_factor(token, proof, session.client())
        .await?;
    match outcome.into_result() {
        Ok(elevated) => Ok(portal.guard.continue_after_second_factor(&elevated, next)),
        Err(_) => Ok(see_other("/sign-in")),
    }
}

pub async fn enrol_page(
    State(portal): State<Portal>,
    session: LiveSession,
    Csrf(csrf): Csrf,
) -> Result<Response, PortalError> {
    enrolment(&portal, &session, &csrf, None).await
}

/// A new pending factor and the page that shows it.
async fn enrolment(
    portal: &Portal,
    session: &LiveSession,
    csrf: &str,
    error: Option<&str>,
) -> Result<Response, PortalError> {
    if portal.verrou.has_active_totp(&session.user).await? {
        return Ok(see_other("/second-factor"));
    }
    let offer = portal
        .verrou
        .start_totp_enrollment(&session.user, session.user.as_str(), session.client())
        .await?;
    let qr = offer.qr_svg_inline()?;
    Ok(render(&Enrol {
        csrf,
        error,
        qr: qr.expose_secret(),
        secret: offer.secret_base32().expose_secret(),
        action: "/enrol",
    }))
}

pub async fn enrol(
    State(portal): State<Portal>,
    session: LiveSession,
    Csrf(csrf): Csrf,
    Checked(form): Checked<CodeForm>,
) -> Result<Response, PortalError> {
    let outcome = portal
        .verrou
        .finish_totp_enrollment(&session.user, &form.code, session.client())
        .await?;
    match outcome.into_result() {
        Ok((_, proof)) => elevate(&portal, &session, proof, "/account?enrolled=1").await,
        Err(refusal) => {
            // verrou hands a pending secret out once: a new one, to scan again.
            let message = format!("{} Scan this new code and try again.", refused(refusal));
            let page = enrolment(&portal, &session, &csrf, Some(&message)).await?;
            Ok(with_status(StatusCode::UNAUTHORIZED, page))
        }
    }
}

pub async fn logout(
    State(portal): State<Portal>,
    session: LiveSession,
    Checked(Empty {}): Checked<Empty>,
) -> Result<Response, PortalError> {
    let _ = portal
        .verrou
        .logout(session.token().expose_secret(), session.client())
        .await?;
    let clear = AppendHeaders([
        (header::SET_COOKIE, clear_cookie(SESSION_COOKIE)),
        (header::SET_COOKIE, clear_cookie(BOUND_COOKIE)),
    ]);
    Ok((clear, see_other("/sign-in")).into_response())
}
