use serde_json::{Value, json};

use super::{Patch, PatchErrorKind};
use crate::Error;

/// An `operation` parameter: its type, path and further parts.
fn op(kind: &str, path: &str, parts: Value) -> Value {
    let mut all = vec![json!({"name": "type", "valueCode": kind}), json!({"name": "path", "valueString": path})];
    all.extend(parts.as_array().cloned().unwrap_or_default());
    json!({"name": "operation", "part": all})
}

fn apply(resource: &Value, ops: Vec<Value>) -> Result<Value, Error> {
    Patch::from_parameters(&json!({"resourceType": "Parameters", "parameter": ops}))?.apply(resource)
}

fn applied(resource: &Value, ops: Vec<Value>) -> Value {
    apply(resource, ops).unwrap_or_else(|e| panic!("the patch applies: {e}"))
}

/// Asserts a patch error of `kind` at `operation` whose message contains `text`.
fn fails(result: Result<Value, Error>, kind: PatchErrorKind, operation: &str, text: &str) {
    match result {
        Err(Error::Patch { kind: k, operation: o, message }) => {
            assert_eq!((k, o.as_str()), (kind, operation), "{message}");
            assert!(message.contains(text), "'{message}' does not say '{text}'");
        }
        other => panic!("expected a patch error, got {other:?}"),
    }
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p", "active": true,
           "name": [{"family": "Chalmers", "given": ["Peter", "James"], "_given": [null, {"id": "g1"}]}],
           "gender": "male", "birthDate": "1974-12-25",
           "_birthDate": {"extension": [{"url": "http://example.org/t", "valueString": "x"}]}})
}

const INVALID: PatchErrorKind = PatchErrorKind::Invalid;
const UNPROCESSABLE: PatchErrorKind = PatchErrorKind::Unprocessable;
const FIRST: &str = "Parameters.parameter[0]";

// ---------------------------------------------------------------- replace

#[test]
fn replace_a_primitive_in_place() {
    let out =
        applied(&patient(), vec![op("replace", "Patient.gender", json!([{"name": "value", "valueCode": "female"}]))]);
    assert_eq!(out["gender"], "female");
    let keys: Vec<&String> = out.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(keys[4], "gender", "the element keeps its place");
}

#[test]
fn replace_drops_the_old_extensions_and_takes_the_new() {
    let out = applied(
        &patient(),
        vec![op(
            "replace",
            "Patient.birthDate",
            json!([{"name": "value", "valueDate": "1975", "_valueDate": {"id": "b"}}]),
        )],
    );
    assert_eq!((out["birthDate"].clone(), out["_birthDate"].clone()), (json!("1975"), json!({"id": "b"})));
}

#[test]
fn replace_a_choice_changes_its_json_name() {
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                     "valueQuantity": {"value": 1}, "issued": "2020-01-01T00:00:00Z"});
    let out =
        applied(&obs, vec![op("replace", "Observation.value", json!([{"name": "value", "valueString": "high"}]))]);
    assert_eq!(out["valueString"], "high");
    assert!(out.get("valueQuantity").is_none());
    let keys: Vec<&String> = out.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(keys[3], "valueString");
}

#[test]
fn replace_an_item_of_a_primitive_list_keeps_the_extensions_aligned() {
    let out = applied(
        &patient(),
        vec![op("replace", "Patient.name.given[1]", json!([{"name": "value", "valueString": "Jim"}]))],
    );
    assert_eq!(out["name"][0]["given"], json!(["Peter", "Jim"]));
    assert!(out["name"][0].get("_given").is_none(), "the replaced item's id went with it");
}

#[test]
fn replace_needs_exactly_one_element() {
    let r =
        apply(&patient(), vec![op("replace", "Patient.name.given", json!([{"name": "value", "valueString": "x"}]))]);
    fails(r, UNPROCESSABLE, FIRST, "Multiple elements (2) found at Patient.name.given when replacing");
    let r =
        apply(&patient(), vec![op("replace", "Patient.deceased", json!([{"name": "value", "valueBoolean": true}]))]);
    fails(r, UNPROCESSABLE, FIRST, "No content found at Patient.deceased when replacing");
}

#[test]
fn replace_refuses_a_value_of_the_wrong_type() {
    let r = apply(
        &patient(),
        vec![op("replace", "Patient.gender", json!([{"name": "value", "valueCoding": {"code": "m"}}]))],
    );
    fails(r, UNPROCESSABLE, FIRST, "a Coding does not fit Patient.gender");
}

// ---------------------------------------------------------------- add

