//! Whether a resource not yet stored matches search filters, judged on its index values: a
//! transaction's conditional references may name a resource created in the same transaction
//! (http.html#trules). Only the filters such references use in practice are judged (tokens,
//! strings, URIs, references, `_id`); any other filter does not match, so the reference is
//! then resolved against the store alone.

use super::query::{Builtin, Filter, Modifier, SearchValue, TokenSystem};
use super::{IndexEntry, IndexValue};

/// Whether the resource with `id` and these index values passes every filter.
pub fn matches(filters: &[Filter], id: &str, entries: &[IndexEntry]) -> bool {
    !filters.is_empty() && filters.iter().all(|f| passes(f, id, entries))
}

fn passes(filter: &Filter, id: &str, entries: &[IndexEntry]) -> bool {
    match filter {
        Filter::Builtin(Builtin::Id(ids)) => ids.iter().any(|i| i == id),
        Filter::Any(filters) => filters.iter().any(|f| passes(f, id, entries)),
        Filter::Param { param, modifier: Modifier::None | Modifier::Exact, values, not: false } => {
            entries.iter().filter(|e| e.param == param.code).any(|e| values.iter().any(|v| value_matches(&e.value, v)))
        }
        _ => false,
    }
}

fn value_matches(stored: &IndexValue, wanted: &SearchValue) -> bool {
    match (stored, wanted) {
        (IndexValue::Token { system, code: Some(code), .. }, SearchValue::Token { system: ws, code: wc }) => {
            wc.as_ref().is_none_or(|c| c == code)
                && match ws {
                    TokenSystem::Any => wc.is_some(),
                    TokenSystem::None => system.is_none(),
                    TokenSystem::Is(s) => system.as_deref() == Some(s.as_str()),
                }
        }
        (IndexValue::String { normalized, .. }, SearchValue::String { normalized: w, .. }) => {
            normalized.starts_with(w.as_str())
        }
        (IndexValue::Uri { uri }, SearchValue::Uri(w)) => uri == w,
        (
            IndexValue::Reference { target_type, target_id: Some(tid), .. },
            SearchValue::Reference { target_type: wt, target_id, .. },
        ) => tid == target_id && wt.as_ref().is_none_or(|t| target_type.as_deref() == Some(t.as_str())),
        (IndexValue::Reference { url: Some(u), .. }, SearchValue::Url { url, .. }) => u == url,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::Parser;
    use crate::search::{index_resource, standard};
    use serde_json::json;

    fn filters(q: &str) -> Vec<Filter> {
        let pairs: Vec<(String, String)> = form_pairs(q);
        Parser { registry: standard(), base_url: "", lenient: false }
            .parse(Some("Patient"), &pairs)
            .expect("parses")
            .filters
    }

    fn form_pairs(q: &str) -> Vec<(String, String)> {
        q.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    #[test]
    fn identifiers_names_and_ids() {
        let p = json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "7"}], "name": [{"family": "Smith"}]});
        let entries = index_resource(&p, standard());
        assert!(matches(&filters("identifier=urn:mrn|7"), "p1", &entries));
        assert!(matches(&filters("identifier=7&family=smi"), "p1", &entries));
        assert!(!matches(&filters("identifier=urn:other|7"), "p1", &entries));
        assert!(matches(&filters("_id=p1"), "p1", &entries));
        assert!(!matches(&filters("birthdate=2000"), "p1", &entries), "dates are not judged here");
    }
}
