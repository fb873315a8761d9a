//! The SQL store's [`SessionStore`].
//!
//! A session row is read on every request and written only by the atomic operations below:
//! a token swap conditional on the old token, a `last_seen` bump that only moves forward, and
//! deletion. Bindings live in their own table and change only by compare-and-set on their
//! version (an `INSERT … ON CONFLICT DO NOTHING` for the first record).
//!
//! Every statement is a `&'static str`, written out whole: nothing is formatted per request.
//! Several statements share a column list or a condition; a test checks that each spells it
//! exactly as the others do.

use std::collections::BTreeMap;

use super::driver::{Driver, Fields, Sql};
use super::values::{
    code, from_code, from_db, org_id, session_id, timestamp, to_db, token_hash, user_id,
};
use super::{insert_audit, SqlStore};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::Timestamp;
use crate::error::{StoreError, StoreErrorKind};
use crate::ids::{OrgId, SessionId};
use crate::session::proof::DeviceKey;
use crate::session::{
    Assurance, BindingKind, Challenge, RevocationScope, SecondFactorMethod, TokenHash,
};
use crate::store::{BindingRecord, IssuedChallenge, IssuedCookie, SessionRecord};
use crate::store::{Elevation, RevocationContext, SessionStore};

/// Assurance levels as stored (their position here).
const ASSURANCES: [Assurance; 2] = [Assurance::PasswordOnly, Assurance::SecondFactor];

const SESSION_BY_TOKEN: &str = "SELECT session_id, token_hash, user_id, org_id, assurance, \
     created_at, last_seen, expires_at, second_factor_at, second_factor_method, signals \
     FROM verrou_sessions WHERE token_hash = $1";

/// The session a token names and its binding, if any, in one read (what every request's
/// check needs): the columns of [`SESSION_BY_TOKEN`], then those of [`BINDING`].
const SESSION_AND_BINDING_BY_TOKEN: &str = "SELECT s.session_id, s.token_hash, s.user_id, \
     s.org_id, s.assurance, s.created_at, s.last_seen, s.expires_at, s.second_factor_at, \
     s.second_factor_method, s.signals, b.version, b.offered_at, b.device_key, \
     b.binding_kind, b.challenge, b.challenge_expires, b.prev_challenge, \
     b.prev_challenge_expires, b.cookie_hash, b.cookie_expires, b.prev_cookie_hash, \
     b.prev_cookie_expires FROM verrou_sessions s LEFT JOIN verrou_session_bindings b \
     ON b.session_id = s.session_id WHERE s.token_hash = $1";

const BINDING: &str = "SELECT version, offered_at, device_key, binding_kind, challenge, \
     challenge_expires, prev_challenge, prev_challenge_expires, cookie_hash, cookie_expires, \
     prev_cookie_hash, prev_cookie_expires FROM verrou_session_bindings WHERE session_id = $1";

/// The first binding of a session that still exists.
const INSERT_BINDING: &str = "INSERT INTO verrou_session_bindings (session_id, version, \
     offered_at, device_key, binding_kind, challenge, challenge_expires, prev_challenge, \
     prev_challenge_expires, cookie_hash, cookie_expires, prev_cookie_hash, \
     prev_cookie_expires) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
     WHERE EXISTS (SELECT 1 FROM verrou_sessions WHERE session_id = $1) \
     ON CONFLICT (session_id) DO NOTHING";

/// A binding replaced if its version is still `$14` and its session still exists.
const SWAP_BINDING: &str = "UPDATE verrou_session_bindings SET version = $2, offered_at = $3, \
     device_key = $4, binding_kind = $5, challenge = $6, challenge_expires = $7, \
     prev_challenge = $8, prev_challenge_expires = $9, cookie_hash = $10, cookie_expires = $11, \
     prev_cookie_hash = $12, prev_cookie_expires = $13 WHERE session_id = $1 AND version = $14 \
     AND EXISTS (SELECT 1 FROM verrou_sessions WHERE session_id = $1)";

/// A binding replaced whole by an elevation, its version one past the old one's (a
/// concurrent compare-and-set on the old version fails).
const OFFER_BINDING: &str = "INSERT INTO verrou_session_bindings (session_id, version, \
     offered_at, device_key, binding_kind, challenge, challenge_expires, prev_challenge, \
     prev_challenge_expires, cookie_hash, cookie_expires, prev_cookie_hash, \
     prev_cookie_expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (session_id) DO UPDATE SET version = verrou_session_bindings.version + 1, \
     offered_at = excluded.offered_at, device_key = excluded.device_key, \
     binding_kind = excluded.binding_kind, challenge = excluded.challenge, \
     challenge_expires = excluded.challenge_expires, prev_challenge = excluded.prev_challenge, \
     prev_challenge_expires = excluded.prev_challenge_expires, \
     cookie_hash = excluded.cookie_hash, cookie_expires = excluded.cookie_expires, \
     prev_cookie_hash = excluded.prev_cookie_hash, \
     prev_cookie_expires = excluded.prev_cookie_expires";

