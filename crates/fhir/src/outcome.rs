//! OperationOutcome: how every failure is told to a FHIR client.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// One OperationOutcome issue: what is wrong (`code` from the R4 issue-type value set, and a
/// human `diagnostics`) and where (`expression`, FHIRPath).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: String,
    pub diagnostics: String,
    pub expression: Vec<String>,
}

impl Issue {
    fn new(severity: Severity, code: &str, diagnostics: impl Into<String>) -> Self {
        Issue { severity, code: code.to_owned(), diagnostics: diagnostics.into(), expression: Vec::new() }
    }

    pub fn error(code: &str, diagnostics: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, diagnostics)
    }

    pub fn warning(code: &str, diagnostics: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, diagnostics)
    }

    pub fn information(code: &str, diagnostics: impl Into<String>) -> Self {
        Self::new(Severity::Information, code, diagnostics)
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }

    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Fatal | Severity::Error)
    }
}

/// An R4 OperationOutcome for the issues; with none, a single informational "All OK".
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = if issues.is_empty() {
        vec![json!({"severity": "information", "code": "informational", "diagnostics": "All OK"})]
    } else {
        issues
            .iter()
            .map(|i| {
                let mut v = json!({"severity": i.severity.as_str(), "code": i.code, "diagnostics": i.diagnostics});
                if !i.expression.is_empty() {
                    v["expression"] = json!(i.expression);
                }
                v
            })
            .collect()
    };
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

pub fn has_errors(issues: &[Issue]) -> bool {
    issues.iter().any(Issue::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_shape() {
        let oo = operation_outcome(&[Issue::error("value", "bad date").at("Patient.birthDate")]);
        assert_eq!(oo["issue"][0]["severity"], "error");
        assert_eq!(oo["issue"][0]["expression"][0], "Patient.birthDate");
        assert_eq!(operation_outcome(&[])["issue"][0]["code"], "informational");
        assert!(has_errors(&[Issue::error("x", "y")]));
        assert!(!has_errors(&[Issue::warning("x", "y")]));
    }
}
