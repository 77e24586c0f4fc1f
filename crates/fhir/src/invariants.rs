//! FHIRPath invariants: the `constraint`s of the R4 ElementDefinitions, checked as part of
//! [`crate::validate`].
//!
//! Each element of a resource (and the resource itself) is checked against the invariants of
//! its element definition and of its type, as the snapshots give them. An invariant holds when
//! its expression, evaluated with the element as focus (`%context`, `$this`), the nearest
//! enclosing resource as `%resource` (a contained resource, a `Bundle.entry.resource`…) and
//! that resource's container as `%rootResource`, is `true` or empty. A false `error` invariant
//! is an error issue (code `invariant`, "Constraint failed: key: human", at the element's
//! FHIRPath); a false `warning` invariant is a warning, reported only when
//! [`crate::validate::Options::warnings`] asks for warnings (`$validate` does; writes do not).
//!
//! Validation runs on every write and import, so the cost is kept small: only invariants of
//! elements that are present are evaluated (which elements have any is worked out once); each
//! element's expressions are parsed once, the first time an instance of it is seen; guards
//! read from each expression's form settle most invariants from the JSON keys alone
//! (`dataAbsentReason.empty() or value.empty()` holds without a `dataAbsentReason`,
//! `code.empty() or system.exists()` with a `system`); the rest are evaluated over the JSON as
//! it is (nothing is copied). The hottest invariants are checked natively (below). On the
//! Synthea set, validation takes about 2.5 % longer with invariants than without (see
//! `docs/benchmarks.md`).
//!
//! Of the 239 distinct invariants of R4 (237 keys: `inv-1` names three), 224 are interpreted
//! by the FHIRPath engine (two of them in a corrected form), 14 are checked natively in Rust
//! and one is skipped:
//!
//! | invariant | how | why |
//! |---|---|---|
//! | ele-1 | native | on every element of every type (`hasValue() or (children().count() > id.count())`): an object needs a child besides `id`, a primitive a value or an extension |
//! | ext-1 | native | on every extension: a value[x] or nested extensions, not both |
//! | dom-2 | native | on every resource: a contained resource contains no resources |
//! | dom-3 | native | on every resource: each contained resource is referenced (`#id` in a Reference, canonical, uri or url) from the resource, or refers to its container (`#`); the expression walks `descendants()` of the whole resource four times, the validator already sees every reference |
//! | dom-4 | native | on every resource: no `meta.versionId` / `meta.lastUpdated` in a contained resource |
//! | dom-5 | native | on every resource: no `meta.security` in a contained resource |
//! | dom-6 | native | (warning) on every resource: a narrative |
//! | ref-1 | native | on every Reference: a `#id` reference names a contained resource. R4's expression also refuses `#` alone, the reference back to the container that dom-3 asks for (R5 allows it) |
//! | txt-1, txt-2 | native | `htmlChecks()` is the XHTML rules of the narrative: the `xhtml` primitive check, and some non-whitespace content |
//! | per-1 | native | on every Period (hot: most clinical resources carry one): start <= end, with FHIRPath's comparison of partial dates |
//! | bdl-3, bdl-4 | native | entry.request / entry.response as the Bundle type requires: one evaluation of `%resource.type` per entry otherwise |
//! | bdl-7 | native | unique fullUrl (unless history, or other versions): `isDistinct()` is quadratic in the number of entries |
//! | con-3 | skipped | (warning) known wrong in R4: `category.select($this='problem-list-item')` compares a CodeableConcept with a string, so every Condition with a category and no clinicalStatus fails it |
//! | que-7 | corrected | `answer is Boolean` names the System type, which no FHIR `answerBoolean` is; R4B/R5 read `answer is boolean` |
//! | tim-9 | corrected | `when in (…)` needs one `when`, but `Timing.repeat.when` repeats; R5 reads `when.select($this in (…)).allFalse()` |
//!
//! The lists below are the source of the table; a unit test keeps them to real R4 constraints.

use std::sync::{LazyLock, OnceLock};

use serde_json::{Map, Value};

use crate::definitions::{FastMap, FastSet, NodeId, definitions};
use crate::fhirpath::{self, Context, Expression, Item, Temporal};
use crate::model::Constraint;
use crate::outcome::Issue;

