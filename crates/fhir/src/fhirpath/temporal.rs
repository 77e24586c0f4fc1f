//! Dates, date-times and times with their precision. FHIRPath compares them component by
//! component down to the precision both have: `@2012-04-15 = @2012-04-15T10:00` is neither
//! true nor false but empty, while `@2012-04-15 = @2012-04-16` is false.

use std::cmp::Ordering;
use std::fmt::{self, Write};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl Precision {
    /// Seconds and milliseconds compare as one component (`@T10:30:00 = @T10:30:00.0`).
    fn level(self) -> u8 {
        match self {
            Precision::Year => 0,
            Precision::Month => 1,
            Precision::Day => 2,
            Precision::Hour => 3,
            Precision::Minute => 4,
            Precision::Second | Precision::Millisecond => 5,
        }
    }
}

/// One Date, DateTime or Time value; which one is said by the [`super::Item`] variant holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millis: u16,
    pub precision: Precision,
    /// Offset from UTC in minutes.
    pub tz: Option<i16>,
    /// The offset was written `Z`.
    pub zulu: bool,
}

impl Temporal {
    const EMPTY: Temporal = Temporal {
        year: 0,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        millis: 0,
        precision: Precision::Year,
        tz: None,
        zulu: false,
    };

    pub fn has_time(&self) -> bool {
        self.precision >= Precision::Hour
    }

    /// `YYYY[-MM[-DD]]`.
    pub fn parse_date(s: &str) -> Option<Self> {
        let mut c = Cursor::new(s);
        let t = c.date()?;
        c.done().then_some(t)
    }

    /// A FHIRPath DateTime: a date, optionally `T`, a (partial) time and an offset.
    pub fn parse_datetime(s: &str) -> Option<Self> {
        let mut c = Cursor::new(s);
        let mut t = c.date()?;
        if c.eat(b'T')
            && let Some(time) = c.time_opt()?
        {
            t.hour = time.hour;
            t.minute = time.minute;
            t.second = time.second;
            t.millis = time.millis;
            t.precision = time.precision;
            c.offset(&mut t)?;
        }
        c.done().then_some(t)
    }

    /// `HH[:MM[:SS[.fff]]]`, without offset.
    pub fn parse_time(s: &str) -> Option<Self> {
        let mut c = Cursor::new(s);
        let t = c.time_opt()??;
        c.done().then_some(t)
    }

    /// The same instant written in UTC (only for values with a time and an offset).
    fn to_utc(self) -> Self {
        let Some(offset) = self.tz else { return self };
        if !self.has_time() {
            return self;
        }
        let Some(ndt) = self.naive() else { return self };
        let utc = ndt - Duration::minutes(i64::from(offset));
        let mut out = Temporal::from_naive(utc, self.precision);
        out.tz = Some(0);
        out.zulu = true;
        out
    }

    fn naive(&self) -> Option<NaiveDateTime> {
        let date = NaiveDate::from_ymd_opt(self.year, u32::from(self.month), u32::from(self.day))?;
        let time = NaiveTime::from_hms_milli_opt(
            u32::from(self.hour),
            u32::from(self.minute),
            u32::from(self.second),
            u32::from(self.millis),
        )?;
        Some(NaiveDateTime::new(date, time))
    }

    fn from_naive(ndt: NaiveDateTime, precision: Precision) -> Self {
        Temporal {
            year: ndt.year(),
            month: ndt.month() as u8,
            day: ndt.day() as u8,
            hour: ndt.hour() as u8,
            minute: ndt.minute() as u8,
            second: ndt.second() as u8,
            millis: (ndt.nanosecond() / 1_000_000).min(999) as u16,
            precision,
            tz: None,
            zulu: false,
        }
    }

    pub fn from_chrono(dt: &chrono::DateTime<chrono::FixedOffset>, precision: Precision) -> Self {
        let mut t = Temporal::from_naive(dt.naive_local(), precision);
        t.tz = Some((dt.offset().local_minus_utc() / 60) as i16);
        t
    }

    fn components(&self) -> [i64; 6] {
        [
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
            i64::from(self.hour),
            i64::from(self.minute),
            i64::from(self.second) * 1000 + i64::from(self.millis),
        ]
    }

