//! A verification's write in one round trip, where the dialect has a function for it
//! ([`Dialect::ATTEMPT_CALL`](super::driver::Dialect::ATTEMPT_CALL): PostgreSQL).
//!
//! The locking transaction in `factors.rs` costs eight round trips on a server: `BEGIN`, two
//! counter locks, the step's update, the account's reset, the audit record, `COMMIT`, each
//! waiting on the network while the rows stay locked. Here the throttle policy is still
//! decided in Rust, on the counters as this side believes them to be, and the function applies
//! the decision only if they are still exactly that, each of its writes a compare-and-set (see
//! `ATTEMPT_FUNCTION` in `postgres.rs`). A counter that moved (another attempt, an operator's
//! reset, a lockout) before the function read it makes it write nothing and answer what it
//! found, and the attempt is decided again on that; one that moved after undoes the call, and
//! the attempt goes through the locking transaction.
//!
//! The first belief is "both counters absent", which is what a verification finds after a
//! success (it resets the account's counter and leaves the address's alone); an attempt after
//! failures costs a second call. A refusal is answered only on counters the function read.

use super::bind_audit;
use super::driver::{Driver, Sql};
use super::factors::throttle_state;
use super::values::{account_key, to_db};
use super::SqlStore;
use crate::error::{StoreError, StoreErrorKind};
use crate::ids::UserId;
use crate::lockout::ThrottleState;
use crate::store::{AttemptVerdict, Reservation, StepAdvance, TotpAttempt};

/// How many times the attempt is decided again on counters that moved under it before it is
/// left to the locking transaction (which waits on the locks instead of retrying).
const TRIES: usize = 3;

#[allow(private_bounds, reason = "crate-private helpers; Driver is sealed")]
impl<D: Driver> SqlStore<D> {
    /// Decides and writes `attempt` with `call`, or `None` if it should go through the
    /// locking transaction (the counters kept moving, or the first belief would refuse).
    /// `None` is only answered when nothing was written.
    pub(super) async fn attempt_in_one_call(
        &self,
        call: &'static str,
        user: &UserId,
        attempt: &TotpAttempt<'_>,
    ) -> Result<Option<AttemptVerdict>, StoreError> {
        let account_key = account_key(user);
        let address_key = attempt.address.as_ref().map(|(key, _)| key.storage_key());
        let factor = attempt.factor.to_string();
        let step = attempt.fresh_step.map(to_db).transpose()?;
        let mut seen_address = ThrottleState::default();
        let mut seen_account = ThrottleState::default();
        let mut read = false;
        for _ in 0..TRIES {
            let mut address_next = None;
            if let Some((_, policy)) = &attempt.address {
                let (_, reserved) = Reservation::decide(policy, &seen_address, attempt.now);
                match AttemptVerdict::counted(reserved, true) {
                    Ok(next) => address_next = Some(next),
                    Err(refused) => return Ok(read.then_some(refused)),
                }
            }
            let (_, reserved) = Reservation::decide(attempt.account, &seen_account, attempt.now);
            let account_next = match AttemptVerdict::counted(reserved, false) {
                Ok(next) => next,
                Err(refused) => return Ok(read.then_some(refused)),
            };
            let (address_now, address_next) = match address_next {
                Some(next) => (seen_address, next),
                None => (ThrottleState::default(), ThrottleState::default()),
            };
            let statement = Sql::<D>::new(call, "verify a code")
                .text(user.as_str())
                .text(factor.clone())
                .opt_int(step)
                .opt_text(address_key.clone());
            let statement = bind_counter(bind_counter(statement, address_now)?, address_next)?
                .text(account_key.clone());
            let statement = bind_counter(bind_counter(statement, seen_account)?, account_next)?;
            let answer = bind_audit(statement, &attempt.accepted)?
                .fetch_one(&mut *self.write_connection("verify a code").await?)
                .await;
            let row = match answer {
                Ok(row) => row,
                // A counter moved between the function's read and its write: it undid
                // everything.
                Err(error) if error.kind() == StoreErrorKind::Contention => return Ok(None),
                Err(error) => return Err(error),
            };
            let advance = match row.text(0)?.as_str() {
                "counted" => None,
                "advanced" => Some(StepAdvance::Advanced),
                "already_used" => Some(StepAdvance::AlreadyUsed),
                "no_such_factor" => Some(StepAdvance::NoSuchFactor),
                "changed" => {
                    seen_address = throttle_state(&row, 1)?;
                    seen_account = throttle_state(&row, 3)?;
                    read = true;
                    continue;
                }
                _ => {
                    return Err(StoreError::new(
                        StoreErrorKind::Backend,
                        "the verification function answered an unknown verdict",
                    ))
                }
            };
            return Ok(Some(AttemptVerdict::after(account_next, advance)));
        }
        Ok(None)
    }
}

/// Binds a counter's state as two parameters, `failures, last_failure`.
fn bind_counter<D: Driver>(sql: Sql<D>, state: ThrottleState) -> Result<Sql<D>, StoreError> {
    Ok(sql
        .int(i64::from(state.failures))
        .int(to_db(state.last_failure.unix_seconds())?))
}
