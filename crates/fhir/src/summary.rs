//! `_summary` and `_elements` (search.html#summary, #elements): a resource reduced to some of
//! its elements, marked `SUBSETTED` so that no one mistakes it for the whole.

use serde_json::{Map, Value, json};

use crate::definitions::{NodeId, definitions};

/// The `_summary` forms that change a resource (`count` and `false` do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryMode {
    /// Elements marked isSummary in the definitions.
    True,
    /// `text`, `id`, `meta` and the mandatory top-level elements.
    Text,
    /// Everything but `text`.
    Data,
}

const SUBSETTED: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// The resource in the given summary form.
pub fn summarize(resource: &Value, mode: SummaryMode) -> Value {
    let Value::Object(obj) = resource else { return resource.clone() };
    let defs = definitions();
    let rt = obj.get("resourceType").and_then(Value::as_str).unwrap_or_default();
    let Some(root) = defs.root(rt) else { return resource.clone() };
    let out = match mode {
        SummaryMode::Data => {
            let mut o = obj.clone();
            o.remove("text");
            o
        }
        SummaryMode::Text => keep(obj, root, |name, node| {
            matches!(name, "resourceType" | "id" | "meta" | "text") || node.is_some_and(|n| defs.node(n).min > 0)
        }),
        SummaryMode::True => summary_elements(obj, root),
    };
    mark_subsetted(out)
}

/// The resource with only the named top-level elements, plus those every resource needs
/// (`resourceType`, `id`, `meta`) and the mandatory ones.
pub fn elements(resource: &Value, names: &[String]) -> Value {
    let Value::Object(obj) = resource else { return resource.clone() };
    let defs = definitions();
    let rt = obj.get("resourceType").and_then(Value::as_str).unwrap_or_default();
    let Some(root) = defs.root(rt) else { return resource.clone() };
    // `_elements=value` asks for a choice element by its FHIRPath name.
    let wanted = |key: &str, node: Option<NodeId>| {
        names.iter().any(|n| n == key || node.is_some_and(|id| defs.node(id).name == *n))
    };
    let out = keep(obj, root, |name, node| {
        matches!(name, "resourceType" | "id" | "meta")
            || wanted(name, node)
            || node.is_some_and(|n| defs.node(n).min > 0)
    });
    mark_subsetted(out)
}

/// The top-level elements (and `_x` siblings of primitives) that pass.
fn keep(obj: &Map<String, Value>, root: NodeId, pass: impl Fn(&str, Option<NodeId>) -> bool) -> Map<String, Value> {
    let defs = definitions();
    let node = defs.definition_of(root);
    obj.iter()
        .filter(|(k, _)| {
            let name = k.strip_prefix('_').unwrap_or(k);
            pass(name, node.children.get(name).map(|c| c.node))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Summary elements, recursively through backbone elements (whose children have their own
/// flags); data-type values are kept whole.
fn summary_elements(obj: &Map<String, Value>, def: NodeId) -> Map<String, Value> {
    let defs = definitions();
    let node = defs.definition_of(def);
    let mut out = Map::new();
    for (k, v) in obj {
        if matches!(k.as_str(), "resourceType" | "id" | "meta") {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let name = k.strip_prefix('_').unwrap_or(k);
        let Some(child) = node.children.get(name) else { continue };
        let child_node = defs.node(child.node);
        if !child_node.summary && child_node.min == 0 {
            continue;
        }
        let backbone = !defs.definition_of(child.node).children.is_empty()
            && child_node.types.first().is_some_and(|t| t.code == "BackboneElement" || t.code == "Element");
        let value = match (backbone, v) {
            (true, Value::Object(o)) => Value::Object(summary_elements(o, child.node)),
            (true, Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .map(|i| match i {
                        Value::Object(o) => Value::Object(summary_elements(o, child.node)),
                        other => other.clone(),
                    })
                    .collect(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), value);
    }
    out
}

fn mark_subsetted(mut obj: Map<String, Value>) -> Value {
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    if let Value::Object(m) = meta {
        let tags = m.entry("tag").or_insert_with(|| json!([]));
        if let Value::Array(list) = tags
            && !list.iter().any(|t| t.get("code").and_then(Value::as_str) == Some("SUBSETTED"))
        {
            list.push(json!({"system": SUBSETTED, "code": "SUBSETTED"}));
        }
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Value {
        json!({"resourceType": "Patient", "id": "p", "meta": {"versionId": "1"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "name": [{"family": "A"}], "gender": "male", "photo": [{"contentType": "image/png"}],
            "contact": [{"name": {"family": "B"}, "gender": "female"}]})
    }

    #[test]
    fn summary_true_keeps_summary_elements_only() {
        let s = summarize(&patient(), SummaryMode::True);
        assert!(s.get("name").is_some() && s.get("gender").is_some());
        assert!(s.get("photo").is_none() && s.get("text").is_none() && s.get("contact").is_none());
        assert_eq!(s["meta"]["tag"][0]["code"], "SUBSETTED");
        assert_eq!(s["meta"]["versionId"], "1");
    }

    #[test]
    fn text_data_and_elements() {
        let t = summarize(&patient(), SummaryMode::Text);
        assert!(t.get("text").is_some() && t.get("name").is_none());
        let d = summarize(&patient(), SummaryMode::Data);
        assert!(d.get("text").is_none() && d.get("photo").is_some());
        let e = elements(&patient(), &["gender".to_owned()]);
        let keys: Vec<&String> = e.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(keys, ["resourceType", "id", "meta", "gender"]);
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueString": "v", "note": [{"text": "n"}]});
        let e = elements(&obs, &["value".to_owned()]);
        assert!(e.get("valueString").is_some() && e.get("status").is_some() && e.get("note").is_none());
    }
}
