//! build -> parse round trip: every URI verrou builds parses back to exactly what was built;
//! labels it cannot represent are refused when building, never mangled.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use verrou::totp::OtpAuthUri;
use verrou::{Algorithm, TotpParams, TotpSecret};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    issuer: Option<&'a str>,
    account: &'a str,
    secret: &'a [u8],
    algorithm: u8,
    digits: u8,
    period: u16,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(secret) = TotpSecret::from_bytes(input.secret) else {
        return;
    };
    let algorithm =
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(input.algorithm % 3)];
    let Ok(params) = TotpParams::new(algorithm, input.digits, u64::from(input.period)) else {
        return;
    };
    let Ok(uri) = OtpAuthUri::new(input.issuer, input.account, secret, params) else {
        return;
    };
    let text = uri.to_uri();
    let parsed = OtpAuthUri::parse(text.expose_secret()).expect("a built URI must parse");
    assert_eq!(parsed, uri);
});
