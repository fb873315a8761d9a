//! The commands that work on the store. Those that end sessions or remove factors first say
//! what they will touch, and go ahead only with `--yes`, a "y" on the terminal, or not at
//! all with `--dry-run`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use verrou::lockout::{Gate, ThrottlePolicy};
use verrou::session::RevocationScope;
use verrou::store::backend::SessionRecord;
use verrou::store::backend::SessionStore;
use verrou::store::{AnyStore, AuditQuery, KeyRotation, Store};
use verrou::{
    AuditEvent, AuditKind, ClientContext, Clock, KeyRing, SessionId, SystemClock, Timestamp,
    UserId, Verrou, VerrouConfig,
};

use crate::cli::{Command, Confirm};
use crate::output::{print_events, print_result, print_table, rfc3339, EventPrinter, Format};
use crate::rotation::rotate_keys;
use crate::Failure;

/// How far back the audit trail is read for the address a session was created from.
const ADDRESS_LOOKBACK: usize = 10_000;
/// How many new events `audit --follow` reads at a time.
const FOLLOW_PAGE: usize = 1_000;

pub(crate) async fn on_store(
    store: AnyStore,
    keys: &KeyRing,
    command: Command,
    format: Format,
) -> Result<(), Failure> {
    let verrou = Verrou::new(store, VerrouConfig::new("verrou-admin")?);
    // The trail shows the response as well as the attack: who ran what, from which host,
    // recorded before the command acts (a command that cannot be recorded does not run).
    if let Some(text) = describe(&command) {
        let kind = AuditKind::OperatorCommand { command: text };
        let event = AuditEvent::new(SystemClock.now()?, operator()?, None, kind);
        verrou.store().record_audit(event).await?;
    }
    match command {
        Command::GenerateKey { .. } | Command::Completions { .. } => Ok(()),
        Command::RotateKeys => rotate_keys(&verrou, format).await,
        Command::Status { policy } => {
            let policy = policy.policy().map_err(Failure::Usage)?;
            status(&verrou, keys, &policy, format).await
        }
        Command::ResetFactor { user, confirm } => {
            let has_factor = verrou.has_active_totp(&user).await?;
            let sessions = verrou.store().user_sessions(&user).await?.len();
            let shown = user.as_str().escape_debug();
            let plan = format!(
                "reset-factor {shown}: {}, {sessions} sessions to revoke",
                if has_factor {
                    "a factor to remove"
                } else {
                    "no factor"
                }
            );
            let counts = json!({"factor": has_factor, "sessions": sessions});
            if !go_ahead(&confirm, &plan, "reset-factor", counts, format)? {
                return Ok(());
            }
            let removed = verrou.remove_totp_factor(&user).await?;
            let what = if removed {
                "factor removed"
            } else {
                "had no factor"
            };
            print_result(
                format,
                &format!("{shown}: {what}; recovery codes voided; sessions revoked"),
                json!({"command": "reset-factor", "user": user.as_str(), "factor_removed": removed}),
            );
            Ok(())
        }
        Command::LiftLock { user } => {
            verrou.lift_lock(&user).await?;
            print_result(
                format,
                &format!(
                    "{}: lock lifted, failures cleared",
                    user.as_str().escape_debug()
                ),
                json!({"command": "lift-lock", "user": user.as_str()}),
            );
            Ok(())
        }
        Command::RevokeOrg { org, confirm } => {
            let scope = RevocationScope::Org(org);
            revoke(&verrou, "revoke-org", scope, Some(&confirm), format).await
        }
        Command::RevokeUser { user, confirm } => {
            let scope = RevocationScope::User { user, except: None };
            revoke(&verrou, "revoke-user", scope, Some(&confirm), format).await
        }
        Command::RevokeSession { session } => {
            let scope = RevocationScope::Session(session);
            revoke(&verrou, "revoke-session", scope, None, format).await
        }
        Command::RevokeBefore { when, confirm } => {
            let scope = RevocationScope::IssuedBefore(when);
            revoke(&verrou, "revoke-before", scope, Some(&confirm), format).await
        }
        Command::Sessions { user, org } => {
            let scope = match (user, org) {
                (Some(user), _) => RevocationScope::User { user, except: None },
                (None, Some(org)) => RevocationScope::Org(org),
                (None, None) => return Err(Failure::Usage("give --user or --org".into())),
            };
            list_sessions(&verrou, &scope, format).await
        }
        Command::Audit {
            user,
            org,
            kind,
            since,
            until,
            limit,
            follow,
            interval,
        } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let query = AuditQuery::newest(limit)
                .user(user)
                .org(org)
                .kind(kind)
                .between(since, until);
            if follow {
                return follow_trail(&verrou, &query, Duration::from_secs(interval), format).await;
            }
            print_events(&verrou.store().audit_events(&query).await?, format);
            Ok(())
        }
    }
}

