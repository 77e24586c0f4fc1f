//! The embedded SQLite backend (rusqlite, bundled SQLite).
//!
//! One writer connection serves transactions (SQLite has one writer at a time anyway; taking it
//! at `begin` with `BEGIN IMMEDIATE` serialises concurrent writers to a resource). Reads use a
//! small pool of further connections, which WAL lets run beside the writer. rusqlite is
//! synchronous: point reads by key take microseconds and run inline on the calling worker,
//! while writes and scans run under `block_in_place` so other tasks move to another worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use fhir::search::query::Filter;
use fhir::search::{FullText, IndexEntry, IndexValue};

use crate::account;
use crate::common::{self, Migration, Param};
use crate::keys::Keys;
use crate::search::{self, Dialect, KeyType, KeyValue, Runner, Sql};
use crate::session::{self, AuthEvent, Failures, SecondFactor, Session, SessionStage};
use crate::{
    Account, AccountStatus, HistoryQuery, NewVersion, Reindexed, ResourceVersion, Result, SearchPage, SearchQuery,
    Store, StoreError, Stored, Transaction,
};
use chrono::{DateTime, Utc};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "resources", sql: include_str!("../migrations/sqlite/0001_resources.sql") },
    Migration { version: 2, name: "search", sql: include_str!("../migrations/sqlite/0002_search.sql") },
    Migration { version: 3, name: "live", sql: include_str!("../migrations/sqlite/0003_live.sql") },
    Migration { version: 4, name: "covering", sql: include_str!("../migrations/both/0004_covering.sql") },
    Migration { version: 5, name: "accounts", sql: include_str!("../migrations/both/0005_accounts.sql") },
    Migration { version: 6, name: "sessions", sql: include_str!("../migrations/both/0006_sessions.sql") },
];

const READERS: usize = 8;

pub struct SqliteStore {
    writer: Arc<AsyncMutex<Connection>>,
    keys: Arc<Keys>,
    readers: Vec<std::sync::Mutex<Connection>>,
    next_reader: AtomicUsize,
    path: PathBuf,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => StoreError::Retry,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            StoreError::Retry
        }
        _ => StoreError::Database(e.to_string()),
    }
}

/// Runs synchronous database work without stalling the async workers for long.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// `cache_kib`: the page cache of the connection; the writer's is large, since every write
/// walks the index B-trees.
fn open_connection(path: &Path, cache_kib: u32) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Config(format!("cannot open {}: {e}", path.display())))?;
    // WAL with synchronous=NORMAL is durable against a crash of the process (kill -9): a
    // committed transaction is in the WAL file before COMMIT returns. Checkpoints every
    // 20,000 pages (80 MB) rather than SQLite's 1,000: a page the index B-trees touch again and
    // again is copied back to the database once per checkpoint, and with the default a tenth of
    // import time went to checkpoints. Reads go through a memory map (no read syscalls).
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 20000;
         PRAGMA mmap_size = 8589934592;
         PRAGMA cache_size = -{cache_kib};"
    ))
    .map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut writer = open_connection(path, 262_144)?;
        migrate(&mut writer)?;
        let readers =
            (0..READERS).map(|_| open_connection(path, 32_768).map(std::sync::Mutex::new)).collect::<Result<_>>()?;
        let keys = Arc::new(Keys::default());
        register_sync(&writer, &keys, fhir::search::standard())?;
        Ok(SqliteStore {
            writer: Arc::new(AsyncMutex::new(writer)),
            keys,
            readers,
            next_reader: AtomicUsize::new(0),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A free read connection; the pool is larger than the number of workers, so waiting is rare.
    fn with_reader<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        for reader in &self.readers {
            if let Ok(conn) = reader.try_lock() {
                return work(&conn);
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i].lock().map_err(|_| StoreError::Database("a read connection was poisoned".into()))?;
        work(&conn)
    }
}

/// Adds the registry's missing parameter keys and reloads the mirror.
fn register_sync(conn: &Connection, keys: &Keys, registry: &fhir::search::Registry) -> Result<()> {
    let missing = keys.missing(registry);
    if !missing.is_empty() {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let inserted = (|| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO search_keys (resource_type, param, kind) VALUES (?1, ?2, ?3)
                     ON CONFLICT (resource_type, param) DO NOTHING",
                )
                .map_err(db_err)?;
            for (rt, p, k) in &missing {
                stmt.execute(params![rt, p, k]).map_err(db_err)?;
            }
            Ok(())
        })();
        let end = if inserted.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.execute_batch(end).map_err(db_err)?;
        inserted?;
    }
    let mut stmt = conn.prepare_cached("SELECT pid, resource_type, param, kind FROM search_keys").map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    keys.load(rows);
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(|e| StoreError::Migration(e.to_string()))?;
    for m in MIGRATIONS {
        let applied: Option<String> = conn
            .query_row("SELECT checksum FROM schema_migrations WHERE version = ?1", [m.version], |r| r.get(0))
            .optional()
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        match applied {
            Some(sum) if sum == m.checksum() => continue,
            Some(_) => {
                return Err(StoreError::Migration(format!(
                    "migration {} ({}) was changed after it was applied",
                    m.version, m.name
                )));
            }
            None => {}
        }
        let tx = conn.transaction().map_err(|e| StoreError::Migration(e.to_string()))?;
        tx.execute_batch(m.sql).map_err(|e| StoreError::Migration(format!("{}: {e}", m.name)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            params![m.version, m.name, m.checksum(), common::now_millis()],
        )
        .map_err(|e| StoreError::Migration(e.to_string()))?;
        tx.commit().map_err(|e| StoreError::Migration(e.to_string()))?;
    }
    Ok(())
}

