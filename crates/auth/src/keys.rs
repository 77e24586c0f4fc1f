//! The server's token signing keys: one current ES256 (P-256) and one current RS256 (RSA 2048)
//! key, plus retired keys that stay published until the tokens they signed have expired.
//!
//! ES256 is the default for Iaso's tokens (small, fast); RS256 is there because OpenID Connect
//! requires it for ID tokens and some relying parties accept nothing else.
//!
//! # Directory layout
//!
//! The caller names the directory (the server uses `<data-dir>/keys`):
//!
//! ```text
//! keys/                 0700, created by `KeyRing::load_or_create`
//!   keys.json           0600, the ring: {"keys":[{"kid":..,"alg":"ES256","created":..,"retired_at":null}, ..]}
//!   <kid>.pem           0600, the private key as PKCS#8 PEM ("BEGIN PRIVATE KEY"), one per entry
//!   .<name>.<rand>.tmp  a write in progress; renamed into place, or removed by the next rotation
//! ```
//!
//! `kid` is the key's RFC 7638 JWK thumbprint (base64url SHA-256 of its public members), so it is
//! stable, needs no counter, and is checked against the key file on every load. `created` and
//! `retired_at` are Unix seconds; a key with `retired_at: null` is current and signs.
//!
//! Every file is written to a temporary name, flushed to disk and renamed over the old one, so a
//! crash leaves either the old or the new file, never half of one. Key files are written before
//! `keys.json` names them and removed only after it stops naming them, so a reader that sees a
//! `keys.json` finds its keys (unless a second rotation deletes them in between: reload again).
//! One rotation at a time: rotations do not lock against each other.
//!
//! A running server notices a rotation done by `iaso keys rotate` by comparing
//! [`KeyRing::stored_generation`] with [`KeyRing::generation`] and then calling
//! [`KeyRing::load`], keeping the ring it has if the load fails.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256};
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use jsonwebtoken::DecodingKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::jwt::{self, Alg};
use crate::{AuthError, Result, TokenRejection, random};

/// The ring's metadata file inside the key directory.
pub const METADATA_FILE: &str = "keys.json";
/// RFC 9068 §2.1: the `typ` of a JWT access token.
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";
/// The `typ` of an ID token (OpenID Connect Core recommends `JWT`).
pub const TYP_ID_TOKEN: &str = "JWT";

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// The algorithms the ring holds a key for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlg {
    pub const ALL: [Self; 2] = [Self::Es256, Self::Rs256];

    pub fn as_str(self) -> &'static str {
        self.alg().as_str()
    }

    pub fn alg(self) -> Alg {
        match self {
            Self::Es256 => Alg::Es256,
            Self::Rs256 => Alg::Rs256,
        }
    }
}

impl From<SigningAlg> for Alg {
    fn from(alg: SigningAlg) -> Self {
        alg.alg()
    }
}

/// One entry of `keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlg,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; `None` while the key is current.
    pub retired_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Metadata {
    keys: Vec<KeyInfo>,
}

enum Private {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The public members of a key, raw (not base64url).
enum Public {
    Ec { x: Vec<u8>, y: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

struct Key {
    info: KeyInfo,
    private: Private,
    public: Public,
    decoding: DecodingKey,
}

/// What a token of this server must say to be accepted. [`Self::new`] accepts both algorithms
/// and [`jwt::DEFAULT_LEEWAY_SECS`] of clock difference.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    /// `iss` must equal it.
    pub issuer: &'a str,
    /// `aud` (a string or an array) must contain one of these.
    pub audiences: &'a [&'a str],
    /// The header's `typ`, compared as RFC 7515 §4.1.9 says: case-insensitively, with an
    /// `application/` prefix optional. [`TYP_ACCESS_TOKEN`] or [`TYP_ID_TOKEN`].
    pub typ: &'a str,
    pub algorithms: &'a [SigningAlg],
    /// Unix seconds.
    pub now: i64,
    pub leeway: i64,
}

impl<'a> Expectation<'a> {
    pub fn new(issuer: &'a str, audiences: &'a [&'a str], typ: &'a str, now: i64) -> Self {
        Self { issuer, audiences, typ, algorithms: &SigningAlg::ALL, now, leeway: jwt::DEFAULT_LEEWAY_SECS }
    }
}

/// The loaded keys. Cheap to share (`Send + Sync`); replace it whole after a rotation.
pub struct KeyRing {
    keys: Vec<Key>,
    generation: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private keys stay out of logs: only the metadata is shown.
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.iter().map(|k| &k.info).collect::<Vec<_>>())
            .field("generation", &self.generation)
            .finish()
    }
}

fn io_error(path: &Path, e: std::io::Error) -> AuthError {
    AuthError::KeyStore(format!("{}: {e}", path.display()))
}

