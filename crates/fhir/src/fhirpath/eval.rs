//! Evaluation: navigation over the JSON with the definitions' types, operators, equality and
//! comparison. Functions are in `functions.rs`.

use std::cell::Cell;
use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{BinOp, Expr, Lit, TypeSpec};
use super::decimal::Decimal;
use super::quantity;
use super::temporal::{CalendarUnit, Temporal};
use super::value::{FhirType, Item, Node, Prim, Quantity, Text};
use super::{Context, ErrorKind, error};
use crate::Error;
use crate::definitions::{Definitions, NodeId, TypeClass};

pub(crate) type R<T> = Result<T, Error>;
pub(crate) type Coll<'a> = Vec<Item<'a>>;

/// Most items any evaluation may produce in all (a bound on `descendants()` of huge inputs,
/// runaway `repeat()` and the like).
const BUDGET: usize = 2_000_000;

pub(crate) fn exec(message: impl Into<String>) -> Error {
    error(ErrorKind::Execution, message, None)
}

pub(crate) fn semantic(message: impl Into<String>) -> Error {
    error(ErrorKind::Semantic, message, None)
}

/// What `$this`, `$index` and `$total` are where an expression is evaluated.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'s, 'a> {
    pub this: &'s [Item<'a>],
    pub index: Option<usize>,
    pub total: Option<&'s [Item<'a>]>,
}

pub(crate) struct Eval<'c, 'a> {
    pub ctx: &'c Context<'a>,
    pub defs: &'static Definitions,
    pub now: Cell<Option<chrono::DateTime<chrono::FixedOffset>>>,
    budget: Cell<usize>,
}

/// The type a property is declared with.
#[derive(Clone, Copy)]
pub(crate) enum Declared {
    Fixed(FhirType),
    /// A resource: its type is read from `resourceType`.
    Resource,
}

impl<'c, 'a> Eval<'c, 'a> {
    pub fn new(ctx: &'c Context<'a>) -> Self {
        Eval { ctx, defs: crate::definitions(), now: Cell::new(ctx.now), budget: Cell::new(BUDGET) }
    }

    pub fn spend(&self, n: usize) -> R<()> {
        let left = self.budget.get();
        if n > left {
            return Err(exec("the evaluation produced too many items (over 2,000,000)"));
        }
        self.budget.set(left - n);
        Ok(())
    }

