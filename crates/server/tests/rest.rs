//! The FHIR REST API over HTTP, on SQLite and on PostgreSQL.

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_stores!(
    metadata_lists_every_resource_type,
    create_read_vread,
    update_versions_and_if_match,
    racing_if_match_updates_lose_nothing,
    racing_creates_on_update_all_succeed,
    create_on_update_and_id_rules,
    delete_then_gone,
    json_patch,
    history_levels_and_paging,
    conditional_create_update_delete,
    conditional_reads_not_modified,
    prefer_and_format,
    decimals_round_trip,
    validation_rejections_name_the_element,
    bad_input_gets_clear_errors,
    validate_operation,
    health_probes,
);

fn patient(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}], "gender": "female",
           "birthDate": "1980-02-29", "identifier": [{"system": "http://clinic.example/mrn", "value": family}]})
}

async fn metadata_lists_every_resource_type(s: TestServer) {
    let r = s.get("metadata").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/fhir+json")));
    let cs = r.json();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let resources = cs["rest"][0]["resource"].as_array().expect("resources");
    assert_eq!(resources.len(), 146);
    let patient = resources.iter().find(|r| r["type"] == "Patient").expect("Patient");
    let codes: Vec<&str> =
        patient["interaction"].as_array().into_iter().flatten().filter_map(|i| i["code"].as_str()).collect();
    for c in ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"]
    {
        assert!(codes.contains(&c), "{c} missing");
    }
    // Every parameter the server indexes is listed, with its definition.
    let params = patient["searchParam"].as_array().expect("searchParam");
    assert!(params.iter().any(|p| p["name"] == "birthdate" && p["type"] == "date"));
    assert!(patient["operation"].as_array().into_iter().flatten().any(|o| o["name"] == "everything"));
    let system: Vec<&str> =
        cs["rest"][0]["interaction"].as_array().into_iter().flatten().filter_map(|i| i["code"].as_str()).collect();
    assert!(system.contains(&"search-system"));
}

async fn create_read_vread(s: TestServer) {
    let r = s.post("Patient", &patient("Lovelace")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    assert!(r.header("last-modified").is_some());
    let created = r.json();
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["meta"]["versionId"], "1");
    let location = r.header("location").expect("location");
    assert!(location.ends_with(&format!("/fhir/Patient/{id}/_history/1")), "{location}");

    let read = s.get(&format!("Patient/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), created);
    assert_eq!(read.header("etag").as_deref(), Some("W/\"1\""));

    let v = s.get(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.json(), created);
    assert_eq!(s.get(&format!("Patient/{id}/_history/2")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("Patient/does-not-exist").await.status, StatusCode::NOT_FOUND);

    // A client-supplied id on create is ignored, as the spec says.
    let mut with_id = patient("Byron");
    with_id["id"] = json!("chosen-by-client");
    let r = s.post("Patient", &with_id).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_ne!(r.json()["id"], "chosen-by-client");
}

async fn update_versions_and_if_match(s: TestServer) {
    let id = s.create(&patient("Hopper")).await;
    let mut body = s.get(&format!("Patient/{id}")).await.json();
    body["gender"] = json!("other");
    let r = s.send(Method::PUT, &format!("Patient/{id}"), Some(&body), &[("if-match", "W/\"1\"")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["meta"]["versionId"], "2");
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));

    let stale = s.send(Method::PUT, &format!("Patient/{id}"), Some(&body), &[("if-match", "W/\"1\"")]).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.json()["resourceType"], "OperationOutcome");

    // An update that changes nothing makes no new version.
    let same = s.put(&format!("Patient/{id}"), &body).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.json()["meta"]["versionId"], "2");
    assert_eq!(s.get(&format!("Patient/{id}/_history/1")).await.json()["gender"], "female");
}

async fn racing_if_match_updates_lose_nothing(s: TestServer) {
    let id = s.create(&patient("Race")).await;
    let base = s.get(&format!("Patient/{id}")).await.json();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut body = base.clone();
        body["name"][0]["given"] = json!([format!("Writer{i}")]);
        let client = s.client.clone();
        let url = s.url(&format!("Patient/{id}"));
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .header("content-type", "application/fhir+json")
                .header("if-match", "W/\"1\"")
                .body(body.to_string())
                .send()
                .await
                .expect("sent")
                .status()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("joined") {
            StatusCode::OK => ok += 1,
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, refused), (1, 7));
    assert_eq!(s.get(&format!("Patient/{id}")).await.json()["meta"]["versionId"], "2");
}

