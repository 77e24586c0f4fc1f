//! RFC 6238 time-based one-time passwords, as authenticator apps implement them: HMAC-SHA1,
//! 6 digits, 30-second steps, a 160-bit secret shown as base32 or as an `otpauth://` QR code.
//!
//! The HOTP arithmetic is totp-rs (no default features: no clock, no QR, no URL parser); this
//! module adds the policy: which parameters, the ±1 step window, refusing replays, the URI and
//! the QR code.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::{AuthError, Result, random};

pub const DIGITS: u8 = 6;
pub const STEP_SECONDS: u64 = 30;
/// 160 bits: RFC 4226 §4 recommends it, and it is HMAC-SHA1's block-friendly key size.
const SECRET_BYTES: usize = 20;
/// RFC 4226 §4's floor (128 bits), for secrets read back.
const MIN_SECRET_BYTES: usize = 16;
/// Steps accepted either side of the current one, for clock drift and typing time
/// (RFC 6238 §5.2 recommends one).
const WINDOW: u64 = 1;

/// A TOTP shared secret. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret {
    bytes: Vec<u8>,
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// A fresh 160-bit secret from the operating system's generator.
    pub fn generate() -> Result<Self> {
        Ok(Self { bytes: random::bytes::<SECRET_BYTES>()?.to_vec() })
    }

    /// Reads a secret in RFC 4648 base32, as [`Self::to_base32`] writes it; case, spaces and
    /// `=` padding are ignored because people copy these by hand.
    pub fn from_base32(text: &str) -> Result<Self> {
        let clean: String =
            text.chars().filter(|c| !c.is_whitespace() && *c != '=').map(|c| c.to_ascii_uppercase()).collect();
        let secret =
            Secret::try_from_base32(&clean).map_err(|_| AuthError::InvalidTotpSecret("not base32".to_owned()))?;
        Self::from_bytes(secret.as_bytes())
    }

    /// Wraps raw secret bytes (at least 128 bits).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(AuthError::InvalidTotpSecret(format!(
                "{} bits, at least {} needed",
                bytes.len() * 8,
                MIN_SECRET_BYTES * 8
            )));
        }
        Ok(Self { bytes: bytes.to_vec() })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// RFC 4648 base32 without padding, the form authenticator apps take.
    pub fn to_base32(&self) -> String {
        Secret::from(self.bytes.as_slice()).to_base32()
    }

    /// The Key URI an authenticator app scans:
    /// `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`.
    ///
    /// The parameters are written out although they are the format's defaults, so that an app
    /// with other defaults cannot guess differently. Issuer and account may not be empty nor
    /// hold `:` (the label's separator) or control characters.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> Result<String> {
        for (what, value) in [("issuer", issuer), ("account name", account)] {
            if value.trim().is_empty() || value.chars().any(|c| c == ':' || c.is_control()) {
                return Err(AuthError::InvalidTotpLabel(format!("{what} {value:?}")));
            }
        }
        let issuer = utf8_percent_encode(issuer, URI_COMPONENT);
        let account = utf8_percent_encode(account, URI_COMPONENT);
        Ok(format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            self.to_base32()
        ))
    }

    /// Checks `code` at `unix_time` (seconds) within ±1 step and returns the time step it
    /// matched, which the caller stores and passes back as `last_step` next time. A code from
    /// `last_step` or before is refused even if it is otherwise right: RFC 6238 §5.2 asks that
    /// a code be accepted once, and accepting an earlier step after a later one would reopen
    /// the window a captured code gives.
    ///
    /// Spaces in `code` are ignored (apps show `123 456`).
    pub fn verify(&self, code: &str, unix_time: u64, last_step: Option<u64>) -> Result<Option<u64>> {
        verify_with(&self.bytes, Algorithm::SHA1, DIGITS, code, unix_time, last_step)
    }
}

/// Unreserved characters stay, everything else is percent-encoded (`@` included: apps decode it).
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One step's generator, without totp-rs's own window, so this module decides which steps count.
fn generator(secret: &[u8], algorithm: Algorithm, digits: u8) -> Result<Totp> {
    Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_secret(secret)
        .with_skew(0)
        .with_step_duration(STEP_SECONDS)
        .build()
        .map_err(|e| AuthError::InvalidTotpSecret(e.to_string()))
}