/// The sessions a [`ScopeParams`] selects (`$1` to `$5`), written once for the statements
/// that list and revoke them.
macro_rules! in_scope {
    () => {
        "($1 IS NULL OR session_id = $1) AND ($2 IS NULL OR user_id = $2) \
         AND ($3 IS NULL OR session_id <> $3) AND ($4 IS NULL OR org_id = $4) \
         AND ($5 IS NULL OR created_at < $5)"
    };
}

const SESSIONS_IN: &str = concat!(
    "SELECT session_id, token_hash, user_id, org_id, assurance, created_at, last_seen, \
     expires_at, second_factor_at, second_factor_method, signals FROM verrou_sessions WHERE ",
    in_scope!(),
    " ORDER BY created_at DESC, session_id DESC"
);

const REVOKE_BINDINGS: &str = concat!(
    "DELETE FROM verrou_session_bindings WHERE session_id IN \
     (SELECT session_id FROM verrou_sessions WHERE ",
    in_scope!(),
    ")"
);

const REVOKE_SESSIONS: &str = concat!(
    "DELETE FROM verrou_sessions WHERE ",
    in_scope!(),
    " RETURNING session_id, user_id, org_id"
);

impl<D: Driver> SessionStore for SqlStore<D> {
    async fn create_session(&self, record: SessionRecord) -> Result<(), StoreError> {
        let (second_at, method) = match record.second_factor {
            Some((when, method)) => (
                Some(at(when)?),
                Some(code(&SecondFactorMethod::ALL, &method)),
            ),
            None => (None, None),
        };
        Sql::<D>::new(
            "INSERT INTO verrou_sessions (session_id, token_hash, user_id, org_id, assurance, \
             created_at, last_seen, expires_at, second_factor_at, second_factor_method, \
             signals) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            "create a session",
        )
        .text(record.id.to_string())
        .text(record.token.to_hex())
        .text(record.user.as_str())
        .opt_text(record.org.map(|org| org.as_str().to_owned()))
        .int(code(&ASSURANCES, &record.assurance))
        .int(at(record.created_at)?)
        .int(at(record.last_seen)?)
        .int(at(record.expires_at)?)
        .opt_int(second_at)
        .opt_int(method)
        .opt_text(record.signals.map(|signals| signals.to_hex()))
        .execute(&mut *self.write_connection("create a session").await?)
        .await?;
        Ok(())
    }

