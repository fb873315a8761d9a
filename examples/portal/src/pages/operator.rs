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

impl Filter {
    /// Whether each time bound given is a time (the console ignores one that is not; the API
    /// refuses it).
    pub(crate) fn times_parse(&self) -> bool {
        [&self.from, &self.to]
            .into_iter()
            .all(|time| time.is_empty() || parse_utc(time).is_some())
    }
}

/// The operator's account; anyone else is refused.
pub(crate) async fn operator<N: Need>(
    portal: &Portal,
    session: &Session<N>,
) -> Result<Staff, PortalError> {
    match portal.db.staff(session.user.as_str()).await? {
        Some(staff) if staff.role == Role::Operator => Ok(staff),
        _ => Err(PortalError::Forbidden),
    }
}

/// One audit record as the console and the API show it: verrou's and the portal's trails
/// together.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Row {
    pub(crate) at: String,
    pub(crate) user: String,
    pub(crate) org: String,
    pub(crate) kind: String,
    pub(crate) detail: String,
    #[serde(rename = "unix")]
    pub(crate) unix: i64,
}

/// The newest 500 records of both trails that pass `filter`, newest first.
pub(crate) async fn audit_rows(portal: &Portal, filter: &Filter) -> Result<Vec<Row>, PortalError> {
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
    Ok(events)
}

pub async fn console(
    State(portal): State<Portal>,
    session: Session,
    Csrf(csrf): Csrf,
    Query(filter): Query<Filter>,
) -> Result<Response, PortalError> {
    let staff = operator(&portal, &session).await?;
    let orgs = portal.db.orgs().await?;
    let events = audit_rows(&portal, &filter).await?;
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

/// An operator's action, from the console or the API.
#[derive(Debug)]
pub(crate) enum Action {
    Revoke(RevocationScope),
    ResetFactor(UserId),
    LiftLock(UserId),
}

/// What an action did.
#[derive(Debug)]
pub(crate) enum Done {
    /// Sessions ended.
    Revoked(usize),
    /// The factor is reset (`false`: the user had none).
    Reset(bool),
    Lifted,
}

impl Action {
    pub(crate) fn revoke_org(org: &str) -> Result<Self, PortalError> {
        let org = OrgId::new(org).map_err(|_| PortalError::BadForm)?;
        Ok(Self::Revoke(RevocationScope::Org(org)))
    }

    pub(crate) fn revoke_user(login: &str) -> Result<Self, PortalError> {
        let user = UserId::new(login).map_err(|_| PortalError::BadForm)?;
        Ok(Self::Revoke(RevocationScope::User { user, except: None }))
    }

    pub(crate) fn revoke_before(unix: i64) -> Result<Self, PortalError> {
        let before = u64::try_from(unix)
            .ok()
            .and_then(|unix| Timestamp::from_unix_seconds(unix).ok())
            .ok_or(PortalError::BadForm)?;
        Ok(Self::Revoke(RevocationScope::IssuedBefore(before)))
    }

    pub(crate) fn user(login: &str) -> Result<UserId, PortalError> {
        UserId::new(login).map_err(|_| PortalError::BadForm)
    }

    /// Runs the action for the operator signed in on `session` (refused to anyone else; the
    /// second factor must be fresh, which `Session<StepUp>` has checked).
    pub(crate) async fn run(
        self,
        portal: &Portal,
        session: &Session<StepUp>,
    ) -> Result<Done, PortalError> {
        operator(portal, session).await?;
        let verrou = &portal.verrou;
        Ok(match self {
            Self::Revoke(scope) => {
                Done::Revoked(verrou.revoke_sessions(&scope, session.client()).await?)
            }
            Self::ResetFactor(user) => Done::Reset(verrou.remove_totp_factor(&user).await?),
            Self::LiftLock(user) => {
                verrou.lift_lock(&user).await?;
                Done::Lifted
            }
        })
    }
}

/// The console after an action: what it did, as a notice.
fn done_page(done: Done) -> Response {
    see_other(&match done {
        Done::Revoked(n) => format!("/operator?notice=revoked&n={n}"),
        Done::Reset(true) => "/operator?notice=reset".to_owned(),
        Done::Reset(false) => "/operator?notice=no-factor".to_owned(),
        Done::Lifted => "/operator?notice=lifted".to_owned(),
    })
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

pub async fn revoke_org(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<OrgForm>,
) -> Result<Response, PortalError> {
    let done = Action::revoke_org(&form.org)?
        .run(&portal, &session)
        .await?;
    Ok(done_page(done))
}

pub async fn revoke_user(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, PortalError> {
    let done = Action::revoke_user(&form.login)?
        .run(&portal, &session)
        .await?;
    Ok(done_page(done))
}

pub async fn revoke_before(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<BeforeForm>,
) -> Result<Response, PortalError> {
    let before = parse_utc(&form.before).ok_or(PortalError::BadForm)?;
    let done = Action::revoke_before(before)?
        .run(&portal, &session)
        .await?;
    Ok(done_page(done))
}

pub async fn reset_factor(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, PortalError> {
    let action = Action::ResetFactor(Action::user(&form.login)?);
    Ok(done_page(action.run(&portal, &session).await?))
}

pub async fn lift_lock(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<LoginForm>,
) -> Result<Response, PortalError> {
    let action = Action::LiftLock(Action::user(&form.login)?);
    Ok(done_page(action.run(&portal, &session).await?))
}
