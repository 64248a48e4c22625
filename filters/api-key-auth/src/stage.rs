//! The api-key-auth stage: per request, read the header snapshot, ask
//! [`Policy::decide`], and apply the verdict.
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

use crate::assertion::Minter;
use crate::config::Config;
use crate::outcome::Outcome;
use crate::policy::{Allowed, Policy, Request, Verdict};
use mesh_core::config_error::{self, ConfigError};
use mesh_core::error_body::{error_body, rpc_code};
use mesh_core::identity::{header as identity_header, state};
use mesh_core::jsonrpc;
use mesh_core::metrics::labeled;
use mesh_core::stage::{header_in, log_lazy, Counter, Exchange, Flow, Host, Level, Stage, Step};
use std::rc::Rc;

/// The pluginConfig of a standalone api-key-auth module.
pub fn build(config: &[u8], host: &dyn Host) -> Result<Vec<Rc<dyn Stage>>, ConfigError> {
    let config = config_error::load::<Config>(config)?;
    Ok(vec![Rc::new(compile(&config, host)?)])
}

/// Compiles a validated config once per VM.
pub fn compile(config: &Config, host: &dyn Host) -> Result<AuthStage, ConfigError> {
    let policy = Policy::new(config)?;
    host.log(
        Level::Info,
        &format!(
            "configured: {} API keys, {} JWT providers, {} skip paths, {} route rules",
            config.keys.len(),
            config.jwt_providers.len(),
            config.skip_paths.len(),
            config.rules.len()
        ),
    );
    let minter = config
        .identity_assertion
        .as_ref()
        .map(|a| Minter::new(a, "identity_assertion"))
        .transpose()?;
    let plugin = mesh_core::metrics::plugin_name(host);
    Ok(AuthStage(Rc::new(Shared {
        policy,
        counters: Counters::define(host, &plugin),
        minter,
    })))
}

/// `mcp_auth_requests_total{decision, reason, plugin}`, one counter per
/// outcome; `plugin` is this filter instance's name, so two instances in one
/// proxy (say, one per listener) count apart.
struct Counters([Counter; Outcome::ALL.len()]);

impl Counters {
    fn define(host: &dyn Host, plugin: &str) -> Self {
        Self(Outcome::ALL.map(|o| {
            Counter::define(
                host,
                &labeled(
                    "mcp_auth_requests_total",
                    &[
                        ("decision", o.decision()),
                        ("reason", o.reason()),
                        ("plugin", plugin),
                    ],
                ),
            )
        }))
    }
}

struct Shared {
    policy: Policy,
    counters: Counters,
    /// The edge's identity assertion, when configured.
    minter: Option<Minter>,
}

pub struct AuthStage(Rc<Shared>);

impl Stage for AuthStage {
    fn start(&self) -> Box<dyn Flow> {
        Box::new(AuthFlow(Rc::clone(&self.0)))
    }
}

struct AuthFlow(Rc<Shared>);

/// What the verdict needs done to the request headers, gathered while the
/// snapshot is borrowed.
struct Edits {
    /// Client-sent identity headers (the five names, and other spellings a
    /// server could read as one of them).
    identity_sent: Vec<String>,
    jsonrpc: bool,
}

