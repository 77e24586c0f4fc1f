//! FHIRPath Patch over HTTP, on SQLite and on PostgreSQL: PATCH by id and by criteria with a
//! Parameters body, failures that leave the resource as it was, If-Match, and PATCH entries of
//! transaction and batch Bundles (FHIRPath Patch as Parameters, JSON Patch as Binary).

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_stores!(
    fhirpath_patch_by_id,
    conditional_fhirpath_patch,
    failing_patch_changes_nothing,
    stale_if_match_is_refused,
    patch_entries_in_a_transaction,
    patch_entries_in_a_batch,
    capability_lists_both_patch_formats,
);

fn patient(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}], "gender": "female",
           "birthDate": "1980-02-29", "identifier": [{"system": "http://clinic.example/mrn", "value": family}]})
}

fn operation(kind: &str, path: &str, parts: Value) -> Value {
    let mut all = vec![json!({"name": "type", "valueCode": kind}), json!({"name": "path", "valueString": path})];
    all.extend(parts.as_array().cloned().unwrap_or_default());
    json!({"name": "operation", "part": all})
}

fn parameters(operations: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": operations})
}

fn replace_gender(code: &str) -> Value {
    operation("replace", "Patient.gender", json!([{"name": "value", "valueCode": code}]))
}

async fn patch(s: &TestServer, path: &str, body: &Value, headers: &[(&str, &str)]) -> common::Reply {
    s.send(Method::PATCH, path, Some(body), headers).await
}

async fn version_of(s: &TestServer, path: &str) -> Value {
    s.get(path).await.json()["meta"]["versionId"].clone()
}

