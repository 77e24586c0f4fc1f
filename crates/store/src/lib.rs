//! Iaso's storage seam: the [`Store`] trait and its two backends, SQLite (the embedded default)
//! and PostgreSQL (production). Everything a backend holds is keyed by tenant; no query exists
//! without one.
//!
//! The store is deliberately unaware of FHIR semantics: it keeps versioned JSON bodies, their
//! history and the index rows the caller derived from them. Validation, reference resolution and
//! search-parameter evaluation happen in the `fhir` crate before a write reaches a [`Transaction`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

mod common;
mod error;
pub mod postgres;
pub mod sqlite;
pub mod testing;

pub use error::StoreError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The tenant every row belongs to until access control introduces more.
pub const DEFAULT_TENANT: &str = "default";

/// How a version came to be; history Bundles report it as `entry.request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One stored version of a resource.
#[derive(Debug, Clone)]
pub struct ResourceVersion {
    pub resource_type: String,
    pub id: String,
    /// 1, 2, 3… per resource; `meta.versionId` is its decimal string.
    pub version: i64,
    pub last_updated: DateTime<Utc>,
    pub method: Method,
    /// The JSON text of the resource with `meta.versionId` and `meta.lastUpdated` set,
    /// `None` for a deletion.
    pub body: Option<String>,
    /// Position in the tenant's global write order: strictly increasing, used as a stable cursor
    /// for history paging.
    pub sequence: i64,
}

impl ResourceVersion {
    pub fn is_deleted(&self) -> bool {
        self.body.is_none()
    }
}

/// A derived value stored beside a resource version so that it can be found without reading
/// bodies. The search issue adds a variant per search-parameter type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexRow {
    Token { param: String, system: Option<String>, code: String },
}

/// What a lookup inside a transaction matches on (all criteria must hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    Id(String),
    /// `system` of `None` matches any system; `Some("")` matches only rows without a system.
    Token {
        param: String,
        system: Option<String>,
        code: String,
    },
}

/// A new version to write.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub resource_type: String,
    pub id: String,
    /// The version the caller based this write on: `Some(0)` means "must not exist yet (or only
    /// as a deletion)", `Some(n)` means "current version must be n", `None` accepts whatever is
    /// there. A mismatch is [`StoreError::VersionConflict`].
    pub expected_version: Option<i64>,
    pub method: Method,
    /// The resource; `None` deletes. The store sets `meta.versionId` and `meta.lastUpdated`.
    pub body: Option<Value>,
    pub index: Vec<IndexRow>,
}

/// Which history to list and how.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// `None` for system-level history.
    pub resource_type: Option<String>,
    /// Only with `resource_type`, for instance-level history.
    pub id: Option<String>,
    /// Only versions updated at or after this instant (`_since`).
    pub since: Option<DateTime<Utc>>,
    /// Only versions current at this instant (`_at`): versions updated at or before it, newest
    /// first, one per resource is not required by the spec; we list every version up to it.
    pub at: Option<DateTime<Utc>>,
    /// Paging cursor: only versions with a sequence strictly below this.
    pub before_sequence: Option<i64>,
    /// At most this many versions, newest first.
    pub count: usize,
}

/// A storage backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Answers only when the database is reachable and its schema is current (`/health/ready`).
    async fn ping(&self) -> Result<()>;

    /// The current version of a resource, deletions included (so a caller can answer 410).
    async fn read(&self, tenant: &str, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>>;

    /// One version of a resource.
    async fn vread(&self, tenant: &str, resource_type: &str, id: &str, version: i64)
    -> Result<Option<ResourceVersion>>;

    /// Versions, newest first.
    async fn history(&self, tenant: &str, query: &HistoryQuery) -> Result<Vec<ResourceVersion>>;

    /// The number of versions the query matches, ignoring `count` and `before_sequence`.
    async fn history_total(&self, tenant: &str, query: &HistoryQuery) -> Result<u64>;

    /// Starts a database transaction. Every write goes through one; dropping it without
    /// [`Transaction::commit`] rolls back.
    async fn begin(&self, tenant: &str) -> Result<Box<dyn Transaction>>;
}

/// An open database transaction, scoped to one tenant.
///
/// Reads inside it see its own writes. On PostgreSQL [`Transaction::read`] locks the row
/// (`FOR UPDATE`); SQLite transactions take the single writer lock at `begin`, so concurrent
/// writers to one resource are serialised on both backends.
#[async_trait]
pub trait Transaction: Send {
    async fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>>;

    /// Ids of current (not deleted) resources of a type matching every criterion.
    async fn find(&mut self, resource_type: &str, criteria: &[Criterion]) -> Result<Vec<String>>;

    /// Writes a new version and its index rows (replacing the previous version's rows).
    async fn write(&mut self, version: NewVersion) -> Result<ResourceVersion>;

    async fn commit(self: Box<Self>) -> Result<()>;
}
/// Opens the store named by `database_url` and brings its schema up to date: `None`, a
/// `sqlite://PATH` URL or a bare path is SQLite (default `iaso.db` in `data_dir`); `postgres://…`
/// is PostgreSQL.
pub async fn open(database_url: Option<&str>, data_dir: &std::path::Path) -> Result<std::sync::Arc<dyn Store>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(std::sync::Arc::new(postgres::PostgresStore::open(url).await?))
        }
        Some(url) => {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
                return Err(StoreError::Config(format!(
                    "unsupported database URL '{url}' (use sqlite://PATH or postgres://…)"
                )));
            }
            Ok(std::sync::Arc::new(sqlite::SqliteStore::open(std::path::Path::new(path))?))
        }
        None => Ok(std::sync::Arc::new(sqlite::SqliteStore::open(&data_dir.join("iaso.db"))?)),
    }
}
