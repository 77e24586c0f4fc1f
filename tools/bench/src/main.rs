//! `bench`: the benchmark driver behind `scripts/bench.sh`. It loads a folder of transaction and
//! batch Bundles into any FHIR server over HTTP (so Iaso and a peer server are fed the same way)
//! and writes a sample of the created resources' `Type/id` for the read benchmark; for the
//! search benchmark it writes the query mix from a loaded server's patients and probes it.
//!
//! Files named `00-…` (the shared hospital and practitioner Bundles that `loadgen` writes first)
//! are posted one at a time before the others, since patient Bundles refer to them; the rest go
//! `--concurrency` at a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Parser)]
#[command(about = "Benchmark driver: load Bundles over HTTP, sample read targets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POST every Bundle of a folder to the server base and report resources/s as JSON.
    Load {
        /// The FHIR base URL, e.g. http://127.0.0.1:8080/fhir.
        #[arg(long)]
        base: String,
        /// Folder of `.json` Bundles (as written by loadgen).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Where to write a sample of created `Type/id`s, one a line.
        #[arg(long)]
        targets_out: Option<PathBuf>,
        /// How many targets to keep (every k-th location).
        #[arg(long, default_value_t = 20_000)]
        targets: usize,
    },
    /// Write the search benchmark's query mix for a loaded server, from its own patients (ids
    /// differ between servers): one file per query kind, one path below the base a line.
    Queries {
        #[arg(long)]
        base: String,
        #[arg(long)]
        out: PathBuf,
        /// Patients to draw values from.
        #[arg(long, default_value_t = 200)]
        sample: usize,
    },
    /// Ask the first queries of a mix file once each and report statuses and matches as JSON.
    Probe {
        #[arg(long)]
        base: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 5)]
        n: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Load { base, dir, concurrency, targets_out, targets } => {
            runtime.block_on(load(&base, &dir, concurrency.max(1), targets_out.as_deref(), targets))
        }
        Command::Queries { base, out, sample } => runtime.block_on(queries(&base, &out, sample)),
        Command::Probe { base, file, n } => runtime.block_on(probe(&base, &file, n)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct FileOutcome {
    entries: usize,
    ok: usize,
    locations: Vec<String>,
    failure: Option<String>,
}

async fn load(
    base: &str,
    dir: &Path,
    concurrency: usize,
    targets_out: Option<&Path>,
    targets: usize,
) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (shared, patients): (Vec<_>, Vec<_>) =
        files.into_iter().partition(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("00-")));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for file in shared {
        outcomes.push((file.clone(), post_file(&client, base, &file).await));
    }
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for file in patients {
        let client = client.clone();
        let base = base.to_owned();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let outcome = post_file(&client, &base, &file).await;
            (file, outcome)
        });
    }
    while let Some(done) = tasks.join_next().await {
        outcomes.push(done.map_err(|e| e.to_string())?);
    }
    let seconds = started.elapsed().as_secs_f64();

    let entries: usize = outcomes.iter().map(|(_, o)| o.entries).sum();
    let ok: usize = outcomes.iter().map(|(_, o)| o.ok).sum();
    let failed: Vec<_> = outcomes.iter().filter_map(|(f, o)| o.failure.as_ref().map(|why| (f, why))).collect();
    for (file, why) in failed.iter().take(10) {
        eprintln!("bench: {}: {why}", file.display());
    }
    if let Some(path) = targets_out {
        let all: Vec<&String> = outcomes.iter().flat_map(|(_, o)| &o.locations).collect();
        let step = (all.len() / targets.max(1)).max(1);
        let sample: Vec<&str> = all.iter().step_by(step).take(targets).map(|s| s.as_str()).collect();
        std::fs::write(path, sample.join("\n") + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "{}",
        json!({
            "files": outcomes.len(),
            "failed_files": failed.len(),
            "entries": entries,
            "ok": ok,
            "seconds": (seconds * 100.0).round() / 100.0,
            "resources_per_second": (ok as f64 / seconds).round(),
        })
    );
    Ok(())
}

