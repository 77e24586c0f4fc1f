//! batch and transaction Bundles over HTTP, on SQLite and on PostgreSQL.

mod common;

use std::path::PathBuf;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_stores!(
    transaction_resolves_urn_references,
    transaction_is_all_or_nothing,
    transaction_conditional_references_and_if_none_exist,
    transaction_processing_order_and_reads,
    transaction_rejects_duplicate_identities,
    batch_entries_are_independent,
    search_entries_in_batch_and_transaction,
    synthea_sets_load_in_order,
);

fn post(full_url: &str, resource: Value) -> Value {
    let rt = resource["resourceType"].as_str().expect("type").to_owned();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": rt}})
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

async fn total(s: &TestServer) -> u64 {
    s.get("_history?_count=0").await.json()["total"].as_u64().expect("total")
}

async fn transaction_resolves_urn_references(s: TestServer) {
    let b = bundle(
        "transaction",
        vec![
            post(
                "urn:uuid:11111111-1111-4111-8111-111111111111",
                json!({"resourceType": "Patient", "name": [{"family": "Tx"}]}),
            ),
            post(
                "urn:uuid:22222222-2222-4222-8222-222222222222",
                json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "hr"}, "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:11111111-1111-4111-8111-111111111111\">patient</a></div>"}}),
            ),
        ],
    );
    let r = s.send(Method::POST, "", Some(&b), &[("prefer", "return=representation")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = r.json();
    assert_eq!(resp["type"], "transaction-response");
    assert_eq!(resp["entry"][0]["response"]["status"], "201 Created");
    let patient_id = resp["entry"][0]["resource"]["id"].as_str().expect("id").to_owned();
    let obs = &resp["entry"][1]["resource"];
    assert_eq!(obs["subject"]["reference"], format!("Patient/{patient_id}"));
    assert!(obs["text"]["div"].as_str().expect("div").contains(&format!("Patient/{patient_id}")));
    let loc = resp["entry"][1]["response"]["location"].as_str().expect("location");
    assert_eq!(s.get(loc).await.status, StatusCode::OK);
}

async fn transaction_is_all_or_nothing(s: TestServer) {
    let b = bundle(
        "transaction",
        vec![
            post("urn:uuid:33333333-3333-4333-8333-333333333333", json!({"resourceType": "Patient"})),
            post(
                "urn:uuid:44444444-4444-4444-8444-444444444444",
                json!({"resourceType": "Observation", "status": "sideways", "code": {"text": "x"}}),
            ),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    r.assert_outcome_at("Bundle.entry[1].resource.status");
    assert_eq!(total(&s).await, 0);

    // A failure discovered while writing (a stale ifMatch) also rolls back earlier entries.
    let mut p = json!({"resourceType": "Patient", "id": "fixed"});
    assert_eq!(s.put("Patient/fixed", &p).await.status, StatusCode::CREATED);
    p["active"] = json!(true);
    let b = bundle(
        "transaction",
        vec![
            post("urn:uuid:55555555-5555-4555-8555-555555555555", json!({"resourceType": "Patient", "gender": "male"})),
            json!({"resource": p, "request": {"method": "PUT", "url": "Patient/fixed", "ifMatch": "W/\"7\""}}),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
    assert_eq!(total(&s).await, 1);
}

async fn transaction_conditional_references_and_if_none_exist(s: TestServer) {
    let org = json!({"resourceType": "Organization", "name": "Clinic", "identifier": [{"system": "urn:sys", "value": "org-1"}]});
    let seed = bundle(
        "transaction",
        vec![json!({"fullUrl": "urn:uuid:66666666-6666-4666-8666-666666666666", "resource": org,
        "request": {"method": "POST", "url": "Organization", "ifNoneExist": "identifier=urn:sys|org-1"}})],
    );
    let r = s.post("", &seed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["entry"][0]["response"]["status"], "201 Created");
    let org_loc = r.json()["entry"][0]["response"]["location"].as_str().expect("loc").to_owned();
    let org_id = org_loc.split('/').nth(1).expect("id").to_owned();
    // Loading it again matches instead of duplicating.
    let r = s.post("", &seed).await;
    assert_eq!(r.json()["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(total(&s).await, 1);

    let b = bundle(
        "transaction",
        vec![post(
            "urn:uuid:77777777-7777-4777-8777-777777777777",
            json!({
        "resourceType": "Patient", "managingOrganization": {"reference": "Organization?identifier=urn:sys|org-1"}}),
        )],
    );
    let r = s.send(Method::POST, "", Some(&b), &[("prefer", "return=representation")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["entry"][0]["resource"]["managingOrganization"]["reference"], format!("Organization/{org_id}"));

    let b = bundle(
        "transaction",
        vec![post(
            "urn:uuid:88888888-8888-4888-8888-888888888888",
            json!({
        "resourceType": "Patient", "managingOrganization": {"reference": "Organization?identifier=urn:sys|missing"}}),
        )],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    r.assert_outcome_at("Bundle.entry[0]");
    assert!(r.text.contains("matches no resource"));
}

async fn transaction_processing_order_and_reads(s: TestServer) {
    let mut doomed = json!({"resourceType": "Patient", "id": "doomed"});
    assert_eq!(s.put("Patient/doomed", &doomed).await.status, StatusCode::CREATED);
    doomed["active"] = json!(true);
    let keep = json!({"resourceType": "Patient", "id": "kept", "gender": "female"});
    let b = bundle(
        "transaction",
        vec![
            json!({"request": {"method": "GET", "url": "Patient/kept"}}),
            json!({"resource": keep, "request": {"method": "PUT", "url": "Patient/kept"}}),
            json!({"request": {"method": "DELETE", "url": "Patient/doomed"}}),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = r.json();
    // GETs run last, so the read sees the PUT of the same transaction.
    assert_eq!(resp["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(resp["entry"][0]["resource"]["gender"], "female");
    assert_eq!(resp["entry"][1]["response"]["status"], "201 Created");
    assert_eq!(resp["entry"][2]["response"]["status"], "200 OK");
    assert_eq!(s.get("Patient/doomed").await.status, StatusCode::GONE);
}

async fn transaction_rejects_duplicate_identities(s: TestServer) {
    let p = json!({"resourceType": "Patient", "id": "twice"});
    let b = bundle(
        "transaction",
        vec![
            json!({"resource": p, "request": {"method": "PUT", "url": "Patient/twice"}}),
            json!({"resource": p, "request": {"method": "PUT", "url": "Patient/twice"}}),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let b = bundle(
        "transaction",
        vec![
            post("urn:uuid:99999999-9999-4999-8999-999999999999", json!({"resourceType": "Patient"})),
            post("urn:uuid:99999999-9999-4999-8999-999999999999", json!({"resourceType": "Patient"})),
        ],
    );
    // Two entries with one fullUrl break the Bundle's invariant bdl-7: the Bundle is invalid.
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("bdl-7"), "{}", r.text);
    r.assert_outcome_at("Bundle.entry[1].fullUrl");
    // A batch with them is refused whole, not entry by entry.
    let mut batch = b.clone();
    batch["type"] = json!("batch");
    let r = s.post("", &batch).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("bdl-7"), "{}", r.text);
    let r = s.post("", &json!({"resourceType": "Bundle", "type": "collection"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    r.assert_outcome_at("Bundle.type");
    assert_eq!(total(&s).await, 0);
}

async fn batch_entries_are_independent(s: TestServer) {
    let b = bundle(
        "batch",
        vec![
            json!({"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}),
            json!({"resource": {"resourceType": "Patient", "gender": "boy"}, "request": {"method": "POST", "url": "Patient"}}),
            json!({"request": {"method": "GET", "url": "Patient/nope"}}),
            json!({"request": {"method": "FLY", "url": "Patient"}}),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = r.json();
    assert_eq!(resp["type"], "batch-response");
    assert_eq!(resp["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(resp["entry"][1]["response"]["status"], "422 Unprocessable Entity");
    assert_eq!(resp["entry"][1]["response"]["outcome"]["resourceType"], "OperationOutcome");
    assert!(resp["entry"][1]["response"]["outcome"].to_string().contains("Bundle.entry[1].resource.gender"));
    assert_eq!(resp["entry"][2]["response"]["status"], "404 Not Found");
    assert_eq!(resp["entry"][3]["response"]["status"], "400 Bad Request");
    assert_eq!(total(&s).await, 1);
    // An entry whose resource breaks an invariant (pat-1: a contact with no details) fails alone.
    let b = bundle(
        "batch",
        vec![
            json!({"resource": {"resourceType": "Patient", "contact": [{"gender": "male"}]}, "request": {"method": "POST", "url": "Patient"}}),
            json!({"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = r.json();
    assert_eq!(resp["entry"][0]["response"]["status"], "422 Unprocessable Entity");
    assert!(resp["entry"][0]["response"]["outcome"].to_string().contains("pat-1"), "{resp}");
    assert_eq!(resp["entry"][1]["response"]["status"], "201 Created");
    assert_eq!(total(&s).await, 2);
}

async fn search_entries_in_batch_and_transaction(s: TestServer) {
    for family in ["Searchable", "Searchable", "Other"] {
        let r = s.post("Patient", &json!({"resourceType": "Patient", "name": [{"family": family}]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let b = bundle(
        "batch",
        vec![
            json!({"request": {"method": "GET", "url": "Patient?family=searchable&_count=1&_total=accurate"}}),
            json!({"request": {"method": "GET", "url": "?_type=Patient&_summary=count"}}),
            json!({"request": {"method": "GET", "url": "Patient?nonsense=1"}}),
            json!({"request": {"method": "GET", "url": "Patient"}}),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = r.json();
    let first = &resp["entry"][0];
    assert_eq!(first["response"]["status"], "200 OK");
    assert_eq!(first["resource"]["type"], "searchset");
    assert_eq!(first["resource"]["total"], 2);
    assert_eq!(first["resource"]["entry"].as_array().map(Vec::len), Some(1));
    let next = first["resource"]["link"].as_array().expect("links").iter().find(|l| l["relation"] == "next");
    let next = next.and_then(|l| l["url"].as_str()).expect("a next link");
    assert_eq!(s.get(next).await.json()["entry"].as_array().map(Vec::len), Some(1));
    assert_eq!(resp["entry"][1]["resource"]["total"], 3);
    assert_eq!(resp["entry"][2]["response"]["status"], "400 Bad Request");
    assert!(resp["entry"][2]["response"]["outcome"].to_string().contains("Bundle.entry[2].request.url"));
    assert_eq!(resp["entry"][3]["resource"]["total"], 3);

    // In a transaction the searches run after the writes and see them; a bad search URL fails
    // the whole transaction before anything is written.
    let b = bundle(
        "transaction",
        vec![
            json!({"request": {"method": "GET", "url": "Patient?family=searchable"}}),
            post(
                "urn:uuid:33333333-3333-4333-8333-333333333333",
                json!({"resourceType": "Patient", "name": [{"family": "Searchable"}]}),
            ),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["entry"][0]["resource"]["total"], 3);
    let b = bundle(
        "transaction",
        vec![
            post("urn:uuid:44444444-4444-4444-8444-444444444444", json!({"resourceType": "Patient"})),
            json!({"request": {"method": "GET", "url": "Patient?birthdate=notadate"}}),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    r.assert_outcome_at("Bundle.entry[1].request.url");
    assert_eq!(s.get("Patient?_summary=count").await.json()["total"], 4);
}

fn synthea(set: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea").join(set)
}

fn read(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} ({e}): the tests need ../shared/data", path.display()));
    serde_json::from_str(&text).expect("json")
}

fn first_patient_file(set: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(synthea(set))
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hospital") || n.starts_with("practitioner"))
        })
        .collect();
    files.sort();
    files.remove(0)
}

async fn load(s: &TestServer, b: &Value) -> Value {
    let r = s.post("", b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", &r.text[..r.text.len().min(2000)]);
    let resp = r.json();
    for e in resp["entry"].as_array().expect("entries") {
        let status = e["response"]["status"].as_str().expect("status");
        assert!(status.starts_with('2'), "{e}");
    }
    resp
}

async fn synthea_sets_load_in_order(s: TestServer) {
    // 2020: hospital and practitioner files first, then a patient that refers to them.
    let set = "synthea-2020-iris";
    for f in std::fs::read_dir(synthea(set)).expect("dir").flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if name.starts_with("hospital") || name.starts_with("practitioner") {
            load(&s, &read(f.path())).await;
        }
    }
    let b = read(first_patient_file(set));
    let n = b["entry"].as_array().expect("entries").len();
    let resp = load(&s, &b).await;
    assert_eq!(resp["entry"].as_array().expect("entries").len(), n);

    // 3.x: a batch of conditional creates, then the patient with conditional references.
    let set = "synthea-3x-wasee11";
    let hospital = read(synthea(set).join("hospitalInformation.json"));
    load(&s, &hospital).await;
    load(&s, &read(synthea(set).join("practitionerInformation.json"))).await;
    let before = total(&s).await;
    load(&s, &hospital).await;
    assert_eq!(total(&s).await, before, "ifNoneExist prevents duplicates");
    load(&s, &read(first_patient_file(set))).await;

    // The SMART set: self-contained transactions.
    let resp = load(&s, &read(first_patient_file("smart-on-fhir-r4"))).await;
    let loc = resp["entry"][0]["response"]["location"].as_str().expect("location");
    assert_eq!(s.get(loc).await.json()["resourceType"], "Patient");
}
