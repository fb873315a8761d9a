//! RFC 6238 TOTP: parameters, code computation (HMAC keyed once per secret; totp-rs is the
//! reference the tests and benchmarks hold it to), the constant-time window
//! match, strict code input, `otpauth://` URIs and QR codes.
//!
//! Everything here is pure and synchronous: the time is an argument.

mod code;
mod keyed_mac;
mod qr;
mod uri;

use std::fmt;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

pub use self::code::{CodeInput, MalformedCode};
use self::keyed_mac::KeyedHmac;
pub use self::qr::{qr_png, qr_svg, qr_svg_inline, qr_terminal, QrError};
pub(crate) use self::uri::validate_label;
pub use self::uri::{OtpAuthUri, UriError, MAX_URI_LEN};
use crate::clock::Timestamp;
use crate::leaf_errors::{ConfigError, CryptoError};
use crate::secret::TotpSecret;

/// The HMAC hash function of a TOTP factor.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA-1: the default, and the only one every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs: `SHA1`, `SHA256`, `SHA512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Parses a URI algorithm name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server and the authenticator app share besides the secret: hash, digits, period.
///
/// Construction validates every field, so a `TotpParams` value can always compute codes.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct TotpParams {
    algorithm: Algorithm,
    digits: u8,
    period: u64,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TotpParams {
    /// SHA-1, 6 digits, 30 seconds: what every authenticator app supports.
    pub const DEFAULT: Self = Self {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };
    /// Shortest accepted period in seconds.
    pub const MIN_PERIOD: u64 = 10;
    /// Longest accepted period in seconds.
    pub const MAX_PERIOD: u64 = 300;

    /// Validated parameters.
    ///
    /// # Errors
    /// [`ConfigError::Digits`] outside 6–8, [`ConfigError::Period`] outside
    /// [`TotpParams::MIN_PERIOD`]`..=`[`TotpParams::MAX_PERIOD`].
    pub fn new(algorithm: Algorithm, digits: u8, period_seconds: u64) -> Result<Self, ConfigError> {
        if !(6..=8).contains(&digits) {
            return Err(ConfigError::Digits);
        }
        if !(Self::MIN_PERIOD..=Self::MAX_PERIOD).contains(&period_seconds) {
            return Err(ConfigError::Period {
                min: Self::MIN_PERIOD,
                max: Self::MAX_PERIOD,
            });
        }
        Ok(Self {
            algorithm,
            digits,
            period: period_seconds,
        })
    }

    /// The hash function.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Digits per code (6, 7 or 8).
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Seconds per time step.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The time step that contains `time`.
    pub fn step_at(&self, time: Timestamp) -> u64 {
        time.unix_seconds() / self.period
    }
}

/// The largest accepted skew window, in steps either side of the current one.
pub const MAX_SKEW: u8 = 2;

/// A one-time code: `digits` ASCII digits on the stack, wiped on drop, never printed.
#[derive(Clone)]
pub struct Code {
    bytes: [u8; 8],
    len: usize,
}

impl Code {
    /// The digits as text.
    pub fn expose_secret(&self) -> &str {
        // The buffer only ever holds ASCII digits written by `fmt::Write` below.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for Code {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code([REDACTED])")
    }
}

/// Computes codes for one secret: the HMAC keyed once, each step's code from it.
pub(crate) struct CodeGenerator {
    mac: KeyedHmac,
    params: TotpParams,
    modulus: u32,
}

impl CodeGenerator {
    pub(crate) fn new(secret: &TotpSecret, params: TotpParams) -> Result<Self, CryptoError> {
        let mac = KeyedHmac::new(params.algorithm, secret.expose_bytes())?;
        let modulus = 10u32
            .checked_pow(u32::from(params.digits))
            .ok_or(CryptoError::UnusableSecret)?;
        Ok(Self {
            mac,
            params,
            modulus,
        })
    }

