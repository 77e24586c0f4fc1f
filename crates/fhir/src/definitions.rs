//! The embedded R4 definitions, decoded once and indexed for validation: every element of every
//! complex type and resource becomes a [`Node`] whose children are found by their JSON name, and
//! whose types are resolved to what the validator needs (primitive rule, type root, value set).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::sync::LazyLock;

use regex::Regex;

use crate::Error;
use crate::model::{Binding, CompartmentDef, Constraint, DefinitionsFile, SearchParamDef, TypeDef, TypeKind, TypeRef};

static EMBEDDED: &[u8] = include_bytes!("../definitions/r4.json.gz");

static DEFINITIONS: LazyLock<Definitions> = LazyLock::new(|| match Definitions::decode(EMBEDDED) {
    Ok(d) => d,
    // The file is generated and committed with the code (and loaded by a unit test); a damaged
    // one is a build defect that no request can recover from.
    Err(e) => panic!("the embedded FHIR definitions are unreadable: {e}"),
});

/// The FHIR R4 definitions this build carries.
pub fn definitions() -> &'static Definitions {
    &DEFINITIONS
}

/// FNV-1a: the validator looks up short, fixed element names millions of times a second, and the
/// tables are built from the definitions (not from client input), so SipHash's flood resistance
/// buys nothing here while costing most of a lookup.
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
pub type FastSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;

pub type NodeId = usize;

/// The FHIR primitive types, each with its own lexical and value rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    Base64Binary,
    Boolean,
    Canonical,
    Code,
    Date,
    DateTime,
    Decimal,
    Id,
    Instant,
    Integer,
    Markdown,
    Oid,
    PositiveInt,
    String,
    Time,
    UnsignedInt,
    Uri,
    Url,
    Uuid,
    Xhtml,
}

impl Primitive {
    pub const ALL: [Primitive; 20] = [
        Primitive::Base64Binary,
        Primitive::Boolean,
        Primitive::Canonical,
        Primitive::Code,
        Primitive::Date,
        Primitive::DateTime,
        Primitive::Decimal,
        Primitive::Id,
        Primitive::Instant,
        Primitive::Integer,
        Primitive::Markdown,
        Primitive::Oid,
        Primitive::PositiveInt,
        Primitive::String,
        Primitive::Time,
        Primitive::UnsignedInt,
        Primitive::Uri,
        Primitive::Url,
        Primitive::Uuid,
        Primitive::Xhtml,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Primitive::Base64Binary => "base64Binary",
            Primitive::Boolean => "boolean",
            Primitive::Canonical => "canonical",
            Primitive::Code => "code",
            Primitive::Date => "date",
            Primitive::DateTime => "dateTime",
            Primitive::Decimal => "decimal",
            Primitive::Id => "id",
            Primitive::Instant => "instant",
            Primitive::Integer => "integer",
            Primitive::Markdown => "markdown",
            Primitive::Oid => "oid",
            Primitive::PositiveInt => "positiveInt",
            Primitive::String => "string",
            Primitive::Time => "time",
            Primitive::UnsignedInt => "unsignedInt",
            Primitive::Uri => "uri",
            Primitive::Url => "url",
            Primitive::Uuid => "uuid",
            Primitive::Xhtml => "xhtml",
        }
    }

    /// The primitives whose values are links a transaction may rewrite.
    pub fn is_uri_like(self) -> bool {
        matches!(self, Primitive::Uri | Primitive::Url | Primitive::Canonical | Primitive::Oid | Primitive::Uuid)
    }
}

/// What one of an element's types is, resolved at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeClass {
    Primitive(Primitive),
    /// A complex data type, with the root node of its definition.
    Complex(NodeId),
    /// A resource (`Resource`, or a concrete type in Bundle.entry.resource and the like).
    Resource,
    /// A type the definitions do not describe (none in R4; kept so a gap is not a panic).
    Unknown,
}

