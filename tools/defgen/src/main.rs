//! Generates `crates/fhir/definitions/r4.json.gz` from the official FHIR R4 definition bundles.
//!
//! Usage: `cargo run -p defgen -- ../shared/data/fhir-r4 crates/fhir/definitions/r4.json.gz`
//!
//! With `ucum` first, it writes the UCUM unit table the FHIRPath engine embeds:
//! `cargo run -p defgen -- ucum ../shared/data/fhirpath-tests/ucum-essence.xml crates/fhir/definitions/ucum.tsv`
//!
//! The model is shared with the engine by path (not by depending on the `fhir` crate, which
//! embeds this tool's output).

#[path = "../../../crates/fhir/src/model.rs"]
mod model;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;

use model::*;
use serde_json::Value;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "ucum" {
        let xml = std::fs::read_to_string(&args[2]).map_err(|e| format!("{}: {e}", args[2]))?;
        let table = ucum_table(&xml)?;
        std::fs::write(&args[3], &table)?;
        eprintln!("wrote {}: {} lines", args[3], table.lines().count());
        return Ok(());
    }
    if args.len() != 3 {
        return Err("usage: defgen SOURCE_DIR OUTPUT_FILE".into());
    }
    let source = Path::new(&args[1]);
    let defs = generate(source)?;
    let json = serde_json::to_vec(&defs)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&json)?;
    let compressed = encoder.finish()?;
    std::fs::write(&args[2], &compressed)?;
    let not_enumerable = defs.value_sets.iter().filter(|vs| !vs.enumerable).count();
    eprintln!("{not_enumerable} value sets cannot be enumerated from the bundle (their codes are not checked)");
    let nested = defs.code_systems.iter().filter(|cs| !cs.parents.is_empty()).count();
    eprintln!(
        "wrote {}: {} types, {} value sets, {} code systems ({nested} hierarchical), {} search parameters, \
         {} compartments; {} bytes JSON, {} bytes compressed",
        args[2],
        defs.types.len(),
        defs.value_sets.len(),
        defs.code_systems.len(),
        defs.search_params.len(),
        defs.compartments.len(),
        json.len(),
        compressed.len()
    );
    Ok(())
}

fn load(dir: &Path, name: &str) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
    let bundle: Value = serde_json::from_str(&text)?;
    Ok(bundle["entry"].as_array().map(|e| e.iter().map(|x| x["resource"].clone()).collect()).unwrap_or_default())
}

