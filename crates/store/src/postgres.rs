//! The PostgreSQL backend (tokio-postgres with a deadpool connection pool).
//!
//! Transactions run at READ COMMITTED; `Transaction::read` locks the current-state row
//! (`FOR UPDATE`), so of two writers to one resource the second waits and then sees the first's
//! version. Races that only the database can settle (two creates of one new id, serialization
//! failures, deadlocks) surface as [`StoreError::Retry`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Config, ManagerConfig, Object, Pool, PoolConfig, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use fhir::search::query::Filter;
use fhir::search::{FullText, IndexEntry, IndexValue};

use crate::account;
use crate::common::{self, Migration, Param};
use crate::keys::Keys;
use crate::search::{self, Dialect, KeyType, KeyValue, Runner, Sql};
use crate::session::{self, AuthEvent, Failures, SecondFactor, Session, SessionStage};
use crate::{
    Account, HistoryQuery, NewVersion, Reindexed, ResourceVersion, Result, SearchPage, SearchQuery, Store, StoreError,
    Stored, Transaction,
};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "resources", sql: include_str!("../migrations/postgres/0001_resources.sql") },
    Migration { version: 2, name: "search", sql: include_str!("../migrations/postgres/0002_search.sql") },
    Migration { version: 3, name: "live", sql: include_str!("../migrations/postgres/0003_live.sql") },
    Migration { version: 4, name: "covering", sql: include_str!("../migrations/both/0004_covering.sql") },
    Migration { version: 5, name: "accounts", sql: include_str!("../migrations/both/0005_accounts.sql") },
    Migration { version: 6, name: "sessions", sql: include_str!("../migrations/both/0006_sessions.sql") },
];

/// Any fixed number: instances starting together take turns at migrating.
const MIGRATION_LOCK: i64 = 0x1a50_0001;

pub struct PostgresStore {
    pool: Pool,
    keys: Arc<Keys>,
    growth: Arc<Growth>,
}

/// Versions written since the store opened, to refresh the planner's statistics while a
/// database grows from empty. Without them PostgreSQL cannot tell its indexes apart on a young
/// table and may read a resource by id through `(tenant, resource_type, …)` with a filter,
/// scanning every resource of the type (seen: imports at a quarter of their speed until
/// autovacuum's first ANALYZE, a minute or more in). Autovacuum keeps them fresh afterwards.
#[derive(Default)]
struct Growth {
    written: std::sync::atomic::AtomicU64,
}

impl Growth {
    /// Counts `n` writes; true when the count crossed one of 256, 1,024, 4,096… (up to a few
    /// million), when an ANALYZE is worth its cost.
    fn add(&self, n: u64) -> bool {
        let before = self.written.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        let after = before + n;
        let mut threshold = 256u64;
        while threshold <= 4_194_304 {
            if before < threshold && after >= threshold {
                return true;
            }
            threshold *= 4;
        }
        false
    }
}

fn db_err(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(code)
            if *code == SqlState::UNIQUE_VIOLATION
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreError::Retry
        }
        _ => StoreError::Database(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        }),
    }
}

fn pool_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("no database connection: {e}"))
}

impl PostgresStore {
    pub async fn open(url: &str) -> Result<Self> {
        let mut cfg = Config::new();
        cfg.url = Some(url.to_owned());
        // Notices ("word is too long to be indexed", from full text of long tokens) would be
        // logged one line each by the driver; warnings and errors still arrive. Options the
        // operator put in the URL are theirs to keep.
        if !url.contains("options=") {
            cfg.options = Some("-c client_min_messages=warning".to_owned());
        }
        cfg.manager = Some(ManagerConfig { recycling_method: RecyclingMethod::Fast });
        cfg.pool = Some(PoolConfig::new(32));
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
        let store = PostgresStore { pool, keys: Arc::new(Keys::default()), growth: Arc::new(Growth::default()) };
        store.migrate().await?;
        store.register(fhir::search::standard()).await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn migrate(&self) -> Result<()> {
        let client = self.client().await?;
        let mig = |e: tokio_postgres::Error| StoreError::Migration(db_err(e).to_string());
        client.query("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(mig)?;
        let result = async {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                        version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                )
                .await
                .map_err(mig)?;
            for m in MIGRATIONS {
                let row = client
                    .query_opt("SELECT checksum FROM schema_migrations WHERE version = $1", &[&m.version])
                    .await
                    .map_err(mig)?;
                match row.map(|r| r.get::<_, String>(0)) {
                    Some(sum) if sum == m.checksum() => continue,
                    Some(_) => {
                        return Err(StoreError::Migration(format!(
                            "migration {} ({}) was changed after it was applied",
                            m.version, m.name
                        )));
                    }
                    None => {}
                }
                client.batch_execute("BEGIN").await.map_err(mig)?;
                let applied = async {
                    client.batch_execute(m.sql).await?;
                    client
                        .execute(
                            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                            &[&m.version, &m.name, &m.checksum(), &common::now_millis()],
                        )
                        .await?;
                    client.batch_execute("COMMIT").await
                }
                .await;
                if let Err(e) = applied {
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(StoreError::Migration(format!("{}: {}", m.name, db_err(e))));
                }
            }
            Ok(())
        }
        .await;
        let _ = client.query("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
        result
    }
}

fn latest_migration() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

const SELECT_CURRENT: &str = "SELECT v.sequence, v.version, v.last_updated, v.method, v.body
    FROM resources r JOIN versions v
      ON v.tenant = r.tenant AND v.resource_type = r.resource_type AND v.id = r.id AND v.version = r.version
    WHERE r.tenant = $1 AND r.resource_type = $2 AND r.id = $3";

fn row_version(resource_type: &str, id: &str, row: &tokio_postgres::Row) -> Result<ResourceVersion> {
    let method: String = row.try_get(3).map_err(db_err)?;
    Ok(ResourceVersion {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        sequence: row.try_get(0).map_err(db_err)?,
        version: row.try_get(1).map_err(db_err)?,
        last_updated: common::from_millis(row.try_get(2).map_err(db_err)?),
        method: common::method_from(&method),
        body: row.try_get(4).map_err(db_err)?,
    })
}

async fn read_current(
    client: &Object,
    tenant: &str,
    rt: &str,
    id: &str,
    for_update: bool,
) -> Result<Option<ResourceVersion>> {
    let sql = if for_update { format!("{SELECT_CURRENT} FOR UPDATE OF r") } else { SELECT_CURRENT.to_owned() };
    let stmt = client.prepare_cached(&sql).await.map_err(db_err)?;
    let row = client.query_opt(&stmt, &[&tenant, &rt, &id]).await.map_err(db_err)?;
    row.map(|r| row_version(rt, id, &r)).transpose()
}

fn boxed(params: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(i) => Box::new(*i),
                Param::Real(f) => Box::new(*f),
            }
        })
        .collect()
}

