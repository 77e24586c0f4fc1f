//! The function library: the FHIRPath N1 functions, the FHIR additions (`extension`,
//! `resolve`, `memberOf`, …) and the later ones the official tests use (`sort`,
//! `lowBoundary`, `encode`, …).

use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{Call, Expr, Func};
use super::decimal::Decimal;
use super::eval::{Coll, Eval, R, Scope, compare, exec, item_eq, semantic, single, to_bool, union_into};
use super::parser::compile_regex;
use super::quantity;
use super::temporal::{Precision, Temporal};
use super::value::{FhirType, Item, Node, Prim, Quantity, Text, prim_string};
use crate::definitions::Primitive;

const STRUCTURE_DEFINITION: &str = "http://hl7.org/fhir/StructureDefinition/";

impl<'c, 'a> Eval<'c, 'a> {
    pub fn call(&self, c: &Call, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        let input = match &c.target {
            Some(t) => self.eval(t, scope)?,
            None => scope.this.to_vec(),
        };
        if self.ctx.check_ordered && c.unordered_input && c.func.is_ordered() {
            return Err(semantic(format!(
                "{}() depends on order, but its input (from children() or descendants()) has none",
                c.func.name()
            )));
        }
        let f = c.func;
        let arg = |i: usize| -> R<Coll<'a>> {
            match c.args.get(i) {
                Some(e) => self.eval(e, scope),
                None => Ok(Vec::new()),
            }
        };
        let boolean = |b: bool| Ok(vec![Item::Boolean(b)]);
        match f {
            Func::Empty => boolean(input.is_empty()),
            Func::Exists => {
                if c.args.is_empty() {
                    boolean(!input.is_empty())
                } else {
                    boolean(!self.filter(&input, &c.args[0], scope)?.is_empty())
                }
            }
            Func::All => {
                for (i, item) in input.iter().enumerate() {
                    let r = self.lambda(&c.args[0], item, i, scope)?;
                    if to_bool(&r, "the criteria of all()")? != Some(true) {
                        return boolean(false);
                    }
                }
                boolean(true)
            }
            Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
                let mut values = Vec::with_capacity(input.len());
                for item in &input {
                    values.push(
                        item.as_bool()
                            .ok_or_else(|| exec(format!("{}() needs Booleans, not {}", f.name(), item.type_name())))?,
                    );
                }
                boolean(match f {
                    Func::AllTrue => values.iter().all(|&b| b),
                    Func::AnyTrue => values.iter().any(|&b| b),
                    Func::AllFalse => values.iter().all(|&b| !b),
                    _ => values.iter().any(|&b| !b),
                })
            }
            Func::SubsetOf | Func::SupersetOf => {
                let other = arg(0)?;
                let (small, big) = if f == Func::SubsetOf { (&input, &other) } else { (&other, &input) };
                boolean(small.iter().all(|x| big.iter().any(|y| item_eq(x, y) == Some(true))))
            }
            Func::Count => Ok(vec![Item::Integer(input.len() as i64)]),
            Func::Distinct => {
                let mut out = Vec::with_capacity(input.len());
                union_into(&mut out, input);
                Ok(out)
            }
            Func::IsDistinct => {
                let n = input.len();
                let mut out = Vec::with_capacity(n);
                union_into(&mut out, input);
                boolean(out.len() == n)
            }
            Func::Where => self.filter(&input, &c.args[0], scope),
            Func::Select => {
                let mut out = Vec::with_capacity(input.len());
                for (i, item) in input.iter().enumerate() {
                    out.extend(self.lambda(&c.args[0], item, i, scope)?);
                }
                Ok(out)
            }
            Func::Repeat => self.repeat(&input, &c.args[0], scope),
            Func::OfType => {
                let spec = c.type_arg.ok_or_else(|| exec("ofType() needs a type"))?;
                Ok(input.into_iter().filter(|i| self.type_matches(i, spec, true)).collect())
            }
            Func::Is => {
                let spec = c.type_arg.ok_or_else(|| exec("is() needs a type"))?;
                Ok(match single(&input, "the input of is()")? {
                    None => Vec::new(),
                    Some(item) => vec![Item::Boolean(self.type_matches(item, spec, false))],
                })
            }
            Func::As => {
                let spec = c.type_arg.ok_or_else(|| exec("as() needs a type"))?;
                // N1 wants a single item, but R4's own dom-3 invariant applies as() to
                // descendants(): outside strict mode it filters like ofType().
                if self.ctx.strict {
                    single(&input, "the input of as()")?;
                }
                Ok(input.into_iter().filter(|item| self.type_matches(item, spec, true)).collect())
            }
            Func::Type => Ok(input.iter().map(|i| Item::Type(i.type_info())).collect()),
            Func::Single => match input.len() {
                0 | 1 => Ok(input),
                n => Err(exec(format!("single() found {n} items"))),
            },
            Func::First => Ok(input.into_iter().take(1).collect()),
            Func::Last => Ok(input.last().cloned().into_iter().collect()),
            Func::Tail => Ok(input.into_iter().skip(1).collect()),
            Func::Skip | Func::Take => {
                let n = self.int_arg(&arg(0)?, f)?;
                let Some(n) = n else { return Ok(Vec::new()) };
                let n = usize::try_from(n.max(0)).unwrap_or(0);
                Ok(if f == Func::Skip {
                    input.into_iter().skip(n).collect()
                } else {
                    input.into_iter().take(n).collect()
                })
            }
            Func::Intersect => {
                let other = arg(0)?;
                let mut out = Vec::new();
                let hits: Coll<'a> =
                    input.into_iter().filter(|x| other.iter().any(|y| item_eq(x, y) == Some(true))).collect();
                union_into(&mut out, hits);
                Ok(out)
            }
            Func::Exclude => {
                let other = arg(0)?;
                Ok(input.into_iter().filter(|x| !other.iter().any(|y| item_eq(x, y) == Some(true))).collect())
            }
            Func::Union => {
                let other = arg(0)?;
                let mut out = Vec::with_capacity(input.len() + other.len());
                union_into(&mut out, input);
                union_into(&mut out, other);
                Ok(out)
            }
            Func::Combine => {
                let mut out = input;
                out.extend(arg(0)?);
                Ok(out)
            }
            Func::Iif => self.iif(c, input, scope),
            Func::Trace => {
                if let Some(tracer) = self.ctx.tracer {
                    let name = arg(0)?.first().map(ToString::to_string).unwrap_or_default();
                    match c.args.get(1) {
                        Some(projection) => {
                            let mut projected = Vec::new();
                            for (i, item) in input.iter().enumerate() {
                                projected.extend(self.lambda(projection, item, i, scope)?);
                            }
                            tracer(&name, &projected);
                        }
                        None => tracer(&name, &input),
                    }
                }
                Ok(input)
            }
            Func::Aggregate => {
                let mut total = match c.args.get(1) {
                    Some(init) => self.eval(init, scope)?,
                    None => Vec::new(),
                };
                for (i, item) in input.iter().enumerate() {
                    let this = std::slice::from_ref(item);
                    total = self.eval(&c.args[0], Scope { this, index: Some(i), total: Some(&total) })?;
                }
                Ok(total)
            }
            Func::Sort => self.sort(c, input, scope),
            Func::Join => {
                let sep = self.string_arg(&arg(0)?, f)?.unwrap_or_default();
                let mut parts = Vec::with_capacity(input.len());
                for i in &input {
                    parts.push(self.input_str(i, f)?.to_owned());
                }
                Ok(vec![Item::string(parts.join(&sep))])
            }
            Func::Children => {
                let mut out = Vec::new();
                for item in &input {
                    self.children(item, &mut out);
                }
                Ok(out)
            }
            Func::Descendants => self.descendants(&input),
            Func::Now => Ok(vec![Item::DateTime(Temporal::from_chrono(&self.clock(), Precision::Millisecond))]),
            Func::Today => {
                Ok(vec![Item::Date(Temporal::from_chrono(&self.clock(), Precision::Day).truncated(Precision::Day))])
            }
            Func::TimeOfDay => {
                let mut t = Temporal::from_chrono(&self.clock(), Precision::Millisecond);
                t.tz = None;
                Ok(vec![Item::Time(t)])
            }
            Func::Not => Ok(to_bool(&input, "the input of not()")?.map(|b| Item::Boolean(!b)).into_iter().collect()),
            Func::Extension => {
                let url = self.string_arg(&arg(0)?, f)?;
                let Some(url) = url else { return Ok(Vec::new()) };
                self.extensions(&input, &url)
            }
            Func::HasValue => boolean(match input.as_slice() {
                [Item::Node(n)] => matches!(n.ty, FhirType::Primitive(_)) && n.value.is_some(),
                [Item::Type(_)] => false,
                [_] => true,
                _ => false,
            }),
            Func::GetValue => Ok(match input.as_slice() {
                [item @ Item::Node(Node { ty: FhirType::Primitive(_), value: Some(_), .. })] => vec![item.to_system()],
                _ => Vec::new(),
            }),
            Func::Resolve => self.resolve(&input),
            Func::ConformsTo => self.conforms_to(&input, &arg(0)?),
            Func::MemberOf => self.member_of(&input, &arg(0)?),
            Func::HtmlChecks => {
                let defs = self.defs;
                boolean(input.iter().all(|i| match i.json() {
                    Some(v) => crate::primitives::check(defs, Primitive::Xhtml, v).is_ok(),
                    None => true,
                }))
            }
            Func::ElementDefinition | Func::Slice | Func::CheckModifiers => Err(exec(format!(
                "{}() needs profile (StructureDefinition) context, which this engine does not evaluate against",
                f.name()
            ))),
            _ => self.scalar(c, f, &input, scope),
        }
    }

    /// Functions of one input item.
    fn scalar(&self, c: &Call, f: Func, input: &Coll<'a>, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        let arg = |i: usize| -> R<Coll<'a>> {
            match c.args.get(i) {
                Some(e) => self.eval(e, scope),
                None => Ok(Vec::new()),
            }
        };
        let Some(item) = single(input, &format!("the input of {}()", f.name()))? else {
            return Ok(Vec::new());
        };
        let one = |i: Item<'a>| Ok(vec![i]);
        let opt = |i: Option<Item<'a>>| Ok(i.into_iter().collect());
        let prim = item.prim();
        match f {
            Func::ToBoolean | Func::ConvertsToBoolean => {
                convert(f == Func::ToBoolean, to_boolean(prim.as_ref()).map(Item::Boolean))
            }
            Func::ToInteger | Func::ConvertsToInteger => {
                convert(f == Func::ToInteger, to_integer(prim.as_ref()).map(Item::Integer))
            }
            Func::ToDecimal | Func::ConvertsToDecimal => {
                convert(f == Func::ToDecimal, to_decimal(prim.as_ref()).map(Item::Decimal))
            }
            Func::ToDate | Func::ConvertsToDate => convert(f == Func::ToDate, to_date(prim.as_ref()).map(Item::Date)),
            Func::ToDateTime | Func::ConvertsToDateTime => {
                convert(f == Func::ToDateTime, to_datetime(prim.as_ref()).map(Item::DateTime))
            }
            Func::ToTime | Func::ConvertsToTime => convert(f == Func::ToTime, to_time(prim.as_ref()).map(Item::Time)),
            Func::ToString | Func::ConvertsToString => {
                convert(f == Func::ToString, prim.as_ref().map(|p| Item::string(prim_string(p))))
            }
            Func::ToQuantity | Func::ConvertsToQuantity => {
                let mut q = to_quantity(prim.as_ref());
                if let Some(unit) = self.string_arg(&arg(0)?, f)? {
                    q = q.and_then(|q| {
                        quantity::convert(&q, &unit).map(|value| Quantity {
                            value,
                            unit: Text::from(unit),
                            calendar: None,
                        })
                    });
                }
                convert(f == Func::ToQuantity, q.map(|q| Item::Quantity(Box::new(q))))
            }
            Func::IndexOf => {
                let s = self.input_str(item, f)?;
                let Some(needle) = self.string_arg(&arg(0)?, f)? else { return Ok(Vec::new()) };
                one(Item::Integer(match s.find(&needle) {
                    Some(byte) => s[..byte].chars().count() as i64,
                    None => -1,
                }))
            }
            Func::Substring => {
                let s = self.input_str(item, f)?;
                let Some(start) = self.int_arg(&arg(0)?, f)? else { return Ok(Vec::new()) };
                let len = if c.args.len() > 1 { self.int_arg(&arg(1)?, f)? } else { None };
                let count = s.chars().count() as i64;
                if start < 0 || start >= count {
                    return Ok(Vec::new());
                }
                let take = len.unwrap_or(count).max(0);
                one(Item::string(s.chars().skip(start as usize).take(take as usize).collect::<String>()))
            }
            Func::StartsWith | Func::EndsWith | Func::Contains => {
                let s = self.input_str(item, f)?;
                let Some(other) = self.string_arg(&arg(0)?, f)? else { return Ok(Vec::new()) };
                one(Item::Boolean(match f {
                    Func::StartsWith => s.starts_with(other.as_str()),
                    Func::EndsWith => s.ends_with(other.as_str()),
                    _ => s.contains(other.as_str()),
                }))
            }
            Func::Upper => one(Item::string(self.input_str(item, f)?.to_uppercase())),
            Func::Lower => one(Item::string(self.input_str(item, f)?.to_lowercase())),
            Func::Trim => one(Item::string(self.input_str(item, f)?.trim())),
            Func::Length => one(Item::Integer(self.input_str(item, f)?.chars().count() as i64)),
            Func::ToChars => Ok(self.input_str(item, f)?.chars().map(|ch| Item::string(ch.to_string())).collect()),
            Func::Replace => {
                let s = self.input_str(item, f)?;
                let (Some(pattern), Some(with)) = (self.string_arg(&arg(0)?, f)?, self.string_arg(&arg(1)?, f)?) else {
                    return Ok(Vec::new());
                };
                one(Item::string(s.replace(pattern.as_str(), &with)))
            }
            Func::Matches | Func::MatchesFull => {
                let s = self.input_str(item, f)?;
                let Some(pattern) = self.string_arg(&arg(0)?, f)? else { return Ok(Vec::new()) };
                let is_match = match &c.regex {
                    Some(re) => re.is_match(s),
                    None => compile_regex(&pattern, f == Func::MatchesFull).map_err(exec)?.is_match(s),
                };
                one(Item::Boolean(is_match))
            }
            Func::ReplaceMatches => {
                let s = self.input_str(item, f)?;
                let (Some(pattern), Some(with)) = (self.string_arg(&arg(0)?, f)?, self.string_arg(&arg(1)?, f)?) else {
                    return Ok(Vec::new());
                };
                if pattern.is_empty() {
                    return one(Item::string(s));
                }
                let replaced = match &c.regex {
                    Some(re) => re.replace_all(s, with.as_str()).into_owned(),
                    None => compile_regex(&pattern, false).map_err(exec)?.replace_all(s, with.as_str()).into_owned(),
                };
                one(Item::string(replaced))
            }
            Func::Split => {
                let s = self.input_str(item, f)?;
                let Some(sep) = self.string_arg(&arg(0)?, f)? else { return Ok(Vec::new()) };
                if sep.is_empty() {
                    return Ok(s.chars().map(|ch| Item::string(ch.to_string())).collect());
                }
                Ok(s.split(sep.as_str()).map(Item::string).collect())
            }
            Func::Encode | Func::Decode | Func::Escape | Func::Unescape => {
                let s = self.input_str(item, f)?;
                let Some(format) = self.string_arg(&arg(0)?, f)? else { return Ok(Vec::new()) };
                opt(codec(f, s, &format)?.map(Item::string))
            }
            Func::Abs => one(match prim {
                Some(Prim::Int(i)) => Item::Integer(i.checked_abs().ok_or_else(|| exec("integer overflow"))?),
                Some(Prim::Dec(d)) => Item::Decimal(d.abs()),
                Some(Prim::Quantity(q)) => Item::Quantity(Box::new(Quantity {
                    value: q.value.abs(),
                    unit: Text::from(q.unit.to_string()),
                    calendar: q.calendar,
                })),
                _ => return Err(not_number(f, item)),
            }),
            Func::Ceiling | Func::Floor | Func::Truncate => match prim {
                Some(Prim::Int(i)) => one(Item::Integer(i)),
                Some(Prim::Dec(d)) => {
                    let v = match f {
                        Func::Ceiling => d.ceil_int(),
                        Func::Floor => d.floor_int(),
                        _ => d.trunc_int(),
                    };
                    one(Item::Integer(i64::try_from(v).map_err(|_| exec("integer overflow"))?))
                }
                _ => Err(not_number(f, item)),
            },
            Func::Round => {
                let digits = self.int_arg(&arg(0)?, f)?.unwrap_or(0);
                let digits = u8::try_from(digits).map_err(|_| exec("round() needs a precision of 0 to 38"))?;
                match prim {
                    Some(Prim::Int(i)) => one(Item::Decimal(Decimal::from_i64(i))),
                    Some(Prim::Dec(d)) => opt(d.round(digits).map(Item::Decimal)),
                    _ => Err(not_number(f, item)),
                }
            }
            Func::Exp | Func::Ln | Func::Sqrt | Func::Log | Func::Power => {
                let x = match prim {
                    Some(Prim::Int(i)) => Decimal::from_i64(i),
                    Some(Prim::Dec(d)) => d,
                    _ => return Err(not_number(f, item)),
                };
                let other = if matches!(f, Func::Log | Func::Power) {
                    match single(&arg(0)?, "the argument")?.and_then(Item::prim) {
                        Some(Prim::Int(i)) => Some(Prim::Int(i)),
                        Some(Prim::Dec(d)) => Some(Prim::Dec(d)),
                        None => return Ok(Vec::new()),
                        Some(_) => return Err(exec(format!("{}() needs a number argument", f.name()))),
                    }
                } else {
                    None
                };
                if f == Func::Power
                    && let (Some(Prim::Int(base)), Some(Prim::Int(e))) = (&prim, &other)
                    && *e >= 0
                {
                    let e = u32::try_from(*e).map_err(|_| exec("integer overflow"))?;
                    return one(Item::Integer(base.checked_pow(e).ok_or_else(|| exec("integer overflow"))?));
                }
                let y = match other {
                    Some(Prim::Int(i)) => i as f64,
                    Some(Prim::Dec(d)) => d.to_f64(),
                    _ => 0.0,
                };
                let xf = x.to_f64();
                let r = match f {
                    Func::Exp => xf.exp(),
                    Func::Ln => xf.ln(),
                    Func::Sqrt => xf.sqrt(),
                    Func::Log => xf.ln() / y.ln(),
                    _ => xf.powf(y),
                };
                opt(Decimal::from_f64(r).map(Item::Decimal))
            }
            Func::LowBoundary | Func::HighBoundary => {
                let high = f == Func::HighBoundary;
                let digits = self.int_arg(&arg(0)?, f)?;
                opt(boundary(prim, digits, high))
            }
            Func::Precision => opt(match prim {
                Some(Prim::Dec(d)) => Some(Item::Integer(i64::from(d.scale()))),
                Some(Prim::Int(_)) => Some(Item::Integer(0)),
                Some(Prim::Date(t) | Prim::DateTime(t)) => Some(Item::Integer(t.precision_digits(false))),
                Some(Prim::Time(t)) => Some(Item::Integer(t.precision_digits(true))),
                _ => None,
            }),
            Func::Comparable => {
                let other = arg(0)?;
                let (Some(Prim::Quantity(a)), Some(Prim::Quantity(b))) =
                    (prim, single(&other, "the argument")?.and_then(Item::prim))
                else {
                    return Err(exec("comparable() compares two quantities"));
                };
                one(Item::Boolean(quantity::comparable(&a, &b)))
            }
            other => Err(exec(format!("{}() is not available here", other.name()))),
        }
    }

    // ---------------------------------------------------------------- helpers

    fn clock(&self) -> chrono::DateTime<chrono::FixedOffset> {
        match self.now.get() {
            Some(t) => t,
            None => {
                let t = chrono::Local::now().fixed_offset();
                self.now.set(Some(t));
                t
            }
        }
    }

    fn lambda(&self, e: &Expr, item: &Item<'a>, index: usize, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        self.eval(e, Scope { this: std::slice::from_ref(item), index: Some(index), total: scope.total })
    }

    fn filter(&self, input: &Coll<'a>, criteria: &Expr, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        let mut out = Vec::new();
        for (i, item) in input.iter().enumerate() {
            let r = self.lambda(criteria, item, i, scope)?;
            if to_bool(&r, "the criteria of where()")? == Some(true) {
                out.push(item.clone());
            }
        }
        Ok(out)
    }

    fn repeat(&self, input: &Coll<'a>, projection: &Expr, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        let mut out: Coll<'a> = Vec::new();
        let mut queue: Coll<'a> = input.clone();
        let mut next = 0;
        while next < queue.len() {
            let item = queue[next].clone();
            next += 1;
            for found in self.lambda(projection, &item, next - 1, scope)? {
                let seen = out.iter().any(|o| match (o, &found) {
                    (Item::Node(a), Item::Node(b)) => a.same(b),
                    (a, b) => item_eq(a, b) == Some(true),
                });
                if !seen {
                    self.spend(1)?;
                    out.push(found.clone());
                    queue.push(found);
                }
            }
        }
        Ok(out)
    }

    fn descendants(&self, input: &Coll<'a>) -> R<Coll<'a>> {
        let mut out = Vec::new();
        for item in input {
            self.children(item, &mut out);
        }
        let mut i = 0;
        while i < out.len() {
            let item = out[i].clone();
            let before = out.len();
            self.children(&item, &mut out);
            self.spend(out.len() - before)?;
            i += 1;
        }
        Ok(out)
    }

    fn iif(&self, c: &Call, input: Coll<'a>, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        if input.len() > 1 {
            return Err(exec("iif() on a collection of more than one item"));
        }
        let inner = if c.target.is_some() { Scope { this: &input, index: None, total: scope.total } } else { scope };
        let cond = self.eval(&c.args[0], inner)?;
        let truth = match single(&cond, "the criterion of iif()")? {
            None => false,
            Some(Item::Boolean(b)) => *b,
            Some(other) => match other.as_bool() {
                Some(b) => b,
                None if self.ctx.strict => {
                    return Err(semantic(format!(
                        "the criterion of iif() must be a Boolean, not {}",
                        other.type_name()
                    )));
                }
                None => true,
            },
        };
        if truth {
            self.eval(&c.args[1], inner)
        } else {
            match c.args.get(2) {
                Some(e) => self.eval(e, inner),
                None => Ok(Vec::new()),
            }
        }
    }

    fn sort(&self, c: &Call, input: Coll<'a>, scope: Scope<'_, 'a>) -> R<Coll<'a>> {
        let mut keyed: Vec<(Vec<Option<Item<'a>>>, Item<'a>)> = Vec::with_capacity(input.len());
        for (i, item) in input.into_iter().enumerate() {
            let mut keys = Vec::with_capacity(c.args.len().max(1));
            if c.args.is_empty() {
                keys.push(Some(item.clone()));
            }
            for key in &c.args {
                let r = self.lambda(key, &item, i, scope)?;
                keys.push(single(&r, "a sort key")?.cloned());
            }
            keyed.push((keys, item));
        }
        let mut failure = None;
        keyed.sort_by(|(a, _), (b, _)| {
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                let descending = c.descending.get(k).copied().unwrap_or(false);
                // An item without a key comes first whichever the direction.
                let ord = match (x, y) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => {
                        let o = match compare(x, y) {
                            Ok(o) => o.unwrap_or(Ordering::Equal),
                            Err(e) => {
                                failure.get_or_insert(e);
                                Ordering::Equal
                            }
                        };
                        if descending { o.reverse() } else { o }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(keyed.into_iter().map(|(_, item)| item).collect())
    }

    fn input_str<'x>(&self, item: &'x Item<'a>, f: Func) -> R<&'x str> {
        item.as_str().ok_or_else(|| semantic(format!("{}() needs a string, not {}", f.name(), item.type_name())))
    }

    fn string_arg(&self, v: &Coll<'a>, f: Func) -> R<Option<String>> {
        match single(v, &format!("the argument of {}()", f.name()))? {
            None => Ok(None),
            Some(i) => i
                .as_str()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| exec(format!("{}() needs a string argument, not {}", f.name(), i.type_name()))),
        }
    }

    fn int_arg(&self, v: &Coll<'a>, f: Func) -> R<Option<i64>> {
        match single(v, &format!("the argument of {}()", f.name()))? {
            None => Ok(None),
            Some(i) => match i.prim() {
                Some(Prim::Int(n)) => Ok(Some(n)),
                _ => Err(exec(format!("{}() needs an Integer argument, not {}", f.name(), i.type_name()))),
            },
        }
    }

    fn extensions(&self, input: &Coll<'a>, url: &str) -> R<Coll<'a>> {
        let Some(ext_root) = self.defs.root("Extension") else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for item in input {
            let Item::Node(n) = item else { continue };
            let holder = match n.ty {
                FhirType::Primitive(_) => n.extra,
                _ => n.value,
            };
            let Some(list) = holder.and_then(|h| h.get("extension")).and_then(Value::as_array) else { continue };
            for ext in list {
                if ext.get("url").and_then(Value::as_str) == Some(url) {
                    out.push(Item::Node(Node {
                        value: Some(ext),
                        extra: None,
                        ty: FhirType::Complex { name: "Extension", def: ext_root },
                    }));
                }
            }
        }
        Ok(out)
    }

    fn resolve(&self, input: &Coll<'a>) -> R<Coll<'a>> {
        let mut out = Vec::new();
        for item in input {
            let reference: Option<&'a str> = match item {
                Item::Node(n) => match n.ty {
                    FhirType::Primitive(_) => n.as_str(),
                    _ => n.value.and_then(|v| v.get("reference")).and_then(Value::as_str),
                },
                _ => None,
            };
            let owned;
            let reference = match (reference, item) {
                (Some(r), _) => r,
                (None, Item::String(s)) => {
                    owned = s.to_string();
                    owned.as_str()
                }
                _ => continue,
            };
            if let Some(found) = self.lookup_reference(reference) {
                out.push(Item::Node(self.resource_node(found)));
                continue;
            }
            if let Some(name) = reference_type(reference) {
                let def = self.defs.root(name);
                out.push(Item::Node(Node { value: None, extra: None, ty: FhirType::Resource { name, def } }));
            }
        }
        Ok(out)
    }

    fn lookup_reference(&self, reference: &str) -> Option<&'a Value> {
        if let Some(resolver) = self.ctx.resolver
            && let Some(v) = resolver(reference)
        {
            return Some(v);
        }
        let containers = [self.ctx.resource.as_ref(), self.ctx.root_resource.as_ref()];
        if let Some(id) = reference.strip_prefix('#') {
            for container in containers.into_iter().flatten() {
                if let Some(list) = container.json().and_then(|r| r.get("contained")).and_then(Value::as_array)
                    && let Some(found) = list.iter().find(|c| c.get("id").and_then(Value::as_str) == Some(id))
                {
                    return Some(found);
                }
            }
            return None;
        }
        for container in containers.into_iter().flatten() {
            let Some(bundle) = container.json() else { continue };
            if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                continue;
            }
            for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
                let Some(res) = entry.get("resource") else { continue };
                if entry.get("fullUrl").and_then(Value::as_str) == Some(reference) {
                    return Some(res);
                }
                if let (Some(rt), Some(id)) =
                    (res.get("resourceType").and_then(Value::as_str), res.get("id").and_then(Value::as_str))
                    && (reference.len() == rt.len() + 1 + id.len())
                    && reference.starts_with(rt)
                    && reference[rt.len()..].starts_with('/')
                    && reference.ends_with(id)
                {
                    return Some(res);
                }
            }
        }
        None
    }

    fn conforms_to(&self, input: &Coll<'a>, url: &Coll<'a>) -> R<Coll<'a>> {
        let Some(url) = single(url, "the argument of conformsTo()")?.and_then(|u| u.as_str().map(str::to_owned)) else {
            return Ok(Vec::new());
        };
        let Some(name) = url.strip_prefix(STRUCTURE_DEFINITION).filter(|n| self.defs.type_def(n).is_some()) else {
            return Err(exec(format!("conformsTo(): the profile {url} is not known (only the base R4 types are)")));
        };
        let Some(item) = single(input, "the input of conformsTo()")? else { return Ok(Vec::new()) };
        let typed = match item {
            Item::Node(n) => !matches!(n.ty, FhirType::Json) && self.is_subtype(n.type_name(), name),
            other => other.type_name() == name,
        };
        let valid = typed
            && match item {
                Item::Node(Node { ty: FhirType::Resource { .. }, value: Some(v), .. }) => {
                    crate::validate::validate(v, &crate::validate::Options::default()).iter().all(|i| !i.is_error())
                }
                _ => true,
            };
        Ok(vec![Item::Boolean(valid)])
    }

    fn member_of(&self, input: &Coll<'a>, url: &Coll<'a>) -> R<Coll<'a>> {
        let Some(url) = single(url, "the argument of memberOf()")?.and_then(|u| u.as_str().map(str::to_owned)) else {
            return Ok(Vec::new());
        };
        let key = url.split('|').next().unwrap_or(&url);
        let vs = self.defs.value_set(key).filter(|vs| vs.enumerable).ok_or_else(|| {
            exec(format!("memberOf(): the value set {url} is not available without a terminology server"))
        })?;
        let Some(item) = single(input, "the input of memberOf()")? else { return Ok(Vec::new()) };
        let coding = |v: &Value| {
            v.get("code")
                .and_then(Value::as_str)
                .is_some_and(|code| vs.contains(v.get("system").and_then(Value::as_str), code))
        };
        let member = match item {
            Item::String(s) => vs.contains(None, s),
            Item::Node(n) => match (n.ty, n.value) {
                (FhirType::Primitive(_), Some(Value::String(s))) => vs.contains(None, s),
                (FhirType::Complex { name: "Coding", .. }, Some(v)) => coding(v),
                (FhirType::Complex { name: "CodeableConcept", .. }, Some(v)) => {
                    v.get("coding").and_then(Value::as_array).is_some_and(|list| list.iter().any(coding))
                }
                _ => false,
            },
            _ => false,
        };
        Ok(vec![Item::Boolean(member)])
    }
}

