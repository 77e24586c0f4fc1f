//! Lexer and precedence-climbing parser for the FHIRPath grammar (N1), with the date, time
//! and quantity literals, delimited identifiers, `%`-constants and comments.

use std::sync::Arc;

use regex::Regex;

use super::ast::{BinOp, Call, Expr, Func, Lit, TypeSpec};
use super::decimal::Decimal;
use super::temporal::{CalendarUnit, Temporal};
use super::{ErrorKind, error};
use crate::Error;
use crate::definitions::definitions;

/// How deep an expression may nest (operators, invocations, parentheses). Evaluation
/// recurses over the tree, so this bounds its stack use too.
pub const MAX_DEPTH: usize = 200;

/// Longest expression accepted, in bytes.
const MAX_LENGTH: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A `backtick`-delimited identifier: never a keyword.
    Delimited(String),
    Str(String),
    Num(String),
    Date(String),
    DateTime(String),
    Time(String),
    Env(String),
    This,
    Index,
    Total,
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Plus,
    Minus,
    Star,
    Slash,
    Amp,
    Pipe,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

fn syntax(pos: usize, message: impl Into<String>) -> Error {
    error(ErrorKind::Syntax, message, Some(pos))
}

fn semantic(pos: usize, message: impl Into<String>) -> Error {
    error(ErrorKind::Semantic, message, Some(pos))
}

struct Lexer<'s> {
    s: &'s str,
    b: &'s [u8],
    i: usize,
}

impl<'s> Lexer<'s> {
    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            if self.b[self.i..].starts_with(b"//") {
                while self.i < self.b.len() && self.b[self.i] != b'\n' {
                    self.i += 1;
                }
            } else if self.b[self.i..].starts_with(b"/*") {
                let start = self.i;
                match self.s[self.i + 2..].find("*/") {
                    Some(end) => self.i += 2 + end + 2,
                    None => return Err(syntax(start, "unterminated /* comment")),
                }
            } else {
                return Ok(());
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), Error> {
        self.skip_trivia()?;
        let start = self.i;
        let Some(&c) = self.b.get(self.i) else { return Ok((Tok::Eof, start)) };
        let two = self.b.get(self.i + 1).copied();
        let tok = match c {
            b'.' => self.one(Tok::Dot),
            b',' => self.one(Tok::Comma),
            b'(' => self.one(Tok::LParen),
            b')' => self.one(Tok::RParen),
            b'[' => self.one(Tok::LBracket),
            b']' => self.one(Tok::RBracket),
            b'{' => self.one(Tok::LBrace),
            b'}' => self.one(Tok::RBrace),
            b'+' => self.one(Tok::Plus),
            b'-' => self.one(Tok::Minus),
            b'*' => self.one(Tok::Star),
            b'/' => self.one(Tok::Slash),
            b'&' => self.one(Tok::Amp),
            b'|' => self.one(Tok::Pipe),
            b'=' => self.one(Tok::Eq),
            b'~' => self.one(Tok::Equiv),
            b'!' if two == Some(b'=') => self.two(Tok::Ne),
            b'!' if two == Some(b'~') => self.two(Tok::NotEquiv),
            b'<' if two == Some(b'=') => self.two(Tok::Le),
            b'<' => self.one(Tok::Lt),
            b'>' if two == Some(b'=') => self.two(Tok::Ge),
            b'>' => self.one(Tok::Gt),
            b'\'' => Tok::Str(self.quoted(b'\'')?),
            b'`' => Tok::Delimited(self.quoted(b'`')?),
            b'@' => self.temporal()?,
            b'%' => {
                self.i += 1;
                match self.b.get(self.i) {
                    Some(b'`') => Tok::Env(self.quoted(b'`')?),
                    Some(b'\'') => Tok::Env(self.quoted(b'\'')?),
                    Some(b'"') => Tok::Env(self.quoted(b'"')?),
                    Some(c) if c.is_ascii_alphabetic() || *c == b'_' => Tok::Env(self.word().to_owned()),
                    _ => return Err(syntax(start, "expected a name after %")),
                }
            }
            b'$' => {
                self.i += 1;
                match self.word() {
                    "this" => Tok::This,
                    "index" => Tok::Index,
                    "total" => Tok::Total,
                    other => return Err(syntax(start, format!("unknown special variable ${other}"))),
                }
            }
            c if c.is_ascii_digit() => {
                while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                if self.b.get(self.i) == Some(&b'.') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                    while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                }
                Tok::Num(self.s[start..self.i].to_owned())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => Tok::Ident(self.word().to_owned()),
            _ => {
                let ch = self.s[start..].chars().next().unwrap_or('?');
                return Err(syntax(start, format!("unexpected character '{ch}'")));
            }
        };
        Ok((tok, start))
    }

