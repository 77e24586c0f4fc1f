//! Exact decimals: an `i128` mantissa and a decimal scale (value = mantissa / 10^scale). FHIR
//! decimals keep their written precision (`1.50` has scale 2), which FHIRPath's equivalence,
//! `precision()` and the boundary functions depend on, so the scale is never normalised away
//! except where an operation defines its own (division).

use std::cmp::Ordering;
use std::fmt;

/// The largest scale kept; beyond it values are rounded.
pub const MAX_SCALE: u8 = 38;

/// Significant fractional digits a division produces before trailing zeros are dropped.
const DIVISION_SCALE: u8 = 28;

const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

fn pow10(n: u8) -> Option<i128> {
    POW10.get(n as usize).and_then(|&p| i128::try_from(p).ok())
}

#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    m: i128,
    scale: u8,
    /// `-0.0` as written: only the boundary functions produce it (they are defined on the
    /// text), so it only changes how the value prints.
    neg_zero: bool,
}

impl Decimal {
    pub const ZERO: Decimal = Decimal { m: 0, scale: 0, neg_zero: false };
    pub const ONE: Decimal = Decimal { m: 1, scale: 0, neg_zero: false };

    pub fn new(m: i128, scale: u8) -> Option<Self> {
        if scale > MAX_SCALE {
            return Decimal { m, scale: MAX_SCALE, neg_zero: false }.round_from(scale);
        }
        Some(Decimal { m, scale, neg_zero: false })
    }

    fn round_from(self, real_scale: u8) -> Option<Self> {
        // `self.m` is really scaled by `real_scale`; drop the excess digits with rounding.
        let drop = real_scale - MAX_SCALE;
        let p = pow10(drop.min(38))?;
        let q = self.m / p;
        let r = self.m % p;
        let q = if r.unsigned_abs() * 2 >= p.unsigned_abs() { q + self.m.signum() } else { q };
        Some(Decimal { m: q, scale: MAX_SCALE, neg_zero: false })
    }

    pub fn from_i64(i: i64) -> Self {
        Decimal { m: i128::from(i), scale: 0, neg_zero: false }
    }

    pub fn mantissa(&self) -> i128 {
        self.m
    }

    /// Digits after the decimal point, as written.
    pub fn scale(&self) -> u8 {
        self.scale
    }

    pub fn is_zero(&self) -> bool {
        self.m == 0
    }

    pub fn is_negative(&self) -> bool {
        self.m < 0
    }