/// The resource type a reference names: `Patient/1`, `http://x/fhir/Patient/1/_history/2`.
fn reference_type(reference: &str) -> Option<&'static str> {
    let path = reference.split(['?', '#']).next().unwrap_or(reference);
    let parts: Vec<&str> = path.split('/').collect();
    let defs = crate::definitions();
    // A conditional reference (`Patient?identifier=…`, in transactions) names its type.
    if let [only] = parts.as_slice()
        && reference.contains('?')
        && defs.is_resource_type(only)
    {
        return defs.type_def(only).map(|t| t.name.as_str());
    }
    for i in (0..parts.len().saturating_sub(1)).rev() {
        if parts[i] == "_history" {
            continue;
        }
        if defs.is_resource_type(parts[i]) && !parts[i + 1].is_empty() && parts[i + 1] != "_history" {
            return defs.type_def(parts[i]).map(|t| t.name.as_str());
        }
    }
    None
}

fn not_number(f: Func, item: &Item<'_>) -> super::Error {
    exec(format!("{}() needs a number, not {}", f.name(), item.type_name()))
}

/// `toX()` gives the converted value or nothing; `convertsToX()` whether there is one.
fn convert<'a>(to: bool, value: Option<Item<'a>>) -> R<Coll<'a>> {
    Ok(if to { value.into_iter().collect() } else { vec![Item::Boolean(value.is_some())] })
}

