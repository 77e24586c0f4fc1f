//! `batch` and `transaction` Bundles (R4 http.html#transaction).
//!
//! A transaction is planned without the database (entries parsed, resources validated), then run
//! in one store transaction: identities are resolved (`ifNoneExist`, conditional update/delete),
//! `urn:uuid` and conditional references rewritten, and the writes done in the order the spec
//! gives — DELETE, POST, PUT/PATCH, then GET — all or nothing. A batch runs each entry on its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use fhir::links::LinkKind;
use fhir::outcome::{Issue, operation_outcome};
use fhir::search::Registry;
use fhir::search::query::Filter;
use serde_json::{Value, json};
use store::{Method, ResourceVersion, Store, Transaction};

use crate::error::{ApiError, ApiResult};
use crate::negotiate::PreferReturn;
use crate::respond::{etag, instant, location};
use crate::search::{self, Plan, Source};
use crate::service::{self, Written};

/// How to answer a Bundle.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// The FHIR base URL of this server, for `fullUrl` and for recognising absolute request URLs.
    pub base_url: String,
    /// What each response entry carries: `Minimal` (status, location, etag) by default.
    pub prefer: PreferReturn,
    /// For loading files again and again (`iaso import`): a `POST` entry whose `fullUrl` is a
    /// `urn:uuid` creates its resource under that uuid, and only if no resource has it yet, so a
    /// re-run creates no duplicates and writes no new versions. Off for the REST API, where a
    /// POST always creates a new resource with a server-assigned id.
    pub ids_from_urns: bool,
    /// The search parameters that index the writes and resolve conditional references.
    pub registry: Arc<Registry>,
}

impl BundleOptions {
    pub fn new(base_url: impl Into<String>, prefer: PreferReturn, registry: Arc<Registry>) -> Self {
        BundleOptions { base_url: base_url.into(), prefer, ids_from_urns: false, registry }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// The spec's processing order for transactions.
    fn phase(self) -> u8 {
        match self {
            Verb::Delete => 0,
            Verb::Post => 1,
            Verb::Put | Verb::Patch => 2,
            Verb::Get | Verb::Head => 3,
        }
    }
}

#[derive(Debug, Clone)]
enum Addr {
    Type,
    Id(String),
    Version(String, i64),
    Criteria(String, Vec<Filter>),
    /// A `GET` search, type level (`Observation?code=…`) or system level (`?_type=…`).
    Search(Box<Plan>),
}

/// One parsed Bundle entry.
#[derive(Debug, Clone)]
struct Entry {
    index: usize,
    full_url: Option<String>,
    verb: Verb,
    resource_type: String,
    addr: Addr,
    resource: Option<Value>,
    patch: Option<service::PatchDocument>,
    if_match: Option<i64>,
    if_none_exist: Option<Vec<Filter>>,
    /// The resource's index values, computed before the transaction; links the transaction
    /// rewrites are rewritten in them too.
    indexed: Option<service::Indexed>,
}

/// The identity an entry resolved to inside the transaction.
#[derive(Debug, Clone, Default)]
struct Identity {
    id: Option<String>,
    /// An `ifNoneExist` match: nothing is written, the existing version is reported.
    existing: Option<ResourceVersion>,
}

/// Processes a `batch` or `transaction` Bundle and returns the response Bundle.
pub async fn process(store: &dyn Store, tenant: &str, bundle: &Value, options: &BundleOptions) -> ApiResult<Value> {
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or_default();
    let (transaction, response_type) = match kind {
        "transaction" => (true, "transaction-response"),
        "batch" => (false, "batch-response"),
        other => {
            return Err(ApiError::bad_request_at(
                format!(
                    "the server base accepts Bundles of type transaction or batch, not '{other}'; to store a Bundle as such, POST it to /Bundle"
                ),
                "Bundle.type",
            ));
        }
    };
    if transaction {
        let entries = parse_transaction(bundle, options)?;
        let responses = service::with_retry(|| async {
            let mut tx = store.begin(tenant).await?;
            let responses = apply_transaction(&mut *tx, store, tenant, &entries, options).await?;
            tx.commit().await?;
            Ok(responses)
        })
        .await?;
        return Ok(response_bundle(response_type, responses));
    }
    let raw_entries = match bundle.get("entry") {
        None => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(ApiError::bad_request_at("Bundle.entry must be an array", "Bundle.entry")),
    };
    // A batch answers a broken entry in that entry's response; anything else breaks the Bundle.
    let mut entry_issues: HashMap<usize, Vec<Issue>> = HashMap::new();
    let mut bundle_issues = Vec::new();
    for issue in envelope_errors(bundle) {
        match issue.expression.first().and_then(|e| entry_index(e)) {
            Some(i) => entry_issues.entry(i).or_default().push(issue),
            None => bundle_issues.push(issue),
        }
    }
    if !bundle_issues.is_empty() {
        return Err(ApiError::Invalid(bundle_issues));
    }
    let mut responses = Vec::with_capacity(raw_entries.len());
    for (i, raw) in raw_entries.iter().enumerate() {
        let outcome = match entry_issues.remove(&i) {
            Some(issues) => Err(ApiError::BadRequest(issues)),
            None => match parse_entry(i, raw, options) {
                Ok(entry) => {
                    let mut one = [entry];
                    index_entries(&mut one, &options.registry);
                    service::with_retry(|| run_batch_entry(store, tenant, &one[0], options)).await
                }
                Err(e) => Err(e),
            },
        };
        responses.push(outcome.unwrap_or_else(|e| error_entry(&at_entry(e, i))));
    }
    Ok(response_bundle(response_type, responses))
}

fn response_bundle(response_type: &str, entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "id": service::new_id(),
        "type": response_type,
        "entry": entries,
    })
}

