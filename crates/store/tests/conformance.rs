//! One storage conformance suite, run on SQLite and on PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fhir::search::query::{Filter, Parser, SearchRequest};
use serde_json::{Value, json};
use store::{
    Account, AccountStatus, AuthEvent, Failures, HistoryQuery, Method, NewVersion, SearchQuery, SecondFactor, Session,
    SessionStage, Store, StoreError,
};

const T: &str = "tenant-a";

fn put(rt: &str, id: &str, body: Value, expected: Option<i64>) -> NewVersion {
    let index = fhir::search::index_resource(&body, fhir::search::standard());
    let text = Some(fhir::search::full_text(&body));
    NewVersion {
        resource_type: rt.into(),
        id: id.into(),
        expected_version: expected,
        method: Method::Put,
        body: Some(body),
        index,
        text,
    }
}

/// A parsed search on a type, as the server would hand it to the store.
fn request(rt: Option<&str>, query: &str) -> SearchRequest {
    let pairs: Vec<(String, String)> =
        form_urlencoded_pairs(query).into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    Parser { registry: fhir::search::standard(), base_url: "", lenient: false }
        .parse(rt, &pairs)
        .unwrap_or_else(|e| panic!("{query}: {e:?}"))
}

fn form_urlencoded_pairs(query: &str) -> Vec<(&str, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect()
}

fn filters(rt: &str, query: &str) -> Vec<Filter> {
    request(Some(rt), query).filters
}

fn delete(rt: &str, id: &str) -> NewVersion {
    NewVersion {
        resource_type: rt.into(),
        id: id.into(),
        expected_version: None,
        method: Method::Delete,
        body: None,
        index: vec![],
        text: None,
    }
}

async fn write(s: &dyn Store, tenant: &str, v: NewVersion) -> Result<store::ResourceVersion, StoreError> {
    let mut tx = s.begin(tenant).await?;
    let r = tx.write(v).await?;
    tx.commit().await?;
    Ok(r)
}

fn patient(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}], "identifier": [{"system": "urn:mrn", "value": family}]})
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("dir");
                    let s = store::open(None, dir.path()).await.expect("opens");
                    super::$name(s).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let url = store::testing::fresh_postgres_url().await;
                    let dir = tempfile::tempdir().expect("dir");
                    let s = store::open(Some(&url), dir.path()).await.expect("opens");
                    super::$name(s).await;
                }
            )*
        }
    };
}

conformance!(
    versions_and_meta,
    decimals_round_trip,
    expected_version_conflicts,
    delete_and_recreate,
    history_filters_and_paging,
    rollback_on_drop_leaves_nothing,
    token_index_follows_writes,
    search_pages_in_sort_order_without_gaps,
    search_includes_and_counts,
    search_wide_reverse_chains_and_ordered_drivers,
    reindex_and_settings,
    accounts_are_unique_per_tenant_and_versioned,
    sessions_are_found_touched_revoked_and_purged,
    second_factors_are_replaced_or_compared_and_set,
    failures_count_within_a_window,
    concurrent_failures_all_count,
    auth_events_list_newest_first,
    tenants_are_isolated,
    concurrent_if_match_loses_nothing,
    concurrent_creates_of_one_id,
    ready_and_reopen,
);

async fn versions_and_meta(s: Arc<dyn Store>) {
    let v1 = write(s.as_ref(), T, put("Patient", "p1", patient("A"), Some(0))).await.expect("create");
    assert_eq!(v1.version, 1);
    let body: Value = serde_json::from_str(v1.body.as_deref().expect("body")).expect("json");
    assert_eq!(body["meta"]["versionId"], "1");
    assert!(body["meta"]["lastUpdated"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 24));
    let v2 = write(s.as_ref(), T, put("Patient", "p1", patient("B"), Some(1))).await.expect("update");
    assert_eq!(v2.version, 2);
    assert!(v2.sequence > v1.sequence);
    let read = s.read(T, "Patient", "p1").await.expect("read").expect("exists");
    assert_eq!(read.version, 2);
    assert_eq!(read.body, v2.body);
    let old = s.vread(T, "Patient", "p1", 1).await.expect("vread").expect("exists");
    assert_eq!(old.body, v1.body);
    assert!(s.vread(T, "Patient", "p1", 3).await.expect("vread").is_none());
    assert!(s.read(T, "Patient", "nope").await.expect("read").is_none());
}

