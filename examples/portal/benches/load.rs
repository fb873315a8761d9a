//! Load on the example portal: sign-in flows (password, then TOTP code, over the JSON API and
//! real TCP connections) from 64 concurrent clients, against what bounds them, the argon2id
//! password verifications per second the machine does (one at a time per core), measured in
//! the same run. Reports flows per second, p50 and p99 flow latency, and the ratio (target at
//! least 0.9): on SQLite, and when `VERROU_TEST_POSTGRES_URL` is set on two instances sharing
//! one PostgreSQL schema (the clients alternate between them).
//!
//! Each flow is a distinct user (a TOTP step is accepted once per user), created before the
//! timing. Then, on SQLite, authenticated views of the job-seeker page (64 clients with a
//! session that passed the second factor) against the same page served without verrou (the
//! same handler, rows and security headers, no session check): target at least 0.8. Prints `PERF` lines for `benches/run`; exits non-zero if a target is missed.
//! Run: `cargo bench -p verrou-portal --bench load`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/http.rs"]
mod http;

use self::http::{post, Http, PASSWORD};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use verrou::testing::insecure_code_at;
use verrou::totp::OtpAuthUri;
use verrou::{ClientContext, Clock, TotpParams, TotpSecret, UserId};
use verrou_axum::TrustedProxies;
use verrou_portal::app::{system_clock, ExportLimits, Options, Portal};
use verrou_portal::data::Role;

const CLIENTS: usize = 64;
const FLOWS_PER_CLIENT: usize = 4;
const TARGET: f64 = 0.9;
/// Authenticated page views against the same page without verrou.
const VIEWS_TARGET: f64 = 0.8;

/// One instance on `database` (SQLite files in `dir` when `None`), served on a free port.
async fn serve(dir: &std::path::Path, database: Option<String>) -> (Portal, SocketAddr) {
    let options = Options {
        proxies: TrustedProxies::none(),
        database,
        demo_per_mille: 1,
        bound_cookie: Duration::from_secs(300),
        exports: ExportLimits::default(),
    };
    let keys =
        verrou_portal::keys::KeySource::file_created_if_missing(&dir.join("verrou-keys")).unwrap();
    let portal = Portal::open(dir, keys, system_clock(), options)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // The baseline of a page view: the same job-seeker page, the same security headers, the
    // same account's rows, with no session check.
    let open = portal.clone();
    let unchecked = axum::Router::new()
        .route(
            "/unchecked/seekers",
            axum::routing::get(move || {
                let portal = open.clone();
                async move {
                    let search = verrou_portal::pages::seekers::Search::default();
                    verrou_portal::pages::seekers::list_page(&portal, "load-0", "token", search)
                        .await
                }
            }),
        )
        .layer(axum::middleware::from_fn(verrou_portal::security::headers));
    let app = portal.clone().router().merge(unchecked);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    (portal, address)
}

/// `count` staff with one password (one stored hash) and a TOTP factor each.
async fn create_users(portal: &Portal, count: usize) -> Vec<(String, TotpSecret)> {
    let hash = verrou_portal::data::hash_password(PASSWORD).unwrap();
    let ctx = ClientContext::unknown();
    let mut users = Vec::with_capacity(count);
    for i in 0..count {
        let login = format!("load-{i}");
        portal
            .db
            .insert_staff_hashed(&login, "Load", Some("formation-nord"), Role::Staff, &hash)
            .await
            .unwrap();
        let secret = TotpSecret::generate().unwrap();
        let uri =
            OtpAuthUri::new(Some("Load"), &login, secret.clone(), TotpParams::DEFAULT).unwrap();
        portal
            .verrou
            .danger_import_active_totp(&UserId::new(&login).unwrap(), uri, &ctx)
            .await
            .unwrap();
        users.push((login, secret));
    }
    users
}

