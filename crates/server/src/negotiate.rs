//! Content negotiation (`Accept`, `_format`, `_pretty`), `Prefer`, and request bodies.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
const PLAIN_JSON: &str = "application/json; charset=utf-8";
pub const JSON_PATCH: &str = "application/json-patch+json";

/// What the client asked for with `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferReturn {
    Minimal,
    Representation,
    OperationOutcome,
}

/// The response format the client negotiated, and its preferences.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub pretty: bool,
    pub content_type: HeaderValue,
    /// `None` when the client did not say; the default differs per interaction.
    pub prefer_return: Option<PreferReturn>,
}

impl Negotiated {
    pub fn from_parts(headers: &HeaderMap, query: Option<&str>) -> ApiResult<Self> {
        let mut format = None;
        let mut pretty = false;
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                match &*k {
                    "_format" => format = Some(v.into_owned()),
                    "_pretty" => pretty = v == "true",
                    _ => {}
                }
            }
        }
        let content_type = match format {
            Some(f) => format_content_type(&f)?,
            None => accept_content_type(headers)?,
        };
        Ok(Negotiated { pretty, content_type, prefer_return: prefer_return(headers) })
    }

    /// Serialises a body in the negotiated style.
    pub fn render(&self, value: &Value) -> String {
        if self.pretty { serde_json::to_string_pretty(value).unwrap_or_default() } else { value.to_string() }
    }

    /// [`Self::render`] for any serialisable value; embedded stored JSON is re-indented (through
    /// a `Value`) only when the client asked for pretty output.
    pub fn render_serialized<T: serde::Serialize>(&self, value: &T) -> String {
        if self.pretty {
            serde_json::to_value(value).map(|v| self.render(&v)).unwrap_or_default()
        } else {
            serde_json::to_string(value).unwrap_or_default()
        }
    }

    /// Stored resource text as it should go out: stored bodies are compact JSON, so they are sent
    /// as they are unless the client asked for pretty output.
    pub fn render_stored(&self, stored: &str) -> String {
        if self.pretty {
            match serde_json::from_str::<Value>(stored) {
                Ok(v) => self.render(&v),
                Err(_) => stored.to_owned(),
            }
        } else {
            stored.to_owned()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Negotiated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Negotiated::from_parts(&parts.headers, parts.uri.query())
    }
}

fn format_content_type(format: &str) -> ApiResult<HeaderValue> {
    let mime = format.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "json" | "application/fhir+json" | "application/json+fhir" => Ok(HeaderValue::from_static(FHIR_JSON)),
        "application/json" | "text/json" => Ok(HeaderValue::from_static(PLAIN_JSON)),
        _ => Err(ApiError::NotAcceptable(format!(
            "_format '{format}' is not supported; this server speaks JSON (application/fhir+json)"
        ))),
    }
}

fn accept_content_type(headers: &HeaderMap) -> ApiResult<HeaderValue> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(HeaderValue::from_static(FHIR_JSON));
    };
    let mut wildcard = false;
    let mut plain_json = false;
    for range in accept.split(',') {
        let mime = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/fhir+json" | "application/json+fhir" => {
                return Ok(HeaderValue::from_static(FHIR_JSON));
            }
            "application/json" | "text/json" => plain_json = true,
            "*/*" | "application/*" | "" => wildcard = true,
            _ => {}
        }
    }
    if plain_json {
        Ok(HeaderValue::from_static(PLAIN_JSON))
    } else if wildcard {
        Ok(HeaderValue::from_static(FHIR_JSON))
    } else {
        Err(ApiError::NotAcceptable(format!(
            "none of the media types in Accept ({accept}) can be produced; this server speaks application/fhir+json"
        )))
    }
}

fn prefer_return(headers: &HeaderMap) -> Option<PreferReturn> {
    for value in headers.get_all("prefer") {
        let Ok(text) = value.to_str() else { continue };
        for token in text.split([',', ';']) {
            let token = token.trim();
            if let Some(v) = token.strip_prefix("return=") {
                return match v.trim_matches('"') {
                    "minimal" => Some(PreferReturn::Minimal),
                    "representation" => Some(PreferReturn::Representation),
                    "OperationOutcome" => Some(PreferReturn::OperationOutcome),
                    _ => None,
                };
            }
        }
    }
    None
}

/// Which media types a request body may have.
#[derive(Debug, Clone, Copy)]
pub enum BodyKind {
    Resource,
    /// A JSON Patch (`application/json-patch+json`) or a FHIRPath Patch (a Parameters
    /// resource, as FHIR JSON).
    Patch,
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Whether a PATCH body is a JSON Patch; any other accepted body is a FHIRPath Patch.
pub fn is_json_patch(headers: &HeaderMap) -> bool {
    media_type(headers).as_deref() == Some(JSON_PATCH)
}

/// Reads and parses a request body: checks the media type, enforces the size limit, and reports
/// malformed JSON with its line and column.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize, kind: BodyKind) -> ApiResult<Value> {
    let content_type = media_type(headers);
    let fhir_json =
        matches!(content_type.as_deref(), Some("application/fhir+json" | "application/json" | "application/json+fhir"));
    let accepted = match kind {
        BodyKind::Resource => fhir_json,
        BodyKind::Patch => fhir_json || content_type.as_deref() == Some(JSON_PATCH),
    };
    if !accepted {
        let expected = match kind {
            BodyKind::Resource => "application/fhir+json",
            BodyKind::Patch => {
                "application/json-patch+json (JSON Patch) or application/fhir+json (FHIRPath Patch, a Parameters resource)"
            }
        };
        return Err(ApiError::UnsupportedMediaType(match content_type {
            Some(ct) => format!("Content-Type '{ct}' is not supported here; send {expected}"),
            None => format!("the request has no Content-Type; send {expected}"),
        }));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request(format!("the request body could not be read: {e}"))
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(vec![fhir::outcome::Issue::error(
            "structure",
            format!("the body is not valid JSON: {e} (line {}, column {})", e.line(), e.column()),
        )])
    })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn browsers_and_missing_accept_get_fhir_json() {
        let n = Negotiated::from_parts(&headers(&[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")]), None)
            .expect("negotiates");
        assert_eq!(n.content_type, FHIR_JSON);
        let n = Negotiated::from_parts(&HeaderMap::new(), None).expect("negotiates");
        assert_eq!(n.content_type, FHIR_JSON);
    }

    #[test]
    fn xml_only_is_not_acceptable() {
        assert!(matches!(
            Negotiated::from_parts(&headers(&[("accept", "application/fhir+xml")]), None),
            Err(ApiError::NotAcceptable(_))
        ));
        assert!(matches!(
            Negotiated::from_parts(&HeaderMap::new(), Some("_format=xml")),
            Err(ApiError::NotAcceptable(_))
        ));
    }

    #[test]
    fn format_and_pretty_parameters() {
        let n = Negotiated::from_parts(&HeaderMap::new(), Some("_format=json&_pretty=true")).expect("negotiates");
        assert!(n.pretty);
        assert_eq!(n.content_type, FHIR_JSON);
    }

    #[test]
    fn prefer_header() {
        let n = Negotiated::from_parts(&headers(&[("prefer", "return=minimal")]), None).expect("negotiates");
        assert_eq!(n.prefer_return, Some(PreferReturn::Minimal));
        let n = Negotiated::from_parts(&headers(&[("prefer", "handling=strict, return=OperationOutcome")]), None)
            .expect("negotiates");
        assert_eq!(n.prefer_return, Some(PreferReturn::OperationOutcome));
    }
}
