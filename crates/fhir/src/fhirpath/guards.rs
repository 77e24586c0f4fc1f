//! Absence guards: the elements of the focus whose absence settles a boolean expression as
//! true or empty, found from its form alone. `dataAbsentReason.empty() or value.empty()` holds
//! whenever the focus has no `dataAbsentReason` (or no `value`), so an invariant checker can
//! look for those names in the JSON and skip evaluating the expression when one is missing.
//!
//! The other way round, `code.empty() or system.exists()` holds whenever the focus has a
//! `system`: presence guards.
//!
//! The analysis is conservative: an expression it does not understand has no guards.

use super::ast::{BinOp, Call, Expr, Func};

/// Names of `$this`'s elements, any one of which being absent makes `e` true or empty.
pub(super) fn satisfied_without(e: &Expr) -> Vec<String> {
    match e {
        Expr::Binary(BinOp::Or, a, b) => union(satisfied_without(a), satisfied_without(b)),
        Expr::Binary(BinOp::And, a, b) => intersect(satisfied_without(a), satisfied_without(b)),
        // false implies x is true; empty implies x is true or empty.
        Expr::Binary(BinOp::Implies, a, b) => union(falsy_without(a), satisfied_without(b)),
        Expr::Call(c) => match (c.func, &c.target) {
            // Each of these is true for an empty input.
            (Func::Empty | Func::All | Func::AllTrue | Func::AllFalse | Func::IsDistinct, Some(t)) => {
                head(t).into_iter().collect()
            }
            (Func::Not, Some(t)) => falsy_without(t),
            _ => empty_without(e),
        },
        _ => empty_without(e),
    }
}

/// Names of `$this`'s elements, any one of which being present makes `e` true.
pub(super) fn true_with(e: &Expr) -> Vec<String> {
    match e {
        Expr::Binary(BinOp::Or, a, b) => union(true_with(a), true_with(b)),
        Expr::Binary(BinOp::Implies, _, b) => true_with(b),
        Expr::Call(c) => match (c.func, &c.target) {
            // `name.exists()`: one step from `$this`, so the element being there is enough.
            (Func::Exists, Some(Expr::Ident { name, type_name: false })) if c.args.is_empty() => vec![name.clone()],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Names whose absence makes `e` false or empty.
fn falsy_without(e: &Expr) -> Vec<String> {
    match e {
        Expr::Binary(BinOp::Or, a, b) => intersect(falsy_without(a), falsy_without(b)),
        Expr::Binary(BinOp::And, a, b) => union(falsy_without(a), falsy_without(b)),
        Expr::Call(c) => match (c.func, &c.target) {
            (Func::Exists | Func::HasValue, Some(t)) if c.args.is_empty() => head(t).into_iter().collect(),
            (Func::Not, Some(t)) => satisfied_without(t),
            _ => empty_without(e),
        },
        _ => empty_without(e),
    }
}

/// Names whose absence makes `e` empty (so, as a boolean, neither true nor false).
fn empty_without(e: &Expr) -> Vec<String> {
    match e {
        // A comparison with an empty side is empty.
        Expr::Binary(BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge, a, b) => {
            union(empty_without(a), empty_without(b))
        }
        Expr::Binary(BinOp::In, a, _) => empty_without(a),
        Expr::Is(t, _) => empty_without(t),
        Expr::Call(c) if is_scalar(c) => c.target.as_ref().map(empty_without).unwrap_or_default(),
        _ => head(e).into_iter().collect(),
    }
}

/// Single-input functions that give nothing for an empty input.
fn is_scalar(c: &Call) -> bool {
    matches!(
        c.func,
        Func::Matches
            | Func::MatchesFull
            | Func::StartsWith
            | Func::EndsWith
            | Func::Contains
            | Func::Substring
            | Func::ToInteger
            | Func::ToString
            | Func::Length
            | Func::Upper
            | Func::Lower
            | Func::IndexOf
            | Func::Replace
            | Func::ReplaceMatches
    )
}

/// The element of `$this` a path starts from, when the path yields nothing without it:
/// `component.code.where(…)` starts from `component`.
fn head(e: &Expr) -> Option<String> {
    match e {
        Expr::Ident { name, type_name: false } => Some(name.clone()),
        // `Observation.code` on an Observation is `code`; on anything else it is empty anyway.
        Expr::Member(target, name) if matches!(**target, Expr::This | Expr::Ident { type_name: true, .. }) => {
            Some(name.clone())
        }
        Expr::Member(target, _) | Expr::Indexer(target, _) | Expr::As(target, _) => head(target),
        Expr::Call(c) => match (&c.target, c.func) {
            (
                Some(t),
                Func::Where
                | Func::Select
                | Func::OfType
                | Func::As
                | Func::First
                | Func::Last
                | Func::Tail
                | Func::Skip
                | Func::Take
                | Func::Distinct
                | Func::Children
                | Func::Descendants
                | Func::Trace,
            ) => head(t),
            _ => None,
        },
        _ => None,
    }
}

fn union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    for n in b {
        if !a.contains(&n) {
            a.push(n);
        }
    }
    a
}

fn intersect(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.into_iter().filter(|n| b.contains(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    fn guards(text: &str) -> Vec<String> {
        let mut g = parse(text).expect("parses").absence_guards();
        g.sort();
        g
    }

    fn presence(text: &str) -> Vec<String> {
        let mut g = super::true_with(&parse(text).expect("parses").root);
        g.sort();
        g
    }

    #[test]
    fn presence_guards() {
        assert_eq!(presence("code.empty() or system.exists()"), ["system"]);
        assert_eq!(presence("x.where(y = 1).exists() or clinicalStatus.exists()"), ["clinicalStatus"]);
        assert_eq!(presence("duration.exists() implies durationUnit.exists()"), ["durationUnit"]);
        for text in [
            "a.b.exists()",
            "a.exists() and b.exists()",
            "a.exists(b = 1)",
            "a.exists().not()",
            "Patient.name.exists()",
            "a.exists() = b.exists()",
        ] {
            assert_eq!(presence(text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn guards_of_invariant_forms() {
        assert_eq!(guards("dataAbsentReason.empty() or value.empty()"), ["dataAbsentReason", "value"]);
        assert_eq!(
            guards("value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()"),
            ["component", "value"]
        );
        assert_eq!(guards("duration.exists() implies duration >= 0"), ["duration"]);
        assert_eq!(
            guards("Appointment.cancelationReason.exists() implies (Appointment.status='no-show')"),
            ["cancelationReason", "status"]
        );
        assert_eq!(guards("coordinateSystem = 1 or coordinateSystem = 0"), ["coordinateSystem"]);
        assert_eq!(guards("(type = 'a' implies x.exists()) and (type = 'b' implies y.exists())"), ["type"]);
        assert_eq!(guards("name.matches('[A-Z]([A-Za-z0-9_]){0,254}')"), ["name"]);
        assert_eq!(guards("period.exists() implies period >= 0"), ["period"]);
        assert_eq!(guards("onBehalfOf.exists() implies (member.resolve().iif(empty(), true, false))"), ["onBehalfOf"]);
        // Nothing settles these without looking.
        for text in [
            "name.exists() or telecom.exists()",
            "(identifier.count() + name.count()) > 0",
            "where(use = 'home').empty()",
            "start.exists() = end.exists()",
            "item.count() > 1",
            "%resource.code.empty()",
            "a.empty() and b.exists()",
            "a ~ b",
        ] {
            assert_eq!(guards(text), Vec::<String>::new(), "{text}");
        }
    }
}
