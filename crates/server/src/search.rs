//! The search API (search.html): type, system and compartment level, `GET` and
//! `POST …/_search`, and `$everything`. Parsing is `fhir::search::query`'s, the SQL the
//! store's; this turns a page of results into a `searchset` Bundle.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use fhir::outcome::{Issue, operation_outcome};
use fhir::search::query::{Builtin, Filter, Parser, SearchRequest, SearchValue, Summary, Total};
use fhir::summary::SummaryMode;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use store::{DEFAULT_TENANT, ResourceVersion, SearchPage, SearchQuery};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::Negotiated;
use crate::respond;
use crate::rest::BaseUrl;
use crate::service::{self, query_error};

/// Page size when the client names none, and the largest it may ask for.
pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 1000;

/// Bodies of `POST …/_search` are forms; the spec allows no larger one than a URL would be,
/// and the limit keeps a search from being a way to send megabytes.
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// Decoded query parameters, in order.
pub(crate) fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The parameters of a `POST …/_search`: those of the URL, then those of the form body.
async fn form_pairs(query: Option<&str>, headers: &HeaderMap, body: Body) -> ApiResult<Vec<(String, String)>> {
    let mut out = pairs(query);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit: MAX_FORM_BYTES })?;
    if bytes.is_empty() {
        return Ok(out);
    }
    if content_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType(
            "a search by POST takes its parameters as application/x-www-form-urlencoded".into(),
        ));
    }
    out.extend(form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())));
    Ok(out)
}

/// `Prefer: handling=lenient` (search.html#errors).
fn lenient(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|t| t.trim() == "handling=lenient")
}

/// What a search answers and where its links point.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The path below the base for links (`Patient`, `Patient/1/Observation`, `` for system).
    path: String,
    request: SearchRequest,
    /// Filters the URL implies (compartments, `$everything`).
    extra: Vec<Filter>,
}

pub async fn type_get(
    State(app): State<AppState>,
    Path(rt): Path<String>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    search(&app, &negotiated, &base, Some(&rt), rt.clone(), pairs(query.as_deref()), &headers, Vec::new()).await
}

pub async fn type_post(
    State(app): State<AppState>,
    Path(rt): Path<String>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    service::known_type(&rt)?;
    let params = form_pairs(query.as_deref(), &headers, body).await?;
    search(&app, &negotiated, &base, Some(&rt), rt.clone(), params, &headers, Vec::new()).await
}

pub async fn system_get(
    State(app): State<AppState>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    search(&app, &negotiated, &base, None, String::new(), pairs(query.as_deref()), &headers, Vec::new()).await
}

pub async fn system_post(
    State(app): State<AppState>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let params = form_pairs(query.as_deref(), &headers, body).await?;
    search(&app, &negotiated, &base, None, String::new(), params, &headers, Vec::new()).await
}

/// `GET [base]/[Compartment]/[id]/[type]` (and `…/*`), or `GET [base]/Patient/[id]/$everything`.
pub async fn compartment(
    State(app): State<AppState>,
    Path((owner_type, owner_id, member)): Path<(String, String, String)>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    service::known_type(&owner_type)?;
    service::valid_id(&owner_id)?;
    if member == "$everything" {
        return everything(&app, &negotiated, &base, &owner_type, Some(&owner_id), query.as_deref()).await;
    }
    if fhir::definitions().compartment(&owner_type).is_none() {
        return Err(ApiError::NotFound(format!("the {owner_type} compartment")));
    }
    let path = format!("{owner_type}/{owner_id}/{member}");
    let (rt, types) = if member == "*" {
        (None, Vec::new())
    } else {
        service::known_type(&member)?;
        (Some(member.as_str()), vec![member.clone()])
    };
    let filter = Filter::compartment(&owner_type, Some(&owner_id), &types, false)
        .ok_or_else(|| ApiError::NotFound(format!("the {owner_type} compartment")))?;
    if let Filter::Compartment { members, .. } = &filter
        && members.is_empty()
    {
        return Err(ApiError::bad_request(format!("{member} resources are not in the {owner_type} compartment")));
    }
    search(&app, &negotiated, &base, rt, path, pairs(query.as_deref()), &headers, vec![filter]).await
}

/// `GET [base]/Patient/$everything`: every patient's record.
pub async fn everything_type(
    State(app): State<AppState>,
    Path(owner_type): Path<String>,
    negotiated: Negotiated,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    service::known_type(&owner_type)?;
    everything(&app, &negotiated, &base, &owner_type, None, query.as_deref()).await
}

