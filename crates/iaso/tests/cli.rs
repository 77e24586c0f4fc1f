//! The `iaso` binary end to end: import, accounts, demo seeding, graceful shutdown, crash
//! durability.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn iaso() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iaso"));
    c.env("IASO_LOG_FORMAT", "json").env_remove("IASO_DATABASE_URL").env_remove("IASO_DATA_DIR");
    c
}

fn synthea() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea")
}

fn store_args(dir: &Path, database: Option<&str>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_owned(), dir.display().to_string()];
    if let Some(db) = database {
        args.push("--database".into());
        args.push(db.into());
    }
    args
}

async fn versions(dir: &Path, database: Option<&str>) -> u64 {
    let store = store::open(database, dir).await.expect("store opens");
    store.history_total(store::DEFAULT_TENANT, &store::HistoryQuery::default()).await.expect("total")
}

fn run_import(dir: &Path, database: Option<&str>) -> String {
    let out = iaso().arg("import").args(store_args(dir, database)).arg(synthea()).output().expect("iaso runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "import failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

async fn import_all_synthea_sets_idempotently(database: Option<String>) {
    let dir = tempfile::tempdir().expect("dir");
    let first = run_import(dir.path(), database.as_deref());
    assert!(first.contains("Imported 23395 resources from 67 files"), "{first}");
    assert!(first.contains("0 failure(s)"), "{first}");
    let after_first = versions(dir.path(), database.as_deref()).await;
    // Conditional creates that matched write nothing, so fewer versions than entries.
    assert!(after_first > 20_000, "{after_first}");
    let second = run_import(dir.path(), database.as_deref());
    assert!(second.contains("0 failure(s)"), "{second}");
    assert_eq!(versions(dir.path(), database.as_deref()).await, after_first, "a re-import writes nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_synthea_sqlite() {
    import_all_synthea_sets_idempotently(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_synthea_postgres() {
    import_all_synthea_sets_idempotently(Some(store::testing::fresh_postgres_url().await)).await;
}

#[test]
fn import_reports_each_failure_with_its_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("in");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("bad.json"), "{not json").expect("write");
    let lines = [
        json!({"resourceType": "Patient", "id": "nd1"}).to_string(),
        json!({"resourceType": "Patient", "id": "nd2", "gender": "boy"}).to_string(),
    ];
    std::fs::write(data.join("patients.ndjson"), lines.join("\n")).expect("write");
    let out = iaso().arg("import").args(store_args(&dir.path().join("db"), None)).arg(&data).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("bad.json: not valid JSON"), "{stdout}");
    assert!(stdout.contains("patients.ndjson"), "{stdout}");
    assert!(stdout.contains("gender"), "{stdout}");
}

/// `iaso user create` with the password on stdin; answers (success, stdout, stderr).
fn user_create(dir: &Path, database: Option<&str>, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = iaso()
        .args(["user", "create"])
        .args(store_args(dir, database))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iaso runs");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writes");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("iaso ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn user_create_makes_accounts(database: Option<String>) {
    let dir = tempfile::tempdir().expect("dir");
    let db = database.as_deref();
    const PASSWORD: &str = "correct horse battery staple";
    let (ok, stdout, stderr) = user_create(
        dir.path(),
        db,
        &["--email", " Nurse.Joy@Example.ORG", "--role", "nurse", "--role", "admin", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "{stdout}{stderr}");
    let printed: Value = serde_json::from_str(stdout.trim()).expect("prints JSON");
    assert_eq!(printed["email"], "nurse.joy@example.org");
    assert_eq!(printed["roles"], json!(["admin", "nurse"]));
    assert_eq!(printed["status"], "active");
    assert!(!stdout.contains("argon2"), "the hash is never printed");

    let store = store::open(db, dir.path()).await.expect("store opens");
    let account =
        store.account_by_email(store::DEFAULT_TENANT, "nurse.joy@example.org").await.expect("reads").expect("exists");
    assert_eq!(account.id, printed["id"].as_str().expect("id"));
    let hash = account.password_hash.expect("a password");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(auth::password::verify(PASSWORD, &hash).expect("verifies"));
    assert!(!auth::password::verify("correct horse battery stapler", &hash).expect("verifies"));
    drop(store);

    // The same email in another case is the same account.
    let (ok, _, stderr) = user_create(
        dir.path(),
        db,
        &["--email", "NURSE.JOY@example.org", "--role", "nurse", "--password-stdin"],
        Some("another long passphrase here\n"),
    );
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");
    // A weak password is refused with the policy's reason; nothing is created.
    let (ok, _, stderr) = user_create(
        dir.path(),
        db,
        &["--email", "weak@example.org", "--role", "patient", "--password-stdin"],
        Some("password1234\n"),
    );
    assert!(!ok);
    assert!(stderr.contains("password_too_common"), "{stderr}");
    let (ok, _, stderr) = user_create(dir.path(), db, &["--email", "not-an-email", "--role", "nurse"], None);
    assert!(!ok && stderr.contains("invalid email address"), "{stderr}");
    let (ok, _, stderr) = user_create(dir.path(), db, &["--email", "x@example.org", "--role", "Chief Nurse"], None);
    assert!(!ok && stderr.contains("invalid role"), "{stderr}");
    let (ok, _, stderr) = user_create(
        dir.path(),
        db,
        &["--email", "pat@example.org", "--role", "patient", "--fhir-user", "Patient/nobody"],
        None,
    );
    assert!(!ok && stderr.contains("Patient/nobody does not exist"), "{stderr}");

    // Without a password the account is invited; a fhirUser must exist.
    let store = store::open(db, dir.path()).await.expect("store opens");
    let mut tx = store.begin(store::DEFAULT_TENANT).await.expect("begin");
    let body = json!({"resourceType": "Patient", "id": "pat1"});
    tx.write(store::NewVersion {
        resource_type: "Patient".into(),
        id: "pat1".into(),
        expected_version: None,
        method: store::Method::Put,
        index: fhir::search::index_resource(&body, fhir::search::standard()),
        text: None,
        body: Some(body),
    })
    .await
    .expect("write");
    tx.commit().await.expect("commit");
    drop(store);
    let (ok, stdout, stderr) = user_create(
        dir.path(),
        db,
        &["--email", "pat@example.org", "--role", "patient", "--fhir-user", "Patient/pat1"],
        None,
    );
    assert!(ok, "{stderr}");
    let printed: Value = serde_json::from_str(stdout.trim()).expect("prints JSON");
    assert_eq!((printed["status"].as_str(), printed["fhirUser"].as_str()), (Some("invited"), Some("Patient/pat1")));
    let store = store::open(db, dir.path()).await.expect("store opens");
    let all = store.accounts(store::DEFAULT_TENANT, None, 10).await.expect("lists");
    assert_eq!(all.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(), ["nurse.joy@example.org", "pat@example.org"]);
    drop(store);

    // `iaso user list`: one line per account, in email order, without hashes.
    let out = iaso().args(["user", "list"]).args(store_args(dir.path(), db)).output().expect("iaso runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(!listed.contains("argon2"), "{listed}");
    let lines: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(
        lines.iter().map(|l| l["email"].as_str()).collect::<Vec<_>>(),
        [Some("nurse.joy@example.org"), Some("pat@example.org")]
    );
    assert_eq!(lines[0]["roles"], json!(["admin", "nurse"]));
    assert_eq!(lines[1]["status"], "invited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_sqlite() {
    user_create_makes_accounts(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_postgres() {
    user_create_makes_accounts(Some(store::testing::fresh_postgres_url().await)).await;
}

struct Server {
    child: Child,
    base: String,
}

fn start(dir: &Path, extra: &[&str]) -> (Server, Vec<String>) {
    let mut child = iaso()
        .arg("serve")
        .args(store_args(dir, None))
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        lines.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            let base = rest.split_whitespace().next().expect("url").to_owned();
            return (Server { child, base }, lines);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not start: {lines:?}");
}

impl Server {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill runs");
        assert!(ok.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_clinic_then_graceful_shutdown() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut server, lines) = start(dir.path(), &["--demo", "--demo-patients", "5"]);
    assert!(lines.iter().any(|l| l.contains("Demo clinic seeded: 5 patients")), "{lines:?}");
    let client = reqwest::Client::new();
    let root = server.base.trim_end_matches("/fhir").to_owned();
    let ready = client.get(format!("{root}/health/ready")).send().await.expect("sent");
    assert_eq!(ready.status(), 200);
    let history: Value = client
        .get(format!("{}/Patient/_history?_count=1", server.base))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(history["total"], 5);

    // The printed demo patient signs in with the printed password.
    let line = lines.iter().find(|l| l.contains("patient@clinic.example")).expect("a demo patient account");
    let password = line.split_whitespace().nth(1).expect("its password");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login = browser.get(format!("{root}/auth/login")).send().await.expect("sent");
    let csrf_cookie =
        login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let page = login.text().await.expect("page");
    let token_at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let token = &page[token_at..token_at + 43];
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("csrf", token), ("email", "patient@clinic.example"), ("password", password), ("return_to", "")])
        .finish();
    let signed_in = browser
        .post(format!("{root}/auth/login"))
        .header("cookie", csrf_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("sent");
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/account");

    server.signal("-TERM");
    let status = server.child.wait().expect("exits");
    assert!(status.success(), "{status:?}");

    // A second start does not seed again.
    let (mut again, lines) = start(dir.path(), &["--demo", "--demo-patients", "5"]);
    assert!(lines.iter().any(|l| l.contains("already holds data")), "{lines:?}");
    again.signal("-INT");
    assert!(again.child.wait().expect("exits").success());
}

/// A SIGTERM while a large transaction is in flight lets it finish and commit whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_transactions_finish() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut server, _) = start(dir.path(), &[]);
    let entries: Vec<Value> = (0..3000)
        .map(|i| {
            json!({"resource": {"resourceType": "Patient", "id": format!("t{i}"), "active": true},
                   "request": {"method": "PUT", "url": format!("Patient/t{i}")}})
        })
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let request = reqwest::Client::new()
        .post(server.base.clone())
        .header("content-type", "application/fhir+json")
        .body(bundle.to_string())
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.signal("-TERM");
    let response = in_flight.await.expect("joined").expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    assert!(server.child.wait().expect("exits").success());
    assert_eq!(versions(dir.path(), None).await, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut server, _) = start(dir.path(), &[]);
    let client = reqwest::Client::new();
    for i in 0..20 {
        let body = json!({"resourceType": "Patient", "id": format!("k{i}"), "active": true});
        let r = client
            .put(format!("{}/Patient/k{i}", server.base))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 201);
    }
    server.signal("-KILL");
    let _ = server.child.wait();
    let (mut restarted, _) = start(dir.path(), &[]);
    for i in 0..20 {
        let r = client.get(format!("{}/Patient/k{i}", restarted.base)).send().await.expect("sent");
        assert_eq!(r.status(), 200);
    }
    restarted.signal("-TERM");
    let _ = restarted.child.wait();
    std::thread::sleep(Duration::from_millis(10));
}

/// Signing keys are made at first start, published without their private parts, and
/// rotated by `iaso keys rotate` with the old ones kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_made_published_and_rotated() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut server, _) = start(dir.path(), &[]);
    let root = server.base.trim_end_matches("/fhir").to_owned();
    let jwks: Value =
        reqwest::get(format!("{root}/.well-known/jwks.json")).await.expect("sent").json().await.expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    let algs: Vec<&str> = keys.iter().filter_map(|k| k["alg"].as_str()).collect();
    assert_eq!(algs.len(), 2);
    assert!(algs.contains(&"ES256") && algs.contains(&"RS256"), "{jwks}");
    for k in keys {
        assert!(k["kid"].as_str().is_some_and(|kid| kid.len() == 43));
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "{private} published");
        }
    }
    server.signal("-TERM");
    assert!(server.child.wait().expect("exits").success());

    let rotate = iaso().args(["keys", "rotate", "--data-dir"]).arg(dir.path()).output().expect("runs");
    assert!(rotate.status.success(), "{}", String::from_utf8_lossy(&rotate.stderr));
    let listed = iaso().args(["keys", "list", "--data-dir"]).arg(dir.path()).output().expect("runs");
    let lines: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let old: Vec<&str> = keys.iter().filter_map(|k| k["kid"].as_str()).collect();
    for line in &lines {
        let kid = line["kid"].as_str().expect("kid");
        assert_eq!(line["retiredAt"].is_null(), !old.contains(&kid), "{line}");
    }

    // A restart publishes the new keys and the retired ones.
    let (mut again, _) = start(dir.path(), &[]);
    let root = again.base.trim_end_matches("/fhir").to_owned();
    let jwks: Value =
        reqwest::get(format!("{root}/.well-known/jwks.json")).await.expect("sent").json().await.expect("json");
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(4));
    again.signal("-TERM");
    assert!(again.child.wait().expect("exits").success());
}
