//! The FHIR interactions as domain operations over a [`Store`]: create, update, patch, delete and
//! their conditional forms. The REST handlers, Bundle processing and `iaso import` all go through
//! these, so every write is validated, versioned and indexed the same way.

use std::future::Future;
use std::time::Duration;

use fhir::outcome::{Issue, has_errors};
use fhir::search::query::{Filter, Parser, QueryError};
use fhir::search::{FullText, IndexEntry, Registry};
use serde_json::{Map, Value};
use store::{Method, NewVersion, ResourceVersion, Store, StoreError, Transaction};

use crate::error::{ApiError, ApiResult};

/// The result of a write.
#[derive(Debug, Clone)]
pub struct Written {
    pub version: ResourceVersion,
    /// A new resource came into being (201) rather than a new version of an existing one (200).
    pub created: bool,
}

/// Checks that a resource type is one this server serves.
pub fn known_type(resource_type: &str) -> ApiResult<()> {
    if fhir::definitions().is_resource_type(resource_type) {
        Ok(())
    } else {
        Err(ApiError::UnknownType(resource_type.to_owned()))
    }
}

/// Checks an id taken from a URL.
pub fn valid_id(id: &str) -> ApiResult<()> {
    if fhir::is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "'{id}' is not a valid resource id (1-64 characters: letters, digits, '-' and '.')"
        )))
    }
}

/// Validates a resource body that claims to be of `resource_type`. Warnings are dropped; errors
/// come back with the FHIRPath of each offending element.
pub fn check_resource(body: &Value, resource_type: &str) -> ApiResult<()> {
    match body.get("resourceType").and_then(Value::as_str) {
        None => {
            return Err(ApiError::BadRequest(vec![
                Issue::error("required", "the body is not a FHIR resource: it has no resourceType").at(resource_type),
            ]));
        }
        Some(t) if t != resource_type => {
            return Err(ApiError::bad_request_at(
                format!("the body is a {t} but the URL names {resource_type}"),
                format!("{t}.resourceType"),
            ));
        }
        Some(_) => {}
    }
    let issues = fhir::validate::validate(body, &fhir::validate::Options::default());
    if has_errors(&issues) { Err(ApiError::Invalid(issues.into_iter().filter(is_error).collect())) } else { Ok(()) }
}

fn is_error(issue: &Issue) -> bool {
    has_errors(std::slice::from_ref(issue))
}

/// The version named in an `If-Match` or `ifMatch` value: `W/"3"`, `"3"` or `3`.
pub fn parse_etag(value: &str) -> ApiResult<i64> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v.parse::<i64>().map_err(|_| ApiError::bad_request(format!("'{value}' is not a version ETag such as W/\"3\"")))
}

/// Parses the criteria of a conditional interaction (`If-None-Exist`, `PUT [type]?…`,
/// conditional references): any search parameters of the type; parameters that shape results
/// (`_sort`, `_count`…) are not criteria and are refused.
pub fn parse_criteria(registry: &Registry, resource_type: &str, query: &str) -> ApiResult<Vec<Filter>> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .filter(|(k, _)| k != "_format" && k != "_pretty")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let parser = Parser { registry, base_url: "", lenient: false };
    let request = parser.parse(Some(resource_type), &pairs).map_err(query_error)?;
    let shaping = request.count.is_some()
        || !request.sort.is_empty()
        || !request.include.is_empty()
        || !request.revinclude.is_empty()
        || request.summary.is_some()
        || request.elements.is_some();
    if shaping {
        return Err(ApiError::bad_request(format!(
            "conditional criteria for {resource_type} may hold search parameters only, not result parameters: '{query}'"
        )));
    }
    if request.filters.is_empty() {
        return Err(ApiError::bad_request(format!("conditional criteria for {resource_type} are empty: '{query}'")));
    }
    Ok(request.filters)
}

/// A search parameter the server refuses, as a 400 naming it.
pub fn query_error(e: QueryError) -> ApiError {
    let code = if e.ignorable() { "not-supported" } else { "invalid" };
    ApiError::BadRequest(vec![Issue::error(code, format!("search parameter '{}': {}", e.param, e.message))])
}

