//! Where a node of the input lives in its JSON, for callers that change what an expression
//! selected (FHIRPath Patch).
//!
//! Evaluation records no paths: nodes borrow the input, so a node's place is found afterwards
//! by looking for its address in the tree. That costs one walk per located node, paid only by
//! the callers that need it, rather than a path carried by every item of every evaluation
//! (indexing evaluates millions of them).

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
    let (target, extras) = match (node.value, node.extra) {
        (Some(v), _) => (v, false),
        (None, Some(x)) => (x, true),
        (None, None) => return None,
    };
    if std::ptr::eq(root, target) {
        return Some(Location::Root);
    }
    let mut steps = Vec::new();
    if !find(root, target, &mut steps) {
        return None;
    }
    let index = match steps.last() {
        Some(Step::Index(i)) => {
            let i = *i;
            steps.pop();
            Some(i)
        }
        _ => None,
    };
    let Some(Step::Key(key)) = steps.pop() else { return None };
    let name = if extras { key.strip_prefix('_')?.to_owned() } else { key };
    Some(Location::Element { parent: steps, name, index })
}

fn find(value: &Value, target: &Value, steps: &mut Vec<Step>) -> bool {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                steps.push(Step::Key(k.clone()));
                if std::ptr::eq(v, target) || find(v, target, steps) {
                    return true;
                }
                steps.pop();
            }
            false
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                steps.push(Step::Index(i));
                if std::ptr::eq(v, target) || find(v, target, steps) {
                    return true;
                }
                steps.pop();
            }
            false
        }
        _ => false,
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
