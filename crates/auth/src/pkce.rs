//! RFC 7636 Proof Key for Code Exchange, S256 only.
//!
//! `plain` is refused: it protects nothing once the authorization request is seen, and OAuth 2.1
//! and SMART App Launch 2 both require S256. RFC 7636 reads a missing method as `plain`, so a
//! missing method is refused too.

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AuthError, Result, random};

const MIN_VERIFIER: usize = 43;
const MAX_VERIFIER: usize = 128;
/// base64url of a SHA-256 digest, without padding.
const CHALLENGE_LEN: usize = 43;

/// The one `code_challenge_method` accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    S256,
}

impl Method {
    /// Reads the authorization request's `code_challenge_method` parameter.
    pub fn parse(param: Option<&str>) -> Result<Self> {
        match param {
            Some("S256") => Ok(Self::S256),
            None => Err(AuthError::PkcePlainRefused("plain (by default)".to_owned())),
            Some("plain") => Err(AuthError::PkcePlainRefused("plain".to_owned())),
            Some(other) => Err(AuthError::PkceUnknownMethod(other.chars().take(32).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn validate_verifier(verifier: &str) -> Result<()> {
    if verifier.len() < MIN_VERIFIER {
        return Err(AuthError::PkceVerifier("shorter than 43 characters"));
    }
    if verifier.len() > MAX_VERIFIER {
        return Err(AuthError::PkceVerifier("longer than 128 characters"));
    }
    if !verifier.bytes().all(is_unreserved) {
        return Err(AuthError::PkceVerifier("characters outside A-Z a-z 0-9 - . _ ~"));
    }
    Ok(())
}

/// An S256 `code_challenge` as the authorization request brings it: 43 base64url characters.
/// Checking it there lets a client's mistake surface at once rather than as a failed token
/// request.
pub fn validate_challenge(challenge: &str) -> Result<()> {
    let mut digest = [0u8; 32];
    match Base64UrlUnpadded::decode(challenge, &mut digest) {
        Ok(decoded) if challenge.len() == CHALLENGE_LEN && decoded.len() == 32 => Ok(()),
        _ => Err(AuthError::PkceChallenge("not 43 base64url characters (a SHA-256 digest)")),
    }
}

/// `BASE64URL(SHA256(ASCII(code_verifier)))`, RFC 7636 §4.2.
pub fn s256_challenge(verifier: &str) -> Result<String> {
    validate_verifier(verifier)?;
    Ok(Base64UrlUnpadded::encode_string(&Sha256::digest(verifier.as_bytes())))
}

/// The token request's check: does `verifier` hash to the `challenge` stored with the code?
/// `Err` when the verifier is malformed (the caller answers `invalid_grant` either way, but may
/// want to log the difference).
pub fn verify_s256(verifier: &str, challenge: &str) -> Result<bool> {
    let computed = s256_challenge(verifier)?;
    Ok(computed.as_bytes().ct_eq(challenge.as_bytes()).into())
}

/// A fresh verifier (256 random bits, 43 characters), for when Iaso itself is the OAuth client
/// (federation to an outside identity provider).
pub fn generate_verifier() -> Result<String> {
    Ok(Base64UrlUnpadded::encode_string(&random::bytes::<32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    /// The 32 random octets the appendix encodes into its verifier.
    const RFC_VERIFIER_OCTETS: [u8; 32] = [
        116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191,
        240, 91, 88, 5, 88, 83, 132, 141, 121,
    ];

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(Base64UrlUnpadded::encode_string(&RFC_VERIFIER_OCTETS), RFC_VERIFIER);
        assert_eq!(s256_challenge(RFC_VERIFIER).unwrap(), RFC_CHALLENGE);
        assert!(verify_s256(RFC_VERIFIER, RFC_CHALLENGE).unwrap());
        validate_challenge(RFC_CHALLENGE).unwrap();
    }

    #[test]
    fn a_different_verifier_or_challenge_does_not_match() {
        let other = RFC_VERIFIER.replace('d', "e");
        assert!(!verify_s256(&other, RFC_CHALLENGE).unwrap());
        // The verifier itself in place of its challenge: what `plain` would have accepted.
        assert!(!verify_s256(RFC_VERIFIER, RFC_VERIFIER).unwrap());
        assert!(!verify_s256(RFC_VERIFIER, &RFC_CHALLENGE[..42]).unwrap());
        assert!(!verify_s256(RFC_VERIFIER, "").unwrap());
    }

    #[test]
    fn verifier_syntax() {
        let ok43 = "a".repeat(43);
        let ok128 = "A1-._~".repeat(21) + "xy";
        assert_eq!(ok128.len(), 128);
        validate_verifier(&ok43).unwrap();
        validate_verifier(&ok128).unwrap();
        for bad in [
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", "a".repeat(42)),
            format!("{} ", "a".repeat(43)),
            format!("{}é", "a".repeat(42)),
        ] {
            assert_eq!(validate_verifier(&bad).unwrap_err().code(), "invalid_code_verifier", "{bad}");
            assert_eq!(verify_s256(&bad, RFC_CHALLENGE).unwrap_err().code(), "invalid_code_verifier");
        }
    }

    #[test]
    fn challenge_syntax() {
        for bad in [
            "",
            &RFC_CHALLENGE[..42],
            &format!("{RFC_CHALLENGE}A"),
            &format!("{RFC_CHALLENGE}="),
            &RFC_CHALLENGE.replace('-', "+"),
        ] {
            assert_eq!(validate_challenge(bad).unwrap_err().code(), "invalid_code_challenge", "{bad}");
        }
    }

    #[test]
    fn only_s256_is_accepted() {
        assert_eq!(Method::parse(Some("S256")).unwrap(), Method::S256);
        assert_eq!(Method::parse(Some("plain")).unwrap_err().code(), "pkce_plain_refused");
        assert_eq!(Method::parse(None).unwrap_err().code(), "pkce_plain_refused");
        assert_eq!(Method::parse(Some("s256")).unwrap_err().code(), "pkce_unknown_method");
        assert_eq!(Method::S256.as_str(), "S256");
    }

    #[test]
    fn generated_verifiers_are_valid_and_fresh() {
        let v = generate_verifier().unwrap();
        assert_eq!(v.len(), 43);
        validate_verifier(&v).unwrap();
        assert_ne!(v, generate_verifier().unwrap());
        assert!(verify_s256(&v, &s256_challenge(&v).unwrap()).unwrap());
    }
}
