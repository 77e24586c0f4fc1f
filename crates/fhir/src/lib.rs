//! The FHIR R4 engine: the official definitions (embedded, decoded once), validation against
//! them, a FHIRPath engine typed by them, FHIRPath Patch, OperationOutcome, and the links a
//! transaction rewrites. Pure: no I/O.

pub mod codec;
mod definitions;
pub mod fhirpath;
pub mod invariants;
pub mod links;
pub mod model;
pub mod outcome;
pub mod patch;
mod path;
mod primitives;
pub mod search;
pub mod summary;
pub mod validate;

pub use definitions::{Child, Definitions, Node, NodeId, Primitive, TypeClass, ValueSet, definitions};
pub use model::{CompartmentDef, CompartmentResource, SearchComponent, SearchParamDef, TypeDef, TypeKind};

/// The crate's one error type. Validation problems are not errors but [`outcome::Issue`]s; this
/// covers the definitions themselves.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("decompressing the definitions failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("decoding the definitions failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the definitions are inconsistent: {0}")]
    Definitions(String),
    /// A FHIRPath expression that does not parse, means nothing, or fails while evaluating;
    /// `position` is the byte offset in the expression where the parser found the problem.
    #[error("FHIRPath {kind} error{}: {message}", position.map(|p| format!(" at {p}")).unwrap_or_default())]
    FhirPath { kind: fhirpath::ErrorKind, message: String, position: Option<usize> },
    /// A FHIRPath Patch that is malformed or does not apply to the resource; `operation` names
    /// the operation (`Parameters.parameter[2]`).
    #[error("{operation}: {message}")]
    Patch { kind: patch::PatchErrorKind, operation: String, message: String },
}

/// The name this error had before the crate had one error type.
pub type DefinitionsError = Error;

/// The R4 id rule: 1 to 64 letters, digits, `-` and `.`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Data the unit tests share.
#[cfg(test)]
pub(crate) mod test_data {
    use serde_json::Value;

    /// HL7's own conformance resources (StructureDefinitions, ValueSets, CodeSystems,
    /// SearchParameters…, 3,200 of them) from `../shared/data/fhir-r4`, each with a label
    /// `file: Type/id`.
    pub fn conformance_resources() -> Vec<(String, Value)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fhir-r4");
        let mut all = Vec::new();
        for name in [
            "profiles-types.json",
            "profiles-resources.json",
            "valuesets.json",
            "search-parameters.json",
            "extension-definitions.json",
        ] {
            let path = dir.join(name);
            let text = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (these tests need ../shared/data)", path.display()));
            let bundle: Value = serde_json::from_slice(&text).expect("json");
            for e in bundle["entry"].as_array().expect("entries") {
                let r = &e["resource"];
                all.push((format!("{name}: {}/{}", r["resourceType"], r["id"]), r.clone()));
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert!(super::is_valid_id("a-B.9"));
        assert!(!super::is_valid_id(""));
        assert!(!super::is_valid_id("a_b"));
        assert!(!super::is_valid_id(&"x".repeat(65)));
    }
}
