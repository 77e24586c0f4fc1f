//! Identity provider accounts as the store keeps them. The rules (email syntax, password
//! policy, which roles exist) belong to the `auth` crate; the store keeps what it is given and
//! guarantees one account per email and tenant, and no lost update (a version per account).

use chrono::{DateTime, Utc};

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// Signs in no more; kept for the audit trail and so the email stays taken.
    Disabled,
    /// Created by an invitation that has not been accepted yet: no password.
    Invited,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
            AccountStatus::Invited => "invited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => AccountStatus::Active,
            "disabled" => AccountStatus::Disabled,
            "invited" => AccountStatus::Invited,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: String,
    /// As normalised by the caller (lower case): the store compares it as given.
    pub email: String,
    pub email_verified: bool,
    /// A PHC string (it names the algorithm and its parameters); `None` for an account without
    /// a password (invited, or signing in through an outside provider).
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
    /// `Patient/…`, `Practitioner/…` or `RelatedPerson/…`.
    pub fhir_user: Option<String>,
    pub status: AccountStatus,
    /// Starts at 1; an update names the version it read and gets the next.
    pub version: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// Roles are kept as one JSON array of strings.
pub(crate) fn roles_to_text(roles: &[String]) -> String {
    serde_json::Value::from(roles.to_vec()).to_string()
}

pub(crate) fn roles_from_text(text: &str) -> crate::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| crate::StoreError::Database(format!("stored roles unreadable: {e}")))
}

pub(crate) fn status_from_text(text: &str) -> crate::Result<AccountStatus> {
    AccountStatus::parse(text).ok_or_else(|| crate::StoreError::Database(format!("stored account status '{text}'")))
}

/// The columns every account query selects, in the order the backends read them.
pub(crate) const ACCOUNT_COLUMNS: &str =
    "id, email, email_verified, password_hash, roles, fhir_user, status, version, created, updated";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_roles_round_trip() {
        for s in [AccountStatus::Active, AccountStatus::Disabled, AccountStatus::Invited] {
            assert_eq!(AccountStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(AccountStatus::parse("locked"), None);
        let roles = vec!["nurse".to_owned(), "front \"desk\"".to_owned()];
        assert_eq!(roles_from_text(&roles_to_text(&roles)).expect("reads"), roles);
        assert!(roles_from_text("not json").is_err());
    }
}
