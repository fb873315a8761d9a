//! Identifiers: the portal's user and organisation ids, verrou's factor and session ids.

use std::fmt;
use std::sync::Arc;

use rand::rngs::SysRng;
use rand::TryRng;

use crate::leaf_errors::{CryptoError, InputError};

/// The portal's identifier for a user: 1 to 256 bytes, no control characters and no
/// invisible formatting characters (bidirectional overrides and isolates, zero-width
/// characters, line and paragraph separators: see [`is_invisible_format`]). Cheap to clone
/// (shared).
///
/// Such characters would let a crafted id reorder or hide text in an operator's terminal or
/// a log viewer. `Display` escapes them too (`\u{202e}`), for ids stored before verrou
/// refused them.
///
/// It is not secret and appears in audit events. Use a stable internal id rather than an
/// e-mail address where the audit trail should not hold personal data.
#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates and wraps a user id.
    ///
    /// # Errors
    /// [`InputError::UserId`] when empty, longer than [`UserId::MAX_LEN`] bytes, or
    /// containing control or invisible formatting characters.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InputError> {
        let id = id.as_ref();
        if !is_plain_id(id, Self::MAX_LEN) {
            return Err(InputError::UserId { max: Self::MAX_LEN });
        }
        Ok(Self(id.into()))
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    /// An id read back from storage: the rules of verrou versions that allowed invisible
    /// formatting characters (1 to 256 bytes, no control characters), so older rows still
    /// load; `Display` escapes what they may hold.
    pub(crate) fn from_stored(id: &str) -> Result<Self, InputError> {
        if !is_stored_id(id, Self::MAX_LEN) {
            return Err(InputError::UserId { max: Self::MAX_LEN });
        }
        Ok(Self(id.into()))
    }

    /// The id as a string, exactly as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.0)
    }
}

/// The portal's identifier for a partner organisation (a tenant): the same rules as
/// [`UserId`]. Sessions carry it, so an operator can revoke every session of one
/// organisation at once.
#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct OrgId(Arc<str>);

impl OrgId {
    /// Longest accepted organisation id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates and wraps an organisation id.
    ///
    /// # Errors
    /// [`InputError::OrgId`] when empty, longer than [`OrgId::MAX_LEN`] bytes, or containing
    /// control or invisible formatting characters.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InputError> {
        let id = id.as_ref();
        if !is_plain_id(id, Self::MAX_LEN) {
            return Err(InputError::OrgId { max: Self::MAX_LEN });
        }
        Ok(Self(id.into()))
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    /// An id read back from storage (see [`UserId`]'s `from_stored`).
    pub(crate) fn from_stored(id: &str) -> Result<Self, InputError> {
        if !is_stored_id(id, Self::MAX_LEN) {
            return Err(InputError::OrgId { max: Self::MAX_LEN });
        }
        Ok(Self(id.into()))
    }

    /// The id as a string, exactly as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.0)
    }
}

/// 1 to `max` bytes, no control characters, no invisible formatting characters.
fn is_plain_id(id: &str, max: usize) -> bool {
    is_stored_id(id, max) && !id.chars().any(is_invisible_format)
}

/// 1 to `max` bytes, no control characters (the rule before invisible characters were
/// refused).
fn is_stored_id(id: &str, max: usize) -> bool {
    !id.is_empty() && id.len() <= max && !id.chars().any(char::is_control)
}

/// Writes `id`, with each invisible formatting character as `\u{…}`.
fn write_escaped(f: &mut fmt::Formatter<'_>, id: &str) -> fmt::Result {
    if !id.chars().any(is_invisible_format) {
        return f.write_str(id);
    }
    for c in id.chars() {
        if is_invisible_format(c) {
            write!(f, "{}", c.escape_unicode())?;
        } else {
            fmt::Write::write_char(f, c)?;
        }
    }
    Ok(())
}

/// Characters that change how text around them is shown without showing themselves: the
/// whole Unicode "format" category (Cf: bidirectional embeddings, overrides and isolates,
/// U+061C, zero-width spaces and joiners, U+00AD soft hyphen, word joiners, invisible
/// operators, the byte-order mark, interlinear annotations, tag characters …) and the line
/// and paragraph separators (U+2028, U+2029). Ids never need them; a terminal or log viewer
/// obeys them.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// A random 128-bit identifier, shown as 32 lowercase hex characters: what factor and
/// session ids share. Not secret; never a credential.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $error:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Eq, Hash, Ord, PartialEq, PartialOrd)]
        pub struct $name([u8; 16]);

        impl $name {
            /// Draws a fresh id from the operating system's CSPRNG.
            ///
            /// # Errors
            /// [`CryptoError::Rng`] when the OS RNG fails.
            pub fn generate() -> Result<Self, CryptoError> {
                let mut bytes = [0u8; 16];
                SysRng
                    .try_fill_bytes(&mut bytes)
                    .map_err(|_| CryptoError::Rng)?;
                Ok(Self(bytes))
            }

            /// Parses the 32-character lowercase hex form (as displayed and stored).
            ///
            /// # Errors
            #[doc = concat!("[`", stringify!($error), "`] for anything else.")]
            pub fn parse(text: &str) -> Result<Self, InputError> {
                parse_hex(text).map(Self).ok_or($error)
            }

            /// The raw 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        /// As typed: the 32 hex characters, in the type's name (`SessionId(a754…)`), so an id
        /// copied from a log or the audit trail can be pasted into a command.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }
    };
}