fn latest_migration() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// A subquery rather than a join: SQLite propagates the bound key of a join into the other
/// table's terms and then re-prepares the statement on every run (perf showed a fifth of import
/// time in the parser); this form keeps the cached plan.
const SELECT_CURRENT: &str = "SELECT v.sequence, v.version, v.last_updated, v.method, v.body
    FROM versions v
    WHERE v.tenant = ?1 AND v.resource_type = ?2 AND v.id = ?3
      AND v.version = (SELECT r.version FROM resources r WHERE r.tenant = ?1 AND r.resource_type = ?2 AND r.id = ?3)";

fn row_version(resource_type: &str, id: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<ResourceVersion> {
    let method: String = row.get(3)?;
    Ok(ResourceVersion {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        sequence: row.get(0)?,
        version: row.get(1)?,
        last_updated: common::from_millis(row.get(2)?),
        method: common::method_from(&method),
        body: row.get(4)?,
    })
}

fn read_current(conn: &Connection, tenant: &str, rt: &str, id: &str) -> Result<Option<ResourceVersion>> {
    let mut stmt = conn.prepare_cached(SELECT_CURRENT).map_err(db_err)?;
    stmt.query_row(params![tenant, rt, id], |row| row_version(rt, id, row)).optional().map_err(db_err)
}

fn to_sql(params: &[Param]) -> Vec<SqlValue> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => SqlValue::Text(s.clone()),
            Param::Int(i) => SqlValue::Integer(*i),
            Param::Real(f) => SqlValue::Real(*f),
        })
        .collect()
}

/// Rows of a built search statement, as key values.
fn query_rows(conn: &Connection, sql: &Sql, types: &[KeyType]) -> Result<Vec<Vec<KeyValue>>> {
    // The text only: parameter values may be PHI, and the statement shape is what a slow
    // search needs looked at (`IASO_LOG=iaso::sql=trace`).
    tracing::trace!(target: "iaso::sql", sql = %sql.text);
    let mut stmt = conn.prepare_cached(&numbered(&sql.text)).map_err(db_err)?;
    let mut rows = stmt.query(params_from_iter(to_sql(&sql.params))).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let mut values = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            use rusqlite::types::ValueRef;
            let v = row.get_ref(i).map_err(db_err)?;
            values.push(match (v, ty) {
                (ValueRef::Null, _) => KeyValue::Null,
                (ValueRef::Integer(n), KeyType::Real) => KeyValue::Real(n as f64),
                (ValueRef::Integer(n), _) => KeyValue::Int(n),
                (ValueRef::Real(f), KeyType::Int) => KeyValue::Int(f as i64),
                (ValueRef::Real(f), _) => KeyValue::Real(f),
                (ValueRef::Text(t) | ValueRef::Blob(t), _) => KeyValue::Text(String::from_utf8_lossy(t).into_owned()),
            });
        }
        out.push(values);
    }
    Ok(out)
}

/// Searches on the read connections.
struct Readers<'a>(&'a SqliteStore);

#[async_trait]
impl Runner for Readers<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn keys(&self) -> &Keys {
        &self.0.keys
    }

    async fn rows(&self, sql: &Sql, types: &[KeyType]) -> Result<Vec<Vec<KeyValue>>> {
        blocking(|| self.0.with_reader(|c| query_rows(c, sql, types)))
    }
}

/// Searches inside a transaction, on its connection. The mutex only makes the borrowed
/// connection shareable for the trait; nothing else ever locks it.
struct InTransaction<'a>(std::sync::Mutex<&'a mut Connection>, &'a Keys);