/// The index values and full text a resource version carries.
pub fn index_rows(registry: &Registry, resource: &Value) -> (Vec<IndexEntry>, FullText) {
    (fhir::search::index_resource(resource, registry), fhir::search::full_text(resource))
}

/// A resource's index values, computed ahead of the transaction so that the work happens before
/// the store's write lock is taken (on SQLite only one writer runs at a time).
#[derive(Debug, Clone)]
pub struct Indexed {
    pub entries: Vec<IndexEntry>,
    pub text: FullText,
}

impl Indexed {
    pub fn of(registry: &Registry, resource: &Value) -> Self {
        let (entries, text) = index_rows(registry, resource);
        Indexed { entries, text }
    }
}

/// How a write gets its index values: computed from the body in the transaction, or ready.
pub enum Indexing<'a> {
    Compute(&'a Registry),
    Ready(Indexed),
}

impl Indexing<'_> {
    fn resolve(self, body: &Value) -> (Vec<IndexEntry>, FullText) {
        match self {
            Indexing::Compute(registry) => index_rows(registry, body),
            Indexing::Ready(i) => (i.entries, i.text),
        }
    }
}

/// Puts `id` right after `resourceType` and drops the server-managed meta fields, which the store
/// sets for the new version.
pub fn prepare_body(body: Value, id: &str) -> Value {
    let Value::Object(fields) = body else { return body };
    let mut out = Map::with_capacity(fields.len() + 1);
    let mut rest = Map::with_capacity(fields.len());
    for (k, v) in fields {
        match k.as_str() {
            "resourceType" => {
                out.insert(k, v);
            }
            "id" => {}
            "meta" => {
                if let Value::Object(mut meta) = v {
                    meta.remove("versionId");
                    meta.remove("lastUpdated");
                    if !meta.is_empty() {
                        rest.insert(k, Value::Object(meta));
                    }
                }
            }
            _ => {
                rest.insert(k, v);
            }
        }
    }
    out.insert("id".into(), Value::String(id.to_owned()));
    out.extend(rest);
    Value::Object(out)
}

/// True when the stored body and a new prepared body differ only in server-managed meta.
fn same_content(stored: &str, prepared: &Value) -> bool {
    let Ok(Value::Object(mut old)) = serde_json::from_str::<Value>(stored) else {
        return false;
    };
    if let Some(Value::Object(meta)) = old.get_mut("meta") {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            old.remove("meta");
        }
    }
    match prepared {
        Value::Object(new) => unordered_eq(&old, new),
        _ => false,
    }
}

fn unordered_eq(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs one attempt of a transaction again when the store reports a lost race.
pub async fn with_retry<T, F, Fut>(mut attempt: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let mut tries: u32 = 0;
    loop {
        match attempt().await {
            Err(ApiError::Store(StoreError::Retry)) if tries < 8 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(2 << tries)).await;
            }
            other => return other,
        }
    }
}

// ---- steps inside an open transaction (shared by single interactions and Bundles) ----

/// Creates a resource under `id` (a server-assigned id for POST). Finding the id taken means a
/// concurrent transaction created it first: the caller retries and then sees it.
pub async fn tx_create(
    tx: &mut dyn Transaction,
    indexing: Indexing<'_>,
    resource_type: &str,
    body: Value,
    id: &str,
) -> ApiResult<Written> {
    let body = prepare_body(body, id);
    let (index, text) = indexing.resolve(&body);
    let version = tx
        .write(NewVersion {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            expected_version: Some(0),
            method: Method::Post,
            body: Some(body),
            index,
            text: Some(text),
        })
        .await
        .map_err(|e| lost_race(e, None))?;
    Ok(Written { version, created: true })
}

/// A version conflict the client did not ask to be checked (no `If-Match`) only means a
/// concurrent transaction wrote first: the whole transaction is retried and sees its write.
fn lost_race(error: StoreError, if_match: Option<i64>) -> StoreError {
    match error {
        StoreError::VersionConflict { .. } if if_match.is_none() => StoreError::Retry,
        other => other,
    }
}

