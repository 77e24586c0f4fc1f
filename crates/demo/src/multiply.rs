//! Copies of a Synthea patient Bundle under fresh identities, so the 63 sample patients become
//! as many as a benchmark needs.
//!
//! Copy `k` of a Bundle gives every entry a new id derived from (old id, `k`): the `fullUrl`,
//! the resource `id`, a `PUT Type/id` request url and every string that points at them
//! (`urn:uuid:…`, `Type/id`, a bare uuid such as Synthea's identifier values, the tail of a
//! conditional reference) are rewritten alike. The Patient's identifiers are made unique and its
//! family names suffixed with `-k`, so copies can be told apart and found by identifier.
//!
//! Shared provider resources (Organization, Practitioner, PractitionerRole, Location) are left
//! exactly as they are, and so are references to them, conditional ones included: every copy
//! points at the same hospital and clinicians, as Synthea's own output does.
//!
//! **Copy 0 is the original**, unchanged (a clone), so `k = 0, 1, 2…` yields the source data
//! first and then fresh copies; copies with different `k` share no ids.

use std::collections::HashMap;

use serde_json::Value;

use crate::ids::{is_uuid_shaped, uuid_from};

/// Resource types that Synthea shares between patients; never copied.
pub const SHARED_TYPES: &[&str] = &["Organization", "Practitioner", "PractitionerRole", "Location"];

/// Strings longer than this are never links (they are narrative or base64 attachments); skipping
/// them keeps the walk cheap on Synthea's large DocumentReferences.
const MAX_LINK_LEN: usize = 2048;

/// Copy `copy` of a patient Bundle; see the module documentation.
pub fn multiply_bundle(bundle: &Value, copy: u64) -> Value {
    let mut out = bundle.clone();
    if copy == 0 {
        return out;
    }
    if let Some(id) = out.get("id").and_then(Value::as_str) {
        out["id"] = Value::String(new_id(id, copy));
    }
    let Some(entries) = out.get_mut("entry").and_then(Value::as_array_mut) else { return out };
    let mut map: HashMap<String, String> = HashMap::new();
    for e in entries.iter().filter(|e| !is_shared(e)) {
        for old in entry_ids(e) {
            let new = new_id(&old, copy);
            map.entry(old).or_insert(new);
        }
    }
    for e in entries.iter_mut().filter(|e| !is_shared(e)) {
        if let Some(resource) = e.get_mut("resource")
            && resource.get("resourceType").and_then(Value::as_str) == Some("Patient")
        {
            personalize(resource, &map, copy);
        }
        rewrite(e, None, &map);
    }
    out
}

/// The id that `old` gets in copy `copy`.
pub fn new_id(old: &str, copy: u64) -> String {
    uuid_from(&[b"iaso-multiply", old.as_bytes(), &copy.to_le_bytes()]).to_string()
}

fn is_shared(entry: &Value) -> bool {
    entry.pointer("/resource/resourceType").and_then(Value::as_str).is_some_and(|rt| SHARED_TYPES.contains(&rt))
}

/// The ids an entry is known by: resource id, fullUrl (urn:uuid or a URL ending in Type/id) and
/// a `Type/id` request url.
fn entry_ids(entry: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(id) = entry.pointer("/resource/id").and_then(Value::as_str) {
        ids.push(id.to_owned());
    }
    if let Some(full) = entry.get("fullUrl").and_then(Value::as_str) {
        if let Some(id) = full.strip_prefix("urn:uuid:") {
            ids.push(id.to_owned());
        } else if let Some(id) = path_id(full) {
            ids.push(id.to_owned());
        }
    }
    if let Some(url) = entry.pointer("/request/url").and_then(Value::as_str)
        && !url.contains('?')
        && let Some(id) = path_id(url)
    {
        ids.push(id.to_owned());
    }
    ids
}

