//! Lexical and value-range rules of the FHIR primitive types.

use serde_json::Value;

use crate::definitions::{Definitions, Primitive};

/// Checks a JSON value against a primitive type; the error says what is wrong with it.
pub(crate) fn check(defs: &Definitions, p: Primitive, value: &Value) -> Result<(), String> {
    match p {
        Primitive::Boolean => value.is_boolean().then_some(()).ok_or_else(|| "must be true or false".into()),
        Primitive::Integer | Primitive::PositiveInt | Primitive::UnsignedInt => {
            let Value::Number(n) = value else { return Err("must be a JSON number".into()) };
            let Some(n) = n.as_i64() else {
                // Beyond 64 bits `as_i64` fails too; say which rule was broken.
                let text = n.to_string();
                return Err(if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    format!("{text} is out of range for a 32-bit integer")
                } else {
                    format!("{text} is not a whole number")
                });
            };
            let (low, what) = match p {
                Primitive::PositiveInt => (1, "a positiveInt (1 or more)"),
                Primitive::UnsignedInt => (0, "an unsignedInt (0 or more)"),
                _ => (i64::from(i32::MIN), "a 32-bit integer"),
            };
            if n < low || n > i64::from(i32::MAX) { Err(format!("{n} is out of range for {what}")) } else { Ok(()) }
        }
        // JSON's number grammar is the decimal regex; the exact text is kept by serde_json's
        // arbitrary_precision, so there is nothing more to check.
        Primitive::Decimal => value.is_number().then_some(()).ok_or_else(|| "must be a JSON number".into()),
        _ => {
            let Value::String(s) = value else { return Err("must be a JSON string".into()) };
            if s.is_empty() {
                return Err("must not be empty (omit the element instead)".into());
            }
            match p {
                Primitive::String | Primitive::Markdown => {
                    // The spec's rule `[ \r\n\t\S]+` is written in the XML Schema / Java dialect,
                    // where `\s` is ASCII whitespace only: of all whitespace it refuses just the
                    // vertical tab and the form feed. A no-break space (which HL7's own value sets
                    // contain) is `\S` and allowed.
                    if s.chars().any(|c| matches!(c, '\u{0B}' | '\u{0C}')) {
                        return Err(
                            "contains a vertical tab or form feed (only space, tab, CR and LF may separate words)"
                                .into(),
                        );
                    }
                    Ok(())
                }
                Primitive::Xhtml => check_xhtml(s),
                // `\S*`: any run of non-space characters (the regex would also accept nothing,
                // which the empty check above already refused).
                Primitive::Uri | Primitive::Url | Primitive::Canonical => {
                    if s.chars().any(char::is_whitespace) {
                        return Err(format!("'{}' is not a valid {} (no whitespace)", shorten(s), p.name()));
                    }
                    Ok(())
                }
                Primitive::Id => {
                    if crate::is_valid_id(s) {
                        Ok(())
                    } else {
                        Err(format!("'{}' is not a valid id (1-64 of A-Z a-z 0-9 - .)", shorten(s)))
                    }
                }
                _ => {
                    if let Some(rule) = defs.primitive_rule(p)
                        && !rule.is_match(s)
                    {
                        return Err(format!("'{}' is not a valid {}", shorten(s), p.name()));
                    }
                    if matches!(p, Primitive::Date | Primitive::DateTime | Primitive::Instant) {
                        check_calendar(s)?;
                    }
                    Ok(())
                }
            }
        }
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s.to_owned() }
}

/// The regexes accept `2021-02-30`; the calendar does not.
fn check_calendar(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Ok(());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok());
    let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else { return Ok(()) };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day > days { Err(format!("'{s}' is not a calendar date")) } else { Ok(()) }
}

/// Elements R4 forbids in a narrative (active content, forms, document-level elements).
const BANNED_ELEMENTS: &[&str] = &[
    "script", "iframe", "object", "embed", "applet", "form", "input", "base", "link", "meta", "style", "frame",
    "frameset", "html", "head", "body",
];