/// Processes several `transaction` Bundles in one store transaction: each keeps its
/// all-or-nothing meaning (they all commit or none does), and a loader saves the commit of each
/// (on SQLite, every commit writes the pages it touched to the log again). Any failure fails
/// them all; the caller then processes them one by one to learn which failed.
pub async fn process_transactions(
    store: &dyn Store,
    tenant: &str,
    bundles: &[Value],
    options: &BundleOptions,
) -> ApiResult<Vec<Value>> {
    let mut parsed = Vec::with_capacity(bundles.len());
    for bundle in bundles {
        if bundle.get("type").and_then(Value::as_str) != Some("transaction") {
            return Err(ApiError::bad_request_at("only transaction Bundles can be processed together", "Bundle.type"));
        }
        parsed.push(parse_transaction(bundle, options)?);
    }
    let results = service::with_retry(|| async {
        let mut tx = store.begin(tenant).await?;
        let mut all = Vec::with_capacity(parsed.len());
        for entries in &parsed {
            all.push(apply_transaction(&mut *tx, store, tenant, entries, options).await?);
        }
        tx.commit().await?;
        Ok(all)
    })
    .await?;
    Ok(results.into_iter().map(|r| response_bundle("transaction-response", r)).collect())
}

/// The errors of the Bundle itself (its entries' resources are validated one by one).
fn envelope_errors(bundle: &Value) -> Vec<Issue> {
    fhir::validate::validate(
        bundle,
        &fhir::validate::Options { skip_bundle_entry_resources: true, ..fhir::validate::Options::default() },
    )
    .into_iter()
    .filter(|i| fhir::outcome::has_errors(std::slice::from_ref(i)))
    .collect()
}

/// A transaction Bundle's entries, parsed, checked and indexed, ready to run.
fn parse_transaction(bundle: &Value, options: &BundleOptions) -> ApiResult<Vec<Entry>> {
    let raw_entries = match bundle.get("entry") {
        None => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(ApiError::bad_request_at("Bundle.entry must be an array", "Bundle.entry")),
    };
    let issues = envelope_errors(bundle);
    if !issues.is_empty() {
        return Err(ApiError::Invalid(issues));
    }
    let mut entries = raw_entries
        .iter()
        .enumerate()
        .map(|(i, e)| parse_entry(i, e, options).map_err(|err| at_entry(err, i)))
        .collect::<ApiResult<Vec<_>>>()?;
    check_distinct_full_urls(&entries)?;
    index_entries(&mut entries, &options.registry);
    Ok(entries)
}