fn to_boolean(p: Option<&Prim<'_>>) -> Option<bool> {
    match p? {
        Prim::Bool(b) => Some(*b),
        Prim::Int(1) => Some(true),
        Prim::Int(0) => Some(false),
        Prim::Dec(d) if d.eq_value(&Decimal::ONE) => Some(true),
        Prim::Dec(d) if d.is_zero() => Some(false),
        Prim::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn to_integer(p: Option<&Prim<'_>>) -> Option<i64> {
    match p? {
        Prim::Int(i) => Some(*i),
        Prim::Bool(b) => Some(i64::from(*b)),
        Prim::Str(s) => {
            let t = s.strip_prefix('+').unwrap_or(s);
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        }
        _ => None,
    }
}

fn to_decimal(p: Option<&Prim<'_>>) -> Option<Decimal> {
    match p? {
        Prim::Int(i) => Some(Decimal::from_i64(*i)),
        Prim::Dec(d) => Some(*d),
        Prim::Bool(b) => Some(if *b { Decimal::ONE } else { Decimal::ZERO }),
        Prim::Str(s) if !s.contains(['e', 'E']) => Decimal::parse(s),
        _ => None,
    }
}

fn to_date(p: Option<&Prim<'_>>) -> Option<Temporal> {
    match p? {
        Prim::Date(t) => Some(*t),
        Prim::DateTime(t) => Some(t.truncated(Precision::Day)),
        Prim::Str(s) => {
            Temporal::parse_date(s).or_else(|| Temporal::parse_datetime(s).map(|t| t.truncated(Precision::Day)))
        }
        _ => None,
    }
}

fn to_datetime(p: Option<&Prim<'_>>) -> Option<Temporal> {
    match p? {
        Prim::Date(t) | Prim::DateTime(t) => Some(*t),
        Prim::Str(s) => Temporal::parse_datetime(s),
        _ => None,
    }
}

fn to_time(p: Option<&Prim<'_>>) -> Option<Temporal> {
    match p? {
        Prim::Time(t) => Some(*t),
        Prim::Str(s) => Temporal::parse_time(s),
        _ => None,
    }
}

fn to_quantity<'a>(p: Option<&Prim<'_>>) -> Option<Quantity<'a>> {
    let one = |value| Some(Quantity { value, unit: Text::Borrowed("1"), calendar: None });
    match p? {
        Prim::Int(i) => one(Decimal::from_i64(*i)),
        Prim::Dec(d) => one(*d),
        Prim::Bool(b) => one(if *b { Decimal::parse("1.0")? } else { Decimal::parse("0.0")? }),
        Prim::Quantity(q) => {
            Some(Quantity { value: q.value, unit: Text::from(q.unit.to_string()), calendar: q.calendar })
        }
        Prim::Str(s) => quantity::parse(s),
        _ => None,
    }
}

