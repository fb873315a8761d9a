//! Independent implementations agree with verrou: `oathtool` (Debian package oathtool)
//! computes codes that verrou accepts, and two independent QR decoders (`zbarimg` from
//! zbar-tools, and the rqrr crate) read back the exact URI from verrou's PNG.
//!
//! These tests fail, never skip, when a tool is missing: `scripts/test` installs them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub
)]

use std::process::Command;
use std::time::Duration;

use crate::support::{at, config, start_enrollment, user, START};
use secrecy::ExposeSecret;
use verrou::store::MemoryStore;
use verrou::testing::InsecureManualClock;
use verrou::{
    Algorithm, ClientContext, EnrollmentOffer, EnrollmentOutcome, TotpOutcome, TotpParams, Verrou,
};

fn run(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!("`{tool}` could not run ({err}); install it with scripts/test or apt-get")
        });
    assert!(
        output.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The code oathtool computes for `secret_base32` at `time`.
fn oathtool(secret_base32: &str, params: TotpParams, time: u64) -> String {
    let algorithm = format!("--totp={}", params.algorithm().as_str().to_lowercase());
    let digits = format!("--digits={}", params.digits());
    let step = format!("--time-step-size={}s", params.period());
    let now = format!("--now=@{time}");
    run(
        "oathtool",
        &["--base32", &algorithm, &digits, &step, &now, secret_base32],
    )
    .trim()
    .to_owned()
}

#[tokio::test]
async fn oathtool_codes_are_accepted() {
    for (algorithm, digits) in [
        (Algorithm::Sha1, 6),
        (Algorithm::Sha256, 8),
        (Algorithm::Sha512, 7),
    ] {
        let params = TotpParams::new(algorithm, digits, 30).unwrap();
        let clock = InsecureManualClock::new(at(START));
        let verrou = Verrou::new(MemoryStore::new(), config().with_totp_params(params))
            .with_clock(clock.clone());
        let alice = user("alice");
        let ctx = ClientContext::unknown();
        let offer = verrou
            .start_totp_enrollment(&alice, "alice", &ctx)
            .await
            .unwrap();
        let secret = offer.secret_base32().expose_secret().to_owned();

        let code = oathtool(&secret, params, START);
        assert_eq!(code.len(), usize::from(digits));
        let confirmed = verrou
            .finish_totp_enrollment(&alice, &code, &ctx)
            .await
            .unwrap();
        assert!(
            matches!(confirmed, EnrollmentOutcome::Confirmed { .. }),
            "{algorithm}: {confirmed:?}"
        );

        for step in 1..=5u64 {
            clock.advance(Duration::from_secs(30));
            let code = oathtool(&secret, params, START + 30 * step);
            let outcome = verrou.verify_totp(&alice, &code, &ctx).await.unwrap();
            assert!(
                matches!(outcome, TotpOutcome::Accepted(ref a) if a.drift == 0),
                "{algorithm} step {step}: {outcome:?}"
            );
        }
        // oathtool's code for the previous step: inside the window but already used.
        let old = oathtool(&secret, params, START + 120);
        assert_eq!(
            verrou.verify_totp(&alice, &old, &ctx).await.unwrap(),
            TotpOutcome::Replayed
        );
    }
}

#[test]
fn oathtool_agrees_with_the_rfc6238_secret() {
    // Sanity check of the oathtool invocation itself against RFC 6238 Appendix B.
    let params = TotpParams::new(Algorithm::Sha1, 8, 30).unwrap();
    assert_eq!(
        oathtool("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", params, 59),
        "94287082"
    );
}

/// An enrolment offer with a realistic label.
async fn marie_offer() -> EnrollmentOffer {
    let verrou = Verrou::new(MemoryStore::new(), config());
    start_enrollment(&verrou, &user("marie"), "marie.dupont@formation-exemple.fr")
        .await
        .0
}

async fn offer_png_and_uri() -> (Vec<u8>, String) {
    let offer = marie_offer().await;
    let png = offer.qr_png().unwrap().expose_secret().to_vec();
    (png, offer.otpauth_uri().expose_secret().to_owned())
}

#[tokio::test]
async fn zbarimg_reads_the_exact_uri_from_the_png() {
    let (png, uri) = offer_png_and_uri().await;
    let dir = std::env::temp_dir().join(format!("verrou-qr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("qr.png");
    std::fs::write(&path, &png).unwrap();
    let decoded = run("zbarimg", &["--quiet", "--raw", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(decoded.trim_end_matches('\n'), uri);
}

#[tokio::test]
async fn rqrr_reads_the_exact_uri_from_the_png() {
    let (png, uri) = offer_png_and_uri().await;
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (width, height) = (info.width as usize, info.height as usize);
    assert_eq!(
        rqrr_decode(width, height, |x, y| pixels[y * width + x]),
        uri
    );
}

/// Decodes a QR image with rqrr, from a greyscale pixel function.
fn rqrr_decode(width: usize, height: usize, pixel: impl FnMut(usize, usize) -> u8) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, pixel);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR symbol");
    grids[0].decode().unwrap().1
}

/// Rasterises verrou's SVG (one background rect, one path of `M x y h w v h H x V y` rects)
/// and decodes it: the SVG carries the same URI, not just "some SVG".
#[tokio::test]
async fn the_svg_decodes_to_the_exact_uri() {
    let offer = marie_offer().await;
    let svg = offer.qr_svg().unwrap();
    let svg = svg.expose_secret();
    let attr = |name: &str| -> usize {
        let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[start..start + svg[start..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    let (width, height) = (attr("width"), attr("height"));
    let path_start = svg.find("<path").unwrap();
    let d_start = path_start + svg[path_start..].find(" d=\"").unwrap() + 4;
    let d = &svg[d_start..d_start + svg[d_start..].find('"').unwrap()];
    let mut dark = vec![false; width * height];
    for rect in d.split('M').filter(|r| !r.is_empty()) {
        // "x y" "h" w "v" h "H" x "V" y
        let numbers: Vec<usize> = rect
            .split(|c: char| c == ' ' || c.is_ascii_alphabetic())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let [x, y, w, h, ..] = numbers[..] else {
            panic!("unexpected path segment {rect}")
        };
        for row in y..y + h {
            for column in x..x + w {
                dark[row * width + column] = true;
            }
        }
    }
    let decoded = rqrr_decode(
        width,
        height,
        |x, y| if dark[y * width + x] { 0 } else { 255 },
    );
    assert_eq!(decoded, offer.otpauth_uri().expose_secret());
}
