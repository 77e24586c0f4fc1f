//! What FHIRPath collections hold: nodes of the resource (borrowed JSON with their FHIR type)
//! and System values.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde_json::Value;

use super::decimal::Decimal;
use super::temporal::{CalendarUnit, Temporal};
use crate::definitions::{NodeId, Primitive};

/// A string that is either borrowed from the input or computed.
#[derive(Debug, Clone)]
pub enum Text<'a> {
    Borrowed(&'a str),
    Shared(Arc<str>),
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text::Shared(Arc::from(s))
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// The FHIR type of a node, as the definitions give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirType {
    Primitive(Primitive),
    /// A complex type or backbone element: `def` is the definition node whose children apply.
    Complex {
        name: &'static str,
        def: NodeId,
    },
    /// A resource; `def` is `None` for a type the definitions do not describe.
    Resource {
        name: &'static str,
        def: Option<NodeId>,
    },
    /// JSON whose type is not known (navigated by property name only).
    Json,
}

impl FhirType {
    pub fn name(&self) -> &'static str {
        match self {
            FhirType::Primitive(p) => p.name(),
            FhirType::Complex { name, .. } | FhirType::Resource { name, .. } => name,
            FhirType::Json => "Element",
        }
    }
}

/// A node of the input: the JSON value (absent for a primitive that only has an id or
/// extensions), the `_name` sibling of a primitive, and its FHIR type.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub value: Option<&'a Value>,
    pub extra: Option<&'a Value>,
    pub ty: FhirType,
}

impl<'a> Node<'a> {
    /// The JSON value of the node, if it has one.
    pub fn json(&self) -> Option<&'a Value> {
        self.value
    }

    /// The object holding a primitive's `id` and `extension` (its `_name` sibling).
    pub fn primitive_extras(&self) -> Option<&'a Value> {
        self.extra
    }

    pub fn type_name(&self) -> &'static str {
        self.ty.name()
    }

    /// The string value of a string-like primitive (`string`, `code`, `uri`, `id`,
    /// `markdown`, … and the date/time types, as written).
    pub fn as_str(&self) -> Option<&'a str> {
        self.value.and_then(Value::as_str)
    }

    pub(crate) fn same(&self, other: &Node<'_>) -> bool {
        match (self.value, other.value) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            (None, None) => match (self.extra, other.extra) {
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                _ => false,
            },
            _ => false,
        }
    }
}

/// A System.Quantity: an exact value and a unit, UCUM or a calendar duration keyword.
#[derive(Debug, Clone)]
pub struct Quantity<'a> {
    pub value: Decimal,
    pub unit: Text<'a>,
    /// Written as a calendar keyword (`4 days`, not `4 'd'`).
    pub calendar: Option<CalendarUnit>,
}

impl fmt::Display for Quantity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.calendar.is_some() {
            write!(f, "{} {}", self.value, self.unit)
        } else {
            write!(f, "{} '{}'", self.value, self.unit)
        }
    }
}

/// What `type()` returns: a type's namespace (`System` or `FHIR`) and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    pub namespace: &'static str,
    pub name: &'static str,
}

