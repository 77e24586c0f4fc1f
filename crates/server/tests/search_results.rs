//! What a FHIR R4 search returns, on SQLite and on PostgreSQL: `_sort`, `_count` and paging
//! (also while others write), `_summary`, `_elements`, `_total`, compartment searches and
//! `Patient/[id]/$everything` (http://hl7.org/fhir/R4/search.html#return,
//! http://hl7.org/fhir/R4/patient-operation-everything.html).

mod common;
mod search_support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestServer;
use reqwest::StatusCode;
use search_support::*;
use serde_json::{Value, json};

on_both_stores!(
    sort_single_key,
    sort_several_keys,
    sort_by_id_and_last_updated,
    paging_follows_next_and_previous,
    count_zero_gives_only_the_total,
    paging_survives_concurrent_writes,
    summary_modes,
    elements_subset,
    total_modes,
    compartment_search,
    everything_returns_the_compartment_and_its_references,
    everything_type_since_and_paging,
);

/// Missing values: the spec leaves their position to the server; Iaso sorts them LAST when
/// ascending (the assumption these tests pin down). Descending tests leave them out.
async fn seed_sortable(s: &TestServer) {
    seed(
        s,
        vec![
            patient("so1", json!({"name": [{"family": "Baker"}], "birthDate": "1990-01-01"})),
            patient("so2", json!({"name": [{"family": "Adams"}], "birthDate": "1985-05-05"})),
            patient("so3", json!({"name": [{"family": "Baker"}], "birthDate": "1970-03-03"})),
            patient("so4", json!({"name": [{"family": "Clark"}]})),
            patient("so5", json!({"birthDate": "2000-01-01"})),
        ],
    )
    .await;
}

async fn sort_single_key(s: TestServer) {
    seed_sortable(&s).await;
    expect_ordered(&s, "Patient?_sort=birthdate", &["so3", "so2", "so1", "so5", "so4"]).await;
    expect_ordered(&s, "Patient?_sort=-birthdate&_id=so1,so2,so3,so5", &["so5", "so1", "so2", "so3"]).await;
    // Sorting combines with criteria and paging does not change the order.
    expect_ordered(&s, "Patient?_sort=birthdate&birthdate=ge1980", &["so2", "so1", "so5"]).await;
    let pages = all_pages(&s, "Patient?_sort=birthdate&_count=2").await;
    let ids: Vec<String> = pages.iter().flat_map(match_ids).collect();
    assert_eq!(ids, ["so3", "so2", "so1", "so5", "so4"]);
}

async fn sort_several_keys(s: TestServer) {
    seed_sortable(&s).await;
    // family first, then birthdate descending among equal families; no family sorts last.
    expect_ordered(&s, "Patient?_sort=family,-birthdate", &["so2", "so1", "so3", "so4", "so5"]).await;
    expect_ordered(&s, "Patient?_sort=family,birthdate", &["so2", "so3", "so1", "so4", "so5"]).await;
    expect_ordered(&s, "Patient?_sort=-family,birthdate&_id=so1,so2,so3,so4", &["so4", "so3", "so1", "so2"]).await;
}

async fn sort_by_id_and_last_updated(s: TestServer) {
    seed_sortable(&s).await;
    expect_ordered(&s, "Patient?_sort=_id", &["so1", "so2", "so3", "so4", "so5"]).await;
    expect_ordered(&s, "Patient?_sort=-_id", &["so5", "so4", "so3", "so2", "so1"]).await;
    // Update three of them in a known order; lastUpdated has millisecond precision.
    for id in ["so3", "so1", "so5"] {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let mut body = s.get(&format!("Patient/{id}")).await.json();
        body["active"] = json!(true);
        put_one(&s, &body).await;
    }
    expect_ordered(&s, "Patient?_sort=_lastUpdated&_id=so1,so3,so5", &["so3", "so1", "so5"]).await;
    expect_ordered(&s, "Patient?_sort=-_lastUpdated&_id=so1,so3,so5", &["so5", "so1", "so3"]).await;
    expect_ordered(&s, "Patient?_sort=-_lastUpdated&_count=1", &["so5"]).await;
}

