//! Small builders for recurring FHIR datatypes, so the generator reads as clinical content.

use std::str::FromStr;

use chrono::{NaiveDate, TimeDelta};
use serde_json::{Number, Value, json};

use crate::catalog::UCUM;

pub(crate) fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

pub(crate) fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [coding(system, code, display)]})
}

pub(crate) fn concept_text(system: &str, code: &str, display: &str, text: &str) -> Value {
    json!({"coding": [coding(system, code, display)], "text": text})
}

pub(crate) fn reference(target: &str, display: &str) -> Value {
    json!({"reference": target, "display": display})
}

pub(crate) fn urn(id: &uuid::Uuid) -> String {
    format!("urn:uuid:{id}")
}

/// `scaled / 10^places` as a JSON number carrying exactly that text (`98.6`, `0.94`, `120`):
/// with `arbitrary_precision` the digits go out as written, never through a float.
pub(crate) fn decimal(scaled: i64, places: u32) -> Value {
    let text = if places == 0 {
        scaled.to_string()
    } else {
        let p = 10u64.pow(places);
        let sign = if scaled < 0 { "-" } else { "" };
        let a = scaled.unsigned_abs();
        format!("{sign}{}.{:0width$}", a / p, a % p, width = places as usize)
    };
    // Text built from integers always parses; Null would only ever surface in the tests.
    Number::from_str(&text).map_or(Value::Null, Value::Number)
}

pub(crate) fn quantity(scaled: i64, places: u32, unit: &str, code: &str) -> Value {
    json!({"value": decimal(scaled, places), "unit": unit, "system": UCUM, "code": code})
}

/// A local clinic time: a day and minutes after midnight. The clinic reports a fixed -05:00
/// offset: the data is synthetic and daylight saving would only add noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp {
    pub date: NaiveDate,
    pub minute: i64,
}

impl Stamp {
    pub(crate) fn plus(self, minutes: i64) -> Stamp {
        let total = self.minute + minutes;
        let days = total.div_euclid(1440);
        Stamp { date: self.date + TimeDelta::days(days), minute: total.rem_euclid(1440) }
    }

    /// FHIR dateTime / instant (seconds and offset included, so it is valid as both).
    pub(crate) fn at(self) -> String {
        format!("{}T{:02}:{:02}:00-05:00", self.date.format("%Y-%m-%d"), self.minute / 60, self.minute % 60)
    }
}

pub(crate) fn day(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_text() {
        assert_eq!(decimal(986, 1).to_string(), "98.6");
        assert_eq!(decimal(94, 2).to_string(), "0.94");
        assert_eq!(decimal(100, 2).to_string(), "1.00");
        assert_eq!(decimal(-5, 1).to_string(), "-0.5");
        assert_eq!(decimal(120, 0).to_string(), "120");
        assert!(decimal(7, 3).is_number());
    }

    #[test]
    fn stamps_roll_over_midnight() {
        let d = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap_or_default();
        let s = Stamp { date: d, minute: 23 * 60 + 30 };
        assert_eq!(s.at(), "2025-12-31T23:30:00-05:00");
        assert_eq!(s.plus(45).at(), "2026-01-01T00:15:00-05:00");
    }
}
