//! The state the extractors and the binding router share: verrou itself (behind a small
//! object-safe trait, so the extractors need no store or clock type parameter) and the
//! portal's settings.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use verrou::session::{BindingKind, Requirement, SessionPolicy};
use verrou::store::Store;
use verrou::{
    BindingOutcome, ClientContext, Clock, Error, RefreshOutcome, SessionCookies, SessionId,
    SessionStatus, Verrou,
};

use crate::proxies::TrustedProxies;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// What the glue needs of verrou, whatever its store and clock.
pub(crate) trait Sessions: Send + Sync {
    fn authenticate<'a>(
        &'a self,
        cookies: SessionCookies<'a>,
        requirement: Requirement,
        ctx: &'a ClientContext,
    ) -> Boxed<'a, SessionStatus>;

    fn register<'a>(
        &'a self,
        session_cookie: &'a str,
        proof: &'a str,
        kind: BindingKind,
        ctx: &'a ClientContext,
    ) -> Boxed<'a, BindingOutcome>;

    fn refresh<'a>(
        &'a self,
        session_cookie: &'a str,
        proof: Option<&'a str>,
        ctx: &'a ClientContext,
    ) -> Boxed<'a, RefreshOutcome>;

    fn instructions(&self, session: SessionId) -> String;

    fn policy(&self) -> &SessionPolicy;
}

impl<S: Store + 'static, C: Clock + 'static> Sessions for Verrou<S, C> {
    fn authenticate<'a>(
        &'a self,
        cookies: SessionCookies<'a>,
        requirement: Requirement,
        ctx: &'a ClientContext,
    ) -> Boxed<'a, SessionStatus> {
        Box::pin(async move { Verrou::authenticate(self, &cookies, requirement, ctx).await })
    }

    fn register<'a>(
        &'a self,
        session_cookie: &'a str,
        proof: &'a str,
        kind: BindingKind,
        ctx: &'a ClientContext,
    ) -> Boxed<'a, BindingOutcome> {
        Box::pin(self.register_binding(session_cookie, proof, kind, ctx))
    }

    fn refresh<'a>(
        &'a self,
        session_cookie: &'a str,
        proof: Option<&'a str>,
        ctx: &'a ClientContext,
    ) -> Boxed<'a, RefreshOutcome> {
        Box::pin(self.refresh_binding(session_cookie, proof, ctx))
    }

    fn instructions(&self, session: SessionId) -> String {
        self.dbsc_instructions(session)
    }

    fn policy(&self) -> &SessionPolicy {
        self.config().session_policy()
    }
}

/// A path setting that is not a plain local path.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct InvalidPath {
    /// Which setting.
    pub setting: &'static str,
}

impl fmt::Display for InvalidPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be a local path: `/` then visible ASCII other than `\"`, `\\`, `;`, `<`, `>`",
            self.setting
        )
    }
}

impl std::error::Error for InvalidPath {}

/// A local path fit for a `Location` header, an HTML attribute and a cookie-free response:
/// starts with one `/`, visible ASCII only, none of the characters that would end a quoted
/// value.
fn checked_path(setting: &'static str, path: &str) -> Result<String, InvalidPath> {
    let plain = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 256
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';' | b'<' | b'>'));
    if plain {
        Ok(path.to_owned())
    } else {
        Err(InvalidPath { setting })
    }
}

/// Where the portal's own pages are, whom to trust for client addresses, and how the
/// WebCrypto fallback is served. Every setter validates.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) sign_in: String,
    pub(crate) second_factor: String,
    pub(crate) proxies: TrustedProxies,
    pub(crate) assets: String,
    pub(crate) fallback_registration: String,
    pub(crate) dbsc_head_start: Duration,
}

impl Settings {
    /// The sign-in page (where a request without a live session goes) and the second-factor
    /// page (where a session that must pass the second factor, again or for the first time,
    /// goes). No trusted proxies; the fallback under `/verrou/`; DBSC given 1.5 s to bind
    /// first.
    ///
    /// # Errors
    /// [`InvalidPath`] unless both are local paths (`/` then visible ASCII).
    pub fn new(sign_in: &str, second_factor: &str) -> Result<Self, InvalidPath> {
        Ok(Self {
            sign_in: checked_path("sign-in path", sign_in)?,
            second_factor: checked_path("second-factor path", second_factor)?,
            proxies: TrustedProxies::none(),
            assets: "/verrou".to_owned(),
            fallback_registration: "/verrou/webcrypto/register".to_owned(),
            dbsc_head_start: Duration::from_millis(1500),
        })
    }

