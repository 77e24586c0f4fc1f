//! Iaso's storage seam: the [`Store`] trait and its two backends, SQLite (the embedded default)
//! and PostgreSQL (production). Everything a backend holds is keyed by tenant; no query exists
//! without one.
//!
//! The store is deliberately unaware of FHIR semantics: it keeps versioned JSON bodies, their
//! history and the index rows the caller derived from them. Validation, reference resolution and
//! search-parameter evaluation happen in the `fhir` crate before a write reaches a [`Transaction`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fhir::search::query::{Filter, Include, SortKey};
use fhir::search::{FullText, IndexEntry};
use serde_json::Value;

mod account;
mod common;
mod error;
mod keys;
pub mod postgres;
mod search;
mod session;
pub mod sqlite;
pub mod testing;

pub use account::{Account, AccountStatus};
pub use error::StoreError;
pub use session::{AuthEvent, Failures, SecondFactor, Session, SessionStage};

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
    /// The search index values of the resource (replacing the previous version's).
    pub index: Vec<IndexEntry>,
    /// The full text for `_text` and `_content`.
    pub text: Option<FullText>,
}

/// A search to run: the parsed request's filters and sort, the page wanted, and whether to
/// count and what to include.
#[derive(Debug, Clone, Copy)]
pub struct SearchQuery<'a> {
    /// `None` at the system level.
    pub resource_type: Option<&'a str>,
    /// At the system level, the types searched (empty: all).
    pub types: &'a [String],
    pub filters: &'a [Filter],
    pub sort: &'a [SortKey],
    /// Page size; 0 returns no resources (only the total, when asked for).
    pub count: usize,
    /// A cursor from a previous page's `next`/`previous`.
    pub cursor: Option<&'a str>,
    pub total: bool,
    pub include: &'a [Include],
    pub revinclude: &'a [Include],
}

/// One page of search results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub matches: Vec<ResourceVersion>,
    /// Resources added by `_include` / `_revinclude`, each once and none of the matches.
    pub included: Vec<ResourceVersion>,
    pub total: Option<u64>,
    /// Cursors for the following and the preceding page.
    pub next: Option<String>,
    pub previous: Option<String>,
}

/// A current resource as the re-indexer reads it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub rid: i64,
    pub tenant: String,
    pub version: ResourceVersion,
}

/// New index values for a resource whose version is still `version`.
#[derive(Debug, Clone)]
pub struct Reindexed {
    pub rid: i64,
    pub tenant: String,
    pub resource_type: String,
    pub version: i64,
    pub index: Vec<IndexEntry>,
    pub text: Option<FullText>,
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

pub use fhir::search::query;

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