fn generate(dir: &Path) -> Result<DefinitionsFile, Error> {
    let mut resources = load(dir, "profiles-types.json")?;
    resources.extend(load(dir, "profiles-resources.json")?);
    let value_set_bundle = load(dir, "valuesets.json")?;
    let search = load(dir, "search-parameters.json")?;

    let mut types = Vec::new();
    for sd in resources.iter().filter(|r| r["resourceType"] == "StructureDefinition") {
        let kind = match sd["kind"].as_str() {
            Some("primitive-type") => TypeKind::PrimitiveType,
            Some("complex-type") => TypeKind::ComplexType,
            Some("resource") => TypeKind::Resource,
            _ => continue,
        };
        // Constraint profiles (SimpleQuantity, MoneyQuantity) refine a type; elements name the
        // base type, so only specialisations define types.
        if sd["derivation"] == "constraint" {
            continue;
        }
        let name = sd["id"].as_str().ok_or("StructureDefinition without id")?.to_owned();
        let elements = sd["snapshot"]["element"].as_array().cloned().unwrap_or_default();
        let regex = if kind == TypeKind::PrimitiveType {
            elements.iter().filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with(".value"))).find_map(|e| {
                e["type"][0]["extension"].as_array().into_iter().flatten().find_map(|x| {
                    (x["url"] == "http://hl7.org/fhir/StructureDefinition/regex")
                        .then(|| x["valueString"].as_str().map(str::to_owned))
                        .flatten()
                })
            })
        } else {
            None
        };
        let system_type = if kind == TypeKind::PrimitiveType {
            elements
                .iter()
                .find(|e| e["path"].as_str().is_some_and(|p| p.ends_with(".value")))
                .and_then(|e| e["type"][0]["code"].as_str())
                .and_then(|c| c.strip_prefix("http://hl7.org/fhirpath/System."))
                .map(|system| match name.as_str() {
                    // Erratum: R4 types positiveInt and unsignedInt values as System.String; they are
                    // whole numbers and FHIRPath treats them as System.Integer.
                    "positiveInt" | "unsignedInt" => "Integer".to_owned(),
                    _ => system.to_owned(),
                })
        } else {
            None
        };
        let elements = if kind == TypeKind::PrimitiveType {
            Vec::new()
        } else {
            elements.iter().map(|e| element(e, &name, kind)).collect::<Result<Vec<_>, Error>>()?
        };
        types.push(TypeDef {
            name,
            kind,
            is_abstract: sd["abstract"].as_bool().unwrap_or(false),
            base: sd["baseDefinition"].as_str().and_then(|b| b.rsplit('/').next()).map(str::to_owned),
            regex,
            system_type,
            elements,
        });
    }

    // Every value set the bundle defines, and every one the elements bind to: validation uses
    // the required bindings, `memberOf()` and the `:in` search modifier any of them.
    let mut wanted: BTreeSet<String> = types
        .iter()
        .flat_map(|t| t.elements.iter())
        .filter_map(|e| e.binding.as_ref())
        .map(|b| b.value_set.clone())
        .collect();
    wanted.extend(value_set_bundle.iter().filter(|r| r["resourceType"] == "ValueSet").map(|r| text(&r["url"])));
    let terminology = Terminology::new(&value_set_bundle);
    let value_sets = wanted
        .iter()
        .map(|url| match terminology.expand(url, 0) {
            Some(codes) => {
                let mut by_system: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (system, code) in codes {
                    by_system.entry(system).or_default().insert(code);
                }
                ValueSetDef {
                    url: url.clone(),
                    enumerable: true,
                    systems: by_system
                        .into_iter()
                        .map(|(system, codes)| SystemCodes { system, codes: codes.into_iter().collect() })
                        .collect(),
                }
            }
            None => ValueSetDef { url: url.clone(), enumerable: false, systems: Vec::new() },
        })
        .collect();

    let search_params = search
        .iter()
        .filter(|r| r["resourceType"] == "SearchParameter")
        .map(|sp| SearchParamDef {
            code: text(&sp["code"]),
            url: text(&sp["url"]),
            base: strings(&sp["base"]),
            kind: text(&sp["type"]),
            expression: sp["expression"].as_str().map(str::to_owned),
            xpath_usage: sp["xpathUsage"].as_str().map(str::to_owned),
            target: strings(&sp["target"]),
            modifier: strings(&sp["modifier"]),
            comparator: strings(&sp["comparator"]),
            multiple_or: sp["multipleOr"].as_bool(),
            multiple_and: sp["multipleAnd"].as_bool(),
            components: sp["component"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| SearchComponent { definition: text(&c["definition"]), expression: text(&c["expression"]) })
                .collect(),
        })
        .collect();

    let compartments = resources
        .iter()
        .filter(|r| r["resourceType"] == "CompartmentDefinition")
        .map(|c| CompartmentDef {
            code: text(&c["code"]),
            resources: c["resource"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| CompartmentResource { code: text(&r["code"]), params: strings(&r["param"]) })
                .collect(),
        })
        .collect();

    let code_systems = terminology.hierarchies();
    Ok(DefinitionsFile { fhir_version: "4.0.1".into(), types, value_sets, code_systems, search_params, compartments })
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn element(e: &Value, type_name: &str, kind: TypeKind) -> Result<ElementDef, Error> {
    let path = e["path"].as_str().ok_or("element without path")?.to_owned();
    let max = match e["max"].as_str() {
        Some("*") | None => None,
        Some(n) => Some(n.parse()?),
    };
    let is_resource_id = kind == TypeKind::Resource && path == format!("{type_name}.id");
    let types = e["type"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let raw = text(&t["code"]);
            let code = if is_resource_id {
                // R4 types Resource.id as System.String; its rules are those of `id`.
                "id".to_owned()
            } else if let Some(system) = raw.strip_prefix("http://hl7.org/fhirpath/System.") {
                fhir_type_extension(t).unwrap_or_else(|| system_type(system).to_owned())
            } else {
                raw
            };
            let targets = strings(&t["targetProfile"])
                .into_iter()
                .filter_map(|p| p.rsplit('/').next().map(str::to_owned))
                .collect();
            TypeRef { code, targets }
        })
        .collect();
    let binding = e["binding"]["valueSet"].as_str().map(|vs| Binding {
        strength: text(&e["binding"]["strength"]),
        value_set: vs.split('|').next().unwrap_or(vs).to_owned(),
    });
    let constraints = e["constraint"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(Constraint {
                key: text(&c["key"]),
                severity: text(&c["severity"]),
                human: text(&c["human"]),
                expression: c["expression"].as_str()?.to_owned(),
            })
        })
        .collect();
    Ok(ElementDef {
        path,
        min: e["min"].as_u64().unwrap_or(0) as u32,
        max,
        types,
        content_reference: e["contentReference"].as_str().map(|r| r.rsplit('#').next().unwrap_or(r).to_owned()),
        binding,
        constraints,
        modifier: e["isModifier"].as_bool().unwrap_or(false),
        summary: e["isSummary"].as_bool().unwrap_or(false),
        fixed: prefixed_value(e, "fixed"),
        pattern: prefixed_value(e, "pattern"),
    })
}