/// One item of a FHIRPath collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A node of the input resource (an element, a primitive or a resource).
    Node(Node<'a>),
    Boolean(bool),
    Integer(i64),
    Decimal(Decimal),
    String(Text<'a>),
    Date(Temporal),
    DateTime(Temporal),
    Time(Temporal),
    Quantity(Box<Quantity<'a>>),
    Type(TypeInfo),
}

/// A System value, or a FHIR primitive (or Quantity) read as one.
#[derive(Debug, Clone)]
pub(crate) enum Prim<'x> {
    Bool(bool),
    Int(i64),
    Dec(Decimal),
    Str(&'x str),
    Date(Temporal),
    DateTime(Temporal),
    Time(Temporal),
    Quantity(Quantity<'x>),
}

impl<'a> Item<'a> {
    pub fn string(s: impl Into<String>) -> Self {
        Item::String(Text::from(s.into()))
    }

    /// The FHIR or System type name: `HumanName`, `code`, `Patient`, `Integer`, `String`…
    pub fn type_name(&self) -> &'static str {
        self.type_info().name
    }

    pub fn type_info(&self) -> TypeInfo {
        let system = |name| TypeInfo { namespace: "System", name };
        match self {
            Item::Node(n) => TypeInfo { namespace: "FHIR", name: n.type_name() },
            Item::Boolean(_) => system("Boolean"),
            Item::Integer(_) => system("Integer"),
            Item::Decimal(_) => system("Decimal"),
            Item::String(_) => system("String"),
            Item::Date(_) => system("Date"),
            Item::DateTime(_) => system("DateTime"),
            Item::Time(_) => system("Time"),
            Item::Quantity(_) => system("Quantity"),
            Item::Type(_) => system("TypeInfo"),
        }
    }

    /// The node, when the item is part of the input.
    pub fn node(&self) -> Option<&Node<'a>> {
        match self {
            Item::Node(n) => Some(n),
            _ => None,
        }
    }

    /// The JSON value of a node item.
    pub fn json(&self) -> Option<&'a Value> {
        self.node().and_then(|n| n.value)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.prim() {
            Some(Prim::Bool(b)) => Some(b),
            _ => None,
        }
    }

    /// The text of a String (or of a string-like FHIR primitive).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::String(s) => Some(s),
            Item::Node(n) => match n.ty {
                FhirType::Primitive(p) if is_stringish(p) => n.as_str(),
                _ => None,
            },
            _ => None,
        }
    }

    /// The item as a System value: FHIR primitives convert (`decimal` keeps its exact text,
    /// `dateTime` and `instant` become DateTime with their precision, `Quantity` nodes become
    /// System.Quantity); complex nodes and type infos have none.
    pub(crate) fn prim(&self) -> Option<Prim<'_>> {
        Some(match self {
            Item::Boolean(b) => Prim::Bool(*b),
            Item::Integer(i) => Prim::Int(*i),
            Item::Decimal(d) => Prim::Dec(*d),
            Item::String(s) => Prim::Str(s),
            Item::Date(t) => Prim::Date(*t),
            Item::DateTime(t) => Prim::DateTime(*t),
            Item::Time(t) => Prim::Time(*t),
            Item::Quantity(q) => {
                Prim::Quantity(Quantity { value: q.value, unit: Text::Borrowed(&q.unit), calendar: q.calendar })
            }
            Item::Type(_) => return None,
            Item::Node(n) => return node_prim(n),
        })
    }

    /// Converts a FHIR primitive node to the System value it stands for; other items are
    /// returned as they are.
    pub fn to_system(&self) -> Item<'a> {
        match self {
            Item::Node(n) => match node_prim(n) {
                Some(p) => prim_to_item(p),
                None => self.clone(),
            },
            _ => self.clone(),
        }
    }

    /// Whether the item is a FHIR primitive or a System value (not a structure).
    pub fn is_primitive(&self) -> bool {
        match self {
            Item::Node(n) => matches!(n.ty, FhirType::Primitive(_)),
            Item::Type(_) => false,
            _ => true,
        }
    }
}

pub(crate) fn is_stringish(p: Primitive) -> bool {
    !matches!(
        p,
        Primitive::Boolean
            | Primitive::Integer
            | Primitive::PositiveInt
            | Primitive::UnsignedInt
            | Primitive::Decimal
            | Primitive::Date
            | Primitive::DateTime
            | Primitive::Instant
            | Primitive::Time
    )
}

