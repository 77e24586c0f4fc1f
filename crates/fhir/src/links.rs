//! Links inside a resource that a transaction must rewrite (R4 http.html#trules): references,
//! values of the uri family, and `href`/`src` in the narrative. Found by walking the resource
//! with its definition, so only elements that really are references or URIs are touched.

use serde_json::{Map, Value};

use crate::definitions::{Definitions, NodeId, Primitive, TypeClass, definitions};
use crate::path::Path;

/// What kind of element a link sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `Reference.reference`.
    Reference,
    /// A value of type uri, url, canonical, oid or uuid.
    Uri,
    /// An `href` or `src` attribute in the narrative.
    Narrative,
}

/// Where a link was found; renders its FHIRPath on demand (the Reference element for a
/// reference, the uri element for a uri, the `div` for the narrative).
pub struct LinkSite<'a> {
    pub kind: LinkKind,
    path: &'a Path<'a>,
}

impl LinkSite<'_> {
    pub fn expression(&self) -> String {
        self.path.render()
    }
}

type MapFn<'f> = dyn FnMut(&str, &LinkSite) -> Option<String> + 'f;

/// Calls `map` for every link in a resource that a transaction must rewrite (R4
/// http.html#trules): `Reference.reference` values, values of elements of type
/// uri/url/canonical/oid/uuid, and `href`/`src` attributes in the narrative xhtml, in contained
/// and nested resources too; where `map` returns `Some(new)`, the value is replaced.
pub fn rewrite_links(resource: &mut Value, map: &mut dyn FnMut(&str) -> Option<String>) {
    rewrite_links_with(resource, &mut |link, _site| map(link));
}

/// [`rewrite_links`], telling `map` what kind of element each link sits in and where.
pub fn rewrite_links_with(resource: &mut Value, map: &mut MapFn<'_>) {
    let rt = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_owned();
    let defs = definitions();
    if let (Some(root), Value::Object(obj)) = (defs.root(&rt), resource) {
        walk_object(defs, obj, root, &Path::Root(&rt), map);
    }
}

/// Every `Reference.reference` string in the resource (contained and nested resources
/// included), each as `(reference, expression)` where `expression` is the FHIRPath of its
/// Reference element, e.g. `("Patient/1", "Observation.subject")`.
pub fn references(resource: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let defs = definitions();
    let rt = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
    if let (Some(root), Value::Object(obj)) = (defs.root(rt), resource) {
        find_references(defs, obj, root, &Path::Root(rt), &mut found);
    }
    found
}

fn walk_object(defs: &Definitions, obj: &mut Map<String, Value>, def: NodeId, path: &Path, map: &mut MapFn<'_>) {
    let node = defs.definition_of(def);
    for (key, value) in obj.iter_mut() {
        let Some(child) = node.children.get(key.as_str()) else { continue };
        let field = Path::Field(path, key);
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    walk_value(defs, item, child.node, child.choice_type, &Path::Index(&field, i), map);
                }
            }
            other => walk_value(defs, other, child.node, child.choice_type, &field, map),
        }
    }
}

fn walk_value(
    defs: &Definitions,
    value: &mut Value,
    node_id: NodeId,
    choice: Option<usize>,
    path: &Path,
    map: &mut MapFn<'_>,
) {
    let def_id = defs.node(node_id).reuse.unwrap_or(node_id);
    let def = defs.node(def_id);
    if !def.children.is_empty() {
        if let Value::Object(obj) = value {
            walk_object(defs, obj, def_id, path, map);
        }
        return;
    }
    match (def.class(choice), value) {
        (TypeClass::Primitive(p), Value::String(s)) if p.is_uri_like() => {
            if let Some(new) = map(s, &LinkSite { kind: LinkKind::Uri, path }) {
                *s = new;
            }
        }
        (TypeClass::Primitive(Primitive::Xhtml), Value::String(s)) => rewrite_narrative(s, path, map),
        (TypeClass::Resource, Value::Object(obj)) => {
            let rt = obj.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some(root) = defs.root(&rt) {
                walk_object(defs, obj, root, path, map);
            }
        }
        (TypeClass::Complex(root), Value::Object(obj)) => {
            let is_reference = def.types.get(choice.unwrap_or(0)).is_some_and(|t| t.code == "Reference");
            if is_reference
                && let Some(Value::String(r)) = obj.get_mut("reference")
                && let Some(new) = map(r, &LinkSite { kind: LinkKind::Reference, path })
            {
                *r = new;
            }
            walk_object(defs, obj, root, path, map);
        }
        _ => {}
    }
}

