//! Strategic merge patch (`application/strategic-merge-patch+json`) as apimachinery's
//! `strategicpatch` applies it: maps merge recursively and `null` deletes; a list whose schema
//! says `x-kubernetes-patch-strategy: merge` merges by its `x-kubernetes-patch-merge-key` (a list
//! of primitives with that strategy is a union), every other list is replaced; and the
//! directives `$patch: replace|delete|merge`, `$setElementOrder/FIELD`, `$retainKeys` and
//! `$deleteFromPrimitiveList/FIELD`.
//!
//! The patch metadata comes from an OpenAPI v3 schema given as JSON values: component schemas
//! keyed by definition name, refs `#/components/schemas/NAME`, possibly wrapped in
//! `allOf: [{$ref}]`. A field the schema does not describe merges like a JSON merge patch
//! (maps merge, lists replace). Pure: no I/O, and the work is bounded by the sizes of the
//! object and the patch (nesting is limited to [`MAX_DEPTH`]).

use serde_json::{Map, Value};

/// Deeper patches are refused: no request makes the merge recurse without bound.
pub const MAX_DEPTH: usize = 64;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

/// Why a patch could not be applied, and where (`spec.template.spec.containers[1]`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", if .path.is_empty() { String::new() } else { format!("{}: ", .path) })]
pub struct SmpError {
    pub path: String,
    pub message: String,
    /// A malformed directive (400) rather than a patch that does not fit the object (422).
    pub bad_request: bool,
}

/// Where patch metadata is looked up: the component schemas and how to name them.
#[derive(Clone, Copy)]
pub struct Schemas<'s> {
    pub definitions: &'s Map<String, Value>,
}

