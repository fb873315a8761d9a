//! What operators meet: the SQLite store killed mid-operation (`crash.rs`). The
//! `verrou-admin` command line has its own crate and tests (`verrou-admin/tests`).

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/mod.rs"]
mod support;

mod crash;
