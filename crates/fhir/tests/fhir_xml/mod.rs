//! FHIR XML to FHIR JSON, for test cases that are written in XML. The definitions say which
//! elements repeat (JSON arrays), which primitives are JSON numbers or booleans, which element
//! holds XHTML (kept as its source text) and where resources nest.

use fhir::{Child, NodeId, Primitive, TypeClass, definitions};
use roxmltree::Node;
use serde_json::{Map, Value};

/// The JSON of a resource element (`<Patient xmlns="http://hl7.org/fhir">…`).
pub fn resource(el: Node<'_, '_>) -> Result<Value, String> {
    let rt = el.tag_name().name();
    let root = definitions().root(rt).ok_or_else(|| format!("'{rt}' is not a resource type"))?;
    let mut obj = Map::new();
    obj.insert("resourceType".into(), Value::String(rt.to_owned()));
    fill(&mut obj, el, root)?;
    Ok(Value::Object(obj))
}

/// What an element holds, as the definitions say.
enum Holds {
    Elements(NodeId),
    Resource,
    Primitive(Option<Primitive>),
}

fn holds(child: Child) -> Holds {
    let defs = definitions();
    let source = defs.node(child.node).reuse.unwrap_or(child.node);
    let d = defs.node(source);
    if child.choice_type.is_none() && !d.children.is_empty() {
        return Holds::Elements(source);
    }
    match d.class(child.choice_type) {
        TypeClass::Complex(root) => Holds::Elements(root),
        TypeClass::Resource => Holds::Resource,
        TypeClass::Primitive(p) => Holds::Primitive(Some(p)),
        // Resource.id and the like are System types: strings in JSON.
        TypeClass::Unknown => Holds::Primitive(None),
    }
}

/// Adds the attributes and child elements of `el` (whose children are defined at `ty`) to `obj`.
fn fill(obj: &mut Map<String, Value>, el: Node<'_, '_>, ty: NodeId) -> Result<(), String> {
    let defs = definitions();
    let def = defs.definition_of(ty);
    for attr in el.attributes() {
        match attr.name() {
            "id" | "url" => {
                obj.insert(attr.name().to_owned(), Value::String(attr.value().to_owned()));
            }
            // A primitive's value is read by the caller.
            "value" => {}
            other => return Err(format!("unexpected attribute '{other}' on {}", def.path)),
        }
    }
    for child in el.children().filter(Node::is_element) {
        let name = child.tag_name().name();
        let c = *def.children.get(name).ok_or_else(|| format!("'{name}' is not an element of {}", def.path))?;
        let (value, extra) = element(child, c)?;
        if defs.node(c.node).is_array() {
            let len = |obj: &Map<String, Value>, k: &str| obj.get(k).and_then(Value::as_array).map_or(0, Vec::len);
            let extras = format!("_{name}");
            let n = len(obj, name).max(len(obj, &extras));
            push_padded(obj, name, n, value.unwrap_or(Value::Null));
            if extra.is_some() || obj.contains_key(&extras) {
                push_padded(obj, &extras, n, extra.unwrap_or(Value::Null));
            }
        } else {
            if let Some(v) = value {
                obj.insert(name.to_owned(), v);
            }
            if let Some(x) = extra {
                obj.insert(format!("_{name}"), x);
            }
        }
    }
    // Extensions arrays of primitives run parallel to their values.
    let keys: Vec<String> = obj.keys().filter(|k| k.starts_with('_')).cloned().collect();
    for extras in keys {
        let n = obj.get(&extras[1..]).and_then(Value::as_array).map_or(0, Vec::len);
        if let Some(Value::Array(items)) = obj.get_mut(&extras)
            && items.len() < n
        {
            items.resize(n, Value::Null);
        }
    }
    Ok(())
}

fn push_padded(obj: &mut Map<String, Value>, key: &str, len: usize, value: Value) {
    let slot = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = slot {
        items.resize(len, Value::Null);
        items.push(value);
    }
}

/// The JSON value of one element and, for a primitive, its `_name` object.
fn element(el: Node<'_, '_>, c: Child) -> Result<(Option<Value>, Option<Value>), String> {
    let defs = definitions();
    match holds(c) {
        Holds::Elements(ty) => {
            let mut obj = Map::new();
            fill(&mut obj, el, ty)?;
            Ok((Some(Value::Object(obj)), None))
        }
        Holds::Resource => {
            let inner = el.children().find(Node::is_element).ok_or("a resource element holds no resource")?;
            Ok((Some(resource(inner)?), None))
        }
        Holds::Primitive(Some(Primitive::Xhtml)) => {
            let text = &el.document().input_text()[el.range()];
            Ok((Some(Value::String(text.to_owned())), None))
        }
        Holds::Primitive(p) => {
            let value = match el.attribute("value") {
                None => None,
                Some(text) => Some(match p {
                    Some(Primitive::Boolean) => Value::Bool(text == "true"),
                    Some(Primitive::Integer | Primitive::PositiveInt | Primitive::UnsignedInt | Primitive::Decimal) => {
                        serde_json::from_str(text).map_err(|e| format!("'{text}' is not a number: {e}"))?
                    }
                    _ => Value::String(text.to_owned()),
                }),
            };
            let mut extras = Map::new();
            let element_root = defs.root("Element").ok_or("no Element definition")?;
            fill(&mut extras, el, element_root)?;
            Ok((value, (!extras.is_empty()).then_some(Value::Object(extras))))
        }
    }
}

/// XHTML compared by content: elements, attributes and text with whitespace collapsed, so
/// that a `div` written as an XML subtree and one given as an escaped string compare equal.
pub fn canonical_xhtml(text: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let mut out = String::new();
    write_canonical(doc.root_element(), &mut out);
    Some(out)
}

fn write_canonical(node: Node<'_, '_>, out: &mut String) {
    if node.is_text() {
        let words: Vec<&str> = node.text().unwrap_or_default().split_whitespace().collect();
        if !words.is_empty() {
            out.push_str(&words.join(" "));
            out.push(' ');
        }
        return;
    }
    if !node.is_element() {
        return;
    }
    out.push('<');
    out.push_str(node.tag_name().name());
    let mut attrs: Vec<String> = node.attributes().map(|a| format!(" {}={:?}", a.name(), a.value())).collect();
    attrs.sort();
    out.push_str(&attrs.concat());
    out.push('>');
    for child in node.children() {
        write_canonical(child, out);
    }
    out.push_str("</");
    out.push_str(node.tag_name().name());
    out.push('>');
}
