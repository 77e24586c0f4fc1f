//! The one place where failures become HTTP responses. FHIR endpoints answer an
//! `OperationOutcome` whose issues say what went wrong and where.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fhir::outcome::{Issue, operation_outcome};
use store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, a bad parameter, a Bundle that breaks the rules.
    #[error("bad request")]
    BadRequest(Vec<Issue>),
    /// The resource is well-formed JSON but does not conform to its StructureDefinition.
    #[error("invalid resource")]
    Invalid(Vec<Issue>),
    #[error("unknown resource type {0}")]
    UnknownType(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{resource_type}/{id} was deleted")]
    Gone { resource_type: String, id: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A Bundle entry failed; the issues already name the entry.
    #[error("bundle entry failed")]
    Entry { status: StatusCode, issues: Vec<Issue> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![Issue::error("invalid", diagnostics)])
    }

    pub fn bad_request_at(diagnostics: impl Into<String>, expression: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![Issue::error("invalid", diagnostics).at(expression)])
    }

    pub fn not_supported(diagnostics: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![Issue::error("not-supported", diagnostics)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnknownType(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Entry { status, .. } => *status,
            ApiError::Store(StoreError::VersionConflict { .. }) => StatusCode::PRECONDITION_FAILED,
            ApiError::Store(StoreError::Retry | StoreError::Exists(_)) => StatusCode::CONFLICT,
            ApiError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OperationOutcome issues describing this error.
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            ApiError::BadRequest(issues) | ApiError::Invalid(issues) => issues.clone(),
            ApiError::Entry { issues, .. } => issues.clone(),
            ApiError::UnknownType(t) => {
                vec![Issue::error("not-supported", format!("'{t}' is not a FHIR R4 resource type this server knows"))]
            }
            ApiError::NotFound(what) => vec![Issue::error("not-found", format!("{what} is not known"))],
            ApiError::Gone { resource_type, id } => {
                vec![Issue::error("deleted", format!("{resource_type}/{id} has been deleted"))]
            }
            ApiError::MethodNotAllowed => {
                vec![Issue::error("not-supported", "this interaction is not supported at this URL")]
            }
            ApiError::NotAcceptable(m) => vec![Issue::error("not-supported", m.clone())],
            ApiError::UnsupportedMediaType(m) => vec![Issue::error("not-supported", m.clone())],
            ApiError::PayloadTooLarge { limit } => {
                vec![Issue::error("too-costly", format!("the request body exceeds the limit of {limit} bytes"))]
            }
            ApiError::PreconditionFailed(m) => vec![Issue::error("conflict", m.clone())],
            ApiError::Conflict(m) => vec![Issue::error("conflict", m.clone())],
            ApiError::Store(StoreError::VersionConflict { resource_type, id, expected, actual }) => {
                vec![Issue::error(
                    "conflict",
                    format!(
                        "{resource_type}/{id}: the request was based on version {expected} but the current version is {actual}"
                    ),
                )]
            }
            ApiError::Store(StoreError::Retry) => {
                vec![Issue::error("transient", "the resource was changed concurrently; retry the request")]
            }
            ApiError::Store(e @ StoreError::Exists(_)) => vec![Issue::error("duplicate", e.to_string())],
            ApiError::Store(e @ StoreError::NotFound(_)) => vec![Issue::error("not-found", e.to_string())],
            // Internal details stay in the log: they may name tables or values.
            ApiError::Store(_) | ApiError::Internal(_) => vec![Issue::error(
                "exception",
                "an internal error occurred; the request id identifies it in the server log",
            )],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = operation_outcome(&self.issues()).to_string();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::negotiate::FHIR_JSON));
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A failure on one of the HTML pages ([`crate::pages`]): the same errors, answered as a page
/// that says the request could not be completed, with the details in the log only.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl PageError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        PageError(ApiError::Internal(e.to_string()))
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError(ApiError::Store(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "page request failed");
        let text = "The server could not complete this request. Try again later.";
        let body = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Error · Iaso</title><h1>Something went wrong</h1><p role=\"alert\">{text}</p><p><a href=\"/auth/login\">Back to sign in</a></p></html>"
        );
        let mut response = (StatusCode::INTERNAL_SERVER_ERROR, axum::response::Html(body)).into_response();
        crate::pages::secure_headers(response.headers_mut());
        response
    }
}