    /// Compares two dates/date-times (or two times): `None` when the answer depends on
    /// components one of them does not have.
    pub fn compare(&self, other: &Self, times: bool) -> Option<Ordering> {
        let (a, b) = if self.has_time() && other.has_time() {
            match (self.tz.is_some(), other.tz.is_some()) {
                (true, true) => (self.to_utc(), other.to_utc()),
                (false, false) => (*self, *other),
                // One has an offset, the other none: the instant of the second is unknown.
                _ => return None,
            }
        } else {
            (*self, *other)
        };
        let (la, lb) = (a.precision.level(), b.precision.level());
        let start = if times { 3 } else { 0 };
        let (ca, cb) = (a.components(), b.components());
        for level in start..=la.min(lb) {
            let ord = ca[level as usize].cmp(&cb[level as usize]);
            if ord != Ordering::Equal {
                return Some(ord);
            }
        }
        (la == lb).then_some(Ordering::Equal)
    }

    pub fn equivalent(&self, other: &Self, times: bool) -> bool {
        self.precision.level() == other.precision.level() && self.compare(other, times) == Some(Ordering::Equal)
    }

    /// Adds a calendar duration (negative to subtract), truncated to whole units.
    pub fn add(&self, amount: i64, unit: CalendarUnit, is_time: bool) -> Option<Self> {
        let mut full = *self;
        if is_time {
            let base = NaiveTime::from_hms_milli_opt(
                u32::from(self.hour),
                u32::from(self.minute),
                u32::from(self.second),
                u32::from(self.millis),
            )?;
            let d = match unit {
                CalendarUnit::Hour => Duration::try_hours(amount)?,
                CalendarUnit::Minute => Duration::try_minutes(amount)?,
                CalendarUnit::Second => Duration::try_seconds(amount)?,
                CalendarUnit::Millisecond => Duration::try_milliseconds(amount)?,
                _ => return None,
            };
            let (t, _) = base.overflowing_add_signed(d);
            full.hour = t.hour() as u8;
            full.minute = t.minute() as u8;
            full.second = t.second() as u8;
            full.millis = (t.nanosecond() / 1_000_000) as u16;
            return Some(full);
        }
        match unit {
            CalendarUnit::Year | CalendarUnit::Month => {
                let months = if unit == CalendarUnit::Year { amount.checked_mul(12)? } else { amount };
                let total = (i64::from(self.year) * 12 + i64::from(self.month) - 1).checked_add(months)?;
                let year = i32::try_from(total.div_euclid(12)).ok()?;
                let month = (total.rem_euclid(12) + 1) as u8;
                if !(1..=9999).contains(&year) {
                    return None;
                }
                full.year = year;
                full.month = month;
                full.day = full.day.min(days_in_month(year, month));
                Some(full)
            }
            _ => {
                let ndt = self.naive()?;
                let d = match unit {
                    CalendarUnit::Week => Duration::try_weeks(amount)?,
                    CalendarUnit::Day => Duration::try_days(amount)?,
                    CalendarUnit::Hour => Duration::try_hours(amount)?,
                    CalendarUnit::Minute => Duration::try_minutes(amount)?,
                    CalendarUnit::Second => Duration::try_seconds(amount)?,
                    _ => Duration::try_milliseconds(amount)?,
                };
                let moved = ndt.checked_add_signed(d)?;
                let mut out = Temporal::from_naive(moved, self.precision);
                out.tz = self.tz;
                out.zulu = self.zulu;
                if !(1..=9999).contains(&out.year) {
                    return None;
                }
                Some(out)
            }
        }
    }

    /// The number of digits of the precision, as `precision()` reports it (`@2014` is 4,
    /// milliseconds 17; times count from the hour: `@T10:30` is 4).
    pub fn precision_digits(&self, is_time: bool) -> i64 {
        let full = match self.precision {
            Precision::Year => 4,
            Precision::Month => 6,
            Precision::Day => 8,
            Precision::Hour => 10,
            Precision::Minute => 12,
            Precision::Second => 14,
            Precision::Millisecond => 17,
        };
        if is_time { full - 8 } else { full }
    }

