//! The JSON API under `/api/`: the same flows for scripts and apps (sign-in, second factor,
//! sessions, export), with the same controls. Every request a client can send gets a status
//! that says what was wrong with it, never 500: a body that is not the JSON asked for (a code
//! sent as a number, `null`, an array, a missing field) 400, an oversized one 413, another media
//! type 415, throttling 429 with `Retry-After`.
//!
//! Cookies authenticate the API as they do the pages, so a state-changing request must carry
//! `X-Portal-Api: 1`: a page on another site cannot send that header without a CORS preflight,
//! which the portal never grants (and `Sec-Fetch-Site`, when present, must be same-origin).

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use verrou::{ExposeSecret, SecondFactorProof, SessionId};
use verrou_axum::{Client, LiveSession, Outcome, Refusal, Session, StepUp};

use crate::app::Portal;
use crate::pages::export::{attachment, run, Exported};
use crate::pages::operator::{audit_rows, operator, Action, Done, Filter};
use crate::passwords::{self, SignIn};
use crate::security::{PortalError, BODY_LIMIT};

/// The header every state-changing API request carries.
pub const API_HEADER: &str = "x-portal-api";

/// The API's routes (nested under `/api` by the portal's router).
pub fn routes() -> Router<Portal> {
    Router::new()
        .route("/sign-in", post(sign_in))
        .route("/second-factor", post(second_factor))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", delete(revoke))
        .route("/export", post(export))
        .route("/enrolment", post(start_enrolment))
        .route("/enrolment/confirm", post(confirm_enrolment))
        .route("/recovery-codes", post(recovery_codes))
        .route("/operator/revoke-org", post(operator_revoke_org))
        .route("/operator/revoke-user", post(operator_revoke_user))
        .route("/operator/revoke-before", post(operator_revoke_before))
        .route("/operator/reset-factor", post(operator_reset_factor))
        .route("/operator/lift-lock", post(operator_lift_lock))
        .route("/operator/audit", get(operator_audit))
}

/// An API refusal: a status, a stable code and, for throttling, `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code }).to_string();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
        }
        response
    }
}

impl From<PortalError> for ApiError {
    fn from(error: PortalError) -> Self {
        match error {
            PortalError::Csrf => Self::new(StatusCode::FORBIDDEN, "not_this_site"),
            PortalError::TooLarge => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            PortalError::BadForm => Self::new(StatusCode::BAD_REQUEST, "malformed_body"),
            PortalError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found"),
            PortalError::Forbidden => Self::new(StatusCode::FORBIDDEN, "forbidden"),
            PortalError::Internal(cause) => {
                tracing::error!(%cause, "API request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl From<crate::data::DataError> for ApiError {
    fn from(error: crate::data::DataError) -> Self {
        PortalError::from(error).into()
    }
}

impl<E: Into<verrou::Error>> From<E> for ApiError {
    fn from(error: E) -> Self {
        PortalError::from(error).into()
    }
}

/// A state-changing request from this site's scripts (see the module docs).
fn intent(headers: &HeaderMap) -> Result<(), ApiError> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site != "same-origin" && site != "none");
    let marked = headers.get(API_HEADER).is_some_and(|value| value == "1");
    if cross_site || !marked {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_this_site"));
    }
    Ok(())
}

/// A state-changing request without a body.
#[derive(Debug)]
pub struct Intent;

impl<S: Send + Sync> FromRequestParts<S> for Intent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        intent(&parts.headers).map(|()| Intent)
    }
}

/// A JSON body of type `T` on a state-changing request.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, _: &S) -> Result<Self, Self::Rejection> {
        intent(request.headers())?;
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let essence = value.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "json_expected",
            ));
        }
        let bytes = to_bytes(request.into_body(), BODY_LIMIT)
            .await
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large"))?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    login: String,
    password: String,
}

impl std::fmt::Debug for SignInBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInBody")
            .field("login", &self.login)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

