//! FHIR R4 search across references, on SQLite and on PostgreSQL: chained parameters, reverse
//! chaining (`_has`), and `_include` / `_revinclude` (http://hl7.org/fhir/R4/search.html#chaining,
//! #has, #include).

mod common;
mod search_support;

use common::TestServer;
use search_support::*;
use serde_json::{Value, json};

on_both_stores!(
    chained_parameters,
    chained_without_type_over_several_targets,
    chained_two_levels,
    reverse_chaining,
    nested_reverse_chaining,
    include_referenced_resources,
    include_with_target_type,
    revinclude,
    include_iterate,
    include_wildcard,
    includes_are_not_counted_and_appear_once,
);

/// Two organisations, two patients, a Location whose name also starts with "Peter", and
/// Observations and Encounters about them.
async fn seed_graph(s: &TestServer) {
    seed(
        s,
        vec![
            resource("Organization", "acme", json!({"name": "Acme Health"})),
            resource("Organization", "beta", json!({"name": "Beta Care", "alias": ["Acme Partner"]})),
            patient(
                "peter",
                json!({"name": [{"family": "Parker", "given": ["Peter"]}], "gender": "male",
                    "managingOrganization": reference_to("Organization/acme")}),
            ),
            patient(
                "mary",
                json!({"name": [{"family": "Jane", "given": ["Mary"]}], "gender": "female",
                    "managingOrganization": reference_to("Organization/beta")}),
            ),
            patient("orphan", json!({"name": [{"family": "Peterson"}]})),
            resource("Location", "ward", json!({"name": "Peterborough Ward"})),
            resource("Practitioner", "doc", json!({"name": [{"family": "House"}]})),
            encounter("e-peter", json!({"subject": reference_to("Patient/peter")})),
            encounter(
                "e-mary",
                json!({"subject": reference_to("Patient/mary"),
                    "participant": [{"individual": reference_to("Practitioner/doc")}]}),
            ),
            observation(
                "o-peter",
                json!({"code": loinc("1234-5"), "subject": reference_to("Patient/peter"),
                    "encounter": reference_to("Encounter/e-peter")}),
            ),
            observation("o-mary", json!({"code": loinc("9999-9"), "subject": reference_to("Patient/mary")})),
            observation("o-ward", json!({"code": loinc("1234-5"), "subject": reference_to("Location/ward")})),
            // About Peter, but made during Mary's encounter: `_has` through `encounter` finds Mary.
            observation(
                "o-cross",
                json!({"code": loinc("5555-5"), "subject": reference_to("Patient/peter"),
                    "encounter": reference_to("Encounter/e-mary")}),
            ),
            // A reference to a resource that does not exist matches no chain.
            observation("o-dangling", json!({"code": loinc("1234-5"), "subject": reference_to("Patient/ghost")})),
        ],
    )
    .await;
}

async fn chained_parameters(s: TestServer) {
    seed_graph(&s).await;
    // Encounter.subject is Group or Patient, and only Patient has `name`: no type needed.
    expect(&s, "Encounter?subject.name=peter", &["e-peter"]).await;
    // :[type] restricts the chain to one target type.
    expect(&s, "Observation?subject:Patient.name=peter", &["o-peter", "o-cross"]).await;
    expect(&s, "Observation?subject:Location.name=peter", &["o-ward"]).await;
    // `patient` only targets Patient.
    expect(&s, "Observation?patient.name=peter", &["o-peter", "o-cross"]).await;
    expect(&s, "Observation?patient.gender=female", &["o-mary"]).await;
    // The chained parameter keeps its own type and modifiers.
    expect(&s, "Observation?subject:Patient.name:exact=Peter", &["o-peter", "o-cross"]).await;
    expect(&s, "Observation?subject:Patient.family=parker&code=http://loinc.org|5555-5", &["o-cross"]).await;
    // A chain to a reference parameter, and to _id.
    expect(&s, "Observation?subject:Patient.organization=Organization/beta", &["o-mary"]).await;
    expect(&s, "Observation?subject:Patient._id=mary", &["o-mary"]).await;
    // OR inside the chained value.
    expect(&s, "Observation?patient.name=mary,parker", &["o-peter", "o-mary", "o-cross"]).await;
    // AND of two chains may be satisfied by the same target.
    expect(&s, "Observation?patient.given=peter&patient.family=parker", &["o-peter", "o-cross"]).await;
    expect(&s, "Observation?patient.given=peter&patient.family=jane", &[]).await;
    expect(&s, "Encounter?subject.name=peterson", &[]).await;
}

async fn chained_without_type_over_several_targets(s: TestServer) {
    seed_graph(&s).await;
    // Without a type, the chain applies to every target type of `subject` that defines `name`:
    // Patient and Location here (Group's and Device's parameters have no `name`). R4's own first
    // example is exactly this: "DiagnosticReport?subject.name=peter ... return all the lab reports
    // that have a subject whose name includes peter"; the typed form narrows it.
    expect(&s, "Observation?subject.name=peter", &["o-peter", "o-ward", "o-cross"]).await;
    expect(&s, "Observation?subject.name=peterborough", &["o-ward"]).await;
    expect(&s, "Observation?subject.identifier=nothing", &[]).await;
}