    fn one(&mut self, t: Tok) -> Tok {
        self.i += 1;
        t
    }

    fn two(&mut self, t: Tok) -> Tok {
        self.i += 2;
        t
    }

    fn word(&mut self) -> &'s str {
        let start = self.i;
        while self.i < self.b.len() && (self.b[self.i].is_ascii_alphanumeric() || self.b[self.i] == b'_') {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn quoted(&mut self, q: u8) -> Result<String, Error> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(syntax(start, "unterminated string or identifier"));
            };
            if c == q {
                self.i += 1;
                return Ok(out);
            }
            if c == b'\\' {
                let esc = self.b.get(self.i + 1).copied();
                self.i += 2;
                match esc {
                    Some(b'\'') => out.push('\''),
                    Some(b'"') => out.push('"'),
                    Some(b'`') => out.push('`'),
                    Some(b'\\') => out.push('\\'),
                    Some(b'/') => out.push('/'),
                    Some(b'f') => out.push('\u{c}'),
                    Some(b'n') => out.push('\n'),
                    Some(b'r') => out.push('\r'),
                    Some(b't') => out.push('\t'),
                    Some(b'u') => {
                        let hex = self.s.get(self.i..self.i + 4).ok_or_else(|| syntax(self.i, "bad \\u escape"))?;
                        let code = u32::from_str_radix(hex, 16).map_err(|_| syntax(self.i, "bad \\u escape"))?;
                        self.i += 4;
                        // A surrogate pair spelt as two escapes.
                        let ch = if (0xD800..0xDC00).contains(&code) && self.s[self.i..].starts_with("\\u") {
                            let low = self
                                .s
                                .get(self.i + 2..self.i + 6)
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| syntax(self.i, "bad \\u escape"))?;
                            self.i += 6;
                            char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF))
                        } else {
                            char::from_u32(code)
                        };
                        out.push(ch.ok_or_else(|| syntax(self.i, "bad \\u escape"))?);
                    }
                    _ => return Err(syntax(self.i - 2, "unknown escape sequence")),
                }
                continue;
            }
            let ch = self.s[self.i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            self.i += ch.len_utf8();
        }
    }

    fn digits(&mut self, n: usize) -> bool {
        if self.b.get(self.i..self.i + n).is_some_and(|s| s.iter().all(u8::is_ascii_digit)) {
            self.i += n;
            true
        } else {
            false
        }
    }

    fn at(&self, c: u8) -> bool {
        self.b.get(self.i) == Some(&c)
    }

    fn time_part(&mut self) {
        if !self.digits(2) {
            return;
        }
        if self.at(b':') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
            self.digits(2);
            if self.at(b':') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
                self.digits(2);
                if self.at(b'.') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                    while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                        self.i += 1;
                    }
                }
            }
        }
    }

    fn offset_part(&mut self) {
        if self.at(b'Z') {
            self.i += 1;
        } else if (self.at(b'+') || self.at(b'-'))
            && self.b.get(self.i + 1..self.i + 6).is_some_and(|s| {
                s[0].is_ascii_digit()
                    && s[1].is_ascii_digit()
                    && s[2] == b':'
                    && s[3].is_ascii_digit()
                    && s[4].is_ascii_digit()
            })
        {
            self.i += 6;
        }
    }

    fn temporal(&mut self) -> Result<Tok, Error> {
        let start = self.i;
        self.i += 1;
        if self.at(b'T') {
            self.i += 1;
            let body = self.i;
            self.time_part();
            let time_end = self.i;
            self.offset_part();
            if self.i != time_end {
                return Err(syntax(start, "a time literal cannot have a timezone offset"));
            }
            return Ok(Tok::Time(self.s[body..time_end].to_owned()));
        }
        let body = self.i;
        if !self.digits(4) {
            return Err(syntax(start, "expected a date after @"));
        }
        if self.at(b'-') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
            self.digits(2);
            if self.at(b'-') && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
                self.digits(2);
            }
        }
        if self.at(b'T') {
            self.i += 1;
            self.time_part();
            self.offset_part();
            return Ok(Tok::DateTime(self.s[body..self.i].to_owned()));
        }
        Ok(Tok::Date(self.s[body..self.i].to_owned()))
    }
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    tok: Tok,
    pos: usize,
}

