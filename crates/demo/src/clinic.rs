//! The Iaso demo clinic: one transaction Bundle with the clinic itself (Organization, Location,
//! Practitioners, PractitionerRoles) and one transaction Bundle per patient with a few years of
//! primary care. Patient bundles point at the clinic through conditional references, so they
//! load after the clinic bundle on any server and never duplicate it.
//!
//! Everything is a pure function of `(seed, index)`: dates count back from [`REFERENCE_DATE`],
//! not the clock, and each patient draws from its own random stream.

use chrono::{Datelike, NaiveDate, TimeDelta};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog::{self, Allergy, Analyte, BCP47, CVX, Culture, LOINC, NPI, PROBLEMS, Problem, RXNORM, SNOMED};
use crate::dice::Dice;
use crate::fhir_json::{Stamp, coding, concept, concept_text, day, decimal, quantity, reference, urn};
use crate::ids::uuid_from;

/// "Today" for the generator: every date lies in the five years before it.
pub const REFERENCE_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2026, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

pub const ORGANIZATION_NAME: &str = "Iaso Demo Clinic";
pub const ORGANIZATION_SYSTEM: &str = "https://iaso.example.org/demo-clinic/organization";
pub const ORGANIZATION_VALUE: &str = "iaso-demo-clinic";
pub const LOCATION_SYSTEM: &str = "https://iaso.example.org/demo-clinic/location";
pub const LOCATION_VALUE: &str = "main-site";
pub const MRN_SYSTEM: &str = "https://iaso.example.org/demo-clinic/mrn";
pub const ROLE_SYSTEM: &str = "https://iaso.example.org/demo-clinic/practitioner-role";

const LOCATION_NAME: &str = "Iaso Demo Clinic - Main Site";
const HISTORY_DAYS: i64 = 5 * 365 + 1;
const CLINIC_PHONE: &str = "617-555-0100";

const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// The clinic bundle followed by `patients` patient bundles.
pub fn demo_clinic(seed: u64, patients: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(patients + 1);
    out.push(clinic_bundle(seed));
    out.extend((0..patients).map(|i| patient_bundle(seed, i)));
    out
}

fn organization_ref() -> String {
    format!("Organization?identifier={ORGANIZATION_SYSTEM}|{ORGANIZATION_VALUE}")
}

fn location_ref() -> String {
    format!("Location?identifier={LOCATION_SYSTEM}|{LOCATION_VALUE}")
}

fn id_for(seed: u64, label: &str) -> Uuid {
    uuid_from(&[b"iaso-demo", &seed.to_le_bytes(), label.as_bytes()])
}

fn entry(id: &Uuid, resource: Value) -> Value {
    let rt = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_owned();
    json!({"fullUrl": urn(id), "resource": resource, "request": {"method": "POST", "url": rt}})
}

/// An entry created only when no resource with that identifier exists, so the clinic bundle
/// can be loaded again (or with another seed) without duplicating the clinic.
fn entry_once(id: &Uuid, resource: Value, system: &str, value: &str) -> Value {
    let mut e = entry(id, resource);
    e["request"]["ifNoneExist"] = json!(format!("identifier={system}|{value}"));
    e
}

