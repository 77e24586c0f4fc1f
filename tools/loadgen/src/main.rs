//! `loadgen`: writes a directory of FHIR data for benchmarks and `iaso import`.
//!
//! From Synthea samples (`--source`): the shared hospital/practitioner Bundles once, named
//! `00-…` so they sort (and load) first, then one file per patient, cycling over the source
//! patients and taking copy `k` of each on round `k` (round 0 is the sources themselves). From the
//! demo generator (`--demo-seed`): `00-clinic.json`, then one file per patient. Either way one
//! Bundle is in memory at a time, and `MANIFEST.txt` records the counts.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use demo::Summary;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One transaction Bundle (`.json`) per patient.
    Bundle,
    /// One `.ndjson` file per patient, a resource per line, references as `Type/id`.
    Ndjson,
}

#[derive(Debug, Parser)]
#[command(version, about = "Writes FHIR benchmark data: Synthea patients multiplied, or the demo clinic")]
struct Args {
    /// Folder of Synthea Bundles (searched recursively).
    #[arg(long, default_value = "../shared/data/synthea", conflicts_with = "demo_seed")]
    source: PathBuf,
    /// Generate the demo clinic with this seed instead of multiplying Synthea.
    #[arg(long)]
    demo_seed: Option<u64>,
    /// How many patient files to write.
    #[arg(long, default_value_t = 1000)]
    patients: usize,
    /// Output folder; created, and must be empty if it exists.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Bundle)]
    format: Format,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Counts kept apart for the shared files and the patient files.
#[derive(Default)]
struct Totals {
    shared: Summary,
    patients: Summary,
    files: usize,
}

fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    prepare_out(&args.out)?;
    let mut totals = Totals::default();
    let origin = match args.demo_seed {
        Some(seed) => {
            write_bundle(&args.out.join("00-clinic.json"), &demo::clinic_bundle(seed))?;
            totals.shared.add(&demo::clinic_bundle(seed));
            totals.files += 1;
            for i in 0..args.patients {
                let bundle = demo::patient_bundle(seed, i);
                let name = format!("{:06}-demo-{seed}", i + 1);
                write_patient(args, &name, &bundle, &mut totals)?;
            }
            format!("demo clinic, seed {seed}")
        }
        None => {
            let (shared, patients) = scan(&args.source)?;
            if patients.is_empty() {
                return Err(format!("no patient Bundles under {}", args.source.display()));
            }
            for (set, path) in &shared {
                let bundle = read_json(path)?;
                let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("shared.json");
                // Shared files stay Bundles in both formats: the 3.x ones are conditional creates
                // (`ifNoneExist`) that NDJSON cannot express.
                write_bundle(&args.out.join(format!("00-{set}-{file}")), &bundle)?;
                totals.shared.add(&bundle);
                totals.files += 1;
            }
            for n in 0..args.patients {
                let (set, path) = &patients[n % patients.len()];
                let copy = (n / patients.len()) as u64;
                let bundle = demo::multiply::multiply_bundle(&read_json(path)?, copy);
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("patient");
                let short: String = stem.split('_').take(2).collect::<Vec<_>>().join("_");
                let name = format!("{:06}-{set}-{short}-c{copy}", n + 1);
                write_patient(args, &name, &bundle, &mut totals)?;
                if (n + 1) % 500 == 0 {
                    eprintln!("  {} patients, {} resources", n + 1, totals.patients.resources);
                }
            }
            format!("{} ({} source patients, {} shared files)", args.source.display(), patients.len(), shared.len())
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    write_manifest(args, &origin, &totals, seconds)?;
    let total = totals.shared.resources + totals.patients.resources;
    println!(
        "{total} resources ({} in {} patient files, {} in shared files) written to {} in {seconds:.1} s",
        totals.patients.resources,
        totals.patients.bundles,
        totals.shared.resources,
        args.out.display()
    );
    Ok(())
}

fn prepare_out(out: &Path) -> Result<(), String> {
    if out.exists() {
        let mut entries = fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))?;
        if entries.next().is_some() {
            return Err(format!("{} is not empty; choose a new folder", out.display()));
        }
    }
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Source files, sorted for a stable order: (set folder name, path) of the shared Bundles and of
/// the patient Bundles. A file is shared when it holds no Patient (Synthea's hospital and
/// practitioner files), which a byte scan tells without parsing.
type Sources = Vec<(String, PathBuf)>;

fn scan(root: &Path) -> Result<(Sources, Sources), String> {
    let mut files = Vec::new();
    collect(root, &mut files)?;
    files.sort();
    let (mut shared, mut patients) = (Vec::new(), Vec::new());
    for path in files {
        let set = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("synthea").to_owned();
        let text = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
        if text.contains("\"resourceType\": \"Patient\"") || text.contains("\"resourceType\":\"Patient\"") {
            patients.push((set, path));
        } else {
            shared.push((set, path));
        }
    }
    Ok((shared, patients))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

fn write_bundle(path: &Path, bundle: &Value) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer(&mut w, bundle).map_err(|e| format!("{}: {e}", path.display()))?;
    w.write_all(b"\n").and_then(|()| w.flush()).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_patient(args: &Args, name: &str, bundle: &Value, totals: &mut Totals) -> Result<(), String> {
    match args.format {
        Format::Bundle => write_bundle(&args.out.join(format!("{name}.json")), bundle)?,
        Format::Ndjson => {
            let path = args.out.join(format!("{name}.ndjson"));
            let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut w = BufWriter::new(file);
            for resource in demo::flatten::to_resources(bundle) {
                serde_json::to_writer(&mut w, &resource).map_err(|e| format!("{}: {e}", path.display()))?;
                w.write_all(b"\n").map_err(|e| format!("{}: {e}", path.display()))?;
            }
            w.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    totals.patients.add(bundle);
    totals.files += 1;
    Ok(())
}

fn write_manifest(args: &Args, origin: &str, t: &Totals, seconds: f64) -> Result<(), String> {
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, v) in t.shared.by_type.iter().chain(&t.patients.by_type) {
        *by_type.entry(k).or_default() += v;
    }
    let mut text = format!(
        "# loadgen {}\nsource: {origin}\nformat: {:?}\nfiles: {}\npatients: {}\nresources: {}\npatient_resources: {}\nshared_resources: {}\nresources_per_patient: {:.1}\nseconds: {seconds:.1}\n\n# resources by type\n",
        env!("CARGO_PKG_VERSION"),
        args.format,
        t.files,
        t.patients.patients,
        t.shared.resources + t.patients.resources,
        t.patients.resources,
        t.shared.resources,
        t.patients.resources as f64 / t.patients.bundles.max(1) as f64,
    );
    for (k, v) in by_type {
        text.push_str(&format!("{k}: {v}\n"));
    }
    let path = args.out.join("MANIFEST.txt");
    fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: &Path, demo_seed: Option<u64>, format: Format, patients: usize) -> Args {
        Args { source: PathBuf::from("/nonexistent"), demo_seed, patients, out: out.to_owned(), format }
    }

    #[test]
    fn demo_clinic_set_is_written_and_counted() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let out = dir.path().join("set");
        assert_eq!(run(&args(&out, Some(4), Format::Bundle, 3)), Ok(()));
        let mut names: Vec<String> = fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names[0], "00-clinic.json");
        assert_eq!(names.len(), 5, "{names:?}");
        let manifest = fs::read_to_string(out.join("MANIFEST.txt")).unwrap_or_default();
        assert!(manifest.contains("patients: 3\n"), "{manifest}");
        // A second run into the same folder is refused rather than mixing two sets.
        assert!(run(&args(&out, Some(4), Format::Bundle, 3)).is_err());
    }

