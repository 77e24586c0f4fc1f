//! From a resource to its index values: each parameter's expression is evaluated, and what it
//! finds is turned into values by the element's FHIR type (search.html, the table of which
//! data types each parameter type indexes).

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde_json::Value;

use super::text::normalize;
use super::{IndexEntry, IndexValue, ParamKind, Registry, SearchParam};
use crate::definitions::Primitive;
use crate::fhirpath::{Context, FhirType, Item};

/// The most combinations one element of a composite parameter may yield; beyond it the
/// element is skipped rather than flooding the index.
const MAX_COMPOSITE_COMBINATIONS: usize = 64;

const UCUM: &str = "http://unitsofmeasure.org";

/// Every index value of a resource for the parameters of its type. Expressions that fail on
/// this resource (a FHIRPath execution error) contribute nothing: a write is not refused
/// because one search parameter cannot be evaluated on it.
pub fn index_resource(resource: &Value, registry: &Registry) -> Vec<IndexEntry> {
    index_resource_resolving(resource, registry, None)
}

/// [`index_resource`], with `resolve()` finding referenced resources through `resolver` (a
/// transaction's entries, by `fullUrl`), so that `subject.where(resolve() is Patient)` sees
/// the type of a `urn:uuid:` target before the transaction rewrites the reference.
pub fn index_resource_resolving<'a>(
    resource: &'a Value,
    registry: &Registry,
    resolver: Option<&'a crate::fhirpath::Resolver<'a>>,
) -> Vec<IndexEntry> {
    let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else { return Vec::new() };
    let mut ctx = Context::new(resource);
    if let Some(r) = resolver {
        ctx = ctx.with_resolver(r);
    }
    let mut out = Vec::new();
    for param in registry.params(rt) {
        let Some(expression) = &param.expression else { continue };
        let Ok(items) = expression.evaluate(&ctx) else { continue };
        if param.kind == ParamKind::Composite {
            composite(param, &items, resource, resolver, &mut out);
            continue;
        }
        for item in &items {
            if param.kind == ParamKind::Token {
                tokens(&param.code, param.code_system.as_deref(), item, &mut out);
            } else {
                values(param.kind, &param.code, item, &mut out);
            }
        }
    }
    out.dedup();
    out
}

/// Rewrites the links in index values as a transaction rewrites them in the resource
/// (`urn:uuid:…` and conditional references to `Type/id`), so that values computed before the
/// rewrite equal those of the rewritten resource.
pub fn remap_links(entries: &mut [IndexEntry], map: &dyn Fn(&str) -> Option<String>) {
    fn remap(value: &mut IndexValue, map: &dyn Fn(&str) -> Option<String>) {
        match value {
            IndexValue::Reference { url: Some(u), version: None, .. } => {
                if let Some(new) = map(u).and_then(|n| literal_reference_value(&n)) {
                    *value = new;
                }
            }
            IndexValue::Uri { uri } => {
                if let Some(new) = map(uri) {
                    *uri = new;
                }
            }
            IndexValue::Composite { parts } => parts.iter_mut().for_each(|p| remap(p, map)),
            _ => {}
        }
    }
    for e in entries {
        remap(&mut e.value, map);
    }
}

fn push(out: &mut Vec<IndexEntry>, param: &str, value: IndexValue) {
    out.push(IndexEntry { param: param.to_owned(), value });
}

/// The values of one found item for a parameter of the given kind.
fn values(kind: ParamKind, code: &str, item: &Item<'_>, out: &mut Vec<IndexEntry>) {
    match kind {
        ParamKind::String => strings(item, &mut |v| push(out, code, v)),
        ParamKind::Token => tokens(code, None, item, out),
        ParamKind::Reference => references(code, item, out),
        ParamKind::Date => dates(item, &mut |v| push(out, code, v)),
        ParamKind::Number => {
            if let Some(value) = number(item) {
                push(out, code, IndexValue::Number { value });
            }
        }
        ParamKind::Quantity => quantities(item, &mut |v| push(out, code, v)),
        ParamKind::Uri => {
            if let Some(uri) = item_str(item) {
                push(out, code, IndexValue::Uri { uri: uri.to_owned() });
            }
        }
        ParamKind::Special => {
            // `near`: Location.position, as its coordinates.
            if let Some(pos) = item.json() {
                let lat = pos.get("latitude").and_then(Value::as_f64);
                let long = pos.get("longitude").and_then(Value::as_f64);
                if let (Some(lat), Some(long)) = (lat, long) {
                    push(out, &format!("{code}:latitude"), IndexValue::Number { value: lat });
                    push(out, &format!("{code}:longitude"), IndexValue::Number { value: long });
                }
            }
        }
        ParamKind::Composite => {}
    }
}