#[test]
fn add_a_primitive_and_to_a_list() {
    let out = applied(
        &patient(),
        vec![
            op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "multipleBirthInteger"}, {"name": "value", "valueInteger": 2}]),
            ),
            op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "identifier"}, {"name": "value", "valueIdentifier": {"value": "1"}}]),
            ),
            op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "identifier"}, {"name": "value", "valueIdentifier": {"value": "2"}}]),
            ),
        ],
    );
    assert_eq!(out["multipleBirthInteger"], 2);
    assert_eq!(out["identifier"], json!([{"value": "1"}, {"value": "2"}]));
}

#[test]
fn add_a_choice_by_its_name_and_the_value_type() {
    let out = applied(
        &patient(),
        vec![op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "deceased"}, {"name": "value", "valueBoolean": false}]),
        )],
    );
    assert_eq!(out["deceasedBoolean"], false);
    let r = apply(
        &patient(),
        vec![op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "deceased"}, {"name": "value", "valueString": "no"}]),
        )],
    );
    fails(r, UNPROCESSABLE, FIRST, "string is not one of the types of Patient.deceased[x]");
}

#[test]
fn add_an_anonymous_type_from_parts() {
    let value = json!({"name": "value", "part": [
        {"name": "name", "valueHumanName": {"text": "a name"}},
        {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "1"}},
        {"name": "telecom", "valueContactPoint": {"system": "email", "value": "a@b"}},
        {"name": "gender", "valueCode": "female"}
    ]});
    let out =
        applied(&patient(), vec![op("add", "Patient", json!([{"name": "name", "valueString": "contact"}, value]))]);
    assert_eq!(
        out["contact"],
        json!([{"name": {"text": "a name"}, "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}], "gender": "female"}])
    );
    let typed = json!({"name": "value", "valueHumanName": {"text": "x"}});
    let r = apply(&patient(), vec![op("add", "Patient", json!([{"name": "name", "valueString": "contact"}, typed]))]);
    fails(r, UNPROCESSABLE, FIRST, "anonymous type");
    let twice = json!({"name": "value", "part": [{"name": "gender", "valueCode": "male"}, {"name": "gender", "valueCode": "female"}]});
    let r = apply(&patient(), vec![op("add", "Patient", json!([{"name": "name", "valueString": "contact"}, twice]))]);
    fails(r, UNPROCESSABLE, FIRST, "given twice");
}

#[test]
fn add_an_extension_to_a_primitive() {
    let ext = json!({"name": "value", "valueExtension": {"url": "http://example.org/e", "valueCode": "c"}});
    let out = applied(
        &patient(),
        vec![op("add", "Patient.gender", json!([{"name": "name", "valueString": "extension"}, ext.clone()]))],
    );
    assert_eq!(out["_gender"], json!({"extension": [{"url": "http://example.org/e", "valueCode": "c"}]}));
    let keys: Vec<&String> = out.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(keys[5], "_gender", "right after the value");
    let out = applied(
        &patient(),
        vec![op("add", "Patient.name.given[0]", json!([{"name": "name", "valueString": "extension"}, ext]))],
    );
    assert_eq!(out["name"][0]["_given"][0]["extension"][0]["valueCode"], "c");
    assert_eq!(out["name"][0]["_given"][1], json!({"id": "g1"}));
}

#[test]
fn add_refuses_an_element_that_is_there_or_unknown() {
    let r = apply(
        &patient(),
        vec![op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "gender"}, {"name": "value", "valueCode": "female"}]),
        )],
    );
    fails(r, UNPROCESSABLE, FIRST, "Patient already has gender");
    let r = apply(
        &patient(),
        vec![op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "colour"}, {"name": "value", "valueCode": "blue"}]),
        )],
    );
    fails(r, UNPROCESSABLE, FIRST, "'colour' is not an element of Patient");
    let r = apply(
        &patient(),
        vec![op(
            "add",
            "Patient.link",
            json!([{"name": "name", "valueString": "type"}, {"name": "value", "valueCode": "seealso"}]),
        )],
    );
    fails(r, UNPROCESSABLE, FIRST, "No content found at Patient.link when adding");
}

// ---------------------------------------------------------------- insert

#[test]
fn insert_into_a_list() {
    let p = json!({"resourceType": "Patient", "identifier": [{"value": "1"}, {"value": "2"}]});
    let insert = |index: i64, v: &str| {
        op(
            "insert",
            "Patient.identifier",
            json!([{"name": "index", "valueInteger": index}, {"name": "value", "valueIdentifier": {"value": v}}]),
        )
    };
    let out = applied(&p, vec![insert(0, "a"), insert(3, "z"), insert(2, "m")]);
    let values: Vec<&str> =
        out["identifier"].as_array().into_iter().flatten().filter_map(|i| i["value"].as_str()).collect();
    assert_eq!(values, ["a", "1", "m", "2", "z"]);
    fails(apply(&p, vec![insert(3, "x")]), UNPROCESSABLE, FIRST, "the index 3 is past the end");
    fails(apply(&p, vec![insert(-1, "x")]), INVALID, FIRST, "integer of 0 or more");
}