async fn decimals_round_trip(s: Arc<dyn Store>) {
    let body: Value =
        serde_json::from_str(r#"{"resourceType":"Observation","valueQuantity":{"value":1.50}}"#).expect("json");
    let v = write(s.as_ref(), T, put("Observation", "o", body, None)).await.expect("write");
    assert!(v.body.as_deref().expect("body").contains("\"value\":1.50"));
    let read = s.read(T, "Observation", "o").await.expect("read").expect("exists");
    assert!(read.body.as_deref().expect("body").contains("\"value\":1.50"));
}

async fn expected_version_conflicts(s: Arc<dyn Store>) {
    write(s.as_ref(), T, put("Patient", "p", patient("A"), Some(0))).await.expect("create");
    match write(s.as_ref(), T, put("Patient", "p", patient("A"), Some(0))).await {
        Err(StoreError::VersionConflict { actual: 1, .. }) => {}
        other => panic!("expected conflict, got {other:?}"),
    }
    write(s.as_ref(), T, put("Patient", "p", patient("B"), Some(1))).await.expect("update");
    match write(s.as_ref(), T, put("Patient", "p", patient("C"), Some(1))).await {
        Err(StoreError::VersionConflict { expected: 1, actual: 2, .. }) => {}
        other => panic!("expected conflict, got {other:?}"),
    }
}

async fn delete_and_recreate(s: Arc<dyn Store>) {
    write(s.as_ref(), T, put("Patient", "d", patient("A"), Some(0))).await.expect("create");
    let del = write(s.as_ref(), T, delete("Patient", "d")).await.expect("delete");
    assert_eq!(del.version, 2);
    assert!(del.is_deleted());
    let read = s.read(T, "Patient", "d").await.expect("read").expect("exists");
    assert!(read.is_deleted());
    let again = write(s.as_ref(), T, delete("Patient", "d")).await.expect("delete again");
    assert_eq!(again.version, 2, "deleting a deletion makes no version");
    let re = write(s.as_ref(), T, put("Patient", "d", patient("A"), Some(0))).await.expect("re-create");
    assert_eq!(re.version, 3);
    assert_eq!(
        s.history_total(
            T,
            &HistoryQuery { resource_type: Some("Patient".into()), id: Some("d".into()), ..Default::default() }
        )
        .await
        .expect("total"),
        3
    );
}

async fn history_filters_and_paging(s: Arc<dyn Store>) {
    for i in 0..5 {
        write(s.as_ref(), T, put("Patient", &format!("h{i}"), patient("H"), None)).await.expect("write");
    }
    write(s.as_ref(), T, put("Observation", "o1", json!({"resourceType": "Observation"}), None)).await.expect("write");
    write(s.as_ref(), T, put("Patient", "h0", patient("H2"), None)).await.expect("write");
    let all = HistoryQuery { count: 100, ..Default::default() };
    assert_eq!(s.history_total(T, &all).await.expect("total"), 7);
    let patients = HistoryQuery { resource_type: Some("Patient".into()), count: 100, ..Default::default() };
    assert_eq!(s.history_total(T, &patients).await.expect("total"), 6);
    let inst =
        HistoryQuery { resource_type: Some("Patient".into()), id: Some("h0".into()), count: 100, ..Default::default() };
    let h = s.history(T, &inst).await.expect("history");
    assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    // Paging by cursor visits every version once, newest first.
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = s
            .history(T, &HistoryQuery { count: 3, before_sequence: cursor, ..Default::default() })
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|v| v.sequence);
        seen.extend(page.into_iter().map(|v| v.sequence));
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(
        s.history_total(T, &HistoryQuery { since: Some(future), ..Default::default() }).await.expect("total"),
        0
    );
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(s.history_total(T, &HistoryQuery { since: Some(past), ..Default::default() }).await.expect("total"), 7);
    assert_eq!(s.history_total(T, &HistoryQuery { at: Some(past), ..Default::default() }).await.expect("total"), 0);
}

