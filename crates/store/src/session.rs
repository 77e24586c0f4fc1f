//! What the identity provider keeps besides accounts: browser sessions, second factors, the
//! counters behind lockout, and auth events. The rules (how long a session lives, when a
//! counter locks, what a code is) belong to the `auth` crate and the server; the store keeps
//! rows and makes the few updates that race (a failure counted twice at once, a TOTP step
//! or backup code used twice at once) atomic.

use chrono::{DateTime, Utc};

use crate::StoreError;
use crate::common::from_millis;

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

/// A result row of the tables above, whichever the driver; each backend reads its own rows
/// through it, so what a row means is written once.
pub(crate) trait Row {
    fn text(&self, i: usize) -> crate::Result<String>;
    fn opt_text(&self, i: usize) -> crate::Result<Option<String>>;
    fn int(&self, i: usize) -> crate::Result<i64>;
    fn opt_int(&self, i: usize) -> crate::Result<Option<i64>>;
    fn flag(&self, i: usize) -> crate::Result<bool>;
}

fn unreadable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("stored {what} unreadable: {e}"))
}

/// A row of the session columns.
pub(crate) fn session_from(r: &impl Row) -> crate::Result<Session> {
    let stage = r.text(3)?;
    Ok(Session {
        id: r.text(0)?,
        token_hash: r.text(1)?,
        account_id: r.text(2)?,
        stage: SessionStage::parse(&stage).ok_or_else(|| unreadable("session stage", &stage))?,
        created: from_millis(r.int(4)?),
        last_seen: from_millis(r.int(5)?),
        expires: from_millis(r.int(6)?),
        user_agent: r.opt_text(7)?,
        address: r.opt_text(8)?,
    })
}

/// A row of the factor columns.
pub(crate) fn factor_from(r: &impl Row) -> crate::Result<SecondFactor> {
    Ok(SecondFactor {
        account_id: r.text(0)?,
        totp_secret: r.text(1)?,
        confirmed: r.flag(2)?,
        last_step: r.opt_int(3)?,
        backup_codes: serde_json::from_str(&r.text(4)?).map_err(|e| unreadable("backup codes", e))?,
        version: r.int(5)?,
        created: from_millis(r.int(6)?),
    })
}

/// The answer to a compare-and-set of a second factor that updated nothing: the version found
/// instead, or none at all.
pub(crate) fn factor_not_updated(factor: &SecondFactor, stored: Option<i64>) -> StoreError {
    match stored {
        Some(actual) => StoreError::VersionConflict {
            resource_type: "second_factor".into(),
            id: factor.account_id.clone(),
            expected: factor.version,
            actual,
        },
        None => StoreError::NotFound(format!("second factor of account {}", factor.account_id)),
    }
}

/// Backup codes are kept as one JSON array of `[code, used]` pairs.
pub(crate) fn codes_to_text(codes: &[(String, bool)]) -> String {
    serde_json::Value::from(codes.iter().map(|(c, used)| serde_json::json!([c, used])).collect::<Vec<_>>()).to_string()
}

/// A row of `count, last`.
pub(crate) fn failures_from(r: &impl Row) -> crate::Result<Failures> {
    Ok(Failures { count: r.int(0)?, last: from_millis(r.int(1)?) })
}

/// A row of the event columns.
pub(crate) fn event_from(r: &impl Row) -> crate::Result<AuthEvent> {
    Ok(AuthEvent {
        id: r.text(0)?,
        at: from_millis(r.int(1)?),
        kind: r.text(2)?,
        account_id: r.opt_text(3)?,
        address: r.opt_text(4)?,
        detail: serde_json::from_str(&r.text(5)?).map_err(|e| unreadable("auth event detail", e))?,
    })
}

// The statements, shared by both backends: written with `$n` placeholders, which the SQLite
// backend numbers as `?n`; the doc of each lists its parameters. The column lists are macros
// so that `concat!` builds the statements at compile time; their order is the one the `…_from`
// functions read.
macro_rules! session_columns {
    () => {
        "id, token_hash, account_id, stage, created, last_seen, expires, user_agent, address"
    };
}
macro_rules! factor_columns {
    () => {
        "account_id, totp_secret, confirmed, last_step, backup_codes, version, created"
    };
}
macro_rules! event_columns {
    () => {
        "id, at, kind, account_id, address, detail"
    };
}