/// `lowBoundary()` / `highBoundary()` of a number, quantity or date/time.
fn boundary<'a>(p: Option<Prim<'_>>, digits: Option<i64>, high: bool) -> Option<Item<'a>> {
    match p? {
        Prim::Int(i) => decimal_boundary(&i.to_string(), digits.unwrap_or(8), high).map(Item::Decimal),
        Prim::Dec(d) => decimal_boundary(&d.to_string(), digits.unwrap_or(8), high).map(Item::Decimal),
        Prim::Quantity(q) => decimal_boundary(&q.value.to_string(), digits.unwrap_or(8), high).map(|value| {
            Item::Quantity(Box::new(Quantity { value, unit: Text::from(q.unit.to_string()), calendar: q.calendar }))
        }),
        Prim::Date(t) => {
            let r = t.boundary(digits.unwrap_or(8), high, false)?;
            Some(if r.has_time() { Item::DateTime(r) } else { Item::Date(r) })
        }
        Prim::DateTime(t) => t.boundary(digits.unwrap_or(17), high, false).map(Item::DateTime),
        Prim::Time(t) => t.boundary(digits.unwrap_or(9), high, true).map(Item::Time),
        _ => None,
    }
}

/// The boundary of a decimal as written: the value is taken to stand for everything that
/// rounds to it (`1.587` for [1.5865, 1.5875)), and the boundary is given to `digits` decimal
/// places (the lower one truncated, the upper one rounded).
fn decimal_boundary(text: &str, digits: i64, high: bool) -> Option<Decimal> {
    if !(0..=28).contains(&digits) {
        return None;
    }
    let digits = digits as usize;
    let s = if let Some(abs) = text.strip_prefix('-') {
        format!("-{}", boundary_text(abs, digits, !high))
    } else {
        boundary_text(text, digits, high)
    };
    Decimal::parse(&s)
}

