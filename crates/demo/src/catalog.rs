//! The clinical vocabulary the generator draws from: real codes (SNOMED CT, LOINC, RxNorm, CVX,
//! UCUM) with their displays, and names from several cultures. Data only.

pub(crate) const SNOMED: &str = "http://snomed.info/sct";
pub(crate) const LOINC: &str = "http://loinc.org";
pub(crate) const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub(crate) const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub(crate) const UCUM: &str = "http://unitsofmeasure.org";
pub(crate) const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
pub(crate) const BCP47: &str = "urn:ietf:bcp:47";

/// One culture's names and the language its patients prefer.
pub(crate) struct Culture {
    pub language: (&'static str, &'static str),
    pub male: &'static [&'static str],
    pub female: &'static [&'static str],
    pub family: &'static [&'static str],
}

pub(crate) const CULTURES: &[Culture] = &[
    Culture {
        language: ("en-US", "English (United States)"),
        male: &["James", "Michael", "Robert", "David", "William", "Thomas", "Daniel", "Matthew"],
        female: &["Mary", "Jennifer", "Linda", "Elizabeth", "Sarah", "Emily", "Margaret", "Ashley"],
        family: &["Smith", "Johnson", "Williams", "Brown", "Miller", "Wilson", "Anderson", "Taylor", "Moore", "Clark"],
    },
    Culture {
        language: ("es", "Spanish"),
        male: &["José", "Luis", "Carlos", "Javier", "Miguel", "Alejandro", "Diego", "Andrés"],
        female: &["María", "Guadalupe", "Lucía", "Carmen", "Sofía", "Isabel", "Valentina", "Ana"],
        family: &[
            "García",
            "Rodríguez",
            "Martínez",
            "Hernández",
            "López",
            "González",
            "Pérez",
            "Sánchez",
            "Ramírez",
            "Torres",
        ],
    },
    Culture {
        language: ("zh", "Chinese"),
        male: &["Wei", "Jun", "Hao", "Lei", "Ming", "Jian", "Tao", "Yong"],
        female: &["Li", "Mei", "Xiu Ying", "Fang", "Jing", "Lan", "Yan", "Hui"],
        family: &["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou"],
    },
    Culture {
        language: ("hi", "Hindi"),
        male: &["Aarav", "Rahul", "Vikram", "Arjun", "Sanjay", "Rohan", "Amit", "Karan"],
        female: &["Priya", "Ananya", "Lakshmi", "Divya", "Kavya", "Meera", "Pooja", "Sunita"],
        family: &["Sharma", "Patel", "Singh", "Gupta", "Iyer", "Reddy", "Nair", "Kumar", "Joshi", "Mehta"],
    },
    Culture {
        language: ("yo", "Yoruba"),
        male: &["Oluwaseun", "Babatunde", "Adebayo", "Chinedu", "Emeka", "Tunde", "Olumide", "Kehinde"],
        female: &["Folasade", "Adaeze", "Ngozi", "Yetunde", "Funmilayo", "Chiamaka", "Temitope", "Abimbola"],
        family: &["Adeyemi", "Okafor", "Balogun", "Okonkwo", "Adebayo", "Eze", "Olawale", "Nwosu", "Afolabi", "Obi"],
    },
    Culture {
        language: ("vi", "Vietnamese"),
        male: &["Minh", "Tuan", "Duc", "Huy", "Khoa", "Long", "Phuc", "Quang"],
        female: &["Linh", "Thao", "Huong", "Lan", "Ngoc", "Trang", "Mai", "Vy"],
        family: &["Nguyen", "Tran", "Le", "Pham", "Hoang", "Vu", "Dang", "Bui", "Do", "Ngo"],
    },
    Culture {
        language: ("ar", "Arabic"),
        male: &["Mohammed", "Ahmed", "Omar", "Youssef", "Khalid", "Hassan", "Ali", "Karim"],
        female: &["Fatima", "Aisha", "Layla", "Mariam", "Noor", "Salma", "Yasmin", "Huda"],
        family: &["Haddad", "Mansour", "Khalil", "Nasser", "Saleh", "Hussein", "Farah", "Aziz", "Hamdan", "Qureshi"],
    },
    Culture {
        language: ("pl", "Polish"),
        male: &["Piotr", "Krzysztof", "Andrzej", "Tomasz", "Paweł", "Marek", "Jakub", "Łukasz"],
        female: &["Anna", "Katarzyna", "Małgorzata", "Agnieszka", "Barbara", "Ewa", "Zofia", "Joanna"],
        family: &[
            "Nowak",
            "Kowalski",
            "Wiśniewski",
            "Wójcik",
            "Kowalczyk",
            "Kamiński",
            "Lewandowski",
            "Zieliński",
            "Szymański",
            "Woźniak",
        ],
    },
    Culture {
        language: ("ko", "Korean"),
        male: &["Min-jun", "Seo-jun", "Ji-ho", "Hyun-woo", "Dong-hyun", "Jae-won", "Sung-min", "Joon-young"],
        female: &["Seo-yeon", "Ji-woo", "Min-seo", "Ha-eun", "Soo-jin", "Eun-ji", "Ye-jin", "Hye-won"],
        family: &["Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim"],
    },
    Culture {
        language: ("el", "Greek"),
        male: &["Georgios", "Dimitrios", "Konstantinos", "Ioannis", "Nikolaos", "Christos", "Panagiotis", "Vasileios"],
        female: &["Maria", "Eleni", "Aikaterini", "Vasiliki", "Sofia", "Georgia", "Despoina", "Ioanna"],
        family: &[
            "Papadopoulos",
            "Georgiou",
            "Oikonomou",
            "Dimitriou",
            "Papadakis",
            "Vlachos",
            "Angelopoulos",
            "Nikolaidis",
            "Karagiannis",
            "Christodoulou",
        ],
    },
];

