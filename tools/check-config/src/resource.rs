//! A Kubernetes resource with where it came from: the file that defines it and
//! the patches an overlay applied to it.

use crate::patch::FieldPath;
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone)]
pub struct AppliedPatch {
    /// `overlays/production/patches/limits.yaml`, or `.../kustomization.yaml patches[2]` when inline.
    pub source: String,
    pub touched: Vec<FieldPath>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub value: Value,
    pub file: String,
    pub patches: Vec<AppliedPatch>,
}

impl Resource {
    pub fn new(value: Value, file: &Path) -> Self {
        Self {
            value,
            file: display_path(file),
            patches: Vec::new(),
        }
    }

    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }

    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion").unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.str_at("/kind").unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.str_at("/metadata/name").unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace")
    }

    /// `WasmPlugin production/org-rate-limit-mcp-llm`
    pub fn id(&self) -> String {
        let kind = if self.kind().is_empty() {
            "<no kind>"
        } else {
            self.kind()
        };
        let name = if self.name().is_empty() {
            "<no name>"
        } else {
            self.name()
        };
        match self.namespace() {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        }
    }

    /// The file to edit for a mistake at `field`: the last patch that set the
    /// field (or a parent or child of it), else the file defining the resource.
    pub fn blame(&self, field: &[String]) -> String {
        let related = |t: &FieldPath| t.starts_with(field) || field.starts_with(t);
        match self
            .patches
            .iter()
            .rev()
            .find(|p| p.touched.iter().any(related))
        {
            Some(p) => format!("{} (patch on {})", p.source, self.file),
            None => self.file.clone(),
        }
    }
}

/// `a/b/../c/./d.yaml` -> `a/c/d.yaml`, lexically: what the user typed, tidied.
pub fn display_path(path: &Path) -> String {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.to_string_lossy().into_owned()
}

/// `spec.pluginConfig.keys[2].hash` -> `["spec", "pluginConfig", "keys", "2", "hash"]`
pub fn field_segments(dotted: &str) -> Vec<String> {
    dotted
        .split('.')
        .flat_map(|part| part.split(['[', ']']))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_and_paths() {
        let r = Resource::new(
            json!({"kind": "WasmPlugin", "metadata": {"name": "a", "namespace": "production"}}),
            Path::new("x/./overlays/../base/a.yaml"),
        );
        assert_eq!(r.id(), "WasmPlugin production/a");
        assert_eq!(r.file, "x/base/a.yaml");
        assert_eq!(
            field_segments("spec.pluginConfig.keys[2].hash"),
            vec!["spec", "pluginConfig", "keys", "2", "hash"]
        );
    }

    #[test]
    fn blame_prefers_the_last_patch_touching_the_field() {
        let mut r = Resource::new(json!({}), Path::new("base.yaml"));
        let seg = |s: &str| field_segments(s);
        r.patches.push(AppliedPatch {
            source: "p1.yaml".into(),
            touched: vec![seg("spec.pluginConfig.plans")],
        });
        r.patches.push(AppliedPatch {
            source: "p2.yaml".into(),
            touched: vec![seg("spec.priority")],
        });
        assert_eq!(
            r.blame(&seg("spec.pluginConfig.plans.free.burst")),
            "p1.yaml (patch on base.yaml)"
        );
        assert_eq!(
            r.blame(&seg("spec.pluginConfig")),
            "p1.yaml (patch on base.yaml)"
        );
        assert_eq!(r.blame(&seg("spec.url")), "base.yaml");
    }
}
