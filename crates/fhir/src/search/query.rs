//! Search requests, parsed: the query string of `GET [type]?…` (or the body of
//! `POST [type]/_search`) becomes a [`SearchRequest`] of typed filters and result parameters,
//! checked against the search parameters of the type (search.html). The store turns the
//! filters into SQL; nothing here knows about storage.

use std::sync::Arc;

use super::extract::relative_reference;
use super::text::normalize;
use super::{ParamKind, Registry, SearchParam};

/// The most values one search may carry in total (ORs and ANDs, value-set expansions
/// included): beyond it the SQL would grow without bound.
pub const MAX_VALUES: usize = 1000;

/// Chains (`subject.organization.name`) and `_has` may nest this deep.
pub const MAX_CHAIN: usize = 4;

/// A parameter name or value the server does not accept, with the parameter it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub param: String,
    pub message: String,
    /// The parameter is unknown (rather than its value malformed): ignorable with
    /// `Prefer: handling=lenient`.
    pub unknown: bool,
    /// The parameter is known and its value well formed, but it asks for what this server
    /// cannot answer (the hierarchy of a code system it does not carry): ignorable with
    /// `Prefer: handling=lenient` too, since search.html#errors lets a lenient server skip
    /// parameters it does not support for a given search.
    pub unsupported: bool,
}

impl QueryError {
    fn bad(param: &str, message: impl Into<String>) -> Self {
        QueryError { param: param.to_owned(), message: message.into(), unknown: false, unsupported: false }
    }

    fn unknown(param: &str, message: impl Into<String>) -> Self {
        QueryError { param: param.to_owned(), message: message.into(), unknown: true, unsupported: false }
    }

    fn unsupported(param: &str, message: impl Into<String>) -> Self {
        QueryError { param: param.to_owned(), message: message.into(), unknown: false, unsupported: true }
    }

    /// Whether `Prefer: handling=lenient` skips the parameter rather than failing the search.
    pub fn ignorable(&self) -> bool {
        self.unknown || self.unsupported
    }
}

pub type Result<T> = std::result::Result<T, QueryError>;

/// The comparison prefixes of number, date and quantity values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

impl Prefix {
    fn split(value: &str) -> (Prefix, &str) {
        let prefix = match value.get(..2) {
            Some("eq") => Prefix::Eq,
            Some("ne") => Prefix::Ne,
            Some("gt") => Prefix::Gt,
            Some("lt") => Prefix::Lt,
            Some("ge") => Prefix::Ge,
            Some("le") => Prefix::Le,
            Some("sa") => Prefix::Sa,
            Some("eb") => Prefix::Eb,
            Some("ap") => Prefix::Ap,
            _ => return (Prefix::Eq, value),
        };
        (prefix, &value[2..])
    }
}

/// Which system a token value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system, or none.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

/// One value of a search parameter (values of one parameter are ORed).
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    /// Normalised for the default and `:contains` searches, as given for `:exact`.
    String {
        normalized: String,
        exact: String,
    },
    /// `code` of `None` matches any code of the system (`system|`).
    Token {
        system: TokenSystem,
        code: Option<String>,
    },
    /// `:text` on a token: starts-with on the normalised display/text.
    TokenText(String),
    /// The value's range (inclusive milliseconds) and its prefix.
    Date {
        prefix: Prefix,
        low: i64,
        high: i64,
    },
    /// The exact value and the range its precision implies (`100` → [99.5, 100.5]).
    Number {
        prefix: Prefix,
        value: f64,
        low: f64,
        high: f64,
    },
    /// A quantity, and when the unit is UCUM the same in base units.
    Quantity {
        prefix: Prefix,
        value: f64,
        low: f64,
        high: f64,
        system: Option<String>,
        code: Option<String>,
        canonical: Option<(f64, f64, f64, String)>,
    },
    /// A local reference (`Type/id`, or an id with the type open), or a URL (absolute,
    /// canonical with an optional version).
    Reference {
        target_type: Option<String>,
        target_id: String,
        version: Option<String>,
    },
    Url {
        url: String,
        version: Option<String>,
    },
    Uri(String),
    Composite(Vec<SearchValue>),
}

/// Search parameter modifiers (search.html#modifiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modifier {
    None,
    Missing(bool),
    Exact,
    Contains,
    Text,
    Not,
    Above,
    Below,
    In,
    NotIn,
    OfType,
    Identifier,
    /// `:[type]` on a reference.
    Type(String),
}

/// A parameter the server answers from its own columns or by special means.
#[derive(Debug, Clone, PartialEq)]
pub enum Builtin {
    /// `_id`: ids.
    Id(Vec<String>),
    /// `_lastUpdated`: date values.
    LastUpdated(Vec<SearchValue>),
    /// `_text` (narrative) or `_content` (whole resource): words, all of which must occur.
    Text { narrative: bool, terms: Vec<String> },
    /// `_list`: members of these List resources.
    List(Vec<String>),
}

/// One condition on the resources searched (conditions are ANDed).
#[derive(Debug, Clone)]
pub enum Filter {
    /// A search parameter with a modifier and its values (ORed); `:missing` carries none.
    Param {
        param: Arc<SearchParam>,
        modifier: Modifier,
        values: Vec<SearchValue>,
        not: bool,
    },
    Builtin(Builtin),
    /// `ref:Type.rest`: resources whose reference `param` points at a `target_type` matching
    /// `inner`.
    Chain {
        param: Arc<SearchParam>,
        target_type: String,
        inner: Box<Filter>,
    },
    /// `_has:Type:param:rest`: resources referenced by a `source_type` through `param` whose
    /// source matches `inner`.
    Has {
        source_type: String,
        param: Arc<SearchParam>,
        inner: Box<Filter>,
    },
    /// Any of these (an untyped chain through a reference that may point at several types).
    Any(Vec<Filter>),
    /// Resources passing the inner filter (of any type) and the resources they refer to
    /// (`$everything`'s record).
    WithReferenced(Box<Filter>),
    /// Resources in the compartment of `Type/id` (compartmentdefinition.html): those whose
    /// listed reference parameters point at it, and with `include_owner` the owner itself.
    /// Without an id, the compartments of every resource of the owner type.
    Compartment {
        owner_type: String,
        owner_id: Option<String>,
        members: Vec<(String, Vec<String>)>,
        include_owner: bool,
    },
}

