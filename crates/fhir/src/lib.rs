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