fn type_name(item: &Item<'_>) -> &'static str {
    match item {
        Item::Node(n) => n.ty.name(),
        other => other.type_name(),
    }
}

fn primitive(item: &Item<'_>) -> Option<Primitive> {
    match item {
        Item::Node(n) => match n.ty {
            FhirType::Primitive(p) => Some(p),
            _ => None,
        },
        _ => None,
    }
}

fn item_str<'a>(item: &'a Item<'_>) -> Option<&'a str> {
    match item {
        Item::Node(n) => n.as_str(),
        other => other.as_str(),
    }
}

fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn list<'a>(obj: &'a Value, name: &str) -> impl Iterator<Item = &'a str> {
    obj.get(name).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

fn string_value(s: &str) -> IndexValue {
    IndexValue::String { normalized: normalize(s), exact: s.to_owned() }
}

fn strings(item: &Item<'_>, emit: &mut dyn FnMut(IndexValue)) {
    if let Some(s) = item_str(item) {
        if !s.is_empty() {
            emit(string_value(s));
        }
        return;
    }
    let Some(obj) = item.json() else { return };
    match type_name(item) {
        "HumanName" => {
            for f in ["text", "family"] {
                if let Some(s) = field(obj, f) {
                    emit(string_value(s));
                }
            }
            for f in ["given", "prefix", "suffix"] {
                list(obj, f).for_each(|s| emit(string_value(s)));
            }
        }
        "Address" => {
            for f in ["text", "city", "district", "state", "postalCode", "country"] {
                if let Some(s) = field(obj, f) {
                    emit(string_value(s));
                }
            }
            list(obj, "line").for_each(|s| emit(string_value(s)));
        }
        _ => {}
    }
}

fn token(system: Option<&str>, code: Option<&str>, text: Option<&str>) -> IndexValue {
    IndexValue::Token {
        system: system.filter(|s| !s.is_empty()).map(str::to_owned),
        code: code.filter(|s| !s.is_empty()).map(str::to_owned),
        text: text.filter(|s| !s.is_empty()).map(normalize),
    }
}

fn coding(c: &Value) -> Option<IndexValue> {
    let code = field(c, "code");
    let display = field(c, "display");
    (code.is_some() || display.is_some()).then(|| token(field(c, "system"), code, display))
}

/// `implicit_system` is the code system of bound `code` elements (see `SearchParam::code_system`).
fn tokens(code: &str, implicit_system: Option<&str>, item: &Item<'_>, out: &mut Vec<IndexEntry>) {
    if let Item::Boolean(b) = item {
        push(out, code, token(None, Some(if *b { "true" } else { "false" }), None));
        return;
    }
    if let Some(p) = primitive(item) {
        let value = item.json();
        let text = match (p, value) {
            (Primitive::Boolean, Some(Value::Bool(b))) => Some(if *b { "true" } else { "false" }.to_owned()),
            (_, Some(Value::String(s))) => Some(s.clone()),
            (_, Some(Value::Number(n))) => Some(n.to_string()),
            _ => None,
        };
        if let Some(t) = text {
            let system = if p == Primitive::Code { implicit_system } else { None };
            push(out, code, token(system, Some(&t), None));
        }
        return;
    }
    if let Some(s) = item.as_str() {
        push(out, code, token(None, Some(s), None));
        return;
    }
    let Some(obj) = item.json() else { return };
    match type_name(item) {
        "Coding" => {
            if let Some(v) = coding(obj) {
                push(out, code, v);
            }
        }
        "CodeableConcept" => {
            for c in obj.get("coding").and_then(Value::as_array).into_iter().flatten() {
                if let Some(v) = coding(c) {
                    push(out, code, v);
                }
            }
            if let Some(text) = field(obj, "text") {
                push(out, code, token(None, None, Some(text)));
            }
        }
        "Identifier" => identifier(code, obj, out),
        "ContactPoint" => {
            if let Some(value) = field(obj, "value") {
                push(out, code, token(field(obj, "system"), Some(value), None));
            }
        }
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "SimpleQuantity" | "MoneyQuantity" => {
            if let Some(c) = field(obj, "code") {
                push(out, code, token(field(obj, "system"), Some(c), field(obj, "unit")));
            }
        }
        "Reference" => {
            if let Some(id) = obj.get("identifier") {
                identifier(code, id, out);
            }
        }
        _ => {}
    }
}

