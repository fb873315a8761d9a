//! The conformance suite: what every store must do (`store/`) and the service's security
//! rules over it (`service/`), written once, generic over [`Store`](verrou::store::Store), and
//! run against every backend: in memory (`memory.rs`), SQLite (`sqlite.rs`) and PostgreSQL
//! (`postgres.rs`), the concurrency cases again through two handles on one database
//! (`two_handles.rs`), and key rotation on the stores that seal secrets (`rotation.rs`).
//!
//! PostgreSQL comes from `VERROU_TEST_POSTGRES_URL` (see the README); unset, those cases fail
//! and say so.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/mod.rs"]
mod support;

#[macro_use]
mod rotation;
mod service;
mod store;
mod two_handles;

/// Every case by its name, for the macros below.
mod cases {
    pub use crate::service::*;
    pub use crate::store::*;
}

/// Expands to one `#[tokio::test]` per conformance case, each with a fresh store from `$make`,
/// an `async fn` returning `(store, guard)`; the guard (a temporary directory, a schema to
/// drop) lives until the case ends. `concurrency $make` expands the concurrency cases only.
macro_rules! store_conformance {
    ($make:path) => {
        store_conformance!(@cases $make;
            pending_is_stored_and_replaced,
            activation_promotes_pending_once,
            activation_refuses_wrong_id_and_expired,
            activation_refuses_superseded,
            step_advances_only_forward,
            factors_are_removed,
            throttle_counts_until_the_gate_closes,
            throttle_keys_are_independent,
            accepting_a_step_resets_the_account_counter,
            service_accepts_a_valid_code_once,
            service_refuses_an_earlier_step_after_a_later_one,
            service_successes_never_throttle_their_address,
            recovery_codes_are_replaced_found_and_consumed,
            consuming_a_recovery_code_resets_the_account_counter,
            recovery_codes_exist_only_with_an_active_factor,
            audit_trail_is_kept_newest_first,
            audit_events_filter_and_follow,
            failing_accounts_are_listed,
            service_writes_its_audit_trail_to_the_store,
            sessions_are_created_found_and_touched,
            elevation_swaps_the_token_once,
            revocation_covers_each_scope,
            sessions_are_listed_by_scope,
            sessions_are_counted_by_organisation_and_assurance,
            binding_changes_only_by_compare_and_set,
            expired_sessions_are_purged,
            service_sessions_rise_only_through_the_second_factor,
            service_lifetimes_follow_the_injected_clock,
            service_step_up_needs_a_fresh_second_factor,
            service_factor_changes_revoke_other_sessions,
            service_unbound_sessions_end_after_the_grace,
            service_a_late_registration_is_refused,
            service_a_sessions_proof_cannot_elevate_another_session,
            service_a_kept_step_up_proof_dies_with_its_session,
            service_cookies_live_as_long_as_their_sessions,
            service_binding_refusals_name_the_user,
            service_soft_signals_ask_for_step_up_when_on,
            service_a_second_factor_rebinds_a_session_that_lost_its_key,
            service_reenrolment_revokes_the_other_sessions,
            service_session_events_name_their_organisation,
            service_client_flags_never_raise_a_level,
            service_challenge_floods_do_not_evict_the_browsers_challenge,
        );
        store_conformance!(concurrency $make);
    };
    (concurrency $make:path) => {
        store_conformance!(@cases $make;
            concurrent_activation_succeeds_once,
            concurrent_same_step_advances_once,
            concurrent_steps_never_go_back,
            concurrent_reservations_respect_the_gate,
            service_race_accepts_one,
            service_burst_is_throttled,
            concurrent_recovery_consumption_succeeds_once,
            service_recovery_code_race_accepts_one,
            concurrent_replacements_leave_one_set,
            concurrent_replacements_never_outlive_a_removal,
            service_a_reset_leaves_no_working_recovery_code,
            concurrent_elevations_succeed_once,
            concurrent_binding_swaps_succeed_once,
            service_concurrent_refreshes_accept_one_proof,
            service_revocation_takes_effect_on_the_next_request,
            service_stolen_cookies_stop_working_without_the_device,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make().await;
                crate::cases::$case(store).await;
            }
        )*
    };
}

#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod any_store;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