impl Filter {
    /// The compartment of `owner_type/owner_id`, for the given member types (all the
    /// compartment's types when `types` is empty). `None` when no such compartment exists.
    pub fn compartment(
        owner_type: &str,
        owner_id: Option<&str>,
        types: &[String],
        include_owner: bool,
    ) -> Option<Filter> {
        let def = crate::definitions().compartment(owner_type)?;
        let members = def
            .resources
            .iter()
            .filter(|r| !r.params.is_empty() && (types.is_empty() || types.contains(&r.code)))
            .map(|r| (r.code.clone(), r.params.iter().filter(|p| *p != "{def}").cloned().collect::<Vec<_>>()))
            .filter(|(_, params)| !params.is_empty())
            .collect();
        Some(Filter::Compartment {
            owner_type: owner_type.to_owned(),
            owner_id: owner_id.map(str::to_owned),
            members,
            include_owner,
        })
    }
}

/// `_include` / `_revinclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The resource type the reference parameter belongs to; `*` for all.
    pub source_type: String,
    /// The reference parameter's code; `*` for every reference parameter.
    pub param: String,
    /// Only targets of this type.
    pub target_type: Option<String>,
    pub iterate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    True,
    Text,
    Data,
    Count,
    False,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Estimate,
    Accurate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// A parameter code, or `_id` / `_lastUpdated`.
    pub param: String,
    pub kind: ParamKind,
    pub descending: bool,
}

/// A parsed search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// `None` at the system level.
    pub resource_type: Option<String>,
    /// `_type` at the system level (empty: every type).
    pub types: Vec<String>,
    pub filters: Vec<Filter>,
    pub sort: Vec<SortKey>,
    pub count: Option<usize>,
    pub include: Vec<Include>,
    pub revinclude: Vec<Include>,
    pub summary: Option<Summary>,
    pub elements: Option<Vec<String>>,
    pub total: Option<Total>,
    /// The paging cursor of a `next`/`previous` link.
    pub cursor: Option<String>,
    /// The parameters as understood, for the `self` link (unknown ones dropped).
    pub canonical: Vec<(String, String)>,
    /// Unknown parameters skipped under lenient handling.
    pub ignored: Vec<QueryError>,
}

/// How to parse: the registry of parameters and this server's base URL (so that absolute
/// references to it search as local ones).
pub struct Parser<'r> {
    pub registry: &'r Registry,
    pub base_url: &'r str,
    pub lenient: bool,
}

/// Parameters that shape the response rather than select resources.
const RESULT_PARAMS: &[&str] = &[
    "_sort",
    "_count",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_contained",
    "_containedType",
    "_cursor",
    "_format",
    "_pretty",
    "_type",
];

/// Sent by widely used clients as vendor extensions (fhirpy's `count()` sends Aidbox's
/// `_totalMethod`); accepted and ignored so those clients keep working.
const IGNORED_VENDOR_PARAMS: &[&str] = &["_totalMethod", "_timeout"];

