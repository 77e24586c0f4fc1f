use serde_json::{Value, json};

use super::*;

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "contained": [{"resourceType": "Organization", "id": "org1", "name": "Acme"}],
        "active": true,
        "name": [
            {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
            {"use": "usual", "given": ["Jim"], "_given": [{"extension": [{"url": "http://x/nick", "valueString": "J"}]}]}
        ],
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "deceasedBoolean": false,
        "managingOrganization": {"reference": "#org1"},
        "generalPractitioner": [{"reference": "Practitioner/7"}]
    })
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "extension": [{"url": "http://example.com/patient-age", "valueAge": {"value": 41, "system": "http://unitsofmeasure.org", "code": "a"}}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/example"},
        "valueQuantity": {"value": 185, "unit": "lbs", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}
    })
}

fn strings(expr: &str, resource: &Value) -> Vec<String> {
    let e = parse(expr).unwrap_or_else(|err| panic!("{expr}: {err}"));
    e.evaluate(&Context::new(resource))
        .unwrap_or_else(|err| panic!("{expr}: {err}"))
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn value(expr: &str) -> Vec<String> {
    strings(expr, &Value::Null)
}

fn truth(expr: &str, resource: &Value) -> Option<bool> {
    let e = parse(expr).unwrap_or_else(|err| panic!("{expr}: {err}"));
    e.evaluate_boolean(&Context::new(resource)).unwrap_or_else(|err| panic!("{expr}: {err}"))
}

fn fails(expr: &str, resource: &Value) -> Error {
    match parse(expr).and_then(|e| e.evaluate(&Context::new(resource))) {
        Err(e) => e,
        Ok(items) => panic!("{expr} gave {items:?}"),
    }
}

fn kind(e: &Error) -> ErrorKind {
    match e {
        Error::FhirPath { kind, .. } => *kind,
        other => panic!("not a FHIRPath error: {other}"),
    }
}

#[test]
fn parses_the_grammar() {
    for ok in [
        "Patient.name.where(use = 'official').given.first()",
        "`Patient`.name.`given`",
        "(1 | 2 | 3).aggregate($this + $total, 0)",
        "name.select(iif($index = 0, given, family))",
        "@2015-02-04T14:34:28.123+10:00 > @T14:00 or 4 days < 1 'wk'",
        "%`vs-administrative-gender` = %'ext-x' and %\"vs-y\".exists()",
        "-Patient.name.count() implies 5 div 2 mod 3 xor true",
        "value is Quantity and (value as Quantity).value > 0 and value.is(FHIR.Quantity)",
        "a in b and b contains a and c ~ d and e !~ f and g != h and i <= j and k >= l",
        "'a' & 'b' + 'c' /* comment */ // line comment",
        "contains.where(as.exists() and in.exists())",
    ] {
        parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    assert_eq!(value("1 + 2 * 3 + 4"), ["11"]);
    assert_eq!(value("(1 | 1 is Integer).count()"), ["2"]);
    assert_eq!(value("'P\\u0065ter\\t'.length()"), ["6"]);
}

#[test]
fn reports_errors_with_their_kind_and_position() {
    let syntax =
        [("2 + 2 /", 7), ("2 + /* open", 4), ("name.", 5), ("'unterminated", 0), ("1 +* 2", 3), ("@T14:34:28Z", 0)];
    for (text, at) in syntax {
        match parse(text) {
            Err(Error::FhirPath { kind: ErrorKind::Syntax, position, .. }) => assert_eq!(position, Some(at), "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    for text in
        ["name.nosuchfunction()", "name.first(1)", "substring()", "iif(true)", "name.is(NoSuchType)", "matches('(')"]
    {
        match parse(text) {
            Err(e) => assert_eq!(kind(&e), ErrorKind::Semantic, "{text}"),
            Ok(_) => panic!("{text} parsed"),
        }
    }
    let message = parse("name.first(1)").map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("first() takes 0 arguments, not 1"), "{message}");
    let p = patient();
    assert_eq!(kind(&fails("name.single()", &p)), ErrorKind::Execution);
    assert_eq!(kind(&fails("(1 | 2) + 1", &p)), ErrorKind::Execution);
    assert_eq!(kind(&fails("1 < 'a'", &p)), ErrorKind::Execution);
    assert_eq!(kind(&fails("%nosuchvariable", &p)), ErrorKind::Execution);
    assert_eq!(kind(&fails("Observation.valueQuantity", &observation())), ErrorKind::Semantic);
}

#[test]
fn hostile_expressions_are_errors_not_crashes() {
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(kind(&parse(&deep).unwrap_err()), ErrorKind::Syntax);
    let chain = vec!["1"; 5000].join(" + ");
    assert_eq!(kind(&parse(&chain).unwrap_err()), ErrorKind::Syntax);
    let path = format!("Patient{}", ".name".repeat(5000));
    assert_eq!(kind(&parse(&path).unwrap_err()), ErrorKind::Syntax);
    let negations = format!("{}1", "-".repeat(5000));
    assert_eq!(kind(&parse(&negations).unwrap_err()), ErrorKind::Syntax);
    let calls = format!("{}{}", "first(".repeat(3000), ")".repeat(3000));
    assert!(parse(&calls).is_err());
    // Runaway growth is bounded.
    let p = patient();
    let r = parse("descendants().descendants().descendants().descendants().descendants().descendants()")
        .and_then(|e| e.evaluate(&Context::new(&p)));
    assert!(r.is_ok() || r.is_err());
    assert_eq!(strings("repeat($this).count()", &p), ["1"]);
    assert!(parse("'x'.matches('(a+)+$')").is_ok());
    assert!(parse(&"a".repeat(100_000)).is_err());
}

#[test]
fn equality_and_equivalence() {
    assert_eq!(value("1 = 1.0"), ["true"]);
    assert_eq!(value("1.10 = 1.1"), ["true"]);
    assert_eq!(value("'a' = 'A'"), ["false"]);
    assert_eq!(value("'a' ~ 'A'"), ["true"]);
    assert_eq!(value("'a  b' ~ 'A B'"), ["true"]);
    assert_eq!(value("{} = {}"), Vec::<String>::new());
    assert_eq!(value("{} ~ {}"), ["true"]);
    assert_eq!(value("(1 | 2) = (2 | 1)"), ["false"]);
    assert_eq!(value("(1 | 2) ~ (2 | 1)"), ["true"]);
    assert_eq!(value("1.2 / 1.8 ~ 0.67"), ["true"]);
    assert_eq!(value("true = 1"), ["false"]);
    let p = patient();
    assert_eq!(strings("name = name", &p), ["true"]);
    assert_eq!(strings("name.first() = name.last()", &p), ["false"]);
    assert_eq!(strings("name.given.distinct().count()", &p), ["3"]);
    assert_eq!(strings("name.given | name.given", &p), ["Peter", "James", "Jim"]);
    assert_eq!(strings("name.given.combine(name.given).count()", &p), ["6"]);
}

#[test]
fn dates_compare_by_precision() {
    assert_eq!(value("@2012-04-15 = @2012-04-15T10:00:00"), Vec::<String>::new());
    assert_eq!(value("@2012-04-15 ~ @2012-04-15T10:00:00"), ["false"]);
    assert_eq!(value("@2012-04-15 = @2012-04-16T10:00:00"), ["false"]);
    assert_eq!(value("@2018-03 < @2018-04-01"), ["true"]);
    assert_eq!(value("@2018-03 < @2018-03-01"), Vec::<String>::new());
    assert_eq!(value("@T10:30 < @T10:30:00"), Vec::<String>::new());
    assert_eq!(value("@2012-04-15T15:00:00+02:00 = @2012-04-15T16:00:00+03:00"), ["true"]);
    assert_eq!(value("@2012-04-15T15:30:31 = @2012-04-15T15:30:31.000"), ["true"]);
    assert_eq!(value("@1973-12-25 + 7 days"), ["1974-01-01"]);
    assert_eq!(value("@2020-01-31 + 1 month"), ["2020-02-29"]);
    assert_eq!(value("@1974-12-25 - 1 'month'"), ["1974-11-25"]);
    assert_eq!(value("@T23:00 + 2 hours"), ["01:00"]);
    assert!(parse("@1973-12-25 + 1 'mo'").and_then(|e| e.evaluate(&Context::empty())).is_err());
    let p = patient();
    assert_eq!(strings("birthDate < today() and birthDate.is(date)", &p), ["true"]);
    assert_eq!(strings("birthDate.toString()", &p), ["1974-12-25"]);
    let fixed = chrono::DateTime::parse_from_rfc3339("2024-05-06T07:08:09.010+02:00").expect("time");
    let e = parse("now().toString() & ' ' & today().toString() & ' ' & timeOfDay().toString()").expect("parse");
    let r = e.evaluate(&Context::empty().with_now(fixed)).expect("eval");
    assert_eq!(r[0].to_string(), "2024-05-06T07:08:09.010+02:00 2024-05-06 07:08:09.010");
}

#[test]
fn quantities_compare_across_units() {
    assert_eq!(value("1 'g' = 1000 'mg'"), ["true"]);
    assert_eq!(value("4 'g' ~ 4040 'mg'"), ["true"]);
    assert_eq!(value("4 'g' = 4040 'mg'"), ["false"]);
    assert_eq!(value("1 '[lb_av]' = 453.59237 'g'"), ["true"]);
    assert_eq!(value("120 'mm[Hg]' > 15 'kPa'"), ["true"]);
    assert_eq!(value("5.5 'mmol/L' = 5500 'umol/L'"), ["true"]);
    assert_eq!(value("1 'cm' = 1 's'"), Vec::<String>::new());
    assert_eq!(value("1 year = 1 'a'"), Vec::<String>::new());
    assert_eq!(value("1 year ~ 1 'a'"), ["true"]);
    assert_eq!(value("2.0 'cm' * 2.0 'm' = 0.040 'm2'"), ["true"]);
    assert_eq!(value("(10 'mg' + 1 'g').toString()"), ["1010 'mg'"]);
    assert_eq!(value("'5 \\'mg\\''.toQuantity('g')"), ["0.005 'g'"]);
    assert_eq!(value("37 'Cel' = 37 'Cel'"), ["true"]);
    assert_eq!(value("37 'Cel' = 310.15 'K'"), Vec::<String>::new());
    let o = observation();
    assert_eq!(strings("Observation.value > 80 'kg'", &o), ["true"]);
    assert_eq!(strings("Observation.value.unit", &o), ["lbs"]);
    assert_eq!(strings("Observation.value is Quantity", &o), ["true"]);
}

#[test]
fn types_come_from_the_definitions() {
    let p = patient();
    let o = observation();
    assert_eq!(strings("Patient.active.type().name", &p), ["boolean"]);
    assert_eq!(strings("Patient.name.first().type().namespace", &p), ["FHIR"]);
    assert_eq!(strings("name.first().use.is(code) and name.first().use.is(string)", &p), ["true"]);
    assert_eq!(strings("name.first().use.as(string)", &p), Vec::<String>::new());
    assert_eq!(strings("deceased.is(boolean)", &p), ["true"]);
    assert_eq!(strings("children().ofType(HumanName).count()", &p), ["2"]);
    assert_eq!(strings("Patient.is(DomainResource) and Patient.is(Resource)", &p), ["true"]);
    assert_eq!(strings("contained.ofType(Organization).name", &p), ["Acme"]);
    assert_eq!(strings("contained.first().is(Organization)", &p), ["true"]);
    let age = "Observation.extension('http://example.com/patient-age').value";
    assert_eq!(strings(&format!("{age} is Age"), &o), ["true"]);
    assert_eq!(strings(&format!("{age} is Quantity"), &o), ["true"]);
    assert_eq!(strings(&format!("{age} is Duration"), &o), ["false"]);
    assert_eq!(strings("Observation.value.ofType(Quantity).value", &o), ["185"]);
}

#[test]
fn primitive_extensions_and_resolve() {
    let p = patient();
    let birth = "birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value";
    assert_eq!(strings(birth, &p), ["1974-12-25T14:35:45-05:00"]);
    assert_eq!(strings("name.given.extension.value", &p), ["J"]);
    assert_eq!(strings("name.given.select($this.hasValue())", &p), ["true", "true", "true"]);
    assert_eq!(strings("managingOrganization.resolve().name", &p), ["Acme"]);
    assert_eq!(strings("generalPractitioner.where(resolve() is Practitioner).count()", &p), ["1"]);
    assert_eq!(strings("generalPractitioner.resolve() is Patient", &p), ["false"]);
    let other = json!({"resourceType": "Practitioner", "id": "7", "name": [{"family": "Who"}]});
    let resolver = |r: &str| (r == "Practitioner/7").then_some(&other);
    let e = parse("generalPractitioner.resolve().name.family").expect("parse");
    let found = e.evaluate(&Context::new(&p).with_resolver(&resolver)).expect("eval");
    assert_eq!(found[0].as_str(), Some("Who"));
}

#[test]
fn strict_mode_refuses_unknown_elements() {
    let p = patient();
    let strict = |text: &str| parse(text).and_then(|e| e.evaluate(&Context::new(&p).strict(true)));
    assert!(strict("name.given1").is_err());
    assert!(strict("Encounter.name").is_err());
    assert!(strict("name.given").is_ok());
    assert!(strict("descendants().family").is_ok());
    assert_eq!(strings("name.given1", &p), Vec::<String>::new());
    assert_eq!(strings("Encounter.name", &p), Vec::<String>::new());
}

#[test]
fn items_borrow_from_the_input() {
    let p = patient();
    let e = parse("name.given").expect("parse");
    let items = e.evaluate(&Context::new(&p)).expect("eval");
    let node = items[0].node().expect("a node");
    assert!(std::ptr::eq(node.json().expect("json"), &p["name"][0]["given"][0]));
    assert_eq!(node.type_name(), "string");
    // The expression is shareable across threads.
    fn shareable<T: Send + Sync + Clone>(_: &T) {}
    shareable(&e);
}

#[test]
fn evaluates_against_a_data_type() {
    let name = json!({"family": "Chalmers", "given": ["Peter"]});
    let e = parse("given.first() & ' ' & family").expect("parse");
    let r = e.evaluate(&Context::typed(&name, "HumanName").expect("type")).expect("eval");
    assert_eq!(r[0].to_string(), "Peter Chalmers");
    assert!(Context::typed(&name, "NoSuchType").is_err());
}

#[test]
fn functions_of_the_library() {
    assert_eq!(value("'abc'.substring(1)"), ["bc"]);
    assert_eq!(value("'a,b'.split(',').join('|')"), ["a|b"]);
    assert_eq!(value("'abc'.replaceMatches('[bc]', 'x')"), ["axx"]);
    assert_eq!(value("'2.5'.toDecimal() * 2"), ["5.0"]);
    assert_eq!(value("(3 | 1 | 2).sort()"), ["1", "2", "3"]);
    assert_eq!(value("(3 | 1 | 2).sort(-$this)"), ["3", "2", "1"]);
    assert_eq!(value("2.power(10) + 10.log(10)"), ["1025"]);
    assert_eq!(value("(1 | 2 | 3).where($this > 1).select($this * 2)"), ["4", "6"]);
    assert_eq!(value("'x'.encode('hex').decode('hex')"), ["x"]);
    assert_eq!(value("1.587.lowBoundary(2) | 1.587.highBoundary(2)"), ["1.58", "1.59"]);
    let p = patient();
    assert_eq!(strings("name.given.trace('given').count()", &p), ["3"]);
    assert_eq!(strings("conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')", &p), ["true"]);
    assert_eq!(
        strings(
            "gender.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')",
            &json!({"resourceType": "Patient", "gender": "male"})
        ),
        ["true"]
    );
    assert!(parse("'x'.memberOf('http://loinc.org/vs')").and_then(|e| e.evaluate(&Context::empty())).is_err());
    assert_eq!(truth("name.exists()", &p), Some(true));
    assert_eq!(truth("name.where(use = 'nickname')", &p), None);
}