async fn rollback_on_drop_leaves_nothing(s: Arc<dyn Store>) {
    {
        let mut tx = s.begin(T).await.expect("begin");
        tx.write(put("Patient", "rb", patient("RB"), Some(0))).await.expect("write");
        assert!(tx.read("Patient", "rb").await.expect("read").is_some(), "a transaction sees its own writes");
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(s.read(T, "Patient", "rb").await.expect("read").is_none());
    assert_eq!(s.history_total(T, &HistoryQuery::default()).await.expect("total"), 0);
    let mut tx = s.begin(T).await.expect("begin");
    assert!(tx.find("Patient", &filters("Patient", "identifier=RB"), 10).await.expect("find").is_empty());
    tx.commit().await.expect("commit");
}

async fn token_index_follows_writes(s: Arc<dyn Store>) {
    write(s.as_ref(), T, put("Patient", "t1", patient("X"), None)).await.expect("write");
    write(
        s.as_ref(),
        T,
        put("Patient", "t2", json!({"resourceType": "Patient", "identifier": [{"value": "X"}]}), None),
    )
    .await
    .expect("write");
    let mut tx = s.begin(T).await.expect("begin");
    let by = |q: &str| filters("Patient", q);
    assert_eq!(tx.find("Patient", &by("identifier=urn:mrn|X"), 10).await.expect("find"), vec!["t1"]);
    assert_eq!(tx.find("Patient", &by("identifier=X"), 10).await.expect("find"), vec!["t1", "t2"]);
    assert_eq!(tx.find("Patient", &by("identifier=|X"), 10).await.expect("find"), vec!["t2"]);
    assert_eq!(tx.find("Patient", &by("identifier=X"), 1).await.expect("find"), vec!["t1"], "limited");
    assert_eq!(tx.find("Patient", &by("_id=t2"), 10).await.expect("find"), vec!["t2"]);
    assert!(tx.find("Observation", &filters("Observation", "identifier=X"), 10).await.expect("find").is_empty());
    tx.write(put("Patient", "t1", patient("Y"), None)).await.expect("update");
    assert!(tx.find("Patient", &by("identifier=urn:mrn|X"), 10).await.expect("find").is_empty());
    assert_eq!(tx.find("Patient", &by("identifier=urn:mrn|Y"), 10).await.expect("find"), vec!["t1"]);
    assert_eq!(tx.find("Patient", &by("family=y"), 10).await.expect("find"), vec!["t1"], "strings follow writes");
    tx.write(delete("Patient", "t1")).await.expect("delete");
    assert!(tx.find("Patient", &by("identifier=Y"), 10).await.expect("find").is_empty());
    assert!(tx.find("Patient", &by("_id=t1"), 10).await.expect("find").is_empty());
    tx.commit().await.expect("commit");
}

async fn tenants_are_isolated(s: Arc<dyn Store>) {
    write(s.as_ref(), "a", put("Patient", "same", patient("A"), Some(0))).await.expect("write a");
    assert!(s.read("b", "Patient", "same").await.expect("read").is_none());
    write(s.as_ref(), "b", put("Patient", "same", patient("B"), Some(0))).await.expect("same id in b");
    assert_eq!(s.history_total("a", &HistoryQuery::default()).await.expect("total"), 1);
    let mut tx = s.begin("b").await.expect("begin");
    assert!(tx.find("Patient", &filters("Patient", "identifier=A"), 10).await.expect("find").is_empty());
    tx.commit().await.expect("commit");
}

async fn concurrent_if_match_loses_nothing(s: Arc<dyn Store>) {
    write(s.as_ref(), T, put("Patient", "c", patient("C"), Some(0))).await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = s.begin(T).await?;
            let current = tx.read("Patient", "c").await?.map_or(0, |v| v.version);
            if current != 1 {
                return Err(StoreError::VersionConflict {
                    resource_type: "Patient".into(),
                    id: "c".into(),
                    expected: 1,
                    actual: current,
                });
            }
            tx.write(put("Patient", "c", patient(&format!("C{i}")), Some(1))).await?;
            tx.commit().await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("joined") {
            Ok(()) => ok += 1,
            Err(StoreError::VersionConflict { .. } | StoreError::Retry) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.read(T, "Patient", "c").await.expect("read").expect("exists").version, 2);
}

async fn concurrent_creates_of_one_id(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            write(s.as_ref(), T, put("Patient", "new", patient(&format!("N{i}")), Some(0))).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("joined") {
            Ok(_) => ok += 1,
            Err(StoreError::VersionConflict { .. } | StoreError::Retry) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.history_total(T, &HistoryQuery::default()).await.expect("total"), 1);
}

async fn ready_and_reopen(s: Arc<dyn Store>) {
    s.ping().await.expect("ready");
    write(s.as_ref(), T, put("Patient", "keep", patient("K"), None)).await.expect("write");
    assert!(s.read(T, "Patient", "keep").await.expect("read").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_survives_reopen_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let s = store::open(None, dir.path()).await.expect("opens");
        write(s.as_ref(), T, put("Patient", "keep", patient("K"), None)).await.expect("write");
    }
    let s = store::open(None, dir.path()).await.expect("reopens");
    s.ping().await.expect("ready");
    assert!(s.read(T, "Patient", "keep").await.expect("read").is_some());
    let url = format!("sqlite://{}", dir.path().join("iaso.db").display());
    let same = store::open(Some(&url), dir.path()).await.expect("opens by URL");
    assert!(same.read(T, "Patient", "keep").await.expect("read").is_some());
    assert!(store::open(Some("mysql://x"), dir.path()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_are_idempotent() {
    let url = store::testing::fresh_postgres_url().await;
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = tokio::join!(store::open(Some(&url), dir.path()), store::open(Some(&url), dir.path()));
    a.expect("first").ping().await.expect("ready");
    b.expect("second").ping().await.expect("ready");
}

fn query<'a>(r: &'a SearchRequest, count: usize, cursor: Option<&'a str>) -> SearchQuery<'a> {
    SearchQuery {
        resource_type: r.resource_type.as_deref(),
        types: &r.types,
        filters: &r.filters,
        sort: &r.sort,
        count,
        cursor,
        total: true,
        include: &r.include,
        revinclude: &r.revinclude,
    }
}

fn ids(versions: &[store::ResourceVersion]) -> Vec<String> {
    versions.iter().map(|v| v.id.clone()).collect()
}

async fn search_pages_in_sort_order_without_gaps(s: Arc<dyn Store>) {
    // Two share a family name (ties break by write order), one has none (sorts last).
    for (id, family) in
        [("a", Some("Cole")), ("b", Some("Adams")), ("c", None), ("d", Some("Baker")), ("e", Some("Adams"))]
    {
        let mut body = json!({"resourceType": "Patient", "active": true});
        if let Some(f) = family {
            body["name"] = json!([{"family": f}]);
        }
        write(s.as_ref(), T, put("Patient", id, body, None)).await.expect("write");
    }
    let r = request(Some("Patient"), "active=true&_sort=family");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = s.search(T, &query(&r, 2, cursor.as_deref())).await.expect("search");
        assert_eq!(page.total, Some(5));
        seen.extend(ids(&page.matches));
        pages.push((page.previous.clone(), ids(&page.matches)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        // A write between pages must not shift what is left.
        write(s.as_ref(), T, put("Patient", "late", json!({"resourceType": "Patient", "active": false}), None))
            .await
            .expect("write");
    }
    assert_eq!(seen, ["b", "e", "d", "a", "c"]);
    // Going back from the last page gives the page before it.
    let (previous, _) = pages.last().cloned().expect("pages");
    let back = s.search(T, &query(&r, 2, previous.as_deref())).await.expect("search");
    assert_eq!(ids(&back.matches), ["d", "a"]);
    let r = request(Some("Patient"), "_sort=-family");
    let page = s.search(T, &query(&r, 10, None)).await.expect("search");
    assert_eq!(ids(&page.matches)[..4], ["a", "d", "b", "e"]);
    assert!(s.search(T, &query(&r, 10, Some("forged"))).await.is_err(), "a forged cursor is refused");
}

async fn search_includes_and_counts(s: Arc<dyn Store>) {
    write(s.as_ref(), T, put("Organization", "o1", json!({"resourceType": "Organization", "name": "Acme"}), None))
        .await
        .expect("write");
    let patient = json!({"resourceType": "Patient", "managingOrganization": {"reference": "Organization/o1"}});
    write(s.as_ref(), T, put("Patient", "p1", patient, None)).await.expect("write");
    for i in 0..3 {
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8302-6"}]},
            "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 170 + i, "system": "http://unitsofmeasure.org", "code": "cm"}});
        write(s.as_ref(), T, put("Observation", &format!("o{i}"), obs, None)).await.expect("write");
    }
    let r = request(Some("Patient"), "_include=Patient:organization&_revinclude=Observation:subject");
    let page = s.search(T, &query(&r, 10, None)).await.expect("search");
    assert_eq!(ids(&page.matches), ["p1"]);
    let mut included = ids(&page.included);
    included.sort();
    // Organization/o1 and Observation o0, o1, o2: ids may repeat across types.
    assert_eq!(included, ["o0", "o1", "o1", "o2"]);
    let r = request(
        Some("Observation"),
        "value-quantity=gt1.71|http://unitsofmeasure.org|m&subject:Patient.organization=o1",
    );
    let page = s.search(T, &query(&r, 0, None)).await.expect("search");
    assert_eq!(page.total, Some(1), "UCUM-normalised and chained");
    assert!(page.matches.is_empty(), "a count of 0 returns no resources");
    let r = request(Some("Patient"), "_has:Observation:subject:code=http://loinc.org|8302-6");
    assert_eq!(ids(&s.search(T, &query(&r, 10, None)).await.expect("search").matches), ["p1"]);
}

/// Enough inner matches that `_has` is tested per candidate (the store switches above 2,000),
/// and a token driver read in rid order, where a resource with the same coding twice must
/// still come once.
async fn search_wide_reverse_chains_and_ordered_drivers(s: Arc<dyn Store>) {
    const WIDE: &str = "http://loinc.org|2339-0";
    let mut tx = s.begin(T).await.expect("begin");
    for p in 0..10 {
        let gender = if p % 2 == 0 { "male" } else { "female" };
        tx.write(put("Patient", &format!("p{p}"), json!({"resourceType": "Patient", "gender": gender}), None))
            .await
            .expect("write");
    }
    // 2,100 glucose Observations for p0…p4, others for p5…p9.
    for i in 0..2100 {
        let (patient, code) = (i % 5, "2339-0");
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": format!("Patient/p{patient}")}});
        tx.write(put("Observation", &format!("g{i}"), obs, None)).await.expect("write");
    }
    for p in 5..10 {
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}, {"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
            "subject": {"reference": format!("Patient/p{p}")}});
        tx.write(put("Observation", &format!("w{p}"), obs, None)).await.expect("write");
    }
    tx.commit().await.expect("commit");

    let all = |r: SearchRequest, count: usize| {
        let s = s.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = s.search(T, &query(&r, count, cursor.as_deref())).await.expect("search");
                seen.extend(ids(&page.matches));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => return (seen, page.total),
                }
            }
        }
    };
    let (found, total) = all(request(Some("Patient"), &format!("_has:Observation:subject:code={WIDE}")), 2).await;
    assert_eq!(found, ["p0", "p1", "p2", "p3", "p4"]);
    assert_eq!(total, Some(5));
    let (found, _) =
        all(request(Some("Patient"), &format!("gender=male&_has:Observation:subject:code={WIDE}")), 10).await;
    assert_eq!(found, ["p0", "p2", "p4"]);
    let (found, _) =
        all(request(Some("Patient"), &format!("_has:Observation:patient:code={WIDE}&gender=female")), 1).await;
    assert_eq!(found, ["p1", "p3"]);
    let (found, _) = all(request(Some("Patient"), "_has:Observation:subject:code=http://loinc.org|29463-7"), 3).await;
    assert_eq!(found, ["p5", "p6", "p7", "p8", "p9"]);

    // Each weight Observation has the coding twice (two index rows): still one match each.
    let (found, total) = all(request(Some("Observation"), "code=http://loinc.org|29463-7"), 2).await;
    assert_eq!(found, ["w5", "w6", "w7", "w8", "w9"]);
    assert_eq!(total, Some(5));
    let (found, total) = all(request(Some("Observation"), &format!("code={WIDE}&subject=Patient/p3")), 100).await;
    assert_eq!(found.len(), 420);
    assert_eq!(total, Some(420));
    assert!(found.iter().all(|id| id[1..].parse::<usize>().is_ok_and(|i| i % 5 == 3)));
    let r = request(Some("Observation"), &format!("code={WIDE}"));
    let page = s.search(T, &query(&r, 3, None)).await.expect("search");
    assert_eq!(ids(&page.matches), ["g0", "g1", "g2"]);
    assert_eq!(page.total, Some(2100));
    // Forward and back again through the rows read in index order.
    let second = s.search(T, &query(&r, 3, page.next.as_deref())).await.expect("search");
    assert_eq!(ids(&second.matches), ["g3", "g4", "g5"]);
    let back = s.search(T, &query(&r, 3, second.previous.as_deref())).await.expect("search");
    assert_eq!(ids(&back.matches), ["g0", "g1", "g2"]);
    let (found, _) = all(request(Some("Observation"), "code=http://loinc.org|29463-7&_sort=-_id"), 2).await;
    assert_eq!(found, ["w9", "w8", "w7", "w6", "w5"]);
}

