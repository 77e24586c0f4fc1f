//! Search as SQL, shared by both backends: a parsed [`SearchRequest`]'s filters become one
//! WHERE clause over `resources r` whose conditions are `r.rid IN (…)` subqueries on the index
//! tables (each answered from the table's value index), with keyset paging on the sort keys and
//! `rid`, so that pages stay stable while others write.
//!
//! Values are always bound, never spliced into the SQL text; the text depends only on the
//! shape of the search, so the backends' statement caches serve repeated searches.

use fhir::search::query::{Builtin, Filter, Modifier, Prefix, SearchValue, SortKey, TokenSystem};
use fhir::search::text::prefix_upper_bound;
use fhir::search::{IndexValue, ParamKind};
use serde_json::{Value, json};

use crate::common::Param;
use crate::keys::Keys;
use crate::{Result, StoreError};

/// The SQL dialects the builder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// SQL text with `$n` placeholders and their values.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(Param::Text(s.to_owned()))
    }

    fn real(&mut self, f: f64) -> String {
        self.bind(Param::Real(f))
    }

    fn int(&mut self, i: i64) -> String {
        self.bind(Param::Int(i))
    }
}

/// How few resources a filter is likely to leave, lower for fewer: a guess from its kind, for
/// choosing the filter that drives a query (see [`Builder::selection`]).
fn selectivity(filter: &Filter) -> u8 {
    match filter {
        Filter::Builtin(Builtin::Id(_)) => 0,
        Filter::Param { modifier: Modifier::Missing(_), .. } | Filter::Param { not: true, .. } => 9,
        Filter::Param { param, modifier, .. } => match (param.kind, modifier) {
            (ParamKind::Reference, _) => 1,
            (ParamKind::Token, Modifier::Text) => 4,
            (ParamKind::Token, _) | (ParamKind::String, Modifier::Exact) => 2,
            (ParamKind::String | ParamKind::Uri, _) => 3,
            (ParamKind::Composite, _) => 2,
            (ParamKind::Date | ParamKind::Number | ParamKind::Quantity | ParamKind::Special, _) => 5,
        },
        Filter::Compartment { owner_id: Some(_), .. } => 1,
        Filter::Builtin(Builtin::List(_)) => 2,
        Filter::Chain { .. } | Filter::Has { .. } => 3,
        Filter::Builtin(Builtin::Text { .. }) => 4,
        Filter::Builtin(Builtin::LastUpdated(_)) | Filter::Any(_) => 6,
        Filter::WithReferenced(inner) => selectivity(inner),
        Filter::Compartment { .. } => 7,
    }
}

/// How SQLite should read `resources` when a list of rids selects them: by rowid, in rowid
/// order. Through the live index it would sort every match before taking a page, or scan the
/// tenant's rows to test each against the list.
fn by_rowid(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => " NOT INDEXED",
        Dialect::Postgres => "",
    }
}

/// The join of reference row `x` to the resource `r` it points at. PostgreSQL keeps the index
/// columns in the "C" collation and the resources' in the default one: compared without saying
/// which, the resources' key index cannot serve and the join reads every resource.
fn reference_target(dialect: Dialect, r: &str, tenant: &str) -> String {
    let c = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " COLLATE \"default\"",
    };
    format!("{r}.tenant = {tenant} AND {r}.resource_type = x.target_type{c} AND {r}.id = x.target_id{c}")
}

/// What [`Builder::selection`] selects from: the `FROM … WHERE …` text and the column of the
/// selected resources' rid.
pub(crate) struct Selection {
    pub from: String,
    pub rid: String,
}

/// The driving filter of a selection.
enum Driving {
    /// Index rows of `table` (aliased `x`) in rid order, and the condition that keeps one per
    /// resource.
    Ordered { table: &'static str, condition: String, dedupe: String },
    /// A `SELECT` of rids.
    Set(String),
}

impl Driving {
    fn set(self) -> String {
        match self {
            Driving::Ordered { table, condition, .. } => format!("SELECT x.rid FROM {table} x WHERE {condition}"),
            Driving::Set(set) => set,
        }
    }
}

/// A filter on a nested `resources` alias.
struct Nested {
    alias: String,
    from: String,
    conditions: String,
}

/// The hint to an index table's `(rid, pid)` index: SQLite without statistics would rather
/// walk the value index (more equality terms) than the one that finds a row's values.
fn rid_index(dialect: Dialect, table: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!(" INDEXED BY {table}_rid"),
        Dialect::Postgres => String::new(),
    }
}

/// The index table of a kind of value.
pub(crate) fn table(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::String => "idx_string",
        ParamKind::Token => "idx_token",
        ParamKind::Reference => "idx_reference",
        ParamKind::Date => "idx_date",
        ParamKind::Number | ParamKind::Special => "idx_number",
        ParamKind::Quantity => "idx_quantity",
        ParamKind::Uri => "idx_uri",
        ParamKind::Composite => "idx_composite",
    }
}

/// Where the resources searched come from: the alias of their `resources` row and the type
/// (bound) or, at the system level, any of `types` (empty: all).
struct Scope<'a> {
    alias: String,
    resource_type: Option<&'a str>,
    types: &'a [String],
}

/// The WHERE clause (without `WHERE`) of a search over `resources r`.
pub(crate) struct Builder<'a> {
    pub dialect: Dialect,
    pub tenant: &'a str,
    pub keys: &'a Keys,
    pub sql: Sql,
    depth: usize,
    /// Sets to build once, as `WITH … AS MATERIALIZED` (see [`Self::with`]).
    materialized: Vec<String>,
    /// The top-level `_has` filters to test per candidate (see [`Self::has_probe`]) rather
    /// than as the set of the targets of every inner match.
    pub probe_has: Vec<usize>,
}

impl Sql {
    /// `col = $k` for one key, `col IN (…)` for several, FALSE for none (an unknown parameter
    /// matches nothing).
    fn keys_in(&mut self, col: &str, pids: &[i64]) -> String {
        match pids {
            [] => "FALSE".to_owned(),
            [one] => format!("{col} = {}", self.int(*one)),
            many => {
                let list = many.iter().map(|p| self.int(*p)).collect::<Vec<_>>().join(", ");
                format!("{col} IN ({list})")
            }
        }
    }
}

impl<'a> Builder<'a> {
    pub fn new(dialect: Dialect, tenant: &'a str, keys: &'a Keys) -> Self {
        Builder {
            dialect,
            tenant,
            keys,
            sql: Sql::default(),
            depth: 0,
            materialized: Vec::new(),
            probe_has: Vec::new(),
        }
    }

