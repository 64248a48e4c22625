//! proxy-wasm glue: compile the config once, then per request read the headers
//! (one host call), ask [`Policy::decide`], and apply the verdict.
//!
//! Every decision is made on the headers. A denied request is answered right
//! there and never waits for its body: Envoy's Proxy-Wasm host turns a paused
//! `on_http_request_headers` into StopAllIterationAndWatermark, which withholds
//! the body from this filter until the headers go on to the router, and a
//! denied request must never reach the upstream, not even its headers
//! (proxy-wasm/proxy-wasm-cpp-host#143). So a denied JSON-RPC POST gets a
//! JSON-RPC error with `"id": null`, as JSON-RPC 2.0 §5 prescribes when the id
//! cannot be determined; its HTTP status and `WWW-Authenticate` are what MCP
//! clients act on.

use crate::config::Config;
use crate::outcome::Outcome;
use crate::policy::{Allowed, Policy, Request, Verdict};
use mesh_core::error_body::{error_body, rpc_code};
use mesh_core::identity::{header as identity_header, state, Identity};
use mesh_core::jsonrpc;
use mesh_core::metrics::labeled;
use mesh_host::{header_in, Counter};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { shared: None })
    });
}}

/// `mcp_auth_requests_total{decision, reason, plugin}`, one counter per
/// outcome; `plugin` is this filter instance's name, so two instances in one
/// proxy (say, one per listener) count apart.
struct Counters([Counter; Outcome::ALL.len()]);

impl Counters {
    fn define(plugin: &str) -> Self {
        Self(Outcome::ALL.map(|o| {
            Counter::define(&labeled(
                "mcp_auth_requests_total",
                &[
                    ("decision", o.decision()),
                    ("reason", o.reason()),
                    ("plugin", plugin),
                ],
            ))
        }))
    }

    fn count(&self, outcome: Outcome) {
        if let Some(counter) = self.0.get(outcome.index()) {
            counter.inc();
        }
    }
}

struct Shared {
    policy: Policy,
    counters: Counters,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = mesh_host::load_config::<Config>(self) else {
            return false;
        };
        let policy = match Policy::new(&config) {
            Ok(policy) => policy,
            Err(err) => {
                mesh_host::log(LogLevel::Critical, &format!("invalid pluginConfig: {err}"));
                return false;
            }
        };
        mesh_host::log(
            LogLevel::Info,
            &format!(
                "configured: {} API keys, {} JWT providers, {} skip paths, {} route rules",
                config.keys.len(),
                config.jwt_providers.len(),
                config.skip_paths.len(),
                config.rules.len()
            ),
        );
        self.shared = Some(Rc::new(Shared {
            policy,
            counters: Counters::define(&mesh_host::plugin_name()),
        }));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Stream { shared }))
    }
}

struct Stream {
    shared: Rc<Shared>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers_bytes();
        let text = |name: &str| header_in(&headers, name).and_then(|v| std::str::from_utf8(v).ok());
        let method = text(":method").unwrap_or("");
        // Lossy, never a fallback: a path with non-UTF-8 bytes keeps its ASCII
        // prefix for the rules, and cannot match a skip path it does not spell.
        let path = header_in(&headers, ":path")
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let verdict = self.shared.policy.decide(
            &Request {
                method,
                path: &path,
                headers: &headers,
            },
            now,
        );
        let present = |name: &str| header_in(&headers, name).is_some();
        if !matches!(verdict, Verdict::Deny(_)) {
            // Other spellings of the identity headers (x_mcp_org_id, ...):
            // found in the snapshot already read, so they cost nothing unless
            // a client sent one.
            for (name, _) in headers
                .iter()
                .filter(|(k, _)| identity_header::reads_as_identity(k))
            {
                self.set_http_request_header(name, None);
            }
        }
        match verdict {
            Verdict::Skip { strip_headers } => {
                for name in identity_header::ALL.iter().filter(|h| present(h)) {
                    self.set_http_request_header(name, None);
                }
                for name in &strip_headers {
                    self.set_http_request_header(name, None);
                }
                self.record(Outcome::SkippedPath);
                Action::Continue
            }
            Verdict::Allow(allowed) => {
                self.hand_off(&allowed, &present);
                self.record(allowed.outcome);
                Action::Continue
            }
            Verdict::Deny(outcome) => {
                self.record(outcome);
                let jsonrpc =
                    !end_of_stream && jsonrpc::is_jsonrpc_post(method, text("content-type"));
                self.reject(outcome, jsonrpc);
                Action::Pause
            }
        }
    }
}

impl Stream {
    /// Removes every client-sent identity header, sets the verified ones
    /// (a set replaces all copies), strips the credential, and writes the
    /// same facts to filter state.
    fn hand_off(&self, allowed: &Allowed, present: &dyn Fn(&str) -> bool) {
        let fields = allowed.identity.fields();
        for (header, key, value) in &fields {
            self.set_http_request_header(header, Some(value));
            mesh_host::set_state(key, value);
        }
        for name in identity_header::ALL {
            if present(name) && !fields.iter().any(|(h, _, _)| *h == name) {
                self.set_http_request_header(name, None);
            }
        }
        for name in &allowed.strip_headers {
            self.set_http_request_header(name, None);
        }
        if let Some(path) = &allowed.new_path {
            self.set_http_request_header(":path", Some(path));
        }
        log_allowed(&allowed.identity);
    }

    fn record(&self, outcome: Outcome) {
        self.shared.counters.count(outcome);
        mesh_host::set_state(state::AUTH_RESULT, outcome.decision());
        mesh_host::set_state(state::AUTH_REASON, outcome.reason());
    }

    /// Answers 401/403 locally: JSON-RPC error for JSON-RPC POSTs, else the
    /// plain JSON error; both carry only fixed words, never a client value.
    fn reject(&self, outcome: Outcome, jsonrpc: bool) {
        let code = if outcome.status() == 403 {
            rpc_code::FORBIDDEN
        } else {
            rpc_code::UNAUTHENTICATED
        };
        let unknown_id = serde_json::Value::Null;
        let id = jsonrpc.then_some(&unknown_id);
        let body = error_body(id, code, outcome.reason(), outcome.message());
        let challenge = outcome.www_authenticate(&self.shared.policy.realm);
        let headers: Vec<(&str, &str)> = challenge
            .as_deref()
            .map(|c| ("www-authenticate", c))
            .into_iter()
            .collect();
        mesh_host::log_lazy(LogLevel::Debug, || {
            format!("denied {}: {}", outcome.status(), outcome.reason())
        });
        mesh_host::send_json(outcome.status(), &headers, &body);
    }
}

fn log_allowed(identity: &Identity) {
    mesh_host::log_lazy(LogLevel::Debug, || {
        format!(
            "allowed: org={} key_id={} plan={} role={}",
            identity.org_id, identity.key_id, identity.plan, identity.role
        )
    });
}