fn transaction(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn clinic_address() -> Value {
    json!({"use": "work", "type": "both", "line": ["120 Hygieia Street"], "city": "Cambridge", "state": "MA",
           "postalCode": "02139", "country": "US"})
}

/// One of the clinic's clinicians, as patient bundles need them (NPI and display).
struct Clinician {
    id: Uuid,
    role_id: Uuid,
    npi: String,
    given: String,
    family: String,
    gender: &'static str,
    staff: &'static catalog::Staff,
}

impl Clinician {
    fn display(&self) -> String {
        match self.staff.qualification.0 {
            "NP" => format!("{} {}, NP", self.given, self.family),
            _ => format!("Dr. {} {}", self.given, self.family),
        }
    }

    fn conditional(&self) -> String {
        format!("Practitioner?identifier={NPI}|{}", self.npi)
    }

    fn reference(&self) -> Value {
        reference(&self.conditional(), &self.display())
    }
}

/// NPIs carry a Luhn check digit computed over the `80840` prefix + the 9 base digits.
fn npi_with_check(base: &str) -> String {
    let digits: Vec<u32> = format!("80840{base}").chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{base}{}", (10 - sum % 10) % 10)
}

fn clinicians(seed: u64) -> Vec<Clinician> {
    let mut d = Dice::new(seed, "staff");
    let mut out: Vec<Clinician> = Vec::new();
    for (i, staff) in catalog::STAFF.iter().enumerate() {
        let culture = d.pick(catalog::CULTURES);
        let female = d.chance(50);
        let given = d.pick(if female { culture.female } else { culture.male }).to_string();
        let family = d.pick(culture.family).to_string();
        let npi = loop {
            let base = format!("1{:08}", d.below(100_000_000));
            let npi = npi_with_check(&base);
            if out.iter().all(|c| c.npi != npi) {
                break npi;
            }
        };
        out.push(Clinician {
            id: id_for(seed, &format!("practitioner/{i}")),
            role_id: id_for(seed, &format!("practitioner-role/{i}")),
            npi,
            given,
            family,
            gender: if female { "female" } else { "male" },
            staff,
        });
    }
    out
}

fn ascii_lower(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            'á' | 'à' | 'ą' | 'ä' => Some('a'),
            'é' | 'è' | 'ę' => Some('e'),
            'í' => Some('i'),
            'ó' | 'ö' => Some('o'),
            'ú' | 'ü' => Some('u'),
            'ñ' | 'ń' => Some('n'),
            'ł' => Some('l'),
            'ś' => Some('s'),
            'ź' | 'ż' => Some('z'),
            'ć' => Some('c'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The clinic bundle: Organization, Location, six Practitioners and their PractitionerRoles.
pub fn clinic_bundle(seed: u64) -> Value {
    let org_id = id_for(seed, "organization");
    let loc_id = id_for(seed, "location");
    let mut entries = vec![
        entry_once(
            &org_id,
            json!({
                "resourceType": "Organization",
                "id": org_id.to_string(),
                "identifier": [{"use": "official", "system": ORGANIZATION_SYSTEM, "value": ORGANIZATION_VALUE}],
                "active": true,
                "type": [concept_text("http://terminology.hl7.org/CodeSystem/organization-type", "prov",
                                      "Healthcare Provider", "Healthcare Provider")],
                "name": ORGANIZATION_NAME,
                "telecom": [
                    {"system": "phone", "value": CLINIC_PHONE, "use": "work"},
                    {"system": "email", "value": "frontdesk@iaso-demo.example.org", "use": "work"},
                    {"system": "url", "value": "https://iaso-demo.example.org", "use": "work"}
                ],
                "address": [clinic_address()]
            }),
            ORGANIZATION_SYSTEM,
            ORGANIZATION_VALUE,
        ),
        entry_once(
            &loc_id,
            json!({
                "resourceType": "Location",
                "id": loc_id.to_string(),
                "identifier": [{"system": LOCATION_SYSTEM, "value": LOCATION_VALUE}],
                "status": "active",
                "name": LOCATION_NAME,
                "mode": "instance",
                "type": [concept_text("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "GIM",
                                      "General internal medicine clinic", "Primary care clinic")],
                "telecom": [{"system": "phone", "value": CLINIC_PHONE, "use": "work"}],
                "address": clinic_address(),
                "physicalType": concept("http://terminology.hl7.org/CodeSystem/location-physical-type", "bu", "Building"),
                "position": {"longitude": decimal(-711_034, 4), "latitude": decimal(423_651, 4)},
                "managingOrganization": reference(&urn(&org_id), ORGANIZATION_NAME)
            }),
            LOCATION_SYSTEM,
            LOCATION_VALUE,
        ),
    ];
    let staff = clinicians(seed);
    for c in &staff {
        let (qual_code, qual_display) = c.staff.qualification;
        let mut name = json!({"use": "official", "family": c.family, "given": [c.given]});
        if qual_code == "NP" {
            name["suffix"] = json!(["NP"]);
        } else {
            name["prefix"] = json!(["Dr."]);
            name["suffix"] = json!([qual_code]);
        }
        let email = format!("{}.{}@iaso-demo.example.org", ascii_lower(&c.given), ascii_lower(&c.family));
        entries.push(entry_once(
            &c.id,
            json!({
                "resourceType": "Practitioner",
                "id": c.id.to_string(),
                "identifier": [{"system": NPI, "value": c.npi}],
                "active": true,
                "name": [name],
                "telecom": [
                    {"system": "phone", "value": CLINIC_PHONE, "use": "work"},
                    {"system": "email", "value": email, "use": "work"}
                ],
                "address": [clinic_address()],
                "gender": c.gender,
                "qualification": [{
                    "code": concept_text("http://terminology.hl7.org/CodeSystem/v2-0360|2.7", qual_code,
                                         qual_display, qual_display),
                    "issuer": {"display": "Commonwealth of Massachusetts Board of Registration in Medicine"}
                }]
            }),
            NPI,
            &c.npi,
        ));
    }
    for c in &staff {
        let role_value = format!("role-{}", c.npi);
        let (spec_code, spec_display) = c.staff.specialty;
        let (role_code, role_display) = c.staff.role;
        entries.push(entry_once(
            &c.role_id,
            json!({
                "resourceType": "PractitionerRole",
                "id": c.role_id.to_string(),
                "identifier": [{"system": ROLE_SYSTEM, "value": role_value}],
                "active": true,
                "practitioner": reference(&urn(&c.id), &c.display()),
                "organization": reference(&urn(&org_id), ORGANIZATION_NAME),
                "code": [concept("http://terminology.hl7.org/CodeSystem/practitioner-role", role_code, role_display)],
                "specialty": [concept_text(SNOMED, spec_code, spec_display, spec_display)],
                "location": [reference(&urn(&loc_id), LOCATION_NAME)],
                "telecom": [{"system": "phone", "value": CLINIC_PHONE, "use": "work"}],
                "availableTime": [{
                    "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
                    "availableStartTime": "08:00:00",
                    "availableEndTime": "17:00:00"
                }]
            }),
            ROLE_SYSTEM,
            &role_value,
        ));
    }
    transaction(entries)
}

/// A condition as planned, before it becomes a resource.
struct Plan {
    id: Uuid,
    problem: &'static Problem,
    /// The encounter it was diagnosed at, if any; otherwise long-standing since `onset`.
    diagnosed_at: Option<usize>,
    onset: Stamp,
    abated: Option<Stamp>,
}

impl Plan {
    fn is(&self, snomed: &str) -> bool {
        self.problem.snomed == snomed
    }

    fn active_at(&self, when: Stamp) -> bool {
        self.onset <= when && self.abated.is_none_or(|a| when <= a)
    }
}

const HYPERTENSION: &str = "38341003";
const DIABETES: &str = "44054006";
const PREDIABETES: &str = "15777000";
const HYPERLIPIDEMIA: &str = "55822004";
const OBESITY: &str = "162864005";
const AFIB: &str = "49436004";

/// Which clinician (index into `STAFF`) follows a problem up, if a specialist does.
fn specialist_for(snomed: &str) -> Option<usize> {
    match snomed {
        DIABETES | PREDIABETES => Some(2),
        HYPERTENSION | AFIB | "53741008" => Some(3),
        "195967001" | "13645005" => Some(4),
        _ => None,
    }
}

/// Everything one patient bundle is built from, so the resource builders stay small.
struct Chart {
    seed: u64,
    index: usize,
    d: Dice,
    patient: String,
    patient_display: String,
    entries: Vec<Value>,
    serial: usize,
}

impl Chart {
    fn next_id(&mut self, kind: &str) -> Uuid {
        self.serial += 1;
        id_for(self.seed, &format!("patient/{}/{kind}/{}", self.index, self.serial))
    }

    fn subject(&self) -> Value {
        reference(&self.patient, &self.patient_display)
    }

    fn push(&mut self, id: &Uuid, resource: Value) {
        self.entries.push(entry(id, resource));
    }
}

/// One patient's transaction bundle. Patient `index` is the same whatever the patient count.
pub fn patient_bundle(seed: u64, index: usize) -> Value {
    let staff = clinicians(seed);
    let mut d = Dice::new(seed, &format!("patient/{index}"));
    let culture: &Culture = d.pick(catalog::CULTURES);
    let female = d.chance(52);
    let givens = if female { culture.female } else { culture.male };
    let mut given = vec![d.pick(givens).to_string()];
    if d.chance(35) {
        let middle = d.pick(givens).to_string();
        if middle != given[0] {
            given.push(middle);
        }
    }
    let family = d.pick(culture.family).to_string();
    let age = d.range(18, 89);
    let birth = REFERENCE_DATE - TimeDelta::days(age * 365 + age / 4 + d.range(1, 364));
    let (marital_code, marital_display) = *d.pick(catalog::MARITAL);
    let prefix = match (female, marital_code) {
        (false, _) => "Mr.",
        (true, "M" | "W") => "Mrs.",
        (true, _) => "Ms.",
    };
    let display = format!("{prefix} {} {family}", given.join(" "));
    let patient_id = id_for(seed, &format!("patient/{index}"));
    let primary = &staff[*d.pick(&[0usize, 1, 5])];

    let mut chart =
        Chart { seed, index, d, patient: urn(&patient_id), patient_display: display, entries: Vec::new(), serial: 0 };

    // Encounters first, as dates: conditions, vitals and labs hang off them.
    let n_enc = chart.d.count(3, 8);
    let visits: Vec<Stamp> = chart
        .d
        .distinct(HISTORY_DAYS as usize - 1, n_enc)
        .into_iter()
        .map(|offset| {
            let date = REFERENCE_DATE - TimeDelta::days(HISTORY_DAYS - 1 - offset as i64);
            Stamp { date, minute: 8 * 60 + 15 * chart.d.range(0, 34) }
        })
        .collect();
    let adult = birth + TimeDelta::days(18 * 365 + 5);

    let n_cond = chart.d.count(2, 5);
    let mut plans: Vec<Plan> = Vec::new();
    for p in chart.d.distinct(PROBLEMS.len(), n_cond) {
        let problem = &PROBLEMS[p];
        let long_standing = problem.chronic && chart.d.chance(60);
        let (diagnosed_at, onset) = if long_standing {
            let back = chart.d.range(60, 8 * 365);
            let date = (visits[0].date - TimeDelta::days(back)).max(adult);
            (None, Stamp { date, minute: 0 })
        } else {
            let k = chart.d.count(0, visits.len() - 1);
            (Some(k), visits[k].plus(20))
        };
        let abated = (!problem.chronic).then(|| onset.plus(chart.d.range(10, 28) * 1440));
        let abated = abated.filter(|a| a.date < REFERENCE_DATE);
        plans.push(Plan { id: chart.next_id("condition"), problem, diagnosed_at, onset, abated });
    }
    let has = |code: &str| plans.iter().any(|p| p.is(code));
    let (diabetic, prediabetic, lipids, hypertensive, obese) =
        (has(DIABETES), has(PREDIABETES), has(HYPERLIPIDEMIA), has(HYPERTENSION), has(OBESITY));

    // Patient.
    let (lang_code, lang_display) = culture.language;
    let (city, state, zip) = *chart.d.pick(catalog::CITIES);
    let street = format!("{} {}", chart.d.range(3, 480), chart.d.pick(catalog::STREETS));
    let phone = format!("617-555-01{:02}", chart.d.below(100));
    let email = format!("{}.{}{}@example.com", ascii_lower(&given[0]), ascii_lower(&family), chart.d.range(1, 99));
    let mrn = format!("{:04X}-{:06}", (crate::ids::hash128(&[&seed.to_le_bytes()]) & 0xFFFF) as u16, index + 1);
    let mut name = json!({"use": "official", "family": family, "given": given, "prefix": [prefix]});
    name["text"] = json!(format!("{} {family}", given.join(" ")));
    let patient = json!({
        "resourceType": "Patient",
        "id": patient_id.to_string(),
        "identifier": [{
            "use": "usual",
            "type": concept_text("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical Record Number",
                                 "Medical Record Number"),
            "system": MRN_SYSTEM,
            "value": mrn,
            "assigner": reference(&organization_ref(), ORGANIZATION_NAME)
        }],
        "active": true,
        "name": [name],
        "telecom": [
            {"system": "phone", "value": phone, "use": if chart.d.chance(70) { "mobile" } else { "home" }},
            {"system": "email", "value": email, "use": "home"}
        ],
        "gender": if female { "female" } else { "male" },
        "birthDate": day(birth),
        "address": [{"use": "home", "type": "both", "line": [street], "city": city, "state": state,
                     "postalCode": zip, "country": "US"}],
        "maritalStatus": concept_text("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", marital_code,
                                      marital_display, marital_display),
        "communication": [{"language": concept_text(BCP47, lang_code, lang_display, lang_display), "preferred": true}],
        "generalPractitioner": [primary.reference()],
        "managingOrganization": reference(&organization_ref(), ORGANIZATION_NAME)
    });
    chart.push(&patient_id, patient);

    // Conditions.
    for plan in &plans {
        let mut c = json!({
            "resourceType": "Condition",
            "id": plan.id.to_string(),
            "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical",
                if plan.abated.is_some() { "resolved" } else { "active" },
                if plan.abated.is_some() { "Resolved" } else { "Active" }),
            "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed",
                                          "Confirmed"),
            "category": [if plan.problem.chronic {
                concept("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item",
                        "Problem List Item")
            } else {
                concept("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis",
                        "Encounter Diagnosis")
            }],
            "code": concept_text(SNOMED, plan.problem.snomed, plan.problem.display, plan.problem.text),
            "subject": chart.subject()
        });
        let recorded = match plan.diagnosed_at {
            Some(_) => plan.onset,
            None => visits[0],
        };
        if let Some(k) = plan.diagnosed_at {
            c["encounter"] = json!({"reference": urn(&encounter_id(&chart, k))});
            c["onsetDateTime"] = json!(plan.onset.at());
        } else {
            c["onsetDateTime"] = json!(day(plan.onset.date));
        }
        if let Some(a) = plan.abated {
            c["abatementDateTime"] = json!(day(a.date));
        }
        c["recordedDate"] = json!(recorded.at());
        c["recorder"] = primary.reference();
        chart.push(&plan.id, c);
    }

    // Encounters with their vital signs, labs and immunizations.
    let height = if female { chart.d.range(1520, 1750) } else { chart.d.range(1650, 1920) };
    let bmi_base = if obese { chart.d.range(300, 380) } else { chart.d.range(200, 295) };
    let weight_base = bmi_base * height * height / 1_000_000;
    let (sys_base, dia_base) = if hypertensive {
        (chart.d.range(135, 155), chart.d.range(85, 98))
    } else {
        (chart.d.range(106, 128), chart.d.range(66, 82))
    };
    let mut flu_seasons: Vec<i32> = Vec::new();
    let mut vaccines_given: Vec<&str> = Vec::new();
    let mut labs_done = false;
    for (k, &start) in visits.iter().enumerate() {
        let enc_id = encounter_id(&chart, k);
        let acute_here = plans.iter().find(|p| p.diagnosed_at == Some(k) && !p.problem.chronic);
        let reasons: Vec<&Plan> = {
            let diagnosed: Vec<&Plan> = plans.iter().filter(|p| p.diagnosed_at == Some(k)).collect();
            if diagnosed.is_empty() {
                plans.iter().filter(|p| p.problem.chronic && p.active_at(start)).take(2).collect()
            } else {
                diagnosed
            }
        };
        let kind = if acute_here.is_some() {
            catalog::SYMPTOM
        } else if k == 0 || reasons.is_empty() || chart.d.chance(40) {
            catalog::CHECK_UP
        } else {
            catalog::FOLLOW_UP
        };
        let clinician = match reasons.first().and_then(|p| specialist_for(p.problem.snomed)) {
            Some(s) if kind == catalog::FOLLOW_UP && chart.d.chance(50) => &staff[s],
            _ => primary,
        };
        let end = start.plus(*chart.d.pick(&[15, 20, 30, 45]));
        let period = json!({"start": start.at(), "end": end.at()});
        let mut enc = json!({
            "resourceType": "Encounter",
            "id": enc_id.to_string(),
            "status": "finished",
            "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
            "type": [concept_text(SNOMED, kind.0, kind.1, kind.1)],
            "subject": chart.subject(),
            "participant": [{
                "type": [concept_text("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PPRF",
                                      "primary performer", "primary performer")],
                "period": period,
                "individual": clinician.reference()
            }],
            "period": period
        });
        if !reasons.is_empty() {
            enc["reasonReference"] =
                Value::Array(reasons.iter().map(|p| reference(&urn(&p.id), p.problem.text)).collect());
        }
        enc["location"] = json!([{"location": reference(&location_ref(), LOCATION_NAME)}]);
        enc["serviceProvider"] = reference(&organization_ref(), ORGANIZATION_NAME);
        chart.push(&enc_id, enc);

        // Vital signs: the R4 vital-signs profiles' codes and UCUM units.
        let at = start.plus(5);
        let weight = weight_base + chart.d.range(-25, 25);
        let bmi = (2 * weight * 1_000_000 + height * height) / (2 * height * height);
        let systolic = sys_base + chart.d.range(-8, 8);
        let diastolic = dia_base + chart.d.range(-5, 5);
        let fever = acute_here.is_some() && chart.d.chance(60);
        let temp = if fever { chart.d.range(995, 1016) } else { chart.d.range(972, 991) };
        let afib = plans.iter().any(|p| p.is(AFIB) && p.active_at(start));
        let pulse = if afib { chart.d.range(78, 112) } else { chart.d.range(58, 92) };
        let mut bp = vital(
            &mut chart,
            &enc_id,
            at,
            "bp",
            "85354-9",
            "Blood pressure panel with all children optional",
            "Blood pressure",
        );
        bp["component"] = json!([
            {"code": concept_text(LOINC, "8480-6", "Systolic blood pressure", "Systolic blood pressure"),
             "valueQuantity": quantity(systolic, 0, "mmHg", "mm[Hg]")},
            {"code": concept_text(LOINC, "8462-4", "Diastolic blood pressure", "Diastolic blood pressure"),
             "valueQuantity": quantity(diastolic, 0, "mmHg", "mm[Hg]")}
        ]);
        if systolic >= 140 || diastolic >= 90 {
            bp["interpretation"] = json!([concept_text(INTERPRETATION, "H", "High", "High")]);
        }
        push_observation(&mut chart, bp);
        let readings: [(&str, &str, &str, &str, Value); 5] = [
            ("heartrate", "8867-4", "Heart rate", "Heart rate", quantity(pulse, 0, "beats/minute", "/min")),
            ("bodyweight", "29463-7", "Body weight", "Body weight", quantity(weight, 1, "kg", "kg")),
            ("bodyheight", "8302-2", "Body height", "Body height", quantity(height, 1, "cm", "cm")),
            ("bmi", "39156-5", "Body mass index (BMI) [Ratio]", "BMI", quantity(bmi, 1, "kg/m2", "kg/m2")),
            ("bodytemp", "8310-5", "Body temperature", "Body temperature", quantity(temp, 1, "degF", "[degF]")),
        ];
        for (profile, code, display, text, value) in readings {
            let mut o = vital(&mut chart, &enc_id, at, profile, code, display, text);
            o["valueQuantity"] = value;
            push_observation(&mut chart, o);
        }

        // Labs at the first visit, then at about half of the follow-ups and check-ups.
        let want_labs = acute_here.is_none() && (!labs_done || chart.d.chance(45));
        if want_labs {
            labs_done = true;
            let drawn = start.plus(15);
            let issued = start.plus(240);
            let glucose = if diabetic {
                chart.d.range(130, 230)
            } else if prediabetic {
                chart.d.range(100, 125)
            } else {
                chart.d.range(72, 104)
            };
            let creatinine = if age > 70 { chart.d.range(80, 150) } else { chart.d.range(60, 118) };
            let bmp = [
                (&catalog::GLUCOSE, glucose),
                (&catalog::UREA, chart.d.range(7, 23)),
                (&catalog::CREATININE, creatinine),
                (&catalog::SODIUM, chart.d.range(134, 145)),
                (&catalog::POTASSIUM, chart.d.range(34, 52)),
            ];
            lab_panel(&mut chart, &enc_id, drawn, issued, catalog::METABOLIC_PANEL, &bmp);
            if k == 0 || lipids || chart.d.chance(50) {
                let ldl = if lipids { chart.d.range(130, 195) } else { chart.d.range(62, 128) };
                let hdl = chart.d.range(34, 78);
                let tg = if lipids { chart.d.range(140, 260) } else { chart.d.range(60, 170) };
                let lipid = [
                    (&catalog::CHOLESTEROL, ldl + hdl + tg / 5),
                    (&catalog::LDL, ldl),
                    (&catalog::HDL, hdl),
                    (&catalog::TRIGLYCERIDES, tg),
                ];
                lab_panel(&mut chart, &enc_id, drawn, issued, catalog::LIPID_PANEL, &lipid);
            }
            if diabetic || prediabetic || chart.d.chance(20) {
                let a1c = if diabetic {
                    chart.d.range(65, 96)
                } else if prediabetic {
                    chart.d.range(57, 64)
                } else {
                    chart.d.range(46, 56)
                };
                let id = chart.next_id("observation");
                let o = lab(&chart, &id, &enc_id, drawn, issued, &catalog::HBA1C, a1c);
                chart.push(&id, o);
            }
        }

        // Immunizations: one flu shot per season (September to December), others once.
        let age_now = (start.date - birth).num_days() / 365;
        let mut shots: Vec<(&str, &str)> = Vec::new();
        if start.date.month() >= 9 && !flu_seasons.contains(&start.date.year()) && chart.d.chance(75) {
            flu_seasons.push(start.date.year());
            shots.push(catalog::FLU);
        }
        for &(code, display, min_age) in catalog::OTHER_VACCINES {
            if age_now >= min_age && !vaccines_given.contains(&code) && chart.d.chance(12) {
                vaccines_given.push(code);
                shots.push((code, display));
            }
        }
        for (code, display) in shots {
            let id = chart.next_id("immunization");
            let lot = format!("{}{}", &code.chars().take(1).collect::<String>(), chart.d.range(10_000, 99_999));
            let imm = json!({
                "resourceType": "Immunization",
                "id": id.to_string(),
                "status": "completed",
                "vaccineCode": concept_text(CVX, code, display, display),
                "patient": chart.subject(),
                "encounter": {"reference": urn(&enc_id)},
                "occurrenceDateTime": start.plus(25).at(),
                "primarySource": true,
                "location": reference(&location_ref(), LOCATION_NAME),
                "lotNumber": lot,
                "performer": [{
                    "function": concept("http://terminology.hl7.org/CodeSystem/v2-0443", "AP", "Administering Provider"),
                    "actor": clinician.reference()
                }]
            });
            chart.push(&id, imm);
        }
    }

    // Medications: one per treatable problem, ordered when it was diagnosed or first seen.
    for plan in &plans {
        if plan.problem.drugs.is_empty() {
            continue;
        }
        let drug = chart.d.pick(plan.problem.drugs);
        let k = plan.diagnosed_at.unwrap_or(0);
        let status = if plan.problem.chronic && plan.abated.is_none() { "active" } else { "completed" };
        let id = chart.next_id("medication-request");
        let inhaled = drug.unit.1 == "{puff}";
        let route = if inhaled {
            concept(SNOMED, "447694001", "Respiratory tract route (qualifier value)")
        } else {
            concept(SNOMED, "26643006", "Oral route (qualifier value)")
        };
        let mr = json!({
            "resourceType": "MedicationRequest",
            "id": id.to_string(),
            "status": status,
            "intent": "order",
            "category": [concept_text("http://terminology.hl7.org/CodeSystem/medicationrequest-category", "community",
                                      "Community", "Community")],
            "medicationCodeableConcept": concept_text(RXNORM, drug.rxnorm, drug.display, drug.display),
            "subject": chart.subject(),
            "encounter": {"reference": urn(&encounter_id(&chart, k))},
            "authoredOn": visits[k].plus(30).at(),
            "requester": primary.reference(),
            "reasonReference": [reference(&urn(&plan.id), plan.problem.text)],
            "dosageInstruction": [{
                "sequence": 1,
                "text": drug.sig,
                "timing": {"repeat": {"frequency": drug.frequency, "period": drug.period, "periodUnit": "d"}},
                "asNeededBoolean": drug.as_needed,
                "route": route,
                "doseAndRate": [{
                    "type": concept("http://terminology.hl7.org/CodeSystem/dose-rate-type", "ordered", "Ordered"),
                    "doseQuantity": quantity(i64::from(drug.dose), 0, drug.unit.0, drug.unit.1)
                }]
            }]
        });
        chart.push(&id, mr);
    }

    // Allergies for about a third of patients.
    if chart.d.chance(30) {
        let n = if chart.d.chance(20) { 2 } else { 1 };
        for a in chart.d.distinct(catalog::ALLERGIES.len(), n) {
            let allergy: &Allergy = &catalog::ALLERGIES[a];
            let id = chart.next_id("allergy");
            let (r_code, r_display) = allergy.reaction;
            let ai = json!({
                "resourceType": "AllergyIntolerance",
                "id": id.to_string(),
                "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active",
                                          "Active"),
                "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                                              "confirmed", "Confirmed"),
                "type": "allergy",
                "category": [allergy.category],
                "criticality": allergy.criticality,
                "code": concept_text(SNOMED, allergy.snomed, allergy.display, allergy.display),
                "patient": chart.subject(),
                "recordedDate": visits[0].plus(10).at(),
                "recorder": primary.reference(),
                "reaction": [{
                    "manifestation": [concept_text(SNOMED, r_code, r_display, r_display)],
                    "severity": allergy.severity
                }]
            });
            chart.push(&id, ai);
        }
    }

    transaction(chart.entries)
}