/// Computes the entries' index values before the transaction takes the store's write lock;
/// `resolve()` finds `urn:uuid` targets among the entries (by `fullUrl`), so that their types
/// are known before the references are rewritten.
fn index_entries(entries: &mut [Entry], registry: &Registry) {
    let by_url: HashMap<&str, &Value> =
        entries.iter().filter_map(|e| Some((e.full_url.as_deref()?, e.resource.as_ref()?))).collect();
    let resolver = |reference: &str| by_url.get(reference).copied();
    let indexed: Vec<Option<service::Indexed>> = entries
        .iter()
        .map(|e| {
            e.resource.as_ref().map(|r| {
                let entries = fhir::search::index_resource_resolving(r, registry, Some(&resolver));
                service::Indexed { entries, text: fhir::search::full_text(r) }
            })
        })
        .collect();
    for (e, i) in entries.iter_mut().zip(indexed) {
        e.indexed = i;
    }
}

/// The entry an expression such as `Bundle.entry[3].request.method` points into.
fn entry_index(expression: &str) -> Option<usize> {
    let rest = expression.strip_prefix("Bundle.entry[")?;
    rest[..rest.find(']')?].parse().ok()
}

fn parse_entry(index: usize, raw: &Value, options: &BundleOptions) -> ApiResult<Entry> {
    let request = raw.get("request").ok_or_else(|| {
        ApiError::bad_request_at("a transaction or batch entry needs a request", format!("Bundle.entry[{index}]"))
    })?;
    let method = request.get("method").and_then(Value::as_str).unwrap_or_default();
    let verb = match method {
        "GET" => Verb::Get,
        "HEAD" => Verb::Head,
        "POST" => Verb::Post,
        "PUT" => Verb::Put,
        "PATCH" => Verb::Patch,
        "DELETE" => Verb::Delete,
        other => {
            return Err(ApiError::bad_request_at(
                format!("unknown request method '{other}'"),
                format!("Bundle.entry[{index}].request.method"),
            ));
        }
    };
    let url = request.get("url").and_then(Value::as_str).unwrap_or_default();
    let url_expr = format!("Bundle.entry[{index}].request.url");
    let relative = relative_url(url, &options.base_url).ok_or_else(|| {
        ApiError::bad_request_at(format!("the request URL '{url}' is not on this server"), url_expr.clone())
    })?;
    let (path, query) = match relative.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (relative, None),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resource_type = segments.first().copied().unwrap_or_default().to_owned();
    let search = |resource_type: Option<&str>| {
        let params = search::pairs(query);
        Plan::parse(
            &options.registry,
            &options.base_url,
            resource_type,
            resource_type.unwrap_or_default().to_owned(),
            &params,
            false,
            Vec::new(),
        )
        .map_err(|e| at_url(e, &url_expr))
    };
    // A system-level search (`GET ?_type=…`) is the one URL without a resource type.
    let system_search = segments.is_empty() && matches!(verb, Verb::Get) && query.is_some();
    if !system_search {
        if resource_type.is_empty() {
            return Err(ApiError::bad_request_at(format!("the request URL '{url}' names no resource type"), url_expr));
        }
        service::known_type(&resource_type)?;
    }
    let addr = match (segments.as_slice(), query) {
        ([], _) => Addr::Search(Box::new(search(None)?)),
        ([_], Some(q)) if matches!(verb, Verb::Put | Verb::Delete | Verb::Patch) => {
            Addr::Criteria(q.to_owned(), service::parse_criteria(&options.registry, &resource_type, q)?)
        }
        ([_], _) if matches!(verb, Verb::Get) => Addr::Search(Box::new(search(Some(&resource_type))?)),
        ([_], _) => Addr::Type,
        ([_, id], _) => {
            service::valid_id(id)?;
            Addr::Id((*id).to_owned())
        }
        ([_, id, "_history", v], _) => {
            let version = v
                .parse()
                .map_err(|_| ApiError::bad_request_at(format!("'{v}' is not a version number"), url_expr.clone()))?;
            Addr::Version((*id).to_owned(), version)
        }
        _ => {
            return Err(ApiError::bad_request_at(
                format!("the request URL '{url}' is not an interaction this server supports in a Bundle"),
                url_expr,
            ));
        }
    };
    let shape_ok = match verb {
        Verb::Post => matches!(addr, Addr::Type),
        Verb::Put | Verb::Patch | Verb::Delete => matches!(addr, Addr::Id(_) | Addr::Criteria(..)),
        Verb::Get => matches!(addr, Addr::Id(_) | Addr::Version(..) | Addr::Search(_)),
        Verb::Head => matches!(addr, Addr::Id(_) | Addr::Version(..)),
    };
    if !shape_ok {
        return Err(ApiError::bad_request_at(
            format!(
                "{method} {url} is not supported in a Bundle (GET reads, vreads and searches at type or system level; HEAD reads)"
            ),
            url_expr,
        ));
    }
    let if_match = request.get("ifMatch").and_then(Value::as_str).map(service::parse_etag).transpose()?;
    let if_none_exist = match request.get("ifNoneExist").and_then(Value::as_str) {
        Some(q) => Some(service::parse_criteria(&options.registry, &resource_type, q.trim_start_matches('?'))?),
        None => None,
    };
    let mut resource = raw.get("resource").cloned();
    let mut patch = None;
    match verb {
        Verb::Post | Verb::Put => {
            let body = resource.as_ref().ok_or_else(|| {
                ApiError::bad_request_at(format!("a {method} entry needs a resource"), format!("Bundle.entry[{index}]"))
            })?;
            service::check_resource(body, &resource_type)?;
            if let (Verb::Put, Addr::Id(id)) = (verb, &addr) {
                match body.get("id").and_then(Value::as_str) {
                    Some(b) if b == id => {}
                    Some(b) => {
                        return Err(ApiError::bad_request_at(
                            format!("the resource id '{b}' does not match the request URL id '{id}'"),
                            format!("{resource_type}.id"),
                        ));
                    }
                    None => {
                        return Err(ApiError::bad_request_at(
                            "an update must carry the resource id",
                            format!("{resource_type}.id"),
                        ));
                    }
                }
            }
        }
        Verb::Patch => {
            patch = Some(patch_document(resource.take(), index)?);
        }
        _ => resource = None,
    }
    Ok(Entry {
        index,
        full_url: raw.get("fullUrl").and_then(Value::as_str).map(str::to_owned),
        verb,
        resource_type,
        addr,
        resource,
        patch,
        if_match,
        if_none_exist,
        indexed: None,
    })
}

