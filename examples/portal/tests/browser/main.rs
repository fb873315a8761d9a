//! The portal in headless Chromium, driven over WebDriver (chromedriver): sign-in, forced
//! enrolment with the key read from the page and the code computed by `oathtool`, recovery
//! codes, the job-seeker list, sign-out, sign-in with a code, the same code refused, a
//! recovery-code sign-in, and a second browser revoking the first, which is signed out at its
//! next request. Screenshots of the key pages go to `target/screenshots/` (to
//! `docs/screenshots/` with `VERROU_UPDATE_SCREENSHOTS=1`). The whole run logs at `trace`, and
//! every password, key, code, recovery code and cookie value it used is then searched for in
//! those logs.
//!
//! Needs `chromium`, `chromedriver` (Debian's `chromium-driver`) and `oathtool`; scripts/test
//! installs them. Without them the test fails, naming what is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod breach;
mod dbsc;
mod journey;
#[path = "../common/postgres.rs"]
mod postgres;
mod support;