/// A parsed subexpression and the depth of its tree.
type Sub = (Expr, usize);

fn infix(tok: &Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Ident(w) => match w.as_str() {
            "implies" => (BinOp::Implies, 1),
            "or" => (BinOp::Or, 2),
            "xor" => (BinOp::Xor, 2),
            "and" => (BinOp::And, 3),
            "in" => (BinOp::In, 4),
            "contains" => (BinOp::Contains, 4),
            "div" => (BinOp::IntDiv, 10),
            "mod" => (BinOp::Mod, 10),
            _ => return None,
        },
        Tok::Eq => (BinOp::Eq, 5),
        Tok::Ne => (BinOp::Ne, 5),
        Tok::Equiv => (BinOp::Equiv, 5),
        Tok::NotEquiv => (BinOp::NotEquiv, 5),
        Tok::Lt => (BinOp::Lt, 6),
        Tok::Le => (BinOp::Le, 6),
        Tok::Gt => (BinOp::Gt, 6),
        Tok::Ge => (BinOp::Ge, 6),
        Tok::Pipe => (BinOp::Union, 7),
        Tok::Plus => (BinOp::Add, 9),
        Tok::Minus => (BinOp::Sub, 9),
        Tok::Amp => (BinOp::Concat, 9),
        Tok::Star => (BinOp::Mul, 10),
        Tok::Slash => (BinOp::Div, 10),
        _ => return None,
    })
}

/// `is` and `as` bind between `|` and the additive operators.
const TYPE_OP_POWER: u8 = 8;
const UNARY_POWER: u8 = 11;

impl<'s> Parser<'s> {
    fn advance(&mut self) -> Result<(), Error> {
        let (tok, pos) = self.lexer.next()?;
        self.tok = tok;
        self.pos = pos;
        Ok(())
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), Error> {
        if self.tok != t {
            return Err(syntax(self.pos, format!("expected {what}, found {}", describe(&self.tok))));
        }
        self.advance()
    }