/// LOINC codes every Synthea generation records: body weight (all patients), glucose (about a
/// third, so `_has` selects).
const WEIGHT: &str = "http://loinc.org|29463-7";
const GLUCOSE: &str = "http://loinc.org|2339-0";

/// The query mix of the search benchmark (issue 4), by name.
fn mix(p: &SamplePatient) -> Vec<(&'static str, String)> {
    let family = form_urlencoded_value(&p.family);
    vec![
        ("name", format!("Patient?name={family}")),
        ("birthdate-gender", format!("Patient?birthdate=ge{}&gender={}", p.birth_year, p.gender)),
        ("obs-patient-code-date", format!("Observation?patient={}&code={WEIGHT}&date=ge2000-01-01", p.id)),
        ("obs-code-value", format!("Observation?code={WEIGHT}&value-quantity=gt{}", 60 + p.birth_year % 50)),
        ("encounter-chained", format!("Encounter?patient.name={family}")),
        ("patient-has", format!("Patient?_has:Observation:patient:code={GLUCOSE}&gender={}", p.gender)),
        ("medreq-include", format!("MedicationRequest?patient={}&_include=MedicationRequest:medication", p.id)),
        ("everything", format!("Patient/{}/$everything", p.id)),
        ("obs-code-count", format!("Observation?code={WEIGHT}&_summary=count")),
    ]
}