    /// The code of time step `step`, as the digits an app shows (leading zeros kept).
    #[cfg(any(test, feature = "insecure-test-utils"))]
    pub(crate) fn code_at_step(&self, step: u64) -> Result<Code, CryptoError> {
        let value = self.value_at_step(step)?;
        let digits = usize::from(self.params.digits);
        let mut code = Code {
            bytes: [0; 8],
            len: 0,
        };
        fmt::Write::write_fmt(&mut code, format_args!("{value:0digits$}"))
            .map_err(|_| CryptoError::UnusableSecret)?;
        if code.len != digits {
            return Err(CryptoError::UnusableSecret);
        }
        Ok(code)
    }

    /// The code of time step `step` as a number: HMAC of the step, RFC 4226 §5.3 dynamic
    /// truncation, modulo 10^digits. A property test pins it to totp-rs's own `Token` for
    /// every algorithm and digit count.
    pub(crate) fn value_at_step(&self, step: u64) -> Result<u32, CryptoError> {
        Ok(self.mac.truncated(step)? % self.modulus)
    }
}

/// The result of comparing a code with every step of the window.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum WindowMatch {
    /// The code matches a step after `last_step`: the lowest such step, and its drift.
    Fresh { step: u64, drift: i8 },
    /// The code matches only steps at or before `last_step`.
    Used,
    /// The code matches no step of the window.
    NoMatch,
}

/// Compares `input` with the code of every step in `now ± skew`, in constant time with
/// respect to the secret and the input: every candidate is computed and compared, and the
/// result is selected without data-dependent branches, so timing reveals neither whether
/// nor where in the window the code matched.
///
/// `last_step` (public: it is derived from a past time) marks steps that were already used.
pub(crate) fn match_window(
    generator: &CodeGenerator,
    input: &CodeInput,
    now: Timestamp,
    skew: u8,
    last_step: Option<u64>,
) -> Result<WindowMatch, CryptoError> {
    let current = generator.params.step_at(now);
    let first = current.saturating_sub(u64::from(skew));
    let last = current.saturating_add(u64::from(skew));
    let expected = input.value();
    let mut fresh_step = 0u64;
    let mut fresh_found = Choice::from(0);
    let mut used_found = Choice::from(0);
    for step in first..=last {
        // `equal` depends on the secret and the input: combined without branches.
        // Whether a step was already used depends only on public data: a branch is fine.
        let equal = generator.value_at_step(step)?.ct_eq(&expected);
        if last_step.is_none_or(|used| step > used) {
            fresh_step.conditional_assign(&step, equal & !fresh_found);
            fresh_found |= equal;
        } else {
            used_found |= equal;
        }
    }
    if bool::from(fresh_found) {
        let drift = i8::try_from(i128::from(fresh_step) - i128::from(current))
            .map_err(|_| CryptoError::UnusableSecret)?;
        Ok(WindowMatch::Fresh {
            step: fresh_step,
            drift,
        })
    } else if bool::from(used_found) {
        Ok(WindowMatch::Used)
    } else {
        Ok(WindowMatch::NoMatch)
    }
}