/// Updates (or creates, with a client-chosen id) a resource. An update that changes nothing but
/// server-managed meta creates no new version.
pub async fn tx_update(
    tx: &mut dyn Transaction,
    indexing: Indexing<'_>,
    resource_type: &str,
    id: &str,
    body: Value,
    if_match: Option<i64>,
    method: Method,
) -> ApiResult<Written> {
    let current = tx.read(resource_type, id).await?;
    check_if_match(resource_type, id, current.as_ref(), if_match)?;
    let body = prepare_body(body, id);
    if let Some(cur) = &current
        && let Some(stored) = &cur.body
        && same_content(stored, &body)
    {
        return Ok(Written { version: cur.clone(), created: false });
    }
    let created = current.as_ref().is_none_or(ResourceVersion::is_deleted);
    let (index, text) = indexing.resolve(&body);
    let version = tx
        .write(NewVersion {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            // 0 stands for "absent or deleted": a re-create continues the version numbers.
            expected_version: Some(current.as_ref().filter(|c| !c.is_deleted()).map_or(0, |c| c.version)),
            method,
            body: Some(body),
            index,
            text: Some(text),
        })
        .await
        .map_err(|e| lost_race(e, if_match))?;
    Ok(Written { version, created })
}

/// Deletes a resource; `None` when there was nothing (or only a deletion) to delete.
pub async fn tx_delete(
    tx: &mut dyn Transaction,
    resource_type: &str,
    id: &str,
    if_match: Option<i64>,
) -> ApiResult<Option<ResourceVersion>> {
    let current = tx.read(resource_type, id).await?;
    check_if_match(resource_type, id, current.as_ref(), if_match)?;
    let Some(current) = current.filter(|c| !c.is_deleted()) else {
        return Ok(None);
    };
    let version = tx
        .write(NewVersion {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            expected_version: Some(current.version),
            method: Method::Delete,
            body: None,
            index: Vec::new(),
            text: None,
        })
        .await?;
    Ok(Some(version))
}

/// A PATCH body, parsed before any transaction starts: a JSON Patch (RFC 6902) or a FHIRPath
/// Patch (a Parameters resource, R4 fhirpatch.html).
#[derive(Debug, Clone)]
pub enum PatchDocument {
    Json(json_patch::Patch),
    FhirPath(fhir::patch::Patch),
}

impl PatchDocument {
    pub fn json_patch(document: Value) -> ApiResult<Self> {
        serde_json::from_value(document)
            .map(PatchDocument::Json)
            .map_err(|e| ApiError::bad_request(format!("the body is not a JSON Patch document (RFC 6902): {e}")))
    }

    pub fn fhirpath(document: &Value) -> ApiResult<Self> {
        if document.is_array() {
            return Err(ApiError::bad_request(
                "the body is a JSON array, not a Parameters resource: a JSON Patch is sent with Content-Type application/json-patch+json",
            ));
        }
        fhir::patch::Patch::from_parameters(document).map(PatchDocument::FhirPath).map_err(patch_error)
    }
}

/// A FHIRPath Patch failure as the client sees it: 400 for a malformed document, 422 for one
/// that does not apply to the resource; either names the operation.
fn patch_error(error: fhir::Error) -> ApiError {
    match error {
        fhir::Error::Patch { kind, operation, message } => {
            let (code, invalid) = match kind {
                fhir::patch::PatchErrorKind::Invalid => ("invalid", true),
                fhir::patch::PatchErrorKind::Unprocessable => ("processing", false),
            };
            let issues = vec![Issue::error(code, format!("{operation}: {message}")).at(operation)];
            if invalid { ApiError::BadRequest(issues) } else { ApiError::Invalid(issues) }
        }
        other => ApiError::Internal(format!("FHIRPath Patch: {other}")),
    }
}