/// Writers that did not ask for `If-Match` never see a lost race: the loser is retried.
async fn racing_creates_on_update_all_succeed(s: TestServer) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut body = patient("Racer");
        body["id"] = json!("raced");
        body["name"][0]["given"] = json!([format!("Writer{i}")]);
        let client = s.client.clone();
        let url = s.url("Patient/raced");
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .expect("sent")
                .status()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("joined") {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(s.get("Patient/raced").await.json()["meta"]["versionId"], "8");
}

async fn create_on_update_and_id_rules(s: TestServer) {
    let mut body = patient("Client");
    body["id"] = json!("client-chosen.1");
    let r = s.put("Patient/client-chosen.1", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["id"], "client-chosen.1");

    let r = s.put("Patient/other-id", &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    r.assert_outcome_at("Patient.id");

    let mut no_id = patient("NoId");
    no_id.as_object_mut().map(|o| o.remove("id"));
    let r = s.put("Patient/some-id", &no_id).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = s.put("Patient/bad_id!", &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = s.put("Observation/client-chosen.1", &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "type mismatch: {}", r.text);
}

async fn delete_then_gone(s: TestServer) {
    let id = s.create(&patient("Gone")).await;
    let r = s.send(Method::DELETE, &format!("Patient/{id}"), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    assert_eq!(s.get(&format!("Patient/{id}")).await.status, StatusCode::GONE);
    assert_eq!(s.get(&format!("Patient/{id}/_history/2")).await.status, StatusCode::GONE);
    assert_eq!(s.get(&format!("Patient/{id}/_history/1")).await.status, StatusCode::OK);
    // Deleting again, or something that never existed, is not an error.
    let again = s.send(Method::DELETE, &format!("Patient/{id}"), None, &[("prefer", "return=minimal")]).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(s.send(Method::DELETE, "Patient/never", None, &[]).await.status, StatusCode::OK);
    let history = s.get(&format!("Patient/{id}/_history")).await.json();
    assert_eq!(history["total"], 2);
    assert_eq!(history["entry"][0]["request"]["method"], "DELETE");
    // Re-creating after delete continues the version numbers.
    let mut body = patient("Gone");
    body["id"] = json!(id.clone());
    let r = s.put(&format!("Patient/{id}"), &body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["meta"]["versionId"], "3");
}

async fn json_patch(s: TestServer) {
    let id = s.create(&patient("Patch")).await;
    let ops =
        json!([{"op": "replace", "path": "/gender", "value": "male"}, {"op": "add", "path": "/active", "value": true}]);
    let r = s
        .raw(Method::PATCH, &format!("Patient/{id}"), "application/json-patch+json", ops.to_string().into_bytes())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(
        (body["gender"].clone(), body["active"].clone(), body["meta"]["versionId"].clone()),
        (json!("male"), json!(true), json!("2"))
    );

    let invalid = json!([{"op": "replace", "path": "/gender", "value": "boy"}]);
    let r = s
        .raw(Method::PATCH, &format!("Patient/{id}"), "application/json-patch+json", invalid.to_string().into_bytes())
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    r.assert_outcome_at("Patient.gender");

    let broken = json!([{"op": "remove", "path": "/nothing/here"}]);
    let r = s
        .raw(Method::PATCH, &format!("Patient/{id}"), "application/json-patch+json", broken.to_string().into_bytes())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // FHIR JSON is a FHIRPath Patch, which must be a Parameters resource.
    let r = s.raw(Method::PATCH, &format!("Patient/{id}"), "application/fhir+json", ops.to_string().into_bytes()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s.raw(Method::PATCH, &format!("Patient/{id}"), "text/plain", ops.to_string().into_bytes()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(s.get(&format!("Patient/{id}")).await.json()["meta"]["versionId"], "2");
}

async fn history_levels_and_paging(s: TestServer) {
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(s.create(&patient(&format!("Hist{i}"))).await);
    }
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
    s.create(&obs).await;
    let mut body = s.get(&format!("Patient/{}", ids[0])).await.json();
    body["active"] = json!(true);
    assert_eq!(s.put(&format!("Patient/{}", ids[0]), &body).await.status, StatusCode::OK);

    let inst = s.get(&format!("Patient/{}/_history", ids[0])).await.json();
    assert_eq!(inst["type"], "history");
    assert_eq!(inst["total"], 2);
    assert_eq!(inst["entry"][0]["resource"]["meta"]["versionId"], "2");
    assert_eq!(inst["entry"][0]["request"]["method"], "PUT");
    assert_eq!(inst["entry"][1]["request"]["method"], "POST");

    let typ = s.get("Patient/_history").await.json();
    assert_eq!(typ["total"], 6);
    let sys = s.get("_history").await.json();
    assert_eq!(sys["total"], 7);

    // Paging: follow next links until the end, collecting every version once.
    let mut url = s.url("Patient/_history?_count=2");
    let mut seen = Vec::new();
    loop {
        let page: Value = s.client.get(&url).send().await.expect("sent").json().await.expect("json");
        for e in page["entry"].as_array().into_iter().flatten() {
            seen.push(format!("{}@{}", e["resource"]["id"], e["resource"]["meta"]["versionId"]));
        }
        let next = page["link"].as_array().into_iter().flatten().find(|l| l["relation"] == "next");
        match next {
            Some(l) => url = l["url"].as_str().expect("url").to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);

    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = s.get(&format!("_history?_since={}", since.replace('+', "%2B"))).await;
    assert_eq!(r.json()["total"], 7);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(s.get(&format!("_history?_since={future}")).await.json()["total"], 0);
    assert_eq!(s.get("_history?_since=not-a-date").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.get("_history?_count=x").await.status, StatusCode::BAD_REQUEST);
}

async fn conditional_create_update_delete(s: TestServer) {
    let body = patient("Cond");
    let first = s
        .send(Method::POST, "Patient", Some(&body), &[("if-none-exist", "identifier=http://clinic.example/mrn|Cond")])
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let id = first.json()["id"].clone();
    let second = s
        .send(Method::POST, "Patient", Some(&body), &[("if-none-exist", "identifier=http://clinic.example/mrn|Cond")])
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json()["id"], id);

    // Conditional update: one match updates it, none creates.
    let mut changed = body.clone();
    changed["gender"] = json!("unknown");
    let r = s.put("Patient?identifier=http://clinic.example/mrn|Cond", &changed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["id"], id);
    let r = s.put("Patient?identifier=http://clinic.example/mrn|NewOne", &patient("NewOne")).await;
    assert_eq!(r.status, StatusCode::CREATED);

    // Two matches: 412.
    let mut dup = patient("Dup");
    s.create(&dup).await;
    dup["gender"] = json!("male");
    s.create(&dup).await;
    let r = s.put("Patient?identifier=http://clinic.example/mrn|Dup", &dup).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    // A conditional delete removes every match (R4 allows "multiple"), in one transaction.
    let r = s.send(Method::DELETE, "Patient?identifier=Dup", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("deleted 2 resources"), "{}", r.text);
    let r = s.send(Method::DELETE, "Patient?identifier=Dup", None, &[("prefer", "return=minimal")]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "nothing is left to delete");

    // Conditional delete of exactly one.
    let r = s.send(Method::DELETE, "Patient?identifier=http://clinic.example/mrn|NewOne", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.send(Method::DELETE, "Patient?identifier=http://clinic.example/mrn|NewOne", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);

    // Any search parameter serves as a criterion; unknown ones are refused, not ignored.
    let r = s.put("Patient?family=Cond&birthdate=1980-02-29", &changed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["id"], id);
    let r = s.put("Patient?nonsense=Cond", &changed).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("nonsense"));
}

async fn conditional_reads_not_modified(s: TestServer) {
    let id = s.create(&patient("Cache")).await;
    let r = s.send(Method::GET, &format!("Patient/{id}"), None, &[("if-none-match", "W/\"1\"")]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = s.send(Method::GET, &format!("Patient/{id}"), None, &[("if-none-match", "W/\"9\"")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let later = httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(60));
    let r = s.send(Method::GET, &format!("Patient/{id}"), None, &[("if-modified-since", &later)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = s
        .send(Method::GET, &format!("Patient/{id}"), None, &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn prefer_and_format(s: TestServer) {
    let r = s.send(Method::POST, "Patient", Some(&patient("Min")), &[("prefer", "return=minimal")]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.text.is_empty());
    assert!(r.header("location").is_some());
    let r = s.send(Method::POST, "Patient", Some(&patient("OO")), &[("prefer", "return=OperationOutcome")]).await;
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    let id = s.create(&patient("Fmt")).await;
    let r = s.get(&format!("Patient/{id}?_format=json&_pretty=true")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("\n  "), "pretty output expected");
    let r = s.get(&format!("Patient/{id}?_format=application/json")).await;
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let r = s.send(Method::GET, &format!("Patient/{id}"), None, &[("accept", "application/fhir+xml")]).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
}

async fn decimals_round_trip(s: TestServer) {
    let text = r#"{"resourceType":"Observation","status":"final","code":{"text":"weight"},"valueQuantity":{"value":1.50,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},"component":[{"code":{"text":"x"},"valueQuantity":{"value":0.000000000000000000001}},{"code":{"text":"y"},"valueQuantity":{"value":12345678901234567890.10}}]}"#;
    let r = s.raw(Method::POST, "Observation", "application/fhir+json", text.as_bytes().to_vec()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let read = s.get(&format!("Observation/{id}")).await;
    assert!(read.text.contains("\"value\":1.50"), "{}", read.text);
    assert!(read.text.contains("0.000000000000000000001"), "{}", read.text);
    assert!(read.text.contains("12345678901234567890.10"), "{}", read.text);
}

async fn validation_rejections_name_the_element(s: TestServer) {
    let cases = [
        (json!({"resourceType": "Patient", "gender": "boy"}), "Patient.gender"),
        (json!({"resourceType": "Patient", "birthDate": "2021-02-30"}), "Patient.birthDate"),
        (json!({"resourceType": "Patient", "favouriteColour": "blue"}), "Patient.favouriteColour"),
        (json!({"resourceType": "Patient", "name": [{"given": [""]}]}), "Patient.name[0].given[0]"),
        (json!({"resourceType": "Observation", "code": {"text": "x"}}), "Observation.status"),
        (
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Medication/1"}}),
            "Observation.subject",
        ),
    ];
    for (body, expr) in cases {
        let rt = body["resourceType"].as_str().expect("type").to_owned();
        let r = s.post(&rt, &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
        r.assert_outcome_at(expr);
    }
    assert_eq!(s.get("_history").await.json()["total"], 0, "nothing was written");
}

async fn bad_input_gets_clear_errors(s: TestServer) {
    let r = s.raw(Method::POST, "Patient", "application/fhir+json", b"{\"resourceType\": \"Patient\",".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["issue"][0]["diagnostics"].as_str().is_some_and(|d| d.contains("line 1")), "{}", r.text);

    let r = s.raw(Method::POST, "Patient", "application/xml", b"<Patient/>".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");

    let big = format!(
        "{{\"resourceType\":\"Patient\",\"text\":{{\"status\":\"generated\",\"div\":\"{}\"}}}}",
        "a".repeat(common::MAX_BODY + 10)
    );
    let r = s.raw(Method::POST, "Patient", "application/fhir+json", big.into_bytes()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");

    let r = s.get("Unicorn/1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    let r = s.post("Unicorn", &json!({"resourceType": "Unicorn"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = s.post("Patient/123", &patient("X")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    let r = s.send(Method::DELETE, "metadata", None, &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    let r = s.post("Patient", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s.post("Patient", &json!([1, 2])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s.raw(Method::POST, "Patient", "application/fhir+json", Vec::new()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.header("x-request-id").is_some());
    assert_eq!(s.get("_history").await.json()["total"], 0, "nothing was written");
}

async fn validate_operation(s: TestServer) {
    let r = s.post("Patient/$validate", &patient("Valid")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let oo = r.json();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(oo["issue"].as_array().into_iter().flatten().all(|i| i["severity"] != "error"));
    let r = s.post("Patient/$validate", &json!({"resourceType": "Patient", "gender": "boy"})).await;
    assert_eq!(r.status, StatusCode::OK);
    r.assert_outcome_at("Patient.gender");
    let params = json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {"resourceType": "Patient", "birthDate": "1999-13-01"}}]});
    let r = s.post("Patient/$validate", &params).await;
    r.assert_outcome_at("Patient.birthDate");
    // Invariants: errors always; warnings (dom-6: no narrative) from $validate only.
    let contact = json!({"resourceType": "Patient", "contact": [{"gender": "male"}]});
    let r = s.post("Patient/$validate", &contact).await;
    assert_eq!(r.status, StatusCode::OK);
    let issues = r.json()["issue"].as_array().cloned().unwrap_or_default();
    let with = |key: &str, severity: &str| {
        issues.iter().any(|i| {
            i["severity"] == severity
                && i["code"] == "invariant"
                && i["diagnostics"].as_str().is_some_and(|d| d.contains(key))
        })
    };
    assert!(with("pat-1", "error") && with("dom-6", "warning"), "{}", r.text);
    r.assert_outcome_at("Patient.contact[0]");
    let r = s.post("Patient", &contact).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("pat-1") && !r.text.contains("dom-6"), "{}", r.text);
    assert_eq!(s.get("_history").await.json()["total"], 0, "validation stores nothing");
}

async fn health_probes(s: TestServer) {
    let root = s.base.trim_end_matches("/fhir");
    let live = s.client.get(format!("{root}/health/live")).send().await.expect("sent");
    assert_eq!(live.status(), StatusCode::OK);
    let ready = s.client.get(format!("{root}/health/ready")).send().await.expect("sent");
    assert_eq!(ready.status(), StatusCode::OK);
    let missing = s.client.get(format!("{root}/nothing")).send().await.expect("sent");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