/// An Identifier as a token, and as the `:of-type` row (type coding + value).
fn identifier(code: &str, obj: &Value, out: &mut Vec<IndexEntry>) {
    let Some(value) = field(obj, "value") else { return };
    push(out, code, token(field(obj, "system"), Some(value), obj.pointer("/type/text").and_then(Value::as_str)));
    for c in obj.pointer("/type/coding").and_then(Value::as_array).into_iter().flatten() {
        if let Some(type_code) = field(c, "code") {
            push(
                out,
                &format!("{code}:of-type"),
                token(field(c, "system"), Some(&format!("{type_code}|{value}")), None),
            );
        }
    }
}

fn references(code: &str, item: &Item<'_>, out: &mut Vec<IndexEntry>) {
    if let Some(s) = item_str(item) {
        // canonical, uri, url: a URL, a canonical's version after `|`.
        if let Some(v) = reference_value(s) {
            push(out, code, v);
        }
        return;
    }
    let Some(obj) = item.json() else { return };
    if type_name(item) != "Reference" {
        return;
    }
    if let Some(v) = obj.get("reference").and_then(Value::as_str).and_then(literal_reference_value) {
        push(out, code, v);
    }
    if let Some(id) = obj.get("identifier") {
        identifier(&format!("{code}:identifier"), id, out);
    }
}

/// A `Reference.reference`: like [`reference_value`], but a `|` is part of the URL (of a
/// conditional reference's criteria, say), not a canonical's version.
fn literal_reference_value(reference: &str) -> Option<IndexValue> {
    match reference_value(reference)? {
        IndexValue::Reference { url: Some(_), .. } => Some(IndexValue::Reference {
            target_type: None,
            target_id: None,
            version: None,
            url: Some(reference.to_owned()),
        }),
        v => Some(v),
    }
}

/// Parses a reference or canonical as stored: `Type/id`, `Type/id/_history/v`, an absolute
/// or `urn:` URL, or `url|version`. Contained references (`#id`) are not searchable.
pub(crate) fn reference_value(reference: &str) -> Option<IndexValue> {
    if reference.is_empty() || reference.starts_with('#') {
        return None;
    }
    if let Some((rt, id, version)) = relative_reference(reference) {
        return Some(IndexValue::Reference {
            target_type: Some(rt.to_owned()),
            target_id: Some(id.to_owned()),
            version: version.map(str::to_owned),
            url: None,
        });
    }
    let (url, version) = match reference.split_once('|') {
        Some((u, v)) => (u, Some(v.to_owned())),
        None => (reference, None),
    };
    Some(IndexValue::Reference { target_type: None, target_id: None, version, url: Some(url.to_owned()) })
}

/// `Type/id` or `Type/id/_history/v` with a known resource type and a valid id.
pub(crate) fn relative_reference(reference: &str) -> Option<(&str, &str, Option<&str>)> {
    let mut parts = reference.split('/');
    let (rt, id) = (parts.next()?, parts.next()?);
    let version = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => None,
        (Some("_history"), Some(v), None) => Some(v),
        _ => return None,
    };
    (crate::definitions().is_resource_type(rt) && crate::is_valid_id(id)).then_some((rt, id, version))
}

