//! Load on the example portal: sign-in flows (password, then TOTP code, over the JSON API and
//! real TCP connections) from 64 concurrent clients, against what bounds them, the argon2id
//! password verifications per second the machine does (one at a time per core), measured in
//! the same run. Reports flows per second, p50 and p99 flow latency, and the ratio (target at
//! least 0.9): on SQLite, and when `VERROU_TEST_POSTGRES_URL` is set on two instances sharing
//! one PostgreSQL schema (the clients alternate between them).
//!
//! Each flow is a distinct user (a TOTP step is accepted once per user), created before the
//! timing. Prints `PERF` lines for `benches/run`; exits non-zero if a target is missed.
//! Run: `cargo bench -p verrou-portal --bench load`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use verrou::testing::insecure_code_at;
use verrou::totp::OtpAuthUri;
use verrou::{ClientContext, Clock, TotpParams, TotpSecret, UserId};
use verrou_axum::TrustedProxies;
use verrou_portal::app::{system_clock, ExportLimits, Options, Portal};
use verrou_portal::data::Role;

const CLIENTS: usize = 64;
const FLOWS_PER_CLIENT: usize = 4;
const PASSWORD: &str = "correct horse battery staple";
const TARGET: f64 = 0.9;

type Http = Client<HttpConnector, Full<Bytes>>;

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
    let app = portal.clone().router();
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

async fn post(
    http: &Http,
    address: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    body: String,
) -> (StatusCode, Option<String>) {
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("http://{address}{path}"))
        .header("x-portal-api", "1")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = http
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::to_owned);
    let _ = response.into_body().collect().await;
    (status, cookie)
}

/// One sign-in flow: the password, then the app's current code.
async fn flow(http: &Http, address: SocketAddr, login: &str, secret: &TotpSecret) {
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
    let (status, _) = post(http, address, "/api/second-factor", cookie.as_deref(), code).await;
    assert_eq!(status, StatusCode::OK, "second factor");
}

/// Flows per second and every flow's latency, `CLIENTS` at a time over `addresses` in turn.
async fn flows(addresses: &[SocketAddr], users: Vec<(String, TotpSecret)>) -> (f64, Vec<Duration>) {
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
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
        let users = create_users(&portal, CLIENTS * FLOWS_PER_CLIENT).await;
        missed |= measure("sqlite", &[address], users).await < TARGET;
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
