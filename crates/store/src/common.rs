//! What both backends share: stamping bodies with their version, times, migrations, and the SQL
//! of history queries.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::{HistoryQuery, Method, StoreError};

/// Milliseconds since the epoch, now. Times are kept at millisecond precision because that is
/// what `meta.lastUpdated` shows, so a `_since` taken from a response compares exactly.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn method_name(m: Method) -> &'static str {
    m.as_str()
}

pub fn method_from(name: &str) -> Method {
    match name {
        "POST" => Method::Post,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        _ => Method::Put,
    }
}

/// Sets `meta.versionId` and `meta.lastUpdated` and serialises compactly, with `meta` right
/// after `id` so stored bodies read naturally.
pub fn stamp(body: Value, version: i64, last_updated_ms: i64) -> Result<String, StoreError> {
    let Value::Object(fields) = body else {
        return Err(StoreError::Database("a resource body must be a JSON object".into()));
    };
    let updated = from_millis(last_updated_ms).to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut meta = Map::new();
    let mut rest = Map::with_capacity(fields.len());
    for (k, v) in fields {
        if k == "meta" {
            if let Value::Object(m) = v {
                meta = m;
            }
        } else {
            rest.insert(k, v);
        }
    }
    let mut new_meta = Map::with_capacity(meta.len() + 2);
    new_meta.insert("versionId".into(), Value::String(version.to_string()));
    new_meta.insert("lastUpdated".into(), Value::String(updated));
    for (k, v) in meta {
        if k != "versionId" && k != "lastUpdated" {
            new_meta.insert(k, v);
        }
    }
    let mut out = Map::with_capacity(rest.len() + 1);
    let mut placed = false;
    for (k, v) in rest {
        let after_id = k == "id";
        out.insert(k, v);
        if after_id {
            out.insert("meta".into(), Value::Object(std::mem::take(&mut new_meta)));
            placed = true;
        }
    }
    if !placed {
        out.insert("meta".into(), Value::Object(new_meta));
    }
    serde_json::to_string(&Value::Object(out)).map_err(|e| StoreError::Database(e.to_string()))
}

/// One embedded schema migration.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// FNV-1a over the SQL text: enough to notice an applied migration that was edited.
    pub fn checksum(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.sql.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// A value bound into dynamic SQL.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Int(i64),
    Real(f64),
}

/// The WHERE clause (with `$n` placeholders) and parameters of a history query. With
/// `paged`, the cursor applies; counts ignore it.
pub fn history_filter(tenant: &str, q: &HistoryQuery, paged: bool) -> (String, Vec<Param>) {
    let mut sql = String::from("tenant = $1");
    let mut params = vec![Param::Text(tenant.to_owned())];
    let mut add = |clause: &str, p: Param, params: &mut Vec<Param>| {
        params.push(p);
        sql.push_str(&format!(" AND {clause} ${}", params.len()));
    };
    if let Some(rt) = &q.resource_type {
        add("resource_type =", Param::Text(rt.clone()), &mut params);
        if let Some(id) = &q.id {
            add("id =", Param::Text(id.clone()), &mut params);
        }
    }
    if let Some(since) = q.since {
        add("last_updated >=", Param::Int(since.timestamp_millis()), &mut params);
    }
    if let Some(at) = q.at {
        add("last_updated <=", Param::Int(at.timestamp_millis()), &mut params);
    }
    if paged && let Some(cursor) = q.before_sequence {
        add("sequence <", Param::Int(cursor), &mut params);
    }
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamp_places_meta_after_id_and_keeps_other_meta() {
        let text = stamp(
            json!({"resourceType":"Patient","id":"a","active":true,"meta":{"versionId":"9","profile":["p"]}}),
            3,
            0,
        )
        .expect("stamps");
        assert_eq!(
            text,
            r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"3","lastUpdated":"1970-01-01T00:00:00.000Z","profile":["p"]},"active":true}"#
        );
    }

    #[test]
    fn history_filter_numbers_placeholders_in_order() {
        let q = HistoryQuery {
            resource_type: Some("Patient".into()),
            id: Some("1".into()),
            before_sequence: Some(9),
            ..Default::default()
        };
        let (sql, params) = history_filter("t", &q, true);
        assert_eq!(sql, "tenant = $1 AND resource_type = $2 AND id = $3 AND sequence < $4");
        assert_eq!(params.len(), 4);
        let (sql, _) = history_filter("t", &q, false);
        assert!(!sql.contains("sequence"));
    }
}