    /// The earliest (or latest) value the imprecise value may stand for, to `digits` of
    /// precision. Without an offset the widest one is assumed (+14:00 low, -12:00 high).
    pub fn boundary(&self, digits: i64, high: bool, is_time: bool) -> Option<Self> {
        let digits = if is_time { digits + 8 } else { digits };
        let precision = match digits {
            4 => Precision::Year,
            6 => Precision::Month,
            8 => Precision::Day,
            10 => Precision::Hour,
            12 => Precision::Minute,
            14 => Precision::Second,
            17 => Precision::Millisecond,
            _ => return None,
        };
        if is_time && precision < Precision::Hour {
            return None;
        }
        let mut t = *self;
        // An hour alone is not a FHIR time: `T08` is taken as `T08:00`.
        let own = if self.precision == Precision::Hour { Precision::Minute } else { self.precision };
        if own < Precision::Month {
            t.month = if high { 12 } else { 1 };
        }
        if own < Precision::Day {
            t.day = if high { days_in_month(t.year, t.month) } else { 1 };
        }
        if own < Precision::Hour {
            t.hour = if high { 23 } else { 0 };
        }
        if own < Precision::Minute {
            t.minute = if high { 59 } else { 0 };
        }
        if own < Precision::Second {
            t.second = if high { 59 } else { 0 };
        }
        if own < Precision::Millisecond {
            t.millis = if high { 999 } else { 0 };
        }
        t.precision = precision;
        if precision >= Precision::Hour && !is_time && t.tz.is_none() {
            t.tz = Some(if high { -12 * 60 } else { 14 * 60 });
            t.zulu = false;
        }
        if precision < Precision::Hour {
            t.tz = None;
        }
        Some(t)
    }

    /// Truncates to a coarser precision (DateTime to Date and the like).
    pub fn truncated(&self, precision: Precision) -> Self {
        let mut t = *self;
        if precision < t.precision {
            t.precision = precision;
        }
        if t.precision < Precision::Hour {
            t.tz = None;
            t.zulu = false;
        }
        t
    }

    pub fn write_date(&self, out: &mut String) {
        let _ = write!(out, "{:04}", self.year);
        if self.precision >= Precision::Month {
            let _ = write!(out, "-{:02}", self.month);
        }
        if self.precision >= Precision::Day {
            let _ = write!(out, "-{:02}", self.day);
        }
    }

    pub fn write_time(&self, out: &mut String) {
        let _ = write!(out, "{:02}", self.hour);
        if self.precision >= Precision::Minute {
            let _ = write!(out, ":{:02}", self.minute);
        }
        if self.precision >= Precision::Second {
            let _ = write!(out, ":{:02}", self.second);
        }
        if self.precision >= Precision::Millisecond {
            let _ = write!(out, ".{:03}", self.millis);
        }
    }

    pub fn write_offset(&self, out: &mut String) {
        if let Some(tz) = self.tz {
            if tz == 0 && self.zulu {
                out.push('Z');
            } else {
                let sign = if tz < 0 { '-' } else { '+' };
                let _ = write!(out, "{sign}{:02}:{:02}", tz.unsigned_abs() / 60, tz.unsigned_abs() % 60);
            }
        }
    }

    pub fn date_string(&self) -> String {
        let mut s = String::with_capacity(10);
        self.write_date(&mut s);
        s
    }

    pub fn datetime_string(&self) -> String {
        let mut s = String::with_capacity(29);
        self.write_date(&mut s);
        if self.has_time() {
            s.push('T');
            self.write_time(&mut s);
            self.write_offset(&mut s);
        }
        s
    }

    pub fn time_string(&self) -> String {
        let mut s = String::with_capacity(12);
        self.write_time(&mut s);
        s
    }
}

impl fmt::Display for Temporal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.datetime_string())
    }
}

pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The calendar duration units of FHIRPath (`year` … `millisecond`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarUnit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl CalendarUnit {
    pub fn from_keyword(word: &str) -> Option<Self> {
        Some(match word {
            "year" | "years" => CalendarUnit::Year,
            "month" | "months" => CalendarUnit::Month,
            "week" | "weeks" => CalendarUnit::Week,
            "day" | "days" => CalendarUnit::Day,
            "hour" | "hours" => CalendarUnit::Hour,
            "minute" | "minutes" => CalendarUnit::Minute,
            "second" | "seconds" => CalendarUnit::Second,
            "millisecond" | "milliseconds" => CalendarUnit::Millisecond,
            _ => return None,
        })
    }

    /// The UCUM unit of a definite duration; for years and months the (non-calendar) mean
    /// year `a` and month `mo`.
    pub fn ucum(self) -> &'static str {
        match self {
            CalendarUnit::Year => "a",
            CalendarUnit::Month => "mo",
            CalendarUnit::Week => "wk",
            CalendarUnit::Day => "d",
            CalendarUnit::Hour => "h",
            CalendarUnit::Minute => "min",
            CalendarUnit::Second => "s",
            CalendarUnit::Millisecond => "ms",
        }
    }

    /// The calendar unit a UCUM code may stand for in date arithmetic (definite durations only:
    /// `a` and `mo` are means, not calendar years and months).
    pub fn from_ucum_definite(code: &str) -> Option<Self> {
        Some(match code {
            "wk" => CalendarUnit::Week,
            "d" => CalendarUnit::Day,
            "h" => CalendarUnit::Hour,
            "min" => CalendarUnit::Minute,
            "s" => CalendarUnit::Second,
            "ms" => CalendarUnit::Millisecond,
            _ => return None,
        })
    }
}

struct Cursor<'s> {
    b: &'s [u8],
    i: usize,
}

impl<'s> Cursor<'s> {
    fn new(s: &'s str) -> Self {
        Cursor { b: s.as_bytes(), i: 0 }
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(s.iter().fold(0, |acc, &d| acc * 10 + u32::from(d - b'0')))
    }

    fn peek_digit(&self, at: usize) -> bool {
        self.b.get(self.i + at).is_some_and(u8::is_ascii_digit)
    }

    fn date(&mut self) -> Option<Temporal> {
        let mut t = Temporal::EMPTY;
        t.year = self.digits(4)? as i32;
        if self.b.get(self.i) == Some(&b'-') && self.peek_digit(1) {
            self.i += 1;
            t.month = self.digits(2)? as u8;
            if !(1..=12).contains(&t.month) {
                return None;
            }
            t.precision = Precision::Month;
            if self.b.get(self.i) == Some(&b'-') && self.peek_digit(1) {
                self.i += 1;
                t.day = self.digits(2)? as u8;
                if t.day == 0 || t.day > days_in_month(t.year, t.month) {
                    return None;
                }
                t.precision = Precision::Day;
            }
        }
        Some(t)
    }

    /// `Ok(None)` when no time follows.
    fn time_opt(&mut self) -> Option<Option<Temporal>> {
        if !self.peek_digit(0) {
            return Some(None);
        }
        let mut t = Temporal::EMPTY;
        t.hour = self.digits(2)? as u8;
        if t.hour > 23 {
            return None;
        }
        t.precision = Precision::Hour;
        if self.b.get(self.i) == Some(&b':') && self.peek_digit(1) {
            self.i += 1;
            t.minute = self.digits(2)? as u8;
            if t.minute > 59 {
                return None;
            }
            t.precision = Precision::Minute;
            if self.b.get(self.i) == Some(&b':') && self.peek_digit(1) {
                self.i += 1;
                t.second = self.digits(2)? as u8;
                if t.second > 59 {
                    return None;
                }
                t.precision = Precision::Second;
                if self.b.get(self.i) == Some(&b'.') && self.peek_digit(1) {
                    self.i += 1;
                    let start = self.i;
                    let mut ms = 0u32;
                    while self.peek_digit(0) {
                        if self.i - start < 3 {
                            ms = ms * 10 + u32::from(self.b[self.i] - b'0');
                        }
                        self.i += 1;
                    }
                    for _ in (self.i - start)..3 {
                        ms *= 10;
                    }
                    t.millis = ms as u16;
                    t.precision = Precision::Millisecond;
                }
            }
        }
        Some(Some(t))
    }