/// One element definition, with its children indexed by JSON property name.
#[derive(Debug)]
pub struct Node {
    /// The element's path, e.g. `Patient.contact.name` or `Observation.value[x]`.
    pub path: String,
    /// The FHIRPath name of the element (`value` for `value[x]`).
    pub name: String,
    pub min: u32,
    /// `None` for `*`.
    pub max: Option<u32>,
    pub types: Vec<TypeRef>,
    /// `types`, resolved; same order.
    pub classes: Vec<TypeClass>,
    pub binding: Option<Binding>,
    /// The index of the expanded value set when the binding is required and enumerable.
    pub required_value_set: Option<usize>,
    pub is_choice: bool,
    pub summary: bool,
    pub modifier: bool,
    pub fixed: Option<serde_json::Value>,
    pub pattern: Option<serde_json::Value>,
    /// The JSON property names this element appears under (`valueQuantity`, `valueString`… for a
    /// choice; its name otherwise).
    pub json_names: Vec<String>,
    /// Children by JSON name. For a choice child, the JSON name selects one of its types.
    pub children: FastMap<String, Child>,
    /// Children that must be present.
    pub required: Vec<NodeId>,
    /// The element whose definition (types and children) this one reuses.
    pub reuse: Option<NodeId>,
    /// Where the element is in the generated file: the index of its type in
    /// [`Definitions::types`] and of the element in that type's snapshot.
    source: (u32, u32),
}

#[derive(Debug, Clone, Copy)]
pub struct Child {
    pub node: NodeId,
    /// For a choice element, which of its types this JSON name stands for.
    pub choice_type: Option<usize>,
}

impl Node {
    /// Whether the element repeats (JSON array).
    pub fn is_array(&self) -> bool {
        self.max != Some(1) && self.max != Some(0)
    }

    /// The class of the type a JSON value of this element has (the chosen one for a choice).
    pub fn class(&self, choice: Option<usize>) -> TypeClass {
        self.classes.get(choice.unwrap_or(0)).copied().unwrap_or(TypeClass::Unknown)
    }
}

/// A value set's codes, by system.
#[derive(Debug)]
pub struct ValueSet {
    pub url: String,
    pub enumerable: bool,
    pub by_system: FastMap<String, FastSet<String>>,
}

impl ValueSet {
    /// Whether the code is in the value set; with no system, in any of its systems.
    pub fn contains(&self, system: Option<&str>, code: &str) -> bool {
        match system {
            Some(s) => self.by_system.get(s).is_some_and(|codes| codes.contains(code)),
            None => self.by_system.values().any(|codes| codes.contains(code)),
        }
    }

    pub fn has_system(&self, system: &str) -> bool {
        self.by_system.contains_key(system)
    }
}

/// A code system's subsumption links, both ways.
#[derive(Debug, Default)]
struct Hierarchy {
    parents: FastMap<String, Vec<String>>,
    children: FastMap<String, Vec<String>>,
}

pub struct Definitions {
    file: DefinitionsFile,
    hierarchies: FastMap<String, Hierarchy>,
    nodes: Vec<Node>,
    roots: FastMap<String, NodeId>,
    type_index: FastMap<String, usize>,
    resource_types: Vec<String>,
    value_sets: Vec<ValueSet>,
    value_set_index: FastMap<String, usize>,
    primitive_rules: Vec<Option<Regex>>,
    search_by_type: FastMap<String, Vec<usize>>,
    extension_root: Option<NodeId>,
    element_root: Option<NodeId>,
}

impl Definitions {
    /// Decompresses, decodes and indexes a definitions file written by `tools/defgen`.
    pub fn decode(compressed: &[u8]) -> Result<Self, Error> {
        let mut json = Vec::with_capacity(compressed.len() * 24);
        flate2::read::GzDecoder::new(compressed).read_to_end(&mut json)?;
        let file: DefinitionsFile = serde_json::from_slice(&json)?;
        Self::index(file)
    }

