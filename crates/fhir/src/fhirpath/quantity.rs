//! Quantity equality, equivalence, ordering and arithmetic across units. Calendar durations
//! of a week or less equal their UCUM units (`7 days = 1 'wk'`); calendar years and months
//! are not definite durations, so `1 year = 1 'a'` is unknown (empty) while `1 year ~ 1 'a'`
//! holds.

use std::cmp::Ordering;

use super::decimal::Decimal;
use super::temporal::CalendarUnit;
use super::ucum::{self, Canonical};
use super::value::{Quantity, Text};

enum Norm {
    /// The value in UCUM base units, with its dimensions.
    Ucum(Decimal, ucum::Dims),
    /// Calendar years and months, in months.
    Months(Decimal),
    /// A unit that is neither.
    Unknown,
}

fn calendar(q: &Quantity<'_>) -> Option<CalendarUnit> {
    q.calendar.or_else(|| CalendarUnit::from_keyword(&q.unit))
}

fn norm(q: &Quantity<'_>, years_as_ucum: bool) -> Norm {
    let unit: &str = match calendar(q) {
        Some(CalendarUnit::Year) if !years_as_ucum => {
            return q.value.checked_mul(Decimal::from_i64(12)).map_or(Norm::Unknown, Norm::Months);
        }
        Some(CalendarUnit::Month) if !years_as_ucum => return Norm::Months(q.value),
        Some(c) => c.ucum(),
        None => &q.unit,
    };
    match ucum::canonical(unit) {
        Some(Canonical { factor, dims }) => q.value.checked_mul(factor).map_or(Norm::Unknown, |v| Norm::Ucum(v, dims)),
        None => Norm::Unknown,
    }
}

fn same_unit(a: &Quantity<'_>, b: &Quantity<'_>) -> bool {
    *a.unit == *b.unit && a.calendar.is_some() == b.calendar.is_some()
}

/// `None` when the units cannot be compared.
pub fn compare(a: &Quantity<'_>, b: &Quantity<'_>) -> Option<Ordering> {
    if same_unit(a, b) {
        return Some(a.value.cmp_value(&b.value));
    }
    match (norm(a, false), norm(b, false)) {
        (Norm::Months(x), Norm::Months(y)) => Some(x.cmp_value(&y)),
        (Norm::Ucum(x, dx), Norm::Ucum(y, dy)) if dx == dy => Some(x.cmp_value(&y)),
        _ => None,
    }
}

pub fn equal(a: &Quantity<'_>, b: &Quantity<'_>) -> Option<bool> {
    compare(a, b).map(|o| o == Ordering::Equal)
}

pub fn equivalent(a: &Quantity<'_>, b: &Quantity<'_>) -> bool {
    if same_unit(a, b) {
        return a.value.equivalent(&b.value);
    }
    match (norm(a, true), norm(b, true)) {
        (Norm::Ucum(x, dx), Norm::Ucum(y, dy)) => dx == dy && x.equivalent(&y),
        _ => false,
    }
}

pub fn comparable(a: &Quantity<'_>, b: &Quantity<'_>) -> bool {
    same_unit(a, b) || compare(a, b).is_some()
}

fn ucum_unit<'x>(q: &'x Quantity<'_>) -> &'x str {
    match q.calendar {
        Some(c) => c.ucum(),
        None => &q.unit,
    }
}

/// `b` expressed in `a`'s unit.
pub fn convert(q: &Quantity<'_>, unit: &str) -> Option<Decimal> {
    if *q.unit == *unit {
        return Some(q.value);
    }
    let from = ucum::canonical(ucum_unit(q))?;
    let to = ucum::canonical(unit)?;
    if from.dims != to.dims {
        return None;
    }
    q.value.checked_mul(from.factor)?.checked_div(to.factor)
}

pub fn add<'a>(a: &Quantity<'_>, b: &Quantity<'_>, subtract: bool) -> Option<Quantity<'a>> {
    let bv = if same_unit(a, b) { b.value } else { convert(b, ucum_unit(a))? };
    let value = if subtract { a.value.checked_sub(bv)? } else { a.value.checked_add(bv)? };
    Some(Quantity { value, unit: Text::from(a.unit.to_string()), calendar: a.calendar })
}

fn wrap(unit: &str) -> String {
    if unit.contains(['.', '/']) { format!("({unit})") } else { unit.to_owned() }
}

