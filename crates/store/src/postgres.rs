//! The PostgreSQL backend (tokio-postgres with a deadpool connection pool).
//!
//! Transactions run at READ COMMITTED; `Transaction::read` locks the current-state row
//! (`FOR UPDATE`), so of two writers to one resource the second waits and then sees the first's
//! version. Races that only the database can settle (two creates of one new id, serialization
//! failures, deadlocks) surface as [`StoreError::Retry`].

use async_trait::async_trait;
use deadpool_postgres::{Config, ManagerConfig, Object, Pool, PoolConfig, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::common::{self, Migration, Param};
use crate::{Criterion, HistoryQuery, IndexRow, NewVersion, ResourceVersion, Result, Store, StoreError, Transaction};

const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "resources", sql: include_str!("../migrations/postgres/0001_resources.sql") }];

/// Any fixed number: instances starting together take turns at migrating.
const MIGRATION_LOCK: i64 = 0x1a50_0001;

pub struct PostgresStore {
    pool: Pool,
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
        cfg.manager = Some(ManagerConfig { recycling_method: RecyclingMethod::Fast });
        cfg.pool = Some(PoolConfig::new(32));
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
        let store = PostgresStore { pool };
        store.migrate().await?;
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
            }
        })
        .collect()
}

fn refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
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
        Ok(Box::new(PgTransaction { client: Some(client), tenant: tenant.to_owned() }))
    }
}

pub struct PgTransaction {
    /// `None` once committed.
    client: Option<Object>,
    tenant: String,
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

    async fn find(&mut self, resource_type: &str, criteria: &[Criterion]) -> Result<Vec<String>> {
        let mut params = vec![Param::Text(self.tenant.clone()), Param::Text(resource_type.to_owned())];
        let sql = crate::sqlite::find_sql(criteria, &mut params);
        let client = self.client()?;
        let stmt = client.prepare_cached(&sql).await.map_err(db_err)?;
        let values = boxed(&params);
        let rows = client.query(&stmt, &refs(&values)).await.map_err(db_err)?;
        rows.iter().map(|r| r.try_get::<_, String>(0).map_err(db_err)).collect()
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
                 DO UPDATE SET version = excluded.version, deleted = excluded.deleted, last_updated = excluded.last_updated",
            )
            .await
            .map_err(db_err)?;
        client.execute(&upsert, &[&tenant, &rt, &id, &version, &body.is_none(), &now]).await.map_err(db_err)?;
        if current.is_some() {
            let delete = client
                .prepare_cached("DELETE FROM idx_token WHERE tenant = $1 AND resource_type = $2 AND id = $3")
                .await
                .map_err(db_err)?;
            client.execute(&delete, &[&tenant, &rt, &id]).await.map_err(db_err)?;
        }
        if body.is_some() && !new.index.is_empty() {
            let insert_token = client
                .prepare_cached(
                    "INSERT INTO idx_token (tenant, resource_type, id, param, system, code)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await
                .map_err(db_err)?;
            for row in &new.index {
                let IndexRow::Token { param, system, code } = row;
                client.execute(&insert_token, &[&tenant, &rt, &id, param, system, code]).await.map_err(db_err)?;
            }
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
        match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(db_err(e))
            }
        }
    }
}
