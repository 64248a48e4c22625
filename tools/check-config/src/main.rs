//! check-config: checks pluginConfigs and Istio WasmPlugin manifests offline,
//! with the filters' own config parsers (the code `on_configure` runs), and
//! prints every mistake as `file: resource: field.path: reason`.
//!
//! ```text
//! check-config [--filter NAME] PATH...   check (exit 1 on any finding)
//! check-config render [--json] DIR       print a kustomization's resources
//! check-config schemas --write DIR       write the pluginConfig JSON Schemas
//! check-config schemas --check DIR       fail when the committed ones are stale
//! ```
//!
//! A PATH is a kustomization folder (or its kustomization.yaml), a manifest
//! file with any number of YAML documents, `-` for manifests on standard
//! input (`kubectl kustomize DIR | check-config -`), or one pluginConfig (`.json`, or
//! YAML with `--filter`); the filter of a lone pluginConfig comes from
//! `--filter` or from its file name (`org-rate-limit.prod.json`).

mod filters;
mod findings;
mod kustomize;
mod patch;
mod resource;
mod wasmplugin;
mod yaml;

use findings::Finding;
use resource::{display_path, Resource};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  check-config [--filter NAME] PATH...   check kustomization folders, manifest files or pluginConfig files
  check-config render [--json] DIR       print the resources a kustomization renders to
  check-config schemas --write DIR       write one JSON Schema per filter pluginConfig
  check-config schemas --check DIR       fail if the schemas in DIR are not the generated ones";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("render") => render(rest),
        Some("schemas") => schemas(rest),
        Some("-h" | "--help") | None => {
            println!("{USAGE}\n\nfilters: {}", filters::names());
            return ExitCode::SUCCESS;
        }
        Some(_) => check(&args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("check-config: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

// ---- check ------------------------------------------------------------------

fn check(args: &[String]) -> Result<ExitCode, String> {
    let mut filter = None;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--filter" => {
                let name = it.next().ok_or("--filter needs a filter name")?;
                filter = Some(filters::by_name(name).ok_or(format!(
                    "unknown filter `{name}` (one of {})",
                    filters::names()
                ))?);
            }
            flag if flag.starts_with('-') && flag != "-" => {
                return Err(format!("unknown option {flag}"))
            }
            path => paths.push(PathBuf::from(path)),
        }
    }
    if paths.is_empty() {
        return Err("nothing to check".into());
    }

    let mut findings = Vec::new();
    let mut checked = 0;
    let mut skipped = Vec::new();
    for path in &paths {
        let resources = match input_kind(path, filter) {
            Input::Stdin => stdin_manifest(),
            Input::Kustomization(dir) => kustomize::build(&dir),
            Input::Folder => manifest_folder(path),
            Input::Manifest => manifest_file(path),
            Input::PluginConfig(f) => {
                checked += 1;
                findings.extend(check_plugin_config_file(path, f));
                continue;
            }
            Input::Unknown(message) => Err(Finding::file(display_path(path), "<file>", message)),
        };
        match resources {
            Ok(resources) => {
                let report = wasmplugin::check_all(&resources);
                checked += report.checked;
                skipped.extend(report.skipped);
                findings.extend(report.findings);
            }
            Err(f) => findings.push(f),
        }
    }

    for f in &findings {
        println!("{f}");
    }
    for s in &skipped {
        eprintln!(
            "check-config: skipped {s}: not one of our filters ({})",
            filters::names()
        );
    }
    eprintln!(
        "check-config: {checked} pluginConfig(s) checked in {} input(s): {} error(s)",
        paths.len(),
        findings.len()
    );
    if checked == 0 && findings.is_empty() {
        eprintln!("check-config: no WasmPlugin of our filters found");
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

enum Input {
    /// `-`: manifests on standard input.
    Stdin,
    Kustomization(PathBuf),
    /// A folder without a kustomization: every YAML file in it.
    Folder,
    Manifest,
    PluginConfig(&'static filters::Filter),
    Unknown(String),
}

fn input_kind(path: &Path, filter: Option<&'static filters::Filter>) -> Input {
    if path == Path::new("-") {
        return Input::Stdin;
    }
    if path.is_dir() {
        return match kustomize::kustomization_file(path) {
            Some(_) => Input::Kustomization(path.to_path_buf()),
            None => Input::Folder,
        };
    }
    if !path.is_file() {
        return Input::Unknown("no such file or folder".into());
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if kustomize::kustomization_file(path.parent().unwrap_or(Path::new(".")))
        .is_some_and(|k| k == path)
    {
        return Input::Kustomization(path.parent().unwrap_or(Path::new(".")).to_path_buf());
    }
    let is_json = name.ends_with(".json");
    match filter {
        Some(f) => Input::PluginConfig(f),
        None if is_json => {
            let named: Vec<_> = filters::modules()
                .filter(|f| name.contains(f.name))
                .collect();
            match named.as_slice() {
                [f] => Input::PluginConfig(f),
                _ => Input::Unknown(format!(
                    "which filter's pluginConfig is this? pass --filter NAME or put the filter name in the file name ({})",
                    filters::names()
                )),
            }
        }
        None => Input::Manifest,
    }
}

/// Manifests on standard input: what `kubectl kustomize DIR | check-config -` renders.
fn stdin_manifest() -> Result<Vec<Resource>, Finding> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| Finding::file("<stdin>", "<root>", e.to_string()))?;
    let docs = yaml::documents(&text).map_err(|m| Finding::file("<stdin>", "<root>", m))?;
    Ok(docs
        .into_iter()
        .map(|d| Resource::new(d, Path::new("<stdin>")))
        .collect())
}

fn manifest_file(path: &Path) -> Result<Vec<Resource>, Finding> {
    let docs =
        yaml::read_documents(path).map_err(|m| Finding::file(display_path(path), "<root>", m))?;
    Ok(docs.into_iter().map(|d| Resource::new(d, path)).collect())
}

/// Every `.yaml` / `.yml` under `dir`, in path order; checked together, so
/// the chain order is checked across files too.
fn manifest_folder(dir: &Path) -> Result<Vec<Resource>, Finding> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| Finding::file(display_path(&d), "<dir>", e.to_string()))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                pending.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut resources = Vec::new();
    for f in &files {
        resources.extend(manifest_file(f)?);
    }
    Ok(resources)
}

