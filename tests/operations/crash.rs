//! Crash safety on SQLite: a process under verification load is killed with SIGKILL, and
//! after reopening the file nothing it reported as done is forgotten.
//!
//! The parent enrols four users, each with ten recovery codes, then starts this same test
//! binary as a child running `crash_child`: four tasks, one per user, verify a fresh TOTP
//! code every (simulated) period and every third round spend a recovery code, printing each
//! success only after the service returned it. The parent kills the child mid-load, reopens
//! the database and checks that every printed time step is still used (its code is refused
//! as a replay, and its audit record is there), that every printed recovery code is still
//! spent, and that SQLite's integrity check passes.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;
use verrou::recovery::RecoveryCodeInput;
use verrou::session::{Assurance, BindingMode, Requirement, SessionPolicy};
use verrou::store::backend::SessionStore;
use verrou::store::{SqliteStore, Store};
use verrou::testing::{
    insecure_code_at, insecure_enroll, insecure_fresh_proof, insecure_recovery_codes,
    InsecureManualClock,
};
use verrou::{
    AuditKind, ClientContext, Clock, ElevationOutcome, KeyId, KeyRing, RecoveryOutcome,
    SessionCookies, SessionId, SessionStatus, Timestamp, TotpOutcome, TotpParams, TotpSecret,
    UserId, Verrou, VerrouConfig,
};

const CHILD_DIR: &str = "VERROU_CRASH_DIR";
const USERS: usize = 4;
const START: u64 = 1_795_000_000;
/// The child's clock starts here, well after enrolment, so its first code is fresh.
const CHILD_START: u64 = START + 3_600;
/// Kill once the child reported this many accepted codes and spent recovery codes.
const KILL_AFTER_TOTP: usize = 60;
const KILL_AFTER_RECOVERY: usize = 8;

/// A fixed key: parent and child are separate processes and must share it.
fn keys() -> KeyRing {
    KeyRing::new((KeyId::new("crash").unwrap(), &[42u8; 32]), []).unwrap()
}

fn db(dir: &Path) -> PathBuf {
    dir.join("verrou.db")
}

fn user(i: usize) -> UserId {
    UserId::new(format!("user-{i}")).unwrap()
}

/// Enrols the users and writes, per user, the Base32 secret and the recovery codes.
async fn prepare(dir: &Path) {
    let store = SqliteStore::open(db(dir), keys()).await.unwrap();
    let clock = InsecureManualClock::new(Timestamp::from_unix_seconds(START).unwrap());
    let verrou = Verrou::new(store, VerrouConfig::new("Crash").unwrap()).with_clock(clock.clone());
    for i in 0..USERS {
        let who = user(i);
        let secret = insecure_enroll(&verrou, &who).await.unwrap().unwrap();
        clock.advance(Duration::from_secs(30));
        let proof = insecure_fresh_proof(&verrou, &who, &secret, TotpParams::DEFAULT)
            .await
            .unwrap();
        let codes = insecure_recovery_codes(&verrou, proof.unwrap())
            .await
            .unwrap()
            .unwrap();
        let line = format!(
            "{}\n{}\n",
            secret.to_base32().expose_secret(),
            codes.join(" ")
        );
        std::fs::write(dir.join(format!("user-{i}.txt")), line).unwrap();
    }
    verrou.store().close().await;
}

fn read_user(dir: &Path, i: usize) -> (TotpSecret, Vec<String>) {
    let text = std::fs::read_to_string(dir.join(format!("user-{i}.txt"))).unwrap();
    let mut lines = text.lines();
    let secret = TotpSecret::from_base32(lines.next().unwrap()).unwrap();
    let codes = lines
        .next()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect();
    (secret, codes)
}

