//! The compact definitions model: what `tools/defgen` writes from the official R4 bundles and
//! the engine loads. Only what validation, search and the CapabilityStatement need is kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefinitionsFile {
    pub fhir_version: String,
    pub types: Vec<TypeDef>,
    pub value_sets: Vec<ValueSetDef>,
    #[serde(default)]
    pub code_systems: Vec<CodeSystemDef>,
    pub search_params: Vec<SearchParamDef>,
    pub compartments: Vec<CompartmentDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TypeKind {
    PrimitiveType,
    ComplexType,
    Resource,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeDef {
    pub name: String,
    pub kind: TypeKind,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_abstract: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// A primitive's lexical rule (the `regex` extension on its `value` element).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A primitive's FHIRPath system type (`String`, `Boolean`, `Integer`, `Decimal`, `Date`,
    /// `DateTime`, `Time`), the type its values take in FHIRPath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_type: Option<String>,
    /// The snapshot elements, root first; empty for primitives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<ElementDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElementDef {
    pub path: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min: u32,
    /// `None` for `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<TypeRef>,
    /// The path whose definition this element reuses (`Questionnaire.item.item` → `Questionnaire.item`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub modifier: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub summary: bool,
    /// A `fixed[x]` value: the element must equal it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<serde_json::Value>,
    /// A `pattern[x]` value: the element must contain at least what it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeRef {
    /// A FHIR type name (`string`, `id`, `Quantity`, `Reference`, `Resource`, …).
    pub code: String,
    /// Resource types a Reference or canonical may point to (from `targetProfile`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Binding {
    pub strength: String,
    pub value_set: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Constraint {
    pub key: String,
    pub severity: String,
    pub human: String,
    pub expression: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValueSetDef {
    pub url: String,
    /// False when the value set draws on a code system the definitions do not carry (UCUM,
    /// BCP-47 languages, MIME types…): codes cannot be checked against it.
    pub enumerable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub systems: Vec<SystemCodes>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemCodes {
    pub system: String,
    pub codes: Vec<String>,
}

/// A code system whose hierarchy the definitions carry: the bundle holds it in full
/// (`content` complete) and its hierarchy means subsumption (`hierarchyMeaning` absent or
/// `is-a`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeSystemDef {
    pub url: String,
    /// Each code that has a parent, with its parents (from nested concepts and from parent and
    /// child properties); empty for a flat system.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parents: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchParamDef {
    pub code: String,
    pub url: String,
    pub base: Vec<String>,
    /// number, date, string, token, reference, composite, quantity, uri, special.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xpath_usage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifier: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparator: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_or: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_and: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<SearchComponent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchComponent {
    pub definition: String,
    pub expression: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompartmentDef {
    pub code: String,
    pub resources: Vec<CompartmentResource>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompartmentResource {
    pub code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