/// Applies a patch to the current version and writes the result like an update: validated,
/// with the resource type and id unchanged. Nothing is written when any operation fails.
pub async fn tx_patch(
    tx: &mut dyn Transaction,
    registry: &Registry,
    resource_type: &str,
    id: &str,
    patch: &PatchDocument,
    if_match: Option<i64>,
) -> ApiResult<Written> {
    let current = tx.read(resource_type, id).await?;
    let body = match &current {
        None => return Err(ApiError::NotFound(format!("{resource_type}/{id}"))),
        Some(c) => match &c.body {
            None => return Err(ApiError::Gone { resource_type: resource_type.into(), id: id.into() }),
            Some(b) => b,
        },
    };
    check_if_match(resource_type, id, current.as_ref(), if_match)?;
    let stored: Value =
        serde_json::from_str(body).map_err(|e| ApiError::Internal(format!("stored body unreadable: {e}")))?;
    let patched = match patch {
        PatchDocument::Json(operations) => apply_json_patch(stored, operations)?,
        PatchDocument::FhirPath(p) => p.apply(&stored).map_err(patch_error)?,
    };
    if patched.get("resourceType").and_then(Value::as_str) != Some(resource_type)
        || patched.get("id").and_then(Value::as_str) != Some(id)
    {
        return Err(ApiError::BadRequest(vec![
            Issue::error("invalid", "a patch may not change the resource's type or id").at(resource_type),
        ]));
    }
    check_resource(&patched, resource_type)?;
    tx_update(tx, Indexing::Compute(registry), resource_type, id, patched, None, Method::Patch).await
}

fn apply_json_patch(mut doc: Value, operations: &json_patch::Patch) -> ApiResult<Value> {
    json_patch::patch(&mut doc, operations).map_err(|e| {
        ApiError::BadRequest(vec![Issue::error("processing", format!("the patch could not be applied: {e}"))])
    })?;
    Ok(doc)
}

fn check_if_match(
    resource_type: &str,
    id: &str,
    current: Option<&ResourceVersion>,
    if_match: Option<i64>,
) -> ApiResult<()> {
    let Some(expected) = if_match else { return Ok(()) };
    match current {
        Some(c) if c.version == expected && !c.is_deleted() => Ok(()),
        Some(c) => Err(ApiError::PreconditionFailed(format!(
            "{resource_type}/{id}: If-Match names version {expected} but the current version is {}{}",
            c.version,
            if c.is_deleted() { " (deleted)" } else { "" }
        ))),
        None => Err(ApiError::PreconditionFailed(format!(
            "{resource_type}/{id}: If-Match names version {expected} but the resource does not exist"
        ))),
    }
}

/// Resolves conditional criteria to at most one id; several matches are 412 as the spec asks.
pub async fn tx_find_one(
    tx: &mut dyn Transaction,
    resource_type: &str,
    criteria: &[Filter],
    what: &str,
) -> ApiResult<Option<String>> {
    let mut ids = tx.find(resource_type, criteria, 2).await?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.pop()),
        _ => Err(ApiError::PreconditionFailed(format!(
            "{what} matched more than one {resource_type}; it must match at most one"
        ))),
    }
}

// ---- single interactions, each in its own transaction ----

/// Where interactions run: the store, the tenant, and the search parameters that index writes
/// and resolve conditional criteria.
#[derive(Clone)]
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub tenant: &'a str,
    pub registry: std::sync::Arc<Registry>,
}

/// The most resources one conditional delete removes; more matches are refused (412) rather
/// than deleted in part.
pub const MAX_CONDITIONAL_DELETE: usize = 100;

pub async fn create(
    ctx: Ctx<'_>,
    resource_type: &str,
    body: &Value,
    if_none_exist: Option<&str>,
) -> ApiResult<Written> {
    check_resource(body, resource_type)?;
    let criteria = if_none_exist.map(|q| parse_criteria(&ctx.registry, resource_type, q)).transpose()?;
    let indexed = Indexed::of(&ctx.registry, body);
    with_retry(|| async {
        let mut tx = ctx.store.begin(ctx.tenant).await?;
        if let Some(criteria) = &criteria
            && let Some(id) = tx_find_one(&mut *tx, resource_type, criteria, "If-None-Exist").await?
        {
            let existing = tx
                .read_shared(resource_type, &id)
                .await?
                .ok_or_else(|| ApiError::Internal(format!("{resource_type}/{id} vanished")))?;
            return Ok(Written { version: existing, created: false });
        }
        let written =
            tx_create(&mut *tx, Indexing::Ready(indexed.clone()), resource_type, body.clone(), &new_id()).await?;
        tx.commit().await?;
        Ok(written)
    })
    .await
}

