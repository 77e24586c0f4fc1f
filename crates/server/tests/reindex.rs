//! Custom SearchParameters become searchable after `$reindex`, on both stores.

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_stores!(custom_parameters_after_reindex);

async fn custom_parameters_after_reindex(s: TestServer) {
    for (id, colour) in [("p1", "blue"), ("p2", "brown"), ("p3", "blue")] {
        let p = json!({"resourceType": "Patient", "id": id,
            "extension": [{"url": "http://acme.org/fhir/eye-colour", "valueString": colour}]});
        assert_eq!(s.put(&format!("Patient/{id}"), &p).await.status, StatusCode::CREATED);
    }
    let unknown = s.get("Patient?eye-colour=blue").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);

    let sp = json!({"resourceType": "SearchParameter", "url": "http://acme.org/fhir/SearchParameter/eye-colour",
        "name": "EyeColour", "status": "active", "description": "Eye colour", "code": "eye-colour", "base": ["Patient"],
        "type": "string", "expression": "Patient.extension('http://acme.org/fhir/eye-colour').value"});
    assert_eq!(s.post("SearchParameter", &sp).await.status, StatusCode::CREATED);

    let started = s.send(Method::POST, "$reindex", None, &[]).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
    let mut status = String::new();
    for _ in 0..200 {
        let r = s.get("$reindex").await;
        assert_eq!(r.status, StatusCode::OK);
        let p = r.json();
        status = p["parameter"][0]["valueCode"].as_str().unwrap_or_default().to_owned();
        if status != "running" {
            assert!(p["parameter"][1]["valueUnsignedInt"].as_u64().unwrap_or(0) >= 4, "{p}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "completed");
    let r = s.get("Patient?eye-colour=blue&_sort=_id").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ids: Vec<String> = r.json()["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["p1", "p3"]);
    // New writes are indexed with it straight away.
    let p = json!({"resourceType": "Patient", "id": "p4", "extension": [{"url": "http://acme.org/fhir/eye-colour", "valueString": "Blue-grey"}]});
    s.put("Patient/p4", &p).await;
    assert_eq!(s.get("Patient?eye-colour=blue&_summary=count").await.json()["total"], 3);
}
