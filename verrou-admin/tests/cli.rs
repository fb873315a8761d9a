//! `verrou-admin` run as operators would: against a SQLite file a portal wrote, with the key
//! ring from the environment, checking what it prints, what it changes and its exit status.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{config, enrolled};
use verrou::store::backend::ThrottleKey;
use verrou::store::{SqliteStore, Store};
use verrou::{KeyRing, UserId};

/// `verrou-admin` with `args` on the store at `url` (`sqlite:…`, or `postgres://…` in
/// `schema` if given), the ring `keys` in its environment and no key file.
fn admin_command(url: &str, schema: Option<&str>, keys: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_verrou-admin"));
    command
        .args(args)
        .env("VERROU_STORE", url)
        .env("VERROU_KEYS", keys)
        .env_remove("VERROU_KEYS_FILE");
    if let Some(schema) = schema {
        command.env("VERROU_PG_SCHEMA", schema);
    }
    command
}

/// `verrou-admin` with `args` run to its end on the SQLite file `store`.
fn admin(store: &Path, keys: &str, args: &[&str]) -> Output {
    admin_command(&format!("sqlite:{}", store.display()), None, keys, args)
        .output()
        .unwrap()
}

/// A portal's SQLite file with its key ring (one new key, `key_id`) and alice enrolled, her
/// sessions unbound; the directory lives as long as the first value.
async fn portal_file(
    key_id: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    String,
    support::Enrolled<SqliteStore>,
) {
    let (dir, path, keys, store) = store_file(key_id).await;
    let e = enrolled(store, support::unbound_config()).await;
    (dir, path, keys, e)
}