#[async_trait]
impl Runner for InTransaction<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn keys(&self) -> &Keys {
        self.1
    }

    async fn rows(&self, sql: &Sql, types: &[KeyType]) -> Result<Vec<Vec<KeyValue>>> {
        let conn = self.0.lock().map_err(|_| StoreError::Database("the connection was poisoned".into()))?;
        blocking(|| query_rows(&conn, sql, types))
    }
}

/// Removes every index row of a resource.
fn clear_index(conn: &Connection, rid: i64) -> Result<()> {
    for t in search::INDEX_TABLES {
        conn.prepare_cached(&format!("DELETE FROM {t} WHERE rid = ?1"))
            .and_then(|mut s| s.execute([rid]))
            .map_err(db_err)?;
    }
    Ok(())
}

fn unregistered(rt: &str, param: &str) -> StoreError {
    StoreError::Query(format!("the search parameter {rt}.{param} is not registered with the store"))
}

/// Token and reference parts are stored as '' when absent (see the 0002 migration).
fn or_empty(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Writes a resource's index rows (the full text goes through [`PendingText`]).
fn insert_index(
    conn: &Connection,
    keys: &Keys,
    tenant: &str,
    rt: &str,
    rid: i64,
    entries: &[IndexEntry],
) -> Result<()> {
    for e in entries {
        let p = keys.pid(rt, &e.param).ok_or_else(|| unregistered(rt, &e.param))?;
        let written = match &e.value {
            IndexValue::String { normalized, exact } => conn
                .prepare_cached(
                    "INSERT INTO idx_string (tenant, pid, normalized, exact, rid)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| s.execute(params![tenant, p, normalized, exact, rid])),
            IndexValue::Token { system, code, text } => conn
                .prepare_cached(
                    "INSERT INTO idx_token (tenant, pid, system, code, text, rid)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| s.execute(params![tenant, p, or_empty(system), or_empty(code), or_empty(text), rid])),
            IndexValue::Reference { target_type, target_id, version, url } => conn
                .prepare_cached(
                    "INSERT INTO idx_reference (tenant, pid, target_type, target_id, version, url, rid)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant,
                        p,
                        or_empty(target_type),
                        or_empty(target_id),
                        or_empty(version),
                        or_empty(url),
                        rid
                    ])
                }),
            IndexValue::Date { low, high } => conn
                .prepare_cached("INSERT INTO idx_date (tenant, pid, low, high, rid) VALUES (?1, ?2, ?3, ?4, ?5)")
                .and_then(|mut s| s.execute(params![tenant, p, low, high, rid])),
            IndexValue::Number { value } => conn
                .prepare_cached("INSERT INTO idx_number (tenant, pid, value, rid) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![tenant, p, value, rid])),
            IndexValue::Quantity { low, high, system, code, unit, canonical } => {
                let (cl, ch, key) = match canonical {
                    Some((l, h, k)) => (Some(*l), Some(*h), Some(k.as_str())),
                    None => (None, None, None),
                };
                conn.prepare_cached(
                    "INSERT INTO idx_quantity (tenant, pid, low, high, system, code, unit,
                     canonical_low, canonical_high, canonical_key, rid)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .and_then(|mut s| s.execute(params![tenant, p, low, high, system, code, unit, cl, ch, key, rid]))
            }
            IndexValue::Uri { uri } => conn
                .prepare_cached("INSERT INTO idx_uri (tenant, pid, uri, rid) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![tenant, p, uri, rid])),
            IndexValue::Composite { parts } => {
                let [a, b, c] = search::composite_parts(parts);
                conn.prepare_cached(
                    "INSERT INTO idx_composite (tenant, pid,
                     p1_system, p1_code, p1_low, p1_high, p1_canonical_low, p1_canonical_high, p1_key,
                     p2_system, p2_code, p2_low, p2_high, p2_canonical_low, p2_canonical_high, p2_key,
                     p3_system, p3_code, p3_low, p3_high, p3_canonical_low, p3_canonical_high, p3_key, rid)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant, p,
                        a.system, a.code, a.low, a.high, a.canonical_low, a.canonical_high, a.key,
                        b.system, b.code, b.low, b.high, b.canonical_low, b.canonical_high, b.key,
                        c.system, c.code, c.low, c.high, c.canonical_low, c.canonical_high, c.key,
                        rid
                    ])
                })
            }
        };
        written.map_err(db_err)?;
    }
    Ok(())
}

