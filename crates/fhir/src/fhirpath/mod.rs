//! FHIRPath (the normative N1 release FHIR R4 uses), typed by the embedded R4 definitions.
//!
//! Parse once, evaluate many times: [`parse`] gives an immutable [`Expression`] (cheap to
//! clone and share across threads); [`Expression::evaluate`] walks a resource without
//! copying it — every [`Item`] of the result borrows from the input JSON or is a small System
//! value.
//!
//! ```
//! use fhir::fhirpath::{self, Context};
//! let patient = serde_json::json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]});
//! let expr = fhirpath::parse("Patient.name.family").unwrap();
//! let found = expr.evaluate(&Context::new(&patient)).unwrap();
//! assert_eq!(found[0].as_str(), Some("Chalmers"));
//! ```
//!
//! Types come from the definitions: choice elements (`Observation.value` finds
//! `valueQuantity` and is a `Quantity`), `is`/`as`/`ofType` with inheritance, FHIR primitives
//! with their `_name` extensions, contained and nested resources. Decimals are exact;
//! dates keep their precision; quantities compare across UCUM units (see `ucum.rs`).
//!
//! Beyond N1, the functions of later releases that the official R4 test suite uses are
//! there too (`sort`, `lowBoundary`, `highBoundary`, `precision`, `comparable`,
//! `matchesFull`, `trim`, `split`, `join`, `encode`, `decode`, `escape`, `unescape`).

mod ast;
mod decimal;
mod eval;
mod functions;
mod guards;
mod locate;
mod parser;
mod quantity;
mod temporal;
mod ucum;
mod value;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

pub use decimal::Decimal;
pub use locate::{Location, Step, locate, locate_all};
pub use temporal::{CalendarUnit, Precision, Temporal};
pub use value::{FhirType, Item, Node, Quantity, Text, TypeInfo};

use crate::Error;

/// Which kind of mistake a FHIRPath error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not FHIRPath.
    Syntax,
    /// Well-formed, but meaningless: an unknown function or type, a wrong argument count, an
    /// element that does not exist (in strict mode).
    Semantic,
    /// Failed while evaluating: a collection where one item was needed, incompatible
    /// operands, an unavailable value set…
    Execution,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Semantic => "semantic",
            ErrorKind::Execution => "execution",
        })
    }
}

pub(crate) fn error(kind: ErrorKind, message: impl Into<String>, position: Option<usize>) -> Error {
    Error::FhirPath { kind, message: message.into(), position }
}

/// A parsed FHIRPath expression.
#[derive(Clone)]
pub struct Expression {
    root: Arc<ast::Expr>,
    text: Arc<str>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expression({:?})", self.text)
    }
}

/// A UCUM unit reduced to base units: the factor to multiply a value by, and a key naming the
/// dimensions (equal keys compare). `None` for text that is not convertible UCUM.
pub fn ucum_canonical(unit: &str) -> Option<(Decimal, String)> {
    ucum::canonical(unit).map(|c| (c.factor, c.dims.key()))
}

/// Parses an expression. Unknown functions, wrong argument counts, unknown types and
/// invalid literal regexes are reported here, with the byte offset where they are.
pub fn parse(text: &str) -> Result<Expression, Error> {
    let root = parser::parse(text)?;
    Ok(Expression { root: Arc::new(root), text: Arc::from(text) })
}

impl Expression {
    /// The text the expression was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression; the result borrows from the context's input.
    pub fn evaluate<'a>(&self, ctx: &Context<'a>) -> Result<Vec<Item<'a>>, Error> {
        let ev = eval::Eval::new(ctx);
        let scope = eval::Scope { this: &ctx.focus, index: None, total: None };
        ev.eval(&self.root, scope)
    }

    /// For a path ending in an element name (`X.name`, or a bare `name`), the expression of
    /// what holds the element and the name: where to create an element that does not exist yet.
    pub fn parent_and_name(&self) -> Option<(Expression, &str)> {
        let (parent, name) = match self.root.as_ref() {
            ast::Expr::Member(target, name) => ((**target).clone(), name.as_str()),
            ast::Expr::Ident { name, type_name: false } => (ast::Expr::This, name.as_str()),
            _ => return None,
        };
        let text = match self.text.strip_suffix(name).map(|t| t.trim_end_matches(['.', ' '])) {
            Some(t) if !t.is_empty() => t,
            _ => "$this",
        };
        Some((Expression { root: Arc::new(parent), text: Arc::from(text) }, name))
    }

    /// Names of elements of the focus any one of which being absent settles the expression,
    /// as a boolean, as true or empty (`value.empty() or x` needs no evaluation without a
    /// `value`), worked out from its form; empty when none are known.
    pub(crate) fn absence_guards(&self) -> Vec<String> {
        guards::satisfied_without(&self.root)
    }

    /// Names of elements of the focus any one of which being present makes the expression
    /// true (`code.empty() or system.exists()` with a `system`); empty when none are known.
    pub(crate) fn presence_guards(&self) -> Vec<String> {
        guards::true_with(&self.root)
    }

    /// Evaluates the expression as a boolean (as invariants are): `None` for an empty result,
    /// the value of a single Boolean, `true` for any other single item, an error for several.
    pub fn evaluate_boolean(&self, ctx: &Context<'_>) -> Result<Option<bool>, Error> {
        let items = self.evaluate(ctx)?;
        eval::to_bool(&items, "the result of the expression")
    }
}

/// A reference resolver: given the reference text (`Patient/1`, `urn:uuid:…`), the resource.
pub type Resolver<'a> = dyn Fn(&str) -> Option<&'a Value> + 'a;