    /// `FROM … WHERE …` over `resources {alias}`: the live resources of the type (or types) that
    /// pass every filter.
    pub fn selection(
        &mut self,
        alias: &str,
        resource_type: Option<&str>,
        types: &[String],
        filters: &[Filter],
    ) -> Result<Selection> {
        let scope = Scope { alias: alias.to_owned(), resource_type, types };
        let mut parts = vec![self.base(&scope)];
        // One filter drives (its rows are listed through the index on the value); the other
        // parameters are probed per candidate through the index on `rid`. Listing them all
        // and intersecting would read every row of a wide condition (`date=ge2000`) however
        // few resources the narrow one (`patient=…`) leaves.
        let driver = filters
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.probe_has.contains(i))
            .min_by_key(|(_, f)| selectivity(f))
            .map(|(i, _)| i);
        let mut driving = None;
        for (i, f) in filters.iter().enumerate() {
            let clause = match f {
                Filter::Has { source_type, param, inner } if self.probe_has.contains(&i) => {
                    self.has_probe(&scope, source_type, param, inner)?
                }
                _ if Some(i) == driver => match self.driving(&scope, f)? {
                    Some(d) => {
                        driving = Some(d);
                        continue;
                    }
                    None => self.filter(&scope, f)?,
                },
                Filter::Param { param, modifier, values, not } => {
                    self.depth += 1;
                    let clause = self.param(&scope, param, modifier, values, *not, true);
                    self.depth -= 1;
                    clause?
                }
                _ => self.filter(&scope, f)?,
            };
            parts.push(clause);
        }
        let conditions = parts.join(" AND ");
        let rid = format!("{alias}.rid");
        // Driven by a set of rids, the resources should be read in rid order: the rows then
        // come in the page order and a page stops after its first matches instead of sorting
        // every match. SQLite does that fetching each by its rowid (through the live index
        // it would sort); PostgreSQL when the set is a join input it can read in order
        // (a value index scan is in rid order), which an `IN` semi-join never is.
        Ok(match (driving, self.dialect) {
            (None, _) => Selection { from: format!("FROM resources {alias} WHERE {conditions}"), rid },
            // Rows already in rid order are joined as they come: as an `IN` list SQLite would
            // first copy them all (46,716 rids for one LOINC code at 5,000 patients: 10 ms).
            // The driver's rid is the one selected, so that SQLite sees the page order is the
            // index's.
            (Some(Driving::Ordered { table, condition, dedupe }), Dialect::Sqlite) => Selection {
                from: format!(
                    "FROM {table} x CROSS JOIN resources {alias} ON {alias}.rid = x.rid WHERE {condition} \
                     AND {dedupe} AND {conditions}"
                ),
                rid: "x.rid".to_owned(),
            },
            (Some(driving), Dialect::Sqlite) => Selection {
                from: format!(
                    "FROM resources {alias}{} WHERE {alias}.rid IN ({}) AND {conditions}",
                    by_rowid(self.dialect),
                    driving.set()
                ),
                rid,
            },
            (Some(driving), Dialect::Postgres) => Selection {
                from: format!(
                    "FROM (SELECT DISTINCT s.rid FROM ({}) s) d JOIN resources {alias} ON {alias}.rid = d.rid \
                     WHERE {conditions}",
                    driving.set()
                ),
                rid,
            },
        })
    }

    /// The driving filter's rows: in rid order where its condition fixes every column of the
    /// value index before `rid` (one token `system|code`, one typed reference), else a set.
    fn driving(&mut self, scope: &Scope<'_>, filter: &Filter) -> Result<Option<Driving>> {
        if let Some(columns) = self.rid_ordered(scope, filter)
            && let Filter::Param { param, modifier, values, .. } = filter
        {
            let (table, condition) = self.param_condition(scope, param, modifier, values, false)?;
            // A resource with the same value twice has two rows: only the first one counts.
            let same: String = columns.iter().map(|c| format!(" AND y.{c} = x.{c}")).collect();
            let dedupe = format!(
                "NOT EXISTS (SELECT 1 FROM {table} y INDEXED BY {table}_v0 WHERE y.tenant = x.tenant \
                 AND y.pid = x.pid{same} AND y.rid = x.rid AND y.rowid < x.rowid)"
            );
            return Ok(Some(Driving::Ordered { table, condition, dedupe }));
        }
        Ok(self.rid_set(scope, filter)?.map(Driving::Set))
    }

    /// The value columns a filter fixes by equality, when they are all the value index's
    /// columns before `rid` and the scope has one key for the parameter, so that its rows are
    /// read in rid order.
    fn rid_ordered(&self, scope: &Scope<'_>, filter: &Filter) -> Option<[&'static str; 2]> {
        let Filter::Param { param, modifier, values, not: false } = filter else { return None };
        if self.keys.pids(scope.resource_type, scope.types, &param.code).len() != 1 {
            return None;
        }
        match (param.kind, modifier, values.as_slice()) {
            (
                ParamKind::Token,
                Modifier::None,
                [SearchValue::Token { system: TokenSystem::Is(_) | TokenSystem::None, code: Some(_) }],
            ) => Some(["code", "system"]),
            (
                ParamKind::Reference,
                Modifier::None | Modifier::Type(_),
                [SearchValue::Reference { target_type: Some(_), version: None, .. }],
            ) => Some(["target_id", "target_type"]),
            _ => None,
        }
    }

    /// The `WITH` clause the statement built from [`Self::selection`] starts with ('' for none).
    pub fn with(&self) -> String {
        if self.materialized.is_empty() { String::new() } else { format!("WITH {} ", self.materialized.join(", ")) }
    }

    /// `SELECT COUNT(*)` of the resources [`Self::selection`] selects.
    pub fn count(&mut self, resource_type: Option<&str>, types: &[String], filters: &[Filter]) -> Result<String> {
        if let [filter @ Filter::Param { .. }] = filters {
            // Index rows exist only for live resources, under a key per resource type: a single
            // parameter's count reads its index alone, not one resource row per match.
            let scope = Scope { alias: "r".to_owned(), resource_type, types };
            if let Some(set) = self.rid_set(&scope, filter)? {
                return Ok(format!("SELECT COUNT(DISTINCT s.rid) FROM ({set}) s"));
            }
        }
        let Selection { from, .. } = self.selection("r", resource_type, types, filters)?;
        Ok(format!("{}SELECT COUNT(*) {from}", self.with()))
    }

    fn base(&mut self, scope: &Scope<'_>) -> String {
        let a = &scope.alias;
        let tenant = self.sql.text(self.tenant);
        let mut s = format!("{a}.tenant = {tenant} AND {a}.deleted = FALSE");
        match (scope.resource_type, scope.types) {
            (Some(rt), _) => {
                let rt = self.sql.text(rt);
                s.push_str(&format!(" AND {a}.resource_type = {rt}"));
            }
            (None, []) => {}
            (None, types) => {
                let list = types.iter().map(|t| self.sql.text(t)).collect::<Vec<_>>().join(", ");
                s.push_str(&format!(" AND {a}.resource_type IN ({list})"));
            }
        }
        s
    }

    /// `tenant = … AND pid = …` on an index table aliased `x`: the parameter's rows for the
    /// scope's type (or types).
    fn index_head(&mut self, scope: &Scope<'_>, param: &str) -> String {
        let tenant = self.sql.text(self.tenant);
        let keys = self.rid_head(scope, param);
        format!("x.tenant = {tenant} AND {keys}")
    }

    /// [`Self::index_head`] for rows found by `rid`: a rid is one tenant's resource already,
    /// and without the tenant test a lookup on the `(rid, pid, …)` index reads no table row.
    fn rid_head(&mut self, scope: &Scope<'_>, param: &str) -> String {
        let pids = self.keys.pids(scope.resource_type, scope.types, param);
        self.sql.keys_in("x.pid", &pids)
    }

    fn filter(&mut self, scope: &Scope<'_>, filter: &Filter) -> Result<String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(StoreError::Query("the search nests too deeply".into()));
        }
        let a = scope.alias.clone();
        let out = match filter {
            Filter::Param { param, modifier, values, not } => {
                self.param(scope, param, modifier, values, *not, false)?
            }
            Filter::Builtin(b) => self.builtin(scope, b)?,
            // A union of rid sets is one list to drive from; an OR of conditions would make
            // the database consider every resource.
            Filter::Any(filters) => match self.rid_set(scope, filter)? {
                Some(set) => format!("{a}.rid IN ({set})"),
                None => {
                    let mut ors = Vec::with_capacity(filters.len());
                    for f in filters {
                        ors.push(self.filter(scope, f)?);
                    }
                    format!("({})", ors.join(" OR "))
                }
            },
            Filter::Has { source_type, param, inner } => {
                let src_scope = Scope { alias: String::new(), resource_type: Some(source_type), types: &[] };
                let head = self.rid_head(&src_scope, &param.code);
                let target_type = match scope.resource_type {
                    Some(rt) => self.sql.text(rt),
                    None => format!("{a}.resource_type"),
                };
                let Nested { alias, from, conditions } = self.nested_rids(source_type, inner)?;
                let join = self.join_by_rid(&alias);
                let set = format!(
                    "SELECT x.target_id FROM {from} {join} WHERE {conditions} AND {head} AND x.target_type = {target_type}"
                );
                match self.dialect {
                    Dialect::Sqlite => format!("{a}.id IN ({set})"),
                    // PostgreSQL would rather build the set again for every candidate (it
                    // misjudges how many a token like `gender=male` leaves: seen 600 ms at 1,000
                    // patients); materialised, it is built once.
                    Dialect::Postgres => {
                        let name = format!("has{}", self.materialized.len());
                        self.materialized.push(format!("{name} AS MATERIALIZED ({set})"));
                        format!("{a}.id IN (SELECT target_id FROM {name})")
                    }
                }
            }
            Filter::WithReferenced(_) | Filter::Chain { .. } | Filter::Compartment { .. } => {
                let set = self.rid_set(scope, filter)?.ok_or_else(|| StoreError::Query("no rid set".into()))?;
                format!("{a}.rid IN ({set})")
            }
        };
        self.depth -= 1;
        Ok(out)
    }

    /// A parameter's condition on the scope's resources: as a list of matching rids (`probe`
    /// false, the query's driver), or as a lookup per candidate on the index table's `rid`
    /// index. Negations (`:not`, `:missing`) are always lookups, since their list would be
    /// every row without the value.
    fn param(
        &mut self,
        scope: &Scope<'_>,
        param: &fhir::search::SearchParam,
        modifier: &Modifier,
        values: &[SearchValue],
        not: bool,
        probe: bool,
    ) -> Result<String> {
        let a = &scope.alias;
        let negated = match modifier {
            Modifier::Missing(missing) => *missing,
            _ => not,
        };
        let (t, condition) = self.param_condition(scope, param, modifier, values, probe || negated)?;
        Ok(if probe || negated {
            let hint = rid_index(self.dialect, t);
            let op = if negated { "NOT EXISTS" } else { "EXISTS" };
            format!("{op} (SELECT 1 FROM {t} x{hint} WHERE x.rid = {a}.rid AND {condition})")
        } else {
            format!("{a}.rid IN (SELECT x.rid FROM {t} x WHERE {condition})")
        })
    }

    /// The index table of a parameter and the condition on its row `x` (`:not` and
    /// `:missing=true` left to the caller to negate); `by_rid` when the rows are looked up by
    /// the resource's rid.
    fn param_condition(
        &mut self,
        scope: &Scope<'_>,
        param: &fhir::search::SearchParam,
        modifier: &Modifier,
        values: &[SearchValue],
        by_rid: bool,
    ) -> Result<(&'static str, String)> {
        let (table_kind, row_param) = match modifier {
            Modifier::Identifier => (ParamKind::Token, format!("{}:identifier", param.code)),
            Modifier::OfType => (ParamKind::Token, format!("{}:of-type", param.code)),
            _ => (param.kind, param.code.clone()),
        };
        let t = table(table_kind);
        let head = if by_rid { self.rid_head(scope, &row_param) } else { self.index_head(scope, &row_param) };
        Ok(match modifier {
            Modifier::Missing(_) => (t, head),
            _ => {
                let mut ors = Vec::with_capacity(values.len());
                for v in values {
                    ors.push(self.value(table_kind, modifier, v)?);
                }
                (t, format!("{head} AND ({})", ors.join(" OR ")))
            }
        })
    }

    /// `JOIN idx_reference x` on the rows of resource alias `r`, with the resources as the outer
    /// loop: they are the narrow side (the inner filter's matches), the reference rows of the
    /// parameter the wide one. SQLite takes `CROSS JOIN` as that order and needs the hint to
    /// the rid index without statistics; PostgreSQL plans the join itself.
    fn join_by_rid(&self, r: &str) -> String {
        let join = match self.dialect {
            Dialect::Sqlite => "CROSS JOIN",
            Dialect::Postgres => "JOIN",
        };
        format!("{join} idx_reference x{} ON x.rid = {r}.rid", rid_index(self.dialect, "idx_reference"))
    }

    /// The filter as a `SELECT` of the rids it selects (a superset is fine where the caller
    /// still applies the scope's base conditions), for the filters that have one.
    fn rid_set(&mut self, scope: &Scope<'_>, filter: &Filter) -> Result<Option<String>> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(StoreError::Query("the search nests too deeply".into()));
        }
        let set = match filter {
            Filter::Param { param, modifier, values, not: false } if !matches!(modifier, Modifier::Missing(_)) => {
                let (t, condition) = self.param_condition(scope, param, modifier, values, false)?;
                Some(format!("SELECT x.rid FROM {t} x WHERE {condition}"))
            }
            Filter::Any(filters) => {
                let mut sets = Vec::with_capacity(filters.len());
                for f in filters {
                    match self.rid_set(scope, f)? {
                        Some(set) => sets.push(set),
                        None => {
                            self.depth -= 1;
                            return Ok(None);
                        }
                    }
                }
                Some(sets.join(" UNION "))
            }
            Filter::WithReferenced(inner) => {
                let tenant = self.sql.text(self.tenant);
                let target = match self.dialect {
                    Dialect::Sqlite => "CROSS JOIN resources t",
                    Dialect::Postgres => "JOIN resources t",
                };
                let on = reference_target(self.dialect, "t", &tenant);
                // The members of any type, whatever types the search returns: a referenced
                // Medication belongs to the record through its MedicationRequest.
                let all = Scope { alias: format!("r{}", self.depth), resource_type: None, types: &[] };
                match self.rid_set(&all, inner)? {
                    // Read twice (the members, and what they refer to), so built once. The
                    // members' index rows name live resources of the tenant already.
                    Some(set) => {
                        let name = format!("rec{}", self.materialized.len());
                        self.materialized.push(format!("{name} AS MATERIALIZED ({set})"));
                        let join = self.join_by_rid("c");
                        Some(format!(
                            "SELECT c.rid FROM {name} c UNION SELECT t.rid FROM {name} c {join} {target} ON {on}"
                        ))
                    }
                    None => {
                        let Nested { alias, from, conditions } = self.nested(None, inner)?;
                        let join = self.join_by_rid(&alias);
                        Some(format!(
                            "SELECT {alias}.rid FROM {from} WHERE {conditions} UNION \
                             SELECT t.rid FROM {from} {join} {target} ON {on} WHERE {conditions}"
                        ))
                    }
                }
            }
            Filter::Chain { param, target_type, inner } => {
                let head = self.index_head(scope, &param.code);
                let tt = self.sql.text(target_type);
                let Nested { alias, from, conditions } = self.nested(Some(target_type), inner)?;
                // The reference index is in the "C" collation (see `reference_target`).
                let (join, c) = match self.dialect {
                    Dialect::Sqlite => ("CROSS JOIN idx_reference x INDEXED BY idx_reference_v0", ""),
                    Dialect::Postgres => ("JOIN idx_reference x", " COLLATE \"C\""),
                };
                Some(format!(
                    "SELECT x.rid FROM {from} {join} ON x.target_id = {alias}.id{c} WHERE {conditions} AND {head} \
                     AND x.target_type = {tt}"
                ))
            }
            Filter::Compartment { owner_type, owner_id, members, include_owner } => {
                let tenant = self.sql.text(self.tenant);
                let ot = self.sql.text(owner_type);
                let owner = match owner_id {
                    Some(id) => format!(" AND x.target_id = {}", self.sql.text(id)),
                    None => String::new(),
                };
                let mut pids = Vec::new();
                for (rt, params) in members {
                    if scope.resource_type.is_some_and(|t| t != rt) {
                        continue;
                    }
                    pids.extend(params.iter().filter_map(|p| self.keys.pid(rt, p)));
                }
                let mut sets = Vec::new();
                if !pids.is_empty() {
                    let keys = self.sql.keys_in("x.pid", &pids);
                    sets.push(format!(
                        "SELECT x.rid FROM idx_reference x WHERE x.tenant = {tenant} AND x.target_type = {ot}{owner} AND {keys}"
                    ));
                }
                if *include_owner {
                    let tenant = self.sql.text(self.tenant);
                    let ot = self.sql.text(owner_type);
                    let owner_match = match owner_id {
                        Some(id) => format!(" AND o.id = {}", self.sql.text(id)),
                        None => String::new(),
                    };
                    sets.push(format!(
                        "SELECT o.rid FROM resources o WHERE o.tenant = {tenant} AND o.resource_type = {ot}{owner_match}"
                    ));
                }
                if sets.is_empty() {
                    // Nothing of the scope's type can be in the compartment.
                    sets.push("SELECT 0 WHERE FALSE".to_owned());
                }
                Some(sets.join(" UNION "))
            }
            _ => None,
        };
        self.depth -= 1;
        Ok(set)
    }

    /// The parts of a `_has` filter's inner filter when its matches may be tested per
    /// candidate: a parameter with a list of matches (not a negation).
    fn probeable_has(inner: &Filter) -> Option<(&fhir::search::SearchParam, &Modifier, &[SearchValue])> {
        match inner {
            Filter::Param { param, modifier, values, not: false } if !matches!(modifier, Modifier::Missing(_)) => {
                Some((param, modifier, values))
            }
            _ => None,
        }
    }

    /// `SELECT COUNT(*)` of a `_has` filter's inner matches, stopping at `limit`: `None` where
    /// the filter cannot be tested per candidate.
    pub fn has_inner_count(&mut self, filter: &Filter, limit: usize) -> Result<Option<String>> {
        let Filter::Has { source_type, inner, .. } = filter else { return Ok(None) };
        let Some((param, modifier, values)) = Self::probeable_has(inner) else { return Ok(None) };
        let scope = Scope { alias: String::new(), resource_type: Some(source_type), types: &[] };
        let (t, condition) = self.param_condition(&scope, param, modifier, values, false)?;
        Ok(Some(format!("SELECT COUNT(*) FROM (SELECT 1 FROM {t} x WHERE {condition} LIMIT {limit}) c")))
    }

    /// `_has` as a test per candidate: does a resource of the source type point at it and
    /// match the inner parameter? The references to the candidate are found through the value
    /// index, each tested on the inner parameter's value index; a page of candidates then
    /// stops at its first matches instead of first listing the targets of every inner match
    /// (16,593 glucose Observations at 5,000 patients: 45 ms, against 5 ms per page).
    fn has_probe(
        &mut self,
        scope: &Scope<'_>,
        source_type: &str,
        param: &fhir::search::SearchParam,
        inner: &Filter,
    ) -> Result<String> {
        let Some((inner_param, modifier, values)) = Self::probeable_has(inner) else {
            return Err(StoreError::Query("a _has probe needs a parameter".into()));
        };
        let a = scope.alias.clone();
        let h = format!("h{}", self.depth);
        let src_scope = Scope { alias: h.clone(), resource_type: Some(source_type), types: &[] };
        let tenant = self.sql.text(self.tenant);
        let pids = self.keys.pids(Some(source_type), &[], &param.code);
        let head = self.sql.keys_in(&format!("{h}.pid"), &pids);
        // The reference index is in the "C" collation (see `reference_target`).
        let (hint, c) = match self.dialect {
            Dialect::Sqlite => (" INDEXED BY idx_reference_v0", ""),
            Dialect::Postgres => ("", " COLLATE \"C\""),
        };
        let target_type = match scope.resource_type {
            Some(rt) => self.sql.text(rt),
            None => format!("{a}.resource_type{c}"),
        };
        let (t, condition) = self.param_condition(&src_scope, inner_param, modifier, values, false)?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM idx_reference {h}{hint} WHERE {h}.tenant = {tenant} AND {head} AND {h}.target_id = {a}.id{c} \
             AND {h}.target_type = {target_type} AND EXISTS (SELECT 1 FROM {t} x WHERE {condition} AND x.rid = {h}.rid))"
        ))
    }

    /// A filter over another `resources` alias (chains, `_has`): the alias, how to name it in a
    /// `FROM`, and its conditions.
    fn nested(&mut self, resource_type: Option<&str>, inner: &Filter) -> Result<Nested> {
        let alias = format!("r{}", self.depth);
        let scope = Scope { alias: alias.clone(), resource_type, types: &[] };
        let base = self.base(&scope);
        let (from, condition) = match self.rid_set(&scope, inner)? {
            Some(set) => (format!("resources {alias}{}", by_rowid(self.dialect)), format!("{alias}.rid IN ({set})")),
            None => (format!("resources {alias}"), self.filter(&scope, inner)?),
        };
        Ok(Nested { from, conditions: format!("{base} AND {condition}"), alias })
    }

    /// [`Self::nested`] where only the rids are needed: a single parameter's index rows name
    /// live resources of their type already, so the resources themselves go unread.
    fn nested_rids(&mut self, resource_type: &str, inner: &Filter) -> Result<Nested> {
        if let Filter::Param { not: false, modifier, .. } = inner
            && *modifier != Modifier::Missing(true)
        {
            let alias = format!("r{}", self.depth);
            let scope = Scope { alias: alias.clone(), resource_type: Some(resource_type), types: &[] };
            if let Some(set) = self.rid_set(&scope, inner)? {
                return Ok(Nested { from: format!("({set}) {alias}"), conditions: "TRUE".to_owned(), alias });
            }
        }
        self.nested(Some(resource_type), inner)
    }

    fn builtin(&mut self, scope: &Scope<'_>, b: &Builtin) -> Result<String> {
        let a = scope.alias.clone();
        Ok(match b {
            Builtin::Id(ids) => {
                let list = ids.iter().map(|id| self.sql.text(id)).collect::<Vec<_>>().join(", ");
                format!("{a}.id IN ({list})")
            }
            Builtin::LastUpdated(values) => {
                let mut ors = Vec::new();
                let col = format!("{a}.last_updated");
                for v in values {
                    let SearchValue::Date { prefix, low, high } = v else {
                        return Err(StoreError::Query("_lastUpdated takes dates".into()));
                    };
                    ors.push(self.date_condition(&col, &col, *prefix, *low, *high, false));
                }
                format!("({})", ors.join(" OR "))
            }
            Builtin::List(ids) => {
                let tenant = self.sql.text(self.tenant);
                let list = ids.iter().map(|id| self.sql.text(id)).collect::<Vec<_>>().join(", ");
                let item: Vec<i64> = self.keys.pid("List", "item").into_iter().collect();
                let keys = self.sql.keys_in("x.pid", &item);
                format!(
                    "{a}.id IN (SELECT x.target_id FROM idx_reference x JOIN resources l ON l.rid = x.rid \
                     WHERE l.tenant = {tenant} AND l.resource_type = 'List' AND l.deleted = FALSE AND l.id IN ({list}) \
                     AND {keys} AND x.target_type = {a}.resource_type)"
                )
            }
            Builtin::Text { narrative, terms } => {
                let column = if *narrative { "narrative" } else { "content" };
                match self.dialect {
                    Dialect::Sqlite => {
                        let q: Vec<String> =
                            terms.iter().map(|t| format!("{column} : \"{}\" *", t.replace('"', "\"\""))).collect();
                        let q = self.sql.text(&q.join(" AND "));
                        format!("{a}.rid IN (SELECT rowid FROM idx_text WHERE idx_text MATCH {q})")
                    }
                    Dialect::Postgres => {
                        let words: Vec<String> = terms
                            .iter()
                            .map(|t| t.chars().filter(|c| c.is_alphanumeric()).collect::<String>())
                            .filter(|w| !w.is_empty())
                            .map(|w| format!("{w}:*"))
                            .collect();
                        if words.is_empty() {
                            return Ok("FALSE".into());
                        }
                        let q = self.sql.text(&words.join(" & "));
                        format!(
                            "{a}.rid IN (SELECT x.rid FROM idx_text x WHERE x.{column} @@ to_tsquery('simple', {q}))"
                        )
                    }
                }
            }
        })
    }

    /// One value's condition on index row `x` of a table of the given kind.
    fn value(&mut self, kind: ParamKind, modifier: &Modifier, v: &SearchValue) -> Result<String> {
        let cols = Columns::plain(kind);
        self.value_on(&cols, modifier, v)
    }

    fn value_on(&mut self, c: &Columns, modifier: &Modifier, v: &SearchValue) -> Result<String> {
        Ok(match v {
            SearchValue::String { normalized, exact } => match modifier {
                Modifier::Exact => format!("{} = {}", c.exact, self.sql.text(exact)),
                Modifier::Contains => {
                    let pattern = format!("%{}%", like_escape(normalized));
                    format!("{} LIKE {} ESCAPE '\\'", c.text, self.sql.text(&pattern))
                }
                _ => self.prefix_range(&c.text, normalized),
            },
            SearchValue::TokenText(text) => self.prefix_range(&c.text, text),
            SearchValue::Token { system, code } => {
                let mut parts = Vec::new();
                if let Some(code) = code {
                    parts.push(format!("{} = {}", c.code, self.sql.text(code)));
                }
                match system {
                    TokenSystem::Any => {}
                    // Composite parts keep NULL for absent; the token table ''.
                    TokenSystem::None if c.composite => parts.push(format!("{} IS NULL", c.system)),
                    TokenSystem::None => parts.push(format!("{} = ''", c.system)),
                    TokenSystem::Is(s) => parts.push(format!("{} = {}", c.system, self.sql.text(s))),
                }
                if parts.is_empty() {
                    return Err(StoreError::Query("a token value needs a system or a code".into()));
                }
                format!("({})", parts.join(" AND "))
            }
            SearchValue::Reference { target_type, target_id, version } => {
                if c.composite {
                    let text = match target_type {
                        Some(t) => format!("{t}/{target_id}"),
                        None => target_id.clone(),
                    };
                    return Ok(format!("{} = {}", c.code, self.sql.text(&text)));
                }
                let mut parts = vec![format!("x.target_id = {}", self.sql.text(target_id))];
                if let Some(t) = target_type {
                    parts.push(format!("x.target_type = {}", self.sql.text(t)));
                }
                if let Some(v) = version {
                    parts.push(format!("x.version = {}", self.sql.text(v)));
                }
                format!("({})", parts.join(" AND "))
            }
            SearchValue::Url { url, version } => {
                if c.composite {
                    return Ok(format!("{} = {}", c.code, self.sql.text(url)));
                }
                let mut s = format!("(x.url = {}", self.sql.text(url));
                if let Some(v) = version {
                    s.push_str(&format!(" AND x.version = {}", self.sql.text(v)));
                }
                s.push(')');
                s
            }
            SearchValue::Uri(uri) => match modifier {
                Modifier::Below => self.prefix_range(&c.text, uri),
                Modifier::Above => {
                    let u = self.sql.text(uri);
                    format!("({col} = substr({u}, 1, length({col})))", col = c.text)
                }
                Modifier::Contains => {
                    let pattern = format!("%{}%", like_escape(uri));
                    format!("{} LIKE {} ESCAPE '\\'", c.text, self.sql.text(&pattern))
                }
                _ => format!("{} = {}", c.text, self.sql.text(uri)),
            },
            SearchValue::Date { prefix, low, high } => {
                let (lc, hc) = (c.low.clone(), c.high.clone());
                self.date_condition(&lc, &hc, *prefix, *low, *high, c.composite)
            }
            SearchValue::Number { prefix, value, low, high } => {
                let col = c.low.clone();
                self.number_condition(&col, &col, *prefix, *value, *low, *high)
            }
            SearchValue::Quantity { prefix, value, low, high, system, code, canonical } => {
                // As stated: the code (or, without a system, the unit text) and the value.
                let mut parts = Vec::new();
                if let Some(code) = code {
                    let b = self.sql.text(code);
                    parts.push(match (&c.unit, system) {
                        (Some(unit), None) => format!("({} = {b} OR {unit} = {b})", c.code),
                        _ => format!("{} = {b}", c.code),
                    });
                }
                if let Some(s) = system {
                    parts.push(format!("{} = {}", c.system, self.sql.text(s)));
                }
                let (lo, hi) = (c.low.clone(), c.high.clone());
                parts.push(self.number_condition(&lo, &hi, *prefix, *value, *low, *high));
                let stated = format!("({})", parts.join(" AND "));
                // In UCUM base units, any unit of the same dimension matches (1 g finds 1000 mg).
                let ucum_or_none = system.as_deref().is_none_or(|s| s == "http://unitsofmeasure.org");
                match canonical {
                    Some((cv, cl, ch, key)) if ucum_or_none => {
                        let k = self.sql.text(key);
                        let (lo, hi) = (c.canonical_low.clone(), c.canonical_high.clone());
                        let converted = self.number_condition(&lo, &hi, *prefix, *cv, *cl, *ch);
                        format!("(({} = {k} AND {converted}) OR {stated})", c.key)
                    }
                    _ => stated,
                }
            }
            SearchValue::Composite(parts) => {
                if !c.composite_root {
                    return Err(StoreError::Query("composite values nest only one level".into()));
                }
                let mut conditions = Vec::with_capacity(parts.len());
                for (i, part) in parts.iter().enumerate() {
                    let cols = Columns::part(i + 1);
                    conditions.push(self.value_on(&cols, &Modifier::None, part)?);
                }
                format!("({})", conditions.join(" AND "))
            }
        })
    }

    /// Starts-with as a range on a normalised text column.
    fn prefix_range(&mut self, col: &str, prefix: &str) -> String {
        let low = self.sql.text(prefix);
        match prefix_upper_bound(prefix) {
            Some(upper) => {
                let high = self.sql.text(&upper);
                format!("({col} >= {low} AND {col} < {high})")
            }
            None => format!("{col} >= {low}"),
        }
    }

    /// Date prefixes with FHIR's range semantics (search.html#prefix): the stored range
    /// [`lc`, `hc`] against the searched range [low, high].
    fn date_condition(&mut self, lc: &str, hc: &str, prefix: Prefix, low: i64, high: i64, real: bool) -> String {
        let mut b = |v: i64| if real { self.sql.real(v as f64) } else { self.sql.int(v) };
        match prefix {
            Prefix::Eq => {
                let (l, h) = (b(low), b(high));
                format!("({lc} >= {l} AND {hc} <= {h})")
            }
            Prefix::Ne => {
                let (l, h) = (b(low), b(high));
                format!("NOT ({lc} >= {l} AND {hc} <= {h})")
            }
            Prefix::Gt => format!("{hc} > {}", b(high)),
            Prefix::Lt => format!("{lc} < {}", b(low)),
            Prefix::Ge => {
                let (h, l, h2) = (b(high), b(low), b(high));
                format!("({hc} > {h} OR ({lc} >= {l} AND {hc} <= {h2}))")
            }
            Prefix::Le => {
                let (l, l2, h) = (b(low), b(low), b(high));
                format!("({lc} < {l} OR ({lc} >= {l2} AND {hc} <= {h}))")
            }
            Prefix::Sa => format!("{lc} > {}", b(high)),
            Prefix::Eb => format!("{hc} < {}", b(low)),
            Prefix::Ap => {
                // Within a tenth of the distance from now, at least a day either side.
                let now = chrono::Utc::now().timestamp_millis();
                let distance = (now - (low / 2 + high / 2)).abs();
                let margin = (distance / 10).max(86_400_000);
                let (l, h) = (b(low.saturating_sub(margin)), b(high.saturating_add(margin)));
                format!("({lc} <= {h} AND {hc} >= {l})")
            }
        }
    }

    /// Number and quantity prefixes: `eq` is the range the search value's precision implies;
    /// the ordering prefixes compare with the exact value. The stored value is [`lc`, `hc`]
    /// (equal for a single value, apart for a Range).
    fn number_condition(&mut self, lc: &str, hc: &str, prefix: Prefix, value: f64, low: f64, high: f64) -> String {
        match prefix {
            Prefix::Eq => {
                let (l, h) = (self.sql.real(low), self.sql.real(high));
                format!("({lc} >= {l} AND {hc} < {h})")
            }
            Prefix::Ne => {
                let (l, h) = (self.sql.real(low), self.sql.real(high));
                format!("NOT ({lc} >= {l} AND {hc} < {h})")
            }
            Prefix::Gt | Prefix::Sa => format!("{hc} > {}", self.sql.real(value)),
            Prefix::Lt | Prefix::Eb => format!("{lc} < {}", self.sql.real(value)),
            Prefix::Ge => format!("{hc} >= {}", self.sql.real(value)),
            Prefix::Le => format!("{lc} <= {}", self.sql.real(value)),
            Prefix::Ap => {
                let margin = (value * 0.1).abs();
                let (l, h) = (self.sql.real(value - margin), self.sql.real(value + margin));
                format!("({lc} <= {h} AND {hc} >= {l})")
            }
        }
    }
}

