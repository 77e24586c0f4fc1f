//! Cost of Iaso's token signatures: signing and verifying an access token with the ES256 and the
//! RS256 key of a `KeyRing`, verifying an ES384 client assertion, and generating each key. Run in
//! release: `CARGO_BUILD_JOBS=1 cargo bench -p auth --bench jwt`.
//!
//! `IASO_JWT_RUNS` sets the number of sign/verify runs (default 10,000), `IASO_KEYGEN_RUNS` the
//! number of key generations (default 20).

use std::error::Error;
use std::time::Instant;

use auth::jwt::{AssertionExpectation, verify_with_jwks};
use auth::keys::{Expectation, KeyRing, SigningAlg, TYP_ACCESS_TOKEN};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://iaso.example";
const AUD: &str = "https://iaso.example/fhir";

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn runs(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or(default).max(1)
}

/// Median microseconds of `f` over `n` runs.
fn time_us(n: usize, mut f: impl FnMut() -> Result<(), Box<dyn Error>>) -> Result<f64, Box<dyn Error>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f()?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(samples))
}

fn main() -> Result<(), Box<dyn Error>> {
    // `cargo bench` passes `--bench`; under `cargo test --benches` this only has to compile.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let n = runs("IASO_JWT_RUNS", 10_000);
    let keygen_runs = runs("IASO_KEYGEN_RUNS", 20);
    let tmp = tempfile::tempdir()?;
    let ring = KeyRing::load_or_create(&tmp.path().join("keys"), NOW)?;
    // A SMART access token of typical size.
    let claims = json!({
        "iss": ISS, "sub": "0b6c7d3e-8f1a-4c2b-9d4e-5f6a7b8c9d0e", "aud": AUD, "client_id": "growth-chart",
        "iat": NOW, "exp": NOW + 300, "jti": "4f1c2a9e-7b3d-4e8f-a6c5-1d2e3f4a5b6c",
        "scope": "launch/patient openid fhirUser patient/Observation.rs patient/Patient.r", "patient": "123",
    });
    let expect = Expectation::new(ISS, &[AUD], TYP_ACCESS_TOKEN, NOW);
    for alg in SigningAlg::ALL {
        let token = ring.sign(alg, TYP_ACCESS_TOKEN, &claims)?;
        let sign = time_us(n, || {
            std::hint::black_box(ring.sign(alg, TYP_ACCESS_TOKEN, std::hint::black_box(&claims))?);
            Ok(())
        })?;
        let verify = time_us(n, || {
            let claims: Value = ring.verify(std::hint::black_box(&token), &expect)?;
            std::hint::black_box(claims);
            Ok(())
        })?;
        println!(
            "{}: median {sign:.1} µs per sign, {verify:.1} µs per verify ({n} runs, token {} bytes)",
            alg.as_str(),
            token.len()
        );
    }

    let assertion = client_assertion()?;
    let jwks = json!({"keys": [assertion.1]});
    let expect_assertion = AssertionExpectation::new("backend-client", "https://iaso.example/auth/token", NOW);
    let verify = time_us(n, || {
        std::hint::black_box(verify_with_jwks(std::hint::black_box(&assertion.0), &jwks, &expect_assertion)?);
        Ok(())
    })?;
    println!("ES384 client assertion against its JWK Set: median {verify:.1} µs per verify ({n} runs)");

    // The same calls `KeyRing` makes; the ring itself adds file writes and a reload.
    let es = time_us(keygen_runs, || {
        std::hint::black_box(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|e| e.to_string())?);
        Ok(())
    })?;
    let rs = time_us(keygen_runs, || {
        std::hint::black_box(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| e.to_string())?);
        Ok(())
    })?;
    let mut i = 0;
    let ring_ms = time_us(keygen_runs, || {
        i += 1;
        std::hint::black_box(KeyRing::load_or_create(&tmp.path().join(format!("gen{i}")), NOW)?);
        Ok(())
    })?;
    println!(
        "key generation: median {:.3} ms P-256, {:.1} ms RSA 2048; a new ring with both, written and reloaded: {:.1} ms ({keygen_runs} runs)",
        es / 1e3,
        rs / 1e3,
        ring_ms / 1e3
    );
    Ok(())
}

/// An ES384 client assertion of a fresh P-384 key, and that key as a JWK.
fn client_assertion() -> Result<(String, Value), Box<dyn Error>> {
    let b64 = |bytes: &[u8]| Base64UrlUnpadded::encode_string(bytes);
    let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).map_err(|e| e.to_string())?;
    let point = key.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": "k1", "x": b64(&point[1..49]), "y": b64(&point[49..])});
    let header = json!({"alg": "ES384", "typ": "JWT", "kid": "k1"});
    let claims = json!({
        "iss": "backend-client", "sub": "backend-client", "aud": "https://iaso.example/auth/token",
        "iat": NOW, "exp": NOW + 300, "jti": "5e8f0c1a-2b3d-4c5e-8f9a-0b1c2d3e4f5a",
    });
    let input = format!("{}.{}", b64(&serde_json::to_vec(&header)?), b64(&serde_json::to_vec(&claims)?));
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).map_err(|e| e.to_string())?;
    Ok((format!("{input}.{}", b64(signature.as_ref())), jwk))
}
