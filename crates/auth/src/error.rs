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