    pub fn eval(&self, e: &Expr, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        let out = match e {
            Expr::Empty => Vec::new(),
            Expr::Literal(l) => vec![literal(l)],
            Expr::This => scope.this.to_vec(),
            Expr::Index => match scope.index {
                Some(i) => vec![Item::Integer(i as i64)],
                None => Vec::new(),
            },
            Expr::Total => scope.total.map(<[Item<'a>]>::to_vec).unwrap_or_default(),
            Expr::Env(name) => self.env(name)?,
            Expr::Ident { name, type_name } => {
                let mut out = Vec::new();
                let mut known = false;
                for item in scope.this {
                    if *type_name && self.is_of_type(item, name) {
                        out.push(item.clone());
                        known = true;
                    } else if *type_name && self.ctx.strict && is_resource_node(item) {
                        let actual = item.type_name();
                        return Err(semantic(format!("the expression is about {name} but the context is {actual}")));
                    } else {
                        known |= self.child(item, name, &mut out)?;
                    }
                }
                if self.ctx.strict && !known && !scope.this.is_empty() {
                    return Err(self.unknown_element(&scope.this[0], name));
                }
                out
            }
            Expr::Member(target, name) => {
                if self.ctx.strict {
                    self.check_cast_member(target, name)?;
                }
                let input = self.eval(target, scope)?;
                let mut out = Vec::with_capacity(input.len());
                let mut known = false;
                for item in &input {
                    known |= self.child(item, name, &mut out)?;
                }
                // Strict mode refuses a name that no item's type has (a collection from
                // descendants() mixes types: one of them having it is enough).
                if self.ctx.strict && !known && !input.is_empty() {
                    return Err(self.unknown_element(&input[0], name));
                }
                out
            }
            Expr::Call(call) => self.call(call, scope)?,
            Expr::Indexer(target, index) => {
                let input = self.eval(target, scope)?;
                let idx = self.eval(index, scope)?;
                match single(&idx, "an index")? {
                    None => Vec::new(),
                    Some(Item::Integer(i)) => {
                        if self.ctx.check_ordered && matches!(target.as_ref(), Expr::Call(c) if c.unordered_input) {
                            return Err(semantic("indexing a collection without a defined order"));
                        }
                        usize::try_from(*i).ok().and_then(|i| input.get(i).cloned()).into_iter().collect()
                    }
                    Some(other) => return Err(exec(format!("an index must be an Integer, not {}", other.type_name()))),
                }
            }
            Expr::Negate(inner) => {
                let v = self.eval(inner, scope)?;
                match single(&v, "the operand of unary minus")? {
                    None => Vec::new(),
                    Some(item) => vec![match item.prim() {
                        Some(Prim::Int(i)) => Item::Integer(i.checked_neg().ok_or_else(|| exec("integer overflow"))?),
                        Some(Prim::Dec(d)) => Item::Decimal(d.negated()),
                        Some(Prim::Quantity(q)) => Item::Quantity(Box::new(Quantity {
                            value: q.value.negated(),
                            unit: Text::from(q.unit.to_string()),
                            calendar: q.calendar,
                        })),
                        _ => return Err(exec(format!("cannot negate a {}", item.type_name()))),
                    }],
                }
            }
            Expr::Plus(inner) => {
                let v = self.eval(inner, scope)?;
                if let Some(item) = single(&v, "the operand of unary plus")?
                    && !matches!(item.prim(), Some(Prim::Int(_) | Prim::Dec(_) | Prim::Quantity(_)))
                {
                    return Err(exec(format!("unary plus needs a number, not {}", item.type_name())));
                }
                v
            }
            Expr::Binary(op, l, r) => self.binary(*op, l, r, scope)?,
            Expr::Is(inner, spec) => {
                let v = self.eval(inner, scope)?;
                match single(&v, "the left side of 'is'")? {
                    None => Vec::new(),
                    Some(item) => vec![Item::Boolean(self.type_matches(item, *spec, false))],
                }
            }
            // Outside strict mode the operator filters (like ofType): R4's own search
            // parameters apply it to repeating elements
            // (`(ActivityDefinition.useContext.value as CodeableConcept)`).
            Expr::As(inner, spec) => {
                let v = self.eval(inner, scope)?;
                if self.ctx.strict {
                    single(&v, "the left side of 'as'")?;
                }
                v.into_iter().filter(|item| self.type_matches(item, *spec, true)).collect()
            }
        };
        self.spend(out.len())?;
        Ok(out)
    }

    fn env(&self, name: &str) -> R<Coll<'a>> {
        let s = |v: &str| Ok(vec![Item::string(v)]);
        let fixed = |v: &'static str| Ok(vec![Item::String(Text::Borrowed(v))]);
        match name {
            "context" => Ok(self.ctx.focus.clone()),
            "resource" => Ok(self.ctx.resource.clone().into_iter().collect()),
            "rootResource" => {
                Ok(self.ctx.root_resource.clone().or_else(|| self.ctx.resource.clone()).into_iter().collect())
            }
            "ucum" => fixed("http://unitsofmeasure.org"),
            "sct" => fixed("http://snomed.info/sct"),
            "loinc" => fixed("http://loinc.org"),
            _ => {
                if let Some((_, v)) = self.ctx.variables.iter().find(|(n, _)| n == name) {
                    return Ok(v.clone());
                }
                if let Some(vs) = name.strip_prefix("vs-") {
                    return s(&format!("http://hl7.org/fhir/ValueSet/{vs}"));
                }
                if let Some(ext) = name.strip_prefix("ext-") {
                    return s(&format!("http://hl7.org/fhir/StructureDefinition/{ext}"));
                }
                Err(exec(format!("unknown environment variable %{name}")))
            }
        }
    }

    // ---------------------------------------------------------------- navigation

    /// A resource node for a JSON object, typed by its `resourceType`.
    pub fn resource_node(&self, v: &'a Value) -> Node<'a> {
        let ty = match v.get("resourceType").and_then(Value::as_str).and_then(|rt| self.defs.type_def(rt)) {
            Some(t) => FhirType::Resource { name: t.name.as_str(), def: self.defs.root(&t.name) },
            None => FhirType::Json,
        };
        Node { value: Some(v), extra: None, ty }
    }

    /// The declared type of an element (of a choice, the chosen type).
    pub fn declared(&self, id: NodeId, choice: Option<usize>) -> Declared {
        let defs = self.defs;
        let node = defs.node(id);
        let source = node.reuse.unwrap_or(id);
        let def = defs.node(source);
        let i = choice.unwrap_or(0);
        let code: Option<&'static str> = def.types.get(i).map(|t| t.code.as_str());
        if choice.is_none() && !def.children.is_empty() {
            return Declared::Fixed(FhirType::Complex { name: code.unwrap_or("BackboneElement"), def: source });
        }
        match def.classes.get(i) {
            Some(TypeClass::Primitive(p)) => Declared::Fixed(FhirType::Primitive(*p)),
            Some(TypeClass::Complex(root)) => {
                Declared::Fixed(FhirType::Complex { name: code.unwrap_or("Element"), def: *root })
            }
            Some(TypeClass::Resource) => Declared::Resource,
            _ => Declared::Fixed(FhirType::Json),
        }
    }

    fn make(&self, value: Option<&'a Value>, extra: Option<&'a Value>, decl: Declared) -> Node<'a> {
        match (decl, value) {
            (Declared::Resource, Some(v)) => self.resource_node(v),
            (Declared::Resource, None) => Node { value, extra, ty: FhirType::Json },
            (Declared::Fixed(ty), _) => Node { value, extra, ty },
        }
    }

    /// Adds the items of a property (flattening arrays, pairing primitives with `_name`).
    pub fn push_values(&self, value: Option<&'a Value>, extra: Option<&'a Value>, decl: Declared, out: &mut Coll<'a>) {
        let present = |v: Option<&'a Value>| v.filter(|v| !v.is_null());
        let values = match value {
            Some(Value::Array(v)) => Some(v.as_slice()),
            _ => None,
        };
        let extras = match extra {
            Some(Value::Array(x)) => Some(x.as_slice()),
            _ => None,
        };
        if values.is_some() || (value.is_none() && extras.is_some()) {
            let (values, extras) = (values.unwrap_or(&[]), extras.unwrap_or(&[]));
            for i in 0..values.len().max(extras.len()) {
                let (v, x) = (present(values.get(i)), present(extras.get(i)));
                if v.is_some() || x.is_some() {
                    out.push(Item::Node(self.make(v, x, decl)));
                }
            }
        } else {
            let (v, x) = (present(value), present(extra));
            if v.is_some() || x.is_some() {
                out.push(Item::Node(self.make(v, x, decl)));
            }
        }
    }

    /// Adds the `name` children of an item; says whether `name` is an element of the item's
    /// type (always `true` for untyped JSON; only worked out in strict mode).
    pub fn child(&self, item: &Item<'a>, name: &str, out: &mut Coll<'a>) -> R<bool> {
        let n = match item {
            Item::Node(n) => n,
            Item::Type(t) => {
                match name {
                    "namespace" => out.push(Item::String(Text::Borrowed(t.namespace))),
                    "name" => out.push(Item::String(Text::Borrowed(t.name))),
                    _ => return Ok(false),
                }
                return Ok(true);
            }
            _ => return Ok(false),
        };
        match n.ty {
            FhirType::Primitive(_) => {
                // A primitive's own children are its id and extensions, kept in `_name`.
                if let Some(element) = self.defs.element_root() {
                    return self.structured(n.extra, element, name, out);
                }
                Ok(true)
            }
            FhirType::Complex { def, .. } | FhirType::Resource { def: Some(def), .. } => {
                self.structured(n.value, def, name, out)
            }
            FhirType::Resource { def: None, .. } | FhirType::Json => {
                if let Some(obj) = n.value.and_then(Value::as_object) {
                    let value = obj.get(name);
                    let extra = with_underscore(name, |k| obj.get(k));
                    self.push_values(value, extra, Declared::Fixed(FhirType::Json), out);
                }
                Ok(true)
            }
        }
    }

    fn unknown_element(&self, item: &Item<'a>, name: &str) -> Error {
        let what = match item {
            Item::Node(Node {
                ty: FhirType::Complex { def, .. } | FhirType::Resource { def: Some(def), .. }, ..
            }) => self.defs.definition_of(*def).path.clone(),
            other => other.type_name().to_owned(),
        };
        semantic(format!("'{name}' is not an element of {what}"))
    }

    fn structured(&self, value: Option<&'a Value>, def: NodeId, name: &str, out: &mut Coll<'a>) -> R<bool> {
        let defs = self.defs;
        let d = defs.definition_of(def);
        let obj = value.and_then(Value::as_object);
        if let Some(child) = d.children.get(name) {
            if child.choice_type.is_some() {
                let base = &defs.node(child.node).name;
                return Err(semantic(format!(
                    "'{name}' is how JSON spells the choice element '{base}'; FHIRPath navigates it as '{base}' \
                     (use {base}.ofType(…) for one type)"
                )));
            }
            if let Some(obj) = obj {
                let decl = self.declared(child.node, None);
                let v = obj.get(name);
                let x = match decl {
                    Declared::Fixed(FhirType::Primitive(_)) => with_underscore(name, |k| obj.get(k)),
                    _ => None,
                };
                self.push_values(v, x, decl, out);
            }
            return Ok(true);
        }
        if let Some(obj) = obj {
            for (key, v) in obj {
                let (k, is_extra) = match key.strip_prefix('_') {
                    Some(rest) => (rest, true),
                    None => (key.as_str(), false),
                };
                if k.len() <= name.len() || !k.starts_with(name) || !k.as_bytes()[name.len()].is_ascii_uppercase() {
                    continue;
                }
                let Some(c) = d.children.get(k) else { continue };
                if c.choice_type.is_none() || defs.node(c.node).name != name {
                    continue;
                }
                let decl = self.declared(c.node, c.choice_type);
                if is_extra {
                    if obj.contains_key(k) {
                        continue;
                    }
                    self.push_values(None, Some(v), decl, out);
                } else {
                    let x = with_underscore(k, |u| obj.get(u));
                    self.push_values(Some(v), x, decl, out);
                }
                return Ok(true);
            }
        }
        Ok(!self.ctx.strict || d.children.values().any(|c| defs.node(c.node).name == name))
    }

    /// The child nodes of an item (`children()`).
    pub fn children(&self, item: &Item<'a>, out: &mut Coll<'a>) {
        let Item::Node(n) = item else { return };
        let (obj, def) = match n.ty {
            FhirType::Primitive(_) => (n.extra.and_then(Value::as_object), self.defs.element_root()),
            FhirType::Complex { def, .. } | FhirType::Resource { def: Some(def), .. } => {
                (n.value.and_then(Value::as_object), Some(def))
            }
            _ => (n.value.and_then(Value::as_object), None),
        };
        let Some(obj) = obj else { return };
        let d = def.map(|id| self.defs.definition_of(id));
        for (key, v) in obj {
            if key == "resourceType" {
                continue;
            }
            let (k, is_extra) = match key.strip_prefix('_') {
                Some(rest) => (rest, true),
                None => (key.as_str(), false),
            };
            if is_extra && obj.contains_key(k) {
                continue;
            }
            let decl = match d.and_then(|d| d.children.get(k)) {
                Some(c) => self.declared(c.node, c.choice_type),
                None => Declared::Fixed(FhirType::Json),
            };
            if is_extra {
                self.push_values(None, Some(v), decl, out);
            } else {
                let x = match decl {
                    Declared::Fixed(FhirType::Primitive(_)) => with_underscore(k, |u| obj.get(u)),
                    _ => None,
                };
                self.push_values(Some(v), x, decl, out);
            }
        }
    }

    /// Strict mode knows the type after a cast even when the cast finds nothing:
    /// `(Observation.value as Period).unit` names no element of Period.
    fn check_cast_member(&self, target: &Expr, name: &str) -> R<()> {
        let spec = match target {
            Expr::As(_, spec) => *spec,
            Expr::Call(c) if matches!(c.func, super::ast::Func::As | super::ast::Func::OfType) => match c.type_arg {
                Some(spec) => spec,
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let TypeSpec::Fhir(type_name) = spec else { return Ok(()) };
        let Some(root) = self.defs.root(type_name).or_else(|| self.defs.element_root()) else { return Ok(()) };
        let d = self.defs.definition_of(root);
        if d.children.values().any(|c| self.defs.node(c.node).name == name) {
            return Ok(());
        }
        Err(semantic(format!("'{name}' is not an element of {type_name}")))
    }

    // ---------------------------------------------------------------- types

    pub fn is_subtype(&self, name: &str, ancestor: &str) -> bool {
        let mut current = name;
        for _ in 0..12 {
            if current == ancestor {
                return true;
            }
            match self.defs.type_def(current).and_then(|t| t.base.as_deref()) {
                Some(base) => current = base,
                None => return false,
            }
        }
        false
    }

    /// Whether an item is a resource (or typed value) of the named type or one derived from it.
    fn is_of_type(&self, item: &Item<'a>, name: &str) -> bool {
        match item {
            Item::Node(n) => !matches!(n.ty, FhirType::Json) && self.is_subtype(n.type_name(), name),
            _ => false,
        }
    }

    /// `is` follows inheritance (`code` is a `string`); `as` and `ofType` want the exact type
    /// for FHIR primitives (so `gender.as(string)` is empty) and accept derived complex types
    /// and resources.
    pub fn type_matches(&self, item: &Item<'a>, spec: TypeSpec, exact_primitives: bool) -> bool {
        match spec {
            TypeSpec::Nothing => false,
            TypeSpec::System(name) => !matches!(item, Item::Node(_)) && item.type_name() == name,
            TypeSpec::Fhir(name) => match item {
                Item::Node(n) => match n.ty {
                    FhirType::Json => false,
                    FhirType::Primitive(p) if exact_primitives => p.name() == name,
                    _ => self.is_subtype(n.type_name(), name),
                },
                Item::Quantity(_) => name == "Quantity",
                _ => false,
            },
        }
    }

    // ---------------------------------------------------------------- operators

    fn binary(&self, op: BinOp, l: &Expr, r: &Expr, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        match op {
            BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies => {
                let a = to_bool(&self.eval(l, scope)?, "the left operand of a boolean operator")?;
                // Short-circuit where the left side decides.
                let decided = match (op, a) {
                    (BinOp::And, Some(false)) => Some(false),
                    (BinOp::Or, Some(true)) => Some(true),
                    (BinOp::Implies, Some(false)) => Some(true),
                    _ => None,
                };
                if let Some(d) = decided {
                    return Ok(vec![Item::Boolean(d)]);
                }
                let b = to_bool(&self.eval(r, scope)?, "the right operand of a boolean operator")?;
                let result = match op {
                    BinOp::And => match (a, b) {
                        (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    BinOp::Or => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    BinOp::Xor => match (a, b) {
                        (Some(x), Some(y)) => Some(x != y),
                        _ => None,
                    },
                    _ => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(true), Some(false)) => Some(false),
                        (None, Some(false)) | (_, None) => None,
                        (Some(false), Some(false)) => Some(true),
                    },
                };
                return Ok(result.map(Item::Boolean).into_iter().collect());
            }
            _ => {}
        }
        let a = self.eval(l, scope)?;
        let b = self.eval(r, scope)?;
        let boolean = |v: Option<bool>| Ok(v.map(Item::Boolean).into_iter().collect());
        match op {
            BinOp::Union => {
                let mut out = Vec::with_capacity(a.len() + b.len());
                union_into(&mut out, a);
                union_into(&mut out, b);
                Ok(out)
            }
            BinOp::Eq => boolean(collection_eq(&a, &b)),
            BinOp::Ne => boolean(collection_eq(&a, &b).map(|v| !v)),
            BinOp::Equiv => boolean(Some(collection_equiv(&a, &b))),
            BinOp::NotEquiv => boolean(Some(!collection_equiv(&a, &b))),
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                let (Some(x), Some(y)) = (single(&a, "a comparison")?, single(&b, "a comparison")?) else {
                    return Ok(Vec::new());
                };
                let ord = compare(x, y)?;
                boolean(ord.map(|o| match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Gt => o == Ordering::Greater,
                    BinOp::Le => o != Ordering::Greater,
                    _ => o != Ordering::Less,
                }))
            }
            BinOp::In | BinOp::Contains => {
                let (needle, hay) = if op == BinOp::In { (&a, &b) } else { (&b, &a) };
                let Some(x) = single(needle, "the element of 'in'/'contains'")? else {
                    return Ok(Vec::new());
                };
                boolean(Some(hay.iter().any(|h| item_eq(x, h) == Some(true))))
            }
            BinOp::Concat => {
                let text = |c: &Coll<'a>| -> R<String> {
                    Ok(match single(c, "an operand of &")? {
                        None => String::new(),
                        Some(i) => i.as_str().map(str::to_owned).ok_or_else(|| exec("& needs strings"))?,
                    })
                };
                Ok(vec![Item::string(text(&a)? + &text(&b)?)])
            }
            _ => {
                let (Some(x), Some(y)) = (single(&a, "an arithmetic operand")?, single(&b, "an arithmetic operand")?)
                else {
                    return Ok(Vec::new());
                };
                Ok(arithmetic(op, x, y)?.into_iter().collect())
            }
        }
    }
}

