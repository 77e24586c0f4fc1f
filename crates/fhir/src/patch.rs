//! FHIRPath Patch (R4 fhirpatch.html): a Parameters resource of operations (add, insert,
//! delete, replace, move) whose paths are FHIRPath expressions, applied to a resource's JSON.
//!
//! [`Patch::from_parameters`] checks the document and parses every path before anything is
//! applied; [`Patch::apply`] works on a copy, so a failing operation leaves nothing half done.
//! Values are typed by the definitions: a `value[x]` part names its type (and so, for a choice
//! element, its JSON name), nested parts build an element child by child (the only way to give
//! an anonymous, backbone, value), and primitives keep their `_name` siblings aligned, in
//! arrays too. Paths are evaluated in strict mode, so a misspelt element is an error rather
//! than "nothing found".

use serde_json::{Map, Value};

use crate::definitions::{Child, NodeId, Primitive, TypeClass, upper_first};
use crate::fhirpath::{self, Context, ErrorKind, Expression, FhirType, Item, Location, Step};
use crate::{Error, TypeKind, definitions};

/// Why a patch failed: the document is not a valid FHIRPath Patch whatever it is applied to
/// (HTTP 400), or it is valid but does not apply to this resource (HTTP 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchErrorKind {
    Invalid,
    Unprocessable,
}

fn invalid(at: &str, message: impl Into<String>) -> Error {
    Error::Patch { kind: PatchErrorKind::Invalid, operation: at.to_owned(), message: message.into() }
}

fn unprocessable(at: &str, message: impl Into<String>) -> Error {
    Error::Patch { kind: PatchErrorKind::Unprocessable, operation: at.to_owned(), message: message.into() }
}

/// A parsed FHIRPath Patch document.
#[derive(Debug, Clone)]
pub struct Patch {
    operations: Vec<Operation>,
}

#[derive(Debug, Clone)]
struct Operation {
    /// Where the operation is in the document: `Parameters.parameter[2]`.
    at: String,
    path: Expression,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    Add { name: String, value: Content },
    Insert { index: usize, value: Content },
    Delete,
    Replace { value: Content },
    Move { source: usize, destination: usize },
}

/// A value as the Parameters carry it.
#[derive(Debug, Clone)]
enum Content {
    /// A `value[x]` (or a `resource`): its FHIR type, its JSON, and a primitive's `_value[x]`.
    Typed { type_code: String, json: Option<Value>, extra: Option<Value> },
    /// Parts named after the element's children, each with its own content.
    Parts(Vec<(String, Content)>),
}

const PART_NAMES: [&str; 7] = ["type", "path", "name", "value", "index", "source", "destination"];