    fn check_depth(&self, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(syntax(self.pos, format!("the expression nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn expr(&mut self, min_power: u8, nesting: usize) -> Result<Sub, Error> {
        self.check_depth(nesting)?;
        let (mut lhs, mut depth) = self.prefix(nesting)?;
        loop {
            if let Tok::Ident(w) = &self.tok
                && (w == "is" || w == "as")
                && TYPE_OP_POWER >= min_power
            {
                let is = w == "is";
                self.advance()?;
                let spec = self.type_specifier()?;
                depth += 1;
                self.check_depth(depth)?;
                lhs = if is { Expr::Is(Box::new(lhs), spec) } else { Expr::As(Box::new(lhs), spec) };
                continue;
            }
            let Some((op, power)) = infix(&self.tok) else { break };
            if power < min_power {
                break;
            }
            self.advance()?;
            let (rhs, rdepth) = self.expr(power + 1, nesting + 1)?;
            depth = depth.max(rdepth) + 1;
            self.check_depth(depth)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok((lhs, depth))
    }

    fn prefix(&mut self, nesting: usize) -> Result<Sub, Error> {
        self.check_depth(nesting)?;
        match self.tok {
            Tok::Minus | Tok::Plus => {
                let neg = self.tok == Tok::Minus;
                self.advance()?;
                let (e, d) = self.expr(UNARY_POWER, nesting + 1)?;
                let e = if neg { Expr::Negate(Box::new(e)) } else { Expr::Plus(Box::new(e)) };
                Ok((e, d + 1))
            }
            _ => {
                let (term, d) = self.term(nesting)?;
                self.postfix(term, d, nesting)
            }
        }
    }

    fn postfix(&mut self, mut e: Expr, mut depth: usize, nesting: usize) -> Result<Sub, Error> {
        loop {
            match self.tok {
                Tok::Dot => {
                    self.advance()?;
                    let pos = self.pos;
                    let name = match std::mem::replace(&mut self.tok, Tok::Eof) {
                        Tok::Ident(n) | Tok::Delimited(n) => n,
                        other => {
                            return Err(syntax(pos, format!("expected a name after '.', found {}", describe(&other))));
                        }
                    };
                    self.advance()?;
                    depth += 1;
                    self.check_depth(depth)?;
                    if self.tok == Tok::LParen {
                        let (call, d) = self.call(Some(e), &name, pos, nesting)?;
                        e = call;
                        depth = depth.max(d + 1);
                    } else {
                        e = Expr::Member(Box::new(e), name);
                    }
                }
                Tok::LBracket => {
                    self.advance()?;
                    let (index, d) = self.expr(0, nesting + 1)?;
                    self.expect(Tok::RBracket, "']'")?;
                    depth = depth.max(d) + 1;
                    self.check_depth(depth)?;
                    e = Expr::Indexer(Box::new(e), Box::new(index));
                }
                _ => return Ok((e, depth)),
            }
        }
    }

    fn term(&mut self, nesting: usize) -> Result<Sub, Error> {
        let pos = self.pos;
        let tok = std::mem::replace(&mut self.tok, Tok::Eof);
        let e = match tok {
            Tok::Num(text) => {
                self.advance()?;
                let value = if text.contains('.') {
                    Lit::Dec(Decimal::parse(&text).ok_or_else(|| syntax(pos, "decimal literal out of range"))?)
                } else {
                    Lit::Int(text.parse().map_err(|_| syntax(pos, "integer literal out of range"))?)
                };
                match &self.tok {
                    Tok::Str(unit) => {
                        let unit = unit.clone();
                        self.advance()?;
                        Expr::Literal(Lit::Quantity(number(&value), Arc::from(unit.as_str()), None))
                    }
                    Tok::Ident(word) if CalendarUnit::from_keyword(word).is_some() => {
                        let cal = CalendarUnit::from_keyword(word);
                        let unit = Arc::from(word.as_str());
                        self.advance()?;
                        Expr::Literal(Lit::Quantity(number(&value), unit, cal))
                    }
                    _ => Expr::Literal(value),
                }
            }
            Tok::Str(s) => {
                self.advance()?;
                Expr::Literal(Lit::Str(Arc::from(s)))
            }
            Tok::Date(s) => {
                self.advance()?;
                Expr::Literal(Lit::Date(Temporal::parse_date(&s).ok_or_else(|| syntax(pos, "invalid date"))?))
            }
            Tok::DateTime(s) => {
                self.advance()?;
                let t = Temporal::parse_datetime(&s).ok_or_else(|| syntax(pos, "invalid date/time"))?;
                Expr::Literal(Lit::DateTime(t))
            }
            Tok::Time(s) => {
                self.advance()?;
                Expr::Literal(Lit::Time(Temporal::parse_time(&s).ok_or_else(|| syntax(pos, "invalid time"))?))
            }
            Tok::Env(name) => {
                self.advance()?;
                Expr::Env(name)
            }
            Tok::This => {
                self.advance()?;
                Expr::This
            }
            Tok::Index => {
                self.advance()?;
                Expr::Index
            }
            Tok::Total => {
                self.advance()?;
                Expr::Total
            }
            Tok::LBrace => {
                self.advance()?;
                self.expect(Tok::RBrace, "'}'")?;
                Expr::Empty
            }
            Tok::LParen => {
                self.advance()?;
                let (e, d) = self.expr(0, nesting + 1)?;
                self.expect(Tok::RParen, "')'")?;
                return Ok((e, d + 1));
            }
            tok @ (Tok::Ident(_) | Tok::Delimited(_)) => {
                let (name, delimited) = match tok {
                    Tok::Ident(n) => (n, false),
                    Tok::Delimited(n) => (n, true),
                    _ => return Err(syntax(pos, "expected a name")),
                };
                self.advance()?;
                if self.tok == Tok::LParen {
                    return self.call(None, &name, pos, nesting);
                }
                match name.as_str() {
                    "true" if !delimited => Expr::Literal(Lit::Bool(true)),
                    "false" if !delimited => Expr::Literal(Lit::Bool(false)),
                    _ => {
                        let type_name = name.starts_with(|c: char| c.is_ascii_uppercase())
                            && definitions().type_def(&name).is_some();
                        Expr::Ident { name, type_name }
                    }
                }
            }
            other => return Err(syntax(pos, format!("expected an expression, found {}", describe(&other)))),
        };
        Ok((e, 1))
    }

    fn call(&mut self, target: Option<Expr>, name: &str, pos: usize, nesting: usize) -> Result<Sub, Error> {
        self.expect(Tok::LParen, "'('")?;
        let mut args = Vec::new();
        let mut depth = 1;
        if self.tok != Tok::RParen {
            loop {
                let (a, d) = self.expr(0, nesting + 1)?;
                depth = depth.max(d + 1);
                args.push(a);
                if self.tok == Tok::Comma {
                    self.advance()?;
                    continue;
                }
                break;
            }
        }
        self.expect(Tok::RParen, "')' or ','")?;
        self.check_depth(depth)?;
        let Some((func, min, max)) = Func::lookup(name) else {
            return Err(semantic(pos, format!("unknown function '{name}'")));
        };
        if args.len() < min || args.len() > max {
            let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            return Err(semantic(
                pos,
                format!("{name}() takes {expected} argument{}, not {}", if max == 1 { "" } else { "s" }, args.len()),
            ));
        }
        let type_arg = match func {
            Func::Is | Func::As | Func::OfType => Some(type_of_arg(&args[0], pos)?),
            _ => None,
        };
        let regex = match (func, args.first()) {
            (Func::Matches | Func::MatchesFull | Func::ReplaceMatches, Some(Expr::Literal(Lit::Str(p)))) => {
                Some(Arc::new(compile_regex(p, func == Func::MatchesFull).map_err(|m| semantic(pos, m))?))
            }
            _ => None,
        };
        let mut descending = Vec::new();
        if func == Func::Sort {
            for a in &mut args {
                let desc = matches!(a, Expr::Negate(_));
                if desc && let Expr::Negate(inner) = std::mem::replace(a, Expr::Empty) {
                    *a = *inner;
                }
                descending.push(desc);
            }
        }
        let unordered_input = target.as_ref().is_some_and(is_unordered);
        let call = Call { target, func, args, type_arg, regex, descending, unordered_input };
        Ok((Expr::Call(Box::new(call)), depth))
    }

    fn type_specifier(&mut self) -> Result<TypeSpec, Error> {
        let pos = self.pos;
        let first = match std::mem::replace(&mut self.tok, Tok::Eof) {
            Tok::Ident(n) | Tok::Delimited(n) => n,
            other => return Err(syntax(pos, format!("expected a type name, found {}", describe(&other)))),
        };
        self.advance()?;
        if self.tok == Tok::Dot {
            self.advance()?;
            let second = match std::mem::replace(&mut self.tok, Tok::Eof) {
                Tok::Ident(n) | Tok::Delimited(n) => n,
                other => return Err(syntax(self.pos, format!("expected a type name, found {}", describe(&other)))),
            };
            self.advance()?;
            return resolve_type(Some(&first), &second, pos);
        }
        resolve_type(None, &first, pos)
    }
}

fn number(l: &Lit) -> Decimal {
    match l {
        Lit::Int(i) => Decimal::from_i64(*i),
        Lit::Dec(d) => *d,
        _ => Decimal::ZERO,
    }
}

/// Paths whose order is not defined: `children()`, `descendants()` and what is navigated or
/// filtered from them.
fn is_unordered(e: &Expr) -> bool {
    match e {
        Expr::Call(c) => match c.func {
            Func::Children | Func::Descendants => true,
            Func::Where | Func::Select | Func::OfType | Func::Distinct | Func::Exclude | Func::Intersect => {
                c.target.as_ref().is_some_and(is_unordered)
            }
            _ => false,
        },
        Expr::Member(inner, _) => is_unordered(inner),
        _ => false,
    }
}

pub(crate) fn compile_regex(pattern: &str, full: bool) -> Result<Regex, String> {
    // FHIRPath regexes match across lines (`.` matches a newline) and `matches()` looks for
    // the pattern anywhere in the string; `matchesFull()` anchors it.
    let source = if full { format!("(?s)^(?:{pattern})$") } else { format!("(?s){pattern}") };
    regex::RegexBuilder::new(&source)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression '{pattern}': {e}"))
}

fn type_of_arg(arg: &Expr, pos: usize) -> Result<TypeSpec, Error> {
    match arg {
        Expr::Ident { name, .. } => resolve_type(None, name, pos),
        Expr::Member(inner, name) => match inner.as_ref() {
            Expr::Ident { name: ns, .. } => resolve_type(Some(ns), name, pos),
            _ => Err(semantic(pos, "expected a type name as the argument")),
        },
        _ => Err(semantic(pos, "expected a type name as the argument")),
    }
}

const SYSTEM_TYPES: [&str; 8] = ["Boolean", "Integer", "Decimal", "String", "Date", "DateTime", "Time", "Quantity"];

fn resolve_type(namespace: Option<&str>, name: &str, pos: usize) -> Result<TypeSpec, Error> {
    let system = SYSTEM_TYPES.iter().find(|&&t| t == name).copied();
    let fhir = definitions().type_def(name).map(|t| t.name.as_str());
    match namespace {
        Some("System") => Ok(system.map_or(TypeSpec::Nothing, TypeSpec::System)),
        Some("FHIR") => fhir.map(TypeSpec::Fhir).ok_or_else(|| semantic(pos, format!("unknown FHIR type '{name}'"))),
        Some(other) => Err(semantic(pos, format!("unknown type namespace '{other}'"))),
        // The model's types first (`Quantity` is FHIR.Quantity, which a System.Quantity value
        // also satisfies), then System's.
        None => match (fhir, system) {
            (Some(f), _) => Ok(TypeSpec::Fhir(f)),
            (None, Some(s)) => Ok(TypeSpec::System(s)),
            (None, None) => Err(semantic(pos, format!("unknown type '{name}'"))),
        },
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Eof => "the end of the expression".into(),
        Tok::Ident(n) | Tok::Delimited(n) => format!("'{n}'"),
        Tok::Str(s) => format!("the string '{s}'"),
        Tok::Num(n) => format!("the number {n}"),
        other => format!("{other:?}"),
    }
}

/// Parses an expression into its tree.
pub(crate) fn parse(text: &str) -> Result<Expr, Error> {
    if text.len() > MAX_LENGTH {
        return Err(syntax(0, format!("the expression is longer than {MAX_LENGTH} bytes")));
    }
    let mut p = Parser { lexer: Lexer { s: text, b: text.as_bytes(), i: 0 }, tok: Tok::Eof, pos: 0 };
    p.advance()?;
    if p.tok == Tok::Eof {
        return Err(syntax(0, "the expression is empty"));
    }
    let (e, _) = p.expr(0, 0)?;
    if p.tok != Tok::Eof {
        return Err(syntax(p.pos, format!("unexpected {} after the expression", describe(&p.tok))));
    }
    Ok(e)
}