/// A new SQLite store in a temporary directory, sealing under a new key `key_id`: the
/// directory (it lives as long as the first value), the file, the ring's entry, the store.
async fn store_file(key_id: &str) -> (tempfile::TempDir, std::path::PathBuf, String, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.db");
    let keys = entry(key_id);
    let store = SqliteStore::open(&path, KeyRing::from_config(&keys).unwrap())
        .await
        .unwrap();
    (dir, path, keys, store)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Whether `user` has a factor that opens with `keys` alone, and their failure count.
async fn inspect(path: &Path, keys: &str, user: &UserId) -> (bool, u32) {
    let store = SqliteStore::open(path, KeyRing::from_config(keys).unwrap())
        .await
        .unwrap();
    let has_factor = store.active_totp(user).await.unwrap().is_some();
    let failures = store.throttle(&ThrottleKey::Account(user)).await.unwrap();
    store.close().await;
    (has_factor, failures.failures)
}

fn entry(id: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_verrou-admin"))
        .args(["generate-key", id])
        .output()
        .unwrap();
    assert!(out.status.success());
    text(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn operators_rotate_reset_lift_and_read_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.db");
    let (old, new) = (entry("2026-01"), entry("2026-11"));
    assert_ne!(old, new);
    assert!(old.starts_with("2026-01:") && old.len() == "2026-01:".len() + 44);

    // The portal enrols alice under the old key, and she gets locked out by guessing.
    let portal = SqliteStore::open(&path, KeyRing::from_config(&old).unwrap())
        .await
        .unwrap();
    let e = enrolled(portal, config()).await;
    for _ in 0..3 {
        assert_ne!(e.verify("000000").await, verrou::TotpOutcome::Replayed);
    }
    let alice = e.user.clone();
    e.verrou.store().close().await;

    // Rotation: the new key first, the old one still listed to open old secrets.
    let rotating = format!("{new},{old}");
    let out = admin(&path, &rotating, &["rotate-keys"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("re-sealed 1, still under another key 0"));
    // Again: nothing left to do.
    let out = admin(&path, &rotating, &["rotate-keys"]);
    assert!(text(&out.stdout).contains("re-sealed 0"));

    // The old key can now go: the factor opens with the new key alone.
    let (has_factor, failures) = inspect(&path, &new, &alice).await;
    assert!(has_factor && failures > 0);

    let out = admin(&path, &new, &["lift-lock", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = admin(&path, &new, &["reset-factor", "alice", "--yes"]);
    assert!(text(&out.stdout).contains("alice: factor removed"));

    // For tools: one JSON object per line, RFC 3339 UTC times, ids as the commands take them.
    let out = admin(&path, &new, &["audit", "alice", "--limit", "3", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["totp_factor_removed", "lock_lifted", "totp_invalid"]
    );
    for event in &events {
        assert_eq!(event["user"], "alice");
        let at = event["at"].as_str().unwrap();
        assert!(
            at.ends_with('Z') && at.len() == "2026-11-28T06:00:00Z".len(),
            "{at}"
        );
    }
    let factor = events[2]["factor"].as_str().unwrap();
    assert_eq!(verrou::FactorId::parse(factor).unwrap().to_string(), factor);

    // For people: a header and aligned columns.
    let out = admin(&path, &new, &["audit", "alice", "--limit", "3"]);
    let printed = text(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines.len() == 4,
        "{printed}"
    );
    let column = |line: &str, word: &str| line.find(word).unwrap();
    let user_at = column(lines[0], "USER");
    assert!(
        lines[1..].iter().all(|l| column(l, "alice") == user_at),
        "{printed}"
    );
    assert!(lines[3].contains("totp_invalid") && lines[3].contains(&format!("factor={factor}")));

    assert_eq!(inspect(&path, &new, &alice).await, (false, 0));
}

#[test]
fn bad_configuration_is_a_usage_error_that_shows_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.db");
    let good = entry("k1");
    let key = good.split_once(':').unwrap().1.to_owned();
    // A key one character short: the error names the entry, never the key.
    let broken = format!("k1:{}", &key[1..]);
    let out = admin(&path, &broken, &["rotate-keys"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("entry 1"), "{err}");
    assert!(!err.contains(&key[1..]), "{err}");

    // Each usage error names what is wrong, before any store is opened.
    for (args, named) in [
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'"),
        (&["reset-factor"], "<USER>"),
        (&["audit", "a", "b"], "unexpected argument 'b'"),
        (
            &["audit", "--limit", "x"],
            "invalid value 'x' for '--limit <LIMIT>'",
        ),
        (
            &["revoke-before", "yesterday"],
            "invalid value 'yesterday' for '<WHEN>'",
        ),
        (&["revoke-session", "not-a-session"], "'<SESSION>'"),
    ] {
        let out = admin(&path, &good, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(named), "{args:?}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_verrou-admin"))
        .arg("rotate-keys")
        .env("VERROU_KEYS", &good)
        .env("VERROU_STORE", "mysql://nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The same commands against PostgreSQL, in a schema of the test's own.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn operators_reach_a_postgres_store_in_its_schema() {
    use verrou::store::PostgresStore;
    let (url, schema) = support::postgres::server();
    let keys = entry("k1");
    let portal =
        PostgresStore::connect_in_schema(&url, &schema.name, KeyRing::from_config(&keys).unwrap())
            .await
            .unwrap();
    let e = enrolled(portal, support::unbound_config()).await;
    let mut browser = e.sign_in(Some("provider-42")).await;
    e.elevate(&mut browser).await;
    e.verrou.store().close().await;
    let rotating = format!("{},{keys}", entry("k2"));
    let run = |args: &[&str]| {
        admin_command(&url, Some(&schema.name), &rotating, args)
            .output()
            .unwrap()
    };
    let out = run(&["rotate-keys"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("re-sealed 1, still under another key 0"));
    let out = run(&["audit"]);
    assert!(text(&out.stdout).contains("totp_enrollment_confirmed"));
    let out = run(&["audit", "--json", "--limit", "1"]);
    let newest: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(newest["kind"], "operator_command");
    assert_eq!(newest["command"], "audit");
    let out = run(&[
        "audit",
        "--json",
        "--limit",
        "1",
        "--kind",
        "session_elevated",
    ]);
    let newest: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(newest["session"], browser.id.to_string());

    let out = run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(status["schema_version"], 7);
    assert_eq!(status["keys"][0]["sealed"], 1, "{status}");
    assert_eq!(status["sessions"][0]["org"], "provider-42");

    let out = run(&["sessions", "--org", "provider-42", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(listed["session"], browser.id.to_string());
    assert_eq!(listed["assurance"], "second_factor");
    let out = run(&["revoke-org", "provider-42", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(plan["sessions"], 1);
    assert_eq!(run(&["revoke-org", "provider-42"]).status.code(), Some(2));
    let out = run(&["revoke-org", "provider-42", "--yes"]);
    assert_eq!(text(&out.stdout).trim(), "1 sessions revoked");
}

/// Incident response: revoke every session of the compromised partner organisation, then one
/// session, then everything issued before now; each takes effect for the running portal.
#[tokio::test]
async fn operators_revoke_an_organisations_sessions() {
    use verrou::session::Requirement;
    use verrou::SessionStatus;

    let (_dir, path, keys, e) = portal_file("2026-11").await;
    let mut infected = Vec::new();
    for _ in 0..3 {
        let mut browser = e.sign_in(Some("provider-42")).await;
        e.elevate(&mut browser).await;
        infected.push(browser);
    }
    let mut elsewhere = e.sign_in(Some("provider-7")).await;
    e.elevate(&mut elsewhere).await;
    let mut another = e.sign_in(Some("provider-7")).await;
    e.elevate(&mut another).await;

    let out = admin(&path, &keys, &["revoke-org", "provider-42", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "3 sessions revoked");
    for browser in &infected {
        let status = e.status(browser, Requirement::AnySession).await;
        assert_eq!(status, SessionStatus::NotFound);
    }
    let status = e.status(&elsewhere, Requirement::SecondFactor).await;
    assert!(matches!(status, SessionStatus::Active(_)));

    let out = admin(&path, &keys, &["revoke-session", &elsewhere.id.to_string()]);
    assert_eq!(text(&out.stdout).trim(), "1 sessions revoked");
    assert_eq!(
        e.status(&elsewhere, Requirement::AnySession).await,
        SessionStatus::NotFound
    );
    let out = admin(&path, &keys, &["revoke-before", "now", "--yes"]);
    assert_eq!(text(&out.stdout).trim(), "1 sessions revoked");
    assert_eq!(
        e.status(&another, Requirement::AnySession).await,
        SessionStatus::NotFound
    );

    let out = admin(&path, &keys, &["audit", "alice"]);
    let revoked = text(&out.stdout)
        .lines()
        .filter(|line| line.contains("session_revoked"))
        .count();
    assert_eq!(revoked, 5);
    // Ids print as `revoke-session` takes them: an operator can paste one from the trail.
    let trail = text(&out.stdout);
    assert!(trail.contains(&elsewhere.id.to_string()), "{trail}");
    assert!(!trail.contains("SessionId(["), "{trail}");

    for bad in [
        &["revoke-session", "not-an-id"][..],
        &["revoke-org", ""],
        &["revoke-before", "yesterday"],
    ] {
        let out = admin(&path, &keys, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// `revoke-before now` right after a sign-in: the session was stamped in the current second
/// and must be revoked too.
#[tokio::test]
async fn revoke_before_now_includes_this_seconds_sessions() {
    let (_dir, path, keys, store) = store_file("k1").await;
    let verrou = verrou::Verrou::new(store.clone(), config());
    let alice = UserId::new("alice").unwrap();
    let session = verrou
        .create_session(&alice, None, &verrou::ClientContext::unknown())
        .await
        .unwrap();
    let out = admin(&path, &keys, &["revoke-before", "now", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "1 sessions revoked");
    let token = session.token.expose_secret().to_owned();
    let status = verrou
        .authenticate(
            &verrou::SessionCookies::new(&token, None),
            verrou::session::Requirement::AnySession,
            &verrou::ClientContext::unknown(),
        )
        .await
        .unwrap();
    assert_eq!(status, verrou::SessionStatus::NotFound);
    store.close().await;
}

/// A user id stored before verrou refused bidirectional overrides cannot reorder the
/// operator's terminal line: the audit trail prints it escaped. New ids with such characters
/// are refused as arguments.
#[tokio::test]
async fn the_audit_trail_escapes_invisible_characters_in_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.db");
    let keys = entry("k1");
    let e = enrolled(
        SqliteStore::open(&path, KeyRing::from_config(&keys).unwrap())
            .await
            .unwrap(),
        config(),
    )
    .await;
    e.verrou.store().close().await;
    support::sqlite::raw_exec(
        &path,
        "UPDATE verrou_audit SET user_id = 'admin' || char(8238) || 'gpj.exe'",
    )
    .await;
    let out = admin(&path, &keys, &["audit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(!printed.contains('\u{202E}'), "{printed}");
    assert!(printed.contains("admin\\u{202e}gpj.exe"), "{printed}");
    let out = admin(&path, &keys, &["audit", "admin\u{202E}gpj.exe"]);
    assert_eq!(out.status.code(), Some(2));
}

/// One malformed sealed row does not stop a rotation: it is named, the others are
/// re-sealed, and the exit status says the run is incomplete.
#[tokio::test]
async fn rotation_skips_and_reports_a_malformed_row() {
    let (_dir, path, old, store) = store_file("k1").await;
    let clock = verrou::testing::InsecureManualClock::new(support::at(support::START));
    let verrou = verrou::Verrou::new(store.clone(), config()).with_clock(clock);
    for name in ["alice", "bob", "carol"] {
        support::enrol(&verrou, &UserId::new(name).unwrap()).await;
    }
    store.close().await;
    support::sqlite::raw_exec(
        &path,
        "UPDATE verrou_totp_active SET sealed = x'01' WHERE user_id = 'bob'",
    )
    .await;
    let rotating = format!("{},{old}", entry("k2"));
    let out = admin(&path, &rotating, &["rotate-keys"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("re-sealed 2"), "{printed}");
    assert!(printed.contains("unreadable 1"), "{printed}");
    assert!(printed.contains("unreadable: user bob"), "{printed}");
}

/// A key file others can read is refused, as ssh refuses such a private key; `VERROU_KEYS`
/// is not left for child processes (checked in the library: the CLI removes it once read).
#[cfg(unix)]
#[test]
fn a_world_readable_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.db");
    let file = dir.path().join("keys");
    std::fs::write(&file, entry("k1")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_verrou-admin"))
            .arg("rotate-keys")
            .env("VERROU_STORE", format!("sqlite:{}", path.display()))
            .env("VERROU_KEYS_FILE", &file)
            .env_remove("VERROU_KEYS")
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// What an operator finds at 3 a.m.: every command explains itself with an example, and the
/// shell completes them.
#[test]
fn every_command_has_help_with_an_example_and_completions_exist() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_verrou-admin"))
            .args(args)
            .env_remove("VERROU_KEYS")
            .env_remove("VERROU_STORE")
            .output()
            .unwrap()
    };
    let commands = [
        "generate-key",
        "rotate-keys",
        "reset-factor",
        "lift-lock",
        "revoke-org",
        "revoke-user",
        "revoke-session",
        "revoke-before",
        "audit",
        "status",
        "completions",
    ];
    let top = run(&["--help"]);
    assert!(top.status.success());
    let listing = text(&top.stdout);
    for command in commands {
        assert!(listing.contains(command), "{command} missing from --help");
        let out = run(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        let help = text(&out.stdout);
        assert!(
            help.contains(&format!("verrou-admin {command}")) && help.contains("Example"),
            "{command} --help shows no example:\n{help}"
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("revoke-org") && script.contains("rotate-keys"),
            "{shell}: {script}"
        );
    }
    assert_eq!(run(&["completions", "cmd.exe"]).status.code(), Some(2));
}

/// With `--json`, an action's result is one JSON object too (a response script reads it).
#[tokio::test]
async fn actions_report_in_json_and_instants_read_as_rfc_3339() {
    let (_dir, path, keys, e) = portal_file("k1").await;
    let at = support::START + 30;
    let session = e
        .verrou
        .create_session(&e.user, None, &verrou::ClientContext::unknown())
        .await
        .unwrap();
    e.verrou.store().close().await;

    // Before the session's second: nothing to revoke; at the second after it, the session.
    let before = rfc3339(at - 1);
    let out = admin(&path, &keys, &["revoke-before", &before, "--json", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(result["command"], "revoke-before");
    assert_eq!(result["revoked"], 0);
    let out = admin(
        &path,
        &keys,
        &["revoke-before", &rfc3339(at + 1), "--json", "--yes"],
    );
    let result: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(result["revoked"], 1, "{result}");

    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let started = unix_now();
    let out = admin(&path, &keys, &["reset-factor", "alice", "--json", "--yes"]);
    let result: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(result["factor_removed"], true);
    let out = admin(&path, &keys, &["audit", "--json", "--limit", "1000"]);
    let revoked = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|event| event["kind"] == "session_revoked")
        .unwrap();
    assert_eq!(revoked["session"], session.session.to_string());
    assert_eq!(revoked["reason"], "revoked");
    // The revocation happened on the operator's clock, during the reset.
    let when = revoked["at"].as_str().unwrap();
    assert!((started..=unix_now()).any(|t| rfc3339(t) == when), "{when}");
}

/// `seconds` as RFC 3339 UTC, by an independent implementation (GNU `date`).
fn rfc3339(seconds: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{seconds}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_owned()
}

/// Before ending a partner's sessions the operator sees them; a destructive command says what
/// it will touch, is refused without `--yes` when no terminal can ask, and `--dry-run`
/// changes nothing.
#[tokio::test]
async fn destructive_commands_ask_first_and_sessions_are_listed() {
    use verrou::session::Requirement;
    use verrou::{ClientContext, OrgId, SessionStatus};

    let (_dir, path, keys, e) = portal_file("2026-11").await;
    let mut infected = e.sign_in(Some("provider-42")).await;
    e.elevate(&mut infected).await;
    let from = ClientContext::from_addr("203.0.113.9".parse().unwrap());
    let org = OrgId::new("provider-42").unwrap();
    let marked = e
        .verrou
        .create_session(&e.user, Some(&org), &from)
        .await
        .unwrap();
    let other = e.sign_in(Some("provider-7")).await;

    // The listing: newest first, with assurance, times and the creating address.
    let out = admin(
        &path,
        &keys,
        &["sessions", "--org", "provider-42", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed
        .iter()
        .all(|s| s["org"] == "provider-42" && s["user"] == "alice"));
    let ids: Vec<&str> = listed
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&marked.session.to_string().as_str()));
    assert!(ids.contains(&infected.id.to_string().as_str()));
    let marked_row = listed
        .iter()
        .find(|s| s["session"] == marked.session.to_string())
        .unwrap();
    assert_eq!(marked_row["address"], "203.0.113.9");
    assert_eq!(marked_row["assurance"], "password_only");
    assert_eq!(marked_row["binding"], "none");
    let infected_row = listed
        .iter()
        .find(|s| s["session"] == infected.id.to_string())
        .unwrap();
    assert_eq!(infected_row["assurance"], "second_factor");
    assert!(infected_row["created"].as_str().unwrap().ends_with('Z'));
    let out = admin(&path, &keys, &["sessions", "--user", "alice"]);
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with("SESSION") && printed.lines().count() == 4,
        "{printed}"
    );
    assert_eq!(admin(&path, &keys, &["sessions"]).status.code(), Some(2));

    // No terminal, no --yes: refused, naming the count, nothing changed.
    for args in [
        &["revoke-org", "provider-42"][..],
        &["revoke-before", "now"],
        &["reset-factor", "alice"],
    ] {
        let out = admin(&path, &keys, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("--yes") && err.contains("sessions"), "{err}");
    }
    assert!(e.verrou.has_active_totp(&e.user).await.unwrap());
    let status = e.status(&infected, Requirement::SecondFactor).await;
    assert!(matches!(status, SessionStatus::Active(_)));

    // A dry run counts and changes nothing.
    let out = admin(
        &path,
        &keys,
        &["revoke-org", "provider-42", "--dry-run", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["sessions"], 2);
    let out = admin(&path, &keys, &["reset-factor", "alice", "--dry-run"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("a factor to remove, 3 sessions to revoke"),
        "{said}"
    );
    assert!(said.contains("nothing changed"), "{said}");
    assert!(e.verrou.has_active_totp(&e.user).await.unwrap());
    let status = e.status(&infected, Requirement::SecondFactor).await;
    assert!(matches!(status, SessionStatus::Active(_)));
    assert!(matches!(
        e.status(&other, Requirement::AnySession).await,
        SessionStatus::Active(_)
    ));
    assert_eq!(
        admin(
            &path,
            &keys,
            &["revoke-org", "provider-42", "--yes", "--dry-run"]
        )
        .status
        .code(),
        Some(2)
    );

    // --yes goes ahead.
    let out = admin(&path, &keys, &["revoke-org", "provider-42", "--yes"]);
    assert_eq!(text(&out.stdout).trim(), "2 sessions revoked");
}

/// The regulator's questions: what kind, when; and a SIEM tailing the trail as it grows.
#[tokio::test]
async fn the_audit_trail_filters_by_kind_time_and_organisation_and_follows() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use verrou::audit::{AuditEvent, AuditKind};

    let (_dir, path, keys, store) = store_file("k1").await;
    let record = |seconds: u64, who: &str, kind: AuditKind| {
        let event = AuditEvent::new(support::at(seconds), UserId::new(who).unwrap(), None, kind);
        let store = store.clone();
        async move { store.record_audit(event).await.unwrap() }
    };
    let start = support::START;
    record(start, "alice", AuditKind::LockLifted).await;
    record(start + 60, "bob", AuditKind::RecoveryCodeInvalid).await;
    record(start + 120, "alice", AuditKind::RecoveryCodeInvalid).await;
    record(start + 180, "carol", AuditKind::LockLifted).await;

    let json_lines = |out: &Output| -> Vec<serde_json::Value> {
        text(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let users = |events: &[serde_json::Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["user"].as_str().unwrap().to_owned())
            .collect()
    };
    let out = admin(
        &path,
        &keys,
        &["audit", "--kind", "recovery_code_invalid", "--json"],
    );
    assert_eq!(users(&json_lines(&out)), ["alice", "bob"]);
    let since = rfc3339(start + 60);
    let until = rfc3339(start + 180);
    let args = ["audit", "--since", &since, "--until", &until, "--json"];
    assert_eq!(
        users(&json_lines(&admin(&path, &keys, &args))),
        ["alice", "bob"]
    );
    let args = ["audit", "alice", "--kind", "lock_lifted", "--json"];
    let only = json_lines(&admin(&path, &keys, &args));
    assert_eq!(users(&only), ["alice"]);
    assert_eq!(only[0]["at"], rfc3339(start));
    let out = admin(&path, &keys, &["audit", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));

    // By organisation: the events about its sessions, each naming it.
    let session = |org: &str| {
        let event = AuditEvent::new(
            support::at(start + 30),
            UserId::new(if org == "formation-nord" {
                "alice"
            } else {
                "bob"
            })
            .unwrap(),
            None,
            AuditKind::SessionCreated {
                session: verrou::SessionId::generate().unwrap(),
            },
        );
        let event = event.in_org(Some(verrou::OrgId::new(org).unwrap()));
        let store = store.clone();
        async move { store.record_audit(event).await.unwrap() }
    };
    session("formation-nord").await;
    session("formation-sud").await;
    let args = ["audit", "--org", "formation-nord", "--json"];
    let partner = json_lines(&admin(&path, &keys, &args));
    assert_eq!(users(&partner), ["alice"]);
    assert_eq!(partner[0]["org"], "formation-nord");
    assert_eq!(partner[0]["kind"], "session_created");
    let out = admin(&path, &keys, &["audit", "--org", "formation-sud"]);
    let printed = text(&out.stdout);
    assert!(
        printed.lines().next().unwrap().contains(" ORG "),
        "{printed}"
    );
    assert!(
        printed.lines().nth(1).unwrap().contains(" formation-sud "),
        "{printed}"
    );
    assert_eq!(printed.lines().count(), 2, "{printed}");

    // Following: the past first (oldest first), then what is recorded while it runs,
    // filtered; in JSON one object a line, in text one table whose header comes once.
    let follow = |json: bool| {
        let url = format!("sqlite:{}", path.display());
        let args = ["audit", "--follow", "--interval", "1", "--limit", "2"];
        let mut child = admin_command(&url, None, &keys, &args)
            .args(["--kind", "lock_lifted"])
            .args(json.then_some("--json"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if lines_tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let next = move || {
            lines_rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("audit --follow printed nothing")
        };
        (child, next)
    };
    let (mut json_child, next_json) = follow(true);
    let next = || serde_json::from_str::<serde_json::Value>(&next_json()).unwrap();
    assert_eq!(next()["user"], "alice");
    assert_eq!(next()["user"], "carol");
    let (mut text_child, next_text) = follow(false);
    let header = next_text();
    assert!(header.starts_with("TIME"), "{header}");
    let column = |line: &str| line.find("lock_lifted");
    let past = [next_text(), next_text()];
    assert!(
        past[0].contains(" alice ") && past[1].contains(" carol "),
        "{past:?}"
    );
    assert_eq!(column(&past[0]), header.find("EVENT"), "{header}\n{past:?}");

    record(start + 240, "dave", AuditKind::RecoveryCodeInvalid).await;
    record(start + 300, "erin", AuditKind::LockLifted).await;
    let followed = next();
    let followed_text = next_text();
    for child in [&mut json_child, &mut text_child] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(followed["user"], "erin", "{followed}");
    assert_eq!(followed["at"], rfc3339(start + 300));
    // A row of the same table: no second header, the same columns.
    assert!(followed_text.contains(" erin "), "{followed_text}");
    assert_eq!(column(&followed_text), column(&past[0]), "{followed_text}");
}

/// The README's "Responding to an incident" block, run line by line as written.
#[tokio::test]
async fn the_readme_incident_response_runs_as_written() {
    use verrou::{ClientContext, OrgId};

    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = readme
        .split("## Responding to an incident")
        .nth(1)
        .expect("the README has the section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let lines: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 9, "{lines:?}");

    // The portal's store: Marie enrolled and signed in twice at the partner, a colleague
    // enrolled and signed in elsewhere.
    let (dir, path, old, store) = store_file("2026-11").await;
    // 2026-11-30, after the theft (2026-11-28T06:00:00Z).
    let clock = verrou::testing::InsecureManualClock::new(support::at(1_796_000_000));
    let verrou = verrou::Verrou::new(store.clone(), config()).with_clock(clock);
    let marie = UserId::new("marie.dupont").unwrap();
    support::enrol(&verrou, &marie).await;
    let partner = OrgId::new("formation-nord").unwrap();
    let from = ClientContext::from_addr("198.51.100.23".parse().unwrap());
    for _ in 0..2 {
        verrou
            .create_session(&marie, Some(&partner), &from)
            .await
            .unwrap();
    }
    let paul = UserId::new("paul.martin").unwrap();
    support::enrol(&verrou, &paul).await;
    let elsewhere = OrgId::new("provider-7").unwrap();
    verrou
        .create_session(&paul, Some(&elsewhere), &ClientContext::unknown())
        .await
        .unwrap();
    store.close().await;

    let mut ring = old.clone();
    let mut exported = None;
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "verrou-admin", "{line}");
        let (args, redirect) = match words.iter().position(|w| *w == ">") {
            Some(at) => (&words[1..at], words.get(at + 1).copied()),
            None => (&words[1..], None),
        };
        let out = admin(&path, &ring, args);
        assert!(out.status.success(), "{line}: {}", text(&out.stderr));
        let printed = text(&out.stdout);
        match args {
            ["sessions", ..] => assert_eq!(printed.lines().count(), 3, "{printed}"),
            ["revoke-org", _, "--dry-run"] => {
                assert!(printed.contains("2 sessions to revoke"), "{printed}");
            }
            ["revoke-org", _, "--yes"] => assert_eq!(printed.trim(), "2 sessions revoked"),
            ["revoke-before", "now", "--yes"] => assert_eq!(printed.trim(), "1 sessions revoked"),
            ["reset-factor", ..] => assert!(printed.contains("factor removed"), "{printed}"),
            ["generate-key", id] => {
                assert!(printed.starts_with(&format!("{id}:")));
                // The new entry goes first: it seals from now on.
                ring = format!("{},{old}", printed.trim());
            }
            // Paul's secret; Marie's went with her factor.
            ["rotate-keys"] => assert!(printed.contains("re-sealed 1,"), "{printed}"),
            ["audit", "--org", org, ..] => {
                let rows: Vec<&str> = printed.lines().skip(1).collect();
                assert_eq!(rows.len(), 2, "{printed}");
                assert!(rows.iter().all(|row| row.contains(org)), "{printed}");
                assert!(rows.iter().all(|row| row.contains("session_created")));
            }
            ["audit", .., "--json"] => {}
            other => panic!("a README line the test does not know: {other:?}"),
        }
        if let Some(file) = redirect {
            std::fs::write(dir.path().join(file), &out.stdout).unwrap();
            exported = Some(dir.path().join(file));
        }
    }

    let trail = std::fs::read_to_string(exported.expect("the trail was exported")).unwrap();
    let kinds: Vec<String> = trail
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["kind"].to_string())
        .collect();
    let count = |kind: &str| kinds.iter().filter(|k| k.trim_matches('"') == kind).count();
    assert_eq!(count("session_revoked"), 3, "{kinds:?}");
    // The revocations name the organisation of each session they ended.
    let orgs: Vec<String> = trail
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["kind"] == "session_revoked")
        .map(|event| event["org"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(orgs, ["provider-7", "formation-nord", "formation-nord"]);
    assert_eq!(count("totp_factor_removed"), 1, "{kinds:?}");
}

/// Each command that touches the store leaves its own record first: who (login@host), what
/// (the command as parsed: never the store's URL or a key), even when it is refused.
#[tokio::test]
async fn every_store_command_records_who_ran_what() {
    let (_dir, path, keys, _e) = portal_file("k1").await;
    let url = format!("sqlite:{}", path.display());
    let run = |args: &[&str]| {
        admin_command(&url, None, &keys, args)
            .env("SUDO_USER", "marc.operator")
            .output()
            .unwrap()
    };
    run(&["revoke-org", "formation-nord", "--dry-run"]);
    run(&["revoke-org", "formation-nord"]); // refused: no terminal, no --yes
    run(&["lift-lock", "alice"]);
    run(&["--store", &url, "sessions", "--user", "alice"]);
    run(&["generate-key", "k2"]); // touches no store: no record

    let out = run(&["audit", "--kind", "operator_command", "--json"]);
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let commands: Vec<&str> = records
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "audit --kind operator_command",
            "sessions --user alice",
            "lift-lock alice",
            "revoke-org formation-nord",
            "revoke-org formation-nord --dry-run",
        ]
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for record in &records {
        assert_eq!(record["user"], format!("marc.operator@{}", host.trim()));
    }
    // The store's URL (a PostgreSQL one may hold a password) is never recorded.
    assert!(!text(&out.stdout).contains(&url));
    assert!(!text(&out.stdout).contains(keys.split_once(':').unwrap().1));
}

/// At 3 a.m., one command says where things stand: the schema, how far a rotation got, who
/// is signed in where, who is locked out.
#[tokio::test]
async fn status_shows_keys_rotation_progress_sessions_and_locked_accounts() {
    use verrou::lockout::ThrottlePolicy;
    use verrou::store::backend::ThrottleKey;

    let (_dir, path, old, e) = portal_file("2026-11").await;
    let mut staff = e.sign_in(Some("formation-nord")).await;
    e.elevate(&mut staff).await;
    e.sign_in(Some("formation-nord")).await;
    e.sign_in(None).await;
    let policy = ThrottlePolicy::ACCOUNT_DEFAULT;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Bob guessed until locked out, just now; carol failed once, long ago.
    let carol = UserId::new("carol").unwrap();
    let key = ThrottleKey::Account(&carol);
    e.verrou
        .store()
        .reserve_attempt(&key, &policy, support::at(support::START))
        .await
        .unwrap();
    e.verrou.store().close().await;
    sqlx::query(
        "INSERT INTO verrou_throttle (throttle_key, failures, last_failure) \
         VALUES ('account:bob', $1, $2)",
    )
    .bind(i64::from(policy.lock_after))
    .bind(i64::try_from(now).unwrap())
    .execute(&mut support::sqlite::raw(&path).await)
    .await
    .unwrap();
    // A new key put first in the ring, the rotation not run yet.
    let ring = format!("{},{old}", entry("2026-12"));

    let out = admin(&path, &ring, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(status["schema_version"], 7);
    let keys = status["keys"].as_array().unwrap();
    assert_eq!(keys[0]["id"], "2026-12");
    assert_eq!(keys[0]["active"], true);
    assert_eq!(keys[0]["sealed"], 0);
    assert_eq!(keys[1]["id"], "2026-11");
    assert_eq!(
        keys[1]["sealed"], 1,
        "alice's secret, still under the old key"
    );
    let sessions = status["sessions"].as_array().unwrap();
    let count = |org: &str, assurance: &str| {
        sessions
            .iter()
            .find(|s| s["org"] == org && s["assurance"] == assurance)
            .map_or(0, |s| s["count"].as_u64().unwrap())
    };
    assert_eq!(count("formation-nord", "second_factor"), 1);
    assert_eq!(count("formation-nord", "password_only"), 1);
    assert_eq!(count("-", "password_only"), 1);
    let accounts = status["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    assert_eq!(accounts[0]["user"], "bob");
    assert_eq!(accounts[0]["gate"], "locked");
    assert!(accounts[0]["until"].as_str().unwrap().ends_with('Z'));
    assert_eq!(accounts[1]["user"], "carol");
    assert_eq!(accounts[1]["gate"], "open");
    assert_eq!(status["account_policy"]["lock_after"], policy.lock_after);

    // A portal that locks later: bob is only slowed down by its policy.
    let args = [
        "status",
        "--json",
        "--lock-after",
        "20",
        "--lock-for",
        "30m",
        "--permanent-after",
        "60",
    ];
    let out = admin(&path, &ring, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(status["accounts"][0]["user"], "bob");
    assert_eq!(status["accounts"][0]["gate"], "slowed");
    assert_eq!(status["account_policy"]["lock_seconds"], 1_800);
    // A policy no portal could run with is a usage error that names the rule.
    let out = admin(&path, &ring, &["status", "--lock-after", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("lock_after must exceed free_failures"));
    let out = admin(&path, &ring, &["status", "--lock-for", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--lock-for"),
        "{}",
        text(&out.stderr)
    );

    // After the rotation, the old key seals nothing: it can leave the ring.
    assert!(admin(&path, &ring, &["rotate-keys"]).status.success());
    let out = admin(&path, &ring, &["status"]);
    let printed = text(&out.stdout);
    assert!(printed.starts_with("schema version 7"), "{printed}");
    let line = |key: &str| {
        printed
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .to_owned()
    };
    assert!(
        line("2026-12").contains("active") && line("2026-12").ends_with('1'),
        "{printed}"
    );
    assert!(line("2026-11").ends_with('0'), "{printed}");
    assert!(line("bob").contains("locked"), "{printed}");
}

/// How many sealed secrets the rotation-at-scale tests hold (plus two that cannot be opened).
const MANY: usize = 100_000;

/// `MANY` TOTP secrets sealed under `keys` for users `user-000000`…, and two rows a rotation
/// cannot open among them: a blob too short to parse, and one sealed for another user.
fn many_sealed_rows(keys: &KeyRing) -> Vec<(String, String, Vec<u8>)> {
    use verrou::{FactorId, TotpSecret};
    let secret = TotpSecret::generate().unwrap();
    let mut rows: Vec<_> = (0..MANY)
        .map(|i| {
            let user = UserId::new(format!("user-{i:06}")).unwrap();
            let factor = FactorId::generate().unwrap();
            let sealed = keys.seal(&secret, &user, &factor).unwrap();
            (user.as_str().to_owned(), factor.to_string(), sealed)
        })
        .collect();
    let swapped = rows[1].2.clone();
    rows.push(("user-033333-garbled".into(), rows[2].1.clone(), vec![1]));
    rows.push(("user-066666-swapped".into(), rows[1].1.clone(), swapped));
    rows
}

/// A rotation over `MANY` sealed secrets, killed partway, leaves each secret under one key
/// or the other; run again, it re-seals exactly those left (skipping the ones done), reports
/// the two it cannot open without stopping, and ends with every other secret under the new
/// key. `run` starts `verrou-admin` on the store with the ring `new,old` (new active).
fn a_rotation_killed_midway_resumes(run: impl Fn(&[&str]) -> Command) {
    use std::io::BufRead as _;
    use std::process::Stdio;

    let status = |run: &dyn Fn(&[&str]) -> Command| {
        let out = run(&["status", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let status: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        let keys = status["keys"].as_array().unwrap();
        assert_eq!(
            (&keys[0]["id"], &keys[1]["id"]),
            (&"new".into(), &"old".into())
        );
        (
            keys[0]["sealed"].as_u64().unwrap(),
            keys[1]["sealed"].as_u64().unwrap(),
        )
    };

    // Started, then killed once it says it has read a tenth.
    let mut first = run(&["rotate-keys"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(first.stderr.take().unwrap());
    let line = stderr.lines().next().unwrap().unwrap();
    assert!(line.starts_with("rotate-keys: pass 1: "), "{line}");
    assert!(
        line.contains(&format!("of {} secrets read", MANY + 2)),
        "{line}"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the rotation finished before it could be interrupted"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let (done, left) = status(&run);
    assert!(done > 0 && left > 1, "new {done}, old {left}");
    assert_eq!(
        done + left,
        MANY as u64 + 1,
        "each secret under one key or the other"
    );

    // Run again: only what was left is re-sealed; the two bad rows are named, the run goes on.
    let out = run(&["rotate-keys", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(summary["current"], done, "{summary}");
    assert_eq!(summary["resealed"], MANY as u64 - done, "{summary}");
    assert_eq!(summary["stale"], 0);
    let unreadable: Vec<_> = summary["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["user"].as_str().unwrap(),
                row["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(unreadable.len(), 2, "{summary}");
    assert_eq!(unreadable[0].0, "user-033333-garbled");
    assert_eq!(unreadable[1].0, "user-066666-swapped");
    let progress = text(&out.stderr);
    assert!(progress.contains("(100%)"), "{progress}");
    assert!(!progress.contains(" of 0 "), "{progress}");

    // Every secret that opens is under the new key; the one sealed for someone else stays.
    assert_eq!(status(&run), (MANY as u64, 1));
}

/// Writes `rows` (user, factor, sealed blob) as active TOTP factors into `table`, a hundred
/// to a statement, in one transaction.
async fn insert_factors<DB>(
    conn: &mut DB::Connection,
    table: &str,
    rows: Vec<(String, String, Vec<u8>)>,
) where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    use sqlx::Connection as _;
    let algorithm = verrou::TotpParams::DEFAULT.algorithm().as_str();
    let mut tx = conn.begin().await.unwrap();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut insert = sqlx::QueryBuilder::<DB>::new(format!(
            "INSERT INTO {table} (user_id, factor_id, sealed, algorithm, digits, period, \
             last_step, activated_at) "
        ));
        insert.push_values(
            rows.by_ref().take(100),
            |mut row, (user, factor, sealed)| {
                row.push_bind(user)
                    .push_bind(factor)
                    .push_bind(sealed)
                    .push_bind(algorithm)
                    .push_unseparated(", 6, 30, 0, 0");
            },
        );
        insert.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_over_100000_sqlite_secrets_killed_midway_resumes() {
    use sqlx::Connection as _;
    let (_dir, path, old, store) = store_file("old").await;
    store.close().await;
    let rows = many_sealed_rows(&KeyRing::from_config(&old).unwrap());
    let mut conn = support::sqlite::raw(&path).await;
    insert_factors::<sqlx::Sqlite>(&mut conn, "verrou_totp_active", rows).await;
    conn.close().await.unwrap();
    let ring = format!("{},{old}", entry("new"));
    let url = format!("sqlite:{}", path.display());
    a_rotation_killed_midway_resumes(|args| admin_command(&url, None, &ring, args));
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_over_100000_postgres_secrets_killed_midway_resumes() {
    use sqlx::Connection as _;
    use verrou::store::PostgresStore;
    let (url, schema) = support::postgres::server();
    let old = entry("old");
    let ring = KeyRing::from_config(&old).unwrap();
    PostgresStore::connect_in_schema(&url, &schema.name, ring.clone())
        .await
        .unwrap()
        .close()
        .await;
    let rows = many_sealed_rows(&ring);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let table = format!("\"{}\".verrou_totp_active", schema.name);
    insert_factors::<sqlx::Postgres>(&mut conn, &table, rows).await;
    conn.close().await.unwrap();
    let ring = format!("{},{old}", entry("new"));
    a_rotation_killed_midway_resumes(|args| admin_command(&url, Some(&schema.name), &ring, args));
}

/// What `prepare_portal` made: alice's sessions (two at `formation-nord`, the first elevated,
/// one without an organisation) and her account locked.
struct Portal {
    sessions: [verrou::SessionId; 3],
}

/// Alice signs in three times and guesses until her account locks (failures spaced so the
/// backoff lets each one count, the last a minute ago, real time).
async fn prepare_portal<S: Store>(e: &support::Enrolled<S>) -> Portal {
    let mut first = e.sign_in(Some("formation-nord")).await;
    e.elevate(&mut first).await;
    let second = e.sign_in(Some("formation-nord")).await;
    let third = e.sign_in(None).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let policy = verrou::lockout::ThrottlePolicy::ACCOUNT_DEFAULT;
    let key = ThrottleKey::Account(&e.user);
    for i in 0..u64::from(policy.lock_after) {
        let at = support::at(now - 60 - 300 * (u64::from(policy.lock_after) - 1 - i));
        let counted = e.verrou.store().reserve_attempt(&key, &policy, at).await;
        assert!(matches!(
            counted.unwrap(),
            verrou::store::backend::Reservation::Counted(_)
        ));
    }
    Portal {
        sessions: [first.id, second.id, third.id],
    }
}

/// Every subcommand that works on a store, with `--json` parsed back: `run` starts
/// `verrou-admin` on the store `prepare_portal` filled, with its ring.
fn every_store_subcommand(portal: &Portal, run: impl Fn(&[&str]) -> Output) {
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let one = |args: &[&str]| -> serde_json::Value {
        let mut records = json(args);
        assert_eq!(records.len(), 1, "{args:?}: {records:?}");
        records.remove(0)
    };
    let [first, second, third] = portal.sessions.map(|id| id.to_string());

    let status = one(&["status", "--json"]);
    assert_eq!(status["schema_version"], 7);
    assert_eq!(status["keys"][0]["sealed"], 1);
    assert_eq!(status["accounts"][0]["user"], "alice");
    assert_eq!(status["accounts"][0]["gate"], "locked");

    let listed = json(&["sessions", "--user", "alice", "--json"]);
    let mut ids: Vec<&str> = listed
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = [first.as_str(), second.as_str(), third.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(
        json(&["sessions", "--org", "formation-nord", "--json"]).len(),
        2
    );

    let trail = json(&["audit", "--org", "formation-nord", "--json"]);
    let kinds: Vec<&str> = trail.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["session_created", "session_elevated", "session_created"]
    );
    let since = rfc3339(support::START);
    let created = json(&[
        "audit",
        "alice",
        "--kind",
        "session_created",
        "--since",
        &since,
        "--json",
    ]);
    assert_eq!(created.len(), 3);
    assert!(json(&["audit", "--until", &since, "--json"]).is_empty());

    assert_eq!(one(&["lift-lock", "alice", "--json"])["user"], "alice");
    assert!(one(&["status", "--json"])["accounts"]
        .as_array()
        .unwrap()
        .is_empty());

    let revoked = one(&["revoke-session", &second, "--json"]);
    assert_eq!(revoked["revoked"], 1);
    let plan = one(&["revoke-user", "alice", "--dry-run", "--json"]);
    assert_eq!(
        (plan["dry_run"].clone(), plan["sessions"].clone()),
        (true.into(), 2.into())
    );
    assert_eq!(
        run(&["revoke-user", "alice"]).status.code(),
        Some(2),
        "no terminal, no --yes"
    );
    assert_eq!(
        one(&["revoke-user", "alice", "--yes", "--json"])["revoked"],
        2
    );
    assert_eq!(
        one(&["revoke-before", "now", "--dry-run", "--json"])["sessions"],
        0
    );
    assert_eq!(
        one(&["revoke-before", "now", "--yes", "--json"])["revoked"],
        0
    );
    assert_eq!(
        one(&["revoke-org", "formation-nord", "--yes", "--json"])["revoked"],
        0
    );

    let plan = one(&["reset-factor", "alice", "--dry-run", "--json"]);
    assert_eq!(plan["factor"], true);
    let reset = one(&["reset-factor", "alice", "--yes", "--json"]);
    assert_eq!(reset["factor_removed"], true);
    let rotated = one(&["rotate-keys", "--json"]);
    assert_eq!(
        (rotated["scanned"].clone(), rotated["resealed"].clone()),
        (0.into(), 0.into())
    );

    // The response is in the trail too: every command above and this one, oldest first.
    let mut commands: Vec<String> = json(&["audit", "--kind", "operator_command", "--json"])
        .iter()
        .map(|e| e["command"].as_str().unwrap().to_owned())
        .collect();
    commands.reverse();
    assert_eq!(commands.len(), 19, "{commands:?}");
    assert_eq!(commands[0], "status");
    assert_eq!(commands[17], "rotate-keys");
    assert_eq!(commands[18], "audit --kind operator_command");
    assert!(
        commands.contains(&format!("revoke-session {second}")),
        "{commands:?}"
    );
}

#[tokio::test]
async fn every_store_subcommand_on_sqlite() {
    let (_dir, path, keys, e) = portal_file("k1").await;
    let portal = prepare_portal(&e).await;
    e.verrou.store().close().await;
    every_store_subcommand(&portal, |args| admin(&path, &keys, args));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn every_store_subcommand_on_postgres() {
    use verrou::store::PostgresStore;
    let (url, schema) = support::postgres::server();
    let keys = entry("k1");
    let store =
        PostgresStore::connect_in_schema(&url, &schema.name, KeyRing::from_config(&keys).unwrap())
            .await
            .unwrap();
    let e = enrolled(store, support::unbound_config()).await;
    let portal = prepare_portal(&e).await;
    e.verrou.store().close().await;
    every_store_subcommand(&portal, |args| {
        admin_command(&url, Some(&schema.name), &keys, args)
            .output()
            .unwrap()
    });
}