    fn index(mut file: DefinitionsFile) -> Result<Self, Error> {
        let mut hierarchies: FastMap<String, Hierarchy> = FastMap::default();
        for cs in std::mem::take(&mut file.code_systems) {
            let mut h = Hierarchy::default();
            for (child, parents) in cs.parents {
                for parent in &parents {
                    h.children.entry(parent.clone()).or_default().push(child.clone());
                }
                h.parents.insert(child, parents);
            }
            hierarchies.insert(cs.url, h);
        }

        let mut type_index = FastMap::default();
        for (i, t) in file.types.iter().enumerate() {
            type_index.insert(t.name.clone(), i);
        }

        let mut primitive_rules = Vec::with_capacity(Primitive::ALL.len());
        for p in Primitive::ALL {
            let rule = file.types.iter().find(|t| t.name == p.name()).and_then(|t| t.regex.as_deref());
            primitive_rules.push(match rule {
                // The spec's regexes are meant to match the whole value.
                Some(rule) => Some(
                    Regex::new(&format!("^(?:{rule})$"))
                        .map_err(|e| Error::Definitions(format!("regex of {}: {e}", p.name())))?,
                ),
                None => None,
            });
        }

        let mut value_sets = Vec::with_capacity(file.value_sets.len());
        let mut value_set_index = FastMap::default();
        for vs in &file.value_sets {
            let by_system = vs
                .systems
                .iter()
                .map(|s| (s.system.clone(), s.codes.iter().cloned().collect::<FastSet<_>>()))
                .collect();
            value_set_index.insert(vs.url.clone(), value_sets.len());
            value_sets.push(ValueSet { url: vs.url.clone(), enumerable: vs.enumerable, by_system });
        }

        let mut nodes = Vec::new();
        let mut roots = FastMap::default();
        for (i, t) in file.types.iter().enumerate() {
            if t.kind != TypeKind::PrimitiveType && !t.elements.is_empty() {
                roots.insert(t.name.clone(), index_type(t, i, &mut nodes));
            }
        }
        // Types are resolved once every type has its root.
        for node in &mut nodes {
            node.classes = node.types.iter().map(|t| classify(&t.code, &file.types, &type_index, &roots)).collect();
            node.required_value_set = node
                .binding
                .as_ref()
                .filter(|b| b.strength == "required")
                .and_then(|b| value_set_index.get(&b.value_set).copied())
                .filter(|&i: &usize| value_sets[i].enumerable);
        }

        let mut resource_types: Vec<String> = file
            .types
            .iter()
            .filter(|t| t.kind == TypeKind::Resource && !t.is_abstract)
            .map(|t| t.name.clone())
            .collect();
        resource_types.sort();

        let mut search_by_type: FastMap<String, Vec<usize>> = FastMap::default();
        for rt in &resource_types {
            let chain = base_chain(rt, &file.types, &type_index);
            let params = file
                .search_params
                .iter()
                .enumerate()
                .filter(|(_, sp)| sp.base.iter().any(|b| chain.contains(&b.as_str())))
                .map(|(i, _)| i)
                .collect();
            search_by_type.insert(rt.clone(), params);
        }

        let extension_root = roots.get("Extension").copied();
        let element_root = roots.get("Element").copied();
        Ok(Definitions {
            file,
            hierarchies,
            nodes,
            roots,
            type_index,
            resource_types,
            value_sets,
            value_set_index,
            primitive_rules,
            search_by_type,
            extension_root,
            element_root,
        })
    }

    /// The FHIR version of the definitions: `4.0.1`.
    pub fn fhir_version(&self) -> &str {
        &self.file.fhir_version
    }

    /// A concrete resource type this server serves (the 146 of R4).
    pub fn is_resource_type(&self, name: &str) -> bool {
        self.type_def(name).is_some_and(|t| t.kind == TypeKind::Resource && !t.is_abstract)
    }

