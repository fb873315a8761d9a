//! `verrou-admin`: the operators' incident-response commands, over the same store and key
//! ring as the portal.
//!
//! ```text
//! verrou-admin generate-key <key id>          print a new key-ring entry (<id>:<base64>)
//! verrou-admin rotate-keys                    re-seal every TOTP secret under the active key
//! verrou-admin reset-factor <user id>         remove the user's factor and recovery codes,
//!                                             and revoke the user's sessions
//! verrou-admin lift-lock <user id>            clear the user's second-factor lock
//! verrou-admin revoke-org <organisation id>   revoke every session of an organisation
//! verrou-admin revoke-user <user id>          revoke every session of a user
//! verrou-admin revoke-session <session id>    revoke one session
//! verrou-admin revoke-before <unix seconds|now>  revoke every session created before then
//! verrou-admin audit [<user id>] [--limit N]  print the audit trail, newest first
//! ```
//!
//! The store comes from `VERROU_STORE` (`sqlite:<path>`, or a `postgres://` URL, with
//! `VERROU_PG_SCHEMA` naming a schema if the portal uses one); the key ring from
//! `VERROU_KEYS` (see `verrou::keyring`) or the file named by `VERROU_KEYS_FILE`.
//! Exit status: 0 done, 1 the operation did not complete (see its output), 2 bad usage or
//! configuration. Nothing it prints on error contains a key, secret or password.

use std::process::ExitCode;

use verrou::session::RevocationScope;
use verrou::store::{AnyStore, KeyRotation};
use verrou::{
    ClientContext, Clock, KeyId, KeyRing, OrgId, SessionId, SystemClock, Timestamp, UserId, Verrou,
    VerrouConfig, KEYS_ENV,
};

const USAGE: &str = "usage: verrou-admin generate-key <key id>
       verrou-admin rotate-keys
       verrou-admin reset-factor <user id>
       verrou-admin lift-lock <user id>
       verrou-admin revoke-org <organisation id>
       verrou-admin revoke-user <user id>
       verrou-admin revoke-session <session id>
       verrou-admin revoke-before <unix seconds|now>
       verrou-admin audit [<user id>] [--limit N]
environment: VERROU_STORE (sqlite:<path> or postgres://…), VERROU_PG_SCHEMA (optional),
             VERROU_KEYS or VERROU_KEYS_FILE";

/// The default number of audit events printed.
const AUDIT_LIMIT: usize = 100;

/// A failure, with the exit status it maps to.
enum Failure {
    /// Bad usage or configuration (2).
    Usage(String),
    /// The operation ran and failed or did not complete (1).
    Operation(String),
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::Operation(error.to_string())
    }
}

/// What to do, parsed from the arguments.
enum Command {
    GenerateKey(KeyId),
    RotateKeys,
    ResetFactor(UserId),
    LiftLock(UserId),
    Revoke(RevocationScope),
    Audit { user: Option<UserId>, limit: usize },
}

fn parse(args: &[String]) -> Result<Command, Failure> {
    let usage = |what: &str| Failure::Usage(format!("{what}\n{USAGE}"));
    let user = |text: &str| UserId::new(text).map_err(|e| usage(&e.to_string()));
    match args {
        [cmd, id] if cmd == "generate-key" => KeyId::new(id)
            .map(Command::GenerateKey)
            .map_err(|e| usage(&e.to_string())),
        [cmd] if cmd == "rotate-keys" => Ok(Command::RotateKeys),
        [cmd, who] if cmd == "reset-factor" => Ok(Command::ResetFactor(user(who)?)),
        [cmd, who] if cmd == "lift-lock" => Ok(Command::LiftLock(user(who)?)),
        [cmd, org] if cmd == "revoke-org" => OrgId::new(org)
            .map(|org| Command::Revoke(RevocationScope::Org(org)))
            .map_err(|e| usage(&e.to_string())),
        [cmd, who] if cmd == "revoke-user" => Ok(Command::Revoke(RevocationScope::User {
            user: user(who)?,
            except: None,
        })),
        [cmd, id] if cmd == "revoke-session" => SessionId::parse(id)
            .map(|id| Command::Revoke(RevocationScope::Session(id)))
            .map_err(|e| usage(&e.to_string())),
        [cmd, when] if cmd == "revoke-before" => {
            let instant = if when == "now" {
                // Sessions are stamped in whole seconds: "before now" must include those
                // created earlier in the current second.
                SystemClock
                    .now()
                    .map_err(|e| Failure::Operation(e.to_string()))?
                    .saturating_add(std::time::Duration::from_secs(1))
            } else {
                when.parse()
                    .ok()
                    .and_then(|seconds| Timestamp::from_unix_seconds(seconds).ok())
                    .ok_or_else(|| usage("revoke-before needs Unix seconds or `now`"))?
            };
            Ok(Command::Revoke(RevocationScope::IssuedBefore(instant)))
        }
        [cmd, rest @ ..] if cmd == "audit" => {
            let (mut who, mut limit) = (None, AUDIT_LIMIT);
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                if arg == "--limit" {
                    let n = rest.next().ok_or_else(|| usage("--limit needs a number"))?;
                    limit = n
                        .parse()
                        .map_err(|_| usage("--limit needs a positive number"))?;
                } else if who.is_none() {
                    who = Some(user(arg)?);
                } else {
                    return Err(usage("audit takes one user id"));
                }
            }
            Ok(Command::Audit { user: who, limit })
        }
        _ => Err(usage("unknown or incomplete command")),
    }
}

