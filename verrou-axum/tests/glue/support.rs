//! A portal under test: verrou on a hand-driven clock, a router with one route per extractor,
//! and a cookie jar that plays the browser's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::{middleware, Form, Json, Router};
use http_body_util::BodyExt;
use tower::ServiceExt;
use verrou::session::cookie::{cookie_value, BOUND_COOKIE, SESSION_COOKIE};
use verrou::session::dbsc::{REGISTRATION_HEADER, RESPONSE_HEADER};
use verrou::store::MemoryStore;
use verrou::testing::{insecure_code_at, insecure_enroll, InsecureDevice, InsecureManualClock};
use verrou::{
    ClientContext, Clock, Timestamp, TotpOutcome, TotpParams, TotpSecret, UserId, Verrou,
    VerrouConfig,
};
use verrou_axum::{
    keep_forms, Any, Client, Guard, LiveSession, Outcome, Session, Settings, Standing, StepUp,
};

pub type TestVerrou = Verrou<MemoryStore, InsecureManualClock>;

pub const PEER: &str = "203.0.113.9:4444";

pub struct World {
    pub verrou: Arc<TestVerrou>,
    pub clock: InsecureManualClock,
    pub user: UserId,
    pub secret: TotpSecret,
    pub guard: Guard,
}

impl World {
    pub async fn new() -> Self {
        Self::with(Settings::new("/sign-in", "/second-factor").unwrap()).await
    }

    pub async fn with(settings: Settings) -> Self {
        Self::with_config(settings, VerrouConfig::new("Portail Partenaires").unwrap()).await
    }

    pub async fn with_config(settings: Settings, config: VerrouConfig) -> Self {
        let clock = InsecureManualClock::new(Timestamp::from_unix_seconds(1_800_000_000).unwrap());
        let verrou = Verrou::new(MemoryStore::new(), config).with_clock(clock.clone());
        let user = UserId::new("marie").unwrap();
        let secret = insecure_enroll(&verrou, &user).await.unwrap().unwrap();
        clock.advance(Duration::from_secs(30));
        let verrou = Arc::new(verrou);
        let guard = Guard::new(verrou.clone(), settings).unwrap();
        Self {
            verrou,
            clock,
            user,
            secret,
            guard,
        }
    }

    /// The routes under test; `keep` puts `keep_forms` in front.
    pub fn app(&self, keep: bool) -> Router {
        let router = Router::new()
            .route("/page", get(page).post(page))
            .route("/any", get(any))
            .route("/export", get(export))
            .route("/live", get(live).post(live))
            .route("/form", post(form))
            .route("/client", get(client))
            .merge(self.guard.binding_router())
            .with_state(self.guard.clone());
        if keep {
            router.layer(middleware::from_fn(keep_forms))
        } else {
            router
        }
    }

    /// The next step's code, the clock moved on to it.
    pub fn next_code(&self) -> String {
        self.clock.advance(Duration::from_secs(30));
        insecure_code_at(&self.secret, TotpParams::DEFAULT, self.clock.now().unwrap())
    }

    /// A browser signed in with the password only.
    pub async fn signed_in(&self) -> Jar {
        let new = self
            .verrou
            .create_session(&self.user, None, &ClientContext::unknown())
            .await
            .unwrap();
        Jar {
            session: Some(new.token.expose_secret().to_owned()),
            bound: None,
        }
    }

    /// The browser passes the second factor; the glue answers. Returns that answer.
    pub async fn elevate(&self, jar: &mut Jar) -> Response<Body> {
        let code = self.next_code();
        let ctx = ClientContext::unknown();
        let outcome = self
            .verrou
            .verify_totp(&self.user, &code, &ctx)
            .await
            .unwrap();
        let TotpOutcome::Accepted(accepted) = outcome else {
            panic!("code refused: {outcome:?}");
        };
        let session = jar.session.clone().unwrap();
        let elevated = self
            .verrou
            .record_second_factor(&session, accepted.proof, &ctx)
            .await
            .unwrap()
            .into_result()
            .unwrap();
        let response = self.guard.continue_after_second_factor(&elevated, "/page");
        jar.take(&response);
        response
    }

    /// Elevated and bound through the fallback's endpoint with `device`.
    pub async fn bound(&self, device: &InsecureDevice) -> Jar {
        let mut jar = self.signed_in().await;
        let offer = self.elevate(&mut jar).await;
        let challenge = offered_challenge(&offer);
        let proof = device.registration_proof(&challenge);
        let request = jar
            .request("POST", self.guard.settings().fallback_registration_path())
            .header(RESPONSE_HEADER, proof)
            .body(Body::empty())
            .unwrap();
        let response = send(self.app(false), request).await;
        assert_eq!(response.status(), StatusCode::OK);
        jar.take(&response);
        assert!(jar.bound.is_some());
        jar
    }
}