fn b64url(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

impl Private {
    fn generate(alg: SigningAlg) -> Result<(Self, Zeroizing<Vec<u8>>)> {
        let failed = |e: aws_lc_rs::error::Unspecified| AuthError::KeyGeneration(format!("{}: {e}", alg.as_str()));
        match alg {
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?;
                let der = Zeroizing::new(pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec());
                Ok((Self::Ec(pair), der))
            }
            SigningAlg::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
                let der = Zeroizing::new(pair.as_der().map_err(failed)?.as_ref().to_vec());
                Ok((Self::Rsa(pair), der))
            }
        }
    }

    fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> std::result::Result<Self, String> {
        match alg {
            SigningAlg::Es256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map(Self::Ec),
            SigningAlg::Rs256 => RsaKeyPair::from_pkcs8(der).map(Self::Rsa),
        }
        .map_err(|e| e.to_string())
    }

    fn public(&self) -> std::result::Result<Public, String> {
        match self {
            Self::Ec(pair) => {
                // SEC 1 uncompressed: 0x04, then X and Y of 32 bytes each for P-256.
                match pair.public_key().as_ref() {
                    [0x04, xy @ ..] if xy.len() == 64 => {
                        let (x, y) = xy.split_at(32);
                        Ok(Public::Ec { x: x.to_vec(), y: y.to_vec() })
                    }
                    _ => Err("not an uncompressed P-256 point".to_owned()),
                }
            }
            Self::Rsa(pair) => {
                let public = pair.public_key();
                Ok(Public::Rsa {
                    n: public.modulus().big_endian_without_leading_zero().to_vec(),
                    e: public.exponent().big_endian_without_leading_zero().to_vec(),
                })
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let failed = |e: aws_lc_rs::error::Unspecified| AuthError::Signing(e.to_string());
        let rng = SystemRandom::new();
        match self {
            // The FIXED variant yields R || S, the JWS encoding (RFC 7518 §3.4), not DER.
            Self::Ec(pair) => Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature).map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

impl Public {
    /// RFC 7638: the required members in lexicographic order, no whitespace, hashed with SHA-256.
    fn thumbprint(&self) -> String {
        let canonical = match self {
            Self::Ec { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, b64url(x), b64url(y)),
            Self::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64url(e), b64url(n)),
        };
        b64url(&Sha256::digest(canonical.as_bytes()))
    }

    fn jwk(&self, info: &KeyInfo) -> Value {
        match self {
            Self::Ec { x, y } => json!({
                "kty": "EC", "kid": info.kid, "alg": info.alg.as_str(), "use": "sig",
                "crv": "P-256", "x": b64url(x), "y": b64url(y),
            }),
            Self::Rsa { n, e } => json!({
                "kty": "RSA", "kid": info.kid, "alg": info.alg.as_str(), "use": "sig",
                "n": b64url(n), "e": b64url(e),
            }),
        }
    }

    fn decoding_key(&self) -> DecodingKey {
        match self {
            Self::Ec { x, y } => DecodingKey::from_ec_der(&[&[0x04][..], x, y].concat()),
            Self::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
        }
    }
}

impl Key {
    fn new(info: KeyInfo, private: Private) -> std::result::Result<Self, String> {
        let public = private.public()?;
        if public.thumbprint() != info.kid {
            return Err(format!("key {} does not match its kid", info.kid));
        }
        let decoding = public.decoding_key();
        Ok(Self { info, private, public, decoding })
    }
}

fn pem_encode(der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(Base64::encode_string(der));
    let mut pem = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        // RFC 7468 §2: lines of 64 characters.
        let (line, tail) = rest.split_at(rest.len().min(64));
        pem.push_str(line);
        pem.push('\n');
        rest = tail;
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

fn pem_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let body = text.trim().strip_prefix(PEM_BEGIN)?.strip_suffix(PEM_END)?;
    let b64: Zeroizing<String> = Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    Base64::decode_vec(&b64).ok().map(Zeroizing::new)
}

/// A kid becomes a file name, so only what a thumbprint can contain is accepted: no `/`, no `..`.
fn check_kid(kid: &str) -> Result<()> {
    if !kid.is_empty() && kid.len() <= 128 && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(AuthError::KeyFile(format!("{METADATA_FILE} names an invalid kid {kid:?}")))
    }
}

fn key_file_name(kid: &str) -> String {
    format!("{kid}.pem")
}

fn generation_of(metadata: &[u8]) -> String {
    b64url(&Sha256::digest(metadata))
}

/// Creates `<dir>/.<name>.<random>.tmp` (mode 0600), writes and flushes it. The random part keeps
/// two writers from sharing a temporary file.
fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let suffix = random::bytes::<6>()?.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let path = dir.join(format!(".{name}.{suffix}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&path).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&path);
        return Err(io_error(&path, e));
    }
    Ok(path)
}

/// Makes renames and removals in `dir` durable, not only the files' contents.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replaces `<dir>/<name>` with `bytes` atomically.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let temp = write_temp(dir, name, bytes)?;
    let target = dir.join(name);
    if let Err(e) = fs::rename(&temp, &target) {
        let _ = fs::remove_file(&temp);
        return Err(io_error(&target, e));
    }
    sync_dir(dir)
}

/// Writes `<dir>/<name>` only if it does not exist yet, atomically: `false` if another process
/// got there first. A hard link, unlike a rename, refuses to replace the target.
fn publish_if_absent(dir: &Path, name: &str, bytes: &[u8]) -> Result<bool> {
    let temp = write_temp(dir, name, bytes)?;
    let target = dir.join(name);
    let linked = fs::hard_link(&temp, &target);
    fs::remove_file(&temp).map_err(|e| io_error(&temp, e))?;
    match linked {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error(&target, e)),
    }
}

fn read_metadata(dir: &Path) -> Result<Option<Vec<u8>>> {
    let path = dir.join(METADATA_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path, e)),
    }
}