impl Parser<'_> {
    /// Parses `pairs` (decoded query parameters, in order) for a search on `resource_type`, or
    /// at the system level with `None`.
    pub fn parse(&self, resource_type: Option<&str>, pairs: &[(String, String)]) -> Result<SearchRequest> {
        let mut req = SearchRequest { resource_type: resource_type.map(str::to_owned), ..Default::default() };
        let mut values = 0usize;
        // `_type` first: at the system level it decides which parameters exist.
        for (name, value) in pairs.iter().filter(|(n, _)| n == "_type") {
            if resource_type.is_some() {
                return Err(QueryError::bad(name, "_type is only allowed in a search across all types"));
            }
            for t in split_values(value) {
                if !crate::definitions().is_resource_type(&t) {
                    return Err(QueryError::bad(name, format!("'{t}' is not a resource type")));
                }
                req.types.push(t);
            }
            req.canonical.push((name.clone(), value.clone()));
        }
        for (name, value) in pairs {
            let base_name = name.split(':').next().unwrap_or(name);
            if IGNORED_VENDOR_PARAMS.contains(&base_name) || base_name == "_type" {
                continue;
            }
            let result = if RESULT_PARAMS.contains(&base_name) {
                self.result_param(&mut req, name, value)
            } else {
                self.filter(&req, name, value, &mut values).map(|f| req.filters.push(f))
            };
            match result {
                Ok(()) => {
                    if base_name != "_cursor" {
                        req.canonical.push((name.clone(), value.clone()));
                    }
                }
                Err(e) if e.ignorable() && self.lenient => req.ignored.push(e),
                Err(e) => return Err(e),
            }
        }
        Ok(req)
    }

    /// The types a parameter name is looked up in: the searched type, or at the system level
    /// those of `_type` (a parameter must exist on all of them).
    fn scope_types(&self, req: &SearchRequest) -> Vec<String> {
        match &req.resource_type {
            Some(t) => vec![t.clone()],
            None if req.types.is_empty() => vec!["Resource".to_owned()],
            None => req.types.clone(),
        }
    }

    fn lookup(&self, types: &[String], code: &str, full_name: &str) -> Result<Arc<SearchParam>> {
        let mut found: Option<Arc<SearchParam>> = None;
        for t in types {
            // System-level searches without `_type` offer the parameters every resource has.
            let t = if t == "Resource" { "Patient" } else { t.as_str() };
            let Some(p) = self.registry.param(t, code) else {
                let scope = if types.len() == 1 && types[0] != "Resource" {
                    format!("for {}", types[0])
                } else {
                    "for all the searched types".to_owned()
                };
                return Err(QueryError::unknown(full_name, format!("unknown search parameter '{code}' {scope}")));
            };
            if types.len() == 1 && types[0] == "Resource" && !is_resource_level(code) {
                return Err(QueryError::unknown(
                    full_name,
                    format!("'{code}' is not a parameter of every resource type; name the types with _type"),
                ));
            }
            match &found {
                Some(f) if f.kind != p.kind => {
                    return Err(QueryError::bad(
                        full_name,
                        format!("'{code}' has different types on the searched types"),
                    ));
                }
                Some(_) => {}
                None => found = Some(p.clone()),
            }
        }
        found.ok_or_else(|| QueryError::unknown(full_name, format!("unknown search parameter '{code}'")))
    }

    fn result_param(&self, req: &mut SearchRequest, name: &str, value: &str) -> Result<()> {
        let (base, modifier) = match name.split_once(':') {
            Some((b, m)) => (b, Some(m)),
            None => (name, None),
        };
        match (base, modifier) {
            ("_format" | "_pretty", _) => {}
            ("_count", None) => {
                let n: usize = value.parse().map_err(|_| QueryError::bad(name, format!("'{value}' is not a count")))?;
                req.count = Some(n);
            }
            ("_cursor", None) => req.cursor = Some(value.to_owned()),
            ("_sort", None) => {
                for key in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    let (descending, code) = match key.strip_prefix('-') {
                        Some(c) => (true, c),
                        None => (false, key),
                    };
                    let kind = match code {
                        "_id" => ParamKind::Token,
                        "_lastUpdated" => ParamKind::Date,
                        _ => {
                            let types = self.scope_types(req);
                            let p = self.lookup(&types, code, name).map_err(|mut e| {
                                e.unknown = false;
                                e.message = format!("cannot sort: {}", e.message);
                                e
                            })?;
                            if matches!(p.kind, ParamKind::Composite | ParamKind::Special) {
                                return Err(QueryError::bad(
                                    name,
                                    format!("cannot sort by the {} parameter '{code}'", p.kind.name()),
                                ));
                            }
                            p.kind
                        }
                    };
                    req.sort.push(SortKey { param: code.to_owned(), kind, descending });
                }
            }
            ("_include" | "_revinclude", m) => {
                let iterate = match m {
                    None => false,
                    Some("iterate" | "recurse") => true,
                    Some(other) => return Err(QueryError::bad(name, format!("unknown modifier ':{other}'"))),
                };
                let include = self.include(name, value, iterate)?;
                if base == "_include" {
                    req.include.push(include);
                } else {
                    req.revinclude.push(include);
                }
            }
            ("_summary", None) => {
                req.summary = Some(match value {
                    "true" => Summary::True,
                    "text" => Summary::Text,
                    "data" => Summary::Data,
                    "count" => Summary::Count,
                    "false" => Summary::False,
                    _ => {
                        return Err(QueryError::bad(
                            name,
                            format!("'{value}' is not one of true, text, data, count, false"),
                        ));
                    }
                });
            }
            ("_elements", None) => {
                req.elements =
                    Some(value.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect());
            }
            ("_total", None) => {
                req.total = Some(match value {
                    "none" => Total::None,
                    "estimate" => Total::Estimate,
                    "accurate" => Total::Accurate,
                    _ => {
                        return Err(QueryError::bad(name, format!("'{value}' is not one of none, estimate, accurate")));
                    }
                });
            }
            ("_contained", None) => {
                if value != "false" {
                    return Err(QueryError::bad(
                        name,
                        "searching contained resources is not supported (only _contained=false)",
                    ));
                }
            }
            ("_containedType", None) => {
                if value != "container" {
                    return Err(QueryError::bad(name, "only _containedType=container is supported"));
                }
            }
            (_, Some(m)) => return Err(QueryError::bad(name, format!("'{base}' takes no modifier ':{m}'"))),
            _ => return Err(QueryError::unknown(name, format!("unknown parameter '{name}'"))),
        }
        Ok(())
    }

    fn include(&self, name: &str, value: &str, iterate: bool) -> Result<Include> {
        if value == "*" {
            return Ok(Include { source_type: "*".into(), param: "*".into(), target_type: None, iterate });
        }
        let mut parts = value.split(':');
        let (Some(source), Some(param)) = (parts.next(), parts.next()) else {
            return Err(QueryError::bad(name, format!("'{value}' is not Type:parameter[:targetType]")));
        };
        let target = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(QueryError::bad(name, format!("'{value}' is not Type:parameter[:targetType]")));
        }
        if !crate::definitions().is_resource_type(source) {
            return Err(QueryError::bad(name, format!("'{source}' is not a resource type")));
        }
        if param != "*" {
            match self.registry.param(source, param) {
                Some(p) if p.kind == ParamKind::Reference => {}
                Some(_) => return Err(QueryError::bad(name, format!("{source}:{param} is not a reference parameter"))),
                None => return Err(QueryError::bad(name, format!("{source} has no search parameter '{param}'"))),
            }
        }
        if let Some(t) = &target
            && !crate::definitions().is_resource_type(t)
        {
            return Err(QueryError::bad(name, format!("'{t}' is not a resource type")));
        }
        Ok(Include { source_type: source.to_owned(), param: param.to_owned(), target_type: target, iterate })
    }

    /// A filter parameter: `name[:modifier][.chain…]=value[,value…]`, or `_has:…`.
    fn filter(&self, req: &SearchRequest, name: &str, value: &str, budget: &mut usize) -> Result<Filter> {
        let types = self.scope_types(req);
        self.filter_in(&types, name, name, value, budget, 0)
    }

    fn filter_in(
        &self,
        types: &[String],
        full: &str,
        name: &str,
        value: &str,
        budget: &mut usize,
        depth: usize,
    ) -> Result<Filter> {
        if depth > MAX_CHAIN {
            return Err(QueryError::bad(full, format!("chains and _has may nest at most {MAX_CHAIN} deep")));
        }
        if let Some(rest) = name.strip_prefix("_has:") {
            return self.has(types, full, rest, value, budget, depth);
        }
        // The first link of a chain ends at the first '.'.
        if let Some((link, rest)) = name.split_once('.') {
            let (code, modifier) = match link.split_once(':') {
                Some((c, m)) => (c, Some(m)),
                None => (link, None),
            };
            let param = self.lookup(types, code, full)?;
            if param.kind != ParamKind::Reference {
                return Err(QueryError::bad(
                    full,
                    format!("'{code}' is not a reference parameter, so it cannot be chained"),
                ));
            }
            let targets: Vec<String> = match modifier {
                Some(t) if crate::definitions().is_resource_type(t) => vec![t.to_owned()],
                Some(m) => return Err(QueryError::bad(full, format!("'{m}' is not a resource type to chain through"))),
                None => param.targets.clone(),
            };
            // Without a type the chained parameter must exist on exactly one target type, or be
            // searched on each that has it.
            let mut chains = Vec::new();
            let mut last_error = None;
            for t in &targets {
                match self.filter_in(std::slice::from_ref(t), full, rest, value, budget, depth + 1) {
                    Ok(inner) => chains.push(Filter::Chain {
                        param: param.clone(),
                        target_type: t.clone(),
                        inner: Box::new(inner),
                    }),
                    Err(e) if targets.len() > 1 && e.unknown => last_error = Some(e),
                    Err(e) => return Err(e),
                }
            }
            // Untyped, the chain searches every target type that has the chained parameter.
            return match chains.len() {
                0 => {
                    Err(last_error.unwrap_or_else(|| QueryError::unknown(full, format!("'{code}' has no target type"))))
                }
                1 => Ok(chains.remove(0)),
                _ => Ok(Filter::Any(chains)),
            };
        }
        let (code, modifier) = match name.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (name, None),
        };
        if let Some(builtin) = self.builtin(full, code, modifier, value, budget)? {
            return Ok(Filter::Builtin(builtin));
        }
        let param = self.lookup(types, code, full)?;
        let modifier = parse_modifier(full, &param, modifier)?;
        if let Modifier::Missing(_) = modifier {
            let missing = missing_value(full, value)?;
            return Ok(Filter::Param { param, modifier: Modifier::Missing(missing), values: Vec::new(), not: false });
        }
        let mut values = Vec::new();
        for raw in split_values(value) {
            values.extend(self.value(full, &param, &modifier, &raw)?);
        }
        *budget += values.len();
        if *budget > MAX_VALUES {
            return Err(QueryError::bad(full, format!("a search may carry at most {MAX_VALUES} values")));
        }
        if values.is_empty() {
            return Err(QueryError::bad(full, "the parameter has no value"));
        }
        let not = matches!(modifier, Modifier::Not | Modifier::NotIn);
        Ok(Filter::Param { param, modifier, values, not })
    }

    fn has(
        &self,
        types: &[String],
        full: &str,
        rest: &str,
        value: &str,
        budget: &mut usize,
        depth: usize,
    ) -> Result<Filter> {
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(code), Some(inner_name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(QueryError::bad(full, "_has takes the form _has:Type:reference:parameter"));
        };
        if !crate::definitions().is_resource_type(source) {
            return Err(QueryError::bad(full, format!("'{source}' is not a resource type")));
        }
        let source_types = [source.to_owned()];
        let param = self.lookup(&source_types, code, full)?;
        if param.kind != ParamKind::Reference {
            return Err(QueryError::bad(full, format!("{source}:{code} is not a reference parameter")));
        }
        if let [t] = types
            && t != "Resource"
            && !param.targets.iter().any(|x| x == t)
        {
            return Err(QueryError::bad(full, format!("{source}:{code} does not point at {t}")));
        }
        let inner = self.filter_in(&source_types, full, inner_name, value, budget, depth + 1)?;
        Ok(Filter::Has { source_type: source.to_owned(), param, inner: Box::new(inner) })
    }

    fn builtin(
        &self,
        full: &str,
        code: &str,
        modifier: Option<&str>,
        value: &str,
        budget: &mut usize,
    ) -> Result<Option<Builtin>> {
        let is_builtin = matches!(code, "_id" | "_lastUpdated" | "_text" | "_content" | "_list");
        if !is_builtin {
            if matches!(code, "_query" | "_filter") {
                return Err(QueryError::bad(full, format!("{code} is not supported")));
            }
            return Ok(None);
        }
        if let Some(m) = modifier {
            return Err(QueryError::bad(full, format!("'{code}' takes no modifier ':{m}'")));
        }
        let values = split_values(value);
        *budget += values.len();
        if *budget > MAX_VALUES {
            return Err(QueryError::bad(full, format!("a search may carry at most {MAX_VALUES} values")));
        }
        Ok(Some(match code {
            "_id" => {
                if let Some(bad) = values.iter().find(|v| !crate::is_valid_id(v)) {
                    return Err(QueryError::bad(full, format!("'{bad}' is not a resource id")));
                }
                Builtin::Id(values)
            }
            "_lastUpdated" => {
                Builtin::LastUpdated(values.iter().map(|v| date_value(full, v)).collect::<Result<Vec<_>>>()?)
            }
            "_list" => {
                if let Some(bad) = values.iter().find(|v| !crate::is_valid_id(v)) {
                    return Err(QueryError::bad(full, format!("'{bad}' is not a List id")));
                }
                Builtin::List(values)
            }
            _ => {
                let terms: Vec<String> = values
                    .iter()
                    .flat_map(|v| normalize(v).split(' ').map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                let terms: Vec<String> = terms.into_iter().filter(|t| !t.is_empty()).collect();
                if terms.is_empty() {
                    return Err(QueryError::bad(full, "the parameter has no value"));
                }
                Builtin::Text { narrative: code == "_text", terms }
            }
        }))
    }

    /// One value (or, for `:in`, the codes of a value set; for `:above`/`:below` on a token,
    /// the codes of a hierarchy).
    fn value(&self, full: &str, param: &SearchParam, modifier: &Modifier, raw: &str) -> Result<Vec<SearchValue>> {
        Ok(match (param.kind, modifier) {
            (ParamKind::String, _) => {
                vec![SearchValue::String { normalized: normalize(&unescape(raw)), exact: unescape(raw) }]
            }
            (ParamKind::Token, Modifier::Text) => vec![SearchValue::TokenText(normalize(&unescape(raw)))],
            (ParamKind::Token, Modifier::In | Modifier::NotIn) => value_set_codes(full, raw)?,
            (ParamKind::Token, Modifier::Above) => subsumption_codes(full, raw, true)?,
            (ParamKind::Token, Modifier::Below) => subsumption_codes(full, raw, false)?,
            (ParamKind::Token, Modifier::OfType) => {
                let parts = split_escaped(raw, '|');
                let [system, code, value] = parts.as_slice() else {
                    return Err(QueryError::bad(full, format!("'{raw}' is not system|code|value")));
                };
                if code.is_empty() || value.is_empty() {
                    return Err(QueryError::bad(full, format!("'{raw}' needs a type code and a value")));
                }
                let system = if system.is_empty() { TokenSystem::None } else { TokenSystem::Is(system.clone()) };
                vec![SearchValue::Token { system, code: Some(format!("{code}|{value}")) }]
            }
            (ParamKind::Token, _) if param.boolean => {
                let v = unescape(raw);
                if v != "true" && v != "false" {
                    return Err(QueryError::bad(full, format!("'{v}' is not a boolean (true or false)")));
                }
                vec![SearchValue::Token { system: TokenSystem::Any, code: Some(v) }]
            }
            (ParamKind::Token, _) => vec![token_value(full, raw)?],
            (ParamKind::Reference, Modifier::Identifier) => vec![token_value(full, raw)?],
            (ParamKind::Reference, m) => vec![self.reference_value(full, param, m, raw)?],
            (ParamKind::Date, _) => vec![date_value(full, raw)?],
            (ParamKind::Number, _) => vec![number_value(full, raw)?],
            (ParamKind::Quantity, _) => vec![quantity_value(full, raw)?],
            (ParamKind::Uri, _) => vec![SearchValue::Uri(unescape(raw))],
            (ParamKind::Composite, _) => {
                let parts = split_escaped(raw, '$');
                if parts.len() != param.components.len() {
                    return Err(QueryError::bad(
                        full,
                        format!("'{raw}' needs {} parts separated by '$'", param.components.len()),
                    ));
                }
                let mut values = Vec::with_capacity(parts.len());
                for (part, component) in parts.iter().zip(&param.components) {
                    values.push(match component.kind {
                        ParamKind::Token => token_value(full, part)?,
                        ParamKind::Date => date_value(full, part)?,
                        ParamKind::Number => number_value(full, part)?,
                        ParamKind::Quantity => quantity_value(full, part)?,
                        ParamKind::String => SearchValue::String { normalized: normalize(part), exact: part.clone() },
                        ParamKind::Uri => SearchValue::Uri(part.clone()),
                        ParamKind::Reference => self.reference_value(full, param, &Modifier::None, part)?,
                        kind => {
                            return Err(QueryError::bad(
                                full,
                                format!("a {} component is not searchable", kind.name()),
                            ));
                        }
                    });
                }
                vec![SearchValue::Composite(values)]
            }
            (ParamKind::Special, _) => {
                return Err(QueryError::bad(full, format!("the special parameter '{}' is not supported", param.code)));
            }
        })
    }

    fn reference_value(&self, full: &str, param: &SearchParam, modifier: &Modifier, raw: &str) -> Result<SearchValue> {
        let raw = unescape(raw);
        let typed = match modifier {
            Modifier::Type(t) => Some(t.clone()),
            _ => None,
        };
        // An absolute URL on this server is a local reference.
        let local = raw
            .strip_prefix(self.base_url)
            .filter(|_| !self.base_url.is_empty())
            .map(|r| r.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| raw.clone());
        if let Some((rt, id, version)) = relative_reference(&local) {
            if let Some(t) = &typed
                && t != rt
            {
                return Err(QueryError::bad(full, format!("'{raw}' is not a {t}")));
            }
            return Ok(SearchValue::Reference {
                target_type: Some(rt.to_owned()),
                target_id: id.to_owned(),
                version: version.map(str::to_owned),
            });
        }
        if crate::is_valid_id(&local) {
            // An id alone: any target type, unless the modifier or the parameter fixes one.
            let target_type = typed.or_else(|| (param.targets.len() == 1).then(|| param.targets[0].clone()));
            return Ok(SearchValue::Reference { target_type, target_id: local, version: None });
        }
        if raw.contains(':') {
            let (url, version) = match raw.split_once('|') {
                Some((u, v)) => (u.to_owned(), Some(v.to_owned())),
                None => (raw.clone(), None),
            };
            return Ok(SearchValue::Url { url, version });
        }
        Err(QueryError::bad(full, format!("'{raw}' is not a reference (Type/id, an id, or a URL)")))
    }
}