/// The value of a `fixed[x]` / `pattern[x]` element property, whatever its type suffix.
fn prefixed_value(e: &Value, prefix: &str) -> Option<Value> {
    e.as_object()?.iter().find_map(|(k, v)| {
        k.strip_prefix(prefix).filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase())).map(|_| v.clone())
    })
}

fn fhir_type_extension(t: &Value) -> Option<String> {
    t["extension"].as_array()?.iter().find_map(|x| {
        (x["url"] == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
            .then(|| x["valueUrl"].as_str().map(str::to_owned))
            .flatten()
    })
}

fn system_type(name: &str) -> &'static str {
    match name {
        "Boolean" => "boolean",
        "Integer" => "integer",
        "Decimal" => "decimal",
        "Date" => "date",
        "DateTime" => "dateTime",
        "Time" => "time",
        _ => "string",
    }
}

/// The CodeSystems and ValueSets of the spec, for expanding required bindings.
struct Terminology {
    code_systems: HashMap<String, CodeSystem>,
    value_sets: HashMap<String, Value>,
}

struct CodeSystem {
    complete: bool,
    /// Whether nesting and parent links mean subsumption (`hierarchyMeaning` absent or `is-a`).
    is_a: bool,
    codes: Vec<String>,
    /// Each code's parents, from nested concepts and from parent and child properties.
    parents: BTreeMap<String, BTreeSet<String>>,
    children: HashMap<String, Vec<String>>,
}

impl Terminology {
    fn new(resources: &[Value]) -> Self {
        let mut code_systems = HashMap::new();
        let mut value_sets = HashMap::new();
        for r in resources {
            let url = text(&r["url"]);
            match r["resourceType"].as_str() {
                Some("CodeSystem") => {
                    let mut cs = CodeSystem {
                        complete: r["content"] == "complete",
                        is_a: r["hierarchyMeaning"].as_str().is_none_or(|m| m == "is-a"),
                        codes: Vec::new(),
                        parents: BTreeMap::new(),
                        children: HashMap::new(),
                    };
                    let links = LinkProperties::declared(&r["property"]);
                    flatten_concepts(&r["concept"], None, &links, &mut cs);
                    for (child, parents) in &cs.parents {
                        for parent in parents {
                            cs.children.entry(parent.clone()).or_default().push(child.clone());
                        }
                    }
                    code_systems.insert(url, cs);
                }
                Some("ValueSet") => {
                    value_sets.insert(url, r.clone());
                }
                _ => {}
            }
        }
        Terminology { code_systems, value_sets }
    }