async fn sign_in(
    State(portal): State<Portal>,
    Client(ctx): Client,
    ApiJson(body): ApiJson<SignInBody>,
) -> Result<Response, ApiError> {
    let (user, session) =
        match passwords::sign_in(&portal, &body.login, &body.password, &ctx).await? {
            SignIn::Session { user, session } => (user, session),
            SignIn::Refused => {
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "sign_in_refused"));
            }
            SignIn::Throttled { wait } => {
                return Err(ApiError {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    code: "throttled",
                    retry_after: Some(u64::try_from(wait).unwrap_or(1)),
                });
            }
        };
    let next = if portal.verrou.has_active_totp(&user).await? {
        "second_factor"
    } else {
        "enrolment"
    };
    let body = serde_json::json!({ "next": next }).to_string();
    Ok((
        [
            (header::SET_COOKIE, session.set_cookie_header()),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// `totp` (the default) or `recovery`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    #[default]
    Totp,
    Recovery,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
    #[serde(default)]
    method: Method,
}

impl std::fmt::Debug for CodeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeBody")
            .field("code", &"[REDACTED]")
            .field("method", &self.method)
            .finish()
    }
}

/// A refused code: one answer for wrong, reused and locked; a wait when throttled.
fn code_refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Throttled { .. } | Refusal::Busy { .. } => ApiError {
            status: refusal.status(),
            code: refusal.code(),
            retry_after: refusal.retry_after().map(|wait| wait.as_secs()),
        },
        Refusal::Malformed => ApiError::new(StatusCode::BAD_REQUEST, "malformed_code"),
        _ => ApiError::new(StatusCode::UNAUTHORIZED, "code_refused"),
    }
}

async fn second_factor(
    State(portal): State<Portal>,
    session: LiveSession,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let (verrou, user, ctx) = (&portal.verrou, &session.user, session.client());
    let proof: Result<SecondFactorProof, Refusal> = match body.method {
        Method::Recovery => verrou
            .verify_recovery_code(user, &body.code, ctx)
            .await?
            .into_result()
            .map(|(_, proof)| proof),
        Method::Totp => verrou
            .verify_totp(user, &body.code, ctx)
            .await?
            .into_result()
            .map(|accepted| accepted.proof),
    };
    elevate(&portal, &session, proof.map_err(code_refused)?).await
}

/// Raises the session with `proof`: the new session cookie, the binding offer (the DBSC header,
/// and for the fallback script its challenge and endpoints), and the session's id.
async fn elevate(
    portal: &Portal,
    session: &LiveSession,
    proof: SecondFactorProof,
) -> Result<Response, ApiError> {
    let verrou = &portal.verrou;
    let token = session.token().expose_secret();
    let elevated = verrou
        .record_second_factor(token, proof, session.client())
        .await?
        .into_result()
        .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "no_session"))?;
    let paths = verrou.config().session_policy().dbsc_paths();
    let binding = elevated.binding_offer.as_ref().map(|challenge| {
        serde_json::json!({
            "challenge": challenge.as_str(),
            "registration": portal.guard.settings().fallback_registration_path(),
            "script": portal.guard.script_path(),
        })
    });
    let body = serde_json::json!({ "session": elevated.session.to_string(), "binding": binding });
    let mut response = (
        [
            (header::SET_COOKIE, elevated.set_cookie_header()),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body.to_string(),
    )
        .into_response();
    if let Some(challenge) = &elevated.binding_offer {
        if let Ok(offer) = HeaderValue::from_str(&paths.registration_header(challenge)) {
            response
                .headers_mut()
                .insert(verrou::session::dbsc::REGISTRATION_HEADER, offer);
        }
    }
    Ok(response)
}