/// City, state, postal code: the clinic's catchment area.
pub(crate) const CITIES: &[(&str, &str, &str)] = &[
    ("Cambridge", "MA", "02139"),
    ("Somerville", "MA", "02143"),
    ("Medford", "MA", "02155"),
    ("Quincy", "MA", "02169"),
    ("Newton", "MA", "02458"),
    ("Brookline", "MA", "02445"),
    ("Malden", "MA", "02148"),
    ("Waltham", "MA", "02453"),
    ("Arlington", "MA", "02474"),
    ("Watertown", "MA", "02472"),
];

pub(crate) const STREETS: &[&str] = &[
    "Maple Street",
    "Oak Avenue",
    "Highland Avenue",
    "Elm Street",
    "Summer Street",
    "Washington Street",
    "Pleasant Street",
    "Chestnut Hill Road",
    "Harbor View Drive",
    "Cedar Lane",
    "Prospect Street",
    "Linden Road",
];

/// v3-MaritalStatus code and display.
pub(crate) const MARITAL: &[(&str, &str)] =
    &[("M", "Married"), ("S", "Never Married"), ("D", "Divorced"), ("W", "Widowed"), ("M", "Married")];

pub(crate) struct Drug {
    pub rxnorm: &'static str,
    pub display: &'static str,
    /// `dosageInstruction.text`.
    pub sig: &'static str,
    /// Doses per `period` days.
    pub frequency: u32,
    pub period: u32,
    pub dose: u32,
    pub unit: (&'static str, &'static str),
    pub as_needed: bool,
}

const TABLET: (&str, &str) = ("tablet", "{tbl}");
const PUFF: (&str, &str) = ("puff", "{puff}");

const fn daily(rxnorm: &'static str, display: &'static str) -> Drug {
    Drug {
        rxnorm,
        display,
        sig: "Take 1 tablet by mouth once daily",
        frequency: 1,
        period: 1,
        dose: 1,
        unit: TABLET,
        as_needed: false,
    }
}

pub(crate) struct Problem {
    pub snomed: &'static str,
    pub display: &'static str,
    pub text: &'static str,
    /// Chronic problems stay active; the others resolve a few weeks after onset.
    pub chronic: bool,
    pub drugs: &'static [Drug],
}