impl Patch {
    /// Reads a FHIRPath Patch from a Parameters resource: every `parameter` is an `operation`
    /// with the parts its type needs, and every path parses.
    pub fn from_parameters(parameters: &Value) -> Result<Patch, Error> {
        match parameters.get("resourceType").and_then(Value::as_str) {
            Some("Parameters") => {}
            Some(other) => {
                return Err(invalid("Parameters", format!("a FHIRPath Patch is a Parameters resource, not a {other}")));
            }
            None => {
                return Err(invalid(
                    "Parameters",
                    "a FHIRPath Patch is a Parameters resource; the body has no resourceType",
                ));
            }
        }
        let params = match parameters.get("parameter") {
            None => &[][..],
            Some(Value::Array(items)) => items.as_slice(),
            Some(_) => return Err(invalid("Parameters.parameter", "Parameters.parameter must be an array")),
        };
        let operations = params
            .iter()
            .enumerate()
            .map(|(i, p)| parse_operation(&format!("Parameters.parameter[{i}]"), p))
            .collect::<Result<_, _>>()?;
        Ok(Patch { operations })
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Applies the operations in order to a copy of `resource` and returns the result; the
    /// first operation that fails stops everything. The result is not validated here.
    pub fn apply(&self, resource: &Value) -> Result<Value, Error> {
        let mut doc = resource.clone();
        for op in &self.operations {
            op.apply(&mut doc)?;
        }
        Ok(doc)
    }
}

fn parse_operation(at: &str, param: &Value) -> Result<Operation, Error> {
    let obj = param.as_object().ok_or_else(|| invalid(at, "a parameter must be a JSON object"))?;
    match obj.get("name").and_then(Value::as_str) {
        Some("operation") => {}
        Some(other) => {
            return Err(invalid(at, format!("a FHIRPath Patch has parameters named 'operation' only, not '{other}'")));
        }
        None => return Err(invalid(at, "the parameter has no name (it should be 'operation')")),
    }
    let mut parts: Vec<(&str, &Map<String, Value>)> = Vec::new();
    let raw_parts = match obj.get("part") {
        None => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(invalid(at, "part must be an array")),
    };
    for (j, part) in raw_parts.iter().enumerate() {
        let p = part.as_object().ok_or_else(|| invalid(at, format!("part[{j}] must be a JSON object")))?;
        let name =
            p.get("name").and_then(Value::as_str).ok_or_else(|| invalid(at, format!("part[{j}] has no name")))?;
        if !PART_NAMES.contains(&name) {
            return Err(invalid(at, format!("unknown part '{name}' (expected one of {})", PART_NAMES.join(", "))));
        }
        if parts.iter().any(|(n, _)| *n == name) {
            return Err(invalid(at, format!("the part '{name}' is given more than once")));
        }
        parts.push((name, p));
    }
    let part = |name: &str| parts.iter().find(|(n, _)| *n == name).map(|(_, p)| *p);
    let required = |name: &str, kind: &str| {
        part(name).ok_or_else(|| invalid(at, format!("a '{kind}' operation needs a '{name}' part")))
    };

    let kind = match part("type") {
        Some(p) => text_value(p).ok_or_else(|| invalid(at, "the 'type' part must hold a code (valueCode)"))?,
        None => return Err(invalid(at, "the operation has no 'type' part")),
    };
    let allowed: &[&str] = match kind {
        "add" => &["name", "value"],
        "insert" => &["index", "value"],
        "delete" => &[],
        "replace" => &["value"],
        "move" => &["source", "destination"],
        other => {
            return Err(invalid(
                at,
                format!("unknown operation type '{other}' (expected add, insert, delete, replace or move)"),
            ));
        }
    };
    if let Some((extra, _)) = parts.iter().find(|(n, _)| !matches!(*n, "type" | "path") && !allowed.contains(n)) {
        return Err(invalid(at, format!("the part '{extra}' does not belong to a '{kind}' operation")));
    }
    let path_text = text_value(required("path", kind)?)
        .ok_or_else(|| invalid(at, "the 'path' part must hold a FHIRPath expression (valueString)"))?;
    let path = fhirpath::parse(path_text)
        .map_err(|e| invalid(at, format!("the path '{path_text}' is not valid FHIRPath: {e}")))?;

    let value = |kind: &str| -> Result<Content, Error> {
        content(required("value", kind)?, at, "the 'value' part")?
            .ok_or_else(|| invalid(at, "the 'value' part holds no value (a value[x], a resource, or parts)"))
    };
    let integer = |name: &str, kind: &str| -> Result<usize, Error> {
        integer_value(required(name, kind)?)
            .ok_or_else(|| invalid(at, format!("the '{name}' part must hold an integer of 0 or more (valueInteger)")))
    };
    let action = match kind {
        "add" => {
            let name = text_value(required("name", kind)?)
                .ok_or_else(|| invalid(at, "the 'name' part must hold an element name (valueString)"))?;
            Action::Add { name: name.to_owned(), value: value(kind)? }
        }
        "insert" => Action::Insert { index: integer("index", kind)?, value: value(kind)? },
        "delete" => Action::Delete,
        "replace" => Action::Replace { value: value(kind)? },
        _ => Action::Move { source: integer("source", kind)?, destination: integer("destination", kind)? },
    };
    Ok(Operation { at: at.to_owned(), path, action })
}

/// The `value[x]` properties of a part: (JSON name, type suffix, value).
fn value_entries(part: &Map<String, Value>) -> impl Iterator<Item = (&str, &str, &Value)> {
    part.iter().filter_map(|(k, v)| {
        let suffix = k.strip_prefix("value")?;
        suffix.starts_with(|c: char| c.is_ascii_uppercase()).then_some((k.as_str(), suffix, v))
    })
}

fn text_value(part: &Map<String, Value>) -> Option<&str> {
    value_entries(part).find_map(|(_, _, v)| v.as_str())
}

fn integer_value(part: &Map<String, Value>) -> Option<usize> {
    value_entries(part).find_map(|(_, _, v)| v.as_u64()).and_then(|n| usize::try_from(n).ok())
}

/// The FHIR type a `value[x]` suffix names: `Date` is `date`, `CodeableConcept` itself.
fn type_of_suffix(suffix: &str) -> Option<String> {
    let mut chars = suffix.chars();
    let lower: String = chars.next().map(|c| c.to_ascii_lowercase()).into_iter().chain(chars).collect();
    if Primitive::from_name(&lower).is_some() {
        return Some(lower);
    }
    let t = definitions().type_def(suffix)?;
    (t.kind == TypeKind::ComplexType).then(|| t.name.clone())
}

/// The value a part carries: a `value[x]`, a `resource`, or nested parts; `None` when it
/// carries none.
fn content(part: &Map<String, Value>, at: &str, what: &str) -> Result<Option<Content>, Error> {
    let mut found = Vec::new();
    for (key, suffix, v) in value_entries(part) {
        let type_code =
            type_of_suffix(suffix).ok_or_else(|| invalid(at, format!("{what}: '{key}' names no FHIR data type")))?;
        found.push(Content::Typed { type_code, json: Some(v.clone()), extra: part.get(&format!("_{key}")).cloned() });
    }
    for (key, v) in part {
        // A primitive value that has only an id or extensions.
        if let Some(value_key) = key.strip_prefix('_')
            && let Some(suffix) = value_key.strip_prefix("value")
            && !part.contains_key(value_key)
        {
            let type_code = type_of_suffix(suffix)
                .ok_or_else(|| invalid(at, format!("{what}: '{key}' names no FHIR data type")))?;
            found.push(Content::Typed { type_code, json: None, extra: Some(v.clone()) });
        }
    }
    if let Some(resource) = part.get("resource") {
        let type_code = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .filter(|t| definitions().is_resource_type(t))
            .ok_or_else(|| invalid(at, format!("{what}: the resource has no known resourceType")))?;
        found.push(Content::Typed { type_code: type_code.to_owned(), json: Some(resource.clone()), extra: None });
    }
    if let Some(nested) = part.get("part") {
        let items = nested.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
            invalid(at, format!("{what}: 'part' must be a non-empty array of parts named after the element's children"))
        })?;
        let mut parts = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let p = item.as_object().ok_or_else(|| invalid(at, format!("{what}: part[{j}] must be a JSON object")))?;
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(at, format!("{what}: part[{j}] has no name")))?;
            let inner = format!("{what}, part '{name}'");
            let value = content(p, at, &inner)?.ok_or_else(|| invalid(at, format!("{inner} holds no value")))?;
            parts.push((name.to_owned(), value));
        }
        found.push(Content::Parts(parts));
    }
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(invalid(at, format!("{what} holds more than one value"))),
    }
}

