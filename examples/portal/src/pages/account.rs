//! Account security (recovery codes and re-enrolment behind step-up) and the sessions page.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use verrou::session::{BindingKind, RevocationScope};
use verrou::{AuditKind, ExposeSecret, SecondFactorMethod, SessionId};
use verrou_axum::{Outcome, Refusal, Session, StepUp};

use super::auth::{CodeForm, Empty, Enrol};
use super::{render, see_other, url_encode, with_status, Nav};
use crate::app::Portal;
use crate::security::{Checked, Csrf, PortalError};

#[derive(Template)]
#[template(path = "account.html")]
struct Account<'a> {
    nav: Option<Nav>,
    csrf: &'a str,
    notice: Option<&'a str>,
    enrolled: bool,
    codes_left: usize,
    second_factor_age: String,
}

#[derive(Template)]
#[template(path = "codes.html")]
struct Codes {
    nav: Option<Nav>,
    codes: Vec<String>,
    download: String,
}

#[derive(Debug, Deserialize)]
pub struct Notice {
    enrolled: Option<String>,
    notice: Option<String>,
}

pub async fn account(
    State(portal): State<Portal>,
    session: Session,
    Csrf(csrf): Csrf,
    Query(query): Query<Notice>,
) -> Result<Response, PortalError> {
    let notice = match (query.enrolled.is_some(), query.notice.as_deref()) {
        (true, _) => Some("Two-factor authentication is on. Now make your recovery codes."),
        (_, Some("reenrolled")) => {
            Some("Your new phone is set up; every other session was signed out.")
        }
        _ => None,
    };
    account_page(&portal, &session, &csrf, notice, StatusCode::OK).await
}

async fn account_page<N: verrou_axum::Need>(
    portal: &Portal,
    session: &Session<N>,
    csrf: &str,
    notice: Option<&str>,
    status: StatusCode,
) -> Result<Response, PortalError> {
    let verrou = &portal.verrou;
    let second_factor_age = match session.second_factor {
        Some(passed) => portal.ago(passed.at),
        None => "not passed".to_owned(),
    };
    let page = render(&Account {
        nav: portal.nav(&session.user, csrf).await?,
        csrf,
        notice,
        enrolled: verrou.has_active_totp(&session.user).await?,
        codes_left: verrou.remaining_recovery_codes(&session.user).await?,
        second_factor_age,
    });
    Ok(with_status(status, page))
}

pub async fn new_recovery_codes(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Csrf(csrf): Csrf,
    Checked(Empty {}): Checked<Empty>,
) -> Result<Response, PortalError> {
    let proof = session.step_up_proof().ok_or(PortalError::Forbidden)?;
    let outcome = portal
        .verrou
        .generate_recovery_codes(proof, session.client())
        .await?;
    let set = match outcome.into_result() {
        Ok(set) => set,
        Err(refusal) => return refused_action(&portal, &session, &csrf, refusal).await,
    };
    let codes: Vec<String> = set
        .codes()
        .iter()
        .map(|code| code.expose_secret().to_owned())
        .collect();
    let text = format!("Partner portal recovery codes\n\n{}\n", codes.join("\n"));
    let download = format!(
        "data:text/plain;charset=utf-8,{}",
        url_encode(&text).replace('+', "%20")
    );
    Ok(render(&Codes {
        nav: portal.nav(&session.user, &csrf).await?,
        codes,
        download,
    }))
}

async fn refused_action(
    portal: &Portal,
    session: &Session<StepUp>,
    csrf: &str,
    refusal: Refusal,
) -> Result<Response, PortalError> {
    account_page(
        portal,
        session,
        csrf,
        Some(refusal.message()),
        refusal.status(),
    )
    .await
}

pub async fn reenrol(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Csrf(csrf): Csrf,
    Checked(Empty {}): Checked<Empty>,
) -> Result<Response, PortalError> {
    let proof = session.step_up_proof().ok_or(PortalError::Forbidden)?;
    let outcome = portal
        .verrou
        .start_totp_reenrollment(proof, session.user.as_str(), session.client())
        .await?;
    let offer = match outcome.into_result() {
        Ok(offer) => offer,
        Err(refusal) => return refused_action(&portal, &session, &csrf, refusal).await,
    };
    let qr = offer.qr_svg_inline()?;
    Ok(render(&Enrol {
        csrf: &csrf,
        error: None,
        qr: qr.expose_secret(),
        secret: offer.secret_base32().expose_secret(),
        action: "/account/reenrol/confirm",
    }))
}