pub(crate) const PROBLEMS: &[Problem] = &[
    Problem {
        snomed: "38341003",
        display: "Hypertensive disorder, systemic arterial (disorder)",
        text: "Hypertension",
        chronic: true,
        drugs: &[
            daily("314076", "lisinopril 10 MG Oral Tablet"),
            daily("197361", "amlodipine 5 MG Oral Tablet"),
            daily("310798", "hydrochlorothiazide 25 MG Oral Tablet"),
        ],
    },
    Problem {
        snomed: "44054006",
        display: "Diabetes mellitus type 2 (disorder)",
        text: "Type 2 diabetes mellitus",
        chronic: true,
        drugs: &[Drug {
            rxnorm: "860975",
            display: "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
            sig: "Take 1 tablet by mouth twice daily with meals",
            frequency: 2,
            period: 1,
            dose: 1,
            unit: TABLET,
            as_needed: false,
        }],
    },
    Problem {
        snomed: "195967001",
        display: "Asthma (disorder)",
        text: "Asthma",
        chronic: true,
        drugs: &[Drug {
            rxnorm: "895994",
            display: "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
            sig: "Inhale 2 puffs twice daily",
            frequency: 2,
            period: 1,
            dose: 2,
            unit: PUFF,
            as_needed: false,
        }],
    },
    Problem {
        snomed: "55822004",
        display: "Hyperlipidemia (disorder)",
        text: "Hyperlipidemia",
        chronic: true,
        drugs: &[
            daily("314231", "simvastatin 10 MG Oral Tablet"),
            daily("312961", "simvastatin 20 MG Oral Tablet"),
            daily("259255", "atorvastatin 80 MG Oral Tablet"),
        ],
    },
    Problem {
        snomed: "162864005",
        display: "Body mass index 30+ - obesity (finding)",
        text: "Obesity",
        chronic: true,
        drugs: &[],
    },
    Problem { snomed: "15777000", display: "Prediabetes (finding)", text: "Prediabetes", chronic: true, drugs: &[] },
    Problem {
        snomed: "239873007",
        display: "Osteoarthritis of knee (disorder)",
        text: "Osteoarthritis of knee",
        chronic: true,
        drugs: &[Drug {
            rxnorm: "849574",
            display: "naproxen sodium 220 MG Oral Tablet",
            sig: "Take 1 tablet by mouth every 12 hours as needed for pain",
            frequency: 2,
            period: 1,
            dose: 1,
            unit: TABLET,
            as_needed: true,
        }],
    },
    Problem {
        snomed: "49436004",
        display: "Atrial fibrillation (disorder)",
        text: "Atrial fibrillation",
        chronic: true,
        drugs: &[daily("855332", "warfarin sodium 5 MG Oral Tablet")],
    },
    Problem {
        snomed: "53741008",
        display: "Coronary arteriosclerosis (disorder)",
        text: "Coronary heart disease",
        chronic: true,
        drugs: &[daily("309362", "clopidogrel 75 MG Oral Tablet")],
    },
    Problem {
        snomed: "13645005",
        display: "Chronic obstructive lung disease (disorder)",
        text: "COPD",
        chronic: true,
        drugs: &[Drug {
            rxnorm: "896209",
            display: "60 ACTUAT fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
            sig: "Inhale 1 puff twice daily",
            frequency: 2,
            period: 1,
            dose: 1,
            unit: PUFF,
            as_needed: false,
        }],
    },
    Problem {
        snomed: "271737000",
        display: "Anemia (disorder)",
        text: "Anemia",
        chronic: true,
        drugs: &[daily("310325", "ferrous sulfate 325 MG Oral Tablet")],
    },
    Problem {
        snomed: "35489007",
        display: "Depressive disorder (disorder)",
        text: "Depression",
        chronic: true,
        drugs: &[],
    },
    Problem {
        snomed: "278860009",
        display: "Chronic low back pain (finding)",
        text: "Chronic low back pain",
        chronic: true,
        drugs: &[Drug {
            rxnorm: "313782",
            display: "acetaminophen 325 MG Oral Tablet",
            sig: "Take 2 tablets by mouth every 6 hours as needed for pain",
            frequency: 4,
            period: 1,
            dose: 2,
            unit: TABLET,
            as_needed: true,
        }],
    },
    Problem {
        snomed: "444814009",
        display: "Viral sinusitis (disorder)",
        text: "Viral sinusitis",
        chronic: false,
        drugs: &[],
    },
    Problem {
        snomed: "43878008",
        display: "Streptococcal sore throat (disorder)",
        text: "Strep throat",
        chronic: false,
        drugs: &[Drug {
            rxnorm: "834102",
            display: "penicillin V potassium 500 MG Oral Tablet",
            sig: "Take 1 tablet by mouth twice daily for 10 days",
            frequency: 2,
            period: 1,
            dose: 1,
            unit: TABLET,
            as_needed: false,
        }],
    },
    Problem {
        snomed: "10509002",
        display: "Acute bronchitis (disorder)",
        text: "Acute bronchitis",
        chronic: false,
        drugs: &[Drug {
            rxnorm: "313782",
            display: "acetaminophen 325 MG Oral Tablet",
            sig: "Take 2 tablets by mouth every 6 hours as needed for fever",
            frequency: 4,
            period: 1,
            dose: 2,
            unit: TABLET,
            as_needed: true,
        }],
    },
];