/// The code an authenticator app shows at `time`, for tests and demos.
#[cfg(any(test, feature = "insecure-test-utils"))]
pub(crate) fn code_at(
    secret: &TotpSecret,
    params: TotpParams,
    time: Timestamp,
) -> Result<Code, CryptoError> {
    CodeGenerator::new(secret, params)?.code_at_step(params.step_at(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds).unwrap()
    }

    /// RFC 6238 Appendix B: all 18 vectors (8 digits, 30 s period).
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let sha256 = TotpSecret::from_bytes(b"12345678901234567890123456789012").unwrap();
        let sha512 = TotpSecret::from_bytes(
            b"1234567890123456789012345678901234567890123456789012345678901234",
        )
        .unwrap();
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, want1, want256, want512) in vectors {
            for (secret, algorithm, want) in [
                (&sha1, Algorithm::Sha1, want1),
                (&sha256, Algorithm::Sha256, want256),
                (&sha512, Algorithm::Sha512, want512),
            ] {
                let params = TotpParams::new(algorithm, 8, 30).unwrap();
                let code = code_at(secret, params, at(time)).unwrap();
                assert_eq!(code.expose_secret(), want, "{algorithm} at {time}");
            }
        }
    }

    /// RFC 4226 Appendix D: HOTP counters 0–9 are TOTP steps 0–9.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let generator = CodeGenerator::new(&secret, TotpParams::DEFAULT).unwrap();
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            let code = generator.code_at_step(counter as u64).unwrap();
            assert_eq!(code.expose_secret(), *want, "counter {counter}");
        }
    }

    #[test]
    fn params_reject_impossible_settings() {
        assert_eq!(
            TotpParams::new(Algorithm::Sha1, 5, 30),
            Err(ConfigError::Digits)
        );
        assert_eq!(
            TotpParams::new(Algorithm::Sha1, 9, 30),
            Err(ConfigError::Digits)
        );
        assert_eq!(
            TotpParams::new(Algorithm::Sha1, 0, 30),
            Err(ConfigError::Digits)
        );
        assert!(matches!(
            TotpParams::new(Algorithm::Sha1, 6, 0),
            Err(ConfigError::Period { .. })
        ));
        assert!(matches!(
            TotpParams::new(Algorithm::Sha1, 6, 301),
            Err(ConfigError::Period { .. })
        ));
        assert!(TotpParams::new(Algorithm::Sha512, 8, 60).is_ok());
    }

    #[test]
    fn window_reports_step_and_drift() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let params = TotpParams::DEFAULT;
        let generator = CodeGenerator::new(&secret, params).unwrap();
        let now = at(1_700_000_000);
        let current = params.step_at(now);
        for (offset, drift) in [(-1i64, -1i8), (0, 0), (1, 1)] {
            let step = current.checked_add_signed(offset).unwrap();
            let code = generator.code_at_step(step).unwrap();
            let input = CodeInput::parse(code.expose_secret(), 6).unwrap();
            assert_eq!(
                match_window(&generator, &input, now, 1, None).unwrap(),
                WindowMatch::Fresh { step, drift }
            );
            assert_eq!(
                match_window(&generator, &input, now, 1, Some(step)).unwrap(),
                WindowMatch::Used
            );
        }
        let outside = generator.code_at_step(current + 2).unwrap();
        let input = CodeInput::parse(outside.expose_secret(), 6).unwrap();
        assert_eq!(
            match_window(&generator, &input, now, 1, None).unwrap(),
            WindowMatch::NoMatch
        );
        assert!(matches!(
            match_window(&generator, &input, now, 2, None).unwrap(),
            WindowMatch::Fresh { drift: 2, .. }
        ));
    }

    #[test]
    fn window_near_the_epoch_does_not_underflow() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let generator = CodeGenerator::new(&secret, TotpParams::DEFAULT).unwrap();
        let code = generator.code_at_step(0).unwrap();
        let input = CodeInput::parse(code.expose_secret(), 6).unwrap();
        assert_eq!(
            match_window(&generator, &input, Timestamp::EPOCH, 2, None).unwrap(),
            WindowMatch::Fresh { step: 0, drift: 0 }
        );
        // And at the far end of time.
        let end = match_window(&generator, &input, Timestamp::MAX, 2, None).unwrap();
        assert_eq!(end, WindowMatch::NoMatch);
    }

    #[test]
    fn code_debug_is_redacted() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let code = code_at(&secret, TotpParams::DEFAULT, at(59)).unwrap();
        assert_eq!(format!("{code:?}"), "Code([REDACTED])");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn params() -> impl Strategy<Value = TotpParams> {
            (
                prop_oneof![
                    Just(Algorithm::Sha1),
                    Just(Algorithm::Sha256),
                    Just(Algorithm::Sha512)
                ],
                6u8..=8,
                prop_oneof![Just(30u64), Just(60), 10u64..=300],
            )
                .prop_map(|(algorithm, digits, period)| {
                    TotpParams::new(algorithm, digits, period).unwrap()
                })
        }

        proptest! {
            /// A code generated at `t` verifies at `t`, and at neighbouring steps with the
            /// matching drift, across algorithms, digit counts and periods.
            #[test]
            fn generated_code_verifies_at_its_time(
                bytes in proptest::collection::vec(any::<u8>(), 16..=64),
                params in params(),
                time in 0u64..=Timestamp::MAX.unix_seconds(),
                skew in 0u8..=MAX_SKEW,
            ) {
                let secret = TotpSecret::from_bytes(&bytes).unwrap();
                let generator = CodeGenerator::new(&secret, params).unwrap();
                let now = Timestamp::from_unix_seconds(time).unwrap();
                let code = code_at(&secret, params, now).unwrap();
                prop_assert_eq!(code.expose_secret().len(), usize::from(params.digits()));
                let input = CodeInput::parse(code.expose_secret(), params.digits()).unwrap();
                let step = params.step_at(now);
                let got = match_window(&generator, &input, now, skew, None).unwrap();
                // A collision with an earlier step of the window is possible (1 in 10^digits);
                // the lowest matching step wins, so the drift is at most 0.
                match got {
                    WindowMatch::Fresh { step: matched, drift } => {
                        prop_assert!(matched <= step && drift <= 0);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
                // A step at or after this one already used: never fresh.
                let used = match_window(&generator, &input, now, skew, Some(step + u64::from(skew))).unwrap();
                prop_assert_ne!(matches!(used, WindowMatch::Fresh { .. }), true);
            }

            /// verrou's codes (its own keyed HMAC, truncation and formatting) are totp-rs's,
            /// an independent implementation, for every algorithm, digit count and period;
            /// and the numeric path the window compares agrees with the formatted digits.
            #[test]
            fn codes_match_totp_rs_tokens(
                bytes in proptest::collection::vec(any::<u8>(), 16..=64),
                params in params(),
                step in 0u64..=(Timestamp::MAX.unix_seconds() / 300),
            ) {
                let secret = TotpSecret::from_bytes(&bytes).unwrap();
                let generator = CodeGenerator::new(&secret, params).unwrap();
                let text = generator.code_at_step(step).unwrap();
                let reference = totp_rs::Builder::new()
                    .with_algorithm(match params.algorithm() {
                        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
                        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
                        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
                    })
                    .with_digits(params.digits())
                    .with_step_duration(params.period())
                    .with_skew(0)
                    .with_secret(totp_rs::Secret::from(bytes.as_slice()))
                    .build()
                    .unwrap();
                let token = reference.generate(step * params.period());
                prop_assert_eq!(text.expose_secret(), token.to_string());
                let parsed = CodeInput::parse(text.expose_secret(), params.digits()).unwrap();
                prop_assert_eq!(generator.value_at_step(step).unwrap(), parsed.value());
            }

            /// Whatever the input, parsing never panics, and what it accepts is exactly
            /// `digits` ASCII digits once spaces are removed.
            #[test]
            fn code_parsing_is_total_and_strict(input in "\\PC{0,40}|[0-9 ]{0,12}", digits in 0u8..=10) {
                if let Ok(code) = CodeInput::parse(&input, digits) {
                    prop_assert!((6..=8).contains(&digits));
                    let expected: Vec<u8> = input.bytes().filter(|b| *b != b' ').collect();
                    prop_assert_eq!(code.as_bytes(), expected.as_slice());
                    prop_assert_eq!(expected.len(), usize::from(digits));
                    prop_assert!(expected.iter().all(u8::is_ascii_digit));
                }
            }
        }
    }
}