impl World {
    /// A script's `GET` of `path` with the jar's cookies.
    pub async fn fetch(&self, jar: &Jar, path: &str) -> Response<Body> {
        send(
            self.app(false),
            jar.request("GET", path).body(Body::empty()).unwrap(),
        )
        .await
    }

    /// A page load of `path` with the jar's cookies.
    pub async fn visit(&self, jar: &Jar, path: &str) -> Response<Body> {
        send(
            self.app(false),
            jar.navigate("GET", path).body(Body::empty()).unwrap(),
        )
        .await
    }

    /// The device renews the jar's bound cookie through the refresh endpoint.
    pub async fn renew(&self, jar: &mut Jar, device: &InsecureDevice) {
        let refresh = self
            .verrou
            .config()
            .session_policy()
            .dbsc_paths()
            .refresh()
            .to_owned();
        let first = send(
            self.app(false),
            jar.request("POST", &refresh).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(first.status(), StatusCode::FORBIDDEN);
        let offered = first.headers()[verrou::session::dbsc::CHALLENGE_HEADER]
            .to_str()
            .unwrap();
        let challenge = offered.split('"').nth(1).unwrap();
        let signed = jar
            .request("POST", &refresh)
            .header(RESPONSE_HEADER, device.refresh_proof(challenge))
            .body(Body::empty())
            .unwrap();
        let response = send(self.app(false), signed).await;
        assert_eq!(response.status(), StatusCode::OK);
        jar.take(&response);
    }
}

/// The challenge in a `Secure-Session-Registration` header.
pub fn offered_challenge(response: &Response<Body>) -> String {
    let offer = response.headers()[REGISTRATION_HEADER].to_str().unwrap();
    let start = offer.find("challenge=\"").unwrap() + "challenge=\"".len();
    offer[start..].trim_end_matches('"').to_owned()
}

/// The browser's two cookies.
#[derive(Clone, Debug, Default)]
pub struct Jar {
    pub session: Option<String>,
    pub bound: Option<String>,
}

impl Jar {
    /// A request carrying the cookies, from `PEER`.
    pub fn request(&self, method: &str, uri: &str) -> axum::http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .extension(ConnectInfo(PEER.parse::<SocketAddr>().unwrap()));
        let mut pairs = Vec::new();
        if let Some(session) = &self.session {
            pairs.push(format!("{SESSION_COOKIE}={session}"));
        }
        if let Some(bound) = &self.bound {
            pairs.push(format!("{BOUND_COOKIE}={bound}"));
        }
        if !pairs.is_empty() {
            builder = builder.header(header::COOKIE, pairs.join("; "));
        }
        builder
    }

    /// A page load.
    pub fn navigate(&self, method: &str, uri: &str) -> axum::http::request::Builder {
        self.request(method, uri)
            .header("sec-fetch-mode", "navigate")
            .header(header::ACCEPT, "text/html")
    }

    /// Keeps the cookies a response sets (and forgets those it clears).
    pub fn take(&mut self, response: &Response<Body>) {
        for value in response.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let first = value.split(';').next().unwrap();
            let cleared = value.contains("Max-Age=0");
            for (name, slot) in [
                (SESSION_COOKIE, &mut self.session),
                (BOUND_COOKIE, &mut self.bound),
            ] {
                if let Some(found) = cookie_value(first, name) {
                    *slot = (!cleared).then(|| found.to_owned());
                }
            }
        }
    }
}

pub async fn send(app: Router, request: Request<Body>) -> Response<Body> {
    app.oneshot(request).await.unwrap()
}

pub async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub async fn json(response: Response<Body>) -> serde_json::Value {
    serde_json::from_str(&text(response).await).unwrap()
}

async fn page(session: Session) -> String {
    format!("page for {}", session.user.as_str())
}

async fn any(session: Session<Any>) -> String {
    format!("{:?}", session.assurance)
}

async fn export(session: Session<StepUp>) -> String {
    format!("export for {}", session.user.as_str())
}

async fn live(session: LiveSession) -> String {
    match session.standing() {
        Standing::Ready => "ready",
        Standing::RefreshRequired => "refresh_required",
        Standing::BindingMissing => "binding_missing",
        _ => "other",
    }
    .to_owned()
}

async fn form(
    _session: Session,
    Form(fields): Form<Vec<(String, String)>>,
) -> Json<Vec<(String, String)>> {
    Json(fields)
}

async fn client(Client(ctx): Client) -> String {
    ctx.addr().map(|addr| addr.to_string()).unwrap_or_default()
}
