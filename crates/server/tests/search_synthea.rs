//! Search over real data, on SQLite and on PostgreSQL: the first three patients of the SMART
//! Synthea set are loaded as transactions, and every expected result is computed here by walking
//! the loaded JSON, not taken from the server.

mod common;
mod search_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use common::TestServer;
use search_support::*;
use serde_json::Value;

on_both_stores!(synthea_searches_match_the_data);

fn synthea_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea/smart-on-fhir-r4")
}

fn patient_files(n: usize) -> Vec<PathBuf> {
    let dir = synthea_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} ({e}): the tests need ../shared/data", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.truncate(n);
    files
}

/// One loaded Bundle: its resources, with the `Type/id` the server gave each.
struct Loaded {
    resources: Vec<(String, Value)>,
}

impl Loaded {
    fn patient_id(&self) -> String {
        let (r, _) = self.resources.iter().find(|(r, _)| r.starts_with("Patient/")).expect("a Patient");
        r["Patient/".len()..].to_owned()
    }

    fn of_type<'a>(&'a self, rt: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, v)| v["resourceType"] == rt)
            .map(|(r, v)| (r.split_once('/').expect("Type/id").1, v))
    }
}

async fn load(s: &TestServer, path: &PathBuf) -> Loaded {
    let text = std::fs::read_to_string(path).expect("readable");
    let bundle: Value = serde_json::from_str(&text).expect("json");
    let r = s.post("", &bundle).await;
    assert_eq!(r.status.as_u16(), 200, "{}", &r.text[..r.text.len().min(2000)]);
    let response = r.json();
    let sent = bundle["entry"].as_array().expect("entries");
    let got = response["entry"].as_array().expect("entries");
    assert_eq!(sent.len(), got.len());
    let resources = sent
        .iter()
        .zip(got)
        .map(|(e, g)| {
            // The location is Type/id/_history/n: the server's id for this entry.
            let loc = g["response"]["location"].as_str().expect("location");
            let mut parts = loc.trim_start_matches(&format!("{}/", s.base)).split('/');
            let r = format!("{}/{}", parts.next().expect("type"), parts.next().expect("id"));
            (r, e["resource"].clone())
        })
        .collect();
    Loaded { resources }
}

fn has_coding(cc: &Value, system: &str, code: &str) -> bool {
    cc["coding"].as_array().into_iter().flatten().any(|c| c["system"] == system && c["code"] == code)
}

/// Every id that `query` matches, over all pages.
async fn all_ids(s: &TestServer, query: &str) -> Vec<String> {
    let mut v: Vec<String> = all_pages(s, query).await.iter().flat_map(match_ids).collect();
    let n = v.len();
    v.sort();
    v.dedup();
    assert_eq!(v.len(), n, "{query}: duplicates across pages");
    v
}

fn sorted(it: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = it.into_iter().collect();
    v.sort();
    v
}

