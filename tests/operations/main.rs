//! What operators run: the `verrou-admin` command line (`admin_cli.rs`) and the SQLite store
//! killed mid-operation (`crash.rs`).

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/mod.rs"]
mod support;

mod admin_cli;
mod crash;
