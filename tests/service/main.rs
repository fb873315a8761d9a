//! The service from a portal's side, on the in-memory store: attacks (`attacks.rs`), recovery
//! codes (`recovery.rs`), device-binding proofs (`binding_proofs.rs`), the DBSC protocol
//! (`dbsc.rs`), what an integrator meets (`integrator.rs`), properties over random inputs
//! (`properties.rs`) and redaction of every credential (`redaction.rs`).

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/mod.rs"]
mod support;

mod attacks;
mod binding_proofs;
mod dbsc;
mod integrator;
mod properties;
mod recovery;
mod redaction;
