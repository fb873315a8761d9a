//! The session half of the store: every operation atomic, like the factor half.
//!
//! - a token swap ([`SessionStore::elevate_session`]) succeeds only if the session still holds
//!   the token the request presented, so of two racing elevations one wins and the old token
//!   is dead either way (no fixation);
//! - a binding changes only by compare-and-set on its version ([`SessionStore::swap_binding`]),
//!   so a challenge is answered once and a page load cannot overwrite a registration;
//! - a revocation deletes the sessions, their bindings and writes one audit record per
//!   session in one transaction, and every instance reads the store on every request, so it
//!   takes effect on the next request everywhere.

use std::collections::BTreeMap;
use std::future::Future;

use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::ids::{OrgId, SessionId, UserId};
use crate::session::{Assurance, RevocationReason, RevocationScope, SecondFactorMethod, TokenHash};
use crate::store::{BindingRecord, SessionRecord};

/// What elevating a session (or a step-up) changes, atomically with the token swap.
#[derive(Clone, Debug, Eq, PartialEq)]
#[allow(
    clippy::exhaustive_structs,
    reason = "a record store implementations write"
)]
pub struct Elevation {
    /// The new token's hash (the old token stops working).
    pub token: TokenHash,
    /// The second factor just passed.
    pub second_factor: (Timestamp, SecondFactorMethod),
    /// The absolute expiry from now on (a password-only session's is short).
    pub expires_at: Timestamp,
    /// The soft signals seen with it.
    pub signals: Option<TokenHash>,
    /// The binding offer stored with it, replacing the session's binding and any registered
    /// key (`None` when binding is off). The store numbers its version one past the binding
    /// it replaces (1 if none), whatever `version` says.
    pub binding: Option<BindingRecord>,
    /// The elevation's audit record, stored in the same transaction.
    pub record: AuditEvent,
}

/// A revocation's context: when, from where, and why (for the audit records).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[allow(clippy::exhaustive_structs, reason = "plain parameters")]
pub struct RevocationContext {
    /// When.
    pub at: Timestamp,
    /// The client address of the request that revoked, if any.
    pub client: Option<std::net::IpAddr>,
    /// Why.
    pub reason: RevocationReason,
}

/// Session storage. Every [`Store`](super::Store) implements it.
pub trait SessionStore: Send + Sync {
    /// Inserts a new session.
    fn create_session(
        &self,
        record: SessionRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session whose current token hashes to `token`.
    fn session_by_token(
        &self,
        token: &TokenHash,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// The session whose current token hashes to `token`, with its binding record: what each
    /// request's check reads. SQL stores answer it with one statement; the default reads
    /// them one after the other.
    fn session_and_binding_by_token(
        &self,
        token: &TokenHash,
    ) -> impl Future<Output = Result<Option<(SessionRecord, Option<BindingRecord>)>, StoreError>> + Send
    {
        async move {
            let Some(session) = self.session_by_token(token).await? else {
                return Ok(None);
            };
            let binding = self.binding(session.id).await?;
            Ok(Some((session, binding)))
        }
    }

    /// Sets the session's `last_seen` to `at` if it is earlier (idle tracking).
    fn touch_session(
        &self,
        session: SessionId,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Atomically: if the session still holds token `current`, replace it with
    /// `elevation.token`, raise it to second-factor assurance and record the second factor
    /// and signals. False if the token was already swapped or the session is gone.
    fn elevate_session(
        &self,
        session: SessionId,
        current: &TokenHash,
        elevation: Elevation,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes every session in `scope` with its binding and appends one
    /// `SessionRevoked` audit record per session, in one transaction. Returns those records.
    fn revoke_sessions(
        &self,
        scope: &RevocationScope,
        context: RevocationContext,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;

    /// The sessions in `scope` (the sessions [`SessionStore::revoke_sessions`] would revoke),
    /// newest first: what an operator reviews before revoking them.
    fn sessions_in(
        &self,
        scope: &RevocationScope,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// How many sessions there are by organisation (`None`: created without one) and
    /// assurance: an operator's overview, without reading each session (SQL stores count
    /// in the database).
    ///
    /// # Errors
    /// Store failures.
    fn session_counts(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<(Option<OrgId>, Assurance), usize>, StoreError>> + Send
    {
        async {
            let everyone = RevocationScope::IssuedBefore(Timestamp::MAX);
            let mut counts = BTreeMap::new();
            for session in self.sessions_in(&everyone).await? {
                *counts.entry((session.org, session.assurance)).or_default() += 1;
            }
            Ok(counts)
        }
    }

    /// The user's sessions, newest first.
    fn user_sessions(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send {
        let scope = RevocationScope::User {
            user: user.clone(),
            except: None,
        };
        async move { self.sessions_in(&scope).await }
    }

    /// The session's binding record.
    fn binding(
        &self,
        session: SessionId,
    ) -> impl Future<Output = Result<Option<BindingRecord>, StoreError>> + Send;

    /// Atomically: if the session exists and its binding's version is `expected` (`None`: it
    /// has no binding), store `record`. False otherwise (someone else changed it first).
    fn swap_binding(
        &self,
        session: SessionId,
        expected: Option<u64>,
        record: BindingRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes sessions past their absolute expiry, or idle since before `idle_before`, with
    /// their bindings (housekeeping; expired sessions are refused whether purged or not).
    /// Returns how many went.
    fn purge_expired_sessions(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}
