//! The OpenAPI v2 (Swagger 2.0) document, converted from the v3 documents, in JSON and in the
//! protobuf encoding of gnostic's `openapi.v2.Document` that client-go asks for with
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` (the message and field
//! numbers of gnostic's OpenAPIv2.proto; only the fields these documents use are written).

use prost::encoding::{encode_key, encode_varint, WireType};
use serde_json::{json, Map, Value};

use crate::api::openapi::REF_PREFIX;

/// The Swagger 2.0 document: every group version's paths and definitions.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (_, doc) in super::openapi::v3_documents() {
        if let Some(p) = doc["paths"].as_object() {
            for (path, item) in p {
                paths.insert(path.clone(), path_item(item));
            }
        }
        if let Some(s) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, schema) in s {
                definitions.insert(name.clone(), schema_v2(name, schema));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v1.32.0-orkops.{}", env!("CARGO_PKG_VERSION"))},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}},
        "security": [{"BearerToken": []}],
    })
}

/// A v3 schema in v2 terms: `#/definitions/` refs, `allOf: [{$ref}]` as a plain `$ref`, and
/// int-or-string as `type: string, format: int-or-string`.
fn schema_v2(name: &str, v: &Value) -> Value {
    if name.ends_with(".IntOrString") {
        return json!({"type": "string", "format": "int-or-string", "description": v["description"]});
    }
    convert(v)
}

fn convert(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, c) in m {
                match k.as_str() {
                    "allOf" => {
                        let r = c.pointer("/0/$ref").and_then(Value::as_str);
                        if let (Some(r), 1) = (r, c.as_array().map_or(0, Vec::len)) {
                            out.insert("$ref".into(), json!(v2_ref(r)));
                        } else {
                            out.insert(k.clone(), convert(c));
                        }
                    }
                    "$ref" => {
                        out.insert(k.clone(), json!(v2_ref(c.as_str().unwrap_or(""))));
                    }
                    "x-kubernetes-int-or-string" => {}
                    _ => {
                        out.insert(k.clone(), convert(c));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(convert).collect()),
        other => other.clone(),
    }
}

fn v2_ref(r: &str) -> String {
    match r.strip_prefix(REF_PREFIX) {
        Some(n) => format!("#/definitions/{n}"),
        None => r.to_string(),
    }
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in item.as_object().into_iter().flatten() {
        if k == "parameters" {
            let params: Vec<Value> = v.as_array().into_iter().flatten().map(parameter).collect();
            out.insert(k.clone(), json!(params));
        } else {
            out.insert(k.clone(), operation(v));
        }
    }
    Value::Object(out)
}

fn parameter(p: &Value) -> Value {
    let mut q =
        json!({"name": p["name"], "in": p["in"], "type": p["schema"]["type"], "uniqueItems": true});
    if p["required"] == true {
        q["required"] = json!(true);
    }
    if let Some(d) = p["description"].as_str().filter(|d| !d.is_empty()) {
        q["description"] = json!(d);
    }
    q
}

fn operation(op: &Value) -> Value {
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(parameter)
        .collect();
    let mut consumes = Vec::new();
    if let Some(content) = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
    {
        consumes = content.keys().cloned().collect();
        let schema = content.values().next().map(|c| convert(&c["schema"]));
        params.insert(
            0,
            json!({"name": "body", "in": "body", "required": op["requestBody"]["required"] == true, "schema": schema}),
        );
    }
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut out = json!({"description": r["description"]});
        if let Some(s) = r.pointer("/content/application~1json/schema") {
            out["schema"] = convert(s);
        }
        responses.insert(code.clone(), out);
    }
    json!({
        "operationId": op["operationId"],
        "description": op["description"],
        "consumes": consumes,
        "produces": ["application/json"],
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op["x-kubernetes-action"],
        "x-kubernetes-group-version-kind": op["x-kubernetes-group-version-kind"],
    })
}

/// A protobuf message being written.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn bytes(&mut self, tag: u32, b: &[u8]) {
        encode_key(tag, WireType::LengthDelimited, &mut self.0);
        encode_varint(b.len() as u64, &mut self.0);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, tag: u32, v: &Value) {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            self.bytes(tag, s.as_bytes());
        }
    }
    fn strs(&mut self, tag: u32, v: &Value) {
        for s in v.as_array().into_iter().flatten() {
            self.str(tag, s);
        }
    }
    fn msg(&mut self, tag: u32, m: Pb) {
        self.bytes(tag, &m.0);
    }
    fn bool(&mut self, tag: u32, v: &Value) {
        if v == &Value::Bool(true) {
            encode_key(tag, WireType::Varint, &mut self.0);
            encode_varint(1, &mut self.0);
        }
    }
    /// `(name, message)` pairs: gnostic's Named* messages (name 1, value 2).
    fn named(&mut self, tag: u32, name: &str, value: Pb) {
        let mut n = Pb::default();
        n.bytes(1, name.as_bytes());
        n.msg(2, value);
        self.msg(tag, n);
    }
    /// The `x-` keys of `v` as `NamedAny` vendor extensions (their value as YAML, JSON being YAML).
    fn extensions(&mut self, tag: u32, v: &Value) {
        for (k, x) in v.as_object().into_iter().flatten() {
            if k.starts_with("x-") && !x.is_null() {
                let mut any = Pb::default();
                any.bytes(2, x.to_string().as_bytes());
                self.named(tag, k, any);
            }
        }
    }
}