pub async fn update(
    ctx: Ctx<'_>,
    resource_type: &str,
    id: &str,
    body: &Value,
    if_match: Option<i64>,
) -> ApiResult<Written> {
    match body.get("id").and_then(Value::as_str) {
        None => {
            return Err(ApiError::bad_request_at(
                "an update must carry the resource id in the body",
                format!("{resource_type}.id"),
            ));
        }
        Some(body_id) if body_id != id => {
            return Err(ApiError::bad_request_at(
                format!("the body's id '{body_id}' does not match the id '{id}' in the URL"),
                format!("{resource_type}.id"),
            ));
        }
        Some(_) => {}
    }
    check_resource(body, resource_type)?;
    let indexed = Indexed::of(&ctx.registry, body);
    with_retry(|| async {
        let mut tx = ctx.store.begin(ctx.tenant).await?;
        let ready = Indexing::Ready(indexed.clone());
        let written = tx_update(&mut *tx, ready, resource_type, id, body.clone(), if_match, Method::Put).await?;
        tx.commit().await?;
        Ok(written)
    })
    .await
}

pub async fn conditional_update(
    ctx: Ctx<'_>,
    resource_type: &str,
    query: &str,
    body: &Value,
    if_match: Option<i64>,
) -> ApiResult<Written> {
    let criteria = parse_criteria(&ctx.registry, resource_type, query)?;
    check_resource(body, resource_type)?;
    let indexed = Indexed::of(&ctx.registry, body);
    let body_id = body.get("id").and_then(Value::as_str);
    with_retry(|| async {
        let mut tx = ctx.store.begin(ctx.tenant).await?;
        let id = match tx_find_one(&mut *tx, resource_type, &criteria, "the conditional update").await? {
            Some(found) => {
                if let Some(b) = body_id
                    && b != found
                {
                    return Err(ApiError::bad_request_at(
                        format!("the body's id '{b}' differs from the matched resource {resource_type}/{found}"),
                        format!("{resource_type}.id"),
                    ));
                }
                found
            }
            None => body_id.map_or_else(new_id, str::to_owned),
        };
        let ready = Indexing::Ready(indexed.clone());
        let written = tx_update(&mut *tx, ready, resource_type, &id, body.clone(), if_match, Method::Put).await?;
        tx.commit().await?;
        Ok(written)
    })
    .await
}

pub async fn patch(
    ctx: Ctx<'_>,
    resource_type: &str,
    target: Target<'_>,
    patch: &PatchDocument,
    if_match: Option<i64>,
) -> ApiResult<Written> {
    with_retry(|| async {
        let mut tx = ctx.store.begin(ctx.tenant).await?;
        let id = resolve_target(&mut *tx, resource_type, &target, "the conditional patch").await?;
        let Some(id) = id else {
            return Err(ApiError::NotFound(format!("{resource_type}?{}", target.query().unwrap_or(""))));
        };
        let written = tx_patch(&mut *tx, &ctx.registry, resource_type, &id, patch, if_match).await?;
        tx.commit().await?;
        Ok(written)
    })
    .await
}

/// Deletes the target; by criteria, every match (R4 conditional delete, "multiple"), all in
/// one transaction.
pub async fn delete(
    ctx: Ctx<'_>,
    resource_type: &str,
    target: Target<'_>,
    if_match: Option<i64>,
) -> ApiResult<Vec<ResourceVersion>> {
    with_retry(|| async {
        let mut tx = ctx.store.begin(ctx.tenant).await?;
        let ids = match &target {
            Target::Id(id) => vec![(*id).to_owned()],
            Target::Criteria { criteria, .. } => {
                let ids = tx.find(resource_type, criteria, MAX_CONDITIONAL_DELETE + 1).await?;
                if ids.len() > MAX_CONDITIONAL_DELETE {
                    return Err(ApiError::PreconditionFailed(format!(
                        "the conditional delete matched more than {MAX_CONDITIONAL_DELETE} {resource_type} resources; narrow the criteria"
                    )));
                }
                ids
            }
        };
        let mut deleted = Vec::new();
        for id in ids {
            if let Some(v) = tx_delete(&mut *tx, resource_type, &id, if_match).await? {
                deleted.push(v);
            }
        }
        tx.commit().await?;
        Ok(deleted)
    })
    .await
}