fn boundary_text(abs: &str, digits: usize, high: bool) -> String {
    let is_zero = abs.bytes().all(|b| b == b'0' || b == b'.');
    let widened = if is_zero {
        if high { "0.5".to_owned() } else { "-0.5".to_owned() }
    } else {
        let base = if high { abs.to_owned() } else { decrement_last(abs) };
        if base.contains('.') { format!("{base}5") } else { format!("{base}.5") }
    };
    if is_zero && !high {
        return format!("-{}", apply_precision("0.5", digits, true));
    }
    apply_precision(&widened, digits, !high)
}

/// Decrements the last digit of a decimal text, borrowing through zeros (`1.580` → `1.579`).
fn decrement_last(s: &str) -> String {
    let mut b: Vec<u8> = s.bytes().collect();
    for i in (0..b.len()).rev() {
        match b[i] {
            b'.' => continue,
            b'0' => b[i] = b'9',
            _ => {
                b[i] -= 1;
                break;
            }
        }
    }
    String::from_utf8(b).unwrap_or_default()
}

/// Cuts or pads a decimal text to `digits` places; when cutting, rounds half up unless `down`.
fn apply_precision(v: &str, digits: usize, down: bool) -> String {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() <= digits {
        let pad = "0".repeat(digits - frac.len());
        return if digits == 0 { int.to_owned() } else { format!("{int}.{frac}{pad}") };
    }
    let kept = &frac[..digits];
    let next = frac.as_bytes()[digits];
    let mut all: Vec<u8> = format!("{int}{kept}").into_bytes();
    if !down && next >= b'5' {
        let mut i = all.len();
        loop {
            if i == 0 {
                all.insert(0, b'1');
                break;
            }
            i -= 1;
            if all[i] == b'9' {
                all[i] = b'0';
            } else {
                all[i] += 1;
                break;
            }
        }
    }
    let text = String::from_utf8(all).unwrap_or_default();
    if digits == 0 {
        text
    } else {
        let (i, f) = text.split_at(text.len() - digits);
        format!("{i}.{f}")
    }
}

