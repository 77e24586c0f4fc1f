//! Password hashing (Argon2id, PHC strings) and the policy a new password must meet.
//!
//! The hash is a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`): it records the parameters
//! it was made with, so raising [`Argon2Params::DEFAULT`] leaves old hashes verifiable and
//! [`needs_rehash`] tells login when to replace one.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use crate::{AuthError, PolicyViolation, Result, random};

/// Fewer characters than this is refused: length is what makes a password hard to guess, and
/// NIST SP 800-63B asks for at least 8 (15 when it is the only factor).
pub const MIN_LENGTH: usize = 12;
/// More characters than this is refused, at creation and at login, so that nobody can make the
/// server hash megabytes per request. Far above any passphrase a person types.
pub const MAX_LENGTH: usize = 128;

/// Argon2id cost parameters. Memory is in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// 64 MiB, 3 passes, 1 lane: the memory and passes of RFC 9106 §4's second recommended
    /// setting, on one lane because a login is one request and the server's other cores
    /// serve other requests. Measured with `cargo bench -p auth` (release) on this project's
    /// 2-core machine (AMD EPYC, AVX2): a median 133 ms per hash and 136 ms per verification,
    /// inside the 50–250 ms aimed at. (19 MiB/t=2 took 33 ms, 64 MiB/t=2 106 ms,
    /// 128 MiB/t=2 209 ms.) Each hash holds 64 MiB while it runs: bound how many run at once.
    pub const DEFAULT: Self = Self { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 };

    fn to_argon2(self) -> Result<argon2::Params> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AuthError::InvalidParams(e.to_string()))
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn hasher(params: Argon2Params) -> Result<Argon2<'static>> {
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?))
}

/// Hashes a password with Argon2id and a fresh 128-bit salt, returning the PHC string to store.
///
/// This does not apply the policy (call [`check_policy`] for passwords users choose) except the
/// [`MAX_LENGTH`] bound. It takes the time of one hash: run it off the async executor.
pub fn hash(password: &str, params: &Argon2Params) -> Result<String> {
    let actual = password.chars().count();
    if actual > MAX_LENGTH {
        return Err(PolicyViolation::TooLong { max: MAX_LENGTH, actual }.into());
    }
    let salt = random::bytes::<16>()?;
    let hash = hasher(*params)?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hashing(e.to_string()))?;
    Ok(hash.to_string())
}

/// Checks a password against a stored PHC string, with the parameters that string records.
///
/// `Ok(false)` for a wrong password (and for one longer than [`MAX_LENGTH`], which no stored
/// hash can match); `Err` when the stored string is unusable.
pub fn verify(password: &str, phc: &str) -> Result<bool> {
    let parsed = PasswordHash::new(phc).map_err(|e| AuthError::MalformedHash(e.to_string()))?;
    // The verifier would report a hash without salt or output as a wrong password, hiding
    // a broken record behind a user's mistake.
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(AuthError::MalformedHash("no salt or no hash output".to_owned()));
    }
    if password.chars().count() > MAX_LENGTH {
        return Ok(false);
    }
    // The verifier takes algorithm, version and parameters from the hash itself; the ones given
    // here are only its defaults.
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(AuthError::MalformedHash(e.to_string())),
    }
}

/// A hash with the default parameters that no password is known to match, made once per
/// process: what [`verify_account`] checks against when there is no account.
static DUMMY: LazyLock<Result<String>> = LazyLock::new(|| {
    let unguessable = random::bytes::<32>()?;
    let text: String = unguessable.iter().map(|b| format!("{b:02x}")).collect();
    hash(&text, &Argon2Params::DEFAULT)
});

/// [`verify`] for a sign-in, where the account may not exist (`None`): then a hash with the
/// default parameters is checked all the same and the answer is `false`, so that the time a
/// sign-in takes does not tell whether the email has an account. An account without a
/// password (`Some(None)`: invited, or signing in elsewhere) is checked the same way.
pub fn verify_account(password: &str, stored: Option<Option<&str>>) -> Result<bool> {
    match stored {
        Some(Some(phc)) => verify(password, phc),
        _ => {
            let dummy = DUMMY.as_ref().map_err(Clone::clone)?;
            verify(password, dummy).map(|_| false)
        }
    }
}

