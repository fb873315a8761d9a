//! axum glue for [verrou]: the part of a portal's code that is the same in every portal,
//! written once.
//!
//! - **Session extractors** put the requirement in the handler's signature: [`Session`] (the
//!   second factor passed), [`Session<StepUp>`](StepUp) (within the step-up window),
//!   [`Session<Any>`](Any), and [`LiveSession`] for the second-factor page and logout. A
//!   request that does not qualify gets the answer its reason calls for
//!   ([`SessionRejection`]): sign-in or second-factor page for a page load, `401`/`403` with
//!   JSON for a script, and a page that renews an expired bound cookie and retries the request.
//! - **[`Client`]** is the client for verrou's throttle: the TCP peer, or the address in
//!   `X-Forwarded-For` only when the peer is one of the portal's [`TrustedProxies`].
//! - **[`Guard::binding_router`]** serves device binding: DBSC registration and refresh, the
//!   WebCrypto fallback's registration and its script (a static, cacheable file), with the
//!   headers and status codes the protocol needs and `Secure-Session-Skipped` understood.
//!   [`Guard::continue_after_second_factor`] answers the request that passed the second
//!   factor: new session cookie, DBSC offer, fallback page, then on to the next page.
//! - **[`Refusal`] and [`Failure`]** turn verrou's outcomes and errors into answers: 400
//!   malformed, 401 invalid, 429 with `Retry-After`, 403 step-up required, 500 with nothing of
//!   the cause in the body ([`Outcome::into_result`]).
//! - **[`keep_forms`]** keeps a submitted form so that a page load that met an expired bound
//!   cookie is retried with the form's data intact.
//!
//! ## DBSC or the fallback: one binding per session
//! A browser with Device Bound Session Credentials binds the session with its own key (in the
//! TPM where there is one) as soon as it sees the offer on the response that passed the second
//! factor. The page that response carries runs the WebCrypto fallback only after a head start
//! (1.5 s by default, [`Settings::with_dbsc_head_start`]): when DBSC bound the session first,
//! the fallback's registration is answered `409 already bound` and the script stands down
//! quietly (and forgets any key it kept from an earlier session), so no error is shown and the
//! session keeps DBSC's key. A browser without DBSC is bound by the fallback. If the fallback
//! ever registers first (a DBSC browser slower than the head start), the session is bound to
//! the fallback's key and DBSC's registration is refused: still one binding, still enforced.
//!
//! ## Server-rendered pages and the short bound cookie
//! The bound cookie lives 5 minutes by default. The binding script, included on every page
//! ([`Guard::script_tag`]), renews it with the device key while a page is open (at 70 % of its
//! life, and again when a background tab becomes visible). A page load that still arrives with
//! an expired cookie gets a small page that renews it and loads the page again, or, for a form,
//! submits the same fields again (with [`keep_forms`] in front of the handler); when it cannot
//! (no device key in this browser, a file upload, renewal refused) it says so in a sentence and
//! links to the second-factor page. DBSC browsers hold such a page load back and renew by
//! themselves.
//!
//! ## A complete minimal portal
//! Sign-in, enrolment with a QR code, the second factor, device binding, a page, an export
//! behind step-up, logout: `cargo run -p verrou-axum --example minimal`.
//!
#![doc = concat!("```rust,no_run\n", include_str!("../examples/minimal.rs"), "```")]
#![forbid(unsafe_code)]

mod answer;
mod binding;
mod client;
mod forms;
mod guard;
mod pages;
mod proxies;
mod refusal;
mod request;
mod session;

pub use crate::binding::BOUND_MAX_AGE_HEADER;
pub use crate::client::{Client, MissingPeerAddress};
pub use crate::forms::{keep_forms, SubmittedForm, FORM_REPLAY_LIMIT};
pub use crate::guard::{Guard, InvalidPath, Settings};
pub use crate::pages::escape as escape_html;
pub use crate::proxies::{InvalidNetwork, TrustedProxies};
pub use crate::refusal::{Failure, Outcome, Refusal};
pub use crate::request::local_next;
pub use crate::session::{
    Any, LiveSession, Need, Reason, SecondFactor, Session, SessionRejection, Standing, StepUp,
};
