//! `kustomize build`, the subset these manifests use (there is no kustomize
//! binary in the registries this project can install from).
//!
//! Supported kustomization fields: `resources` (files, and directories with a
//! kustomization), `patches` (strategic merge or JSON 6902, from `path` or
//! inline `patch`, with an optional `target` of group, version, kind, name,
//! namespace and an equality `labelSelector`), `namespace`, `labels` (without
//! `includeSelectors`), `commonLabels` and `commonAnnotations` (metadata only,
//! which is all kustomize changes on custom resources). Order as in kustomize:
//! resources, patches, then namespace and labels. Like kustomize's default
//! load restrictor, files must lie inside the kustomization's folder; a patch
//! that matches nothing and a resource defined twice are errors. Anything else
//! in a kustomization is reported as unsupported, never ignored.

use crate::findings::Finding;
use crate::patch;
use crate::resource::{display_path, AppliedPatch, Resource};
use crate::yaml;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const SUPPORTED: [&str; 8] = [
    "apiVersion",
    "kind",
    "resources",
    "patches",
    "namespace",
    "labels",
    "commonLabels",
    "commonAnnotations",
];

/// The kustomization file of `dir`, if it has one.
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Renders the kustomization in `dir` into its resources.
pub fn build(dir: &Path) -> Result<Vec<Resource>, Finding> {
    build_dir(dir, &mut Vec::new())
}

fn build_dir(dir: &Path, stack: &mut Vec<PathBuf>) -> Result<Vec<Resource>, Finding> {
    let kfile = kustomization_file(dir).ok_or_else(|| {
        Finding::file(
            display_path(dir),
            "<dir>",
            "no kustomization.yaml in this folder",
        )
    })?;
    let kname = display_path(&kfile);
    let err = |field: String, message: String| Finding::file(kname.clone(), field, message);
    let root = dir
        .canonicalize()
        .map_err(|e| err("<dir>".into(), e.to_string()))?;
    if stack.contains(&root) {
        return Err(err(
            "resources".into(),
            "kustomizations include each other in a cycle".into(),
        ));
    }
    stack.push(root.clone());

    let docs = yaml::read_documents(&kfile).map_err(|e| err("<root>".into(), e))?;
    let k = match docs.as_slice() {
        [Value::Object(k)] => k.clone(),
        _ => return Err(err("<root>".into(), "must be one YAML mapping".into())),
    };
    for key in k.keys() {
        if !SUPPORTED.contains(&key.as_str()) {
            return Err(err(
                key.clone(),
                format!(
                    "unsupported by check-config's kustomize subset (supported: {})",
                    SUPPORTED.join(", ")
                ),
            ));
        }
    }

    let mut resources = Vec::new();
    for (i, entry) in list(&k, "resources")
        .map_err(|m| err("resources".into(), m))?
        .iter()
        .enumerate()
    {
        let field = format!("resources[{i}]");
        let rel = entry
            .as_str()
            .ok_or_else(|| err(field.clone(), "must be a path".into()))?;
        let path = dir.join(rel);
        if path.is_dir() {
            resources.extend(build_dir(&path, stack)?);
        } else {
            inside_root(&root, &path).map_err(|m| err(field.clone(), m))?;
            let docs = yaml::read_documents(&path)
                .map_err(|m| Finding::file(display_path(&path), "<root>", m))?;
            resources.extend(docs.into_iter().map(|d| Resource::new(d, &path)));
        }
    }

    for (i, entry) in list(&k, "patches")
        .map_err(|m| err("patches".into(), m))?
        .iter()
        .enumerate()
    {
        apply_patch(dir, &root, &kname, i, entry, &mut resources)?;
    }

    if let Some(ns) = k.get("namespace") {
        let ns = ns
            .as_str()
            .ok_or_else(|| err("namespace".into(), "must be a string".into()))?;
        for r in &mut resources {
            set_metadata(&mut r.value, "namespace", Value::String(ns.to_string()));
        }
    }
    for (field, meta) in [
        ("commonLabels", "labels"),
        ("commonAnnotations", "annotations"),
    ] {
        if let Some(pairs) = k.get(field) {
            let pairs = string_map(pairs).map_err(|m| err(field.into(), m))?;
            add_metadata_pairs(&mut resources, meta, &pairs);
        }
    }
    for (i, entry) in list(&k, "labels")
        .map_err(|m| err("labels".into(), m))?
        .iter()
        .enumerate()
    {
        let field = format!("labels[{i}]");
        if entry.get("includeSelectors").and_then(Value::as_bool) == Some(true) {
            return Err(err(
                field,
                "includeSelectors: true is not supported (it would change WasmPlugin selectors)"
                    .into(),
            ));
        }
        let pairs = entry
            .get("pairs")
            .ok_or_else(|| err(field.clone(), "needs `pairs`".into()))
            .and_then(|p| string_map(p).map_err(|m| err(format!("{field}.pairs"), m)))?;
        add_metadata_pairs(&mut resources, "labels", &pairs);
    }

    let mut seen = HashSet::new();
    for r in &resources {
        if !seen.insert((group(r.api_version()).to_string(), r.id())) {
            return Err(err(
                "resources".into(),
                format!("{} is defined twice (last in {})", r.id(), r.file),
            ));
        }
    }
    stack.pop();
    Ok(resources)
}

