//! Which audit events to read ([`Store::audit_events`](super::Store::audit_events)): by user,
//! organisation, kind and time range, newest first, or after a cursor oldest first (to follow the trail as
//! it grows).

use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::ids::{OrgId, UserId};

/// A filter over the audit trail. Start from [`AuditQuery::newest`] or
/// [`AuditQuery::after`] and narrow it with the setters.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Only this user's events.
    pub user: Option<UserId>,
    /// Only events about sessions of this organisation ([`AuditEvent::org`]): factor and
    /// account events belong to a user, not to an organisation, and are not selected.
    pub org: Option<OrgId>,
    /// Only events of this kind ([`AuditKind::name`](crate::AuditKind::name)).
    pub kind: Option<String>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events before this instant.
    pub until: Option<Timestamp>,
    /// Only events recorded after this one ([`AuditEntry::seq`]), oldest first; `None`:
    /// newest first.
    pub after: Option<u64>,
    /// At most this many events.
    pub limit: usize,
}

impl AuditQuery {
    /// The newest `limit` events, newest first.
    pub fn newest(limit: usize) -> Self {
        Self {
            user: None,
            org: None,
            kind: None,
            since: None,
            until: None,
            after: None,
            limit,
        }
    }

    /// Up to `limit` events recorded after `seq`, oldest first: poll with the last `seq`
    /// seen to follow the trail.
    pub fn after(seq: u64, limit: usize) -> Self {
        Self {
            after: Some(seq),
            ..Self::newest(limit)
        }
    }

    /// Only `user`'s events (`None`: everyone's).
    #[must_use]
    pub fn user(self, user: Option<UserId>) -> Self {
        Self { user, ..self }
    }

    /// Only events about sessions of `org` (`None`: any or none).
    #[must_use]
    pub fn org(self, org: Option<OrgId>) -> Self {
        Self { org, ..self }
    }

    /// Only events of `kind` (`None`: every kind).
    #[must_use]
    pub fn kind(self, kind: Option<String>) -> Self {
        Self { kind, ..self }
    }

    /// Only events at or after `since` and before `until` (either open).
    #[must_use]
    pub fn between(self, since: Option<Timestamp>, until: Option<Timestamp>) -> Self {
        Self {
            since,
            until,
            ..self
        }
    }

    /// Whether `event` passes the filters (not the cursor or the limit).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.user.as_ref().is_none_or(|user| event.user == *user)
            && self
                .org
                .as_ref()
                .is_none_or(|org| event.org.as_ref() == Some(org))
            && self
                .kind
                .as_deref()
                .is_none_or(|kind| event.kind.name() == kind)
            && self.since.is_none_or(|since| event.at >= since)
            && self.until.is_none_or(|until| event.at < until)
    }
}

/// One audit event with its place in the trail.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct AuditEntry {
    /// Increases with every event recorded: a cursor for [`AuditQuery::after`].
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
}

impl AuditEntry {
    /// The entry (for stores).
    pub fn new(seq: u64, event: AuditEvent) -> Self {
        Self { seq, event }
    }
}
