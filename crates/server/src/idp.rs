//! The identity provider's interactions over the store: sign-in with lockout, the second
//! factor, sessions, password change and MFA enrolment. The rules come from the `auth` crate;
//! this module sequences them with the store's rows and records each outcome as an auth event.
//! The pages in [`crate::pages`] only translate forms to these calls and answers to HTML.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use auth::password::{self, Argon2Params};
use auth::session::{self, CookieSecret, LockoutPolicy, SessionPolicy};
use auth::{PolicyViolation, backup, totp};
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use store::{Account, AccountStatus, AuthEvent, SecondFactor, Session, SessionStage, Store, StoreError};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// Identity settings an operator chooses.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub session: SessionPolicy,
    /// Staff (every role but `patient`) must enrol a second factor before anything else.
    pub require_mfa_for_staff: bool,
    /// The issuer name authenticator apps show next to the account.
    pub issuer_name: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig { session: SessionPolicy::DEFAULT, require_mfa_for_staff: true, issuer_name: "Iaso".into() }
    }
}

/// Who is asking, as far as the request tells.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// The answer to a password sign-in. Wrong email and wrong password are one answer, and an
/// unknown email locks the same way a known one does.
pub enum SignIn {
    Started {
        token: CookieSecret,
        stage: SessionStage,
    },
    Refused,
    /// Until this Unix second.
    Locked(i64),
    Disabled,
    /// Too many hashes are running; nothing was counted.
    Busy,
}

/// The answer to a second-factor code.
pub enum Check {
    Accepted,
    Refused,
    /// Too many wrong codes: the session was ended, sign-in starts over.
    Locked(i64),
}

pub enum PasswordChange {
    Changed,
    WrongCurrent,
    Weak(PolicyViolation),
    Busy,
}

/// A signed-in browser: its session and account, both current.
#[derive(Debug, Clone)]
pub struct Signed {
    pub session: Session,
    pub account: Account,
}

