//! Error bodies for locally answered requests (401, 403, 429).
//!
//! Plain HTTP clients get `{"error":{"code":...,"message":...}}`; MCP clients
//! (JSON-RPC POSTs whose `id` we could read) get a JSON-RPC error response
//! carrying that `id`, so their SDK can match it to the pending call.
//! Messages are fixed strings chosen by the filter: never a client value.

use serde_json::{json, Value};

/// JSON-RPC server-error codes (the -32000..-32099 range is implementation
/// defined). Chosen to read like the HTTP status they travel with.
pub mod rpc_code {
    pub const UNAUTHENTICATED: i64 = -32001;
    pub const FORBIDDEN: i64 = -32003;
    pub const RATE_LIMITED: i64 = -32029;
}

/// `{"error":{"code":"<code>","message":"<message>"}}`
pub fn json_error(code: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message}}).to_string()
}

/// `{"jsonrpc":"2.0","id":<id>,"error":{"code":<rpc_code>,"message":..,"data":{"code":<code>}}}`
pub fn jsonrpc_error(id: &Value, rpc_code: i64, code: &str, message: &str) -> String {
    rpc_error(id, rpc_code, message, Some(json!({"code": code})))
}

/// A JSON-RPC error response: `{"jsonrpc":"2.0","id":..,"error":{"code","message"[,"data"]}}`.
pub fn rpc_error(id: &Value, rpc_code: i64, message: &str, data: Option<Value>) -> String {
    let mut error = json!({"code": rpc_code, "message": message});
    if let (Some(data), Some(map)) = (data, error.as_object_mut()) {
        map.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string()
}

/// Picks the JSON-RPC form when the request `id` is known.
pub fn error_body(id: Option<&Value>, rpc_code: i64, code: &str, message: &str) -> String {
    match id {
        Some(id) => jsonrpc_error(id, rpc_code, code, message),
        None => json_error(code, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_error_shape() {
        let v: Value =
            serde_json::from_str(&json_error("missing_credential", "say \"who\"")).unwrap();
        assert_eq!(v["error"]["code"], "missing_credential");
        assert_eq!(v["error"]["message"], "say \"who\"");
    }

    #[test]
    fn jsonrpc_error_carries_id() {
        let body = error_body(
            Some(&json!("req-1")),
            rpc_code::RATE_LIMITED,
            "rate_limited",
            "slow down",
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], "req-1");
        assert_eq!(v["error"]["code"], -32029);
        assert_eq!(v["error"]["data"]["code"], "rate_limited");
    }

    #[test]
    fn without_id_falls_back_to_plain() {
        let v: Value = serde_json::from_str(&error_body(None, -32001, "x", "y")).unwrap();
        assert!(v.get("jsonrpc").is_none());
        assert_eq!(v["error"]["code"], "x");
    }
}
