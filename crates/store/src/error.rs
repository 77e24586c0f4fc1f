use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The resource's current version is not the one the write was based on.
    #[error("version conflict on {resource_type}/{id}: expected {expected}, found {actual}")]
    VersionConflict { resource_type: String, id: String, expected: i64, actual: i64 },
    /// A concurrent transaction won a race (serialization failure, unique violation on a new id,
    /// deadlock): the caller may retry the whole transaction.
    #[error("concurrent write conflict, retry")]
    Retry,
    /// A unique key is taken (an account's email in its tenant).
    #[error("{0} already exists")]
    Exists(String),
    /// What an update names does not exist.
    #[error("{0} not found")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A search the store cannot run as asked (a forged cursor, a search nested too deeply).
    #[error("{0}")]
    Query(String),
}