pub struct Idp {
    pub config: IdentityConfig,
    /// Argon2 takes 64 MiB and a core for about 130 ms: a burst of sign-ins queues here rather
    /// than exhausting memory.
    hashing: Semaphore,
    /// Requests per source address to the identity pages. Each instance limits on its own;
    /// lockout, which must hold across instances, is counted in the store.
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

/// Ten requests a second on average with bursts of sixty: far above a person at a form, far
/// below a script.
const RATE_PER_SECOND: u32 = 10;
const RATE_BURST: u32 = 60;
/// The keyed limiter keeps a cell per address; above this many it drops the idle ones.
const LIMITER_PRUNE_ABOVE: usize = 10_000;

/// How long a sign-in waits for a free hashing slot before answering "busy".
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// The longest `User-Agent` kept with a session.
const USER_AGENT_MAX: usize = 200;

impl Idp {
    pub fn new(config: IdentityConfig) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let per_second = NonZeroU32::new(RATE_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(RATE_BURST).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst));
        Idp { config, hashing: Semaphore::new(slots), limiter }
    }

    /// `Err(seconds to wait)` when the address is over its request rate.
    pub fn admit(&self, address: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > LIMITER_PRUNE_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1))
    }

    /// Runs an Argon2 computation off the async threads, at most one per slot; `None` when no
    /// slot freed up in time.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> auth::Result<T> + Send + 'static,
    ) -> ApiResult<Option<T>> {
        let Ok(Ok(_permit)) = tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.acquire()).await else {
            return Ok(None);
        };
        let result = tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        result.map(Some).map_err(|e| ApiError::Internal(e.to_string()))
    }

    pub async fn sign_in(
        &self,
        store: &dyn Store,
        tenant: &str,
        email: &str,
        password_text: &str,
        caller: &Caller,
    ) -> ApiResult<SignIn> {
        let now = Utc::now();
        let email = email.trim().to_lowercase();
        let email_key = session::email_key(&email);
        let address_key = caller.address.map(session::address_key);
        for (key, policy) in
            [(Some(&email_key), LockoutPolicy::PER_EMAIL), (address_key.as_ref(), LockoutPolicy::PER_ADDRESS)]
        {
            let Some(key) = key else { continue };
            if let Some(until) = locked(store, tenant, key, &policy, now).await? {
                return Ok(SignIn::Locked(until));
            }
        }
        let account = match auth::account::Email::parse(&email) {
            Ok(parsed) => store.account_by_email(tenant, parsed.as_str()).await?,
            Err(_) => None,
        };
        let stored = account.as_ref().map(|a| a.password_hash.clone());
        let password_owned = password_text.to_owned();
        let verified = self
            .hashing(move || password::verify_account(&password_owned, stored.as_ref().map(|h| h.as_deref())))
            .await?;
        let Some(verified) = verified else { return Ok(SignIn::Busy) };
        let account_id = account.as_ref().map(|a| a.id.clone());
        let Some(account) = account.filter(|_| verified) else {
            let mut until = None;
            for (key, policy) in
                [(Some(&email_key), LockoutPolicy::PER_EMAIL), (address_key.as_ref(), LockoutPolicy::PER_ADDRESS)]
            {
                let Some(key) = key else { continue };
                until = until.max(count_failure(store, tenant, key, &policy, now).await?);
            }
            self.event(store, tenant, "login.failure", account_id.as_deref(), caller, json!({"reason": "credentials"}))
                .await?;
            if let Some(until) = until {
                self.event(store, tenant, "login.locked", account_id.as_deref(), caller, json!({"until": until}))
                    .await?;
                return Ok(SignIn::Locked(until));
            }
            return Ok(SignIn::Refused);
        };
        if account.status != AccountStatus::Active {
            self.event(store, tenant, "login.failure", Some(&account.id), caller, json!({"reason": "disabled"}))
                .await?;
            return Ok(SignIn::Disabled);
        }
        store.clear_failures(tenant, &email_key).await?;
        self.rehash_if_needed(store, tenant, &account, password_text).await?;
        let factor = store.second_factor(tenant, &account.id).await?.filter(|f| f.confirmed);
        let stage = if factor.is_some() {
            SessionStage::SecondFactor
        } else if self.must_enrol(&account) {
            SessionStage::Enrol
        } else {
            SessionStage::Active
        };
        let token = self.start_session(store, tenant, &account, stage, caller, now).await?;
        if stage != SessionStage::SecondFactor {
            self.event(store, tenant, "login.success", Some(&account.id), caller, json!({"mfa": false})).await?;
        }
        Ok(SignIn::Started { token, stage })
    }

    /// Whether the account must enrol a second factor before it may do anything else.
    pub fn must_enrol(&self, account: &Account) -> bool {
        self.config.require_mfa_for_staff
            && account.roles.iter().any(|r| auth::account::Role::parse(r).is_ok_and(|r| r.is_staff()))
    }

    /// A stored hash with parameters below today's is replaced while the password is at hand.
    /// Losing a race with another update is harmless: the next sign-in tries again.
    async fn rehash_if_needed(
        &self,
        store: &dyn Store,
        tenant: &str,
        account: &Account,
        password_text: &str,
    ) -> ApiResult<()> {
        let Some(phc) = &account.password_hash else { return Ok(()) };
        if !password::needs_rehash(phc, &Argon2Params::DEFAULT) {
            return Ok(());
        }
        let owned = password_text.to_owned();
        let Some(new_hash) = self.hashing(move || password::hash(&owned, &Argon2Params::DEFAULT)).await? else {
            return Ok(());
        };
        let updated = Account { password_hash: Some(new_hash), ..account.clone() };
        match store.update_account(tenant, &updated).await {
            Ok(_) | Err(StoreError::VersionConflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn start_session(
        &self,
        store: &dyn Store,
        tenant: &str,
        account: &Account,
        stage: SessionStage,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> ApiResult<CookieSecret> {
        let token = CookieSecret::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            token_hash: token.digest(),
            account_id: account.id.clone(),
            stage,
            created: now,
            last_seen: now,
            expires: now + chrono::Duration::seconds(self.config.session.absolute_seconds),
            user_agent: caller.user_agent.as_ref().map(|ua| ua.chars().take(USER_AGENT_MAX).collect()),
            address: caller.address.map(|a| a.to_string()),
        };
        store.create_session(tenant, &session).await?;
        Ok(token)
    }

    /// The session a cookie names, if it is live and its account may sign in; activity is
    /// recorded. An expired session is ended so it cannot come back.
    pub async fn session(&self, store: &dyn Store, tenant: &str, token: &CookieSecret) -> ApiResult<Option<Signed>> {
        let Some(mut session) = store.session_by_token(tenant, &token.digest()).await? else { return Ok(None) };
        let now = Utc::now();
        if !self.config.session.is_live(session.last_seen.timestamp(), session.expires.timestamp(), now.timestamp()) {
            store.revoke_session(tenant, &session.account_id, &session.id).await?;
            return Ok(None);
        }
        let Some(account) = store.account(tenant, &session.account_id).await? else { return Ok(None) };
        if account.status != AccountStatus::Active {
            return Ok(None);
        }
        if (now - session.last_seen).num_seconds() >= session::TOUCH_INTERVAL_SECONDS {
            if !store.touch_session(tenant, &session.id, now, None).await? {
                return Ok(None);
            }
            session.last_seen = now;
        }
        Ok(Some(Signed { session, account }))
    }

    /// Checks a TOTP or backup code for a session that owes its second factor. Wrong codes are
    /// counted per account; when they lock, the session ends.
    pub async fn second_factor(
        &self,
        store: &dyn Store,
        tenant: &str,
        signed: &Signed,
        code: &str,
        caller: &Caller,
    ) -> ApiResult<Check> {
        let now = Utc::now();
        let key = session::second_factor_key(&signed.account.id);
        let policy = LockoutPolicy::PER_EMAIL;
        if let Some(until) = locked(store, tenant, &key, &policy, now).await? {
            store.revoke_session(tenant, &signed.account.id, &signed.session.id).await?;
            return Ok(Check::Locked(until));
        }
        let accepted = match store.second_factor(tenant, &signed.account.id).await? {
            Some(factor) if factor.confirmed => self.use_code(store, tenant, factor, code, now).await?,
            // The factor was removed meanwhile (by an admin): nothing is owed any more.
            _ => true,
        };
        if !accepted {
            self.event(
                store,
                tenant,
                "login.failure",
                Some(&signed.account.id),
                caller,
                json!({"reason": "second_factor"}),
            )
            .await?;
            if let Some(until) = count_failure(store, tenant, &key, &policy, now).await? {
                store.revoke_session(tenant, &signed.account.id, &signed.session.id).await?;
                self.event(store, tenant, "login.locked", Some(&signed.account.id), caller, json!({"until": until}))
                    .await?;
                return Ok(Check::Locked(until));
            }
            return Ok(Check::Refused);
        }
        store.clear_failures(tenant, &key).await?;
        let next = if self.must_enrol(&signed.account) && !self.has_factor(store, tenant, &signed.account.id).await? {
            SessionStage::Enrol
        } else {
            SessionStage::Active
        };
        if !store.touch_session(tenant, &signed.session.id, now, Some(next)).await? {
            return Ok(Check::Refused);
        }
        self.event(store, tenant, "login.success", Some(&signed.account.id), caller, json!({"mfa": true})).await?;
        Ok(Check::Accepted)
    }

    async fn has_factor(&self, store: &dyn Store, tenant: &str, account_id: &str) -> ApiResult<bool> {
        Ok(store.second_factor(tenant, account_id).await?.is_some_and(|f| f.confirmed))
    }

    /// Accepts a TOTP code (6 digits) or a backup code, and stores what it used up. Two
    /// requests with one code race on the factor's version: only one of them gets in.
    async fn use_code(
        &self,
        store: &dyn Store,
        tenant: &str,
        mut factor: SecondFactor,
        code: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<bool> {
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == usize::from(totp::DIGITS) && digits.bytes().all(|b| b.is_ascii_digit()) {
            let secret =
                totp::TotpSecret::from_base32(&factor.totp_secret).map_err(|e| ApiError::Internal(e.to_string()))?;
            let last = factor.last_step.and_then(|s| u64::try_from(s).ok());
            let unix = u64::try_from(now.timestamp()).unwrap_or(0);
            let Some(step) = secret.verify(&digits, unix, last).map_err(|e| ApiError::Internal(e.to_string()))? else {
                return Ok(false);
            };
            factor.last_step = i64::try_from(step).ok();
        } else {
            let mut stored = factor
                .backup_codes
                .iter()
                .map(|(text, used)| backup::StoredBackupCode::decode(text, *used))
                .collect::<auth::Result<Vec<_>>>()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if !backup::consume(code, &mut stored) {
                return Ok(false);
            }
            factor.backup_codes = stored.iter().map(|c| (c.encode(), c.used)).collect();
        }
        match store.put_second_factor(tenant, &factor).await {
            Ok(_) => Ok(true),
            Err(StoreError::VersionConflict { .. } | StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn sign_out(&self, store: &dyn Store, tenant: &str, signed: &Signed, caller: &Caller) -> ApiResult<()> {
        store.revoke_session(tenant, &signed.account.id, &signed.session.id).await?;
        self.event(store, tenant, "logout", Some(&signed.account.id), caller, json!({})).await
    }

    /// Ends another of the account's own sessions.
    pub async fn revoke(
        &self,
        store: &dyn Store,
        tenant: &str,
        signed: &Signed,
        session_id: &str,
        caller: &Caller,
    ) -> ApiResult<bool> {
        let revoked = store.revoke_session(tenant, &signed.account.id, session_id).await?;
        if revoked {
            self.event(
                store,
                tenant,
                "session.revoked",
                Some(&signed.account.id),
                caller,
                json!({"session": session_id}),
            )
            .await?;
        }
        Ok(revoked)
    }

    /// A new password ends every other session of the account (and, once tokens exist, its
    /// refresh tokens): whoever knew the old one is out.
    pub async fn change_password(
        &self,
        store: &dyn Store,
        tenant: &str,
        signed: &Signed,
        current: &str,
        new: &str,
        caller: &Caller,
    ) -> ApiResult<PasswordChange> {
        if let Err(v) = password::check_policy(new, Some(&signed.account.email)) {
            return Ok(PasswordChange::Weak(v));
        }
        let stored = signed.account.password_hash.clone();
        let (current, new) = (current.to_owned(), new.to_owned());
        let outcome = self
            .hashing(move || {
                if !password::verify_account(&current, Some(stored.as_deref()))? {
                    return Ok(None);
                }
                password::hash(&new, &Argon2Params::DEFAULT).map(Some)
            })
            .await?;
        let new_hash = match outcome {
            None => return Ok(PasswordChange::Busy),
            Some(None) => {
                self.event(store, tenant, "password.failure", Some(&signed.account.id), caller, json!({})).await?;
                return Ok(PasswordChange::WrongCurrent);
            }
            Some(Some(hash)) => hash,
        };
        let account =
            store.account(tenant, &signed.account.id).await?.ok_or_else(|| ApiError::NotFound("the account".into()))?;
        store.update_account(tenant, &Account { password_hash: Some(new_hash), ..account }).await?;
        let ended = store.revoke_sessions(tenant, &signed.account.id, Some(&signed.session.id)).await?;
        self.event(
            store,
            tenant,
            "password.changed",
            Some(&signed.account.id),
            caller,
            json!({"sessions_ended": ended}),
        )
        .await?;
        Ok(PasswordChange::Changed)
    }

    /// The factor being enrolled: the unconfirmed one if there is one, else a new secret.
    pub async fn begin_enrolment(&self, store: &dyn Store, tenant: &str, account: &Account) -> ApiResult<SecondFactor> {
        if let Some(pending) = store.second_factor(tenant, &account.id).await?.filter(|f| !f.confirmed) {
            return Ok(pending);
        }
        let secret = totp::TotpSecret::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
        let factor = SecondFactor {
            account_id: account.id.clone(),
            totp_secret: secret.to_base32(),
            confirmed: false,
            last_step: None,
            backup_codes: Vec::new(),
            version: 0,
            created: Utc::now(),
        };
        Ok(store.put_second_factor(tenant, &factor).await?)
    }

    /// Confirms enrolment with a first code; answers the backup codes to show once, or `None`
    /// when the code is wrong.
    pub async fn confirm_enrolment(
        &self,
        store: &dyn Store,
        tenant: &str,
        signed: &Signed,
        code: &str,
        caller: &Caller,
    ) -> ApiResult<Option<Vec<String>>> {
        let Some(mut factor) = store.second_factor(tenant, &signed.account.id).await?.filter(|f| !f.confirmed) else {
            return Ok(None);
        };
        let secret =
            totp::TotpSecret::from_base32(&factor.totp_secret).map_err(|e| ApiError::Internal(e.to_string()))?;
        let unix = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let Some(step) = secret.verify(code, unix, None).map_err(|e| ApiError::Internal(e.to_string()))? else {
            return Ok(None);
        };
        let codes = backup::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
        factor.confirmed = true;
        factor.last_step = i64::try_from(step).ok();
        factor.backup_codes = codes.stored.iter().map(|c| (c.encode(), c.used)).collect();
        match store.put_second_factor(tenant, &factor).await {
            Ok(_) => {}
            Err(StoreError::VersionConflict { .. } | StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if signed.session.stage == SessionStage::Enrol {
            store.touch_session(tenant, &signed.session.id, Utc::now(), Some(SessionStage::Active)).await?;
        }
        self.event(store, tenant, "mfa.enabled", Some(&signed.account.id), caller, json!({"method": "totp"})).await?;
        Ok(Some(codes.shown))
    }

    /// Removes the second factor after checking the password; `Ok(false)` when it is wrong.
    pub async fn disable_second_factor(
        &self,
        store: &dyn Store,
        tenant: &str,
        signed: &Signed,
        password_text: &str,
        caller: &Caller,
    ) -> ApiResult<Option<bool>> {
        let stored = signed.account.password_hash.clone();
        let owned = password_text.to_owned();
        let Some(ok) = self.hashing(move || password::verify_account(&owned, Some(stored.as_deref()))).await? else {
            return Ok(None);
        };
        if !ok {
            return Ok(Some(false));
        }
        store.delete_second_factor(tenant, &signed.account.id).await?;
        self.event(store, tenant, "mfa.disabled", Some(&signed.account.id), caller, json!({})).await?;
        Ok(Some(true))
    }

    pub async fn event(
        &self,
        store: &dyn Store,
        tenant: &str,
        kind: &str,
        account_id: Option<&str>,
        caller: &Caller,
        detail: serde_json::Value,
    ) -> ApiResult<()> {
        let event = AuthEvent {
            // Time-ordered and monotonic within the process, so two events of one millisecond
            // (a failure and the lock it causes) list in the order they happened.
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now(),
            kind: kind.to_owned(),
            account_id: account_id.map(str::to_owned),
            address: caller.address.map(|a| a.to_string()),
            detail,
        };
        tracing::info!(kind, account = account_id.unwrap_or("-"), "auth event");
        Ok(store.record_auth_event(tenant, &event).await?)
    }
}

/// Until when the failures under `key` lock it, if they do now.
async fn locked(
    store: &dyn Store,
    tenant: &str,
    key: &str,
    policy: &LockoutPolicy,
    now: DateTime<Utc>,
) -> ApiResult<Option<i64>> {
    Ok(store
        .failures(tenant, key)
        .await?
        .and_then(|f| policy.locked_until(f.count, f.last.timestamp(), now.timestamp())))
}

/// Counts a failure under `key`; answers until when it now locks the key, if it does.
async fn count_failure(
    store: &dyn Store,
    tenant: &str,
    key: &str,
    policy: &LockoutPolicy,
    now: DateTime<Utc>,
) -> ApiResult<Option<i64>> {
    let window_start = DateTime::<Utc>::from_timestamp(policy.window_start(now.timestamp()), 0).unwrap_or(now);
    let f = store.count_failure(tenant, key, now, window_start).await?;
    Ok(policy.locked_until(f.count, f.last.timestamp(), now.timestamp()))
}

/// Shared by the router's state.
pub type SharedIdp = Arc<Idp>;
