//! Password guessing at sign-in, throttled: verrou throttles the second factor; the password
//! before it needs its own limit, or the sign-in form is an argon2-speed oracle (and a way to
//! keep the server's CPU busy). Failures are counted per login (known or not, so the limit says
//! nothing about which logins exist) and per client address, over a sliding window, in the
//! shared database (every instance counts together).

use std::time::Duration;

use verrou::{ClientContext, NewSession, OrgId, UserId};

use crate::app::Portal;
use crate::security::PortalError;

/// The window failures are counted over.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed passwords allowed per login in the window.
pub const PER_LOGIN: i64 = 10;
/// Failed passwords allowed per client address in the window (an office behind one address
/// shares it).
pub const PER_ADDRESS: i64 = 50;

fn keys(login: &str, ctx: &ClientContext) -> (String, Option<String>) {
    let login = format!("login:{}", login.to_lowercase());
    (login, ctx.addr().map(|addr| format!("addr:{addr}")))
}

/// `Some(seconds to wait)` when this login or address has failed too often lately.
pub async fn refused(
    portal: &Portal,
    login: &str,
    ctx: &ClientContext,
) -> Result<Option<i64>, PortalError> {
    let now = portal.now_unix()?;
    let window = i64::try_from(WINDOW.as_secs()).unwrap_or(i64::MAX);
    let (login_key, addr_key) = keys(login, ctx);
    let mut wait = None;
    let limits = [(Some(login_key), PER_LOGIN), (addr_key, PER_ADDRESS)];
    for (key, limit) in limits {
        let Some(key) = key else { continue };
        let (failures, oldest) = portal.db.password_failures(&key, now - window).await?;
        if failures >= limit {
            let until = oldest.map_or(window, |oldest| oldest + window - now).max(1);
            wait = Some(wait.map_or(until, |wait: i64| wait.max(until)));
        }
    }
    Ok(wait)
}

/// Counts a wrong password (or an unknown login).
pub async fn failed(portal: &Portal, login: &str, ctx: &ClientContext) -> Result<(), PortalError> {
    let now = portal.now_unix()?;
    let window = i64::try_from(WINDOW.as_secs()).unwrap_or(i64::MAX);
    let (login_key, addr_key) = keys(login, ctx);
    let mut keys = vec![login_key.as_str()];
    keys.extend(addr_key.as_deref());
    portal
        .db
        .record_password_failure(&keys, now, now - window)
        .await?;
    Ok(())
}

/// A correct password: the login's count starts again (the address's stays).
pub async fn succeeded(portal: &Portal, login: &str) -> Result<(), PortalError> {
    let (login_key, _) = keys(login, &ClientContext::unknown());
    portal.db.clear_password_failures(&login_key).await?;
    Ok(())
}

/// What a password sign-in comes to.
#[derive(Debug)]
pub enum SignIn {
    /// Too many failures for this login or address lately: retry after this many seconds.
    Throttled { wait: i64 },
    /// Unknown login or wrong password (one answer for both), counted.
    Refused,
    /// A password-only session for `user`.
    Session { user: UserId, session: NewSession },
}

/// The password step, for the sign-in page and the API alike: the throttle first, then the
/// password (a failure counted, a success clearing the login's count), then the session.
pub async fn sign_in(
    portal: &Portal,
    login: &str,
    password: &str,
    ctx: &ClientContext,
) -> Result<SignIn, PortalError> {
    if let Some(wait) = refused(portal, login, ctx).await? {
        tracing::info!("sign-in throttled");
        return Ok(SignIn::Throttled { wait });
    }
    let Some(staff) = portal.db.check_password(login, password).await? else {
        failed(portal, login, ctx).await?;
        tracing::info!("sign-in refused");
        return Ok(SignIn::Refused);
    };
    succeeded(portal, &staff.login).await?;
    let user = UserId::new(&staff.login)?;
    let org = staff.org.as_deref().map(OrgId::new).transpose()?;
    let session = portal
        .verrou
        .create_session(&user, org.as_ref(), ctx)
        .await?;
    Ok(SignIn::Session { user, session })
}