fn refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

async fn query_rows(client: &Object, sql: &Sql, types: &[KeyType]) -> Result<Vec<Vec<KeyValue>>> {
    // The text only: parameter values may be PHI, and the statement shape is what a slow
    // search needs looked at (`IASO_LOG=iaso::sql=trace`).
    tracing::trace!(target: "iaso::sql", sql = %sql.text);
    let stmt = client.prepare_cached(&sql.text).await.map_err(db_err)?;
    let values = boxed(&sql.params);
    let rows = client.query(&stmt, &refs(&values)).await.map_err(db_err)?;
    rows.iter()
        .map(|row| {
            types
                .iter()
                .enumerate()
                .map(|(i, ty)| {
                    Ok(match ty {
                        KeyType::Text => {
                            row.try_get::<_, Option<String>>(i).map_err(db_err)?.map_or(KeyValue::Null, KeyValue::Text)
                        }
                        KeyType::Int => {
                            row.try_get::<_, Option<i64>>(i).map_err(db_err)?.map_or(KeyValue::Null, KeyValue::Int)
                        }
                        KeyType::Real => {
                            row.try_get::<_, Option<f64>>(i).map_err(db_err)?.map_or(KeyValue::Null, KeyValue::Real)
                        }
                    })
                })
                .collect()
        })
        .collect()
}

/// Searches on a pooled connection.
struct Pooled<'a>(&'a PostgresStore);

#[async_trait]
impl Runner for Pooled<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn keys(&self) -> &Keys {
        &self.0.keys
    }

    async fn rows(&self, sql: &Sql, types: &[KeyType]) -> Result<Vec<Vec<KeyValue>>> {
        let client = self.0.client().await?;
        query_rows(&client, sql, types).await
    }
}

/// Searches inside a transaction.
struct InTransaction<'a>(&'a Object, &'a Keys);

#[async_trait]
impl Runner for InTransaction<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn keys(&self) -> &Keys {
        self.1
    }

    async fn rows(&self, sql: &Sql, types: &[KeyType]) -> Result<Vec<Vec<KeyValue>>> {
        query_rows(self.0, sql, types).await
    }
}

/// Index rows waiting to be written: a transaction collects them and writes each table's in one
/// statement (arrays, `UNNEST`) before anything reads the index and at commit, instead of one
/// round trip per row.
#[derive(Default)]
struct PendingIndex {
    clear: Vec<i64>,
    items: Vec<Pending>,
}

/// The index values of one resource, waiting to be written.
struct Pending {
    tenant: String,
    resource_type: String,
    rid: i64,
    index: Vec<IndexEntry>,
    text: Option<FullText>,
}

impl PendingIndex {
    fn is_empty(&self) -> bool {
        self.clear.is_empty() && self.items.is_empty()
    }

    async fn flush(&mut self, client: &Object, keys: &Keys) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        if !self.clear.is_empty() {
            let mut sql = String::from("WITH ");
            let parts: Vec<String> = search::INDEX_TABLES
                .iter()
                .chain(std::iter::once(&"idx_text"))
                .enumerate()
                .map(|(i, t)| format!("d{i} AS (DELETE FROM {t} WHERE rid = ANY($1))"))
                .collect();
            sql.push_str(&parts.join(", "));
            sql.push_str(" SELECT 1");
            let stmt = client.prepare_cached(&sql).await.map_err(db_err)?;
            client.execute(&stmt, &[&self.clear]).await.map_err(db_err)?;
        }
        let items = std::mem::take(&mut self.items);
        self.clear.clear();
        write_rows(client, keys, &items).await
    }
}