/// The columns a value condition reads: those of a plain index table, or of part `k` of a
/// composite row.
struct Columns {
    text: String,
    exact: String,
    system: String,
    code: String,
    unit: Option<String>,
    low: String,
    high: String,
    canonical_low: String,
    canonical_high: String,
    key: String,
    composite: bool,
    composite_root: bool,
}

impl Columns {
    fn plain(kind: ParamKind) -> Self {
        let s = |c: &str| format!("x.{c}");
        let (text, low, high) = match kind {
            ParamKind::String => (s("normalized"), s("low"), s("high")),
            ParamKind::Token => (s("text"), s("low"), s("high")),
            ParamKind::Uri => (s("uri"), s("low"), s("high")),
            ParamKind::Number | ParamKind::Special => (s("text"), s("value"), s("value")),
            _ => (s("text"), s("low"), s("high")),
        };
        Columns {
            text,
            exact: s("exact"),
            system: s("system"),
            code: s("code"),
            unit: Some(s("unit")),
            low,
            high,
            canonical_low: s("canonical_low"),
            canonical_high: s("canonical_high"),
            key: s("canonical_key"),
            composite: false,
            composite_root: kind == ParamKind::Composite,
        }
    }

    fn part(k: usize) -> Self {
        let p = |c: &str| format!("x.p{k}_{c}");
        Columns {
            text: p("key"),
            exact: p("key"),
            system: p("system"),
            code: p("code"),
            unit: None,
            low: p("low"),
            high: p("high"),
            canonical_low: p("canonical_low"),
            canonical_high: p("canonical_high"),
            key: p("key"),
            composite: true,
            composite_root: false,
        }
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The sort-key expression of a sort key, over the resource alias `r` of a search on
/// `resource_type` (or `types`).
pub(crate) fn sort_expression(
    sql: &mut Sql,
    keys: &Keys,
    resource_type: Option<&str>,
    types: &[String],
    key: &SortKey,
) -> String {
    match key.param.as_str() {
        "_id" => "r.id".to_owned(),
        "_lastUpdated" => "r.last_updated".to_owned(),
        code => {
            let agg = if key.descending { "MAX" } else { "MIN" };
            let col = match (key.kind, key.descending) {
                (ParamKind::String, _) => "x.normalized",
                (ParamKind::Token, _) => "NULLIF(x.code, '')",
                (ParamKind::Date, false) => "x.low",
                (ParamKind::Date, true) => "x.high",
                (ParamKind::Number, _) => "x.value",
                (ParamKind::Quantity, false) => "COALESCE(x.canonical_low, x.low)",
                (ParamKind::Quantity, true) => "COALESCE(x.canonical_high, x.high)",
                (ParamKind::Reference, _) => "COALESCE(NULLIF(x.target_id, ''), NULLIF(x.url, ''))",
                (ParamKind::Uri, _) => "x.uri",
                _ => "NULL",
            };
            let pids = keys.pids(resource_type, types, code);
            let keys = sql.keys_in("x.pid", &pids);
            format!("(SELECT {agg}({col}) FROM {} x WHERE x.rid = r.rid AND {keys})", table(key.kind))
        }
    }
}

/// The type of value a sort key has, for reading it back and binding it in a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Text,
    Int,
    Real,
}

pub(crate) fn key_type(key: &SortKey) -> KeyType {
    match (key.param.as_str(), key.kind) {
        ("_lastUpdated", _) | (_, ParamKind::Date) => KeyType::Int,
        ("_id", _) => KeyType::Text,
        (_, ParamKind::Number | ParamKind::Quantity) => KeyType::Real,
        _ => KeyType::Text,
    }
}

/// A sort key value as read from a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyValue {
    Null,
    Text(String),
    Int(i64),
    Real(f64),
}