/// A PATCH entry's patch (R4 http.html#patch): a Parameters resource is a FHIRPath Patch; a
/// Binary carries a JSON Patch (`application/json-patch+json`) or, as FHIR JSON, a FHIRPath one.
fn patch_document(resource: Option<Value>, index: usize) -> ApiResult<service::PatchDocument> {
    let expr = format!("Bundle.entry[{index}].resource");
    let resource = resource.ok_or_else(|| {
        ApiError::bad_request_at(
            "a PATCH entry needs a Parameters (FHIRPath Patch) or Binary (JSON Patch) resource",
            expr.clone(),
        )
    })?;
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Parameters") => return service::PatchDocument::fhirpath(&resource),
        Some("Binary") => {}
        _ => {
            return Err(ApiError::bad_request_at(
                "a PATCH entry's resource must be a Parameters resource (FHIRPath Patch) or a Binary with contentType application/json-patch+json (JSON Patch)",
                expr,
            ));
        }
    }
    let content_type = resource.get("contentType").and_then(Value::as_str).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let json_patch = match media.as_str() {
        crate::negotiate::JSON_PATCH => true,
        "application/fhir+json" | "application/json" => false,
        _ => {
            return Err(ApiError::bad_request_at(
                format!(
                    "a PATCH entry's Binary must have contentType application/json-patch+json (or application/fhir+json for a FHIRPath Patch), not '{content_type}'"
                ),
                format!("{expr}.contentType"),
            ));
        }
    };
    let data = resource.get("data").and_then(Value::as_str).unwrap_or_default();
    let bytes = fhir::codec::base64_decode(data, false)
        .ok_or_else(|| ApiError::bad_request_at("Binary.data is not valid base64", format!("{expr}.data")))?;
    let document: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request_at(format!("the patch is not valid JSON: {e}"), format!("{expr}.data")))?;
    if json_patch { service::PatchDocument::json_patch(document) } else { service::PatchDocument::fhirpath(&document) }
}

