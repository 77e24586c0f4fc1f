//! Compact JWS parsing and checking shared by Iaso's own tokens ([`crate::keys`]) and client
//! assertions ([`verify_with_jwks`]: `private_key_jwt`, RFC 7523, SMART Backend Services).
//!
//! The header is read here rather than by `jsonwebtoken` so that every refusal (`alg: none`, a
//! shared-secret algorithm, an unknown `crit`, a wrong `typ`) gets its own [`TokenRejection`], and
//! the registered claims are checked here because the caller owns the clock. `jsonwebtoken` (on
//! aws-lc-rs) checks the signature. Header parameters that point at keys (`jwk`, `jku`, `x5u`,
//! `x5c`) are ignored: a key is only ever taken from the verifier's own key set.

use base64ct::{Base64UrlUnpadded, Encoding};
use jsonwebtoken::crypto::aws_lc;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{AuthError, Result, TokenRejection};

/// Tolerated clock difference between Iaso and whoever signed or checks a token.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;
/// RFC 7523 leaves the lifetime of a client assertion open; SMART Backend Services caps it at five
/// minutes, which also bounds how long a `jti` must be remembered.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
/// What SMART Backend Services requires servers to support for client assertions.
pub const SMART_ASSERTION_ALGS: &[Alg] = &[Alg::Es384, Alg::Rs384];
/// Far above any real token; refusing longer input up front bounds the work an attacker can ask
/// for before the signature is checked.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// A replay cache keys on the jti, so its size is bounded here.
const MAX_JTI_LEN: usize = 256;
/// RSA moduli below 2048 bits are refused (NIST SP 800-131A); above 8192 bits verification
/// becomes a denial-of-service lever.
const MIN_RSA_MODULUS_BYTES: usize = 256;
const MAX_RSA_MODULUS_BYTES: usize = 1024;

/// The JWS algorithms this crate verifies: ECDSA and RSASSA-PKCS1-v1_5 with SHA-256 and SHA-384.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Es256,
    Es384,
    Rs256,
    Rs384,
}

impl Alg {
    /// The `alg` header value (RFC 7518 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "ES384" => Some(Self::Es384),
            "RS256" => Some(Self::Rs256),
            "RS384" => Some(Self::Rs384),
            _ => None,
        }
    }

    pub(crate) fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::Rs256 => Algorithm::RS256,
            Self::Rs384 => Algorithm::RS384,
        }
    }

    /// The JWK `kty` and, for EC, the `crv` a key must have to verify this algorithm.
    fn key_type(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Es256 => ("EC", Some("P-256")),
            Self::Es384 => ("EC", Some("P-384")),
            Self::Rs256 | Self::Rs384 => ("RSA", None),
        }
    }
}

/// A compact JWS split and its header read; nothing is trusted yet.
pub(crate) struct Jws<'a> {
    pub alg: Alg,
    pub typ: Option<String>,
    pub kid: Option<String>,
    signing_input: &'a str,
    signature: &'a str,
    payload: Vec<u8>,
}

fn b64_json(part: &str, what: &'static str) -> Result<Vec<u8>, TokenRejection> {
    Base64UrlUnpadded::decode_vec(part).map_err(|_| TokenRejection::Malformed(what))
}

fn optional_string(header: &Map<String, Value>, name: &str) -> Result<Option<String>, TokenRejection> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenRejection::Malformed("a header parameter that is not a string")),
    }
}