/// Looks up `_name` without allocating for the usual short names.
fn with_underscore<T>(name: &str, f: impl FnOnce(&str) -> T) -> T {
    let mut buf = [0u8; 64];
    if name.len() < buf.len() {
        buf[0] = b'_';
        buf[1..=name.len()].copy_from_slice(name.as_bytes());
        if let Ok(key) = std::str::from_utf8(&buf[..=name.len()]) {
            return f(key);
        }
    }
    f(&format!("_{name}"))
}

fn is_resource_node(item: &Item<'_>) -> bool {
    matches!(item, Item::Node(Node { ty: FhirType::Resource { .. }, .. }))
}

pub(crate) fn literal<'a>(l: &Lit) -> Item<'a> {
    match l {
        Lit::Bool(b) => Item::Boolean(*b),
        Lit::Int(i) => Item::Integer(*i),
        Lit::Dec(d) => Item::Decimal(*d),
        Lit::Str(s) => Item::String(Text::Shared(s.clone())),
        Lit::Date(t) => Item::Date(*t),
        Lit::DateTime(t) => Item::DateTime(*t),
        Lit::Time(t) => Item::Time(*t),
        Lit::Quantity(v, u, c) => {
            Item::Quantity(Box::new(Quantity { value: *v, unit: Text::Shared(u.clone()), calendar: *c }))
        }
    }
}

