//! The portal's state and routes.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{middleware, Router};
use verrou::clock::ClockError;
use verrou::session::{BindingMode, SessionPolicy};
use verrou::store::AnyStore;
use verrou::{Clock, SystemClock, Timestamp, Verrou, VerrouConfig};
use verrou_axum::{keep_forms, Guard, Settings, TrustedProxies};

use crate::data::PortalDb;
use crate::keys::KeySource;
use crate::pages::{account, auth, export, operator, seekers};
use crate::security::{self, CsrfKey, BODY_LIMIT};

/// The clock verrou runs on: the system's, or a test's hand-driven one.
#[derive(Clone)]
pub struct PortalClock(pub Arc<dyn Clock>);

impl std::fmt::Debug for PortalClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortalClock")
    }
}

impl Clock for PortalClock {
    fn now(&self) -> Result<Timestamp, ClockError> {
        self.0.now()
    }
}

/// verrou as the portal runs it.
pub type Service = Verrou<AnyStore, PortalClock>;

/// Everything a handler may need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Portal {
    pub verrou: Arc<Service>,
    pub guard: Guard,
    pub db: PortalDb,
    pub csrf_key: CsrfKey,
    pub exports: ExportLimits,
    /// Where the key ring comes from ([`Portal::reload_keys`]).
    pub keys: KeySource,
}

impl FromRef<Portal> for Guard {
    fn from_ref(portal: &Portal) -> Guard {
        portal.guard.clone()
    }
}

/// The name authenticator apps show for the portal's accounts.
pub const ISSUER: &str = "Partner portal (demo)";

/// How the portal is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// The reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
    /// A PostgreSQL URL that several instances share (verrou's tables and the portal's);
    /// `None`: two SQLite files in the data directory.
    pub database: Option<String>,
    /// Demo job-seekers per organisation, as a share of the full 50,000 in thousandths
    /// (1000: all; tests take fewer).
    pub demo_per_mille: usize,
    /// The bound cookie's lifetime (5 minutes in production; tests shorten it).
    pub bound_cookie: std::time::Duration,
    /// How much of the job-seeker data can leave, and how fast.
    pub exports: ExportLimits,
}

/// The export controls (defaults: 2,000 records per export, 5,000 per organisation per UTC
/// day, 3 exports per session per 10 minutes; an alert at 80 % of the daily cap).
#[derive(Clone, Copy, Debug)]
pub struct ExportLimits {
    pub per_export: u32,
    pub per_org_per_day: i64,
    pub per_session: i64,
    pub session_window: std::time::Duration,
}

impl Default for ExportLimits {
    fn default() -> Self {
        Self {
            per_export: 2_000,
            per_org_per_day: 5_000,
            per_session: 3,
            session_window: std::time::Duration::from_secs(600),
        }
    }
}

impl Portal {
    /// Opens (or creates) the two databases in `dir` and, on first start, the demo data.
    pub async fn open(
        dir: &Path,
        keys: impl Into<KeySource>,
        clock: PortalClock,
        options: Options,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let (store_url, data_url) = match &options.database {
            Some(url) => (url.clone(), url.clone()),
            None => (
                format!("sqlite:{}", dir.join("verrou.db").display()),
                PortalDb::sqlite_url(&dir.join("portal.db")),
            ),
        };
        let keys = keys.into();
        let store = AnyStore::open(&store_url, keys.load()?).await?;
        let policy = SessionPolicy::new().with_binding(
            BindingMode::Required {
                grace: std::time::Duration::from_secs(120),
            },
            options.bound_cookie,
        )?;
        let config = VerrouConfig::new(ISSUER)?.with_session_policy(policy);
        let verrou = Arc::new(Verrou::new(store, config).with_clock(clock));
        let db = PortalDb::open(&data_url).await?;
        let complete = usize::try_from(db.demo_accounts_count().await?).unwrap_or(0);
        if complete < crate::demo::ACCOUNTS.len() {
            crate::demo::create(&db, &verrou, ISSUER, options.demo_per_mille).await?;
        }
        let settings =
            Settings::new("/sign-in", "/second-factor")?.with_trusted_proxies(options.proxies);
        let guard = Guard::new(verrou.clone(), settings)?;
        Ok(Self {
            verrou,
            guard,
            db,
            csrf_key: CsrfKey::load_or_create(dir)?,
            exports: options.exports,
            keys,
        })
    }

    /// Now on verrou's clock, in unix seconds (the portal's own records use that form).
    ///
    /// # Errors
    /// The clock's failure.
    pub fn now_unix(&self) -> Result<i64, security::PortalError> {
        let now = self.verrou.clock().now()?.unix_seconds();
        Ok(i64::try_from(now).unwrap_or(i64::MAX))
    }

    /// Every route, behind the security layers.
    pub fn router(self) -> Router {
        let bindings = self.guard.binding_router();
        Router::new()
            .route("/", get(auth::home))
            .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
            .route(
                "/second-factor",
                get(auth::second_factor_page).post(auth::second_factor),
            )
            .route("/enrol", get(auth::enrol_page).post(auth::enrol))
            .route("/logout", post(auth::logout))
            .route("/account", get(account::account))
            .route("/account/recovery-codes", post(account::new_recovery_codes))
            .route("/account/reenrol", post(account::reenrol))
            .route("/account/reenrol/confirm", post(account::reenrol_confirm))
            .route("/sessions", get(account::sessions))
            .route("/sessions/revoke", post(account::revoke))
            .route("/sessions/revoke-others", post(account::revoke_others))
            .route("/seekers", get(seekers::list))
            .route("/seekers/{id}", get(seekers::record))
            .route("/seekers/export", post(export::export))
            .route("/operator", get(operator::console))
            .route("/operator/revoke-org", post(operator::revoke_org))
            .route("/operator/revoke-user", post(operator::revoke_user))
            .route("/operator/revoke-before", post(operator::revoke_before))
            .route("/operator/reset-factor", post(operator::reset_factor))
            .route("/operator/lift-lock", post(operator::lift_lock))
            .route("/static/portal.css", get(stylesheet))
            .nest("/api", crate::api::routes())
            .merge(bindings)
            .layer(middleware::from_fn(keep_forms))
            .layer(middleware::from_fn_with_state(self.clone(), security::csrf))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(middleware::from_fn(security::headers))
            .with_state(self)
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/portal.css"),
    )
}

/// The system clock, for `main`.
pub fn system_clock() -> PortalClock {
    PortalClock(Arc::new(SystemClock))
}