/// Per-row arrays of one index table, in column order.
#[derive(Default)]
struct Columns {
    tenant: Vec<String>,
    pid: Vec<i64>,
    rid: Vec<i64>,
}

impl Columns {
    fn push(&mut self, tenant: &str, pid: i64, rid: i64) {
        self.tenant.push(tenant.to_owned());
        self.pid.push(pid);
        self.rid.push(rid);
    }
}

async fn write_rows(client: &Object, keys: &Keys, items: &[Pending]) -> Result<()> {
    type Texts = Vec<Option<String>>;
    type Reals = Vec<Option<f64>>;
    let (mut sc, mut s_norm, mut s_exact) = (Columns::default(), Vec::<String>::new(), Vec::<String>::new());
    // Token and reference parts are '' when absent, as on SQLite.
    type Strings = Vec<String>;
    let (mut tc, mut t_sys, mut t_code, mut t_text) =
        (Columns::default(), Strings::new(), Strings::new(), Strings::new());
    let (mut rc, mut r_tt, mut r_ti, mut r_v, mut r_u) =
        (Columns::default(), Strings::new(), Strings::new(), Strings::new(), Strings::new());
    let (mut dc, mut d_low, mut d_high) = (Columns::default(), Vec::<i64>::new(), Vec::<i64>::new());
    let (mut nc, mut n_v) = (Columns::default(), Vec::<f64>::new());
    let (mut qc, mut q_low, mut q_high) = (Columns::default(), Vec::<f64>::new(), Vec::<f64>::new());
    let (mut q_sys, mut q_code, mut q_unit, mut q_cl, mut q_ch, mut q_key) =
        (Texts::new(), Texts::new(), Texts::new(), Reals::new(), Reals::new(), Texts::new());
    let (mut uc, mut u_uri) = (Columns::default(), Vec::<String>::new());
    let mut cc = Columns::default();
    let mut c_text: [Texts; 9] = Default::default();
    let mut c_real: [Reals; 12] = Default::default();
    let (mut x_tenant, mut x_n, mut x_c, mut x_rid) =
        (Vec::<String>::new(), Vec::<String>::new(), Vec::<String>::new(), Vec::<i64>::new());
    for item in items {
        let (tenant, rt, rid) = (item.tenant.as_str(), item.resource_type.as_str(), item.rid);
        for e in &item.index {
            let p = keys.pid(rt, &e.param).ok_or_else(|| {
                StoreError::Query(format!("the search parameter {rt}.{} is not registered with the store", e.param))
            })?;
            match &e.value {
                IndexValue::String { normalized, exact } => {
                    sc.push(tenant, p, rid);
                    s_norm.push(normalized.clone());
                    s_exact.push(exact.clone());
                }
                IndexValue::Token { system, code, text } => {
                    tc.push(tenant, p, rid);
                    t_sys.push(system.clone().unwrap_or_default());
                    t_code.push(code.clone().unwrap_or_default());
                    t_text.push(text.clone().unwrap_or_default());
                }
                IndexValue::Reference { target_type, target_id, version, url } => {
                    rc.push(tenant, p, rid);
                    r_tt.push(target_type.clone().unwrap_or_default());
                    r_ti.push(target_id.clone().unwrap_or_default());
                    r_v.push(version.clone().unwrap_or_default());
                    r_u.push(url.clone().unwrap_or_default());
                }
                IndexValue::Date { low, high } => {
                    dc.push(tenant, p, rid);
                    d_low.push(*low);
                    d_high.push(*high);
                }
                IndexValue::Number { value } => {
                    nc.push(tenant, p, rid);
                    n_v.push(*value);
                }
                IndexValue::Quantity { low, high, system, code, unit, canonical } => {
                    qc.push(tenant, p, rid);
                    q_low.push(*low);
                    q_high.push(*high);
                    q_sys.push(system.clone());
                    q_code.push(code.clone());
                    q_unit.push(unit.clone());
                    q_cl.push(canonical.as_ref().map(|c| c.0));
                    q_ch.push(canonical.as_ref().map(|c| c.1));
                    q_key.push(canonical.as_ref().map(|c| c.2.clone()));
                }
                IndexValue::Uri { uri } => {
                    uc.push(tenant, p, rid);
                    u_uri.push(uri.clone());
                }
                IndexValue::Composite { parts } => {
                    cc.push(tenant, p, rid);
                    for (k, part) in search::composite_parts(parts).into_iter().enumerate() {
                        c_text[k * 3].push(part.system);
                        c_text[k * 3 + 1].push(part.code);
                        c_text[k * 3 + 2].push(part.key);
                        c_real[k * 4].push(part.low);
                        c_real[k * 4 + 1].push(part.high);
                        c_real[k * 4 + 2].push(part.canonical_low);
                        c_real[k * 4 + 3].push(part.canonical_high);
                    }
                }
            }
        }
        if let Some(t) = &item.text
            && !(t.narrative.is_empty() && t.content.is_empty())
        {
            x_tenant.push(tenant.to_owned());
            x_n.push(t.narrative.clone());
            x_c.push(t.content.clone());
            x_rid.push(rid);
        }
    }
    async fn run(client: &Object, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.execute(&stmt, params).await.map_err(db_err)?;
        Ok(())
    }
    const HEAD: &str = "$1::text[], $2::int8[], $3::int8[]";
    if !sc.rid.is_empty() {
        run(client, &format!("INSERT INTO idx_string (tenant, pid, rid, normalized, exact) SELECT * FROM UNNEST({HEAD}, $4::text[], $5::text[])"),
            &[&sc.tenant, &sc.pid, &sc.rid, &s_norm, &s_exact]).await?;
    }
    if !tc.rid.is_empty() {
        run(client, &format!("INSERT INTO idx_token (tenant, pid, rid, system, code, text) SELECT * FROM UNNEST({HEAD}, $4::text[], $5::text[], $6::text[])"),
            &[&tc.tenant, &tc.pid, &tc.rid, &t_sys, &t_code, &t_text]).await?;
    }
    if !rc.rid.is_empty() {
        run(client, &format!("INSERT INTO idx_reference (tenant, pid, rid, target_type, target_id, version, url) SELECT * FROM UNNEST({HEAD}, $4::text[], $5::text[], $6::text[], $7::text[])"),
            &[&rc.tenant, &rc.pid, &rc.rid, &r_tt, &r_ti, &r_v, &r_u]).await?;
    }
    if !dc.rid.is_empty() {
        run(client, &format!("INSERT INTO idx_date (tenant, pid, rid, low, high) SELECT * FROM UNNEST({HEAD}, $4::int8[], $5::int8[])"),
            &[&dc.tenant, &dc.pid, &dc.rid, &d_low, &d_high]).await?;
    }
    if !nc.rid.is_empty() {
        run(
            client,
            &format!("INSERT INTO idx_number (tenant, pid, rid, value) SELECT * FROM UNNEST({HEAD}, $4::float8[])"),
            &[&nc.tenant, &nc.pid, &nc.rid, &n_v],
        )
        .await?;
    }
    if !qc.rid.is_empty() {
        run(client, &format!("INSERT INTO idx_quantity (tenant, pid, rid, low, high, system, code, unit, canonical_low, canonical_high, canonical_key) SELECT * FROM UNNEST({HEAD}, $4::float8[], $5::float8[], $6::text[], $7::text[], $8::text[], $9::float8[], $10::float8[], $11::text[])"),
            &[&qc.tenant, &qc.pid, &qc.rid, &q_low, &q_high, &q_sys, &q_code, &q_unit, &q_cl, &q_ch, &q_key]).await?;
    }
    if !uc.rid.is_empty() {
        run(
            client,
            &format!("INSERT INTO idx_uri (tenant, pid, rid, uri) SELECT * FROM UNNEST({HEAD}, $4::text[])"),
            &[&uc.tenant, &uc.pid, &uc.rid, &u_uri],
        )
        .await?;
    }
    if !cc.rid.is_empty() {
        let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = &c_text;
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11] = &c_real;
        run(client, &format!("INSERT INTO idx_composite (tenant, pid, rid, \
            p1_system, p1_code, p1_key, p2_system, p2_code, p2_key, p3_system, p3_code, p3_key, \
            p1_low, p1_high, p1_canonical_low, p1_canonical_high, p2_low, p2_high, p2_canonical_low, p2_canonical_high, \
            p3_low, p3_high, p3_canonical_low, p3_canonical_high) SELECT * FROM UNNEST({HEAD}, \
            $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
            $13::float8[], $14::float8[], $15::float8[], $16::float8[], $17::float8[], $18::float8[], $19::float8[], \
            $20::float8[], $21::float8[], $22::float8[], $23::float8[], $24::float8[])"),
            &[&cc.tenant, &cc.pid, &cc.rid, t0, t1, t2, t3, t4, t5, t6, t7, t8,
              f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11]).await?;
    }
    if !x_rid.is_empty() {
        run(client, "INSERT INTO idx_text (tenant, narrative, content, rid) \
            SELECT t, to_tsvector('simple', n), to_tsvector('simple', c), r FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(t, n, c, r)",
            &[&x_tenant, &x_n, &x_c, &x_rid]).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        let row =
            client.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(db_err)?;
        let version: i64 = row.try_get(0).map_err(db_err)?;
        if version == latest_migration() {
            Ok(())
        } else {
            Err(StoreError::Migration(format!("schema at version {version}, expected {}", latest_migration())))
        }
    }

    async fn read(&self, tenant: &str, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>> {
        let client = self.client().await?;
        read_current(&client, tenant, resource_type, id, false).await
    }

    async fn vread(
        &self,
        tenant: &str,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<ResourceVersion>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT sequence, version, last_updated, method, body FROM versions
                 WHERE tenant = $1 AND resource_type = $2 AND id = $3 AND version = $4",
            )
            .await
            .map_err(db_err)?;
        let row = client.query_opt(&stmt, &[&tenant, &resource_type, &id, &version]).await.map_err(db_err)?;
        row.map(|r| row_version(resource_type, id, &r)).transpose()
    }

    async fn history(&self, tenant: &str, query: &HistoryQuery) -> Result<Vec<ResourceVersion>> {
        let (filter, params) = common::history_filter(tenant, query, true);
        let sql = format!(
            "SELECT sequence, version, last_updated, method, body, resource_type, id FROM versions
             WHERE {filter} ORDER BY sequence DESC LIMIT {}",
            query.count
        );
        let client = self.client().await?;
        let stmt = client.prepare_cached(&sql).await.map_err(db_err)?;
        let values = boxed(&params);
        let rows = client.query(&stmt, &refs(&values)).await.map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let rt: String = r.try_get(5).map_err(db_err)?;
                let id: String = r.try_get(6).map_err(db_err)?;
                row_version(&rt, &id, r)
            })
            .collect()
    }

    async fn history_total(&self, tenant: &str, query: &HistoryQuery) -> Result<u64> {
        let (filter, params) = common::history_filter(tenant, query, false);
        let client = self.client().await?;
        let stmt =
            client.prepare_cached(&format!("SELECT COUNT(*) FROM versions WHERE {filter}")).await.map_err(db_err)?;
        let values = boxed(&params);
        let row = client.query_one(&stmt, &refs(&values)).await.map_err(db_err)?;
        let n: i64 = row.try_get(0).map_err(db_err)?;
        Ok(n.max(0) as u64)
    }

    async fn begin(&self, tenant: &str) -> Result<Box<dyn Transaction>> {
        let client = self.client().await?;
        client.batch_execute("BEGIN").await.map_err(db_err)?;
        Ok(Box::new(PgTransaction {
            client: Some(client),
            tenant: tenant.to_owned(),
            pending: PendingIndex::default(),
            keys: self.keys.clone(),
            growth: self.growth.clone(),
            written: 0,
        }))
    }

    async fn search(&self, tenant: &str, query: &SearchQuery<'_>) -> Result<SearchPage> {
        search::run(&Pooled(self), tenant, query).await
    }

    async fn scan(&self, after: i64, limit: usize) -> Result<Vec<Stored>> {
        search::scan(&Pooled(self), after, limit).await
    }

    async fn reindex(&self, batch: Vec<Reindexed>) -> Result<()> {
        let client = self.client().await?;
        client.batch_execute("BEGIN").await.map_err(db_err)?;
        let done = async {
            let rids: Vec<i64> = batch.iter().map(|r| r.rid).collect();
            let stmt = client
                .prepare_cached("SELECT rid, version FROM resources WHERE rid = ANY($1) AND deleted = FALSE FOR UPDATE")
                .await
                .map_err(db_err)?;
            let current: std::collections::HashMap<i64, i64> = client
                .query(&stmt, &[&rids])
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| Ok((r.try_get::<_, i64>(0).map_err(db_err)?, r.try_get::<_, i64>(1).map_err(db_err)?)))
                .collect::<Result<_>>()?;
            let mut pending = PendingIndex::default();
            for r in batch {
                if current.get(&r.rid) != Some(&r.version) {
                    continue;
                }
                pending.clear.push(r.rid);
                pending.items.push(Pending {
                    tenant: r.tenant,
                    resource_type: r.resource_type,
                    rid: r.rid,
                    index: r.index,
                    text: r.text,
                });
            }
            pending.flush(&client, &self.keys).await?;
            client.batch_execute("COMMIT").await.map_err(db_err)
        }
        .await;
        if done.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        done
    }

    async fn register(&self, registry: &fhir::search::Registry) -> Result<()> {
        let client = self.client().await?;
        let missing = self.keys.missing(registry);
        if !missing.is_empty() {
            let (rts, rest): (Vec<String>, Vec<(String, String)>) =
                missing.into_iter().map(|(rt, p, k)| (rt, (p, k))).unzip();
            let (params, kinds): (Vec<String>, Vec<String>) = rest.into_iter().unzip();
            let stmt = client
                .prepare_cached(
                    "INSERT INTO search_keys (resource_type, param, kind)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                     ON CONFLICT (resource_type, param) DO NOTHING",
                )
                .await
                .map_err(db_err)?;
            client.execute(&stmt, &[&rts, &params, &kinds]).await.map_err(db_err)?;
        }
        let stmt =
            client.prepare_cached("SELECT pid, resource_type, param, kind FROM search_keys").await.map_err(db_err)?;
        let rows = client
            .query(&stmt, &[])
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<_, i64>(0).map_err(db_err)?,
                    r.try_get::<_, String>(1).map_err(db_err)?,
                    r.try_get::<_, String>(2).map_err(db_err)?,
                    r.try_get::<_, String>(3).map_err(db_err)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.keys.load(rows);
        Ok(())
    }

    async fn setting(&self, name: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached("SELECT value FROM settings WHERE name = $1").await.map_err(db_err)?;
        let row = client.query_opt(&stmt, &[&name]).await.map_err(db_err)?;
        row.map(|r| r.try_get::<_, String>(0).map_err(db_err)).transpose()
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .await
            .map_err(db_err)?;
        client.execute(&stmt, &[&name, &value]).await.map_err(db_err)?;
        Ok(())
    }

    async fn create_account(&self, tenant: &str, a: &Account) -> Result<Account> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "INSERT INTO accounts (tenant, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9) ON CONFLICT DO NOTHING",
                account::ACCOUNT_COLUMNS
            ))
            .await
            .map_err(db_err)?;
        let now = common::now_millis();
        let (roles, status) = (account::roles_to_text(&a.roles), a.status.as_str());
        let inserted =
            client.execute(&stmt, &account_values(&tenant, a, &roles, &status, &now)).await.map_err(db_err)?;
        if inserted == 0 {
            return Err(StoreError::Exists("an account with this id or email".into()));
        }
        Ok(Account { version: 1, created: common::from_millis(now), updated: common::from_millis(now), ..a.clone() })
    }

    async fn account(&self, tenant: &str, id: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {} FROM accounts WHERE tenant = $1 AND id = $2", account::ACCOUNT_COLUMNS);
        Ok(self.query_accounts(&sql, &[&tenant, &id]).await?.pop())
    }

    async fn account_by_email(&self, tenant: &str, email: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {} FROM accounts WHERE tenant = $1 AND email = $2", account::ACCOUNT_COLUMNS);
        Ok(self.query_accounts(&sql, &[&tenant, &email]).await?.pop())
    }

    async fn update_account(&self, tenant: &str, a: &Account) -> Result<Account> {
        let client = self.client().await?;
        let taken = client
            .prepare_cached("SELECT 1 FROM accounts WHERE tenant = $1 AND email = $2 AND id <> $3")
            .await
            .map_err(db_err)?;
        if client.query_opt(&taken, &[&tenant, &a.email, &a.id]).await.map_err(db_err)?.is_some() {
            return Err(StoreError::Exists("an account with this email".into()));
        }
        // One statement: the version test and the write cannot be separated by another update.
        let stmt = client
            .prepare_cached(
                "UPDATE accounts SET email = $3, email_verified = $4, password_hash = $5, roles = $6, fhir_user = $7, \
                 status = $8, version = version + 1, updated = $9 WHERE tenant = $1 AND id = $2 AND version = $10 \
                 RETURNING version, created",
            )
            .await
            .map_err(db_err)?;
        let now = common::now_millis();
        let (roles, status) = (account::roles_to_text(&a.roles), a.status.as_str());
        let mut values = account_values(&tenant, a, &roles, &status, &now);
        values.push(&a.version);
        let row = client.query_opt(&stmt, &values).await.map_err(db_err)?;
        match row {
            Some(row) => Ok(Account {
                version: row.try_get(0).map_err(db_err)?,
                created: common::from_millis(row.try_get(1).map_err(db_err)?),
                updated: common::from_millis(now),
                ..a.clone()
            }),
            None => match self.account(tenant, &a.id).await? {
                Some(current) => Err(StoreError::VersionConflict {
                    resource_type: "account".into(),
                    id: a.id.clone(),
                    expected: a.version,
                    actual: current.version,
                }),
                None => Err(StoreError::NotFound(format!("account {}", a.id))),
            },
        }
    }

    async fn accounts(&self, tenant: &str, after_email: Option<&str>, limit: usize) -> Result<Vec<Account>> {
        let sql = format!(
            "SELECT {} FROM accounts WHERE tenant = $1 AND email > $2 ORDER BY email LIMIT $3",
            account::ACCOUNT_COLUMNS
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query_accounts(&sql, &[&tenant, &after_email.unwrap_or(""), &limit]).await
    }

    async fn create_session(&self, tenant: &str, s: &Session) -> Result<()> {
        let (created, last_seen, expires) =
            (s.created.timestamp_millis(), s.last_seen.timestamp_millis(), s.expires.timestamp_millis());
        let values: [&(dyn ToSql + Sync); 10] = [
            &tenant,
            &s.id,
            &s.token_hash,
            &s.account_id,
            &s.stage.as_str(),
            &created,
            &last_seen,
            &expires,
            &s.user_agent,
            &s.address,
        ];
        if self.execute(session::INSERT_SESSION, &values).await? == 0 {
            return Err(StoreError::Exists("a session with this id or token".into()));
        }
        Ok(())
    }

    async fn session_by_token(&self, tenant: &str, token_hash: &str) -> Result<Option<Session>> {
        Ok(self.rows(session::SESSION_BY_TOKEN, &[&tenant, &token_hash], session::session_from).await?.pop())
    }

    async fn touch_session(
        &self,
        tenant: &str,
        id: &str,
        last_seen: DateTime<Utc>,
        stage: Option<SessionStage>,
    ) -> Result<bool> {
        let (last_seen, stage) = (last_seen.timestamp_millis(), stage.map(SessionStage::as_str));
        Ok(self.execute(session::TOUCH_SESSION, &[&tenant, &id, &last_seen, &stage]).await? > 0)
    }

    async fn revoke_session(&self, tenant: &str, account_id: &str, id: &str) -> Result<bool> {
        let now = common::now_millis();
        Ok(self.execute(session::REVOKE_SESSION, &[&tenant, &account_id, &id, &now]).await? > 0)
    }

    async fn revoke_sessions(&self, tenant: &str, account_id: &str, except: Option<&str>) -> Result<u64> {
        let now = common::now_millis();
        self.execute(session::REVOKE_SESSIONS, &[&tenant, &account_id, &except, &now]).await
    }

    async fn sessions(&self, tenant: &str, account_id: &str, now: DateTime<Utc>) -> Result<Vec<Session>> {
        let now = now.timestamp_millis();
        self.rows(session::SESSIONS_OF, &[&tenant, &account_id, &now], session::session_from).await
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        self.execute(session::PURGE_SESSIONS, &[&before.timestamp_millis()]).await
    }

    async fn second_factor(&self, tenant: &str, account_id: &str) -> Result<Option<SecondFactor>> {
        Ok(self.rows(session::FACTOR_OF, &[&tenant, &account_id], session::factor_from).await?.pop())
    }

    async fn put_second_factor(&self, tenant: &str, f: &SecondFactor) -> Result<SecondFactor> {
        let codes = session::codes_to_text(&f.backup_codes);
        // The last value is the time of the write for a replacement, the version read for an
        // update.
        let (sql, last) = match f.version {
            0 => (session::REPLACE_FACTOR, common::now_millis()),
            v => (session::UPDATE_FACTOR, v),
        };
        let values: [&(dyn ToSql + Sync); 7] =
            [&tenant, &f.account_id, &f.totp_secret, &f.confirmed, &f.last_step, &codes, &last];
        let read = |r: &tokio_postgres::Row| Ok((session::Row::int(r, 0)?, session::Row::int(r, 1)?));
        let Some((version, created)) = self.rows(sql, &values, read).await?.pop() else {
            let version = |r: &tokio_postgres::Row| session::Row::int(r, 0);
            let stored = self.rows(session::FACTOR_VERSION, &[&tenant, &f.account_id], version).await?;
            return Err(session::factor_not_updated(f, stored.first().copied()));
        };
        Ok(SecondFactor { version, created: common::from_millis(created), ..f.clone() })
    }

    async fn delete_second_factor(&self, tenant: &str, account_id: &str) -> Result<bool> {
        Ok(self.execute(session::DELETE_FACTOR, &[&tenant, &account_id]).await? > 0)
    }

    async fn count_failure(
        &self,
        tenant: &str,
        key: &str,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
    ) -> Result<Failures> {
        let (now, window_start) = (now.timestamp_millis(), window_start.timestamp_millis());
        let counted =
            self.rows(session::COUNT_FAILURE, &[&tenant, &key, &now, &window_start], session::failures_from).await?;
        counted.into_iter().next().ok_or_else(|| StoreError::Database("counting a failure returned no row".into()))
    }

    async fn failures(&self, tenant: &str, key: &str) -> Result<Option<Failures>> {
        Ok(self.rows(session::FAILURES, &[&tenant, &key], session::failures_from).await?.pop())
    }

    async fn clear_failures(&self, tenant: &str, key: &str) -> Result<()> {
        self.execute(session::CLEAR_FAILURES, &[&tenant, &key]).await.map(|_| ())
    }

    async fn record_auth_event(&self, tenant: &str, e: &AuthEvent) -> Result<()> {
        let (at, detail) = (e.at.timestamp_millis(), e.detail.to_string());
        let values: [&(dyn ToSql + Sync); 7] = [&tenant, &e.id, &at, &e.kind, &e.account_id, &e.address, &detail];
        if self.execute(session::INSERT_EVENT, &values).await? == 0 {
            return Err(StoreError::Exists(format!("auth event {}", e.id)));
        }
        Ok(())
    }

    async fn auth_events(&self, tenant: &str, account_id: Option<&str>, limit: usize) -> Result<Vec<AuthEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match account_id {
            Some(account) => self.rows(session::EVENTS_OF, &[&tenant, &account, &limit], session::event_from).await,
            None => self.rows(session::EVENTS, &[&tenant, &limit], session::event_from).await,
        }
    }
}

