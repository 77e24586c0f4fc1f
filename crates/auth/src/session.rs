//! Browser sessions and sign-in throttling: the rules, without the storage.
//!
//! A session is a random token in an `HttpOnly` cookie; the database keeps only its SHA-256
//! digest. A form carries a CSRF token derived from a second cookie's secret, so a page on
//! another site, which can neither read that cookie nor compute the digest, cannot submit a
//! form as the user. Failed sign-ins are counted per email (whether or not it has an
//! account, so lockout does not reveal which emails do) and per source address.

use std::net::IpAddr;

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Result, random};

/// A secret for a cookie: 256 random bits, base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieSecret(String);

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecret(…)")
    }
}

/// The length of 32 bytes in unpadded base64url.
const SECRET_LEN: usize = 43;

impl CookieSecret {
    pub fn generate() -> Result<Self> {
        Ok(CookieSecret(Base64UrlUnpadded::encode_string(&random::bytes::<32>()?)))
    }

    /// A cookie's value, if it has the shape of one this module made: anything else (an old
    /// format, a forged value) is as good as no cookie.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == SECRET_LEN && Base64UrlUnpadded::decode_vec(text).is_ok_and(|b| b.len() == 32))
            .then(|| CookieSecret(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database keeps of a session token.
    pub fn digest(&self) -> String {
        digest("iaso session\0", &self.0)
    }

    /// The token a form carries when this is the CSRF cookie's secret.
    pub fn csrf_token(&self) -> String {
        digest("iaso csrf\0", &self.0)
    }

    /// Whether a submitted form token belongs to this secret, in constant time.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        bool::from(self.csrf_token().as_bytes().ct_eq(submitted.as_bytes()))
    }
}

fn digest(domain: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update(text.as_bytes());
    Base64UrlUnpadded::encode_string(&h.finalize())
}

/// How long a session lives: HIPAA's automatic logoff is the idle limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Seconds without a request after which the session ends.
    pub idle_seconds: i64,
    /// Seconds after sign-in after which the session ends whatever its activity.
    pub absolute_seconds: i64,
}

impl SessionPolicy {
    /// Fifteen idle minutes, twelve hours in all: a clinic shift.
    pub const DEFAULT: Self = SessionPolicy { idle_seconds: 15 * 60, absolute_seconds: 12 * 3600 };

    /// Whether a session seen last at `last_seen` and ending at `expires` is still good at
    /// `now` (all Unix seconds).
    pub fn is_live(&self, last_seen: i64, expires: i64, now: i64) -> bool {
        now < expires && now < last_seen.saturating_add(self.idle_seconds)
    }
}

/// A session's activity is written at most this often, so that every page view is not a
/// database write; the idle limit is then exact to within this many seconds.
pub const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// When failed attempts under one key lock it, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that lock: the first lock follows this many.
    pub threshold: i64,
    /// The first lock's length; each further failure doubles it.
    pub base_seconds: i64,
    pub max_seconds: i64,
    /// A failure after this long without one starts the count again.
    pub window_seconds: i64,
}

impl LockoutPolicy {
    /// Per email: five tries, then one minute, doubling to an hour.
    pub const PER_EMAIL: Self =
        LockoutPolicy { threshold: 5, base_seconds: 60, max_seconds: 3600, window_seconds: 3600 };
    /// Per source address: more room, since a clinic's staff may share one address.
    pub const PER_ADDRESS: Self =
        LockoutPolicy { threshold: 30, base_seconds: 60, max_seconds: 3600, window_seconds: 3600 };

    /// Until when (Unix seconds) `count` failures, the last at `last`, lock the key; `None`
    /// when they do not or the lock has passed by `now`.
    pub fn locked_until(&self, count: i64, last: i64, now: i64) -> Option<i64> {
        if count < self.threshold || now.saturating_sub(last) >= self.window_seconds {
            return None;
        }
        let doublings = u32::try_from(count - self.threshold).unwrap_or(u32::MAX).min(20);
        let length = self.base_seconds.saturating_mul(1_i64 << doublings).min(self.max_seconds);
        let until = last.saturating_add(length);
        (until > now).then_some(until)
    }

    /// The failure that starts the count again is one whose predecessor is older than this.
    pub fn window_start(&self, now: i64) -> i64 {
        now.saturating_sub(self.window_seconds)
    }
}