    #[test]
    fn ndjson_has_one_resource_per_line_and_literal_references() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let out = dir.path().join("nd");
        assert_eq!(run(&args(&out, Some(4), Format::Ndjson, 1)), Ok(()));
        let text = fs::read_to_string(out.join("000001-demo-4.ndjson")).unwrap_or_default();
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert_eq!(lines.len(), text.lines().count());
        assert_eq!(lines[0]["resourceType"], "Patient");
        assert!(!text.contains("urn:uuid:"));
    }

    #[test]
    fn synthea_cycle_names_and_copies() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea");
        assert!(source.exists(), "the Synthea samples must be in ../shared/data/synthea beside the repository");
        let (shared, patients) = scan(&source).expect("the Synthea samples scan");
        assert_eq!(shared.len(), 4);
        assert_eq!(patients.len(), 63);
        let dir = tempfile::tempdir().expect("a temporary folder");
        let out = dir.path().join("s");
        let mut a = args(&out, None, Format::Bundle, 65);
        a.source = source;
        assert_eq!(run(&a), Ok(()));
        let mut names: Vec<String> = fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names[..4].iter().all(|n| n.starts_with("00-")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("000064-") && n.ends_with("-c1.json")));
        assert_eq!(names.len(), 4 + 65 + 1);
    }
}