/// The narrative must be one well-formed XHTML `div` in the XHTML namespace with no active
/// content (R4 narrative rules, txt-1/txt-2). A light parser: tags balance, attributes are
/// quoted, entities are closed, no scripts, event handlers or `javascript:` links.
fn check_xhtml(s: &str) -> Result<(), String> {
    let t = s.trim();
    if !t.starts_with("<div") {
        return Err("the narrative must be a single <div> element".into());
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            check_text(rest)?;
            if stack.is_empty() {
                return Err("the narrative has text after its <div>".into());
            }
            break;
        };
        let text = &rest[..lt];
        check_text(text)?;
        if stack.is_empty() && !text.trim().is_empty() {
            return Err("the narrative has text outside its <div>".into());
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("the narrative has an unclosed comment")?;
            rest = &after[end + 3..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("the narrative has an unclosed CDATA section")?;
            rest = &after[end + 3..];
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            return Err("the narrative must not contain declarations or processing instructions".into());
        }
        if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("the narrative has an unclosed end tag")?;
            let name = after[..end].trim();
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => return Err(format!("the narrative closes </{name}> where <{open}> is open")),
                None => return Err(format!("the narrative closes </{name}> that was never opened")),
            }
            rest = &after[end + 1..];
            continue;
        }
        let (name, self_closing, consumed) = parse_start_tag(rest, stack.is_empty())?;
        if stack.is_empty() {
            roots += 1;
            if roots > 1 || name != "div" {
                return Err("the narrative must be a single <div> element".into());
            }
        }
        if BANNED_ELEMENTS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!("the narrative must not contain <{name}> elements"));
        }
        if !self_closing {
            stack.push(name);
        }
        rest = &rest[consumed..];
    }
    match stack.last() {
        Some(open) => Err(format!("the narrative leaves <{open}> unclosed")),
        None => Ok(()),
    }
}

/// Parses `<name attr="v" …>` at the start of `s`: the element name, whether it closes itself,
/// and the bytes consumed. The root must declare the XHTML namespace.
fn parse_start_tag(s: &str, is_root: bool) -> Result<(&str, bool, usize), String> {
    let bytes = s.as_bytes();
    let mut i = 1;
    let name_end = i + bytes[i..].iter().take_while(|b| is_name_byte(**b)).count();
    if name_end == i {
        return Err("the narrative has a '<' that starts no element (write &lt;)".into());
    }
    let name = &s[i..name_end];
    i = name_end;
    let mut has_namespace = false;
    loop {
        i += bytes[i..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        match bytes.get(i) {
            None => return Err(format!("the narrative has an unclosed <{name}> tag")),
            Some(b'>') => {
                i += 1;
                break;
            }
            Some(b'/') if bytes.get(i + 1) == Some(&b'>') => {
                if is_root && !has_namespace {
                    return Err(xmlns_missing());
                }
                return Ok((name, true, i + 2));
            }
            Some(_) => {}
        }
        let attr_start = i;
        i += bytes[i..].iter().take_while(|b| is_name_byte(**b)).count();
        if i == attr_start {
            return Err(format!("the narrative has a malformed attribute in <{name}>"));
        }
        let attr = &s[attr_start..i];
        i += bytes[i..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("the narrative's attribute '{attr}' in <{name}> has no value"));
        }
        i += 1;
        i += bytes[i..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        let quote = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(format!("the narrative's attribute '{attr}' in <{name}> must be quoted")),
        };
        i += 1;
        let len = bytes[i..].iter().position(|b| *b == quote).ok_or("the narrative has an unclosed attribute value")?;
        let value = &s[i..i + len];
        i += len + 1;
        let lower = attr.to_ascii_lowercase();
        if lower.starts_with("on") {
            return Err(format!("the narrative must not contain event handler attributes ({attr})"));
        }
        if value.trim_start().to_ascii_lowercase().starts_with("javascript:") {
            return Err("the narrative must not contain javascript: links".into());
        }
        check_text(value)?;
        if attr == "xmlns" && value == "http://www.w3.org/1999/xhtml" {
            has_namespace = true;
        }
    }
    if is_root && !has_namespace {
        return Err(xmlns_missing());
    }
    Ok((name, false, i))
}

fn xmlns_missing() -> String {
    "the narrative <div> must declare xmlns=\"http://www.w3.org/1999/xhtml\"".into()
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.')
}

