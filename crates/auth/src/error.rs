/// Everything that can go wrong in this crate. Foreign errors are carried as text so that the
/// public API does not tie callers to the versions of argon2, totp-rs or qrcode.
///
/// A wrong password, TOTP code, backup code or PKCE verifier is not an error: those checks
/// answer `false` / `None`, and errors mean the input or the stored data is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A new password breaks the policy; the message is meant for the user.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    /// A stored password hash does not parse or names an algorithm this crate cannot verify.
    #[error("the stored password hash is unusable: {0}")]
    MalformedHash(String),
    /// Argon2 parameters out of the algorithm's range.
    #[error("invalid Argon2 parameters: {0}")]
    InvalidParams(String),
    /// Argon2 itself failed (out of memory, for instance).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// A TOTP secret that is not base32 or is shorter than 128 bits.
    #[error("invalid TOTP secret: {0}")]
    InvalidTotpSecret(String),
    /// An issuer or account name that cannot go into an `otpauth://` label.
    #[error("invalid TOTP label: {0}")]
    InvalidTotpLabel(String),
    #[error("the QR code cannot be built: {0}")]
    Qr(String),
    /// A stored backup code record that does not parse.
    #[error("the stored backup code is unusable: {0}")]
    MalformedBackupCode(String),
    /// A PKCE `code_verifier` outside RFC 7636's syntax (43 to 128 unreserved characters).
    #[error("invalid PKCE code_verifier: {0}")]
    PkceVerifier(&'static str),
    /// A PKCE `code_challenge` that is not 43 base64url characters (an S256 digest).
    #[error("invalid PKCE code_challenge: {0}")]
    PkceChallenge(&'static str),
    /// `plain`, or no method (which RFC 7636 reads as `plain`): refused by policy.
    #[error("PKCE code_challenge_method {0:?} is refused: use S256")]
    PkcePlainRefused(String),
    #[error("unknown PKCE code_challenge_method {0:?}: use S256")]
    PkceUnknownMethod(String),
    #[error("invalid email address: {0}")]
    InvalidEmail(&'static str),
    #[error("invalid role {0:?}: use lower-case letters, digits and dashes, starting with a letter")]
    InvalidRole(String),
    #[error("invalid fhirUser {0:?}: use Patient/id, Practitioner/id or RelatedPerson/id")]
    InvalidFhirUser(String),
    /// A JWT that is refused: the server answers `401` with `error="invalid_token"` (or
    /// `invalid_client` for a client assertion) and the rejection's `Display` as the description.
    #[error(transparent)]
    Token(#[from] TokenRejection),
    /// The key directory or one of its files cannot be read, written, renamed or removed.
    #[error("the signing key store failed: {0}")]
    KeyStore(String),
    /// The key metadata or a key file does not parse, or a key does not match its kid: the
    /// directory was edited or damaged, and guessing would publish or sign with the wrong key.
    #[error("the signing key store is unusable: {0}")]
    KeyFile(String),
    #[error("signing key generation failed: {0}")]
    KeyGeneration(String),
    #[error("token signing failed: {0}")]
    Signing(String),
    /// A client's registered JWK Set that is not a JWK Set or holds an unusable key: the client's
    /// registration is at fault, not the assertion.
    #[error("the client's JWK Set is unusable: {0}")]
    InvalidJwks(String),
}

impl AuthError {
    /// A stable machine-readable code for logs, API responses and translations.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Policy(v) => v.code(),
            Self::MalformedHash(_) => "malformed_password_hash",
            Self::InvalidParams(_) => "invalid_argon2_params",
            Self::Hashing(_) => "password_hashing_failed",
            Self::Random(_) => "random_failed",
            Self::InvalidTotpSecret(_) => "invalid_totp_secret",
            Self::InvalidTotpLabel(_) => "invalid_totp_label",
            Self::Qr(_) => "qr_failed",
            Self::MalformedBackupCode(_) => "malformed_backup_code",
            Self::PkceVerifier(_) => "invalid_code_verifier",
            Self::PkceChallenge(_) => "invalid_code_challenge",
            Self::PkcePlainRefused(_) => "pkce_plain_refused",
            Self::PkceUnknownMethod(_) => "pkce_unknown_method",
            Self::InvalidEmail(_) => "invalid_email",
            Self::InvalidRole(_) => "invalid_role",
            Self::InvalidFhirUser(_) => "invalid_fhir_user",
            Self::Token(r) => r.code(),
            Self::KeyStore(_) => "key_store_failed",
            Self::KeyFile(_) => "key_file_invalid",
            Self::KeyGeneration(_) => "key_generation_failed",
            Self::Signing(_) => "token_signing_failed",
            Self::InvalidJwks(_) => "invalid_jwks",
        }
    }
}

/// Why a new password is refused. `Display` is a sentence the user can act on; [`Self::code`]
/// is stable for translations and API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error(
        "Use at least {min} characters (this password has {actual}). A few unrelated words make a long password that is easy to remember."
    )]
    TooShort { min: usize, actual: usize },
    #[error("Use at most {max} characters (this password has {actual}).")]
    TooLong { max: usize, actual: usize },
    #[error(
        "This password is too common: it, or it with digits or symbols added, appears in lists of leaked passwords. Choose words others are unlikely to use."
    )]
    Common,
    #[error("Do not use your email address or the name before its @ in your password.")]
    ContainsEmail,
}

