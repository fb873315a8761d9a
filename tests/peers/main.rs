//! verrou against independent implementations: `oathtool` and `zbarimg` (`interop.rs`), and
//! a real Chromium running the WebCrypto device-binding script (`browser_fallback.rs`).

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/mod.rs"]
mod support;

mod browser_fallback;
mod interop;
