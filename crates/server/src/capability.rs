//! `/metadata`: the CapabilityStatement, generated from what the server really supports.

use serde_json::{Value, json};

/// Interactions served for every resource type. Search arrives with the search API and will be
/// listed here when it does.
const TYPE_INTERACTIONS: &[&str] =
    &["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create"];

/// `started` dates the statement: it describes this running instance.
pub fn capability_statement(base_url: &str, started: &str) -> Value {
    let defs = fhir::definitions();
    let resources: Vec<Value> = defs
        .resource_types()
        .map(|t| {
            json!({
                "type": t,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "referencePolicy": ["literal", "local"],
                "operation": [{
                    "name": "validate",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"
                }]
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": "Iaso",
        "kind": "instance",
        "software": {"name": "Iaso", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Iaso FHIR R4 server", "url": base_url},
        "fhirVersion": defs.fhir_version(),
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Conditional interactions accept the _id and identifier parameters until the search API lands.",
            "resource": resources,
            "interaction": [
                {"code": "transaction"},
                {"code": "batch"},
                {"code": "history-system"}
            ]
        }]
    })
}
