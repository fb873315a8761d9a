//! The service's security rules over each backend: what must hold whatever store a portal
//! picks.

mod recovery;
mod sessions;
mod verification;

pub use self::recovery::*;
pub use self::sessions::*;
pub use self::verification::*;