/// SNOMED encounter types.
pub(crate) const CHECK_UP: (&str, &str) = ("185349003", "Encounter for check up (procedure)");
pub(crate) const FOLLOW_UP: (&str, &str) = ("390906007", "Follow-up encounter (procedure)");
pub(crate) const SYMPTOM: (&str, &str) = ("185345009", "Encounter for symptom (procedure)");

/// A laboratory analyte: LOINC, display, UCUM unit, reference range in hundredths (`None` when
/// the range is open on that side), decimal places reported.
pub(crate) struct Analyte {
    pub loinc: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub low: Option<i64>,
    pub high: Option<i64>,
    pub places: u32,
}

pub(crate) const GLUCOSE: Analyte = Analyte {
    loinc: "2339-0",
    display: "Glucose [Mass/volume] in Blood",
    unit: "mg/dL",
    low: Some(7000),
    high: Some(9900),
    places: 0,
};
pub(crate) const UREA: Analyte = Analyte {
    loinc: "3094-0",
    display: "Urea nitrogen [Mass/volume] in Serum or Plasma",
    unit: "mg/dL",
    low: Some(700),
    high: Some(2000),
    places: 0,
};
pub(crate) const CREATININE: Analyte = Analyte {
    loinc: "2160-0",
    display: "Creatinine [Mass/volume] in Serum or Plasma",
    unit: "mg/dL",
    low: Some(60),
    high: Some(130),
    places: 2,
};
pub(crate) const SODIUM: Analyte = Analyte {
    loinc: "2951-2",
    display: "Sodium [Moles/volume] in Serum or Plasma",
    unit: "mmol/L",
    low: Some(13600),
    high: Some(14500),
    places: 0,
};
pub(crate) const POTASSIUM: Analyte = Analyte {
    loinc: "2823-3",
    display: "Potassium [Moles/volume] in Serum or Plasma",
    unit: "mmol/L",
    low: Some(350),
    high: Some(510),
    places: 1,
};
pub(crate) const CHOLESTEROL: Analyte = Analyte {
    loinc: "2093-3",
    display: "Cholesterol [Mass/volume] in Serum or Plasma",
    unit: "mg/dL",
    low: None,
    high: Some(20000),
    places: 0,
};
pub(crate) const LDL: Analyte = Analyte {
    loinc: "18262-6",
    display: "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
    unit: "mg/dL",
    low: None,
    high: Some(10000),
    places: 0,
};
pub(crate) const HDL: Analyte = Analyte {
    loinc: "2085-9",
    display: "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
    unit: "mg/dL",
    low: Some(4000),
    high: None,
    places: 0,
};
pub(crate) const TRIGLYCERIDES: Analyte = Analyte {
    loinc: "2571-8",
    display: "Triglyceride [Mass/volume] in Serum or Plasma",
    unit: "mg/dL",
    low: None,
    high: Some(15000),
    places: 0,
};
pub(crate) const HBA1C: Analyte = Analyte {
    loinc: "4548-4",
    display: "Hemoglobin A1c/Hemoglobin.total in Blood",
    unit: "%",
    low: Some(400),
    high: Some(560),
    places: 1,
};