fn parse_metadata(bytes: &[u8]) -> Result<Metadata> {
    serde_json::from_slice(bytes).map_err(|e| AuthError::KeyFile(format!("{METADATA_FILE}: {e}")))
}

fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io_error(dir, e))
}

/// Generates a key and writes its file; returns its metadata entry (current, created `now`).
fn new_key_file(dir: &Path, alg: SigningAlg, now: i64) -> Result<KeyInfo> {
    let (private, der) = Private::generate(alg)?;
    let kid = private.public().map_err(AuthError::KeyGeneration)?.thumbprint();
    write_atomic(dir, &key_file_name(&kid), pem_encode(&der).as_bytes())?;
    Ok(KeyInfo { kid, alg, created: now, retired_at: None })
}

fn metadata_bytes(keys: Vec<KeyInfo>) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&Metadata { keys })
        .map_err(|e| AuthError::KeyStore(format!("{METADATA_FILE} cannot be written: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Removes key files `keys.json` no longer names and temporary files left by a crash.
fn remove_strays(dir: &Path, kept: &[KeyInfo]) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let stray_key = name.strip_suffix(".pem").is_some_and(|kid| !kept.iter().any(|k| k.kid == kid));
        let stray_temp = name.starts_with('.') && name.ends_with(".tmp");
        if stray_key || stray_temp {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path, e)),
            }
        }
    }
    sync_dir(dir)
}

fn typ_matches(expected: &str, found: &str) -> bool {
    fn bare(typ: &str) -> &str {
        match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        }
    }
    bare(expected).eq_ignore_ascii_case(bare(found))
}

impl KeyRing {
    /// Loads the ring in `dir`, or on first start creates `dir` (0700) with one ES256 and one
    /// RS256 key. If two processes start together, one ring wins and both load it.
    pub fn load_or_create(dir: &Path, now: i64) -> Result<Self> {
        if let Some(bytes) = read_metadata(dir)? {
            return Self::from_metadata(dir, &bytes);
        }
        create_dir(dir)?;
        let keys = SigningAlg::ALL.iter().map(|&alg| new_key_file(dir, alg, now)).collect::<Result<Vec<_>>>()?;
        let bytes = metadata_bytes(keys.clone())?;
        if publish_if_absent(dir, METADATA_FILE, &bytes)? {
            Self::from_metadata(dir, &bytes)
        } else {
            for key in &keys {
                let _ = fs::remove_file(dir.join(key_file_name(&key.kid)));
            }
            Self::load(dir)
        }
    }

    /// Loads the ring in `dir`; an error if there is none.
    pub fn load(dir: &Path) -> Result<Self> {
        match read_metadata(dir)? {
            Some(bytes) => Self::from_metadata(dir, &bytes),
            None => Err(AuthError::KeyStore(format!("{}: no {METADATA_FILE}", dir.display()))),
        }
    }

    /// Retires the current keys at `now`, adds a new key of each algorithm, and drops (from the
    /// ring and the disk) keys retired more than `keep_retired_for_secs` ago. Choose the keep
    /// period longer than the longest token lifetime plus the leeway, or tokens signed just
    /// before a rotation stop verifying early.
    pub fn rotate(dir: &Path, now: i64, keep_retired_for_secs: i64) -> Result<Self> {
        Self::rewrite(dir, now, keep_retired_for_secs, true)
    }

    /// Only the dropping part of [`Self::rotate`]: for a periodic clean-up without new keys.
    pub fn prune(dir: &Path, now: i64, keep_retired_for_secs: i64) -> Result<Self> {
        Self::rewrite(dir, now, keep_retired_for_secs, false)
    }

    fn rewrite(dir: &Path, now: i64, keep_retired_for_secs: i64, new_keys: bool) -> Result<Self> {
        // Loading first refuses to rotate a damaged ring, which would publish it further.
        let current = Self::load(dir)?;
        let keep = keep_retired_for_secs.max(0);
        let mut kept = Vec::new();
        for key in &current.keys {
            let mut info = key.info.clone();
            if new_keys && info.retired_at.is_none() {
                info.retired_at = Some(now);
            }
            if info.retired_at.is_none_or(|retired| retired.saturating_add(keep) >= now) {
                kept.push(info);
            }
        }
        if new_keys {
            for alg in SigningAlg::ALL {
                kept.push(new_key_file(dir, alg, now)?);
            }
        }
        let bytes = metadata_bytes(kept.clone())?;
        write_atomic(dir, METADATA_FILE, &bytes)?;
        remove_strays(dir, &kept)?;
        Self::from_metadata(dir, &bytes)
    }

    fn from_metadata(dir: &Path, bytes: &[u8]) -> Result<Self> {
        let metadata = parse_metadata(bytes)?;
        let mut keys: Vec<Key> = Vec::with_capacity(metadata.keys.len());
        for info in metadata.keys {
            check_kid(&info.kid)?;
            if keys.iter().any(|k| k.info.kid == info.kid) {
                return Err(AuthError::KeyFile(format!("{METADATA_FILE} names kid {} twice", info.kid)));
            }
            let path = dir.join(key_file_name(&info.kid));
            let pem = Zeroizing::new(fs::read_to_string(&path).map_err(|e| io_error(&path, e))?);
            let der = pem_decode(&pem)
                .ok_or_else(|| AuthError::KeyFile(format!("{}: not a PKCS#8 PEM file", path.display())))?;
            let private = Private::from_pkcs8(info.alg, &der)
                .map_err(|e| AuthError::KeyFile(format!("{}: {e}", path.display())))?;
            keys.push(Key::new(info, private).map_err(|e| AuthError::KeyFile(format!("{}: {e}", path.display())))?);
        }
        let ring = Self { keys, generation: generation_of(bytes) };
        for alg in SigningAlg::ALL {
            ring.current(alg)?;
        }
        Ok(ring)
    }