fn account_row(row: &tokio_postgres::Row) -> Result<Account> {
    let roles: String = row.try_get(4).map_err(db_err)?;
    let status: String = row.try_get(6).map_err(db_err)?;
    Ok(Account {
        id: row.try_get(0).map_err(db_err)?,
        email: row.try_get(1).map_err(db_err)?,
        email_verified: row.try_get(2).map_err(db_err)?,
        password_hash: row.try_get(3).map_err(db_err)?,
        roles: account::roles_from_text(&roles)?,
        fhir_user: row.try_get(5).map_err(db_err)?,
        status: account::status_from_text(&status)?,
        version: row.try_get(7).map_err(db_err)?,
        created: common::from_millis(row.try_get(8).map_err(db_err)?),
        updated: common::from_millis(row.try_get(9).map_err(db_err)?),
    })
}

/// An account's values for `$1…$9`: the tenant, the columns of [`account::ACCOUNT_COLUMNS`]
/// up to `status`, and the time of the write.
fn account_values<'a>(
    tenant: &'a &str,
    a: &'a Account,
    roles: &'a String,
    status: &'a &'static str,
    now: &'a i64,
) -> Vec<&'a (dyn ToSql + Sync)> {
    vec![tenant, &a.id, &a.email, &a.email_verified, &a.password_hash, roles, &a.fhir_user, status, now]
}