random_id!(
    /// A random 128-bit identifier of one TOTP factor, as 32 lowercase hex characters.
    ///
    /// A new factor id is drawn for every enrolment, so a re-enrolled factor never shares an id
    /// (or its used time steps) with the one it replaces.
    FactorId,
    InputError::FactorId
);

random_id!(
    /// A random 128-bit identifier of one session, as 32 lowercase hex characters.
    ///
    /// The session's public handle: it appears in audit events, session lists and as the DBSC
    /// session identifier, and it names a session to revoke. It is **not** a credential (the
    /// token in the cookie is, and only its hash is stored).
    SessionId,
    InputError::SessionId
);

/// Writes `bytes` as lowercase hex (how ids, and token hashes in SQL stores, are spelled).
pub(crate) fn write_hex(out: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|byte| write!(out, "{byte:02x}"))
}

/// Parses exactly `2 * N` lowercase hex characters; `None` for anything else.
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = (hex_value(*hi)? << 4) | hex_value(*lo)?;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rules() {
        assert!(UserId::new("alice").is_ok());
        assert!(UserId::new("élodie@partner.example").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a\nb").is_err());
        assert!(UserId::new("a\u{0}b").is_err());
        assert!(UserId::new("x".repeat(256)).is_ok());
        assert!(UserId::new("x".repeat(257)).is_err());
    }

    #[test]
    fn ids_refuse_bidi_controls_and_invisible_characters() {
        for crafted in [
            "admin\u{202E}fdp.exe",
            "\u{2066}alice\u{2069}",
            "al\u{200B}ice",
            "alice\u{FEFF}",
            "a\u{2028}b",
            "a\u{061C}b",
            "a\u{E0041}b",
        ] {
            assert_eq!(
                UserId::new(crafted),
                Err(InputError::UserId { max: 256 }),
                "{crafted:?}"
            );
            assert!(OrgId::new(crafted).is_err(), "{crafted:?}");
        }
        // Visible non-ASCII stays welcome.
        assert!(UserId::new("Zoë-Łukasz_مريم").is_ok());
    }

    #[test]
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    fn ids_stored_before_the_rule_load_and_print_escaped() {
        let legacy = UserId::from_stored("admin\u{202E}txt.exe").unwrap();
        assert_eq!(legacy.as_str(), "admin\u{202E}txt.exe");
        assert_eq!(legacy.to_string(), "admin\\u{202e}txt.exe");
        let org = OrgId::from_stored("\u{2067}org").unwrap();
        assert_eq!(org.to_string(), "\\u{2067}org");
        assert!(UserId::from_stored("a\nb").is_err());
        assert_eq!(UserId::new("alice").unwrap().to_string(), "alice");
    }

    #[test]
    fn org_id_rules() {
        assert!(OrgId::new("org-42").is_ok());
        assert_eq!(OrgId::new(""), Err(InputError::OrgId { max: 256 }));
        assert!(OrgId::new("a\tb").is_err());
    }

    #[test]
    fn ids_print_as_typed_in_debug_too() {
        let id = SessionId::generate().unwrap();
        assert_eq!(format!("{id:?}"), format!("SessionId({id})"));
        let factor = FactorId::generate().unwrap();
        assert_eq!(format!("{factor:?}"), format!("FactorId({factor})"));
        assert_eq!(FactorId::parse(&factor.to_string()).unwrap(), factor);
    }

    #[test]
    fn session_id_round_trip() {
        let id = SessionId::generate().unwrap();
        assert_eq!(SessionId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(SessionId::parse("zz"), Err(InputError::SessionId));
    }

    #[test]
    fn factor_id_round_trip() {
        let id = FactorId::generate().unwrap();
        assert_eq!(FactorId::parse(&id.to_string()).unwrap(), id);
        assert_ne!(FactorId::generate().unwrap(), id);
    }

    #[test]
    fn factor_id_rejects_malformed() {
        for bad in [
            "",
            "00",
            &"g".repeat(32),
            &"A".repeat(32),
            &"0".repeat(33),
            "ü",
        ] {
            assert_eq!(FactorId::parse(bad), Err(InputError::FactorId), "{bad:?}");
        }
    }
}
