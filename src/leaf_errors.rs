//! The primitives' errors, on the ground floor: each names what was wrong with an input or a
//! setting, never the input itself. The aggregate [`crate::Error`] (`error.rs`) wraps them,
//! so it sits above every module that returns one of these; each is also reachable where it
//! is used (`verrou::error::ConfigError`, `verrou::totp::UriError`, …).

/// Longest URI [`OtpAuthUri::parse`](crate::totp::OtpAuthUri::parse) looks at.
pub const MAX_URI_LEN: usize = 2048;

/// Input that verrou refuses, with the reason. Never echoes the input itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A user identifier is empty, too long or contains control characters.
    #[error("user id must be 1 to {max} bytes without control characters")]
    UserId {
        /// The maximum length in bytes.
        max: usize,
    },
    /// An organisation identifier is empty, too long or contains control characters.
    #[error("organisation id must be 1 to {max} bytes without control characters")]
    OrgId {
        /// The maximum length in bytes.
        max: usize,
    },
    /// A factor identifier is not 32 lowercase hexadecimal characters.
    #[error("factor id must be 32 lowercase hexadecimal characters")]
    FactorId,
    /// A session identifier is not 32 lowercase hexadecimal characters.
    #[error("session id must be 32 lowercase hexadecimal characters")]
    SessionId,
    /// An issuer or account name cannot be put in an `otpauth://` label.
    #[error("{field} must be 1 to {max} bytes, without ':' or control characters, and not start or end with a space")]
    Label {
        /// Which part of the label: `issuer` or `account name`.
        field: &'static str,
        /// The maximum length in bytes.
        max: usize,
    },
    /// A Base32 secret could not be imported.
    #[error(transparent)]
    Secret(#[from] SecretParseError),
    /// An `otpauth://` URI could not be parsed.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// A QR code could not be rendered.
    #[error(transparent)]
    Qr(#[from] QrError),
}

/// A setting that is impossible, or so permissive that it weakens the factor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// TOTP codes have 6 to 8 digits (RFC 4226 §5.3).
    #[error("digits must be 6, 7 or 8")]
    Digits,
    /// The period is out of the supported range.
    #[error("period must be between {min} and {max} seconds")]
    Period {
        /// Smallest period in seconds.
        min: u64,
        /// Largest period in seconds.
        max: u64,
    },
    /// The skew window accepts so many steps that it weakens the factor.
    #[error("skew window must be at most ±{max} steps")]
    Skew {
        /// Largest accepted skew in steps.
        max: u8,
    },
    /// A generated secret must have at least 128 bits.
    #[error("secret length must be between {min} and {max} bytes")]
    SecretLength {
        /// Minimum length in bytes.
        min: usize,
        /// Maximum length in bytes.
        max: usize,
    },
    /// The throttling policy is inconsistent or too permissive.
    #[error("throttle policy: {0}")]
    Throttle(&'static str),
    /// A duration setting is zero or absurdly long.
    #[error("{0} is out of range")]
    Duration(&'static str),
    /// A recovery-code setting is out of range.
    #[error("recovery codes: {0}")]
    Recovery(&'static str),
    /// A session setting is out of range or unusable.
    #[error("sessions: {0}")]
    Session(&'static str),
    /// The issuer shown in authenticator apps is not a valid label.
    #[error("issuer: {0}")]
    Issuer(InputError),
}

/// A cryptographic failure: never caused by a wrong code, always worth an alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Rng,
    /// A stored secret or its parameters cannot produce a code.
    #[error("a stored TOTP secret or its parameters are unusable")]
    UnusableSecret,
    /// A stored recovery-code hash is malformed or asks for parameters outside verrou's
    /// bounds (see [`StoredHashError`]); nothing was hashed.
    #[error("a stored recovery-code hash is unusable: {0}")]
    StoredHash(StoredHashError),
    /// A recovery-code hash could not be computed.
    #[error("a recovery-code hash could not be computed")]
    Hashing,
}

/// A stored hash that verrou will not use.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoredHashError {
    /// Not a PHC string.
    #[error("the stored recovery-code hash is not a PHC string")]
    Format,
    /// Not argon2id version 19.
    #[error("the stored recovery-code hash is not argon2id v19")]
    Algorithm,
    /// Memory, passes, lanes, salt or output outside verrou's bounds (a tampered row asking
    /// for gigabytes or billions of passes).
    #[error("the stored recovery-code hash has parameters outside verrou's bounds")]
    Parameters,
}

/// Why a secret could not be imported. Never contains the secret or a character of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretParseError {
    /// Nothing but spaces and padding.
    #[error("the secret is empty")]
    Empty,
    /// A character outside `A–Z`, `a–z`, `2–7`, space and trailing `=`.
    #[error("the secret has a character that is not Base32 at byte {position}")]
    InvalidCharacter {
        /// Byte offset in the input.
        position: usize,
    },
    /// `=` padding followed by more Base32 characters.
    #[error("the secret has '=' padding before its end (byte {position})")]
    MisplacedPadding {
        /// Byte offset of the character after the padding.
        position: usize,
    },
    /// The number of Base32 characters cannot encode whole bytes.
    #[error("the secret has a Base32 length that cannot encode whole bytes")]
    InvalidLength,
    /// Fewer than 128 bits.
    #[error("the secret has {bits} bits; at least 128 are required")]
    TooShort {
        /// Bits in the decoded secret.
        bits: usize,
    },
    /// More than 512 bits, or more text than any secret needs.
    #[error("the secret is longer than verrou accepts")]
    TooLong,
}

/// Why an `otpauth://` URI was refused. Never contains the URI or the secret.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Longer than any real otpauth URI.
    #[error("the URI is longer than {MAX_URI_LEN} bytes")]
    TooLong,
    /// Not an `otpauth://TYPE/LABEL` URI.
    #[error("not an otpauth:// URI")]
    NotOtpAuth,
    /// An `otpauth://hotp/` (or other) URI: only TOTP is supported.
    #[error("only otpauth://totp/ URIs are supported")]
    UnsupportedType,
    /// A stray `#`, an empty or duplicated key, a parameter without `=`, or too many parameters.
    #[error("the URI is malformed")]
    Malformed,
    /// A `%` not followed by two hexadecimal digits.
    #[error("the URI has an invalid percent-escape")]
    BadPercentEncoding,
    /// A decoded component is not UTF-8.
    #[error("the URI decodes to invalid UTF-8")]
    NotUtf8,
    /// No `secret` parameter.
    #[error("the URI has no secret")]
    MissingSecret,
    /// A parameter appears twice.
    #[error("the URI repeats a parameter")]
    DuplicateParameter,
    /// The label's issuer differs from the `issuer` parameter.
    #[error("the label issuer and the issuer parameter differ")]
    IssuerMismatch,
    /// The issuer or account name is not a valid label.
    #[error("the URI has an invalid {0}")]
    InvalidLabel(&'static str),
    /// A parameter value is out of range or unknown.
    #[error("the URI has an invalid {0} parameter")]
    InvalidParameter(&'static str),
    /// The secret is not a valid Base32 secret.
    #[error("the URI secret is invalid: {0}")]
    Secret(SecretParseError),
}

/// A QR code could not be produced.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The data does not fit in a QR code.
    #[error("the data does not fit in a QR code")]
    DataTooLong,
    /// The PNG encoder failed.
    #[error("the PNG encoder failed")]
    Png,
}