pub async fn reenrol_confirm(
    State(portal): State<Portal>,
    session: Session,
    Csrf(csrf): Csrf,
    Checked(form): Checked<CodeForm>,
) -> Result<Response, PortalError> {
    let outcome = portal
        .verrou
        .finish_totp_reenrollment(
            &session.user,
            &form.code,
            Some(session.id),
            session.client(),
        )
        .await?;
    match outcome.into_result() {
        Ok(_) => Ok(see_other("/account?notice=reenrolled")),
        Err(refusal) => {
            let message = "That code was not accepted: start the move to a new phone again.";
            account_page(&portal, &session, &csrf, Some(message), refusal.status()).await
        }
    }
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct Sessions<'a> {
    nav: Option<Nav>,
    csrf: &'a str,
    notice: Option<&'a str>,
    rows: Vec<SessionRow>,
}

struct SessionRow {
    id: String,
    created: String,
    last_seen: String,
    address: String,
    binding: &'static str,
    second_factor: String,
    current: bool,
}

pub async fn sessions(
    State(portal): State<Portal>,
    session: Session,
    Csrf(csrf): Csrf,
    Query(query): Query<Notice>,
) -> Result<Response, PortalError> {
    let verrou = &portal.verrou;
    let live = portal.bound_sessions(&session.user).await?;
    // Where each session started: the address verrou's audit trail recorded at sign-in.
    let mut address = HashMap::new();
    for event in verrou.audit_trail(Some(&session.user), 2_000).await? {
        if let AuditKind::SessionCreated { session } = event.kind {
            address.entry(session).or_insert(event.client);
        }
    }
    let rows = live
        .iter()
        .map(|(active, binding)| SessionRow {
            id: active.id.to_string(),
            created: portal.ago(active.created_at),
            last_seen: portal.ago(active.last_seen),
            address: address
                .get(&active.id)
                .copied()
                .flatten()
                .map_or_else(|| "unknown".to_owned(), |addr| addr.to_string()),
            binding: match binding {
                Some(BindingKind::Dbsc) => "the browser's DBSC key",
                Some(BindingKind::WebCrypto) => "a WebCrypto key",
                _ => "none",
            },
            second_factor: match active.second_factor {
                Some(passed) => {
                    let how = match passed.method {
                        SecondFactorMethod::RecoveryCode => "recovery code",
                        _ => "app",
                    };
                    format!("{}, {how}", portal.ago(passed.at))
                }
                None => "not passed".to_owned(),
            },
            current: active.id == session.id,
        })
        .collect();
    let notice = match query.notice.as_deref() {
        Some("revoked") => Some("That session is signed out."),
        Some("others") => Some("Every other session is signed out."),
        _ => None,
    };
    Ok(render(&Sessions {
        nav: portal.nav(&session.user, &csrf).await?,
        csrf: &csrf,
        notice,
        rows,
    }))
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    session: String,
}

pub async fn revoke(
    State(portal): State<Portal>,
    session: Session,
    Checked(form): Checked<RevokeForm>,
) -> Result<Response, PortalError> {
    let id = SessionId::parse(&form.session).map_err(|_| PortalError::BadForm)?;
    // Only one of the user's own sessions.
    if !portal
        .revoke_own_session(session.active(), id, session.client())
        .await?
    {
        return Err(PortalError::NotFound);
    }
    Ok(see_other("/sessions?notice=revoked"))
}

pub async fn revoke_others(
    State(portal): State<Portal>,
    session: Session,
    Checked(Empty {}): Checked<Empty>,
) -> Result<Response, PortalError> {
    let scope = RevocationScope::User {
        user: session.user.clone(),
        except: Some(session.id),
    };
    portal
        .verrou
        .revoke_sessions(&scope, session.client())
        .await?;
    Ok(see_other("/sessions?notice=others"))
}
