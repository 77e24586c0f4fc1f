//! Every FHIRPath expression the R4 definitions carry (search parameters and invariants)
//! parses, and evaluates without error on the official examples and Synthea data.

use fhir::fhirpath::{self, Context};

#[test]
fn every_definition_expression_parses() {
    let defs = fhir::definitions();
    let mut failures = Vec::new();
    let mut count = 0;
    for sp in defs.all_search_params() {
        for expr in sp.expression.iter().chain(sp.components.iter().map(|c| &c.expression)) {
            count += 1;
            if let Err(e) = fhirpath::parse(expr) {
                failures.push(format!("search parameter {}: {expr}: {e}", sp.url));
            }
        }
    }
    for t in defs.types() {
        for e in &t.elements {
            for c in &e.constraints {
                count += 1;
                if let Err(err) = fhirpath::parse(&c.expression) {
                    failures.push(format!("{} {}: {}: {err}", e.path, c.key, c.expression));
                }
            }
        }
    }
    assert!(count > 2000, "{count}");
    assert!(failures.is_empty(), "{} of {count} do not parse:\n{}", failures.len(), failures.join("\n"));
}

fn sample_resources() -> Vec<serde_json::Value> {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(shared.is_dir(), "the shared data folder is missing: {}", shared.display());
    let mut out = Vec::new();
    for dir in
        ["synthea/smart-on-fhir-r4", "synthea/synthea-2020-iris", "synthea/synthea-3x-wasee11", "fhirpath-tests/input"]
    {
        let mut files: Vec<_> = std::fs::read_dir(shared.join(dir))
            .expect("data dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files.into_iter().take(4) {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("json");
            match v.get("entry").and_then(|e| e.as_array()) {
                Some(entries) => out.extend(entries.iter().filter_map(|e| e.get("resource").cloned())),
                None => out.push(v),
            }
        }
    }
    out
}

#[test]
fn search_parameters_and_invariants_evaluate_on_real_data() {
    let defs = fhir::definitions();
    let resources = sample_resources();
    assert!(resources.len() > 500, "{}", resources.len());
    let mut compiled = std::collections::HashMap::new();
    let mut errors = std::collections::BTreeMap::new();
    let mut evaluations = 0;
    for r in &resources {
        let Some(rt) = r.get("resourceType").and_then(|t| t.as_str()) else { continue };
        let ctx = Context::new(r);
        let mut exprs: Vec<String> = defs.search_params(rt).iter().filter_map(|p| p.expression.clone()).collect();
        if let Some(t) = defs.type_def(rt) {
            exprs.extend(
                t.elements.first().into_iter().flat_map(|e| e.constraints.iter().map(|c| c.expression.clone())),
            );
        }
        for text in exprs {
            let expr = compiled.entry(text.clone()).or_insert_with(|| fhirpath::parse(&text).expect("parses"));
            evaluations += 1;
            if let Err(e) = expr.evaluate(&ctx) {
                errors.entry(text).or_insert_with(|| format!("{rt}: {e}"));
            }
        }
    }
    assert!(evaluations > 10_000, "{evaluations}");
    let report: Vec<String> = errors.iter().map(|(k, v)| format!("{k}\n    {v}")).collect();
    assert!(errors.is_empty(), "{} expressions failed:\n{}", errors.len(), report.join("\n"));
}
