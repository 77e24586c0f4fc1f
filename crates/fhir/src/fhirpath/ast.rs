//! The parsed form of an expression. Function names, argument counts, type specifiers and
//! literal regexes are resolved while parsing, so evaluation does no name lookups.

use std::sync::Arc;

use regex::Regex;

use super::decimal::Decimal;
use super::temporal::{CalendarUnit, Temporal};

#[derive(Debug, Clone)]
pub enum Lit {
    Bool(bool),
    Int(i64),
    Dec(Decimal),
    Str(Arc<str>),
    Date(Temporal),
    DateTime(Temporal),
    Time(Temporal),
    Quantity(Decimal, Arc<str>, Option<CalendarUnit>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Union,
    And,
    Or,
    Xor,
    Implies,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Contains,
    Add,
    Sub,
    Mul,
    Div,
    IntDiv,
    Mod,
    Concat,
}

/// A resolved type specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeSpec {
    /// A System type: `Boolean`, `Integer`, `Decimal`, `String`, `Date`, `DateTime`, `Time`,
    /// `Quantity`.
    System(&'static str),
    /// A FHIR type (primitive, complex or resource) named as in the definitions.
    Fhir(&'static str),
    /// `System.X` for an X that is no System type: matches nothing.
    Nothing,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Empty,
    Literal(Lit),
    This,
    Index,
    Total,
    Env(String),
    /// An identifier at the start of a path: an element of `$this`, or (when `type_name`,
    /// i.e. it names a FHIR type) `$this` itself if it is of that type.
    Ident {
        name: String,
        type_name: bool,
    },
    Member(Box<Expr>, String),
    Call(Box<Call>),
    Indexer(Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Plus(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Is(Box<Expr>, TypeSpec),
    As(Box<Expr>, TypeSpec),
}

#[derive(Debug, Clone)]
pub struct Call {
    pub target: Option<Expr>,
    pub func: Func,
    pub args: Vec<Expr>,
    /// The type argument of `is()`, `as()` and `ofType()`.
    pub type_arg: Option<TypeSpec>,
    /// A literal pattern of `matches()`, `matchesFull()` and `replaceMatches()`, compiled once.
    pub regex: Option<Arc<Regex>>,
    /// For `sort()`: which keys sort descending (written with a leading `-`).
    pub descending: Vec<bool>,
    /// The input of an order-dependent function is a collection without a defined order
    /// (`children()`, `descendants()` and paths from them).
    pub unordered_input: bool,
}

macro_rules! functions {
    ($($name:literal => $variant:ident($min:literal, $max:literal)),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Func { $($variant),* }

        impl Func {
            /// The function of a name with its argument count range.
            pub fn lookup(name: &str) -> Option<(Func, usize, usize)> {
                Some(match name {
                    $($name => (Func::$variant, $min, $max),)*
                    _ => return None,
                })
            }

            pub fn name(self) -> &'static str {
                match self { $(Func::$variant => $name),* }
            }
        }
    };
}

functions! {
    "empty" => Empty(0, 0),
    "exists" => Exists(0, 1),
    "all" => All(1, 1),
    "allTrue" => AllTrue(0, 0),
    "anyTrue" => AnyTrue(0, 0),
    "allFalse" => AllFalse(0, 0),
    "anyFalse" => AnyFalse(0, 0),
    "subsetOf" => SubsetOf(1, 1),
    "supersetOf" => SupersetOf(1, 1),
    "count" => Count(0, 0),
    "distinct" => Distinct(0, 0),
    "isDistinct" => IsDistinct(0, 0),
    "where" => Where(1, 1),
    "select" => Select(1, 1),
    "repeat" => Repeat(1, 1),
    "ofType" => OfType(1, 1),
    "single" => Single(0, 0),
    "first" => First(0, 0),
    "last" => Last(0, 0),
    "tail" => Tail(0, 0),
    "skip" => Skip(1, 1),
    "take" => Take(1, 1),
    "intersect" => Intersect(1, 1),
    "exclude" => Exclude(1, 1),
    "union" => Union(1, 1),
    "combine" => Combine(1, 1),
    "iif" => Iif(2, 3),
    "toBoolean" => ToBoolean(0, 0),
    "convertsToBoolean" => ConvertsToBoolean(0, 0),
    "toInteger" => ToInteger(0, 0),
    "convertsToInteger" => ConvertsToInteger(0, 0),
    "toDate" => ToDate(0, 0),
    "convertsToDate" => ConvertsToDate(0, 0),
    "toDateTime" => ToDateTime(0, 0),
    "convertsToDateTime" => ConvertsToDateTime(0, 0),
    "toDecimal" => ToDecimal(0, 0),
    "convertsToDecimal" => ConvertsToDecimal(0, 0),
    "toQuantity" => ToQuantity(0, 1),
    "convertsToQuantity" => ConvertsToQuantity(0, 1),
    "toString" => ToString(0, 0),
    "convertsToString" => ConvertsToString(0, 0),
    "toTime" => ToTime(0, 0),
    "convertsToTime" => ConvertsToTime(0, 0),
    "indexOf" => IndexOf(1, 1),
    "substring" => Substring(1, 2),
    "startsWith" => StartsWith(1, 1),
    "endsWith" => EndsWith(1, 1),
    "contains" => Contains(1, 1),
    "upper" => Upper(0, 0),
    "lower" => Lower(0, 0),
    "replace" => Replace(2, 2),
    "matches" => Matches(1, 1),
    "matchesFull" => MatchesFull(1, 1),
    "replaceMatches" => ReplaceMatches(2, 2),
    "length" => Length(0, 0),
    "toChars" => ToChars(0, 0),
    "split" => Split(1, 1),
    "join" => Join(0, 1),
    "trim" => Trim(0, 0),
    "encode" => Encode(1, 1),
    "decode" => Decode(1, 1),
    "escape" => Escape(1, 1),
    "unescape" => Unescape(1, 1),
    "abs" => Abs(0, 0),
    "ceiling" => Ceiling(0, 0),
    "exp" => Exp(0, 0),
    "floor" => Floor(0, 0),
    "ln" => Ln(0, 0),
    "log" => Log(1, 1),
    "power" => Power(1, 1),
    "round" => Round(0, 1),
    "sqrt" => Sqrt(0, 0),
    "truncate" => Truncate(0, 0),
    "children" => Children(0, 0),
    "descendants" => Descendants(0, 0),
    "trace" => Trace(1, 2),
    "now" => Now(0, 0),
    "timeOfDay" => TimeOfDay(0, 0),
    "today" => Today(0, 0),
    "aggregate" => Aggregate(1, 2),
    "extension" => Extension(1, 1),
    "hasValue" => HasValue(0, 0),
    "getValue" => GetValue(0, 0),
    "resolve" => Resolve(0, 0),
    "conformsTo" => ConformsTo(1, 1),
    "memberOf" => MemberOf(1, 1),
    "htmlChecks" => HtmlChecks(0, 0),
    "elementDefinition" => ElementDefinition(0, 0),
    "slice" => Slice(2, 2),
    "checkModifiers" => CheckModifiers(1, 1),
    "is" => Is(1, 1),
    "as" => As(1, 1),
    "type" => Type(0, 0),
    "not" => Not(0, 0),
    "sort" => Sort(0, 16),
    "lowBoundary" => LowBoundary(0, 1),
    "highBoundary" => HighBoundary(0, 1),
    "precision" => Precision(0, 0),
    "comparable" => Comparable(1, 1),
}

impl Func {
    /// Functions whose result depends on the order of their input.
    pub fn is_ordered(self) -> bool {
        matches!(self, Func::First | Func::Last | Func::Tail | Func::Skip | Func::Take)
    }
}
