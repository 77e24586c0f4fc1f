//! Helpers shared by the search test files (`search*.rs`): run a search and read the ids of its
//! matches, load fixtures with client-chosen ids in one transaction, follow paging links.

#![allow(dead_code)]

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Reply, TestServer};

/// `GET [base]/{query}` (e.g. `Patient?name=eve`); asserts a 200 searchset Bundle with a `self`
/// link, and that every match and include entry has an absolute `fullUrl` naming the resource.
pub async fn search(s: &TestServer, query: &str) -> Value {
    let r = s.get(query).await;
    searchset(query, &r)
}

/// Like [`search`], for an absolute URL (a paging link, or the system level `[base]?…`).
pub async fn search_url(s: &TestServer, url: &str) -> Value {
    let r = get_url(s, url, &[]).await;
    searchset(url, &r)
}

pub async fn get_url(s: &TestServer, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = s.client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply { status, headers, text }
}

/// The system-level search URL `[base]?{query}`.
pub fn system_url(s: &TestServer, query: &str) -> String {
    format!("{}?{query}", s.base)
}

pub fn searchset(what: &str, r: &Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text);
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle", "{what}: {}", r.text);
    assert_eq!(b["type"], "searchset", "{what}: {}", r.text);
    assert!(link(&b, "self").is_some(), "{what}: no self link: {}", r.text);
    for e in entries(&b) {
        let mode = e["search"]["mode"].as_str().unwrap_or_else(|| panic!("{what}: entry without search.mode: {e}"));
        if mode == "match" || mode == "include" {
            let rt = e["resource"]["resourceType"].as_str().expect("resourceType");
            let id = e["resource"]["id"].as_str().expect("id");
            let full = e["fullUrl"].as_str().unwrap_or_else(|| panic!("{what}: entry without fullUrl: {e}"));
            assert!(full.starts_with("http") && full.ends_with(&format!("/{rt}/{id}")), "{what}: fullUrl {full}");
        }
    }
    b
}

pub fn entries(b: &Value) -> impl Iterator<Item = &Value> {
    b["entry"].as_array().into_iter().flatten()
}

fn with_mode<'a>(b: &'a Value, mode: &'a str) -> impl Iterator<Item = &'a Value> {
    entries(b).filter(move |e| e["search"]["mode"] == mode).map(|e| &e["resource"])
}

/// The ids of the `match` entries, in Bundle order.
pub fn match_ids(b: &Value) -> Vec<String> {
    with_mode(b, "match").map(|r| r["id"].as_str().expect("id").to_owned()).collect()
}

/// The `Type/id` of the `match` entries, in Bundle order.
pub fn match_refs(b: &Value) -> Vec<String> {
    with_mode(b, "match").map(reference).collect()
}

/// The `Type/id` of the `include` entries, sorted.
pub fn include_refs(b: &Value) -> Vec<String> {
    let mut v: Vec<String> = with_mode(b, "include").map(reference).collect();
    v.sort();
    v
}

/// The `Type/id` of every resource entry, whatever its mode, sorted ($everything).
pub fn all_refs(b: &Value) -> Vec<String> {
    let mut v: Vec<String> = entries(b)
        .filter(|e| e["search"]["mode"] != "outcome" && e["resource"]["resourceType"] != "OperationOutcome")
        .map(|e| reference(&e["resource"]))
        .collect();
    v.sort();
    v
}

pub fn reference(r: &Value) -> String {
    format!("{}/{}", r["resourceType"].as_str().expect("resourceType"), r["id"].as_str().expect("id"))
}

/// The ids that `GET [base]/{query}` matches, in the server's order.
pub async fn ids(s: &TestServer, query: &str) -> Vec<String> {
    match_ids(&search(s, query).await)
}

/// The ids that `GET [base]/{query}` matches, sorted, for set comparison.
pub async fn ids_sorted(s: &TestServer, query: &str) -> Vec<String> {
    let mut v = ids(s, query).await;
    v.sort();
    v
}

