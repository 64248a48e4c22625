//! Checks of `WasmPlugin` resources that load one of our filters: which
//! filter it is, the pinned image, the phase, the order of the chain on each
//! workload, and above all the `pluginConfig`, run through the filter's own
//! parser exactly as the sidecar receives it.

use crate::filters::{self, Filter};
use crate::findings::Finding;
use crate::resource::{field_segments, Resource};
use crate::yaml;
use serde_json::Value;

pub const API_VERSION: &str = "extensions.istio.io/v1alpha1";

#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// WasmPlugins of our filters that were checked.
    pub checked: usize,
    /// WasmPlugins of other modules, left alone.
    pub skipped: Vec<String>,
}

/// The fields of a TrafficExtension's `spec.wasm`: Istio 1.30's successor of
/// WasmPlugin carries the same fields there.
const WASM_FIELDS: [&str; 10] = [
    "failStrategy",
    "imagePullPolicy",
    "imagePullSecret",
    "pluginConfig",
    "pluginName",
    "sha256",
    "type",
    "url",
    "verificationKey",
    "vmConfig",
];

/// A TrafficExtension with a `wasm` module as the WasmPlugin it is (its
/// `spec.wasm` fields lifted into `spec`), so one set of checks serves both.
fn as_wasm_plugin(r: &Resource) -> Option<Resource> {
    let spec = r.value.get("spec")?.as_object()?;
    let wasm = spec.get("wasm")?.as_object()?;
    let mut flat = spec.clone();
    flat.remove("wasm");
    for (k, v) in wasm {
        flat.insert(k.clone(), v.clone());
    }
    let mut value = r.value.clone();
    *value.get_mut("spec")? = Value::Object(flat);
    Some(Resource {
        value,
        file: r.file.clone(),
        patches: r.patches.clone(),
    })
}

/// A finding on the lifted view, named by the TrafficExtension's own path.
fn to_traffic_extension(mut f: Finding) -> Finding {
    if let Some(rest) = f.field.strip_prefix("spec.") {
        let key = rest.split(['.', '[']).next().unwrap_or(rest);
        if WASM_FIELDS.contains(&key) {
            f.field = format!("spec.wasm.{rest}");
        }
    }
    f
}

/// Checks every WasmPlugin in `resources`, and every TrafficExtension that
/// loads a Wasm module (other kinds are ignored).
pub fn check_all(resources: &[Resource]) -> Report {
    let lifted: Vec<Resource> = resources
        .iter()
        .filter(|r| r.kind() == "TrafficExtension")
        .filter_map(as_wasm_plugin)
        .collect();
    let mut report = check_plugins(
        resources
            .iter()
            .filter(|r| r.kind() == "WasmPlugin")
            .chain(&lifted),
    );
    report.findings = report
        .findings
        .into_iter()
        .map(|f| {
            if f.resource
                .as_deref()
                .is_some_and(|id| id.starts_with("TrafficExtension "))
            {
                to_traffic_extension(f)
            } else {
                f
            }
        })
        .collect();
    report
}

fn check_plugins<'a>(plugins: impl Iterator<Item = &'a Resource>) -> Report {
    let mut report = Report::default();
    let mut ours = Vec::new();
    for r in plugins {
        match identify(r) {
            Identity::Ours(filter) => {
                report.checked += 1;
                check_one(r, filter, &mut report.findings);
                ours.push((r, filter));
            }
            Identity::Mistake(field, message) => {
                report.checked += 1;
                report.findings.push(finding(r, &field, message));
            }
            Identity::Other => report.skipped.push(r.id()),
        }
    }
    check_order(&ours, &mut report.findings);
    report
}

fn finding(r: &Resource, field: &str, message: impl Into<String>) -> Finding {
    Finding {
        file: r.blame(&field_segments(field)),
        resource: Some(r.id()),
        field: field.to_string(),
        message: message.into(),
    }
}

fn spec_str<'a>(r: &'a Resource, key: &str) -> Option<&'a str> {
    r.value
        .pointer(&format!("/spec/{key}"))
        .and_then(Value::as_str)
}