/// The child: verification load until killed. Runs only when the parent starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by `sigkill_mid_load_forgets_nothing` in a child process"]
async fn crash_child() {
    let dir = PathBuf::from(std::env::var(CHILD_DIR).expect("run by the crash test"));
    let store = SqliteStore::open(db(&dir), keys()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..USERS {
        let store = store.clone();
        let (secret, codes) = read_user(&dir, i);
        tasks.push(tokio::spawn(async move {
            let who = user(i);
            let clock =
                InsecureManualClock::new(Timestamp::from_unix_seconds(CHILD_START).unwrap());
            let verrou =
                Verrou::new(store, VerrouConfig::new("Crash").unwrap()).with_clock(clock.clone());
            let ctx = ClientContext::unknown();
            let mut codes = codes.into_iter();
            for round in 0u64.. {
                let now = clock.now().unwrap();
                let code = insecure_code_at(&secret, TotpParams::DEFAULT, now);
                // Sign in, pass the code, elevate the session: the portal's login.
                let session = verrou.create_session(&who, None, &ctx).await.unwrap();
                let accepted = match verrou.verify_totp(&who, &code, &ctx).await.unwrap() {
                    TotpOutcome::Accepted(accepted) => accepted,
                    other => panic!("a fresh code was refused: {other:?}"),
                };
                println!("totp {i} {}", accepted.step);
                let password_only = session.token.expose_secret();
                match verrou
                    .record_second_factor(password_only, accepted.proof, &ctx)
                    .await
                    .unwrap()
                {
                    ElevationOutcome::Elevated(elevated) => println!(
                        "session {i} {} {}",
                        elevated.session,
                        elevated.token.expose_secret()
                    ),
                    other => panic!("elevation refused: {other:?}"),
                }
                if round % 3 == 0 {
                    if let Some(code) = codes.next() {
                        match verrou
                            .verify_recovery_code(&who, &code, &ctx)
                            .await
                            .unwrap()
                        {
                            RecoveryOutcome::Accepted { .. } => println!("recovery {i} {code}"),
                            other => panic!("an unused recovery code was refused: {other:?}"),
                        }
                    }
                }
                clock.advance(Duration::from_secs(30));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_forgets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path()).await;

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash::crash_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut steps: HashMap<usize, u64> = HashMap::new();
    let mut reported: Vec<(usize, u64)> = Vec::new();
    let mut spent: Vec<(usize, String)> = Vec::new();
    let mut sessions: Vec<(usize, SessionId, String)> = Vec::new();
    let (mut totp, deadline) = (0, Instant::now() + Duration::from_secs(120));
    for line in stdout.lines() {
        let line = line.unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["totp", i, step] => {
                let (i, step): (usize, u64) = (i.parse().unwrap(), step.parse().unwrap());
                let last = steps.entry(i).or_default();
                *last = (*last).max(step);
                reported.push((i, step));
                totp += 1;
            }
            ["recovery", i, code] => spent.push((i.parse().unwrap(), (*code).to_owned())),
            ["session", i, id, token] => sessions.push((
                i.parse().unwrap(),
                SessionId::parse(id).unwrap(),
                (*token).to_owned(),
            )),
            _ => continue,
        }
        if totp >= KILL_AFTER_TOTP && spent.len() >= KILL_AFTER_RECOVERY {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child made too little progress"
        );
    }
    // SIGKILL: no destructor, no flush, no checkpoint; the child is likely mid-transaction.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child must have been killed, not have finished"
    );
    assert!(totp >= KILL_AFTER_TOTP, "the child stopped early: {status}");

    let store = SqliteStore::open(db(dir.path()), keys()).await.unwrap();
    for (i, step) in &steps {
        let active = store.active_totp(&user(*i)).await.unwrap().unwrap();
        assert!(
            active.last_step >= *step,
            "user {i}: step {step} was accepted but the store says {}",
            active.last_step
        );
    }
    // Each accepted step's audit record was committed with it.
    for (i, step) in &reported {
        let trail = store.audit_trail(Some(&user(*i)), 100_000).await.unwrap();
        let recorded = trail.iter().any(
            |event| matches!(event.kind, AuditKind::TotpAccepted { step: s, .. } if s == *step),
        );
        assert!(
            recorded,
            "user {i}: step {step} accepted without its audit record"
        );
    }
    // Each session reported elevated is there, elevated, and its token works, whatever the
    // kill interrupted (a session in the middle of its elevation is either password-only
    // with its old token or elevated with the new one; never in between).
    assert!(!sessions.is_empty());
    for (i, id, token) in &sessions {
        let stored = store.user_sessions(&user(*i)).await.unwrap();
        let record = stored
            .iter()
            .find(|s| s.id == *id)
            .expect("reported session lost");
        assert_eq!(record.assurance, Assurance::SecondFactor);
        let clock = InsecureManualClock::new(record.created_at);
        let policy = SessionPolicy::new()
            .with_binding(BindingMode::Off, Duration::from_secs(300))
            .unwrap();
        let config = VerrouConfig::new("Crash")
            .unwrap()
            .with_session_policy(policy);
        let verrou = Verrou::new(store.clone(), config).with_clock(clock);
        let cookies = SessionCookies::new(token, None);
        let status = verrou
            .authenticate(
                &cookies,
                Requirement::SecondFactor,
                &ClientContext::unknown(),
            )
            .await
            .unwrap();
        assert!(matches!(status, SessionStatus::Active(_)), "{status:?}");
    }
    for (i, code) in &spent {
        let lookup = RecoveryCodeInput::parse(code).unwrap().lookup();
        let record = store
            .recovery_code(&user(*i), lookup)
            .await
            .unwrap()
            .unwrap();
        assert!(
            record.used,
            "user {i}: a spent recovery code is unused again"
        );
    }
    // Through the service, as an attacker replaying what the child used would see it.
    let (i, step) = steps.iter().next().map(|(i, s)| (*i, *s)).unwrap();
    let (secret, _) = read_user(dir.path(), i);
    let time = Timestamp::from_unix_seconds(step * 30).unwrap();
    let clock = InsecureManualClock::new(time);
    let verrou = Verrou::new(store, VerrouConfig::new("Crash").unwrap()).with_clock(clock);
    let replay = insecure_code_at(&secret, TotpParams::DEFAULT, time);
    let outcome = verrou
        .verify_totp(&user(i), &replay, &ClientContext::unknown())
        .await
        .unwrap();
    assert_eq!(outcome, TotpOutcome::Replayed);
    verrou.store().close().await;

    let mut conn = SqliteConnectOptions::new()
        .filename(db(dir.path()))
        .connect()
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

// ---- two processes, one database ---------------------------------------------------------

const RACE_ROUNDS: u64 = 40;

/// A child of `two_processes_never_accept_one_code_twice`: once its sibling is ready too,
/// walks through the same codes (user 0's TOTP codes, user 1's recovery codes) and prints
/// what it got accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by `two_processes_never_accept_one_code_twice` in a child process"]
async fn race_child() {
    let dir = PathBuf::from(std::env::var(CHILD_DIR).expect("run by the race test"));
    let store = SqliteStore::open(db(&dir), keys()).await.unwrap();
    let clock = InsecureManualClock::new(Timestamp::from_unix_seconds(CHILD_START).unwrap());
    let verrou = Verrou::new(store, VerrouConfig::new("Race").unwrap()).with_clock(clock.clone());
    let ctx = ClientContext::unknown();
    let (secret, _) = read_user(&dir, 0);
    let (_, recovery) = read_user(&dir, 1);
    // Start together: the parent creates `go` once both children said they are ready.
    println!("ready");
    while !dir.join("go").exists() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for round in 0..RACE_ROUNDS {
        clock.set_unix_seconds(CHILD_START + 30 * round);
        let code = insecure_code_at(&secret, TotpParams::DEFAULT, clock.now().unwrap());
        match verrou.verify_totp(&user(0), &code, &ctx).await.unwrap() {
            TotpOutcome::Accepted(accepted) => println!("totp {}", accepted.step),
            // The sibling's code, or the throttle its replays engaged: both are refusals.
            TotpOutcome::Replayed | TotpOutcome::Throttled { .. } | TotpOutcome::Locked { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        if let Some(code) = recovery.get(round as usize) {
            match verrou
                .verify_recovery_code(&user(1), code, &ctx)
                .await
                .unwrap()
            {
                RecoveryOutcome::Accepted { .. } => println!("recovery {code}"),
                RecoveryOutcome::Replayed
                | RecoveryOutcome::Throttled { .. }
                | RecoveryOutcome::Locked { .. }
                | RecoveryOutcome::Busy { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    verrou.store().close().await;
}

/// Two processes on one SQLite file (real file locks, not one process's connections) race
/// through the same TOTP codes and recovery codes: none is ever accepted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_accept_one_code_twice() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path()).await;
    let mut children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["crash::race_child", "--exact", "--ignored", "--nocapture"])
                .env(CHILD_DIR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|child| BufReader::new(child.stdout.take().unwrap()).lines())
        .collect();
    for lines in &mut outputs {
        let ready = lines.find(|l| l.as_deref().map_or(true, |l| l == "ready"));
        assert!(matches!(ready, Some(Ok(_))), "a child never got ready");
    }
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let mut accepted = Vec::new();
    let mut per_child = Vec::new();
    for (mut child, lines) in children.into_iter().zip(outputs) {
        let mine: Vec<String> = lines
            .map(Result::unwrap)
            .filter(|l| l.starts_with("totp ") || l.starts_with("recovery "))
            .collect();
        assert!(child.wait().unwrap().success(), "a child failed");
        per_child.push(mine.len());
        accepted.extend(mine);
    }
    let mut seen = std::collections::HashSet::new();
    for line in &accepted {
        assert!(seen.insert(line.clone()), "accepted twice: {line}");
    }
    let totp = accepted.iter().filter(|l| l.starts_with("totp ")).count();
    let recovery = accepted.len() - totp;
    eprintln!("accepted: {totp} TOTP steps, {recovery} recovery codes; per child {per_child:?}");
    assert!(
        totp >= 1 && totp as u64 <= RACE_ROUNDS,
        "{totp} steps accepted"
    );
    assert!(
        (1..=10).contains(&recovery),
        "{recovery} recovery codes accepted"
    );
}
