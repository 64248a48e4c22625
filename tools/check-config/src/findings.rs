//! One finding per mistake: the file to edit, the resource, the field path and
//! the reason, on one line so editors and CI logs can jump to it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file to edit (a patch file when a patch set the offending field).
    pub file: String,
    /// `WasmPlugin production/org-rate-limit-mcp-llm`, or none for a whole file.
    pub resource: Option<String>,
    /// Dotted field path (`spec.pluginConfig.plans.free.requests_per_minute`).
    pub field: String,
    pub message: String,
}

impl Finding {
    pub fn file(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            resource: None,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(resource) = &self.resource {
            write!(f, "{resource}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_every_part() {
        let f = Finding {
            file: "base/x.yaml".into(),
            resource: Some("WasmPlugin production/a".into()),
            field: "spec.pluginConfig.max_orgs".into(),
            message: "must be > 0".into(),
        };
        assert_eq!(
            f.to_string(),
            "base/x.yaml: WasmPlugin production/a: spec.pluginConfig.max_orgs: must be > 0"
        );
        assert_eq!(
            Finding::file("k.yaml", "resources[0]", "not found").to_string(),
            "k.yaml: resources[0]: not found"
        );
    }
}