async fn seed_pages(s: &TestServer) {
    let mut rs: Vec<Value> =
        (1..=5).map(|i| patient(&format!("pg{i}"), json!({"name": [{"family": "Page"}]}))).collect();
    rs.push(patient("other", json!({"name": [{"family": "Other"}]})));
    seed(s, rs).await;
}

async fn paging_follows_next_and_previous(s: TestServer) {
    seed_pages(&s).await;
    let pages = all_pages(&s, "Patient?family=Page&_count=2&_total=accurate").await;
    let sizes: Vec<usize> = pages.iter().map(|p| match_ids(p).len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    for p in &pages {
        assert_eq!(total(p), 5, "every page carries the total of the whole result");
    }
    let seen: Vec<String> = pages.iter().flat_map(match_ids).collect();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "no duplicates across pages: {seen:?}");
    assert_eq!(unique, set(&["pg1", "pg2", "pg3", "pg4", "pg5"]));
    // The order is stable: the same query pages the same way again.
    let again: Vec<String> =
        all_pages(&s, "Patient?family=Page&_count=2&_total=accurate").await.iter().flat_map(match_ids).collect();
    assert_eq!(again, seen);
    // `previous` leads back; the first page has none, the last has no `next`.
    assert!(link(&pages[0], "previous").is_none());
    assert!(link(&pages[2], "next").is_none());
    let back = search_url(&s, &link(&pages[1], "previous").expect("previous")).await;
    assert_eq!(match_ids(&back), match_ids(&pages[0]));
    let back = search_url(&s, &link(&pages[2], "previous").expect("previous")).await;
    assert_eq!(match_ids(&back), match_ids(&pages[1]));
    // A page size larger than the result: one page.
    let one = search(&s, "Patient?family=Page&_count=10").await;
    assert_eq!(match_ids(&one).len(), 5);
    assert!(link(&one, "next").is_none());
}

async fn count_zero_gives_only_the_total(s: TestServer) {
    seed_pages(&s).await;
    let b = search(&s, "Patient?family=Page&_count=0").await;
    assert_eq!(entries(&b).count(), 0, "{b}");
    assert_eq!(total(&b), 5);
    let b = search(&s, "Patient?_count=0").await;
    assert_eq!(total(&b), 6);
}

