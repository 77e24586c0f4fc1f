use crate::{AuthError, Result};

/// Bytes straight from the operating system's generator: secrets and salts are few and small, so
/// a user-space generator would add state to reason about and save nothing.
pub(crate) fn bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(buf)
}