fn verify_with(
    secret: &[u8],
    algorithm: Algorithm,
    digits: u8,
    code: &str,
    unix_time: u64,
    last_step: Option<u64>,
) -> Result<Option<u64>> {
    let totp = generator(secret, algorithm, digits)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let current = unix_time / STEP_SECONDS;
    let first = current.saturating_sub(WINDOW);
    let last = current.saturating_add(WINDOW);
    Ok((first..=last)
        .filter(|step| last_step.is_none_or(|used| *step > used))
        // totp-rs parses the code (exactly `digits` ASCII digits) and compares in constant time.
        .find(|step| step.checked_mul(STEP_SECONDS).is_some_and(|t| totp.check(&code, t).is_some())))
}

/// The code for `unix_time`, as an app would show it. For tests and tools; logins use
/// [`TotpSecret::verify`].
pub fn code_at(secret: &TotpSecret, unix_time: u64) -> Result<String> {
    Ok(generator(&secret.bytes, Algorithm::SHA1, DIGITS)?.generate(unix_time).to_string())
}

/// `text` (a provisioning URI) as a QR code in SVG, black on white with the standard quiet zone,
/// at least 240 px wide, ready to inline in a page (no XML declaration).
///
/// Error correction level M: the URI is short, so the code stays small enough for a phone
/// camera while surviving some glare.
pub fn qr_svg(text: &str) -> Result<String> {
    let code = QrCode::with_error_correction_level(text, EcLevel::M).map_err(|e| AuthError::Qr(e.to_string()))?;
    let image = code.render::<svg::Color<'_>>().min_dimensions(240, 240).quiet_zone(true).build();
    Ok(match image.find("<svg") {
        Some(start) => image[start..].to_owned(),
        None => image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B uses one ASCII seed per algorithm, of the hash's output size (the
    // appendix text says one seed for all; erratum 2866 and the reference code say otherwise).
    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B: time, then the 8-digit code for SHA1, SHA256, SHA512.
    const RFC6238: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc6238_appendix_b_vectors() {
        for (time, sha1, sha256, sha512) in RFC6238 {
            for (seed, algorithm, expected) in [
                (SEED_SHA1, Algorithm::SHA1, sha1),
                (SEED_SHA256, Algorithm::SHA256, sha256),
                (SEED_SHA512, Algorithm::SHA512, sha512),
            ] {
                let generated = generator(seed, algorithm, 8).unwrap().generate(time).to_string();
                assert_eq!(generated, expected, "{algorithm:?} at {time}");
                assert_eq!(
                    verify_with(seed, algorithm, 8, expected, time, None).unwrap(),
                    Some(time / STEP_SECONDS),
                    "{algorithm:?} at {time}"
                );
            }
        }
    }

    #[test]
    fn rfc6238_vectors_in_the_production_setting() {
        // Six digits are the low six of the same truncated value, so the SHA1 column gives
        // the codes an app would show for the SHA1 seed.
        let secret = TotpSecret::from_bytes(SEED_SHA1).unwrap();
        for (time, sha1, _, _) in RFC6238 {
            assert_eq!(code_at(&secret, time).unwrap(), sha1[2..], "at {time}");
            assert_eq!(secret.verify(&sha1[2..], time, None).unwrap(), Some(time / STEP_SECONDS));
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let secret = TotpSecret::from_bytes(SEED_SHA1).unwrap();
        let now = 1111111111; // step 37037037, 1 s into it
        let step = now / STEP_SECONDS;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code_step = step.checked_add_signed(offset).unwrap();
            let code = code_at(&secret, code_step * STEP_SECONDS).unwrap();
            let expected = accepted.then_some(code_step);
            assert_eq!(secret.verify(&code, now, None).unwrap(), expected, "offset {offset}");
        }
    }

    #[test]
    fn replays_of_the_same_or_an_earlier_step_are_refused() {
        let secret = TotpSecret::from_bytes(SEED_SHA1).unwrap();
        let now = 2000000000;
        let step = now / STEP_SECONDS;
        let code = code_at(&secret, now).unwrap();
        let used = secret.verify(&code, now, None).unwrap();
        assert_eq!(used, Some(step));
        // The same code again, a moment later in the same step, or from the next step.
        assert_eq!(secret.verify(&code, now + 5, used).unwrap(), None);
        assert_eq!(secret.verify(&code, now + STEP_SECONDS, used).unwrap(), None);
        // The previous step's code is still inside the window but older than the one used.
        let previous = code_at(&secret, now - STEP_SECONDS).unwrap();
        assert_eq!(secret.verify(&previous, now, used).unwrap(), None);
        // The next step's code is fine.
        let next = code_at(&secret, now + STEP_SECONDS).unwrap();
        assert_eq!(secret.verify(&next, now + STEP_SECONDS, used).unwrap(), Some(step + 1));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = TotpSecret::from_bytes(SEED_SHA1).unwrap();
        for code in ["", "28708", "2870822", "28708a", "+87082", "２８７０８２"] {
            assert_eq!(secret.verify(code, 59, None).unwrap(), None, "{code}");
        }
        assert_eq!(secret.verify("287 082", 59, None).unwrap(), Some(1));
    }

    #[test]
    fn time_at_the_edges_does_not_overflow() {
        let secret = TotpSecret::from_bytes(SEED_SHA1).unwrap();
        assert_eq!(secret.verify("000000", u64::MAX, None).unwrap(), None);
        assert_eq!(secret.verify(&code_at(&secret, 0).unwrap(), 0, None).unwrap(), Some(0));
    }

    #[test]
    fn generated_secrets_are_160_bits_and_round_trip_through_base32() {
        let a = TotpSecret::generate().unwrap();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a, TotpSecret::generate().unwrap());
        let text = a.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text).unwrap(), a);
        let spaced = text
            .to_lowercase()
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(TotpSecret::from_base32(&spaced).unwrap(), a);
        assert_eq!(format!("{a:?}"), "TotpSecret(…)");
    }

    #[test]
    fn base32_matches_rfc4648() {
        // RFC 4648 §10: BASE32("foobar") = "MZXW6YTBOI======"; padded to 16 bytes here.
        let secret = TotpSecret::from_bytes(b"foobarfoobarfoob").unwrap();
        assert!(secret.to_base32().starts_with("MZXW6YTBOJTG633CMFZGM33PMI"), "{}", secret.to_base32());
        assert_eq!(TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap().as_bytes(), SEED_SHA1);
    }

    #[test]
    fn short_or_invalid_secrets_are_refused() {
        assert_eq!(TotpSecret::from_bytes(&[0; 15]).unwrap_err().code(), "invalid_totp_secret");
        assert_eq!(TotpSecret::from_base32("MZXW6YTB").unwrap_err().code(), "invalid_totp_secret");
        assert_eq!(TotpSecret::from_base32("not base32!").unwrap_err().code(), "invalid_totp_secret");
    }

    #[test]
    fn provisioning_uri() {
        let secret = TotpSecret::from_bytes(SEED_SHA1).unwrap();
        assert_eq!(
            secret.provisioning_uri("Iaso", "jane.doe+x@example.org").unwrap(),
            "otpauth://totp/Iaso:jane.doe%2Bx%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Iaso&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            secret.provisioning_uri("Iaso Clinic", "ana").unwrap(),
            "otpauth://totp/Iaso%20Clinic:ana?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Iaso%20Clinic&algorithm=SHA1&digits=6&period=30"
        );
        for (issuer, account) in [("Ia:so", "ana"), ("Iaso", "a:b"), ("", "ana"), ("Iaso", " "), ("Iaso", "a\nb")] {
            assert_eq!(secret.provisioning_uri(issuer, account).unwrap_err().code(), "invalid_totp_label");
        }
    }

    #[test]
    fn qr_code_is_an_inline_svg() {
        let uri = TotpSecret::generate().unwrap().provisioning_uri("Iaso", "jane@example.org").unwrap();
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{}", &svg[..80]);
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("<path fill=\"#000\" d=\"M"));
        assert_eq!(qr_svg(&"x".repeat(5000)).unwrap_err().code(), "qr_failed");
    }
}