/// Asserts that `query` matches exactly `expected` (in any order), with no duplicates.
pub async fn expect(s: &TestServer, query: &str, expected: &[&str]) {
    let got = ids(s, query).await;
    let mut sorted = got.clone();
    sorted.sort();
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "{query}: duplicate matches {got:?}");
    assert_eq!(sorted, set(expected), "{query}");
}

/// Asserts that `query` matches exactly `expected`, in this order.
pub async fn expect_ordered(s: &TestServer, query: &str, expected: &[&str]) {
    assert_eq!(ids(s, query).await, expected.iter().map(|x| x.to_string()).collect::<Vec<_>>(), "{query}");
}

pub fn set(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|x| x.to_string()).collect();
    v.sort();
    v
}

pub fn link(b: &Value, relation: &str) -> Option<String> {
    b["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().expect("link url").to_owned())
}

/// Follows `next` links from the first page to the end; returns every page.
pub async fn all_pages(s: &TestServer, first: &str) -> Vec<Value> {
    let mut pages = vec![search(s, first).await];
    while let Some(next) = link(pages.last().expect("page"), "next") {
        assert!(pages.len() < 200, "{first}: paging does not end");
        pages.push(search_url(s, &next).await);
    }
    pages
}

/// PUTs every resource (each carries its `id`) in one transaction, so fixtures have readable ids.
pub async fn seed(s: &TestServer, resources: Vec<Value>) {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let url = reference(&r);
            json!({"fullUrl": format!("{}/{url}", s.base), "resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::OK, "seeding: {}", r.text);
    for e in r.json()["entry"].as_array().expect("entries") {
        assert!(e["response"]["status"].as_str().is_some_and(|st| st.starts_with('2')), "seeding: {e}");
    }
}

/// PUTs one resource (with its `id`) and returns what the server answered.
pub async fn put_one(s: &TestServer, r: &Value) -> Value {
    let reply = s.put(&reference(r), r).await;
    assert!(reply.status.is_success(), "{}", reply.text);
    reply.json()
}

pub async fn delete(s: &TestServer, path: &str) {
    let r = s.send(Method::DELETE, path, None, &[]).await;
    assert!(r.status.is_success(), "DELETE {path}: {}", r.text);
}

/// The total of a Bundle, which must be present.
pub fn total(b: &Value) -> u64 {
    b["total"].as_u64().unwrap_or_else(|| panic!("no total: {b}"))
}

// Small fixture builders: just the mandatory elements plus what a test searches on.

pub fn patient(id: &str, extra: Value) -> Value {
    merge(json!({"resourceType": "Patient", "id": id}), extra)
}

pub fn observation(id: &str, extra: Value) -> Value {
    merge(json!({"resourceType": "Observation", "id": id, "status": "final", "code": {"text": "x"}}), extra)
}

pub fn encounter(id: &str, extra: Value) -> Value {
    merge(
        json!({"resourceType": "Encounter", "id": id, "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}),
        extra,
    )
}

pub fn resource(rt: &str, id: &str, extra: Value) -> Value {
    merge(json!({"resourceType": rt, "id": id}), extra)
}

pub fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(extra)) = (base.as_object_mut(), extra) {
        o.extend(extra);
    }
    base
}

/// A LOINC-coded CodeableConcept.
pub fn loinc(code: &str) -> Value {
    json!({"coding": [{"system": "http://loinc.org", "code": code}]})
}

pub fn reference_to(r: &str) -> Value {
    json!({"reference": r})
}

/// An XHTML narrative.
pub fn narrative(text: &str) -> Value {
    json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{text}</div>")})
}

pub const UCUM: &str = "http://unitsofmeasure.org";

/// A UCUM Quantity; `value` is the exact decimal text (its precision matters to search).
pub fn ucum(value: &str, code: &str) -> Value {
    json!({"value": number(value), "unit": code, "system": UCUM, "code": code})
}

/// A JSON number with exactly this text (serde_json keeps it: `arbitrary_precision`).
pub fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text} is not a number: {e}"))
}