/// The part of a request URL after the FHIR base, or `None` for a URL on another server.
fn relative_url<'a>(url: &'a str, base: &str) -> Option<&'a str> {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.strip_prefix(base).map(|rest| rest.trim_start_matches('/'))
    } else {
        Some(url.trim_start_matches('/'))
    }
}

fn check_distinct_full_urls(entries: &[Entry]) -> ApiResult<()> {
    let mut seen = HashSet::new();
    for e in entries {
        if let Some(u) = &e.full_url
            && !seen.insert(u.as_str())
        {
            return Err(ApiError::bad_request_at(
                format!("fullUrl '{u}' appears more than once in the Bundle"),
                format!("Bundle.entry[{}].fullUrl", e.index),
            ));
        }
    }
    Ok(())
}

/// Runs a transaction's entries inside an open store transaction, in the spec's order.
async fn apply_transaction(
    tx: &mut dyn Transaction,
    store: &dyn Store,
    tenant: &str,
    entries: &[Entry],
    options: &BundleOptions,
) -> ApiResult<Vec<Value>> {
    let mut identities = Vec::with_capacity(entries.len());
    for e in entries {
        identities.push(resolve_identity(tx, e, options).await.map_err(|err| at_entry(err, e.index))?);
    }
    let mut targets = HashMap::new();
    let mut touched = HashSet::new();
    for (e, identity) in entries.iter().zip(&identities) {
        let Some(id) = &identity.id else { continue };
        let reference = format!("{}/{}", e.resource_type, id);
        if e.verb != Verb::Get
            && e.verb != Verb::Head
            && identity.existing.is_none()
            && !touched.insert(reference.clone())
        {
            return Err(at_entry(
                ApiError::bad_request(format!("{reference} is written by more than one entry of the transaction")),
                e.index,
            ));
        }
        if let Some(full_url) = &e.full_url {
            targets.insert(full_url.clone(), reference);
        }
    }
    let mut resolved_conditionals: HashMap<String, String> = HashMap::new();
    let mut resources = Vec::with_capacity(entries.len());
    for e in entries {
        let resource = match &e.resource {
            Some(r) => Some(
                rewrite_references(
                    tx,
                    &options.registry,
                    r.clone(),
                    &targets,
                    &mut resolved_conditionals,
                    entries,
                    &identities,
                )
                .await
                .map_err(|err| at_entry(err, e.index))?,
            ),
            None => None,
        };
        resources.push(resource);
    }
    let link_map = |u: &str| targets.get(u).or_else(|| resolved_conditionals.get(u)).cloned();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].verb.phase());
    let mut responses = vec![Value::Null; entries.len()];
    for i in order {
        let e = &entries[i];
        let indexed = remapped(e, &link_map);
        responses[i] = execute(tx, store, tenant, e, &identities[i], resources[i].take(), indexed, options)
            .await
            .map_err(|err| at_entry(err, e.index))?;
    }
    Ok(responses)
}

async fn run_batch_entry(store: &dyn Store, tenant: &str, entry: &Entry, options: &BundleOptions) -> ApiResult<Value> {
    // A search alone needs no transaction (on SQLite that would take the write lock).
    if let Addr::Search(plan) = &entry.addr {
        return search_entry(plan, Source::Store(store), options).await;
    }
    let mut tx = store.begin(tenant).await?;
    let identity = resolve_identity(&mut *tx, entry, options).await?;
    let mut resolved = HashMap::new();
    let resource = match &entry.resource {
        Some(r) => Some(
            rewrite_references(
                &mut *tx,
                &options.registry,
                r.clone(),
                &HashMap::new(),
                &mut resolved,
                std::slice::from_ref(entry),
                std::slice::from_ref(&identity),
            )
            .await?,
        ),
        None => None,
    };
    let indexed = remapped(entry, &|u: &str| resolved.get(u).cloned());
    let response = execute(&mut *tx, store, tenant, entry, &identity, resource, indexed, options).await?;
    tx.commit().await?;
    Ok(response)
}

