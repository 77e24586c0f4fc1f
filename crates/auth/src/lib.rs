//! The pure foundations of Iaso's identity provider: password hashing and policy, TOTP, backup
//! codes, PKCE, the parsed parts of an account (email, roles, FHIR identity), token signing keys
//! and JWTs. No I/O but one: [`keys`] reads and writes the key files in a directory the caller
//! names. Callers pass the clock, store what these functions return and own every decision that
//! needs the database (lockout, the last accepted TOTP step, which backup codes are left, which
//! client assertion `jti`s were seen).

pub mod account;
pub mod backup;
mod error;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod pkce;
mod random;
pub mod session;
pub mod totp;

pub use error::{AuthError, PolicyViolation, TokenRejection};

/// The crate's result type.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;