fn encounter_id(chart: &Chart, k: usize) -> Uuid {
    id_for(chart.seed, &format!("patient/{}/encounter/{k}", chart.index))
}

/// A vital-signs Observation without its value; `profile` names the R4 core vital-signs profile.
fn vital(chart: &mut Chart, enc: &Uuid, at: Stamp, profile: &str, code: &str, display: &str, text: &str) -> Value {
    let id = chart.next_id("observation");
    json!({
        "resourceType": "Observation",
        "id": id.to_string(),
        "meta": {"profile": [format!("http://hl7.org/fhir/StructureDefinition/{profile}")]},
        "status": "final",
        "category": [concept(OBS_CATEGORY, "vital-signs", "Vital Signs")],
        "code": concept_text(LOINC, code, display, text),
        "subject": chart.subject(),
        "encounter": {"reference": urn(enc)},
        "effectiveDateTime": at.at(),
        "issued": at.at()
    })
}

fn push_observation(chart: &mut Chart, o: Value) {
    let id = o.get("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok()).unwrap_or_default();
    chart.push(&id, o);
}

fn limit(a: &Analyte, hundredths: i64) -> Value {
    let places = a.places;
    let scaled = hundredths / 10i64.pow(2 - places.min(2));
    quantity(scaled, places, a.unit, a.unit)
}

/// A laboratory Observation; `value` is in the analyte's reported precision.
fn lab(chart: &Chart, id: &Uuid, enc: &Uuid, drawn: Stamp, issued: Stamp, a: &Analyte, value: i64) -> Value {
    let hundredths = value * 10i64.pow(2 - a.places.min(2));
    let mut o = json!({
        "resourceType": "Observation",
        "id": id.to_string(),
        "status": "final",
        "category": [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": concept_text(LOINC, a.loinc, a.display, a.display),
        "subject": chart.subject(),
        "encounter": {"reference": urn(enc)},
        "effectiveDateTime": drawn.at(),
        "issued": issued.at(),
        "valueQuantity": quantity(value, a.places, a.unit, a.unit)
    });
    let high = a.high.is_some_and(|h| hundredths > h);
    let low = a.low.is_some_and(|l| hundredths < l);
    if high || low {
        let (code, display) = if high { ("H", "High") } else { ("L", "Low") };
        o["interpretation"] = json!([concept_text(INTERPRETATION, code, display, display)]);
    }
    let mut range = serde_json::Map::new();
    if let Some(l) = a.low {
        range.insert("low".into(), limit(a, l));
    }
    if let Some(h) = a.high {
        range.insert("high".into(), limit(a, h));
    }
    o["referenceRange"] = json!([range]);
    o
}

/// Lab Observations and the DiagnosticReport that groups them.
fn lab_panel(
    chart: &mut Chart,
    enc: &Uuid,
    drawn: Stamp,
    issued: Stamp,
    panel: (&str, &str),
    results: &[(&Analyte, i64)],
) {
    let mut refs = Vec::new();
    for &(a, value) in results {
        let id = chart.next_id("observation");
        let o = lab(chart, &id, enc, drawn, issued, a, value);
        refs.push(reference(&urn(&id), a.display));
        chart.push(&id, o);
    }
    let id = chart.next_id("diagnostic-report");
    let report = json!({
        "resourceType": "DiagnosticReport",
        "id": id.to_string(),
        "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
        "code": concept_text(LOINC, panel.0, panel.1, panel.1),
        "subject": chart.subject(),
        "encounter": {"reference": urn(enc)},
        "effectiveDateTime": drawn.at(),
        "issued": issued.at(),
        "performer": [reference(&organization_ref(), ORGANIZATION_NAME)],
        "result": refs
    });
    chart.push(&id, report);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_check_digit_matches_the_published_example() {
        // CMS's worked example: base 123456789 has check digit 3.
        assert_eq!(npi_with_check("123456789"), "1234567893");
    }

    #[test]
    fn clinicians_are_stable_and_unique() {
        let a = clinicians(9);
        let b = clinicians(9);
        assert_eq!(a.len(), 6);
        assert!(a.iter().zip(&b).all(|(x, y)| x.npi == y.npi && x.id == y.id));
        let npis: std::collections::HashSet<_> = a.iter().map(|c| &c.npi).collect();
        assert_eq!(npis.len(), 6);
    }

    #[test]
    fn ascii_folding() {
        assert_eq!(ascii_lower("Łukasz"), "lukasz");
        assert_eq!(ascii_lower("José-María"), "josemaria");
    }

    use std::collections::{HashMap, HashSet};

    use crate::demo_summary;

    fn all_resources(bundle: &Value) -> Vec<&Value> {
        bundle["entry"].as_array().into_iter().flatten().map(|e| &e["resource"]).collect()
    }

    fn references(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match x {
                        Value::String(s) if k == "reference" => out.push(s.clone()),
                        _ => references(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| references(x, out)),
            _ => {}
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_data() {
        let a = serde_json::to_string(&demo_clinic(42, 4)).unwrap_or_default();
        let b = serde_json::to_string(&demo_clinic(42, 4)).unwrap_or_default();
        let c = serde_json::to_string(&demo_clinic(43, 4)).unwrap_or_default();
        assert!(!a.is_empty());
        assert_eq!(a, b);
        assert_ne!(a, c);
        // A patient does not depend on how many patients were asked for.
        assert_eq!(demo_clinic(42, 2)[2], demo_clinic(42, 6)[2]);
        assert_eq!(patient_bundle(42, 1), demo_clinic(42, 2)[2]);
    }

    #[test]
    fn output_is_valid_json_text() {
        for b in demo_clinic(7, 3) {
            let text = serde_json::to_string_pretty(&b).unwrap_or_default();
            let back: Value = serde_json::from_str(&text).unwrap_or_default();
            assert_eq!(back, b);
        }
    }

    #[test]
    fn counts_per_bundle() {
        let bundles = demo_clinic(11, 40);
        assert_eq!(bundles.len(), 41);
        let clinic = demo_summary(&bundles[..1]);
        assert_eq!(clinic.by_type.get("Organization"), Some(&1));
        assert_eq!(clinic.by_type.get("Location"), Some(&1));
        assert_eq!(clinic.by_type.get("Practitioner"), Some(&6));
        assert_eq!(clinic.by_type.get("PractitionerRole"), Some(&6));
        assert_eq!(clinic.patients, 0);
        for b in &bundles[1..] {
            let s = demo_summary(std::slice::from_ref(b));
            let n = |t: &str| s.by_type.get(t).copied().unwrap_or(0);
            assert_eq!(n("Patient"), 1);
            assert!((2..=5).contains(&n("Condition")), "{:?}", s.by_type);
            assert!((3..=8).contains(&n("Encounter")), "{:?}", s.by_type);
            assert!(n("DiagnosticReport") >= 1);
            let vitals =
                all_resources(b).iter().filter(|r| r["category"][0]["coding"][0]["code"] == "vital-signs").count();
            assert_eq!(vitals, 6 * n("Encounter"));
            for t in ["Organization", "Practitioner", "Location", "PractitionerRole"] {
                assert_eq!(n(t), 0, "clinic resources belong to the clinic bundle");
            }
        }
        let total = demo_summary(&bundles);
        assert_eq!(total.patients, 40);
        for t in ["MedicationRequest", "Immunization", "AllergyIntolerance"] {
            assert!(total.by_type.get(t).copied().unwrap_or(0) > 0, "no {t} in 40 patients");
        }
        let cultures: HashSet<&str> = bundles[1..]
            .iter()
            .filter_map(|b| b["entry"][0]["resource"]["communication"][0]["language"]["coding"][0]["code"].as_str())
            .collect();
        assert!(cultures.len() >= 5, "{cultures:?}");
    }

    #[test]
    fn every_reference_resolves() {
        let bundles = demo_clinic(5, 25);
        let mut clinic_identifiers: HashSet<String> = HashSet::new();
        let mut seen_full_urls: HashSet<String> = HashSet::new();
        for r in all_resources(&bundles[0]) {
            let rt = r["resourceType"].as_str().unwrap_or_default();
            for i in r["identifier"].as_array().into_iter().flatten() {
                let (s, v) = (i["system"].as_str().unwrap_or_default(), i["value"].as_str().unwrap_or_default());
                clinic_identifiers.insert(format!("{rt}?identifier={s}|{v}"));
            }
        }
        for b in &bundles {
            let full: HashSet<String> = b["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["fullUrl"].as_str().map(str::to_owned))
                .collect();
            assert_eq!(full.len(), b["entry"].as_array().map_or(0, Vec::len), "fullUrls are unique in a bundle");
            for f in &full {
                assert!(f.starts_with("urn:uuid:"));
                assert!(seen_full_urls.insert(f.clone()), "fullUrl {f} repeats across bundles");
            }
            let mut refs = Vec::new();
            references(b, &mut refs);
            assert!(!refs.is_empty());
            for r in refs {
                assert!(full.contains(&r) || clinic_identifiers.contains(&r), "dangling reference {r}");
            }
        }
    }

    #[test]
    fn resources_conform_to_r4() {
        let options = fhir::validate::Options::default();
        let entries_skipped =
            fhir::validate::Options { skip_bundle_entry_resources: true, ..fhir::validate::Options::default() };
        let mut problems = Vec::new();
        for b in demo_clinic(3, 30) {
            for issue in fhir::validate::validate(&b, &entries_skipped) {
                problems.push(format!("Bundle: {issue:?}"));
            }
            for r in all_resources(&b) {
                for issue in fhir::validate::validate(r, &options) {
                    if issue.severity == fhir::outcome::Severity::Error
                        || issue.severity == fhir::outcome::Severity::Fatal
                    {
                        problems.push(format!("{}: {issue:?}", r["resourceType"]));
                    }
                }
            }
        }
        problems.dedup();
        // The validator is live: a wrong required code is caught.
        let mut bad = patient_bundle(3, 0)["entry"][1]["resource"].clone();
        bad["clinicalStatus"]["coding"][0]["code"] = json!("cured");
        assert!(!fhir::validate::validate(&bad, &options).is_empty());
        assert!(problems.is_empty(), "{} issues, first: {:#?}", problems.len(), &problems[..problems.len().min(10)]);
    }

    #[test]
    fn required_elements_and_codes() {
        let bundles = demo_clinic(8, 30);
        let mut by_type: HashMap<String, usize> = HashMap::new();
        for b in &bundles {
            for e in b["entry"].as_array().into_iter().flatten() {
                assert_eq!(e["request"]["method"], "POST");
                assert_eq!(e["request"]["url"], e["resource"]["resourceType"]);
            }
            for r in all_resources(b) {
                let rt = r["resourceType"].as_str().unwrap_or_default();
                *by_type.entry(rt.to_owned()).or_default() += 1;
                match rt {
                    "Patient" => {
                        assert!(matches!(r["gender"].as_str(), Some("male" | "female")));
                        assert!(r["birthDate"].as_str().is_some_and(|d| d.len() == 10));
                        assert_eq!(r["identifier"][0]["system"], MRN_SYSTEM);
                        assert!(r["name"][0]["family"].is_string());
                    }
                    "Condition" => {
                        assert!(matches!(
                            r["clinicalStatus"]["coding"][0]["code"].as_str(),
                            Some("active" | "resolved")
                        ));
                        assert_eq!(r["verificationStatus"]["coding"][0]["code"], "confirmed");
                        assert_eq!(r["code"]["coding"][0]["system"], SNOMED);
                        assert!(r["onsetDateTime"].is_string());
                    }
                    "Encounter" => {
                        assert_eq!(r["status"], "finished");
                        assert_eq!(r["class"]["code"], "AMB");
                        assert!(r["period"]["start"].as_str() < r["period"]["end"].as_str());
                    }
                    "Observation" => {
                        assert_eq!(r["status"], "final");
                        assert_eq!(r["code"]["coding"][0]["system"], LOINC);
                        let q = if r["code"]["coding"][0]["code"] == "85354-9" {
                            &r["component"][0]["valueQuantity"]
                        } else {
                            &r["valueQuantity"]
                        };
                        assert_eq!(q["system"], catalog::UCUM);
                        assert!(q["value"].is_number());
                    }
                    "MedicationRequest" => {
                        assert!(matches!(r["status"].as_str(), Some("active" | "completed")));
                        assert_eq!(r["intent"], "order");
                        assert_eq!(r["medicationCodeableConcept"]["coding"][0]["system"], RXNORM);
                        assert!(r["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"].is_string());
                    }
                    "Immunization" => {
                        assert_eq!(r["status"], "completed");
                        assert_eq!(r["vaccineCode"]["coding"][0]["system"], CVX);
                    }
                    _ => {}
                }
                for date in ["effectiveDateTime", "authoredOn", "occurrenceDateTime", "onsetDateTime"] {
                    if let Some(d) = r[date].as_str() {
                        assert!(d < "2026-01-01" && d > "1930", "{rt}.{date} = {d}");
                    }
                }
            }
        }
        assert!(by_type.len() >= 12, "{by_type:?}");
    }

    #[test]
    fn decimals_are_exact_text() {
        let text = serde_json::to_string(&patient_bundle(1, 0)).unwrap_or_default();
        // Temperatures in degF always carry one decimal, weights too: never float noise.
        assert!(text.contains("\"code\":\"[degF]\""));
        assert!(!text.contains("0000000001"));
        let b = patient_bundle(1, 0);
        for r in all_resources(&b) {
            if r["code"]["coding"][0]["code"] == "8310-5" {
                let v = r["valueQuantity"]["value"].to_string();
                assert!(v.len() >= 4 && v.as_bytes()[v.len() - 2] == b'.', "{v}");
            }
        }
    }
}
