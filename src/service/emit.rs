//! Audit emission: every event to `tracing`, the store's trail and the sink.

use super::{ClientContext, Verrou};
use crate::audit::{self, AuditEvent, AuditKind};
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::ids::UserId;
use crate::store::backend::SessionRecord;
use crate::store::Store;
use crate::totp::MalformedCode;

/// Input that is not a code changes nothing and is not an audit event, but a flood of it is
/// worth seeing: a `debug` trace with the reason (never the input).
pub(super) fn trace_malformed(user: &UserId, reason: MalformedCode) -> MalformedCode {
    tracing::debug!(target: "verrou::audit", kind = "malformed_code", user = user.as_str(), %reason);
    reason
}

impl<S: Store, C: Clock> Verrou<S, C> {
    /// Records an event: on `tracing`, in the store's audit trail, and in the sink if one is
    /// installed. A store failure fails the request with an error, rather than leave a silent
    /// gap in the trail.
    pub(super) async fn emit(
        &self,
        user: &UserId,
        ctx: &ClientContext,
        now: Timestamp,
        kind: AuditKind,
    ) -> Result<(), Error> {
        self.record(AuditEvent::new(now, user.clone(), ctx.addr, kind))
            .await
    }

    /// Records an event about the session `record`: its user's, in its organisation.
    pub(super) async fn emit_about(
        &self,
        record: &SessionRecord,
        ctx: &ClientContext,
        now: Timestamp,
        kind: AuditKind,
    ) -> Result<(), Error> {
        let event = AuditEvent::new(now, record.user.clone(), ctx.addr, kind);
        self.record(event.in_org(record.org.clone())).await
    }

    pub(super) async fn record(&self, event: AuditEvent) -> Result<(), Error> {
        self.announce(&event);
        self.store.record_audit(event).await?;
        Ok(())
    }

    /// Sends an event to `tracing` and to the sink (the store's copy is written elsewhere).
    pub(super) fn announce(&self, event: &AuditEvent) {
        audit::trace(event);
        if let Some(sink) = &self.sink {
            sink.record(event);
        }
    }
}
