//! FHIR REST handlers: thin translations from HTTP to [`crate::service`] calls.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use fhir::outcome::{Issue, operation_outcome};
use serde_json::Value;
use store::DEFAULT_TENANT;

use crate::AppState;
use crate::bundle::{self, BundleOptions};
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{BodyKind, Negotiated, PreferReturn, is_json_patch, read_json};
use crate::respond;
use crate::service::{self, PatchDocument, Target};

/// The FHIR base URL as clients reach it: configured, or derived from the `Host` header.
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(base) = &state.config.base_url {
            return Ok(BaseUrl(base.clone()));
        }
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        Ok(BaseUrl(format!("http://{host}/fhir")))
    }
}

fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str().map_err(|_| ApiError::bad_request("If-Match is not readable text")).and_then(service::parse_etag)
        })
        .transpose()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn criteria_query(query: Option<&str>, what: &str) -> ApiResult<String> {
    match query.map(strip_format_params) {
        Some(q) if !q.is_empty() => Ok(q),
        _ => Err(ApiError::bad_request(format!("{what} at the type level needs search criteria in the URL"))),
    }
}

/// Conditional criteria without the formatting parameters, which are not criteria.
fn strip_format_params(query: &str) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "_format" && k != "_pretty")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish()
}

pub async fn metadata(State(app): State<AppState>, negotiated: Negotiated, BaseUrl(base): BaseUrl) -> Response {
    respond::json(
        &negotiated,
        StatusCode::OK,
        &crate::capability::capability_statement(&base, &app.started, &app.registry()),
    )
}

/// `POST [base]`: a batch or transaction Bundle.
pub async fn base_post(
    State(app): State<AppState>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let bundle = read_json(&headers, body, app.config.max_body_bytes, BodyKind::Resource).await?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_request_at(
            "POST to the server base takes a Bundle of type transaction or batch",
            "resourceType",
        ));
    }
    let options = BundleOptions::new(base, negotiated.prefer_return.unwrap_or(PreferReturn::Minimal), app.registry());
    let response = bundle::process(app.store.as_ref(), DEFAULT_TENANT, &bundle, &options).await?;
    Ok(respond::json(&negotiated, StatusCode::OK, &response))
}

pub async fn system_history(
    State(app): State<AppState>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let bundle =
        crate::history::history(app.store.as_ref(), DEFAULT_TENANT, None, None, query.as_deref(), &base).await?;
    Ok(respond::json(&negotiated, StatusCode::OK, &bundle))
}

pub async fn type_history(
    State(app): State<AppState>,
    Path(rt): Path<String>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    let bundle =
        crate::history::history(app.store.as_ref(), DEFAULT_TENANT, Some(&rt), None, query.as_deref(), &base).await?;
    Ok(respond::json(&negotiated, StatusCode::OK, &bundle))
}

pub async fn instance_history(
    State(app): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    service::valid_id(&id)?;
    if app.store.read(DEFAULT_TENANT, &rt, &id).await?.is_none() {
        return Err(ApiError::NotFound(format!("{rt}/{id}")));
    }
    let bundle =
        crate::history::history(app.store.as_ref(), DEFAULT_TENANT, Some(&rt), Some(&id), query.as_deref(), &base)
            .await?;
    Ok(respond::json(&negotiated, StatusCode::OK, &bundle))
}

/// `POST [type]`: create, conditional with `If-None-Exist`.
pub async fn create(
    State(app): State<AppState>,
    Path(rt): Path<String>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    let resource = read_json(&headers, body, app.config.max_body_bytes, BodyKind::Resource).await?;
    let if_none_exist = header_text(&headers, "if-none-exist").map(|q| q.trim_start_matches('?').to_owned());
    let written = service::create(app.ctx(), &rt, &resource, if_none_exist.as_deref()).await?;
    let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(respond::version(&negotiated, status, &written.version, &base, true))
}

/// `PUT [type]?criteria`: conditional update.
pub async fn conditional_update(
    State(app): State<AppState>,
    Path(rt): Path<String>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    let query = criteria_query(query.as_deref(), "an update")?;
    let resource = read_json(&headers, body, app.config.max_body_bytes, BodyKind::Resource).await?;
    let written = service::conditional_update(app.ctx(), &rt, &query, &resource, if_match(&headers)?).await?;
    let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(respond::version(&negotiated, status, &written.version, &base, true))
}