/// `$everything` (patient-operation-everything): the patient, every resource in its compartment,
/// and the resources those refer to (practitioners, organizations, medications…).
async fn everything(
    app: &AppState,
    negotiated: &Negotiated,
    base: &str,
    owner_type: &str,
    owner_id: Option<&str>,
    query: Option<&str>,
) -> ApiResult<Response> {
    if owner_type != "Patient" {
        return Err(ApiError::NotFound(format!("the operation {owner_type}/$everything")));
    }
    if let Some(id) = owner_id {
        match app.store.read(DEFAULT_TENANT, owner_type, id).await? {
            None => return Err(ApiError::NotFound(format!("{owner_type}/{id}"))),
            Some(v) if v.is_deleted() => {
                return Err(ApiError::Gone { resource_type: owner_type.to_owned(), id: id.to_owned() });
            }
            Some(_) => {}
        }
    }
    let mut types = Vec::new();
    let mut request = SearchRequest::default();
    for (name, value) in pairs(query) {
        match name.as_str() {
            "_type" => {
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    service::known_type(t)?;
                    types.push(t.to_owned());
                }
            }
            "_since" => {
                let since = crate::history::parse_instant("_since", &value)?;
                let ms = since.timestamp_millis();
                request.filters.push(Filter::Builtin(Builtin::LastUpdated(vec![SearchValue::Date {
                    prefix: fhir::search::query::Prefix::Ge,
                    low: ms,
                    high: ms,
                }])));
            }
            "_count" => {
                request.count = Some(
                    value.parse().map_err(|_| ApiError::bad_request(format!("_count: '{value}' is not a count")))?,
                );
            }
            "_cursor" => request.cursor = Some(value.clone()),
            "_format" | "_pretty" => {}
            "start" | "end" => {
                return Err(ApiError::not_supported(format!(
                    "$everything: the parameter '{name}' (care dates) is not supported; use _since"
                )));
            }
            other => return Err(ApiError::bad_request(format!("$everything takes no parameter '{other}'"))),
        }
        if name != "_cursor" {
            request.canonical.push((name, value));
        }
    }
    // The record is the owner, its compartment, and what those refer to; `_type` and `_since`
    // then narrow that whole set.
    let compartment = Filter::compartment(owner_type, owner_id, &[], true)
        .ok_or_else(|| ApiError::NotFound(format!("the {owner_type} compartment")))?;
    let filter = Filter::WithReferenced(Box::new(compartment));
    if !types.is_empty() {
        request.types = types;
    }
    let path = match owner_id {
        Some(id) => format!("{owner_type}/{id}/$everything"),
        None => format!("{owner_type}/$everything"),
    };
    let plan = Plan { path, request, extra: vec![filter] };
    respond_page(app, negotiated, base, plan).await
}

#[allow(clippy::too_many_arguments)]
async fn search(
    app: &AppState,
    negotiated: &Negotiated,
    base: &str,
    resource_type: Option<&str>,
    path: String,
    params: Vec<(String, String)>,
    headers: &HeaderMap,
    extra: Vec<Filter>,
) -> ApiResult<Response> {
    let registry = app.registry();
    let plan = Plan::parse(&registry, base, resource_type, path, &params, lenient(headers), extra)?;
    respond_page(app, negotiated, base, plan).await
}

async fn respond_page(app: &AppState, negotiated: &Negotiated, base: &str, plan: Plan) -> ApiResult<Response> {
    let page = plan.page(Source::Store(app.store.as_ref())).await?;
    let bundle = searchset(base, &plan, &page)?;
    Ok(respond::serialized(negotiated, StatusCode::OK, &bundle))
}