impl KeyValue {
    fn to_json(&self) -> Value {
        match self {
            KeyValue::Null => json!(["n"]),
            KeyValue::Text(s) => json!(["t", s]),
            KeyValue::Int(i) => json!(["i", i]),
            KeyValue::Real(f) => json!(["f", f.to_string()]),
        }
    }

    fn from_json(v: &Value) -> Option<Self> {
        let a = v.as_array()?;
        Some(match a.first()?.as_str()? {
            "n" => KeyValue::Null,
            "t" => KeyValue::Text(a.get(1)?.as_str()?.to_owned()),
            "i" => KeyValue::Int(a.get(1)?.as_i64()?),
            "f" => KeyValue::Real(a.get(1)?.as_str()?.parse().ok()?),
            _ => return None,
        })
    }

    fn bind(&self, sql: &mut Sql) -> String {
        match self {
            KeyValue::Null => "NULL".to_owned(),
            KeyValue::Text(s) => sql.text(s),
            KeyValue::Int(i) => sql.int(*i),
            KeyValue::Real(f) => sql.real(*f),
        }
    }
}

/// Where a page starts: after (or, going back, before) the row with these sort keys and rid.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub backwards: bool,
    pub keys: Vec<KeyValue>,
    pub rid: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let v = json!({"d": if self.backwards { "p" } else { "n" }, "k": self.keys.iter().map(KeyValue::to_json).collect::<Vec<_>>(), "r": self.rid});
        fhir::codec::base64_encode(v.to_string().as_bytes(), true).trim_end_matches('=').to_owned()
    }

    pub fn decode(text: &str, keys: usize) -> Result<Cursor> {
        let bad = || StoreError::Query("the paging cursor is not one this server wrote (or the search changed)".into());
        let bytes = fhir::codec::base64_decode(text, true).ok_or_else(bad)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let backwards = match v.get("d").and_then(Value::as_str) {
            Some("p") => true,
            Some("n") => false,
            _ => return Err(bad()),
        };
        let list = v.get("k").and_then(Value::as_array).ok_or_else(bad)?;
        let keys_read: Vec<KeyValue> = list.iter().map(KeyValue::from_json).collect::<Option<_>>().ok_or_else(bad)?;
        if keys_read.len() != keys {
            return Err(bad());
        }
        let rid = v.get("r").and_then(Value::as_i64).ok_or_else(bad)?;
        Ok(Cursor { backwards, keys: keys_read, rid })
    }
}

