//! One-time backup codes: the way in when the authenticator is lost.
//!
//! Ten codes of 12 characters from Crockford's base32 alphabet (no `i`, `l`, `o`, `u`), shown
//! as `xxxx-xxxx-xxxx`: 60 random bits each. They are stored as SHA-256 over a per-code salt and
//! the code, not with Argon2, because the cost of guessing comes from the entropy, not from the
//! hash: someone holding the database needs 2^59 SHA-256 evaluations on average to recover one
//! code (about two years on a GPU doing 10^10 a second), while a login that checks a typed
//! code against ten Argon2 hashes would cost ten password hashes (over a second of CPU) and
//! hand anyone who can submit the form a cheap way to load the server. Argon2 is for
//! passwords because people choose them; nobody chooses these.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AuthError, Result, random};

/// How many codes a set holds.
pub const COUNT: usize = 10;
const CODE_LEN: usize = 12;
const GROUP: usize = 4;
/// Crockford's base32: 32 symbols, so one random byte masked to 5 bits picks one uniformly.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const SALT_LEN: usize = 16;
const SCHEME: &str = "sha256";

/// A new set: `shown` goes to the user once, `stored` to the database.
#[derive(Debug)]
pub struct BackupCodes {
    pub shown: Vec<String>,
    pub stored: Vec<StoredBackupCode>,
}

/// One code as the database keeps it. `used` is set by [`consume`]; the hash is not secret
/// but is only useful to someone guessing offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBackupCode {
    salt: [u8; SALT_LEN],
    digest: [u8; 32],
    pub used: bool,
}

impl StoredBackupCode {
    /// `sha256$<salt>$<digest>` in unpadded base64: one text column. `used` is not part of it,
    /// because it changes while the hash does not.
    pub fn encode(&self) -> String {
        use base64ct::{Base64Unpadded, Encoding};
        format!(
            "{SCHEME}${}${}",
            Base64Unpadded::encode_string(&self.salt),
            Base64Unpadded::encode_string(&self.digest)
        )
    }

    pub fn decode(text: &str, used: bool) -> Result<Self> {
        use base64ct::{Base64Unpadded, Encoding};
        let bad = || AuthError::MalformedBackupCode(text.chars().take(12).collect());
        let mut parts = text.split('$');
        let (Some(SCHEME), Some(salt), Some(digest), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let mut stored = Self { salt: [0; SALT_LEN], digest: [0; 32], used };
        let salt_len = Base64Unpadded::decode(salt, &mut stored.salt).map_err(|_| bad())?.len();
        let digest_len = Base64Unpadded::decode(digest, &mut stored.digest).map_err(|_| bad())?.len();
        if salt_len != SALT_LEN || digest_len != 32 {
            return Err(bad());
        }
        Ok(stored)
    }

    fn new(code: &[u8]) -> Result<Self> {
        let salt = random::bytes::<SALT_LEN>()?;
        Ok(Self { salt, digest: digest(&salt, code), used: false })
    }
}

fn digest(salt: &[u8], code: &[u8]) -> [u8; 32] {
    Sha256::new().chain_update(salt).chain_update(code).finalize().into()
}

/// Makes a fresh set of [`COUNT`] codes; storing it replaces the old set.
pub fn generate() -> Result<BackupCodes> {
    let mut shown = Vec::with_capacity(COUNT);
    let mut stored = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        let code: Vec<u8> = random::bytes::<CODE_LEN>()?.iter().map(|b| ALPHABET[usize::from(b & 31)]).collect();
        stored.push(StoredBackupCode::new(&code)?);
        let groups: Vec<&str> = code.chunks(GROUP).map(|g| std::str::from_utf8(g).unwrap_or_default()).collect();
        shown.push(groups.join("-"));
    }
    Ok(BackupCodes { shown, stored })
}

/// What the user typed, as the stored form: lower case, without spaces or dashes, and with
/// Crockford's look-alikes read as the digits they stand for (`o` → `0`, `i`/`l` → `1`).
/// `None` when it cannot be a code.
fn normalise(input: &str) -> Option<Vec<u8>> {
    let code: Vec<u8> = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .map(|c| u8::try_from(c).ok().filter(|b| ALPHABET.contains(b)))
        .collect::<Option<_>>()?;
    (code.len() == CODE_LEN).then_some(code)
}