/// Parameters every resource type has (the ones defined on Resource and DomainResource).
fn is_resource_level(code: &str) -> bool {
    matches!(
        code,
        "_id" | "_lastUpdated" | "_tag" | "_profile" | "_security" | "_source" | "_text" | "_content" | "_list"
    )
}

fn parse_modifier(full: &str, param: &SearchParam, modifier: Option<&str>) -> Result<Modifier> {
    let Some(m) = modifier else { return Ok(Modifier::None) };
    let kind = param.kind;
    let parsed = match m {
        "missing" => return Ok(Modifier::Missing(true)),
        "exact" if kind == ParamKind::String => Modifier::Exact,
        "contains" if kind == ParamKind::String || kind == ParamKind::Uri => Modifier::Contains,
        "text" if kind == ParamKind::Token => Modifier::Text,
        "not" if kind == ParamKind::Token => Modifier::Not,
        "above" if kind == ParamKind::Uri || kind == ParamKind::Token => Modifier::Above,
        "below" if kind == ParamKind::Uri || kind == ParamKind::Token => Modifier::Below,
        "in" if kind == ParamKind::Token => Modifier::In,
        "not-in" if kind == ParamKind::Token => Modifier::NotIn,
        "of-type" if kind == ParamKind::Token => Modifier::OfType,
        "identifier" if kind == ParamKind::Reference => Modifier::Identifier,
        t if kind == ParamKind::Reference && crate::definitions().is_resource_type(t) => {
            if !param.targets.is_empty() && !param.targets.iter().any(|x| x == t) {
                return Err(QueryError::bad(full, format!("'{}' cannot point at a {t}", param.code)));
            }
            Modifier::Type(t.to_owned())
        }
        other => {
            return Err(QueryError::bad(
                full,
                format!("the modifier ':{other}' does not apply to the {} parameter '{}'", kind.name(), param.code),
            ));
        }
    };
    Ok(parsed)
}

