//! `otpauth://totp/` URIs (the Key URI format authenticator apps scan).
//!
//! Built as `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=…&digits=…&period=…`
//! with issuer and account percent-encoded (a space is `%20`; everything but `A–Z a–z 0–9 - . _ ~`
//! is encoded). Neither may contain `:` or control characters, nor start or end with
//! whitespace: such labels are rejected when building, so `parse(build(x)) == x`.
//!
//! Parsing is strict: malformed percent-escapes, invalid UTF-8, duplicate parameters,
//! a label issuer that disagrees with the `issuer` parameter, and out-of-range parameters are
//! typed errors. Unknown parameters (such as `image`) are ignored.

use std::fmt::Write as _;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{Algorithm, TotpParams};
use crate::leaf_errors::InputError;
use crate::secret::TotpSecret;

/// Characters percent-encoded in labels and parameter values: all but RFC 3986 unreserved.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub use crate::leaf_errors::{UriError, MAX_URI_LEN};
const MAX_ISSUER_LEN: usize = 128;
const MAX_ACCOUNT_LEN: usize = 256;
const MAX_PARAMETERS: usize = 16;

/// A parsed or built `otpauth://totp/` URI. `Debug` redacts the secret.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct OtpAuthUri {
    issuer: Option<String>,
    account: String,
    secret: TotpSecret,
    params: TotpParams,
}

impl OtpAuthUri {
    /// A URI for `account` at `issuer`.
    ///
    /// # Errors
    /// [`InputError::Label`] when the issuer or account cannot be a label (see module docs).
    pub fn new(
        issuer: Option<&str>,
        account: &str,
        secret: TotpSecret,
        params: TotpParams,
    ) -> Result<Self, InputError> {
        if let Some(issuer) = issuer {
            validate_label("issuer", issuer, MAX_ISSUER_LEN)?;
        }
        validate_label("account name", account, MAX_ACCOUNT_LEN)?;
        Ok(Self {
            issuer: issuer.map(str::to_owned),
            account: account.to_owned(),
            secret,
            params,
        })
    }

    /// The issuer (service name shown in the app), if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name shown in the app.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The shared secret.
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// Hash, digits and period.
    pub fn params(&self) -> TotpParams {
        self.params
    }

    /// Splits the URI into its secret and parameters.
    pub fn into_parts(self) -> (TotpSecret, TotpParams) {
        (self.secret, self.params)
    }

    /// The URI text. It contains the secret, so it is returned as a [`SecretString`].
    pub fn to_uri(&self) -> SecretString {
        let mut uri = Zeroizing::new(String::with_capacity(160));
        uri.push_str("otpauth://totp/");
        if let Some(issuer) = &self.issuer {
            uri.extend(utf8_percent_encode(issuer, COMPONENT));
            uri.push(':');
        }
        uri.extend(utf8_percent_encode(&self.account, COMPONENT));
        uri.push_str("?secret=");
        uri.push_str(self.secret.to_base32().expose_secret());
        if let Some(issuer) = &self.issuer {
            uri.push_str("&issuer=");
            uri.extend(utf8_percent_encode(issuer, COMPONENT));
        }
        // Writing to a String cannot fail.
        let _ = write!(
            uri,
            "&algorithm={}&digits={}&period={}",
            self.params.algorithm(),
            self.params.digits(),
            self.params.period()
        );
        SecretString::from(uri.as_str())
    }