pub(crate) fn prim_to_item(p: Prim<'_>) -> Item<'_> {
    match p {
        Prim::Bool(b) => Item::Boolean(b),
        Prim::Int(i) => Item::Integer(i),
        Prim::Dec(d) => Item::Decimal(d),
        Prim::Str(s) => Item::String(Text::Borrowed(s)),
        Prim::Date(t) => Item::Date(t),
        Prim::DateTime(t) => Item::DateTime(t),
        Prim::Time(t) => Item::Time(t),
        Prim::Quantity(q) => Item::Quantity(Box::new(q)),
    }
}

fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

const UCUM: &str = "http://unitsofmeasure.org";

fn node_prim<'x>(n: &Node<'x>) -> Option<Prim<'x>> {
    let v = n.value?;
    match n.ty {
        FhirType::Primitive(p) => match p {
            Primitive::Boolean => v.as_bool().map(Prim::Bool),
            Primitive::Integer | Primitive::PositiveInt | Primitive::UnsignedInt => {
                number_text(v).and_then(|t| t.parse().ok()).map(Prim::Int)
            }
            Primitive::Decimal => number_text(v).and_then(|t| Decimal::parse(&t)).map(Prim::Dec),
            Primitive::Date => v.as_str().and_then(Temporal::parse_date).map(Prim::Date),
            // A dateTime holding only a date stays a DateTime (of day precision).
            Primitive::DateTime | Primitive::Instant => {
                v.as_str().and_then(Temporal::parse_datetime).map(Prim::DateTime)
            }
            Primitive::Time => v.as_str().and_then(Temporal::parse_time).map(Prim::Time),
            _ => v.as_str().map(Prim::Str),
        },
        FhirType::Complex { name, .. } if is_quantity_type(name) => quantity_of(v).map(Prim::Quantity),
        FhirType::Json => match v {
            Value::Bool(b) => Some(Prim::Bool(*b)),
            Value::String(s) => Some(Prim::Str(s)),
            Value::Number(num) => {
                let t = num.to_string();
                match t.parse::<i64>() {
                    Ok(i) => Some(Prim::Int(i)),
                    Err(_) => Decimal::parse(&t).map(Prim::Dec),
                }
            }
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn is_quantity_type(name: &str) -> bool {
    matches!(name, "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity")
}

/// A FHIR Quantity as a System.Quantity: the UCUM code when the system is UCUM (or absent),
/// another code as it is, else the human unit; `'1'` when there is no unit at all.
fn quantity_of(v: &Value) -> Option<Quantity<'_>> {
    let value = number_text(v.get("value")?).and_then(|t| Decimal::parse(&t))?;
    let code = v.get("code").and_then(Value::as_str);
    let system = v.get("system").and_then(Value::as_str);
    let unit = match (code, system) {
        (Some(c), Some(UCUM) | None) => c,
        (Some(c), Some(_)) => c,
        (None, _) => v.get("unit").and_then(Value::as_str).unwrap_or("1"),
    };
    Some(Quantity { value, unit: Text::Borrowed(unit), calendar: None })
}

/// The text `toString()` gives for a System value.
pub(crate) fn prim_string(p: &Prim<'_>) -> String {
    match p {
        Prim::Bool(b) => b.to_string(),
        Prim::Int(i) => i.to_string(),
        Prim::Dec(d) => d.to_string(),
        Prim::Str(s) => (*s).to_owned(),
        Prim::Date(t) => t.date_string(),
        Prim::DateTime(t) => t.datetime_string(),
        Prim::Time(t) => t.time_string(),
        Prim::Quantity(q) => q.to_string(),
    }
}

impl fmt::Display for Item<'_> {
    /// The `toString()` text of a primitive; a structure prints as its JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Node(n) => match (n.ty, n.value) {
                (FhirType::Primitive(_), Some(Value::String(s))) => f.write_str(s),
                (_, Some(v)) => write!(f, "{v}"),
                (_, None) => Ok(()),
            },
            Item::Type(t) => write!(f, "{}.{}", t.namespace, t.name),
            other => match other.prim() {
                Some(p) => f.write_str(&prim_string(&p)),
                None => Ok(()),
            },
        }
    }
}
