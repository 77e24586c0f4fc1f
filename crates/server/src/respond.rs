//! Building FHIR responses: ETag, Last-Modified, Location, and bodies per `Prefer`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use fhir::outcome::{Issue, operation_outcome};
use serde_json::Value;
use store::ResourceVersion;

use crate::negotiate::{Negotiated, PreferReturn};

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// A FHIR `instant` with millisecond precision, as the store keeps times.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The relative version-specific location of a version: `Patient/1/_history/2`.
pub fn location(v: &ResourceVersion) -> String {
    format!("{}/{}/_history/{}", v.resource_type, v.id, v.version)
}

/// A JSON body in the negotiated format.
pub fn json(negotiated: &Negotiated, status: StatusCode, value: &Value) -> Response {
    body(negotiated, status, negotiated.render(value))
}

/// A serialisable body (one that may embed stored JSON as it is) in the negotiated format.
pub fn serialized<T: serde::Serialize>(negotiated: &Negotiated, status: StatusCode, value: &T) -> Response {
    body(negotiated, status, negotiated.render_serialized(value))
}

fn body(negotiated: &Negotiated, status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, negotiated.content_type.clone());
    response
}

/// The response to an interaction that produced or read a resource version.
pub fn version(
    negotiated: &Negotiated,
    status: StatusCode,
    v: &ResourceVersion,
    base_url: &str,
    with_location: bool,
) -> Response {
    let prefer = negotiated.prefer_return.unwrap_or(PreferReturn::Representation);
    let mut response = match (prefer, &v.body) {
        (PreferReturn::Representation, Some(stored)) => body(negotiated, status, negotiated.render_stored(stored)),
        (PreferReturn::OperationOutcome, _) => json(
            negotiated,
            status,
            &operation_outcome(&[Issue::information(
                "informational",
                format!("{}/{} version {}", v.resource_type, v.id, v.version),
            )]),
        ),
        _ => status.into_response(),
    };
    version_headers(response.headers_mut(), v, base_url, with_location);
    response
}

pub fn version_headers(headers: &mut HeaderMap, v: &ResourceVersion, base_url: &str, with_location: bool) {
    if let Ok(value) = HeaderValue::from_str(&etag(v.version)) {
        headers.insert(header::ETAG, value);
    }
    let modified = httpdate::fmt_http_date(std::time::SystemTime::from(v.last_updated));
    if let Ok(value) = HeaderValue::from_str(&modified) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    if with_location && let Ok(value) = HeaderValue::from_str(&format!("{base_url}/{}", location(v))) {
        headers.insert(header::LOCATION, value);
    }
}
