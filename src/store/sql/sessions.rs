//! The SQL backends' [`SessionStore`](crate::store::SessionStore), written once and
//! instantiated per driver by `impl_sql_store!` (through `impl_sql_sessions!`).
//!
//! A session row is read on every request and written only by the atomic operations below:
//! a token swap conditional on the old token, a `last_seen` bump that only moves forward, and
//! deletion. Bindings live in their own table and change only by compare-and-set on their
//! version (an `INSERT … ON CONFLICT DO NOTHING` for the first record).

// The SQL text below is spelled with macros that expand to string literals, so every query is
// a `&'static str` assembled by `concat!` at compile time: nothing is formatted per request,
// and no dynamic SQL needs `AssertSqlSafe`.

/// The columns of `verrou_sessions`, in the order `session_row` reads them.
macro_rules! session_columns {
    () => {
        "session_id, token_hash, user_id, org_id, assurance, created_at, last_seen, \
         expires_at, second_factor_at, second_factor_method, signals"
    };
}

/// The columns of `verrou_session_bindings` after `session_id`, in the order `binding_row`
/// reads them and the writes bind them (`$2` to `$13`).
macro_rules! binding_columns {
    () => {
        "version, offered_at, device_key, binding_kind, challenge, challenge_expires, \
         prev_challenge, prev_challenge_expires, cookie_hash, cookie_expires, \
         prev_cookie_hash, prev_cookie_expires"
    };
}

/// Which sessions a revocation scope selects: every parameter but one is `NULL`
/// (`$1` session, `$2` user, `$3` the user's session to keep, `$4` organisation, `$5` instant).
macro_rules! revocation_scope {
    () => {
        "($1 IS NULL OR session_id = $1) AND ($2 IS NULL OR user_id = $2) \
         AND ($3 IS NULL OR session_id <> $3) AND ($4 IS NULL OR org_id = $4) \
         AND ($5 IS NULL OR created_at < $5)"
    };
}

/// The condition that the session `$1` still exists (a binding is never written for a
/// revoked session).
macro_rules! session_exists {
    () => {
        "EXISTS (SELECT 1 FROM verrou_sessions WHERE session_id = $1)"
    };
}

pub(crate) use {binding_columns, revocation_scope, session_columns, session_exists};

/// The parameters of `revocation_scope!()` for `scope`.
pub(crate) type ScopeParams = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

pub(crate) fn scope_params(
    scope: &crate::session::RevocationScope,
) -> Result<ScopeParams, crate::error::StoreError> {
    use crate::session::RevocationScope;
    Ok(match scope {
        RevocationScope::Session(id) => (Some(id.to_string()), None, None, None, None),
        RevocationScope::User { user, except } => (
            None,
            Some(user.as_str().to_owned()),
            except.map(|id| id.to_string()),
            None,
            None,
        ),
        RevocationScope::Org(org) => (None, None, None, Some(org.as_str().to_owned()), None),
        RevocationScope::IssuedBefore(at) => (
            None,
            None,
            None,
            None,
            Some(super::to_db(at.unix_seconds())?),
        ),
        // A scope this build does not know selects nothing rather than everything.
        #[allow(unreachable_patterns)]
        _ => {
            return Err(crate::error::StoreError::new(
                crate::error::StoreErrorKind::Backend,
                "unknown revocation scope",
            ))
        }
    })
}