async fn resolve_identity(tx: &mut dyn Transaction, e: &Entry, options: &BundleOptions) -> ApiResult<Identity> {
    let rt = e.resource_type.as_str();
    Ok(match (&e.verb, &e.addr) {
        (Verb::Post, _) => {
            if let Some(criteria) = &e.if_none_exist
                && let Some(id) = service::tx_find_one(tx, rt, criteria, "ifNoneExist").await?
            {
                let existing = tx.read_shared(rt, &id).await?;
                Identity { id: Some(id), existing }
            } else if let Some(id) = options.ids_from_urns.then(|| urn_id(e)).flatten() {
                let existing = tx.read_shared(rt, &id).await?.filter(|v| !v.is_deleted());
                Identity { id: Some(id), existing }
            } else {
                Identity { id: Some(service::new_id()), existing: None }
            }
        }
        (_, Addr::Id(id) | Addr::Version(id, _)) => Identity { id: Some(id.clone()), existing: None },
        (verb, Addr::Criteria(query, criteria)) => {
            let found = service::tx_find_one(tx, rt, criteria, "the conditional request URL").await?;
            let id = match (verb, found) {
                (_, Some(id)) => Some(id),
                (Verb::Put, None) => Some(
                    e.resource
                        .as_ref()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_str)
                        .map_or_else(service::new_id, str::to_owned),
                ),
                (Verb::Patch, None) => {
                    return Err(ApiError::NotFound(format!("a {rt} matching {query}")));
                }
                _ => None,
            };
            Identity { id, existing: None }
        }
        (_, Addr::Type | Addr::Search(_)) => Identity::default(),
    })
}

/// The uuid of a `urn:uuid:` fullUrl, when it is a valid resource id.
fn urn_id(e: &Entry) -> Option<String> {
    let uuid = e.full_url.as_deref()?.strip_prefix("urn:uuid:")?;
    fhir::is_valid_id(uuid).then(|| uuid.to_owned())
}

/// Rewrites `urn:uuid` / fullUrl links to the entries' resolved identities and conditional
/// references (`Patient?identifier=…`) to the one resource they match. One walk over the
/// resource; a second only when it holds conditional references.
async fn rewrite_references(
    tx: &mut dyn Transaction,
    registry: &Registry,
    mut resource: Value,
    targets: &HashMap<String, String>,
    resolved: &mut HashMap<String, String>,
    entries: &[Entry],
    identities: &[Identity],
) -> ApiResult<Value> {
    let mut conditional: Vec<(String, String)> = Vec::new();
    fhir::links::rewrite_links_with(&mut resource, &mut |link, site| {
        if let Some(target) = targets.get(link) {
            return Some(target.clone());
        }
        if site.kind == LinkKind::Reference && is_conditional(link) {
            match resolved.get(link) {
                Some(target) => return Some(target.clone()),
                None => conditional.push((link.to_owned(), site.expression())),
            }
        }
        None
    });
    if conditional.is_empty() {
        return Ok(resource);
    }
    for (reference, expression) in conditional {
        if resolved.contains_key(&reference) {
            continue;
        }
        let Some((rt, query)) = reference.split_once('?') else { continue };
        service::known_type(rt)?;
        let criteria = service::parse_criteria(registry, rt, query)?;
        let id = match service::tx_find_one(tx, rt, &criteria, &format!("the conditional reference '{reference}'"))
            .await?
        {
            Some(id) => id,
            None => in_bundle_match(registry, rt, &criteria, entries, identities).ok_or_else(|| {
                ApiError::BadRequest(vec![
                    Issue::error("not-found", format!("the conditional reference '{reference}' matches no resource"))
                        .at(expression.clone()),
                ])
            })?,
        };
        let target = format!("{rt}/{id}");
        resolved.insert(reference, target);
    }
    fhir::links::rewrite_links_with(&mut resource, &mut |link, site| {
        (site.kind == LinkKind::Reference).then(|| resolved.get(link).cloned()).flatten()
    });
    Ok(resource)
}

