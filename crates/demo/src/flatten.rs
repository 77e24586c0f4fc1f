//! A transaction Bundle as stand-alone resources, e.g. one NDJSON line each. Outside a Bundle a
//! `urn:uuid` means nothing, so each resource takes its entry's uuid as `id` and references to
//! other entries become `Type/id`; conditional and external references are kept as they are.

use std::collections::HashMap;

use serde_json::Value;

/// The entries' resources with ids set and in-bundle references made literal (`Type/id`).
pub fn to_resources(bundle: &Value) -> Vec<Value> {
    let entries = bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut targets: HashMap<&str, String> = HashMap::new();
    let mut ids: Vec<Option<String>> = Vec::with_capacity(entries.len());
    for e in entries {
        let rt = e.pointer("/resource/resourceType").and_then(Value::as_str);
        let full = e.get("fullUrl").and_then(Value::as_str);
        let id = full
            .and_then(|f| f.strip_prefix("urn:uuid:"))
            .or_else(|| e.pointer("/resource/id").and_then(Value::as_str))
            .map(str::to_owned);
        if let (Some(rt), Some(full), Some(id)) = (rt, full, &id) {
            targets.insert(full, format!("{rt}/{id}"));
        }
        ids.push(id);
    }
    entries
        .iter()
        .zip(ids)
        .filter_map(|(e, id)| {
            let mut resource = e.get("resource")?.clone();
            if let (Some(id), Some(obj)) = (id, resource.as_object_mut()) {
                obj.insert("id".into(), Value::String(id));
            }
            literal_references(&mut resource, &targets);
            Some(resource)
        })
        .collect()
}

fn literal_references(value: &mut Value, targets: &HashMap<&str, String>) {
    match value {
        Value::Object(obj) => {
            for (k, x) in obj.iter_mut() {
                match x {
                    Value::String(s) if k == "reference" => {
                        if let Some(t) = targets.get(s.as_str()) {
                            *s = t.clone();
                        }
                    }
                    _ => literal_references(x, targets),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| literal_references(x, targets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn references_become_literal() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:aaaa", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:bbbb", "resource": {"resourceType": "Observation", "id": "old",
                "subject": {"reference": "urn:uuid:aaaa"},
                "performer": [{"reference": "Practitioner?identifier=x|1"}],
                "identifier": [{"value": "urn:uuid:aaaa"}]},
             "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "DELETE", "url": "Patient/zzz"}}
        ]});
        let r = to_resources(&b);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["id"], "aaaa");
        assert_eq!(r[1]["id"], "bbbb");
        assert_eq!(r[1]["subject"]["reference"], "Patient/aaaa");
        assert_eq!(r[1]["performer"][0]["reference"], "Practitioner?identifier=x|1");
        // Only Reference.reference is a link; a uri that looks the same is data.
        assert_eq!(r[1]["identifier"][0]["value"], "urn:uuid:aaaa");
    }
}