    async fn session_by_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = Sql::<D>::new(SESSION_BY_TOKEN, "read a session")
            .text(token.to_hex())
            .fetch_optional(&mut *self.connection("read a session").await?)
            .await?;
        row.as_ref().map(session_row).transpose()
    }

    async fn session_and_binding_by_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(SessionRecord, Option<BindingRecord>)>, StoreError> {
        let row = Sql::<D>::new(SESSION_AND_BINDING_BY_TOKEN, "read a session")
            .text(token.to_hex())
            .fetch_optional(&mut *self.connection("read a session").await?)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let session = session_row(&row)?;
        // No binding row: its version (never null in a stored binding) is null.
        let binding = match row.opt_int(11)? {
            Some(_) => Some(binding_columns(&row, 11)?),
            None => None,
        };
        Ok(Some((session, binding)))
    }

    async fn touch_session(&self, session: SessionId, now: Timestamp) -> Result<(), StoreError> {
        Sql::<D>::new(
            "UPDATE verrou_sessions SET last_seen = $2 WHERE session_id = $1 AND last_seen < $2",
            "touch a session",
        )
        .text(session.to_string())
        .int(at(now)?)
        .execute(&mut *self.write_connection("touch a session").await?)
        .await?;
        Ok(())
    }

    async fn elevate_session(
        &self,
        session: SessionId,
        current: &TokenHash,
        elevation: Elevation,
    ) -> Result<bool, StoreError> {
        let (when, method) = elevation.second_factor;
        self.write("elevate a session", move |tx, _| {
            Box::pin(async move {
                let swapped = Sql::<D>::new(
                    "UPDATE verrou_sessions SET token_hash = $3, assurance = $4, \
                     second_factor_at = $5, second_factor_method = $6, signals = $7, \
                     expires_at = $8 WHERE session_id = $1 AND token_hash = $2",
                    "elevate a session",
                )
                .text(session.to_string())
                .text(current.to_hex())
                .text(elevation.token.to_hex())
                .int(code(&ASSURANCES, &Assurance::SecondFactor))
                .int(at(when)?)
                .int(code(&SecondFactorMethod::ALL, &method))
                .opt_text(elevation.signals.map(|signals| signals.to_hex()))
                .int(at(elevation.expires_at)?)
                .execute(tx)
                .await?;
                if swapped != 1 {
                    return Ok(false);
                }
                if let Some(offer) = elevation.binding {
                    let offer = BindingRecord {
                        version: 1,
                        ..offer
                    };
                    let query = Sql::<D>::new(OFFER_BINDING, "offer a session binding")
                        .text(session.to_string());
                    bind_binding(query, &offer)?.execute(tx).await?;
                }
                insert_audit::<D>(tx, &elevation.record).await?;
                Ok(true)
            })
        })
        .await
    }

    async fn revoke_sessions(
        &self,
        scope: &RevocationScope,
        context: RevocationContext,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let scope = ScopeParams::of(scope)?;
        self.write("revoke sessions", move |tx, _| {
            Box::pin(async move {
                scope
                    .bind(Sql::<D>::new(REVOKE_BINDINGS, "revoke session bindings"))
                    .execute(tx)
                    .await?;
                let revoked = scope
                    .bind(Sql::<D>::new(REVOKE_SESSIONS, "revoke sessions"))
                    .fetch_all(tx)
                    .await?;
                let mut events = Vec::with_capacity(revoked.len());
                for row in revoked {
                    let kind = AuditKind::SessionRevoked {
                        session: session_id(&row.text(0)?)?,
                        reason: context.reason,
                    };
                    let user = user_id(&row.text(1)?)?;
                    let org = row.opt_text(2)?.as_deref().map(org_id).transpose()?;
                    let event = AuditEvent::new(context.at, user, context.client, kind).in_org(org);
                    insert_audit::<D>(tx, &event).await?;
                    events.push(event);
                }
                Ok(events)
            })
        })
        .await
    }

    async fn session_counts(
        &self,
    ) -> Result<BTreeMap<(Option<OrgId>, Assurance), usize>, StoreError> {
        let rows = Sql::<D>::new(
            "SELECT org_id, assurance, COUNT(*) FROM verrou_sessions GROUP BY org_id, assurance",
            "count sessions",
        )
        .fetch_all(&mut *self.connection("count sessions").await?)
        .await?;
        let mut counts = BTreeMap::new();
        for row in rows {
            let org = row.opt_text(0)?.as_deref().map(org_id).transpose()?;
            let assurance = from_code(&ASSURANCES, row.int(1)?)?;
            let count = usize::try_from(from_db(row.int(2)?)?).unwrap_or(usize::MAX);
            counts.insert((org, assurance), count);
        }
        Ok(counts)
    }

    async fn sessions_in(&self, scope: &RevocationScope) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = ScopeParams::of(scope)?
            .bind(Sql::<D>::new(SESSIONS_IN, "list sessions"))
            .fetch_all(&mut *self.connection("list sessions").await?)
            .await?;
        rows.iter().map(session_row).collect()
    }

    async fn binding(&self, session: SessionId) -> Result<Option<BindingRecord>, StoreError> {
        let row = Sql::<D>::new(BINDING, "read a session binding")
            .text(session.to_string())
            .fetch_optional(&mut *self.connection("read a session binding").await?)
            .await?;
        row.as_ref().map(binding_row).transpose()
    }

    async fn swap_binding(
        &self,
        session: SessionId,
        expected: Option<u64>,
        record: BindingRecord,
    ) -> Result<bool, StoreError> {
        let sql = match expected {
            None => INSERT_BINDING,
            Some(_) => SWAP_BINDING,
        };
        let query = Sql::<D>::new(sql, "write a session binding").text(session.to_string());
        let query = bind_binding(query, &record)?;
        let query = match expected {
            Some(version) => query.int(to_db(version)?),
            None => query,
        };
        let written = query
            .execute(&mut *self.write_connection("write a session binding").await?)
            .await?;
        Ok(written == 1)
    }

    async fn purge_expired_sessions(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> Result<usize, StoreError> {
        let (now, idle_before) = (at(now)?, at(idle_before)?);
        self.write("purge expired sessions", move |tx, _| {
            Box::pin(async move {
                let purged = Sql::<D>::new(
                    "DELETE FROM verrou_sessions WHERE expires_at <= $1 OR last_seen < $2",
                    "purge expired sessions",
                )
                .int(now)
                .int(idle_before)
                .execute(tx)
                .await?;
                // Their bindings, and any a revocation raced with.
                Sql::<D>::new(
                    "DELETE FROM verrou_session_bindings WHERE session_id NOT IN \
                     (SELECT session_id FROM verrou_sessions)",
                    "purge orphaned bindings",
                )
                .execute(tx)
                .await?;
                Ok(usize::try_from(purged).unwrap_or(usize::MAX))
            })
        })
        .await
    }
}