fn apply_patch(
    dir: &Path,
    root: &Path,
    kname: &str,
    i: usize,
    entry: &Value,
    resources: &mut [Resource],
) -> Result<(), Finding> {
    let field = format!("patches[{i}]");
    let err = |f: &str, m: String| Finding::file(kname.to_string(), format!("{field}{f}"), m);
    let (body, source) = match (
        entry.get("path").and_then(Value::as_str),
        entry.get("patch").and_then(Value::as_str),
    ) {
        (Some(rel), None) => {
            let path = dir.join(rel);
            inside_root(root, &path).map_err(|m| err(".path", m))?;
            let docs = yaml::read_documents(&path)
                .map_err(|m| Finding::file(display_path(&path), "<root>", m))?;
            match <[Value; 1]>::try_from(docs) {
                Ok([doc]) => (doc, display_path(&path)),
                Err(_) => return Err(err(".path", format!("{rel}: must hold exactly one patch"))),
            }
        }
        (None, Some(inline)) => {
            let docs = yaml::documents(inline).map_err(|m| err(".patch", m))?;
            match <[Value; 1]>::try_from(docs) {
                Ok([doc]) => (doc, format!("{kname} {field}")),
                Err(_) => return Err(err(".patch", "must hold exactly one patch".into())),
            }
        }
        _ => return Err(err("", "needs exactly one of `path` or `patch`".into())),
    };
    let target = match entry.get("target") {
        Some(t) => Some(Target::parse(t).map_err(|m| err(".target", m))?),
        None => None,
    };
    let target = match (&body, target) {
        (_, Some(t)) => t,
        (Value::Object(_), None) => Target::of_patch(&body).map_err(|m| err("", m))?,
        (_, None) => return Err(err(".target", "a JSON 6902 patch needs a target".into())),
    };
    let mut matched = 0;
    for r in resources.iter_mut().filter(|r| target.matches(r)) {
        matched += 1;
        let touched = match &body {
            Value::Array(_) => patch::apply_json6902(&mut r.value, &body)
                .map_err(|m| err("", format!("{}: {m}", r.id())))?,
            _ => {
                let mut smp = body.clone();
                // The patch's own identity fields select, they do not change.
                if let Some(meta) = smp.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("name");
                    meta.remove("namespace");
                }
                patch::merge(&mut r.value, &smp).map_err(|m| err("", m))?;
                patch::merge_touches(&smp)
            }
        };
        r.patches.push(AppliedPatch {
            source: source.clone(),
            touched,
        });
    }
    if matched == 0 {
        return Err(err(
            "",
            format!("matches no resource ({})", target.describe()),
        ));
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Target {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    labels: Vec<(String, String)>,
}

impl Target {
    fn parse(value: &Value) -> Result<Self, String> {
        let map = value.as_object().ok_or("must be a mapping")?;
        let mut t = Target::default();
        for (key, v) in map {
            let s = v
                .as_str()
                .ok_or(format!("{key}: must be a string"))?
                .to_string();
            match key.as_str() {
                "group" => t.group = Some(s),
                "version" => t.version = Some(s),
                "kind" => t.kind = Some(s),
                "name" => t.name = Some(s),
                "namespace" => t.namespace = Some(s),
                "labelSelector" => {
                    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        let (k, v) = term.split_once('=').ok_or(format!(
                            "labelSelector: only `key=value` terms are supported, not `{term}`"
                        ))?;
                        t.labels
                            .push((k.trim_end_matches('=').trim().into(), v.trim().into()));
                    }
                }
                other => return Err(format!("{other}: not supported")),
            }
        }
        Ok(t)
    }

    /// A strategic-merge patch without `target` selects by its own kind and name.
    fn of_patch(body: &Value) -> Result<Self, String> {
        let s = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_string);
        let api = s("/apiVersion");
        let t = Target {
            group: api.as_deref().map(|a| group(a).to_string()),
            version: None,
            kind: s("/kind"),
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
            labels: Vec::new(),
        };
        if t.kind.is_none() || t.name.is_none() {
            return Err(
                "a strategic-merge patch without target needs kind and metadata.name".into(),
            );
        }
        Ok(t)
    }

    fn matches(&self, r: &Resource) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let (g, v) = r
            .api_version()
            .rsplit_once('/')
            .unwrap_or(("", r.api_version()));
        eq(&self.group, g)
            && eq(&self.version, v)
            && eq(&self.kind, r.kind())
            && eq(&self.name, r.name())
            && eq(&self.namespace, r.namespace().unwrap_or_default())
            && self.labels.iter().all(|(k, v)| {
                r.value
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(k))
                    .and_then(Value::as_str)
                    == Some(v)
            })
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("group", &self.group),
            ("version", &self.version),
            ("kind", &self.kind),
            ("name", &self.name),
            ("namespace", &self.namespace),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        for (k, v) in &self.labels {
            parts.push(format!("label {k}={v}"));
        }
        parts.join(", ")
    }
}

fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

fn list<'a>(k: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match k.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err("must be a list".into()),
    }
}

fn string_map(value: &Value) -> Result<Vec<(String, String)>, String> {
    let map = value.as_object().ok_or("must be a mapping of strings")?;
    map.iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                v.as_str()
                    .ok_or(format!("{k}: must be a string"))?
                    .to_string(),
            ))
        })
        .collect()
}

fn set_metadata(doc: &mut Value, key: &str, value: Value) {
    if let Some(obj) = doc.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(key.to_string(), value);
        }
    }
}

fn add_metadata_pairs(resources: &mut [Resource], field: &str, pairs: &[(String, String)]) {
    for r in resources {
        let mut current = r
            .value
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in pairs {
            current.insert(k.clone(), Value::String(v.clone()));
        }
        set_metadata(&mut r.value, field, Value::Object(current));
    }
}

/// kustomize's default load restrictor: files only from inside the folder.
fn inside_root(root: &Path, path: &Path) -> Result<(), String> {
    let real = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", display_path(path)))?;
    if real.starts_with(root) {
        Ok(())
    } else {
        Err(format!(
            "{}: outside the kustomization folder (kustomize refuses it; include its folder as a resource instead)",
            display_path(path)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "check-config-kustomize-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        dir
    }

    const BASE_K: &str = "resources: [plugin.yaml]\nnamespace: production\n";
    const PLUGIN: &str = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: rl, labels: {filter: org-rate-limit}}\nspec:\n  priority: 10\n  pluginConfig: {plans: {free: {requests_per_minute: 60}}, default_plan: free}\n";

    #[test]
    fn overlay_with_both_patch_kinds_namespace_and_labels() {
        let dir = tree(&[
            ("base/kustomization.yaml", BASE_K),
            ("base/plugin.yaml", PLUGIN),
            (
                "prod/kustomization.yaml",
                "resources: [../base]\nnamespace: staging\nlabels: [{pairs: {env: staging}}]\npatches:\n- path: limits.yaml\n- target: {kind: WasmPlugin, labelSelector: filter=org-rate-limit}\n  patch: |\n    - {op: replace, path: /spec/priority, value: 20}\n",
            ),
            (
                "prod/limits.yaml",
                "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: rl}\nspec: {pluginConfig: {plans: {free: {requests_per_minute: 30}}}}\n",
            ),
        ]);
        let out = build(&dir.join("prod")).unwrap();
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.value["metadata"]["namespace"], "staging");
        assert_eq!(r.value["metadata"]["labels"]["env"], "staging");
        assert_eq!(r.value["metadata"]["labels"]["filter"], "org-rate-limit");
        assert_eq!(r.value["spec"]["priority"], 20);
        assert_eq!(
            r.value["spec"]["pluginConfig"]["plans"]["free"]["requests_per_minute"],
            30
        );
        assert_eq!(r.value["spec"]["pluginConfig"]["default_plan"], "free");
        assert!(r.file.ends_with("base/plugin.yaml"), "{}", r.file);
        let blamed = r.blame(&crate::resource::field_segments(
            "spec.pluginConfig.plans.free.requests_per_minute",
        ));
        assert!(blamed.contains("prod/limits.yaml (patch on "), "{blamed}");
        let blamed = r.blame(&["spec".into(), "priority".into()]);
        assert!(blamed.contains("kustomization.yaml patches[1]"), "{blamed}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn mistakes_in_a_kustomization_are_named() {
        let cases: [(&str, &str); 5] = [
            ("resources: [plugin.yaml]\nimages: []\n", "images"),
            ("resources: [plugin.yaml]\npatches: [{path: nope.yaml}]\n", "patches[0].path"),
            (
                "resources: [plugin.yaml]\npatches: [{patch: '{kind: WasmPlugin, metadata: {name: other}}'}]\n",
                "patches[0]",
            ),
            ("resources: [plugin.yaml, plugin.yaml]\n", "resources"),
            ("resources: [plugin.yaml]\npatches: [{patch: '[{op: add, path: /x, value: 1}]'}]\n", "patches[0].target"),
        ];
        for (k, field) in &cases {
            let dir = tree(&[("kustomization.yaml", k), ("plugin.yaml", PLUGIN)]);
            let err = build(&dir).unwrap_err();
            assert_eq!(&err.field, field, "{k}: {err}");
            assert!(err.file.ends_with("kustomization.yaml"), "{err}");
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn files_outside_the_folder_are_refused() {
        let dir = tree(&[
            ("a/kustomization.yaml", "resources: [../plugin.yaml]\n"),
            ("plugin.yaml", PLUGIN),
        ]);
        let err = build(&dir.join("a")).unwrap_err();
        assert!(
            err.message.contains("outside the kustomization folder"),
            "{err}"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