/// `DELETE [type]?criteria`: conditional delete.
pub async fn conditional_delete(
    State(app): State<AppState>,
    Path(rt): Path<String>,
    negotiated: Negotiated,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    let query = criteria_query(query.as_deref(), "a delete")?;
    let target = Target::conditional(&app.registry(), &rt, &query)?;
    let deleted = service::delete(app.ctx(), &rt, target, None).await?;
    Ok(deleted_response(&negotiated, deleted))
}

/// `PATCH [type]?criteria`: conditional patch (JSON Patch or FHIRPath Patch).
pub async fn conditional_patch(
    State(app): State<AppState>,
    Path(rt): Path<String>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    let query = criteria_query(query.as_deref(), "a patch")?;
    let target = Target::conditional(&app.registry(), &rt, &query)?;
    let patch = read_patch(&headers, body, app.config.max_body_bytes).await?;
    let written = service::patch(app.ctx(), &rt, target, &patch, if_match(&headers)?).await?;
    Ok(respond::version(&negotiated, StatusCode::OK, &written.version, &base, false))
}

/// `GET [type]/[id]`: read, honouring `If-None-Match` and `If-Modified-Since`.
pub async fn read(
    State(app): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    service::valid_id(&id)?;
    let Some(version) = app.store.read(DEFAULT_TENANT, &rt, &id).await? else {
        return Err(ApiError::NotFound(format!("{rt}/{id}")));
    };
    if version.is_deleted() {
        return Err(ApiError::Gone { resource_type: rt, id });
    }
    if not_modified(&headers, version.version, version.last_updated) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        respond::version_headers(response.headers_mut(), &version, &base, false);
        return Ok(response);
    }
    let reading = Negotiated { prefer_return: Some(PreferReturn::Representation), ..negotiated };
    Ok(respond::version(&reading, StatusCode::OK, &version, &base, false))
}

fn not_modified(headers: &HeaderMap, version: i64, last_updated: DateTime<Utc>) -> bool {
    if let Some(tags) = header_text(headers, "if-none-match") {
        return tags.split(',').any(|t| {
            let t = t.trim();
            t == "*" || service::parse_etag(t).ok() == Some(version)
        });
    }
    if let Some(since) = header_text(headers, "if-modified-since").and_then(|v| httpdate::parse_http_date(v).ok()) {
        let since: DateTime<Utc> = since.into();
        return last_updated.timestamp() <= since.timestamp();
    }
    false
}

/// `GET [type]/[id]/_history/[vid]`.
pub async fn vread(
    State(app): State<AppState>,
    Path((rt, id, vid)): Path<(String, String, String)>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    service::valid_id(&id)?;
    let number: i64 =
        vid.parse().map_err(|_| ApiError::bad_request(format!("'{vid}' is not a version id (a whole number)")))?;
    let Some(version) = app.store.vread(DEFAULT_TENANT, &rt, &id, number).await? else {
        return Err(ApiError::NotFound(format!("{rt}/{id}/_history/{vid}")));
    };
    if version.is_deleted() {
        return Err(ApiError::Gone { resource_type: rt, id });
    }
    let reading = Negotiated { prefer_return: Some(PreferReturn::Representation), ..negotiated };
    Ok(respond::version(&reading, StatusCode::OK, &version, &base, false))
}

/// `PUT [type]/[id]`: update, or create with a client-chosen id.
pub async fn update(
    State(app): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    service::valid_id(&id)?;
    let resource = read_json(&headers, body, app.config.max_body_bytes, BodyKind::Resource).await?;
    let written = service::update(app.ctx(), &rt, &id, &resource, if_match(&headers)?).await?;
    let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(respond::version(&negotiated, status, &written.version, &base, true))
}