/// An instant as stored: seconds since the Unix epoch.
fn at(instant: Timestamp) -> Result<i64, StoreError> {
    to_db(instant.unix_seconds())
}

/// The parameters of the revocation statements' scope condition, for one scope: every
/// parameter but one is `NULL` (`$1` session, `$2` user, `$3` the user's session to keep,
/// `$4` organisation, `$5` instant).
#[derive(Clone)]
struct ScopeParams {
    session: Option<String>,
    user: Option<String>,
    except: Option<String>,
    org: Option<String>,
    before: Option<i64>,
}

impl ScopeParams {
    fn of(scope: &RevocationScope) -> Result<Self, StoreError> {
        let none = Self {
            session: None,
            user: None,
            except: None,
            org: None,
            before: None,
        };
        Ok(match scope {
            RevocationScope::Session(id) => Self {
                session: Some(id.to_string()),
                ..none
            },
            RevocationScope::User { user, except } => Self {
                user: Some(user.as_str().to_owned()),
                except: except.map(|id| id.to_string()),
                ..none
            },
            RevocationScope::Org(org) => Self {
                org: Some(org.as_str().to_owned()),
                ..none
            },
            RevocationScope::IssuedBefore(instant) => Self {
                before: Some(at(*instant)?),
                ..none
            },
            // A scope this build does not know selects nothing rather than everything.
            #[allow(unreachable_patterns)]
            _ => {
                return Err(StoreError::new(
                    StoreErrorKind::Backend,
                    "unknown revocation scope",
                ))
            }
        })
    }

    fn bind<D: Driver>(&self, query: Sql<D>) -> Sql<D> {
        query
            .opt_text(self.session.clone())
            .opt_text(self.user.clone())
            .opt_text(self.except.clone())
            .opt_text(self.org.clone())
            .opt_int(self.before)
    }
}

fn session_row<D: Driver>(row: &Fields<D>) -> Result<SessionRecord, StoreError> {
    let second_factor = match (row.opt_int(8)?, row.opt_int(9)?) {
        (Some(at), Some(method)) => {
            Some((timestamp(at)?, from_code(&SecondFactorMethod::ALL, method)?))
        }
        _ => None,
    };
    Ok(SessionRecord {
        id: session_id(&row.text(0)?)?,
        token: token_hash(&row.text(1)?)?,
        user: user_id(&row.text(2)?)?,
        org: row.opt_text(3)?.as_deref().map(org_id).transpose()?,
        assurance: from_code(&ASSURANCES, row.int(4)?)?,
        created_at: timestamp(row.int(5)?)?,
        last_seen: timestamp(row.int(6)?)?,
        expires_at: timestamp(row.int(7)?)?,
        second_factor,
        signals: row.opt_text(10)?.as_deref().map(token_hash).transpose()?,
    })
}

fn binding_row<D: Driver>(row: &Fields<D>) -> Result<BindingRecord, StoreError> {
    binding_columns(row, 0)
}

/// A binding record from the row's columns `base` to `base + 11` (the order of [`BINDING`]).
fn binding_columns<D: Driver>(row: &Fields<D>, base: usize) -> Result<BindingRecord, StoreError> {
    let corrupt = |what| StoreError::new(StoreErrorKind::Corrupt, what);
    let key = match (row.opt_bytes(base + 2)?, row.opt_int(base + 3)?) {
        (Some(key), Some(kind)) => Some((
            DeviceKey::from_sec1(&key)
                .map_err(|_| corrupt("stored device key is not a P-256 point"))?,
            from_code(&BindingKind::ALL, kind)?,
        )),
        (None, None) => None,
        _ => return Err(corrupt("stored device key without its kind")),
    };
    let challenge = |first: usize| -> Result<_, StoreError> {
        Ok(match (row.opt_text(first)?, row.opt_int(first + 1)?) {
            (Some(text), Some(expires)) => Some(IssuedChallenge {
                challenge: Challenge::from_stored(text),
                expires_at: timestamp(expires)?,
            }),
            _ => None,
        })
    };
    let cookie = |first: usize| -> Result<_, StoreError> {
        Ok(match (row.opt_text(first)?, row.opt_int(first + 1)?) {
            (Some(hash), Some(expires)) => Some(IssuedCookie {
                hash: token_hash(&hash)?,
                expires_at: timestamp(expires)?,
            }),
            _ => None,
        })
    };
    Ok(BindingRecord {
        version: from_db(row.int(base)?)?,
        offered_at: timestamp(row.int(base + 1)?)?,
        key,
        challenge: challenge(base + 4)?,
        previous_challenge: challenge(base + 6)?,
        cookie: cookie(base + 8)?,
        previous_cookie: cookie(base + 10)?,
    })
}