/// An element selected by a path: where it is and its FHIR type.
struct Found {
    location: Location,
    ty: FhirType,
}

/// A repeating element: the object holding it, its JSON name and how many items it has.
struct List {
    parent: Vec<Step>,
    name: String,
    len: usize,
}

impl Operation {
    fn apply(&self, doc: &mut Value) -> Result<(), Error> {
        match &self.action {
            Action::Add { name, value } => self.add(doc, name, value),
            Action::Insert { index, value } => self.insert(doc, *index, value),
            Action::Delete => self.delete(doc),
            Action::Replace { value } => self.replace(doc, value),
            Action::Move { source, destination } => self.move_item(doc, *source, *destination),
        }
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        unprocessable(&self.at, message)
    }

    fn select(&self, path: &Expression, doc: &Value) -> Result<Vec<Found>, Error> {
        let ctx = Context::new(doc).strict(true);
        let items = path.evaluate(&ctx).map_err(|e| match e {
            Error::FhirPath { kind: ErrorKind::Syntax | ErrorKind::Semantic, .. } => {
                invalid(&self.at, format!("the path '{}' is not valid here: {e}", path.text()))
            }
            e => self.fail(format!("the path '{}' could not be evaluated: {e}", path.text())),
        })?;
        let mut nodes = Vec::with_capacity(items.len());
        for item in &items {
            let Item::Node(node) = item else {
                return Err(self.fail(format!(
                    "the path '{}' selects a computed {} value, not an element of the resource",
                    path.text(),
                    item.type_name()
                )));
            };
            nodes.push(*node);
        }
        let locations = fhirpath::locate_all(doc, &nodes);
        nodes
            .iter()
            .zip(locations)
            .map(|(node, location)| {
                let location = location.ok_or_else(|| {
                    self.fail(format!(
                        "the path '{}' selects something outside the resource being patched (resolve() may only reach contained resources)",
                        path.text()
                    ))
                })?;
                Ok(Found { location, ty: node.ty })
            })
            .collect()
    }