    /// The 146 concrete resource types, sorted.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.resource_types.iter().map(String::as_str)
    }

    pub fn kind(&self, type_name: &str) -> Option<TypeKind> {
        self.type_def(type_name).map(|t| t.kind)
    }

    /// A type's definition as generated (primitive, complex type or resource, abstract or not).
    pub fn type_def(&self, name: &str) -> Option<&TypeDef> {
        self.type_index.get(name).and_then(|&i| self.file.types.get(i))
    }

    /// Every type definition: primitives, complex types and resources.
    pub fn types(&self) -> &[TypeDef] {
        &self.file.types
    }

    /// The search parameters that apply to a resource type, including those defined on
    /// `Resource` and `DomainResource`. Empty for a name that is not a concrete resource type.
    pub fn search_params(&self, resource_type: &str) -> Vec<&SearchParamDef> {
        self.search_by_type
            .get(resource_type)
            .map(|ids| ids.iter().filter_map(|&i| self.file.search_params.get(i)).collect())
            .unwrap_or_default()
    }

    /// One search parameter of a resource type by its code (`name`, `_id`, …).
    pub fn search_param(&self, resource_type: &str, code: &str) -> Option<&SearchParamDef> {
        self.search_by_type
            .get(resource_type)?
            .iter()
            .filter_map(|&i| self.file.search_params.get(i))
            .find(|sp| sp.code == code)
    }

    /// All 1375 standard search parameters, each once (some serve several base types).
    pub fn all_search_params(&self) -> &[SearchParamDef] {
        &self.file.search_params
    }

    /// The standard CompartmentDefinitions (Patient, Encounter, RelatedPerson, Practitioner, Device).
    pub fn compartments(&self) -> &[CompartmentDef] {
        &self.file.compartments
    }

    pub fn compartment(&self, code: &str) -> Option<&CompartmentDef> {
        self.file.compartments.iter().find(|c| c.code == code)
    }

    /// The root node of a complex type or resource.
    pub fn root(&self, type_name: &str) -> Option<NodeId> {
        self.roots.get(type_name).copied()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// How many nodes there are (ids run from 0 to this, exclusive).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The invariants (FHIRPath constraints) the snapshot gives an element, inherited ones
    /// included (`ele-1` on every element, `dom-*` on every DomainResource root…).
    pub fn constraints(&self, id: NodeId) -> &[Constraint] {
        let (t, e) = self.nodes[id].source;
        self.file.types.get(t as usize).and_then(|t| t.elements.get(e as usize)).map_or(&[], |e| &e.constraints)
    }

    /// The node that defines an element's content: itself, or the one it reuses.
    pub fn definition_of(&self, id: NodeId) -> &Node {
        match self.nodes[id].reuse {
            Some(source) => &self.nodes[source],
            None => &self.nodes[id],
        }
    }

    /// An expanded value set (those bound `required` anywhere in the base definitions).
    pub fn value_set(&self, url: &str) -> Option<&ValueSet> {
        self.value_set_index.get(url).map(|&i| &self.value_sets[i])
    }

    pub fn value_set_at(&self, index: usize) -> &ValueSet {
        &self.value_sets[index]
    }

    /// `code` and every code it subsumes in the hierarchy of `system` (what the token modifier
    /// `:below` matches), `code` first. `None` when the definitions do not carry the system's
    /// hierarchy (SNOMED CT, LOINC and other systems outside the spec). A code the system does
    /// not define subsumes only itself: searching for it is not an error (search.html#errors).
    pub fn descendants<'a>(&'a self, system: &str, code: &'a str) -> Option<Vec<&'a str>> {
        self.hierarchies.get(system).map(|h| closure(&h.children, code))
    }

    /// `code` and every code that subsumes it in the hierarchy of `system` (what `:above`
    /// matches), `code` first; `None` as for [`Definitions::descendants`].
    pub fn ancestors<'a>(&'a self, system: &str, code: &'a str) -> Option<Vec<&'a str>> {
        self.hierarchies.get(system).map(|h| closure(&h.parents, code))
    }

    /// The compiled, anchored regex of a primitive type.
    pub fn primitive_rule(&self, p: Primitive) -> Option<&Regex> {
        self.primitive_rules.get(p as usize).and_then(Option::as_ref)
    }

    pub(crate) fn extension_root(&self) -> Option<NodeId> {
        self.extension_root
    }

    pub(crate) fn element_root(&self) -> Option<NodeId> {
        self.element_root
    }
}

