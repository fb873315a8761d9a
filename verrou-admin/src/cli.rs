//! The command line, as clap parses it: every subcommand with its help and an example, every
//! argument parsed into the library's own types, so a bad one is named before anything runs.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use verrou::{Clock, KeyId, OrgId, SessionId, SystemClock, Timestamp, UserId};

/// verrou's incident-response commands, over the same store and key ring as the portal.
#[derive(Debug, Parser)]
#[command(
    name = "verrou-admin",
    version,
    about,
    after_help = "The key ring comes from VERROU_KEYS (or the file named by VERROU_KEYS_FILE), \
                  never from an argument.\n\
                  Exit status: 0 done, 1 the operation did not complete (see its output), \
                  2 bad usage or configuration.\n\
                  Nothing printed on error contains a key, secret or password."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The store: `sqlite:<path>` or a `postgres://` URL.
    #[arg(
        long,
        env = "VERROU_STORE",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) store: Option<String>,
    /// The PostgreSQL schema holding verrou's tables, if the portal uses one.
    #[arg(
        long,
        env = "VERROU_PG_SCHEMA",
        global = true,
        value_name = "SCHEMA",
        hide_env_values = true
    )]
    pub(crate) pg_schema: Option<String>,
    /// Print records as JSON, one object per line (for a log pipeline or a SIEM).
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print a new key-ring entry (`<key id>:<base64 of 32 random bytes>`).
    #[command(after_help = "Example:\n  verrou-admin generate-key 2026-12 >> /etc/portal/keys")]
    GenerateKey {
        /// The new key's id (1 to 32 of A-Z a-z 0-9 . _ -).
        #[arg(value_parser = key_id)]
        id: KeyId,
    },
    /// Re-seal every TOTP secret under the ring's active key (the first entry).
    ///
    /// Shows its progress on standard error (a bar on a terminal, a line per tenth
    /// otherwise) and ends with a summary. Safe to interrupt: each batch is written in one
    /// transaction, and running it again skips what is already under the active key. A
    /// secret that cannot be opened is reported and skipped (exit status 1).
    #[command(
        after_help = "Example:\n  VERROU_KEYS_FILE=/etc/portal/keys verrou-admin rotate-keys"
    )]
    RotateKeys,
    /// Remove a user's factor and recovery codes, and revoke the user's sessions.
    #[command(after_help = "Example:\n  verrou-admin reset-factor marie.dupont --dry-run")]
    ResetFactor {
        /// The user.
        #[arg(value_parser = user_id)]
        user: UserId,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Clear a user's second-factor lock and failure count.
    #[command(after_help = "Example:\n  verrou-admin lift-lock marie.dupont")]
    LiftLock {
        /// The user.
        #[arg(value_parser = user_id)]
        user: UserId,
    },
    /// Revoke every session of an organisation.
    #[command(
        after_help = "Examples:\n  verrou-admin revoke-org formation-nord --dry-run\n  \
                            verrou-admin revoke-org formation-nord --yes"
    )]
    RevokeOrg {
        /// The organisation.
        #[arg(value_parser = org_id)]
        org: OrgId,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Revoke every session of a user.
    #[command(after_help = "Example:\n  verrou-admin revoke-user marie.dupont")]
    RevokeUser {
        /// The user.
        #[arg(value_parser = user_id)]
        user: UserId,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Revoke one session.
    #[command(after_help = "Example:\n  verrou-admin revoke-session 3q2-7Hc0kQ8mZ1vYwB5xNg")]
    RevokeSession {
        /// The session id, as the audit trail prints it.
        #[arg(value_parser = session_id)]
        session: SessionId,
    },
    /// Revoke every session created before an instant (`now` includes this second's).
    #[command(
        after_help = "Examples:\n  verrou-admin revoke-before now --dry-run\n  \
                            verrou-admin revoke-before 2026-11-28T06:00:00Z --yes"
    )]
    RevokeBefore {
        /// `now`, an RFC 3339 instant, or Unix seconds.
        #[arg(value_parser = revocation_instant)]
        when: Timestamp,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// List a user's or an organisation's sessions, newest first.
    #[command(
        after_help = "Examples:\n  verrou-admin sessions --org formation-nord\n  \
                            verrou-admin sessions --user marie.dupont --json"
    )]
    Sessions {
        /// This user's sessions.
        #[arg(long, value_parser = user_id, required_unless_present = "org")]
        user: Option<UserId>,
        /// This organisation's sessions.
        #[arg(long, value_parser = org_id, conflicts_with = "user")]
        org: Option<OrgId>,
    },
    /// Print the audit trail, newest first (with --follow: oldest first, then as it grows).
    #[command(
        after_help = "Examples:\n  verrou-admin audit marie.dupont --limit 20\n  \
                            verrou-admin audit --org formation-nord --since 2026-11-28T00:00:00Z\n  \
                            verrou-admin audit --kind session_revoked --since 2026-11-28T00:00:00Z\n  \
                            verrou-admin audit --json --follow | logger -t verrou"
    )]
    Audit {
        /// Only this user's events.
        #[arg(value_parser = user_id)]
        user: Option<UserId>,
        /// Only events about this organisation's sessions (created, elevated, revoked, bound,
        /// refused cookies); a user's code and lockout events carry no organisation: read them
        /// by user.
        #[arg(long, value_parser = org_id)]
        org: Option<OrgId>,
        /// Only events of this kind (as printed: totp_invalid, session_revoked, …).
        #[arg(long)]
        kind: Option<String>,
        /// Only events at or after this instant (RFC 3339 or Unix seconds).
        #[arg(long, value_parser = instant)]
        since: Option<Timestamp>,
        /// Only events before this instant (RFC 3339 or Unix seconds).
        #[arg(long, value_parser = instant)]
        until: Option<Timestamp>,
        /// How many events at most (with --follow: how many past events first).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Keep printing new events as they are recorded, until interrupted.
        #[arg(long)]
        follow: bool,
        /// With --follow, seconds between two reads of the trail (1 to 60).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
        interval: u64,
    },
    /// The store at a glance: schema version, keys and how many secrets each seals, sessions
    /// by organisation and assurance, accounts locked or slowed down.
    #[command(after_help = "Examples:\n  verrou-admin status\n  verrou-admin status --json")]
    Status,
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  verrou-admin completions bash > \
                            /etc/bash_completion.d/verrou-admin")]
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// How a command that ends sessions or removes factors is confirmed. Without either flag it
/// says what it will touch and asks on the terminal; with no terminal it refuses.
#[derive(Debug, Args)]
pub(crate) struct Confirm {
    /// Go ahead without asking (for scripts).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Only count what would be touched; change nothing.
    #[arg(long, conflicts_with = "yes")]
    pub(crate) dry_run: bool,
}

