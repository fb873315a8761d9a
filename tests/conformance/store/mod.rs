//! The store cases: what every [`Store`](verrou::store::Store) must do, checked operation by
//! operation, written once and run against every backend.

mod factors;
mod recovery_sets;
mod sessions;

pub use self::factors::*;
pub use self::recovery_sets::*;
pub use self::sessions::*;