/// Full-text rows waiting for the end of the transaction. FTS5 writes out its pending terms at
/// every statement boundary, so one row per statement leaves a heap of tiny segments to merge
/// (a third of import time in perf); a transaction's rows go in a few multi-row statements.
#[derive(Default)]
struct PendingText {
    clear: Vec<i64>,
    rows: Vec<(i64, FullText)>,
}

impl PendingText {
    fn add(&mut self, rid: i64, replace: bool, text: Option<FullText>) {
        if replace {
            self.clear.push(rid);
            self.rows.retain(|(r, _)| *r != rid);
        }
        if let Some(t) = text
            && !(t.narrative.is_empty() && t.content.is_empty())
        {
            self.rows.push((rid, t));
        }
    }

    fn flush(&mut self, conn: &Connection) -> Result<()> {
        for chunk in self.clear.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            conn.execute(&format!("DELETE FROM idx_text WHERE rowid IN ({marks})"), params_from_iter(chunk))
                .map_err(db_err)?;
        }
        for chunk in self.rows.chunks(200) {
            let marks = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let values: Vec<SqlValue> = chunk
                .iter()
                .flat_map(|(rid, t)| {
                    [SqlValue::Integer(*rid), SqlValue::Text(t.narrative.clone()), SqlValue::Text(t.content.clone())]
                })
                .collect();
            conn.execute(
                &format!("INSERT INTO idx_text (rowid, narrative, content) VALUES {marks}"),
                params_from_iter(values),
            )
            .map_err(db_err)?;
        }
        self.clear.clear();
        self.rows.clear();
        Ok(())
    }
}

