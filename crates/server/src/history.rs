//! History at instance, type and system level as `history` Bundles with paging links.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use store::{HistoryQuery, Method, Store};

use crate::error::{ApiError, ApiResult};
use crate::respond::{etag, instant};

const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 1000;

/// The paging cursor parameter in `next` links: the sequence below which the next page starts.
const CURSOR: &str = "_cursor";

/// Parses a FHIR `instant`/`dateTime` used by `_since` and `_at`; a date alone means its start in UTC.
pub fn parse_instant(name: &str, value: &str) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = match value.len() {
        4 => NaiveDate::parse_from_str(&format!("{value}-01-01"), "%Y-%m-%d"),
        7 => NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d"),
        _ => NaiveDate::parse_from_str(value, "%Y-%m-%d"),
    };
    date.ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()).ok_or_else(|| {
        ApiError::bad_request(format!("{name}: '{value}' is not a FHIR instant (e.g. 2026-01-31T12:00:00Z) or date"))
    })
}

/// Lists history per the query string and renders the Bundle. `path` is the URL path below the
/// base (`_history`, `Patient/_history`, `Patient/1/_history`), used for paging links.
pub async fn history(
    store: &dyn Store,
    tenant: &str,
    resource_type: Option<&str>,
    id: Option<&str>,
    query: Option<&str>,
    base_url: &str,
) -> ApiResult<Value> {
    let mut q = HistoryQuery {
        resource_type: resource_type.map(str::to_owned),
        id: id.map(str::to_owned),
        count: DEFAULT_COUNT,
        ..Default::default()
    };
    let mut kept = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "_count" => {
                q.count = value
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("_count: '{value}' is not a number")))?
                    .min(MAX_COUNT);
                kept.push((name.into_owned(), value.into_owned()));
            }
            "_since" => {
                q.since = Some(parse_instant("_since", &value)?);
                kept.push((name.into_owned(), value.into_owned()));
            }
            "_at" => {
                q.at = Some(parse_instant("_at", &value)?);
                kept.push((name.into_owned(), value.into_owned()));
            }
            CURSOR => {
                q.before_sequence = Some(
                    value
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("{CURSOR}: '{value}' is not a paging cursor")))?,
                );
            }
            "_format" | "_pretty" => kept.push((name.into_owned(), value.into_owned())),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown history parameter '{other}' (supported: _count, _since, _at)"
                )));
            }
        }
    }
    let total = store.history_total(tenant, &q).await?;
    let versions = if q.count == 0 { Vec::new() } else { store.history(tenant, &q).await? };

    let path = match (resource_type, id) {
        (Some(t), Some(i)) => format!("{base_url}/{t}/{i}/_history"),
        (Some(t), None) => format!("{base_url}/{t}/_history"),
        _ => format!("{base_url}/_history"),
    };
    let link = |extra: Option<(&str, String)>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            s.append_pair(k, v);
        }
        if let Some((k, v)) = extra {
            s.append_pair(k, &v);
        }
        let qs = s.finish();
        if qs.is_empty() { path.clone() } else { format!("{path}?{qs}") }
    };
    let mut links = vec![json!({"relation": "self", "url": link(q.before_sequence.map(|c| (CURSOR, c.to_string())))})];
    if q.before_sequence.is_some() {
        links.push(json!({"relation": "first", "url": link(None)}));
    }
    if versions.len() == q.count
        && let Some(last) = versions.last()
    {
        links.push(json!({"relation": "next", "url": link(Some((CURSOR, last.sequence.to_string())))}));
    }
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| {
            let (method, url, status) = match v.method {
                Method::Post => ("POST", v.resource_type.clone(), "201 Created"),
                Method::Put => (
                    "PUT",
                    format!("{}/{}", v.resource_type, v.id),
                    if v.version == 1 { "201 Created" } else { "200 OK" },
                ),
                Method::Patch => ("PATCH", format!("{}/{}", v.resource_type, v.id), "200 OK"),
                Method::Delete => ("DELETE", format!("{}/{}", v.resource_type, v.id), "204 No Content"),
            };
            let mut entry = json!({"fullUrl": format!("{base_url}/{}/{}", v.resource_type, v.id)});
            if let Some(body) = &v.body {
                entry["resource"] = serde_json::from_str(body).unwrap_or(Value::Null);
            }
            entry["request"] = json!({"method": method, "url": url});
            entry["response"] =
                json!({"status": status, "etag": etag(v.version), "lastModified": instant(v.last_updated)});
            entry
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": crate::service::new_id(),
        "meta": {"lastUpdated": instant(Utc::now())},
        "type": "history",
        "total": total,
        "link": links,
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_dates() {
        assert!(parse_instant("_since", "2026-01-02T03:04:05Z").is_ok());
        assert!(parse_instant("_since", "2026-01-02T03:04:05.123+02:00").is_ok());
        assert_eq!(
            parse_instant("_since", "2026-01-02").map(instant).ok().as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
        assert!(parse_instant("_since", "2026").is_ok());
        assert!(parse_instant("_since", "yesterday").is_err());
        assert!(parse_instant("_since", "2026-02-30").is_err());
    }
}