pub fn mul<'a>(a: &Quantity<'_>, b: &Quantity<'_>) -> Option<Quantity<'a>> {
    let value = a.value.checked_mul(b.value)?;
    let (ua, ub) = (ucum_unit(a), ucum_unit(b));
    let unit = match (ua, ub) {
        ("1", u) | (u, "1") => u.to_owned(),
        _ => format!("{ua}.{}", wrap(ub)),
    };
    Some(Quantity { value, unit: Text::from(unit), calendar: None })
}

pub fn div<'a>(a: &Quantity<'_>, b: &Quantity<'_>) -> Option<Quantity<'a>> {
    let value = a.value.checked_div(b.value)?;
    let (ua, ub) = (ucum_unit(a), ucum_unit(b));
    let unit = if ua == ub {
        "1".to_owned()
    } else if ub == "1" {
        ua.to_owned()
    } else {
        format!("{ua}/{}", wrap(ub))
    };
    Some(Quantity { value, unit: Text::from(unit), calendar: None })
}

/// Parses the text form `toQuantity()` accepts: a number, optionally followed by a quoted
/// UCUM unit or a calendar keyword (`'1 \'wk\''`, `'4 days'`, `'1.5'`).
pub fn parse<'a>(text: &str) -> Option<Quantity<'a>> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_whitespace() || c == '\'').unwrap_or(text.len());
    let value = Decimal::parse(&text[..split])?;
    let rest = text[split..].trim();
    if rest.is_empty() {
        return Some(Quantity { value, unit: Text::Borrowed("1"), calendar: None });
    }
    if let Some(inner) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        if inner.is_empty() || inner.contains('\'') {
            return None;
        }
        if !ucum::is_known(inner) && CalendarUnit::from_keyword(inner).is_none() {
            return None;
        }
        return Some(Quantity { value, unit: Text::from(inner.to_owned()), calendar: None });
    }
    let cal = CalendarUnit::from_keyword(rest)?;
    Some(Quantity { value, unit: Text::from(rest.to_owned()), calendar: Some(cal) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity<'static> {
        parse(text).expect(text)
    }

    #[test]
    fn equality_across_units() {
        assert_eq!(equal(&q("4.0000 'g'"), &q("4000.0 'mg'")), Some(true));
        assert_eq!(equal(&q("4 'g'"), &q("4040 'mg'")), Some(false));
        assert!(equivalent(&q("4 'g'"), &q("4040 'mg'")));
        assert_eq!(equal(&q("7 days"), &q("1 week")), Some(true));
        assert_eq!(equal(&q("7 days"), &q("1 'wk'")), Some(true));
        assert_eq!(equal(&q("1 'a'"), &q("1 year")), None);
        assert_eq!(equal(&q("1 'mo'"), &q("1 month")), None);
        assert!(equivalent(&q("1 'a'"), &q("1 year")));
        assert_eq!(equal(&q("1 year"), &q("12 months")), Some(true));
        assert_eq!(equal(&q("1 'cm'"), &q("1 's'")), None);
        assert_eq!(compare(&q("6 days"), &q("1 week")), Some(Ordering::Less));
        assert_eq!(equal(&q("185 '[lb_av]'"), &q("185 'kg'")), Some(false));
        assert!(!comparable(&q("1 'cm'"), &q("1 's'")));
        assert!(comparable(&q("1 'cm'"), &q("1 '[in_i]'")));
    }

    #[test]
    fn arithmetic_with_units() {
        let product = mul(&q("2.0 'cm'"), &q("2.0 'm'")).expect("mul");
        assert_eq!(product.to_string(), "4.00 'cm.m'");
        assert_eq!(equal(&product, &q("0.040 'm2'")), Some(true));
        let ratio = div(&q("4.0 'g'"), &q("2.0 'm'")).expect("div");
        assert_eq!(equal(&ratio, &q("2 'g/m'")), Some(true));
        assert_eq!(div(&q("1.0 'm'"), &q("1.0 'm'")).map(|x| x.unit.to_string()), Some("1".into()));
        assert_eq!(add(&q("1 'g'"), &q("500 'mg'"), false).map(|x| x.to_string()), Some("1.5 'g'".into()));
        assert!(add(&q("1 'g'"), &q("1 'm'"), false).is_none());
    }

    #[test]
    fn parses_text() {
        assert_eq!(q("1 day").calendar, Some(CalendarUnit::Day));
        assert_eq!(q("1 'wk'").to_string(), "1 'wk'");
        assert_eq!(q("1").to_string(), "1 '1'");
        assert!(parse("1 wk").is_none());
        assert!(parse("1.a").is_none());
        assert!(parse("1 'xyz'").is_none());
    }
}
