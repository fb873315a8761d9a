//! Strict parsing of a code typed by a person.
//!
//! # The rule
//! ASCII spaces (U+0020) are removed anywhere; what remains must be exactly `digits` ASCII
//! digits `0–9`. Nothing else is accepted: no sign, no other whitespace (tab, newline,
//! no-break or ideographic space), no control character, no non-ASCII digit (Arabic-Indic
//! `٠١٢`, full-width `０１２`, …), and no input longer than [`CodeInput::MAX_INPUT_LEN`] bytes.
//! Leading zeros are significant: `005924` is a 6-digit code and `5924` is too short.
//! A rejected input never reaches the HMAC and never changes stored state.

use std::fmt;

use zeroize::Zeroize;

/// A syntactically valid code: `digits` ASCII digits, wiped on drop, never printed.
#[derive(Clone)]
pub struct CodeInput {
    digits: [u8; 8],
    len: u8,
}

/// Why an input is not a code. The reason never contains the input.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedCode {
    /// More than [`CodeInput::MAX_INPUT_LEN`] bytes.
    #[error("the code is far too long")]
    Oversize,
    /// A byte that is neither an ASCII digit nor an ASCII space.
    #[error("the code may only contain the digits 0-9 and spaces")]
    InvalidCharacter,
    /// The number of digits differs from what the factor uses.
    #[error("the code has the wrong number of digits")]
    WrongLength,
}

impl CodeInput {
    /// The longest input looked at, in bytes (spaces included).
    pub const MAX_INPUT_LEN: usize = 32;

    /// Parses `input` as a code of `digits` digits (see the module docs for the rule).
    ///
    /// # Errors
    /// A [`MalformedCode`] reason; [`MalformedCode::WrongLength`] whatever the input when
    /// `digits` is not 6, 7 or 8, since no code has another length.
    pub fn parse(input: &str, digits: u8) -> Result<Self, MalformedCode> {
        if input.len() > Self::MAX_INPUT_LEN {
            return Err(MalformedCode::Oversize);
        }
        if !(6..=8).contains(&digits) {
            return Err(MalformedCode::WrongLength);
        }
        let mut code = Self {
            digits: [0; 8],
            len: 0,
        };
        let wanted = usize::from(digits).min(code.digits.len());
        let mut len = 0usize;
        for byte in input.bytes() {
            match byte {
                b' ' => {}
                b'0'..=b'9' => {
                    // One digit too many is already the wrong length.
                    let slot = code.digits.get_mut(len).filter(|_| len < wanted);
                    *slot.ok_or(MalformedCode::WrongLength)? = byte;
                    len += 1;
                }
                _ => return Err(MalformedCode::InvalidCharacter),
            }
        }
        if len != usize::from(digits) {
            return Err(MalformedCode::WrongLength);
        }
        code.len = digits;
        Ok(code)
    }

    /// Rejects input that can never be a code of 6–8 digits, before anything is loaded.
    pub(crate) fn precheck(input: &str) -> Result<(), MalformedCode> {
        if input.len() > Self::MAX_INPUT_LEN {
            return Err(MalformedCode::Oversize);
        }
        Ok(())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.digits.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The code as a number. With the length fixed by `parse`, equal numbers mean equal codes
    /// (leading zeros included).
    pub(crate) fn value(&self) -> u32 {
        self.as_bytes().iter().fold(0u32, |acc, d| {
            acc.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))
        })
    }
}

impl Drop for CodeInput {
    fn drop(&mut self) {
        self.digits.zeroize();
    }
}

impl fmt::Debug for CodeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeInput([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_and_ascii_spaces() {
        assert_eq!(CodeInput::parse("123456", 6).unwrap().as_bytes(), b"123456");
        assert_eq!(
            CodeInput::parse("123 456", 6).unwrap().as_bytes(),
            b"123456"
        );
        assert_eq!(
            CodeInput::parse(" 1 2 3 4 5 6 ", 6).unwrap().as_bytes(),
            b"123456"
        );
        assert_eq!(
            CodeInput::parse("12345678", 8).unwrap().as_bytes(),
            b"12345678"
        );
        assert_eq!(CodeInput::parse("005924", 6).unwrap().as_bytes(), b"005924");
    }

    #[test]
    fn leading_zeros_matter() {
        assert_eq!(
            CodeInput::parse("5924", 6).unwrap_err(),
            MalformedCode::WrongLength
        );
        assert_eq!(
            CodeInput::parse("0005924", 6).unwrap_err(),
            MalformedCode::WrongLength
        );
    }

    #[test]
    fn rejects_every_malformed_class() {
        let invalid = [
            "+12345",         // sign
            "-12345",         // sign
            "12345\t6",       // tab
            "123456\n",       // newline
            "123456\r",       // carriage return
            "\u{0}123456",    // NUL
            "123\u{a0}456",   // no-break space
            "123\u{3000}456", // ideographic space
            "١٢٣٤٥٦",         // Arabic-Indic digits
            "۱۲۳۴۵۶",         // Extended Arabic-Indic digits
            "１２３４５６",   // full-width digits
            "१२३४५६",         // Devanagari digits
            "12345a",         // letter
            "12.456",         // punctuation
            "12_456",         // underscore
            "1e5678",         // exponent
            "0x1234",         // hex prefix
        ];
        for input in invalid {
            let got = CodeInput::parse(input, 6).unwrap_err();
            assert!(
                matches!(
                    got,
                    MalformedCode::InvalidCharacter | MalformedCode::Oversize
                ),
                "{input:?} gave {got:?}"
            );
        }
        for input in ["", "     ", "12345", "1234567", "123 4567"] {
            assert_eq!(
                CodeInput::parse(input, 6).unwrap_err(),
                MalformedCode::WrongLength,
                "{input:?}"
            );
        }
        assert_eq!(
            CodeInput::parse(&"1".repeat(33), 6).unwrap_err(),
            MalformedCode::Oversize
        );
        assert_eq!(
            CodeInput::parse(&" ".repeat(1 << 20), 6).unwrap_err(),
            MalformedCode::Oversize
        );
    }

    /// Found by the `code_input` fuzz target: a digit count outside 6–8 is never a code.
    #[test]
    fn impossible_digit_counts_accept_nothing() {
        for digits in [0u8, 1, 5, 9, 10, 255] {
            let input = "1".repeat(usize::from(digits).min(32));
            assert_eq!(
                CodeInput::parse(&input, digits).unwrap_err(),
                MalformedCode::WrongLength
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let code = CodeInput::parse("123456", 6).unwrap();
        assert_eq!(format!("{code:?}"), "CodeInput([REDACTED])");
    }
}