/// Whether a stored hash should be replaced after the next successful login: it is not
/// Argon2id v1.3, or any of its memory, iterations or parallelism is below `current`. An
/// unreadable string answers `true` (it cannot be kept anyway).
pub fn needs_rehash(phc: &str, current: &Argon2Params) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return true };
    if parsed.algorithm.as_str() != argon2::ARGON2ID_IDENT.as_str() || parsed.version != Some(Version::V0x13.into()) {
        return true;
    }
    let Ok(stored) = argon2::Params::try_from(&parsed) else { return true };
    stored.m_cost() < current.memory_kib
        || stored.t_cost() < current.iterations
        || stored.p_cost() < current.parallelism
}

/// The common-password list (see `data/README.md` for its origin and licence), lower-case.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("../data/common-passwords.txt").lines().collect());

/// Whether the policy accepts `password` as a new password for the account with `email`.
///
/// Checked in this order, the first failure answered: length in characters (Unicode scalar
/// values) between [`MIN_LENGTH`] and [`MAX_LENGTH`]; not containing the email's local part
/// (case-insensitive, when it has 4 or more characters; also the part before a `+tag`); not a
/// common password, nor a common password of 4 or more characters with only digits, symbols or
/// spaces around it (`password2024!`): most list entries are shorter than [`MIN_LENGTH`], and
/// padding one out to length is the usual way people meet a length rule.
pub fn check_policy(password: &str, email: Option<&str>) -> Result<(), PolicyViolation> {
    let actual = password.chars().count();
    if actual < MIN_LENGTH {
        return Err(PolicyViolation::TooShort { min: MIN_LENGTH, actual });
    }
    if actual > MAX_LENGTH {
        return Err(PolicyViolation::TooLong { max: MAX_LENGTH, actual });
    }
    let lower = password.to_lowercase();
    if let Some(email) = email {
        let local = email.rsplit_once('@').map_or(email, |(local, _)| local).to_lowercase();
        let untagged = local.split_once('+').map_or(local.as_str(), |(base, _)| base);
        if [local.as_str(), untagged].iter().any(|part| part.chars().count() >= 4 && lower.contains(part)) {
            return Err(PolicyViolation::ContainsEmail);
        }
    }
    let trimmed = lower.trim();
    let core = trimmed.trim_matches(|c: char| !c.is_alphabetic());
    if COMMON.contains(trimmed) || (core.chars().count() >= 4 && COMMON.contains(core)) {
        return Err(PolicyViolation::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests check behaviour, not cost.
    const FAST: Argon2Params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse battery staple", &FAST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify("correct horse battery staple", &phc).unwrap());
        assert!(!verify("correct horse battery stapl", &phc).unwrap());
        assert!(!verify("", &phc).unwrap());
    }

    #[test]
    fn a_missing_account_costs_a_default_verification_and_fails() {
        let phc = hash("correct horse battery staple", &FAST).unwrap();
        assert!(verify_account("correct horse battery staple", Some(Some(&phc))).unwrap());
        assert!(!verify_account("wrong horse battery staple", Some(Some(&phc))).unwrap());
        assert!(!verify_account("correct horse battery staple", None).unwrap());
        assert!(!verify_account("", Some(None)).unwrap());
        // The stand-in costs what a real account's hash costs.
        let dummy = DUMMY.as_ref().unwrap();
        assert!(dummy.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{dummy}");
        assert!(!needs_rehash(dummy, &Argon2Params::DEFAULT));
    }

    #[test]
    fn each_hash_has_its_own_salt() {
        assert_ne!(hash("same password here", &FAST).unwrap(), hash("same password here", &FAST).unwrap());
    }

    #[test]
    fn verifies_with_the_parameters_recorded_in_the_hash() {
        let old =
            hash("a password made earlier", &Argon2Params { memory_kib: 32, iterations: 2, parallelism: 2 }).unwrap();
        assert!(verify("a password made earlier", &old).unwrap());
    }

    #[test]
    fn verifies_a_reference_hash() {
        // A vector of the reference implementation's tests (phc-winner-argon2 src/test.c,
        // m=2^8, t=2, p=1), also in the argon2 crate's known-answer tests.
        let phc = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
        assert!(verify("password", phc).unwrap());
        assert!(!verify("Password", phc).unwrap());
    }

    #[test]
    fn malformed_hashes_are_errors_not_mismatches() {
        for bad in ["", "plain text", "$argon2id$v=19$m=64,t=1,p=1", "$2b$12$abcdefghijklmnopqrstuv"] {
            let err = verify("whatever password", bad).expect_err(bad);
            assert_eq!(err.code(), "malformed_password_hash", "{bad}");
        }
    }

    #[test]
    fn overlong_passwords_are_not_hashed() {
        let long = "x".repeat(MAX_LENGTH + 1);
        assert_eq!(hash(&long, &FAST).unwrap_err().code(), "password_too_long");
        let phc = hash("a fine password", &FAST).unwrap();
        assert!(!verify(&long, &phc).unwrap());
        assert!(hash(&"x".repeat(MAX_LENGTH), &FAST).is_ok());
    }

    #[test]
    fn invalid_params_are_reported() {
        let err = hash("a fine password", &Argon2Params { memory_kib: 64, iterations: 0, parallelism: 1 }).unwrap_err();
        assert_eq!(err.code(), "invalid_argon2_params");
    }

    #[test]
    fn rehash_when_any_cost_is_lower_or_the_algorithm_differs() {
        let current = Argon2Params { memory_kib: 128, iterations: 2, parallelism: 2 };
        let same = hash("a fine password", &current).unwrap();
        assert!(!needs_rehash(&same, &current));
        for lower in [
            Argon2Params { memory_kib: 64, ..current },
            Argon2Params { iterations: 1, ..current },
            Argon2Params { parallelism: 1, ..current },
        ] {
            assert!(needs_rehash(&hash("a fine password", &lower).unwrap(), &current), "{lower:?}");
        }
        let higher = hash("a fine password", &Argon2Params { memory_kib: 256, iterations: 3, parallelism: 4 }).unwrap();
        assert!(!needs_rehash(&higher, &current));
        let argon2i = same.replacen("$argon2id$", "$argon2i$", 1);
        assert!(needs_rehash(&argon2i, &current));
        let v10 = same.replacen("$v=19$", "$v=16$", 1);
        assert!(needs_rehash(&v10, &current));
        assert!(needs_rehash("not a hash", &current));
    }

    #[test]
    fn policy_length_counts_characters() {
        assert_eq!(check_policy("short pass!", None), Err(PolicyViolation::TooShort { min: MIN_LENGTH, actual: 11 }));
        // 12 characters, 24 bytes: accepted, the rule is about characters.
        assert_eq!(check_policy("ééééééééééé¡", None), Ok(()));
        assert_eq!(
            check_policy(&"ab cd ".repeat(22), None),
            Err(PolicyViolation::TooLong { max: MAX_LENGTH, actual: 132 })
        );
        assert_eq!(check_policy(&"ab cd ".repeat(21), None), Ok(()));
    }

    #[test]
    fn policy_refuses_common_passwords() {
        // Entries of the list that meet the length rule on their own, in any case.
        for common in ["1q2w3e4r5t6y", "QwertyQwerty", "justinbieber", " motherfucker "] {
            assert_eq!(check_policy(common, None), Err(PolicyViolation::Common), "{common}");
        }
    }

    #[test]
    fn policy_refuses_common_passwords_padded_with_digits_or_symbols() {
        for padded in ["password2024!", "Dragon123456", "!!!iloveyou!!!", "1234monkey5678"] {
            assert_eq!(check_policy(padded, None), Err(PolicyViolation::Common), "{padded}");
        }
        // The list holds single letters and other short entries: those do not count as a core.
        assert_eq!(check_policy("x-3141-5926-53", None), Ok(()));
        // A common word inside a longer phrase is fine: only padding around one is refused.
        assert_eq!(check_policy("my dragon eats tulips", None), Ok(()));
    }

    #[test]
    fn policy_refuses_the_email_local_part() {
        let email = Some("Jane.Doe+iaso@example.org");
        assert_eq!(check_policy("jane.doe+iaso@example.org", email), Err(PolicyViolation::ContainsEmail));
        assert_eq!(check_policy("xyzJANE.DOE2024!", email), Err(PolicyViolation::ContainsEmail));
        assert_eq!(check_policy("sunny jane doe day", email), Ok(()));
        // Local parts under 4 characters would refuse too much.
        assert_eq!(check_policy("bob likes long walks", Some("bob@example.org")), Ok(()));
        assert_eq!(check_policy("robert likes walks", Some("robert@example.org")), Err(PolicyViolation::ContainsEmail));
    }

    #[test]
    fn policy_violations_have_stable_codes_and_readable_messages() {
        let v = check_policy("short", None).unwrap_err();
        assert_eq!(v.code(), "password_too_short");
        assert!(v.to_string().starts_with("Use at least 12 characters (this password has 5)"), "{v}");
        assert_eq!(AuthError::from(PolicyViolation::Common).code(), "password_too_common");
    }

    #[test]
    fn the_embedded_list_is_loaded() {
        assert_eq!(COMMON.len(), 19_640);
        assert!(COMMON.contains("123456") && COMMON.contains("friend of emily"));
    }
}