/// Text and attribute values: every `&` starts a closed entity reference.
fn check_text(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        let after = &rest[at + 1..];
        let end = after.find(';').filter(|&e| e > 0 && e <= 32);
        let ok = end.is_some_and(|e| {
            let entity = &after[..e];
            match entity.strip_prefix('#') {
                Some(num) => match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                    Some(hex) => !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                    None => !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()),
                },
                None => entity.bytes().all(|b| b.is_ascii_alphanumeric()),
            }
        });
        if !ok {
            return Err("the narrative has a bare '&' (write &amp;)".into());
        }
        rest = &after[end.unwrap_or(0)..];
    }
    if rest.contains('<') {
        return Err("the narrative has a '<' in an attribute value".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions;
    use serde_json::json;

    fn ok(t: &str, v: Value) -> bool {
        let p = Primitive::from_name(t).expect("a primitive");
        check(definitions(), p, &v).is_ok()
    }

    #[test]
    fn numbers() {
        assert!(ok("integer", json!(-5)));
        assert!(!ok("integer", json!(2_147_483_648_i64)));
        assert!(!ok("integer", json!(1.5)));
        assert!(!ok("positiveInt", json!(0)));
        assert!(ok("unsignedInt", json!(0)));
        assert!(!ok("unsignedInt", json!(-1)));
        assert!(ok("decimal", json!(1.5)));
        assert!(!ok("decimal", json!("1.5")));
        assert!(!ok("boolean", json!("true")));
    }

    #[test]
    fn dates_and_times() {
        assert!(ok("date", json!("2024-02-29")));
        assert!(!ok("date", json!("2023-02-29")));
        assert!(!ok("date", json!("2021-02-30")));
        assert!(ok("date", json!("2021")));
        assert!(ok("date", json!("2021-04")));
        assert!(!ok("date", json!("2021-13")));
        assert!(ok("dateTime", json!("2021-04-01T10:00:00+02:00")));
        assert!(!ok("dateTime", json!("2021-04-01T25:00:00Z")));
        assert!(ok("instant", json!("2021-04-01T10:00:00.123Z")));
        assert!(!ok("instant", json!("2021-04-01T10:00:00")), "an instant needs a time zone");
        assert!(ok("time", json!("23:59:59")));
        assert!(!ok("time", json!("24:00:00")));
    }

    #[test]
    fn strings_ids_codes() {
        assert!(!ok("string", json!("")));
        assert!(ok("string", json!("multi\nline")));
        assert!(ok("id", json!("a-B.9")));
        assert!(!ok("id", json!("no spaces")));
        assert!(!ok("id", json!("x".repeat(65))));
        assert!(ok("code", json!("final")));
        assert!(!ok("code", json!(" final")));
        assert!(!ok("uri", json!("has space")));
        assert!(ok("base64Binary", json!("aGVsbG8=")));
        assert!(ok("uuid", json!("urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7")));
        assert!(ok("oid", json!("urn:oid:1.2.3")));
    }

    #[test]
    fn narratives() {
        assert!(ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Hi</p></div>")));
        assert!(!ok("xhtml", json!("<p>Hi</p>")));
        assert!(!ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x()</script></div>")));
        assert!(!ok(
            "xhtml",
            json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"a\" onerror=\"x()\"/></div>")
        ));
        assert!(ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">once upon a time</div>")));
        assert!(ok(
            "xhtml",
            json!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\"><!-- c --><table><tr><td>a &amp; b&#160;</td></tr></table><br/></div>"
            )
        ));
        assert!(!ok("xhtml", json!("<div>no namespace</div>")));
        assert!(!ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>unclosed</div>")));
        assert!(!ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">a & b</div>")));
        assert!(!ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=x>unquoted</a></div>")));
        assert!(!ok(
            "xhtml",
            json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"javascript:x()\">x</a></div>")
        ));
        assert!(!ok(
            "xhtml",
            json!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\">a</div><div xmlns=\"http://www.w3.org/1999/xhtml\">b</div>"
            )
        ));
        assert!(!ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick = 'x()'>a</p></div>")));
    }
}
