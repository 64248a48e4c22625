//! Which requests are LLM calls, in which API format, to which provider.
//!
//! Split in two so the filter reads `:authority` only for requests whose path
//! already matched: most traffic through a sidecar costs one header read.

use crate::config::Config;
use mesh_core::llm_usage::{host_of, provider_for_host, Api, KNOWN_HOSTS};

/// An LLM call recognized from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub api: Api,
    /// Provider named by a config route, if any.
    pub route_provider: Option<String>,
    /// Model named by the path (Gemini: `models/{model}:generateContent`).
    pub path_model: Option<String>,
}

/// Config routes first (by longest prefix), then the providers' own paths.
pub fn match_path(config: &Config, path: &str) -> Option<Matched> {
    let route = config
        .routes
        .iter()
        .filter(|r| path.starts_with(&r.path_prefix))
        .max_by_key(|r| r.path_prefix.len());
    if let Some(route) = route {
        let api = route.api.api();
        let path_model = match api {
            Api::Gemini => Api::from_path(path).and_then(|(_, m)| m).map(String::from),
            _ => None,
        };
        return Some(Matched {
            api,
            route_provider: route.provider.clone(),
            path_model,
        });
    }
    let (api, model) = Api::from_path(path)?;
    Some(Matched {
        api,
        route_provider: None,
        path_model: model.map(String::from),
    })
}

/// Every `gen_ai.provider.name` this config can give a call: its routes'
/// and hosts' providers, the built-in hosts', and each API's default.
pub fn known_providers(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = config
        .routes
        .iter()
        .filter_map(|r| r.provider.clone())
        .chain(config.hosts.values().cloned())
        .chain(KNOWN_HOSTS.iter().map(|(_, p)| (*p).to_string()))
        .chain(Api::ALL.iter().map(|a| a.default_provider().to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `gen_ai.provider.name`: the config route's, else the upstream host's
/// (config `hosts`, then the built-in table), else the API format's.
pub fn provider(config: &Config, matched: &Matched, authority: Option<&str>) -> String {
    if let Some(p) = &matched.route_provider {
        return p.clone();
    }
    if let Some(authority) = authority {
        let host = host_of(authority);
        let configured: Vec<(&str, &str)> = config
            .hosts
            .iter()
            .map(|(h, p)| (h.as_str(), p.as_str()))
            .collect();
        if let Some(p) =
            provider_for_host(&configured, &host).or_else(|| provider_for_host(KNOWN_HOSTS, &host))
        {
            return p.to_string();
        }
    }
    matched.api.default_provider().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config_error::load;

    fn config() -> Config {
        load(
            br#"{"hosts":{"vllm.internal":"vllm",".corp.example":"openai","api.openai.com":"openai-proxy"},
                 "routes":[{"path_prefix":"/internal/","api":"openai_chat","provider":"mcp-llm"},
                           {"path_prefix":"/internal/gemini/","api":"gemini"}]}"#,
        )
        .unwrap()
    }

    fn provider_of(path: &str, authority: Option<&str>) -> Option<String> {
        let c = config();
        match_path(&c, path).map(|m| provider(&c, &m, authority))
    }

    #[test]
    fn known_providers_are_every_name_a_call_can_get() {
        assert_eq!(
            known_providers(&config()),
            [
                "anthropic",
                "azure.ai.inference",
                "azure.ai.openai",
                "deepseek",
                "gcp.gemini",
                "gcp.vertex_ai",
                "groq",
                "mcp-llm",
                "mistral_ai",
                "openai",
                "openai-proxy",
                "perplexity",
                "vllm",
                "x_ai"
            ]
        );
    }

    #[test]
    fn providers_by_route_host_and_api() {
        assert_eq!(
            provider_of("/v1/messages", Some("api.anthropic.com")).as_deref(),
            Some("anthropic")
        );
        assert_eq!(
            provider_of("/v1/chat/completions", Some("vllm.internal:8000")).as_deref(),
            Some("vllm")
        );
        assert_eq!(
            provider_of("/v1/chat/completions", Some("a.corp.example")).as_deref(),
            Some("openai")
        );
        // config overrides the built-in table
        assert_eq!(
            provider_of("/v1/responses", Some("api.openai.com")).as_deref(),
            Some("openai-proxy")
        );
        // unknown host: the API format's provider
        assert_eq!(
            provider_of("/v1beta/models/g:generateContent", Some("127.0.0.1:10000")).as_deref(),
            Some("gcp.gemini")
        );
        assert_eq!(
            provider_of("/v1/chat/completions", None).as_deref(),
            Some("openai")
        );
        assert_eq!(
            provider_of("/internal/chat", Some("api.anthropic.com")).as_deref(),
            Some("mcp-llm")
        );
        assert_eq!(provider_of("/mcp", Some("api.openai.com")), None);
    }

    #[test]
    fn longest_route_wins_and_gemini_routes_keep_the_path_model() {
        let c = config();
        let m = match_path(
            &c,
            "/internal/gemini/models/gemini-2.0-flash:generateContent",
        )
        .unwrap();
        assert_eq!(m.api, Api::Gemini);
        assert_eq!(m.path_model.as_deref(), Some("gemini-2.0-flash"));
        assert_eq!(m.route_provider, None);
        assert_eq!(match_path(&c, "/internal/x").unwrap().api, Api::OpenAiChat);
    }
}