/// Prints the store at a glance: its schema version; the ring's keys (the active one first)
/// with how many secrets each seals (a rotation's progress); sessions by organisation and
/// assurance; and the accounts whose counter holds failures, as the portal's account
/// `policy` judges them now (locked, slowed down, or open).
async fn status(
    verrou: &Verrou<AnyStore>,
    keys: &KeyRing,
    policy: &ThrottlePolicy,
    format: Format,
) -> Result<(), Failure> {
    let store = verrou.store();
    let schema = store.schema_version().await?;
    let sealed = store.sealed_secrets().await?;
    let now = SystemClock.now()?;
    let sessions: Vec<((String, &'static str), usize)> = store
        .session_counts()
        .await?
        .into_iter()
        .map(|((org, assurance), count)| {
            let org = org.map_or_else(|| "-".into(), |org| org.as_str().to_owned());
            ((org, assurance.name()), count)
        })
        .collect();
    let accounts: Vec<(UserId, u32, &str, Option<Timestamp>)> = store
        .failing_accounts()
        .await?
        .into_iter()
        .map(|(user, state)| {
            let (gate, until) = match policy.gate(&state, now) {
                Gate::Locked { until } => ("locked", until),
                Gate::Backoff { until } => ("slowed", Some(until)),
                _ => ("open", None),
            };
            (user, state.failures, gate, until)
        })
        .collect();
    let key_rows: Vec<(String, bool, usize)> = keys
        .key_ids()
        .map(|id| {
            let count = sealed.by_key.get(id).copied().unwrap_or(0);
            (id.to_string(), id == keys.active_id(), count)
        })
        .collect();
    // Secrets under keys this ring does not hold: what it could no longer open.
    let foreign = sealed.beyond(keys);

    if let Format::Json = format {
        let record = json!({
            "schema_version": schema,
            "keys": key_rows.iter().map(|(id, active, sealed)| {
                json!({"id": id, "active": active, "sealed": sealed})
            }).collect::<Vec<_>>(),
            "sealed_under_other_keys": foreign,
            "malformed_sealed": sealed.malformed,
            "sessions": sessions.iter().map(|((org, assurance), count)| {
                json!({"org": org, "assurance": assurance, "count": count})
            }).collect::<Vec<_>>(),
            "account_policy": {
                "free_failures": policy.free_failures,
                "base_delay_seconds": policy.base_delay.as_secs(),
                "lock_after": policy.lock_after,
                "lock_seconds": policy.lock_duration.as_secs(),
                "max_lock_seconds": policy.max_lock_duration.as_secs(),
                "permanent_after": policy.permanent_lock_after,
            },
            "accounts": accounts.iter().map(|(user, failures, gate, until)| {
                json!({"user": user.as_str(), "failures": failures, "gate": gate,
                       "until": until.map(rfc3339)})
            }).collect::<Vec<_>>(),
        });
        println!("{record}");
        return Ok(());
    }
    println!("schema version {schema}");
    println!();
    let rows: Vec<[String; 3]> = key_rows
        .iter()
        .map(|(id, active, count)| {
            let role = if *active { "active" } else { "opens only" };
            [
                id.escape_debug().to_string(),
                role.to_owned(),
                count.to_string(),
            ]
        })
        .collect();
    print_table(["KEY", "ROLE", "SECRETS SEALED"], &rows);
    println!(
        "under keys not in this ring: {foreign}; malformed: {}",
        sealed.malformed
    );
    println!();
    let rows: Vec<[String; 3]> = sessions
        .iter()
        .map(|((org, assurance), count)| {
            [
                org.escape_debug().to_string(),
                (*assurance).to_owned(),
                count.to_string(),
            ]
        })
        .collect();
    print_table(["ORG", "ASSURANCE", "SESSIONS"], &rows);
    println!();
    let rows: Vec<[String; 4]> = accounts
        .iter()
        .map(|(user, failures, gate, until)| {
            [
                user.as_str().escape_debug().to_string(),
                failures.to_string(),
                (*gate).to_owned(),
                until.map_or_else(|| "-".into(), rfc3339),
            ]
        })
        .collect();
    println!(
        "accounts judged by: {} free failures, delays from {}s, locked after {} for {}s \
         (doubling up to {}s), for good after {}",
        policy.free_failures,
        policy.base_delay.as_secs(),
        policy.lock_after,
        policy.lock_duration.as_secs(),
        policy.max_lock_duration.as_secs(),
        policy
            .permanent_lock_after
            .map_or_else(|| "never".into(), |n| n.to_string()),
    );
    print_table(["ACCOUNT", "FAILURES", "GATE", "UNTIL"], &rows);
    Ok(())
}

/// The operator as the trail names them: `login@host`. The login is the person behind
/// `sudo` if there is one (`SUDO_USER`), else `USER` or `LOGNAME`; the host is the kernel's
/// host name.
fn operator() -> Result<UserId, verrou::InputError> {
    let login = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    // A login or host name an id cannot hold (a control character): named as unknown.
    UserId::new(format!("{login}@{host}")).or_else(|_| UserId::new("unknown@unknown-host"))
}

/// What an operator ran, as the trail records it: the command with its arguments, from the
/// parsed form (so never the store's URL, which may hold a password, nor a key). `None` for
/// the commands that do not touch the store.
fn describe(command: &Command) -> Option<String> {
    let flags = |confirm: &Confirm| {
        if confirm.dry_run {
            " --dry-run"
        } else if confirm.yes {
            " --yes"
        } else {
            ""
        }
    };
    Some(match command {
        Command::GenerateKey { .. } | Command::Completions { .. } => return None,
        Command::RotateKeys => "rotate-keys".into(),
        Command::Status { .. } => "status".into(),
        Command::ResetFactor { user, confirm } => {
            format!("reset-factor {}{}", user.as_str(), flags(confirm))
        }
        Command::LiftLock { user } => format!("lift-lock {}", user.as_str()),
        Command::RevokeOrg { org, confirm } => {
            format!("revoke-org {}{}", org.as_str(), flags(confirm))
        }
        Command::RevokeUser { user, confirm } => {
            format!("revoke-user {}{}", user.as_str(), flags(confirm))
        }
        Command::RevokeSession { session } => format!("revoke-session {session}"),
        Command::RevokeBefore { when, confirm } => {
            format!("revoke-before {}{}", rfc3339(*when), flags(confirm))
        }
        Command::Sessions { user, org } => match (user, org) {
            (Some(user), _) => format!("sessions --user {}", user.as_str()),
            (None, Some(org)) => format!("sessions --org {}", org.as_str()),
            (None, None) => "sessions".into(),
        },
        Command::Audit {
            user,
            org,
            kind,
            since,
            until,
            follow,
            ..
        } => {
            let mut text = String::from("audit");
            if let Some(user) = user {
                text.push_str(&format!(" {}", user.as_str()));
            }
            if let Some(org) = org {
                text.push_str(&format!(" --org {}", org.as_str()));
            }
            if let Some(kind) = kind {
                text.push_str(&format!(" --kind {kind}"));
            }
            if let Some(since) = since {
                text.push_str(&format!(" --since {}", rfc3339(*since)));
            }
            if let Some(until) = until {
                text.push_str(&format!(" --until {}", rfc3339(*until)));
            }
            if *follow {
                text.push_str(" --follow");
            }
            text
        }
    })
}

/// Prints the newest events `query` selects (oldest first), then every one it selects as it
/// is recorded, reading the trail every `interval` after the last event read, until the
/// process is stopped. Each batch is flushed as it is printed, so a pipe sees it at once.
async fn follow_trail<S: KeyRotation>(
    verrou: &Verrou<S>,
    query: &AuditQuery,
    interval: Duration,
    format: Format,
) -> Result<(), Failure> {
    // The cursor is the newest event of the whole trail (not of the filtered ones), read
    // before the past events: one recorded in between is followed, not skipped, and the
    // past keeps only what the cursor covers, so nothing is printed twice.
    let newest = verrou.store().audit_events(&AuditQuery::newest(1)).await?;
    let mut cursor = newest.first().map_or(0, |entry| entry.seq);
    let mut batch = verrou.store().audit_events(query).await?;
    batch.retain(|entry| entry.seq <= cursor);
    batch.reverse();
    let mut behind = false;
    let mut printer = EventPrinter::new(format);
    loop {
        if !batch.is_empty() {
            printer.print(&batch);
            std::io::Write::flush(&mut std::io::stdout())?;
        }
        // A full page means more are waiting: read on before sleeping.
        if !behind {
            tokio::time::sleep(interval).await;
        }
        // Every new event, filtered here, so the cursor moves past those filtered out too.
        let page = verrou
            .store()
            .audit_events(&AuditQuery::after(cursor, FOLLOW_PAGE))
            .await?;
        behind = page.len() == FOLLOW_PAGE;
        cursor = page.last().map_or(cursor, |entry| entry.seq);
        batch = page
            .into_iter()
            .filter(|entry| query.matches(&entry.event))
            .collect();
    }
}

/// Whether to go on with `command`, whose `plan` says what it will touch (`counts` for
/// JSON). `--dry-run` prints the plan and stops; `--yes` goes on; a terminal is asked;
/// without one the command is refused (a usage error: a script must say `--yes`).
fn go_ahead(
    confirm: &Confirm,
    plan: &str,
    command: &str,
    counts: Value,
    format: Format,
) -> Result<bool, Failure> {
    if confirm.dry_run {
        let mut record = json!({"command": command, "dry_run": true});
        if let (Some(record), Value::Object(counts)) = (record.as_object_mut(), counts) {
            record.extend(counts);
        }
        print_result(format, &format!("dry run: {plan}; nothing changed"), record);
        return Ok(false);
    }
    if confirm.yes {
        return Ok(true);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::Usage(format!(
            "{plan}: not confirmed, and there is no terminal to ask on; nothing changed \
             (add --yes to go ahead, or --dry-run to count only)"
        )));
    }
    eprint!("{plan}. Go ahead? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(true)
    } else {
        Err(Failure::Operation("not confirmed; nothing changed".into()))
    }
}

async fn revoke<S: KeyRotation>(
    verrou: &Verrou<S>,
    command: &str,
    scope: RevocationScope,
    confirm: Option<&Confirm>,
    format: Format,
) -> Result<(), Failure> {
    if let Some(confirm) = confirm {
        let count = verrou.store().sessions_in(&scope).await?.len();
        let plan = format!("{command}: {count} sessions to revoke");
        if !go_ahead(confirm, &plan, command, json!({"sessions": count}), format)? {
            return Ok(());
        }
    }
    let revoked = verrou
        .revoke_sessions(&scope, &ClientContext::unknown())
        .await?;
    print_result(
        format,
        &format!("{revoked} sessions revoked"),
        json!({"command": command, "revoked": revoked}),
    );
    Ok(())
}

/// Prints the sessions in `scope`: id, user, organisation, assurance, created, last seen,
/// binding (the device-binding kind, `offered` before a device registered, `none`) and the
/// address the session was created from (from its `session_created` record).
async fn list_sessions<S: KeyRotation>(
    verrou: &Verrou<S>,
    scope: &RevocationScope,
    format: Format,
) -> Result<(), Failure> {
    let sessions = verrou.store().sessions_in(scope).await?;
    let addresses = creation_addresses(verrou, &sessions).await?;
    let mut rows = Vec::with_capacity(sessions.len());
    for session in &sessions {
        let binding = match verrou.store().binding(session.id).await? {
            Some(record) => record.key.map_or("offered", |(_, kind)| kind.name()),
            None => "none",
        };
        let address = addresses.get(&session.id).copied().flatten();
        rows.push((session, binding, address));
    }
    if let Format::Json = format {
        for (session, binding, address) in rows {
            let record = json!({
                "session": session.id.to_string(),
                "user": session.user.as_str(),
                "org": session.org.as_ref().map(|org| org.as_str()),
                "assurance": session.assurance.name(),
                "created": rfc3339(session.created_at),
                "last_seen": rfc3339(session.last_seen),
                "expires": rfc3339(session.expires_at),
                "binding": binding,
                "address": address.map(|a| a.to_string()),
            });
            println!("{record}");
        }
        return Ok(());
    }
    let table: Vec<[String; 8]> = rows
        .into_iter()
        .map(|(session, binding, address)| {
            [
                session.id.to_string(),
                session.user.as_str().escape_debug().to_string(),
                session
                    .org
                    .as_ref()
                    .map_or_else(|| "-".into(), |org| org.as_str().escape_debug().to_string()),
                session.assurance.name().to_owned(),
                rfc3339(session.created_at),
                rfc3339(session.last_seen),
                binding.to_owned(),
                address.map_or_else(|| "-".into(), |a| a.to_string()),
            ]
        })
        .collect();
    print_table(
        [
            "SESSION",
            "USER",
            "ORG",
            "ASSURANCE",
            "CREATED",
            "LAST SEEN",
            "BINDING",
            "ADDRESS",
        ],
        &table,
    );
    Ok(())
}

/// The address each of `sessions` was created from, as its `session_created` record says
/// (`None` where the portal gave no address or the record is beyond its user's newest
/// [`ADDRESS_LOOKBACK`] session records).
async fn creation_addresses<S: KeyRotation>(
    verrou: &Verrou<S>,
    sessions: &[SessionRecord],
) -> Result<HashMap<SessionId, Option<IpAddr>>, Failure> {
    let mut users: Vec<&UserId> = sessions.iter().map(|s| &s.user).collect();
    users.sort();
    users.dedup();
    let mut addresses = HashMap::new();
    for user in users {
        let created = AuditQuery::newest(ADDRESS_LOOKBACK)
            .user(Some(user.clone()))
            .kind(Some("session_created".into()));
        for entry in verrou.store().audit_events(&created).await? {
            if let AuditKind::SessionCreated { session } = entry.event.kind {
                addresses.entry(session).or_insert(entry.event.client);
            }
        }
    }
    Ok(addresses)
}