    /// The code systems the `:above` and `:below` token modifiers can search, by URL: those
    /// the bundle holds in full and whose hierarchy means subsumption. Flat ones are listed too,
    /// so that the server knows their codes subsume nothing but themselves.
    fn hierarchies(&self) -> Vec<CodeSystemDef> {
        let mut out: Vec<CodeSystemDef> = self
            .code_systems
            .iter()
            .filter(|(_, cs)| cs.complete && cs.is_a)
            .map(|(url, cs)| CodeSystemDef {
                url: url.clone(),
                parents: cs.parents.iter().map(|(code, ps)| (code.clone(), ps.iter().cloned().collect())).collect(),
            })
            .collect();
        out.sort_by(|a, b| a.url.cmp(&b.url));
        out
    }

    /// The (system, code) pairs of a value set, or `None` when it cannot be enumerated here.
    fn expand(&self, url: &str, depth: u32) -> Option<BTreeSet<(String, String)>> {
        if depth > 10 {
            return None;
        }
        let vs = self.value_sets.get(url)?;
        let mut out = BTreeSet::new();
        let compose = &vs["compose"];
        if compose.is_null() {
            for c in vs["expansion"]["contains"].as_array()? {
                out.insert((text(&c["system"]), text(&c["code"])));
            }
            return Some(out);
        }
        for include in compose["include"].as_array()? {
            out.extend(self.include(include, depth)?);
        }
        for exclude in compose["exclude"].as_array().into_iter().flatten() {
            for pair in self.include(exclude, depth)? {
                out.remove(&pair);
            }
        }
        Some(out)
    }

    fn include(&self, include: &Value, depth: u32) -> Option<BTreeSet<(String, String)>> {
        let mut out: Option<BTreeSet<(String, String)>> = None;
        for vs in include["valueSet"].as_array().into_iter().flatten() {
            let url = vs.as_str()?;
            let codes = self.expand(url.split('|').next().unwrap_or(url), depth + 1)?;
            out = Some(match out {
                None => codes,
                Some(prev) => prev.intersection(&codes).cloned().collect(),
            });
        }
        let Some(system) = include["system"].as_str() else { return out };
        let from_system: BTreeSet<(String, String)> = if let Some(concepts) = include["concept"].as_array() {
            concepts.iter().map(|c| (system.to_owned(), text(&c["code"]))).collect()
        } else {
            let cs = self.code_systems.get(system)?;
            if !cs.complete {
                return None;
            }
            let mut codes: BTreeSet<String> = cs.codes.iter().cloned().collect();
            for filter in include["filter"].as_array().into_iter().flatten() {
                let value = text(&filter["value"]);
                let selected: BTreeSet<String> =
                    match (text(&filter["property"]).as_str(), text(&filter["op"]).as_str()) {
                        ("concept", "is-a") => cs.descendants(&value, true),
                        ("concept", "descendent-of") => cs.descendants(&value, false),
                        ("concept", "is-not-a") => {
                            let not = cs.descendants(&value, true);
                            cs.codes.iter().filter(|c| !not.contains(*c)).cloned().collect()
                        }
                        _ => return None,
                    };
                codes = codes.intersection(&selected).cloned().collect();
            }
            codes.into_iter().map(|c| (system.to_owned(), c)).collect()
        };
        Some(match out {
            None => from_system,
            Some(prev) => prev.intersection(&from_system).cloned().collect(),
        })
    }
}

impl CodeSystem {
    fn descendants(&self, code: &str, include_self: bool) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![code.to_owned()];
        while let Some(c) = stack.pop() {
            if let Some(kids) = self.children.get(&c) {
                stack.extend(kids.iter().cloned());
            }
            if c != code || include_self {
                out.insert(c);
            }
        }
        out
    }
}

/// The concept properties of a CodeSystem that link a concept to its parent or its child:
/// the spec's `parent` and `child` (http://hl7.org/fhir/concept-properties), under whatever
/// code the system declares them, and `subsumedBy`, which terminology.hl7.org's code systems use.
struct LinkProperties {
    parent: BTreeSet<String>,
    child: BTreeSet<String>,
}

impl LinkProperties {
    fn declared(properties: &Value) -> Self {
        let mut links = LinkProperties {
            parent: ["parent", "subsumedBy"].map(str::to_owned).into(),
            child: BTreeSet::from(["child".to_owned()]),
        };
        for p in properties.as_array().into_iter().flatten() {
            let set = match p["uri"].as_str() {
                Some("http://hl7.org/fhir/concept-properties#parent") => &mut links.parent,
                Some("http://hl7.org/fhir/concept-properties#child") => &mut links.child,
                _ => continue,
            };
            set.insert(text(&p["code"]));
        }
        links
    }
}