async fn synthea_searches_match_the_data(s: TestServer) {
    let mut loaded = Vec::new();
    for f in patient_files(3) {
        loaded.push(load(&s, &f).await);
    }
    let (a, b, c) = (&loaded[0], &loaded[1], &loaded[2]);
    let (pa, pb, pc) = (a.patient_id(), b.patient_id(), c.patient_id());

    // Body height (LOINC 8302-2) Observations of the first patient.
    let heights: Vec<(&str, &Value)> =
        a.of_type("Observation").filter(|(_, o)| has_coding(&o["code"], "http://loinc.org", "8302-2")).collect();
    assert!(!heights.is_empty(), "the data has body heights");
    let q = format!("Observation?patient={pa}&code=http://loinc.org|8302-2");
    assert_eq!(all_ids(&s, &q).await, sorted(heights.iter().map(|(id, _)| id.to_string())));
    let first = search(&s, &format!("{q}&_total=accurate")).await;
    assert_eq!(total(&first), heights.len() as u64);
    // Across all three patients.
    let all_heights: usize = loaded
        .iter()
        .map(|l| l.of_type("Observation").filter(|(_, o)| has_coding(&o["code"], "http://loinc.org", "8302-2")).count())
        .sum();
    let b0 = search(&s, "Observation?code=http://loinc.org|8302-2&_total=accurate&_count=1").await;
    assert_eq!(total(&b0), all_heights as u64);

    // Heights above 170 cm (gt is an exact comparison), UCUM-coded in the data.
    let tall: Vec<String> = heights
        .iter()
        .filter(|(_, o)| {
            let q = &o["valueQuantity"];
            q["system"] == UCUM && q["code"] == "cm" && q["value"].as_f64().is_some_and(|v| v > 170.0)
        })
        .map(|(id, _)| id.to_string())
        .collect();
    let q = format!("Observation?patient={pa}&code=http://loinc.org|8302-2&value-quantity=gt170|{UCUM}|cm");
    assert_eq!(all_ids(&s, &q).await, sorted(tall));

    // Every Encounter of the second patient, by reference and through the compartment.
    let encounters = sorted(b.of_type("Encounter").map(|(id, _)| id.to_owned()));
    assert!(!encounters.is_empty());
    assert_eq!(all_ids(&s, &format!("Encounter?subject=Patient/{pb}")).await, encounters);
    assert_eq!(all_ids(&s, &format!("Patient/{pb}/Encounter")).await, encounters);
    let conditions = sorted(b.of_type("Condition").map(|(id, _)| id.to_owned()));
    assert_eq!(all_ids(&s, &format!("Patient/{pb}/Condition")).await, conditions);
    // _revinclude brings the same Encounters.
    let r = search(&s, &format!("Patient?_id={pb}&_revinclude=Encounter:subject")).await;
    assert_eq!(match_ids(&r), vec![pb.clone()]);
    assert_eq!(include_refs(&r), sorted(encounters.iter().map(|id| format!("Encounter/{id}"))));

    // Patients by gender and by exact family name.
    let patients: Vec<(&str, &Value)> = loaded.iter().flat_map(|l| l.of_type("Patient")).collect();
    let males = sorted(patients.iter().filter(|(_, p)| p["gender"] == "male").map(|(id, _)| id.to_string()));
    assert_eq!(all_ids(&s, "Patient?gender=male").await, males);
    let family = a.of_type("Patient").next().expect("patient").1["name"][0]["family"].as_str().expect("family");
    let same_family = sorted(
        patients
            .iter()
            .filter(|(_, p)| p["name"].as_array().into_iter().flatten().any(|n| n["family"] == family))
            .map(|(id, _)| id.to_string()),
    );
    assert_eq!(all_ids(&s, &format!("Patient?family:exact={family}")).await, same_family);

    // Observations of the third patient before and from an instant inside its history: the
    // effective times have second precision, so ge is t >= cutoff and lt is t < cutoff.
    let times: BTreeMap<String, DateTime<FixedOffset>> = c
        .of_type("Observation")
        .map(|(id, o)| {
            let t = o["effectiveDateTime"].as_str().expect("effectiveDateTime");
            assert_eq!(t.len(), "2000-01-01T00:00:00+00:00".len(), "second precision expected: {t}");
            (id.to_owned(), DateTime::parse_from_rfc3339(t).expect("dateTime"))
        })
        .collect();
    let mut instants: Vec<DateTime<FixedOffset>> = times.values().copied().collect();
    instants.sort();
    let cutoff = instants[instants.len() / 2];
    let cutoff_text = cutoff.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true);
    let from = sorted(times.iter().filter(|(_, t)| **t >= cutoff).map(|(id, _)| id.clone()));
    let before = sorted(times.iter().filter(|(_, t)| **t < cutoff).map(|(id, _)| id.clone()));
    assert!(!from.is_empty() && !before.is_empty());
    assert_eq!(all_ids(&s, &format!("Observation?patient={pc}&date=ge{cutoff_text}&_count=50")).await, from);
    assert_eq!(all_ids(&s, &format!("Observation?patient={pc}&date=lt{cutoff_text}&_count=50")).await, before);

    // Paging through all of the third patient's Observations: each exactly once.
    let all_obs = sorted(times.keys().cloned());
    assert_eq!(all_ids(&s, &format!("Observation?subject=Patient/{pc}&_count=50")).await, all_obs);
    // No other patient's Observation leaks in.
    let others: usize = [a, b].iter().map(|l| l.of_type("Observation").count()).sum();
    let every = search(&s, "Observation?_total=accurate&_count=1").await;
    assert_eq!(total(&every), (others + all_obs.len()) as u64);
}