/// Invariants the validator checks in Rust rather than by interpreting their expression,
/// with what the native check does.
pub const NATIVE: &[(&str, &str)] = &[
    ("ele-1", "an object has a child other than id; a primitive has a value or an extension"),
    ("ext-1", "an extension has a value[x] or nested extensions, not both"),
    ("dom-2", "a contained resource contains no resources"),
    ("dom-3", "each contained resource is referenced from its container (#id) or refers to it (#)"),
    ("dom-4", "a contained resource has no meta.versionId or meta.lastUpdated"),
    ("dom-5", "a contained resource has no meta.security"),
    ("dom-6", "a DomainResource has a narrative (warning)"),
    ("ref-1", "a local reference names a contained resource; '#' alone is the container (R4's expression refuses it)"),
    ("txt-1", "the narrative passes the xhtml checks (what htmlChecks() runs)"),
    ("txt-2", "the narrative has some non-whitespace content"),
    ("per-1", "a Period's start is not after its end"),
    ("bdl-3", "entry.request is there exactly for batch, transaction and history Bundles"),
    ("bdl-4", "entry.response is there exactly for batch-response, transaction-response and history Bundles"),
    ("bdl-7", "fullUrl (with meta.versionId) is unique in a Bundle that is not a history"),
];

/// Invariants that are not evaluated, with the reason.
pub const SKIPPED: &[(&str, &str)] = &[(
    "con-3",
    "known wrong in R4: category.select($this='problem-list-item') compares a CodeableConcept with a string, \
     so every Condition with a category and no clinicalStatus fails it (a warning)",
)];

/// Invariants whose R4 expression is wrong and is evaluated in a corrected form: key, the R4
/// expression, the one evaluated, and where the correction comes from.
pub const CORRECTED: &[(&str, &str, &str, &str)] = &[
    (
        "que-7",
        "operator = 'exists' implies (answer is Boolean)",
        "operator = 'exists' implies (answer is boolean)",
        "R4B and R5: the FHIR type boolean, not System.Boolean",
    ),
    (
        "tim-9",
        "offset.empty() or (when.exists() and ((when in ('C' | 'CM' | 'CD' | 'CV')).not()))",
        "offset.empty() or (when.exists() and when.select($this in ('C' | 'CM' | 'CD' | 'CV')).allFalse())",
        "R5: when repeats, so each value is tested",
    ),
];

fn is_native(key: &str) -> bool {
    NATIVE.iter().any(|(k, _)| *k == key)
}

fn is_skipped(key: &str) -> bool {
    SKIPPED.iter().any(|(k, _)| *k == key)
}

/// The expression evaluated for an interpreted constraint.
fn expression_of(c: &Constraint) -> &str {
    CORRECTED
        .iter()
        .find(|(k, r4, _, _)| *k == c.key && *r4 == c.expression)
        .map_or(&c.expression, |(_, _, fixed, _)| fixed)
}

/// One compiled invariant.
pub(crate) struct Rule {
    key: &'static str,
    message: String,
    expr: Expression,
    /// Elements whose absence settles the invariant as holding (see
    /// [`Expression::absence_guards`]): looked for in the JSON before evaluating.
    absent: Box<[Box<str>]>,
    /// Elements whose presence makes the invariant true.
    present: Box<[Box<str>]>,
}

/// The interpreted invariants of one element, by severity.
#[derive(Default)]
pub(crate) struct Rules {
    errors: Vec<Rule>,
    warnings: Vec<Rule>,
}

impl Rules {
    pub(crate) fn is_empty(&self, warnings: bool) -> bool {
        self.errors.is_empty() && (!warnings || self.warnings.is_empty())
    }
}

/// The interpreted invariants of every element: which elements have any (worked out once, so
/// the walk skips the others with one lookup), and their compiled rules (made the first time
/// an instance of the element is seen).
pub(crate) struct Table {
    cells: Vec<OnceLock<Rules>>,
    /// Per node: bit 0 for error invariants, bit 1 for warning ones.
    wanted: Vec<u8>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let n = definitions().node_count();
    let wanted = (0..n)
        .map(|node| chosen(node).iter().fold(0, |bits, c| bits | if c.severity == "error" { 1 } else { 2 }))
        .collect();
    Table { cells: (0..n).map(|_| OnceLock::new()).collect(), wanted }
});

/// The severities evaluated: errors, and warnings when they are reported.
pub(crate) fn mask(warnings: bool) -> u8 {
    if warnings { 3 } else { 1 }
}

pub(crate) fn table() -> &'static Table {
    &TABLE
}

impl Table {
    /// Whether the element has interpreted invariants to evaluate, of the severities in `mask`
    /// ([`mask`]).
    #[inline]
    pub(crate) fn wanted(&self, node: NodeId, mask: u8) -> bool {
        self.wanted.get(node).is_some_and(|&bits| bits & mask != 0)
    }

    fn rules(&self, node: NodeId) -> Option<&Rules> {
        self.cells.get(node).map(|cell| cell.get_or_init(|| compile(node)))
    }
}

