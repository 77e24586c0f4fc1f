//! Search parameters as the engine uses them: each standard (and custom) SearchParameter
//! compiled once per resource type, the typed index values a resource yields for them, and the
//! parsing of search requests.
//!
//! Indexing evaluates each parameter's FHIRPath expression on the resource and turns what it
//! finds into [`IndexValue`]s by the found element's type (search.html, "Search Parameter
//! Types"): a HumanName gives its name parts as strings, a CodeableConcept its codings as
//! tokens, a Period a date range, and so on. The store keeps them as rows beside the version.

mod extract;
mod matching;
pub mod query;
pub mod text;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use serde_json::Value;

use crate::fhirpath::{self, Expression};
use crate::model::SearchParamDef;

pub use extract::{date_range, index_resource, index_resource_resolving, remap_links};
pub use matching::matches;

/// The type of a search parameter (SearchParameter.type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamKind {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "number" => ParamKind::Number,
            "date" => ParamKind::Date,
            "string" => ParamKind::String,
            "token" => ParamKind::Token,
            "reference" => ParamKind::Reference,
            "composite" => ParamKind::Composite,
            "quantity" => ParamKind::Quantity,
            "uri" => ParamKind::Uri,
            "special" => ParamKind::Special,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Number => "number",
            ParamKind::Date => "date",
            ParamKind::String => "string",
            ParamKind::Token => "token",
            ParamKind::Reference => "reference",
            ParamKind::Composite => "composite",
            ParamKind::Quantity => "quantity",
            ParamKind::Uri => "uri",
            ParamKind::Special => "special",
        }
    }
}

/// One component of a composite parameter: the component parameter's type and its
/// expression, evaluated on each element the composite's own expression finds.
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: ParamKind,
    pub expression: Expression,
}

/// A search parameter compiled for one resource type.
#[derive(Debug, Clone)]
pub struct SearchParam {
    pub code: String,
    pub url: String,
    pub kind: ParamKind,
    /// The parts of the expression that apply to this resource type; `None` for parameters the
    /// server answers from its own columns (`_id`, `_lastUpdated`) or by special means
    /// (`_text`, `_content`, `_list`, `near`).
    pub expression: Option<Expression>,
    /// Resource types a reference parameter may point to.
    pub targets: Vec<String>,
    pub components: Vec<Component>,
    /// A token parameter over boolean elements only: its values must be `true` or `false`.
    pub boolean: bool,
    /// The code system a token parameter's `code` elements implicitly have: the one system of
    /// the value set they are bound to (`Patient.gender` → administrative-gender), so that
    /// `gender=http://hl7.org/fhir/administrative-gender|male` matches.
    pub code_system: Option<String>,
}

/// Parameters the server answers without index rows of their own.
const FROM_COLUMNS: &[&str] = &["_id", "_lastUpdated", "_text", "_content", "_list", "_query", "_filter"];

/// The search parameters of every resource type.
#[derive(Debug, Default)]
pub struct Registry {
    by_type: HashMap<String, Vec<Arc<SearchParam>>>,
}

static STANDARD: LazyLock<Arc<Registry>> = LazyLock::new(|| Arc::new(Registry::from_definitions(&[])));

/// The standard R4 search parameters.
pub fn standard() -> &'static Registry {
    &STANDARD
}

/// The standard parameters, shareable (a server holds its registry this way, so that custom
/// parameters can replace it).
pub fn standard_shared() -> Arc<Registry> {
    STANDARD.clone()
}

impl Registry {
    /// The standard parameters, plus custom ones (a custom parameter with the code of a standard
    /// one on the same type replaces it).
    pub fn from_definitions(custom: &[SearchParamDef]) -> Registry {
        let defs = crate::definitions();
        let mut by_type: HashMap<String, Vec<Arc<SearchParam>>> = HashMap::new();
        for rt in defs.resource_types() {
            let mut params: Vec<Arc<SearchParam>> = Vec::new();
            let standard = defs.search_params(rt);
            let applying_custom = custom.iter().filter(|c| applies(c, rt));
            for def in standard.into_iter().chain(applying_custom) {
                let Some(param) = compile(def, rt) else { continue };
                params.retain(|p| p.code != param.code);
                params.push(Arc::new(param));
            }
            params.sort_by(|a, b| a.code.cmp(&b.code));
            by_type.insert(rt.to_owned(), params);
        }
        Registry { by_type }
    }