/// The value of `:missing`: `true` or `false`.
fn missing_value(full: &str, value: &str) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(QueryError::bad(full, format!(":missing takes true or false, not '{value}'"))),
    }
}

/// Splits a parameter value on unescaped commas (search.html#escaping); escapes stay for the
/// value parsers, which split further on `|` and `$`.
pub fn split_values(value: &str) -> Vec<String> {
    split(value, ',', true).into_iter().filter(|v| !v.is_empty()).collect()
}

/// Splits on an unescaped separator and removes the escapes.
fn split_escaped(value: &str, separator: char) -> Vec<String> {
    split(value, separator, false)
}

fn split(value: &str, separator: char, keep_escapes: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if keep_escapes {
                    current.push('\\');
                }
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c == separator => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out
}

fn unescape(value: &str) -> String {
    split_escaped(value, '\u{0}').concat()
}

fn token_value(full: &str, raw: &str) -> Result<SearchValue> {
    let parts = split_escaped(raw, '|');
    Ok(match parts.as_slice() {
        [code] => SearchValue::Token { system: TokenSystem::Any, code: Some(code.clone()) },
        [system, code] if system.is_empty() && code.is_empty() => {
            return Err(QueryError::bad(full, "'|' alone names neither a system nor a code"));
        }
        [system, code] if system.is_empty() => {
            SearchValue::Token { system: TokenSystem::None, code: Some(code.clone()) }
        }
        [system, code] if code.is_empty() => SearchValue::Token { system: TokenSystem::Is(system.clone()), code: None },
        [system, code] => SearchValue::Token { system: TokenSystem::Is(system.clone()), code: Some(code.clone()) },
        _ => return Err(QueryError::bad(full, format!("'{raw}' is not [system|]code"))),
    })
}

