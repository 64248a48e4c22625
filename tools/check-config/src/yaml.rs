//! Reading Kubernetes YAML (one or many `---` documents) as JSON values.

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// Every non-empty document of a YAML stream, in order.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

pub fn read_documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    documents(&text)
}

/// The JSON a sidecar's filter receives for a pluginConfig.
///
/// Istio stores `pluginConfig` as a protobuf `Struct`, whose numbers are
/// doubles, and hands the filter its JSON rendering: `5.0` arrives as `5`, and
/// integers beyond 2^53 silently lose precision. The conversion below does the
/// same, and reports the integers that would not survive instead of altering them.
pub fn as_struct_json(value: &Value, path: &str, lossy: &mut Vec<String>) -> Value {
    const MAX_EXACT: u64 = 1 << 53;
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                if u > MAX_EXACT {
                    lossy.push(path.to_string());
                }
                value.clone()
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_EXACT {
                    lossy.push(path.to_string());
                }
                value.clone()
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() <= MAX_EXACT as f64 => {
                        // Exact: the range check above keeps the cast lossless.
                        #[allow(clippy::cast_possible_truncation)]
                        let i = f as i64;
                        Value::from(i)
                    }
                    _ => value.clone(),
                }
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| as_struct_json(v, &format!("{path}[{i}]"), lossy))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), as_struct_json(v, &format!("{path}.{k}"), lossy)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_document_and_skips_empty_ones() {
        let docs = documents("a: 1\n---\n---\n# only a comment\n---\nb: [x, 2]\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": ["x", 2]})]);
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = documents("a: [1, 2\nb: c\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn integral_floats_become_integers_like_istio_sends_them() {
        let mut lossy = Vec::new();
        let out = as_struct_json(
            &json!({"a": 5.0, "b": 0.5, "c": [60]}),
            "spec.pluginConfig",
            &mut lossy,
        );
        assert_eq!(out, json!({"a": 5, "b": 0.5, "c": [60]}));
        assert!(lossy.is_empty());
    }

    #[test]
    fn integers_beyond_2_pow_53_are_reported() {
        let mut lossy = Vec::new();
        as_struct_json(
            &json!({"big": 9_007_199_254_740_993_u64, "ok": 9_007_199_254_740_992_u64}),
            "p",
            &mut lossy,
        );
        assert_eq!(lossy, vec!["p.big".to_string()]);
    }
}