async fn chained_two_levels(s: TestServer) {
    seed_graph(&s).await;
    // Encounter.subject -> Patient (Group, the other target, has no `organization`);
    // Patient-organization is Patient.managingOrganization; Organization-name is name | alias.
    expect(&s, "Encounter?subject.organization.name=acme", &["e-peter", "e-mary"]).await;
    expect(&s, "Encounter?subject:Patient.organization.name=beta", &["e-mary"]).await;
    expect(&s, "Encounter?subject:Patient.organization.name:exact=Acme Health", &["e-peter"]).await;
    expect(&s, "Observation?encounter.subject:Patient.name=mary", &["o-cross"]).await;
    expect(&s, "Observation?patient.organization.name=beta", &["o-mary"]).await;
}

async fn reverse_chaining(s: TestServer) {
    seed_graph(&s).await;
    // _has:[type]:[reference parameter]:[parameter]=[value]: patients that an Observation with
    // that code refers to through `patient`.
    expect(&s, "Patient?_has:Observation:patient:code=1234-5", &["peter"]).await;
    expect(&s, "Patient?_has:Observation:subject:code=9999-9", &["mary"]).await;
    expect(&s, "Patient?_has:Observation:patient:code=1234-5,9999-9", &["peter", "mary"]).await;
    expect(&s, "Patient?_has:Observation:patient:code=0000-0", &[]).await;
    // Two _has are ANDed, each may be satisfied by a different Observation.
    expect(&s, "Patient?_has:Observation:patient:code=1234-5&_has:Observation:patient:code=5555-5", &["peter"]).await;
    expect(&s, "Patient?_has:Observation:patient:code=1234-5&_has:Observation:patient:code=9999-9", &[]).await;
    // The Location is referred to by an Observation with 1234-5 too.
    expect(&s, "Location?_has:Observation:subject:code=1234-5", &["ward"]).await;
    expect(&s, "Organization?_has:Patient:organization:name=peter", &["acme"]).await;
    expect(&s, "Practitioner?_has:Encounter:participant:subject=Patient/mary", &["doc"]).await;
    // Combined with an ordinary parameter.
    expect(&s, "Patient?gender=female&_has:Observation:patient:code=1234-5,9999-9", &["mary"]).await;
}

async fn nested_reverse_chaining(s: TestServer) {
    seed_graph(&s).await;
    // Patients with an Encounter that an Observation with code 5555-5 was made in: that is
    // Mary's encounter, although the Observation's subject is Peter.
    expect(&s, "Patient?_has:Encounter:patient:_has:Observation:encounter:code=5555-5", &["mary"]).await;
    expect(&s, "Patient?_has:Encounter:patient:_has:Observation:encounter:code=1234-5", &["peter"]).await;
    expect(&s, "Patient?_has:Observation:patient:code=5555-5", &["peter"]).await;
    expect(&s, "Organization?_has:Patient:organization:_has:Observation:patient:code=9999-9", &["beta"]).await;
}

async fn include_referenced_resources(s: TestServer) {
    seed(
        &s,
        vec![
            patient("p1", json!({})),
            patient("p2", json!({})),
            resource("Medication", "aspirin", json!({"code": {"text": "aspirin"}})),
            medication_request("mr1", "p1", json!({"medicationReference": reference_to("Medication/aspirin")})),
            medication_request("mr2", "p2", json!({"medicationCodeableConcept": {"text": "paracetamol"}})),
        ],
    )
    .await;
    let b = search(&s, "MedicationRequest?_include=MedicationRequest:medication").await;
    assert_eq!(sorted(match_ids(&b)), ["mr1", "mr2"]);
    assert_eq!(include_refs(&b), ["Medication/aspirin"]);
    // Only what the matches refer to.
    let b = search(&s, "MedicationRequest?_id=mr2&_include=MedicationRequest:medication").await;
    assert_eq!(match_ids(&b), ["mr2"]);
    assert_eq!(include_refs(&b), Vec::<String>::new());
    // Several _include parameters add up.
    let b =
        search(&s, "MedicationRequest?_include=MedicationRequest:medication&_include=MedicationRequest:subject").await;
    assert_eq!(include_refs(&b), ["Medication/aspirin", "Patient/p1", "Patient/p2"]);
}