/// A PATCH body, by its media type: a JSON Patch, or a FHIRPath Patch (a Parameters resource).
async fn read_patch(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<PatchDocument> {
    let document = read_json(headers, body, limit, BodyKind::Patch).await?;
    if is_json_patch(headers) { PatchDocument::json_patch(document) } else { PatchDocument::fhirpath(&document) }
}

/// `PATCH [type]/[id]` with a JSON Patch or a FHIRPath Patch.
pub async fn patch(
    State(app): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    service::valid_id(&id)?;
    let patch = read_patch(&headers, body, app.config.max_body_bytes).await?;
    let written = service::patch(app.ctx(), &rt, Target::Id(&id), &patch, if_match(&headers)?).await?;
    Ok(respond::version(&negotiated, StatusCode::OK, &written.version, &base, false))
}

/// `DELETE [type]/[id]`.
pub async fn delete(
    State(app): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    negotiated: Negotiated,
    headers: HeaderMap,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    service::valid_id(&id)?;
    let deleted = service::delete(app.ctx(), &rt, Target::Id(&id), if_match(&headers)?).await?;
    Ok(deleted_response(&negotiated, deleted))
}

fn deleted_response(negotiated: &Negotiated, deleted: Vec<store::ResourceVersion>) -> Response {
    let message = match deleted.as_slice() {
        [] => "nothing to delete: no resource matched".to_owned(),
        [v] => format!("deleted {}/{} (version {})", v.resource_type, v.id, v.version),
        many => format!(
            "deleted {} resources: {}",
            many.len(),
            many.iter().map(|v| format!("{}/{}", v.resource_type, v.id)).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut response = match negotiated.prefer_return {
        Some(PreferReturn::Minimal) => StatusCode::NO_CONTENT.into_response(),
        _ => respond::json(
            negotiated,
            StatusCode::OK,
            &operation_outcome(&[Issue::information("informational", message)]),
        ),
    };
    if let [v] = deleted.as_slice()
        && let Ok(value) = respond::etag(v.version).parse()
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `POST [type]/$validate` and `POST [type]/[id]/$validate`: the resource, or a Parameters
/// resource carrying it in `resource`, checked without being stored.
pub async fn validate(
    State(app): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    negotiated: Negotiated,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let rt = params.iter().find(|(k, _)| k == "type").map(|(_, v)| v.clone()).unwrap_or_default();
    let id = params.iter().find(|(k, _)| k == "id").map(|(_, v)| v.clone());
    service::known_type(&rt)?;
    let payload = read_json(&headers, body, app.config.max_body_bytes, BodyKind::Resource).await?;
    let mut mode = query
        .as_deref()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "mode").map(|(_, v)| v.into_owned()));
    let resource = if payload.get("resourceType").and_then(Value::as_str) == Some("Parameters") && rt != "Parameters" {
        let params = payload.get("parameter").and_then(Value::as_array).cloned().unwrap_or_default();
        for p in &params {
            if p.get("name").and_then(Value::as_str) == Some("mode") {
                mode = p.get("valueCode").and_then(Value::as_str).map(str::to_owned);
            }
        }
        params
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"))
            .and_then(|p| p.get("resource").cloned())
            .ok_or_else(|| ApiError::bad_request_at("the Parameters carry no 'resource'", "Parameters.parameter"))?
    } else {
        payload
    };
    let mut issues = Vec::new();
    match resource.get("resourceType").and_then(Value::as_str) {
        // $validate reports the warning invariants too (writes only fail on errors).
        Some(t) if t == rt => {
            let options = fhir::validate::Options { warnings: true, ..fhir::validate::Options::default() };
            issues.extend(fhir::validate::validate(&resource, &options))
        }
        Some(t) => {
            issues.push(Issue::error("invalid", format!("the resource is a {t}, not a {rt}")).at("resourceType"))
        }
        None => issues.push(Issue::error("required", "the body has no resourceType").at("resourceType")),
    }
    if mode.as_deref() == Some("update") {
        match (resource.get("id").and_then(Value::as_str), id.as_deref()) {
            (None, _) => {
                issues.push(Issue::error("required", "mode=update needs a resource id").at(format!("{rt}.id")))
            }
            (Some(b), Some(u)) if b != u => issues.push(
                Issue::error("invalid", format!("the resource id '{b}' does not match the URL id '{u}'"))
                    .at(format!("{rt}.id")),
            ),
            _ => {}
        }
    }
    Ok(respond::json(&negotiated, StatusCode::OK, &operation_outcome(&issues)))
}

/// A method a FHIR URL does not support: 405, unless the resource type itself is unknown (404).
pub async fn method_not_allowed(uri: axum::http::Uri) -> ApiError {
    let first = uri.path().trim_start_matches("/fhir/").split('/').next().unwrap_or_default();
    let is_type = first.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if is_type && let Err(e) = service::known_type(first) {
        return e;
    }
    ApiError::MethodNotAllowed
}