    /// Every parameter of a resource type, sorted by code.
    pub fn params(&self, resource_type: &str) -> &[Arc<SearchParam>] {
        self.by_type.get(resource_type).map_or(&[], Vec::as_slice)
    }

    /// Every (resource type, row name, kind of row) index values may carry: each parameter's
    /// code, and the rows behind `:identifier` (reference parameters, as tokens), `:of-type`
    /// (token parameters) and `near`'s coordinates (numbers). The store keys its index rows by
    /// these.
    pub fn row_names(&self) -> Vec<(String, String, ParamKind)> {
        let mut out = Vec::new();
        let mut types: Vec<&String> = self.by_type.keys().collect();
        types.sort();
        for rt in types {
            for p in self.params(rt) {
                let code = p.code.as_str();
                match p.kind {
                    ParamKind::Reference => {
                        out.push((rt.clone(), code.to_owned(), ParamKind::Reference));
                        out.push((rt.clone(), format!("{code}:identifier"), ParamKind::Token));
                    }
                    ParamKind::Token => {
                        out.push((rt.clone(), code.to_owned(), ParamKind::Token));
                        out.push((rt.clone(), format!("{code}:of-type"), ParamKind::Token));
                    }
                    ParamKind::Special => {
                        out.push((rt.clone(), format!("{code}:latitude"), ParamKind::Number));
                        out.push((rt.clone(), format!("{code}:longitude"), ParamKind::Number));
                    }
                    kind => out.push((rt.clone(), code.to_owned(), kind)),
                }
            }
        }
        out
    }

    pub fn param(&self, resource_type: &str, code: &str) -> Option<&Arc<SearchParam>> {
        let params = self.params(resource_type);
        params.binary_search_by(|p| p.code.as_str().cmp(code)).ok().map(|i| &params[i])
    }
}

/// Whether a SearchParameter's `base` covers a resource type (directly or through
/// `Resource`/`DomainResource`).
fn applies(def: &SearchParamDef, resource_type: &str) -> bool {
    def.base.iter().any(|b| {
        b == resource_type
            || b == "Resource"
            || (b == "DomainResource" && !matches!(resource_type, "Bundle" | "Binary" | "Parameters"))
    })
}

fn compile(def: &SearchParamDef, resource_type: &str) -> Option<SearchParam> {
    let kind = ParamKind::parse(&def.kind)?;
    let expression = if FROM_COLUMNS.contains(&def.code.as_str()) {
        None
    } else {
        def.expression.as_deref().and_then(|e| expression_for(e, resource_type)).and_then(|e| fhirpath::parse(&e).ok())
    };
    // A parameter with an expression that does not compile is not offered: better absent
    // than silently matching nothing.
    if expression.is_none() && def.expression.is_some() && !FROM_COLUMNS.contains(&def.code.as_str()) {
        return None;
    }
    let defs = crate::definitions();
    let components = def
        .components
        .iter()
        .filter_map(|c| {
            let component = defs.all_search_params().iter().find(|p| p.url == c.definition)?;
            Some(Component {
                kind: ParamKind::parse(&component.kind)?,
                expression: fhirpath::parse(&c.expression).ok()?,
            })
        })
        .collect::<Vec<_>>();
    if kind == ParamKind::Composite && components.len() != def.components.len() {
        return None;
    }
    let elements = def
        .expression
        .as_deref()
        .and_then(|e| expression_for(e, resource_type))
        .map(|e| element_nodes(&e, resource_type))
        .unwrap_or_default();
    let boolean = kind == ParamKind::Token
        && !elements.is_empty()
        && elements.iter().all(|&n| defs.node(n).types.iter().all(|t| t.code == "boolean"));
    let code_system = if kind == ParamKind::Token { implicit_system(&elements) } else { None };
    Some(SearchParam {
        code: def.code.clone(),
        url: def.url.clone(),
        kind,
        expression,
        targets: def.target.clone(),
        components,
        boolean,
        code_system,
    })
}