fn flatten_concepts(concepts: &Value, parent: Option<&str>, links: &LinkProperties, cs: &mut CodeSystem) {
    for c in concepts.as_array().into_iter().flatten() {
        let code = text(&c["code"]);
        cs.codes.push(code.clone());
        let mut link = |child: &str, parent: &str| {
            if child != parent && !child.is_empty() && !parent.is_empty() {
                cs.parents.entry(child.to_owned()).or_default().insert(parent.to_owned());
            }
        };
        if let Some(p) = parent {
            link(&code, p);
        }
        for property in c["property"].as_array().into_iter().flatten() {
            let (name, value) = (text(&property["code"]), text(&property["valueCode"]));
            if links.parent.contains(&name) {
                link(&code, &value);
            } else if links.child.contains(&name) {
                link(&value, &code);
            }
        }
        flatten_concepts(&c["concept"], Some(&code), links, cs);
    }
}

/// The UCUM essence as a tab-separated table, one prefix, base unit or unit a line, in the
/// order of the source:
///
/// - `prefix CODE VALUE`
/// - `base CODE DIMENSION` (one of the seven base dimensions L T M A C Q F)
/// - `unit CODE METRIC(y/n) FLAG VALUE UNIT` where FLAG is `-`, `special` (defined by a
///   function, e.g. Celsius: not converted by a factor) or `arbitrary` (its own dimension).
///
/// The XML is regular (one element per unit with its attributes on the opening tag), so it is
/// scanned rather than parsed.
fn ucum_table(xml: &str) -> Result<String, Error> {
    let version = attr(xml.find("<root").map(|i| &xml[i..]).unwrap_or(""), "version").unwrap_or_default();
    let revision = attr(xml.find("<root").map(|i| &xml[i..]).unwrap_or(""), "revision-date").unwrap_or_default();
    let mut out = format!(
        "# UCUM {version} ({revision}), from ucum-essence.xml; generated by tools/defgen, do not edit.\n\
         # UCUM is (c) Regenstrief Institute, Inc., used under its terms of use (https://ucum.org/trac/wiki/TermsOfUse).\n"
    );
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        rest = &rest[start..];
        let (tag, kind) = if rest.starts_with("<prefix ") {
            ("prefix", 0)
        } else if rest.starts_with("<base-unit ") {
            ("base-unit", 1)
        } else if rest.starts_with("<unit ") {
            ("unit", 2)
        } else {
            rest = &rest[1..];
            continue;
        };
        let close = format!("</{tag}>");
        let end = rest.find(&close).ok_or_else(|| format!("unclosed <{tag}>"))? + close.len();
        let element = &rest[..end];
        let open = &element[..element.find('>').ok_or("bad tag")?];
        let code = attr(open, "Code").ok_or_else(|| format!("<{tag}> without Code"))?;
        let value_tag = element.find("<value ").map(|i| &element[i..]).and_then(|v| v.find('>').map(|e| &v[..e]));
        match kind {
            0 => {
                let value = value_tag.and_then(|v| attr(v, "value")).ok_or_else(|| format!("prefix {code}"))?;
                out.push_str(&format!("prefix\t{code}\t{value}\n"));
            }
            1 => {
                let dim = attr(open, "dim").ok_or_else(|| format!("base unit {code}"))?;
                out.push_str(&format!("base\t{code}\t{dim}\n"));
            }
            _ => {
                let metric = if attr(open, "isMetric").as_deref() == Some("yes") { "y" } else { "n" };
                let flag = if attr(open, "isSpecial").as_deref() == Some("yes") {
                    "special"
                } else if attr(open, "isArbitrary").as_deref() == Some("yes") {
                    "arbitrary"
                } else {
                    "-"
                };
                let value_tag = value_tag.ok_or_else(|| format!("unit {code} without value"))?;
                let unit = attr(value_tag, "Unit").unwrap_or_default();
                let value = attr(value_tag, "value").unwrap_or_else(|| "1".into());
                out.push_str(&format!("unit\t{code}\t{metric}\t{flag}\t{value}\t{unit}\n"));
            }
        }
        rest = &rest[end..];
    }
    Ok(out)
}