fn find_references(
    defs: &Definitions,
    obj: &Map<String, Value>,
    def: NodeId,
    path: &Path,
    out: &mut Vec<(String, String)>,
) {
    let node = defs.definition_of(def);
    for (key, value) in obj {
        let Some(child) = node.children.get(key.as_str()) else { continue };
        let field = Path::Field(path, key);
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    find_in_value(defs, item, child.node, child.choice_type, &Path::Index(&field, i), out);
                }
            }
            other => find_in_value(defs, other, child.node, child.choice_type, &field, out),
        }
    }
}

fn find_in_value(
    defs: &Definitions,
    value: &Value,
    node_id: NodeId,
    choice: Option<usize>,
    path: &Path,
    out: &mut Vec<(String, String)>,
) {
    let def_id = defs.node(node_id).reuse.unwrap_or(node_id);
    let def = defs.node(def_id);
    let Value::Object(obj) = value else { return };
    if !def.children.is_empty() {
        return find_references(defs, obj, def_id, path, out);
    }
    match def.class(choice) {
        TypeClass::Resource => {
            let rt = obj.get("resourceType").and_then(Value::as_str).unwrap_or_default();
            if let Some(root) = defs.root(rt) {
                find_references(defs, obj, root, path, out);
            }
        }
        TypeClass::Complex(root) => {
            if def.types.get(choice.unwrap_or(0)).is_some_and(|t| t.code == "Reference")
                && let Some(r) = obj.get("reference").and_then(Value::as_str)
            {
                out.push((r.to_owned(), path.render()));
            }
            find_references(defs, obj, root, path, out);
        }
        _ => {}
    }
}

/// Rewrites `href="…"` and `src="…"` attribute values in narrative XHTML.
fn rewrite_narrative(div: &mut String, path: &Path, map: &mut MapFn<'_>) {
    let mut out = String::with_capacity(div.len());
    let mut rest = div.as_str();
    let mut changed = false;
    while let Some(at) = find_attribute(rest) {
        let (before, after) = rest.split_at(at.value_start);
        out.push_str(before);
        let value = &after[..at.value_len];
        match map(value, &LinkSite { kind: LinkKind::Narrative, path }) {
            Some(new) => {
                changed = true;
                out.push_str(&new);
            }
            None => out.push_str(value),
        }
        rest = &after[at.value_len..];
    }
    if changed {
        out.push_str(rest);
        *div = out;
    }
}

struct Attribute {
    value_start: usize,
    value_len: usize,
}