/// The ORDER BY of a page over the subquery `q` (keys `q.k0…`, then `q.rid`), reversed when
/// reading backwards. Missing keys sort last in both directions.
pub(crate) fn order_by(sort: &[SortKey], reverse: bool) -> String {
    let mut parts = Vec::new();
    for (i, key) in sort.iter().enumerate() {
        let desc = key.descending != reverse;
        let nulls = if reverse { "DESC" } else { "ASC" };
        parts.push(format!("(q.k{i} IS NULL) {nulls}"));
        parts.push(format!("q.k{i} {}", if desc { "DESC" } else { "ASC" }));
    }
    parts.push(format!("q.rid {}", if reverse { "DESC" } else { "ASC" }));
    parts.join(", ")
}

/// Rows strictly after the cursor in the page order (or strictly before it, backwards):
/// lexicographic on (null flag, key) per sort key, then rid.
pub(crate) fn after_cursor(sql: &mut Sql, sort: &[SortKey], cursor: &Cursor) -> String {
    let reverse = cursor.backwards;
    let mut alternatives = Vec::new();
    let mut equal_so_far: Vec<String> = Vec::new();
    for (i, (key, value)) in sort.iter().zip(&cursor.keys).enumerate() {
        let k = format!("q.k{i}");
        let desc = key.descending != reverse;
        match value {
            KeyValue::Null => {
                // After a missing key (which sorts last) come only rows also missing it,
                // unless reading backwards, when every row with the key comes first.
                if reverse {
                    alternatives.push(format!("({}{k} IS NOT NULL)", prefix_and(&equal_so_far)));
                }
                equal_so_far.push(format!("{k} IS NULL"));
            }
            v => {
                let b = v.bind(sql);
                let op = if desc { "<" } else { ">" };
                alternatives.push(format!("({}{k} {op} {b})", prefix_and(&equal_so_far)));
                if !reverse {
                    alternatives.push(format!("({}{k} IS NULL)", prefix_and(&equal_so_far)));
                }
                let b2 = v.bind(sql);
                equal_so_far.push(format!("{k} = {b2}"));
            }
        }
    }
    let rid = sql.int(cursor.rid);
    let op = if reverse { "<" } else { ">" };
    alternatives.push(format!("({}q.rid {op} {rid})", prefix_and(&equal_so_far)));
    format!("({})", alternatives.join(" OR "))
}