/// The one item of a collection, `None` when empty, an error when there are several.
pub(crate) fn single<'x, 'a>(c: &'x [Item<'a>], what: &str) -> R<Option<&'x Item<'a>>> {
    match c {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(exec(format!("{what} must be a single item, not a collection of {}", c.len()))),
    }
}

/// Singleton evaluation to a boolean: a Boolean is itself, any other single item is `true`.
pub(crate) fn to_bool(c: &[Item<'_>], what: &str) -> R<Option<bool>> {
    Ok(single(c, what)?.map(|i| i.as_bool().unwrap_or(true)))
}

pub(crate) fn union_into<'a>(out: &mut Coll<'a>, items: Coll<'a>) {
    for item in items {
        if !out.iter().any(|o| item_eq(o, &item) == Some(true)) {
            out.push(item);
        }
    }
}

// ---------------------------------------------------------------- equality

fn collection_eq(a: &[Item<'_>], b: &[Item<'_>]) -> Option<bool> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.len() != b.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (x, y) in a.iter().zip(b) {
        match item_eq(x, y) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown { None } else { Some(true) }
}

fn collection_equiv(a: &[Item<'_>], b: &[Item<'_>]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| match b.iter().enumerate().find(|(i, y)| !used[*i] && item_equiv(x, y)) {
        Some((i, _)) => {
            used[i] = true;
            true
        }
        None => false,
    })
}