impl<'s> Schemas<'s> {
    /// Follows `$ref` (and a one-element `allOf` around one) to the schema it names.
    pub(crate) fn resolve(&self, schema: Option<&'s Value>) -> Option<&'s Value> {
        let mut s = schema?;
        for _ in 0..MAX_DEPTH {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or(r);
                s = self.definitions.get(name)?;
                continue;
            }
            match s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                Some([one]) if s.get("properties").is_none() => s = one,
                _ => return Some(s),
            }
        }
        None
    }

    /// The schema of field `key` of the object schema `parent` (unresolved, so that the
    /// patch extensions on the property itself can be read).
    pub(crate) fn field(&self, parent: Option<&'s Value>, key: &str) -> Option<&'s Value> {
        let p = self.resolve(parent)?;
        p.get("properties")
            .and_then(|props| props.get(key))
            .or_else(|| p.get("additionalProperties").filter(|a| a.is_object()))
    }

    pub(crate) fn items(&self, list: Option<&'s Value>) -> Option<&'s Value> {
        self.resolve(list)?.get("items")
    }
}

/// How a list field is patched, read from its schema.
#[derive(Debug, Default, PartialEq)]
struct ListMeta {
    merge: bool,
    key: Option<String>,
}

pub(crate) fn patch_strategy(schema: Option<&Value>) -> Vec<&str> {
    schema
        .and_then(|s| s.get("x-kubernetes-patch-strategy"))
        .and_then(Value::as_str)
        .map(|s| s.split(',').map(str::trim).collect())
        .unwrap_or_default()
}

fn list_meta(schema: Option<&Value>) -> ListMeta {
    ListMeta {
        merge: patch_strategy(schema).contains(&"merge"),
        key: schema
            .and_then(|s| s.get("x-kubernetes-patch-merge-key"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Applies `patch` to `original` (the stored object) under the schema `root` (for example
/// `definitions["io.k8s.api.apps.v1.Deployment"]`; None patches without metadata).
pub fn apply<'s>(
    original: &Value,
    patch: &Value,
    root: Option<&'s Value>,
    schemas: Schemas<'s>,
) -> Result<Value, SmpError> {
    let Value::Object(p) = patch else {
        return Err(err(
            "",
            "a strategic merge patch must be a JSON object",
            true,
        ));
    };
    let o = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let w = Walk { schemas };
    w.merge_map(o, p.clone(), root, &Path::root(), 0)
        .map(Value::Object)
}

fn err(path: &str, message: impl Into<String>, bad_request: bool) -> SmpError {
    SmpError {
        path: path.to_string(),
        message: message.into(),
        bad_request,
    }
}

/// A field path for error messages, built only on the way down.
struct Path(String);

impl Path {
    fn root() -> Path {
        Path(String::new())
    }
    fn key(&self, k: &str) -> Path {
        Path(if self.0.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.0)
        })
    }
    fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
}

struct Walk<'s> {
    schemas: Schemas<'s>,
}

impl<'s> Walk<'s> {
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        schema: Option<&'s Value>,
        path: &Path,
        depth: usize,
    ) -> Result<Map<String, Value>, SmpError> {
        if depth > MAX_DEPTH {
            return Err(err(
                &path.0,
                format!("the patch nests deeper than {MAX_DEPTH} levels"),
                true,
            ));
        }
        if let Some(d) = patch.remove(DIRECTIVE) {
            match d.as_str() {
                Some("replace") => return self.strip(patch, schema, path, depth),
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {}
                _ => {
                    return Err(err(
                        &path.0,
                        format!("unknown $patch directive {d}: use replace, delete or merge"),
                        true,
                    ))
                }
            }
        }
        if let Some(keys) = patch.remove(RETAIN_KEYS) {
            retain_keys(&mut original, &patch, &keys, path)?;
        }
        // $setElementOrder lists are applied after their list is merged
        let mut orders = Vec::new();
        for k in patch.keys().filter(|k| k.starts_with(SET_ORDER)).cloned() {
            orders.push(k);
        }
        let orders: Vec<(String, Value)> = orders
            .into_iter()
            .filter_map(|k| {
                patch
                    .remove(&k)
                    .map(|v| (k[SET_ORDER.len()..].to_string(), v))
            })
            .collect();
        let before: Vec<Vec<Value>> = orders
            .iter()
            .map(|(f, _)| match original.get(f) {
                Some(Value::Array(l)) => l.clone(),
                _ => Vec::new(),
            })
            .collect();
        for (k, v) in patch {
            let here = path.key(&k);
            if let Some(field) = k.strip_prefix(DELETE_PRIMITIVES) {
                let Value::Array(gone) = v else {
                    return Err(err(
                        &here.0,
                        "$deleteFromPrimitiveList must be a list of values",
                        true,
                    ));
                };
                if let Some(Value::Array(list)) = original.get_mut(field) {
                    list.retain(|x| !gone.contains(x));
                }
                continue;
            }
            if k.starts_with('$') {
                return Err(err(
                    &here.0,
                    format!("unknown directive {k:?}: use $patch, $retainKeys, $setElementOrder/FIELD or $deleteFromPrimitiveList/FIELD"),
                    true,
                ));
            }
            let field = self.schemas.field(schema, &k);
            if v.is_null() {
                original.remove(&k);
                continue;
            }
            let old = original.remove(&k).unwrap_or(Value::Null);
            let merged = self.merge_value(old, v, field, &here, depth + 1)?;
            original.insert(k, merged);
        }
        for ((field, order), before) in orders.into_iter().zip(before) {
            let here = path.key(&format!("{SET_ORDER}{field}"));
            let Value::Array(order) = order else {
                return Err(err(&here.0, "$setElementOrder must be a list", true));
            };
            let meta = list_meta(self.schemas.field(schema, &field));
            if let Some(Value::Array(list)) = original.get_mut(&field) {
                let items = std::mem::take(list);
                *list = set_order(items, &order, &before, meta.key.as_deref(), &here)?;
            }
        }
        Ok(original)
    }

    /// A patch value that has nothing to merge with: its directives are removed.
    fn strip(
        &self,
        patch: Map<String, Value>,
        schema: Option<&'s Value>,
        path: &Path,
        depth: usize,
    ) -> Result<Map<String, Value>, SmpError> {
        self.merge_map(Map::new(), patch, schema, path, depth + 1)
    }

    fn merge_value(
        &self,
        old: Value,
        patch: Value,
        schema: Option<&'s Value>,
        path: &Path,
        depth: usize,
    ) -> Result<Value, SmpError> {
        let replace = patch_strategy(schema).contains(&"replace");
        match (old, patch) {
            (Value::Object(o), Value::Object(p)) if !replace => {
                self.merge_map(o, p, schema, path, depth).map(Value::Object)
            }
            (_, Value::Object(p)) => self.strip(p, schema, path, depth).map(Value::Object),
            (old, Value::Array(p)) => {
                let o = match old {
                    Value::Array(o) => o,
                    _ => Vec::new(),
                };
                self.merge_list(o, p, schema, path, depth).map(Value::Array)
            }
            (_, p) => Ok(p),
        }
    }

    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        schema: Option<&'s Value>,
        path: &Path,
        depth: usize,
    ) -> Result<Vec<Value>, SmpError> {
        let meta = list_meta(schema);
        let items = self.schemas.items(schema);
        if !meta.merge {
            // replaced; maps inside lose their directives
            return patch
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => self
                        .strip(m, items, &path.index(i), depth)
                        .map(Value::Object),
                    v => Ok(v),
                })
                .collect();
        }
        let maps = patch.iter().chain(&original).any(Value::is_object);
        if !maps {
            let mut out = original.clone();
            for v in &patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            return Ok(patch_first(out, &patch, &original, |v| Some(v.clone())));
        }
        let Some(key) = meta.key.as_deref() else {
            return Err(err(
                &path.0,
                "cannot merge a list of objects without a merge key (x-kubernetes-patch-merge-key)",
                false,
            ));
        };
        self.merge_keyed(original, patch, key, items, path, depth)
    }

    /// A list of maps merged by `key`: `$patch: delete` elements remove, a `$patch: replace`
    /// element makes the patch's elements the whole list, others merge with the element of the
    /// same key or are appended. Patch elements come first in patch order, as upstream orders.
    fn merge_keyed(
        &self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
        items: Option<&'s Value>,
        path: &Path,
        depth: usize,
    ) -> Result<Vec<Value>, SmpError> {
        for (i, v) in original.iter().chain(&patch).enumerate() {
            if !v.is_object() {
                return Err(err(
                    &path.index(i).0,
                    "every element of a list merged by key must be an object",
                    false,
                ));
            }
        }
        let mut plain = Vec::new();
        let mut replace = false;
        for (i, v) in patch.into_iter().enumerate() {
            let here = path.index(i);
            match v.get(DIRECTIVE) {
                None => plain.push((here, v)),
                Some(d) => match d.as_str() {
                    Some("delete") => {
                        let k = v.get(key).ok_or_else(|| no_key(&here, key))?;
                        original.retain(|o| o.get(key) != Some(k));
                    }
                    Some("replace") => replace = true,
                    Some("merge") => {
                        return Err(err(
                            &here.0,
                            "$patch: merge is not supported in a list element",
                            true,
                        ))
                    }
                    _ => {
                        return Err(err(
                            &here.0,
                            format!("unknown $patch directive {d}: use replace or delete"),
                            true,
                        ))
                    }
                },
            }
        }
        if replace {
            original = Vec::new();
        }
        let before = original.clone();
        let mut patch_keys = Vec::new();
        for (here, v) in plain {
            let k = v.get(key).cloned().ok_or_else(|| no_key(&here, key))?;
            let Value::Object(p) = v else { continue };
            match original.iter().position(|o| o.get(key) == Some(&k)) {
                Some(at) => {
                    let Value::Object(o) = std::mem::take(&mut original[at]) else {
                        continue;
                    };
                    original[at] = Value::Object(self.merge_map(o, p, items, &here, depth + 1)?);
                }
                None => original.push(Value::Object(self.strip(p, items, &here, depth)?)),
            }
            patch_keys.push(k);
        }
        Ok(patch_first(original, &patch_keys, &before, |v| {
            v.get(key).cloned()
        }))
    }
}