#[test]
fn insert_into_an_empty_list_names_it_in_its_holder() {
    let p = json!({"resourceType": "Patient", "active": true});
    let value = json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueIdentifier": {"value": "1"}}]);
    let out = applied(&p, vec![op("insert", "Patient.identifier", value.clone())]);
    assert_eq!(out["identifier"], json!([{"value": "1"}]));
    let r = apply(
        &p,
        vec![op(
            "insert",
            "Patient.gender",
            json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueCode": "male"}]),
        )],
    );
    fails(r, UNPROCESSABLE, FIRST, "'gender' is not a repeating element of Patient");
}

#[test]
fn insert_into_a_primitive_list_keeps_the_extensions_aligned() {
    let value = json!([{"name": "index", "valueInteger": 1}, {"name": "value", "valueString": "Ada", "_valueString": {"id": "new"}}]);
    let out = applied(&patient(), vec![op("insert", "Patient.name[0].given", value)]);
    assert_eq!(out["name"][0]["given"], json!(["Peter", "Ada", "James"]));
    assert_eq!(out["name"][0]["_given"], json!([null, {"id": "new"}, {"id": "g1"}]));
}

#[test]
fn insert_needs_the_whole_list() {
    let r = apply(
        &patient(),
        vec![op(
            "insert",
            "Patient.name.given.first()",
            json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueString": "x"}]),
        )],
    );
    fails(r, UNPROCESSABLE, FIRST, "selects 1 of the 2 items");
    let r = apply(
        &patient(),
        vec![op(
            "insert",
            "Patient.gender",
            json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueCode": "male"}]),
        )],
    );
    fails(r, UNPROCESSABLE, FIRST, "does not repeat");
}

// ---------------------------------------------------------------- delete

#[test]
fn delete_an_element_an_item_and_nothing() {
    let out = applied(
        &patient(),
        vec![op("delete", "Patient.birthDate", json!([])), op("delete", "Patient.deceased", json!([]))],
    );
    assert!(out.get("birthDate").is_none() && out.get("_birthDate").is_none(), "the extensions go with the value");
    let out = applied(&patient(), vec![op("delete", "Patient.name.given[0]", json!([]))]);
    assert_eq!(out["name"][0]["given"], json!(["James"]));
    assert_eq!(out["name"][0]["_given"], json!([{"id": "g1"}]));
    let out = applied(&patient(), vec![op("delete", "Patient.name.given[1]", json!([]))]);
    assert_eq!(out["name"][0]["given"], json!(["Peter"]));
    assert!(out["name"][0].get("_given").is_none(), "an all-null extensions array goes");
}

#[test]
fn delete_leaves_no_empty_objects_or_arrays() {
    let p = json!({"resourceType": "Patient", "contact": [{"name": {"text": "a"}, "gender": "male"}], "name": [{"family": "x"}]});
    let out = applied(&p, vec![op("delete", "Patient.contact[0].name.text", json!([]))]);
    assert_eq!(out["contact"], json!([{"gender": "male"}]));
    let out = applied(&p, vec![op("delete", "Patient.name[0].family", json!([]))]);
    assert!(out.get("name").is_none(), "{out}");
    let out = applied(&patient(), vec![op("delete", "Patient.birthDate.extension", json!([]))]);
    assert!(out.get("_birthDate").is_none(), "{out}");
    assert_eq!(out["birthDate"], "1974-12-25");
}

#[test]
fn delete_of_several_is_an_error() {
    let r = apply(&patient(), vec![op("delete", "Patient.name.given", json!([]))]);
    fails(r, UNPROCESSABLE, FIRST, "Multiple elements (2) found at Patient.name.given when deleting");
    let r = apply(&patient(), vec![op("delete", "Patient", json!([]))]);
    fails(r, UNPROCESSABLE, FIRST, "cannot remove the resource itself");
}

// ---------------------------------------------------------------- move