fn check_plugin_config_file(path: &Path, filter: &filters::Filter) -> Vec<Finding> {
    let file = display_path(path);
    let resource = Some(format!("{} pluginConfig", filter.name));
    let value = match yaml::read_documents(path) {
        Ok(docs) => match <[Value; 1]>::try_from(docs) {
            Ok([doc]) => doc,
            Err(_) => {
                return vec![Finding::file(
                    file,
                    "<root>",
                    "must hold exactly one pluginConfig",
                )]
            }
        },
        Err(m) => return vec![Finding::file(file, "<root>", m)],
    };
    // A JSON file is what a filter gets from a plain Envoy config; YAML ones go
    // through Istio's Struct conversion like a WasmPlugin's pluginConfig.
    let mut lossy = Vec::new();
    let json = if path.extension().is_some_and(|e| e == "json") {
        value
    } else {
        yaml::as_struct_json(&value, "", &mut lossy)
    };
    let mut out: Vec<Finding> = lossy
        .into_iter()
        .map(|field| Finding {
            file: file.clone(),
            resource: resource.clone(),
            field: field.trim_start_matches('.').to_string(),
            message: "integer above 2^53: Istio's protobuf Struct would change it".into(),
        })
        .collect();
    if let Err(e) = filter.load(json.to_string().as_bytes()) {
        out.push(Finding {
            file,
            resource,
            field: e.field,
            message: e.reason,
        });
    }
    out
}

// ---- render -----------------------------------------------------------------

fn render(args: &[String]) -> Result<ExitCode, String> {
    let (as_json, dir) = match args {
        [flag, dir] if flag == "--json" => (true, dir),
        [dir] => (false, dir),
        _ => return Err("render takes [--json] DIR".into()),
    };
    let resources = match kustomize::build(Path::new(dir)) {
        Ok(r) => r,
        Err(f) => {
            println!("{f}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if as_json {
        let out: Vec<Value> = resources
            .iter()
            .map(|r| {
                json!({
                    "file": r.file,
                    "patches": r.patches.iter().map(|p| p.source.clone()).collect::<Vec<_>>(),
                    "resource": r.value,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        for r in &resources {
            let text = serde_norway::to_string(&r.value).map_err(|e| e.to_string())?;
            print!("---\n# from {}\n{text}", r.file);
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---- schemas ----------------------------------------------------------------

fn schema_text(filter: &filters::Filter) -> Result<String, String> {
    serde_json::to_string_pretty(&filter.schema())
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

fn schemas(args: &[String]) -> Result<ExitCode, String> {
    let (mode, dir) = match args {
        [mode, dir] if mode == "--write" || mode == "--check" => (mode.as_str(), Path::new(dir)),
        _ => return Err("schemas takes --write DIR or --check DIR".into()),
    };
    let mut stale = Vec::new();
    for filter in filters::modules() {
        let path = dir.join(format!("{}.json", filter.name));
        let text = schema_text(filter)?;
        if mode == "--write" {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {}", display_path(&path));
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(display_path(&path));
        }
    }
    for path in &stale {
        println!(
            "{path}: out of date with the filter's config types: run `make schemas` and commit it"
        );
    }
    Ok(if stale.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schemas/*.json must be what the config types generate.
    #[test]
    fn committed_schemas_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        for filter in filters::modules() {
            let path = dir.join(format!("{}.json", filter.name));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == schema_text(filter).unwrap(),
                "{} is out of date with {}'s config types: run `make schemas` and commit it",
                display_path(&path),
                filter.name
            );
        }
    }
}
