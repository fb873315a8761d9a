//! The command line, as clap parses it: every subcommand with its help and an example, every
//! argument parsed into the library's own types, so a bad one is named before anything runs.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use verrou::lockout::ThrottlePolicy;
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
    ///
    /// Accounts are judged by the account throttle the portal runs with: the library's
    /// default unless the options below say otherwise (give the values the portal passes
    /// to `VerrouConfig::with_account_throttle`).
    #[command(
        after_help = "Examples:\n  verrou-admin status\n  verrou-admin status --json\n  \
                            verrou-admin status --lock-after 5 --lock-for 30m"
    )]
    Status {
        #[command(flatten)]
        policy: AccountPolicy,
    },
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  verrou-admin completions bash > \
                            /etc/bash_completion.d/verrou-admin")]
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// The portal's account throttle, field by field; each defaults to
/// `ThrottlePolicy::ACCOUNT_DEFAULT`'s (checked by a test).
#[derive(Debug, Args)]
#[command(next_help_heading = "The portal's account throttle")]
pub(crate) struct AccountPolicy {
    /// Failures allowed before any delay.
    #[arg(long, value_name = "N", default_value_t = 3)]
    free_failures: u32,
    /// The first backoff delay, doubling with each further failure.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "1s")]
    base_delay: Duration,
    /// Failures that start a temporary lock.
    #[arg(long, value_name = "N", default_value_t = 10)]
    lock_after: u32,
    /// The first lock's length, doubling with each further failure.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "15m")]
    lock_for: Duration,
    /// The longest temporary lock.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "24h")]
    max_lock: Duration,
    /// Failures after which only an operator can unlock (lift-lock).
    #[arg(long, value_name = "N", default_value_t = 50)]
    permanent_after: u32,
}

impl AccountPolicy {
    /// The policy, or why an account policy cannot be so (a usage error).
    pub(crate) fn policy(&self) -> Result<ThrottlePolicy, String> {
        ThrottlePolicy::account()
            .free_failures(self.free_failures)
            .base_delay(self.base_delay)
            .lock_after(self.lock_after)
            .lock_duration(self.lock_for)
            .max_lock_duration(self.max_lock)
            .permanent_lock_after(Some(self.permanent_after))
            .build_for_account()
            .map_err(|e| format!("account throttle: {e}"))
    }
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

/// A length of time: a whole number with a unit, `s`, `m`, `h` or `d` (`90s`, `15m`, `24h`),
/// or of seconds without one.
fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err("expected a number and s, m, h or d (15m, 24h)".into()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .map(Duration::from_secs)
        .ok_or_else(|| "expected a number and s, m, h or d (15m, 24h)".into())
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    /// Without options, `status` judges accounts exactly as a portal with the library's
    /// default account throttle does.
    #[test]
    fn the_account_throttle_options_default_to_the_librarys() {
        let cli = Cli::try_parse_from(["verrou-admin", "status"]).unwrap();
        let Command::Status { policy } = cli.command else {
            panic!("not status");
        };
        assert_eq!(policy.policy().unwrap(), ThrottlePolicy::ACCOUNT_DEFAULT);
    }

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in [
            "",
            "m",
            "15 m",
            "1.5h",
            "15min",
            "-1s",
            "99999999999999999999d",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