/// Keeps values copied from a token into a rejection short, since they end up in logs.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Splits `token` and reads its header, refusing any algorithm outside `accepted`.
pub(crate) fn parse<'a>(token: &'a str, accepted: &[Alg]) -> Result<Jws<'a>, TokenRejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenRejection::Malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::Malformed("not three dot-separated parts"));
    };
    let header_json = b64_json(header, "the header is not base64url")?;
    let Ok(Value::Object(header_map)) = serde_json::from_slice::<Value>(&header_json) else {
        return Err(TokenRejection::Malformed("the header is not a JSON object"));
    };
    let Some(Value::String(alg_name)) = header_map.get("alg") else {
        return Err(TokenRejection::Malformed("the header has no alg"));
    };
    if alg_name.eq_ignore_ascii_case("none") {
        return Err(TokenRejection::AlgNone);
    }
    if alg_name.starts_with("HS") {
        return Err(TokenRejection::SymmetricAlg);
    }
    let alg = Alg::parse(alg_name)
        .filter(|a| accepted.contains(a))
        .ok_or_else(|| TokenRejection::AlgNotAccepted(clip(alg_name)))?;
    if header_map.contains_key("crit") {
        return Err(TokenRejection::UnsupportedCrit);
    }
    let typ = optional_string(&header_map, "typ")?;
    let kid = optional_string(&header_map, "kid")?;
    // RFC 7515 §5.2: the signature covers the encoded header and payload as sent.
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let payload = b64_json(payload, "the payload is not base64url")?;
    Ok(Jws { alg, typ, kid, signing_input, signature, payload })
}

impl Jws<'_> {
    /// Checks the signature with `key`, which the caller chose for `self.alg`.
    ///
    /// The aws-lc provider is named rather than taken from jsonwebtoken's process default, which
    /// another crate could replace, or turn into a panic by enabling jsonwebtoken's RustCrypto
    /// feature next to this one.
    pub(crate) fn verify_signature(&self, key: &DecodingKey) -> Result<(), TokenRejection> {
        let signature = Base64UrlUnpadded::decode_vec(self.signature).map_err(|_| TokenRejection::BadSignature)?;
        let verifier = (aws_lc::DEFAULT_PROVIDER.verifier_factory)(&self.alg.jsonwebtoken(), key)
            .map_err(|_| TokenRejection::BadSignature)?;
        verifier.verify(self.signing_input.as_bytes(), &signature).map_err(|_| TokenRejection::BadSignature)
    }

    /// The registered claims, for the checks; call only after the signature is verified.
    pub(crate) fn registered(&self) -> Result<Registered, TokenRejection> {
        serde_json::from_slice(&self.payload).map_err(|e| TokenRejection::InvalidClaims(e.to_string()))
    }

    /// The claims as the caller's type; call only after every check passed.
    pub(crate) fn claims<T: DeserializeOwned>(&self) -> Result<T, TokenRejection> {
        serde_json::from_slice(&self.payload).map_err(|e| TokenRejection::InvalidClaims(e.to_string()))
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(a) => a == wanted,
            Self::Many(list) => list.iter().any(|a| a == wanted),
        }
    }
}

/// The RFC 7519 claims this crate checks. NumericDates must be integers: a fractional `exp` is
/// refused as malformed, which no known issuer produces.
#[derive(Debug, Deserialize)]
pub(crate) struct Registered {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Audience>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
}

impl Registered {
    /// `exp` (required), `nbf` and `iat`, each with `leeway` seconds of tolerance; returns `exp`.
    pub(crate) fn check_times(&self, now: i64, leeway: i64) -> Result<i64, TokenRejection> {
        let exp = self.exp.ok_or(TokenRejection::MissingClaim("exp"))?;
        // RFC 7519 §4.1.4: the token must not be accepted on or after `exp`.
        if now >= exp.saturating_add(leeway) {
            return Err(TokenRejection::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(TokenRejection::NotYetValid);
        }
        if self.iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(TokenRejection::IssuedInFuture);
        }
        Ok(exp)
    }

    pub(crate) fn check_issuer(&self, issuer: &str) -> Result<(), TokenRejection> {
        match &self.iss {
            None => Err(TokenRejection::MissingClaim("iss")),
            Some(iss) if iss == issuer => Ok(()),
            Some(_) => Err(TokenRejection::WrongIssuer),
        }
    }

    pub(crate) fn check_audience<'a>(&self, accepted: impl IntoIterator<Item = &'a str>) -> Result<(), TokenRejection> {
        let aud = self.aud.as_ref().ok_or(TokenRejection::MissingClaim("aud"))?;
        if accepted.into_iter().any(|a| aud.contains(a)) { Ok(()) } else { Err(TokenRejection::WrongAudience) }
    }
}