/// tenant, then the session columns. No conflict target: a taken id and a taken token digest
/// both insert nothing.
pub(crate) const INSERT_SESSION: &str = concat!(
    "INSERT INTO sessions (tenant, ",
    session_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
);
/// tenant, token digest.
pub(crate) const SESSION_BY_TOKEN: &str =
    concat!("SELECT ", session_columns!(), " FROM sessions WHERE tenant = $1 AND token_hash = $2 AND revoked IS NULL");
/// tenant, id, last seen, stage or NULL to keep it.
pub(crate) const TOUCH_SESSION: &str = "UPDATE sessions SET last_seen = $3, stage = COALESCE($4, stage) \
     WHERE tenant = $1 AND id = $2 AND revoked IS NULL";
/// tenant, account, id, now.
pub(crate) const REVOKE_SESSION: &str = "UPDATE sessions SET revoked = $4 \
     WHERE tenant = $1 AND account_id = $2 AND id = $3 AND revoked IS NULL";
/// tenant, account, the id to spare or NULL, now.
pub(crate) const REVOKE_SESSIONS: &str = "UPDATE sessions SET revoked = $4 \
     WHERE tenant = $1 AND account_id = $2 AND id IS DISTINCT FROM $3 AND revoked IS NULL";
/// tenant, account, now.
pub(crate) const SESSIONS_OF: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE tenant = $1 AND account_id = $2 AND revoked IS NULL AND expires > $3 \
     ORDER BY created DESC, id DESC"
);
/// before.
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE revoked IS NOT NULL OR expires < $1";

/// tenant, account.
pub(crate) const FACTOR_OF: &str =
    concat!("SELECT ", factor_columns!(), " FROM second_factors WHERE tenant = $1 AND account_id = $2");
/// tenant, then the factor columns up to `backup_codes`, and the time of the write. Enrolment
/// starting over replaces the row whole, `created` included.
pub(crate) const REPLACE_FACTOR: &str = concat!(
    "INSERT INTO second_factors (tenant, ",
    factor_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, 1, $7) ON CONFLICT (tenant, account_id) DO UPDATE SET \
     totp_secret = excluded.totp_secret, confirmed = excluded.confirmed, last_step = excluded.last_step, \
     backup_codes = excluded.backup_codes, version = second_factors.version + 1, created = excluded.created \
     RETURNING version, created"
);
/// tenant, then the factor columns up to `backup_codes`, and the version read. One statement:
/// the version test and the write cannot be separated by another update.
pub(crate) const UPDATE_FACTOR: &str = "UPDATE second_factors SET totp_secret = $3, confirmed = $4, \
     last_step = $5, backup_codes = $6, version = version + 1 WHERE tenant = $1 AND account_id = $2 AND version = $7 \
     RETURNING version, created";
/// tenant, account.
pub(crate) const FACTOR_VERSION: &str = "SELECT version FROM second_factors WHERE tenant = $1 AND account_id = $2";
/// tenant, account.
pub(crate) const DELETE_FACTOR: &str = "DELETE FROM second_factors WHERE tenant = $1 AND account_id = $2";

/// tenant, key, now, window start. One statement, so two failures at once both count.
pub(crate) const COUNT_FAILURE: &str = "INSERT INTO auth_failures (tenant, key, count, last) VALUES ($1, $2, 1, $3) \
     ON CONFLICT (tenant, key) DO UPDATE SET \
     count = CASE WHEN auth_failures.last < $4 THEN 1 ELSE auth_failures.count + 1 END, last = $3 \
     RETURNING count, last";
/// tenant, key.
pub(crate) const FAILURES: &str = "SELECT count, last FROM auth_failures WHERE tenant = $1 AND key = $2";
/// tenant, key.
pub(crate) const CLEAR_FAILURES: &str = "DELETE FROM auth_failures WHERE tenant = $1 AND key = $2";

/// tenant, then the event columns.
pub(crate) const INSERT_EVENT: &str = concat!(
    "INSERT INTO auth_events (tenant, ",
    event_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
);
/// tenant, limit.
pub(crate) const EVENTS: &str =
    concat!("SELECT ", event_columns!(), " FROM auth_events WHERE tenant = $1 ORDER BY at DESC, id DESC LIMIT $2");
/// tenant, account, limit.
pub(crate) const EVENTS_OF: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM auth_events WHERE tenant = $1 AND account_id = $2 ORDER BY at DESC, id DESC LIMIT $3"
);
