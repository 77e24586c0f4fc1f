//! What the identity provider keeps besides accounts: browser sessions, second factors, the
//! counters behind lockout, and auth events. The rules (how long a session lives, when a
//! counter locks, what a code is) belong to the `auth` crate and the server; the store keeps
//! rows and makes the few updates that race (a failure counted twice at once, a TOTP step
//! or backup code used twice at once) atomic.

use chrono::{DateTime, Utc};

/// How far a browser session has come through sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    /// The password was right; the second factor is still owed. Grants nothing else.
    SecondFactor,
    /// Signed in, but the account must enrol a second factor (staff when MFA is required)
    /// before anything else.
    Enrol,
    /// Signed in.
    Active,
}

impl SessionStage {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStage::SecondFactor => "second_factor",
            SessionStage::Enrol => "enrol",
            SessionStage::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "second_factor" => SessionStage::SecondFactor,
            "enrol" => SessionStage::Enrol,
            "active" => SessionStage::Active,
            _ => return None,
        })
    }
}

/// A browser session. The cookie carries a random token; the store keeps only its digest, so a
/// copy of the database does not let anyone in.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// A public handle (the account page names sessions by it to revoke one); not the token.
    pub id: String,
    /// The digest of the cookie's token (the caller computes it); unique.
    pub token_hash: String,
    pub account_id: String,
    pub stage: SessionStage,
    pub created: DateTime<Utc>,
    /// The last request seen; the idle timeout counts from it.
    pub last_seen: DateTime<Utc>,
    /// The absolute end of the session, whatever its activity.
    pub expires: DateTime<Utc>,
    /// The browser's `User-Agent`, cut short, so the account page can tell sessions apart.
    pub user_agent: Option<String>,
    /// The peer address at sign-in.
    pub address: Option<String>,
}

/// A second factor: a TOTP secret and the backup codes. `confirmed` is false between the
/// enrolment page showing the secret and the user proving it with a first code; only a
/// confirmed factor is asked for at sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondFactor {
    pub account_id: String,
    /// The TOTP secret in base32.
    pub totp_secret: String,
    pub confirmed: bool,
    /// The last TOTP step accepted (a code is good once).
    pub last_step: Option<i64>,
    /// Backup codes as `auth::backup::StoredBackupCode::encode` writes them, each with whether
    /// it has been used.
    pub backup_codes: Vec<(String, bool)>,
    /// Starts at 1; an update names the version it read and gets the next, so one code used
    /// by two requests at once lets only one of them in.
    pub version: i64,
    pub created: DateTime<Utc>,
}

/// Failed attempts counted under one key (an email's digest, a source address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Failures since the count last started again.
    pub count: i64,
    pub last: DateTime<Utc>,
}

/// Something the identity provider did or refused, for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `login.success`, `login.failure`, `login.locked`, `logout`, `session.revoked`,
    /// `mfa.enabled`, `mfa.disabled`, `password.changed`, …
    pub kind: String,
    /// The account concerned, when one is known (never for a failure on an unknown email).
    pub account_id: Option<String>,
    /// The source address of the request.
    pub address: Option<String>,
    /// JSON with the event's particulars; never a password, code or token.
    pub detail: serde_json::Value,
}