/// `code` and every code reachable from it by `links`, breadth first (nearest codes first). A
/// polyhierarchy reaches some codes twice, and a faulty one could loop: each is listed once.
fn closure<'a>(links: &'a FastMap<String, Vec<String>>, code: &'a str) -> Vec<&'a str> {
    let mut out = vec![code];
    let mut seen: FastSet<&str> = FastSet::default();
    seen.insert(code);
    let mut next = 0;
    while let Some(&current) = out.get(next) {
        next += 1;
        for linked in links.get(current).into_iter().flatten() {
            if seen.insert(linked.as_str()) {
                out.push(linked.as_str());
            }
        }
    }
    out
}

fn classify(
    code: &str,
    types: &[TypeDef],
    type_index: &FastMap<String, usize>,
    roots: &FastMap<String, NodeId>,
) -> TypeClass {
    if let Some(p) = Primitive::from_name(code) {
        return TypeClass::Primitive(p);
    }
    match type_index.get(code).and_then(|&i| types.get(i)).map(|t| t.kind) {
        Some(TypeKind::Resource) => TypeClass::Resource,
        Some(_) => roots.get(code).map_or(TypeClass::Unknown, |&r| TypeClass::Complex(r)),
        None => TypeClass::Unknown,
    }
}

/// A type and its ancestors: `Patient`, `DomainResource`, `Resource`.
fn base_chain<'a>(name: &'a str, types: &'a [TypeDef], type_index: &FastMap<String, usize>) -> Vec<&'a str> {
    let mut chain = vec![name];
    let mut current = name;
    while let Some(base) = type_index.get(current).and_then(|&i| types.get(i)).and_then(|t| t.base.as_deref()) {
        if chain.contains(&base) || chain.len() > 8 {
            break;
        }
        chain.push(base);
        current = base;
    }
    chain
}

/// Indexes one type's snapshot; returns its root node.
fn index_type(t: &TypeDef, type_index: usize, nodes: &mut Vec<Node>) -> NodeId {
    let mut by_path: FastMap<&str, NodeId> = FastMap::default();
    let first = nodes.len();
    for (element_index, e) in t.elements.iter().enumerate() {
        let id = nodes.len();
        let last = e.path.rsplit('.').next().unwrap_or(&e.path);
        let is_choice = last.ends_with("[x]");
        let name = last.trim_end_matches("[x]").to_owned();
        let json_names = if is_choice {
            e.types.iter().map(|ty| format!("{name}{}", upper_first(&ty.code))).collect()
        } else {
            vec![name.clone()]
        };
        nodes.push(Node {
            path: e.path.clone(),
            name,
            min: e.min,
            max: e.max,
            types: e.types.clone(),
            classes: Vec::new(),
            binding: e.binding.clone(),
            required_value_set: None,
            is_choice,
            summary: e.summary,
            modifier: e.modifier,
            fixed: e.fixed.clone(),
            pattern: e.pattern.clone(),
            json_names,
            children: FastMap::default(),
            required: Vec::new(),
            reuse: None,
            source: (type_index as u32, element_index as u32),
        });
        by_path.insert(e.path.as_str(), id);
    }
    // Elements that reuse another element's definition take its type and children.
    for e in &t.elements {
        if let (Some(target), Some(&id)) = (&e.content_reference, by_path.get(e.path.as_str()))
            && let Some(&source) = by_path.get(target.as_str())
        {
            nodes[id].reuse = Some(source);
        }
    }
    for e in &t.elements {
        let Some((parent_path, _)) = e.path.rsplit_once('.') else { continue };
        let (Some(&parent), Some(&id)) = (by_path.get(parent_path), by_path.get(e.path.as_str())) else {
            continue;
        };
        let choice = nodes[id].is_choice;
        let names = nodes[id].json_names.clone();
        for (i, key) in names.into_iter().enumerate() {
            let child = Child { node: id, choice_type: choice.then_some(i) };
            nodes[parent].children.insert(key, child);
        }
        if e.min > 0 {
            nodes[parent].required.push(id);
        }
    }
    first
}