fn account(id: &str, email: &str) -> Account {
    Account {
        id: id.into(),
        email: email.into(),
        email_verified: false,
        password_hash: Some("$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA".into()),
        roles: vec!["nurse".into()],
        fhir_user: Some("Practitioner/pr1".into()),
        status: AccountStatus::Active,
        version: 0,
        created: chrono::DateTime::default(),
        updated: chrono::DateTime::default(),
    }
}

async fn accounts_are_unique_per_tenant_and_versioned(s: Arc<dyn Store>) {
    let created = s.create_account(T, &account("a1", "ann@example.org")).await.expect("create");
    assert_eq!(created.version, 1);
    assert!(created.created > chrono::DateTime::<chrono::Utc>::default());
    let read = s.account(T, "a1").await.expect("read").expect("exists");
    assert_eq!(read, created);
    assert_eq!(s.account_by_email(T, "ann@example.org").await.expect("read"), Some(created.clone()));
    assert_eq!(s.account_by_email(T, "nobody@example.org").await.expect("read"), None);
    assert_eq!(s.account("tenant-b", "a1").await.expect("read"), None, "tenants are separate");

    // One account per email and per id in a tenant; another tenant may reuse both.
    assert!(matches!(s.create_account(T, &account("a2", "ann@example.org")).await, Err(StoreError::Exists(_))));
    assert!(matches!(s.create_account(T, &account("a1", "other@example.org")).await, Err(StoreError::Exists(_))));
    s.create_account("tenant-b", &account("a1", "ann@example.org")).await.expect("another tenant");

    // An update names the version it read; the loser of two updates gets a conflict.
    let mut change = read.clone();
    change.roles = vec!["admin".into(), "practitioner".into()];
    change.email_verified = true;
    change.password_hash = None;
    change.status = AccountStatus::Disabled;
    let updated = s.update_account(T, &change).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.created, created.created);
    let stored = s.account(T, "a1").await.expect("read").expect("exists");
    assert_eq!(stored.roles, ["admin", "practitioner"]);
    assert!(stored.email_verified && stored.password_hash.is_none() && stored.status == AccountStatus::Disabled);
    assert!(matches!(
        s.update_account(T, &change).await,
        Err(StoreError::VersionConflict { expected: 1, actual: 2, .. })
    ));
    assert!(matches!(s.update_account(T, &account("zz", "zz@example.org")).await, Err(StoreError::NotFound(_))));
    s.create_account(T, &account("b1", "bob@example.org")).await.expect("create");
    let mut steal = stored.clone();
    steal.email = "bob@example.org".into();
    assert!(matches!(s.update_account(T, &steal).await, Err(StoreError::Exists(_))), "an email stays one account's");

    // Listed in email order, in pages.
    s.create_account(T, &account("c1", "cat@example.org")).await.expect("create");
    let first = s.accounts(T, None, 2).await.expect("list");
    assert_eq!(first.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(), ["ann@example.org", "bob@example.org"]);
    let rest = s.accounts(T, Some("bob@example.org"), 10).await.expect("list");
    assert_eq!(rest.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["c1"]);
}