/// SQLite numbers its placeholders `?n`; the shared SQL uses PostgreSQL's `$n`. Values are
/// always bound, so no `$` appears in the SQL text otherwise.
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        let version: i64 = self.with_reader(|c| {
            c.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0)).map_err(db_err)
        })?;
        if version == latest_migration() {
            Ok(())
        } else {
            Err(StoreError::Migration(format!("schema at version {version}, expected {}", latest_migration())))
        }
    }

    async fn read(&self, tenant: &str, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>> {
        self.with_reader(|c| read_current(c, tenant, resource_type, id))
    }

    async fn vread(
        &self,
        tenant: &str,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<ResourceVersion>> {
        self.with_reader(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT sequence, version, last_updated, method, body FROM versions
                     WHERE tenant = ?1 AND resource_type = ?2 AND id = ?3 AND version = ?4",
                )
                .map_err(db_err)?;
            stmt.query_row(params![tenant, resource_type, id, version], |row| row_version(resource_type, id, row))
                .optional()
                .map_err(db_err)
        })
    }

    async fn history(&self, tenant: &str, query: &HistoryQuery) -> Result<Vec<ResourceVersion>> {
        let (filter, params) = common::history_filter(tenant, query, true);
        let sql = numbered(&format!(
            "SELECT sequence, version, last_updated, method, body, resource_type, id FROM versions
             WHERE {filter} ORDER BY sequence DESC LIMIT {}",
            query.count
        ));
        blocking(|| {
            self.with_reader(|c| {
                let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
                let rows = stmt
                    .query_map(params_from_iter(to_sql(&params)), |row| {
                        let rt: String = row.get(5)?;
                        let id: String = row.get(6)?;
                        row_version(&rt, &id, row)
                    })
                    .map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
        })
    }

    async fn history_total(&self, tenant: &str, query: &HistoryQuery) -> Result<u64> {
        let (filter, params) = common::history_filter(tenant, query, false);
        let sql = numbered(&format!("SELECT COUNT(*) FROM versions WHERE {filter}"));
        blocking(|| {
            self.with_reader(|c| {
                let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
                let n: i64 = stmt.query_row(params_from_iter(to_sql(&params)), |r| r.get(0)).map_err(db_err)?;
                Ok(n.max(0) as u64)
            })
        })
    }

    async fn begin(&self, tenant: &str) -> Result<Box<dyn Transaction>> {
        let conn = self.writer.clone().lock_owned().await;
        blocking(|| conn.execute_batch("BEGIN IMMEDIATE")).map_err(db_err)?;
        Ok(Box::new(SqliteTransaction {
            conn,
            keys: self.keys.clone(),
            tenant: tenant.to_owned(),
            open: true,
            text: PendingText::default(),
        }))
    }

    async fn search(&self, tenant: &str, query: &SearchQuery<'_>) -> Result<SearchPage> {
        search::run(&Readers(self), tenant, query).await
    }

    async fn scan(&self, after: i64, limit: usize) -> Result<Vec<Stored>> {
        search::scan(&Readers(self), after, limit).await
    }

    async fn reindex(&self, batch: Vec<Reindexed>) -> Result<()> {
        let mut conn = self.writer.clone().lock_owned().await;
        let keys = self.keys.clone();
        blocking(move || {
            let tx = conn.transaction().map_err(db_err)?;
            let mut text = PendingText::default();
            for r in batch {
                let current: Option<i64> = tx
                    .prepare_cached("SELECT version FROM resources WHERE rid = ?1 AND deleted = FALSE")
                    .and_then(|mut s| s.query_row([r.rid], |row| row.get(0)).optional())
                    .map_err(db_err)?;
                if current != Some(r.version) {
                    continue;
                }
                clear_index(&tx, r.rid)?;
                insert_index(&tx, &keys, &r.tenant, &r.resource_type, r.rid, &r.index)?;
                text.add(r.rid, true, r.text);
            }
            text.flush(&tx)?;
            tx.commit().map_err(db_err)
        })
    }

    async fn register(&self, registry: &fhir::search::Registry) -> Result<()> {
        let conn = self.writer.clone().lock_owned().await;
        blocking(|| register_sync(&conn, &self.keys, registry))
    }

    async fn setting(&self, name: &str) -> Result<Option<String>> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT value FROM settings WHERE name = ?1")
                .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
                .map_err(db_err)
        })
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        let conn = self.writer.clone().lock_owned().await;
        blocking(|| {
            conn.prepare_cached(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute([name, value]))
            .map(|_| ())
            .map_err(db_err)
        })
    }

    async fn create_account(&self, tenant: &str, account: &Account) -> Result<Account> {
        let conn = self.writer.clone().lock_owned().await;
        blocking(|| Self::create_account_sync(&conn, tenant, account))
    }

    async fn account(&self, tenant: &str, id: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {} FROM accounts WHERE tenant = ?1 AND id = ?2", account::ACCOUNT_COLUMNS);
        self.with_reader(|c| Ok(query_accounts(c, &sql, &[&tenant, &id])?.pop()))
    }

    async fn account_by_email(&self, tenant: &str, email: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {} FROM accounts WHERE tenant = ?1 AND email = ?2", account::ACCOUNT_COLUMNS);
        self.with_reader(|c| Ok(query_accounts(c, &sql, &[&tenant, &email])?.pop()))
    }

    async fn update_account(&self, tenant: &str, account: &Account) -> Result<Account> {
        let conn = self.writer.clone().lock_owned().await;
        blocking(|| Self::update_account_sync(&conn, tenant, account))
    }

    async fn accounts(&self, tenant: &str, after_email: Option<&str>, limit: usize) -> Result<Vec<Account>> {
        let sql = format!(
            "SELECT {} FROM accounts WHERE tenant = ?1 AND email > ?2 ORDER BY email LIMIT ?3",
            account::ACCOUNT_COLUMNS
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(|c| query_accounts(c, &sql, &[&tenant, &after_email.unwrap_or(""), &limit]))
    }

    async fn create_session(&self, tenant: &str, s: &Session) -> Result<()> {
        let (created, last_seen, expires) =
            (s.created.timestamp_millis(), s.last_seen.timestamp_millis(), s.expires.timestamp_millis());
        let inserted = self
            .write(|c| {
                let values = params![
                    tenant,
                    s.id,
                    s.token_hash,
                    s.account_id,
                    s.stage.as_str(),
                    created,
                    last_seen,
                    expires,
                    s.user_agent,
                    s.address
                ];
                execute(c, session::INSERT_SESSION, values)
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::Exists("a session with this id or token".into()));
        }
        Ok(())
    }

    async fn session_by_token(&self, tenant: &str, token_hash: &str) -> Result<Option<Session>> {
        self.with_reader(|c| {
            Ok(query_with(c, session::SESSION_BY_TOKEN, params![tenant, token_hash], |r| session::session_from(r))?
                .pop())
        })
    }

    async fn touch_session(
        &self,
        tenant: &str,
        id: &str,
        last_seen: DateTime<Utc>,
        stage: Option<SessionStage>,
    ) -> Result<bool> {
        let (last_seen, stage) = (last_seen.timestamp_millis(), stage.map(SessionStage::as_str));
        let touched = self.write(|c| execute(c, session::TOUCH_SESSION, params![tenant, id, last_seen, stage])).await?;
        Ok(touched > 0)
    }

    async fn revoke_session(&self, tenant: &str, account_id: &str, id: &str) -> Result<bool> {
        let now = common::now_millis();
        let revoked = self.write(|c| execute(c, session::REVOKE_SESSION, params![tenant, account_id, id, now])).await?;
        Ok(revoked > 0)
    }

    async fn revoke_sessions(&self, tenant: &str, account_id: &str, except: Option<&str>) -> Result<u64> {
        let now = common::now_millis();
        let revoked =
            self.write(|c| execute(c, session::REVOKE_SESSIONS, params![tenant, account_id, except, now])).await?;
        Ok(revoked as u64)
    }

    async fn sessions(&self, tenant: &str, account_id: &str, now: DateTime<Utc>) -> Result<Vec<Session>> {
        let values = params![tenant, account_id, now.timestamp_millis()];
        blocking(|| self.with_reader(|c| query_with(c, session::SESSIONS_OF, values, |r| session::session_from(r))))
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = before.timestamp_millis();
        Ok(self.write(|c| execute(c, session::PURGE_SESSIONS, params![before])).await? as u64)
    }

    async fn second_factor(&self, tenant: &str, account_id: &str) -> Result<Option<SecondFactor>> {
        self.with_reader(|c| {
            Ok(query_with(c, session::FACTOR_OF, params![tenant, account_id], |r| session::factor_from(r))?.pop())
        })
    }

    async fn put_second_factor(&self, tenant: &str, f: &SecondFactor) -> Result<SecondFactor> {
        let codes = session::codes_to_text(&f.backup_codes);
        // The last value is the time of the write for a replacement, the version read for an
        // update.
        let (sql, last) = match f.version {
            0 => (session::REPLACE_FACTOR, common::now_millis()),
            v => (session::UPDATE_FACTOR, v),
        };
        let (version, created) = self
            .write(|c| {
                let values = params![tenant, f.account_id, f.totp_secret, f.confirmed, f.last_step, codes, last];
                let read = |r: &rusqlite::Row<'_>| Ok((session::Row::int(r, 0)?, session::Row::int(r, 1)?));
                if let Some(written) = query_with(c, sql, values, read)?.pop() {
                    return Ok(written);
                }
                let stored =
                    query_with(c, session::FACTOR_VERSION, params![tenant, f.account_id], |r| session::Row::int(r, 0))?;
                Err(session::factor_not_updated(f, stored.first().copied()))
            })
            .await?;
        Ok(SecondFactor { version, created: common::from_millis(created), ..f.clone() })
    }

    async fn delete_second_factor(&self, tenant: &str, account_id: &str) -> Result<bool> {
        Ok(self.write(|c| execute(c, session::DELETE_FACTOR, params![tenant, account_id])).await? > 0)
    }

    async fn count_failure(
        &self,
        tenant: &str,
        key: &str,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
    ) -> Result<Failures> {
        let (now, window_start) = (now.timestamp_millis(), window_start.timestamp_millis());
        let counted = self
            .write(|c| {
                query_with(c, session::COUNT_FAILURE, params![tenant, key, now, window_start], |r| {
                    session::failures_from(r)
                })
            })
            .await?;
        counted.into_iter().next().ok_or_else(|| StoreError::Database("counting a failure returned no row".into()))
    }

    async fn failures(&self, tenant: &str, key: &str) -> Result<Option<Failures>> {
        self.with_reader(|c| {
            Ok(query_with(c, session::FAILURES, params![tenant, key], |r| session::failures_from(r))?.pop())
        })
    }

    async fn clear_failures(&self, tenant: &str, key: &str) -> Result<()> {
        self.write(|c| execute(c, session::CLEAR_FAILURES, params![tenant, key])).await.map(|_| ())
    }

    async fn record_auth_event(&self, tenant: &str, e: &AuthEvent) -> Result<()> {
        let (at, detail) = (e.at.timestamp_millis(), e.detail.to_string());
        let inserted = self
            .write(|c| {
                let values = params![tenant, e.id, at, e.kind, e.account_id, e.address, detail];
                execute(c, session::INSERT_EVENT, values)
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::Exists(format!("auth event {}", e.id)));
        }
        Ok(())
    }

    async fn auth_events(&self, tenant: &str, account_id: Option<&str>, limit: usize) -> Result<Vec<AuthEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = |r: &rusqlite::Row<'_>| session::event_from(r);
        blocking(|| {
            self.with_reader(|c| match account_id {
                Some(account) => query_with(c, session::EVENTS_OF, params![tenant, account, limit], read),
                None => query_with(c, session::EVENTS, params![tenant, limit], read),
            })
        })
    }
}

