//! verrou's example portal: a training-provider portal on verrou and verrou-axum.
//!
//! Partner organisations' staff sign in with a password and a second factor (an authenticator
//! app, or a recovery code), their session is bound to the device (DBSC, or the WebCrypto
//! fallback), and they follow their own organisation's job-seekers. `cargo run -p
//! verrou-portal` starts it on SQLite with demo data.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod data;
pub mod demo;
pub mod keys;
pub mod pages;
pub mod passwords;
pub mod security;
pub mod time;
pub mod tls;

/// Writes a file only its owner can read (keys).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, bytes)
}