/// `…/Type/id` or `…/Type/id/_history/n` → `id`.
fn path_id(url: &str) -> Option<&str> {
    let segments: Vec<&str> = url.split('/').collect();
    let at = match segments.iter().rposition(|s| *s == "_history") {
        Some(h) => h.checked_sub(1)?,
        None => segments.len().checked_sub(1)?,
    };
    let rt = segments.get(at.checked_sub(1)?)?;
    (is_type_name(rt) && !segments[at].is_empty()).then_some(segments[at])
}

fn is_type_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Unique identifiers and distinguishable names for the copy. Identifier values that are ids of
/// the bundle follow the ids; the others (SSN, licence, passport…) get the `-k` suffix, which
/// keeps them unique because the suffix holds no `-` of its own.
fn personalize(patient: &mut Value, map: &HashMap<String, String>, copy: u64) {
    for ident in patient.get_mut("identifier").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(value) = ident.get("value").and_then(Value::as_str) else { continue };
        let new = map.get(value).cloned().unwrap_or_else(|| format!("{value}-{copy}"));
        ident["value"] = Value::String(new);
    }
    for name in patient.get_mut("name").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(obj) = name.as_object_mut() else { continue };
        if let Some(Value::String(family)) = obj.get_mut("family") {
            family.push_str(&format!("-{copy}"));
        } else if let Some(Value::String(last)) =
            obj.get_mut("given").and_then(Value::as_array_mut).and_then(|g| g.last_mut())
        {
            last.push_str(&format!("-{copy}"));
        }
        if let Some(Value::String(text)) = obj.get_mut("text") {
            text.push_str(&format!("-{copy}"));
        }
    }
}

fn rewrite(value: &mut Value, key: Option<&str>, map: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(new) = rewrite_str(s, key, map) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| rewrite(x, key, map)),
        Value::Object(obj) => obj.iter_mut().for_each(|(k, x)| rewrite(x, Some(k), map)),
        _ => {}
    }
}