fn prefix_and(conditions: &[String]) -> String {
    if conditions.is_empty() { String::new() } else { format!("{} AND ", conditions.join(" AND ")) }
}

/// One part of a composite row, in the generic columns of `idx_composite`.
#[derive(Debug, Default, Clone)]
pub(crate) struct CompositePart {
    pub system: Option<String>,
    pub code: Option<String>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub canonical_low: Option<f64>,
    pub canonical_high: Option<f64>,
    pub key: Option<String>,
}

fn composite_part(v: &IndexValue) -> CompositePart {
    match v {
        IndexValue::Token { system, code, .. } => {
            CompositePart { system: system.clone(), code: code.clone(), ..Default::default() }
        }
        IndexValue::Reference { target_type, target_id, url, .. } => CompositePart {
            code: match (target_type, target_id) {
                (Some(t), Some(id)) => Some(format!("{t}/{id}")),
                _ => url.clone(),
            },
            ..Default::default()
        },
        IndexValue::Quantity { low, high, system, code, canonical, .. } => CompositePart {
            system: system.clone(),
            code: code.clone(),
            low: Some(*low),
            high: Some(*high),
            canonical_low: canonical.as_ref().map(|c| c.0),
            canonical_high: canonical.as_ref().map(|c| c.1),
            key: canonical.as_ref().map(|c| c.2.clone()),
        },
        IndexValue::Date { low, high } => {
            CompositePart { low: Some(*low as f64), high: Some(*high as f64), ..Default::default() }
        }
        IndexValue::Number { value } => CompositePart { low: Some(*value), high: Some(*value), ..Default::default() },
        IndexValue::String { normalized, .. } => CompositePart { key: Some(normalized.clone()), ..Default::default() },
        IndexValue::Uri { uri } => CompositePart { key: Some(uri.clone()), ..Default::default() },
        IndexValue::Composite { .. } => CompositePart::default(),
    }
}