impl Flow for AuthFlow {
    fn on_request_headers(&mut self, _x: &mut Exchange, host: &mut dyn Host, end: bool) -> Step {
        let shared = Rc::clone(&self.0);
        let now = i64::try_from(host.now_ns() / 1_000_000_000).unwrap_or(i64::MAX);
        let headers = host.request_headers();
        let text = |name: &str| header_in(headers, name).and_then(|v| std::str::from_utf8(v).ok());
        let method = text(":method").unwrap_or("");
        // Lossy, never a fallback: a path with non-UTF-8 bytes keeps its ASCII
        // prefix for the rules, and cannot match a skip path it does not spell.
        let path = header_in(headers, ":path")
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let verdict = shared.policy.decide(
            &Request {
                method,
                path: &path,
                headers,
            },
            now,
        );
        let edits = Edits {
            // Found in the snapshot already read, so they cost nothing unless
            // a client sent one.
            identity_sent: headers
                .iter()
                .filter(|(k, _)| {
                    identity_header::ALL.contains(&k.as_str())
                        || identity_header::reads_as_identity(k)
                })
                .map(|(k, _)| k.clone())
                .collect(),
            jsonrpc: !end && jsonrpc::is_jsonrpc_post(method, text("content-type")),
        };
        match verdict {
            Verdict::Skip {
                strip_headers,
                outcome,
            } => {
                remove(host, edits.identity_sent.iter().chain(&strip_headers));
                if let Some(minter) = &shared.minter {
                    // Nobody was verified: no client-made assertion goes on.
                    host.set_request_header(minter.header(), None);
                }
                record(&shared, host, outcome);
                Step::Continue
            }
            Verdict::Allow(allowed) => {
                hand_off(host, &allowed, &edits.identity_sent);
                if let Some(minter) = &shared.minter {
                    // Replaces every client-sent copy.
                    let assertion = minter.mint(&allowed.identity, now);
                    host.set_request_header(minter.header(), Some(&assertion));
                }
                record(&shared, host, allowed.outcome);
                Step::Continue
            }
            Verdict::Deny(outcome) => {
                record(&shared, host, outcome);
                reject(&shared, host, outcome, edits.jsonrpc);
                Step::Replied
            }
        }
    }
}

fn remove<'a>(host: &mut dyn Host, names: impl Iterator<Item = &'a String>) {
    for name in names {
        host.set_request_header(name, None);
    }
}

/// Removes every client-sent identity header, sets the verified ones
/// (a set replaces all copies), strips the credential, and writes the
/// same facts to filter state.
fn hand_off(host: &mut dyn Host, allowed: &Allowed, identity_sent: &[String]) {
    let fields = allowed.identity.fields();
    let stale = identity_sent
        .iter()
        .filter(|name| !fields.iter().any(|(h, _, _)| h == name));
    remove(host, stale.chain(&allowed.strip_headers));
    for (header, key, value) in &fields {
        host.set_request_header(header, Some(value));
        host.set_state(key, value);
    }
    if let Some(path) = &allowed.new_path {
        host.set_request_header(":path", Some(path));
    }
    let identity = &allowed.identity;
    log_lazy(host, Level::Debug, || {
        format!(
            "allowed: org={} key_id={} plan={} role={}",
            identity.org_id, identity.key_id, identity.plan, identity.role
        )
    });
}

fn record(shared: &Shared, host: &mut dyn Host, outcome: Outcome) {
    if let Some(counter) = shared.counters.0.get(outcome.index()) {
        counter.inc(host);
    }
    host.set_state(state::AUTH_RESULT, outcome.decision());
    host.set_state(state::AUTH_REASON, outcome.reason());
}

/// Answers 401/403 locally: JSON-RPC error for JSON-RPC POSTs, else the
/// plain JSON error; both carry only fixed words, never a client value.
fn reject(shared: &Shared, host: &mut dyn Host, outcome: Outcome, jsonrpc: bool) {
    let code = if outcome.status() == 403 {
        rpc_code::FORBIDDEN
    } else {
        rpc_code::UNAUTHENTICATED
    };
    let unknown_id = serde_json::Value::Null;
    let id = jsonrpc.then_some(&unknown_id);
    let body = error_body(id, code, outcome.reason(), outcome.message());
    let challenge = outcome.www_authenticate(&shared.policy.realm);
    let headers: Vec<(&str, &str)> = challenge
        .as_deref()
        .map(|c| ("www-authenticate", c))
        .into_iter()
        .collect();
    log_lazy(host, Level::Debug, || {
        format!("denied {}: {}", outcome.status(), outcome.reason())
    });
    host.reply(outcome.status(), &headers, &body);
}
