//! Session extractors: the requirement is in the handler's signature.
//!
//! ```text
//! async fn dashboard(session: Session) -> ...                      // second factor passed
//! async fn export(session: Session<StepUp>) -> ...                 // ... within the step-up window
//! async fn second_factor_page(session: LiveSession) -> ...          // any live session
//! ```
//!
//! A request that does not meet the requirement never reaches the handler; it gets the
//! answer the reason calls for ([`SessionRejection`]): a page navigation is sent to the
//! sign-in or second-factor page (`303`, with `?next=` for a `GET`), or, when only its bound
//! cookie expired, gets a small page that renews it with the device key and retries the
//! request (see [`crate::keep_forms`] for forms); a script's request gets `401` or `403` with a
//! JSON body the binding script understands.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use verrou::session::cookie::{BOUND_COOKIE, SESSION_COOKIE};
use verrou::session::{Requirement, StepUpReason};
use verrou::{
    ActiveSession, ClientContext, ExposeSecret, SecretString, SessionCookies, SessionStatus,
};

use crate::answer;
use crate::client::client_context;
use crate::guard::Guard;
use crate::pages;
use crate::request::RequestView;

/// What a [`Session`] must have proven: [`Any`], [`SecondFactor`] or [`StepUp`].
pub trait Need: Send + Sync + 'static {
    /// The requirement verrou checks.
    const REQUIREMENT: Requirement;
}

/// Any live session, password-only included.
#[derive(Debug)]
#[non_exhaustive]
pub struct Any;

/// A session that passed the second factor: every ordinary page (the default).
#[derive(Debug)]
#[non_exhaustive]
pub struct SecondFactor;

/// A session that passed the second factor within the step-up window (5 minutes by
/// default): exports, re-enrolment, new recovery codes, turning the factor off.
#[derive(Debug)]
#[non_exhaustive]
pub struct StepUp;

impl Need for Any {
    const REQUIREMENT: Requirement = Requirement::AnySession;
}

impl Need for SecondFactor {
    const REQUIREMENT: Requirement = Requirement::SecondFactor;
}

impl Need for StepUp {
    const REQUIREMENT: Requirement = Requirement::RecentSecondFactor;
}

/// A session that meets `N`, with what the handler needs to act for it.
pub struct Session<N: Need = SecondFactor> {
    active: ActiveSession,
    token: SecretString,
    client: ClientContext,
    need: PhantomData<fn() -> N>,
}

impl<N: Need> fmt::Debug for Session<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("active", &self.active)
            .field("token", &"[REDACTED]")
            .field("client", &self.client)
            .finish()
    }
}

impl<N: Need> Session<N> {
    /// The session.
    pub fn active(&self) -> &ActiveSession {
        &self.active
    }

    /// The session cookie's value, for the calls that take it ([`verrou::Verrou::logout`],
    /// [`verrou::Verrou::record_second_factor`]).
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// The client, as [`crate::Client`] would extract it.
    pub fn client(&self) -> &ClientContext {
        &self.client
    }

    /// The session, for keeping.
    pub fn into_active(self) -> ActiveSession {
        self.active
    }
}

impl<N: Need> Deref for Session<N> {
    type Target = ActiveSession;

    fn deref(&self) -> &ActiveSession {
        &self.active
    }
}

impl<N: Need, St: Send + Sync> FromRequestParts<St> for Session<N>
where
    Guard: FromRef<St>,
{
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let guard = Guard::from_ref(state);
        let (status, token, client) = check(&guard, parts, N::REQUIREMENT).await?;
        let reason = match status {
            SessionStatus::Active(active) => {
                return Ok(Self {
                    active,
                    token,
                    client,
                    need: PhantomData,
                })
            }
            SessionStatus::SecondFactorRequired(_) => Reason::SecondFactorRequired,
            SessionStatus::StepUpRequired { reason, .. } => Reason::StepUpRequired(reason),
            SessionStatus::RefreshRequired { .. } => refresh_reason(&parts.headers),
            SessionStatus::BindingMissing { .. } => Reason::BindingMissing,
            _ => Reason::NoSession,
        };
        Err(SessionRejection::new(reason, &guard, parts))
    }
}

/// Where a live session stands, as [`LiveSession`] reports it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Standing {
    /// Its cookies are in order (its assurance says whether the second factor is passed).
    Ready,
    /// It is bound to a device and this request has no current bound cookie: possibly a
    /// stolen cookie. Passing the second factor again binds it to the device that does.
    RefreshRequired,
    /// Binding is required and the session did not bind in time: pass the second factor
    /// again.
    BindingMissing,
}

/// Any live session, whatever it still has to prove: for the second-factor page (first
/// factor, step-up, or again after a failed device check) and for logout. A request without
/// a live session is sent to sign in.
pub struct LiveSession {
    active: ActiveSession,
    standing: Standing,
    token: SecretString,
    client: ClientContext,
}

impl fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSession")
            .field("active", &self.active)
            .field("standing", &self.standing)
            .field("token", &"[REDACTED]")
            .field("client", &self.client)
            .finish()
    }
}

impl LiveSession {
    /// The session.
    pub fn active(&self) -> &ActiveSession {
        &self.active
    }

    /// Where it stands.
    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// The session cookie's value ([`verrou::Verrou::record_second_factor`],
    /// [`verrou::Verrou::logout`]).
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// The client.
    pub fn client(&self) -> &ClientContext {
        &self.client
    }
}

impl Deref for LiveSession {
    type Target = ActiveSession;