/// A composite value's parts in the three generic part columns of `idx_composite`.
pub(crate) fn composite_parts(parts: &[IndexValue]) -> [CompositePart; 3] {
    let mut cols: [CompositePart; 3] = Default::default();
    for (slot, part) in cols.iter_mut().zip(parts) {
        *slot = composite_part(part);
    }
    cols
}

/// The index tables a resource has rows in, for clearing them on update and delete.
pub(crate) const INDEX_TABLES: &[&str] =
    &["idx_string", "idx_token", "idx_reference", "idx_date", "idx_number", "idx_quantity", "idx_uri", "idx_composite"];

/// Runs the SQL the builder writes, on a pooled connection or inside a transaction.
#[async_trait::async_trait]
pub(crate) trait Runner: Send + Sync {
    fn dialect(&self) -> Dialect;

    /// The parameter keys of the store.
    fn keys(&self) -> &Keys;

    /// Rows of the given column types; a NULL reads as [`KeyValue::Null`].
    async fn rows(&self, sql: &Sql, types: &[KeyType]) -> Result<Vec<Vec<KeyValue>>>;
}

/// The columns every resource-returning query selects, over `r` joined with its current
/// version `v`.
const RESOURCE_COLUMNS: &str = "r.rid, r.resource_type, r.id, v.version, v.last_updated, v.method, v.body, v.sequence";
const RESOURCE_TYPES: [KeyType; 8] = [
    KeyType::Int,
    KeyType::Text,
    KeyType::Text,
    KeyType::Int,
    KeyType::Int,
    KeyType::Text,
    KeyType::Text,
    KeyType::Int,
];
const CURRENT_JOIN: &str = "JOIN versions v ON v.tenant = r.tenant AND v.resource_type = r.resource_type AND v.id = r.id AND v.version = r.version";

fn text_of(v: &KeyValue) -> Option<String> {
    match v {
        KeyValue::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_of(v: &KeyValue) -> i64 {
    match v {
        KeyValue::Int(i) => *i,
        _ => 0,
    }
}

/// A resource row as read by [`RESOURCE_COLUMNS`]: its rid and version.
fn resource_row(row: &[KeyValue]) -> Option<(i64, crate::ResourceVersion)> {
    let method = text_of(row.get(5)?)?;
    Some((
        int_of(row.first()?),
        crate::ResourceVersion {
            resource_type: text_of(row.get(1)?)?,
            id: text_of(row.get(2)?)?,
            version: int_of(row.get(3)?),
            last_updated: crate::common::from_millis(int_of(row.get(4)?)),
            method: crate::common::method_from(&method),
            body: text_of(row.get(6)?),
            sequence: int_of(row.get(7)?),
        },
    ))
}

/// Most resources `_include` / `_revinclude` add to one page.
const MAX_INCLUDED: usize = 1000;
/// Rounds of `:iterate`.
const MAX_ITERATE: usize = 3;

/// How many inner matches make a `_has` filter tested per candidate: below it, listing their
/// targets costs less than a page's tests (about 3 µs per match on SQLite); above it, a
/// page's candidates mostly find a match among their first references.
const HAS_SET_LIMIT: usize = 2000;

/// The top-level `_has` filters with at least [`HAS_SET_LIMIT`] inner matches, counted up to
/// that bound: the ones [`Builder::has_probe`] should test.
async fn wide_has(runner: &dyn Runner, tenant: &str, filters: &[Filter]) -> Result<Vec<usize>> {
    let mut wide = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let mut b = Builder::new(runner.dialect(), tenant, runner.keys());
        let Some(count) = b.has_inner_count(f, HAS_SET_LIMIT)? else { continue };
        b.sql.text = count;
        let rows = runner.rows(&b.sql, &[KeyType::Int]).await?;
        if rows.first().and_then(|r| r.first()).map(int_of).unwrap_or(0) >= HAS_SET_LIMIT as i64 {
            wide.push(i);
        }
    }
    Ok(wide)
}

/// Runs a search: the total, one page in keyset order, and the included resources.
pub(crate) async fn run(runner: &dyn Runner, tenant: &str, q: &crate::SearchQuery<'_>) -> Result<crate::SearchPage> {
    let mut page = crate::SearchPage::default();
    if q.total {
        let mut b = Builder::new(runner.dialect(), tenant, runner.keys());
        b.sql.text = b.count(q.resource_type, q.types, q.filters)?;
        let rows = runner.rows(&b.sql, &[KeyType::Int]).await?;
        page.total = rows.first().and_then(|r| r.first()).map(|v| int_of(v).max(0) as u64);
    }
    if q.count == 0 {
        return Ok(page);
    }
    let cursor = q.cursor.map(|c| Cursor::decode(c, q.sort.len())).transpose()?;
    let mut b = Builder::new(runner.dialect(), tenant, runner.keys());
    b.probe_has = wide_has(runner, tenant, q.filters).await?;
    let Selection { from, rid } = b.selection("r", q.resource_type, q.types, q.filters)?;
    let keys: Vec<String> = q
        .sort
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} AS k{i}", sort_expression(&mut b.sql, b.keys, q.resource_type, q.types, k)))
        .collect();
    let key_list = if keys.is_empty() { String::new() } else { format!(", {}", keys.join(", ")) };
    let outer_keys: String = (0..q.sort.len()).map(|i| format!(", q.k{i}")).collect();
    let reverse = cursor.as_ref().is_some_and(|c| c.backwards);
    let after = match &cursor {
        Some(c) => format!("WHERE {}", after_cursor(&mut b.sql, q.sort, c)),
        None => String::new(),
    };
    let inner = format!("SELECT {rid} AS rid, r.tenant, r.resource_type, r.id, r.version{key_list} {from}");
    let select = RESOURCE_COLUMNS.replace("r.rid, r.resource_type, r.id", "q.rid, q.resource_type, q.id");
    // The page is cut before the bodies are joined: joined first, every match's body would be
    // read to sort them.
    let order = order_by(q.sort, reverse);
    b.sql.text = format!(
        "{}SELECT {select}{outer_keys} FROM (SELECT * FROM ({inner}) q {after} ORDER BY {order} LIMIT {}) q \
         JOIN versions v ON v.tenant = q.tenant AND v.resource_type = q.resource_type AND v.id = q.id \
         AND v.version = q.version ORDER BY {order}",
        b.with(),
        q.count + 1
    );
    let mut types = RESOURCE_TYPES.to_vec();
    types.extend(q.sort.iter().map(key_type));
    let mut rows = runner.rows(&b.sql, &types).await?;
    let more = rows.len() > q.count;
    rows.truncate(q.count);
    if reverse {
        rows.reverse();
    }
    let cursor_of = |row: &Vec<KeyValue>, backwards: bool| Cursor {
        backwards,
        keys: row[RESOURCE_TYPES.len()..].to_vec(),
        rid: int_of(&row[0]),
    };
    let (has_next, has_previous) = if reverse { (true, more) } else { (more, cursor.is_some()) };
    if has_next && let Some(last) = rows.last() {
        page.next = Some(cursor_of(last, false).encode());
    }
    if has_previous && let Some(first) = rows.first() {
        page.previous = Some(cursor_of(first, true).encode());
    }
    let mut found: Vec<(i64, crate::ResourceVersion)> = rows.iter().filter_map(|r| resource_row(r)).collect();
    if !q.include.is_empty() || !q.revinclude.is_empty() {
        page.included = includes(runner, tenant, q, &found).await?;
    }
    page.matches = found.drain(..).map(|(_, v)| v).collect();
    Ok(page)
}