    fn offset(&mut self, t: &mut Temporal) -> Option<()> {
        match self.b.get(self.i) {
            Some(b'Z') => {
                self.i += 1;
                t.tz = Some(0);
                t.zulu = true;
            }
            Some(&c @ (b'+' | b'-')) => {
                self.i += 1;
                let h = self.digits(2)?;
                if !self.eat(b':') {
                    return None;
                }
                let m = self.digits(2)?;
                if h > 14 || m > 59 {
                    return None;
                }
                let mins = (h * 60 + m) as i16;
                t.tz = Some(if c == b'-' { -mins } else { mins });
            }
            _ => {}
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Temporal {
        Temporal::parse_datetime(s).expect(s)
    }

    #[test]
    fn parses_with_precision() {
        assert_eq!(dt("2015").precision, Precision::Year);
        assert_eq!(dt("2015-02-04T14").precision, Precision::Hour);
        assert_eq!(dt("2015-02-04T14:34:28.123").precision, Precision::Millisecond);
        assert_eq!(dt("2015-02-04T14:34:28+10:00").tz, Some(600));
        assert_eq!(dt("2015-02-04T14:34:28.1Z").millis, 100);
        assert!(Temporal::parse_datetime("2015-02-30").is_none());
        assert!(Temporal::parse_datetime("2015-13").is_none());
        assert!(Temporal::parse_date("2015-02-04T10").is_none());
        assert_eq!(Temporal::parse_time("14:34").map(|t| t.precision), Some(Precision::Minute));
        assert_eq!(dt("2015-02-04T14:34:28.123+10:00").to_string(), "2015-02-04T14:34:28.123+10:00");
    }

    #[test]
    fn compares_by_precision() {
        let cmp = |a: &str, b: &str| dt(a).compare(&dt(b), false);
        assert_eq!(cmp("2012-04-15", "2012-04-15"), Some(Ordering::Equal));
        assert_eq!(cmp("2012-04-15", "2012-04-16"), Some(Ordering::Less));
        assert_eq!(cmp("2012-04-15", "2012-04-15T10:00:00"), None);
        assert_eq!(cmp("2018-03", "2018-03-01"), None);
        assert_eq!(cmp("2012-04-15T15:30:31", "2012-04-15T15:30:31.0"), Some(Ordering::Equal));
        assert_eq!(cmp("2012-04-15T15:30:31", "2012-04-15T15:30:31.1"), Some(Ordering::Less));
        assert_eq!(cmp("2012-04-15T15:00:00+02:00", "2012-04-15T16:00:00+03:00"), Some(Ordering::Equal));
        assert_eq!(cmp("2017-11-05T01:30:00.0-04:00", "2017-11-05T01:15:00.0-05:00"), Some(Ordering::Less));
        assert_eq!(cmp("2012-04-15T15:00:00Z", "2012-04-15T10:00:00"), None);
        assert!(!dt("2012-04-15").equivalent(&dt("2012-04-15T10:00:00"), false));
    }

    #[test]
    fn calendar_arithmetic() {
        let add = |s: &str, n, u| dt(s).add(n, u, false).map(|t| t.to_string());
        assert_eq!(add("1973-12-25", 7, CalendarUnit::Day), Some("1974-01-01".into()));
        assert_eq!(add("1973-12-25", 1, CalendarUnit::Month), Some("1974-01-25".into()));
        assert_eq!(add("2020-01-31", 1, CalendarUnit::Month), Some("2020-02-29".into()));
        assert_eq!(add("1974-12-25", -1, CalendarUnit::Month), Some("1974-11-25".into()));
        assert_eq!(
            add("1973-12-25T00:00:00.000+10:00", 10, CalendarUnit::Millisecond),
            Some("1973-12-25T00:00:00.010+10:00".into())
        );
    }

    #[test]
    fn boundaries() {
        let b = |s: &str, d, h| dt(s).boundary(d, h, false).map(|t| t.to_string());
        assert_eq!(b("2014", 6, false), Some("2014-01".into()));
        assert_eq!(b("2014", 6, true), Some("2014-12".into()));
        assert_eq!(b("2014-01-01T08", 17, false), Some("2014-01-01T08:00:00.000+14:00".into()));
        assert_eq!(b("2014-01-01T08", 17, true), Some("2014-01-01T08:00:59.999-12:00".into()));
        assert_eq!(b("2014-01-01T08:05-05:00", 17, true), Some("2014-01-01T08:05:59.999-05:00".into()));
    }
}