    /// Parses `[+-]digits[.digits][e[+-]digits]`. Too many digits are rounded; a value too
    /// large for 38 digits is refused.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let mut i = 0;
        let mut neg = false;
        if let Some(&c) = b.first()
            && (c == b'+' || c == b'-')
        {
            neg = c == b'-';
            i = 1;
        }
        let mut digits: Vec<u8> = Vec::with_capacity(b.len());
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            digits.push(b[i] - b'0');
            i += 1;
        }
        if i == int_start {
            return None;
        }
        let mut frac = 0i64;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                digits.push(b[i] - b'0');
                i += 1;
            }
            if i == start {
                return None;
            }
            frac = (i - start) as i64;
        }
        let mut exp = 0i64;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            let mut eneg = false;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                eneg = b[i] == b'-';
                i += 1;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                exp = exp.checked_mul(10)?.checked_add(i64::from(b[i] - b'0'))?;
                if exp > 1000 {
                    return None;
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            if eneg {
                exp = -exp;
            }
        }
        if i != b.len() {
            return None;
        }
        // Leading zeros carry nothing.
        let first = digits.iter().position(|&d| d != 0).unwrap_or(digits.len());
        let digits = &digits[first..];
        let mut scale = frac - exp;
        let mut kept: &[u8] = digits;
        let mut round_up = false;
        // Keep at most 37 significant digits and a scale of at most MAX_SCALE.
        let excess_digits = kept.len().saturating_sub(37) as i64;
        let excess_scale = (scale - i64::from(MAX_SCALE)).max(0);
        let drop = excess_digits.max(excess_scale);
        if drop > 0 {
            let drop = drop as usize;
            if drop >= kept.len() {
                round_up = drop == kept.len() && kept.first().is_some_and(|&d| d >= 5);
                kept = &[];
            } else {
                round_up = kept[kept.len() - drop] >= 5;
                kept = &kept[..kept.len() - drop];
            }
            scale -= drop as i64;
        }
        let mut m: i128 = 0;
        for &d in kept {
            m = m.checked_mul(10)?.checked_add(i128::from(d))?;
        }
        if round_up {
            m = m.checked_add(1)?;
        }
        if scale < 0 {
            let p = pow10(u8::try_from(-scale).ok()?)?;
            m = m.checked_mul(p)?;
            scale = 0;
        }
        Some(Decimal { m: if neg { -m } else { m }, scale: scale as u8, neg_zero: neg && m == 0 })
    }

    /// The same value with at least `scale` digits after the point.
    pub fn with_scale(self, scale: u8) -> Option<Self> {
        if scale <= self.scale {
            return Some(self);
        }
        let m = self.m.checked_mul(pow10(scale - self.scale)?)?;
        Some(Decimal { m, scale, neg_zero: false })
    }

    fn aligned(self, other: Self) -> Option<(i128, i128, u8)> {
        let s = self.scale.max(other.scale);
        Some((self.with_scale(s)?.m, other.with_scale(s)?.m, s))
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        let (a, b, s) = self.aligned(other)?;
        Some(Decimal { m: a.checked_add(b)?, scale: s, neg_zero: false })
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        let (a, b, s) = self.aligned(other)?;
        Some(Decimal { m: a.checked_sub(b)?, scale: s, neg_zero: false })
    }

    /// The exact product; digits beyond what 38 can hold are rounded away (never the integer
    /// part: that overflows to `None`).
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        let (mut a, mut b) = (self, other);
        loop {
            if let Some(m) = a.m.checked_mul(b.m) {
                let scale = u16::from(a.scale) + u16::from(b.scale);
                if scale <= u16::from(MAX_SCALE) {
                    return Some(Decimal { m, scale: scale as u8, neg_zero: false });
                }
                let drop = (scale - u16::from(MAX_SCALE)) as u8;
                return Decimal { m, scale: 0, neg_zero: false }.drop_digits(drop, MAX_SCALE);
            }
            // Lose the least significant digit of the longer operand and retry.
            let (la, lb) = (a.digit_count(), b.digit_count());
            let target = if la >= lb { &mut a } else { &mut b };
            if target.scale == 0 {
                return None;
            }
            *target = target.round(target.scale - 1)?;
        }
    }

    fn drop_digits(self, drop: u8, new_scale: u8) -> Option<Self> {
        if drop > 38 {
            return Some(Decimal { m: 0, scale: new_scale, neg_zero: false });
        }
        let p = pow10(drop)?;
        let q = self.m / p;
        let r = self.m % p;
        let q = if r.unsigned_abs() * 2 >= p.unsigned_abs() { q + self.m.signum() } else { q };
        Some(Decimal { m: q, scale: new_scale, neg_zero: false })
    }

    fn digit_count(&self) -> u32 {
        let mut n = self.m.unsigned_abs();
        let mut c = 1;
        while n >= 10 {
            n /= 10;
            c += 1;
        }
        c
    }

    /// Division to 28 fractional digits, rounded half away from zero, trailing zeros dropped;
    /// `None` for a zero divisor.
    pub fn checked_div(self, other: Self) -> Option<Self> {
        if other.m == 0 {
            return None;
        }
        let negative = (self.m < 0) != (other.m < 0);
        let a = self.m.unsigned_abs();
        let b = other.m.unsigned_abs();
        // a/10^sa ÷ b/10^sb = (a/b) · 10^(sb-sa)
        let mut q = a / b;
        let mut r = a % b;
        let mut qs: i32 = 0;
        let want = i32::from(DIVISION_SCALE) + i32::from(self.scale) - i32::from(other.scale) + 1;
        while qs < want.max(1) {
            let (Some(r10), Some(q10)) = (r.checked_mul(10), q.checked_mul(10)) else { break };
            let digit = r10 / b;
            let Some(nq) = q10.checked_add(digit) else { break };
            if nq > i128::MAX as u128 {
                break;
            }
            q = nq;
            r = r10 % b;
            qs += 1;
        }
        let mut scale = qs + i32::from(self.scale) - i32::from(other.scale);
        let mut m = i128::try_from(q).ok()?;
        if scale < 0 {
            m = m.checked_mul(pow10(u8::try_from(-scale).ok()?)?)?;
            scale = 0;
        }
        let mut d = Decimal { m: if negative { -m } else { m }, scale: u8::try_from(scale).ok()?, neg_zero: false };
        if d.scale > DIVISION_SCALE {
            d = d.round(DIVISION_SCALE)?;
        }
        Some(d.normalized())
    }

    /// Truncated division (FHIRPath `div`).
    pub fn div_trunc(self, other: Self) -> Option<i128> {
        if other.m == 0 {
            return None;
        }
        let (a, b, _) = self.aligned(other)?;
        Some(a / b)
    }

    /// The remainder of truncated division (FHIRPath `mod`).
    pub fn checked_rem(self, other: Self) -> Option<Self> {
        if other.m == 0 {
            return None;
        }
        let (a, b, s) = self.aligned(other)?;
        Some(Decimal { m: a % b, scale: s, neg_zero: false })
    }

    pub fn negated(self) -> Self {
        Decimal { m: self.m.saturating_neg(), scale: self.scale, neg_zero: false }
    }

    pub fn abs(self) -> Self {
        Decimal { m: self.m.saturating_abs(), scale: self.scale, neg_zero: false }
    }

    /// Rounds half away from zero to `digits` after the point.
    pub fn round(self, digits: u8) -> Option<Self> {
        if digits >= self.scale {
            return Some(self);
        }
        self.drop_digits(self.scale - digits, digits)
    }

    /// The integer part (toward zero), floor and ceiling as whole numbers.
    pub fn trunc_int(self) -> i128 {
        match pow10(self.scale) {
            Some(p) => self.m / p,
            None => 0,
        }
    }

    pub fn floor_int(self) -> i128 {
        let t = self.trunc_int();
        if self.m < 0 && !self.is_integral() { t - 1 } else { t }
    }

    pub fn ceil_int(self) -> i128 {
        let t = self.trunc_int();
        if self.m > 0 && !self.is_integral() { t + 1 } else { t }
    }

    pub fn is_integral(&self) -> bool {
        pow10(self.scale).is_none_or(|p| self.m % p == 0)
    }

    /// The value as an `i64` when it is a whole number in range.
    pub fn to_i64(&self) -> Option<i64> {
        if !self.is_integral() {
            return None;
        }
        i64::try_from(self.trunc_int()).ok()
    }

    /// Without trailing zeros after the point.
    pub fn normalized(mut self) -> Self {
        while self.scale > 0 && self.m % 10 == 0 {
            self.m /= 10;
            self.scale -= 1;
        }
        self
    }

    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// A binary float rounded to 15 significant digits, so that `ln`, `log` and the like give
    /// the decimal a person expects (`16.log(2)` is `4`, not `3.9999999999999996`).
    pub fn from_f64(f: f64) -> Option<Self> {
        if !f.is_finite() {
            return None;
        }
        if f == 0.0 {
            return Some(Decimal::ZERO);
        }
        let text = format!("{f:.14e}");
        Decimal::parse(&text).map(Decimal::normalized)
    }

    /// Compares values (not their written precision).
    pub fn cmp_value(&self, other: &Self) -> Ordering {
        let (sa, sb) = (self.m.signum(), other.m.signum());
        if sa != sb {
            return sa.cmp(&sb);
        }
        let mag = cmp_magnitude(self.m.unsigned_abs(), self.scale, other.m.unsigned_abs(), other.scale);
        if sa < 0 { mag.reverse() } else { mag }
    }

    pub fn eq_value(&self, other: &Self) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }

    /// FHIRPath decimal equivalence: equal when rounded to the precision of the less precise.
    pub fn equivalent(&self, other: &Self) -> bool {
        let s = self.scale.min(other.scale);
        match (self.round(s), other.round(s)) {
            (Some(a), Some(b)) => a.eq_value(&b),
            _ => false,
        }
    }
}