    /// Parses an `otpauth://totp/` URI (for importing a factor from another system).
    ///
    /// # Errors
    /// A [`UriError`] naming the rule that was broken; it never contains the secret.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        if text.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        let rest = strip_prefix_ignore_case(text, "otpauth://").ok_or(UriError::NotOtpAuth)?;
        let (kind, rest) = rest.split_once('/').ok_or(UriError::NotOtpAuth)?;
        if !kind.eq_ignore_ascii_case("totp") {
            return Err(UriError::UnsupportedType);
        }
        if rest.contains('#') {
            return Err(UriError::Malformed);
        }
        let (label, query) = rest.split_once('?').ok_or(UriError::MissingSecret)?;
        let label = decode(label)?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(issuer.to_owned()), account.trim_start_matches(' ')),
            None => (None, label.as_str()),
        };

        let mut secret = None;
        let mut issuer_param = None;
        let mut algorithm = None;
        let mut digits = None;
        let mut period = None;
        for (index, pair) in query.split('&').enumerate() {
            if index >= MAX_PARAMETERS {
                return Err(UriError::Malformed);
            }
            let (key, value) = pair.split_once('=').ok_or(UriError::Malformed)?;
            let slot = match key {
                "secret" => &mut secret,
                "issuer" => &mut issuer_param,
                "algorithm" => &mut algorithm,
                "digits" => &mut digits,
                "period" => &mut period,
                _ if key.is_empty() => return Err(UriError::Malformed),
                _ => continue,
            };
            if slot.is_some() {
                return Err(UriError::DuplicateParameter);
            }
            *slot = Some(Zeroizing::new(decode(value)?));
        }

        let secret = secret.ok_or(UriError::MissingSecret)?;
        let secret = TotpSecret::from_base32(&secret).map_err(UriError::Secret)?;
        let algorithm = match algorithm {
            Some(name) => {
                Algorithm::from_name(&name).ok_or(UriError::InvalidParameter("algorithm"))?
            }
            None => Algorithm::Sha1,
        };
        let digits = match digits {
            Some(text) => parse_number(&text, 1).ok_or(UriError::InvalidParameter("digits"))?,
            None => 6,
        };
        let period = match period {
            Some(text) => parse_number(&text, 3).ok_or(UriError::InvalidParameter("period"))?,
            None => 30,
        };
        let digits = u8::try_from(digits).map_err(|_| UriError::InvalidParameter("digits"))?;
        let params = TotpParams::new(algorithm, digits, period).map_err(|err| match err {
            crate::leaf_errors::ConfigError::Digits => UriError::InvalidParameter("digits"),
            _ => UriError::InvalidParameter("period"),
        })?;

        let issuer = match (label_issuer, issuer_param) {
            (Some(label), Some(param)) if label != param.as_str() => {
                return Err(UriError::IssuerMismatch)
            }
            (Some(label), _) => Some(label),
            (None, Some(param)) => Some(param.to_string()),
            (None, None) => None,
        };
        Self::new(issuer.as_deref(), account, secret, params).map_err(|err| match err {
            InputError::Label { field, .. } => UriError::InvalidLabel(field),
            _ => UriError::Malformed,
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// Strict percent-decoding: every `%` starts a two-hex-digit escape; the result is UTF-8.
fn decode(component: &str) -> Result<String, UriError> {
    let bytes = component.as_bytes();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let valid = bytes
                .get(index + 1..index + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return Err(UriError::BadPercentEncoding);
            }
            index += 3;
        } else {
            index += 1;
        }
    }
    percent_decode_str(component)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| UriError::NotUtf8)
}

