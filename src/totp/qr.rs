//! QR codes of `otpauth://` URIs, as SVG and PNG.
//!
//! The payload is secret (it contains the TOTP secret), so the images are returned wrapped
//! in secrecy types that are wiped on drop and redacted in `Debug`.

pub use crate::leaf_errors::QrError;
use qrcode::{Color, EcLevel, QrCode};
use secrecy::{SecretSlice, SecretString};

/// Pixels per QR module in PNG output.
const PNG_MODULE_PIXELS: usize = 8;
/// Light modules around the symbol (ISO/IEC 18004 asks for 4).
const QUIET_ZONE_MODULES: usize = 4;

fn encode(data: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|_| QrError::DataTooLong)
}

/// An SVG image of a QR code holding `data`, at least 240 px wide.
///
/// # Errors
/// [`QrError::DataTooLong`].
pub fn qr_svg(data: &str) -> Result<SecretString, QrError> {
    let code = encode(data)?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok(SecretString::from(svg))
}

/// Like [`qr_svg`], without the XML prolog: the `<svg>` element alone, to place inside HTML.
///
/// # Errors
/// [`QrError::DataTooLong`].
pub fn qr_svg_inline(data: &str) -> Result<SecretString, QrError> {
    use secrecy::ExposeSecret as _;
    let svg = qr_svg(data)?;
    let text = svg.expose_secret();
    let start = text.find("<svg").unwrap_or(0);
    Ok(SecretString::from(
        text.get(start..).unwrap_or(text).to_owned(),
    ))
}

/// A QR code holding `data` as Unicode half blocks, for a terminal (dark on light, with
/// the quiet zone).
///
/// # Errors
/// [`QrError::DataTooLong`].
pub fn qr_terminal(data: &str) -> Result<SecretString, QrError> {
    let code = encode(data)?;
    let text = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    Ok(SecretString::from(text))
}

/// A greyscale PNG image of a QR code holding `data`, 8 px per module with a 4-module
/// quiet zone.
///
/// # Errors
/// [`QrError::DataTooLong`], or [`QrError::Png`] if the encoder fails.
pub fn qr_png(data: &str) -> Result<SecretSlice<u8>, QrError> {
    let code = encode(data)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side_modules = modules + 2 * QUIET_ZONE_MODULES;
    let side = side_modules * PNG_MODULE_PIXELS;
    let mut pixels = vec![255u8; side * side];
    for (row, line) in pixels.chunks_exact_mut(side).enumerate() {
        let y = row / PNG_MODULE_PIXELS;
        for (column, pixel) in line.iter_mut().enumerate() {
            let x = column / PNG_MODULE_PIXELS;
            let dark = x
                .checked_sub(QUIET_ZONE_MODULES)
                .zip(y.checked_sub(QUIET_ZONE_MODULES))
                .filter(|&(x, y)| x < modules && y < modules)
                .and_then(|(x, y)| colors.get(y * modules + x))
                .is_some_and(|color| *color == Color::Dark);
            if dark {
                *pixel = 0;
            }
        }
    }
    let side = u32::try_from(side).map_err(|_| QrError::DataTooLong)?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|_| QrError::Png)?;
    writer.write_image_data(&pixels).map_err(|_| QrError::Png)?;
    writer.finish().map_err(|_| QrError::Png)?;
    zeroize::Zeroize::zeroize(&mut pixels);
    Ok(SecretSlice::from(out))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn png_and_svg_are_well_formed() {
        let png = qr_png("otpauth://totp/X:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert!(png.expose_secret().starts_with(b"\x89PNG\r\n\x1a\n"));
        let svg = qr_svg("otpauth://totp/X:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert!(svg.expose_secret().contains("<svg"));
        assert_eq!(format!("{svg:?}"), "SecretBox<str>([REDACTED])");
        let text =
            qr_terminal("otpauth://totp/X:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert!(text.expose_secret().lines().count() > 10);
    }

    #[test]
    fn oversize_data_is_an_error() {
        assert_eq!(qr_png(&"x".repeat(5000)).unwrap_err(), QrError::DataTooLong);
        assert_eq!(qr_svg(&"x".repeat(5000)).unwrap_err(), QrError::DataTooLong);
        assert_eq!(
            qr_terminal(&"x".repeat(5000)).unwrap_err(),
            QrError::DataTooLong
        );
    }
}
