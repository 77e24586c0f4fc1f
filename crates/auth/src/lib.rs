//! The pure foundations of Iaso's identity provider: password hashing and policy, TOTP, backup
//! codes, PKCE, and the parsed parts of an account (email, roles, FHIR identity). No I/O: callers pass the clock, store what these functions return and own
//! every decision that needs the database (lockout, the last accepted TOTP step, which backup
//! codes are left).

pub mod account;
pub mod backup;
mod error;
pub mod password;
pub mod pkce;
mod random;
pub mod session;
pub mod totp;

pub use error::{AuthError, PolicyViolation};

/// The crate's result type.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;
