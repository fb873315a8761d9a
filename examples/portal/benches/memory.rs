//! The portal process's peak memory under a burst of 500 concurrent recovery-code attempts,
//! against the bound verrou's argon2 gate implies: the idle process plus one argon2 memory
//! (19 MiB) per hashing allowed at once (the number of cores, by default). Attempts beyond
//! what the gate admits are refused at once (`503`), so the burst cannot grow memory.
//!
//! The binary (`verrou-portal`, release) runs on a data directory prepared beforehand: 50
//! users with a factor and 10 recovery codes each (500 codes), and 500 password-only sessions
//! signed in over HTTP. The peak is the kernel's high-water mark (`VmHWM`), reset just before
//! the burst (`/proc/<pid>/clear_refs`); the idle figure is `VmRSS` at that moment. Linux only.
//! Prints `PERF` for `benches/run` (peak over bound, target at most 1.0) and exits non-zero if
//! the peak passes the bound. Run: `cargo bench -p verrou-portal --bench memory`.

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
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::AsyncBufReadExt;
use verrou::testing::{insecure_fresh_proof, insecure_recovery_codes, InsecureManualClock};
use verrou::totp::OtpAuthUri;
use verrou::{ClientContext, Clock, TotpParams, TotpSecret, UserId, Verrou, VerrouConfig};
use verrou_axum::TrustedProxies;
use verrou_portal::app::{ExportLimits, Options, Portal, PortalClock};
use verrou_portal::data::Role;

const USERS: usize = 50;
const ATTEMPTS: usize = 500;
/// argon2id's memory with the recovery codes' parameters (OWASP: 19 MiB).
const ARGON2_MIB: u64 = 19;

/// Users with a factor and a set of recovery codes, in the portal's files in `dir`.
async fn prepare(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let clock = InsecureManualClock::new(verrou::SystemClock.now().unwrap());
    let options = Options {
        proxies: TrustedProxies::none(),
        database: None,
        demo_per_mille: 1,
        bound_cookie: Duration::from_secs(300),
        exports: ExportLimits::default(),
    };
    let keys =
        verrou_portal::keys::KeySource::file_created_if_missing(&dir.join("verrou-keys")).unwrap();
    let portal = Portal::open(dir, keys, PortalClock(Arc::new(clock.clone())), options)
        .await
        .unwrap();
    let verrou = Verrou::new(
        portal.verrou.store().clone(),
        VerrouConfig::new("Load").unwrap(),
    )
    .with_clock(clock);
    let hash = verrou_portal::data::hash_password(PASSWORD).unwrap();
    let ctx = ClientContext::unknown();
    let mut users = Vec::new();
    for i in 0..USERS {
        let login = format!("burst-{i}");
        portal
            .db
            .insert_staff_hashed(&login, "Burst", Some("formation-nord"), Role::Staff, &hash)
            .await
            .unwrap();
        let user = UserId::new(&login).unwrap();
        let secret = TotpSecret::generate().unwrap();
        let uri =
            OtpAuthUri::new(Some("Load"), &login, secret.clone(), TotpParams::DEFAULT).unwrap();
        verrou
            .danger_import_active_totp(&user, uri, &ctx)
            .await
            .unwrap();
        let proof = insecure_fresh_proof(&verrou, &user, &secret, TotpParams::DEFAULT)
            .await
            .unwrap()
            .unwrap();
        let codes = insecure_recovery_codes(&verrou, proof)
            .await
            .unwrap()
            .unwrap();
        users.push((login, codes));
    }
    portal.verrou.store().close().await;
    users
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ratio = runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let users = prepare(dir.path()).await;
        let mut portal = tokio::process::Command::new(env!("CARGO_BIN_EXE_verrou-portal"))
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .env_remove("VERROU_KEYS")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = portal.id().unwrap();
        let mut lines = tokio::io::BufReader::new(portal.stdout.take().unwrap()).lines();
        let port: u16 = loop {
            let line = lines.next_line().await.unwrap().expect("the portal ended");
            if let Some(rest) = line.strip_prefix("Listening on http://localhost:") {
                break rest.trim_end_matches('/').parse().unwrap();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let http: Http = http::client();

        // A password-only session per attempt (the password gate: two at a time).
        let mut attempts = Vec::new();
        for (login, codes) in &users {
            for code in codes {
                let body = serde_json::json!({ "login": login, "password": PASSWORD });
                let (status, cookie) =
                    post(&http, address, "/api/sign-in", None, body.to_string()).await;
                assert_eq!(status, StatusCode::OK);
                attempts.push((cookie.unwrap(), code.clone()));
            }
        }
        assert_eq!(attempts.len(), ATTEMPTS);

        // The burst: every attempt at once, each a valid recovery code.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        let idle = status_kib(pid, "VmRSS");
        let tasks: Vec<_> = attempts
            .into_iter()
            .map(|(cookie, code)| {
                let http = http.clone();
                tokio::spawn(async move {
                    let body = serde_json::json!({ "code": code, "method": "recovery" });
                    post(&http, address, "/api/second-factor", Some(&cookie), body.to_string())
                        .await
                        .0
                })
            })
            .collect();
        let (mut accepted, mut busy, mut other) = (0, 0, 0);
        for task in tasks {
            match task.await.unwrap() {
                StatusCode::OK => accepted += 1,
                StatusCode::SERVICE_UNAVAILABLE => busy += 1,
                _ => other += 1,
            }
        }
        let peak = status_kib(pid, "VmHWM");
        portal.kill().await.ok();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let bound = idle + cores * ARGON2_MIB * 1024;
        println!(
            "{ATTEMPTS} concurrent recovery-code attempts: {accepted} accepted, {busy} busy (503), \
             {other} other; idle {} MiB, peak {} MiB, bound {} MiB (idle + {cores} x {ARGON2_MIB} MiB)",
            idle / 1024,
            peak / 1024,
            bound / 1024
        );
        let ratio = peak as f64 / bound as f64;
        println!("PERF\tportal_memory\t{ratio:.2}\t<= 1.0");
        ratio
    });
    if ratio > 1.0 {
        eprintln!("the burst took the portal past the argon2 gate's bound");
        std::process::exit(1);
    }
}
