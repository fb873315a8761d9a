//! The WebCrypto fallback for browsers without Device Bound Session Credentials: a small
//! script the portal serves as a static file (verrou-axum serves it, and the pages that use
//! it, for axum portals).
//!
//! It creates a **non-extractable** P-256 key with `crypto.subtle.generateKey`, keeps it in
//! IndexedDB, registers it by signing the offered challenge, and renews the bound cookie by
//! signing server challenges. Its proofs are the JWTs a DBSC browser sends, so the server side
//! is the same: [`crate::Verrou::register_binding`] (with
//! [`BindingKind::WebCrypto`](super::BindingKind)) and [`crate::Verrou::refresh_binding`].
//!
//! It runs from data attributes on its own `<script>` tag, so pages need no inline script and
//! a `Content-Security-Policy` of `script-src 'self'` holds:
//!
//! ```text
//! after the second factor (waits for DBSC, registers unless DBSC bound, goes on to next):
//! <script src="/verrou/binding.js" data-verrou-register="<challenge>"
//!         data-verrou-registration="/verrou/webcrypto/register" data-verrou-next="/"
//!         data-verrou-wait="1500"></script>
//! every other page (renews the bound cookie at 70 % of its life while the page is open):
//! <script src="/verrou/binding.js" defer></script>
//! a page load that met an expired bound cookie (renews, then reloads or re-submits
//! #verrou-retry-form; shows #verrou-retry-failed when it cannot):
//! <script src="/verrou/binding.js" data-verrou-retry></script>
//! ```
//!
//! Scripts can also call `verrouBinding.register(challenge, path)`, `verrouBinding.refresh()`
//! and `verrouBinding.fetch(url, init)` (a `fetch` that renews once on a 401). The registration
//! and refresh answers should carry `Verrou-Bound-Max-Age` (the bound cookie's lifetime in
//! seconds) for the renewal while a page is open; a `409` to a registration means the session
//! is bound already (by the browser's DBSC) and the script stands down.
//!
//! A non-extractable key cannot be read out by any script, so a copied cookie jar is useless on
//! another machine once the bound cookie expires. Browsers keep such keys in the profile's
//! IndexedDB files, though: a thief who copies the **whole profile directory** copies the key
//! with it (a DBSC key in a TPM does not leave the machine). Malware running on the user's
//! machine can still ask the browser to sign while it runs there; that is outside what binding
//! can stop.

/// The script (plain JavaScript, no dependencies), as `assets/verrou-binding.js` in the crate.
pub const SCRIPT: &str = include_str!("../../assets/verrou-binding.js");