fn date_value(full: &str, raw: &str) -> Result<SearchValue> {
    let (prefix, text) = Prefix::split(raw);
    let Some((low, high)) = super::date_range(text) else {
        return Err(QueryError::bad(
            full,
            format!("'{text}' is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime such as 2020-01-31T10:00:00Z)"),
        ));
    };
    Ok(SearchValue::Date { prefix, low, high })
}

/// The value and the half-width of the range its precision implies (`100` → 0.5,
/// `100.00` → 0.005, `1e2` → 50).
fn number_with_precision(text: &str) -> Option<(f64, f64)> {
    let value: f64 = text.parse().ok().filter(|v: &f64| v.is_finite())?;
    if text.starts_with('+') || text.ends_with('.') || text.contains(['n', 'N', 'i', 'I']) {
        return None;
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i32);
    Some((value, 0.5 * 10f64.powi(exponent - decimals)))
}

fn number_value(full: &str, raw: &str) -> Result<SearchValue> {
    let (prefix, text) = Prefix::split(raw);
    let (value, half) =
        number_with_precision(text).ok_or_else(|| QueryError::bad(full, format!("'{text}' is not a number")))?;
    Ok(SearchValue::Number { prefix, value, low: value - half, high: value + half })
}

fn quantity_value(full: &str, raw: &str) -> Result<SearchValue> {
    let parts = split_escaped(raw, '|');
    let (number, system, code) = match parts.as_slice() {
        [n] => (n.as_str(), None, None),
        [n, s, c] => {
            (n.as_str(), Some(s.as_str()).filter(|s| !s.is_empty()), Some(c.as_str()).filter(|c| !c.is_empty()))
        }
        _ => return Err(QueryError::bad(full, format!("'{raw}' is not [prefix]number[|system|code]"))),
    };
    let (prefix, text) = Prefix::split(number);
    let (value, half) =
        number_with_precision(text).ok_or_else(|| QueryError::bad(full, format!("'{text}' is not a number")))?;
    let canonical = match (system, code) {
        (Some("http://unitsofmeasure.org") | None, Some(c)) => {
            crate::fhirpath::ucum_canonical(c).map(|(factor, key)| {
                let f = factor.to_f64();
                (value * f, (value - half) * f, (value + half) * f, key)
            })
        }
        _ => None,
    };
    Ok(SearchValue::Quantity {
        prefix,
        value,
        low: value - half,
        high: value + half,
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
        canonical,
    })
}

/// The codes of a value set the definitions carry in full, for `:in` / `:not-in`.
fn value_set_codes(full: &str, url: &str) -> Result<Vec<SearchValue>> {
    let url = unescape(url);
    let vs = crate::definitions()
        .value_set(&url)
        .filter(|vs| vs.enumerable)
        .ok_or_else(|| QueryError::bad(full, format!("the value set '{url}' is not known to this server in full")))?;
    let values: Vec<SearchValue> = vs
        .by_system
        .iter()
        .flat_map(|(system, codes)| {
            codes
                .iter()
                .map(move |c| SearchValue::Token { system: TokenSystem::Is(system.clone()), code: Some(c.clone()) })
        })
        .collect();
    if values.len() > MAX_VALUES {
        return Err(QueryError::bad(
            full,
            format!("the value set '{url}' is too large to search by (over {MAX_VALUES} codes)"),
        ));
    }
    Ok(values)
}