/// `Type?criteria`: a reference resolved by search.
fn is_conditional(link: &str) -> bool {
    link.split_once('?').is_some_and(|(rt, _)| !rt.is_empty() && !rt.contains('/') && !rt.contains(':'))
}

/// A conditional reference may name a resource created by the same transaction.
fn in_bundle_match(
    registry: &Registry,
    rt: &str,
    criteria: &[Filter],
    entries: &[Entry],
    identities: &[Identity],
) -> Option<String> {
    entries.iter().zip(identities).find_map(|(e, identity)| {
        let resource = e.resource.as_ref()?;
        if e.resource_type != rt {
            return None;
        }
        let id = identity.id.as_deref()?;
        let index = fhir::search::index_resource(resource, registry);
        fhir::search::matches(criteria, id, &index).then(|| id.to_owned())
    })
}

/// An entry's precomputed index values with the transaction's link rewrites applied.
fn remapped(e: &Entry, map: &dyn Fn(&str) -> Option<String>) -> Option<service::Indexed> {
    e.indexed.clone().map(|mut i| {
        fhir::search::remap_links(&mut i.entries, map);
        i
    })
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    tx: &mut dyn Transaction,
    store: &dyn Store,
    tenant: &str,
    e: &Entry,
    identity: &Identity,
    resource: Option<Value>,
    indexed: Option<service::Indexed>,
    options: &BundleOptions,
) -> ApiResult<Value> {
    let indexing = match indexed {
        Some(i) => service::Indexing::Ready(i),
        None => service::Indexing::Compute(&options.registry),
    };
    let rt = e.resource_type.as_str();
    match e.verb {
        Verb::Delete => {
            let Some(id) = &identity.id else {
                return Ok(status_entry(StatusCode::NO_CONTENT));
            };
            let deleted = service::tx_delete(tx, rt, id, e.if_match).await?;
            Ok(match deleted {
                Some(v) => version_entry(&v, StatusCode::OK, options, false),
                None => status_entry(StatusCode::NO_CONTENT),
            })
        }
        Verb::Post => {
            if let Some(existing) = &identity.existing {
                return Ok(version_entry(existing, StatusCode::OK, options, true));
            }
            let (Some(id), Some(body)) = (&identity.id, resource) else {
                return Err(ApiError::Internal("POST entry without identity".into()));
            };
            let written = service::tx_create(tx, indexing, rt, body, id).await?;
            Ok(written_entry(&written, options))
        }
        Verb::Put => {
            let (Some(id), Some(body)) = (&identity.id, resource) else {
                return Err(ApiError::Internal("PUT entry without identity".into()));
            };
            let written = service::tx_update(tx, indexing, rt, id, body, e.if_match, Method::Put).await?;
            Ok(written_entry(&written, options))
        }
        Verb::Patch => {
            let (Some(id), Some(patch)) = (&identity.id, &e.patch) else {
                return Err(ApiError::Internal("PATCH entry without identity".into()));
            };
            let written = service::tx_patch(tx, &options.registry, rt, id, patch, e.if_match).await?;
            Ok(written_entry(&written, options))
        }
        Verb::Get | Verb::Head => {
            if let Addr::Search(plan) = &e.addr {
                return search_entry(plan, Source::Transaction(tx), options).await;
            }
            let version = match &e.addr {
                Addr::Version(id, v) => store.vread(tenant, rt, id, *v).await.ok().flatten(),
                Addr::Id(id) => tx.read(rt, id).await?,
                _ => None,
            };
            let head = e.verb == Verb::Head;
            Ok(match version {
                Some(v) if !v.is_deleted() => {
                    let mut entry = version_entry(&v, StatusCode::OK, options, false);
                    if !head && let Some(body) = &v.body {
                        entry["resource"] = serde_json::from_str(body).unwrap_or(Value::Null);
                    }
                    entry
                }
                Some(_) => status_entry(StatusCode::GONE),
                None => status_entry(StatusCode::NOT_FOUND),
            })
        }
    }
}

