//! FHIRPath locations of elements, built on the stack as a walk descends and rendered only
//! when something is reported there. A choice element is named by its JSON name
//! (`Observation.valueQuantity.value`), which FHIR servers commonly accept as FHIRPath.

use std::fmt::Write;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Path::Root(name) => out.push_str(name),
            Path::Field(parent, name) => {
                parent.write(out);
                out.push('.');
                out.push_str(name);
            }
            Path::Index(parent, i) => {
                parent.write(out);
                let _ = write!(out, "[{i}]");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fhirpath() {
        let root = Path::Root("Patient");
        let name = Path::Field(&root, "name");
        let first = Path::Index(&name, 0);
        let given = Path::Field(&first, "given");
        assert_eq!(Path::Index(&given, 1).render(), "Patient.name[0].given[1]");
    }
}