    /// Changes whenever `keys.json` does: a hash of its contents.
    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// The generation of the ring now on disk, read without loading any key: poll this and
    /// [`Self::load`] when it differs from [`Self::generation`].
    pub fn stored_generation(dir: &Path) -> Result<String> {
        let path = dir.join(METADATA_FILE);
        fs::read(&path).map(|bytes| generation_of(&bytes)).map_err(|e| io_error(&path, e))
    }

    /// Every key's metadata, current and retired, in `keys.json`'s order.
    pub fn keys(&self) -> impl Iterator<Item = &KeyInfo> {
        self.keys.iter().map(|k| &k.info)
    }

    /// The newest non-retired key of `alg`.
    fn current(&self, alg: SigningAlg) -> Result<&Key> {
        self.keys
            .iter()
            .filter(|k| k.info.alg == alg && k.info.retired_at.is_none())
            .max_by_key(|k| k.info.created)
            .ok_or_else(|| AuthError::KeyFile(format!("{METADATA_FILE} has no current {} key", alg.as_str())))
    }

    /// The kid new tokens of `alg` are signed with.
    pub fn current_kid(&self, alg: SigningAlg) -> Result<&str> {
        Ok(&self.current(alg)?.info.kid)
    }

    /// The JWK Set to publish at `jwks_uri`: public members only, current keys first.
    pub fn jwks(&self) -> Value {
        let (current, retired): (Vec<&Key>, Vec<&Key>) = self.keys.iter().partition(|k| k.info.retired_at.is_none());
        let keys: Vec<Value> = current.iter().chain(&retired).map(|k| k.public.jwk(&k.info)).collect();
        json!({ "keys": keys })
    }

