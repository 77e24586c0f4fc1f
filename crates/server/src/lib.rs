//! Iaso's HTTP layer: routing, content negotiation, the one error-to-HTTP mapping and the FHIR
//! REST handlers. Handlers are thin: domain work happens in [`service`] (FHIR interactions over
//! the store), [`bundle`] (batch/transaction) and the `fhir` and `store` crates.

pub mod bundle;
mod capability;
pub mod error;
mod health;
mod history;
pub mod idp;
pub mod negotiate;
pub mod pages;
pub mod reindex;
mod respond;
mod rest;
mod search;
pub mod service;
pub mod signing;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fhir::search::Registry;
use store::Store;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;

/// Server settings that are not the store.
#[derive(Debug, Clone)]
pub struct Config {
    /// The FHIR base URL clients use (`https://clinic.example/fhir`); derived from `Host` if unset.
    pub base_url: Option<String>,
    /// Largest request body accepted; large enough for big transaction Bundles.
    pub max_body_bytes: usize,
    pub identity: idp::IdentityConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config { base_url: None, max_body_bytes: DEFAULT_MAX_BODY_BYTES, identity: idp::IdentityConfig::default() }
    }
}

/// 64 MiB: Synthea patient Bundles reach a few MB; whole-practice imports go through `iaso import`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// When this instance started, as a FHIR dateTime (the CapabilityStatement's date).
    pub started: Arc<str>,
    /// The search parameters writes are indexed by and searches use; `$reindex` replaces them
    /// when custom SearchParameters change.
    registry: Arc<std::sync::RwLock<Arc<Registry>>>,
    /// The background re-indexing job.
    pub reindex: Arc<reindex::Job>,
    /// Sign-in, sessions and second factors.
    pub idp: Arc<idp::Idp>,
    /// The token signing keys; `None` for a server without a data directory (some tests).
    pub keys: Option<Arc<signing::SigningKeys>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        AppState::with_registry(store, config, fhir::search::standard_shared())
    }

    pub fn with_registry(store: Arc<dyn Store>, config: Config, registry: Arc<Registry>) -> Self {
        let started = respond::instant(chrono::Utc::now());
        AppState {
            store,
            idp: Arc::new(idp::Idp::new(config.identity.clone())),
            keys: None,
            config: Arc::new(config),
            started: started.into(),
            registry: Arc::new(std::sync::RwLock::new(registry)),
            reindex: Arc::new(reindex::Job::default()),
        }
    }

    /// The search parameters in force.
    pub fn registry(&self) -> Arc<Registry> {
        match self.registry.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_registry(&self, registry: Arc<Registry>) {
        match self.registry.write() {
            Ok(mut r) => *r = registry,
            Err(poisoned) => *poisoned.into_inner() = registry,
        }
    }

    /// Where the FHIR interactions of a request run.
    pub fn ctx(&self) -> service::Ctx<'_> {
        service::Ctx { store: self.store.as_ref(), tenant: store::DEFAULT_TENANT, registry: self.registry() }
    }
}

pub fn router(state: AppState) -> Router {
    let fhir = Router::new()
        .route("/", post(rest::base_post).get(search::system_get))
        .route("/_search", post(search::system_post))
        .route("/$reindex", post(reindex::start).get(reindex::status))
        .route("/metadata", get(rest::metadata))
        .route("/_history", get(rest::system_history))
        .route(
            "/{type}",
            post(rest::create)
                .get(search::type_get)
                .put(rest::conditional_update)
                .delete(rest::conditional_delete)
                .patch(rest::conditional_patch),
        )
        .route("/{type}/_history", get(rest::type_history))
        .route("/{type}/_search", post(search::type_post))
        .route("/{type}/$everything", get(search::everything_type))
        .route("/{type}/$validate", post(rest::validate))
        .route("/{type}/{id}", get(rest::read).put(rest::update).patch(rest::patch).delete(rest::delete))
        .route("/{type}/{id}/_history", get(rest::instance_history))
        .route("/{type}/{id}/_history/{vid}", get(rest::vread))
        .route("/{type}/{id}/$validate", post(rest::validate))
        .route("/{type}/{id}/{member}", get(search::compartment))
        .fallback(fhir_not_found)
        .method_not_allowed_fallback(rest::method_not_allowed);

    let request_id = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // The path only: query strings can carry search terms such as names (PHI).
                    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id());

    Router::new()
        .nest("/fhir", fhir)
        .route("/fhir/", post(rest::base_post).get(search::system_get))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/.well-known/jwks.json", get(signing::jwks))
        .merge(pages::router(&state))
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .layer(request_id)
        .with_state(state)
}

async fn fhir_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("the FHIR endpoint {}", uri.path()))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": "not_found", "message": "no such endpoint"})))
        .into_response()
}

/// Serves until `shutdown` completes, then stops accepting connections and lets in-flight
/// requests finish (each write is one database transaction, so nothing is left half-written).
/// Requests still running after [`SHUTDOWN_GRACE`] are abandoned; their transactions roll back.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (begun, shutdown_begun) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = begun.send(());
        });
    let deadline = async {
        if shutdown_begun.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "requests still running at the end of the grace period were abandoned");
            Ok(())
        }
    }
}

/// How long graceful shutdown waits for in-flight requests before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
