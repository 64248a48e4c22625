//! Structured config fuzzing: a shipped pluginConfig with one value, chosen
//! by the input, replaced by an arbitrary JSON value. Loaders must answer
//! with a field-named error or a config, never a panic.
#![no_main]
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mesh_core::config_error::load;
use serde_json::Value;

const SEEDS: [&str; 4] = [
    r#"{"key_sources":[{"header":"x-api-key"}],"keys":[{"id":"k","sha256":"0000000000000000000000000000000000000000000000000000000000000000","org_id":"acme","plan":"pro","role":"owner"}],"skip_paths":[{"exact":"/health"}],"rules":[{"prefix":"/organizations/","methods":["POST"],"allowed_roles":["owner"]}]}"#,
    r#"{"default_plan":"free","plans":{"free":{"requests_per_minute":60,"burst":20,"route_classes":{"llm":{"requests_per_minute":10}}}},"route_classes":[{"name":"llm","path_prefixes":["/v1/"]}],"costs":[{"mcp_method":"tools/call","tool":"run_debate_round","cost":5}],"anonymous_client":{"from":"header","header":"x-forwarded-for","trusted_hops":1}}"#,
    r#"{"debate_id_sources":[{"path_pattern":"/debates/{debate_id}"},{"header":"x-debate-id"},{"json_pointer":"/params/arguments/debate_id"}],"sampling":{"success_rate":0.5,"salt":"0123456789abcdef0123"}}"#,
    r#"{"service":"mcp-llm","max_orgs":10,"max_models":5,"hosts":{"api.openai.com":"openai"}}"#,
];

fn arbitrary_value(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=6)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => Value::from(i64::arbitrary(u)?),
        3 => serde_json::Number::from_f64(f64::arbitrary(u)?).map_or(Value::Null, Value::Number),
        4 => Value::String(String::arbitrary(u)?),
        5 if depth < 4 => Value::Array(
            (0..u.int_in_range(0..=3)?).map(|_| arbitrary_value(u, depth + 1)).collect::<Result<_, _>>()?,
        ),
        _ if depth < 4 => {
            let mut map = serde_json::Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                map.insert(String::arbitrary(u)?, arbitrary_value(u, depth + 1)?);
            }
            Value::Object(map)
        }
        _ => Value::Null,
    })
}

/// Every value of the tree, as pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn mutate(u: &mut Unstructured<'_>, seed: &str) -> arbitrary::Result<Vec<u8>> {
    let mut config: Value = serde_json::from_str(seed).unwrap_or(Value::Null);
    let mut all = Vec::new();
    pointers(&config, String::new(), &mut all);
    let target = u.choose(&all)?.clone();
    let replacement = arbitrary_value(u, 0)?;
    if let Some(slot) = config.pointer_mut(&target) {
        *slot = replacement;
    }
    Ok(serde_json::to_vec(&config).unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(i) = u.int_in_range(0..=3usize) else { return };
    let Ok(json) = mutate(&mut u, SEEDS[i]) else { return };
    match i {
        0 => drop(load::<api_key_auth::config::Config>(&json).map(|c| api_key_auth::policy::Policy::new(&c))),
        1 => drop(load::<org_rate_limit::config::Config>(&json).map(|c| org_rate_limit::rules::Rules::new(&c))),
        2 => drop(load::<debate_access_log::config::Config>(&json).map(|c| c.compile())),
        _ => drop(load::<token_usage_metrics::config::Config>(&json)),
    }
});
