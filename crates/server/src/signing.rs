//! The token signing keys of this instance (`<data-dir>/keys`, made at first start) and their
//! public half at `/.well-known/jwks.json`, which services verifying Iaso's tokens read.
//! `iaso keys rotate` rewrites the directory; a running server notices within
//! [`RELOAD_INTERVAL`] and publishes the new set, old keys included until they expire.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use auth::keys::KeyRing;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// How often a request may look at the key directory for a rotation.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);

pub struct SigningKeys {
    dir: PathBuf,
    state: RwLock<(Arc<KeyRing>, Instant)>,
}

impl SigningKeys {
    /// Loads the keys in `dir`, making them on first start.
    pub fn open(dir: PathBuf) -> auth::Result<Self> {
        let ring = KeyRing::load_or_create(&dir, chrono::Utc::now().timestamp())?;
        Ok(SigningKeys { dir, state: RwLock::new((Arc::new(ring), Instant::now())) })
    }

    /// The key ring in force, re-read when the directory changed since the last look. A
    /// directory caught mid-rotation keeps the ring already loaded until the next look.
    pub fn current(&self) -> Arc<KeyRing> {
        let (ring, checked) = match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if checked.elapsed() < RELOAD_INTERVAL {
            return ring;
        }
        let fresh = match KeyRing::stored_generation(&self.dir) {
            Ok(g) if g == ring.generation() => ring,
            Ok(_) => match KeyRing::load(&self.dir) {
                Ok(new) => Arc::new(new),
                Err(e) => {
                    tracing::warn!(error = %e, "the signing keys changed but do not load; keeping the previous ones");
                    ring
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the signing key directory");
                ring
            }
        };
        let mut state = match self.state.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *state = (fresh.clone(), Instant::now());
        fresh
    }
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let Some(keys) = &state.keys else {
        let body = serde_json::json!({"error": "not_found", "message": "this instance has no signing keys"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let mut response = Json(keys.current().jwks()).into_response();
    // Verifiers may cache the set briefly; a rotation publishes the new key well before use.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}
