//! Deterministic FHIR R4 demo and load data, as plain `serde_json` values (no I/O):
//!
//! - [`demo_clinic`]: a generated clinic and its patients as transaction Bundles;
//! - [`multiply::multiply_bundle`]: copies of a Synthea patient Bundle under fresh ids, so a
//!   few dozen real-looking patients become as many as a benchmark needs;
//! - [`flatten::to_resources`]: a transaction Bundle as stand-alone resources (for NDJSON).
//!
//! Same inputs, byte-identical output: ids are hashes of the inputs, random choices come from
//! ChaCha8 streams seeded from them, and dates count back from [`REFERENCE_DATE`].

mod catalog;
mod clinic;
mod dice;
mod fhir_json;
pub mod flatten;
mod ids;
pub mod multiply;

use std::collections::BTreeMap;

use serde_json::Value;

pub use clinic::{
    LOCATION_SYSTEM, LOCATION_VALUE, MRN_SYSTEM, ORGANIZATION_NAME, ORGANIZATION_SYSTEM, ORGANIZATION_VALUE,
    REFERENCE_DATE, ROLE_SYSTEM, clinic_bundle, demo_clinic, patient_bundle,
};

/// Counts over a set of Bundles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub bundles: usize,
    /// Bundles holding a Patient.
    pub patients: usize,
    pub resources: usize,
    pub by_type: BTreeMap<String, usize>,
}

impl Summary {
    /// Adds one Bundle's entries, so a caller can count while streaming.
    pub fn add(&mut self, bundle: &Value) {
        self.bundles += 1;
        let mut patient = false;
        for resource in
            bundle.get("entry").and_then(Value::as_array).into_iter().flatten().filter_map(|e| e.get("resource"))
        {
            let rt = resource.get("resourceType").and_then(Value::as_str).unwrap_or("(none)");
            patient |= rt == "Patient";
            self.resources += 1;
            *self.by_type.entry(rt.to_owned()).or_default() += 1;
        }
        if patient {
            self.patients += 1;
        }
    }
}

/// Counts of what [`demo_clinic`] (or any list of Bundles) holds.
pub fn demo_summary(bundles: &[Value]) -> Summary {
    let mut s = Summary::default();
    for b in bundles {
        s.add(b);
    }
    s
}
