//! The two patch kinds kustomize applies to custom resources.
//!
//! * Strategic merge: for CRDs (no merge keys known) kustomize merges like a
//!   JSON merge patch (RFC 7386): maps merge key by key, `null` deletes a key,
//!   lists and scalars are replaced whole.
//! * JSON 6902: `add`, `remove`, `replace`, `move`, `copy`, `test`.
//!
//! Both report the paths they touched, so a config error can be blamed on the
//! patch that set the field rather than on the base file.

use serde_json::Value;

/// A field path as segments (`["spec", "pluginConfig", "keys", "0"]`).
pub type FieldPath = Vec<String>;

/// Applies a strategic-merge patch to a custom resource.
pub fn merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    match patch {
        Value::Object(entries) => {
            if entries.contains_key("$patch")
                || entries.keys().any(|k| k.starts_with("$setElementOrder"))
            {
                return Err("strategic-merge directives ($patch, $setElementOrder) are not supported for custom resources".into());
            }
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(map) = target {
                for (key, value) in entries {
                    if value.is_null() {
                        map.remove(key);
                    } else {
                        merge(map.entry(key.clone()).or_insert(Value::Null), value)?;
                    }
                }
            }
            Ok(())
        }
        other => {
            *target = other.clone();
            Ok(())
        }
    }
}

/// The leaf paths a strategic-merge patch sets or deletes.
pub fn merge_touches(patch: &Value) -> Vec<FieldPath> {
    fn walk(value: &Value, prefix: &mut FieldPath, out: &mut Vec<FieldPath>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    prefix.push(k.clone());
                    walk(v, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    let mut out = Vec::new();
    walk(patch, &mut Vec::new(), &mut out);
    out
}

/// Applies a JSON 6902 patch (a list of operations); returns the touched paths.
pub fn apply_json6902(target: &mut Value, ops: &Value) -> Result<Vec<FieldPath>, String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON 6902 patch must be a list of operations")?;
    let mut touched = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        apply_op(target, op, &mut touched).map_err(|e| format!("operation [{i}]: {e}"))?;
    }
    Ok(touched)
}

fn apply_op(doc: &mut Value, op: &Value, touched: &mut Vec<FieldPath>) -> Result<(), String> {
    let field = |name: &str| op.get(name).and_then(Value::as_str);
    let kind = field("op").ok_or("missing `op`")?;
    let path = field("path").ok_or("missing `path`")?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or(format!("`{kind}` needs a `value`"))
    };
    match kind {
        "add" => add(doc, path, value()?)?,
        "remove" => {
            remove(doc, path)?;
        }
        "replace" => {
            let slot = doc
                .pointer_mut(path)
                .ok_or(format!("replace: `{path}` does not exist"))?;
            *slot = value()?;
        }
        "move" => {
            let from = field("from").ok_or("move needs `from`")?;
            let moved = remove(doc, from)?;
            add(doc, path, moved)?;
            touched.push(segments(from)?);
        }
        "copy" => {
            let from = field("from").ok_or("copy needs `from`")?;
            let copied = doc
                .pointer(from)
                .cloned()
                .ok_or(format!("copy: `{from}` does not exist"))?;
            add(doc, path, copied)?;
        }
        "test" => {
            let expected = value()?;
            if doc.pointer(path) != Some(&expected) {
                return Err(format!("test failed: `{path}` is not {expected}"));
            }
            return Ok(());
        }
        other => return Err(format!("unknown op `{other}`")),
    }
    touched.push(segments(path)?);
    Ok(())
}

/// RFC 6901 pointer to segments (`/a~1b/0` -> `["a/b", "0"]`).
pub fn segments(pointer: &str) -> Result<FieldPath, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or(format!("path `{pointer}` must start with `/`"))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn split_parent(pointer: &str) -> Result<(&str, String), String> {
    let pos = pointer
        .rfind('/')
        .ok_or(format!("path `{pointer}` must start with `/`"))?;
    let last = pointer.get(pos + 1..).unwrap_or_default();
    Ok((
        pointer.get(..pos).unwrap_or_default(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn add(doc: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = split_parent(pointer)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let index: usize = key
                .parse()
                .map_err(|_| format!("add: `{key}` is not an array index"))?;
            if index > items.len() {
                return Err(format!("add: index {index} is past the end of `{parent}`"));
            }
            items.insert(index, value);
            Ok(())
        }
        Some(_) => Err(format!("add: `{parent}` is not an object or a list")),
        None => Err(format!("add: parent `{parent}` does not exist")),
    }
}

fn remove(doc: &mut Value, pointer: &str) -> Result<Value, String> {
    let (parent, key) = split_parent(pointer)?;
    let missing = || format!("remove: `{pointer}` does not exist");
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&key).ok_or_else(missing),
        Some(Value::Array(items)) => {
            let index: usize = key.parse().map_err(|_| missing())?;
            if index < items.len() {
                Ok(items.remove(index))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_maps_replaces_lists_and_deletes_nulls() {
        let mut doc =
            json!({"spec": {"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2], "gone": true}});
        merge(
            &mut doc,
            &json!({"spec": {"b": {"c": 20}, "list": [9], "gone": null, "new": "x"}}),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"a": 1, "b": {"c": 20, "d": 3}, "list": [9], "new": "x"}})
        );
    }

    #[test]
    fn merge_touches_leaves() {
        let t = merge_touches(
            &json!({"spec": {"pluginConfig": {"plans": {"free": {"burst": 5}}}, "x": null}}),
        );
        assert_eq!(
            t,
            vec![
                vec!["spec", "pluginConfig", "plans", "free", "burst"],
                vec!["spec", "x"]
            ]
        );
    }

    #[test]
    fn merge_refuses_directives() {
        assert!(merge(&mut json!({}), &json!({"$patch": "delete"})).is_err());
    }

    #[test]
    fn json6902_operations() {
        let mut doc = json!({"spec": {"list": [1, 3], "a": {"b": 1}, "x/y": 0}});
        let ops = json!([
            {"op": "add", "path": "/spec/list/1", "value": 2},
            {"op": "add", "path": "/spec/list/-", "value": 4},
            {"op": "replace", "path": "/spec/a/b", "value": 10},
            {"op": "copy", "from": "/spec/a", "path": "/spec/c"},
            {"op": "move", "from": "/spec/x~1y", "path": "/spec/z"},
            {"op": "remove", "path": "/spec/a"},
            {"op": "test", "path": "/spec/c/b", "value": 10}
        ]);
        let touched = apply_json6902(&mut doc, &ops).unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"list": [1, 2, 3, 4], "c": {"b": 10}, "z": 0}})
        );
        assert!(touched.contains(&vec!["spec".to_string(), "a".into(), "b".into()]));
        assert!(touched.contains(&vec!["spec".to_string(), "x/y".into()]));
    }

    #[test]
    fn json6902_errors_name_the_operation() {
        let mut doc = json!({"spec": {}});
        let err = apply_json6902(
            &mut doc,
            &json!([{"op": "replace", "path": "/spec/nope", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(err, "operation [0]: replace: `/spec/nope` does not exist");
        let err = apply_json6902(
            &mut doc,
            &json!([{"op": "test", "path": "/spec", "value": 1}]),
        )
        .unwrap_err();
        assert!(err.contains("test failed"), "{err}");
        assert!(apply_json6902(
            &mut doc,
            &json!([{"op": "add", "path": "spec/x", "value": 1}])
        )
        .is_err());
        assert!(apply_json6902(&mut doc, &json!({"op": "add"})).is_err());
    }
}