impl PolicyViolation {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::Common => "password_too_common",
            Self::ContainsEmail => "password_contains_email",
        }
    }
}

/// Why a JWT is refused, one variant per check so logs and tests can tell them apart.
///
/// `Display` goes into `WWW-Authenticate: Bearer error_description="..."`, so it keeps to RFC
/// 6750's characters (printable ASCII without `"` or a backslash) and never repeats what the
/// token said: values taken from a token (kid, alg, typ) live in the fields, for logs only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the token is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("unsigned tokens (alg none) are refused")]
    AlgNone,
    /// HS256/384/512: a shared secret would let anyone who can verify also forge.
    #[error("tokens signed with a shared secret (HS256, HS384, HS512) are refused")]
    SymmetricAlg,
    #[error("the token's signing algorithm is not accepted here")]
    AlgNotAccepted(String),
    /// A `crit` header: RFC 7515 requires refusing extensions that are not understood, and
    /// none are.
    #[error("the token has a critical header extension that is not supported")]
    UnsupportedCrit,
    #[error("the token is not of the expected type (typ)")]
    WrongType { expected: String, found: Option<String> },
    #[error("the token names no key (kid) and none can be chosen")]
    MissingKid,
    #[error("the token's key (kid) is not known")]
    UnknownKid(String),
    #[error("the token's algorithm does not match its key")]
    KeyAlgMismatch { kid: String, alg: String },
    #[error("the token's key is too weak: RSA keys need at least 2048 bits")]
    WeakKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the token lives longer than allowed (exp too far after iat)")]
    TooLongLived,
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the token's issuer (iss) is not accepted")]
    WrongIssuer,
    #[error("the token's subject (sub) does not match its issuer")]
    WrongSubject,
    #[error("the token is not meant for this audience (aud)")]
    WrongAudience,
    /// A registered claim of the wrong JSON type, or claims that do not fit the caller's type;
    /// the field holds serde's message, which may quote the token.
    #[error("the token's claims do not have the expected form")]
    InvalidClaims(String),
}

impl TokenRejection {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "token_malformed",
            Self::AlgNone => "token_alg_none",
            Self::SymmetricAlg => "token_alg_symmetric",
            Self::AlgNotAccepted(_) => "token_alg_not_accepted",
            Self::UnsupportedCrit => "token_crit_unsupported",
            Self::WrongType { .. } => "token_wrong_typ",
            Self::MissingKid => "token_missing_kid",
            Self::UnknownKid(_) => "token_unknown_kid",
            Self::KeyAlgMismatch { .. } => "token_key_alg_mismatch",
            Self::WeakKey => "token_weak_key",
            Self::BadSignature => "token_bad_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::IssuedInFuture => "token_issued_in_future",
            Self::TooLongLived => "token_too_long_lived",
            Self::MissingClaim(_) => "token_missing_claim",
            Self::WrongIssuer => "token_wrong_issuer",
            Self::WrongSubject => "token_wrong_subject",
            Self::WrongAudience => "token_wrong_audience",
            Self::InvalidClaims(_) => "token_invalid_claims",
        }
    }
}