impl SqliteStore {
    /// Runs a statement on the writer connection, outside any transaction (it commits alone).
    async fn write<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.writer.clone().lock_owned().await;
        blocking(|| work(&conn))
    }
}

/// Runs a statement of [`session`] (written with `$n`).
fn execute(conn: &Connection, sql: &str, values: &[&dyn rusqlite::ToSql]) -> Result<usize> {
    conn.prepare_cached(&numbered(sql)).and_then(|mut s| s.execute(values)).map_err(db_err)
}

/// The rows of a statement of [`session`] (written with `$n`), each read by `read`.
fn query_with<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn rusqlite::ToSql],
    read: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&numbered(sql)).map_err(db_err)?;
    let mut rows = stmt.query(values).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(read(row)?);
    }
    Ok(out)
}

impl session::Row for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        self.get(i).map_err(db_err)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.get(i).map_err(db_err)
    }

    fn int(&self, i: usize) -> Result<i64> {
        self.get(i).map_err(db_err)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.get(i).map_err(db_err)
    }

    fn flag(&self, i: usize) -> Result<bool> {
        self.get(i).map_err(db_err)
    }
}

fn account_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Account, String, String)> {
    let account = Account {
        id: row.get(0)?,
        email: row.get(1)?,
        email_verified: row.get(2)?,
        password_hash: row.get(3)?,
        roles: Vec::new(),
        fhir_user: row.get(5)?,
        status: AccountStatus::Active,
        version: row.get(7)?,
        created: common::from_millis(row.get(8)?),
        updated: common::from_millis(row.get(9)?),
    };
    Ok((account, row.get(4)?, row.get(6)?))
}

