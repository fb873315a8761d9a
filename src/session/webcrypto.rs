//! The WebCrypto fallback for browsers without Device Bound Session Credentials: a small
//! script the portal serves (or inlines) on the page that completes the second factor.
//!
//! It creates a **non-extractable** P-256 key with `crypto.subtle.generateKey`, keeps it in
//! IndexedDB, registers it by signing the offered challenge, and renews the bound cookie by
//! signing server challenges (`verrouBinding.fetch` does it by itself on a 401). Its proofs
//! are the JWTs a DBSC browser sends, so the server side is the same:
//! [`crate::Verrou::register_binding`] (with [`BindingKind::WebCrypto`](super::BindingKind))
//! and [`crate::Verrou::refresh_binding`].
//!
//! ```text
//! <script src="/verrou-binding.js"></script>
//! <script>verrouBinding.register("<challenge>", "/verrou/dbsc/register")</script>
//! ...
//! const response = await verrouBinding.fetch("/data");
//! ```
//!
//! A non-extractable key cannot be read out by any script, so a copied cookie jar (or a
//! copied browser profile) is useless on another machine once the bound cookie expires.
//! Malware running on the user's machine can still ask the browser to sign while it runs
//! there; that is outside what binding can stop.

/// The script (plain JavaScript, no dependencies), as `assets/verrou-binding.js` in the crate.
pub const SCRIPT: &str = include_str!("../../assets/verrou-binding.js");