async fn search_entry(plan: &Plan, source: Source<'_>, options: &BundleOptions) -> ApiResult<Value> {
    let bundle = plan.run(source, &options.base_url).await?;
    Ok(json!({"resource": bundle, "response": {"status": status_line(StatusCode::OK)}}))
}

fn status_line(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""))
}

fn status_entry(status: StatusCode) -> Value {
    json!({ "response": { "status": status_line(status) } })
}

fn written_entry(written: &Written, options: &BundleOptions) -> Value {
    let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
    version_entry(&written.version, status, options, false)
}

fn version_entry(v: &ResourceVersion, status: StatusCode, options: &BundleOptions, existing: bool) -> Value {
    let mut response = json!({
        "status": status_line(status),
        "location": location(v),
        "etag": etag(v.version),
        "lastModified": instant(v.last_updated),
    });
    let mut entry = json!({ "fullUrl": format!("{}/{}/{}", options.base_url, v.resource_type, v.id) });
    match options.prefer {
        PreferReturn::Representation => {
            if let Some(body) = &v.body {
                entry["resource"] = serde_json::from_str(body).unwrap_or(Value::Null);
            }
        }
        PreferReturn::OperationOutcome => {
            let note = if existing { "an existing resource matched ifNoneExist" } else { "processed" };
            response["outcome"] = operation_outcome(&[Issue::information("informational", note)]);
        }
        PreferReturn::Minimal => {}
    }
    entry["response"] = response;
    entry
}

fn error_entry(error: &ApiError) -> Value {
    json!({ "response": { "status": status_line(error.status()), "outcome": operation_outcome(&error.issues()) } })
}

/// Rewrites an error's issues so that their expressions point into the Bundle entry.
/// A search URL's error, located at the entry's `request.url`.
fn at_url(error: ApiError, url_expr: &str) -> ApiError {
    let status = error.status();
    let issues = error
        .issues()
        .into_iter()
        .map(|issue| if issue.expression.is_empty() { issue.at(url_expr) } else { issue })
        .collect();
    ApiError::Entry { status, issues }
}

fn at_entry(error: ApiError, index: usize) -> ApiError {
    if matches!(error, ApiError::Entry { .. } | ApiError::Store(_) | ApiError::Internal(_)) {
        return error;
    }
    let status = error.status();
    let issues = error
        .issues()
        .into_iter()
        .map(|mut issue| {
            if issue.expression.is_empty() {
                issue.expression.push(format!("Bundle.entry[{index}]"));
            } else {
                for expr in &mut issue.expression {
                    if !expr.starts_with("Bundle.entry[") {
                        let rest = expr.split_once('.').map(|(_, r)| format!(".{r}")).unwrap_or_default();
                        *expr = format!("Bundle.entry[{index}].resource{rest}");
                    }
                }
            }
            issue
        })
        .collect();
    ApiError::Entry { status, issues }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_indexes_from_expressions() {
        assert_eq!(entry_index("Bundle.entry[12].request.method"), Some(12));
        assert_eq!(entry_index("Bundle.type"), None);
        assert_eq!(entry_index("Bundle.entry[x]"), None);
    }

    #[test]
    fn relative_urls() {
        assert_eq!(relative_url("Patient/1", "http://x/fhir"), Some("Patient/1"));
        assert_eq!(relative_url("http://x/fhir/Patient/1", "http://x/fhir"), Some("Patient/1"));
        assert_eq!(relative_url("http://other/fhir/Patient/1", "http://x/fhir"), None);
    }

    #[test]
    fn errors_point_into_the_entry() {
        let e = at_entry(ApiError::bad_request_at("bad", "Patient.birthDate"), 3);
        assert_eq!(e.issues()[0].expression, vec!["Bundle.entry[3].resource.birthDate".to_owned()]);
        let e = at_entry(ApiError::bad_request("bad"), 2);
        assert_eq!(e.issues()[0].expression, vec!["Bundle.entry[2]".to_owned()]);
    }
}
