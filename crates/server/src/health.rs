//! Probes: live as soon as the process serves HTTP; ready once the store answers with its schema
//! current (migrations run before the listener opens).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

pub async fn live() -> Response {
    Json(json!({"status": "live"})).into_response()
}

pub async fn ready(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => Json(json!({"status": "ready", "store": app.store.backend()})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "not_ready", "message": "the database is not reachable"})),
            )
                .into_response()
        }
    }
}