fn interpreted(node: NodeId) -> impl Iterator<Item = &'static Constraint> {
    definitions().constraints(node).iter().filter(|c| !is_native(&c.key) && !is_skipped(&c.key))
}

/// The invariants evaluated on an element. One that reuses another's definition
/// (`Questionnaire.item.item`) has that element's invariants, unless it states its own
/// (`TestScript.test.action.operation`).
fn chosen(node: NodeId) -> Vec<&'static Constraint> {
    let list: Vec<&Constraint> = interpreted(node).collect();
    match definitions().node(node).reuse {
        Some(source) if list.is_empty() => interpreted(source).collect(),
        _ => list,
    }
}

fn compile(node: NodeId) -> Rules {
    let mut rules = Rules::default();
    for c in chosen(node) {
        // Every R4 expression parses (tests/fhirpath_definitions.rs); one that did not could
        // not be checked at all.
        let Ok(expr) = fhirpath::parse(expression_of(c)) else { continue };
        let absent = expr.absence_guards().into_iter().map(String::into_boxed_str).collect();
        let present = expr.presence_guards().into_iter().map(String::into_boxed_str).collect();
        let message = format!("Constraint failed: {}: {}", c.key, c.human);
        let rule = Rule { key: c.key.as_str(), message, expr, absent, present };
        if c.severity == "error" { rules.errors.push(rule) } else { rules.warnings.push(rule) }
    }
    rules
}

/// Whether an object has an element, under any of its JSON names (`name`, `_name`, a
/// choice's `nameQuantity`…; a longer name that merely starts the same counts too, which only
/// costs an evaluation). One pass over the keys, which beats hashing for objects this small.
fn has(obj: &Map<String, Value>, name: &str) -> bool {
    let name = name.as_bytes();
    let Some(&first) = name.first() else { return false };
    obj.keys().any(|k| {
        let k = k.as_bytes();
        let k = if k.first() == Some(&b'_') { &k[1..] } else { k };
        k.first() == Some(&first)
            && k.len() >= name.len()
            && &k[..name.len()] == name
            && k.get(name.len()).is_none_or(|c| c.is_ascii_uppercase())
    })
}

/// Whether the guards settle a rule as holding for this object, without evaluating it.
fn settled(rule: &Rule, obj: &Map<String, Value>) -> bool {
    rule.absent.iter().any(|g| !has(obj, g)) || rule.present.iter().any(|g| has(obj, g))
}

/// Where an element is evaluated: `%resource` and `%rootResource`.
#[derive(Clone)]
pub(crate) struct Scope<'v> {
    pub resource: Item<'v>,
    pub root: Item<'v>,
}

/// Evaluates the invariants of the elements `nodes` (an element's own and its type's) on one
/// value, reporting those that fail.
pub(crate) fn check<'v>(
    nodes: &[NodeId],
    focus: Item<'v>,
    scope: &Scope<'v>,
    warnings: bool,
    at: &dyn Fn() -> String,
    issues: &mut Vec<Issue>,
) {
    let table = table();
    let obj = focus.json().and_then(Value::as_object);
    let mut ctx = None;
    for &node in nodes {
        let Some(rules) = table.rules(node).filter(|r| !r.is_empty(warnings)) else { continue };
        let warned = if warnings { rules.warnings.as_slice() } else { &[] };
        for (rule, error) in rules.errors.iter().map(|r| (r, true)).chain(warned.iter().map(|r| (r, false))) {
            if obj.is_some_and(|obj| settled(rule, obj)) {
                #[cfg(test)]
                if tests::VERIFY_GUARDS.get() {
                    let ctx = Context::element(focus.clone(), scope.resource.clone(), scope.root.clone());
                    if let Ok(Some(false)) = rule.expr.evaluate_boolean(&ctx) {
                        issues.push(
                            Issue::error("guard", format!("{} was settled by its guards but fails", rule.key)).at(at()),
                        );
                    }
                }
                continue;
            }
            let ctx =
                ctx.get_or_insert_with(|| Context::element(focus.clone(), scope.resource.clone(), scope.root.clone()));
            match rule.expr.evaluate_boolean(ctx) {
                Ok(Some(false)) => {
                    let issue = if error {
                        Issue::error("invariant", rule.message.as_str())
                    } else {
                        Issue::warning("invariant", rule.message.as_str())
                    };
                    issues.push(issue.at(at()));
                }
                Ok(_) => {}
                // Only malformed input (a list where the definitions allow one value, which
                // the walk reports) makes an R4 invariant fail to evaluate.
                Err(e) if warnings => issues
                    .push(Issue::warning("invariant", format!("Constraint not evaluated: {}: {e}", rule.key)).at(at())),
                Err(_) => {}
            }
        }
    }
}

