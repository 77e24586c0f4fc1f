//! Re-indexing: when the search parameters change (custom SearchParameter resources, a new
//! version of the indexing itself), every stored resource's index rows are computed again. The
//! job runs in the background in batches, records how far it got in the database (so a restart
//! resumes it), and reports its progress at `GET [base]/$reindex`; `POST [base]/$reindex` loads
//! the stored SearchParameters and starts it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fhir::model::{SearchComponent, SearchParamDef};
use fhir::search::Registry;
use fhir::search::query::SearchRequest;
use serde_json::{Value, json};
use store::{DEFAULT_TENANT, Reindexed, SearchQuery, Store};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::Negotiated;

/// The version of what indexing writes; raising it re-indexes every store on its next start.
/// 2: the typed search tables of every standard parameter.
pub const INDEX_VERSION: &str = "2";

const SETTING_INDEXED: &str = "index.version";
const SETTING_TARGET: &str = "reindex.target";
const SETTING_AFTER: &str = "reindex.after";

/// Resources per batch: one store transaction each.
const BATCH: usize = 500;

/// The state of the re-indexing job of a server.
#[derive(Debug, Default)]
pub struct Job {
    running: AtomicBool,
    processed: AtomicU64,
    note: Mutex<Note>,
}

#[derive(Debug, Default, Clone)]
struct Note {
    started: Option<String>,
    finished: Option<String>,
    error: Option<String>,
}

impl Job {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn note(&self) -> Note {
        self.note.lock().map(|n| n.clone()).unwrap_or_default()
    }

    fn set_note(&self, f: impl FnOnce(&mut Note)) {
        if let Ok(mut n) = self.note.lock() {
            f(&mut n);
        }
    }
}

/// A stored SearchParameter as the registry takes it; `None` for one that cannot be used.
fn custom_param(resource: &Value) -> Option<SearchParamDef> {
    let text = |k: &str| resource.get(k).and_then(Value::as_str).map(str::to_owned);
    let list = |k: &str| -> Vec<String> {
        resource
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    if text("status").as_deref() == Some("retired") {
        return None;
    }
    let components = resource
        .get("component")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(SearchComponent {
                definition: c.get("definition")?.as_str()?.to_owned(),
                expression: c.get("expression")?.as_str()?.to_owned(),
            })
        })
        .collect();
    Some(SearchParamDef {
        code: text("code")?,
        url: text("url")?,
        base: list("base"),
        kind: text("type")?,
        expression: Some(text("expression")?),
        xpath_usage: text("xpathUsage"),
        target: list("target"),
        modifier: list("modifier"),
        comparator: list("comparator"),
        multiple_or: resource.get("multipleOr").and_then(Value::as_bool),
        multiple_and: resource.get("multipleAnd").and_then(Value::as_bool),
        components,
    })
}