#[test]
fn move_within_a_list() {
    let p = json!({"resourceType": "Patient", "identifier": [{"value": "1"}, {"value": "2"}, {"value": "3"}, {"value": "4"}]});
    let mv = |s: i64, d: i64| {
        op(
            "move",
            "Patient.identifier",
            json!([{"name": "source", "valueInteger": s}, {"name": "destination", "valueInteger": d}]),
        )
    };
    let values = |v: &Value| -> Vec<String> {
        v["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["value"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(values(&applied(&p, vec![mv(3, 1)])), ["1", "4", "2", "3"]);
    assert_eq!(values(&applied(&p, vec![mv(0, 3)])), ["2", "3", "4", "1"]);
    fails(apply(&p, vec![mv(4, 0)]), UNPROCESSABLE, FIRST, "the source index 4 is outside");
    fails(apply(&p, vec![mv(0, 4)]), UNPROCESSABLE, FIRST, "the destination index 4 is outside");
}

#[test]
fn move_carries_the_extensions_along() {
    let mv = op(
        "move",
        "Patient.name[0].given",
        json!([{"name": "source", "valueInteger": 1}, {"name": "destination", "valueInteger": 0}]),
    );
    let out = applied(&patient(), vec![mv]);
    assert_eq!(out["name"][0]["given"], json!(["James", "Peter"]));
    assert_eq!(out["name"][0]["_given"], json!([{"id": "g1"}, null]));
}

// ---------------------------------------------------------------- the document

#[test]
fn malformed_documents_are_invalid_and_name_the_operation() {
    let bad = |ops: Vec<Value>, text: &str, at: &str| {
        fails(apply(&patient(), ops), INVALID, at, text);
    };
    let ok = op("delete", "Patient.gender", json!([]));
    bad(
        vec![ok.clone(), op("remove", "Patient.gender", json!([]))],
        "unknown operation type 'remove'",
        "Parameters.parameter[1]",
    );
    bad(
        vec![json!({"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]})],
        "needs a 'path' part",
        FIRST,
    );
    bad(vec![op("delete", "Patient.name.where(", json!([]))], "is not valid FHIRPath", FIRST);
    bad(vec![op("delete", "Patient.colour", json!([]))], "'colour' is not an element of Patient", FIRST);
    bad(vec![op("replace", "Patient.gender", json!([]))], "needs a 'value' part", FIRST);
    bad(
        vec![op(
            "replace",
            "Patient.gender",
            json!([{"name": "index", "valueInteger": 1}, {"name": "value", "valueCode": "x"}]),
        )],
        "'index' does not belong",
        FIRST,
    );
    bad(
        vec![op("delete", "Patient.gender", json!([{"name": "colour", "valueCode": "x"}]))],
        "unknown part 'colour'",
        FIRST,
    );
    bad(vec![json!({"name": "op"})], "named 'operation' only", FIRST);
    bad(
        vec![op("replace", "Patient.gender", json!([{"name": "value", "valueUnicorn": "x"}]))],
        "names no FHIR data type",
        FIRST,
    );
    let r = Patch::from_parameters(&json!({"resourceType": "Patient"}));
    assert!(matches!(r, Err(Error::Patch { kind: PatchErrorKind::Invalid, .. })));
}

#[test]
fn an_empty_patch_changes_nothing() {
    let patch = Patch::from_parameters(&json!({"resourceType": "Parameters"})).expect("parses");
    assert!(patch.is_empty());
    assert_eq!(patch.apply(&patient()).expect("applies"), patient());
}

#[test]
fn paths_must_select_elements_of_the_resource() {
    let r =
        apply(&patient(), vec![op("replace", "Patient.gender.upper()", json!([{"name": "value", "valueCode": "x"}]))]);
    fails(r, UNPROCESSABLE, FIRST, "selects a computed String value");
    let r = apply(&patient(), vec![op("delete", "Patient.managingOrganization.resolve()", json!([]))]);
    assert!(r.is_ok(), "an unresolved reference selects nothing: {r:?}");
    let with_ref = json!({"resourceType": "Patient", "managingOrganization": {"reference": "Organization/1"}});
    let r = apply(&with_ref, vec![op("delete", "Patient.managingOrganization.resolve()", json!([]))]);
    fails(r, UNPROCESSABLE, FIRST, "outside the resource");
}

#[test]
fn contained_resources_are_reached_through_resolve() {
    let p = json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "name": "Old"}],
                   "managingOrganization": {"reference": "#o"}});
    let out = applied(
        &p,
        vec![op(
            "replace",
            "Patient.managingOrganization.resolve().name",
            json!([{"name": "value", "valueString": "New"}]),
        )],
    );
    assert_eq!(out["contained"][0]["name"], "New");
}

#[test]
fn a_failing_operation_stops_the_patch() {
    let ops = vec![
        op("replace", "Patient.gender", json!([{"name": "value", "valueCode": "female"}])),
        op("replace", "Patient.deceased", json!([{"name": "value", "valueBoolean": true}])),
    ];
    fails(apply(&patient(), ops), UNPROCESSABLE, "Parameters.parameter[1]", "No content found");
}