/// `_include` and `_revinclude` for a page's matches; `:iterate` ones again on what they
/// added.
async fn includes(
    runner: &dyn Runner,
    tenant: &str,
    q: &crate::SearchQuery<'_>,
    matches: &[(i64, crate::ResourceVersion)],
) -> Result<Vec<crate::ResourceVersion>> {
    let mut seen: std::collections::HashSet<(String, String)> =
        matches.iter().map(|(_, v)| (v.resource_type.clone(), v.id.clone())).collect();
    let mut included: Vec<crate::ResourceVersion> = Vec::new();
    let mut sources: Vec<(i64, crate::ResourceVersion)> = matches.to_vec();
    for round in 0..=MAX_ITERATE {
        if sources.is_empty() || included.len() >= MAX_INCLUDED {
            break;
        }
        let mut added: Vec<(i64, crate::ResourceVersion)> = Vec::new();
        for inc in q.include.iter().filter(|i| round == 0 || i.iterate) {
            for row in include_targets(runner, tenant, inc, &sources).await? {
                if seen.insert((row.1.resource_type.clone(), row.1.id.clone())) {
                    added.push(row);
                }
            }
        }
        for inc in q.revinclude.iter().filter(|i| round == 0 || i.iterate) {
            for row in revinclude_sources(runner, tenant, inc, &sources).await? {
                if seen.insert((row.1.resource_type.clone(), row.1.id.clone())) {
                    added.push(row);
                }
            }
        }
        added.truncate(MAX_INCLUDED.saturating_sub(included.len()));
        included.extend(added.iter().map(|(_, v)| v.clone()));
        sources = added;
    }
    Ok(included)
}

/// The reference parameters an include follows; `None` for all (`*:*`).
fn include_keys(keys: &Keys, inc: &fhir::search::query::Include) -> Option<Vec<i64>> {
    match (inc.source_type.as_str(), inc.param.as_str()) {
        ("*", "*") => None,
        ("*", param) => Some(keys.pids(None, &[], param)),
        (rt, "*") => Some(keys.of_kind(rt, ParamKind::Reference)),
        (rt, param) => Some(keys.pid(rt, param).into_iter().collect()),
    }
}

/// The resources that `sources` reference through an include's parameter.
async fn include_targets(
    runner: &dyn Runner,
    tenant: &str,
    inc: &fhir::search::query::Include,
    sources: &[(i64, crate::ResourceVersion)],
) -> Result<Vec<(i64, crate::ResourceVersion)>> {
    let relevant: Vec<i64> = sources
        .iter()
        .filter(|(_, v)| inc.source_type == "*" || v.resource_type == inc.source_type)
        .map(|(rid, _)| *rid)
        .collect();
    if relevant.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let t = sql.text(tenant);
    let rids = relevant.iter().map(|r| sql.int(*r)).collect::<Vec<_>>().join(", ");
    // Rows found by rid need no tenant test (see `rid_head`); the targets do.
    let mut cond = format!("x.rid IN ({rids}) AND x.target_type <> ''");
    if let Some(pids) = include_keys(runner.keys(), inc) {
        cond.push_str(&format!(" AND {}", sql.keys_in("x.pid", &pids)));
    }
    if let Some(tt) = &inc.target_type {
        cond.push_str(&format!(" AND x.target_type = {}", sql.text(tt)));
    }
    let t2 = sql.text(tenant);
    let (rowid, rid_index) = (by_rowid(runner.dialect()), rid_index(runner.dialect(), "idx_reference"));
    sql.text = format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r{rowid} {CURRENT_JOIN} WHERE r.tenant = {t2} AND r.deleted = FALSE \
         AND r.rid IN (SELECT r2.rid FROM idx_reference x{rid_index} JOIN resources r2 ON {on} WHERE {cond}) \
         ORDER BY r.rid LIMIT {MAX_INCLUDED}",
        on = reference_target(runner.dialect(), "r2", &t)
    );
    let rows = runner.rows(&sql, &RESOURCE_TYPES).await?;
    Ok(rows.iter().filter_map(|r| resource_row(r)).collect())
}

/// The resources that point at `sources` through a revinclude's parameter.
async fn revinclude_sources(
    runner: &dyn Runner,
    tenant: &str,
    inc: &fhir::search::query::Include,
    targets: &[(i64, crate::ResourceVersion)],
) -> Result<Vec<(i64, crate::ResourceVersion)>> {
    let relevant: Vec<&crate::ResourceVersion> = targets
        .iter()
        .map(|(_, v)| v)
        .filter(|v| inc.target_type.as_deref().is_none_or(|t| t == v.resource_type))
        .collect();
    if relevant.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let t = sql.text(tenant);
    let pairs = relevant
        .iter()
        .map(|v| {
            let rt = sql.text(&v.resource_type);
            let id = sql.text(&v.id);
            format!("(x.target_type = {rt} AND x.target_id = {id})")
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let mut cond = format!("x.tenant = {t} AND ({pairs})");
    if let Some(pids) = include_keys(runner.keys(), inc) {
        cond.push_str(&format!(" AND {}", sql.keys_in("x.pid", &pids)));
    }
    let t2 = sql.text(tenant);
    let rowid = by_rowid(runner.dialect());
    sql.text = format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r{rowid} {CURRENT_JOIN} WHERE r.tenant = {t2} AND r.deleted = FALSE \
         AND r.rid IN (SELECT x.rid FROM idx_reference x WHERE {cond}) ORDER BY r.rid LIMIT {MAX_INCLUDED}"
    );
    let rows = runner.rows(&sql, &RESOURCE_TYPES).await?;
    Ok(rows.iter().filter_map(|r| resource_row(r)).collect())
}

/// Ids of the live resources of a type that pass the filters (conditional interactions).
pub(crate) async fn find(
    runner: &dyn Runner,
    tenant: &str,
    resource_type: &str,
    filters: &[Filter],
    limit: usize,
) -> Result<Vec<String>> {
    let mut b = Builder::new(runner.dialect(), tenant, runner.keys());
    b.probe_has = wide_has(runner, tenant, filters).await?;
    let Selection { from, rid } = b.selection("r", Some(resource_type), &[], filters)?;
    b.sql.text = format!("{}SELECT r.id {from} ORDER BY {rid} LIMIT {limit}", b.with());
    let rows = runner.rows(&b.sql, &[KeyType::Text]).await?;
    Ok(rows.iter().filter_map(|r| r.first().and_then(text_of)).collect())
}

/// Live resources after `rid`, across tenants, for re-indexing.
pub(crate) fn scan_sql(after: i64, limit: usize) -> Sql {
    let mut sql = Sql::default();
    let a = sql.int(after);
    sql.text = format!(
        "SELECT {RESOURCE_COLUMNS}, r.tenant FROM resources r {CURRENT_JOIN} WHERE r.rid > {a} AND r.deleted = FALSE \
         ORDER BY r.rid LIMIT {limit}"
    );
    sql
}

pub(crate) async fn scan(runner: &dyn Runner, after: i64, limit: usize) -> Result<Vec<crate::Stored>> {
    let sql = scan_sql(after, limit);
    let mut types = RESOURCE_TYPES.to_vec();
    types.push(KeyType::Text);
    let rows = runner.rows(&sql, &types).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (rid, version) = resource_row(r)?;
            Some(crate::Stored { rid, tenant: text_of(r.get(8)?)?, version })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let c = Cursor {
            backwards: true,
            keys: vec![KeyValue::Text("a".into()), KeyValue::Null, KeyValue::Int(-5), KeyValue::Real(1.5)],
            rid: 42,
        };
        assert_eq!(Cursor::decode(&c.encode(), 4).expect("decodes"), c);
        assert!(Cursor::decode(&c.encode(), 3).is_err());
        assert!(Cursor::decode("garbage", 0).is_err());
    }

    #[test]
    fn prefix_search_is_a_range() {
        let keys = Keys::default();
        let mut b = Builder::new(Dialect::Sqlite, "t", &keys);
        let s = b.prefix_range("x.normalized", "smi");
        assert_eq!(s, "(x.normalized >= $1 AND x.normalized < $2)");
        assert!(matches!(&b.sql.params[1], Param::Text(t) if t == "smj"));
    }
}
