//! The example portal over HTTP (tower's `oneshot`): security headers and cookies, CSRF, body
//! limits, trusted proxies, uniform messages, and the flows a partner's staff go through.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod api;
mod command;
mod exports;
mod flows;
mod instances;
mod keys;
mod operator;
#[path = "../common/postgres.rs"]
mod postgres;
mod security;
mod support;
