//! FHIR R4 search (http://hl7.org/fhir/R4/search.html) over HTTP, on SQLite and on PostgreSQL:
//! the parameter types and their modifiers and prefixes, the common parameters, multiple values,
//! errors and lenient handling, POST `_search`, and conditional interactions with full criteria.
//!
//! Every test seeds its own resources with client-chosen ids and asserts the exact set of matches.
//! See `search_chain.rs` (chaining, `_has`, `_include`), `search_results.rs` (sorting, paging,
//! `_summary`, `_elements`, compartments, `$everything`) and `search_synthea.rs` (real data).

mod common;
mod search_support;

use common::TestServer;
use reqwest::{Method, StatusCode};
use search_support::*;
use serde_json::{Value, json};

on_both_stores!(
    string_default_exact_contains,
    string_human_name_and_address_parts,
    string_missing,
    token_code_and_system_forms,
    token_identifier_boolean_code,
    token_text_modifier,
    token_not_includes_missing,
    token_of_type_on_identifier,
    token_missing,
    token_in_and_not_in_value_sets,
    token_above_below_in_code_system_hierarchies,
    token_above_below_errors_and_lenience,
    date_prefixes_on_dates_of_different_precision,
    date_prefixes_on_periods,
    date_time_zones,
    date_and_or,
    last_updated,
    number_precision_and_prefixes,
    number_on_integers,
    quantity_system_unit_and_value,
    quantity_ucum_normalised,
    quantity_on_components_and_encounter_length,
    reference_forms,
    reference_identifier_and_missing,
    reference_canonical_with_version,
    uri_exact_above_below,
    composite_pairs_within_one_component,
    id_parameter,
    meta_parameters,
    list_parameter,
    text_and_content,
    system_level_type,
    or_and_and_escaping,
    errors_name_the_parameter,
    lenient_handling_ignores_unknown,
    vendor_total_method_is_ignored,
    post_search_equals_get,
    conditional_create_with_criteria,
    conditional_update_with_criteria,
    conditional_delete_with_criteria_matching_several,
);

// ---------------------------------------------------------------------------------------------
// string

fn name(family: &str, given: &[&str]) -> Value {
    json!([{"family": family, "given": given}])
}

async fn string_default_exact_contains(s: TestServer) {
    seed(
        &s,
        vec![
            patient("s1", json!({"name": name("McDonald", &["Ronald"])})),
            patient("s2", json!({"name": name("Dupont", &["Évelyne"])})),
            patient("s3", json!({"name": name("Macdonald", &["Steve"])})),
            patient("s4", json!({"name": name("Evans", &["Mary"])})),
            patient("s5", json!({"name": name("Éva", &["Zoë"])})),
        ],
    )
    .await;
    // Default: equals or starts with, after normalising case and accents (search.html#string).
    expect(&s, "Patient?name=eve", &["s2"]).await;
    expect(&s, "Patient?given=EVEL", &["s2"]).await;
    expect(&s, "Patient?family=Mc", &["s1"]).await;
    expect(&s, "Patient?family=mc", &["s1"]).await;
    expect(&s, "Patient?family=eva", &["s4", "s5"]).await;
    // "Steve" contains "eve" but does not start with it.
    expect(&s, "Patient?given=eve", &["s2"]).await;
    expect(&s, "Patient?family=donald", &[]).await;
    // :exact: the whole string, case and accents significant.
    expect(&s, "Patient?family:exact=McDonald", &["s1"]).await;
    expect(&s, "Patient?family:exact=mcdonald", &[]).await;
    expect(&s, "Patient?family:exact=McDon", &[]).await;
    expect(&s, "Patient?given:exact=Évelyne", &["s2"]).await;
    expect(&s, "Patient?given:exact=Evelyne", &[]).await;
    expect(&s, "Patient?family:exact=Eva", &[]).await;
    expect(&s, "Patient?family:exact=Éva", &["s5"]).await;
    // :contains: anywhere in the string, case- and accent-insensitive.
    expect(&s, "Patient?family:contains=DONALD", &["s1", "s3"]).await;
    expect(&s, "Patient?given:contains=eve", &["s2", "s3"]).await;
    expect(&s, "Patient?given:contains=zoe", &["s5"]).await;
}

async fn string_human_name_and_address_parts(s: TestServer) {
    seed(
        &s,
        vec![
            patient("h1", json!({"name": [{"family": "Smith", "given": ["Anna", "Maria"], "prefix": ["Dr"]}]})),
            patient("h2", json!({"name": [{"text": "Kees van Dijk", "family": "Dijk", "suffix": ["Jr"]}]})),
            patient(
                "h3",
                json!({"name": [{"family": "Jones", "given": ["Smithy"]}, {"use": "maiden", "family": "Brown"}]}),
            ),
            patient(
                "h4",
                json!({"address": [{"line": ["12 Keizersgracht"], "city": "Amsterdam", "district": "Centrum",
                    "state": "Noord-Holland", "postalCode": "1015 CJ", "country": "NL"}]}),
            ),
            patient(
                "h5",
                json!({"address": [{"text": "Rotterdam harbour", "city": "Rotterdam", "postalCode": "3011"}]}),
            ),
        ],
    )
    .await;
    // `name` may match any part of the HumanName: family, given, prefix, suffix, text (Patient-name).
    expect(&s, "Patient?name=smith", &["h1", "h3"]).await;
    expect(&s, "Patient?name=maria", &["h1"]).await;
    expect(&s, "Patient?name=dr", &["h1"]).await;
    expect(&s, "Patient?name=jr", &["h2"]).await;
    expect(&s, "Patient?name=kees van", &["h2"]).await;
    expect(&s, "Patient?name=brown", &["h3"]).await;
    // `family` and `given` are one part each.
    expect(&s, "Patient?family=smith", &["h1"]).await;
    expect(&s, "Patient?given=smith", &["h3"]).await;
    expect(&s, "Patient?family=brown", &["h3"]).await;
    expect(&s, "Patient?given=dr", &[]).await;
    // `address` may match any string part of the Address (Patient-address).
    expect(&s, "Patient?address=amsterdam", &["h4"]).await;
    expect(&s, "Patient?address=12 keizers", &["h4"]).await;
    expect(&s, "Patient?address=noord", &["h4"]).await;
    expect(&s, "Patient?address=nl", &["h4"]).await;
    expect(&s, "Patient?address=rotterdam", &["h5"]).await;
    expect(&s, "Patient?address-city=amst", &["h4"]).await;
    expect(&s, "Patient?address-city=centrum", &[]).await;
    expect(&s, "Patient?address-postalcode=1015", &["h4"]).await;
    expect(&s, "Patient?address-postalcode=3011", &["h5"]).await;
    expect(&s, "Patient?address-postalcode=1015 CJ,3011", &["h4", "h5"]).await;
}

async fn string_missing(s: TestServer) {
    seed(
        &s,
        vec![
            patient("m1", json!({"name": [{"family": "Named"}]})),
            patient("m2", json!({"gender": "male"})),
            patient("m3", json!({"name": [{"given": ["OnlyGiven"]}]})),
        ],
    )
    .await;
    expect(&s, "Patient?name:missing=true", &["m2"]).await;
    expect(&s, "Patient?name:missing=false", &["m1", "m3"]).await;
    // m3 has a name but no family: for `family` it is missing.
    expect(&s, "Patient?family:missing=true", &["m2", "m3"]).await;
    expect(&s, "Patient?family:missing=false", &["m1"]).await;
}

// ---------------------------------------------------------------------------------------------
// token