/// An attribute of an XML opening tag, with the entities UCUM codes use decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    let raw = &tag[start..start + len];
    Some(
        raw.replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parents_of<'a>(defs: &'a [CodeSystemDef], url: &str) -> Option<&'a BTreeMap<String, Vec<String>>> {
        defs.iter().find(|cs| cs.url == url).map(|cs| &cs.parents)
    }

    #[test]
    fn hierarchies_from_nesting_and_link_properties() {
        let bundle = [
            json!({"resourceType": "CodeSystem", "url": "urn:nested", "content": "complete", "concept": [
                {"code": "a", "concept": [{"code": "b", "concept": [{"code": "c"}]}]},
                {"code": "d", "concept": [{"code": "c"}]}
            ]}),
            // terminology.hl7.org writes polyhierarchies as `subsumedBy`; the spec defines
            // `parent` and `child`, which a system may declare under codes of its own.
            json!({"resourceType": "CodeSystem", "url": "urn:properties", "content": "complete",
            "hierarchyMeaning": "is-a",
            "property": [{"code": "up", "uri": "http://hl7.org/fhir/concept-properties#parent", "type": "code"}],
            "concept": [
                {"code": "a"},
                {"code": "b", "property": [{"code": "subsumedBy", "valueCode": "a"}]},
                {"code": "c", "property": [{"code": "parent", "valueCode": "b"}, {"code": "up", "valueCode": "a"}]},
                {"code": "d", "property": [{"code": "child", "valueCode": "e"}, {"code": "status", "valueCode": "x"}]},
                {"code": "e"}
            ]}),
            json!({"resourceType": "CodeSystem", "url": "urn:flat", "content": "complete",
                "concept": [{"code": "x"}, {"code": "y"}]}),
            json!({"resourceType": "CodeSystem", "url": "urn:example", "content": "example",
                "concept": [{"code": "a", "concept": [{"code": "b"}]}]}),
            json!({"resourceType": "CodeSystem", "url": "urn:parts", "content": "complete", "hierarchyMeaning": "part-of",
                "concept": [{"code": "body", "concept": [{"code": "arm"}]}]}),
        ];
        let defs = Terminology::new(&bundle).hierarchies();
        let urls: Vec<&str> = defs.iter().map(|cs| cs.url.as_str()).collect();
        assert_eq!(urls, ["urn:flat", "urn:nested", "urn:properties"], "sorted; partial and part-of systems left out");
        let nested = parents_of(&defs, "urn:nested").expect("nested");
        assert_eq!(nested.get("b"), Some(&vec!["a".to_owned()]));
        assert_eq!(nested.get("c"), Some(&vec!["b".to_owned(), "d".to_owned()]));
        assert!(!nested.contains_key("a"));
        let props = parents_of(&defs, "urn:properties").expect("properties");
        assert_eq!(props.get("b"), Some(&vec!["a".to_owned()]));
        assert_eq!(props.get("c"), Some(&vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(props.get("e"), Some(&vec!["d".to_owned()]));
        assert_eq!(props.len(), 3);
        assert!(parents_of(&defs, "urn:flat").is_some_and(BTreeMap::is_empty));
    }

    #[test]
    fn is_a_filters_follow_link_properties() {
        let bundle = [
            json!({"resourceType": "CodeSystem", "url": "urn:p", "content": "complete", "concept": [
                {"code": "a"}, {"code": "b", "property": [{"code": "subsumedBy", "valueCode": "a"}]}, {"code": "c"}
            ]}),
            json!({"resourceType": "ValueSet", "url": "urn:vs", "compose": {"include": [
                {"system": "urn:p", "filter": [{"property": "concept", "op": "is-a", "value": "a"}]}
            ]}}),
        ];
        let codes = Terminology::new(&bundle).expand("urn:vs", 0).expect("enumerable");
        let codes: Vec<&str> = codes.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(codes, ["a", "b"]);
    }
}