fn user_id(text: &str) -> Result<UserId, String> {
    UserId::new(text).map_err(|e| e.to_string())
}

fn org_id(text: &str) -> Result<OrgId, String> {
    OrgId::new(text).map_err(|e| e.to_string())
}

fn key_id(text: &str) -> Result<KeyId, String> {
    KeyId::new(text).map_err(|e| e.to_string())
}

fn session_id(text: &str) -> Result<SessionId, String> {
    SessionId::parse(text).map_err(|e| e.to_string())
}

/// `now` (through the end of the current second: sessions are stamped in whole seconds, and
/// "before now" must include those created earlier in this one), an RFC 3339 instant, or
/// Unix seconds.
fn revocation_instant(text: &str) -> Result<Timestamp, String> {
    if text == "now" {
        return SystemClock
            .now()
            .map(|now| now.saturating_add(Duration::from_secs(1)))
            .map_err(|e| e.to_string());
    }
    instant(text)
}

/// An RFC 3339 instant or Unix seconds.
pub(crate) fn instant(text: &str) -> Result<Timestamp, String> {
    let seconds = match text.parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => {
            let parsed = OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| "expected RFC 3339 (2026-11-28T06:00:00Z) or Unix seconds")?;
            u64::try_from(parsed.unix_timestamp()).map_err(|_| "before 1970")?
        }
    };
    Timestamp::from_unix_seconds(seconds).map_err(|e| e.to_string())
}