/// `=` on two items: `None` when the answer is unknown (dates of different precision,
/// quantities of incomparable units).
pub(crate) fn item_eq(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    match (a.prim(), b.prim()) {
        (Some(x), Some(y)) => prim_eq(&x, &y),
        (None, None) => match (a, b) {
            (Item::Node(x), Item::Node(y)) => Some(match (x.value, y.value) {
                (Some(p), Some(q)) => json_eq(p, q, false),
                _ => false,
            }),
            (Item::Type(x), Item::Type(y)) => Some(x == y),
            _ => Some(false),
        },
        _ => Some(false),
    }
}

pub(crate) fn item_equiv(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a.prim(), b.prim()) {
        (Some(x), Some(y)) => prim_equiv(&x, &y),
        (None, None) => match (a, b) {
            (Item::Node(x), Item::Node(y)) => match (x.value, y.value) {
                (Some(p), Some(q)) => json_eq(p, q, true),
                _ => false,
            },
            (Item::Type(x), Item::Type(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

fn number(p: &Prim<'_>) -> Option<Decimal> {
    match p {
        Prim::Int(i) => Some(Decimal::from_i64(*i)),
        Prim::Dec(d) => Some(*d),
        _ => None,
    }
}

fn as_quantity<'x>(p: &Prim<'x>) -> Option<Quantity<'x>> {
    match p {
        Prim::Quantity(q) => Some(q.clone()),
        _ => number(p).map(|value| Quantity { value, unit: Text::Borrowed("1"), calendar: None }),
    }
}

fn prim_eq(a: &Prim<'_>, b: &Prim<'_>) -> Option<bool> {
    match (a, b) {
        (Prim::Bool(x), Prim::Bool(y)) => Some(x == y),
        (Prim::Int(x), Prim::Int(y)) => Some(x == y),
        (Prim::Str(x), Prim::Str(y)) => Some(x == y),
        (Prim::Date(x) | Prim::DateTime(x), Prim::Date(y) | Prim::DateTime(y)) => {
            x.compare(y, false).map(|o| o == Ordering::Equal)
        }
        (Prim::Time(x), Prim::Time(y)) => x.compare(y, true).map(|o| o == Ordering::Equal),
        (Prim::Quantity(_), _) | (_, Prim::Quantity(_)) => match (as_quantity(a), as_quantity(b)) {
            (Some(x), Some(y)) => quantity::equal(&x, &y),
            _ => Some(false),
        },
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => Some(x.eq_value(&y)),
            _ => Some(false),
        },
    }
}

/// String equivalence ignores case and collapses whitespace.
fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn prim_equiv(a: &Prim<'_>, b: &Prim<'_>) -> bool {
    match (a, b) {
        (Prim::Bool(x), Prim::Bool(y)) => x == y,
        (Prim::Str(x), Prim::Str(y)) => x == y || normalize(x) == normalize(y),
        (Prim::Date(x) | Prim::DateTime(x), Prim::Date(y) | Prim::DateTime(y)) => x.equivalent(y, false),
        (Prim::Time(x), Prim::Time(y)) => x.equivalent(y, true),
        (Prim::Quantity(_), _) | (_, Prim::Quantity(_)) => match (as_quantity(a), as_quantity(b)) {
            (Some(x), Some(y)) => quantity::equivalent(&x, &y),
            _ => false,
        },
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.equivalent(&y),
            _ => false,
        },
    }
}