/// The codes `:below` (`system|code` and every code it subsumes) or `:above` (`system|code`
/// and every code that subsumes it) stand for, from the code system's hierarchy in the
/// definitions; the store then searches them as `:in` does a value set's.
fn subsumption_codes(full: &str, raw: &str, above: bool) -> Result<Vec<SearchValue>> {
    let m = if above { "above" } else { "below" };
    let parts = split_escaped(raw, '|');
    let (system, code) = match parts.as_slice() {
        [system, code] if !system.is_empty() && !code.is_empty() => (system, code),
        [system, _] if !system.is_empty() => {
            return Err(QueryError::bad(full, format!(":{m} needs a code: '{raw}' names only a system")));
        }
        _ => {
            return Err(QueryError::bad(
                full,
                format!(":{m} searches a code system's hierarchy, so it needs a system: system|code, not '{raw}'"),
            ));
        }
    };
    let defs = crate::definitions();
    let codes = if above { defs.ancestors(system, code) } else { defs.descendants(system, code) }.ok_or_else(|| {
        QueryError::unsupported(
            full,
            format!(":{m} needs the hierarchy of the code system '{system}', which this server does not know"),
        )
    })?;
    Ok(codes
        .into_iter()
        .map(|c| SearchValue::Token { system: TokenSystem::Is(system.clone()), code: Some(c.to_owned()) })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::standard;

    fn parse(rt: Option<&str>, q: &str) -> Result<SearchRequest> {
        let pairs: Vec<(String, String)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        Parser { registry: standard(), base_url: "http://x/fhir", lenient: false }.parse(rt, &pairs)
    }

    fn values(r: &SearchRequest) -> &[SearchValue] {
        match &r.filters[0] {
            Filter::Param { values, .. } => values,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_and_escapes() {
        let r = parse(Some("Observation"), "code=http://loinc.org|8480-6,|x,y,http://s|").expect("parses");
        assert_eq!(
            values(&r),
            &[
                SearchValue::Token { system: TokenSystem::Is("http://loinc.org".into()), code: Some("8480-6".into()) },
                SearchValue::Token { system: TokenSystem::None, code: Some("x".into()) },
                SearchValue::Token { system: TokenSystem::Any, code: Some("y".into()) },
                SearchValue::Token { system: TokenSystem::Is("http://s".into()), code: None },
            ]
        );
        let r = parse(Some("Patient"), "family=a\\,b").expect("parses");
        assert_eq!(values(&r), &[SearchValue::String { normalized: "a,b".into(), exact: "a,b".into() }]);
    }

    #[test]
    fn numbers_dates_quantities() {
        let r = parse(Some("RiskAssessment"), "probability=gt0.8").expect("parses");
        let SearchValue::Number { prefix: Prefix::Gt, low, high, .. } = values(&r)[0] else { panic!() };
        assert!((low - 0.75).abs() < 1e-12 && (high - 0.85).abs() < 1e-12);
        assert_eq!(number_with_precision("100"), Some((100.0, 0.5)));
        assert_eq!(number_with_precision("1e2"), Some((100.0, 50.0)));
        let r = parse(Some("Patient"), "birthdate=le1980-02").expect("parses");
        assert!(matches!(values(&r)[0], SearchValue::Date { prefix: Prefix::Le, .. }));
        let r = parse(Some("Observation"), "value-quantity=5.4|http://unitsofmeasure.org|mg").expect("parses");
        let SearchValue::Quantity { canonical: Some((v, _, _, key)), .. } = &values(&r)[0] else { panic!() };
        assert!((v - 0.0054).abs() < 1e-12);
        assert_eq!(key, "M1");
        assert!(parse(Some("Patient"), "birthdate=notadate").is_err_and(|e| e.param == "birthdate" && !e.unknown));
        assert!(parse(Some("RiskAssessment"), "probability=abc").is_err());
    }

    #[test]
    fn references_chains_and_has() {
        let r = parse(Some("Observation"), "subject=http://x/fhir/Patient/p1").expect("parses");
        assert_eq!(
            values(&r),
            &[SearchValue::Reference { target_type: Some("Patient".into()), target_id: "p1".into(), version: None }]
        );
        // HL7 gives `patient` the targets Patient and Group, so an id alone leaves the type open.
        let r = parse(Some("Observation"), "patient=p1").expect("parses");
        assert!(
            matches!(&values(&r)[0], SearchValue::Reference { target_type: None, target_id, .. } if target_id == "p1")
        );
        let r = parse(Some("Observation"), "subject:Patient=p1").expect("parses");
        assert!(matches!(&values(&r)[0], SearchValue::Reference { target_type: Some(t), .. } if t == "Patient"));
        let r = parse(Some("Observation"), "subject:Patient.name=peter").expect("parses");
        assert!(matches!(&r.filters[0], Filter::Chain { target_type, .. } if target_type == "Patient"));
        let r = parse(Some("Observation"), "subject.name=peter").expect("parses");
        assert!(matches!(&r.filters[0], Filter::Any(chains) if chains.len() > 1), "every target with a name");
        let r = parse(Some("Patient"), "_has:Observation:patient:code=1234").expect("parses");
        assert!(matches!(&r.filters[0], Filter::Has { source_type, .. } if source_type == "Observation"));
        let r = parse(Some("Encounter"), "patient.organization.name=acme").expect("parses");
        assert!(matches!(&r.filters[0], Filter::Chain { inner, .. } if matches!(**inner, Filter::Chain { .. })));
    }

    #[test]
    fn unknown_parameters_and_lenience() {
        let e = parse(Some("Patient"), "nonsense=1").expect_err("unknown");
        assert!(e.unknown && e.param == "nonsense");
        let pairs = vec![("nonsense".to_owned(), "1".to_owned()), ("gender".to_owned(), "male".to_owned())];
        let r = Parser { registry: standard(), base_url: "", lenient: true }
            .parse(Some("Patient"), &pairs)
            .expect("lenient");
        assert_eq!(r.ignored.len(), 1);
        assert_eq!(r.canonical, vec![("gender".to_owned(), "male".to_owned())]);
        assert!(parse(Some("Patient"), "_totalMethod=count").is_ok());
        assert!(parse(Some("Patient"), "name:bogus=x").is_err_and(|e| !e.unknown));
        assert!(parse(Some("Patient"), "_sort=nonsense").is_err());
    }

    #[test]
    fn result_parameters() {
        let r = parse(Some("Patient"), "_sort=family,-birthdate&_count=5&_include=Patient:organization&_revinclude:iterate=Observation:subject&_summary=count&_total=accurate").expect("parses");
        assert_eq!(r.sort.len(), 2);
        assert!(r.sort[1].descending);
        assert_eq!(r.count, Some(5));
        assert_eq!(r.include[0].param, "organization");
        assert!(r.revinclude[0].iterate);
        assert_eq!(r.summary, Some(Summary::Count));
        assert!(parse(Some("Patient"), "_include=Patient:name").is_err());
        let r = parse(None, "_type=Patient,Observation&_lastUpdated=gt2020").expect("parses");
        assert_eq!(r.types.len(), 2);
        assert!(parse(None, "name=x").is_err(), "not a parameter of every type");
    }

    fn codes_of(r: &SearchRequest, system: &str) -> Vec<String> {
        let mut codes: Vec<String> = values(r)
            .iter()
            .map(|v| match v {
                SearchValue::Token { system: TokenSystem::Is(s), code: Some(c) } if s == system => c.clone(),
                other => panic!("not a code of {system}: {other:?}"),
            })
            .collect();
        codes.sort();
        codes
    }

    #[test]
    fn above_and_below_expand_code_system_hierarchies() {
        let intent = "http://hl7.org/fhir/request-intent";
        let r = parse(Some("ServiceRequest"), &format!("intent:below={intent}|order")).expect("parses");
        assert!(matches!(&r.filters[0], Filter::Param { modifier: Modifier::Below, not: false, .. }));
        assert_eq!(codes_of(&r, intent), ["filler-order", "instance-order", "order", "original-order", "reflex-order"]);
        let r = parse(Some("ServiceRequest"), &format!("intent:above={intent}|instance-order")).expect("parses");
        assert_eq!(codes_of(&r, intent), ["filler-order", "instance-order", "order"]);
        // On a CodeableConcept, and ORed: the union of the hierarchies.
        let clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical";
        let r = parse(Some("Condition"), &format!("clinical-status:below={clinical}|active,{clinical}|resolved"))
            .expect("parses");
        assert_eq!(codes_of(&r, clinical), ["active", "recurrence", "relapse", "resolved"]);
        // A code the system does not define is searched as itself (search.html#errors).
        let r = parse(Some("ServiceRequest"), &format!("intent:below={intent}|nonsense")).expect("parses");
        assert_eq!(codes_of(&r, intent), ["nonsense"]);
        // The self link keeps the parameter as given, not its expansion.
        assert_eq!(r.canonical, vec![("intent:below".to_owned(), format!("{intent}|nonsense"))]);
        // `:above`/`:below` on uris are prefix searches, unchanged.
        let r = parse(Some("ValueSet"), "url:below=http://acme.org/fhir/").expect("parses");
        assert_eq!(values(&r), &[SearchValue::Uri("http://acme.org/fhir/".into())]);
    }

    #[test]
    fn above_and_below_errors() {
        // A system whose hierarchy the server does not carry: unsupported, named, ignorable.
        let e = parse(Some("Condition"), "code:below=http://snomed.info/sct|404684003").expect_err("SNOMED CT");
        assert_eq!(e.param, "code:below");
        assert!(e.unsupported && !e.unknown && e.ignorable(), "{e:?}");
        assert!(e.message.contains("http://snomed.info/sct") && e.message.contains("hierarchy"), "{}", e.message);
        let e = parse(Some("Observation"), "code:above=http://loinc.org|8867-4").expect_err("LOINC");
        assert!(e.unsupported && e.param == "code:above");
        // Without a system (or a code) the value is malformed, whatever the handling.
        for q in ["intent:below=order", "intent:below=|order", "intent:above=http://hl7.org/fhir/request-intent|"] {
            let e = parse(Some("ServiceRequest"), q).expect_err(q);
            assert!(!e.ignorable() && e.param.starts_with("intent:"), "{q}: {e:?}");
        }
        let e = parse(Some("ServiceRequest"), "intent:below=order").expect_err("no system");
        assert!(e.message.contains("needs a system"), "{}", e.message);
        // Lenient handling skips a hierarchy it does not know, and keeps the other parameters.
        let pairs = vec![
            ("code:below".to_owned(), "http://snomed.info/sct|404684003".to_owned()),
            ("clinical-status".to_owned(), "active".to_owned()),
        ];
        let r = Parser { registry: standard(), base_url: "", lenient: true }
            .parse(Some("Condition"), &pairs)
            .expect("lenient");
        assert_eq!(r.ignored.len(), 1);
        assert_eq!(r.filters.len(), 1);
        assert_eq!(r.canonical, vec![("clinical-status".to_owned(), "active".to_owned())]);
        let pairs = vec![("intent:below".to_owned(), "order".to_owned())];
        assert!(
            Parser { registry: standard(), base_url: "", lenient: true }.parse(Some("ServiceRequest"), &pairs).is_err()
        );
        // On strings they stay refused: strings have no hierarchy.
        assert!(parse(Some("Patient"), "family:below=http://x|y").is_err_and(|e| !e.ignorable()));
    }

    #[test]
    fn value_sets_expand_for_in() {
        let r =
            parse(Some("Observation"), "status:in=http://hl7.org/fhir/ValueSet/observation-status").expect("parses");
        assert!(values(&r).len() >= 8);
        assert!(parse(Some("Observation"), "status:in=http://nowhere/vs").is_err());
    }
}