    /// The one element the path selects, for operations that need exactly one.
    fn one(&self, doc: &Value, verb: &str) -> Result<Found, Error> {
        let mut found = self.select(&self.path, doc)?;
        match found.len() {
            0 => Err(self.fail(format!("No content found at {} when {verb}", self.path.text()))),
            1 => Ok(found.remove(0)),
            n => Err(self.fail(format!(
                "Multiple elements ({n}) found at {} when {verb}; the path must select exactly one",
                self.path.text()
            ))),
        }
    }

    /// The list the path selects: all the items of one repeating element, or, when there are
    /// none yet, the element named at the end of the path in the one element that holds it.
    fn list(&self, doc: &Value, verb: &str) -> Result<List, Error> {
        let text = self.path.text();
        let found = self.select(&self.path, doc)?;
        if found.is_empty() {
            let no_content = || self.fail(format!("No content found at {text} when {verb}"));
            let (holder_path, name) = self.path.parent_and_name().ok_or_else(no_content)?;
            let holders = self.select(&holder_path, doc)?;
            let [holder] = holders.as_slice() else { return Err(no_content()) };
            let (FhirType::Complex { def, .. } | FhirType::Resource { def: Some(def), .. }) = holder.ty else {
                return Err(no_content());
            };
            let d = definitions().definition_of(def);
            match d.children.get(name) {
                Some(c) if c.choice_type.is_none() && definitions().node(c.node).is_array() => {}
                _ => {
                    return Err(
                        self.fail(format!("'{name}' is not a repeating element of {}; {verb} needs a list", d.path))
                    );
                }
            }
            return Ok(List { parent: holder.location.steps(false), name: name.to_owned(), len: 0 });
        }
        let mut list: Option<(&Vec<Step>, &String)> = None;
        let mut indices = Vec::with_capacity(found.len());
        for f in &found {
            let Location::Element { parent, name, index: Some(i) } = &f.location else {
                return Err(self
                    .fail(format!("the path '{text}' selects an element that does not repeat; {verb} needs a list")));
            };
            match list {
                None => list = Some((parent, name)),
                Some((p, n)) if p == parent && n == name => {}
                Some(_) => {
                    return Err(
                        self.fail(format!("the path '{text}' selects items of several lists; {verb} needs one"))
                    );
                }
            }
            indices.push(*i);
        }
        let Some((parent, name)) = list else {
            return Err(self.fail(format!("No content found at {text} when {verb}")));
        };
        let len = object_ref(doc, parent).map_or(0, |obj| list_len(obj, name));
        indices.sort_unstable();
        indices.dedup();
        if indices.len() != len {
            return Err(self.fail(format!(
                "the path '{text}' selects {} of the {len} items of the list; {verb} works on the whole list (its indexes count every item)",
                indices.len()
            )));
        }
        Ok(List { parent: parent.clone(), name: name.clone(), len })
    }