enum Identity {
    Ours(&'static Filter),
    Mistake(String, String),
    Other,
}

/// Our filters are named by `pluginName` (the root id, as in local/envoy.yaml)
/// and by the last segment of the image repository; the two must agree.
fn identify(r: &Resource) -> Identity {
    let by_plugin = spec_str(r, "pluginName").and_then(filters::by_name);
    let by_url = spec_str(r, "url")
        .map(url_module)
        .and_then(filters::by_name);
    match (by_plugin, by_url) {
        (Some(p), Some(u)) if p.name != u.name => Identity::Mistake(
            "spec.pluginName".into(),
            format!("is `{}` but spec.url is the `{}` image", p.name, u.name),
        ),
        (Some(p), _) => Identity::Ours(p),
        (None, Some(u)) => Identity::Mistake(
            "spec.pluginName".into(),
            format!(
                "must be `{}` (the filter's root id) for the `{}` image",
                u.name, u.name
            ),
        ),
        (None, None) => Identity::Other,
    }
}

/// `oci://ghcr.io/acme/mesh/org-rate-limit:0.1.0@sha256:..` -> `org-rate-limit`;
/// `https://host/path/org-rate-limit.wasm` -> `org-rate-limit`.
pub fn url_module(url: &str) -> &str {
    let no_digest = url.split('@').next().unwrap_or(url);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let no_tag = last.split(':').next().unwrap_or(last);
    no_tag.strip_suffix(".wasm").unwrap_or(no_tag)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_one(r: &Resource, filter: &'static Filter, out: &mut Vec<Finding>) {
    if r.api_version() != API_VERSION {
        out.push(finding(r, "apiVersion", format!("must be {API_VERSION}")));
    }
    if let Some(t) = spec_str(r, "type") {
        if t != "HTTP" {
            out.push(finding(
                r,
                "spec.type",
                format!("must be HTTP: {} is an HTTP filter", filter.name),
            ));
        }
    }
    let first = filters::first_section(filter, r.value.pointer("/spec/pluginConfig"));
    match spec_str(r, "phase") {
        Some(p) if p == first.phase => {}
        other => out.push(finding(
            r,
            "spec.phase",
            format!(
                "must be {} for {}{} (is {}): the identity and filter-state contracts assume auth, rate limit, access log, token usage",
                first.phase,
                filter.name,
                if first.name == filter.name {
                    String::new()
                } else {
                    format!(" (first stage {})", first.name)
                },
                other.unwrap_or("unset")
            ),
        )),
    }
    check_pin(r, out);
    check_plugin_config(r, filter, out);
}

fn check_pin(r: &Resource, out: &mut Vec<Finding>) {
    let url = spec_str(r, "url").unwrap_or_default();
    let url_digest = url.split_once("@sha256:").map(|(_, d)| d);
    let sha = spec_str(r, "sha256");
    if let Some(d) = url_digest {
        if !is_sha256_hex(d) {
            out.push(finding(
                r,
                "spec.url",
                "digest after @sha256: must be 64 lowercase hex digits",
            ));
        }
    }
    match (url_digest, sha) {
        (None, None) => out.push(finding(
            r,
            "spec.url",
            "not pinned: add @sha256:<digest> and spec.sha256 (make pin-digests writes both)",
        )),
        (_, Some(s)) if !is_sha256_hex(s) => out.push(finding(
            r,
            "spec.sha256",
            "must be 64 lowercase hex digits (no sha256: prefix)",
        )),
        (Some(d), Some(s)) if d != s => out.push(finding(
            r,
            "spec.sha256",
            "differs from the digest in spec.url (Istio refuses the module)",
        )),
        _ => {}
    }
}

fn check_plugin_config(r: &Resource, filter: &Filter, out: &mut Vec<Finding>) {
    let config = r
        .value
        .pointer("/spec/pluginConfig")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    if !config.is_object() {
        out.push(finding(
            r,
            "spec.pluginConfig",
            "must be a mapping (Istio stores it as a protobuf Struct)",
        ));
        return;
    }
    let mut lossy = Vec::new();
    let json = yaml::as_struct_json(&config, "spec.pluginConfig", &mut lossy);
    for field in lossy {
        out.push(finding(
            r,
            &field,
            "integer above 2^53: Istio's protobuf Struct turns it into a double and changes it",
        ));
    }
    if let Err(e) = filter.load(json.to_string().as_bytes()) {
        let field = if e.field == "<root>" {
            "spec.pluginConfig".to_string()
        } else {
            format!("spec.pluginConfig.{}", e.field)
        };
        out.push(finding(r, &field, e.reason));
    }
}

// ---- order of the chain on each workload -----------------------------------

const PHASES: [&str; 4] = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"];

/// Where Istio puts the plugin: by phase, then higher priority first.
fn position(r: &Resource) -> (usize, i64) {
    let phase = spec_str(r, "phase").unwrap_or("UNSPECIFIED_PHASE");
    let phase_rank = PHASES
        .iter()
        .position(|p| *p == phase)
        .unwrap_or(PHASES.len());
    let priority = r
        .value
        .pointer("/spec/priority")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    (phase_rank, -priority)
}

/// Traffic modes the plugin applies to (no `match`, or a match without mode: all).
fn modes(r: &Resource) -> Vec<&str> {
    const ALL: [&str; 3] = ["CLIENT", "SERVER", "GATEWAY"];
    let Some(items) = r.value.pointer("/spec/match").and_then(Value::as_array) else {
        return ALL.to_vec();
    };
    let mut out = Vec::new();
    for item in items {
        match item.get("mode").and_then(Value::as_str) {
            None | Some("UNDEFINED") => return ALL.to_vec(),
            Some("CLIENT_AND_SERVER") => out.extend(["CLIENT", "SERVER"]),
            Some(m) => out.push(m),
        }
    }
    out
}

fn labels(r: &Resource) -> Option<Vec<(String, String)>> {
    if r.value.pointer("/spec/targetRefs").is_some() || r.value.pointer("/spec/targetRef").is_some()
    {
        return None; // attached by reference: not comparable by labels
    }
    let map = r
        .value
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    Some(
        map.map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default(),
    )
}

/// Two plugins can meet on one workload when one selector is contained in the
/// other (an empty selector means every workload of the namespace).
fn may_share_workload(a: &Resource, b: &Resource) -> bool {
    if a.namespace() != b.namespace() {
        return false;
    }
    let (Some(la), Some(lb)) = (labels(a), labels(b)) else {
        return false;
    };
    let subset = |x: &[(String, String)], y: &[(String, String)]| x.iter().all(|p| y.contains(p));
    let shared_mode = modes(a).iter().any(|m| modes(b).contains(m));
    shared_mode && (subset(&la, &lb) || subset(&lb, &la))
}

fn check_order(plugins: &[(&Resource, &'static Filter)], out: &mut Vec<Finding>) {
    // An mcp-mesh plugin takes its first stage's place in the chain.
    let plugins: Vec<(&Resource, &Filter)> = plugins
        .iter()
        .map(|(r, f)| {
            (
                *r,
                filters::first_section(f, r.value.pointer("/spec/pluginConfig")),
            )
        })
        .collect();
    for (i, (a, fa)) in plugins.iter().enumerate() {
        for (b, fb) in plugins.iter().skip(i + 1) {
            if fa.name == fb.name || !may_share_workload(a, b) {
                continue;
            }
            let (first, ff, second, fs) = if fa.rank < fb.rank {
                (a, fa, b, fb)
            } else {
                (b, fb, a, fa)
            };
            let (pf, ps) = (position(first), position(second));
            if pf == ps {
                out.push(finding(
                    second,
                    "spec.priority",
                    format!(
                        "same phase and priority as {} ({}): Istio then orders them by name, so a rename would reorder the chain; give {} the higher priority",
                        first.id(),
                        ff.name,
                        ff.name
                    ),
                ));
            } else if ps < pf {
                out.push(finding(
                    second,
                    "spec.priority",
                    format!(
                        "{} would run before {} ({}) on a shared workload; the chain is auth, MCP guard, rate limit, access log, token usage",
                        fs.name,
                        ff.name,
                        first.id()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn plugin(name: &str, filter: &str, phase: &str, priority: i64, config: Value) -> Resource {
        Resource::new(
            json!({
                "apiVersion": API_VERSION,
                "kind": "WasmPlugin",
                "metadata": {"name": name, "namespace": "production"},
                "spec": {
                    "selector": {"matchLabels": {"app": "mcp-gateway"}},
                    "pluginName": filter,
                    "url": format!("oci://registry.example/mesh/{filter}@sha256:{DIGEST}"),
                    "sha256": DIGEST,
                    "phase": phase,
                    "priority": priority,
                    "pluginConfig": config
                }
            }),
            Path::new("base/p.yaml"),
        )
    }

    #[test]
    fn a_good_chain_has_no_findings() {
        let report = check_all(&[
            plugin("auth", "api-key-auth", "AUTHN", 10, json!({})),
            plugin("rl", "org-rate-limit", "AUTHZ", 10, json!({})),
            plugin("log", "debate-access-log", "STATS", 20, json!({})),
            plugin("tok", "token-usage-metrics", "STATS", 10, json!({})),
        ]);
        assert_eq!(report.findings, vec![]);
        assert_eq!(report.checked, 4);
    }

    #[test]
    fn plugin_config_errors_carry_the_full_field_path() {
        let report = check_all(&[plugin(
            "tok",
            "token-usage-metrics",
            "STATS",
            10,
            json!({"max_orgs": 0}),
        )]);
        let f = &report.findings[0];
        assert_eq!(f.field, "spec.pluginConfig.max_orgs");
        assert_eq!(f.resource.as_deref(), Some("WasmPlugin production/tok"));
        assert_eq!(f.file, "base/p.yaml");
        let report = check_all(&[plugin(
            "tok",
            "token-usage-metrics",
            "STATS",
            10,
            json!({"max_orgs": "x"}),
        )]);
        assert_eq!(report.findings[0].field, "spec.pluginConfig.max_orgs");
        assert!(
            report.findings[0].message.contains("invalid type"),
            "{:?}",
            report.findings
        );
    }

    #[test]
    fn integral_floats_are_accepted_like_istio_sends_them() {
        let report = check_all(&[plugin(
            "tok",
            "token-usage-metrics",
            "STATS",
            10,
            json!({"max_orgs": 5.0}),
        )]);
        assert_eq!(report.findings, vec![]);
    }

    #[test]
    fn identity_phase_and_pin_mistakes() {
        let mut p = plugin("x", "api-key-auth", "STATS", 10, json!({}));
        p.value["spec"]["url"] = json!("oci://registry.example/mesh/org-rate-limit:0.1.0");
        p.value["spec"].as_object_mut().unwrap().remove("sha256");
        let report = check_all(&[p]);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(report.findings[0].field, "spec.pluginName");

        let mut p = plugin("x", "api-key-auth", "STATS", 10, json!({}));
        p.value["spec"]["sha256"] = json!(DIGEST.replace('0', "f"));
        let fields: Vec<_> = check_all(&[p])
            .findings
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, vec!["spec.phase", "spec.sha256"]);

        let mut p = plugin("x", "api-key-auth", "AUTHN", 10, json!({}));
        p.value["spec"]["url"] = json!("oci://registry.example/mesh/api-key-auth:latest");
        p.value["spec"].as_object_mut().unwrap().remove("sha256");
        assert_eq!(check_all(&[p]).findings[0].field, "spec.url");
    }

    #[test]
    fn other_modules_are_skipped() {
        let mut p = plugin("x", "openid", "AUTHN", 10, json!({"anything": 1}));
        p.value["spec"]["url"] = json!("oci://registry.example/openid:1");
        let report = check_all(&[p]);
        assert_eq!(
            (report.checked, report.skipped.len(), report.findings.len()),
            (0, 1, 0)
        );
    }

    #[test]
    fn chain_order_is_checked_per_shared_workload() {
        // Access log with a lower priority than token usage in the same phase.
        let report = check_all(&[
            plugin("log", "debate-access-log", "STATS", 5, json!({})),
            plugin("tok", "token-usage-metrics", "STATS", 10, json!({})),
        ]);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(
            report.findings[0].resource.as_deref(),
            Some("WasmPlugin production/tok")
        );

        let report = check_all(&[
            plugin("log", "debate-access-log", "STATS", 10, json!({})),
            plugin("tok", "token-usage-metrics", "STATS", 10, json!({})),
        ]);
        assert!(
            report.findings[0]
                .message
                .contains("same phase and priority"),
            "{:?}",
            report.findings
        );

        // Different modes never meet: token usage on CLIENT, access log on SERVER.
        let mut log = plugin("log", "debate-access-log", "STATS", 5, json!({}));
        log.value["spec"]["match"] = json!([{"mode": "SERVER"}]);
        let mut tok = plugin("tok", "token-usage-metrics", "STATS", 10, json!({}));
        tok.value["spec"]["match"] = json!([{"mode": "CLIENT", "ports": [{"number": 80}]}]);
        assert_eq!(check_all(&[log.clone(), tok.clone()]).findings, vec![]);
        log.value["spec"]["match"] = json!([{"mode": "CLIENT_AND_SERVER"}]);
        assert_eq!(check_all(&[log, tok]).findings.len(), 1);
    }

    #[test]
    fn url_module_names() {
        assert_eq!(
            url_module("oci://r.io/a/b/org-rate-limit:0.1.0@sha256:ab"),
            "org-rate-limit"
        );
        assert_eq!(
            url_module("oci://r.io/a/api-key-auth@sha256:ab"),
            "api-key-auth"
        );
        assert_eq!(
            url_module("https://h/x/token-usage-metrics.wasm"),
            "token-usage-metrics"
        );
        assert_eq!(
            url_module("oci://localhost:5000/debate-access-log"),
            "debate-access-log"
        );
    }
}