fn dates(item: &Item<'_>, emit: &mut dyn FnMut(IndexValue)) {
    match item {
        Item::Date(t) | Item::DateTime(t) => {
            if let Some((low, high)) = date_range(&t.datetime_string()) {
                emit(IndexValue::Date { low, high });
            }
            return;
        }
        _ => {}
    }
    if let Some(p) = primitive(item) {
        if matches!(p, Primitive::Date | Primitive::DateTime | Primitive::Instant)
            && let Some((low, high)) = item_str(item).and_then(date_range)
        {
            emit(IndexValue::Date { low, high });
        }
        return;
    }
    let Some(obj) = item.json() else { return };
    match type_name(item) {
        "Period" => {
            if let Some(v) = period(obj) {
                emit(v);
            }
        }
        "Timing" => {
            for event in list(obj, "event") {
                if let Some((low, high)) = date_range(event) {
                    emit(IndexValue::Date { low, high });
                }
            }
            if let Some(v) = obj.pointer("/repeat/boundsPeriod").and_then(period) {
                emit(v);
            }
        }
        _ => {}
    }
}

fn period(obj: &Value) -> Option<IndexValue> {
    let start = field(obj, "start").and_then(date_range);
    let end = field(obj, "end").and_then(date_range);
    if start.is_none() && end.is_none() {
        return None;
    }
    Some(IndexValue::Date { low: start.map_or(i64::MIN, |s| s.0), high: end.map_or(i64::MAX, |e| e.1) })
}

/// The instants a FHIR date, dateTime or instant covers, in milliseconds since the epoch,
/// both ends inclusive: `2020` is the whole year, `2020-03-01T10:00:00+01:00` its second.
/// A time without a zone is taken as UTC.
pub fn date_range(text: &str) -> Option<(i64, i64)> {
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut fields = date.split('-');
    let year: i32 = fields.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let month: Option<u32> = match fields.next() {
        None => None,
        Some(m) if m.len() == 2 => Some(m.parse().ok()?),
        Some(_) => return None,
    };
    let month = match fields.next() {
        None => month,
        Some(_) if month.is_none() => return None,
        Some(d) => {
            let day: u32 = d.parse().ok().filter(|_| d.len() == 2)?;
            let month = month?;
            if fields.next().is_some() {
                return None;
            }
            let start = NaiveDate::from_ymd_opt(year, month, day)?;
            return match time {
                None => day_range(start, start),
                Some(t) => time_range(start, t),
            };
        }
    };
    if time.is_some() {
        return None;
    }
    match month {
        None => day_range(NaiveDate::from_ymd_opt(year, 1, 1)?, NaiveDate::from_ymd_opt(year, 12, 31)?),
        Some(m) => {
            let first = NaiveDate::from_ymd_opt(year, m, 1)?;
            let next = if m == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1)? } else { first.with_month(m + 1)? };
            day_range(first, next.pred_opt()?)
        }
    }
}

fn day_range(first: NaiveDate, last: NaiveDate) -> Option<(i64, i64)> {
    let low = Utc.from_utc_datetime(&first.and_hms_opt(0, 0, 0)?).timestamp_millis();
    let high = Utc.from_utc_datetime(&last.and_hms_milli_opt(23, 59, 59, 999)?).timestamp_millis();
    Some((low, high))
}

/// `hh:mm[:ss[.fff…]][Z|±hh:mm]` on a date.
fn time_range(date: NaiveDate, time: &str) -> Option<(i64, i64)> {
    let (clock, offset_minutes) = match time.find(['Z', '+', '-']) {
        Some(i) => {
            let (clock, zone) = time.split_at(i);
            let offset = match zone {
                "Z" => 0,
                z => {
                    let sign = if z.starts_with('-') { -1 } else { 1 };
                    let (h, m) = z[1..].split_once(':')?;
                    if h.len() != 2 || m.len() != 2 {
                        return None;
                    }
                    sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
                }
            };
            (clock, offset)
        }
        None => (time, 0),
    };
    let mut parts = clock.split(':');
    let hour: u32 = parts.next().filter(|h| h.len() == 2)?.parse().ok()?;
    let minute: u32 = parts.next().filter(|m| m.len() == 2)?.parse().ok()?;
    let (second, millis, span) = match parts.next() {
        None => (0, 0, 60_000 - 1),
        Some(s) => {
            let (whole, fraction) = match s.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (s, None),
            };
            let second: u32 = whole.parse().ok().filter(|_| whole.len() == 2)?;
            match fraction {
                None => (second, 0, 999),
                Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                    let digits: String = f.chars().chain("000".chars()).take(3).collect();
                    (second, digits.parse::<u32>().ok()?, 0)
                }
                Some(_) => return None,
            }
        }
    };
    if parts.next().is_some() {
        return None;
    }
    let local = date.and_hms_milli_opt(hour, minute, second.min(59), millis)?;
    let low = Utc.from_utc_datetime(&local).timestamp_millis() - offset_minutes * 60_000;
    Some((low, low + span))
}