/// Pages must neither repeat nor skip a resource that existed throughout, although resources
/// before and after the current position are created and deleted between page requests (an
/// OFFSET-based implementation fails this: deleting from page 1 shifts everything left).
async fn paging_survives_concurrent_writes(s: TestServer) {
    // With an explicit order.
    let mut rs: Vec<Value> =
        (1..=5).map(|i| patient(&format!("s{i}"), json!({"name": [{"family": "Stable"}]}))).collect();
    rs.push(patient("a0", json!({"name": [{"family": "Stable"}]})));
    seed(&s, rs).await;
    let first = search(&s, "Patient?family=Stable&_sort=_id&_count=2").await;
    assert_eq!(match_ids(&first), ["a0", "s1"]);
    delete(&s, "Patient/a0").await;
    put_one(&s, &patient("a1", json!({"name": [{"family": "Stable"}]}))).await;
    put_one(&s, &patient("z9", json!({"name": [{"family": "Stable"}]}))).await;
    let seen = rest_of_pages(&s, &first).await;
    assert_each_once(&seen, &["s1", "s2", "s3", "s4", "s5"]);

    // In the server's default order, deleting one of the resources already returned.
    let rs: Vec<Value> = (1..=6).map(|i| patient(&format!("f{i}"), json!({"name": [{"family": "Loose"}]}))).collect();
    seed(&s, rs).await;
    let first = search(&s, "Patient?family=Loose&_count=2").await;
    let page1 = match_ids(&first);
    assert_eq!(page1.len(), 2);
    delete(&s, &format!("Patient/{}", page1[0])).await;
    for _ in 0..2 {
        s.create(&json!({"resourceType": "Patient", "name": [{"family": "Loose"}]})).await;
    }
    let seen = rest_of_pages(&s, &first).await;
    let stable: Vec<String> = (1..=6).map(|i| format!("f{i}")).filter(|id| *id != page1[0]).collect();
    assert_each_once(&seen, &stable.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The ids of the first page and of every page after it, following `next`.
async fn rest_of_pages(s: &TestServer, first: &Value) -> Vec<String> {
    let mut seen = match_ids(first);
    let mut page = first.clone();
    while let Some(next) = link(&page, "next") {
        assert!(seen.len() < 100, "paging does not end");
        page = search_url(s, &next).await;
        seen.extend(match_ids(&page));
    }
    seen
}

fn assert_each_once(seen: &[String], stable: &[&str]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in seen {
        *counts.entry(id).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "an id appeared twice: {seen:?}");
    for id in stable {
        assert_eq!(counts.get(id), Some(&1), "{id} was skipped: {seen:?}");
    }
}

const SUBSETTED: &str = "SUBSETTED";
const OBSERVATION_VALUE: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

fn keys(r: &Value) -> Vec<String> {
    let mut k: Vec<String> = r.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

fn subsetted(r: &Value) -> bool {
    r["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["system"] == OBSERVATION_VALUE && t["code"] == SUBSETTED)
}

/// The single matching resource of `query`.
async fn only_match(s: &TestServer, query: &str) -> Value {
    let b = search(s, query).await;
    let matches: Vec<&Value> = entries(&b).filter(|e| e["search"]["mode"] == "match").collect();
    assert_eq!(matches.len(), 1, "{query}: {b}");
    matches[0]["resource"].clone()
}

fn full_patient() -> Value {
    patient(
        "full",
        json!({"meta": {"tag": [{"system": "http://x/tags", "code": "keep"}]},
            "text": narrative("Ada Lovelace"),
            "extension": [{"url": "http://x/ext", "valueString": "v"}],
            "identifier": [{"system": "urn:mrn", "value": "1"}], "active": true,
            "name": [{"family": "Lovelace", "given": ["Ada"]}], "gender": "female", "birthDate": "1815-12-10",
            "maritalStatus": {"text": "married"}, "multipleBirthBoolean": false,
            "contact": [{"name": {"family": "Byron"}}], "communication": [{"language": {"text": "English"}}],
            "generalPractitioner": [reference_to("Practitioner/gp")]}),
    )
}

async fn summary_modes(s: TestServer) {
    seed(
        &s,
        vec![
            full_patient(),
            observation(
                "obs",
                json!({"text": narrative("weight"), "subject": reference_to("Patient/full"),
                    "valueQuantity": ucum("60", "kg"), "note": [{"text": "after lunch"}]}),
            ),
        ],
    )
    .await;
    // _summary=true: the elements marked isSummary in the base definition (Patient: identifier,
    // active, name, telecom, gender, birthDate, deceased, address, managingOrganization, link).
    let r = only_match(&s, "Patient?_id=full&_summary=true").await;
    assert_eq!(keys(&r), set(&["id", "meta", "resourceType", "identifier", "active", "name", "gender", "birthDate"]));
    assert!(subsetted(&r), "SUBSETTED tag expected: {r}");
    assert!(r["meta"]["tag"].to_string().contains("keep"), "meta.tag is a summary element: {r}");
    // _summary=text: text, id, meta and the mandatory top-level elements (none for Patient).
    let r = only_match(&s, "Patient?_id=full&_summary=text").await;
    assert_eq!(keys(&r), set(&["id", "meta", "resourceType", "text"]));
    assert!(subsetted(&r));
    let r = only_match(&s, "Observation?_id=obs&_summary=text").await;
    assert_eq!(keys(&r), set(&["id", "meta", "resourceType", "text", "status", "code"]));
    // _summary=data: everything but the text.
    let r = only_match(&s, "Patient?_id=full&_summary=data").await;
    let mut all = keys(&full_patient());
    all.retain(|k| k != "text");
    assert_eq!(keys(&r), all);
    assert!(subsetted(&r));
    // Observation's summary keeps value[x] but not note.
    let r = only_match(&s, "Observation?_id=obs&_summary=true").await;
    assert_eq!(keys(&r), set(&["id", "meta", "resourceType", "status", "code", "subject", "valueQuantity"]));
    // _summary=false: the whole resource, as a read returns it, not marked.
    let r = only_match(&s, "Patient?_id=full&_summary=false").await;
    assert_eq!(r, s.get("Patient/full").await.json());
    assert!(!subsetted(&r));
    // _summary=count: the total only.
    let b = search(&s, "Patient?_summary=count").await;
    assert_eq!(total(&b), 1);
    assert_eq!(entries(&b).filter(|e| e["search"]["mode"] == "match").count(), 0, "{b}");
}

async fn elements_subset(s: TestServer) {
    seed(
        &s,
        vec![
            full_patient(),
            observation("obs", json!({"subject": reference_to("Patient/full"), "valueQuantity": ucum("60", "kg")})),
        ],
    )
    .await;
    // Only the listed elements, plus the mandatory ones and meta, marked SUBSETTED.
    let r = only_match(&s, "Patient?_id=full&_elements=identifier,active").await;
    assert_eq!(keys(&r), set(&["id", "meta", "resourceType", "identifier", "active"]));
    assert_eq!(r["identifier"], full_patient()["identifier"]);
    assert!(subsetted(&r));
    // Observation.status and .code are mandatory (1..1): returned although not asked for.
    let r = only_match(&s, "Observation?_id=obs&_elements=subject").await;
    assert_eq!(keys(&r), set(&["id", "meta", "resourceType", "status", "code", "subject"]));
    // A choice element is asked for by its base name, value[x] as `value`.
    let r = only_match(&s, "Observation?_id=obs&_elements=value").await;
    assert_eq!(keys(&r), set(&["id", "meta", "resourceType", "status", "code", "valueQuantity"]));
}

async fn total_modes(s: TestServer) {
    seed_pages(&s).await;
    let b = search(&s, "Patient?family=Page&_total=none&_count=2").await;
    assert!(b.get("total").is_none(), "_total=none: {b}");
    assert_eq!(match_ids(&b).len(), 2);
    let b = search(&s, "Patient?family=Page&_total=accurate&_count=2").await;
    assert_eq!(total(&b), 5);
    let b = search(&s, "Patient?family=Nobody&_total=accurate").await;
    assert_eq!(total(&b), 0);
    // estimate: a number, any number the server thinks right; the entries are unaffected.
    let b = search(&s, "Patient?family=Page&_total=estimate").await;
    assert_eq!(match_ids(&b).len(), 5);
    // Not asked for, the total is given when the first page holds every match (it costs
    // nothing), and left out when counting would mean reading past the page.
    assert_eq!(total(&search(&s, "Patient?family=Page").await), 5);
    assert_eq!(total(&search(&s, "Patient?family=Nobody").await), 0);
    let b = search(&s, "Patient?family=Page&_count=2").await;
    assert!(b.get("total").is_none(), "paged without _total: {b}");
    let b = search(&s, "Patient?family=Page&_total=none").await;
    assert!(b.get("total").is_none(), "_total=none: {b}");
    // A single parameter's count is read from its index: the same figure as the full plan.
    assert_eq!(total(&search(&s, "Patient?family=Page&_summary=count").await), 5);
    assert_eq!(total(&search(&s, "Patient?family=Page&gender:missing=true&_summary=count").await), 5);
}

async fn compartment_search(s: TestServer) {
    seed(
        &s,
        vec![
            patient("p1", json!({})),
            patient("p2", json!({})),
            resource("Group", "g1", json!({"type": "person", "actual": true})),
            observation("o1", json!({"code": loinc("1111-1"), "subject": reference_to("Patient/p1")})),
            observation("o2", json!({"code": loinc("2222-2"), "subject": reference_to("Patient/p1")})),
            // performer is a Patient compartment parameter for Observation (CompartmentDefinition
            // patient: Observation = subject | performer), so this is in p1's compartment too.
            observation(
                "o3",
                json!({"code": loinc("1111-1"), "subject": reference_to("Patient/p2"),
                    "performer": [reference_to("Patient/p1")]}),
            ),
            observation("o4", json!({"subject": reference_to("Patient/p2")})),
            // focus is not a compartment parameter.
            observation("o5", json!({"subject": reference_to("Group/g1"), "focus": [reference_to("Patient/p1")]})),
            encounter("e1", json!({"subject": reference_to("Patient/p1")})),
            encounter("e2", json!({"subject": reference_to("Patient/p2")})),
            resource("Condition", "c1", json!({"subject": reference_to("Patient/p1")})),
        ],
    )
    .await;
    expect(&s, "Patient/p1/Observation", &["o1", "o2", "o3"]).await;
    expect(&s, "Patient/p1/Observation?code=1111-1", &["o1", "o3"]).await;
    expect(&s, "Patient/p1/Observation?code=http://loinc.org|2222-2", &["o2"]).await;
    expect(&s, "Patient/p2/Observation", &["o3", "o4"]).await;
    // Encounter's compartment parameter is `patient` (Encounter.subject where it is a Patient).
    expect(&s, "Patient/p1/Encounter", &["e1"]).await;
    expect(&s, "Patient/p1/Condition", &["c1"]).await;
    expect_ordered(&s, "Patient/p1/Observation?_sort=-_id", &["o3", "o2", "o1"]).await;
}

/// p1's compartment and what it refers to; p2's data is never part of p1's $everything.
async fn seed_everything(s: &TestServer) {
    seed(
        s,
        vec![
            resource("Organization", "org1", json!({"name": "Clinic"})),
            resource("Practitioner", "pr1", json!({"name": [{"family": "One"}]})),
            resource("Practitioner", "pr2", json!({"name": [{"family": "Two"}]})),
            patient("p1", json!({"managingOrganization": reference_to("Organization/org1")})),
            patient("p2", json!({})),
            encounter(
                "e1",
                json!({"subject": reference_to("Patient/p1"), "participant": [{"individual": reference_to("Practitioner/pr1")}]}),
            ),
            observation("o1", json!({"subject": reference_to("Patient/p1"), "encounter": reference_to("Encounter/e1")})),
            observation("o2", json!({"subject": reference_to("Patient/p1")})),
            resource("Condition", "c1", json!({"subject": reference_to("Patient/p1")})),
            encounter(
                "e2",
                json!({"subject": reference_to("Patient/p2"), "participant": [{"individual": reference_to("Practitioner/pr2")}]}),
            ),
            observation("o4", json!({"subject": reference_to("Patient/p2")})),
        ],
    )
    .await;
}

/// GETs an $everything URL (relative to the base, or absolute) and checks the Bundle.
async fn everything(s: &TestServer, path_or_url: &str) -> Value {
    let url = s.url(path_or_url);
    let r = get_url(s, &url, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text);
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "searchset");
    b
}

async fn everything_returns_the_compartment_and_its_references(s: TestServer) {
    seed_everything(&s).await;
    let b = everything(&s, "Patient/p1/$everything").await;
    // The patient, its compartment, and what those refer to (the encounter's practitioner, the
    // managing organisation).
    assert_eq!(
        all_refs(&b),
        set(&[
            "Condition/c1",
            "Encounter/e1",
            "Observation/o1",
            "Observation/o2",
            "Organization/org1",
            "Patient/p1",
            "Practitioner/pr1"
        ])
    );
    let b = everything(&s, "Patient/p2/$everything").await;
    assert_eq!(all_refs(&b), set(&["Encounter/e2", "Observation/o4", "Patient/p2", "Practitioner/pr2"]));
    assert_eq!(s.get("Patient/nobody/$everything").await.status, StatusCode::NOT_FOUND);
}

async fn everything_type_since_and_paging(s: TestServer) {
    seed_everything(&s).await;
    // _type: only those types.
    let b = everything(&s, "Patient/p1/$everything?_type=Observation,Encounter").await;
    assert_eq!(all_refs(&b), set(&["Encounter/e1", "Observation/o1", "Observation/o2"]));
    // _count pages through the same set, each resource once.
    let mut page = everything(&s, "Patient/p1/$everything?_count=2").await;
    let mut seen = Vec::new();
    loop {
        let refs = all_refs(&page);
        assert!(refs.len() <= 2, "{page}");
        seen.extend(refs);
        match link(&page, "next") {
            Some(next) => page = everything(&s, &next).await,
            None => break,
        }
        assert!(seen.len() < 50, "paging does not end");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    assert_eq!(unique.len(), 7);
    // _since: only what changed after the instant. Both p1 and o2 change; the organisation it
    // refers to did not, so it is not returned either.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    for path in ["Patient/p1", "Observation/o2"] {
        let mut body = s.get(path).await.json();
        body["meta"] = json!({"tag": [{"system": "http://x/tags", "code": "touched"}]});
        put_one(&s, &body).await;
    }
    let b = everything(&s, &format!("Patient/p1/$everything?_since={since}")).await;
    assert_eq!(all_refs(&b), set(&["Observation/o2", "Patient/p1"]));
}