fn codec(f: Func, s: &str, format: &str) -> R<Option<String>> {
    Ok(match (f, format) {
        (Func::Encode, "base64") => Some(crate::codec::base64_encode(s.as_bytes(), false)),
        (Func::Encode, "urlbase64") => Some(crate::codec::base64_encode(s.as_bytes(), true)),
        (Func::Encode, "hex") => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
        (Func::Decode, "base64" | "urlbase64") => {
            crate::codec::base64_decode(s, format == "urlbase64").and_then(|b| String::from_utf8(b).ok())
        }
        (Func::Decode, "hex") => {
            if !s.len().is_multiple_of(2) {
                return Ok(None);
            }
            let bytes: Option<Vec<u8>> =
                (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
            bytes.and_then(|b| String::from_utf8(b).ok())
        }
        (Func::Escape, "html") => Some(
            s.chars()
                .map(|c| match c {
                    '<' => "&lt;".to_owned(),
                    '>' => "&gt;".to_owned(),
                    '&' => "&amp;".to_owned(),
                    '"' => "&quot;".to_owned(),
                    '\'' => "&#39;".to_owned(),
                    c => c.to_string(),
                })
                .collect(),
        ),
        (Func::Escape, "json") => Some(
            s.chars()
                .map(|c| match c {
                    '"' => "\\\"".to_owned(),
                    '\\' => "\\\\".to_owned(),
                    '\n' => "\\n".to_owned(),
                    '\r' => "\\r".to_owned(),
                    '\t' => "\\t".to_owned(),
                    c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
                    c => c.to_string(),
                })
                .collect(),
        ),
        (Func::Unescape, "html") => Some(crate::codec::unescape_xml(s)),
        (Func::Unescape, "json") => unescape_json(s),
        _ => return Err(exec(format!("{}(): unknown format '{format}'", f.name()))),
    })
}

/// Undoes JSON string escapes (`\"`, `\\`, `\n`, `\u0041`…); `None` for a broken one.
fn unescape_json(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_boundaries_follow_the_written_precision() {
        let b = |s: &str, d: i64, h: bool| decimal_boundary(s, d, h).map(|x| x.to_string());
        assert_eq!(b("1.587", 8, false).as_deref(), Some("1.58650000"));
        assert_eq!(b("1.587", 2, false).as_deref(), Some("1.58"));
        assert_eq!(b("1.587", 2, true).as_deref(), Some("1.59"));
        assert_eq!(b("1.587", 0, false).as_deref(), Some("1"));
        assert_eq!(b("-1.587", 0, false).as_deref(), Some("-2"));
        assert_eq!(b("-1.587", 2, true).as_deref(), Some("-1.58"));
        assert_eq!(b("120", 2, false).as_deref(), Some("119.50"));
        assert_eq!(b("-0.0034", 1, false).as_deref(), Some("-0.0"));
        assert_eq!(b("0.0034", 1, true).as_deref(), Some("0.0"));
        assert_eq!(b("12.500", 4, true).as_deref(), Some("12.5005"));
        assert_eq!(b("0", 6, false).as_deref(), Some("-0.500000"));
        assert_eq!(b("1.587", 32, false), None);
        assert_eq!(b("1.587", -1, false), None);
    }

    #[test]
    fn codecs() {}

    #[test]
    fn reference_types() {
        assert_eq!(reference_type("Patient/1"), Some("Patient"));
        assert_eq!(reference_type("http://x.org/fhir/Observation/9/_history/2"), Some("Observation"));
        assert_eq!(reference_type("urn:uuid:1234"), None);
        assert_eq!(reference_type("#p1"), None);
        assert_eq!(reference_type("Encounter?identifier=a|b"), Some("Encounter"));
        assert_eq!(reference_type("Nonsense?x=1"), None);
    }
}