async fn get(http: &Http, address: SocketAddr, path: &str, cookie: Option<&str>) -> StatusCode {
    let mut request = Request::builder()
        .uri(format!("http://{address}{path}"))
        .header(header::ACCEPT, "text/html");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = http
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

/// Page views per second of `path`, `CLIENTS` clients with a cookie each, `views` each.
async fn views(
    http: &Http,
    address: SocketAddr,
    path: &str,
    cookies: &[Option<String>],
    views: usize,
) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = cookies
        .iter()
        .cloned()
        .map(|cookie| {
            let (http, path) = (http.clone(), path.to_owned());
            tokio::spawn(async move {
                for _ in 0..views {
                    let status = get(&http, address, &path, cookie.as_deref()).await;
                    assert_eq!(status, StatusCode::OK, "{path}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (cookies.len() * views) as f64 / started.elapsed().as_secs_f64()
}

/// Authenticated job-seeker page views against the same page served without verrou (the
/// clients' sessions passed the second factor: cookie → session → the page).
async fn page_views(address: SocketAddr, users: &[(String, TotpSecret)]) -> f64 {
    let http: Http = http::client();
    let mut cookies = Vec::new();
    for (login, secret) in users.iter().take(CLIENTS) {
        cookies.push(Some(elevated(&http, address, login, secret).await));
    }
    let unchecked = vec![None; cookies.len()];
    let mut ratios = Vec::new();
    for _ in 0..5 {
        let with = views(&http, address, "/seekers", &cookies, 20).await;
        let without = views(&http, address, "/unchecked/seekers", &unchecked, 20).await;
        ratios.push(with / without);
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    println!(
        "page views: /seekers with a session / the same page without verrou = {ratio:.2} \
         (median of 5 interleaved rounds of {} views; target >= {VIEWS_TARGET})",
        cookies.len() * 20
    );
    println!("PERF\tportal_views\t{ratio:.2}\t>= {VIEWS_TARGET}");
    ratio
}

/// One sign-in flow: the password, then the app's current code.
async fn flow(http: &Http, address: SocketAddr, login: &str, secret: &TotpSecret) {
    elevated(http, address, login, secret).await;
}

/// Signs `login` in with the password and the app's next code; the elevated session cookie.
async fn elevated(http: &Http, address: SocketAddr, login: &str, secret: &TotpSecret) -> String {
    let credentials = serde_json::json!({ "login": login, "password": PASSWORD }).to_string();
    let (status, cookie) = post(http, address, "/api/sign-in", None, credentials).await;
    assert_eq!(status, StatusCode::OK, "sign-in");
    // The import used up the current step: the app's next code (within the ±1 window).
    let next = system_clock()
        .now()
        .unwrap()
        .saturating_add(Duration::from_secs(30));
    let code = insecure_code_at(secret, TotpParams::DEFAULT, next);
    let code = serde_json::json!({ "code": code }).to_string();
    let (status, elevated) =
        post(http, address, "/api/second-factor", cookie.as_deref(), code).await;
    assert_eq!(status, StatusCode::OK, "second factor");
    elevated.unwrap()
}

/// Flows per second and every flow's latency, `CLIENTS` at a time over `addresses` in turn.
async fn flows(addresses: &[SocketAddr], users: Vec<(String, TotpSecret)>) -> (f64, Vec<Duration>) {
    let http: Http = http::client();
    let users = Arc::new(users);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, users, addresses) = (http.clone(), users.clone(), addresses.to_vec());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in 0..FLOWS_PER_CLIENT {
                    let (login, secret) = &users[client * FLOWS_PER_CLIENT + n];
                    let address = addresses[(client + n) % addresses.len()];
                    let start = Instant::now();
                    flow(&http, address, login, secret).await;
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let per_second = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    (per_second, latencies)
}

/// argon2id verifications per second (the portal's parameters): what the machine can do, one
/// at a time on each core (more at once only share the cores and thrash the caches).
async fn hashes(count: usize) -> f64 {
    let hash = verrou_portal::data::hash_password(PASSWORD).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();
    let tasks: Vec<_> = (0..cores)
        .map(|_| {
            let hash = hash.clone();
            tokio::task::spawn_blocking(move || {
                let parsed = PasswordHash::new(&hash).unwrap();
                for _ in 0..count / cores {
                    Argon2::default()
                        .verify_password(PASSWORD.as_bytes(), &parsed)
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (count / cores * cores) as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs flows against `addresses` and the argon2 baseline; prints and returns the ratio.
async fn measure(name: &str, addresses: &[SocketAddr], users: Vec<(String, TotpSecret)>) -> f64 {
    let count = users.len();
    let _warm_up = hashes(8).await;
    let argon2 = hashes(count / 2).await;
    let (per_second, latencies) = flows(addresses, users).await;
    let ratio = per_second / argon2;
    println!(
        "{name}: {per_second:.1} flows/s (p50 {} ms, p99 {} ms; {count} flows, {CLIENTS} clients), \
         {argon2:.1} argon2id verifications/s: {ratio:.2} (target >= {TARGET})",
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
    );
    println!("PERF\tportal_flows_{name}\t{ratio:.2}\t>= {TARGET}");
    ratio
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let missed = runtime.block_on(async {
        let mut missed = false;
        let dir = tempfile::tempdir().unwrap();
        let (portal, address) = serve(dir.path(), None).await;
        let users = create_users(&portal, CLIENTS * FLOWS_PER_CLIENT + CLIENTS).await;
        let (flows, viewers) = users.split_at(CLIENTS * FLOWS_PER_CLIENT);
        missed |= measure("sqlite", &[address], flows.to_vec()).await < TARGET;
        missed |= page_views(address, viewers).await < VIEWS_TARGET;
        if let Ok(url) = std::env::var("VERROU_TEST_POSTGRES_URL") {
            let schema = format!("portal_load_{}", verrou::FactorId::generate().unwrap());
            run_sql(&url, &format!("CREATE SCHEMA \"{schema}\"")).await;
            let database = format!("{url}?options=-c%20search_path%3D{schema}");
            let dir = tempfile::tempdir().unwrap();
            let (a, first) = serve(dir.path(), Some(database.clone())).await;
            let (_b, second) = serve(dir.path(), Some(database)).await;
            let users = create_users(&a, CLIENTS * FLOWS_PER_CLIENT).await;
            missed |= measure("postgres", &[first, second], users).await < TARGET;
            run_sql(&url, &format!("DROP SCHEMA \"{schema}\" CASCADE")).await;
        }
        missed
    });
    if missed {
        eprintln!("a load target is missed (see the ratios above)");
        std::process::exit(1);
    }
}

async fn run_sql(url: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
}
