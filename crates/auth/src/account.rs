//! What an account is made of, parsed: its email, its roles and the FHIR identity it stands for.
//! The store keeps the text these give; only values that passed through here reach it.

use std::fmt;

use crate::{AuthError, Result};

/// An email address as accounts key on it: trimmed and lower-cased, so that `Ann@Example.org`
/// and `ann@example.org` are one account. The syntax check is the practical subset of RFC 5321
/// (one `@`, a local part of at most 64 and an address of at most 254 octets, a domain of
/// dot-separated labels): delivery is what proves an address, through the verification link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self> {
        let email = text.trim().to_lowercase();
        let bad = |why: &'static str| AuthError::InvalidEmail(why);
        if email.len() > 254 {
            return Err(bad("longer than 254 characters"));
        }
        let (local, domain) = email.split_once('@').ok_or(bad("no @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before @ must have 1 to 64 characters"));
        }
        if domain.contains('@') {
            return Err(bad("more than one @"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';')) {
            return Err(bad("spaces, quotes, brackets, commas and semicolons are not allowed"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(bad("the part after @ must be a domain name such as example.org"));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The roles a clinic starts with. Roles are data: an installation may add its own, and the
/// access policy (not this list) gives each its permissions.
pub const STANDARD_ROLES: &[&str] =
    &["patient", "practitioner", "nurse", "front-desk", "billing", "admin", "researcher"];

/// A role name: lower-case letters, digits and dashes, starting with a letter, at most 64.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(String);

impl Role {
    pub fn parse(text: &str) -> Result<Self> {
        let role = text.trim();
        let ok = role.len() <= 64
            && role.starts_with(|c: char| c.is_ascii_lowercase())
            && role.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok { Ok(Role(role.to_owned())) } else { Err(AuthError::InvalidRole(role.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Roles that see other people's records: they may be required to use MFA.
    pub fn is_staff(&self) -> bool {
        !matches!(self.0.as_str(), "patient")
    }
}

/// The FHIR resource an account acts as (SMART's `fhirUser`): a Patient, Practitioner or
/// RelatedPerson, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirUser {
    resource_type: &'static str,
    id: String,
}

impl FhirUser {
    const TYPES: [&'static str; 3] = ["Patient", "Practitioner", "RelatedPerson"];

    /// `Type/id`, with FHIR's id syntax (1 to 64 of `A-Z a-z 0-9 - .`).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || AuthError::InvalidFhirUser(text.to_owned());
        let (rt, id) = text.trim().split_once('/').ok_or_else(bad)?;
        let resource_type = Self::TYPES.into_iter().find(|t| *t == rt).ok_or_else(bad)?;
        let id_ok =
            (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !id_ok {
            return Err(bad());
        }
        Ok(FhirUser { resource_type, id: id.to_owned() })
    }

    pub fn resource_type(&self) -> &'static str {
        self.resource_type
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for FhirUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource_type, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ann.Lee+clinic@Example.ORG ").expect("valid").as_str(),
            "ann.lee+clinic@example.org"
        );
        assert_eq!(Email::parse("zoë@straße.de").expect("international").as_str(), "zoë@straße.de");
        for bad in [
            "",
            "ann",
            "@example.org",
            "ann@",
            "ann@localhost",
            "ann@@example.org",
            "a b@example.org",
            "ann@exa_mple.org",
            "ann@-example.org",
            "ann@example..org",
            "<ann@example.org>",
        ] {
            assert!(matches!(Email::parse(bad), Err(AuthError::InvalidEmail(_))), "{bad:?} accepted");
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
        let long = format!("a@{}.org", "b".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn roles_are_names() {
        for r in STANDARD_ROLES {
            assert_eq!(Role::parse(r).expect("standard").as_str(), *r);
        }
        assert_eq!(Role::parse(" lab-tech2 ").expect("custom").as_str(), "lab-tech2");
        for bad in ["", "Admin", "2nd", "front desk", "a;drop", &"x".repeat(65)] {
            assert!(matches!(Role::parse(bad), Err(AuthError::InvalidRole(_))), "{bad:?} accepted");
        }
        assert!(!Role::parse("patient").expect("role").is_staff());
        assert!(Role::parse("nurse").expect("role").is_staff());
    }

    #[test]
    fn fhir_users_are_three_types_by_id() {
        let u = FhirUser::parse("Practitioner/pr-1.a").expect("valid");
        assert_eq!((u.resource_type(), u.id()), ("Practitioner", "pr-1.a"));
        assert_eq!(u.to_string(), "Practitioner/pr-1.a");
        for bad in [
            "Patient",
            "Patient/",
            "Observation/1",
            "patient/1",
            "Patient/a/b",
            "Patient/a b",
            &format!("Patient/{}", "1".repeat(65)),
        ] {
            assert!(matches!(FhirUser::parse(bad), Err(AuthError::InvalidFhirUser(_))), "{bad:?} accepted");
        }
    }
}