async fn reindex_and_settings(s: Arc<dyn Store>) {
    assert_eq!(s.setting("x").await.expect("setting"), None);
    s.set_setting("x", "1").await.expect("set");
    s.set_setting("x", "2").await.expect("set");
    assert_eq!(s.setting("x").await.expect("setting").as_deref(), Some("2"));
    // Written without index rows, then re-indexed.
    let mut bare = put("Patient", "r1", patient("Reindexed"), None);
    bare.index.clear();
    write(s.as_ref(), T, bare).await.expect("write");
    let by = filters("Patient", "identifier=Reindexed");
    let count = |s: Arc<dyn Store>, f: Vec<Filter>| async move {
        let mut tx = s.begin(T).await.expect("begin");
        let n = tx.find("Patient", &f, 10).await.expect("find").len();
        tx.commit().await.expect("commit");
        n
    };
    assert_eq!(count(s.clone(), by.clone()).await, 0);
    let stored = s.scan(0, 10).await.expect("scan");
    assert_eq!(stored.len(), 1);
    let body: Value = serde_json::from_str(stored[0].version.body.as_deref().expect("body")).expect("json");
    let batch = vec![store::Reindexed {
        rid: stored[0].rid,
        tenant: stored[0].tenant.clone(),
        resource_type: "Patient".into(),
        version: stored[0].version.version,
        index: fhir::search::index_resource(&body, fhir::search::standard()),
        text: None,
    }];
    s.reindex(batch.clone()).await.expect("reindex");
    assert_eq!(count(s.clone(), by.clone()).await, 1);
    // A batch computed from an older version is not applied.
    write(s.as_ref(), T, put("Patient", "r1", patient("Changed"), None)).await.expect("update");
    s.reindex(batch).await.expect("reindex");
    assert_eq!(count(s.clone(), by).await, 0);
    assert!(s.scan(stored[0].rid, 10).await.expect("scan").is_empty());
}