macro_rules! impl_sql_sessions {
    ($store:ty, $db:ty, lock = $lock:literal) => {
        impl $store {
            fn session_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::session::SessionRecord, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::store::sql::{
                    backend, from_code, org_id, session_id, timestamp, token_hash, user_id,
                };
                let decode = || backend("decode a session");
                let id: String = row.try_get(0).map_err(decode())?;
                let token: String = row.try_get(1).map_err(decode())?;
                let user: String = row.try_get(2).map_err(decode())?;
                let org: Option<String> = row.try_get(3).map_err(decode())?;
                let assurance: i64 = row.try_get(4).map_err(decode())?;
                let second_at: Option<i64> = row.try_get(8).map_err(decode())?;
                let method: Option<i64> = row.try_get(9).map_err(decode())?;
                let signals: Option<String> = row.try_get(10).map_err(decode())?;
                let second_factor = match (second_at, method) {
                    (Some(at), Some(method)) => Some((
                        timestamp(at)?,
                        from_code(&$crate::session::SecondFactorMethod::ALL, method)?,
                    )),
                    _ => None,
                };
                Ok($crate::session::SessionRecord {
                    id: session_id(&id)?,
                    token: token_hash(&token)?,
                    user: user_id(&user)?,
                    org: org.as_deref().map(org_id).transpose()?,
                    assurance: from_code(&$crate::store::sql::sessions::ASSURANCES, assurance)?,
                    created_at: timestamp(row.try_get(5).map_err(decode())?)?,
                    last_seen: timestamp(row.try_get(6).map_err(decode())?)?,
                    expires_at: timestamp(row.try_get(7).map_err(decode())?)?,
                    second_factor,
                    signals: signals.as_deref().map(token_hash).transpose()?,
                })
            }

            fn binding_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::session::BindingRecord, $crate::error::StoreError> {
                use sqlx::Row as _;
                use $crate::session::{Challenge, IssuedChallenge, IssuedCookie};
                use $crate::store::sql::{backend, from_code, from_db, timestamp, token_hash};
                let decode = || backend("decode a session binding");
                let corrupt = |what| {
                    $crate::error::StoreError::new($crate::error::StoreErrorKind::Corrupt, what)
                };
                let key: Option<Vec<u8>> = row.try_get(2).map_err(decode())?;
                let kind: Option<i64> = row.try_get(3).map_err(decode())?;
                let key = match (key, kind) {
                    (Some(key), Some(kind)) => Some((
                        $crate::session::proof::DeviceKey::from_sec1(&key)
                            .map_err(|_| corrupt("stored device key is not a P-256 point"))?,
                        from_code(&$crate::session::BindingKind::ALL, kind)?,
                    )),
                    (None, None) => None,
                    _ => return Err(corrupt("stored device key without its kind")),
                };
                let challenge = |first: usize| -> Result<_, $crate::error::StoreError> {
                    let text: Option<String> = row.try_get(first).map_err(decode())?;
                    let expires: Option<i64> = row.try_get(first + 1).map_err(decode())?;
                    Ok(match (text, expires) {
                        (Some(text), Some(expires)) => Some(IssuedChallenge {
                            challenge: Challenge::from_stored(text),
                            expires_at: timestamp(expires)?,
                        }),
                        _ => None,
                    })
                };
                let cookie = |first: usize| -> Result<_, $crate::error::StoreError> {
                    let hash: Option<String> = row.try_get(first).map_err(decode())?;
                    let expires: Option<i64> = row.try_get(first + 1).map_err(decode())?;
                    Ok(match (hash, expires) {
                        (Some(hash), Some(expires)) => Some(IssuedCookie {
                            hash: token_hash(&hash)?,
                            expires_at: timestamp(expires)?,
                        }),
                        _ => None,
                    })
                };
                Ok($crate::session::BindingRecord {
                    version: from_db(row.try_get(0).map_err(decode())?)?,
                    offered_at: timestamp(row.try_get(1).map_err(decode())?)?,
                    key,
                    challenge: challenge(4)?,
                    previous_challenge: challenge(6)?,
                    cookie: cookie(8)?,
                    previous_cookie: cookie(10)?,
                })
            }

            /// Binds `record`'s columns as `$2` to `$13` (see `BINDING_COLUMNS`).
            fn bind_binding<'q>(
                query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
                record: &$crate::session::BindingRecord,
            ) -> Result<
                sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
                $crate::error::StoreError,
            > {
                use $crate::store::sql::{code, to_db};
                let at = |t: $crate::clock::Timestamp| to_db(t.unix_seconds());
                let challenge = |c: &Option<$crate::session::IssuedChallenge>| {
                    c.as_ref().map(|c| c.challenge.as_str().to_owned())
                };
                let challenge_expires = |c: &Option<$crate::session::IssuedChallenge>| {
                    c.as_ref().map(|c| at(c.expires_at)).transpose()
                };
                let cookie = |c: &Option<$crate::session::IssuedCookie>| c.map(|c| c.hash.to_hex());
                let cookie_expires = |c: &Option<$crate::session::IssuedCookie>| {
                    c.map(|c| at(c.expires_at)).transpose()
                };
                Ok(query
                    .bind(to_db(record.version)?)
                    .bind(at(record.offered_at)?)
                    .bind(record.key.map(|(key, _)| key.to_sec1().to_vec()))
                    .bind(
                        record
                            .key
                            .map(|(_, kind)| code(&$crate::session::BindingKind::ALL, &kind)),
                    )
                    .bind(challenge(&record.challenge))
                    .bind(challenge_expires(&record.challenge)?)
                    .bind(challenge(&record.previous_challenge))
                    .bind(challenge_expires(&record.previous_challenge)?)
                    .bind(cookie(&record.cookie))
                    .bind(cookie_expires(&record.cookie)?)
                    .bind(cookie(&record.previous_cookie))
                    .bind(cookie_expires(&record.previous_cookie)?))
            }
        }

        impl $crate::store::SessionStore for $store {
            async fn create_session(
                &self,
                record: $crate::session::SessionRecord,
            ) -> Result<(), $crate::error::StoreError> {
                use $crate::store::sql::{backend, code, to_db};
                let at = |t: $crate::clock::Timestamp| to_db(t.unix_seconds());
                let (second_at, method) = match record.second_factor {
                    Some((when, method)) => (
                        Some(at(when)?),
                        Some(code(&$crate::session::SecondFactorMethod::ALL, &method)),
                    ),
                    None => (None, None),
                };
                sqlx::query(
                    "INSERT INTO verrou_sessions (session_id, token_hash, user_id, org_id, \
                     assurance, created_at, last_seen, expires_at, second_factor_at, \
                     second_factor_method, signals) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(record.id.to_string())
                .bind(record.token.to_hex())
                .bind(record.user.as_str())
                .bind(record.org.as_ref().map($crate::ids::OrgId::as_str))
                .bind(code(&$crate::store::sql::sessions::ASSURANCES, &record.assurance))
                .bind(at(record.created_at)?)
                .bind(at(record.last_seen)?)
                .bind(at(record.expires_at)?)
                .bind(second_at)
                .bind(method)
                .bind(record.signals.map(|s| s.to_hex()))
                .execute(&self.pool)
                .await
                .map_err(backend("create a session"))?;
                Ok(())
            }

            async fn session_by_token(
                &self,
                token: &$crate::session::TokenHash,
            ) -> Result<Option<$crate::session::SessionRecord>, $crate::error::StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::sessions::session_columns!(),
                    " FROM verrou_sessions WHERE token_hash = $1"
                ))
                .bind(token.to_hex())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::sql::backend("read a session"))?;
                row.as_ref().map(Self::session_row).transpose()
            }

            async fn touch_session(
                &self,
                session: $crate::ids::SessionId,
                at: $crate::clock::Timestamp,
            ) -> Result<(), $crate::error::StoreError> {
                sqlx::query(
                    "UPDATE verrou_sessions SET last_seen = $2 \
                     WHERE session_id = $1 AND last_seen < $2",
                )
                .bind(session.to_string())
                .bind($crate::store::sql::to_db(at.unix_seconds())?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::sql::backend("touch a session"))?;
                Ok(())
            }

            async fn elevate_session(
                &self,
                session: $crate::ids::SessionId,
                current: &$crate::session::TokenHash,
                elevation: $crate::store::Elevation,
            ) -> Result<bool, $crate::error::StoreError> {
                use $crate::store::sql::{backend, code, to_db};
                let (when, method) = elevation.second_factor;
                let mut tx = self.write("elevate a session").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    let swapped = sqlx::query(
                        "UPDATE verrou_sessions SET token_hash = $3, assurance = $4, \
                         second_factor_at = $5, second_factor_method = $6, signals = $7, \
                         expires_at = $8 WHERE session_id = $1 AND token_hash = $2",
                    )
                    .bind(session.to_string())
                    .bind(current.to_hex())
                    .bind(elevation.token.to_hex())
                    .bind(code(&$crate::store::sql::sessions::ASSURANCES, &$crate::session::Assurance::SecondFactor))
                    .bind(to_db(when.unix_seconds())?)
                    .bind(code(&$crate::session::SecondFactorMethod::ALL, &method))
                    .bind(elevation.signals.map(|s| s.to_hex()))
                    .bind(to_db(elevation.expires_at.unix_seconds())?)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("elevate a session"))?
                    .rows_affected();
                    if swapped != 1 {
                        return Ok(false);
                    }
                    if let Some(offer) = &elevation.binding {
                        // Replaces the binding whole, its version one past the old one's: a
                        // concurrent compare-and-set on the old version fails.
                        let offer = $crate::session::BindingRecord { version: 1, ..offer.clone() };
                        let query = sqlx::query(concat!(
                            "INSERT INTO verrou_session_bindings (session_id, ",
                            $crate::store::sql::sessions::binding_columns!(),
                            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                             ON CONFLICT (session_id) DO UPDATE SET \
                             version = verrou_session_bindings.version + 1, \
                             offered_at = excluded.offered_at, device_key = excluded.device_key, \
                             binding_kind = excluded.binding_kind, challenge = excluded.challenge, \
                             challenge_expires = excluded.challenge_expires, \
                             prev_challenge = excluded.prev_challenge, \
                             prev_challenge_expires = excluded.prev_challenge_expires, \
                             cookie_hash = excluded.cookie_hash, \
                             cookie_expires = excluded.cookie_expires, \
                             prev_cookie_hash = excluded.prev_cookie_hash, \
                             prev_cookie_expires = excluded.prev_cookie_expires"
                        ));
                        Self::bind_binding(query.bind(session.to_string()), &offer)?
                            .execute(&mut *tx)
                            .await
                            .map_err(backend("offer a session binding"))?;
                    }
                    Self::insert_audit(&mut *tx, elevation.record).await?;
                    Ok(true)
                }
                .await;
                Self::finish(tx, result).await
            }

            async fn revoke_sessions(
                &self,
                scope: &$crate::session::RevocationScope,
                context: $crate::store::RevocationContext,
            ) -> Result<Vec<$crate::audit::AuditEvent>, $crate::error::StoreError> {
                use $crate::store::sql::sessions::scope_params;
                use $crate::store::sql::{backend, session_id, user_id};
                let (id, user, except, org, before) = scope_params(scope)?;
                let mut tx = self.write("revoke sessions").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    sqlx::query(concat!(
                        "DELETE FROM verrou_session_bindings WHERE session_id IN \
                         (SELECT session_id FROM verrou_sessions WHERE ",
                        $crate::store::sql::sessions::revocation_scope!(),
                        ")"
                    ))
                    .bind(&id)
                    .bind(&user)
                    .bind(&except)
                    .bind(&org)
                    .bind(before)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("revoke session bindings"))?;
                    let revoked: Vec<(String, String)> =
                        sqlx::query_as(concat!(
                            "DELETE FROM verrou_sessions WHERE ",
                            $crate::store::sql::sessions::revocation_scope!(),
                            " RETURNING session_id, user_id"
                        ))
                        .bind(&id)
                        .bind(&user)
                        .bind(&except)
                        .bind(&org)
                        .bind(before)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(backend("revoke sessions"))?;
                    let mut events = Vec::with_capacity(revoked.len());
                    for (session, user) in revoked {
                        let kind = $crate::audit::AuditKind::SessionRevoked {
                            session: session_id(&session)?,
                            reason: context.reason,
                        };
                        let event = $crate::audit::AuditEvent::new(
                            context.at,
                            user_id(&user)?,
                            context.client,
                            kind,
                        );
                        Self::insert_audit(&mut *tx, event.clone()).await?;
                        events.push(event);
                    }
                    Ok(events)
                }
                .await;
                Self::finish(tx, result).await
            }

            async fn user_sessions(
                &self,
                user: &$crate::ids::UserId,
            ) -> Result<Vec<$crate::session::SessionRecord>, $crate::error::StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::sessions::session_columns!(),
                    " FROM verrou_sessions WHERE user_id = $1 \
                     ORDER BY created_at DESC, session_id DESC"
                ))
                .bind(user.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::sql::backend("list a user's sessions"))?;
                rows.iter().map(Self::session_row).collect()
            }

            async fn binding(
                &self,
                session: $crate::ids::SessionId,
            ) -> Result<Option<$crate::session::BindingRecord>, $crate::error::StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::sessions::binding_columns!(),
                    " FROM verrou_session_bindings WHERE session_id = $1"
                ))
                .bind(session.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::sql::backend("read a session binding"))?;
                row.as_ref().map(Self::binding_row).transpose()
            }

            async fn swap_binding(
                &self,
                session: $crate::ids::SessionId,
                expected: Option<u64>,
                record: $crate::session::BindingRecord,
            ) -> Result<bool, $crate::error::StoreError> {
                use $crate::store::sql::{backend, to_db};
                let query = match expected {
                    None => sqlx::query(concat!(
                        "INSERT INTO verrou_session_bindings (session_id, ",
                        $crate::store::sql::sessions::binding_columns!(),
                        ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 WHERE ",
                        $crate::store::sql::sessions::session_exists!(),
                        " ON CONFLICT (session_id) DO NOTHING"
                    )),
                    Some(_) => sqlx::query(concat!(
                        "UPDATE verrou_session_bindings SET version = $2, offered_at = $3, \
                         device_key = $4, binding_kind = $5, challenge = $6, \
                         challenge_expires = $7, prev_challenge = $8, \
                         prev_challenge_expires = $9, cookie_hash = $10, cookie_expires = $11, \
                         prev_cookie_hash = $12, prev_cookie_expires = $13 \
                         WHERE session_id = $1 AND version = $14 AND ",
                        $crate::store::sql::sessions::session_exists!()
                    )),
                };
                let query = Self::bind_binding(query.bind(session.to_string()), &record)?;
                let query = match expected {
                    Some(version) => query.bind(to_db(version)?),
                    None => query,
                };
                let written = query
                    .execute(&self.pool)
                    .await
                    .map_err(backend("write a session binding"))?
                    .rows_affected();
                Ok(written == 1)
            }

            async fn purge_expired_sessions(
                &self,
                now: $crate::clock::Timestamp,
                idle_before: $crate::clock::Timestamp,
            ) -> Result<usize, $crate::error::StoreError> {
                use $crate::store::sql::{backend, to_db};
                let now = to_db(now.unix_seconds())?;
                let idle_before = to_db(idle_before.unix_seconds())?;
                let mut tx = self.write("purge expired sessions").await?;
                let result: Result<_, $crate::error::StoreError> = async {
                    let purged = sqlx::query(
                        "DELETE FROM verrou_sessions WHERE expires_at <= $1 OR last_seen < $2",
                    )
                    .bind(now)
                    .bind(idle_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("purge expired sessions"))?
                    .rows_affected();
                    // Their bindings, and any a revocation raced with.
                    sqlx::query(
                        "DELETE FROM verrou_session_bindings WHERE session_id NOT IN \
                         (SELECT session_id FROM verrou_sessions)",
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("purge orphaned bindings"))?;
                    Ok(usize::try_from(purged).unwrap_or(usize::MAX))
                }
                .await;
                Self::finish(tx, result).await
            }
        }
    };
}
pub(crate) use impl_sql_sessions;

/// Assurance levels as stored (their position here).
pub(crate) const ASSURANCES: [crate::session::Assurance; 2] = [
    crate::session::Assurance::PasswordOnly,
    crate::session::Assurance::SecondFactor,
];