    fn deref(&self) -> &ActiveSession {
        &self.active
    }
}

impl<St: Send + Sync> FromRequestParts<St> for LiveSession
where
    Guard: FromRef<St>,
{
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let guard = Guard::from_ref(state);
        let (status, token, client) = check(&guard, parts, Requirement::AnySession).await?;
        let (active, standing) = match status {
            SessionStatus::Active(active) => (active, Standing::Ready),
            SessionStatus::RefreshRequired { session } => (session, Standing::RefreshRequired),
            SessionStatus::BindingMissing { session } => (session, Standing::BindingMissing),
            _ => return Err(SessionRejection::new(Reason::NoSession, &guard, parts)),
        };
        Ok(Self {
            active,
            standing,
            token,
            client,
        })
    }
}

/// Authenticates the request's cookies: the status, the session cookie and the client.
async fn check(
    guard: &Guard,
    parts: &Parts,
    requirement: Requirement,
) -> Result<(SessionStatus, SecretString, ClientContext), SessionRejection> {
    let client = client_context(guard, parts)
        .map_err(|_| SessionRejection::new(Reason::Internal, guard, parts))?;
    let header = joined_cookies(&parts.headers);
    let Some(cookies) = SessionCookies::from_header(header.expose_secret()) else {
        return Err(SessionRejection::new(Reason::NoSession, guard, parts));
    };
    let status = guard
        .sessions()
        .authenticate(cookies, requirement, &client)
        .await
        .map_err(|error| {
            tracing::error!(%error, "verrou could not check a session");
            SessionRejection::new(Reason::Internal, guard, parts)
        })?;
    let token = SecretString::from(cookies.session().to_owned());
    Ok((status, token, client))
}

/// Every `Cookie` header of the request as one (HTTP/2 sends each cookie in a header of its
/// own; reading only the first loses the bound cookie and every request looks stolen).
pub(crate) fn joined_cookies(headers: &HeaderMap) -> SecretString {
    let joined: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    SecretString::from(joined.join("; "))
}

/// A session whose bound cookie is missing: the browser skipped its DBSC refresh
/// (`Secure-Session-Skipped`: its signing quota, the server unreachable …) or not.
fn refresh_reason(headers: &HeaderMap) -> Reason {
    match headers.get("secure-session-skipped") {
        Some(skipped) => {
            let why = skipped
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("");
            tracing::info!(
                reason = why.trim(),
                "the browser skipped its DBSC refresh; asking for the second factor again"
            );
            Reason::RefreshSkipped
        }
        None => Reason::RefreshRequired,
    }
}

/// Why a request was turned away.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Reason {
    /// No live session: never signed in, expired, logged out, revoked, or a malformed cookie.
    NoSession,
    /// Password only; the page needs the second factor.
    SecondFactorRequired,
    /// The action needs a fresh second factor.
    StepUpRequired(StepUpReason),
    /// The bound cookie is missing or expired: renew it with the device key.
    RefreshRequired,
    /// The bound cookie is missing and the browser said it skipped its DBSC refresh: it will
    /// not renew by itself, so the user passes the second factor again (which binds anew).
    /// The request is refused all the same: the header proves nothing.
    RefreshSkipped,
    /// The session never bound to a device within the grace.
    BindingMissing,
    /// The session could not be checked (store failure, no peer address): 500.
    Internal,
}

/// What a session extractor answers instead of calling the handler.
#[derive(Debug)]
pub struct SessionRejection {
    reason: Reason,
    response: Response,
}

impl SessionRejection {
    fn new(reason: Reason, guard: &Guard, parts: &Parts) -> Self {
        let request = RequestView::of(parts);
        Self {
            reason,
            response: answer(reason, guard, &request),
        }
    }

    /// Why.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.response
    }
}

fn answer(reason: Reason, guard: &Guard, request: &RequestView<'_>) -> Response {
    let settings = guard.settings();
    let code = match reason {
        Reason::Internal => return answer::internal_error(),
        Reason::NoSession => "no_session",
        Reason::SecondFactorRequired => "second_factor_required",
        Reason::StepUpRequired(_) => "step_up_required",
        Reason::RefreshRequired => "refresh_required",
        Reason::RefreshSkipped => "refresh_skipped",
        Reason::BindingMissing => "binding_missing",
    };
    let mut response = if request.navigation {
        match reason {
            Reason::RefreshRequired => pages::retry(guard, request),
            Reason::NoSession => redirect(settings.sign_in_path(), request),
            _ => redirect(settings.second_factor_path(), request),
        }
    } else {
        let status = match reason {
            Reason::NoSession | Reason::RefreshRequired | Reason::RefreshSkipped => {
                StatusCode::UNAUTHORIZED
            }
            _ => StatusCode::FORBIDDEN,
        };
        answer::error(status, code)
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if reason == Reason::NoSession {
        answer::clear_cookies(&mut response, &[SESSION_COOKIE, BOUND_COOKIE]);
    }
    response
}

/// `303 See Other` to `page`, with `?next=` the request's target for a `GET` (a `POST` cannot
/// be replayed by a redirect; the page it came from is the better place to go back to).
fn redirect(page: &str, request: &RequestView<'_>) -> Response {
    let location = if *request.method == Method::GET {
        let next: String = form_urlencoded::byte_serialize(request.target.as_bytes()).collect();
        let joiner = if page.contains('?') { '&' } else { '?' };
        format!("{page}{joiner}next={next}")
    } else {
        page.to_owned()
    };
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => answer::internal_error(),
    }
}