/// Which resource an interaction addresses: by id, or by conditional criteria.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    Id(&'a str),
    Criteria { query: &'a str, criteria: Vec<Filter> },
}

impl<'a> Target<'a> {
    pub fn conditional(registry: &Registry, resource_type: &str, query: &'a str) -> ApiResult<Self> {
        Ok(Target::Criteria { query, criteria: parse_criteria(registry, resource_type, query)? })
    }

    fn query(&self) -> Option<&str> {
        match self {
            Target::Id(_) => None,
            Target::Criteria { query, .. } => Some(query),
        }
    }
}

async fn resolve_target(
    tx: &mut dyn Transaction,
    resource_type: &str,
    target: &Target<'_>,
    what: &str,
) -> ApiResult<Option<String>> {
    match target {
        Target::Id(id) => Ok(Some((*id).to_owned())),
        Target::Criteria { criteria, .. } => tx_find_one(tx, resource_type, criteria, what).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn etags_parse_weak_strong_and_bare() {
        assert_eq!(parse_etag("W/\"3\"").ok(), Some(3));
        assert_eq!(parse_etag("\"12\"").ok(), Some(12));
        assert_eq!(parse_etag("7").ok(), Some(7));
        assert!(parse_etag("W/\"x\"").is_err());
    }

    #[test]
    fn criteria_take_any_search_parameter_but_no_result_parameters() {
        let registry = fhir::search::standard();
        assert_eq!(parse_criteria(registry, "Patient", "identifier=http://a|123").expect("parses").len(), 1);
        assert_eq!(parse_criteria(registry, "Patient", "family=smith&birthdate=1980").expect("parses").len(), 2);
        assert!(parse_criteria(registry, "Patient", "").is_err());
        assert!(parse_criteria(registry, "Patient", "nonsense=1").is_err());
        assert!(parse_criteria(registry, "Patient", "family=x&_sort=family").is_err());
    }

    #[test]
    fn prepared_body_puts_id_first_and_drops_server_meta() {
        let body = json!({"resourceType":"Patient","active":true,"id":"old",
            "meta":{"versionId":"9","lastUpdated":"2020-01-01T00:00:00Z","profile":["http://x"]}});
        let prepared = prepare_body(body, "new");
        let keys: Vec<_> = prepared.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        assert_eq!(keys, ["resourceType", "id", "active", "meta"]);
        assert_eq!(prepared["meta"], json!({"profile":["http://x"]}));
    }

    #[test]
    fn fhirpath_patch_errors_are_400_or_422_at_the_operation() {
        let op = |kind: &str| {
            json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
                {"name": "type", "valueCode": kind}, {"name": "path", "valueString": "Patient.gender"},
                {"name": "value", "valueCode": "male"}]}]})
        };
        let malformed = PatchDocument::fhirpath(&op("mend")).expect_err("an unknown type");
        assert_eq!(malformed.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(malformed.issues()[0].expression, ["Parameters.parameter[0]"]);
        let Ok(PatchDocument::FhirPath(patch)) = PatchDocument::fhirpath(&op("replace")) else {
            panic!("a valid FHIRPath Patch");
        };
        let unapplied = patch.apply(&json!({"resourceType": "Patient"})).map_err(patch_error).expect_err("no gender");
        assert_eq!(unapplied.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(unapplied.issues()[0].diagnostics.contains("No content found at Patient.gender when replacing"));
        assert!(PatchDocument::fhirpath(&json!([{"op": "remove", "path": "/gender"}])).is_err());
    }

    #[test]
    fn same_content_ignores_server_meta_and_key_order() {
        let stored = r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"2","lastUpdated":"2026-01-01T00:00:00.000Z"},"active":true}"#;
        let new = prepare_body(json!({"active":true,"resourceType":"Patient","id":"a"}), "a");
        assert!(same_content(stored, &new));
        let changed = prepare_body(json!({"active":false,"resourceType":"Patient","id":"a"}), "a");
        assert!(!same_content(stored, &changed));
    }
}