/// The element definitions a plain path expression (`Patient.gender | Patient.link.other`)
/// names; parts with functions or casts are skipped.
fn element_nodes(expression: &str, resource_type: &str) -> Vec<crate::NodeId> {
    let defs = crate::definitions();
    let mut out = Vec::new();
    for part in split_union(expression) {
        let mut segments = part.split('.');
        if segments.next() != Some(resource_type) {
            continue;
        }
        let Some(mut node) = defs.root(resource_type) else { continue };
        let mut ok = true;
        for segment in segments {
            if segment.is_empty() || !segment.chars().all(|c| c.is_ascii_alphanumeric()) {
                ok = false;
                break;
            }
            match defs.definition_of(node).children.get(segment) {
                Some(child) => node = child.node,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            out.push(node);
        }
    }
    out
}

/// The one code system of the value sets `code` elements are bound to, when they all agree.
fn implicit_system(elements: &[crate::NodeId]) -> Option<String> {
    let defs = crate::definitions();
    let mut system: Option<&str> = None;
    for &n in elements {
        let node = defs.node(n);
        if !node.types.iter().all(|t| t.code == "code") {
            return None;
        }
        let vs = defs.value_set(&node.binding.as_ref()?.value_set).filter(|vs| vs.enumerable)?;
        let mut systems = vs.by_system.keys();
        let (Some(only), None) = (systems.next(), systems.next()) else { return None };
        match system {
            Some(s) if s != only => return None,
            _ => system = Some(only),
        }
    }
    system.map(str::to_owned)
}

/// The parts of a shared expression (`AllergyIntolerance.code | Condition.code | …`) that
/// apply to one resource type, joined again; parts rooted at `Resource`/`DomainResource` or
/// written as functions apply to all. The whole expression when no part names a root.
fn expression_for(expression: &str, resource_type: &str) -> Option<String> {
    let parts = split_union(expression);
    if parts.len() == 1 {
        return Some(expression.to_owned());
    }
    let kept: Vec<&str> = parts
        .into_iter()
        .filter(|part| match root_name(part) {
            Some(root) => root == resource_type || root == "Resource" || root == "DomainResource",
            None => true,
        })
        .collect();
    if kept.is_empty() { None } else { Some(kept.join(" | ")) }
}

/// Splits on `|` outside parentheses, brackets and string literals.
fn split_union(expression: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    let mut chars = expression.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '`' | '"') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')' | ']') => depth -= 1,
            (None, '|') if depth == 0 => {
                parts.push(expression[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(expression[start..].trim());
    parts
}

/// The type name an expression part starts from: `Patient` in `(Patient.name as HumanName)`.
fn root_name(part: &str) -> Option<&str> {
    let trimmed = part.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let end = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(trimmed.len());
    let name = &trimmed[..end];
    name.chars().next().filter(char::is_ascii_uppercase).map(|_| name)
}

/// One value a resource yields for a search parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The parameter's code, or `code:identifier` / `code:of-type` for the rows behind those
    /// modifiers.
    pub param: String,
    pub value: IndexValue,
}

/// Index values by kind of row.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// `normalized` for the default and `:contains` searches, `exact` for `:exact`.
    String {
        normalized: String,
        exact: String,
    },
    /// A code (with its system) and the display or text for `:text`; `code` is `None` for a
    /// row that carries text only (CodeableConcept.text).
    Token {
        system: Option<String>,
        code: Option<String>,
        text: Option<String>,
    },
    /// A literal reference (`Patient/1` → type and id), or an absolute, canonical or
    /// `urn:` URL kept whole in `url` (canonicals without their `|version`).
    Reference {
        target_type: Option<String>,
        target_id: Option<String>,
        version: Option<String>,
        url: Option<String>,
    },
    /// Milliseconds since the epoch, both ends inclusive; open ends are `i64::MIN`/`i64::MAX`.
    Date {
        low: i64,
        high: i64,
    },
    Number {
        value: f64,
    },
    /// A value with its unit, and the same value in UCUM base units (`canonical_*`) when the
    /// unit is UCUM and convertible. A Range gives `low`/`high` apart.
    Quantity {
        low: f64,
        high: f64,
        system: Option<String>,
        code: Option<String>,
        unit: Option<String>,
        canonical: Option<(f64, f64, String)>,
    },
    Uri {
        uri: String,
    },
    /// The values of a composite's components found together in one element, one per
    /// component, in the definition's order.
    Composite {
        parts: Vec<IndexValue>,
    },
}