async fn token_code_and_system_forms(s: TestServer) {
    seed(
        &s,
        vec![
            observation(
                "t1",
                json!({"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}}),
            ),
            observation(
                "t2",
                json!({"code": {"coding": [
                    {"system": "http://snomed.info/sct", "code": "364075005"},
                    {"system": "http://loinc.org", "code": "8867-4"}]}}),
            ),
            observation("t3", json!({"code": {"coding": [{"system": "http://example.org/codes", "code": "8867-4"}]}})),
            observation("t4", json!({"code": {"coding": [{"code": "8867-4"}]}})),
            observation("t5", json!({"code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]}})),
        ],
    )
    .await;
    // [system]|[code]: that code in that system; any of a CodeableConcept's codings may match.
    expect(&s, "Observation?code=http://loinc.org|8867-4", &["t1", "t2"]).await;
    expect(&s, "Observation?code=http://snomed.info/sct|364075005", &["t2"]).await;
    // [code]: the code in any system, or none.
    expect(&s, "Observation?code=8867-4", &["t1", "t2", "t3", "t4"]).await;
    // |[code]: the code with no system.
    expect(&s, "Observation?code=|8867-4", &["t4"]).await;
    // [system]|: any code in the system.
    expect(&s, "Observation?code=http://loinc.org|", &["t1", "t2", "t5"]).await;
    // Codes are compared exactly: no prefix matching on tokens.
    expect(&s, "Observation?code=8867", &[]).await;
    expect(&s, "Observation?code=http://loinc.org|8867", &[]).await;
    // A system URI is not matched by prefix either.
    expect(&s, "Observation?code=http://loinc|8867-4", &[]).await;
}

async fn token_identifier_boolean_code(s: TestServer) {
    seed(
        &s,
        vec![
            patient(
                "i1",
                json!({"identifier": [{"system": "urn:mrn", "value": "12345"}], "active": true, "gender": "female"}),
            ),
            patient(
                "i2",
                json!({"identifier": [{"system": "urn:ssn", "value": "12345"}, {"system": "urn:mrn", "value": "777"}],
                    "active": false, "gender": "male"}),
            ),
            patient("i3", json!({"identifier": [{"value": "12345"}], "gender": "other"})),
            patient("i4", json!({})),
        ],
    )
    .await;
    expect(&s, "Patient?identifier=urn:mrn|12345", &["i1"]).await;
    expect(&s, "Patient?identifier=12345", &["i1", "i2", "i3"]).await;
    expect(&s, "Patient?identifier=|12345", &["i3"]).await;
    expect(&s, "Patient?identifier=urn:mrn|", &["i1", "i2"]).await;
    expect(&s, "Patient?identifier=urn:mrn|777", &["i2"]).await;
    expect(&s, "Patient?identifier=urn:ssn|777", &[]).await;
    // boolean: only resources that have the value; a missing `active` is neither true nor false.
    expect(&s, "Patient?active=true", &["i1"]).await;
    expect(&s, "Patient?active=false", &["i2"]).await;
    // code
    expect(&s, "Patient?gender=female", &["i1"]).await;
    expect(&s, "Patient?gender=male,other", &["i2", "i3"]).await;
}

async fn token_text_modifier(s: TestServer) {
    seed(
        &s,
        vec![
            observation(
                "x1",
                json!({"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}], "text": "Systolic blood pressure"}}),
            ),
            observation(
                "x2",
                json!({"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic BP"}]}}),
            ),
            observation(
                "x3",
                json!({"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic BP"}]}}),
            ),
            observation("x4", json!({"code": {"coding": [{"system": "http://example.org", "code": "systolic"}]}})),
        ],
    )
    .await;
    // :text searches CodeableConcept.text and Coding.display with string semantics (starts
    // with, case-insensitive); it does not look at the code itself (x4).
    expect(&s, "Observation?code:text=systolic", &["x1", "x2"]).await;
    expect(&s, "Observation?code:text=SYSTOLIC BLOOD", &["x1"]).await;
    expect(&s, "Observation?code:text=diastolic", &["x3"]).await;
    // String matching is "equals or starts with", not "contains".
    expect(&s, "Observation?code:text=pressure", &[]).await;
}

async fn token_not_includes_missing(s: TestServer) {
    seed(
        &s,
        vec![
            patient("g1", json!({"gender": "female"})),
            patient("g2", json!({"gender": "male"})),
            patient("g3", json!({"gender": "unknown"})),
            patient("g4", json!({})),
        ],
    )
    .await;
    // :not returns every resource without a matching value, including those that have no value
    // at all (search.html#token: "gender:not=male" includes patients with no gender).
    expect(&s, "Patient?gender:not=male", &["g1", "g3", "g4"]).await;
    expect(&s, "Patient?gender:not=male&gender:not=female", &["g3", "g4"]).await;
    seed(
        &s,
        vec![
            observation("n1", json!({"code": loinc("8867-4")})),
            observation(
                "n2",
                json!({"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"},
                    {"system": "http://snomed.info/sct", "code": "364075005"}]}}),
            ),
            observation("n3", json!({"code": loinc("2339-0")})),
        ],
    )
    .await;
    // n2 has another coding that does not match, but it has a matching one: it is not returned.
    expect(&s, "Observation?code:not=http://loinc.org|8867-4", &["n3"]).await;
}

async fn token_of_type_on_identifier(s: TestServer) {
    let v2 = "http://terminology.hl7.org/CodeSystem/v2-0203";
    seed(
        &s,
        vec![
            patient(
                "o1",
                json!({"identifier": [{"type": {"coding": [{"system": v2, "code": "MR"}]}, "system": "urn:a", "value": "12345"}]}),
            ),
            patient(
                "o2",
                json!({"identifier": [{"type": {"coding": [{"system": v2, "code": "DL"}]}, "system": "urn:b", "value": "12345"}]}),
            ),
            patient("o3", json!({"identifier": [{"system": "urn:a", "value": "12345"}]})),
            patient(
                "o4",
                json!({"identifier": [
                    {"type": {"coding": [{"system": v2, "code": "MR"}]}, "value": "999"},
                    {"type": {"coding": [{"system": v2, "code": "DL"}]}, "value": "12345"}]}),
            ),
        ],
    )
    .await;
    // :of-type = [type system]|[type code]|[value], all three on the SAME identifier (o4 has an
    // MR and a 12345, but on different identifiers).
    expect(&s, &format!("Patient?identifier:of-type={v2}|MR|12345"), &["o1"]).await;
    expect(&s, &format!("Patient?identifier:of-type={v2}|DL|12345"), &["o2", "o4"]).await;
    expect(&s, &format!("Patient?identifier:of-type={v2}|MR|999"), &["o4"]).await;
}

async fn token_missing(s: TestServer) {
    seed(
        &s,
        vec![
            patient("k1", json!({"gender": "female", "identifier": [{"value": "1"}]})),
            patient("k2", json!({"active": true})),
            patient("k3", json!({})),
        ],
    )
    .await;
    expect(&s, "Patient?gender:missing=true", &["k2", "k3"]).await;
    expect(&s, "Patient?gender:missing=false", &["k1"]).await;
    expect(&s, "Patient?identifier:missing=true", &["k2", "k3"]).await;
    expect(&s, "Patient?active:missing=false", &["k2"]).await;
}

async fn token_in_and_not_in_value_sets(s: TestServer) {
    // http://hl7.org/fhir/ValueSet/observation-vitalsignresult enumerates 13 LOINC codes (8867-4
    // heart rate among them, 2339-0 glucose not); administrative-gender and observation-status
    // include their whole code systems.
    let vitals = "http://hl7.org/fhir/ValueSet/observation-vitalsignresult";
    seed(
        &s,
        vec![
            observation("v1", json!({"code": loinc("8867-4"), "status": "final"})),
            observation("v2", json!({"code": loinc("2339-0"), "status": "amended"})),
            // The same code in another system is not in the value set.
            observation(
                "v3",
                json!({"code": {"coding": [{"system": "http://example.org", "code": "8867-4"}]}, "status": "preliminary"}),
            ),
            // Nor is a code without a system: value set membership is of system and code.
            observation("v4", json!({"code": {"coding": [{"code": "8867-4"}]}, "status": "final"})),
            observation("v5", json!({"code": loinc("8480-6"), "status": "entered-in-error"})),
            patient("pa", json!({"gender": "female"})),
            patient("pb", json!({"gender": "unknown"})),
            patient("pc", json!({})),
        ],
    )
    .await;
    expect(&s, &format!("Observation?code:in={vitals}"), &["v1", "v5"]).await;
    expect(&s, &format!("Observation?code:not-in={vitals}"), &["v2", "v3", "v4"]).await;
    expect(
        &s,
        "Observation?status:in=http://hl7.org/fhir/ValueSet/observation-status",
        &["v1", "v2", "v3", "v4", "v5"],
    )
    .await;
    // Only patients that have a gender have one in the value set.
    expect(&s, "Patient?gender:in=http://hl7.org/fhir/ValueSet/administrative-gender", &["pa", "pb"]).await;
}

const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const INTENT: &str = "http://hl7.org/fhir/request-intent";