fn form_urlencoded_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct SamplePatient {
    id: String,
    family: String,
    gender: String,
    birth_year: i64,
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<(u16, Value), String> {
    let response =
        client.get(url).header("accept", "application/fhir+json").send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn next_link(page: &Value) -> Option<&str> {
    page.get("link")?.as_array()?.iter().find(|l| l["relation"] == "next")?["url"].as_str()
}

/// Draws the sample from every patient of the server, ordered by name, birth date and gender,
/// so that two servers loaded with the same data are asked about the same patients.
async fn queries(base: &str, out: &Path, sample: usize) -> Result<(), String> {
    let client = reqwest::Client::new();
    let mut patients = Vec::new();
    let mut url = format!("{}/Patient?_count=500", base.trim_end_matches('/'));
    loop {
        let (status, page) = get_json(&client, &url).await?;
        if status != 200 {
            return Err(format!("{url}: HTTP {status}"));
        }
        for e in page.get("entry").and_then(Value::as_array).into_iter().flatten() {
            let r = &e["resource"];
            let (Some(id), Some(family), Some(gender), Some(birth)) = (
                r["id"].as_str(),
                r.pointer("/name/0/family").and_then(Value::as_str),
                r["gender"].as_str(),
                r["birthDate"].as_str(),
            ) else {
                continue;
            };
            let given = r.pointer("/name/0/given/0").and_then(Value::as_str).unwrap_or_default();
            let birth_year = birth.get(..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
            let key = format!("{family}|{given}|{birth}|{gender}");
            patients
                .push((key, SamplePatient { id: id.into(), family: family.into(), gender: gender.into(), birth_year }));
        }
        match next_link(&page) {
            Some(n) => url = n.to_owned(),
            None => break,
        }
    }
    if patients.is_empty() {
        return Err("the server returned no patients to build queries from".into());
    }
    patients.sort_by(|a, b| a.0.cmp(&b.0));
    let step = (patients.len() / sample.max(1)).max(1);
    let chosen: Vec<&SamplePatient> = patients.iter().step_by(step).take(sample).map(|(_, p)| p).collect();
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for p in &chosen {
        for (name, q) in mix(p) {
            files.entry(name).or_default().push(q);
        }
    }
    for (name, lines) in files {
        let path = out.join(format!("{name}.txt"));
        std::fs::write(&path, lines.join("\n") + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("{}", json!({"patients": patients.len(), "sample": chosen.len()}));
    Ok(())
}

/// Asks the first `n` queries of a mix file once each: the HTTP statuses and the mean number
/// of matches (`total`, else the `match` entries of the first page), so a server that refuses
/// or ignores a query is seen before its speed is.
async fn probe(base: &str, file: &Path, n: usize) -> Result<(), String> {
    let client = reqwest::Client::new();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let (mut asked, mut matches) = (0usize, 0u64);
    for line in text.lines().filter(|l| !l.is_empty()).take(n) {
        let url = format!("{}/{line}", base.trim_end_matches('/'));
        let (status, body) = get_json(&client, &url).await?;
        *statuses.entry(status).or_default() += 1;
        asked += 1;
        let found = body.get("total").and_then(Value::as_u64).unwrap_or_else(|| {
            body.get("entry").and_then(Value::as_array).map_or(0, |es| {
                es.iter().filter(|e| e.pointer("/search/mode") != Some(&json!("include"))).count() as u64
            })
        });
        matches += found;
    }
    let ok = statuses.get(&200).copied().unwrap_or(0);
    println!(
        "{}",
        json!({
            "asked": asked,
            "ok": ok,
            "statuses": statuses.iter().map(|(s, c)| format!("{s}x{c}")).collect::<Vec<_>>().join(" "),
            "mean_matches": if asked > 0 { matches as f64 / asked as f64 } else { 0.0 },
        })
    );
    Ok(())
}

async fn post_file(client: &reqwest::Client, base: &str, file: &Path) -> FileOutcome {
    let body = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return FileOutcome { failure: Some(format!("cannot read: {e}")), ..Default::default() },
    };
    let entries = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("entry").and_then(Value::as_array).map(Vec::len))
        .unwrap_or(0);
    let response = client
        .post(base)
        .header("content-type", "application/fhir+json")
        .header("accept", "application/fhir+json")
        .header("prefer", "return=minimal")
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return FileOutcome { entries, failure: Some(format!("request failed: {e}")), ..Default::default() },
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let why: String = text.chars().take(300).collect();
        return FileOutcome { entries, failure: Some(format!("HTTP {status}: {why}")), ..Default::default() };
    }
    let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut outcome = FileOutcome { entries, ..Default::default() };
    for entry in reply.get("entry").and_then(Value::as_array).into_iter().flatten() {
        let status = entry.pointer("/response/status").and_then(Value::as_str).unwrap_or_default();
        if !status.starts_with('2') {
            if outcome.failure.is_none() {
                outcome.failure = Some(format!("an entry answered {status}"));
            }
            continue;
        }
        outcome.ok += 1;
        if let Some(target) = entry.pointer("/response/location").and_then(Value::as_str).and_then(type_and_id) {
            outcome.locations.push(target);
        }
    }
    outcome
}

/// `Type/id` from a location such as `Patient/1/_history/2` or `http://host/fhir/Patient/1`.
fn type_and_id(location: &str) -> Option<String> {
    let path = location.split('?').next().unwrap_or(location);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let end = segments.iter().position(|s| *s == "_history").unwrap_or(segments.len());
    let (rt, id) = (segments.get(end.checked_sub(2)?)?, segments.get(end - 1)?);
    rt.chars().next().is_some_and(|c| c.is_ascii_uppercase()).then(|| format!("{rt}/{id}"))
}

#[cfg(test)]
mod tests {
    use super::type_and_id;

    #[test]
    fn locations_to_targets() {
        assert_eq!(type_and_id("Patient/1/_history/2").as_deref(), Some("Patient/1"));
        assert_eq!(type_and_id("http://h:1/fhir/Observation/a-b/_history/1").as_deref(), Some("Observation/a-b"));
        assert_eq!(type_and_id("http://h:1/Encounter/9").as_deref(), Some("Encounter/9"));
        assert_eq!(type_and_id("1"), None);
    }
}
