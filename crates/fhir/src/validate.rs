//! Validation of resources against the base R4 StructureDefinitions: elements, cardinality,
//! JSON shape, primitive rules, choice types, contained and nested resources, extensions,
//! reference targets, required bindings, fixed/pattern values and the FHIRPath invariants of
//! the elements present (see [`crate::invariants`]: which are interpreted, which are checked
//! natively, which are skipped). Every issue carries the FHIRPath of its element.
//!
//! The structural walk allocates nothing on the good path: the location of an element is a
//! chain of stack frames ([`Path`]) rendered to a string only when an issue is reported there.
//! Invariants are evaluated over the JSON in place.

use serde_json::{Map, Value};

use crate::definitions::{Definitions, Node, NodeId, Primitive, TypeClass, definitions};
use crate::fhirpath::{self, FhirType, Item};
use crate::invariants::{self, Scope};
use crate::outcome::Issue;
use crate::path::Path;
use crate::primitives;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Leave `Bundle.entry.resource` alone (transaction processing validates each entry itself).
    pub skip_bundle_entry_resources: bool,
    /// Report invariants of severity `warning` too (as warnings). Off for writes, which only
    /// fail on errors and should not spend time on warnings; `$validate` asks for them.
    pub warnings: bool,
}

/// Validates a resource; returns every problem found (an empty list when it conforms).
pub fn validate(resource: &Value, options: &Options) -> Vec<Issue> {
    let mut v = Validator {
        defs: definitions(),
        options,
        issues: Vec::new(),
        containers: Vec::new(),
        scopes: Vec::new(),
        invariant_table: invariants::table(),
        invariant_mask: invariants::mask(options.warnings),
    };
    let root_name = resource.get("resourceType").and_then(Value::as_str).unwrap_or("Resource");
    v.resource(resource, &Path::Root(root_name), Nesting::Top);
    v.issues
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nesting {
    Top,
    Contained,
    Inline,
}

/// At most this many distinct choice elements per object are tracked for the "only one
/// value[x]" rule; R4's most (ElementDefinition) has 5.
const CHOICES_TRACKED: usize = 16;

struct Validator<'a, 'v> {
    defs: &'static Definitions,
    options: &'a Options,
    issues: Vec<Issue>,
    /// Each enclosing resource that may contain others (not a contained one), innermost last.
    containers: Vec<Container<'v>>,
    /// `%resource` and `%rootResource` of each enclosing resource, innermost last.
    scopes: Vec<Scope<'v>>,
    invariant_table: &'static invariants::Table,
    /// Which invariants [`Validator::wanted`] asks for: errors, and warnings when reported.
    invariant_mask: u8,
}

/// A resource's `contained` resources, and what refers to them (for `#id` references and dom-3).
struct Container<'v> {
    contained: &'v [Value],
    /// The ids that `#id` references, canonicals and uris name, anywhere in the resource.
    referenced: Vec<&'v str>,
    /// The contained resources that refer to their container (`#`), by index.
    refer_back: Vec<usize>,
    /// The contained resource being walked, by index.
    current: Option<usize>,
}