fn condition(id: &str, clinical_status: &str) -> Value {
    resource(
        "Condition",
        id,
        json!({"subject": reference_to("Patient/p"),
               "clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical_status}]}}),
    )
}

fn service_request(id: &str, intent: &str, subject: &str) -> Value {
    resource("ServiceRequest", id, json!({"status": "active", "intent": intent, "subject": reference_to(subject)}))
}

async fn token_above_below_in_code_system_hierarchies(s: TestServer) {
    // condition-clinical nests recurrence and relapse under active, remission and resolved under
    // inactive; request-intent nests original-order, reflex-order and filler-order under order,
    // and instance-order under filler-order. Both are CodeSystems of the R4 spec.
    seed(
        &s,
        vec![
            patient("p", json!({})),
            patient("q", json!({})),
            condition("active", "active"),
            condition("recurrence", "recurrence"),
            condition("resolved", "resolved"),
            service_request("order", "order", "Patient/p"),
            service_request("instance", "instance-order", "Patient/p"),
            service_request("proposal", "proposal", "Patient/q"),
        ],
    )
    .await;
    // Plain token search: the code alone.
    expect(&s, "Condition?clinical-status=active", &["active"]).await;
    expect(&s, &format!("Condition?clinical-status={CLINICAL}|recurrence"), &["recurrence"]).await;
    // :below: the code and those it subsumes; :above: the code and those that subsume it.
    expect(&s, &format!("Condition?clinical-status:below={CLINICAL}|active"), &["active", "recurrence"]).await;
    expect(&s, &format!("Condition?clinical-status:above={CLINICAL}|recurrence"), &["active", "recurrence"]).await;
    expect(&s, &format!("Condition?clinical-status:below={CLINICAL}|recurrence"), &["recurrence"]).await;
    expect(&s, &format!("Condition?clinical-status:above={CLINICAL}|active"), &["active"]).await;
    expect(&s, &format!("Condition?clinical-status:below={CLINICAL}|inactive"), &["resolved"]).await;
    expect(&s, &format!("Condition?clinical-status:above={CLINICAL}|relapse"), &["active"]).await;
    // ORed values: the union of the hierarchies; ANDed: the intersection.
    expect(
        &s,
        &format!("Condition?clinical-status:below={CLINICAL}|active,{CLINICAL}|inactive"),
        &["active", "recurrence", "resolved"],
    )
    .await;
    expect(
        &s,
        &format!("Condition?clinical-status:below={CLINICAL}|active&clinical-status:above={CLINICAL}|recurrence"),
        &["active", "recurrence"],
    )
    .await;
    // Two levels deep, on a code element (indexed with the system of its required binding).
    expect(&s, "ServiceRequest?intent=order", &["order"]).await;
    expect(&s, &format!("ServiceRequest?intent:below={INTENT}|order"), &["order", "instance"]).await;
    expect(&s, &format!("ServiceRequest?intent:above={INTENT}|instance-order"), &["order", "instance"]).await;
    expect(&s, &format!("ServiceRequest?intent:above={INTENT}|filler-order"), &["order"]).await;
    expect(&s, &format!("ServiceRequest?intent:below={INTENT}|filler-order"), &["instance"]).await;
    // A code the system does not define finds only itself (search.html#errors: not an error).
    expect(&s, &format!("ServiceRequest?intent:below={INTENT}|nonsense"), &[]).await;
    // Inside _has, as any token filter.
    expect(&s, &format!("Patient?_has:ServiceRequest:subject:intent:below={INTENT}|order"), &["p"]).await;
    expect(&s, &format!("Patient?_has:ServiceRequest:subject:intent:above={INTENT}|proposal"), &["q"]).await;
    // The self link carries the parameter as given, not its expansion.
    let b = search(&s, &format!("Condition?clinical-status:below={CLINICAL}|active")).await;
    let self_link = link(&b, "self").expect("self");
    assert!(self_link.contains("clinical-status%3Abelow=") && !self_link.contains("recurrence"), "{self_link}");
}

async fn token_above_below_errors_and_lenience(s: TestServer) {
    seed(&s, vec![patient("p", json!({})), condition("active", "active"), condition("resolved", "resolved")]).await;
    // A system whose hierarchy the server does not carry (SNOMED CT and LOINC are not in the
    // spec): a 400 naming the parameter and the system.
    for query in
        ["Condition?code:below=http://snomed.info/sct|404684003", "Observation?code:above=http://loinc.org|8867-4"]
    {
        let r = s.get(query).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        let outcome = r.json();
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{query}: {}", r.text);
        assert_eq!(outcome["issue"][0]["code"], "not-supported", "{query}: {}", r.text);
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().expect("diagnostics");
        let param = query.split_once('?').and_then(|(_, q)| q.split_once('=')).map(|(p, _)| p).expect("param");
        assert!(diagnostics.contains(param), "{query}: {diagnostics}");
        assert!(diagnostics.contains("hierarchy") && diagnostics.contains("http://"), "{query}: {diagnostics}");
    }
    // With Prefer: handling=lenient it is skipped and reported, like an unknown parameter.
    let query = "Condition?code:below=http://snomed.info/sct|404684003&clinical-status=active";
    let r = s.send(Method::GET, query, None, &[("prefer", "handling=lenient")]).await;
    let b = searchset(query, &r);
    assert_eq!(match_ids(&b), ["active"]);
    let outcome = entries(&b).find(|e| e["search"]["mode"] == "outcome").expect("an outcome entry");
    assert!(outcome["resource"].to_string().contains("code:below"), "{outcome}");
    // Without a system, or without a code, the value is malformed: a 400 even when lenient.
    for query in ["Condition?clinical-status:below=active", &format!("Condition?clinical-status:above={CLINICAL}|")] {
        let r = s.send(Method::GET, query, None, &[("prefer", "handling=lenient")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert!(r.text.contains("clinical-status:"), "{query}: {}", r.text);
    }
    let r = s.get("Condition?clinical-status:below=active").await;
    assert!(r.text.contains("needs a system"), "{}", r.text);
}

// ---------------------------------------------------------------------------------------------
// date

async fn date_prefixes_on_dates_of_different_precision(s: TestServer) {
    // A date is a range: 1980-02 is [1980-02-01, 1980-03-01), 1980 is the whole year
    // (search.html#date). Prefixes compare the search range with the stored range:
    // eq: search contains stored; ne: not eq; gt: the range above the search value overlaps the
    // stored one; lt: the range below overlaps; ge: gt or eq; le: lt or eq; sa: stored starts
    // after the search range ends; eb: stored ends before it starts.
    seed(
        &s,
        vec![
            patient("month", json!({"birthDate": "1980-02"})),
            patient("day", json!({"birthDate": "1980-02-15"})),
            patient("year", json!({"birthDate": "1980"})),
            patient("before", json!({"birthDate": "1979-12-31"})),
            patient("after", json!({"birthDate": "1981-01-01"})),
            patient("old", json!({"birthDate": "1950-06-01"})),
            patient("none", json!({"gender": "other"})),
        ],
    )
    .await;
    expect(&s, "Patient?birthdate=1980-02-15", &["day"]).await;
    expect(&s, "Patient?birthdate=eq1980-02-15", &["day"]).await;
    expect(&s, "Patient?birthdate=1980-02", &["month", "day"]).await;
    expect(&s, "Patient?birthdate=1980", &["month", "day", "year"]).await;
    // A resource without the value never matches a prefix (only :missing finds it).
    expect(&s, "Patient?birthdate=ne1980-02", &["year", "before", "after", "old"]).await;
    expect(&s, "Patient?birthdate=gt1980-02-15", &["month", "year", "after"]).await;
    expect(&s, "Patient?birthdate=lt1980-02-15", &["month", "year", "before", "old"]).await;
    expect(&s, "Patient?birthdate=ge1980-02-15", &["month", "day", "year", "after"]).await;
    expect(&s, "Patient?birthdate=le1980-02-15", &["month", "day", "year", "before", "old"]).await;
    expect(&s, "Patient?birthdate=sa1980-02", &["after"]).await;
    expect(&s, "Patient?birthdate=eb1980-02", &["before", "old"]).await;
    // sa1979: what starts in 1980 or later; 1979-12-31 overlaps 1979.
    expect(&s, "Patient?birthdate=sa1979", &["month", "day", "year", "after"]).await;
    // ap: the spec recommends 10% of the gap between now and the value: for 1980-02-15 that is
    // more than four years either way, so everything from 1979 to 1981 is near, 1950 is not.
    expect(&s, "Patient?birthdate=ap1980-02-15", &["month", "day", "year", "before", "after"]).await;
    // Search values may be more precise than the stored value: 1980-02-15T10:00Z is inside the
    // month and the year, so only gt/lt/ge/le overlap them; eq needs containment.
    expect(&s, "Patient?birthdate=1980-02-15T10:00:00Z", &[]).await;
    expect(&s, "Patient?birthdate:missing=true", &["none"]).await;
}

async fn date_prefixes_on_periods(s: TestServer) {
    // Encounter.period is the stored range; an absent start or end is open (-inf / +inf).
    let p = |start: Option<&str>, end: Option<&str>| {
        let mut period = serde_json::Map::new();
        if let Some(v) = start {
            period.insert("start".into(), json!(v));
        }
        if let Some(v) = end {
            period.insert("end".into(), json!(v));
        }
        json!({"period": period})
    };
    seed(
        &s,
        vec![
            encounter("e2019", p(Some("2019-06-01"), Some("2019-12-31"))),
            encounter("straddle", p(Some("2019-12-01"), Some("2020-02-01"))),
            encounter("open-end", p(Some("2020-05-01"), None)),
            encounter("in2020", p(Some("2020-03-01T08:00:00Z"), Some("2020-03-01T09:00:00Z"))),
            encounter("e2021", p(Some("2021-03-01"), Some("2021-03-05"))),
            encounter("open-start", p(None, Some("2019-01-01"))),
        ],
    )
    .await;
    expect(&s, "Encounter?date=2020", &["in2020"]).await;
    expect(&s, "Encounter?date=ne2020", &["e2019", "straddle", "open-end", "e2021", "open-start"]).await;
    // gt2020: the stored period reaches past the end of 2020.
    expect(&s, "Encounter?date=gt2020", &["open-end", "e2021"]).await;
    // ge2020 = gt2020 or contained in 2020. The period that straddles New Year 2020 is neither:
    // it is not inside 2020 and does not reach beyond it (it matches lt2020 instead).
    expect(&s, "Encounter?date=ge2020", &["open-end", "in2020", "e2021"]).await;
    expect(&s, "Encounter?date=lt2020", &["e2019", "straddle", "open-start"]).await;
    expect(&s, "Encounter?date=le2020", &["e2019", "straddle", "in2020", "open-start"]).await;
    // sa: starts after 2020 ends; eb: ends before 2020 starts.
    expect(&s, "Encounter?date=sa2020", &["e2021"]).await;
    expect(&s, "Encounter?date=eb2020", &["e2019", "open-start"]).await;
    // A day inside the straddling period: eq needs containment, so only gt/lt/ge/le find it.
    expect(&s, "Encounter?date=2020-01-15", &[]).await;
    expect(&s, "Encounter?date=ge2020-01-15", &["straddle", "open-end", "in2020", "e2021"]).await;
    expect(&s, "Encounter?date=le2020-01-15", &["e2019", "straddle", "open-start"]).await;
}

async fn date_time_zones(s: TestServer) {
    seed(
        &s,
        vec![
            // 23:30 at UTC-5 on the 15th is 04:30 UTC on the 16th.
            observation("west", json!({"effectiveDateTime": "2020-03-15T23:30:00-05:00"})),
            observation("utc", json!({"effectiveDateTime": "2020-03-15T12:00:00Z"})),
            // 01:00 at UTC+10 on the 16th is 15:00 UTC on the 15th.
            observation("east", json!({"effectiveDateTime": "2020-03-16T01:00:00+10:00"})),
            observation("dateonly", json!({"effectiveDateTime": "2020-03-15"})),
            observation("instant", json!({"effectiveInstant": "2020-03-15T18:00:00.123Z"})),
        ],
    )
    .await;
    // Search values with a zone are compared as instants, whatever zone the stored value has.
    expect(&s, "Observation?date=ge2020-03-16T00:00:00Z", &["west"]).await;
    expect(&s, "Observation?date=lt2020-03-16T00:00:00Z&_id=west,utc,east,instant", &["utc", "east", "instant"]).await;
    // `+` must be percent-encoded in a URL: 2020-03-16T00:00:00+01:00 is 23:00 UTC on the 15th.
    expect(&s, "Observation?date=lt2020-03-16T00:00:00%2B01:00&_id=west,utc,east,instant", &["utc", "east", "instant"])
        .await;
    expect(&s, "Observation?date=gt2020-03-15T14:59:59Z&_id=west,utc,east,instant", &["west", "east", "instant"]).await;
    // Equality to the second: the stored value has second precision, so the second contains it.
    expect(&s, "Observation?date=2020-03-15T15:00:00Z", &["east"]).await;
    expect(&s, "Observation?date=2020-03-16T04:30:00Z", &["west"]).await;
    // A date search value has no zone; the server reads it in its own zone, UTC for Iaso (an
    // assumption: R4 leaves the zone of zone-less values to the server). West is on the 16th in UTC.
    expect(&s, "Observation?date=2020-03-15", &["utc", "east", "dateonly", "instant"]).await;
    expect(&s, "Observation?date=2020-03-16", &["west"]).await;
    // A stored date (no time) is the whole day: an instant inside it overlaps but does not contain it.
    expect(&s, "Observation?date=2020-03-15T12:00:00Z", &["utc"]).await;
    expect(&s, "Observation?date=ge2020-03-15T12:00:00Z&_id=dateonly", &["dateonly"]).await;
    expect(&s, "Observation?date=le2020-03-15T12:00:00Z&_id=dateonly", &["dateonly"]).await;
}

async fn date_and_or(s: TestServer) {
    seed(
        &s,
        vec![
            patient("d1979", json!({"birthDate": "1979-12-31"})),
            patient("d1980", json!({"birthDate": "1980-06-01"})),
            patient("d1981", json!({"birthDate": "1981-01-01"})),
            patient("d1982", json!({"birthDate": "1982-07-07"})),
        ],
    )
    .await;
    // Repeating a parameter is AND: a range.
    expect(&s, "Patient?birthdate=ge1980&birthdate=lt1982", &["d1980", "d1981"]).await;
    expect(&s, "Patient?birthdate=ge1980-06-02&birthdate=le1981", &["d1981"]).await;
    // A comma is OR.
    expect(&s, "Patient?birthdate=1979,1982", &["d1979", "d1982"]).await;
    expect(&s, "Patient?birthdate=lt1980,gt1981", &["d1979", "d1982"]).await;
    // Both together.
    expect(&s, "Patient?birthdate=1979,1980,1981&birthdate=ge1980", &["d1980", "d1981"]).await;
    expect(&s, "Patient?birthdate=ge1983&birthdate=le1979", &[]).await;
}

async fn last_updated(s: TestServer) {
    let first = put_one(&s, &patient("first", json!({"gender": "male"}))).await;
    // lastUpdated has millisecond precision: make sure the second write is later.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    put_one(&s, &patient("second", json!({"gender": "female"}))).await;
    let t = first["meta"]["lastUpdated"].as_str().expect("lastUpdated").to_owned();
    let t = t.replace('+', "%2B");
    expect(&s, "Patient?_lastUpdated=gt2000-01-01", &["first", "second"]).await;
    expect(&s, "Patient?_lastUpdated=lt2000-01-01", &[]).await;
    expect(&s, "Patient?_lastUpdated=ge2999-01-01", &[]).await;
    expect(&s, "Patient?_lastUpdated=le2999-12-31T23:59:59Z", &["first", "second"]).await;
    // The exact instant of the first write (its own precision, a millisecond) matches only it.
    expect(&s, &format!("Patient?_lastUpdated={t}"), &["first"]).await;
    expect(&s, &format!("Patient?_lastUpdated=gt{t}"), &["second"]).await;
    expect(&s, &format!("Patient?_lastUpdated=le{t}"), &["first"]).await;
    // Combined with another parameter, on the type that was not written.
    expect(&s, "Observation?_lastUpdated=gt2000-01-01", &[]).await;
}

// ---------------------------------------------------------------------------------------------
// number

async fn number_precision_and_prefixes(s: TestServer) {
    // ChargeItem.factorOverride is a decimal (ChargeItem-factor-override).
    let ci = |id: &str, factor: Option<&str>| {
        let mut r = resource(
            "ChargeItem",
            id,
            json!({"status": "billable", "code": {"text": "visit"}, "subject": reference_to("Patient/x")}),
        );
        if let Some(f) = factor {
            // Exact decimal text: serde_json keeps it (arbitrary_precision).
            r["factorOverride"] = serde_json::from_str(f).expect("number");
        }
        r
    };
    seed(
        &s,
        vec![
            ci("c99-4", Some("99.4")),
            ci("c99-6", Some("99.6")),
            ci("c100", Some("100")),
            ci("c100-4", Some("100.4")),
            ci("c100-6", Some("100.6")),
            ci("cnone", None),
        ],
    )
    .await;
    // The precision of the search value makes it a range: 100 is [99.5, 100.5)
    // (search.html#number: "[parameter]=100 ... searching for values in the range 99.5 to 100.5").
    expect(&s, "ChargeItem?factor-override=100", &["c99-6", "c100", "c100-4"]).await;
    expect(&s, "ChargeItem?factor-override=eq100", &["c99-6", "c100", "c100-4"]).await;
    expect(&s, "ChargeItem?factor-override=100.4", &["c100-4"]).await;
    expect(&s, "ChargeItem?factor-override=ne100", &["c99-4", "c100-6"]).await;
    // gt/lt/ge/le compare with the value exactly: "gt100: values that are greater than exactly 100".
    expect(&s, "ChargeItem?factor-override=gt100", &["c100-4", "c100-6"]).await;
    expect(&s, "ChargeItem?factor-override=lt100", &["c99-4", "c99-6"]).await;
    expect(&s, "ChargeItem?factor-override=ge100", &["c100", "c100-4", "c100-6"]).await;
    expect(&s, "ChargeItem?factor-override=le100", &["c99-4", "c99-6", "c100"]).await;
    expect(&s, "ChargeItem?factor-override=99.4,100.6", &["c99-4", "c100-6"]).await;
    expect(&s, "ChargeItem?factor-override=gt99.5&factor-override=lt100.5", &["c99-6", "c100", "c100-4"]).await;
    expect(&s, "ChargeItem?factor-override:missing=true", &["cnone"]).await;
}

async fn number_on_integers(s: TestServer) {
    // MolecularSequence.variant.start is an integer; a sequence may carry several variants.
    let ms = |id: &str, starts: &[i64]| {
        let mut r = resource("MolecularSequence", id, json!({"coordinateSystem": 0}));
        if !starts.is_empty() {
            r["variant"] = starts.iter().map(|v| json!({"start": v})).collect();
        }
        r
    };
    seed(&s, vec![ms("m10", &[10]), ms("m20", &[20]), ms("m5-30", &[5, 30]), ms("mnone", &[])]).await;
    expect(&s, "MolecularSequence?variant-start=10", &["m10"]).await;
    expect(&s, "MolecularSequence?variant-start=gt15", &["m20", "m5-30"]).await;
    expect(&s, "MolecularSequence?variant-start=lt10", &["m5-30"]).await;
    expect(&s, "MolecularSequence?variant-start=le10", &["m10", "m5-30"]).await;
    expect(&s, "MolecularSequence?variant-start=ge20", &["m20", "m5-30"]).await;
    expect(&s, "MolecularSequence?variant-start=5,20", &["m20", "m5-30"]).await;
}

// ---------------------------------------------------------------------------------------------
// quantity

fn valued(id: &str, q: Value) -> Value {
    observation(id, json!({"valueQuantity": q}))
}

async fn quantity_system_unit_and_value(s: TestServer) {
    seed(
        &s,
        vec![
            valued("mg5-4", ucum("5.4", "mg")),
            // The same code in another unit system.
            valued("other5-4", json!({"value": 5.4, "system": "http://example.org/units", "code": "mg"})),
            // Only a human-readable unit.
            valued("unit5-4", json!({"value": 5.4, "unit": "mg"})),
            valued("kg5-4", ucum("5.4", "kg")),
            valued("mg6", ucum("6", "mg")),
            valued("mg5", ucum("5", "mg")),
        ],
    )
    .await;
    // [number]|[system]|[code]: value (range of its precision, 5.4 = [5.35, 5.45)), system, code.
    expect(&s, "Observation?value-quantity=5.4|http://unitsofmeasure.org|mg", &["mg5-4"]).await;
    // [number]||[code]: any system; the code or the unit may match.
    expect(&s, "Observation?value-quantity=5.4||mg", &["mg5-4", "other5-4", "unit5-4"]).await;
    // [number]: any unit.
    expect(&s, "Observation?value-quantity=5.4", &["mg5-4", "other5-4", "unit5-4", "kg5-4"]).await;
    // Prefixes: gt/lt/le compare exactly, ne is outside the precision range. The values are UCUM,
    // so 5.4 kg compares as 5 400 000 mg; the other unit systems are not comparable.
    expect(&s, "Observation?value-quantity=gt5.4|http://unitsofmeasure.org|mg", &["mg6", "kg5-4"]).await;
    expect(&s, "Observation?value-quantity=lt5.4|http://unitsofmeasure.org|mg", &["mg5"]).await;
    expect(&s, "Observation?value-quantity=le5.4|http://unitsofmeasure.org|mg", &["mg5-4", "mg5"]).await;
    expect(&s, "Observation?value-quantity=ne5.4|http://unitsofmeasure.org|mg", &["mg6", "mg5", "kg5-4"]).await;
    expect(&s, "Observation?value-quantity=5.4|http://unitsofmeasure.org|g", &[]).await;
}

async fn quantity_ucum_normalised(s: TestServer) {
    seed(
        &s,
        vec![
            valued("mg1500", ucum("1500", "mg")),
            // Written with the precision of the searches below, so that equality does not depend
            // on whether the server also takes the stored value's precision into account.
            valued("g0-5", ucum("0.500", "g")),
            valued("kg2", ucum("2.000", "kg")),
            valued("mg6", ucum("6", "mg")),
            valued("cm3", ucum("3", "cm")),
        ],
    )
    .await;
    // UCUM quantities compare in canonical units: 1500 mg is 1.5 g, so gt 1 g.
    expect(&s, "Observation?value-quantity=gt1|http://unitsofmeasure.org|g", &["mg1500", "kg2"]).await;
    expect(&s, "Observation?value-quantity=lt1|http://unitsofmeasure.org|g", &["g0-5", "mg6"]).await;
    // 0.5 g is 500 mg; 500 as a search value is [499.5, 500.5).
    expect(&s, "Observation?value-quantity=500|http://unitsofmeasure.org|mg", &["g0-5"]).await;
    expect(&s, "Observation?value-quantity=2000|http://unitsofmeasure.org|g", &["kg2"]).await;
    // Length is not comparable with mass.
    expect(&s, "Observation?value-quantity=gt1|http://unitsofmeasure.org|mm", &["cm3"]).await;
}

async fn quantity_on_components_and_encounter_length(s: TestServer) {
    let bp = |id: &str, sys: &str, dia: &str| {
        observation(
            id,
            json!({"code": loinc("85354-9"), "component": [
                {"code": loinc("8480-6"), "valueQuantity": ucum(sys, "mm[Hg]")},
                {"code": loinc("8462-4"), "valueQuantity": ucum(dia, "mm[Hg]")}]}),
        )
    };
    seed(
        &s,
        vec![
            bp("bp-high", "150", "95"),
            bp("bp-normal", "118", "76"),
            valued("plain", ucum("150", "mm[Hg]")),
            encounter("e45min", json!({"length": ucum("45", "min")})),
            encounter("e1h", json!({"length": ucum("1.000", "h")})),
            encounter("e20min", json!({"length": ucum("20", "min")})),
        ],
    )
    .await;
    // component-value-quantity looks at component values only, any component.
    expect(&s, "Observation?component-value-quantity=gt140|http://unitsofmeasure.org|mm%5BHg%5D", &["bp-high"]).await;
    expect(&s, "Observation?component-value-quantity=lt80||mm%5BHg%5D", &["bp-normal"]).await;
    expect(&s, "Observation?component-value-quantity=95", &["bp-high"]).await;
    // value-quantity does not look into components.
    expect(&s, "Observation?value-quantity=gt140", &["plain"]).await;
    // Encounter-length is a quantity; 1 h is 60 min.
    expect(&s, "Encounter?length=gt30|http://unitsofmeasure.org|min", &["e45min", "e1h"]).await;
    expect(&s, "Encounter?length=60|http://unitsofmeasure.org|min", &["e1h"]).await;
}

// ---------------------------------------------------------------------------------------------
// reference

async fn reference_forms(s: TestServer) {
    seed(
        &s,
        vec![
            patient("p1", json!({})),
            patient("p2", json!({})),
            resource("Group", "g1", json!({"type": "person", "actual": true})),
            observation("o-p1", json!({"subject": reference_to("Patient/p1")})),
            observation("o-p2", json!({"subject": reference_to("Patient/p2")})),
            observation("o-g1", json!({"subject": reference_to("Group/g1")})),
            observation("o-none", json!({})),
        ],
    )
    .await;
    expect(&s, "Observation?subject=Patient/p1", &["o-p1"]).await;
    // [id] alone: any target type with that id.
    expect(&s, "Observation?subject=p1", &["o-p1"]).await;
    expect(&s, "Observation?subject=g1", &["o-g1"]).await;
    // `patient` is subject.where(resolve() is Patient): the Group subject is not a patient.
    expect(&s, "Observation?patient=p1", &["o-p1"]).await;
    expect(&s, "Observation?patient=g1", &[]).await;
    expect(&s, "Observation?patient=Patient/p1,Patient/p2", &["o-p1", "o-p2"]).await;
    // The absolute URL of a resource on this server is the same reference as the relative one.
    expect(&s, &format!("Observation?subject={}/Patient/p1", s.base), &["o-p1"]).await;
    // A URL on another server is not.
    expect(&s, "Observation?subject=http://elsewhere.example/fhir/Patient/p1", &[]).await;
    // :[type] restricts the target type.
    expect(&s, "Observation?subject:Patient=p1", &["o-p1"]).await;
    expect(&s, "Observation?subject:Group=g1", &["o-g1"]).await;
    expect(&s, "Observation?subject:Group=p1", &[]).await;
    expect(&s, "Observation?subject=Group/p1", &[]).await;
}

async fn reference_identifier_and_missing(s: TestServer) {
    seed(
        &s,
        vec![
            observation("by-id", json!({"subject": {"identifier": {"system": "urn:mrn", "value": "777"}}})),
            observation(
                "both",
                json!({"subject": {"reference": "Patient/p9", "identifier": {"system": "urn:mrn", "value": "888"}}}),
            ),
            observation("literal", json!({"subject": reference_to("Patient/p9")})),
            observation("none", json!({})),
        ],
    )
    .await;
    // :identifier matches Reference.identifier, not the identifiers of the target.
    expect(&s, "Observation?subject:identifier=urn:mrn|777", &["by-id"]).await;
    expect(&s, "Observation?subject:identifier=urn:mrn|888", &["both"]).await;
    expect(&s, "Observation?subject:identifier=777", &["by-id"]).await;
    expect(&s, "Observation?subject=Patient/p9", &["both", "literal"]).await;
    expect(&s, "Observation?subject:missing=true&_id=literal,none,both", &["none"]).await;
    expect(&s, "Observation?subject:missing=false&_id=literal,none,both", &["literal", "both"]).await;
}

async fn reference_canonical_with_version(s: TestServer) {
    let qr =
        |id: &str, q: &str| resource("QuestionnaireResponse", id, json!({"status": "completed", "questionnaire": q}));
    seed(
        &s,
        vec![
            qr("v1", "http://x.org/Questionnaire/q|1.0"),
            qr("v2", "http://x.org/Questionnaire/q|2.0"),
            qr("unversioned", "http://x.org/Questionnaire/q"),
            qr("other", "http://x.org/Questionnaire/other|1.0"),
        ],
    )
    .await;
    // A canonical without a version matches every version of it; with a version, only that one.
    expect(&s, "QuestionnaireResponse?questionnaire=http://x.org/Questionnaire/q", &["v1", "v2", "unversioned"]).await;
    expect(&s, "QuestionnaireResponse?questionnaire=http://x.org/Questionnaire/q|1.0", &["v1"]).await;
    expect(&s, "QuestionnaireResponse?questionnaire=http://x.org/Questionnaire/q|3.0", &[]).await;
    expect(&s, "QuestionnaireResponse?questionnaire=http://x.org/Questionnaire/oth", &[]).await;
}

// ---------------------------------------------------------------------------------------------
// uri

async fn uri_exact_above_below(s: TestServer) {
    let vs = |id: &str, url: &str| resource("ValueSet", id, json!({"status": "active", "url": url}));
    seed(
        &s,
        vec![
            vs("a", "http://acme.org/fhir/ValueSet/a"),
            vs("ab", "http://acme.org/fhir/ValueSet/a/b"),
            vs("root", "http://acme.org/fhir"),
            vs("other", "http://acme.org/other/ValueSet/c"),
            vs("oid", "urn:oid:1.2.3.4"),
        ],
    )
    .await;
    // uri matching is exact and case-sensitive by default: no prefix matching.
    expect(&s, "ValueSet?url=http://acme.org/fhir/ValueSet/a", &["a"]).await;
    expect(&s, "ValueSet?url=http://acme.org/fhir/ValueSet", &[]).await;
    expect(&s, "ValueSet?url=http://acme.org/fhir/valueset/a", &[]).await;
    expect(&s, "ValueSet?url=urn:oid:1.2.3.4", &["oid"]).await;
    // :below: the stored uri starts with the search value.
    expect(&s, "ValueSet?url:below=http://acme.org/fhir/", &["a", "ab"]).await;
    expect(&s, "ValueSet?url:below=http://acme.org/fhir/ValueSet/a", &["a", "ab"]).await;
    // :above: the stored uri is the search value or one of its ancestors.
    expect(&s, "ValueSet?url:above=http://acme.org/fhir/ValueSet/a/b/c", &["a", "ab", "root"]).await;
    expect(&s, "ValueSet?url:above=http://acme.org/fhir/ValueSet/a", &["a", "root"]).await;
}

// ---------------------------------------------------------------------------------------------
// composite

async fn composite_pairs_within_one_component(s: TestServer) {
    let comp = |code: &str, v: &str| json!({"code": loinc(code), "valueQuantity": ucum(v, "mm[Hg]")});
    seed(
        &s,
        vec![
            observation("sys120", json!({"code": loinc("8480-6"), "valueQuantity": ucum("120", "mm[Hg]")})),
            observation("sys90", json!({"code": loinc("8480-6"), "valueQuantity": ucum("90", "mm[Hg]")})),
            observation("dia120", json!({"code": loinc("8462-4"), "valueQuantity": ucum("120", "mm[Hg]")})),
            observation(
                "bp-high",
                json!({"code": loinc("85354-9"), "component": [comp("8480-6", "150"), comp("8462-4", "80")]}),
            ),
            // The decoy: systolic is low, and the high value belongs to the diastolic component.
            observation(
                "bp-decoy",
                json!({"code": loinc("85354-9"), "component": [comp("8480-6", "90"), comp("8462-4", "130")]}),
            ),
        ],
    )
    .await;
    // code-value-quantity: the code and the value of the same Observation.
    expect(&s, "Observation?code-value-quantity=http://loinc.org|8480-6$gt100", &["sys120"]).await;
    expect(&s, "Observation?code-value-quantity=8480-6$lt100", &["sys90"]).await;
    expect(
        &s,
        "Observation?code-value-quantity=http://loinc.org|8462-4$120|http://unitsofmeasure.org|mm%5BHg%5D",
        &["dia120"],
    )
    .await;
    // component-code-value-quantity: the code and the value of the same component.
    expect(&s, "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100", &["bp-high"]).await;
    expect(&s, "Observation?component-code-value-quantity=http://loinc.org|8462-4$gt100", &["bp-decoy"]).await;
    expect(&s, "Observation?component-code-value-quantity=http://loinc.org|8462-4$lt100", &["bp-high"]).await;
    // OR of composite values.
    expect(
        &s,
        "Observation?code-value-quantity=http://loinc.org|8480-6$gt100,http://loinc.org|8462-4$gt100",
        &["sys120", "dia120"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// common parameters

async fn id_parameter(s: TestServer) {
    seed(&s, vec![patient("a", json!({})), patient("b", json!({})), patient("c", json!({}))]).await;
    expect(&s, "Patient?_id=a", &["a"]).await;
    expect(&s, "Patient?_id=a,c", &["a", "c"]).await;
    expect(&s, "Patient?_id=a,nope", &["a"]).await;
    // Repeated _id is AND: no resource has two ids.
    expect(&s, "Patient?_id=a&_id=b", &[]).await;
    expect(&s, "Patient?_id=a,b&_id=b,c", &["b"]).await;
    // Ids are per type.
    expect(&s, "Observation?_id=a", &[]).await;
    // Ids are exact: no prefix matching.
    expect(&s, "Patient?_id=ab", &[]).await;
    delete(&s, "Patient/b").await;
    // Deleted resources are not found.
    expect(&s, "Patient?_id=a,b,c", &["a", "c"]).await;
}

async fn meta_parameters(s: TestServer) {
    seed(
        &s,
        vec![
            patient(
                "m1",
                json!({"meta": {"tag": [{"system": "http://x/tags", "code": "vip"}],
                    "profile": ["http://x/StructureDefinition/p"], "source": "http://src.example/a"}}),
            ),
            patient(
                "m2",
                json!({"meta": {"tag": [{"system": "http://y/tags", "code": "vip"}],
                    "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
                    "source": "http://src.example/b#req-1"}}),
            ),
            patient(
                "m3",
                json!({"meta": {"profile": ["http://x/StructureDefinition/p-other"],
                    "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]}}),
            ),
        ],
    )
    .await;
    expect(&s, "Patient?_tag=http://x/tags|vip", &["m1"]).await;
    expect(&s, "Patient?_tag=vip", &["m1", "m2"]).await;
    expect(&s, "Patient?_tag:not=http://x/tags|vip", &["m2", "m3"]).await;
    expect(&s, "Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R", &["m2"]).await;
    expect(&s, "Patient?_security=R,N", &["m2", "m3"]).await;
    // _profile is a uri (canonical): exact.
    expect(&s, "Patient?_profile=http://x/StructureDefinition/p", &["m1"]).await;
    expect(&s, "Patient?_profile=http://x/StructureDefinition/p-other", &["m3"]).await;
    expect(&s, "Patient?_source=http://src.example/a", &["m1"]).await;
    expect(&s, "Patient?_source=http://src.example/b%23req-1", &["m2"]).await;
    expect(&s, "Patient?_tag:missing=true", &["m3"]).await;
}

async fn list_parameter(s: TestServer) {
    seed(
        &s,
        vec![
            patient("l1", json!({})),
            patient("l2", json!({})),
            patient("l3", json!({})),
            observation("lo", json!({})),
            resource(
                "List",
                "favourites",
                json!({"status": "current", "mode": "working", "entry": [
                    {"item": reference_to("Patient/l1")}, {"item": reference_to("Patient/l3")},
                    {"item": reference_to("Observation/lo")}]}),
            ),
            resource("List", "empty", json!({"status": "current", "mode": "working"})),
        ],
    )
    .await;
    // _list=[id]: the resources of this type that are entries of that List.
    expect(&s, "Patient?_list=favourites", &["l1", "l3"]).await;
    expect(&s, "Observation?_list=favourites", &["lo"]).await;
    expect(&s, "Patient?_list=empty", &[]).await;
    expect(&s, "Patient?_list=favourites&_id=l1,l2", &["l1"]).await;
}

async fn text_and_content(s: TestServer) {
    seed(
        &s,
        vec![
            patient("narrated", json!({"text": narrative("Keeps a zebra at home"), "gender": "female"})),
            patient(
                "structured",
                json!({"text": narrative("Nothing to say"), "address": [{"text": "near the zebra enclosure"}]}),
            ),
            patient("neither", json!({"text": narrative("Keeps a cat"), "name": [{"family": "Horse"}]})),
        ],
    )
    .await;
    // _text searches the narrative only; _content the whole resource.
    expect(&s, "Patient?_text=zebra", &["narrated"]).await;
    expect(&s, "Patient?_content=zebra", &["narrated", "structured"]).await;
    expect(&s, "Patient?_content=horse", &["neither"]).await;
    expect(&s, "Patient?_text=horse", &[]).await;
    expect(&s, "Patient?_text=keeps", &["narrated", "neither"]).await;
}

async fn system_level_type(s: TestServer) {
    let tag = json!({"meta": {"tag": [{"system": "http://x/tags", "code": "t"}]}});
    seed(
        &s,
        vec![
            patient("p1", merge(tag.clone(), json!({"name": [{"family": "Smith"}]}))),
            observation("o1", tag.clone()),
            resource("Practitioner", "pr1", merge(tag.clone(), json!({"name": [{"family": "Smithson"}]}))),
            patient("p2", json!({"name": [{"family": "Smith"}]})),
        ],
    )
    .await;
    let refs = |b: Value| {
        let mut v = match_refs(&b);
        v.sort();
        v
    };
    let b = search_url(&s, &system_url(&s, "_tag=http://x/tags|t")).await;
    assert_eq!(refs(b), set(&["Observation/o1", "Patient/p1", "Practitioner/pr1"]));
    let b = search_url(&s, &system_url(&s, "_type=Patient,Observation&_tag=http://x/tags|t")).await;
    assert_eq!(refs(b), set(&["Observation/o1", "Patient/p1"]));
    let b = search_url(&s, &system_url(&s, "_type=Patient,Practitioner&_id=p1,pr1,o1")).await;
    assert_eq!(refs(b), set(&["Patient/p1", "Practitioner/pr1"]));
    // A parameter that every listed type defines (Patient and Practitioner share `family`).
    let b = search_url(&s, &system_url(&s, "_type=Patient,Practitioner&family=smith")).await;
    assert_eq!(refs(b), set(&["Patient/p1", "Patient/p2", "Practitioner/pr1"]));
}

// ---------------------------------------------------------------------------------------------
// multiple values

async fn or_and_and_escaping(s: TestServer) {
    seed(
        &s,
        vec![
            patient("smith", json!({"name": [{"family": "Smith", "given": ["Ann"]}]})),
            patient("jones", json!({"name": [{"family": "Jones", "given": ["Ann", "Lee"]}]})),
            patient("both", json!({"name": [{"family": "Smith,Jones", "given": ["Lee"]}]})),
            patient(
                "pipe",
                json!({"identifier": [{"system": "urn:s", "value": "A|B"}, {"system": "urn:s", "value": "A,B"}]}),
            ),
            patient("plain", json!({"identifier": [{"system": "urn:s", "value": "A"}]})),
        ],
    )
    .await;
    // A comma separates OR values.
    expect(&s, "Patient?family=Smith,Jones", &["smith", "jones", "both"]).await;
    // `\,` is a literal comma (search.html#escaping): one value, "Smith,Jones".
    expect(&s, "Patient?family=Smith%5C,Jones", &["both"]).await;
    expect(&s, "Patient?family:exact=Smith%5C,Jones", &["both"]).await;
    // Repeating a parameter is AND; it may hold for different repetitions of the element.
    expect(&s, "Patient?given=Ann&given=Lee", &["jones"]).await;
    expect(&s, "Patient?given=Ann,Lee&family=Smith", &["smith", "both"]).await;
    // `\|` in a token value is a literal bar, not the system separator; `\,` likewise.
    expect(&s, "Patient?identifier=urn:s|A%5C|B", &["pipe"]).await;
    expect(&s, "Patient?identifier=urn:s|A%5C,B", &["pipe"]).await;
    expect(&s, "Patient?identifier=urn:s|A,B", &["plain"]).await;
}

// ---------------------------------------------------------------------------------------------
// errors and handling

async fn assert_error_naming(s: &TestServer, query: &str, name: &str) {
    let r = s.get(query).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
    assert_eq!(r.json()["resourceType"], "OperationOutcome", "{query}: {}", r.text);
    assert!(r.text.contains(name), "{query}: the outcome should name '{name}': {}", r.text);
}

async fn errors_name_the_parameter(s: TestServer) {
    seed(&s, vec![patient("p", json!({"name": [{"family": "gtSmith"}], "birthDate": "1980-01-01"}))]).await;
    assert_error_naming(&s, "Patient?nonsense=1", "nonsense").await;
    assert_error_naming(&s, "Patient?birthdate=notadate", "birthdate").await;
    assert_error_naming(&s, "Patient?birthdate=2020-13-45", "birthdate").await;
    // A prefix the spec does not define, on a date.
    assert_error_naming(&s, "Patient?birthdate=xx2020", "birthdate").await;
    assert_error_naming(&s, "ChargeItem?factor-override=abc", "factor-override").await;
    assert_error_naming(&s, "Observation?value-quantity=lots||mg", "value-quantity").await;
    // Unknown modifiers, and modifiers that do not apply to the parameter's type.
    assert_error_naming(&s, "Patient?name:sideways=x", "name").await;
    assert_error_naming(&s, "Patient?birthdate:exact=1980", "birthdate").await;
    assert_error_naming(&s, "Patient?gender:contains=fem", "gender").await;
    assert_error_naming(&s, "Patient?active=maybe", "active").await;
    assert_error_naming(&s, "Patient?_sort=unknownparam", "unknownparam").await;
    assert_error_naming(&s, "Patient?_count=lots", "_count").await;
    assert_error_naming(&s, "Patient?_summary=some", "_summary").await;
    assert_error_naming(&s, "Patient?_include=Patient:nothing", "nothing").await;
    // A parameter of another type is unknown here.
    assert_error_naming(&s, "Patient?value-quantity=5", "value-quantity").await;
    // String parameters have no prefixes: "gtSmith" is a name to look for, not an error.
    expect(&s, "Patient?family=gtSmith", &["p"]).await;
    expect(&s, "Patient?family=gt", &["p"]).await;
    // An unknown type is 404, as for the other interactions.
    assert_eq!(s.get("Unicorn?name=x").await.status, StatusCode::NOT_FOUND);
}

async fn lenient_handling_ignores_unknown(s: TestServer) {
    seed(&s, vec![patient("a", json!({"gender": "female"})), patient("b", json!({"gender": "male"}))]).await;
    let r = s.send(Method::GET, "Patient?gender=female&nonsense=1", None, &[("prefer", "handling=lenient")]).await;
    let b = searchset("lenient", &r);
    assert_eq!(match_ids(&b), ["a"]);
    let outcome = entries(&b).find(|e| e["search"]["mode"] == "outcome").expect("an outcome entry");
    assert_eq!(outcome["resource"]["resourceType"], "OperationOutcome");
    assert!(outcome["resource"].to_string().contains("nonsense"), "{outcome}");
    // The self link shows the parameters that were used: not the ignored one.
    let self_link = link(&b, "self").expect("self");
    assert!(self_link.contains("gender=female"), "{self_link}");
    assert!(!self_link.contains("nonsense"), "{self_link}");
    // handling=strict is the default: an error.
    let r = s.send(Method::GET, "Patient?gender=female&nonsense=1", None, &[("prefer", "handling=strict")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("nonsense"));
}

async fn vendor_total_method_is_ignored(s: TestServer) {
    seed(&s, vec![patient("a", json!({"gender": "female"})), patient("b", json!({"gender": "male"}))]).await;
    // fhirpy sends `_totalMethod`; it is accepted and ignored, even in strict handling.
    expect(&s, "Patient?gender=female&_totalMethod=count", &["a"]).await;
    expect(&s, "Patient?_totalMethod=accurate", &["a", "b"]).await;
}

async fn post_search_equals_get(s: TestServer) {
    seed(
        &s,
        vec![
            patient("a", json!({"name": [{"family": "Smith"}], "gender": "female", "birthDate": "1990-01-01"})),
            patient("b", json!({"name": [{"family": "Smith"}], "gender": "male", "birthDate": "1991-01-01"})),
            patient("c", json!({"name": [{"family": "Smythe"}], "gender": "female", "birthDate": "1992-01-01"})),
        ],
    )
    .await;
    let form = |body: &str| body.as_bytes().to_vec();
    let query = "family=smith&birthdate=ge1990&_sort=-birthdate";
    let get = search(&s, &format!("Patient?{query}")).await;
    let r = s.raw(Method::POST, "Patient/_search", "application/x-www-form-urlencoded", form(query)).await;
    let post = searchset("POST _search", &r);
    assert_eq!(match_ids(&get), ["b", "a"]);
    assert_eq!(match_ids(&post), match_ids(&get));
    // Parameters may be split between the URL and the body: they are combined.
    let r = s
        .raw(Method::POST, "Patient/_search?gender=female", "application/x-www-form-urlencoded", form("family=sm"))
        .await;
    let b = searchset("POST _search mixed", &r);
    let mut got = match_ids(&b);
    got.sort();
    assert_eq!(got, ["a", "c"]);
    // Form encoding: percent-escapes are decoded (%53 is S).
    let r = s
        .raw(Method::POST, "Patient/_search", "application/x-www-form-urlencoded", form("family=%53mith&gender=male"))
        .await;
    assert_eq!(match_ids(&searchset("POST _search encoded", &r)), ["b"]);
    // Errors are the same as for GET.
    let r = s.raw(Method::POST, "Patient/_search", "application/x-www-form-urlencoded", form("nonsense=1")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("nonsense"));
}

// ---------------------------------------------------------------------------------------------
// conditional interactions with full criteria

fn person(family: &str, birth: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}], "birthDate": birth})
}

async fn conditional_create_with_criteria(s: TestServer) {
    let first = s.create(&person("Cond", "1970-01-01")).await;
    s.create(&person("Cond", "1980-01-01")).await;
    // One match: nothing is created, the match is returned (200).
    let r = s
        .send(
            Method::POST,
            "Patient",
            Some(&person("Cond", "1970-01-01")),
            &[("if-none-exist", "family=Cond&birthdate=1970-01-01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["id"], first);
    // No match: created.
    let r = s
        .send(
            Method::POST,
            "Patient",
            Some(&person("Cond", "1990-01-01")),
            &[("if-none-exist", "family=Cond&birthdate=1990-01-01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Several matches: 412, and nothing is created.
    let r =
        s.send(Method::POST, "Patient", Some(&person("Cond", "2000-01-01")), &[("if-none-exist", "family=Cond")]).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
    assert_eq!(ids(&s, "Patient?family=Cond").await.len(), 3);
    // Any search parameter may be a criterion: a prefix, a modifier.
    let r = s
        .send(
            Method::POST,
            "Patient",
            Some(&person("Cond", "2000-01-01")),
            &[("if-none-exist", "family:exact=Cond&birthdate=gt1985")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["birthDate"], "1990-01-01");
    // Invalid criteria are refused, not ignored.
    let r =
        s.send(Method::POST, "Patient", Some(&person("Cond", "2000-01-01")), &[("if-none-exist", "nonsense=1")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(ids(&s, "Patient?family=Cond").await.len(), 3);
}

async fn conditional_update_with_criteria(s: TestServer) {
    // No match: created (201).
    let r = s.put("Patient?name=Upd", &person("Upd", "1970-01-01")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    // One match: updated (200).
    let r = s.put("Patient?name=Upd", &person("Upd", "1971-01-01")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(r.json()["meta"]["versionId"], "2");
    expect(&s, "Patient?name=Upd", &[id.as_str()]).await;
    // Several matches: 412, and nothing changes.
    s.create(&person("Upd", "1999-01-01")).await;
    let r = s.put("Patient?name=Upd", &person("Upd", "2001-01-01")).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
    expect(&s, "Patient?birthdate=2001-01-01", &[]).await;
    // Narrower criteria pick one of them.
    let r = s.put("Patient?name=Upd&birthdate=1971", &person("Upd", "1972-01-01")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["id"], id.as_str());
}

async fn conditional_delete_with_criteria_matching_several(s: TestServer) {
    let a = s.create(&person("Twin", "1970-01-01")).await;
    let b = s.create(&person("Twin", "1970-01-01")).await;
    let keep = s.create(&person("Twin", "1980-01-01")).await;
    let r = s.send(Method::DELETE, "Patient?family=Twin&birthdate=1970", None, &[]).await;
    // R4 lets a server delete all matches or refuse with 412; either way nothing is half done.
    let gone = |st: StatusCode| st == StatusCode::GONE || st == StatusCode::NOT_FOUND;
    let (sa, sb) = (s.get(&format!("Patient/{a}")).await.status, s.get(&format!("Patient/{b}")).await.status);
    match r.status {
        StatusCode::OK | StatusCode::NO_CONTENT => {
            assert!(gone(sa) && gone(sb), "both matches deleted: {sa} {sb}");
            expect(&s, "Patient?family=Twin", &[keep.as_str()]).await;
        }
        StatusCode::PRECONDITION_FAILED => {
            assert_eq!((sa, sb), (StatusCode::OK, StatusCode::OK));
            let mut all = vec![a.as_str(), b.as_str(), keep.as_str()];
            all.sort();
            expect(&s, "Patient?family=Twin", &all).await;
        }
        other => panic!("conditional delete of several: {other} {}", r.text),
    }
    assert_eq!(s.get(&format!("Patient/{keep}")).await.status, StatusCode::OK);
    // One match: deleted.
    let r = s.send(Method::DELETE, "Patient?family=Twin&birthdate=1980", None, &[]).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert!(gone(s.get(&format!("Patient/{keep}")).await.status));
}