/// Where a search runs: on the store, or inside a transaction (a transaction Bundle's `GET`
/// entries see its writes).
pub(crate) enum Source<'a> {
    Store(&'a dyn store::Store),
    Transaction(&'a mut dyn store::Transaction),
}

impl Plan {
    /// A search of `[base]/{path}?{params}`; `resource_type` is `None` at system level.
    pub(crate) fn parse(
        registry: &fhir::search::Registry,
        base: &str,
        resource_type: Option<&str>,
        path: String,
        params: &[(String, String)],
        lenient: bool,
        extra: Vec<Filter>,
    ) -> ApiResult<Plan> {
        let parser = Parser { registry, base_url: base, lenient };
        let request = parser.parse(resource_type, params).map_err(query_error)?;
        Ok(Plan { path, request, extra })
    }

    /// Runs the search and answers its `searchset` Bundle.
    pub(crate) async fn run(&self, source: Source<'_>, base: &str) -> ApiResult<Value> {
        let page = self.page(source).await?;
        serde_json::to_value(searchset(base, self, &page)?)
            .map_err(|e| ApiError::Internal(format!("stored body unreadable: {e}")))
    }

    /// Runs the search: one page of matches and what they include.
    async fn page(&self, source: Source<'_>) -> ApiResult<SearchPage> {
        let request = &self.request;
        let count = match request.summary {
            Some(Summary::Count) => 0,
            _ => request.count.unwrap_or(DEFAULT_COUNT).min(MAX_COUNT),
        };
        let mut filters = self.extra.clone();
        filters.extend(request.filters.iter().cloned());
        let query = SearchQuery {
            resource_type: request.resource_type.as_deref(),
            types: &request.types,
            filters: &filters,
            sort: &request.sort,
            count,
            cursor: request.cursor.as_deref(),
            total: counts_total(request),
            include: &request.include,
            revinclude: &request.revinclude,
        };
        let mut page = match source {
            Source::Store(store) => store.search(DEFAULT_TENANT, &query).await?,
            Source::Transaction(tx) => tx.search(&query).await?,
        };
        if page.total.is_none() && request.total != Some(Total::None) && request.cursor.is_none() && page.next.is_none()
        {
            // The first page holds every match: its length is the total, at no cost.
            page.total = Some(page.matches.len() as u64);
        }
        Ok(page)
    }
}

/// Whether the store counts every match. Counting a wide set costs as much as reading it, so a
/// search counts only when asked to (`_total=accurate|estimate`, `_summary=count`, `_count=0`);
/// otherwise `Bundle.total` is given only when the first page holds every match (the spec
/// leaves it optional on a searchset).
fn counts_total(request: &SearchRequest) -> bool {
    request.summary == Some(Summary::Count)
        || request.count == Some(0)
        || matches!(request.total, Some(Total::Accurate | Total::Estimate))
}

fn link(base: &str, plan: &Plan, cursor: Option<&str>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &plan.request.canonical {
        s.append_pair(k, v);
    }
    if let Some(c) = cursor {
        s.append_pair("_cursor", c);
    }
    let query = s.finish();
    let path = if plan.path.is_empty() { base.to_owned() } else { format!("{base}/{}", plan.path) };
    if query.is_empty() { path } else { format!("{path}?{query}") }
}

/// A `searchset` Bundle as it is serialised. Stored bodies are compact JSON and go out as they
/// are: parsing every match only to write it again was a fifth of a search's time.
#[derive(Serialize)]
struct Searchset<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    id: String,
    meta: Value,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    link: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<SearchEntry<'a>>,
}

#[derive(Serialize)]
struct SearchEntry<'a> {
    #[serde(rename = "fullUrl", skip_serializing_if = "Option::is_none")]
    full_url: Option<String>,
    resource: EntryResource<'a>,
    search: Value,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EntryResource<'a> {
    Stored(&'a RawValue),
    Shaped(Value),
}

fn searchset<'a>(base: &str, plan: &Plan, page: &'a SearchPage) -> ApiResult<Searchset<'a>> {
    let request = &plan.request;
    let mut links = vec![json!({"relation": "self", "url": link(base, plan, request.cursor.as_deref())})];
    if let Some(next) = &page.next {
        links.push(json!({"relation": "next", "url": link(base, plan, Some(next))}));
    }
    if let Some(previous) = &page.previous {
        links.push(json!({"relation": "previous", "url": link(base, plan, Some(previous))}));
    }
    let mut entries = Vec::with_capacity(page.matches.len() + page.included.len() + 1);
    if !request.ignored.is_empty() {
        let issues: Vec<Issue> = request
            .ignored
            .iter()
            .map(|e| Issue::warning("not-supported", format!("ignored the parameter '{}': {}", e.param, e.message)))
            .collect();
        entries.push(SearchEntry {
            full_url: None,
            resource: EntryResource::Shaped(operation_outcome(&issues)),
            search: json!({"mode": "outcome"}),
        });
    }
    for (versions, mode) in [(&page.matches, "match"), (&page.included, "include")] {
        for v in versions {
            entries.push(entry(base, request, v, mode)?);
        }
    }
    Ok(Searchset {
        resource_type: "Bundle",
        id: service::new_id(),
        meta: json!({"lastUpdated": respond::instant(chrono::Utc::now())}),
        kind: "searchset",
        total: page.total,
        link: links,
        entry: entries,
    })
}

fn entry<'a>(base: &str, request: &SearchRequest, v: &'a ResourceVersion, mode: &str) -> ApiResult<SearchEntry<'a>> {
    let body = v.body.as_deref().unwrap_or("{}");
    let unreadable = |e: serde_json::Error| ApiError::Internal(format!("stored body unreadable: {e}"));
    let resource = match (summary_mode(request), &request.elements) {
        (Some(summary), _) => {
            EntryResource::Shaped(fhir::summary::summarize(&serde_json::from_str(body).map_err(unreadable)?, summary))
        }
        (None, Some(names)) => {
            EntryResource::Shaped(fhir::summary::elements(&serde_json::from_str(body).map_err(unreadable)?, names))
        }
        (None, None) => EntryResource::Stored(serde_json::from_str(body).map_err(unreadable)?),
    };
    Ok(SearchEntry {
        full_url: Some(format!("{base}/{}/{}", v.resource_type, v.id)),
        resource,
        search: json!({"mode": mode}),
    })
}

fn summary_mode(request: &SearchRequest) -> Option<SummaryMode> {
    match request.summary {
        Some(Summary::True) => Some(SummaryMode::True),
        Some(Summary::Text) => Some(SummaryMode::Text),
        Some(Summary::Data) => Some(SummaryMode::Data),
        _ => None,
    }
}
