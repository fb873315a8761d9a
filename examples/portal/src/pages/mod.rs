//! The pages. Each renders an askama template (HTML escaped by the template engine).

pub mod account;
pub mod auth;
pub mod export;
pub mod operator;
pub mod seekers;

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use verrou::session::{BindingKind, RevocationScope};
use verrou::{ActiveSession, ClientContext, SessionId, Timestamp, UserId};

use crate::app::Portal;
use crate::data::{Role, Staff};
use crate::security::PortalError;

/// A template as a response; a template that fails to render is a 500 that says nothing.
pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
        }
    }
}

/// A page that only says something.
#[derive(Debug, Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

/// The navigation bar of a signed-in page, with the binding script that keeps the device's
/// bound cookie fresh.
pub struct Nav {
    pub name: String,
    pub org: Option<String>,
    pub staff: bool,
    pub csrf: String,
    pub script: String,
}

impl std::fmt::Debug for Nav {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nav")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Portal {
    /// The navigation for `user`'s pages.
    pub async fn nav(&self, user: &UserId, csrf: &str) -> Result<Option<Nav>, PortalError> {
        let staff = self
            .db
            .staff(user.as_str())
            .await?
            .ok_or(PortalError::Forbidden)?;
        Ok(self.nav_for(staff, csrf))
    }

    /// The navigation for `staff`, already read by the page.
    pub fn nav_for(&self, staff: Staff, csrf: &str) -> Option<Nav> {
        Some(Nav {
            name: staff.name,
            org: staff.org_name,
            staff: staff.role == Role::Staff,
            csrf: csrf.to_owned(),
            script: self.guard.script_tag(),
        })
    }

    /// The user's live sessions, each with how it is bound to its device.
    pub async fn bound_sessions(
        &self,
        user: &UserId,
    ) -> Result<Vec<(ActiveSession, Option<BindingKind>)>, PortalError> {
        let mut sessions = Vec::new();
        for active in self.verrou.user_sessions(user).await? {
            let binding = self.verrou.session_binding(active.id).await?;
            sessions.push((active, binding));
        }
        Ok(sessions)
    }

    /// Ends `id` if it is one of `acting`'s user's own sessions; `false` (and nothing done)
    /// for any other.
    pub async fn revoke_own_session(
        &self,
        acting: &ActiveSession,
        id: SessionId,
        ctx: &ClientContext,
    ) -> Result<bool, PortalError> {
        let own = self.verrou.user_sessions(&acting.user).await?;
        if !own.iter().any(|active| active.id == id) {
            return Ok(false);
        }
        let scope = RevocationScope::Session(id);
        self.verrou.revoke_sessions(&scope, ctx).await?;
        Ok(true)
    }

    /// How long ago `then` was, for people.
    pub fn ago(&self, then: Timestamp) -> String {
        let Ok(now) = verrou::Clock::now(self.verrou.clock()) else {
            return "at an unknown time".to_owned();
        };
        let seconds = now.duration_since(then).as_secs();
        match seconds {
            0..60 => "just now".to_owned(),
            60..3600 => format!("{} min ago", seconds / 60),
            _ => format!("{} h {} min ago", seconds / 3600, seconds % 3600 / 60),
        }
    }
}

/// `text` percent-encoded as a URL query value (`+` for a space).
pub fn url_encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|pair| pair.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// `303 See Other` to a local path.
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// A page answered with `status` (a refused code, say).
pub fn with_status(status: StatusCode, page: Response) -> Response {
    let (mut parts, body) = page.into_parts();
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}