/// The account with its roles and status parsed.
fn account_parsed((mut account, roles, status): (Account, String, String)) -> Result<Account> {
    account.roles = account::roles_from_text(&roles)?;
    account.status = account::status_from_text(&status)?;
    Ok(account)
}

fn query_accounts(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<Account>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt.query_map(params, account_row).map_err(db_err)?;
    rows.map(|r| r.map_err(db_err).and_then(account_parsed)).collect()
}

/// Whether a unique key of `accounts` other than the row's own would be violated.
fn email_taken(conn: &Connection, tenant: &str, email: &str, except_id: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM accounts WHERE tenant = ?1 AND email = ?2 AND id <> ?3")
        .and_then(|mut s| s.exists(params![tenant, email, except_id]))
        .map_err(db_err)
}

/// Runs an insert or update of an account whose `?1…?9` are the tenant, the columns of
/// [`account::ACCOUNT_COLUMNS`] up to `status`, and the time of the write.
fn write_account(
    stmt: &mut rusqlite::CachedStatement<'_>,
    tenant: &str,
    a: &Account,
    now: i64,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        tenant,
        a.id,
        a.email,
        a.email_verified,
        a.password_hash,
        account::roles_to_text(&a.roles),
        a.fhir_user,
        a.status.as_str(),
        now
    ])
}

impl SqliteStore {
    fn create_account_sync(conn: &Connection, tenant: &str, a: &Account) -> Result<Account> {
        let now = common::now_millis();
        let inserted = conn
            .prepare_cached(&format!(
                "INSERT INTO accounts (tenant, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9) ON CONFLICT DO NOTHING",
                account::ACCOUNT_COLUMNS
            ))
            .and_then(|mut s| write_account(&mut s, tenant, a, now))
            .map_err(db_err)?;
        if inserted == 0 {
            return Err(StoreError::Exists("an account with this id or email".into()));
        }
        Ok(Account { version: 1, created: common::from_millis(now), updated: common::from_millis(now), ..a.clone() })
    }