/// A sink for `trace()`: the name given and the traced items.
pub type Tracer<'a> = dyn Fn(&str, &[Item<'a>]) + 'a;

/// What an expression is evaluated against: the focus (`%context` and the initial `$this`),
/// `%resource`, `%rootResource`, user variables, the clock and a reference resolver.
pub struct Context<'a> {
    focus: Vec<Item<'a>>,
    resource: Option<Item<'a>>,
    root_resource: Option<Item<'a>>,
    variables: Vec<(String, Vec<Item<'a>>)>,
    now: Option<chrono::DateTime<chrono::FixedOffset>>,
    resolver: Option<&'a Resolver<'a>>,
    tracer: Option<&'a Tracer<'a>>,
    strict: bool,
    check_ordered: bool,
}

impl<'a> Context<'a> {
    /// A resource (typed by its `resourceType`) as focus, `%resource` and `%rootResource`.
    pub fn new(resource: &'a Value) -> Self {
        let item = Item::Node(resource_node(resource));
        Context {
            focus: vec![item.clone()],
            resource: Some(item.clone()),
            root_resource: Some(item),
            ..Context::empty()
        }
    }

    /// A value of a named FHIR type (a resource, or a data type such as `HumanName`) as the
    /// focus; for a resource it is `%resource` too.
    pub fn typed(value: &'a Value, type_name: &str) -> Result<Self, Error> {
        let defs = crate::definitions();
        let t = defs
            .type_def(type_name)
            .ok_or_else(|| error(ErrorKind::Semantic, format!("unknown FHIR type '{type_name}'"), None))?;
        let name = t.name.as_str();
        let ty = match (t.kind, crate::definitions::Primitive::from_name(name)) {
            (_, Some(p)) => FhirType::Primitive(p),
            (crate::TypeKind::Resource, _) => FhirType::Resource { name, def: defs.root(name) },
            (_, None) => match defs.root(name) {
                Some(def) => FhirType::Complex { name, def },
                None => FhirType::Json,
            },
        };
        let item = Item::Node(Node { value: Some(value), extra: None, ty });
        let is_resource = matches!(ty, FhirType::Resource { .. });
        Ok(Context {
            focus: vec![item.clone()],
            resource: is_resource.then(|| item.clone()),
            root_resource: is_resource.then_some(item),
            ..Context::empty()
        })
    }

    /// An element as the focus (`%context` and `$this`) inside `resource` (`%resource`), itself
    /// inside `root` (`%rootResource`): how invariants are evaluated. The items are made once
    /// per element and resource by the caller, not per expression.
    pub(crate) fn element(focus: Item<'a>, resource: Item<'a>, root: Item<'a>) -> Self {
        Context { focus: vec![focus], resource: Some(resource), root_resource: Some(root), ..Context::empty() }
    }

    /// No input at all (for expressions that only compute).
    pub fn empty() -> Self {
        Context {
            focus: Vec::new(),
            resource: None,
            root_resource: None,
            variables: Vec::new(),
            now: None,
            resolver: None,
            tracer: None,
            strict: false,
            check_ordered: false,
        }
    }

    /// Evaluates against these items (e.g. an element found by an earlier expression)
    /// instead of the resource; `%resource` stays.
    pub fn with_focus(mut self, focus: Vec<Item<'a>>) -> Self {
        self.focus = focus;
        self
    }

    /// The resource that contains `%resource` (a Bundle or the container of a contained
    /// resource): `%rootResource`, and where `resolve()` looks for entries.
    pub fn with_root_resource(mut self, root: &'a Value) -> Self {
        self.root_resource = Some(Item::Node(resource_node(root)));
        self
    }

    /// A user variable, `%name` in expressions.
    pub fn with_variable(mut self, name: impl Into<String>, value: Vec<Item<'a>>) -> Self {
        self.variables.push((name.into(), value));
        self
    }

    /// The instant `now()`, `today()` and `timeOfDay()` report (by default the clock, read
    /// once per evaluation).
    pub fn with_now(mut self, now: chrono::DateTime<chrono::FixedOffset>) -> Self {
        self.now = Some(now);
        self
    }

    /// How `resolve()` finds referenced resources. Without one (or when it finds nothing),
    /// `resolve()` looks in `contained` (`#id`) and in a Bundle root (by `fullUrl` or
    /// `Type/id`), and otherwise yields an empty resource of the type the reference names,
    /// so `resolve() is Patient` still works.
    pub fn with_resolver(mut self, resolver: &'a Resolver<'a>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Where `trace()` reports.
    pub fn with_tracer(mut self, tracer: &'a Tracer<'a>) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Strict mode: names that are no element of the type, a root type name that is not the
    /// context's type and non-Boolean `iif()` criteria are errors instead of empty results.
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = on;
        self
    }

    /// Refuses order-dependent functions (`first()`, `skip()`, `[0]`…) on collections that
    /// have no defined order (`children()`, `descendants()`).
    pub fn check_ordered_functions(mut self, on: bool) -> Self {
        self.check_ordered = on;
        self
    }
}

fn resource_node(v: &Value) -> Node<'_> {
    let defs = crate::definitions();
    let ty = match v.get("resourceType").and_then(Value::as_str).and_then(|rt| defs.type_def(rt)) {
        Some(t) => FhirType::Resource { name: t.name.as_str(), def: defs.root(&t.name) },
        None => FhirType::Json,
    };
    Node { value: Some(v), extra: None, ty }
}

#[cfg(test)]
mod tests;
