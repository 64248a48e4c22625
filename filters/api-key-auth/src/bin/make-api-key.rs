//! `make api-key ORG=acme PLAN=pro [ROLE=user] [ID=acme-3] [USER=alice] [EXPIRES=2027-01-01T00:00:00Z]`
//!
//! Prints a new random API key once (it is not stored anywhere) and the
//! `keys[]` entry with its SHA-256 for the api-key-auth pluginConfig.

use api_key_auth::config::is_identity_value;
use api_key_auth::keystore::{sha256, to_hex};
use api_key_auth::timestamp::parse_rfc3339;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::process::ExitCode;

/// Keys look like `mcpk_<43 base64url chars>`: 256 random bits, a prefix
/// secret scanners can match, and no `.` (so never mistaken for a JWT).
const PREFIX: &str = "mcpk_";

const USAGE: &str = "usage: make-api-key --org ORG --plan PLAN [--role ROLE] [--id KEY_ID] \
[--user USER_ID] [--not-before RFC3339] [--expires RFC3339]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("make-api-key: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut opts = Map::new();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let name = match flag.as_str() {
            "--org" => "org_id",
            "--plan" => "plan",
            "--role" => "role",
            "--id" => "id",
            "--user" => "user_id",
            "--not-before" => "not_before",
            "--expires" => "expires_at",
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown argument `{other}`")),
        };
        let value = it
            .next()
            .filter(|v| !v.is_empty())
            .ok_or(format!("{flag} needs a value"))?;
        opts.insert(name.into(), Value::String(value));
    }
    let get = |k: &str| opts.get(k).and_then(Value::as_str).map(str::to_string);
    let org = get("org_id").ok_or("--org is required")?;
    let plan = get("plan").ok_or("--plan is required")?;
    let role = get("role").unwrap_or_else(|| "user".into());

    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let key = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let hash = to_hex(&sha256(key.as_bytes()));
    // A public id that is stable for this key and says which org it is for.
    let id = get("id").unwrap_or_else(|| format!("{org}-{}", hash.get(..8).unwrap_or("0")));

    let mut entry = Map::new();
    entry.insert("id".into(), json!(id));
    entry.insert("sha256".into(), json!(hash));
    entry.insert("org_id".into(), json!(org));
    entry.insert("plan".into(), json!(plan));
    entry.insert("role".into(), json!(role));
    for k in ["user_id", "not_before", "expires_at"] {
        if let Some(v) = get(k) {
            entry.insert(k.into(), json!(v));
        }
    }
    for k in ["id", "org_id", "plan", "role", "user_id"] {
        if let Some(v) = entry.get(k).and_then(Value::as_str) {
            if !is_identity_value(v) {
                return Err(format!(
                    "{k} `{v}`: use 1-128 characters of A-Z a-z 0-9 . _ - : @ / + |"
                ));
            }
        }
    }
    for k in ["not_before", "expires_at"] {
        if let Some(v) = entry.get(k).and_then(Value::as_str) {
            if parse_rfc3339(v).is_none() {
                return Err(format!("{k} `{v}` is not RFC 3339 (2027-01-01T00:00:00Z)"));
            }
        }
    }
    let entry = serde_json::to_string(&Value::Object(entry)).map_err(|e| e.to_string())?;
    println!("API key (shown once, store it now; only its hash goes into the config):\n");
    println!("  {key}\n");
    println!("Add to api-key-auth pluginConfig `keys`:\n");
    println!("  {entry}");
    Ok(())
}