impl session::Row for tokio_postgres::Row {
    fn text(&self, i: usize) -> Result<String> {
        self.try_get(i).map_err(db_err)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).map_err(db_err)
    }

    fn int(&self, i: usize) -> Result<i64> {
        self.try_get(i).map_err(db_err)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.try_get(i).map_err(db_err)
    }

    fn flag(&self, i: usize) -> Result<bool> {
        self.try_get(i).map_err(db_err)
    }
}

impl PostgresStore {
    /// Runs a statement on a pooled connection, outside any transaction; answers the rows
    /// changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.execute(&stmt, params).await.map_err(db_err)
    }

    /// The rows of a statement on a pooled connection, each read by `read`.
    async fn rows<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: impl Fn(&tokio_postgres::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.query(&stmt, params).await.map_err(db_err)?.iter().map(read).collect()
    }

    async fn query_accounts(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Account>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.query(&stmt, params).await.map_err(db_err)?.iter().map(account_row).collect()
    }
}

pub struct PgTransaction {
    /// `None` once committed.
    client: Option<Object>,
    tenant: String,
    pending: PendingIndex,
    keys: Arc<Keys>,
    growth: Arc<Growth>,
    written: u64,
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        // A connection may only go back to the pool once its transaction is rolled back;
        // without a runtime to do that, the connection is discarded instead.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

impl PgTransaction {
    fn client(&self) -> Result<&Object> {
        self.client.as_ref().ok_or_else(|| StoreError::Database("the transaction has ended".into()))
    }
}

#[async_trait]
impl Transaction for PgTransaction {
    async fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>> {
        read_current(self.client()?, &self.tenant, resource_type, id, true).await
    }