/// The standard parameters plus the SearchParameter resources stored in the default tenant,
/// and a fingerprint that changes whenever what indexing would write changes.
pub async fn load_registry(store: &dyn Store) -> ApiResult<(Arc<Registry>, String)> {
    let request = SearchRequest { resource_type: Some("SearchParameter".into()), ..Default::default() };
    let mut custom = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = SearchQuery {
            resource_type: request.resource_type.as_deref(),
            types: &[],
            filters: &[],
            sort: &[],
            count: 500,
            cursor: cursor.as_deref(),
            total: false,
            include: &[],
            revinclude: &[],
        };
        let page = store.search(DEFAULT_TENANT, &query).await?;
        for v in &page.matches {
            if let Some(def) =
                v.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok()).as_ref().and_then(custom_param)
            {
                custom.push(def);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    custom.sort_by(|a, b| a.url.cmp(&b.url));
    let mut fingerprint = INDEX_VERSION.to_owned();
    for c in &custom {
        fingerprint.push_str(&format!(
            ";{}|{}|{}|{}",
            c.url,
            c.code,
            c.base.join(","),
            c.expression.as_deref().unwrap_or("")
        ));
    }
    let fingerprint = format!("{INDEX_VERSION}:{:016x}", fnv(fingerprint.as_bytes()));
    let registry =
        if custom.is_empty() { fhir::search::standard_shared() } else { Arc::new(Registry::from_definitions(&custom)) };
    // The store must know every parameter before anything is indexed with it.
    store.register(&registry).await?;
    Ok((registry, fingerprint))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The search parameters of a store, and whether its index was written with them.
pub struct Prepared {
    pub registry: Arc<Registry>,
    fingerprint: String,
    /// `None` when the index is current; otherwise the `rid` to resume re-indexing after.
    pending: Option<i64>,
}

impl Prepared {
    pub fn is_current(&self) -> bool {
        self.pending.is_none()
    }
}

/// Loads the search parameters and compares them with those the index was written with. A
/// store without resources is marked current: there is nothing to re-index.
pub async fn prepare(store: &dyn Store) -> ApiResult<Prepared> {
    let (registry, fingerprint) = load_registry(store).await?;
    if store.setting(SETTING_INDEXED).await?.as_deref() == Some(fingerprint.as_str()) {
        return Ok(Prepared { registry, fingerprint, pending: None });
    }
    let resume = match store.setting(SETTING_TARGET).await? {
        Some(target) if target == fingerprint => {
            store.setting(SETTING_AFTER).await?.and_then(|a| a.parse::<i64>().ok()).unwrap_or(0)
        }
        _ => 0,
    };
    if resume == 0 && store.scan(0, 1).await?.is_empty() {
        store.set_setting(SETTING_INDEXED, &fingerprint).await?;
        return Ok(Prepared { registry, fingerprint, pending: None });
    }
    Ok(Prepared { registry, fingerprint, pending: Some(resume) })
}

/// At start-up: the search parameters in force, and the job resumed or started if the index
/// was written with others (or a job was interrupted).
pub async fn on_start(app: &AppState) -> ApiResult<()> {
    let prepared = prepare(app.store.as_ref()).await?;
    app.set_registry(prepared.registry);
    match prepared.pending {
        None => Ok(()),
        Some(after) => spawn(app.clone(), prepared.fingerprint, after).await,
    }
}

async fn spawn(app: AppState, fingerprint: String, after: i64) -> ApiResult<()> {
    if app.reindex.running.swap(true, Ordering::SeqCst) {
        return Err(ApiError::Conflict("a re-indexing job is already running".into()));
    }
    app.store.set_setting(SETTING_TARGET, &fingerprint).await?;
    app.store.set_setting(SETTING_AFTER, &after.to_string()).await?;
    app.reindex.processed.store(0, Ordering::SeqCst);
    app.reindex.set_note(|n| {
        *n = Note { started: Some(crate::respond::instant(chrono::Utc::now())), ..Default::default() };
    });
    tracing::info!(after, "re-indexing started");
    tokio::spawn(async move {
        let result = run(&app, &fingerprint, after).await;
        let now = crate::respond::instant(chrono::Utc::now());
        match &result {
            Ok(()) => tracing::info!(resources = app.reindex.processed.load(Ordering::SeqCst), "re-indexing finished"),
            Err(e) => tracing::error!(error = %e, "re-indexing stopped"),
        }
        app.reindex.set_note(|n| {
            n.finished = Some(now);
            n.error = result.err().map(|e| e.to_string());
        });
        app.reindex.running.store(false, Ordering::SeqCst);
    });
    Ok(())
}

async fn run(app: &AppState, fingerprint: &str, mut after: i64) -> ApiResult<()> {
    let registry = app.registry();
    loop {
        let batch = app.store.scan(after, BATCH).await?;
        let Some(last) = batch.last().map(|s| s.rid) else { break };
        let n = batch.len() as u64;
        let work: Vec<Reindexed> = batch
            .into_iter()
            .filter_map(|s| {
                let body: Value = serde_json::from_str(s.version.body.as_deref()?).ok()?;
                let (index, text) = crate::service::index_rows(&registry, &body);
                Some(Reindexed {
                    rid: s.rid,
                    tenant: s.tenant,
                    resource_type: s.version.resource_type,
                    version: s.version.version,
                    index,
                    text: Some(text),
                })
            })
            .collect();
        app.store.reindex(work).await?;
        after = last;
        app.store.set_setting(SETTING_AFTER, &after.to_string()).await?;
        app.reindex.processed.fetch_add(n, Ordering::SeqCst);
    }
    app.store.set_setting(SETTING_INDEXED, fingerprint).await?;
    Ok(())
}

fn status_parameters(app: &AppState) -> Value {
    let note = app.reindex.note();
    let state = if app.reindex.is_running() {
        "running"
    } else if note.error.is_some() {
        "failed"
    } else if note.started.is_some() {
        "completed"
    } else {
        "idle"
    };
    let mut parameter = vec![
        json!({"name": "status", "valueCode": state}),
        json!({"name": "processed", "valueUnsignedInt": app.reindex.processed.load(Ordering::SeqCst)}),
    ];
    for (name, value) in [("started", &note.started), ("finished", &note.finished)] {
        if let Some(v) = value {
            parameter.push(json!({"name": name, "valueInstant": v}));
        }
    }
    if let Some(e) = &note.error {
        parameter.push(json!({"name": "error", "valueString": e}));
    }
    json!({"resourceType": "Parameters", "parameter": parameter})
}

/// `POST [base]/$reindex`: loads the stored SearchParameters and re-indexes everything with them.
pub async fn start(State(app): State<AppState>, negotiated: Negotiated) -> ApiResult<Response> {
    let (registry, fingerprint) = load_registry(app.store.as_ref()).await?;
    if app.reindex.is_running() {
        return Err(ApiError::Conflict("a re-indexing job is already running; see GET [base]/$reindex".into()));
    }
    app.set_registry(registry);
    spawn(app.clone(), fingerprint, 0).await?;
    let mut response = crate::respond::json(&negotiated, StatusCode::ACCEPTED, &status_parameters(&app));
    if let Ok(v) = "$reindex".parse() {
        response.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(response)
}

/// `GET [base]/$reindex`: the job's progress.
pub async fn status(State(app): State<AppState>, negotiated: Negotiated) -> Response {
    crate::respond::json(&negotiated, StatusCode::OK, &status_parameters(&app)).into_response()
}