fn no_key(path: &Path, key: &str) -> SmpError {
    err(
        &path.0,
        format!("the element does not contain its merge key {key:?}"),
        false,
    )
}

/// Orders a merged list as upstream's `normalizeElementOrder`: the elements named in `order`
/// (by their identity `id`) in that order, merged with the others (kept in their current
/// order) so that an element that stood before an ordered one in the list `before` the
/// patch still does; an element new to the list goes before the ones not ordered.
fn patch_first(
    merged: Vec<Value>,
    order: &[Value],
    before: &[Value],
    id: impl Fn(&Value) -> Option<Value>,
) -> Vec<Value> {
    let before: Vec<Option<Value>> = before.iter().map(&id).collect();
    let pos = |v: &Value| {
        let i = id(v);
        before.iter().position(|c| *c == i)
    };
    let rank = |v: &Value| {
        let i = id(v);
        order.iter().position(|o| Some(o) == i.as_ref())
    };
    let (mut ordered, rest): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| rank(v).is_some());
    ordered.sort_by_key(|v| rank(v));
    let mut out = Vec::with_capacity(ordered.len() + rest.len());
    let (mut a, mut b) = (rest.into_iter().peekable(), ordered.into_iter().peekable());
    loop {
        let take_rest = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(r), Some(o)) => matches!((pos(r), pos(o)), (Some(x), Some(y)) if x < y),
        };
        let next = if take_rest { a.next() } else { b.next() };
        out.extend(next);
    }
    out
}

