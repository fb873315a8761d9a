//! The operator console: end sessions (an organisation's, a user's, all before an instant),
//! reset a user's factor, lift a lock, and read the audit trail (verrou's and the portal's,
//! export alerts included), filtered. The console needs the second factor; every action needs
//! it within the step-up window.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use verrou::session::RevocationScope;
use verrou::{OrgId, Timestamp, UserId};
use verrou_axum::{Need, Session, StepUp};

use super::{render, see_other, Nav};
use crate::app::Portal;
use crate::data::{Role, Staff};
use crate::security::{Checked, Csrf, PortalError};
use crate::time::{format_utc, parse_utc};

#[derive(Template)]
#[template(path = "operator.html")]
struct Console<'a> {
    nav: Option<Nav>,
    csrf: &'a str,
    notice: Option<String>,
    orgs: Vec<(String, String)>,
    filter: Filter,
    events: Vec<Row>,
}

struct Row {
    at: String,
    user: String,
    org: String,
    kind: String,
    detail: String,
    unix: i64,
}

/// The audit filter (every field optional; times are UTC `datetime-local` values).
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    user: String,
    #[serde(default)]
    org: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    notice: Option<String>,
    n: Option<u64>,
}

/// Refuses anyone but an operator.
/// The operator's account; anyone else is refused.
async fn operator<N: Need>(portal: &Portal, session: &Session<N>) -> Result<Staff, PortalError> {
    match portal.db.staff(session.user.as_str()).await? {
        Some(staff) if staff.role == Role::Operator => Ok(staff),
        _ => Err(PortalError::Forbidden),
    }
}

pub async fn console(
    State(portal): State<Portal>,
    session: Session,
    Csrf(csrf): Csrf,
    Query(filter): Query<Filter>,
) -> Result<Response, PortalError> {
    let staff = operator(&portal, &session).await?;
    let orgs = portal.db.orgs().await?;
    let org_of: HashMap<String, String> = portal.db.staff_orgs().await?.into_iter().collect();
    let mut events: Vec<Row> = Vec::new();
    for event in portal.verrou.audit_trail(None, 5_000).await? {
        let unix = i64::try_from(event.at.unix_seconds()).unwrap_or(i64::MAX);
        let user = event.user.as_str().to_owned();
        events.push(Row {
            at: format_utc(unix),
            org: org_of.get(&user).cloned().unwrap_or_default(),
            user,
            kind: event.kind.name().to_owned(),
            detail: format!("{:?}", event.kind),
            unix,
        });
    }
    for event in portal.db.audit_trail(5_000).await? {
        events.push(Row {
            at: format_utc(event.at),
            user: event.login,
            org: event.org.unwrap_or_default(),
            kind: event.kind,
            detail: event.detail,
            unix: event.at,
        });
    }
    let (from, to) = (parse_utc(&filter.from), parse_utc(&filter.to));
    events.retain(|row| {
        (filter.user.is_empty() || row.user == filter.user)
            && (filter.org.is_empty() || row.org == filter.org)
            && (filter.kind.is_empty() || row.kind == filter.kind)
            && from.is_none_or(|from| row.unix >= from)
            && to.is_none_or(|to| row.unix <= to)
    });
    events.sort_by_key(|row| std::cmp::Reverse(row.unix));
    events.truncate(500);
    let notice = match (filter.notice.as_deref(), filter.n) {
        (Some("revoked"), Some(n)) => Some(format!("{n} sessions ended.")),
        (Some("reset"), _) => Some("The factor is reset; the user enrols at next sign-in.".into()),
        (Some("no-factor"), _) => Some("That user had no factor.".into()),
        (Some("lifted"), _) => Some("The lock is lifted.".into()),
        _ => None,
    };
    Ok(render(&Console {
        nav: portal.nav_for(staff, &csrf),
        csrf: &csrf,
        notice,
        orgs,
        filter,
        events,
    }))
}

#[derive(Debug, Deserialize)]
pub struct OrgForm {
    org: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    login: String,
}

#[derive(Debug, Deserialize)]
pub struct BeforeForm {
    before: String,
}

async fn revoke(
    portal: &Portal,
    session: &Session<StepUp>,
    scope: RevocationScope,
) -> Result<Response, PortalError> {
    let ended = portal
        .verrou
        .revoke_sessions(&scope, session.client())
        .await?;
    Ok(see_other(&format!("/operator?notice=revoked&n={ended}")))
}

pub async fn revoke_org(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<OrgForm>,
) -> Result<Response, PortalError> {
    operator(&portal, &session).await?;
    let org = OrgId::new(&form.org).map_err(|_| PortalError::BadForm)?;
    revoke(&portal, &session, RevocationScope::Org(org)).await
}

pub async fn revoke_user(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, PortalError> {
    operator(&portal, &session).await?;
    let user = UserId::new(&form.login).map_err(|_| PortalError::BadForm)?;
    revoke(
        &portal,
        &session,
        RevocationScope::User { user, except: None },
    )
    .await
}

pub async fn revoke_before(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<BeforeForm>,
) -> Result<Response, PortalError> {
    operator(&portal, &session).await?;
    let before = parse_utc(&form.before)
        .and_then(|unix| u64::try_from(unix).ok())
        .and_then(|unix| Timestamp::from_unix_seconds(unix).ok())
        .ok_or(PortalError::BadForm)?;
    revoke(&portal, &session, RevocationScope::IssuedBefore(before)).await
}

pub async fn reset_factor(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, PortalError> {
    operator(&portal, &session).await?;
    let user = UserId::new(&form.login).map_err(|_| PortalError::BadForm)?;
    let had = portal.verrou.remove_totp_factor(&user).await?;
    Ok(see_other(if had {
        "/operator?notice=reset"
    } else {
        "/operator?notice=no-factor"
    }))
}

pub async fn lift_lock(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, PortalError> {
    operator(&portal, &session).await?;
    let user = UserId::new(&form.login).map_err(|_| PortalError::BadForm)?;
    portal.verrou.lift_lock(&user).await?;
    Ok(see_other("/operator?notice=lifted"))
}