pub(crate) const METABOLIC_PANEL: (&str, &str) = ("24321-2", "Basic metabolic 2000 panel - Serum or Plasma");
pub(crate) const LIPID_PANEL: (&str, &str) = ("57698-3", "Lipid panel with direct LDL - Serum or Plasma");

/// CVX code, display, minimum age.
pub(crate) const FLU: (&str, &str) = ("140", "Influenza, seasonal, injectable, preservative free");
pub(crate) const OTHER_VACCINES: &[(&str, &str, i64)] = &[
    ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose", 18),
    ("113", "Td (adult), 5 Lf tetanus toxoid, preservative free, adsorbed", 18),
    ("115", "Tdap", 18),
    ("43", "Hep B, adult", 18),
    ("187", "zoster vaccine recombinant", 50),
    ("133", "Pneumococcal conjugate PCV 13", 65),
];

/// SNOMED code, display, AllergyIntolerance.category, criticality, reaction (SNOMED code, display).
pub(crate) struct Allergy {
    pub snomed: &'static str,
    pub display: &'static str,
    pub category: &'static str,
    pub criticality: &'static str,
    pub reaction: (&'static str, &'static str),
    pub severity: &'static str,
}

pub(crate) const ALLERGIES: &[Allergy] = &[
    Allergy {
        snomed: "91936005",
        display: "Allergy to penicillin (finding)",
        category: "medication",
        criticality: "high",
        reaction: ("271807003", "Eruption of skin (disorder)"),
        severity: "moderate",
    },
    Allergy {
        snomed: "91935009",
        display: "Allergy to peanuts (finding)",
        category: "food",
        criticality: "high",
        reaction: ("39579001", "Anaphylaxis (disorder)"),
        severity: "severe",
    },
    Allergy {
        snomed: "300913006",
        display: "Shellfish allergy (finding)",
        category: "food",
        criticality: "low",
        reaction: ("247472004", "Wheal (finding)"),
        severity: "mild",
    },
    Allergy {
        snomed: "418689008",
        display: "Allergy to grass pollen (finding)",
        category: "environment",
        criticality: "low",
        reaction: ("418290006", "Itching (finding)"),
        severity: "mild",
    },
    Allergy {
        snomed: "232350006",
        display: "House dust mite allergy (finding)",
        category: "environment",
        criticality: "low",
        reaction: ("49727002", "Cough (finding)"),
        severity: "mild",
    },
    Allergy {
        snomed: "300916003",
        display: "Latex allergy (finding)",
        category: "environment",
        criticality: "high",
        reaction: ("247472004", "Wheal (finding)"),
        severity: "moderate",
    },
];

/// The clinic's clinicians: specialty (SNOMED), qualification (v2-0360), PractitionerRole code.
pub(crate) struct Staff {
    pub specialty: (&'static str, &'static str),
    pub qualification: (&'static str, &'static str),
    pub role: (&'static str, &'static str),
}

pub(crate) const STAFF: &[Staff] = &[
    Staff {
        specialty: ("419772000", "Family practice"),
        qualification: ("MD", "Doctor of Medicine"),
        role: ("doctor", "Doctor"),
    },
    Staff {
        specialty: ("419192003", "Internal medicine"),
        qualification: ("MD", "Doctor of Medicine"),
        role: ("doctor", "Doctor"),
    },
    Staff {
        specialty: ("394583002", "Endocrinology"),
        qualification: ("DO", "Doctor of Osteopathy"),
        role: ("doctor", "Doctor"),
    },
    Staff {
        specialty: ("394579002", "Cardiology"),
        qualification: ("MD", "Doctor of Medicine"),
        role: ("doctor", "Doctor"),
    },
    Staff {
        specialty: ("418112009", "Pulmonary medicine"),
        qualification: ("MD", "Doctor of Medicine"),
        role: ("doctor", "Doctor"),
    },
    Staff {
        specialty: ("419772000", "Family practice"),
        qualification: ("NP", "Nurse practitioner"),
        role: ("nurse", "Nurse"),
    },
];