/// `$setElementOrder/FIELD`: the list ordered by the directive (merge-key values, or the
/// primitives themselves).
fn set_order(
    items: Vec<Value>,
    order: &[Value],
    before: &[Value],
    key: Option<&str>,
    path: &Path,
) -> Result<Vec<Value>, SmpError> {
    let ids: Vec<Value> = match key {
        Some(k) => order
            .iter()
            .map(|o| {
                o.get(k).cloned().ok_or_else(|| {
                    err(
                        &path.0,
                        format!("every $setElementOrder element must name the merge key {k:?}"),
                        true,
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => order.to_vec(),
    };
    Ok(match key {
        Some(k) => patch_first(items, &ids, before, |v| v.get(k).cloned()),
        None => patch_first(items, &ids, before, |v| Some(v.clone())),
    })
}

/// `$retainKeys`: the keys of `original` not listed are cleared; every key the patch sets must
/// be listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: &Value,
    path: &Path,
) -> Result<(), SmpError> {
    let bad = || {
        err(
            &path.key(RETAIN_KEYS).0,
            "$retainKeys must be a list of field names",
            true,
        )
    };
    let keys: Vec<&str> = keys
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|k| k.as_str().ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    if let Some(k) = patch.iter().find_map(|(k, v)| {
        let directive = k.starts_with(SET_ORDER) || k.starts_with(DELETE_PRIMITIVES);
        (!v.is_null() && !directive && !keys.contains(&k.as_str())).then_some(k)
    }) {
        return Err(err(
            &path.key(k).0,
            "the patch sets a field that its $retainKeys list does not name",
            false,
        ));
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs() -> Map<String, Value> {
        let v = json!({
            "Pod": {"type": "object", "properties": {
                "metadata": {"allOf": [{"$ref": "#/components/schemas/Meta"}]},
                "spec": {"$ref": "#/components/schemas/PodSpec"}}},
            "Meta": {"type": "object", "properties": {
                "finalizers": {"type": "array", "items": {"type": "string"},
                    "x-kubernetes-patch-strategy": "merge"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "PodSpec": {"type": "object", "properties": {
                "containers": {"type": "array",
                    "items": {"allOf": [{"$ref": "#/components/schemas/Container"}]},
                    "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
                "volumes": {"type": "array",
                    "items": {"$ref": "#/components/schemas/Volume"},
                    "x-kubernetes-patch-strategy": "merge,retainKeys", "x-kubernetes-patch-merge-key": "name"},
                "tolerations": {"type": "array", "items": {"type": "object"}}}},
            "Container": {"type": "object", "properties": {
                "env": {"type": "array", "items": {"type": "object"},
                    "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
                "args": {"type": "array", "items": {"type": "string"}}}},
            "Volume": {"type": "object"},
        });
        v.as_object().unwrap().clone()
    }

    fn smp(original: Value, patch: Value) -> Result<Value, SmpError> {
        let d = defs();
        let s = Schemas { definitions: &d };
        apply(&original, &patch, d.get("Pod"), s)
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
               "spec": {"containers": [
                   {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}], "args": ["x"]},
                   {"name": "side", "image": "s:1"}],
                   "tolerations": [{"key": "k"}]}})
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = smp(
            pod(),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["spec"], pod()["spec"]);
    }

    #[test]
    fn lists_with_a_merge_key_merge_by_key() {
        let out = smp(
            pod(),
            json!({"spec": {"containers": [{"name": "app", "image": "a:2"}, {"name": "new", "image": "n"}]}}),
        )
        .unwrap();
        let c = &out["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 3, "{c}");
        assert_eq!(c[0]["image"], "a:2");
        assert_eq!(c[0]["env"][0]["value"], "1", "other fields are kept");
        assert_eq!(
            c[1]["name"], "new",
            "patch elements come first, in patch order"
        );
        assert_eq!(c[2]["name"], "side");
        // nested: env merges by name inside the container
        let out = smp(
            pod(),
            json!({"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn other_lists_are_replaced_and_primitive_merge_lists_are_unions() {
        let out = smp(
            pod(),
            json!({"metadata": {"finalizers": ["y", "x"]},
                   "spec": {"tolerations": [{"key": "j"}],
                            "containers": [{"name": "app", "args": ["y"]}]}}),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["finalizers"],
            json!(["y", "x"]),
            "in patch order"
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "j"}]));
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["y"]));
    }

    #[test]
    fn patch_directives_replace_delete_and_merge() {
        // $patch: replace on a map
        let out = smp(
            pod(),
            json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"z": "9"}));
        // $patch: delete on a map
        let out = smp(pod(), json!({"metadata": {"labels": {"$patch": "delete"}}})).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({}));
        // $patch: merge is the default
        let out = smp(
            pod(),
            json!({"metadata": {"labels": {"$patch": "merge", "z": "9"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"].as_object().unwrap().len(), 3);
        // $patch: delete in a list element removes that element
        let out = smp(
            pod(),
            json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(out["spec"]["containers"][0]["name"], "app");
        // $patch: replace in a list makes the other elements the whole list
        let out = smp(
            pod(),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "only", "image": "o"}])
        );
        let e = smp(pod(), json!({"metadata": {"$patch": "explode"}})).unwrap_err();
        assert!(
            e.bad_request && e.to_string().contains("metadata: unknown $patch"),
            "{e}"
        );
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        let out = smp(
            pod(),
            json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                            "containers": [{"name": "app", "image": "a:3"}]}}),
        )
        .unwrap();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["side", "app"]);
        assert_eq!(out["spec"]["containers"][1]["image"], "a:3");
        let out = smp(
            pod(),
            json!({"metadata": {"$setElementOrder/finalizers": ["z", "x"], "finalizers": ["z"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "x"]));
        let e = smp(
            pod(),
            json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("$setElementOrder/containers"), "{e}");
    }

    #[test]
    fn retain_keys_clears_the_fields_not_listed() {
        let orig = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}});
        let out = smp(
            orig.clone(),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "c"}}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "v", "configMap": {"name": "c"}}])
        );
        let e = smp(
            orig,
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"], "secret": {}}]}}),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.volumes[0].secret", "{e}");
    }

    #[test]
    fn delete_from_primitive_list_removes_values() {
        let out = smp(
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        let e = smp(
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
        )
        .unwrap_err();
        assert!(e.bad_request, "{e}");
    }

    #[test]
    fn errors_name_the_path() {
        let e = smp(pod(), json!({"spec": {"containers": [{"image": "x"}]}})).unwrap_err();
        assert_eq!(e.path, "spec.containers[0]");
        assert!(!e.bad_request && e.message.contains("\"name\""), "{e}");
        let e = smp(pod(), json!({"spec": {"$bogus": 1}})).unwrap_err();
        assert_eq!(e.path, "spec.$bogus");
        assert!(smp(pod(), json!([1])).is_err());
    }

    #[test]
    fn directives_in_new_subtrees_are_removed_and_depth_is_bounded() {
        let out = smp(
            json!({}),
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "E", "$patch": "delete"}]}]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "env": []}]}})
        );
        let mut deep = json!(1);
        for _ in 0..(MAX_DEPTH + 5) {
            deep = json!({"a": deep});
        }
        let e = smp(json!({}), deep).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
    }

    #[test]
    fn without_a_schema_it_merges_like_a_merge_patch() {
        let d = Map::new();
        let out = apply(
            &json!({"data": {"a": "1"}, "l": [1, 2]}),
            &json!({"data": {"b": "2"}, "l": [3]}),
            None,
            Schemas { definitions: &d },
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"a": "1", "b": "2"}, "l": [3]}));
    }
}