    fn object_at<'v>(&self, doc: &'v mut Value, steps: &[Step]) -> Result<&'v mut Map<String, Value>, Error> {
        get_mut(doc, steps).and_then(Value::as_object_mut).ok_or_else(|| {
            self.fail(format!("the path '{}' does not lead to an element that holds others", self.path.text()))
        })
    }

    fn add(&self, doc: &mut Value, name: &str, value: &Content) -> Result<(), Error> {
        let found = self.one(doc, "adding")?;
        let defs = definitions();
        // A primitive's own elements (id, extension) live in its `_name` sibling.
        let (ty, on_primitive) = match found.ty {
            FhirType::Primitive(_) => (defs.element_root(), true),
            FhirType::Complex { def, .. } | FhirType::Resource { def: Some(def), .. } => (Some(def), false),
            _ => (None, false),
        };
        let ty = ty.ok_or_else(|| self.fail(format!("the type of {} is not known", self.path.text())))?;
        let (key, child) = resolve_child(ty, name, value).map_err(|m| self.fail(m))?;
        let (json, extra) = build(value, child).map_err(|m| self.fail(m))?;
        let steps = if on_primitive {
            ensure_extras(doc, &found.location).ok_or_else(|| self.fail("the primitive's extensions are malformed"))?
        } else {
            found.location.steps(false)
        };
        let obj = self.object_at(doc, &steps)?;
        let node = defs.node(child.node);
        if node.is_array() {
            let len = list_len(obj, &key);
            insert_at(obj, &key, len, json, extra);
        } else {
            if let Some(existing) =
                node.json_names.iter().find(|n| obj.contains_key(n.as_str()) || obj.contains_key(&format!("_{n}")))
            {
                return Err(self.fail(format!(
                    "{} already has {existing}: add only puts a value where there is none (use replace)",
                    self.path.text()
                )));
            }
            set_single(obj, &key, json, extra);
        }
        Ok(())
    }

    fn replace(&self, doc: &mut Value, value: &Content) -> Result<(), Error> {
        let found = self.one(doc, "replacing")?;
        let Location::Element { parent, name, index } = &found.location else {
            return Err(self.fail("replace cannot replace the resource itself (use an update)"));
        };
        let (key, child) = self.element_of(doc, parent, name, value)?;
        let (json, extra) = build(value, child).map_err(|m| self.fail(m))?;
        let obj = self.object_at(doc, parent)?;
        match index {
            Some(i) => set_at(obj, name, *i, json, extra),
            None => {
                let extras = format!("_{name}");
                let pos = obj.keys().position(|k| *k == *name || *k == extras).unwrap_or(obj.len());
                obj.shift_remove(name.as_str());
                obj.shift_remove(&extras);
                let mut pos = pos.min(obj.len());
                if let Some(j) = json {
                    obj.shift_insert(pos, key.clone(), j);
                    pos += 1;
                }
                if let Some(x) = extra {
                    obj.shift_insert(pos, format!("_{key}"), x);
                }
            }
        }
        Ok(())
    }

    fn delete(&self, doc: &mut Value) -> Result<(), Error> {
        let mut found = self.select(&self.path, doc)?;
        let found = match found.len() {
            0 => return Ok(()),
            1 => found.remove(0),
            n => {
                return Err(self.fail(format!(
                    "Multiple elements ({n}) found at {} when deleting; delete removes one element",
                    self.path.text()
                )));
            }
        };
        let Location::Element { parent, name, index } = found.location else {
            return Err(self.fail("delete cannot remove the resource itself (use a delete interaction)"));
        };
        let obj = self.object_at(doc, &parent)?;
        match index {
            Some(i) => remove_at(obj, &name, i),
            None => {
                obj.shift_remove(name.as_str());
                obj.shift_remove(&format!("_{name}"));
            }
        }
        prune(doc, parent);
        Ok(())
    }

    fn insert(&self, doc: &mut Value, index: usize, value: &Content) -> Result<(), Error> {
        let list = self.list(doc, "inserting")?;
        if index > list.len {
            return Err(self.fail(format!(
                "the index {index} is past the end of {} ({} items; at most {} inserts at the end)",
                self.path.text(),
                list.len,
                list.len
            )));
        }
        let (_, child) = self.element_of(doc, &list.parent, &list.name, value)?;
        let (json, extra) = build(value, child).map_err(|m| self.fail(m))?;
        let obj = self.object_at(doc, &list.parent)?;
        insert_at(obj, &list.name, index, json, extra);
        Ok(())
    }

    fn move_item(&self, doc: &mut Value, source: usize, destination: usize) -> Result<(), Error> {
        let list = self.list(doc, "moving")?;
        for (what, i) in [("source", source), ("destination", destination)] {
            if i >= list.len {
                return Err(self.fail(format!(
                    "the {what} index {i} is outside {} ({} items, indexes 0 to {})",
                    self.path.text(),
                    list.len,
                    list.len.saturating_sub(1)
                )));
            }
        }
        let obj = self.object_at(doc, &list.parent)?;
        let len = list.len;
        for key in [list.name.clone(), format!("_{}", list.name)] {
            if obj.get(&key).is_some_and(Value::is_array)
                && let Some(items) = array_mut(obj, &key, len)
            {
                let item = items.remove(source);
                items.insert(destination, item);
            }
        }
        Ok(())
    }

    /// The definition of element `name` in the object at `parent`, and the JSON name a value
    /// goes under (for a choice element, the one its type gives).
    fn element_of(&self, doc: &Value, parent: &[Step], name: &str, value: &Content) -> Result<(String, Child), Error> {
        let defs = definitions();
        let ty =
            type_at(doc, parent).ok_or_else(|| self.fail(format!("the type of {} is not known", self.path.text())))?;
        let child = *defs
            .definition_of(ty)
            .children
            .get(name)
            .ok_or_else(|| self.fail(format!("'{name}' is not an element of {}", defs.definition_of(ty).path)))?;
        if child.choice_type.is_some() {
            resolve_child(ty, &defs.node(child.node).name, value).map_err(|m| self.fail(m))
        } else {
            Ok((name.to_owned(), child))
        }
    }
}