/// Structural equality of two JSON trees; numbers by value, strings exactly (or, for
/// equivalence, ignoring case and whitespace).
fn json_eq(a: &Value, b: &Value, equiv: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (Decimal::parse(&x.to_string()), Decimal::parse(&y.to_string())) {
                (Some(p), Some(q)) => p.eq_value(&q),
                _ => x == y,
            }
        }
        (Value::String(x), Value::String(y)) => x == y || (equiv && normalize(x) == normalize(y)),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q, equiv)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w, equiv)))
        }
        _ => a == b,
    }
}

/// `<` and friends: `None` when the answer is unknown; an error for values that do not compare.
pub(crate) fn compare(a: &Item<'_>, b: &Item<'_>) -> R<Option<Ordering>> {
    let (Some(x), Some(y)) = (a.prim(), b.prim()) else {
        return Err(exec(format!("cannot compare {} with {}", a.type_name(), b.type_name())));
    };
    Ok(match (&x, &y) {
        (Prim::Str(p), Prim::Str(q)) => Some(p.cmp(q)),
        (Prim::Date(p) | Prim::DateTime(p), Prim::Date(q) | Prim::DateTime(q)) => p.compare(q, false),
        (Prim::Time(p), Prim::Time(q)) => p.compare(q, true),
        (Prim::Quantity(_), _) | (_, Prim::Quantity(_)) => match (as_quantity(&x), as_quantity(&y)) {
            (Some(p), Some(q)) => quantity::compare(&p, &q),
            _ => return Err(exec(format!("cannot compare {} with {}", a.type_name(), b.type_name()))),
        },
        _ => match (number(&x), number(&y)) {
            (Some(p), Some(q)) => Some(p.cmp_value(&q)),
            _ => return Err(exec(format!("cannot compare {} with {}", a.type_name(), b.type_name()))),
        },
    })
}