pub(crate) fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_fast_with_every_resource_type() {
        let started = std::time::Instant::now();
        let defs = Definitions::decode(EMBEDDED).expect("decodes");
        let took = started.elapsed();
        assert_eq!(defs.resource_types().count(), 146);
        let sorted: Vec<&str> = defs.resource_types().collect();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
        assert!(defs.is_resource_type("Patient"));
        assert!(!defs.is_resource_type("DomainResource"));
        assert!(!defs.is_resource_type("Resource"));
        assert!(!defs.is_resource_type("HumanName"));
        assert!(!defs.is_resource_type("Unicorn"));
        assert_eq!(defs.all_search_params().len(), 1375);
        assert_eq!(defs.fhir_version(), "4.0.1");
        eprintln!("definitions decoded and indexed in {took:?} (the 300 ms budget is for release builds)");
        assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn abstract_bases_and_primitives_are_kept() {
        let defs = definitions();
        for (name, kind) in [
            ("Resource", TypeKind::Resource),
            ("DomainResource", TypeKind::Resource),
            ("Element", TypeKind::ComplexType),
            ("BackboneElement", TypeKind::ComplexType),
            ("Quantity", TypeKind::ComplexType),
            ("dateTime", TypeKind::PrimitiveType),
        ] {
            assert_eq!(defs.kind(name), Some(kind), "{name}");
        }
        assert_eq!(defs.type_def("Patient").and_then(|t| t.base.as_deref()), Some("DomainResource"));
        let dt = defs.type_def("dateTime").expect("dateTime");
        assert_eq!(dt.system_type.as_deref(), Some("DateTime"));
        assert!(dt.regex.is_some());
        assert!(defs.primitive_rule(Primitive::Date).is_some());
        assert!(defs.primitive_rule(Primitive::Xhtml).is_none());
        let obs = defs.type_def("Observation").expect("Observation");
        let status = obs.elements.iter().find(|e| e.path == "Observation.status").expect("status");
        assert!(status.modifier && status.summary);
        assert_eq!(
            status.binding.as_ref().map(|b| b.value_set.as_str()),
            Some("http://hl7.org/fhir/ValueSet/observation-status")
        );
        assert!(obs.elements[0].constraints.iter().any(|c| c.key == "obs-6" && !c.expression.is_empty()));
        let subject = obs.elements.iter().find(|e| e.path == "Observation.subject").expect("subject");
        assert!(subject.types[0].targets.iter().any(|t| t == "Patient"));
    }

    #[test]
    fn choice_children_and_content_references() {
        let defs = definitions();
        let obs = defs.root("Observation").expect("Observation");
        let child = defs.node(obs).children.get("valueQuantity").expect("valueQuantity");
        let node = defs.node(child.node);
        assert!(node.is_choice);
        assert_eq!(node.types[child.choice_type.unwrap_or(0)].code, "Quantity");
        assert!(matches!(node.class(child.choice_type), TypeClass::Complex(_)));
        assert!(!defs.node(obs).children.contains_key("value"));
        let q = defs.root("Questionnaire").expect("Questionnaire");
        let item = defs.node(q).children.get("item").expect("item").node;
        let nested = defs.node(item).children.get("item").expect("item.item").node;
        assert_eq!(defs.node(nested).reuse, Some(item));
    }

    #[test]
    fn search_params_follow_the_base_chain() {
        let defs = definitions();
        let codes: Vec<&str> = defs.search_params("Patient").iter().map(|p| p.code.as_str()).collect();
        for c in ["name", "birthdate", "identifier", "_id", "_lastUpdated", "_text", "_content"] {
            assert!(codes.contains(&c), "{c}");
        }
        let bundle: Vec<&str> = defs.search_params("Bundle").iter().map(|p| p.code.as_str()).collect();
        assert!(bundle.contains(&"_id") && bundle.contains(&"composition"));
        assert!(!bundle.contains(&"_text"), "Bundle is not a DomainResource");
        assert!(defs.search_params("Unicorn").is_empty());
        let subject = defs.search_param("Observation", "subject").expect("Observation.subject");
        assert_eq!(subject.kind, "reference");
        assert!(subject.target.iter().any(|t| t == "Patient"));
        let combo = defs.search_param("Observation", "code-value-quantity").expect("composite");
        assert_eq!(combo.components.len(), 2);
        // Every resource type has at least the Resource-level parameters.
        assert!(defs.resource_types().all(|t| defs.search_param(t, "_id").is_some()));
    }

    #[test]
    fn compartments_are_kept() {
        let defs = definitions();
        assert_eq!(defs.compartments().len(), 5);
        let patient = defs.compartment("Patient").expect("Patient compartment");
        let obs = patient.resources.iter().find(|r| r.code == "Observation").expect("Observation");
        assert!(obs.params.iter().any(|p| p == "subject"));
    }

    #[test]
    fn code_system_hierarchies() {
        let defs = definitions();
        let intent = "http://hl7.org/fhir/request-intent";
        // order > original-order, reflex-order, filler-order > instance-order (nested concepts).
        let mut below = defs.descendants(intent, "order").expect("request-intent is in the spec");
        assert_eq!(below[0], "order");
        below.sort();
        assert_eq!(below, ["filler-order", "instance-order", "order", "original-order", "reflex-order"]);
        assert_eq!(defs.ancestors(intent, "instance-order"), Some(vec!["instance-order", "filler-order", "order"]));
        assert_eq!(defs.descendants(intent, "instance-order"), Some(vec!["instance-order"]));
        assert_eq!(defs.ancestors(intent, "proposal"), Some(vec!["proposal"]));
        // A code the system does not define subsumes, and is subsumed by, only itself.
        assert_eq!(defs.descendants(intent, "nonsense"), Some(vec!["nonsense"]));
        let clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical";
        assert_eq!(defs.ancestors(clinical, "relapse"), Some(vec!["relapse", "active"]));
        let mut inactive = defs.descendants(clinical, "inactive").expect("condition-clinical");
        inactive.sort();
        assert_eq!(inactive, ["inactive", "remission", "resolved"]);
        // A flat system of the spec: each code is its own whole hierarchy.
        let gender = "http://hl7.org/fhir/administrative-gender";
        assert_eq!(defs.descendants(gender, "female"), Some(vec!["female"]));
        assert_eq!(defs.ancestors(gender, "female"), Some(vec!["female"]));
        // Systems whose hierarchies the spec does not carry: SNOMED CT is in the bundle without
        // its content, LOINC not at all, and a code system of examples only in part.
        assert_eq!(defs.descendants("http://snomed.info/sct", "404684003"), None);
        assert_eq!(defs.ancestors("http://loinc.org", "8867-4"), None);
        assert_eq!(
            defs.descendants("http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason", "pat"),
            None
        );
    }

    #[test]
    fn closures_list_each_code_once() {
        let mut links: FastMap<String, Vec<String>> = FastMap::default();
        // A polyhierarchy (d under b and c) and a loop back to the top.
        for (from, to) in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "a")] {
            links.entry(from.to_owned()).or_default().push(to.to_owned());
        }
        assert_eq!(closure(&links, "a"), ["a", "b", "c", "d"]);
        assert_eq!(closure(&links, "d"), ["d", "a", "b", "c"]);
        assert_eq!(closure(&links, "z"), ["z"]);
    }

    #[test]
    fn required_value_sets_are_expanded() {
        let defs = definitions();
        let vs = defs.value_set("http://hl7.org/fhir/ValueSet/administrative-gender").expect("vs");
        assert!(vs.enumerable);
        assert!(vs.contains(None, "female"));
        assert!(vs.contains(Some("http://hl7.org/fhir/administrative-gender"), "unknown"));
        assert!(!vs.contains(None, "boy"));
        let mime = defs.value_set("http://hl7.org/fhir/ValueSet/mimetypes").expect("mimetypes");
        assert!(!mime.enumerable, "BCP-13 is not in the bundle");
        let languages = defs.value_set("http://hl7.org/fhir/ValueSet/ucum-units").expect("ucum");
        assert!(!languages.enumerable);
    }
}