// ---------------------------------------------------------------- types

/// What an element holds: other elements (defined at a node), a resource, or a primitive.
enum Holds {
    Elements(NodeId),
    Resource,
    Primitive(Primitive),
    Unknown,
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
        TypeClass::Primitive(p) => Holds::Primitive(p),
        TypeClass::Unknown => Holds::Unknown,
    }
}

fn resource_def(v: &Value) -> Option<NodeId> {
    v.get("resourceType").and_then(Value::as_str).and_then(|t| definitions().root(t))
}

/// The definition node whose children apply to the object at `steps`.
fn type_at(doc: &Value, steps: &[Step]) -> Option<NodeId> {
    let defs = definitions();
    let mut value = doc;
    let mut ty = resource_def(doc);
    let mut resource_here = false;
    for step in steps {
        match step {
            Step::Index(i) => value = value.get(*i)?,
            Step::Key(k) => {
                value = value.get(k.as_str())?;
                if k.starts_with('_') {
                    ty = defs.element_root();
                } else {
                    let child = *defs.definition_of(ty?).children.get(k.as_str())?;
                    match holds(child) {
                        Holds::Elements(id) => ty = Some(id),
                        Holds::Resource => resource_here = true,
                        Holds::Primitive(_) | Holds::Unknown => ty = None,
                    }
                }
            }
        }
        if resource_here && value.is_object() {
            ty = resource_def(value);
            resource_here = false;
        }
    }
    if resource_here { None } else { ty }
}

/// The child `name` of the elements defined at `ty`, and its JSON name: `name` itself, or,
/// for a choice element named without its type (`deceased`), the name the value's type gives
/// (`deceasedBoolean`).
fn resolve_child(ty: NodeId, name: &str, value: &Content) -> Result<(String, Child), String> {
    let defs = definitions();
    let d = defs.definition_of(ty);
    if let Some(c) = d.children.get(name) {
        return Ok((name.to_owned(), *c));
    }
    let is_choice = d.children.values().any(|c| c.choice_type.is_some() && defs.node(c.node).name == name);
    if !is_choice {
        return Err(format!("'{name}' is not an element of {}", d.path));
    }
    let Content::Typed { type_code, .. } = value else {
        return Err(format!("{}.{name}[x] is a choice of types: give its value as a value[x] naming one", d.path));
    };
    let key = format!("{name}{}", upper_first(type_code));
    match d.children.get(&key) {
        Some(c) => Ok((key, *c)),
        None => Err(format!("{type_code} is not one of the types of {}.{name}[x]", d.path)),
    }
}

/// Whether a value of one type may stand where another is declared: the same type, two
/// primitives (the validator then checks the lexical rules of the declared one), or types
/// derived one from the other (`Age` and `Quantity`).
fn fits(value: &str, declared: &str) -> bool {
    // `Resource.id` and a few others are declared with System types.
    let primitive = |t: &str| Primitive::from_name(t).is_some() || t.starts_with("http://hl7.org/fhirpath/System.");
    value == declared
        || (primitive(value) && primitive(declared))
        || derives(value, declared)
        || derives(declared, value)
}

fn derives(name: &str, ancestor: &str) -> bool {
    let defs = definitions();
    let mut current = name;
    for _ in 0..12 {
        if current == ancestor {
            return true;
        }
        match defs.type_def(current).and_then(|t| t.base.as_deref()) {
            Some(base) => current = base,
            None => return false,
        }
    }
    false
}