/// ASCII digits only, at most `max_len` of them.
fn parse_number(text: &str, max_len: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub(crate) fn validate_label(
    field: &'static str,
    text: &str,
    max: usize,
) -> Result<(), InputError> {
    let invalid = text.is_empty()
        || text.len() > max
        || text.contains(':')
        || text.chars().any(char::is_control)
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace);
    if invalid {
        return Err(InputError::Label { field, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretParseError;

    fn secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn builds_the_key_uri_format() {
        let uri = OtpAuthUri::new(
            Some("Portail Partenaires"),
            "marie dupont@formation.example",
            secret(),
            TotpParams::DEFAULT,
        )
        .unwrap();
        assert_eq!(
            uri.to_uri().expose_secret(),
            "otpauth://totp/Portail%20Partenaires:marie%20dupont%40formation.example\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Portail%20Partenaires\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn parses_what_other_issuers_write() {
        let parsed = OtpAuthUri::parse(
            "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ\
             &issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
        )
        .unwrap();
        assert_eq!(parsed.issuer(), Some("ACME Co"));
        assert_eq!(parsed.account(), "john.doe@email.com");
        assert_eq!(parsed.params(), TotpParams::DEFAULT);

        let minimal =
            OtpAuthUri::parse("otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
                .unwrap();
        assert_eq!(minimal.issuer(), None);
        assert_eq!(minimal.account(), "alice");
        assert_eq!(minimal.secret(), &secret());

        let spaced = OtpAuthUri::parse(
            "OTPAUTH://TOTP/Example:%20%20alice?secret=gezdgnbvgy3tqojqgezdgnbvgy3tqojq&digits=8&algorithm=sha256&period=60&image=x",
        )
        .unwrap();
        assert_eq!(spaced.issuer(), Some("Example"));
        assert_eq!(spaced.account(), "alice");
        assert_eq!(
            spaced.params(),
            TotpParams::new(Algorithm::Sha256, 8, 60).unwrap()
        );
    }

    #[test]
    fn rejects_malformed_uris() {
        let s = "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let cases: Vec<(String, UriError)> = vec![
            ("http://totp/a?x".into(), UriError::NotOtpAuth),
            ("otpauth:totp/a".into(), UriError::NotOtpAuth),
            (
                format!("otpauth://hotp/a?{s}&counter=1"),
                UriError::UnsupportedType,
            ),
            ("otpauth://totp/a".into(), UriError::MissingSecret),
            ("otpauth://totp/a?issuer=x".into(), UriError::MissingSecret),
            (
                format!("otpauth://totp/a%zz?{s}"),
                UriError::BadPercentEncoding,
            ),
            (
                format!("otpauth://totp/a%4?{s}"),
                UriError::BadPercentEncoding,
            ),
            (format!("otpauth://totp/a%ff?{s}"), UriError::NotUtf8),
            (
                format!("otpauth://totp/a?{s}&{s}"),
                UriError::DuplicateParameter,
            ),
            (
                format!("otpauth://totp/a?{s}&digits=9"),
                UriError::InvalidParameter("digits"),
            ),
            (
                format!("otpauth://totp/a?{s}&digits=+6"),
                UriError::InvalidParameter("digits"),
            ),
            (
                format!("otpauth://totp/a?{s}&period=0"),
                UriError::InvalidParameter("period"),
            ),
            (
                format!("otpauth://totp/a?{s}&period=99999999999999999999"),
                UriError::InvalidParameter("period"),
            ),
            (
                format!("otpauth://totp/a?{s}&algorithm=MD5"),
                UriError::InvalidParameter("algorithm"),
            ),
            (
                format!("otpauth://totp/X:a?{s}&issuer=Y"),
                UriError::IssuerMismatch,
            ),
            (
                format!("otpauth://totp/X:a:b?{s}"),
                UriError::InvalidLabel("account name"),
            ),
            (
                format!("otpauth://totp/X:a%0Ab?{s}"),
                UriError::InvalidLabel("account name"),
            ),
            (
                format!("otpauth://totp/?{s}"),
                UriError::InvalidLabel("account name"),
            ),
            (format!("otpauth://totp/a?{s}#frag"), UriError::Malformed),
            (
                format!("otpauth://totp/a?{s}&noequals"),
                UriError::Malformed,
            ),
            (format!("otpauth://totp/a?{s}&=x"), UriError::Malformed),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP".into(),
                UriError::Secret(SecretParseError::TooShort { bits: 80 }),
            ),
            (
                format!("otpauth://totp/{}?{s}", "a".repeat(MAX_URI_LEN)),
                UriError::TooLong,
            ),
            (
                format!("otpauth://totp/a?{s}{}", "&x=1".repeat(20)),
                UriError::Malformed,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(OtpAuthUri::parse(&input), Err(want), "{input}");
        }
    }

    #[test]
    fn labels_that_would_break_the_uri_are_rejected() {
        for bad in ["", "a:b", " lead", "trail ", "new\nline", "tab\t"] {
            assert!(
                OtpAuthUri::new(Some(bad), "alice", secret(), TotpParams::DEFAULT).is_err(),
                "{bad:?}"
            );
            assert!(
                OtpAuthUri::new(Some("X"), bad, secret(), TotpParams::DEFAULT).is_err(),
                "{bad:?}"
            );
        }
        // Characters with a URI meaning are encoded, not rejected.
        let tricky = "a&b=c?d#e%f/g+h";
        let uri = OtpAuthUri::new(Some(tricky), tricky, secret(), TotpParams::DEFAULT).unwrap();
        assert_eq!(
            OtpAuthUri::parse(uri.to_uri().expose_secret()).unwrap(),
            uri
        );
    }

    #[test]
    fn debug_and_errors_redact_the_secret() {
        let uri = OtpAuthUri::new(Some("X"), "alice", secret(), TotpParams::DEFAULT).unwrap();
        let shown = format!("{uri:?}");
        assert!(!shown.contains("GEZDGNBV"), "{shown}");
        assert!(!shown.contains("12345678901234567890"), "{shown}");
        let err = OtpAuthUri::parse("otpauth://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ!")
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("GEZDGNBV"));
    }
}
