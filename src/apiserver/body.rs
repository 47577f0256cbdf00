//! Request bodies as kube-apiserver takes them: at most 3 MiB (a larger one is `413` with a
//! `Status`, never a reset connection), and JSON whose objects name each field once (a duplicate
//! key is `400` naming the field's path, as strict decoding does, never "last one wins").
//! Create, update and delete bodies may also be YAML or Kubernetes protobuf, as kube-apiserver
//! takes them: both are turned into JSON here (see `api::protobuf`), so the rest of the server
//! reads JSON only; any other media type is `415`.

use std::fmt;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use futures::StreamExt;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::fieldvalidation::Directive;
use crate::api::protobuf::{self, DecodeError};

/// The media types of a create, update or delete body, as kube-apiserver lists them in its 415.
const BODY_MEDIA_TYPES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// kube-apiserver's `MaxRequestBodyBytes`.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How much of a too-large body is still read (and thrown away) so that the client, still
/// sending, reads the 413 instead of a reset; past this the connection is simply closed.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Reads a request body, keeping at most [`MAX_BODY_BYTES`] in memory.
pub async fn read(body: Body) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total <= MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk);
        } else {
            kept = Vec::new();
            if total > DRAIN_BYTES {
                break;
            }
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(format!(
            "Request entity too large: limit is {MAX_BODY_BYTES} bytes; the body has {}{total}",
            if total > DRAIN_BYTES {
                "more than "
            } else {
                ""
            }
        )));
    }
    Ok(Bytes::from(kept))
}

/// Parses a JSON body, refusing an object that names a field twice.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Strict {
        path: String::new(),
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Turns the body of a create, update or delete (`POST`, `PUT`, `DELETE`) sent as YAML or
/// Kubernetes protobuf into JSON and marks it `application/json`. Protobuf field numbers
/// Kubernetes does not define are refused under `Strict` and returned, to be warned about,
/// otherwise. A JSON body, an empty one and a `PATCH` (whose media type is its patch type) pass
/// unchanged; any other media type is `415`.
pub fn to_json(
    method: &Method,
    headers: &mut HeaderMap,
    directive: Directive,
    body: Bytes,
) -> Result<(Bytes, Vec<String>), ApiError> {
    let write = matches!(*method, Method::POST | Method::PUT | Method::DELETE);
    if !write || body.iter().all(u8::is_ascii_whitespace) {
        return Ok((body, Vec::new()));
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            let text = String::from_utf8_lossy(v.as_bytes());
            let media = text.split(';').next().unwrap_or("").trim();
            media.to_ascii_lowercase()
        })
        .unwrap_or_default();
    let (value, unknown) = match media.as_str() {
        // no Content-Type is JSON, as kube-apiserver reads it
        "" | "application/json" => return Ok((body, Vec::new())),
        "application/yaml" => {
            let v: Value = serde_yaml_ng::from_slice(&body).map_err(|e| {
                ApiError::BadRequest(format!("the body is not valid YAML: {e}"))
            })?;
            (v, Vec::new())
        }
        protobuf::MEDIA_TYPE => match protobuf::decode(&body) {
            Ok(d) => (d.value, d.unknown),
            Err(e @ DecodeError::Invalid(_)) => return Err(ApiError::BadRequest(e.to_string())),
            Err(e @ DecodeError::UnsupportedType { .. }) => {
                return Err(ApiError::UnsupportedMediaType(e.to_string()))
            }
        },
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: {BODY_MEDIA_TYPES} (the body was sent as {other:?})"
            )))
        }
    };
    if directive == Directive::Strict && !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        return Err(ApiError::BadRequest(format!(
            "strict decoding error: {} (protobuf field numbers Kubernetes does not define; fieldValidation=Warn or Ignore drops them)",
            fields.join(", ")
        )));
    }
    let json = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.to_string()))?;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok((Bytes::from(json), unknown))
}

/// A `serde_json::Value` decoder that knows where it is, to name a duplicated field's path.
struct Strict {
    path: String,
}

impl Strict {
    fn index(&self, i: usize) -> Strict {
        Strict {
            path: format!("{}[{i}]", self.path),
        }
    }

    fn child(&self, part: &str) -> Strict {
        Strict {
            path: if self.path.is_empty() {
                part.to_string()
            } else {
                format!("{}.{part}", self.path)
            },
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.index(out.len()))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate field {:?}",
                    child.path
                )));
            }
            let v = map.next_value_seed(child)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_is_named_by_its_path() {
        let err = parse_json(br#"{"spec": {"replicas": 1, "replicas": 9}}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("duplicate field \"spec.replicas\""),
            "{err}"
        );
        let err = parse_json(br#"{"a": [{"b": 1, "b": 2}]}"#).unwrap_err();
        assert!(err.to_string().contains("\"a[0].b\""), "{err}");
    }

    #[test]
    fn ordinary_json_is_unchanged() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        let v = parse_json(text.as_bytes()).unwrap();
        assert_eq!(v, serde_json::from_str::<Value>(text).unwrap());
        assert!(parse_json(b"{} trailing").is_err());
    }

    #[test]
    fn bodies_are_json_yaml_or_protobuf_and_anything_else_is_415() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            h
        };
        let body = Bytes::from_static(b"kind: ConfigMap\ndata: {a: b}\n");
        let mut h = with("application/yaml; charset=utf-8");
        let (json, w) = to_json(&Method::POST, &mut h, Directive::Strict, body.clone()).unwrap();
        assert_eq!(parse_json(&json).unwrap()["data"]["a"], "b");
        assert!(w.is_empty());
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        // a patch keeps its media type: it is its patch type
        let mut h = with("application/yaml");
        let (same, _) = to_json(&Method::PATCH, &mut h, Directive::Strict, body.clone()).unwrap();
        assert_eq!(
            (same, &h[header::CONTENT_TYPE]),
            (
                body.clone(),
                &with("application/yaml")[header::CONTENT_TYPE]
            )
        );
        for ct in [
            "application/cbor",
            "text/plain",
            "application/merge-patch+json",
        ] {
            let e = to_json(
                &Method::POST,
                &mut with(ct),
                Directive::Strict,
                body.clone(),
            )
            .unwrap_err();
            assert!(matches!(e, ApiError::UnsupportedMediaType(_)), "{ct}: {e}");
            assert!(e.to_string().contains(BODY_MEDIA_TYPES), "{e}");
        }
        let e = to_json(
            &Method::PUT,
            &mut with(protobuf::MEDIA_TYPE),
            Directive::Warn,
            body,
        )
        .unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(_)), "{e}");
    }
}