// ---------------------------------------------------------------- arithmetic

fn overflow() -> Error {
    exec("arithmetic overflow")
}

fn arithmetic<'a>(op: BinOp, a: &Item<'a>, b: &Item<'a>) -> R<Option<Item<'a>>> {
    let (Some(x), Some(y)) = (a.prim(), b.prim()) else {
        return Err(exec(format!("cannot apply {op:?} to {} and {}", a.type_name(), b.type_name())));
    };
    let mismatch = || exec(format!("cannot apply {op:?} to {} and {}", a.type_name(), b.type_name()));
    Ok(match (&x, &y) {
        (Prim::Int(p), Prim::Int(q)) => match op {
            BinOp::Add => Some(Item::Integer(p.checked_add(*q).ok_or_else(overflow)?)),
            BinOp::Sub => Some(Item::Integer(p.checked_sub(*q).ok_or_else(overflow)?)),
            BinOp::Mul => Some(Item::Integer(p.checked_mul(*q).ok_or_else(overflow)?)),
            BinOp::Div => Decimal::from_i64(*p).checked_div(Decimal::from_i64(*q)).map(Item::Decimal),
            BinOp::IntDiv => {
                if *q == 0 {
                    None
                } else {
                    Some(Item::Integer(p.checked_div(*q).ok_or_else(overflow)?))
                }
            }
            BinOp::Mod => {
                if *q == 0 {
                    None
                } else {
                    Some(Item::Integer(p.checked_rem(*q).ok_or_else(overflow)?))
                }
            }
            _ => return Err(mismatch()),
        },
        (Prim::Str(p), Prim::Str(q)) if op == BinOp::Add => Some(Item::string(format!("{p}{q}"))),
        (Prim::Date(t), Prim::Quantity(q))
        | (Prim::DateTime(t), Prim::Quantity(q))
        | (Prim::Time(t), Prim::Quantity(q))
            if matches!(op, BinOp::Add | BinOp::Sub) =>
        {
            let is_time = matches!(x, Prim::Time(_));
            let moved = temporal_add(t, q, op == BinOp::Sub, is_time)?;
            Some(match x {
                Prim::Date(_) => Item::Date(moved),
                Prim::Time(_) => Item::Time(moved),
                _ => Item::DateTime(moved),
            })
        }
        (Prim::Quantity(_), _) | (_, Prim::Quantity(_)) => {
            let (Some(p), Some(q)) = (as_quantity(&x), as_quantity(&y)) else { return Err(mismatch()) };
            let r = match op {
                BinOp::Add => quantity::add(&p, &q, false),
                BinOp::Sub => quantity::add(&p, &q, true),
                BinOp::Mul => quantity::mul(&p, &q),
                BinOp::Div => quantity::div(&p, &q),
                _ => return Err(mismatch()),
            };
            r.map(|q| Item::Quantity(Box::new(q)))
        }
        _ => {
            let (Some(p), Some(q)) = (number(&x), number(&y)) else { return Err(mismatch()) };
            match op {
                BinOp::Add => Some(Item::Decimal(p.checked_add(q).ok_or_else(overflow)?)),
                BinOp::Sub => Some(Item::Decimal(p.checked_sub(q).ok_or_else(overflow)?)),
                BinOp::Mul => Some(Item::Decimal(p.checked_mul(q).ok_or_else(overflow)?)),
                BinOp::Div => p.checked_div(q).map(Item::Decimal),
                BinOp::IntDiv => match p.div_trunc(q) {
                    Some(v) => Some(Item::Integer(i64::try_from(v).map_err(|_| overflow())?)),
                    None => None,
                },
                BinOp::Mod => p.checked_rem(q).map(Item::Decimal),
                _ => return Err(mismatch()),
            }
        }
    })
}

fn temporal_add(t: &Temporal, q: &Quantity<'_>, subtract: bool, is_time: bool) -> R<Temporal> {
    let unit = q
        .calendar
        .or_else(|| CalendarUnit::from_keyword(&q.unit))
        .or_else(|| CalendarUnit::from_ucum_definite(&q.unit))
        .ok_or_else(|| {
            exec(format!(
                "cannot add {q} to a date or time: the unit must be a calendar duration (year … millisecond) \
                 or a definite UCUM duration (wk, d, h, min, s, ms)"
            ))
        })?;
    let amount = i64::try_from(q.value.trunc_int()).map_err(|_| overflow())?;
    let amount = if subtract { -amount } else { amount };
    t.add(amount, unit, is_time).ok_or_else(|| exec("the date/time arithmetic went out of range"))
}