fn number(item: &Item<'_>) -> Option<f64> {
    match item {
        Item::Integer(i) => Some(*i as f64),
        Item::Decimal(d) => Some(d.to_f64()),
        Item::Node(n) => n.value.and_then(Value::as_f64),
        _ => None,
    }
}

fn quantities(item: &Item<'_>, emit: &mut dyn FnMut(IndexValue)) {
    if let Item::Quantity(q) = item {
        let value = q.value.to_f64();
        emit(quantity_value(value, value, Some(UCUM), Some(q.unit.as_ref()), None));
        return;
    }
    let Some(obj) = item.json() else { return };
    match type_name(item) {
        "Range" => {
            let low = obj.get("low");
            let high = obj.get("high");
            let lv = low.and_then(|q| q.get("value")).and_then(Value::as_f64);
            let hv = high.and_then(|q| q.get("value")).and_then(Value::as_f64);
            if lv.is_none() && hv.is_none() {
                return;
            }
            let unit_of = low.filter(|_| lv.is_some()).or(high).unwrap_or(&Value::Null);
            emit(quantity_value(
                lv.unwrap_or(f64::NEG_INFINITY),
                hv.unwrap_or(f64::INFINITY),
                field(unit_of, "system"),
                field(unit_of, "code"),
                field(unit_of, "unit"),
            ));
        }
        "Money" => {
            if let Some(v) = obj.get("value").and_then(Value::as_f64) {
                emit(quantity_value(v, v, Some("urn:iso:std:iso:4217"), field(obj, "currency"), None));
            }
        }
        _ => {
            if let Some(v) = obj.get("value").and_then(Value::as_f64) {
                emit(quantity_value(v, v, field(obj, "system"), field(obj, "code"), field(obj, "unit")));
            }
        }
    }
}

fn quantity_value(low: f64, high: f64, system: Option<&str>, code: Option<&str>, unit: Option<&str>) -> IndexValue {
    let canonical = match (system, code) {
        (Some(UCUM), Some(code)) => crate::fhirpath::ucum_canonical(code).map(|(factor, key)| {
            let f = factor.to_f64();
            (low * f, high * f, key)
        }),
        _ => None,
    };
    IndexValue::Quantity {
        low,
        high,
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
        unit: unit.map(str::to_owned),
        canonical,
    }
}

