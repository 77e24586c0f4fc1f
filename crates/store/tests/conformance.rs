//! One storage conformance suite, run on SQLite and on PostgreSQL.

use std::sync::Arc;

use serde_json::{Value, json};
use store::{Criterion, HistoryQuery, IndexRow, Method, NewVersion, Store, StoreError};

const T: &str = "tenant-a";

fn put(rt: &str, id: &str, body: Value, expected: Option<i64>) -> NewVersion {
    let index = body["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| IndexRow::Token {
            param: "identifier".into(),
            system: i["system"].as_str().map(str::to_owned),
            code: i["value"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    NewVersion {
        resource_type: rt.into(),
        id: id.into(),
        expected_version: expected,
        method: Method::Put,
        body: Some(body),
        index,
    }
}

fn delete(rt: &str, id: &str) -> NewVersion {
    NewVersion {
        resource_type: rt.into(),
        id: id.into(),
        expected_version: None,
        method: Method::Delete,
        body: None,
        index: vec![],
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
    assert!(
        tx.find("Patient", &[Criterion::Token { param: "identifier".into(), system: None, code: "RB".into() }])
            .await
            .expect("find")
            .is_empty()
    );
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
    let by = |system: Option<&str>, code: &str| {
        vec![Criterion::Token { param: "identifier".into(), system: system.map(str::to_owned), code: code.into() }]
    };
    assert_eq!(tx.find("Patient", &by(Some("urn:mrn"), "X")).await.expect("find"), vec!["t1"]);
    assert_eq!(tx.find("Patient", &by(None, "X")).await.expect("find"), vec!["t1", "t2"]);
    assert_eq!(tx.find("Patient", &by(Some(""), "X")).await.expect("find"), vec!["t2"]);
    assert_eq!(tx.find("Patient", &[Criterion::Id("t2".into())]).await.expect("find"), vec!["t2"]);
    assert!(tx.find("Observation", &by(None, "X")).await.expect("find").is_empty());
    tx.write(put("Patient", "t1", patient("Y"), None)).await.expect("update");
    assert!(tx.find("Patient", &by(Some("urn:mrn"), "X")).await.expect("find").is_empty());
    assert_eq!(tx.find("Patient", &by(Some("urn:mrn"), "Y")).await.expect("find"), vec!["t1"]);
    tx.write(delete("Patient", "t1")).await.expect("delete");
    assert!(tx.find("Patient", &by(None, "Y")).await.expect("find").is_empty());
    assert!(tx.find("Patient", &[Criterion::Id("t1".into())]).await.expect("find").is_empty());
    tx.commit().await.expect("commit");
}

async fn tenants_are_isolated(s: Arc<dyn Store>) {
    write(s.as_ref(), "a", put("Patient", "same", patient("A"), Some(0))).await.expect("write a");
    assert!(s.read("b", "Patient", "same").await.expect("read").is_none());
    write(s.as_ref(), "b", put("Patient", "same", patient("B"), Some(0))).await.expect("same id in b");
    assert_eq!(s.history_total("a", &HistoryQuery::default()).await.expect("total"), 1);
    let mut tx = s.begin("b").await.expect("begin");
    assert!(
        tx.find("Patient", &[Criterion::Token { param: "identifier".into(), system: None, code: "A".into() }])
            .await
            .expect("find")
            .is_empty()
    );
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
