//! Request bodies as kube-apiserver takes them: at most 3 MiB (a larger one is `413` with a
//! `Status`, never a reset connection), and JSON whose objects name each field once (a duplicate
//! key is `400` naming the field's path, as strict decoding does, never "last one wins").

use std::fmt;

use axum::body::{Body, Bytes};
use futures::StreamExt;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::ApiError;

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
}