/// Reads the key ring, then removes `VERROU_KEYS` from the environment so no child process
/// inherits the keys. Called before any other thread exists (the runtime starts after it),
/// the one time removing a variable is sound.
fn key_ring() -> Result<KeyRing, Failure> {
    let ring = match std::env::var_os("VERROU_KEYS_FILE") {
        Some(path) => KeyRing::from_file(path),
        None => KeyRing::from_env(KEYS_ENV),
    };
    std::env::remove_var(KEYS_ENV);
    ring.map_err(|e| Failure::Usage(format!("key ring: {e}")))
}

async fn run(command: Command, keys: Option<KeyRing>) -> Result<(), Failure> {
    let Some(keys) = keys else {
        if let Command::GenerateKey(id) = &command {
            let entry = KeyRing::generate_entry(id)?;
            println!("{}", entry.as_str());
        }
        return Ok(());
    };
    let url = std::env::var("VERROU_STORE")
        .map_err(|_| Failure::Usage(format!("VERROU_STORE is not set\n{USAGE}")))?;
    let store = open(&url, keys).await?;
    let result = on_store(store.clone(), command).await;
    store.close().await;
    result
}

/// The store `url` names; on PostgreSQL in `VERROU_PG_SCHEMA` when that is set.
async fn open(url: &str, keys: KeyRing) -> Result<AnyStore, Failure> {
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !url.starts_with("sqlite:") && !postgres {
        return Err(Failure::Usage(format!(
            "VERROU_STORE must start with sqlite: or postgres://\n{USAGE}"
        )));
    }
    #[cfg(feature = "postgres")]
    if let (true, Ok(schema)) = (postgres, std::env::var("VERROU_PG_SCHEMA")) {
        let store = verrou::store::PostgresStore::connect_in_schema(url, &schema, keys).await?;
        return Ok(AnyStore::Postgres(store));
    }
    #[cfg(not(feature = "postgres"))]
    if postgres {
        return Err(Failure::Usage(
            "this verrou-admin was built without the postgres feature".into(),
        ));
    }
    Ok(AnyStore::open(url, keys).await?)
}

async fn on_store<S: KeyRotation>(store: S, command: Command) -> Result<(), Failure> {
    let verrou = Verrou::new(store, VerrouConfig::new("verrou-admin")?);
    match command {
        Command::GenerateKey(_) => Ok(()),
        Command::RotateKeys => {
            let report = verrou.store().rotate_keys().await?;
            println!(
                "scanned {} sealed secrets, re-sealed {}, still under another key {}, unreadable {}",
                report.scanned,
                report.resealed,
                report.stale,
                report.unreadable.len()
            );
            for row in &report.unreadable {
                println!(
                    "unreadable: user {}, factor {}: {} (skipped; reset this user's factor)",
                    row.user.escape_debug(),
                    row.factor.escape_debug(),
                    row.reason
                );
            }
            if !report.unreadable.is_empty() {
                return Err(Failure::Operation(
                    "some secrets could not be opened and were skipped: see above".into(),
                ));
            }
            if report.stale > 0 {
                return Err(Failure::Operation(
                    "some secrets are still sealed with another key: a portal instance may \
                     still run with an older active key; run again once every instance has \
                     the new configuration"
                        .into(),
                ));
            }
            Ok(())
        }
        Command::ResetFactor(user) => {
            let removed = verrou.remove_totp_factor(&user).await?;
            println!(
                "{user}: {}; recovery codes voided; sessions revoked",
                if removed {
                    "factor removed"
                } else {
                    "had no factor"
                }
            );
            Ok(())
        }
        Command::LiftLock(user) => {
            verrou.lift_lock(&user).await?;
            println!("{user}: lock lifted, failures cleared");
            Ok(())
        }
        Command::Revoke(scope) => {
            let revoked = verrou
                .revoke_sessions(&scope, &ClientContext::unknown())
                .await?;
            println!("{revoked} sessions revoked");
            Ok(())
        }
        Command::Audit { user, limit } => {
            for event in verrou.audit_trail(user.as_ref(), limit).await? {
                let client = event.client.map(|c| c.to_string()).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{:?}",
                    event.at.unix_seconds(),
                    event.user,
                    client,
                    event.kind.name(),
                    event.kind
                );
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = parse(&args).and_then(|command| {
        let keys = match command {
            Command::GenerateKey(_) => None,
            _ => Some(key_ring()?),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run(command, keys))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("verrou-admin: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Operation(message)) => {
            eprintln!("verrou-admin: {message}");
            ExitCode::from(1)
        }
    }
}