/// The issue for a natively checked invariant that failed (`severity` as the definitions give it).
pub(crate) fn failed(key: &str) -> Issue {
    static HUMAN: LazyLock<FastMap<&'static str, (&'static str, bool)>> = LazyLock::new(|| {
        let defs = definitions();
        let mut map = FastMap::default();
        for t in defs.types() {
            for e in &t.elements {
                for c in &e.constraints {
                    map.entry(c.key.as_str()).or_insert((c.human.as_str(), c.severity == "error"));
                }
            }
        }
        map
    });
    let (human, error) = HUMAN.get(key).copied().unwrap_or(("", true));
    let message = format!("Constraint failed: {key}: {human}");
    if error { Issue::error("invariant", message) } else { Issue::warning("invariant", message) }
}

// ---------------------------------------------------------------- native checks

/// ele-1 for an object: a child besides `id` (an empty object, refused for its JSON form,
/// is not reported again).
pub(crate) fn has_children(obj: &Map<String, Value>) -> bool {
    obj.len() != 1 || obj.keys().next().is_none_or(|k| k != "id")
}

/// per-1: a Period's start is not after its end. Dates of different precision that overlap
/// compare as unknown (FHIRPath's `<=` is then empty), which satisfies the invariant.
pub(crate) fn period_ordered(obj: &Map<String, Value>) -> bool {
    // A Period has at most a few keys: a scan beats hashing twice.
    let (mut start, mut end) = (None, None);
    for (k, v) in obj {
        match k.as_str() {
            "start" => start = v.as_str(),
            "end" => end = v.as_str(),
            _ => {}
        }
    }
    let (Some(start), Some(end)) = (start, end) else { return true };
    // The usual case, two values written alike (same precision, same offset), compares as text.
    if let Some(ordered) = same_form_order(start, end) {
        return ordered;
    }
    match (Temporal::parse_datetime(start), Temporal::parse_datetime(end)) {
        (Some(s), Some(e)) => s.compare(&e, false) != Some(std::cmp::Ordering::Greater),
        // A malformed date is reported by the primitive check.
        _ => true,
    }
}

/// `start <= end` for two dateTimes of the same length and, with a time, the same zone
/// (`Z`, or the same `±hh:mm`): their text orders as their instants do. `None` when they
/// differ in form.
fn same_form_order(start: &str, end: &str) -> Option<bool> {
    let (a, b) = (start.as_bytes(), end.as_bytes());
    let n = a.len();
    if n != b.len() {
        return None;
    }
    // `YYYY`, `YYYY-MM`, `YYYY-MM-DD`: a date of one precision.
    let alike = n <= 10
        || (a[n - 1] == b'Z' && b[n - 1] == b'Z')
        || (n > 16 && matches!(a[n - 6], b'+' | b'-') && a[n - 6..] == b[n - 6..]);
    alike.then(|| a <= b)
}

/// txt-2: the narrative has text that is not whitespace (or an image).
pub(crate) fn narrative_has_content(div: &str) -> bool {
    let mut rest = div;
    while let Some(lt) = rest.find('<') {
        if !rest[..lt].trim().is_empty() {
            return true;
        }
        let tag = &rest[lt..];
        if tag.get(..4).is_some_and(|t| t.eq_ignore_ascii_case("<img")) {
            return true;
        }
        match tag.find('>') {
            Some(gt) => rest = &tag[gt + 1..],
            None => return false,
        }
    }
    !rest.trim().is_empty()
}

/// dom-4 and dom-5 on a contained resource: the invariants it breaks.
pub(crate) fn contained_meta(obj: &Map<String, Value>) -> impl Iterator<Item = &'static str> {
    let meta = obj.get("meta").and_then(Value::as_object);
    let has = |k: &str| meta.is_some_and(|m| m.contains_key(k));
    let dom4 = has("versionId") || has("lastUpdated");
    let dom5 = has("security");
    [dom4.then_some("dom-4"), dom5.then_some("dom-5")].into_iter().flatten()
}

/// A Bundle invariant that failed: its key and, for one entry's failure, the entry's index.
pub(crate) struct BundleFailure {
    pub key: &'static str,
    pub entry: usize,
}

