//! verrou-axum from a portal's side: every extractor, status mapping and binding endpoint
//! through tower's `oneshot`, the minimal example portal end to end, and the WebCrypto
//! page-load story in headless Chromium.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub,
    missing_docs
)]

mod binding_router;
mod browser;
mod client;
mod extractors;
mod minimal_portal;
mod refusals;
mod support;