/// What a client assertion must say. [`Self::new`] gives SMART's rules: ES384 or RS384, at most
/// five minutes of lifetime, 30 seconds of clock leeway.
#[derive(Debug, Clone)]
pub struct AssertionExpectation<'a> {
    /// Both `iss` and `sub` must equal it (RFC 7523 §3).
    pub client_id: &'a str,
    /// The token endpoint URL: `aud` must be, or contain, exactly this string.
    pub audience: &'a str,
    pub algorithms: &'a [Alg],
    /// Unix seconds.
    pub now: i64,
    pub leeway: i64,
    /// The longest accepted `exp - iat` (or `exp - now` when there is no `iat`).
    pub max_lifetime: i64,
}

impl<'a> AssertionExpectation<'a> {
    pub fn new(client_id: &'a str, token_endpoint: &'a str, now: i64) -> Self {
        Self {
            client_id,
            audience: token_endpoint,
            algorithms: SMART_ASSERTION_ALGS,
            now,
            leeway: DEFAULT_LEEWAY_SECS,
            max_lifetime: MAX_ASSERTION_LIFETIME_SECS,
        }
    }
}

/// A verified client assertion: the caller stores `jti` until `exp` (plus the leeway) and refuses
/// a second assertion with the same `jti` from the same client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    pub jti: String,
    pub exp: i64,
}

/// One usable key of a client's JWK Set.
struct ClientKey<'a> {
    kid: Option<&'a str>,
    jwk: &'a Map<String, Value>,
}

fn jwk_str<'a>(jwk: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

impl ClientKey<'_> {
    /// Whether this key may verify `alg`: the right kty (and crv), and `alg`/`use`/`key_ops`
    /// not saying otherwise.
    fn fits(&self, alg: Alg) -> bool {
        let (kty, crv) = alg.key_type();
        jwk_str(self.jwk, "kty") == Some(kty)
            && (crv.is_none() || jwk_str(self.jwk, "crv") == crv)
            && jwk_str(self.jwk, "alg").is_none_or(|a| a == alg.as_str())
    }

    fn decoding_key(&self, alg: Alg) -> Result<DecodingKey> {
        let member = |name: &'static str| -> Result<Vec<u8>> {
            let text =
                jwk_str(self.jwk, name).ok_or_else(|| AuthError::InvalidJwks(format!("a key without {name}")))?;
            Base64UrlUnpadded::decode_vec(text).map_err(|_| AuthError::InvalidJwks(format!("{name} is not base64url")))
        };
        match alg.key_type() {
            ("EC", _) => {
                let (x, y) = (member("x")?, member("y")?);
                let size = if alg == Alg::Es256 { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return Err(AuthError::InvalidJwks("EC coordinates of the wrong length".to_owned()));
                }
                // What aws-lc verifies against: the uncompressed SEC 1 point, as
                // `DecodingKey::from_ec_components` builds it, without decoding twice.
                let point = [&[0x04][..], &x, &y].concat();
                Ok(DecodingKey::from_ec_der(&point))
            }
            _ => {
                let (n, e) = (member("n")?, member("e")?);
                let n_len = n.iter().position(|&b| b != 0).map_or(0, |first| n.len() - first);
                if n_len < MIN_RSA_MODULUS_BYTES {
                    return Err(TokenRejection::WeakKey.into());
                }
                if n_len > MAX_RSA_MODULUS_BYTES {
                    return Err(AuthError::InvalidJwks("RSA modulus longer than 8192 bits".to_owned()));
                }
                Ok(DecodingKey::from_rsa_raw_components(&n, &e))
            }
        }
    }
}

/// The signing keys of a JWK Set: keys marked for encryption only (`use: enc`, or `key_ops`
/// without `verify`) are left out, so a client cannot have one key serve both purposes here.
fn signing_keys(jwks: &Value) -> Result<Vec<ClientKey<'_>>> {
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return Err(AuthError::InvalidJwks("not a JWK Set: no keys array".to_owned()));
    };
    Ok(keys
        .iter()
        .filter_map(Value::as_object)
        .filter(|jwk| jwk_str(jwk, "use").is_none_or(|u| u == "sig"))
        .filter(|jwk| match jwk.get("key_ops").and_then(Value::as_array) {
            Some(ops) => ops.iter().any(|op| op.as_str() == Some("verify")),
            None => true,
        })
        .map(|jwk| ClientKey { kid: jwk_str(jwk, "kid"), jwk })
        .collect())
}