/// bdl-3, bdl-4 and bdl-7.
pub(crate) fn bundle(obj: &Map<String, Value>) -> Vec<BundleFailure> {
    let mut out = Vec::new();
    let (Some(kind), Some(entries)) =
        (obj.get("type").and_then(Value::as_str), obj.get("entry").and_then(Value::as_array))
    else {
        return out;
    };
    let needs_request = matches!(kind, "batch" | "transaction" | "history");
    let needs_response = matches!(kind, "batch-response" | "transaction-response" | "history");
    let mut seen: FastSet<(&str, Option<&str>)> = FastSet::default();
    for (i, entry) in entries.iter().enumerate() {
        let Some(e) = entry.as_object() else { continue };
        if e.contains_key("request") != needs_request {
            out.push(BundleFailure { key: "bdl-3", entry: i });
        }
        if e.contains_key("response") != needs_response {
            out.push(BundleFailure { key: "bdl-4", entry: i });
        }
        if kind != "history"
            && let Some(url) = e.get("fullUrl").and_then(Value::as_str)
        {
            let version = e.get("resource").and_then(|r| r.get("meta")).and_then(|m| m.get("versionId"));
            if !seen.insert((url, version.and_then(Value::as_str))) {
                out.push(BundleFailure { key: "bdl-7", entry: i });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Severity;
    use crate::validate::{Options, validate};
    use serde_json::json;

    thread_local! {
        /// Evaluate the invariants that guards settle too, and report any that fails.
        pub(super) static VERIFY_GUARDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// The invariant issues of a resource (checking on the way that guards settle nothing
    /// that fails).
    fn invariant_issues(v: &Value, warnings: bool) -> Vec<Issue> {
        let options = Options { warnings, ..Options::default() };
        VERIFY_GUARDS.set(true);
        let issues = validate(v, &options);
        VERIFY_GUARDS.set(false);
        assert!(!issues.iter().any(|i| i.code == "guard"), "{v}: {issues:?}");
        issues.into_iter().filter(|i| i.code == "invariant").collect()
    }

    fn assert_fails(v: Value, key: &str, at: &str) {
        let issues = invariant_issues(&v, false);
        assert!(
            issues.iter().any(|i| i.severity == Severity::Error
                && i.diagnostics.starts_with(&format!("Constraint failed: {key}: "))
                && i.expression.first().is_some_and(|e| e == at)),
            "expected {key} to fail at {at} for {v}, got {issues:?}"
        );
    }

    /// No invariant error, and (asking for warnings) none that could not be evaluated.
    fn assert_holds(v: Value) {
        let issues: Vec<Issue> = invariant_issues(&v, true)
            .into_iter()
            .filter(|i| i.is_error() || i.diagnostics.starts_with("Constraint not evaluated"))
            .collect();
        assert!(issues.is_empty(), "{v}: {issues:?}");
    }

    #[test]
    fn the_lists_name_real_r4_constraints() {
        let defs = definitions();
        let all: Vec<&Constraint> =
            defs.types().iter().flat_map(|t| t.elements.iter().flat_map(|e| e.constraints.iter())).collect();
        for (key, _) in NATIVE.iter().chain(SKIPPED) {
            assert!(all.iter().any(|c| c.key == *key), "{key} is no R4 constraint");
        }
        for (key, r4, fixed, _) in CORRECTED {
            assert!(all.iter().any(|c| c.key == *key && c.expression == *r4), "{key}: the R4 text differs");
            fhirpath::parse(fixed).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        let mut distinct: Vec<(&str, &str)> = all.iter().map(|c| (c.key.as_str(), c.expression.as_str())).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let native = distinct.iter().filter(|(k, _)| is_native(k)).count();
        let skipped = distinct.iter().filter(|(k, _)| is_skipped(k)).count();
        let interpreted = distinct.len() - native - skipped;
        eprintln!(
            "{} invariants: {interpreted} interpreted ({} corrected), {native} native, {skipped} skipped",
            distinct.len(),
            CORRECTED.len()
        );
        assert_eq!((distinct.len(), interpreted, native, skipped), (239, 224, 14, 1));
    }

    #[test]
    fn patient_contact_needs_details() {
        let p = json!({"resourceType": "Patient", "contact": [{"name": {"family": "x"}}, {"gender": "male"}]});
        assert_fails(p, "pat-1", "Patient.contact[1]");
        assert_holds(json!({"resourceType": "Patient", "contact": [{"organization": {"display": "x"}}]}));
    }

    #[test]
    fn observation_value_and_data_absent_reason_exclude_each_other() {
        let o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueString": "a", "dataAbsentReason": {"text": "unknown"}});
        assert_fails(o, "obs-6", "Observation");
    }

    #[test]
    fn bundle_full_urls_are_unique() {
        let entry = |v: Option<&str>| {
            let mut r = json!({"resourceType": "Patient"});
            if let Some(v) = v {
                r["meta"] = json!({"versionId": v});
            }
            json!({"fullUrl": "urn:uuid:9d7e5b0e-8f43-4d43-bb9a-12a06e7b0c31", "resource": r})
        };
        let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [entry(None), entry(None)]});
        assert_fails(b.clone(), "bdl-7", "Bundle");
        let issues = invariant_issues(&b, false);
        assert_eq!(issues[0].expression, ["Bundle", "Bundle.entry[1].fullUrl"]);
        // Other versions of one resource, and history Bundles, may repeat a fullUrl.
        assert_holds(
            json!({"resourceType": "Bundle", "type": "collection", "entry": [entry(Some("1")), entry(Some("2"))]}),
        );
        let mut history = json!({"resourceType": "Bundle", "type": "history", "entry": [entry(None), entry(None)]});
        for e in history["entry"].as_array_mut().into_iter().flatten() {
            e["request"] = json!({"method": "PUT", "url": "Patient/1"});
            e["response"] = json!({"status": "200"});
        }
        assert_holds(history);
    }

    #[test]
    fn bundle_requests_follow_the_type() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Patient"}}]});
        assert_fails(b, "bdl-3", "Bundle.entry[1]");
        let c = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient"}, "response": {"status": "201"}}]});
        assert_fails(c, "bdl-4", "Bundle.entry[0]");
        // An interpreted Bundle invariant: total only in a searchset or history.
        assert_fails(json!({"resourceType": "Bundle", "type": "collection", "total": 1}), "bdl-1", "Bundle");
    }

    #[test]
    fn contained_resources_must_be_referenced() {
        let unreferenced =
            json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o"}]});
        assert_fails(unreferenced, "dom-3", "Patient.contained[0]");
        // Referenced by `#id` from the resource, from a sibling contained resource, or
        // referring to the container with `#`.
        assert_holds(
            json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "name": "O"}],
            "managingOrganization": {"reference": "#o"}}),
        );
        assert_holds(json!({"resourceType": "Patient", "id": "p", "contained": [
            {"resourceType": "Organization", "id": "o", "name": "O", "partOf": {"reference": "#o2"}},
            {"resourceType": "Organization", "id": "o2", "name": "O2"},
            {"resourceType": "Group", "id": "g", "type": "person", "actual": true, "member": [{"entity": {"reference": "#"}}]}],
            "managingOrganization": {"reference": "#o"}}));
        // A canonical naming a contained resource counts too.
        assert_holds(json!({"resourceType": "Questionnaire", "status": "draft",
            "contained": [{"resourceType": "ValueSet", "id": "vs", "status": "draft"}],
            "item": [{"linkId": "1", "type": "choice", "answerValueSet": "#vs"}]}));
        let one_of_two = json!({"resourceType": "Patient", "contained": [
            {"resourceType": "Organization", "id": "o", "name": "O"}, {"resourceType": "Organization", "id": "stray", "name": "S"}],
            "managingOrganization": {"reference": "#o"}});
        assert_fails(one_of_two.clone(), "dom-3", "Patient.contained[1]");
        assert_eq!(invariant_issues(&one_of_two, false).len(), 1);
        let meta = json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "name": "O",
            "meta": {"versionId": "1", "security": [{"code": "R"}]}}], "managingOrganization": {"reference": "#o"}});
        assert_fails(meta.clone(), "dom-4", "Patient.contained[0]");
        assert_fails(meta, "dom-5", "Patient.contained[0]");
    }

    #[test]
    fn invariants_of_contained_resources_see_their_own_resource() {
        // obs-7 reads %resource.code: inside a contained Observation that is the Observation.
        let p = json!({"resourceType": "Patient", "contained": [{"resourceType": "Observation", "id": "o",
            "status": "final", "code": {"coding": [{"system": "urn:s", "code": "c"}]}, "valueString": "x",
            "component": [{"code": {"coding": [{"system": "urn:s", "code": "c"}]}}]}],
            "link": [{"other": {"reference": "#o"}, "type": "seealso"}]});
        assert_fails(p, "obs-7", "Patient.contained[0]");
    }

    #[test]
    fn every_element_needs_a_value_or_children() {
        assert_fails(json!({"resourceType": "Patient", "name": [{"id": "n"}]}), "ele-1", "Patient.name[0]");
        assert_fails(json!({"resourceType": "Patient", "_birthDate": {"id": "b"}}), "ele-1", "Patient._birthDate");
        assert_fails(
            json!({"resourceType": "Patient", "name": [{"given": ["a", null], "_given": [null, {"id": "g"}]}]}),
            "ele-1",
            "Patient.name[0]._given[1]",
        );
        assert_holds(json!({"resourceType": "Patient", "birthDate": "2000-01-01", "_birthDate": {"id": "b"}}));
    }

    #[test]
    fn period_start_is_not_after_its_end() {
        let at = |start: &str, end: &str| {
            json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                "period": {"start": start, "end": end}})
        };
        assert_fails(at("2020-02-01", "2020-01-31"), "per-1", "Encounter.period");
        assert_fails(at("2020-01-01T10:00:00Z", "2020-01-01T09:59:59Z"), "per-1", "Encounter.period");
        assert_holds(at("2020-01-01T10:00:00+02:00", "2020-01-01T09:00:00Z"));
        // Overlapping precisions compare as unknown.
        assert_holds(at("2020-01", "2020-01-15"));
        // Written alike, compared as text; written differently, as instants.
        assert_holds(at("2020-01-01T10:00:00-04:00", "2020-01-01T10:00:00-04:00"));
        assert_fails(at("2020-01-01T10:00:01-04:00", "2020-01-01T10:00:00-04:00"), "per-1", "Encounter.period");
        assert_fails(at("2020-01-01T10:00:00-05:00", "2020-01-01T10:00:00-04:00"), "per-1", "Encounter.period");
        assert_holds(at("2020-01-01T10:00:00-04:00", "2020-01-01T10:00:00-05:00"));
        assert_holds(at("2020-01-01", "2020-01-01T00:00:00Z"));
    }

    #[test]
    fn narrative_content() {
        let with = |div: &str| json!({"resourceType": "Basic", "code": {"text": "x"}, "text": {"status": "generated", "div": div}});
        assert_fails(with("<div xmlns=\"http://www.w3.org/1999/xhtml\"> <p/> </div>"), "txt-2", "Basic.text.div");
        assert_holds(with("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a</p></div>"));
        assert_holds(with("<div xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"x.png\"/></div>"));
    }

    #[test]
    fn warnings_only_when_asked() {
        let q = json!({"resourceType": "Questionnaire", "status": "draft", "name": "lower case",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">q</div>"}});
        assert_eq!(invariant_issues(&q, false), vec![]);
        let warned = invariant_issues(&q, true);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert_eq!(warned[0].severity, Severity::Warning);
        assert!(warned[0].diagnostics.starts_with("Constraint failed: que-0: "), "{warned:?}");
        assert_eq!(warned[0].expression, ["Questionnaire"]);
        // dom-6, natively: a resource without narrative.
        let bare = json!({"resourceType": "Questionnaire", "status": "draft"});
        let warned = invariant_issues(&bare, true);
        assert!(warned.iter().any(|i| i.diagnostics.starts_with("Constraint failed: dom-6: ")), "{warned:?}");
        assert_eq!(invariant_issues(&bare, false), vec![]);
    }

    #[test]
    fn data_type_and_nested_element_invariants() {
        // qty-3 on a Quantity of a choice element; a backbone element's own invariant.
        let o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 1, "code": "mg"}, "referenceRange": [{"text": "x"}, {"appliesTo": [{"text": "y"}]}]});
        assert_fails(o.clone(), "qty-3", "Observation.valueQuantity");
        assert_fails(o, "obs-3", "Observation.referenceRange[1]");
        // An element's own invariant (org-3 on Organization.telecom).
        assert_fails(
            json!({"resourceType": "Organization", "name": "o", "telecom": [{"system": "phone", "value": "1", "use": "home"}]}),
            "org-3",
            "Organization.telecom[0]",
        );
        // Nested Questionnaire items take the item invariants (contentReference).
        let q = json!({"resourceType": "Questionnaire", "status": "draft", "item": [{"linkId": "1", "type": "group",
            "item": [{"linkId": "1.1", "type": "group"}]}]});
        assert_fails(q, "que-1", "Questionnaire.item[0].item[0]");
    }

    #[test]
    fn corrected_invariants_accept_valid_data() {
        assert_holds(json!({"resourceType": "Questionnaire", "status": "draft", "name": "Q",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">q</div>"},
            "item": [{"linkId": "1", "type": "boolean"}, {"linkId": "2", "type": "string",
            "enableWhen": [{"question": "1", "operator": "exists", "answerBoolean": true}]}]}));
        let q = json!({"resourceType": "Questionnaire", "status": "draft", "item": [{"linkId": "1", "type": "string",
            "enableWhen": [{"question": "1", "operator": "exists", "answerString": "x"}]}]});
        assert_fails(q, "que-7", "Questionnaire.item[0].enableWhen[0]");
        let timing = |when: Value| {
            json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                "medicationCodeableConcept": {"text": "m"}, "subject": {"reference": "Patient/1"},
                "dosageInstruction": [{"timing": {"repeat": {"when": when, "offset": 30}}}]})
        };
        assert_holds(timing(json!(["ACM", "ACV"])));
        assert_fails(timing(json!(["ACM", "CV"])), "tim-9", "MedicationRequest.dosageInstruction[0].timing.repeat");
    }

    /// Counts, by constraint key, the invariant issues of these resources.
    fn survey<'r>(
        resources: impl Iterator<Item = (String, &'r Value)>,
        warnings: bool,
    ) -> (usize, std::collections::BTreeMap<String, Vec<String>>) {
        let options = Options { warnings, ..Options::default() };
        let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut n = 0;
        for (name, r) in resources {
            n += 1;
            let issues = validate(r, &options);
            let unsound: Vec<&Issue> = issues.iter().filter(|i| i.code == "guard").collect();
            assert!(unsound.is_empty(), "{name}: {unsound:?}");
            for i in issues.into_iter().filter(|i| i.code == "invariant") {
                let key = i.diagnostics.split(": ").nth(1).unwrap_or("?").to_owned();
                let key = if i.is_error() { key } else { format!("{key} (warning)") };
                by_key.entry(key).or_default().push(format!("{name} at {:?}", i.expression));
            }
        }
        (n, by_key)
    }

    fn report(by_key: &std::collections::BTreeMap<String, Vec<String>>) -> String {
        by_key.iter().map(|(k, v)| format!("{k}: {} (e.g. {})", v.len(), v[0])).collect::<Vec<_>>().join("\n")
    }

    /// No false positives: the Synthea Bundles and the FHIRPath suite's inputs are valid FHIR, so
    /// no invariant fails on them (the spec's own conformance resources are checked by
    /// `validate::tests::the_specs_own_conformance_resources_are_valid`).
    #[test]
    fn real_data_breaks_no_invariant() {
        let synthea = crate::validate::tests::synthea_resources();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fhirpath-tests/input");
        let mut inputs = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
                inputs.push((path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), v));
            }
        }
        assert!(inputs.len() >= 8, "{}", inputs.len());
        let all = synthea
            .iter()
            .map(|(f, r)| {
                (
                    format!(
                        "{}: {}/{}",
                        f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                        r["resourceType"],
                        r["id"]
                    ),
                    r,
                )
            })
            .chain(inputs.iter().map(|(n, r)| (n.clone(), r)));
        VERIFY_GUARDS.set(true);
        let (n, found) = survey(all, true);
        VERIFY_GUARDS.set(false);
        let warnings: std::collections::BTreeMap<_, _> =
            found.iter().filter(|(k, _)| k.ends_with("(warning)")).collect();
        eprintln!(
            "{n} resources; warnings by invariant:\n{}",
            warnings.iter().map(|(k, v)| format!("{k}: {}", v.len())).collect::<Vec<_>>().join("\n")
        );
        let mut errors: std::collections::BTreeMap<String, Vec<String>> =
            found.into_iter().filter(|(k, _)| !k.ends_with("(warning)")).collect();
        // Two of the suite's inputs are fixtures made for FHIRPath tests, not valid FHIR, and
        // are caught: the CodeSystem repeats the code `chol-mass` (for `isDistinct()`), and
        // the container refers to its contained Organization, which has neither name nor
        // identifier, as "1" instead of "#1" (for `resolve()`).
        for (key, culprit) in [
            ("csd-1", "codesystem-example.json at [\"CodeSystem\"]"),
            ("dom-3", "patient-container-example.json at [\"Patient.contained[0]\"]"),
            ("org-1", "patient-container-example.json at [\"Patient.contained[0]\"]"),
        ] {
            assert_eq!(errors.remove(key), Some(vec![culprit.to_owned()]), "{key}");
        }
        assert!(errors.is_empty(), "invariant errors on valid data:\n{}", report(&errors));
    }

    /// The spec's own conformance resources (StructureDefinitions, ValueSets, CodeSystems,
    /// SearchParameters… 3,200 of them, rich in ElementDefinitions) break no error invariant,
    /// and no invariant that guards settle fails when evaluated anyway. Prints the warnings
    /// they raise, by invariant (how the skip and correction lists were checked).
    #[test]
    fn conformance_resources_break_no_invariant() {
        let all = crate::test_data::conformance_resources();
        VERIFY_GUARDS.set(true);
        let (n, found) = survey(all.iter().map(|(n, r)| (n.clone(), r)), true);
        VERIFY_GUARDS.set(false);
        eprintln!("{n} conformance resources:\n{}", report(&found));
        assert!(n > 3000, "{n}");
        let errors: Vec<&String> = found.keys().filter(|k| !k.ends_with("(warning)")).collect();
        assert!(errors.is_empty(), "{}", report(&found));
    }
}