/// A fixed instant, so stored times compare exactly (the store keeps milliseconds).
const NOW: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("a time")
}

/// A session of `account` created `offset` ms after [`NOW`], ending an hour later.
fn session(id: &str, account: &str, offset: i64) -> Session {
    Session {
        id: id.into(),
        token_hash: format!("digest-{id}"),
        account_id: account.into(),
        stage: SessionStage::SecondFactor,
        created: at(NOW + offset),
        last_seen: at(NOW + offset),
        expires: at(NOW + offset + HOUR),
        user_agent: Some("Mozilla/5.0".into()),
        address: Some("192.0.2.7".into()),
    }
}

fn session_ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id.as_str()).collect()
}

async fn sessions_are_found_touched_revoked_and_purged(s: Arc<dyn Store>) {
    let s1 = session("s1", "a1", 0);
    for new in [&s1, &session("s2", "a1", 1_000), &session("s3", "a1", 2_000), &session("o1", "b1", 0)] {
        s.create_session(T, new).await.expect("create");
    }
    assert_eq!(s.session_by_token(T, "digest-s1").await.expect("read"), Some(s1.clone()));
    assert_eq!(s.session_by_token(T, "digest-none").await.expect("read"), None);

    // An id and a token digest are each one session's.
    let same_id = Session { token_hash: "digest-fresh".into(), ..s1.clone() };
    assert!(matches!(s.create_session(T, &same_id).await, Err(StoreError::Exists(_))));
    let same_token = Session { id: "s9".into(), ..s1.clone() };
    assert!(matches!(s.create_session(T, &same_token).await, Err(StoreError::Exists(_))));
    assert_eq!(s.session_by_token(T, "digest-fresh").await.expect("read"), None);

    // Tenants are separate: the same id and digest may be another tenant's session.
    s.create_session("tenant-b", &session("s1", "a1", 0)).await.expect("another tenant");
    s.create_session("tenant-b", &session("b-only", "a1", 0)).await.expect("another tenant");
    assert_eq!(s.session_by_token(T, "digest-b-only").await.expect("read"), None);

    // Touching records activity and moves the stage; without a stage it keeps the one it has.
    assert!(s.touch_session(T, "s1", at(NOW + 5_000), Some(SessionStage::Active)).await.expect("touch"));
    let touched = s.session_by_token(T, "digest-s1").await.expect("read").expect("exists");
    assert_eq!(
        (touched.stage, touched.last_seen, touched.created),
        (SessionStage::Active, at(NOW + 5_000), s1.created)
    );
    assert!(s.touch_session(T, "s1", at(NOW + 6_000), None).await.expect("touch"));
    let touched = s.session_by_token(T, "digest-s1").await.expect("read").expect("exists");
    assert_eq!((touched.stage, touched.last_seen), (SessionStage::Active, at(NOW + 6_000)));
    assert!(!s.touch_session(T, "nope", at(NOW), None).await.expect("touch"));
    let other = s.session_by_token("tenant-b", "digest-s1").await.expect("read").expect("exists");
    assert_eq!(other.stage, SessionStage::SecondFactor, "a touch stays in its tenant");

    // One session ends only at its own account's request, and once.
    assert!(!s.revoke_session(T, "b1", "s1").await.expect("revoke"));
    assert!(s.session_by_token(T, "digest-s1").await.expect("read").is_some());
    assert!(s.revoke_session(T, "a1", "s1").await.expect("revoke"));
    assert_eq!(s.session_by_token(T, "digest-s1").await.expect("read"), None);
    assert!(!s.revoke_session(T, "a1", "s1").await.expect("revoke"), "already ended");
    assert!(!s.touch_session(T, "s1", at(NOW + 7_000), None).await.expect("touch"), "a revoked session is gone");
    assert!(s.session_by_token("tenant-b", "digest-s1").await.expect("read").is_some());

    // Listed newest first, without the revoked; then all but one end.
    assert_eq!(session_ids(&s.sessions(T, "a1", at(NOW)).await.expect("list")), ["s3", "s2"]);
    assert_eq!(s.revoke_sessions(T, "a1", Some("s3")).await.expect("revoke"), 1);
    assert_eq!(session_ids(&s.sessions(T, "a1", at(NOW)).await.expect("list")), ["s3"]);
    assert_eq!(session_ids(&s.sessions(T, "b1", at(NOW)).await.expect("list")), ["o1"], "another account's stay");
    assert_eq!(s.revoke_sessions(T, "b1", None).await.expect("revoke"), 1);
    assert!(s.sessions(T, "b1", at(NOW)).await.expect("list").is_empty());
    assert_eq!(s.revoke_sessions(T, "b1", None).await.expect("revoke"), 0);

    // The expired are not listed (s3 ends at NOW + 2 s + 1 h).
    assert_eq!(session_ids(&s.sessions(T, "a1", at(NOW + 2_000 + HOUR - 1)).await.expect("list")), ["s3"]);
    assert!(s.sessions(T, "a1", at(NOW + 2_000 + HOUR)).await.expect("list").is_empty());

    // The purge removes the revoked (s1, s2, o1) and, in every tenant, what expired before
    // the instant (tenant-b's two, ending at NOW + 1 h); s3 stays.
    assert_eq!(s.purge_sessions(at(NOW + HOUR + 500)).await.expect("purge"), 5);
    assert_eq!(session_ids(&s.sessions(T, "a1", at(NOW)).await.expect("list")), ["s3"]);
    assert!(s.sessions("tenant-b", "a1", at(NOW)).await.expect("list").is_empty());
    assert_eq!(s.purge_sessions(at(NOW + HOUR + 500)).await.expect("purge"), 0);
    // A purged id is free again.
    s.create_session(T, &s1).await.expect("the id of a purged session");
}