    /// The reverse proxies whose `X-Forwarded-For` is believed (see [`TrustedProxies`]).
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Where the fallback's script (`<dir>/binding-<hash>.js`) and registration endpoint
    /// (`<dir>/webcrypto/register`) are served; default `/verrou`.
    ///
    /// # Errors
    /// [`InvalidPath`] unless `dir` is a local path.
    pub fn with_asset_directory(mut self, dir: &str) -> Result<Self, InvalidPath> {
        let dir = checked_path("asset directory", dir.trim_end_matches('/'))?;
        self.fallback_registration = format!("{dir}/webcrypto/register");
        self.assets = dir;
        Ok(self)
    }

    /// How long the page after the second factor waits before the WebCrypto fallback
    /// registers, so that a browser with DBSC (which registers on its own as soon as the
    /// response arrives) binds the session with its own, stronger key first; the fallback then
    /// stands down. At most 10 s (the binding grace is minutes); zero never waits.
    pub fn with_dbsc_head_start(mut self, wait: Duration) -> Self {
        self.dbsc_head_start = wait.min(Duration::from_secs(10));
        self
    }

    /// The sign-in page's path.
    pub fn sign_in_path(&self) -> &str {
        &self.sign_in
    }

    /// The second-factor page's path.
    pub fn second_factor_path(&self) -> &str {
        &self.second_factor
    }

    /// The WebCrypto fallback's registration endpoint.
    pub fn fallback_registration_path(&self) -> &str {
        &self.fallback_registration
    }
}

/// verrou and the settings, shared by every extractor and the binding router. Cheap to clone.
///
/// Put it in the portal's state and give the extractors access with [`axum::extract::FromRef`]
/// (or use it as the whole state).
#[derive(Clone)]
pub struct Guard {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) sessions: Arc<dyn Sessions>,
    pub(crate) settings: Settings,
    pub(crate) script_path: String,
    pub(crate) script_etag: String,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("settings", &self.inner.settings)
            .field("script_path", &self.inner.script_path)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// The guard over `verrou` (shared with the portal's own handlers).
    ///
    /// # Errors
    /// [`InvalidPath`] when the binding endpoints' paths (verrou's DBSC paths and the
    /// fallback's) collide, or one could not be routed (a segment starting with `:` or `*`).
    pub fn new<S: Store + 'static, C: Clock + 'static>(
        verrou: Arc<Verrou<S, C>>,
        settings: Settings,
    ) -> Result<Self, InvalidPath> {
        let digest = Sha256::digest(verrou::session::webcrypto::SCRIPT.as_bytes());
        let version: String = digest
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let script_path = format!("{}/binding-{version}.js", settings.assets);
        let script_etag = format!("\"{version}\"");
        let dbsc = verrou.config().session_policy().dbsc_paths();
        let routes = [
            dbsc.registration(),
            dbsc.refresh(),
            settings.fallback_registration_path(),
            &script_path,
        ];
        for (at, path) in routes.iter().enumerate() {
            let routable = path
                .split('/')
                .all(|segment| !segment.starts_with(':') && !segment.starts_with('*'));
            let repeated = routes.iter().skip(at + 1).any(|other| other == path);
            if !routable || repeated {
                return Err(InvalidPath {
                    setting: "binding endpoint (DBSC registration and refresh, fallback)",
                });
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                sessions: verrou,
                settings,
                script_path,
                script_etag,
            }),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Where the binding script is served. The name carries a hash of its content, so it is
    /// cached for a year and a new version is a new URL.
    pub fn script_path(&self) -> &str {
        &self.inner.script_path
    }

    /// The `<script>` tag for every page of a signed-in user: while the page is open, it
    /// renews the WebCrypto-bound cookie before it expires (it does nothing in a browser the
    /// fallback did not bind).
    pub fn script_tag(&self) -> String {
        format!(
            r#"<script src="{}" defer></script>"#,
            self.inner.script_path
        )
    }

    pub(crate) fn sessions(&self) -> &dyn Sessions {
        &*self.inner.sessions
    }
}
