//! Metric names with labels, for a host API whose metrics have no labels.
//!
//! proxy-wasm metrics are plain names, so labels are encoded in the name the
//! way Istio's own stats extension does it (`label=.=value;.;` segments before
//! the base name) and Envoy's `stats_config.stats_tags` regexes extract them
//! again. With the tag regexes from [`stats_tag_regex`] in the bootstrap,
//! `/stats/prometheus` shows
//! `mcp_llm_tokens_total{org_id="acme",gen_ai_provider_name="openai"} 42`.
//! Envoy puts Wasm metrics under the custom `wasmcustom.` namespace, which the
//! Prometheus output strips.

use std::collections::HashSet;

/// Longest label value kept; longer values are cut.
pub const MAX_LABEL_VALUE_LEN: usize = 64;
/// Value used once a label's cardinality cap is reached, and for empty values.
pub const OTHER: &str = "other";
pub const UNKNOWN: &str = "unknown";

/// `org_id=.=acme;.;gen_ai_provider_name=.=openai;.;mcp_llm_tokens_total`
pub fn labeled(base: &str, labels: &[(&str, &str)]) -> String {
    let mut name = String::with_capacity(base.len() + labels.len() * 24);
    for (label, value) in labels {
        name.push_str(label);
        name.push_str("=.=");
        push_sanitized(&mut name, value);
        name.push_str(";.;");
    }
    name.push_str(base);
    name
}

/// Label values come from clients and upstreams: keep a safe alphabet (no
/// `;`, `=`, spaces or quotes that could break the encoding or the Prometheus
/// text format), cap the length, and never leave it empty.
pub fn sanitize_label_value(value: &str) -> String {
    let mut out = String::new();
    push_sanitized(&mut out, value);
    out
}

fn push_sanitized(out: &mut String, value: &str) {
    let start = out.len();
    for c in value.chars().take(MAX_LABEL_VALUE_LEN) {
        out.push(
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '@') {
                c
            } else {
                '_'
            },
        );
    }
    if out.len() == start {
        out.push_str(UNKNOWN);
    }
}

/// The `stats_tags` regex that extracts `label` from names built by [`labeled`].
pub fn stats_tag_regex(label: &str) -> String {
    format!("({label}=\\.=(.*?);\\.;)")
}

/// Caps how many distinct values one label may take; the rest count as `other`.
#[derive(Debug, Clone)]
pub struct CardinalityCap {
    max: usize,
    seen: HashSet<String>,
}

impl CardinalityCap {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: HashSet::new(),
        }
    }

    /// The sanitized value to use for `value`: itself while the cap allows,
    /// else [`OTHER`].
    pub fn admit(&mut self, value: &str) -> String {
        let value = sanitize_label_value(value);
        if self.seen.contains(&value) {
            return value;
        }
        if self.seen.len() < self.max {
            self.seen.insert(value.clone());
            return value;
        }
        OTHER.to_string()
    }

    /// Like [`admit`](Self::admit), but never takes a new value: for values
    /// nobody vouched for (a model the provider refused), which must not use
    /// up the cap that real values need.
    pub fn lookup(&self, value: &str) -> String {
        let value = sanitize_label_value(value);
        if self.seen.contains(&value) {
            value
        } else {
            OTHER.to_string()
        }
    }
}

/// The name of this filter instance: Envoy's Wasm `config.name`, which Istio
/// sets to `<namespace>.<WasmPlugin name>`. Used as the `plugin` label so two
/// instances of one filter in one proxy count apart.
pub fn plugin_name(host: &dyn crate::stage::Host) -> String {
    host.property(&["plugin_name"])
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_labels_before_base() {
        assert_eq!(
            labeled(
                "mcp_x_total",
                &[("org_id", "acme"), ("gen_ai_system", "openai")]
            ),
            "org_id=.=acme;.;gen_ai_system=.=openai;.;mcp_x_total"
        );
    }

    #[test]
    fn hostile_values_cannot_forge_labels() {
        let name = labeled("m", &[("org_id", "a;.;role=.=admin;.;\"\n")]);
        assert_eq!(name, "org_id=.=a_._role_._admin_.___;.;m");
        assert_eq!(name.matches(";.;").count(), 1);
    }

    #[test]
    fn empty_and_long_values() {
        assert_eq!(sanitize_label_value(""), UNKNOWN);
        assert_eq!(
            sanitize_label_value(&"x".repeat(500)).len(),
            MAX_LABEL_VALUE_LEN
        );
        assert_eq!(sanitize_label_value("gpt-4.1-mini"), "gpt-4.1-mini");
    }

    #[test]
    fn regex_shape() {
        assert_eq!(stats_tag_regex("org_id"), r"(org_id=\.=(.*?);\.;)");
    }

    #[test]
    fn cap_sends_the_rest_to_other() {
        let mut cap = CardinalityCap::new(2);
        assert_eq!(cap.admit("a"), "a");
        assert_eq!(cap.admit("b"), "b");
        assert_eq!(cap.admit("c"), OTHER);
        assert_eq!(cap.admit("a"), "a");
    }
}