    fn update_account_sync(conn: &Connection, tenant: &str, a: &Account) -> Result<Account> {
        let current: Option<(i64, i64)> = conn
            .prepare_cached("SELECT version, created FROM accounts WHERE tenant = ?1 AND id = ?2")
            .and_then(|mut s| s.query_row(params![tenant, a.id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(db_err)?;
        let Some((version, created)) = current else {
            return Err(StoreError::NotFound(format!("account {}", a.id)));
        };
        if version != a.version {
            return Err(StoreError::VersionConflict {
                resource_type: "account".into(),
                id: a.id.clone(),
                expected: a.version,
                actual: version,
            });
        }
        if email_taken(conn, tenant, &a.email, &a.id)? {
            return Err(StoreError::Exists("an account with this email".into()));
        }
        let now = common::now_millis();
        conn.prepare_cached(
            "UPDATE accounts SET email = ?3, email_verified = ?4, password_hash = ?5, roles = ?6, fhir_user = ?7, \
             status = ?8, version = version + 1, updated = ?9 WHERE tenant = ?1 AND id = ?2",
        )
        .and_then(|mut s| write_account(&mut s, tenant, a, now))
        .map_err(db_err)?;
        Ok(Account {
            version: version + 1,
            created: common::from_millis(created),
            updated: common::from_millis(now),
            ..a.clone()
        })
    }
}

pub struct SqliteTransaction {
    conn: OwnedMutexGuard<Connection>,
    keys: Arc<Keys>,
    tenant: String,
    open: bool,
    text: PendingText,
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an abandoned transaction may survive; ROLLBACK cannot fail in a way
            // that leaves its writes behind.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl SqliteTransaction {
    fn write_sync(&mut self, new: NewVersion) -> Result<ResourceVersion> {
        let tenant = self.tenant.as_str();
        let conn = &*self.conn;
        let rt = new.resource_type.as_str();
        let id = new.id.as_str();
        let current = read_current(conn, tenant, rt, id)?;
        let current_version = current.as_ref().map_or(0, |c| c.version);
        if let Some(expected) = new.expected_version {
            let live = current.as_ref().is_some_and(|c| !c.is_deleted());
            let ok = if expected == 0 { !live } else { expected == current_version && live };
            if !ok {
                return Err(StoreError::VersionConflict {
                    resource_type: rt.to_owned(),
                    id: id.to_owned(),
                    expected,
                    actual: current_version,
                });
            }
        }
        if new.body.is_none() {
            match &current {
                Some(c) if c.is_deleted() => return Ok(c.clone()),
                None => return Err(StoreError::Database(format!("{rt}/{id} does not exist to be deleted"))),
                Some(_) => {}
            }
        }
        let version = current_version + 1;
        let now = common::now_millis();
        let body = new.body.map(|b| common::stamp(b, version, now)).transpose()?;
        let method = common::method_name(new.method);
        let sequence: i64 = conn
            .prepare_cached(
                "INSERT INTO versions (tenant, resource_type, id, version, last_updated, method, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING sequence",
            )
            .and_then(|mut s| s.query_row(params![tenant, rt, id, version, now, method, body], |r| r.get(0)))
            .map_err(db_err)?;
        let rid: i64 = conn
            .prepare_cached(
                "INSERT INTO resources (tenant, resource_type, id, version, deleted, last_updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, resource_type, id)
                 DO UPDATE SET version = excluded.version, deleted = excluded.deleted, last_updated = excluded.last_updated
                 RETURNING rid",
            )
            .and_then(|mut s| s.query_row(params![tenant, rt, id, version, body.is_none(), now], |r| r.get(0)))
            .map_err(db_err)?;
        if current.is_some() {
            clear_index(conn, rid)?;
        }
        if body.is_some() {
            insert_index(conn, &self.keys, tenant, rt, rid, &new.index)?;
        }
        self.text.add(rid, current.is_some(), if body.is_some() { new.text } else { None });
        Ok(ResourceVersion {
            resource_type: new.resource_type,
            id: new.id,
            version,
            last_updated: common::from_millis(now),
            method: new.method,
            body,
            sequence,
        })
    }
}

#[async_trait]
impl Transaction for SqliteTransaction {
    async fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>> {
        read_current(&self.conn, &self.tenant, resource_type, id)
    }

    /// The transaction holds the database's one write lock already.
    async fn read_shared(&mut self, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>> {
        read_current(&self.conn, &self.tenant, resource_type, id)
    }

    async fn find(&mut self, resource_type: &str, filters: &[Filter], limit: usize) -> Result<Vec<String>> {
        blocking(|| self.text.flush(&self.conn))?;
        let tenant = self.tenant.clone();
        let runner = InTransaction(std::sync::Mutex::new(&mut *self.conn), &self.keys);
        search::find(&runner, &tenant, resource_type, filters, limit).await
    }

    async fn search(&mut self, query: &SearchQuery<'_>) -> Result<SearchPage> {
        blocking(|| self.text.flush(&self.conn))?;
        let tenant = self.tenant.clone();
        let runner = InTransaction(std::sync::Mutex::new(&mut *self.conn), &self.keys);
        search::run(&runner, &tenant, query).await
    }

    async fn write(&mut self, version: NewVersion) -> Result<ResourceVersion> {
        blocking(|| self.write_sync(version))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        blocking(|| {
            let conn = &*self.conn;
            self.text.flush(conn)?;
            conn.execute_batch("COMMIT").map_err(db_err)
        })?;
        self.open = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hot statements must keep their prepared plan between runs with new keys.
    #[test]
    fn point_reads_are_not_re_prepared() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("opens");
        let conn = store.readers[0].lock().expect("reader");
        for i in 0..5 {
            read_current(&conn, "t", "Patient", &format!("p{i}")).expect("reads");
        }
        let stmt = conn.prepare_cached(SELECT_CURRENT).expect("cached");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
