//! The four filters' pluginConfig loaders, and the composed module's whole
//! build (sections, validation, compile), on arbitrary bytes: an error
//! always names a field, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesh_core::config_error::load;

fuzz_target!(|data: &[u8]| {
    let _ = load::<api_key_auth::config::Config>(data).map(|c| api_key_auth::policy::Policy::new(&c));
    let _ = load::<org_rate_limit::config::Config>(data).map(|c| org_rate_limit::rules::Rules::new(&c));
    let _ = load::<debate_access_log::config::Config>(data).map(|c| c.compile());
    let _ = load::<token_usage_metrics::config::Config>(data);
    let _ = mcp_mesh::build(data, &mesh_core::mock_host::MockHost::default());
});
