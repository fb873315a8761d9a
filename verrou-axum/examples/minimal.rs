//! A complete minimal portal on verrou and verrou-axum: sign-in, enrolment with a QR code,
//! the second factor, device binding, a page, an export behind step-up, logout.
//! `cargo run -p verrou-axum --example minimal`, then open http://localhost:3000/.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Form, Router};
use serde::Deserialize;
use verrou::session::cookie::{clear_cookie, BOUND_COOKIE, SESSION_COOKIE};
use verrou::store::{MemoryStore, Store};
use verrou::{Clock, ExposeSecret, OrgId, UserId, Verrou, VerrouConfig};
use verrou_axum::{
    escape_html, keep_forms, local_next, Client, Failure, Guard, LiveSession, Outcome, Session,
    Settings, StepUp,
};

/// The portal's state: verrou for its own calls, the guard for the extractors.
struct Portal<S, C> {
    verrou: Arc<Verrou<S, C>>,
    guard: Guard,
}

impl<S, C> Clone for Portal<S, C> {
    fn clone(&self) -> Self {
        let (verrou, guard) = (self.verrou.clone(), self.guard.clone());
        Self { verrou, guard }
    }
}

impl<S, C> FromRef<Portal<S, C>> for Guard {
    fn from_ref(portal: &Portal<S, C>) -> Guard {
        portal.guard.clone()
    }
}

/// The portal's routes over `verrou`.
pub fn app<S: Store + 'static, C: Clock + 'static>(
    verrou: Arc<Verrou<S, C>>,
) -> Result<Router, Box<dyn std::error::Error>> {
    let guard = Guard::new(verrou.clone(), Settings::new("/sign-in", "/second-factor")?)?;
    let bindings = guard.binding_router();
    Ok(Router::new()
        .route("/", get(home))
        .route("/export", get(export))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route(
            "/second-factor",
            get(second_factor_page).post(second_factor),
        )
        .route("/logout", post(logout))
        .merge(bindings)
        .layer(middleware::from_fn(keep_forms))
        .with_state(Portal { verrou, guard }))
}

/// Your portal's own password check (argon2 hashes in your user table); here one demo user.
fn password_ok(user: &str, password: &str) -> bool {
    let expected = "demo-password";
    let same = password.len() == expected.len()
        && password
            .bytes()
            .zip(expected.bytes())
            .fold(0, |acc, (a, b)| acc | (a ^ b))
            == 0;
    user == "marie" && same
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>{body}"
    ))
}

async fn home<S: Store, C: Clock>(State(p): State<Portal<S, C>>, session: Session) -> Html<String> {
    let body = format!(
        "<p>Signed in as {}.</p><p><a href=\"/export\">Export job-seekers</a></p>\
         <form method=post action=/logout><button>Sign out</button></form>{}",
        escape_html(session.user.as_str()),
        p.guard.script_tag()
    );
    page("Partner portal", &body)
}

async fn export(session: Session<StepUp>) -> Html<String> {
    let who = escape_html(session.user.as_str());
    page(
        "Export",
        &format!("<p>Export ready for {who} (second factor checked just now).</p>"),
    )
}

async fn sign_in_page() -> Html<String> {
    page(
        "Sign in",
        "<form method=post><input name=user placeholder=user> \
        <input name=password type=password placeholder=password> <button>Sign in</button></form>",
    )
}

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

async fn sign_in<S: Store, C: Clock>(
    State(p): State<Portal<S, C>>,
    Client(ctx): Client,
    Form(form): Form<Credentials>,
) -> Result<Response, Failure> {
    if !password_ok(&form.user, &form.password) {
        return Ok(page(
            "Sign in",
            "<p>Wrong user or password. <a href=/sign-in>Again</a></p>",
        )
        .into_response());
    }
    let (user, org) = (UserId::new(&form.user)?, OrgId::new("formation-nord")?);
    let session = p.verrou.create_session(&user, Some(&org), &ctx).await?;
    Ok((
        [("set-cookie", session.set_cookie_header())],
        Redirect::to("/second-factor"),
    )
        .into_response())
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn second_factor_page<S: Store, C: Clock>(
    State(p): State<Portal<S, C>>,
    session: LiveSession,
    axum::extract::Query(query): axum::extract::Query<Next>,
) -> Result<Html<String>, Failure> {
    let next = escape_html(query.next.as_deref().and_then(local_next).unwrap_or("/"));
    let form = format!("<form method=post><input type=hidden name=next value=\"{next}\">\
        <input name=code inputmode=numeric autocomplete=one-time-code> <button>Confirm</button></form>");
    if p.verrou.has_active_totp(&session.user).await? {
        return Ok(page("Enter the code from your app", &form));
    }
    let offer = p
        .verrou
        .start_totp_enrollment(&session.user, session.user.as_str(), session.client())
        .await?;
    let qr = offer.qr_svg_inline()?;
    Ok(page(
        "Scan this code with your authenticator app",
        &format!("{}{form}", qr.expose_secret()),
    ))
}

#[derive(Deserialize)]
struct Code {
    code: String,
    next: Option<String>,
}

async fn second_factor<S: Store, C: Clock>(
    State(p): State<Portal<S, C>>,
    session: LiveSession,
    Form(form): Form<Code>,
) -> Result<Response, Failure> {
    let (user, ctx) = (&session.user, session.client());
    let proof = if p.verrou.has_active_totp(user).await? {
        p.verrou
            .verify_totp(user, &form.code, ctx)
            .await?
            .into_result()
            .map(|ok| ok.proof)
    } else {
        p.verrou
            .finish_totp_enrollment(user, &form.code, ctx)
            .await?
            .into_result()
            .map(|ok| ok.1)
    };
    let proof = match proof {
        Ok(proof) => proof,
        Err(refusal) => {
            let body = format!(
                "<p>{}</p><p><a href=/second-factor>Again</a></p>",
                refusal.message()
            );
            return Ok((refusal.status(), page("Second factor", &body)).into_response());
        }
    };
    let token = session.token().expose_secret();
    let elevated = p
        .verrou
        .record_second_factor(token, proof, ctx)
        .await?
        .into_result()?;
    let next = form.next.as_deref().unwrap_or("/");
    Ok(p.guard.continue_after_second_factor(&elevated, next))
}

async fn logout<S: Store, C: Clock>(
    State(p): State<Portal<S, C>>,
    session: LiveSession,
) -> Result<Response, Failure> {
    let _ = p
        .verrou
        .logout(session.token().expose_secret(), session.client())
        .await?;
    let clear = AppendHeaders([
        ("set-cookie", clear_cookie(SESSION_COOKIE)),
        ("set-cookie", clear_cookie(BOUND_COOKIE)),
    ]);
    Ok((clear, Redirect::to("/sign-in")).into_response())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let verrou = Verrou::new(MemoryStore::new(), VerrouConfig::new("Minimal portal")?);
    let app = app(Arc::new(verrou))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("http://localhost:3000/ : sign in as marie / demo-password");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