async fn fhirpath_patch_by_id(s: TestServer) {
    let id = s.create(&patient("Fp")).await;
    let path = format!("Patient/{id}");
    let body = parameters(vec![
        replace_gender("male"),
        operation(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "active"}, {"name": "value", "valueBoolean": true}]),
        ),
        operation(
            "insert",
            "Patient.name[0].given",
            json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueString": "Lady"}]),
        ),
        operation("delete", "Patient.birthDate", json!([])),
        operation(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "contact"},
                   {"name": "value", "part": [{"name": "name", "valueHumanName": {"text": "Charles"}}]}]),
        ),
    ]);
    let r = patch(&s, &path, &body, &[("prefer", "return=representation")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
    let p = r.json();
    assert_eq!((p["gender"].clone(), p["active"].clone()), (json!("male"), json!(true)));
    assert_eq!(p["name"][0]["given"], json!(["Lady", "Ada"]));
    assert!(p.get("birthDate").is_none());
    assert_eq!(p["contact"], json!([{"name": {"text": "Charles"}}]));
    assert_eq!(s.get(&path).await.json()["gender"], "male");

    // Plain application/json is FHIR JSON too.
    let r = s
        .raw(
            Method::PATCH,
            &path,
            "application/json",
            parameters(vec![replace_gender("other")]).to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(version_of(&s, &path).await, "3");

    // A patch that changes nothing writes no version.
    let r = patch(&s, &path, &parameters(vec![replace_gender("other")]), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(version_of(&s, &path).await, "3");

    let r = patch(&s, "Patient/nobody", &parameters(vec![replace_gender("male")]), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn conditional_fhirpath_patch(s: TestServer) {
    let id = s.create(&patient("Cond")).await;
    let r =
        patch(&s, "Patient?identifier=http://clinic.example/mrn|Cond", &parameters(vec![replace_gender("male")]), &[])
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!((p["gender"].clone(), p["meta"]["versionId"].clone()), (json!("male"), json!("2")));

    let r = patch(
        &s,
        "Patient?identifier=http://clinic.example/mrn|Nobody",
        &parameters(vec![replace_gender("male")]),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    s.create(&patient("Twin")).await;
    s.create(&patient("Twin")).await;
    let r =
        patch(&s, "Patient?identifier=http://clinic.example/mrn|Twin", &parameters(vec![replace_gender("male")]), &[])
            .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
}

async fn failing_patch_changes_nothing(s: TestServer) {
    let id = s.create(&patient("Fail")).await;
    let path = format!("Patient/{id}");
    let unchanged = s.get(&path).await.json();

    // The first operation applies, the second does not: nothing is written.
    let body = parameters(vec![
        replace_gender("male"),
        operation("replace", "Patient.deceased", json!([{"name": "value", "valueBoolean": true}])),
    ]);
    let r = patch(&s, &path, &body, &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    r.assert_outcome_at("Parameters.parameter[1]");
    assert!(r.text.contains("No content found at Patient.deceased when replacing"), "{}", r.text);

    // Applies, but the result is not a valid Patient.
    let r = patch(&s, &path, &parameters(vec![replace_gender("boy")]), &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    r.assert_outcome_at("Patient.gender");

    // Malformed documents.
    let r = patch(&s, &path, &parameters(vec![operation("remove", "Patient.gender", json!([]))]), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    r.assert_outcome_at("Parameters.parameter[0]");
    let r = patch(&s, &path, &parameters(vec![operation("delete", "Patient.name.where(", json!([]))]), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = patch(&s, &path, &json!([{"op": "remove", "path": "/gender"}]), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a JSON Patch sent as FHIR JSON: {}", r.text);
    let r = s.raw(Method::PATCH, &path, "application/xml", b"<Parameters/>".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The id is the server's.
    let r = patch(
        &s,
        &path,
        &parameters(vec![operation("replace", "Patient.id", json!([{"name": "value", "valueId": "other"}]))]),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    assert_eq!(s.get(&path).await.json(), unchanged);
}

async fn stale_if_match_is_refused(s: TestServer) {
    let id = s.create(&patient("Match")).await;
    let path = format!("Patient/{id}");
    let r = patch(&s, &path, &parameters(vec![replace_gender("male")]), &[("if-match", "W/\"1\"")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = patch(&s, &path, &parameters(vec![replace_gender("other")]), &[("if-match", "W/\"1\"")]).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
    let p = s.get(&path).await.json();
    assert_eq!((p["gender"].clone(), p["meta"]["versionId"].clone()), (json!("male"), json!("2")));
}

fn patch_entry(url: &str, resource: Value) -> Value {
    json!({"resource": resource, "request": {"method": "PATCH", "url": url}})
}

fn json_patch_binary(operations: &Value) -> Value {
    json!({"resourceType": "Binary", "contentType": "application/json-patch+json",
           "data": fhir::codec::base64_encode(operations.to_string().as_bytes(), false)})
}

async fn patch_entries_in_a_transaction(s: TestServer) {
    let a = s.create(&patient("TxA")).await;
    let b = s.create(&patient("TxB")).await;
    let c = s.create(&patient("TxC")).await;
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        patch_entry(&format!("Patient/{a}"), parameters(vec![replace_gender("male")])),
        patch_entry(&format!("Patient/{b}"), json_patch_binary(&json!([{"op": "add", "path": "/active", "value": true}]))),
        patch_entry("Patient?identifier=http://clinic.example/mrn|TxC", parameters(vec![
            operation("add", "Patient", json!([{"name": "name", "valueString": "deceased"}, {"name": "value", "valueBoolean": false}])),
        ])),
    ]});
    let r = s.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let statuses: Vec<Value> =
        r.json()["entry"].as_array().into_iter().flatten().map(|e| e["response"]["status"].clone()).collect();
    assert_eq!(statuses, [json!("200 OK"), json!("200 OK"), json!("200 OK")]);
    assert_eq!(s.get(&format!("Patient/{a}")).await.json()["gender"], "male");
    assert_eq!(s.get(&format!("Patient/{b}")).await.json()["active"], true);
    assert_eq!(s.get(&format!("Patient/{c}")).await.json()["deceasedBoolean"], false);

    // All or nothing: the second entry's patch does not apply, so the first is not written.
    let failing = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        patch_entry(&format!("Patient/{a}"), parameters(vec![replace_gender("other")])),
        patch_entry(&format!("Patient/{b}"), parameters(vec![operation("delete", "Patient.name.given | Patient.identifier", json!([]))])),
    ]});
    let r = s.send(Method::POST, "", Some(&failing), &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    r.assert_outcome_at("Bundle.entry[1].resource.parameter[0]");
    let pa = s.get(&format!("Patient/{a}")).await.json();
    assert_eq!((pa["gender"].clone(), pa["meta"]["versionId"].clone()), (json!("male"), json!("2")));

    let wrong = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        patch_entry(&format!("Patient/{a}"), json!({"resourceType": "Basic", "code": {"text": "x"}})),
    ]});
    let r = s.send(Method::POST, "", Some(&wrong), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

async fn patch_entries_in_a_batch(s: TestServer) {
    let a = s.create(&patient("BatchA")).await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        patch_entry(&format!("Patient/{a}"), parameters(vec![operation("replace", "Patient.deceased", json!([{"name": "value", "valueBoolean": true}]))])),
        patch_entry(&format!("Patient/{a}"), parameters(vec![replace_gender("male")])),
    ]});
    let r = s.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resp = r.json();
    assert_eq!(resp["entry"][0]["response"]["status"], "422 Unprocessable Entity");
    let outcome = &resp["entry"][0]["response"]["outcome"];
    assert_eq!(outcome["issue"][0]["expression"][0], "Bundle.entry[0].resource.parameter[0]", "{outcome}");
    assert_eq!(resp["entry"][1]["response"]["status"], "200 OK");
    assert_eq!(s.get(&format!("Patient/{a}")).await.json()["gender"], "male");
}

async fn capability_lists_both_patch_formats(s: TestServer) {
    let cs = s.get("metadata").await.json();
    assert_eq!(cs["patchFormat"], json!(["application/json-patch+json", "application/fhir+json"]));
}