/// The failure counter of an email. A digest, so that the counters of emails without an
/// account (someone guessing) do not keep those emails in clear.
pub fn email_key(normalised_email: &str) -> String {
    format!("email:{}", digest("iaso failures\0", normalised_email))
}

/// The failure counter of a source address. An IPv6 host usually holds a whole /64, so the
/// prefix is the key; an IPv4-mapped address counts as its IPv4 address.
pub fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("addr:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("addr:{v4}"),
            None => {
                let s = v6.segments();
                format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The failure counter of an account's second factor.
pub fn second_factor_key(account_id: &str) -> String {
    format!("mfa:{account_id}")
}

/// Where to go after sign-in: only a path on this server (`/…`, not `//host` or `/\host`,
/// which browsers read as another host), so the login form cannot be made to send a user to
/// another site.
pub fn safe_return_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let ok = !rest.starts_with('/')
        && !rest.starts_with('\\')
        && path.len() <= 2048
        && path.chars().all(|c| c.is_ascii_graphic());
    ok.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_only_their_own_shape() {
        let s = CookieSecret::generate().expect("random");
        assert_eq!(CookieSecret::parse(s.as_str()), Some(s.clone()));
        assert_ne!(CookieSecret::generate().expect("random"), s);
        assert_eq!(CookieSecret::parse("short"), None);
        assert_eq!(CookieSecret::parse(&"!".repeat(43)), None);
        assert!(!format!("{s:?}").contains(s.as_str()), "Debug hides the secret");
    }

    #[test]
    fn csrf_tokens_belong_to_one_secret_and_differ_from_the_session_digest() {
        let a = CookieSecret::generate().expect("random");
        let b = CookieSecret::generate().expect("random");
        assert!(a.csrf_matches(&a.csrf_token()));
        assert!(!a.csrf_matches(&b.csrf_token()));
        assert!(!a.csrf_matches(""));
        assert!(!a.csrf_matches(a.as_str()));
        assert_ne!(a.csrf_token(), a.digest());
        assert_eq!(a.digest().len(), 43);
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let p = SessionPolicy { idle_seconds: 900, absolute_seconds: 3600 };
        assert!(p.is_live(1000, 4600, 1899));
        assert!(!p.is_live(1000, 4600, 1900), "idle limit");
        assert!(!p.is_live(4500, 4600, 4600), "absolute limit");
    }

    #[test]
    fn lockout_doubles_up_to_its_cap_and_passes() {
        let p = LockoutPolicy::PER_EMAIL;
        assert_eq!(p.locked_until(4, 1000, 1000), None);
        assert_eq!(p.locked_until(5, 1000, 1000), Some(1060));
        assert_eq!(p.locked_until(6, 1000, 1000), Some(1120));
        assert_eq!(p.locked_until(7, 1000, 1001), Some(1240));
        assert_eq!(p.locked_until(50, 1000, 1001), Some(4600), "capped at an hour");
        assert_eq!(p.locked_until(5, 1000, 1060), None, "the lock has passed");
        assert_eq!(p.locked_until(i64::MAX, 1000, 1001), Some(4600));
        assert_eq!(p.window_start(5000), 1400);
    }

    #[test]
    fn failure_keys() {
        assert_eq!(email_key("ann@example.org"), email_key("ann@example.org"));
        assert_ne!(email_key("ann@example.org"), email_key("bob@example.org"));
        assert!(!email_key("ann@example.org").contains("ann"));
        assert_eq!(address_key("192.0.2.7".parse().expect("ip")), "addr:192.0.2.7");
        assert_eq!(address_key("::ffff:192.0.2.7".parse().expect("ip")), "addr:192.0.2.7");
        assert_eq!(
            address_key("2001:db8:1:2:3:4:5:6".parse().expect("ip")),
            address_key("2001:db8:1:2:ffff::1".parse().expect("ip")),
            "one /64"
        );
        assert_eq!(address_key("2001:db8:1:2::9".parse().expect("ip")), "addr:2001:db8:1:2::/64");
    }

    #[test]
    fn return_paths_stay_on_this_server() {
        assert_eq!(safe_return_path("/account"), Some("/account"));
        assert_eq!(safe_return_path("/oauth/authorize?client_id=a&x=%20"), Some("/oauth/authorize?client_id=a&x=%20"));
        for bad in ["//evil.example", "/\\evil.example", "https://evil.example", "account", "", "/a b", "/\u{e9}"] {
            assert_eq!(safe_return_path(bad), None, "{bad}");
        }
    }
}