    /// A compact JWS of `claims` (which must serialise to a JSON object) with the header
    /// `{alg, typ, kid}`, signed by the current key of `alg`.
    pub fn sign(&self, alg: SigningAlg, typ: &str, claims: &impl Serialize) -> Result<String> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let key = self.current(alg)?;
        let header = serde_json::to_vec(&Header { alg: alg.as_str(), typ, kid: &key.info.kid })
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| AuthError::Signing(e.to_string()))?;
        if payload.first() != Some(&b'{') {
            return Err(AuthError::Signing("the claims are not a JSON object".to_owned()));
        }
        let mut token = b64url(&header);
        token.push('.');
        token.push_str(&b64url(&payload));
        let signature = key.private.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64url(&signature));
        Ok(token)
    }

    /// Verifies a token this server signed and returns its claims. Refuses, each with its own
    /// [`TokenRejection`]: a malformed token, `alg: none`, HS*, an algorithm not in `expect`, a
    /// `crit` header, a wrong `typ`, no kid or an unknown one, a kid of another algorithm, a bad
    /// signature, a wrong `iss` or `aud`, no `exp` or an expired one, `nbf` or `iat` in the future.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, expect: &Expectation<'_>) -> Result<T> {
        let accepted: Vec<Alg> = expect.algorithms.iter().map(|a| a.alg()).collect();
        let jws = jwt::parse(token, &accepted)?;
        match jws.typ.as_deref() {
            Some(typ) if typ_matches(expect.typ, typ) => {}
            found => {
                return Err(TokenRejection::WrongType {
                    expected: expect.typ.to_owned(),
                    found: found.map(|t| t.chars().take(64).collect()),
                }
                .into());
            }
        }
        let kid = jws.kid.as_deref().ok_or(TokenRejection::MissingKid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.info.kid == kid)
            .ok_or_else(|| TokenRejection::UnknownKid(kid.chars().take(64).collect()))?;
        if key.info.alg.alg() != jws.alg {
            return Err(
                TokenRejection::KeyAlgMismatch { kid: key.info.kid.clone(), alg: jws.alg.as_str().to_owned() }.into()
            );
        }
        jws.verify_signature(&key.decoding)?;
        let claims = jws.registered()?;
        claims.check_issuer(expect.issuer)?;
        claims.check_audience(expect.audiences.iter().copied())?;
        claims.check_times(expect.now, expect.leeway)?;
        Ok(jws.claims()?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://iaso.example";
    const AUD: &str = "https://iaso.example/fhir";
    const AUDS: &[&str] = &[AUD];
    const DAY: i64 = 86_400;

    fn new_ring() -> (tempfile::TempDir, PathBuf, KeyRing) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data").join("keys");
        let ring = KeyRing::load_or_create(&dir, NOW).unwrap();
        (tmp, dir, ring)
    }

    fn claims(now: i64) -> Value {
        json!({"iss": ISS, "sub": "user-1", "aud": AUD, "iat": now, "exp": now + 300, "scope": "patient/*.rs"})
    }

    fn expect(now: i64) -> Expectation<'static> {
        Expectation::new(ISS, AUDS, TYP_ACCESS_TOKEN, now)
    }

    fn code(result: Result<Value>) -> &'static str {
        result.unwrap_err().code()
    }

    fn b64(bytes: &[u8]) -> String {
        Base64UrlUnpadded::encode_string(bytes)
    }

    fn header_of(token: &str) -> Value {
        let header = token.split('.').next().unwrap();
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(header).unwrap()).unwrap()
    }

    /// The token with its header replaced, keeping payload and signature.
    fn with_header(token: &str, header: &Value) -> String {
        let (_, rest) = token.split_once('.').unwrap();
        format!("{}.{rest}", b64(&serde_json::to_vec(header).unwrap()))
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn first_start_creates_private_files_and_a_reload_gives_the_same_kids() {
        let (_tmp, dir, ring) = new_ring();
        let kids: Vec<String> = ring.keys().map(|k| k.kid.clone()).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(ring.keys().map(|k| k.alg).collect::<Vec<_>>(), SigningAlg::ALL);
        assert!(ring.keys().all(|k| k.created == NOW && k.retired_at.is_none()));
        // A SHA-256 thumbprint, base64url: 43 characters.
        assert!(kids.iter().all(|kid| kid.len() == 43));
        let mut expected = vec![METADATA_FILE.to_owned(), key_file_name(&kids[0]), key_file_name(&kids[1])];
        expected.sort();
        assert_eq!(file_names(&dir), expected, "no temporary files are left");
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir), 0o700);
            for name in &expected {
                assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
            }
        }
        let pem = fs::read_to_string(dir.join(key_file_name(&kids[0]))).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"));
        let metadata: Value = serde_json::from_slice(&fs::read(dir.join(METADATA_FILE)).unwrap()).unwrap();
        assert_eq!(metadata["keys"][0], json!({"kid": kids[0], "alg": "ES256", "created": NOW, "retired_at": null}));

        for again in [KeyRing::load(&dir).unwrap(), KeyRing::load_or_create(&dir, NOW + 99).unwrap()] {
            assert_eq!(again.keys().map(|k| k.kid.clone()).collect::<Vec<_>>(), kids);
            assert_eq!(again.generation(), ring.generation());
            assert_eq!(again.jwks(), ring.jwks());
        }
        assert_eq!(KeyRing::stored_generation(&dir).unwrap(), ring.generation());
    }

    #[test]
    fn two_processes_starting_together_share_one_ring() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| KeyRing::load_or_create(&dir, NOW).unwrap());
            let b = s.spawn(|| KeyRing::load_or_create(&dir, NOW).unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a.generation(), b.generation());
        assert_eq!(a.jwks(), b.jwks());
        assert_eq!(file_names(&dir).len(), 3, "the losing ring's key files are removed");
    }

    #[test]
    fn load_needs_a_ring_and_refuses_a_damaged_one() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(KeyRing::load(tmp.path()).unwrap_err().code(), "key_store_failed");
        let (_tmp, dir, ring) = new_ring();
        let [es, rs] = [SigningAlg::Es256, SigningAlg::Rs256].map(|a| ring.current_kid(a).unwrap().to_owned());
        // A key file swapped for another key: the thumbprint no longer matches the kid.
        let es_pem = fs::read(dir.join(key_file_name(&es))).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other_ring = KeyRing::load_or_create(other.path(), NOW).unwrap();
        let other_kid = other_ring.current_kid(SigningAlg::Es256).unwrap();
        fs::copy(other.path().join(key_file_name(other_kid)), dir.join(key_file_name(&es))).unwrap();
        assert_eq!(KeyRing::load(&dir).unwrap_err().code(), "key_file_invalid");
        // An ES256 file under the RS256 entry.
        fs::write(dir.join(key_file_name(&es)), &es_pem).unwrap();
        let rs_pem = fs::read(dir.join(key_file_name(&rs))).unwrap();
        fs::write(dir.join(key_file_name(&rs)), &es_pem).unwrap();
        assert_eq!(KeyRing::load(&dir).unwrap_err().code(), "key_file_invalid");
        fs::write(dir.join(key_file_name(&rs)), &rs_pem).unwrap();
        KeyRing::load(&dir).unwrap();
        // A missing key file, a kid that would leave the directory, a truncated keys.json.
        fs::remove_file(dir.join(key_file_name(&rs))).unwrap();
        assert_eq!(KeyRing::load(&dir).unwrap_err().code(), "key_store_failed");
        let traversal = json!({"keys": [{"kid": "../../etc/x", "alg": "ES256", "created": NOW, "retired_at": null}]});
        fs::write(dir.join(METADATA_FILE), traversal.to_string()).unwrap();
        assert_eq!(KeyRing::load(&dir).unwrap_err().code(), "key_file_invalid");
        fs::write(dir.join(METADATA_FILE), "{\"keys\": [").unwrap();
        assert_eq!(KeyRing::load(&dir).unwrap_err().code(), "key_file_invalid");
    }

    #[test]
    fn jwks_publishes_public_members_only() {
        let (_tmp, _dir, ring) = new_ring();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        for key in keys {
            let members: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(!members.contains(&private), "{private} in {key}");
            }
            assert_eq!(key["use"], "sig");
            let kid = key["kid"].as_str().unwrap();
            match key["kty"].as_str().unwrap() {
                "EC" => {
                    assert_eq!(members, ["kty", "kid", "alg", "use", "crv", "x", "y"]);
                    assert_eq!((key["alg"].as_str(), key["crv"].as_str()), (Some("ES256"), Some("P-256")));
                    assert_eq!(key["x"].as_str().unwrap().len(), 43, "32 bytes, unpadded");
                    assert_eq!(kid, ring.current_kid(SigningAlg::Es256).unwrap());
                }
                "RSA" => {
                    assert_eq!(members, ["kty", "kid", "alg", "use", "n", "e"]);
                    assert_eq!(key["alg"], "RS256");
                    assert_eq!(key["e"], "AQAB");
                    assert_eq!(key["n"].as_str().unwrap().len(), 342, "2048 bits, no leading zero, unpadded");
                    assert_eq!(kid, ring.current_kid(SigningAlg::Rs256).unwrap());
                }
                other => panic!("kty {other}"),
            }
            assert!(!jwks.to_string().contains('='), "base64url without padding");
        }
    }

    /// RFC 7638 §3.1's example key and thumbprint, through this module's code.
    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let public = Public::Rsa { n: Base64UrlUnpadded::decode_vec(n).unwrap(), e: vec![1, 0, 1] };
        assert_eq!(public.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn sign_and_verify_round_trip_for_both_algorithms() {
        let (_tmp, _dir, ring) = new_ring();
        #[derive(Debug, Deserialize, PartialEq)]
        struct AccessToken {
            sub: String,
            scope: String,
        }
        for alg in SigningAlg::ALL {
            let token = ring.sign(alg, TYP_ACCESS_TOKEN, &claims(NOW)).unwrap();
            let kid = ring.current_kid(alg).unwrap();
            assert_eq!(header_of(&token), json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid}));
            let typed: AccessToken = ring.verify(&token, &expect(NOW + 60)).unwrap();
            assert_eq!(typed, AccessToken { sub: "user-1".to_owned(), scope: "patient/*.rs".to_owned() });
            assert_eq!(ring.verify::<Value>(&token, &expect(NOW)).unwrap(), claims(NOW));
            // Claims that do not fit the caller's type.
            #[derive(Debug, Deserialize)]
            #[allow(dead_code)]
            struct NeedsEmail {
                email: String,
            }
            assert_eq!(ring.verify::<NeedsEmail>(&token, &expect(NOW)).unwrap_err().code(), "token_invalid_claims");
        }
        assert_eq!(ring.sign(SigningAlg::Es256, TYP_ID_TOKEN, &"a string").unwrap_err().code(), "token_signing_failed");
    }

    #[test]
    fn the_typ_keeps_id_tokens_and_access_tokens_apart() {
        let (_tmp, _dir, ring) = new_ring();
        let id_token = ring.sign(SigningAlg::Rs256, TYP_ID_TOKEN, &claims(NOW)).unwrap();
        assert_eq!(code(ring.verify(&id_token, &expect(NOW))), "token_wrong_typ");
        let as_id = Expectation::new(ISS, AUDS, TYP_ID_TOKEN, NOW);
        ring.verify::<Value>(&id_token, &as_id).unwrap();
        let access = ring.sign(SigningAlg::Es256, TYP_ACCESS_TOKEN, &claims(NOW)).unwrap();
        assert_eq!(code(ring.verify(&access, &as_id)), "token_wrong_typ");
        // RFC 7515 §4.1.9: `application/` may be added and case does not matter; no typ at all
        // is refused. The header change breaks the signature, which is checked later.
        let mut header = header_of(&access);
        header["typ"] = json!("application/AT+JWT");
        assert_eq!(code(ring.verify(&with_header(&access, &header), &expect(NOW))), "token_bad_signature");
        header.as_object_mut().unwrap().remove("typ");
        assert_eq!(code(ring.verify(&with_header(&access, &header), &expect(NOW))), "token_wrong_typ");
        assert!(typ_matches("at+jwt", "application/at+JWT"));
        assert!(!typ_matches("at+jwt", "jwt"));
    }

    #[test]
    fn header_refusals() {
        let (_tmp, _dir, ring) = new_ring();
        let token = ring.sign(SigningAlg::Es256, TYP_ACCESS_TOKEN, &claims(NOW)).unwrap();
        let es_kid = ring.current_kid(SigningAlg::Es256).unwrap();
        let rs_kid = ring.current_kid(SigningAlg::Rs256).unwrap();
        let cases = [
            (json!({"alg": "none", "typ": "at+jwt", "kid": es_kid}), "token_alg_none"),
            (json!({"alg": "HS256", "typ": "at+jwt", "kid": es_kid}), "token_alg_symmetric"),
            (json!({"alg": "HS512", "typ": "at+jwt"}), "token_alg_symmetric"),
            (json!({"alg": "ES384", "typ": "at+jwt", "kid": es_kid}), "token_alg_not_accepted"),
            (json!({"alg": "RS256", "typ": "at+jwt", "kid": es_kid}), "token_key_alg_mismatch"),
            (json!({"alg": "ES256", "typ": "at+jwt", "kid": rs_kid}), "token_key_alg_mismatch"),
            (json!({"alg": "ES256", "typ": "at+jwt", "kid": "not-a-key"}), "token_unknown_kid"),
            (json!({"alg": "ES256", "typ": "at+jwt"}), "token_missing_kid"),
            (
                json!({"alg": "ES256", "typ": "at+jwt", "kid": es_kid, "crit": ["b64"], "b64": false}),
                "token_crit_unsupported",
            ),
            (json!({"alg": "ES256", "typ": "at+jwt", "kid": 7}), "token_malformed"),
        ];
        for (header, expected) in cases {
            assert_eq!(code(ring.verify(&with_header(&token, &header), &expect(NOW))), expected, "{header}");
        }
        let unsigned = format!("{}.", with_header(&token, &json!({"alg": "none"})).rsplit_once('.').unwrap().0);
        assert_eq!(code(ring.verify(&unsigned, &expect(NOW))), "token_alg_none");
        // Accepting ES256 only refuses an RS256 token of this very ring.
        let rs = ring.sign(SigningAlg::Rs256, TYP_ACCESS_TOKEN, &claims(NOW)).unwrap();
        let es_only = Expectation { algorithms: &[SigningAlg::Es256], ..expect(NOW) };
        assert_eq!(code(ring.verify(&rs, &es_only)), "token_alg_not_accepted");
        for bad in ["", "abc", "a.b", "a.b.c.d.e", &format!("{token}.x")] {
            assert_eq!(code(ring.verify(bad, &expect(NOW))), "token_malformed", "{bad}");
        }
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let (_tmp, _dir, ring) = new_ring();
        for alg in SigningAlg::ALL {
            let token = ring.sign(alg, TYP_ACCESS_TOKEN, &claims(NOW)).unwrap();
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut forged = claims(NOW);
            forged["scope"] = json!("system/*.cruds");
            let original_payload = std::mem::replace(&mut parts[1], b64(&serde_json::to_vec(&forged).unwrap()));
            assert_eq!(code(ring.verify(&parts.join("."), &expect(NOW))), "token_bad_signature");
            parts[1] = original_payload;
            let sig = Base64UrlUnpadded::decode_vec(&parts[2]).unwrap();
            let mut flipped = sig.clone();
            flipped[10] ^= 1;
            parts[2] = b64(&flipped);
            assert_eq!(code(ring.verify(&parts.join("."), &expect(NOW))), "token_bad_signature");
            parts[2] = b64(&sig[..sig.len() - 1]);
            assert_eq!(code(ring.verify(&parts.join("."), &expect(NOW))), "token_bad_signature");
        }
        // A token of another Iaso (same kid syntax, other keys) does not verify here.
        let (_tmp2, _dir2, other) = new_ring();
        let foreign = other.sign(SigningAlg::Es256, TYP_ACCESS_TOKEN, &claims(NOW)).unwrap();
        assert_eq!(code(ring.verify(&foreign, &expect(NOW))), "token_unknown_kid");
    }

    #[test]
    fn claim_refusals() {
        let (_tmp, _dir, ring) = new_ring();
        let sign = |changes: Value| {
            let mut c = claims(NOW);
            for (k, v) in changes.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            ring.sign(SigningAlg::Es256, TYP_ACCESS_TOKEN, &c).unwrap()
        };
        let cases = [
            (json!({"exp": NOW - 31}), "token_expired"),
            (json!({"exp": NOW - 30}), "token_expired"),
            (json!({"exp": null}), "token_missing_claim"),
            (json!({"nbf": NOW + 31}), "token_not_yet_valid"),
            (json!({"iat": NOW + 3600}), "token_issued_in_future"),
            (json!({"iss": "https://evil.example"}), "token_wrong_issuer"),
            (json!({"iss": null}), "token_missing_claim"),
            (json!({"aud": "https://iaso.example/other"}), "token_wrong_audience"),
            (json!({"aud": []}), "token_wrong_audience"),
            (json!({"aud": null}), "token_missing_claim"),
            (json!({"exp": 1.5e9}), "token_invalid_claims"),
            (json!({"aud": 3}), "token_invalid_claims"),
        ];
        for (changes, expected) in cases {
            assert_eq!(code(ring.verify(&sign(changes.clone()), &expect(NOW))), expected, "{changes}");
        }
        for within_leeway in [json!({"exp": NOW - 29}), json!({"nbf": NOW + 30}), json!({"iat": NOW + 30})] {
            ring.verify::<Value>(&sign(within_leeway.clone()), &expect(NOW))
                .unwrap_or_else(|e| panic!("{within_leeway}: {e}"));
        }
        ring.verify::<Value>(&sign(json!({"aud": ["https://x.example", AUD]})), &expect(NOW)).unwrap();
        let two_audiences = Expectation::new(ISS, &["https://iaso.example/userinfo", AUD], TYP_ACCESS_TOKEN, NOW);
        ring.verify::<Value>(&sign(json!({})), &two_audiences).unwrap();
        // An exp at the end of time does not overflow the leeway arithmetic.
        ring.verify::<Value>(&sign(json!({"exp": i64::MAX, "nbf": i64::MIN})), &expect(NOW)).unwrap();
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_for_the_keep_period_then_drops_the_key() {
        let (_tmp, dir, ring) = new_ring();
        let before = ring.sign(SigningAlg::Es256, TYP_ACCESS_TOKEN, &claims(NOW)).unwrap();
        let before_rs = ring.sign(SigningAlg::Rs256, TYP_ID_TOKEN, &claims(NOW)).unwrap();
        let old_kids: Vec<String> = ring.keys().map(|k| k.kid.clone()).collect();

        let t1 = NOW + 100;
        let rotated = KeyRing::rotate(&dir, t1, DAY).unwrap();
        assert_ne!(rotated.generation(), ring.generation());
        assert_eq!(KeyRing::stored_generation(&dir).unwrap(), rotated.generation());
        assert_eq!(rotated.keys().count(), 4);
        for info in rotated.keys() {
            let expected = if old_kids.contains(&info.kid) { Some(t1) } else { None };
            assert_eq!(info.retired_at, expected, "{}", info.kid);
        }
        // Published: current keys first, then the retired ones.
        let jwks = rotated.jwks();
        let published: Vec<&str> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(&published[2..], old_kids.iter().map(String::as_str).collect::<Vec<_>>());
        // A token signed before the rotation still verifies; new tokens use the new kids.
        rotated.verify::<Value>(&before, &expect(t1)).unwrap();
        rotated.verify::<Value>(&before_rs, &Expectation::new(ISS, AUDS, TYP_ID_TOKEN, t1)).unwrap();
        for alg in SigningAlg::ALL {
            let new_kid = rotated.current_kid(alg).unwrap();
            assert!(!old_kids.iter().any(|k| k == new_kid));
            let token = rotated.sign(alg, TYP_ACCESS_TOKEN, &claims(t1)).unwrap();
            assert_eq!(header_of(&token)["kid"], new_kid);
            rotated.verify::<Value>(&token, &expect(t1)).unwrap();
        }
        // The reload a running server does gives the same ring.
        assert_eq!(KeyRing::load(&dir).unwrap().jwks(), rotated.jwks());

        // Within the keep period a second rotation keeps the first keys.
        let t2 = t1 + DAY;
        let second = KeyRing::rotate(&dir, t2, DAY).unwrap();
        assert_eq!(second.keys().count(), 6);
        // Past it they are gone, from the ring and the disk, and their tokens no longer verify.
        let t3 = t1 + DAY + 1;
        let third = KeyRing::prune(&dir, t3, DAY).unwrap();
        assert_eq!(third.keys().count(), 4);
        for kid in &old_kids {
            assert!(!dir.join(key_file_name(kid)).exists(), "{kid}");
            assert!(!third.jwks().to_string().contains(kid.as_str()));
        }
        let long_lived = Expectation { leeway: 10 * DAY, ..expect(t3) };
        assert_eq!(code(third.verify(&before, &long_lived)), "token_unknown_kid");
        assert_eq!(file_names(&dir).len(), 5, "keys.json and four key files");
        // A crash's leftovers go at the next rotation.
        fs::write(dir.join(".keys.json.0123.tmp"), "{").unwrap();
        fs::write(dir.join("orphan.pem"), "x").unwrap();
        let fourth = KeyRing::rotate(&dir, t3 + 1, 0).unwrap();
        assert_eq!(fourth.keys().count(), 4, "keep 0: the keys retired by this rotation stay, older ones go");
        assert_eq!(file_names(&dir).len(), 5);
        assert_eq!(KeyRing::rotate(&dir, t3 + 2, -5).unwrap().keys().count(), 4, "a negative keep is 0");
    }

    /// Another service needs nothing but the published JWK Set: here, jsonwebtoken's own JWK
    /// parsing and `decode`, as a resource server built on it would do.
    #[test]
    fn the_jwks_alone_verifies_iaso_tokens_elsewhere() {
        use jsonwebtoken::jwk::JwkSet;
        use jsonwebtoken::{Validation, decode, decode_header};

        let (_tmp, _dir, ring) = new_ring();
        let set: JwkSet = serde_json::from_str(&ring.jwks().to_string()).unwrap();
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
        for alg in SigningAlg::ALL {
            let token = ring.sign(alg, TYP_ACCESS_TOKEN, &claims(now)).unwrap();
            let kid = decode_header(&token).unwrap().kid.unwrap();
            let key = DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
            let mut validation = Validation::new(alg.alg().jsonwebtoken());
            validation.set_issuer(&[ISS]);
            validation.set_audience(&[AUD]);
            let data = decode::<Value>(&token, &key, &validation).unwrap();
            assert_eq!(data.claims["sub"], "user-1");
            let mut tampered = token.clone();
            tampered.insert(tampered.find('.').unwrap() + 1, 'e');
            assert!(decode::<Value>(&tampered, &key, &validation).is_err());
        }
        // And through this crate's client-assertion path, which takes any JWK Set.
        let assertion = json!({"iss": "c", "sub": "c", "aud": ISS, "iat": NOW, "exp": NOW + 60, "jti": "j"});
        let token = ring.sign(SigningAlg::Es256, "JWT", &assertion).unwrap();
        let expect = jwt::AssertionExpectation {
            algorithms: &[Alg::Es256, Alg::Rs256],
            ..jwt::AssertionExpectation::new("c", ISS, NOW)
        };
        assert_eq!(jwt::verify_with_jwks(&token, &ring.jwks(), &expect).unwrap().jti, "j");
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let (_tmp, _dir, ring) = new_ring();
        let text = format!("{ring:?}");
        assert!(text.contains(ring.current_kid(SigningAlg::Es256).unwrap()));
        let jwks = ring.jwks();
        assert!(!text.contains(jwks["keys"][0]["x"].as_str().unwrap()));
        assert!(!text.contains(jwks["keys"][1]["n"].as_str().unwrap()));
    }
}
