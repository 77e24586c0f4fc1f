//! Where a node of the input lives in its JSON, for callers that change what an expression
//! selected (FHIRPath Patch).
//!
//! Evaluation records no paths: nodes borrow the input, so a node's place is found afterwards
//! by looking for its address in the tree. That costs one walk of the input, paid only by the
//! callers that need it, rather than a path carried by every item of every evaluation
//! (indexing evaluates millions of them).

use std::collections::HashMap;

use serde_json::Value;

use super::value::Node;

/// One step down a JSON tree: a property of an object or an item of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The place of a node in the JSON it was selected from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The root value itself (the resource evaluated).
    Root,
    /// An element: the steps from the root to the object holding it, its JSON name there (a
    /// primitive's name without the `_` of its extensions sibling) and its position when the
    /// element repeats.
    Element { parent: Vec<Step>, name: String, index: Option<usize> },
}

impl Location {
    /// The steps from the root to the node's JSON value (to its `_name` object for a primitive
    /// that only has extensions, when `extras` is set).
    pub fn steps(&self, extras: bool) -> Vec<Step> {
        match self {
            Location::Root => Vec::new(),
            Location::Element { parent, name, index } => {
                let mut steps = parent.clone();
                steps.push(Step::Key(if extras { format!("_{name}") } else { name.clone() }));
                if let Some(i) = index {
                    steps.push(Step::Index(*i));
                }
                steps
            }
        }
    }
}

/// Finds where `node` lives inside `root`; `None` when it is not part of it (a computed value,
/// or a node of another resource).
pub fn locate(root: &Value, node: &Node<'_>) -> Option<Location> {
    locate_all(root, &[*node]).pop().flatten()
}

/// [`locate`] for several nodes in one walk of `root`, so that placing every node a path
/// selects costs one pass over the resource however many there are.
pub fn locate_all(root: &Value, nodes: &[Node<'_>]) -> Vec<Option<Location>> {
    let mut found = vec![None; nodes.len()];
    // By address: the nodes whose JSON is there, and whether that JSON is their `_name` object.
    let mut wanted: HashMap<*const Value, Vec<(usize, bool)>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let target = match (node.value, node.extra) {
            (Some(v), _) => (v, false),
            (None, Some(x)) => (x, true),
            (None, None) => continue,
        };
        if std::ptr::eq(root, target.0) {
            found[i] = Some(Location::Root);
        } else {
            wanted.entry(std::ptr::from_ref(target.0)).or_default().push((i, target.1));
        }
    }
    if !wanted.is_empty() {
        let mut walk = Walk { wanted: &mut wanted, found: &mut found, steps: Vec::new() };
        walk.visit(root);
    }
    found
}

struct Walk<'w> {
    wanted: &'w mut HashMap<*const Value, Vec<(usize, bool)>>,
    found: &'w mut Vec<Option<Location>>,
    steps: Vec<Step>,
}

impl Walk<'_> {
    fn visit(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    self.steps.push(Step::Key(k.clone()));
                    self.check(v);
                    self.visit(v);
                    self.steps.pop();
                    if self.wanted.is_empty() {
                        return;
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.steps.push(Step::Index(i));
                    self.check(v);
                    self.visit(v);
                    self.steps.pop();
                    if self.wanted.is_empty() {
                        return;
                    }
                }
            }
            _ => {}
        }
    }

    /// Records the location of the nodes whose JSON is `value`, reached by `self.steps`.
    fn check(&mut self, value: &Value) {
        let Some(nodes) = self.wanted.remove(&std::ptr::from_ref(value)) else { return };
        let mut parent = self.steps.clone();
        let index = match parent.last() {
            Some(Step::Index(i)) => {
                let i = *i;
                parent.pop();
                Some(i)
            }
            _ => None,
        };
        let Some(Step::Key(key)) = parent.pop() else { return };
        for (i, extras) in nodes {
            let name = if extras { key.strip_prefix('_').map(str::to_owned) } else { Some(key.clone()) };
            if let (Some(slot), Some(name)) = (self.found.get_mut(i), name) {
                *slot = Some(Location::Element { parent: parent.clone(), name, index });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhirpath::{Context, parse};
    use serde_json::json;

    fn located(resource: &Value, path: &str) -> Vec<Option<Location>> {
        let items = parse(path).and_then(|e| e.evaluate(&Context::new(resource))).expect("evaluates");
        items.iter().map(|i| i.node().and_then(|n| locate(resource, n))).collect()
    }

    fn element(parent: &[Step], name: &str, index: Option<usize>) -> Option<Location> {
        Some(Location::Element { parent: parent.to_vec(), name: name.to_owned(), index })
    }

    #[test]
    fn nodes_are_found_by_address() {
        let p = json!({"resourceType": "Patient", "name": [{"given": ["a", "b"]}, {"family": "c"}],
                       "birthDate": "2000", "_birthDate": {"id": "x"}});
        assert_eq!(located(&p, "Patient"), vec![Some(Location::Root)]);
        assert_eq!(located(&p, "Patient.birthDate"), vec![element(&[], "birthDate", None)]);
        let name0 = [Step::Key("name".into()), Step::Index(0)];
        assert_eq!(
            located(&p, "Patient.name.given"),
            vec![element(&name0, "given", Some(0)), element(&name0, "given", Some(1))]
        );
        assert_eq!(located(&p, "Patient.name[1]"), vec![element(&[], "name", Some(1))]);
        assert_eq!(located(&p, "Patient.birthDate.id"), vec![element(&[Step::Key("_birthDate".into())], "id", None)]);
        assert_eq!(located(&p, "'text'"), vec![None]);
        let several = located(&p, "Patient.name.given | Patient.name.given.first() | Patient");
        assert_eq!(several.len(), 3, "union keeps distinct items");
        assert_eq!(several[2], Some(Location::Root));
    }

    #[test]
    fn primitives_with_only_extensions_are_found_by_their_sibling() {
        let p = json!({"resourceType": "Patient", "name": [{"given": [null, "b"], "_given": [{"id": "g0"}, null]}]});
        let name0 = [Step::Key("name".into()), Step::Index(0)];
        assert_eq!(
            located(&p, "Patient.name.given"),
            vec![element(&name0, "given", Some(0)), element(&name0, "given", Some(1))]
        );
        let loc = element(&name0, "given", Some(0)).expect("location");
        assert_eq!(loc.steps(true).last(), Some(&Step::Index(0)));
        assert_eq!(loc.steps(true)[2], Step::Key("_given".into()));
    }
}