/// Uses up the code the user typed: `true` and that code marked used when it matches an unused
/// one. Every stored code is hashed and compared whatever matches, so the time taken does not
/// tell which one did.
pub fn consume(input: &str, stored: &mut [StoredBackupCode]) -> bool {
    let Some(code) = normalise(input) else { return false };
    let mut matched = None;
    for (i, entry) in stored.iter().enumerate() {
        if bool::from(digest(&entry.salt, &code).ct_eq(&entry.digest)) && !entry.used {
            matched = Some(i);
        }
    }
    match matched.and_then(|i| stored.get_mut(i)) {
        Some(entry) => {
            entry.used = true;
            true
        }
        None => false,
    }
}

/// How many codes are left, for "you have 2 backup codes left" and for prompting a new set.
pub fn remaining(stored: &[StoredBackupCode]) -> usize {
    stored.iter().filter(|c| !c.used).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_well_formed_codes() {
        let set = generate().unwrap();
        assert_eq!(set.shown.len(), COUNT);
        assert_eq!(set.stored.len(), COUNT);
        for code in &set.shown {
            assert_eq!(code.len(), 14, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [4, 4, 4], "{code}");
            assert!(code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)), "{code}");
        }
        let mut unique = set.shown.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        assert_ne!(generate().unwrap().shown, set.shown);
    }

    #[test]
    fn stored_form_is_sha256_of_salt_then_code() {
        // Pins the stored format (existing rows must keep verifying); computed independently
        // with Python's hashlib over 16 zero bytes followed by the code.
        let stored =
            StoredBackupCode { salt: [0; SALT_LEN], digest: digest(&[0; SALT_LEN], b"0123456789ab"), used: false };
        assert_eq!(stored.encode(), "sha256$AAAAAAAAAAAAAAAAAAAAAA$lWhGCIKtOQou5CNPDcCRDZLnfw9aeN7jsPM6hO+awts");
        assert!(consume("0123-4567-89ab", &mut [stored]));
    }

    #[test]
    fn each_code_works_once() {
        let BackupCodes { shown, mut stored } = generate().unwrap();
        assert!(consume(&shown[3], &mut stored));
        assert!(stored[3].used);
        assert_eq!(remaining(&stored), COUNT - 1);
        assert!(!consume(&shown[3], &mut stored), "a used code is refused");
        assert!(consume(&shown[0], &mut stored));
        assert_eq!(remaining(&stored), COUNT - 2);
        assert!(!stored[1].used && !stored[2].used);
    }

    #[test]
    fn input_is_normalised() {
        let BackupCodes { shown, mut stored } = generate().unwrap();
        let typed = format!("  {} ", shown[0].to_uppercase().replace('-', " "));
        assert!(consume(&typed, &mut stored), "{typed}");
        let no_dashes = shown[1].replace('-', "");
        assert!(consume(&no_dashes, &mut stored));
        // Look-alikes: a code with 0 and 1 typed as O and l.
        let code = b"0011abcd2345";
        let mut one = vec![StoredBackupCode::new(code).unwrap()];
        assert!(consume("OoIl-ABCD-2345", &mut one));
    }

    #[test]
    fn wrong_or_malformed_input_is_refused() {
        let BackupCodes { shown, mut stored } = generate().unwrap();
        let mut wrong = shown[0].clone().into_bytes();
        wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
        let wrong = String::from_utf8(wrong).unwrap();
        for input in [
            wrong.as_str(),
            "",
            "abcd",
            &shown[0][..13],
            &format!("{}x", shown[0]),
            "uuuu-uuuu-uuuu",
            "ａｂｃｄ-abcd-abcd",
        ] {
            assert!(!consume(input, &mut stored), "{input:?}");
        }
        assert_eq!(remaining(&stored), COUNT);
    }

    #[test]
    fn stored_codes_round_trip_through_text() {
        let BackupCodes { shown, stored } = generate().unwrap();
        let mut decoded: Vec<StoredBackupCode> =
            stored.iter().map(|s| StoredBackupCode::decode(&s.encode(), s.used).unwrap()).collect();
        assert_eq!(decoded, stored);
        assert!(consume(&shown[9], &mut decoded));
        let used_one = StoredBackupCode::decode(&decoded[9].encode(), true).unwrap();
        assert!(!consume(&shown[9], &mut [used_one]));
    }

    #[test]
    fn malformed_stored_codes_are_errors() {
        let good = generate().unwrap().stored[0].encode();
        let parts: Vec<&str> = good.split('$').collect();
        for bad in [
            String::new(),
            format!("md5${}${}", parts[1], parts[2]),
            format!("sha256${}", parts[1]),
            format!("sha256${}${}$x", parts[1], parts[2]),
            format!("sha256${}${}", &parts[1][..10], parts[2]),
            format!("sha256${}$!!!", parts[1]),
        ] {
            assert_eq!(StoredBackupCode::decode(&bad, false).unwrap_err().code(), "malformed_backup_code", "{bad}");
        }
    }
}