fn cmp_magnitude(a: u128, sa: u8, b: u128, sb: u8) -> Ordering {
    let pa = POW10[sa as usize];
    let pb = POW10[sb as usize];
    let (ia, fa) = (a / pa, a % pa);
    let (ib, fb) = (b / pb, b % pb);
    if ia != ib {
        return ia.cmp(&ib);
    }
    // Both fractions are below 10^38 once brought to the larger scale.
    let s = sa.max(sb);
    let fa = fa * POW10[(s - sa) as usize];
    let fb = fb * POW10[(s - sb) as usize];
    fa.cmp(&fb)
}

/// Equal values with the same written precision (`1.0` and `1.00` differ; use
/// [`Decimal::eq_value`] for FHIRPath `=`).
impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.scale == other.scale && self.m == other.m
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.m.unsigned_abs().to_string();
        if self.m < 0 || self.neg_zero {
            f.write_str("-")?;
        }
        let scale = self.scale as usize;
        if scale == 0 {
            return f.write_str(&digits);
        }
        if digits.len() <= scale {
            f.write_str("0.")?;
            for _ in 0..scale - digits.len() {
                f.write_str("0")?;
            }
            f.write_str(&digits)
        } else {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{int}.{frac}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).expect(s)
    }

    #[test]
    fn parses_and_prints_exactly() {
        for s in ["0", "1.50", "-0.001", "1234567890987654321.0", "0.00000001", "-12.500"] {
            assert_eq!(d(s).to_string(), s);
        }
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("6.0221367e23").to_string(), "602213670000000000000000");
        assert_eq!(d("1.380658e-23").to_string(), "0.00000000000000000000001380658");
        assert_eq!(d("-0.0").to_string(), "-0.0");
        assert!(Decimal::parse("1.").is_none());
        assert!(Decimal::parse(".5").is_none());
        assert!(Decimal::parse("1e999999").is_none());
        let pi = d("3.1415926535897932384626433832795028841971693993751058209749445923");
        assert_eq!(pi.to_string(), "3.141592653589793238462643383279502884");
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(d("1.2").checked_add(d("1.8")).map(|x| x.to_string()), Some("3.0".into()));
        assert_eq!(d("1.2").checked_mul(d("1.8")).map(|x| x.to_string()), Some("2.16".into()));
        assert_eq!(d("1").checked_div(d("2")).map(|x| x.to_string()), Some("0.5".into()));
        assert_eq!(
            d("1.2").checked_div(d("1.8")).map(|x| x.to_string()),
            Some("0.6666666666666666666666666667".into())
        );
        assert_eq!(d("4.0").checked_div(d("2.0")).map(|x| x.to_string()), Some("2".into()));
        assert_eq!(d("2.2").checked_rem(d("1.8")).map(|x| x.to_string()), Some("0.4".into()));
        assert_eq!(d("2.2").div_trunc(d("1.8")), Some(1));
        assert!(d("1").checked_div(d("0")).is_none());
        assert_eq!(d("4040").checked_mul(d("0.001")).map(|x| x.to_string()), Some("4.040".into()));
    }

    #[test]
    fn compares_values_and_equivalence() {
        assert!(d("1.10").eq_value(&d("1.1")));
        assert!(d("0.0").eq_value(&d("0")));
        assert!(d("-0.0").eq_value(&d("0")));
        assert_eq!(d("-2").cmp_value(&d("-1.5")), Ordering::Less);
        assert_eq!(d("10").cmp_value(&d("9.999")), Ordering::Greater);
        assert!(d("0.6666666666").equivalent(&d("0.67")));
        assert!(!d("0.6666666666").equivalent(&d("0.6")));
        assert!(d("4").equivalent(&d("4.040")));
    }

    #[test]
    fn rounding() {
        assert_eq!(d("3.14159").round(3).map(|x| x.to_string()), Some("3.142".into()));
        assert_eq!(d("-1.5").round(0).map(|x| x.to_string()), Some("-2".into()));
        assert_eq!(d("-2.1").floor_int(), -3);
        assert_eq!(d("-1.1").ceil_int(), -1);
        assert_eq!(d("-1.56").trunc_int(), -1);
        assert_eq!(Decimal::from_f64(16f64.ln() / 2f64.ln()).map(|x| x.to_string()), Some("4".into()));
        assert_eq!(Decimal::from_f64(0.1).map(|x| x.to_string()), Some("0.1".into()));
    }
}