impl<'v> Validator<'_, 'v> {
    fn error(&mut self, code: &str, path: &Path, message: impl Into<String>) {
        self.issues.push(Issue::error(code, message).at(path.render()));
    }

    /// A natively checked invariant failed (a warning one is reported only when asked for).
    fn invariant(&mut self, key: &str, path: &Path) {
        let issue = invariants::failed(key);
        if issue.is_error() || self.options.warnings {
            self.issues.push(issue.at(path.render()));
        }
    }

    /// Whether an element has interpreted invariants to evaluate (most have none).
    #[inline]
    fn wanted(&self, node: NodeId) -> bool {
        self.invariant_table.wanted(node, self.invariant_mask)
    }

    /// Evaluates the interpreted invariants of the elements `nodes` on a value of type `ty`.
    /// Kept out of line (as are the native checks below) so that the walk's hot functions
    /// stay small.
    #[inline(never)]
    fn invariants(&mut self, nodes: &[NodeId], value: &'v Value, ty: FhirType, path: &Path) {
        let Some(scope) = self.scopes.last() else { return };
        let at = || path.render();
        let focus = Item::Node(fhirpath::Node { value: Some(value), extra: None, ty });
        invariants::check(nodes, focus, scope, self.options.warnings, &at, &mut self.issues);
    }

    /// Local references in canonicals, uris and urls (for dom-3); txt-2 on the narrative.
    #[inline(never)]
    fn native_primitive_invariants(&mut self, p: Primitive, value: &'v Value, path: &Path) {
        let Some(text) = value.as_str() else { return };
        if p == Primitive::Xhtml {
            if !invariants::narrative_has_content(text) {
                self.invariant("txt-2", path);
            }
        } else if let Some(local) = text.strip_prefix('#') {
            self.local_reference(local);
        }
    }

    /// per-1.
    #[inline(never)]
    fn period(&mut self, obj: &Map<String, Value>, path: &Path) {
        if !invariants::period_ordered(obj) {
            self.invariant("per-1", path);
        }
    }

    /// Notes a local reference (`#id`, or `#` for the container) for dom-3.
    fn local_reference(&mut self, local: &'v str) {
        let Some(frame) = self.containers.last_mut() else { return };
        if local.is_empty() {
            if let Some(i) = frame.current {
                frame.refer_back.push(i);
            }
        } else {
            frame.referenced.push(local);
        }
    }

    fn resource(&mut self, value: &'v Value, path: &Path, nesting: Nesting) {
        let Some(obj) = value.as_object() else {
            return self.error("structure", path, "a resource must be a JSON object");
        };
        let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
            return self.error("required", path, "the resource has no resourceType");
        };
        if !self.defs.is_resource_type(rt) {
            return self.error("not-supported", path, format!("'{rt}' is not a FHIR R4 resource type"));
        }
        let Some(root) = self.defs.root(rt) else {
            return self.error("not-supported", path, format!("no definition for {rt}"));
        };
        // The definitions' own name of the type, for the FHIRPath item.
        let name = self.defs.node(root).path.as_str();
        let item = Item::Node(fhirpath::Node {
            value: Some(value),
            extra: None,
            ty: FhirType::Resource { name, def: Some(root) },
        });
        let mut outer = None;
        if nesting == Nesting::Contained {
            if !obj.contains_key("id") {
                self.error("required", path, "a contained resource must have an id (dom-3)");
            }
            if obj.contains_key("contained") {
                self.error("invalid", path, "a contained resource must not contain resources itself (dom-2)");
            }
            for key in invariants::contained_meta(obj) {
                self.invariant(key, path);
            }
            if let Some(frame) = self.containers.last_mut() {
                outer = Some(frame.current);
                frame.current = frame.contained.iter().position(|c| std::ptr::eq(c, value));
            }
        }
        // %rootResource is the container of a contained resource, else the resource itself.
        let root_item = match (nesting, self.scopes.last()) {
            (Nesting::Contained, Some(container)) => container.resource.clone(),
            _ => item.clone(),
        };
        self.scopes.push(Scope { resource: item, root: root_item });
        // A contained resource resolves `#id` against its container's siblings.
        let pushed = nesting != Nesting::Contained;
        if pushed {
            let contained = obj.get("contained").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            self.containers.push(Container {
                contained,
                referenced: Vec::new(),
                refer_back: Vec::new(),
                current: None,
            });
        }
        self.object(obj, root, path, true);
        if self.wanted(root) {
            self.invariants(&[root], value, FhirType::Resource { name, def: Some(root) }, path);
        }
        if rt == "Bundle" {
            for failure in invariants::bundle(obj) {
                let entry = Path::Index(&Path::Field(path, "entry"), failure.entry);
                if failure.key == "bdl-7" {
                    // The Bundle as a whole is at fault (a batch fails whole, not by entry).
                    let issue = invariants::failed(failure.key).at(path.render());
                    self.issues.push(issue.at(Path::Field(&entry, "fullUrl").render()));
                } else {
                    self.invariant(failure.key, &entry);
                }
            }
        }
        // Narrative is for the resources that stand alone: a contained resource's is its
        // container's.
        if self.options.warnings
            && nesting != Nesting::Contained
            && obj.get("text").is_none_or(|t| t.get("div").is_none())
            && self.defs.constraints(root).iter().any(|c| c.key == "dom-6")
        {
            self.invariant("dom-6", path);
        }
        if pushed && let Some(frame) = self.containers.pop() {
            self.unreferenced_contained(&frame, path);
        }
        if let (Some(outer), Some(frame)) = (outer, self.containers.last_mut()) {
            frame.current = outer;
        }
        self.scopes.pop();
    }

    /// dom-3: every contained resource is referenced from its container, or refers to it.
    fn unreferenced_contained(&mut self, frame: &Container<'v>, path: &Path) {
        for (i, c) in frame.contained.iter().enumerate() {
            let Some(id) = c.get("id").and_then(Value::as_str) else { continue };
            if !frame.referenced.contains(&id) && !frame.refer_back.contains(&i) {
                self.invariant("dom-3", &Path::Index(&Path::Field(path, "contained"), i));
            }
        }
    }

    /// Validates an object against the children of a definition node.
    fn object(&mut self, obj: &'v Map<String, Value>, def: NodeId, path: &Path, is_resource: bool) {
        let defs = self.defs;
        let node = defs.node(def);
        if obj.is_empty() {
            return self.error("structure", path, "an empty object is not allowed in FHIR JSON (omit the element)");
        }
        let mut choices = [0 as NodeId; CHOICES_TRACKED];
        let mut choice_count = 0;
        let mut has_value_choice = false;
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            if let Some(base) = key.strip_prefix('_') {
                match node.children.get(base) {
                    Some(child) if is_primitive(defs, child.node, child.choice_type) => {
                        let paired = obj.get(base);
                        self.primitive_extension(value, paired, defs.node(child.node), &Path::Field(path, key));
                    }
                    _ => self.error("structure", &Path::Field(path, key), format!("unknown element '{key}'")),
                }
                continue;
            }
            let Some(child) = node.children.get(key.as_str()) else {
                self.error("structure", &Path::Field(path, key), format!("unknown element '{key}'"));
                continue;
            };
            let child_node = defs.node(child.node);
            if child_node.is_choice {
                has_value_choice |= child_node.name == "value";
                if choices[..choice_count].contains(&child.node) {
                    let others: Vec<&str> = child_node
                        .json_names
                        .iter()
                        .map(String::as_str)
                        .filter(|n| *n != key && obj.contains_key(*n))
                        .collect();
                    self.error(
                        "structure",
                        &Path::Field(path, key),
                        format!(
                            "only one of {}[x] may be present, but '{key}' comes with '{}'",
                            child_node.name,
                            others.join("', '")
                        ),
                    );
                    continue;
                }
                if choice_count < CHOICES_TRACKED {
                    choices[choice_count] = child.node;
                    choice_count += 1;
                }
            }
            self.occurrences(obj, key, value, child.node, child.choice_type, &Path::Field(path, key));
        }
        for &required in &node.required {
            let missing = defs.node(required);
            if !is_present(obj, missing) {
                let name = if missing.is_choice { format!("{}[x]", missing.name) } else { missing.name.clone() };
                self.error(
                    "required",
                    &Path::Field(path, &missing.name),
                    format!("missing required element '{name}' ({})", missing.path),
                );
            }
        }
        if Some(def) == defs.extension_root() && has_value_choice && obj.contains_key("extension") {
            self.error("invariant", path, "an extension has either a value[x] or nested extensions, not both (ext-1)");
        }
    }

    /// Checks array-ness and cardinality, then each value.
    fn occurrences(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        value: &'v Value,
        node_id: NodeId,
        choice: Option<usize>,
        path: &Path,
    ) {
        let node = self.defs.node(node_id);
        if node.is_array() {
            let Some(items) = value.as_array() else {
                return self.error("structure", path, format!("'{key}' can repeat, so it must be a JSON array"));
            };
            if items.is_empty() {
                return self.error("structure", path, "an empty array is not allowed in FHIR JSON (omit the element)");
            }
            if let Some(max) = node.max
                && items.len() > max as usize
            {
                self.error("structure", path, format!("'{key}' allows at most {max} values, found {}", items.len()));
            }
            if items.len() < node.min as usize {
                let min = node.min;
                self.error("required", path, format!("'{key}' needs at least {min} values, found {}", items.len()));
            }
            for (i, item) in items.iter().enumerate() {
                let at = Path::Index(path, i);
                if item.is_null() {
                    // Only a primitive array may hold null, where `_key` carries that item's
                    // id/extension instead.
                    let paired = is_primitive(self.defs, node_id, choice)
                        && obj
                            .get(&format!("_{key}"))
                            .and_then(Value::as_array)
                            .and_then(|e| e.get(i))
                            .is_some_and(|e| !e.is_null());
                    if !paired {
                        self.error(
                            "structure",
                            &at,
                            "null is only allowed in a primitive array whose _element carries that item's extension",
                        );
                    }
                    continue;
                }
                self.value(item, node_id, choice, &at);
            }
        } else if value.is_array() {
            self.error("structure", path, format!("'{key}' does not repeat, so it must not be an array"));
        } else if value.is_null() {
            self.error("structure", path, "null is not allowed here (omit the element)");
        } else {
            self.value(value, node_id, choice, path);
        }
    }

    fn value(&mut self, value: &'v Value, node_id: NodeId, choice: Option<usize>, path: &Path) {
        let defs = self.defs;
        let own = defs.node(node_id);
        let def_id = own.reuse.unwrap_or(node_id);
        let def: &Node = defs.node(def_id);
        if !def.children.is_empty() {
            // A backbone element, defined inline.
            let Some(obj) = value.as_object() else {
                return self.error("structure", path, "must be a JSON object");
            };
            if !invariants::has_children(obj) {
                self.invariant("ele-1", path);
            }
            self.object(obj, def_id, path, false);
            if self.wanted(node_id) {
                let name = def.types.first().map_or("BackboneElement", |t| t.code.as_str());
                self.invariants(&[node_id], value, FhirType::Complex { name, def: def_id }, path);
            }
        } else {
            match def.class(choice) {
                TypeClass::Primitive(p) => {
                    if let Err(message) = primitives::check(defs, p, value) {
                        return self.error("value", path, message);
                    }
                    match p {
                        Primitive::Code => self.check_code(def, value.as_str(), None, path),
                        Primitive::Canonical | Primitive::Uri | Primitive::Url | Primitive::Xhtml => {
                            self.native_primitive_invariants(p, value, path);
                        }
                        _ => {}
                    }
                    // A primitive's invariants read its value (`_name` extensions are not
                    // given to them: no R4 invariant on a primitive element looks at those).
                    if self.wanted(node_id) {
                        self.invariants(&[node_id], value, FhirType::Primitive(p), path);
                    }
                }
                TypeClass::Resource => return self.nested_resource(value, def, path),
                TypeClass::Complex(root) => {
                    let code = def.types.get(choice.unwrap_or(0)).map_or("", |t| t.code.as_str());
                    let Some(obj) = value.as_object() else {
                        return self.error("structure", path, format!("a {code} must be a JSON object"));
                    };
                    if !invariants::has_children(obj) {
                        self.invariant("ele-1", path);
                    }
                    self.object(obj, root, path, false);
                    match code {
                        "Reference" => {
                            let targets = def.types.get(choice.unwrap_or(0)).map_or(&[][..], |t| t.targets.as_slice());
                            self.check_reference(obj, targets, path);
                        }
                        "Coding" => {
                            let system = obj.get("system").and_then(Value::as_str);
                            self.check_code(def, obj.get("code").and_then(Value::as_str), Some(system), path);
                        }
                        "CodeableConcept" => self.check_concept(def, obj, path),
                        "Period" => self.period(obj, path),
                        _ => {}
                    }
                    if self.wanted(node_id) || self.wanted(root) {
                        self.invariants(&[node_id, root], value, FhirType::Complex { name: code, def: root }, path);
                    }
                }
                TypeClass::Unknown => {}
            }
        }
        if let Some(fixed) = own.fixed.as_ref().or(def.fixed.as_ref())
            && value != fixed
        {
            self.error("value", path, format!("must be exactly {fixed}"));
        }
        if let Some(pattern) = own.pattern.as_ref().or(def.pattern.as_ref())
            && !matches_pattern(value, pattern)
        {
            self.error("value", path, format!("must match the pattern {pattern}"));
        }
    }

    fn nested_resource(&mut self, value: &'v Value, def: &Node, path: &Path) {
        let nesting = if def.path.ends_with(".contained") { Nesting::Contained } else { Nesting::Inline };
        if self.options.skip_bundle_entry_resources && def.path == "Bundle.entry.resource" {
            return;
        }
        self.resource(value, path, nesting);
    }

    /// `_name`: a primitive's id and extensions (an array of them, null where an item has none,
    /// for a repeating primitive).
    /// `paired` is the primitive's own value (`name` beside `_name`), if there is one.
    fn primitive_extension(&mut self, value: &'v Value, paired: Option<&'v Value>, node: &Node, path: &Path) {
        let Some(element) = self.defs.element_root() else { return };
        let check = |this: &mut Self, v: &'v Value, has_value: bool, at: &Path| match v.as_object() {
            Some(obj) => {
                // ele-1: with no value, a primitive needs an extension.
                if !has_value && !obj.is_empty() && !invariants::has_children(obj) {
                    this.invariant("ele-1", at);
                }
                this.object(obj, element, at, false)
            }
            None => this.error("structure", at, "a primitive's _element must be an object with id and/or extension"),
        };
        if node.is_array() {
            match value.as_array() {
                Some(items) => {
                    let values = paired.and_then(Value::as_array);
                    for (i, item) in items.iter().enumerate() {
                        if !item.is_null() {
                            let has_value = values.and_then(|v| v.get(i)).is_some_and(|v| !v.is_null());
                            check(self, item, has_value, &Path::Index(path, i));
                        }
                    }
                }
                None => self.error("structure", path, "must be an array matching the repeating element"),
            }
        } else {
            check(self, value, paired.is_some_and(|v| !v.is_null()), path);
        }
    }

    /// A `code` or a Coding's code under a required binding.
    fn check_code(&mut self, node: &Node, code: Option<&str>, system: Option<Option<&str>>, path: &Path) {
        let (Some(vs), Some(code)) = (node.required_value_set, code) else { return };
        let vs = self.defs.value_set_at(vs);
        let system = system.flatten();
        if system.is_some_and(|s| !vs.has_system(s)) || !vs.contains(system, code) {
            let shown = match system {
                Some(s) => format!("{s}|{code}"),
                None => code.to_owned(),
            };
            let url = &vs.url;
            self.error("code-invalid", path, format!("'{shown}' is not in the required value set {url}"));
        }
    }

    /// Under a required binding a CodeableConcept needs a Coding from the value set.
    fn check_concept(&mut self, node: &Node, obj: &Map<String, Value>, path: &Path) {
        let Some(vs) = node.required_value_set else { return };
        let vs = self.defs.value_set_at(vs);
        let codings = obj.get("coding").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        let ok = codings.iter().any(|c| {
            let system = c.get("system").and_then(Value::as_str);
            c.get("code").and_then(Value::as_str).is_some_and(|code| vs.contains(system, code))
        });
        if !ok {
            let url = &vs.url;
            self.error("code-invalid", path, format!("no coding is from the required value set {url}"));
        }
    }

    fn check_reference(&mut self, obj: &'v Map<String, Value>, targets: &[String], path: &Path) {
        let Some(reference) = obj.get("reference").and_then(Value::as_str) else { return };
        if let Some(local) = reference.strip_prefix('#') {
            self.local_reference(local);
            // `#` alone points at the container itself (ref-1, as R5 reads it).
            let known = local.is_empty()
                || self.containers.last().is_some_and(|frame| {
                    frame.contained.iter().any(|c| c.get("id").and_then(Value::as_str) == Some(local))
                });
            if !known {
                self.error(
                    "invalid",
                    &Path::Field(path, "reference"),
                    format!("'#{local}' names no contained resource"),
                );
            }
            return;
        }
        if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
            return;
        }
        let Some(target) = reference_type(reference) else {
            if !reference.contains(':') {
                self.error(
                    "invalid",
                    &Path::Field(path, "reference"),
                    format!("'{reference}' is not a reference of the form Type/id"),
                );
            }
            return;
        };
        if !self.defs.is_resource_type(target) {
            if !reference.contains("://") {
                self.error(
                    "invalid",
                    &Path::Field(path, "reference"),
                    format!("'{target}' in '{reference}' is not a resource type"),
                );
            }
            return;
        }
        let any = targets.is_empty() || targets.iter().any(|t| t == "Resource" || t == target);
        if !any {
            self.error(
                "invalid",
                path,
                format!("a reference to {target} is not allowed here (allowed: {})", targets.join(", ")),
            );
        }
    }
}