    async fn read_shared(&mut self, resource_type: &str, id: &str) -> Result<Option<ResourceVersion>> {
        read_current(self.client()?, &self.tenant, resource_type, id, false).await
    }

    async fn find(&mut self, resource_type: &str, filters: &[Filter], limit: usize) -> Result<Vec<String>> {
        let client = self.client.as_ref().ok_or_else(|| StoreError::Database("the transaction has ended".into()))?;
        self.pending.flush(client, &self.keys).await?;
        search::find(&InTransaction(client, &self.keys), &self.tenant, resource_type, filters, limit).await
    }

    async fn search(&mut self, query: &SearchQuery<'_>) -> Result<SearchPage> {
        let client = self.client.as_ref().ok_or_else(|| StoreError::Database("the transaction has ended".into()))?;
        self.pending.flush(client, &self.keys).await?;
        search::run(&InTransaction(client, &self.keys), &self.tenant, query).await
    }

    async fn write(&mut self, new: NewVersion) -> Result<ResourceVersion> {
        let tenant = self.tenant.clone();
        let client = self.client()?;
        let rt = new.resource_type.as_str();
        let id = new.id.as_str();
        let current = read_current(client, &tenant, rt, id, true).await?;
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
        let insert = client
            .prepare_cached(
                "INSERT INTO versions (tenant, resource_type, id, version, last_updated, method, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING sequence",
            )
            .await
            .map_err(db_err)?;
        let row =
            client.query_one(&insert, &[&tenant, &rt, &id, &version, &now, &method, &body]).await.map_err(db_err)?;
        let sequence: i64 = row.try_get(0).map_err(db_err)?;
        let upsert = client
            .prepare_cached(
                "INSERT INTO resources (tenant, resource_type, id, version, deleted, last_updated)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, resource_type, id)
                 DO UPDATE SET version = excluded.version, deleted = excluded.deleted, last_updated = excluded.last_updated
                 RETURNING rid",
            )
            .await
            .map_err(db_err)?;
        let row =
            client.query_one(&upsert, &[&tenant, &rt, &id, &version, &body.is_none(), &now]).await.map_err(db_err)?;
        let rid: i64 = row.try_get(0).map_err(db_err)?;
        self.written += 1;
        if current.is_some() {
            self.pending.clear.push(rid);
        }
        if body.is_some() {
            self.pending.items.push(Pending {
                tenant,
                resource_type: rt.to_owned(),
                rid,
                index: new.index,
                text: new.text,
            });
        }
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

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let client = self.client.take().ok_or_else(|| StoreError::Database("the transaction has ended".into()))?;
        if let Err(e) = self.pending.flush(&client, &self.keys).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
        match client.batch_execute("COMMIT").await {
            Ok(()) => {
                if self.growth.add(self.written) {
                    // Off the request's path; the connection returns to the pool when done.
                    // The index tables too: their estimates pick a search's driving filter.
                    let statement = format!("ANALYZE resources, versions, {}", search::INDEX_TABLES.join(", "));
                    tokio::spawn(async move {
                        if let Err(e) = client.batch_execute(&statement).await {
                            tracing::warn!(error = %e, "refreshing the planner statistics failed");
                        }
                    });
                }
                Ok(())
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(db_err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statistics_refresh_at_growing_steps() {
        let g = super::Growth::default();
        assert!(!g.add(255));
        assert!(g.add(1), "256");
        assert!(!g.add(700));
        assert!(g.add(100), "1,024");
        assert!(g.add(10_000), "4,096 and 16,384 at once count as one");
    }
}