/// Composite parameters: each element the expression finds yields the combinations of its
/// components' values (search.html#composite: the components must match within one element).
fn composite<'a>(
    param: &SearchParam,
    elements: &[Item<'a>],
    resource: &'a Value,
    resolver: Option<&'a crate::fhirpath::Resolver<'a>>,
    out: &mut Vec<IndexEntry>,
) {
    for element in elements {
        let mut focused = Context::new(resource).with_focus(vec![element.clone()]);
        if let Some(r) = resolver {
            focused = focused.with_resolver(r);
        }
        let mut per_component: Vec<Vec<IndexValue>> = Vec::with_capacity(param.components.len());
        for component in &param.components {
            let Ok(items) = component.expression.evaluate(&focused) else { return };
            let mut found = Vec::new();
            for item in &items {
                values(component.kind, "", item, &mut found);
            }
            // Only the plain rows of a component count (not `:identifier`/`:of-type` rows).
            let plain: Vec<IndexValue> = found
                .into_iter()
                .filter(|e| e.param.is_empty())
                .map(|e| e.value)
                .filter(|v| !matches!(v, IndexValue::Token { code: None, .. }))
                .collect();
            per_component.push(plain);
        }
        if per_component.iter().any(Vec::is_empty) {
            continue;
        }
        let combinations: usize = per_component.iter().map(Vec::len).product();
        if combinations > MAX_COMPOSITE_COMBINATIONS {
            continue;
        }
        let mut combos: Vec<Vec<IndexValue>> = vec![Vec::new()];
        for values in &per_component {
            combos = combos
                .into_iter()
                .flat_map(|c| values.iter().map(move |v| [c.clone(), vec![v.clone()]].concat()))
                .collect();
        }
        for parts in combos {
            push(out, &param.code, IndexValue::Composite { parts });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::standard;
    use serde_json::json;

    fn entries(resource: Value, param: &str) -> Vec<IndexValue> {
        index_resource(&resource, standard()).into_iter().filter(|e| e.param == param).map(|e| e.value).collect()
    }

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).expect("instant").timestamp_millis()
    }

    #[test]
    fn date_ranges_follow_precision() {
        assert_eq!(date_range("2020"), Some((ms("2020-01-01T00:00:00Z"), ms("2020-12-31T23:59:59.999Z"))));
        assert_eq!(date_range("2020-02"), Some((ms("2020-02-01T00:00:00Z"), ms("2020-02-29T23:59:59.999Z"))));
        assert_eq!(date_range("2021-12"), Some((ms("2021-12-01T00:00:00Z"), ms("2021-12-31T23:59:59.999Z"))));
        assert_eq!(date_range("2020-03-01"), Some((ms("2020-03-01T00:00:00Z"), ms("2020-03-01T23:59:59.999Z"))));
        assert_eq!(
            date_range("2020-03-01T10:00:00+01:00"),
            Some((ms("2020-03-01T09:00:00Z"), ms("2020-03-01T09:00:00.999Z")))
        );
        assert_eq!(
            date_range("2020-03-01T10:00:00.5Z"),
            Some((ms("2020-03-01T10:00:00.5Z"), ms("2020-03-01T10:00:00.5Z")))
        );
        assert_eq!(date_range("2020-03-01T10:00"), Some((ms("2020-03-01T10:00:00Z"), ms("2020-03-01T10:00:59.999Z"))));
        for bad in ["20", "2020-13", "2020-02-30", "2020-1-1", "2020-01-01T25:00:00Z", "x", "2020-01-01T10:00:00+1:00"]
        {
            assert_eq!(date_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_addresses_and_strings() {
        let p = json!({"resourceType": "Patient", "name": [{"family": "Évelyne", "given": ["Ann", "Marie"], "prefix": ["Dr"]}],
            "address": [{"line": ["1 Main St"], "city": "Boston", "postalCode": "02101"}]});
        let names = entries(p.clone(), "name");
        assert_eq!(names.len(), 4);
        assert!(names.contains(&IndexValue::String { normalized: "evelyne".into(), exact: "Évelyne".into() }));
        assert_eq!(entries(p.clone(), "family").len(), 1);
        assert_eq!(entries(p.clone(), "address-city"), vec![string_value("Boston")]);
        assert_eq!(entries(p, "address").len(), 3);
    }

    #[test]
    fn tokens_of_every_shape() {
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic"}], "text": "BP sys"},
            "identifier": [{"system": "urn:x", "value": "42", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
            "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 1500, "unit": "mg", "system": UCUM, "code": "mg"}});
        let codes = entries(obs.clone(), "code");
        assert!(codes.contains(&token(Some("http://loinc.org"), Some("8480-6"), Some("Systolic"))));
        assert!(codes.contains(&token(None, None, Some("BP sys"))));
        assert_eq!(
            entries(obs.clone(), "status"),
            vec![token(Some("http://hl7.org/fhir/observation-status"), Some("final"), None)]
        );
        assert_eq!(entries(obs.clone(), "identifier"), vec![token(Some("urn:x"), Some("42"), None)]);
        assert_eq!(
            entries(obs.clone(), "identifier:of-type"),
            vec![token(Some("http://terminology.hl7.org/CodeSystem/v2-0203"), Some("MR|42"), None)]
        );
        let p = json!({"resourceType": "Patient", "active": true, "gender": "female", "telecom": [{"system": "phone", "value": "555"}]});
        assert_eq!(entries(p.clone(), "active"), vec![token(None, Some("true"), None)]);
        assert_eq!(
            entries(p.clone(), "gender"),
            vec![token(Some("http://hl7.org/fhir/administrative-gender"), Some("female"), None)]
        );
        assert_eq!(entries(p, "phone"), vec![token(Some("phone"), Some("555"), None)]);
    }

    #[test]
    fn references_quantities_and_composites() {
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "subject": {"reference": "Patient/p1", "identifier": {"system": "urn:mrn", "value": "7"}},
            "valueQuantity": {"value": 1500, "unit": "mg", "system": UCUM, "code": "mg"},
            "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "a"}]}, "valueQuantity": {"value": 1, "code": "g", "system": UCUM}},
                          {"code": {"coding": [{"system": "http://loinc.org", "code": "b"}]}, "valueQuantity": {"value": 2, "code": "g", "system": UCUM}}]});
        let subject = entries(obs.clone(), "subject");
        assert_eq!(
            subject,
            vec![IndexValue::Reference {
                target_type: Some("Patient".into()),
                target_id: Some("p1".into()),
                version: None,
                url: None
            }]
        );
        assert_eq!(entries(obs.clone(), "patient"), subject, "patient is subject where it is a Patient");
        assert_eq!(entries(obs.clone(), "subject:identifier"), vec![token(Some("urn:mrn"), Some("7"), None)]);
        let q = entries(obs.clone(), "value-quantity");
        let IndexValue::Quantity { low, canonical: Some((cl, _, key)), .. } = &q[0] else { panic!("{q:?}") };
        assert_eq!(*low, 1500.0);
        assert!((cl - 1.5).abs() < 1e-9, "{cl}: grams are the base of mass");
        assert_eq!(key, "M1");
        let combos = entries(obs.clone(), "component-code-value-quantity");
        assert_eq!(combos.len(), 2, "one per component, never crossed: {combos:?}");
        let combo = entries(obs, "combo-code-value-quantity");
        assert_eq!(combo.len(), 3);
        let url = reference_value("http://x.org/fhir/ValueSet/v|2.0");
        assert_eq!(
            url,
            Some(IndexValue::Reference {
                target_type: None,
                target_id: None,
                version: Some("2.0".into()),
                url: Some("http://x.org/fhir/ValueSet/v".into())
            })
        );
        assert_eq!(reference_value("#c"), None);
        assert!(
            matches!(reference_value("Patient/1/_history/3"), Some(IndexValue::Reference { version: Some(v), .. }) if v == "3")
        );
    }

    #[test]
    fn links_remap_like_the_resource() {
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "urn:uuid:1"}, "encounter": {"reference": "Encounter?identifier=a|b"}});
        let mut entries = index_resource(&obs, standard());
        let map = |u: &str| match u {
            "urn:uuid:1" => Some("Patient/p1".to_owned()),
            "Encounter?identifier=a|b" => Some("Encounter/e1".to_owned()),
            _ => None,
        };
        remap_links(&mut entries, &map);
        // `patient` is `subject.where(resolve() is Patient)`: the urn's type comes from the
        // transaction's entries.
        assert!(!entries.iter().any(|e| e.param == "patient"));
        let patient = json!({"resourceType": "Patient"});
        let resolver = |u: &str| (u == "urn:uuid:1").then_some(&patient);
        let mut entries = index_resource_resolving(&obs, standard(), Some(&resolver));
        remap_links(&mut entries, &map);
        let mut rewritten = obs.clone();
        rewritten["subject"]["reference"] = json!("Patient/p1");
        rewritten["encounter"]["reference"] = json!("Encounter/e1");
        assert_eq!(entries, index_resource(&rewritten, standard()));
    }

    #[test]
    fn periods_and_timings() {
        let enc = json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
            "period": {"start": "2020-01-01T10:00:00Z"}});
        assert_eq!(entries(enc, "date"), vec![IndexValue::Date { low: ms("2020-01-01T10:00:00Z"), high: i64::MAX }]);
    }

    #[test]
    fn every_synthea_resource_indexes() {
        let resources = crate::validate::tests::synthea_resources();
        let started = std::time::Instant::now();
        let mut total = 0;
        for (_, r) in &resources {
            total += index_resource(r, standard()).len();
        }
        let took = started.elapsed();
        eprintln!("{} resources, {total} index values in {took:?}", resources.len());
        assert!(total > resources.len() * 5, "{total}");
    }
}