fn is_primitive(defs: &Definitions, node: NodeId, choice: Option<usize>) -> bool {
    let def = defs.definition_of(node);
    def.children.is_empty() && matches!(def.class(choice), TypeClass::Primitive(_))
}

/// Whether a required element is there: under one of its JSON names, or as `_name` alone (a
/// primitive given only by its extensions).
fn is_present(obj: &Map<String, Value>, node: &Node) -> bool {
    node.json_names.iter().any(|n| obj.contains_key(n.as_str()))
        || node.json_names.iter().any(|n| obj.contains_key(&format!("_{n}")))
}

/// FHIR pattern matching: every property of the pattern is in the value with a matching value;
/// every item of a pattern array is matched by some item of the value array.
fn matches_pattern(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => {
            p.iter().all(|(k, pv)| v.get(k).is_some_and(|vv| matches_pattern(vv, pv)))
        }
        (Value::Array(v), Value::Array(p)) => p.iter().all(|pv| v.iter().any(|vv| matches_pattern(vv, pv))),
        _ => value == pattern,
    }
}

/// The resource type a literal or conditional reference names: `Patient/1`,
/// `Patient/1/_history/2`, `http://server/fhir/Patient/1`, `Patient?identifier=…`.
pub fn reference_type(reference: &str) -> Option<&str> {
    if let Some((rt, _)) = reference.split_once('?')
        && !rt.contains('/')
    {
        return Some(rt);
    }
    let segments: Vec<&str> = reference.split('/').collect();
    let n = segments.len();
    if reference.contains("://") {
        let at = if n >= 4 && segments[n - 2] == "_history" { n.checked_sub(4)? } else { n.checked_sub(2)? };
        return segments.get(at).copied().filter(|s| s.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
    }
    match segments.as_slice() {
        [rt, _] | [rt, _, "_history", _] => Some(rt),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::outcome::Severity;
    use serde_json::json;

    fn errors(v: Value) -> Vec<Issue> {
        validate(&v, &Options::default()).into_iter().filter(Issue::is_error).collect()
    }

    fn assert_error_at(v: Value, code: &str, expr: &str) {
        let errs = errors(v.clone());
        assert!(
            errs.iter().any(|i| i.code == code && i.expression.iter().any(|e| e == expr)),
            "expected a '{code}' error at {expr} for {v}, got {errs:?}"
        );
    }

    fn obs(extra: Value) -> Value {
        let mut o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
        if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), extra) {
            o.extend(extra);
        }
        o
    }

    #[test]
    fn a_good_patient_passes() {
        let p = json!({"resourceType": "Patient", "id": "p1", "meta": {"profile": ["http://x/y"]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ada</div>"},
            "identifier": [{"system": "urn:mrn", "value": "1"}], "active": true,
            "name": [{"use": "official", "family": "Lovelace", "given": ["Ada", "King"]}],
            "gender": "female", "birthDate": "1815-12-10", "deceasedBoolean": false,
            "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1815-12-10T10:00:00Z"}]},
            "contact": [{"name": {"family": "Byron"}, "relationship": [{"text": "father"}]}],
            "managingOrganization": {"reference": "Organization/o1"}});
        assert_eq!(validate(&p, &Options::default()), vec![]);
    }

    #[test]
    fn bad_inputs_are_named() {
        let table: Vec<(&str, Value, &str, &str)> = vec![
            (
                "unknown element",
                json!({"resourceType": "Patient", "favouriteColour": "blue"}),
                "structure",
                "Patient.favouriteColour",
            ),
            (
                "unknown nested element",
                json!({"resourceType": "Patient", "name": [{"nickname": "x"}]}),
                "structure",
                "Patient.name[0].nickname",
            ),
            (
                "unknown _element",
                json!({"resourceType": "Patient", "_name": {"id": "x"}}),
                "structure",
                "Patient._name",
            ),
            (
                "missing required",
                json!({"resourceType": "Observation", "code": {"text": "x"}}),
                "required",
                "Observation.status",
            ),
            (
                "missing extension url",
                json!({"resourceType": "Patient", "extension": [{"valueString": "x"}]}),
                "required",
                "Patient.extension[0].url",
            ),
            (
                "array where max=1",
                json!({"resourceType": "Patient", "gender": ["female"]}),
                "structure",
                "Patient.gender",
            ),
            (
                "single where max=*",
                json!({"resourceType": "Patient", "name": {"family": "x"}}),
                "structure",
                "Patient.name",
            ),
            ("bad date", json!({"resourceType": "Patient", "birthDate": "10/12/1815"}), "value", "Patient.birthDate"),
            ("Feb 30", json!({"resourceType": "Patient", "birthDate": "2021-02-30"}), "value", "Patient.birthDate"),
            (
                "Feb 29 in a common year",
                json!({"resourceType": "Patient", "birthDate": "2023-02-29"}),
                "value",
                "Patient.birthDate",
            ),
            (
                "dateTime hour 25",
                obs(json!({"effectiveDateTime": "2021-04-01T25:00:00Z"})),
                "value",
                "Observation.effectiveDateTime",
            ),
            ("instant without zone", obs(json!({"issued": "2021-04-01T10:00:00"})), "value", "Observation.issued"),
            ("integer overflow", obs(json!({"valueInteger": 2_147_483_648_i64})), "value", "Observation.valueInteger"),
            (
                "integer beyond 64 bits",
                obs(
                    json!({"valueInteger": serde_json::from_str::<Value>("123456789012345678901234567890").expect("n")}),
                ),
                "value",
                "Observation.valueInteger",
            ),
            ("integer with fraction", obs(json!({"valueInteger": 1.5})), "value", "Observation.valueInteger"),
            (
                "positiveInt zero",
                json!({"resourceType": "Patient", "multipleBirthInteger": 1, "photo": [{"size": -1}]}),
                "value",
                "Patient.photo[0].size",
            ),
            (
                "decimal as string",
                obs(json!({"valueQuantity": {"value": "1"}})),
                "value",
                "Observation.valueQuantity.value",
            ),
            ("boolean as string", json!({"resourceType": "Patient", "active": "yes"}), "value", "Patient.active"),
            ("bad id", json!({"resourceType": "Patient", "id": "bad id"}), "value", "Patient.id"),
            ("id too long", json!({"resourceType": "Patient", "id": "x".repeat(65)}), "value", "Patient.id"),
            (
                "two value[x]",
                obs(json!({"valueString": "a", "valueBoolean": true})),
                "structure",
                "Observation.valueBoolean",
            ),
            ("wrong value[x] type", obs(json!({"valueCoding": {"code": "a"}})), "structure", "Observation.valueCoding"),
            (
                "bad code in required binding",
                json!({"resourceType": "Patient", "gender": "boy"}),
                "code-invalid",
                "Patient.gender",
            ),
            (
                "bad code in a data type's required binding",
                json!({"resourceType": "Patient", "identifier": [{"use": "nope"}]}),
                "code-invalid",
                "Patient.identifier[0].use",
            ),
            (
                "bad Quantity comparator",
                obs(json!({"valueQuantity": {"value": 1, "comparator": "~"}})),
                "code-invalid",
                "Observation.valueQuantity.comparator",
            ),
            (
                "CodeableConcept outside its required value set",
                json!({"resourceType": "Condition", "subject": {"reference": "Patient/1"},
                "clinicalStatus": {"coding": [{"system": "urn:other", "code": "active"}]}}),
                "code-invalid",
                "Condition.clinicalStatus",
            ),
            (
                "CodeableConcept with text only",
                json!({"resourceType": "Condition", "subject": {"reference": "Patient/1"},
                "clinicalStatus": {"text": "active"}}),
                "code-invalid",
                "Condition.clinicalStatus",
            ),
            (
                "wrong reference target",
                obs(json!({"subject": {"reference": "Medication/1"}})),
                "invalid",
                "Observation.subject",
            ),
            (
                "wrong absolute reference target",
                obs(json!({"subject": {"reference": "https://x.org/fhir/Medication/1/_history/2"}})),
                "invalid",
                "Observation.subject",
            ),
            (
                "reference to no resource type",
                obs(json!({"subject": {"reference": "Unicorn/1"}})),
                "invalid",
                "Observation.subject.reference",
            ),
            (
                "dangling local reference",
                json!({"resourceType": "Patient", "managingOrganization": {"reference": "#nothere"}}),
                "invalid",
                "Patient.managingOrganization.reference",
            ),
            (
                "contained without id",
                json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization"}]}),
                "required",
                "Patient.contained[0]",
            ),
            (
                "contained in contained",
                json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "contained": [{"resourceType": "Organization", "id": "p"}]}]}),
                "invalid",
                "Patient.contained[0]",
            ),
            (
                "contained resource itself invalid",
                json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "active": 1}]}),
                "value",
                "Patient.contained[0].active",
            ),
            (
                "empty string",
                json!({"resourceType": "Patient", "name": [{"given": [""]}]}),
                "value",
                "Patient.name[0].given[0]",
            ),
            ("null", json!({"resourceType": "Patient", "gender": null}), "structure", "Patient.gender"),
            (
                "null in a complex array",
                json!({"resourceType": "Patient", "name": [null]}),
                "structure",
                "Patient.name[0]",
            ),
            (
                "null without _element",
                json!({"resourceType": "Patient", "name": [{"given": ["a", null]}]}),
                "structure",
                "Patient.name[0].given[1]",
            ),
            ("empty array", json!({"resourceType": "Patient", "name": []}), "structure", "Patient.name"),
            ("empty object", json!({"resourceType": "Patient", "meta": {}}), "structure", "Patient.meta"),
            (
                "extension with value and extensions",
                json!({"resourceType": "Patient", "extension": [{"url": "u", "valueString": "x", "extension": [{"url": "v", "valueString": "y"}]}]}),
                "invariant",
                "Patient.extension[0]",
            ),
            (
                "modifierExtension without url",
                json!({"resourceType": "Patient", "modifierExtension": [{"valueBoolean": true}]}),
                "required",
                "Patient.modifierExtension[0].url",
            ),
            (
                "_element with a value",
                json!({"resourceType": "Patient", "_birthDate": {"value": "x"}}),
                "structure",
                "Patient._birthDate.value",
            ),
            (
                "narrative without namespace",
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>x</div>"}}),
                "value",
                "Patient.text.div",
            ),
            (
                "narrative with script",
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x</script></div>"}}),
                "value",
                "Patient.text.div",
            ),
            (
                "string with a vertical tab",
                json!({"resourceType": "Patient", "name": [{"family": "a\u{b}b"}]}),
                "value",
                "Patient.name[0].family",
            ),
            (
                "code with inner double space",
                json!({"resourceType": "Patient", "gender": "fe  male"}),
                "value",
                "Patient.gender",
            ),
            (
                "uri with a space",
                json!({"resourceType": "Patient", "identifier": [{"system": "urn:a b"}]}),
                "value",
                "Patient.identifier[0].system",
            ),
            (
                "resource is not an object",
                json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": [1]}]}),
                "structure",
                "Bundle.entry[0].resource",
            ),
            (
                "nested Bundle entry",
                json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "gender": "boy"}}]}),
                "code-invalid",
                "Bundle.entry[0].resource.gender",
            ),
            (
                "nested Parameters resource",
                json!({"resourceType": "Parameters", "parameter": [{"name": "p", "resource": {"resourceType": "Patient", "id": "a b"}}]}),
                "value",
                "Parameters.parameter[0].resource.id",
            ),
            (
                "questionnaire item via contentReference",
                json!({"resourceType": "Questionnaire", "status": "active", "item": [{"linkId": "1", "type": "group",
                "item": [{"linkId": "1.1", "type": "string", "item": [{"linkId": "1.1.1", "type": "boolean", "bogus": 1}]}]}]}),
                "structure",
                "Questionnaire.item[0].item[0].item[0].bogus",
            ),
        ];
        for (what, input, code, expr) in table {
            let errs = errors(input.clone());
            assert!(
                errs.iter().any(|i| i.code == code && i.expression.iter().any(|e| e == expr)),
                "{what}: expected a '{code}' error at {expr} for {input}, got {errs:?}"
            );
        }
    }

    #[test]
    fn resource_type_must_be_known_and_concrete() {
        for (input, code) in [
            (json!({"resourceType": "Unicorn"}), "not-supported"),
            (json!({"resourceType": "DomainResource"}), "not-supported"),
            (json!({"id": "x"}), "required"),
            (json!([1]), "structure"),
        ] {
            let errs = errors(input.clone());
            assert!(errs.iter().any(|i| i.code == code), "{input}: {errs:?}");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let p = json!({"resourceType": "Patient", "gender": "boy", "birthDate": "2021-02-30", "bogus": 1});
        let errs = errors(p);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().all(|i| i.severity == Severity::Error));
    }

    #[test]
    fn good_edge_cases_pass() {
        let cases = [
            // Repeating primitives may pair null with `_element` items.
            json!({"resourceType": "Patient", "name": [{"given": ["A", null], "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}]}]}),
            // A required primitive may be given by its extension alone.
            json!({"resourceType": "Observation", "_status": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}, "code": {"text": "x"}}),
            json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "name": "O"}], "managingOrganization": {"reference": "#o"}}),
            // A contained resource may point back at its container, or at a sibling.
            json!({"resourceType": "Patient", "id": "p", "contained": [{"resourceType": "Organization", "id": "o", "name": "O", "partOf": {"reference": "#o2"}},
                {"resourceType": "Organization", "id": "o2", "name": "O2"}, {"resourceType": "Group", "id": "g", "type": "person", "actual": true, "member": [{"entity": {"reference": "#"}}]}],
                "managingOrganization": {"reference": "#o"}}),
            obs(json!({"subject": {"reference": "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7"}})),
            obs(json!({"subject": {"reference": "Patient/1/_history/2"}})),
            obs(json!({"subject": {"reference": "http://x.org/fhir/Group/1"}})),
            obs(json!({"subject": {"reference": "Patient?identifier=http://x|1"}})),
            obs(json!({"subject": {"identifier": {"value": "1"}}})),
            obs(
                json!({"valueQuantity": {"value": 1.50, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}),
            ),
            obs(json!({"valueInteger": -2_147_483_648_i64})),
            // Any resource may be referenced where the target is Resource.
            json!({"resourceType": "Provenance", "target": [{"reference": "Medication/1"}], "recorded": "2021-01-01T00:00:00Z", "agent": [{"who": {"reference": "Practitioner/1"}}]}),
            // Not enumerable: BCP-13 MIME types are not in the bundle.
            json!({"resourceType": "Binary", "contentType": "application/x-anything"}),
            // Codings from other systems may sit beside one from the required value set.
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/1"}, "clinicalStatus": {"coding": [
                {"system": "urn:other", "code": "x"},
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}}),
            json!({"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}]}),
            json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a&amp;b <b>c</b></p><br/></div>"}}),
            // A no-break space is not whitespace in the spec's regex dialect (HL7's own code
            // systems carry them).
            json!({"resourceType": "Patient", "name": [{"family": "van\u{a0}Dijk"}]}),
        ];
        for c in cases {
            assert_eq!(errors(c.clone()), vec![], "{c}");
        }
    }

    #[test]
    fn nested_bundle_resources_are_validated_unless_skipped() {
        let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "gender": "boy"}}]});
        assert_error_at(b.clone(), "code-invalid", "Bundle.entry[0].resource.gender");
        assert_eq!(validate(&b, &Options { skip_bundle_entry_resources: true, ..Options::default() }), vec![]);
        let envelope = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient"}, "bogus": 1}]});
        assert_error_at(envelope, "structure", "Bundle.entry[0].bogus");
    }

    #[test]
    fn decimals_keep_their_exact_text() {
        // Digits and trailing zeros survive; serde_json writes an exponent marker as `e`.
        let text = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"},"component":[{"code":{"text":"y"},"valueQuantity":{"value":0.000000000000000000012345678901234567890}},{"code":{"text":"z"},"valueQuantity":{"value":1e+3}}]}"#;
        let v: Value = serde_json::from_str(text).expect("json");
        assert_eq!(errors(v.clone()), vec![]);
        assert_eq!(serde_json::to_string(&v).expect("serialise"), text);
        assert_eq!(v["valueQuantity"]["value"].to_string(), "1.50");
    }

    #[test]
    fn reference_types() {
        assert_eq!(reference_type("Patient/1"), Some("Patient"));
        assert_eq!(reference_type("Patient/1/_history/2"), Some("Patient"));
        assert_eq!(reference_type("http://x/fhir/Patient/1"), Some("Patient"));
        assert_eq!(reference_type("http://x/fhir/Patient/1/_history/3"), Some("Patient"));
        assert_eq!(reference_type("Patient?identifier=a|b"), Some("Patient"));
        assert_eq!(reference_type("nonsense"), None);
    }

    /// Every `*.json` under `dir`, recursively, sorted.
    fn json_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
            panic!("{}: {e} (these tests need ../shared/data next to the repository)", dir.display())
        });
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                json_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
        out.sort();
    }

    /// Every resource of every Synthea Bundle, parsed.
    pub(crate) fn synthea_resources() -> Vec<(std::path::PathBuf, Value)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea");
        let mut files = Vec::new();
        json_files(&root, &mut files);
        assert_eq!(files.len(), 67, "the Synthea set under {} changed", root.display());
        let mut resources = Vec::new();
        for f in files {
            let mut bundle: Value = serde_json::from_slice(&std::fs::read(&f).expect("read")).expect("json");
            let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
                panic!("{}: no entries", f.display())
            };
            for entry in entries {
                resources.push((f.clone(), entry["resource"].take()));
            }
        }
        resources
    }

    #[test]
    fn every_synthea_resource_is_valid() {
        let resources = synthea_resources();
        assert_eq!(resources.len(), 23_395);
        let options = Options::default();
        let started = std::time::Instant::now();
        let mut failures = Vec::new();
        for (file, r) in &resources {
            let errs: Vec<Issue> = validate(r, &options).into_iter().filter(Issue::is_error).collect();
            if !errs.is_empty() {
                failures.push(format!("{}: {}/{}: {errs:?}", file.display(), r["resourceType"], r["id"]));
            }
        }
        let took = started.elapsed();
        eprintln!(
            "validated {} Synthea resources in {took:?}: {:.0} resources/s, {:.1} µs each (build with --release for real figures)",
            resources.len(),
            resources.len() as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / resources.len() as f64
        );
        let shown: Vec<&String> = failures.iter().take(20).collect();
        assert!(failures.is_empty(), "{} invalid:\n{shown:#?}", failures.len());
    }

    /// HL7's own conformance resources (StructureDefinitions, ValueSets, CodeSystems,
    /// SearchParameters, OperationDefinitions…) are valid R4: a validator that refuses any of
    /// them is wrong, not the spec.
    #[test]
    fn the_specs_own_conformance_resources_are_valid() {
        let options = Options::default();
        let mut checked = 0;
        let mut failures = Vec::new();
        for (label, r) in crate::test_data::conformance_resources() {
            checked += 1;
            let errs: Vec<Issue> = validate(&r, &options).into_iter().filter(Issue::is_error).collect();
            if !errs.is_empty() {
                failures.push(format!("{label}: {errs:?}"));
            }
        }
        assert!(checked > 3000, "{checked}");
        let shown: Vec<&String> = failures.iter().take(10).collect();
        assert!(failures.is_empty(), "{} of {checked} invalid:\n{shown:#?}", failures.len());
    }

    #[test]
    fn synthea_observations_validate_fast() {
        let observations: Vec<Value> =
            synthea_resources().into_iter().map(|(_, r)| r).filter(|r| r["resourceType"] == "Observation").collect();
        let options = Options::default();
        let rounds = 3;
        let started = std::time::Instant::now();
        let mut issues = 0;
        for _ in 0..rounds {
            for o in &observations {
                issues += validate(o, &options).len();
            }
        }
        let took = started.elapsed();
        let n = observations.len() * rounds;
        eprintln!("validated {n} Synthea Observations in {took:?}: {:.2} µs each", took.as_secs_f64() * 1e6 / n as f64);
        assert_eq!(issues, 0);
    }

    #[test]
    #[ignore = "benchmark"]
    fn bench_synthea() {
        let resources: Vec<Value> = synthea_resources().into_iter().map(|(_, r)| r).collect();
        let options = Options::default();
        let mut best = f64::MAX;
        let mut n = 0;
        for _ in 0..15 {
            let started = std::time::Instant::now();
            for r in &resources {
                n += validate(r, &options).len();
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        eprintln!("best of 15 rounds: {:.3} µs per resource ({n} issues)", best * 1e6 / resources.len() as f64);
    }
}