/// The first `href`/`src` attribute value in the text: the name must follow whitespace (so
/// `data-href` and prose do not count) and the value must be quoted.
fn find_attribute(text: &str) -> Option<Attribute> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while from < text.len() {
        let rest = &text[from..];
        let href = rest.find("href=");
        let src = rest.find("src=");
        let (pos, len) = match (href, src) {
            (Some(h), Some(s)) if s < h => (s, 4),
            (Some(h), _) => (h, 5),
            (None, Some(s)) => (s, 4),
            (None, None) => return None,
        };
        let at = from + pos;
        let quote_at = at + len;
        let preceded = at > 0 && bytes[at - 1].is_ascii_whitespace();
        if preceded && let Some(&quote @ (b'"' | b'\'')) = bytes.get(quote_at) {
            let value_start = quote_at + 1;
            let value_len = bytes[value_start..].iter().position(|b| *b == quote)?;
            return Some(Attribute { value_start, value_len });
        }
        from = at + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "urn:uuid:1", "display": "urn:uuid:1"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:1\">href=\"urn:uuid:1\"</a><img src='urn:uuid:1'/><a data-href=\"urn:uuid:1\">x</a></div>"},
            "meta": {"profile": ["urn:uuid:1"]},
            "implicitRules": "urn:uuid:1",
            "note": [{"text": "urn:uuid:1"}],
            "valueString": "urn:uuid:1",
            "extension": [{"url": "http://e/x", "valueUri": "urn:uuid:1"}],
            "contained": [{"resourceType": "Patient", "id": "c", "link": [{"other": {"reference": "urn:uuid:1"}, "type": "seealso"}]}]})
    }

    #[test]
    fn rewrites_references_uris_and_narrative_only() {
        let mut obs = sample();
        rewrite_links(&mut obs, &mut |link| (link == "urn:uuid:1").then(|| "Patient/p".to_owned()));
        assert_eq!(obs["subject"]["reference"], "Patient/p");
        assert_eq!(obs["subject"]["display"], "urn:uuid:1", "display is a string, not a link");
        assert_eq!(obs["contained"][0]["link"][0]["other"]["reference"], "Patient/p");
        assert_eq!(obs["meta"]["profile"][0], "Patient/p");
        assert_eq!(obs["implicitRules"], "Patient/p");
        assert_eq!(obs["extension"][0]["valueUri"], "Patient/p");
        assert_eq!(obs["extension"][0]["url"], "http://e/x", "unmapped links stay");
        assert_eq!(
            obs["text"]["div"],
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"Patient/p\">href=\"urn:uuid:1\"</a><img src='Patient/p'/><a data-href=\"urn:uuid:1\">x</a></div>"
        );
        assert_eq!(obs["note"][0]["text"], "urn:uuid:1", "plain strings are not links");
        assert_eq!(obs["valueString"], "urn:uuid:1");
    }

    #[test]
    fn rewrite_sites_tell_kind_and_place() {
        let mut obs = sample();
        let mut seen = Vec::new();
        rewrite_links_with(&mut obs, &mut |link, site| {
            seen.push((site.kind, site.expression(), link.to_owned()));
            None
        });
        assert!(seen.contains(&(LinkKind::Reference, "Observation.subject".into(), "urn:uuid:1".into())));
        assert!(seen.contains(&(LinkKind::Uri, "Observation.meta.profile[0]".into(), "urn:uuid:1".into())));
        assert!(seen.contains(&(LinkKind::Uri, "Observation.extension[0].valueUri".into(), "urn:uuid:1".into())));
        assert!(seen.contains(&(LinkKind::Narrative, "Observation.text.div".into(), "urn:uuid:1".into())));
        assert!(seen.contains(&(
            LinkKind::Reference,
            "Observation.contained[0].link[0].other".into(),
            "urn:uuid:1".into()
        )));
        assert_eq!(obs, sample(), "returning None changes nothing");
    }

    #[test]
    fn references_report_their_path() {
        let claim = json!({"resourceType": "Claim", "patient": {"reference": "Patient?identifier=a|b"},
            "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "#cov"}}],
            "contained": [{"resourceType": "Coverage", "id": "cov", "beneficiary": {"reference": "Patient/9"}}]});
        let refs = references(&claim);
        assert_eq!(
            refs,
            vec![
                ("Patient?identifier=a|b".to_owned(), "Claim.patient".to_owned()),
                ("#cov".to_owned(), "Claim.insurance[0].coverage".to_owned()),
                ("Patient/9".to_owned(), "Claim.contained[0].beneficiary".to_owned()),
            ]
        );
        let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
             "valueQuantity": {"value": 1}, "subject": {"reference": "Patient/1"}}}]});
        assert_eq!(references(&bundle), vec![("Patient/1".to_owned(), "Bundle.entry[0].resource.subject".to_owned())]);
    }
}
