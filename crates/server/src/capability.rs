//! `/metadata`: the CapabilityStatement, generated from what the server really supports.

use fhir::search::{ParamKind, Registry};
use serde_json::{Value, json};

/// Interactions served for every resource type.
const TYPE_INTERACTIONS: &[&str] =
    &["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"];

/// `started` dates the statement: it describes this running instance; `registry` holds the
/// search parameters it indexes.
pub fn capability_statement(base_url: &str, started: &str, registry: &Registry) -> Value {
    let defs = fhir::definitions();
    let resources: Vec<Value> = defs
        .resource_types()
        .map(|t| {
            let params = registry.params(t);
            let search_params: Vec<Value> = params
                .iter()
                .filter(|p| p.kind != ParamKind::Special)
                .map(|p| json!({"name": p.code, "definition": p.url, "type": p.kind.name()}))
                .collect();
            let mut includes = vec![json!("*")];
            includes.extend(
                params.iter().filter(|p| p.kind == ParamKind::Reference).map(|p| json!(format!("{t}:{}", p.code))),
            );
            let mut operations = vec![json!({
                "name": "validate",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"
            })];
            if t == "Patient" {
                operations.push(json!({
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
                }));
            }
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
                "conditionalDelete": "multiple",
                "referencePolicy": ["literal", "logical", "local"],
                "searchInclude": includes,
                "searchRevInclude": ["*"],
                "searchParam": search_params,
                "operation": operations
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
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [
                {"code": "transaction"},
                {"code": "batch"},
                {"code": "history-system"},
                {"code": "search-system"}
            ],
            "searchParam": [
                {"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
                {"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"},
                {"name": "_tag", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-tag"},
                {"name": "_profile", "type": "uri", "definition": "http://hl7.org/fhir/SearchParameter/Resource-profile"},
                {"name": "_security", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-security"},
                {"name": "_source", "type": "uri", "definition": "http://hl7.org/fhir/SearchParameter/Resource-source"},
                {"name": "_content", "type": "string", "definition": "http://hl7.org/fhir/SearchParameter/Resource-content"},
                {"name": "_list", "type": "string", "definition": "http://hl7.org/fhir/SearchParameter/DomainResource-list"},
                {"name": "_type", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-type"}
            ]
        }]
    })
}