/// `openapi.v2.Document` as protobuf.
pub fn protobuf(doc: &Value) -> Vec<u8> {
    let mut d = Pb::default();
    d.str(1, &doc["swagger"]);
    let mut info = Pb::default();
    info.str(1, &doc["info"]["title"]);
    info.str(2, &doc["info"]["version"]);
    d.msg(2, info);
    let mut paths = Pb::default();
    for (p, item) in doc["paths"].as_object().into_iter().flatten() {
        paths.named(2, p, path_item_pb(item));
    }
    d.msg(8, paths);
    let mut defs = Pb::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        defs.named(1, name, schema_pb(s, 0));
    }
    d.msg(9, defs);
    d.0
}

/// `openapi.v2.Schema`; `depth` bounds the recursion (the documents nest a few levels).
fn schema_pb(s: &Value, depth: usize) -> Pb {
    let mut m = Pb::default();
    if depth > 32 {
        return m;
    }
    m.str(1, &s["$ref"]);
    m.str(2, &s["format"]);
    m.str(4, &s["description"]);
    m.strs(19, &s["required"]);
    if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
        let mut item = Pb::default();
        item.msg(1, schema_pb(ap, depth + 1));
        m.msg(21, item);
    }
    if let Some(t) = s.get("type") {
        let mut ty = Pb::default();
        match t {
            Value::Array(_) => ty.strs(1, t),
            _ => ty.str(1, t),
        }
        m.msg(22, ty);
    }
    if let Some(items) = s.get("items") {
        let mut it = Pb::default();
        it.msg(1, schema_pb(items, depth + 1));
        m.msg(23, it);
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        let mut p = Pb::default();
        for (k, v) in props {
            p.named(1, k, schema_pb(v, depth + 1));
        }
        m.msg(25, p);
    }
    m.extensions(31, s);
    m
}

fn path_item_pb(item: &Value) -> Pb {
    let mut m = Pb::default();
    for (verb, tag) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(verb) {
            m.msg(tag, operation_pb(op));
        }
    }
    for p in item["parameters"].as_array().into_iter().flatten() {
        m.msg(9, parameter_pb(p));
    }
    m
}

/// `ParametersItem` { `Parameter` { body 1 | `NonBodyParameter` 2 { query 3 | path 4 } } }.
fn parameter_pb(p: &Value) -> Pb {
    let mut param = Pb::default();
    if p["in"] == "body" {
        let mut b = Pb::default();
        b.str(2, &p["name"]);
        b.str(3, &p["in"]);
        b.bool(4, &p["required"]);
        b.msg(5, schema_pb(&p["schema"], 0));
        param.msg(1, b);
    } else {
        let mut sub = Pb::default();
        let tag = if p["in"] == "path" {
            sub.bool(1, &p["required"]);
            sub.str(2, &p["in"]);
            sub.str(3, &p["description"]);
            sub.str(4, &p["name"]);
            sub.str(5, &p["type"]);
            sub.bool(19, &p["uniqueItems"]);
            4
        } else {
            sub.bool(1, &p["required"]);
            sub.str(2, &p["in"]);
            sub.str(3, &p["description"]);
            sub.str(4, &p["name"]);
            sub.str(6, &p["type"]);
            sub.bool(20, &p["uniqueItems"]);
            3
        };
        let mut nb = Pb::default();
        nb.msg(tag, sub);
        param.msg(2, nb);
    }
    let mut item = Pb::default();
    item.msg(1, param);
    item
}

fn operation_pb(op: &Value) -> Pb {
    let mut m = Pb::default();
    m.str(3, &op["description"]);
    m.str(5, &op["operationId"]);
    m.strs(6, &op["produces"]);
    m.strs(7, &op["consumes"]);
    for p in op["parameters"].as_array().into_iter().flatten() {
        m.msg(8, parameter_pb(p));
    }
    let mut responses = Pb::default();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut resp = Pb::default();
        resp.str(1, &r["description"]);
        if let Some(s) = r.get("schema") {
            let mut item = Pb::default();
            item.msg(1, schema_pb(s, 0));
            resp.msg(2, item);
        }
        let mut value = Pb::default();
        value.msg(1, resp);
        responses.named(1, code, value);
    }
    m.msg(9, responses);
    m.extensions(13, op);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_refers_to_definitions_and_keeps_the_patch_metadata() {
        let doc = document();
        let text = doc.to_string();
        assert!(!text.contains(REF_PREFIX), "a v3 ref is left");
        let spec = &doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(
            spec["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        assert_eq!(spec["x-kubernetes-patch-merge-key"], "name");
        let ios = &doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
        assert_eq!(ios["format"], "int-or-string");
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        let pb = protobuf(&doc);
        // field 1 (swagger) comes first: key 0x0a, length 3, "2.0"
        assert_eq!(&pb[..5], b"\x0a\x032.0");
        assert!(pb.len() > 10_000);
    }
}