/// Binds `record`'s columns as `$2` to `$13`, in the order of the binding statements' column
/// lists (`version` … `prev_cookie_expires`).
fn bind_binding<D: Driver>(query: Sql<D>, record: &BindingRecord) -> Result<Sql<D>, StoreError> {
    let challenge =
        |c: &Option<IssuedChallenge>| c.as_ref().map(|c| c.challenge.as_str().to_owned());
    let challenge_expires =
        |c: &Option<IssuedChallenge>| c.as_ref().map(|c| at(c.expires_at)).transpose();
    let cookie = |c: &Option<IssuedCookie>| c.map(|c| c.hash.to_hex());
    let cookie_expires = |c: &Option<IssuedCookie>| c.map(|c| at(c.expires_at)).transpose();
    Ok(query
        .int(to_db(record.version)?)
        .int(at(record.offered_at)?)
        .opt_bytes(record.key.map(|(key, _)| key.to_sec1().to_vec()))
        .opt_int(record.key.map(|(_, kind)| code(&BindingKind::ALL, &kind)))
        .opt_text(challenge(&record.challenge))
        .opt_int(challenge_expires(&record.challenge)?)
        .opt_text(challenge(&record.previous_challenge))
        .opt_int(challenge_expires(&record.previous_challenge)?)
        .opt_text(cookie(&record.cookie))
        .opt_int(cookie_expires(&record.cookie)?)
        .opt_text(cookie(&record.previous_cookie))
        .opt_int(cookie_expires(&record.previous_cookie)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns of `verrou_sessions`, in the order `session_row` reads them.
    const SESSION_COLUMNS: &str =
        "session_id, token_hash, user_id, org_id, assurance, created_at, \
     last_seen, expires_at, second_factor_at, second_factor_method, signals";

    /// The columns of `verrou_session_bindings` after `session_id`, in the order `binding_row`
    /// reads them and `bind_binding` binds them (`$2` to `$13`).
    const BINDING_COLUMNS: &str = "version, offered_at, device_key, binding_kind, challenge, \
     challenge_expires, prev_challenge, prev_challenge_expires, cookie_hash, cookie_expires, \
     prev_cookie_hash, prev_cookie_expires";

    /// Which sessions a revocation scope selects: every parameter but one is `NULL` (`$1`
    /// session, `$2` user, `$3` the user's session to keep, `$4` organisation, `$5` instant).
    const REVOCATION_SCOPE: &str =
        "($1 IS NULL OR session_id = $1) AND ($2 IS NULL OR user_id = $2) \
     AND ($3 IS NULL OR session_id <> $3) AND ($4 IS NULL OR org_id = $4) \
     AND ($5 IS NULL OR created_at < $5)";

    /// Squeezes runs of whitespace, so statements compare as SQL, not as source layout.
    fn squeezed(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn every_statement_spells_the_shared_column_lists() {
        let sessions = squeezed(SESSION_COLUMNS);
        let bindings = squeezed(BINDING_COLUMNS);
        let scope = squeezed(REVOCATION_SCOPE);
        for sql in [SESSION_BY_TOKEN, SESSIONS_IN] {
            assert!(
                squeezed(sql).starts_with(&format!("SELECT {sessions} FROM")),
                "{sql}"
            );
        }
        assert!(squeezed(BINDING).starts_with(&format!("SELECT {bindings} FROM")));
        for sql in [INSERT_BINDING, OFFER_BINDING] {
            assert!(
                squeezed(sql).contains(&format!("(session_id, {bindings})")),
                "{sql}"
            );
        }
        let assignments: Vec<String> = bindings
            .split(", ")
            .zip(2..)
            .map(|(column, n)| format!("{column} = ${n}"))
            .collect();
        assert!(squeezed(SWAP_BINDING).contains(&assignments.join(", ")));
        for sql in [REVOKE_BINDINGS, REVOKE_SESSIONS, SESSIONS_IN] {
            assert!(squeezed(sql).contains(&scope), "{sql}");
        }
        assert!(squeezed(SESSION_BY_TOKEN).ends_with("WHERE token_hash = $1"));
    }
}