    /// One page of a search.
    async fn search(&self, tenant: &str, query: &SearchQuery<'_>) -> Result<SearchPage>;

    /// Live resources of every tenant with a `rid` above `after`, in `rid` order, for
    /// re-indexing.
    async fn scan(&self, after: i64, limit: usize) -> Result<Vec<Stored>>;

    /// Replaces the index rows of resources still at the version they were read at (a
    /// resource written since keeps the rows of that write). One transaction.
    async fn reindex(&self, batch: Vec<Reindexed>) -> Result<()>;

    /// Makes the store ready to index with `registry`'s parameters (it keys index rows by
    /// them). The standard parameters are registered when the store opens.
    async fn register(&self, registry: &fhir::search::Registry) -> Result<()>;

    /// A setting kept in the database (index version, job progress).
    async fn setting(&self, name: &str) -> Result<Option<String>>;

    async fn set_setting(&self, name: &str, value: &str) -> Result<()>;

    /// Adds an account (its `version`, `created` and `updated` are set by the store):
    /// [`StoreError::Exists`] when its id or email is taken in the tenant.
    async fn create_account(&self, tenant: &str, account: &Account) -> Result<Account>;

    async fn account(&self, tenant: &str, id: &str) -> Result<Option<Account>>;

    async fn account_by_email(&self, tenant: &str, email: &str) -> Result<Option<Account>>;

    /// Replaces an account if its stored version is still `account.version`; answers it with
    /// the next version. [`StoreError::VersionConflict`] when another update came first,
    /// [`StoreError::NotFound`] when there is no such account, [`StoreError::Exists`] when the
    /// new email is another account's.
    async fn update_account(&self, tenant: &str, account: &Account) -> Result<Account>;

    /// Accounts in email order, after `after_email`, at most `limit`.
    async fn accounts(&self, tenant: &str, after_email: Option<&str>, limit: usize) -> Result<Vec<Account>>;

    /// Adds a session (as given: the caller sets its times). [`StoreError::Exists`] when its
    /// id or token digest is taken.
    async fn create_session(&self, tenant: &str, session: &Session) -> Result<()>;

    /// The session whose token has this digest, if it exists and was not revoked (expiry is
    /// the caller's to judge).
    async fn session_by_token(&self, tenant: &str, token_hash: &str) -> Result<Option<Session>>;

    /// Records activity on a session and, when given, moves it to `stage`. `false` when the
    /// session is gone (revoked meanwhile).
    async fn touch_session(
        &self,
        tenant: &str,
        id: &str,
        last_seen: DateTime<Utc>,
        stage: Option<SessionStage>,
    ) -> Result<bool>;

    /// Ends one session of an account; `false` when it was not that account's or is gone.
    async fn revoke_session(&self, tenant: &str, account_id: &str, id: &str) -> Result<bool>;

    /// Ends every session of an account but `except` (the one changing the password); answers
    /// how many ended.
    async fn revoke_sessions(&self, tenant: &str, account_id: &str, except: Option<&str>) -> Result<u64>;

    /// The account's sessions that were not revoked and whose absolute expiry is after `now`,
    /// newest first.
    async fn sessions(&self, tenant: &str, account_id: &str, now: DateTime<Utc>) -> Result<Vec<Session>>;

    /// Deletes sessions that ended (revoked, or absolute expiry before `before`); answers how
    /// many.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64>;

    /// The account's second factor, confirmed or not.
    async fn second_factor(&self, tenant: &str, account_id: &str) -> Result<Option<SecondFactor>>;

    /// Writes a second factor. With `version` 0 it replaces whatever the account had
    /// (enrolment starts over; the version counts on from the replaced one, so an update based
    /// on the old factor cannot write it back); otherwise only if the stored version is still that one
    /// ([`StoreError::VersionConflict`] if not, [`StoreError::NotFound`] if there is none).
    /// Answers it with its new version and its `created` (set by the store when it replaces).
    async fn put_second_factor(&self, tenant: &str, factor: &SecondFactor) -> Result<SecondFactor>;

    /// Removes the account's second factor; `false` if it had none.
    async fn delete_second_factor(&self, tenant: &str, account_id: &str) -> Result<bool>;

    /// Counts one failure under `key` in one atomic step: the count starts again at 1 when the
    /// last failure is older than `window_start`. Answers the count after this failure.
    async fn count_failure(
        &self,
        tenant: &str,
        key: &str,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
    ) -> Result<Failures>;

    async fn failures(&self, tenant: &str, key: &str) -> Result<Option<Failures>>;

    /// Forgets the failures under `key` (a successful sign-in).
    async fn clear_failures(&self, tenant: &str, key: &str) -> Result<()>;

    /// [`StoreError::Exists`] when the event's id is taken.
    async fn record_auth_event(&self, tenant: &str, event: &AuthEvent) -> Result<()>;

    /// Auth events, newest first, of one account or (with `None`) all, at most `limit`.
    async fn auth_events(&self, tenant: &str, account_id: Option<&str>, limit: usize) -> Result<Vec<AuthEvent>>;
}

/// An open database transaction, scoped to one tenant.
///
/// Reads inside it see its own writes. On PostgreSQL [`Transaction::read`] locks the row
/// (`FOR UPDATE`); SQLite transactions take the single writer lock at `begin`, so concurrent
/// writers to one resource are serialised on both backends.
#[async_trait]
pub trait Transaction: Send {
    async fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>>;

    /// Reads without locking, for a caller that will not write the resource (a conditional
    /// create that found it): concurrent transactions that only look at a shared resource (the
    /// Organization every patient Bundle names) then do not queue behind each other.
    async fn read_shared(&mut self, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>>;

    /// Ids of current (not deleted) resources of a type that pass every filter, at most
    /// `limit`, in write order (as of the start of the transaction for others' writes).
    async fn find(&mut self, resource_type: &str, filters: &[Filter], limit: usize) -> Result<Vec<String>>;

    /// A search seeing the transaction's own writes (the `GET` entries of a transaction Bundle
    /// run after its writes).
    async fn search(&mut self, query: &SearchQuery<'_>) -> Result<SearchPage>;

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