/// Picks the key by `kid`; with no `kid`, the set's only key that fits the algorithm.
fn choose_key<'a>(keys: &'a [ClientKey<'a>], jws: &Jws<'_>) -> Result<&'a ClientKey<'a>, TokenRejection> {
    match jws.kid.as_deref() {
        Some(kid) => {
            let mut named = keys.iter().filter(|k| k.kid == Some(kid)).peekable();
            if named.peek().is_none() {
                return Err(TokenRejection::UnknownKid(clip(kid)));
            }
            named
                .find(|k| k.fits(jws.alg))
                .ok_or_else(|| TokenRejection::KeyAlgMismatch { kid: clip(kid), alg: jws.alg.as_str().to_owned() })
        }
        None => {
            let mut fitting = keys.iter().filter(|k| k.fits(jws.alg));
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Ok(only),
                _ => Err(TokenRejection::MissingKid),
            }
        }
    }
}

/// Verifies a client assertion (`client_assertion` of a token request with
/// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) against the
/// client's registered JWK Set.
///
/// Checks: an algorithm of `expect.algorithms`, the key by `kid` (or the set's only fitting key),
/// the signature, `iss == sub == client_id`, `aud` naming the token endpoint, `exp` present and
/// not past, `nbf`/`iat` not in the future, a lifetime of at most `expect.max_lifetime`, and a
/// `jti`. The `jti` is returned for the caller's replay check: this function keeps no state.
///
/// Errors are [`AuthError::Token`] for the assertion and [`AuthError::InvalidJwks`] when the
/// registered key set is unusable.
pub fn verify_with_jwks(token: &str, jwks: &Value, expect: &AssertionExpectation<'_>) -> Result<ClientAssertion> {
    let jws = parse(token, expect.algorithms)?;
    let keys = signing_keys(jwks)?;
    let key = choose_key(&keys, &jws)?;
    jws.verify_signature(&key.decoding_key(jws.alg)?)?;
    let claims = jws.registered()?;
    claims.check_issuer(expect.client_id)?;
    match &claims.sub {
        None => return Err(TokenRejection::MissingClaim("sub").into()),
        Some(sub) if sub != expect.client_id => return Err(TokenRejection::WrongSubject.into()),
        Some(_) => {}
    }
    claims.check_audience([expect.audience])?;
    let exp = claims.check_times(expect.now, expect.leeway)?;
    let start = claims.iat.unwrap_or(expect.now);
    // Both bounds: a backdated `iat` must not stretch the window past `max_lifetime` from now.
    if exp.saturating_sub(start) > expect.max_lifetime
        || exp.saturating_sub(expect.now) > expect.max_lifetime.saturating_add(expect.leeway)
    {
        return Err(TokenRejection::TooLongLived.into());
    }
    let jti = claims.jti.filter(|j| !j.is_empty()).ok_or(TokenRejection::MissingClaim("jti"))?;
    if jti.len() > MAX_JTI_LEN {
        return Err(TokenRejection::InvalidClaims("jti longer than 256 bytes".to_owned()).into());
    }
    Ok(ClientAssertion { jti, exp })
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
        RSA_PKCS1_SHA384, RsaEncoding,
    };
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const CLIENT: &str = "backend-client-1";
    const TOKEN_URL: &str = "https://iaso.example/auth/token";

    fn b64(bytes: &[u8]) -> String {
        Base64UrlUnpadded::encode_string(bytes)
    }

    fn p384() -> &'static EcdsaKeyPair {
        static KEY: OnceLock<EcdsaKeyPair> = OnceLock::new();
        KEY.get_or_init(|| EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap())
    }

    fn other_p384() -> &'static EcdsaKeyPair {
        static KEY: OnceLock<EcdsaKeyPair> = OnceLock::new();
        KEY.get_or_init(|| EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap())
    }

    fn rsa() -> &'static RsaKeyPair {
        static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
        KEY.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    fn ec_jwk(pair: &EcdsaKeyPair, kid: Option<&str>) -> Value {
        let point = pair.public_key().as_ref();
        let half = (point.len() - 1) / 2;
        let crv = if half == 32 { "P-256" } else { "P-384" };
        let mut jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=half]), "y": b64(&point[half + 1..])});
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn rsa_jwk(pair: &RsaKeyPair, kid: Option<&str>) -> Value {
        let public = pair.public_key();
        let mut jwk = json!({
            "kty": "RSA",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn signing_input(header: &Value, claims: &Value) -> String {
        format!("{}.{}", b64(&serde_json::to_vec(header).unwrap()), b64(&serde_json::to_vec(claims).unwrap()))
    }

    fn sign_ec(pair: &EcdsaKeyPair, header: Value, claims: &Value) -> String {
        let input = signing_input(&header, claims);
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    fn sign_rsa(pair: &RsaKeyPair, encoding: &'static dyn RsaEncoding, header: Value, claims: &Value) -> String {
        let input = signing_input(&header, claims);
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(encoding, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
        format!("{input}.{}", b64(&sig))
    }

    fn claims() -> Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "iat": NOW, "exp": NOW + 300, "jti": "a-unique-id"})
    }

    fn jwks() -> Value {
        json!({"keys": [ec_jwk(p384(), Some("ec-1")), rsa_jwk(rsa(), Some("rsa-1"))]})
    }

    fn es384(claims: &Value) -> String {
        sign_ec(p384(), json!({"alg": "ES384", "typ": "JWT", "kid": "ec-1"}), claims)
    }

    fn rs384(claims: &Value) -> String {
        sign_rsa(rsa(), &RSA_PKCS1_SHA384, json!({"alg": "RS384", "kid": "rsa-1"}), claims)
    }

    fn verify(token: &str, jwks: &Value) -> Result<ClientAssertion> {
        verify_with_jwks(token, jwks, &AssertionExpectation::new(CLIENT, TOKEN_URL, NOW))
    }

    fn code(result: Result<ClientAssertion>) -> &'static str {
        result.unwrap_err().code()
    }

    fn with(changes: Value) -> Value {
        let mut c = claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn es384_and_rs384_assertions_verify_and_give_the_jti() {
        let expected = ClientAssertion { jti: "a-unique-id".to_owned(), exp: NOW + 300 };
        assert_eq!(verify(&es384(&claims()), &jwks()).unwrap(), expected);
        assert_eq!(verify(&rs384(&claims()), &jwks()).unwrap(), expected);
        // An array audience that contains the token endpoint is accepted too (RFC 7519 §4.1.3).
        let many = with(json!({"aud": ["https://other.example", TOKEN_URL]}));
        verify(&es384(&many), &jwks()).unwrap();
    }

    #[test]
    fn without_a_kid_the_only_fitting_key_is_used() {
        let ec = sign_ec(p384(), json!({"alg": "ES384"}), &claims());
        let rs = sign_rsa(rsa(), &RSA_PKCS1_SHA384, json!({"alg": "RS384"}), &claims());
        // One EC and one RSA key: each algorithm has exactly one candidate.
        verify(&ec, &jwks()).unwrap();
        verify(&rs, &jwks()).unwrap();
        // Two EC keys and no kid: guessing is refused.
        let two = json!({"keys": [ec_jwk(other_p384(), None), ec_jwk(p384(), None)]});
        assert_eq!(code(verify(&ec, &two)), "token_missing_kid");
        // The set has keys without kids, the token names one: it is unknown.
        let unnamed = json!({"keys": [ec_jwk(p384(), None)]});
        verify(&ec, &unnamed).unwrap();
        assert_eq!(code(verify(&es384(&claims()), &unnamed)), "token_unknown_kid");
    }

    #[test]
    fn a_tampered_assertion_is_refused() {
        let token = es384(&claims());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let (header, _) = input.split_once('.').unwrap();
        let forged_claims = b64(&serde_json::to_vec(&with(json!({"sub": "someone-else"}))).unwrap());
        assert_eq!(code(verify(&format!("{header}.{forged_claims}.{sig}"), &jwks())), "token_bad_signature");
        // Signed by a key that is not the one its kid names.
        let other = sign_ec(other_p384(), json!({"alg": "ES384", "kid": "ec-1"}), &claims());
        assert_eq!(code(verify(&other, &jwks())), "token_bad_signature");
        let flipped = format!(
            "{input}.{}",
            if sig.starts_with('A') { sig.replacen('A', "B", 1) } else { format!("A{}", &sig[1..]) }
        );
        assert_eq!(code(verify(&flipped, &jwks())), "token_bad_signature");
        assert_eq!(code(verify(&format!("{input}."), &jwks())), "token_bad_signature");
    }

    #[test]
    fn claims_are_checked() {
        let cases = [
            (json!({"aud": "https://iaso.example/other"}), "token_wrong_audience"),
            (json!({"aud": [TOKEN_URL.to_owned() + "/"]}), "token_wrong_audience"),
            (json!({"aud": null}), "token_missing_claim"),
            (json!({"iss": "another-client"}), "token_wrong_issuer"),
            (json!({"sub": "another-client"}), "token_wrong_subject"),
            (json!({"sub": null}), "token_missing_claim"),
            (json!({"exp": NOW - 31, "iat": NOW - 200}), "token_expired"),
            (json!({"exp": null}), "token_missing_claim"),
            (json!({"exp": NOW + 600}), "token_too_long_lived"),
            // A backdated iat cannot stretch the window either way.
            (json!({"iat": NOW - 1000, "exp": NOW + 200}), "token_too_long_lived"),
            (json!({"iat": null, "exp": NOW + 400}), "token_too_long_lived"),
            (json!({"iat": NOW + 120, "exp": NOW + 200}), "token_issued_in_future"),
            (json!({"nbf": NOW + 120}), "token_not_yet_valid"),
            (json!({"jti": null}), "token_missing_claim"),
            (json!({"jti": ""}), "token_missing_claim"),
            (json!({"jti": "x".repeat(300)}), "token_invalid_claims"),
            (json!({"exp": "soon"}), "token_invalid_claims"),
        ];
        for (changes, expected) in cases {
            assert_eq!(code(verify(&es384(&with(changes.clone())), &jwks())), expected, "{changes}");
        }
        // Inside the leeway: just expired, or iat slightly ahead of this clock.
        verify(&es384(&with(json!({"exp": NOW - 10, "iat": NOW - 200}))), &jwks()).unwrap();
        verify(&es384(&with(json!({"iat": NOW + 10, "exp": NOW + 200}))), &jwks()).unwrap();
    }

    #[test]
    fn keys_are_chosen_by_kid_and_must_fit_the_algorithm() {
        let unknown = sign_ec(p384(), json!({"alg": "ES384", "kid": "ec-2"}), &claims());
        assert_eq!(code(verify(&unknown, &jwks())), "token_unknown_kid");
        // The RSA key's kid on an ES384 token.
        let crossed = sign_ec(p384(), json!({"alg": "ES384", "kid": "rsa-1"}), &claims());
        assert_eq!(code(verify(&crossed, &jwks())), "token_key_alg_mismatch");
        // A P-256 token against a P-384 key of that kid.
        let p256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let es256 = sign_ec(&p256, json!({"alg": "ES256", "kid": "ec-1"}), &claims());
        let expect = AssertionExpectation {
            algorithms: &[Alg::Es256, Alg::Es384],
            ..AssertionExpectation::new(CLIENT, TOKEN_URL, NOW)
        };
        assert_eq!(verify_with_jwks(&es256, &jwks(), &expect).unwrap_err().code(), "token_key_alg_mismatch");
        // A key declared for another algorithm, or for encryption, does not verify.
        let mut declared = ec_jwk(p384(), Some("ec-1"));
        declared["alg"] = json!("ES256");
        assert_eq!(code(verify(&es384(&claims()), &json!({"keys": [declared]}))), "token_key_alg_mismatch");
        let mut enc = ec_jwk(p384(), Some("ec-1"));
        enc["use"] = json!("enc");
        assert_eq!(code(verify(&es384(&claims()), &json!({"keys": [enc]}))), "token_unknown_kid");
    }

    #[test]
    fn only_the_allowed_algorithms_are_accepted() {
        let rs256 = sign_rsa(rsa(), &RSA_PKCS1_SHA256, json!({"alg": "RS256", "kid": "rsa-1"}), &claims());
        assert_eq!(code(verify(&rs256, &jwks())), "token_alg_not_accepted");
        let expect =
            AssertionExpectation { algorithms: &[Alg::Rs256], ..AssertionExpectation::new(CLIENT, TOKEN_URL, NOW) };
        verify_with_jwks(&rs256, &jwks(), &expect).unwrap();
        assert_eq!(verify_with_jwks(&rs384(&claims()), &jwks(), &expect).unwrap_err().code(), "token_alg_not_accepted");

        let unsigned = format!("{}.", signing_input(&json!({"alg": "none", "kid": "ec-1"}), &claims()));
        assert_eq!(code(verify(&unsigned, &jwks())), "token_alg_none");
        let upper = format!("{}.", signing_input(&json!({"alg": "NONE"}), &claims()));
        assert_eq!(code(verify(&upper, &jwks())), "token_alg_none");
        // HS256 "signed" with the public key as the secret: the classic confusion attack.
        let hs = format!("{}.c2ln", signing_input(&json!({"alg": "HS256", "kid": "rsa-1"}), &claims()));
        assert_eq!(code(verify(&hs, &jwks())), "token_alg_symmetric");
        let ps = format!("{}.c2ln", signing_input(&json!({"alg": "PS384", "kid": "rsa-1"}), &claims()));
        assert_eq!(code(verify(&ps, &jwks())), "token_alg_not_accepted");
    }

    #[test]
    fn malformed_tokens_and_sets() {
        for bad in ["", "a.b", "a.b.c.d", "a.b.c.d.e", "!!.e30.sig", "e30.e30.sig", &"A".repeat(20_000)] {
            assert_eq!(code(verify(bad, &jwks())), "token_malformed", "{bad}");
        }
        let crit = sign_ec(p384(), json!({"alg": "ES384", "kid": "ec-1", "crit": ["exp"], "exp": 1}), &claims());
        assert_eq!(code(verify(&crit, &jwks())), "token_crit_unsupported");
        assert_eq!(code(verify(&es384(&claims()), &json!({"kty": "EC"}))), "invalid_jwks");
        let mut short = ec_jwk(p384(), Some("ec-1"));
        short["x"] = json!("AAAA");
        assert_eq!(code(verify(&es384(&claims()), &json!({"keys": [short]}))), "invalid_jwks");
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() {
        let mut weak = rsa_jwk(rsa(), Some("rsa-1"));
        weak["n"] = json!(b64(&[0xc5; 128]));
        assert_eq!(code(verify(&rs384(&claims()), &json!({"keys": [weak]}))), "token_weak_key");
    }

    /// Every rejection's text can stand inside `error_description="..."` (RFC 6750 §3).
    #[test]
    fn rejection_messages_fit_www_authenticate() {
        let all = [
            TokenRejection::Malformed("x"),
            TokenRejection::AlgNone,
            TokenRejection::SymmetricAlg,
            TokenRejection::AlgNotAccepted("\"\\".to_owned()),
            TokenRejection::UnsupportedCrit,
            TokenRejection::WrongType { expected: "at+jwt".to_owned(), found: Some("\"".to_owned()) },
            TokenRejection::MissingKid,
            TokenRejection::UnknownKid("\"\\".to_owned()),
            TokenRejection::KeyAlgMismatch { kid: "\"".to_owned(), alg: "ES256".to_owned() },
            TokenRejection::WeakKey,
            TokenRejection::BadSignature,
            TokenRejection::Expired,
            TokenRejection::NotYetValid,
            TokenRejection::IssuedInFuture,
            TokenRejection::TooLongLived,
            TokenRejection::MissingClaim("exp"),
            TokenRejection::WrongIssuer,
            TokenRejection::WrongSubject,
            TokenRejection::WrongAudience,
            TokenRejection::InvalidClaims("invalid type: string \"x\"".to_owned()),
        ];
        let mut codes = std::collections::HashSet::new();
        for rejection in all {
            let text = rejection.to_string();
            assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'), "{text}");
            assert!(codes.insert(rejection.code()), "duplicate code {}", rejection.code());
            assert_eq!(AuthError::from(rejection.clone()).code(), rejection.code());
        }
    }
}