/// A JSON answer.
fn json(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Starts enrolment for a signed-in user without a factor: the key, as an `otpauth://` URI
/// for the app, as text to type, and as an SVG QR code. Each call replaces the pending key.
async fn start_enrolment(
    State(portal): State<Portal>,
    session: LiveSession,
    _: Intent,
) -> Result<Response, ApiError> {
    if portal.verrou.has_active_totp(&session.user).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_enrolled"));
    }
    let offer = portal
        .verrou
        .start_totp_enrollment(&session.user, session.user.as_str(), session.client())
        .await?;
    let qr = offer.qr_svg_inline()?;
    Ok(json(&serde_json::json!({
        "otpauth_uri": offer.otpauth_uri().expose_secret(),
        "secret": offer.secret_base32().expose_secret(),
        "qr_svg": qr.expose_secret(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentBody {
    code: String,
}

impl std::fmt::Debug for EnrolmentBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentBody")
            .field("code", &"[REDACTED]")
            .finish()
    }
}

/// Confirms the pending key with a first code from the app: the factor is active and the
/// session passes the second factor (the same answer as `/api/second-factor`).
async fn confirm_enrolment(
    State(portal): State<Portal>,
    session: LiveSession,
    ApiJson(body): ApiJson<EnrolmentBody>,
) -> Result<Response, ApiError> {
    let outcome = portal
        .verrou
        .finish_totp_enrollment(&session.user, &body.code, session.client())
        .await?;
    let (_, proof) = outcome.into_result().map_err(code_refused)?;
    elevate(&portal, &session, proof).await
}

/// A new set of recovery codes (the previous set stops working), shown once.
async fn recovery_codes(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    _: Intent,
) -> Result<Response, ApiError> {
    let proof = session
        .step_up_proof()
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "step_up_required"))?;
    let set = portal
        .verrou
        .generate_recovery_codes(proof, session.client())
        .await?
        .into_result()
        .map_err(|refusal| ApiError::new(refusal.status(), refusal.code()))?;
    let codes: Vec<&str> = set
        .codes()
        .iter()
        .map(|code| code.expose_secret())
        .collect();
    Ok(json(&serde_json::json!({ "codes": codes })))
}

async fn sessions(State(portal): State<Portal>, session: Session) -> Result<Response, ApiError> {
    let mut listed = Vec::new();
    for (active, binding) in portal.bound_sessions(&session.user).await? {
        listed.push(serde_json::json!({
            "id": active.id.to_string(),
            "created_at": active.created_at.unix_seconds(),
            "last_seen": active.last_seen.unix_seconds(),
            "binding": binding.map(|kind| format!("{kind:?}").to_lowercase()),
            "current": active.id == session.id,
        }));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Array(listed).to_string(),
    )
        .into_response())
}

async fn revoke(
    State(portal): State<Portal>,
    session: Session,
    _: Intent,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id =
        SessionId::parse(&id).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found"))?;
    if !portal
        .revoke_own_session(session.active(), id, session.client())
        .await?
    {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    #[serde(default)]
    q: String,
}

async fn export(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    ApiJson(body): ApiJson<ExportBody>,
) -> Result<Response, ApiError> {
    let throttled = |wait: i64, code| ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code,
        retry_after: Some(u64::try_from(wait).unwrap_or(1)),
    };
    match run(&portal, session.active(), &body.q).await? {
        Exported::Csv { org, body } => Ok(attachment(&org, body)),
        Exported::RateLimited { wait } => Err(throttled(wait, "export_rate_limited")),
        Exported::OverCap { wait } => Err(throttled(wait, "export_cap_reached")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgBody {
    org: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    login: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeforeBody {
    /// Unix seconds: sessions created before it end.
    before: i64,
}

/// Runs an operator's action and answers with what it did.
async fn operate(
    portal: &Portal,
    session: &Session<StepUp>,
    action: Result<Action, PortalError>,
) -> Result<Response, ApiError> {
    Ok(json(&match action?.run(portal, session).await? {
        Done::Revoked(ended) => serde_json::json!({ "ended": ended }),
        Done::Reset(had_factor) => serde_json::json!({ "had_factor": had_factor }),
        Done::Lifted => serde_json::json!({ "lifted": true }),
    }))
}

async fn operator_revoke_org(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    ApiJson(body): ApiJson<OrgBody>,
) -> Result<Response, ApiError> {
    operate(&portal, &session, Action::revoke_org(&body.org)).await
}

async fn operator_revoke_user(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    operate(&portal, &session, Action::revoke_user(&body.login)).await
}

async fn operator_revoke_before(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    ApiJson(body): ApiJson<BeforeBody>,
) -> Result<Response, ApiError> {
    operate(&portal, &session, Action::revoke_before(body.before)).await
}

async fn operator_reset_factor(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let action = Action::user(&body.login).map(Action::ResetFactor);
    operate(&portal, &session, action).await
}

async fn operator_lift_lock(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let action = Action::user(&body.login).map(Action::LiftLock);
    operate(&portal, &session, action).await
}

/// Both audit trails, filtered as the console filters them (`user`, `org`, `kind`, `from`,
/// `to` as UTC `YYYY-MM-DDTHH:MM`), newest first, at most 500.
async fn operator_audit(
    State(portal): State<Portal>,
    session: Session,
    query: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = query.map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_query"))?;
    operator(&portal, &session).await?;
    if !filter.times_parse() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_query"));
    }
    let rows = audit_rows(&portal, &filter).await?;
    Ok(json(&serde_json::json!(rows)))
}