/// The JSON a value becomes as the element `child`: the value and a primitive's `_name` object.
fn build(value: &Content, child: Child) -> Result<(Option<Value>, Option<Value>), String> {
    let defs = definitions();
    let node = defs.node(child.node);
    let source = defs.definition_of(child.node);
    let declared = source.types.get(child.choice_type.unwrap_or(0)).map(|t| t.code.as_str());
    match (value, holds(child)) {
        (Content::Typed { .. }, Holds::Elements(_)) if child.choice_type.is_none() && !source.children.is_empty() => {
            Err(format!(
                "{} is an anonymous type (a backbone element): give its value as parts named after its elements",
                node.path
            ))
        }
        (Content::Typed { type_code, .. }, Holds::Resource) if !defs.is_resource_type(type_code) => {
            Err(format!("{} holds a resource, not a {type_code}", node.path))
        }
        (Content::Typed { type_code, json, extra }, holds) => {
            if !matches!(holds, Holds::Resource)
                && let Some(declared) = declared
                && !fits(type_code, declared)
            {
                return Err(format!("a {type_code} does not fit {}, which is a {declared}", node.path));
            }
            Ok((json.clone(), extra.clone()))
        }
        (Content::Parts(parts), Holds::Elements(ty)) => {
            let mut obj = Map::new();
            for (part_name, part) in parts {
                let (key, c) = resolve_child(ty, part_name, part)?;
                let (json, extra) = build(part, c)?;
                let part_node = defs.node(c.node);
                if part_node.is_array() {
                    let len = list_len(&obj, &key);
                    insert_at(&mut obj, &key, len, json, extra);
                } else if part_node
                    .json_names
                    .iter()
                    .any(|n| obj.contains_key(n.as_str()) || obj.contains_key(&format!("_{n}")))
                {
                    return Err(format!(
                        "the part '{part_name}' is given twice but {} does not repeat",
                        part_node.path
                    ));
                } else {
                    set_single(&mut obj, &key, json, extra);
                }
            }
            Ok((Some(Value::Object(obj)), None))
        }
        (Content::Parts(_), Holds::Primitive(p)) => {
            Err(format!("{} is a {}: give its value as a value[x], not as parts", node.path, p.name()))
        }
        (Content::Parts(_), _) => Err(format!("{} holds a resource: give it as the part's resource", node.path)),
    }
}

// ---------------------------------------------------------------- JSON edits

fn get_mut<'v>(doc: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(doc, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

fn object_ref<'v>(doc: &'v Value, steps: &[Step]) -> Option<&'v Map<String, Value>> {
    steps
        .iter()
        .try_fold(doc, |v, step| match step {
            Step::Key(k) => v.get(k.as_str()),
            Step::Index(i) => v.get(*i),
        })
        .and_then(Value::as_object)
}

/// How many items a repeating element has (a primitive's may have only extensions).
fn list_len(obj: &Map<String, Value>, name: &str) -> usize {
    let len = |k: &str| obj.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    len(name).max(len(&format!("_{name}")))
}

/// The array under `key`, created or padded with nulls to `len` items (a single value, which
/// a repeating element should not have, becomes the first item).
fn array_mut<'m>(obj: &'m mut Map<String, Value>, key: &str, len: usize) -> Option<&'m mut Vec<Value>> {
    let slot = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        let single = std::mem::take(slot);
        *slot = Value::Array(if single.is_null() { Vec::new() } else { vec![single] });
    }
    let items = slot.as_array_mut()?;
    if items.len() < len {
        items.resize(len, Value::Null);
    }
    Some(items)
}

/// Puts a value and a primitive's `_name` object under a non-repeating element, the
/// extensions right after the value.
fn set_single(obj: &mut Map<String, Value>, key: &str, json: Option<Value>, extra: Option<Value>) {
    if let Some(j) = json {
        obj.insert(key.to_owned(), j);
    }
    if let Some(x) = extra {
        let extras = format!("_{key}");
        match obj.keys().position(|k| k == key) {
            Some(pos) if !obj.contains_key(&extras) => {
                obj.shift_insert(pos + 1, extras, x);
            }
            _ => {
                obj.insert(extras, x);
            }
        }
    }
}

/// Inserts an item into a repeating element, keeping a primitive's `_name` array parallel.
fn insert_at(obj: &mut Map<String, Value>, name: &str, index: usize, json: Option<Value>, extra: Option<Value>) {
    let len = list_len(obj, name);
    let extras = format!("_{name}");
    let has_extras = obj.get(&extras).is_some_and(Value::is_array);
    if let Some(items) = array_mut(obj, name, len) {
        items.insert(index, json.unwrap_or(Value::Null));
    }
    if (has_extras || extra.is_some())
        && let Some(items) = array_mut(obj, &extras, len)
    {
        items.insert(index, extra.unwrap_or(Value::Null));
    }
    tidy(obj, name);
}

/// Replaces the item at `index` of a repeating element (and its `_name` entry).
fn set_at(obj: &mut Map<String, Value>, name: &str, index: usize, json: Option<Value>, extra: Option<Value>) {
    let len = list_len(obj, name).max(index + 1);
    let extras = format!("_{name}");
    if let Some(slot) = array_mut(obj, name, len).and_then(|items| items.get_mut(index)) {
        *slot = json.unwrap_or(Value::Null);
    }
    if (extra.is_some() || obj.get(&extras).is_some_and(Value::is_array))
        && let Some(slot) = array_mut(obj, &extras, len).and_then(|items| items.get_mut(index))
    {
        *slot = extra.unwrap_or(Value::Null);
    }
    tidy(obj, name);
}