fn factor(account: &str, secret: &str) -> SecondFactor {
    SecondFactor {
        account_id: account.into(),
        totp_secret: secret.into(),
        confirmed: false,
        last_step: None,
        backup_codes: vec![("code-1".into(), false), ("code \"2\"".into(), true)],
        version: 0,
        created: DateTime::default(),
    }
}

async fn second_factors_are_replaced_or_compared_and_set(s: Arc<dyn Store>) {
    assert_eq!(s.second_factor(T, "a1").await.expect("read"), None);
    let first = s.put_second_factor(T, &factor("a1", "SECRETONE")).await.expect("enrol");
    assert_eq!(first.version, 1);
    assert!(first.created > DateTime::<Utc>::default(), "the store sets the time of a replacement");
    assert_eq!(s.second_factor(T, "a1").await.expect("read"), Some(first.clone()));
    assert_eq!(s.second_factor("tenant-b", "a1").await.expect("read"), None);

    // An update names the version it read.
    let mut used = first.clone();
    used.confirmed = true;
    used.last_step = Some(60_000_123);
    used.backup_codes[0].1 = true;
    let second = s.put_second_factor(T, &used).await.expect("update");
    assert_eq!((second.version, second.created), (2, first.created));
    let stored = s.second_factor(T, "a1").await.expect("read").expect("exists");
    assert_eq!(stored, second);
    assert!(stored.confirmed);
    assert_eq!(stored.last_step, Some(60_000_123));
    assert_eq!(stored.backup_codes, [("code-1".to_owned(), true), ("code \"2\"".to_owned(), true)]);

    // The loser of two updates from one read gets a conflict and changes nothing.
    let mut stale = first.clone();
    stale.last_step = Some(1);
    match s.put_second_factor(T, &stale).await {
        Err(StoreError::VersionConflict { resource_type, id, expected: 1, actual: 2 }) => {
            assert_eq!((resource_type.as_str(), id.as_str()), ("second_factor", "a1"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.second_factor(T, "a1").await.expect("read"), Some(second.clone()));
    let nobody = SecondFactor { version: 3, ..factor("nobody", "X") };
    assert!(matches!(s.put_second_factor(T, &nobody).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.second_factor(T, "nobody").await.expect("read"), None);

    // Version 0 starts enrolment over, whatever was there; the version counts on, so an
    // update based on the old factor cannot write it back.
    let again = s.put_second_factor(T, &factor("a1", "SECRETTWO")).await.expect("re-enrol");
    assert_eq!(again.version, 3);
    let stored = s.second_factor(T, "a1").await.expect("read").expect("exists");
    assert_eq!((stored.totp_secret.as_str(), stored.confirmed, stored.last_step), ("SECRETTWO", false, None));
    assert_eq!(stored, again);
    assert!(matches!(s.put_second_factor(T, &second).await, Err(StoreError::VersionConflict { actual: 3, .. })));

    assert!(!s.delete_second_factor("tenant-b", "a1").await.expect("delete"), "another tenant has none");
    assert!(s.delete_second_factor(T, "a1").await.expect("delete"));
    assert_eq!(s.second_factor(T, "a1").await.expect("read"), None);
    assert!(!s.delete_second_factor(T, "a1").await.expect("delete"));
    assert!(matches!(s.put_second_factor(T, &again).await, Err(StoreError::NotFound(_))));
}

async fn failures_count_within_a_window(s: Arc<dyn Store>) {
    assert_eq!(s.failures(T, "k").await.expect("read"), None);
    let window = 60_000;
    let count = |key: &'static str, tenant: &'static str, now: i64| {
        let s = s.clone();
        async move { s.count_failure(tenant, key, at(now), at(now - window)).await.expect("count") }
    };
    assert_eq!(count("k", T, NOW).await, Failures { count: 1, last: at(NOW) });
    assert_eq!(count("k", T, NOW + 1_000).await, Failures { count: 2, last: at(NOW + 1_000) });
    assert_eq!(count("k", T, NOW + 2_000).await.count, 3);
    assert_eq!(s.failures(T, "k").await.expect("read"), Some(Failures { count: 3, last: at(NOW + 2_000) }));
    // Other keys and tenants count apart.
    assert_eq!(count("k2", T, NOW).await.count, 1);
    assert_eq!(count("k", "tenant-b", NOW).await.count, 1);

    // A failure after a quiet window starts the count again.
    assert_eq!(
        count("k", T, NOW + 2_000 + window + 1).await,
        Failures { count: 1, last: at(NOW + 2_000 + window + 1) }
    );
    assert_eq!(count("k", T, NOW + 2_000 + window + 2).await.count, 2);

    s.clear_failures(T, "k").await.expect("clear");
    assert_eq!(s.failures(T, "k").await.expect("read"), None);
    assert_eq!(s.failures(T, "k2").await.expect("read").map(|f| f.count), Some(1));
    assert_eq!(s.failures("tenant-b", "k").await.expect("read").map(|f| f.count), Some(1));
    assert_eq!(count("k", T, NOW + 3 * window).await.count, 1, "a cleared key starts at 1");
}

/// Failures counted at once all count: each sees a different count and the last is 20.
async fn concurrent_failures_all_count(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.count_failure(T, "burst", at(NOW), at(NOW - 60_000)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.expect("task").expect("count").count);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<i64>>());
    assert_eq!(s.failures(T, "burst").await.expect("read"), Some(Failures { count: 20, last: at(NOW) }));
}

fn event(id: &str, offset: i64, kind: &str, account: Option<&str>) -> AuthEvent {
    AuthEvent {
        id: id.into(),
        at: at(NOW + offset),
        kind: kind.into(),
        account_id: account.map(Into::into),
        address: Some("198.51.100.4".into()),
        detail: json!({"method": "password", "n": offset}),
    }
}

async fn auth_events_list_newest_first(s: Arc<dyn Store>) {
    let events = [
        event("e1", 0, "login.success", Some("a1")),
        event("e2", 1_000, "login.failure", None),
        event("e3", 2_000, "logout", Some("a1")),
        // At the same instant as e2: the id breaks the tie.
        event("e4", 1_000, "mfa.enabled", Some("a1")),
        event("e5", 3_000, "login.success", Some("b1")),
    ];
    for e in &events {
        s.record_auth_event(T, e).await.expect("record");
    }
    s.record_auth_event("tenant-b", &event("x1", 9_000, "logout", Some("a1"))).await.expect("record");
    assert!(matches!(s.record_auth_event(T, &events[0]).await, Err(StoreError::Exists(_))));

    let ids = |list: Vec<AuthEvent>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let all = s.auth_events(T, None, 10).await.expect("list");
    assert_eq!(all[2], events[3], "every field comes back");
    assert_eq!(all[3].account_id, None);
    assert_eq!(ids(all), ["e5", "e3", "e4", "e2", "e1"]);
    assert_eq!(ids(s.auth_events(T, Some("a1"), 10).await.expect("list")), ["e3", "e4", "e1"]);
    assert_eq!(ids(s.auth_events(T, None, 2).await.expect("list")), ["e5", "e3"]);
    assert_eq!(ids(s.auth_events(T, Some("a1"), 1).await.expect("list")), ["e3"]);
    assert!(s.auth_events(T, Some("nobody"), 10).await.expect("list").is_empty());
    assert!(s.auth_events(T, None, 0).await.expect("list").is_empty());
    assert_eq!(ids(s.auth_events("tenant-b", None, 10).await.expect("list")), ["x1"]);
}