impl IndexValue {
    pub fn kind(&self) -> ParamKind {
        match self {
            IndexValue::String { .. } => ParamKind::String,
            IndexValue::Token { .. } => ParamKind::Token,
            IndexValue::Reference { .. } => ParamKind::Reference,
            IndexValue::Date { .. } => ParamKind::Date,
            IndexValue::Number { .. } => ParamKind::Number,
            IndexValue::Quantity { .. } => ParamKind::Quantity,
            IndexValue::Uri { .. } => ParamKind::Uri,
            IndexValue::Composite { .. } => ParamKind::Composite,
        }
    }
}

/// What the full-text parameters search: the narrative (`_text`) and every string in the
/// resource (`_content`), both normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullText {
    pub narrative: String,
    pub content: String,
}

/// Extracts the full text of a resource.
pub fn full_text(resource: &Value) -> FullText {
    let mut narrative = String::new();
    if let Some(div) = resource.pointer("/text/div").and_then(Value::as_str) {
        narrative = text::normalize(&strip_tags(div));
    }
    // The whole resource: its strings and its narrative's words.
    let mut content = String::new();
    collect_strings(resource, &mut content, 0);
    let mut content = text::normalize(&content);
    if !narrative.is_empty() {
        content.push(' ');
        content.push_str(&narrative);
    }
    FullText { narrative, content }
}

fn collect_strings(value: &Value, out: &mut String, depth: usize) {
    if depth > 64 {
        return;
    }
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out, depth + 1)),
        Value::Object(map) => {
            for (k, v) in map {
                // The narrative's markup and the resource's plumbing are not content.
                if matches!(k.as_str(), "div" | "resourceType" | "id" | "meta" | "url" | "system" | "reference") {
                    continue;
                }
                collect_strings(v, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// The text of an XHTML fragment: tags dropped, the common character references decoded.
fn strip_tags(xhtml: &str) -> String {
    let mut out = String::with_capacity(xhtml.len());
    let mut in_tag = false;
    for c in xhtml.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    crate::codec::unescape_xml(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_expressions_are_split_per_type() {
        let e = "AllergyIntolerance.code | AllergyIntolerance.reaction.substance | Condition.code | (Observation.value as CodeableConcept)";
        assert_eq!(
            expression_for(e, "AllergyIntolerance").as_deref(),
            Some("AllergyIntolerance.code | AllergyIntolerance.reaction.substance")
        );
        assert_eq!(expression_for(e, "Observation").as_deref(), Some("(Observation.value as CodeableConcept)"));
        assert_eq!(expression_for(e, "Patient"), None);
        assert_eq!(expression_for("Patient.name", "Patient").as_deref(), Some("Patient.name"));
        assert_eq!(split_union("a.where(b = 'x|y') | c").len(), 2);
    }

    #[test]
    fn every_standard_parameter_compiles_for_its_types() {
        let registry = standard();
        let defs = crate::definitions();
        let mut missing = Vec::new();
        for rt in defs.resource_types() {
            for def in defs.search_params(rt) {
                if registry.param(rt, &def.code).is_none() {
                    missing.push(format!("{rt}.{}", def.code));
                }
            }
        }
        assert!(missing.is_empty(), "not compiled: {missing:?}");
        let name = registry.param("Patient", "name").expect("Patient.name");
        assert_eq!(name.kind, ParamKind::String);
        let combo = registry.param("Observation", "combo-code-value-quantity").expect("combo");
        assert_eq!(combo.components.len(), 2);
        assert!(registry.param("Patient", "_id").is_some_and(|p| p.expression.is_none()));
        assert!(registry.param("Bundle", "_text").is_none(), "Bundle is not a DomainResource");
        assert!(registry.param("Patient", "active").is_some_and(|p| p.boolean));
        assert!(registry.param("Patient", "gender").is_some_and(|p| !p.boolean));
        assert_eq!(
            registry.param("Patient", "gender").and_then(|p| p.code_system.as_deref()),
            Some("http://hl7.org/fhir/administrative-gender")
        );
        assert_eq!(registry.param("Observation", "code").and_then(|p| p.code_system.as_deref()), None);
    }

    #[test]
    fn full_text_takes_narrative_and_strings() {
        let r = serde_json::json!({"resourceType": "Patient", "id": "x",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Héllo <b>World</b> &amp; co</div>"},
            "name": [{"family": "Chalmers", "given": ["Peter"]}], "gender": "male"});
        let t = full_text(&r);
        assert_eq!(t.narrative, "hello world & co");
        assert!(t.content.contains("chalmers") && t.content.contains("peter") && t.content.contains("male"));
        assert!(!t.content.contains("xhtml"));
    }
}