fn medication_request(id: &str, patient: &str, medication: Value) -> Value {
    merge(
        resource(
            "MedicationRequest",
            id,
            json!({"status": "active", "intent": "order", "subject": reference_to(&format!("Patient/{patient}"))}),
        ),
        medication,
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn include_with_target_type(s: TestServer) {
    seed(
        &s,
        vec![
            patient("p1", json!({})),
            resource("Group", "g1", json!({"type": "person", "actual": true})),
            observation("o-p", json!({"subject": reference_to("Patient/p1")})),
            observation("o-g", json!({"subject": reference_to("Group/g1")})),
        ],
    )
    .await;
    // [type]:[parameter]:[target type] includes only targets of that type.
    let b = search(&s, "Observation?_include=Observation:subject:Patient").await;
    assert_eq!(sorted(match_ids(&b)), ["o-g", "o-p"]);
    assert_eq!(include_refs(&b), ["Patient/p1"]);
    let b = search(&s, "Observation?_include=Observation:subject").await;
    assert_eq!(include_refs(&b), ["Group/g1", "Patient/p1"]);
}

async fn revinclude(s: TestServer) {
    seed_graph(&s).await;
    // _revinclude=[type]:[parameter]: resources of that type that refer to a match through it.
    let b = search(&s, "Patient?_id=peter&_revinclude=Observation:subject").await;
    assert_eq!(match_ids(&b), ["peter"]);
    assert_eq!(include_refs(&b), ["Observation/o-cross", "Observation/o-peter"]);
    let b = search(&s, "Patient?_id=peter,mary&_revinclude=Encounter:subject&_revinclude=Observation:patient").await;
    assert_eq!(sorted(match_ids(&b)), ["mary", "peter"]);
    assert_eq!(
        include_refs(&b),
        ["Encounter/e-mary", "Encounter/e-peter", "Observation/o-cross", "Observation/o-mary", "Observation/o-peter"]
    );
    let b = search(&s, "Location?_revinclude=Observation:patient").await;
    assert_eq!(include_refs(&b), Vec::<String>::new(), "a Location is no patient");
}

async fn include_iterate(s: TestServer) {
    seed_graph(&s).await;
    // Without :iterate, an _include applies to the matches only: Patient:organization has
    // nothing to work on among Encounters.
    let b = search(&s, "Encounter?_id=e-peter&_include=Encounter:subject&_include=Patient:organization").await;
    assert_eq!(match_ids(&b), ["e-peter"]);
    assert_eq!(include_refs(&b), ["Patient/peter"]);
    // With :iterate it also applies to included resources.
    let b = search(&s, "Encounter?_id=e-peter&_include=Encounter:subject&_include:iterate=Patient:organization").await;
    assert_eq!(include_refs(&b), ["Organization/acme", "Patient/peter"]);
    // And to what a _revinclude brought in.
    let b =
        search(&s, "Organization?_id=acme&_revinclude=Patient:organization&_revinclude:iterate=Observation:patient")
            .await;
    assert_eq!(match_ids(&b), ["acme"]);
    assert_eq!(include_refs(&b), ["Observation/o-cross", "Observation/o-peter", "Patient/peter"]);
}

async fn include_wildcard(s: TestServer) {
    seed_graph(&s).await;
    // `*` in place of the parameter name includes the targets of every reference parameter of
    // the matches (search.html#include: "the wildcard * for the search parameter name").
    let b = search(&s, "Observation?_id=o-cross&_include=Observation:*").await;
    assert_eq!(match_ids(&b), ["o-cross"]);
    assert_eq!(include_refs(&b), ["Encounter/e-mary", "Patient/peter"]);
    // The bare `_include=*` that clients send means the same.
    let b = search(&s, "Observation?_id=o-cross&_include=*").await;
    assert_eq!(match_ids(&b), ["o-cross"]);
    assert_eq!(include_refs(&b), ["Encounter/e-mary", "Patient/peter"]);
    let b = search(&s, "Encounter?_id=e-mary&_include=*").await;
    assert_eq!(include_refs(&b), ["Patient/mary", "Practitioner/doc"]);
}

async fn includes_are_not_counted_and_appear_once(s: TestServer) {
    seed(
        &s,
        vec![
            // Linked to itself, so that it is both a match and an _include target below.
            patient("p1", json!({"link": [{"other": reference_to("Patient/p1"), "type": "seealso"}]})),
            observation("o1", json!({"subject": reference_to("Patient/p1")})),
            observation("o2", json!({"subject": reference_to("Patient/p1")})),
            observation("o3", json!({"subject": reference_to("Patient/p1")})),
        ],
    )
    .await;
    let b = search(&s, "Observation?_include=Observation:subject&_total=accurate").await;
    assert_eq!(sorted(match_ids(&b)), ["o1", "o2", "o3"]);
    // Three matches refer to p1; it is included once, and total counts matches only.
    assert_eq!(include_refs(&b), ["Patient/p1"]);
    assert_eq!(total(&b), 3);
    let b = search(&s, "Patient?_revinclude=Observation:subject&_total=accurate").await;
    assert_eq!(total(&b), 1);
    assert_eq!(include_refs(&b), ["Observation/o1", "Observation/o2", "Observation/o3"]);
    // A resource that is both a match and a target appears once, as a match.
    let b = search(&s, "Patient?_id=p1&_include=Patient:link").await;
    let p1: Vec<&Value> = entries(&b).filter(|e| e["resource"]["id"] == "p1").collect();
    assert_eq!(p1.len(), 1, "{b}");
    assert_eq!(p1[0]["search"]["mode"], "match");
}