fn rewrite_str(s: &str, key: Option<&str>, map: &HashMap<String, String>) -> Option<String> {
    if s.len() > MAX_LINK_LEN {
        return None;
    }
    if let Some(rest) = s.strip_prefix("urn:uuid:") {
        return map.get(rest).map(|n| format!("urn:uuid:{n}"));
    }
    // A bare id is only taken for one where it cannot be a code that happens to look the same.
    if (key == Some("id") || is_uuid_shaped(s))
        && let Some(n) = map.get(s)
    {
        return Some(n.clone());
    }
    if let Some((_, query)) = s.split_once('?') {
        // A conditional reference to a resource of this bundle by an identifier that was an id.
        let tail_at = query.rfind(['|', '='])? + 1;
        let tail = &query[tail_at..];
        let n = map.get(tail)?;
        return Some(format!("{}{n}", &s[..s.len() - tail.len()]));
    }
    if !s.contains('/') {
        return None;
    }
    let mut segments: Vec<&str> = s.split('/').collect();
    let mut changed = false;
    for i in 1..segments.len() {
        if is_type_name(segments[i - 1])
            && let Some(n) = map.get(segments[i])
        {
            segments[i] = n.as_str();
            changed = true;
        }
    }
    changed.then(|| segments.join("/"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    const P: &str = "11111111-1111-4111-8111-111111111111";
    const E: &str = "22222222-2222-4222-8222-222222222222";
    const ORG: &str = "33333333-3333-4333-8333-333333333333";

    fn sample() -> Value {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": format!("urn:uuid:{P}"), "resource": {"resourceType": "Patient", "id": P,
                "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": P},
                               {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"}],
                "name": [{"family": "Koepp", "given": ["Abdul"], "text": "Abdul Koepp"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": format!("urn:uuid:{ORG}"), "resource": {"resourceType": "Organization", "id": ORG,
                "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": ORG}]},
             "request": {"method": "POST", "url": "Organization"}},
            {"fullUrl": format!("urn:uuid:{E}"), "resource": {"resourceType": "Encounter", "id": E,
                "identifier": [{"value": E}],
                "subject": {"reference": format!("urn:uuid:{P}"), "display": "Abdul Koepp"},
                "serviceProvider": {"reference": format!("urn:uuid:{ORG}")},
                "participant": [{"individual": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999963991"}}]},
             "request": {"method": "POST", "url": "Encounter"}},
            {"fullUrl": "http://example.org/fhir/Observation/obs-1", "resource": {"resourceType": "Observation",
                "id": "obs-1", "status": "final", "code": {"text": "obs-1"},
                "subject": {"reference": format!("Patient/{P}")},
                "encounter": {"reference": format!("Encounter/{E}/_history/1")},
                "contained": [{"resourceType": "Patient", "id": "local"}],
                "performer": [{"reference": "#local"}]},
             "request": {"method": "PUT", "url": "Observation/obs-1"}}
        ]})
    }

    #[test]
    fn copy_zero_is_the_original() {
        assert_eq!(multiply_bundle(&sample(), 0), sample());
    }

    #[test]
    fn copies_rewrite_ids_and_links_consistently() {
        let c = multiply_bundle(&sample(), 3);
        let np = new_id(P, 3);
        let ne = new_id(E, 3);
        let no = new_id("obs-1", 3);
        assert_eq!(c["entry"][0]["fullUrl"], format!("urn:uuid:{np}"));
        assert_eq!(c["entry"][0]["resource"]["id"], np);
        assert_eq!(c["entry"][0]["resource"]["identifier"][0]["value"], np);
        assert_eq!(c["entry"][0]["resource"]["identifier"][1]["value"], "999-12-3456-3");
        assert_eq!(c["entry"][0]["resource"]["name"][0]["family"], "Koepp-3");
        assert_eq!(c["entry"][0]["resource"]["name"][0]["text"], "Abdul Koepp-3");
        // Shared resources and references to them stay as they are.
        assert_eq!(c["entry"][1], sample()["entry"][1]);
        assert_eq!(c["entry"][2]["resource"]["serviceProvider"]["reference"], format!("urn:uuid:{ORG}"));
        assert_eq!(
            c["entry"][2]["resource"]["participant"][0]["individual"]["reference"],
            "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999963991"
        );
        assert_eq!(c["entry"][2]["resource"]["subject"]["reference"], format!("urn:uuid:{np}"));
        assert_eq!(c["entry"][2]["resource"]["identifier"][0]["value"], ne);
        // PUT style: fullUrl, request url, Type/id and versioned references.
        let obs = &c["entry"][3];
        assert_eq!(obs["fullUrl"], format!("http://example.org/fhir/Observation/{no}"));
        assert_eq!(obs["request"]["url"], format!("Observation/{no}"));
        assert_eq!(obs["resource"]["id"], no);
        assert_eq!(obs["resource"]["subject"]["reference"], format!("Patient/{np}"));
        assert_eq!(obs["resource"]["encounter"]["reference"], format!("Encounter/{ne}/_history/1"));
        // A short id is never taken for the same text elsewhere, nor are contained ids touched.
        assert_eq!(obs["resource"]["code"]["text"], "obs-1");
        assert_eq!(obs["resource"]["contained"][0]["id"], "local");
        assert_eq!(obs["resource"]["performer"][0]["reference"], "#local");
    }

    #[test]
    fn copies_are_deterministic_and_disjoint() {
        let a = multiply_bundle(&sample(), 1);
        assert_eq!(a, multiply_bundle(&sample(), 1));
        let b = multiply_bundle(&sample(), 2);
        let ids = |b: &Value| -> HashSet<String> {
            b["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| !is_shared(e))
                .filter_map(|e| e.pointer("/resource/id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        };
        assert!(ids(&a).is_disjoint(&ids(&b)));
        assert!(ids(&a).is_disjoint(&ids(&sample())));
    }

    #[test]
    fn conditional_reference_to_a_copied_identifier_follows_it() {
        let map = HashMap::from([(P.to_owned(), "new".to_owned())]);
        let s = format!("Patient?identifier=https://github.com/synthetichealth/synthea|{P}");
        assert_eq!(
            rewrite_str(&s, Some("reference"), &map).as_deref(),
            Some("Patient?identifier=https://github.com/synthetichealth/synthea|new")
        );
        assert_eq!(rewrite_str("Organization?identifier=x|y", Some("reference"), &map), None);
    }

    /// The sample Synthea bundles beside the repository (`shared/data/synthea`).
    fn synthea_samples() -> Vec<Value> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea");
        let mut out = Vec::new();
        for set in ["smart-on-fhir-r4", "synthea-2020-iris", "synthea-3x-wasee11"] {
            let Ok(rd) = std::fs::read_dir(dir.join(set)) else { continue };
            let mut files: Vec<_> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "json")
                        && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("Information"))
                })
                .collect();
            files.sort();
            if let Some(f) = files.first()
                && let Ok(text) = std::fs::read_to_string(f)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                out.push(v);
            }
        }
        out
    }

    fn references(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match x {
                        Value::String(s) if k == "reference" => out.push(s.clone()),
                        _ => references(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| references(x, out)),
            _ => {}
        }
    }

    fn full_urls(b: &Value) -> HashSet<String> {
        b["entry"].as_array().into_iter().flatten().filter_map(|e| e["fullUrl"].as_str().map(str::to_owned)).collect()
    }

    #[test]
    fn synthea_copies_stay_whole() {
        let samples = synthea_samples();
        assert!(!samples.is_empty(), "the Synthea samples must be in ../shared/data/synthea beside the repository");
        for original in &samples {
            let own: HashSet<String> = original["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| !is_shared(e))
                .filter_map(|e| e["fullUrl"].as_str().map(str::to_owned))
                .collect();
            let mut original_refs = Vec::new();
            references(original, &mut original_refs);
            let outside: HashSet<&String> = original_refs.iter().filter(|r| !own.contains(*r)).collect();
            let c1 = multiply_bundle(original, 1);
            let c2 = multiply_bundle(original, 2);
            assert_eq!(
                crate::demo_summary(std::slice::from_ref(&c1)),
                crate::demo_summary(std::slice::from_ref(original))
            );
            let (f1, f2) = (full_urls(&c1), full_urls(&c2));
            let own1: HashSet<&String> = f1.iter().filter(|f| !full_urls(original).contains(*f)).collect();
            assert_eq!(own1.len(), own.len(), "every own fullUrl is new");
            assert!(own1.iter().all(|f| !f2.contains(*f)), "copies 1 and 2 share an id");
            let mut refs = Vec::new();
            references(&c1, &mut refs);
            assert_eq!(refs.len(), original_refs.len());
            for r in &refs {
                assert!(f1.contains(r) || outside.contains(r), "dangling {r}");
            }
            let patient = c1["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["resource"]["resourceType"] == "Patient")
                .map(|e| &e["resource"]);
            let family = patient.and_then(|p| p["name"][0]["family"].as_str()).unwrap_or_default();
            assert!(family.ends_with("-1"), "{family}");
            let originals: HashSet<&str> = original["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["resource"]["resourceType"] == "Patient")
                .flat_map(|e| e["resource"]["identifier"].as_array().into_iter().flatten())
                .filter_map(|i| i["value"].as_str())
                .collect();
            for i in patient.and_then(|p| p["identifier"].as_array()).into_iter().flatten() {
                assert!(!originals.contains(i["value"].as_str().unwrap_or_default()), "identifier kept: {i}");
            }
        }
    }

    #[test]
    fn path_ids() {
        assert_eq!(path_id("Patient/abc"), Some("abc"));
        assert_eq!(path_id("http://x/fhir/Patient/abc/_history/2"), Some("abc"));
        assert_eq!(path_id("Patient"), None);
        assert_eq!(path_id("http://x/fhir/metadata"), None);
    }
}