fn remove_at(obj: &mut Map<String, Value>, name: &str, index: usize) {
    for key in [name.to_owned(), format!("_{name}")] {
        if let Some(Value::Array(items)) = obj.get_mut(&key)
            && index < items.len()
        {
            items.remove(index);
        }
    }
    tidy(obj, name);
}

/// Keeps a repeating primitive's arrays valid FHIR JSON: items that are null in both go, an
/// `_name` array of nulls goes, and a `name` array goes when it is empty or (without
/// extensions) all null. Empty arrays and `_name` objects of any element go too.
fn tidy(obj: &mut Map<String, Value>, name: &str) {
    let extras = format!("_{name}");
    let arrays = obj.get(name).is_some_and(Value::is_array) || obj.get(&extras).is_some_and(Value::is_array);
    if arrays {
        let null_at = |obj: &Map<String, Value>, k: &str, i: usize| {
            obj.get(k).and_then(Value::as_array).is_none_or(|a| a.get(i).is_none_or(Value::is_null))
        };
        let len = list_len(obj, name);
        let gone: Vec<usize> = (0..len).filter(|&i| null_at(obj, name, i) && null_at(obj, &extras, i)).collect();
        for key in [name, extras.as_str()] {
            if let Some(Value::Array(items)) = obj.get_mut(key) {
                for &i in gone.iter().rev() {
                    if i < items.len() {
                        items.remove(i);
                    }
                }
            }
        }
        if obj.get(&extras).and_then(Value::as_array).is_some_and(|a| a.iter().all(Value::is_null)) {
            obj.shift_remove(&extras);
        }
        let values_gone = obj
            .get(name)
            .and_then(Value::as_array)
            .is_some_and(|a| a.is_empty() || (a.iter().all(Value::is_null) && !obj.contains_key(&extras)));
        if values_gone {
            obj.shift_remove(name);
        }
    }
    if obj.get(&extras).and_then(Value::as_object).is_some_and(Map::is_empty) {
        obj.shift_remove(&extras);
    }
}

/// Creates a primitive's `_name` object (in its `_name` array for a repeating one) if it has
/// none, and returns the steps to it.
fn ensure_extras(doc: &mut Value, location: &Location) -> Option<Vec<Step>> {
    let Location::Element { parent, name, index } = location else { return None };
    let obj = get_mut(doc, parent)?.as_object_mut()?;
    let extras = format!("_{name}");
    match index {
        None => {
            if !obj.contains_key(&extras) {
                set_single(obj, name, None, Some(Value::Object(Map::new())));
            }
            let slot = obj.get_mut(&extras)?;
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            slot.is_object().then_some(())?;
        }
        Some(i) => {
            let len = list_len(obj, name);
            let slot = array_mut(obj, &extras, len)?.get_mut(*i)?;
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            slot.is_object().then_some(())?;
        }
    }
    Some(location.steps(true))
}

/// Removes what a deletion left empty, from the object at `steps` upwards: FHIR JSON has no
/// empty objects or arrays. An emptied primitive extension object in an `_name` array becomes
/// null, to keep the array parallel to the values.
fn prune(doc: &mut Value, mut steps: Vec<Step>) {
    loop {
        let empty = match object_ref(doc, &steps) {
            Some(obj) => obj.is_empty(),
            None => false,
        };
        if !empty || steps.is_empty() {
            return;
        }
        match steps.pop() {
            Some(Step::Key(key)) => {
                if let Some(Value::Object(obj)) = get_mut(doc, &steps) {
                    obj.shift_remove(&key);
                    tidy(obj, key.strip_prefix('_').unwrap_or(&key));
                }
            }
            Some(Step::Index(i)) => {
                let Some(Step::Key(key)) = steps.pop() else { return };
                if let Some(Value::Object(obj)) = get_mut(doc, &steps) {
                    match key.strip_prefix('_') {
                        Some(base) => {
                            if let Some(slot) = obj.get_mut(&key).and_then(|a| a.get_mut(i)) {
                                *slot = Value::Null;
                            }
                            tidy(obj, base);
                        }
                        None => remove_at(obj, &key, i),
                    }
                }
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests;
