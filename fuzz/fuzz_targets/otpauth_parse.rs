//! otpauth:// parsing: never panics, and anything it accepts re-builds to a URI that parses
//! back to the same value (so import and export agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use verrou::totp::OtpAuthUri;

fuzz_target!(|text: &str| {
    if let Ok(uri) = OtpAuthUri::parse(text) {
        let rebuilt = uri.to_uri();
        assert_eq!(OtpAuthUri::parse(rebuilt.expose_secret()).unwrap(), uri);
    }
});
