//! Stored objects as the API serves them. The store keeps each object as compact JSON without
//! its `resourceVersion` (the store's revision of the key is that); a read puts it back.
//! [`write_with_rv`] does so for lists without building the object's tree: only the top level
//! and `metadata` are parsed, the bulk (spec, status) is copied as stored — a list of 10,000
//! pods was mostly building and dropping their trees.

use std::io::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::engine::decode_stored;
use super::error::ApiError;
use crate::store::Versioned;

/// The entries of a JSON object in their order, each value unparsed.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> Visitor<'de> for Each {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(6));
                while let Some(entry) = m.next_entry::<String, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(Each)
    }
}

/// Writes `entries` as the members of an object (without the braces); how many it wrote.
fn write_entries<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = &'a (String, &'a RawValue)>,
    mut value: impl FnMut(&mut Vec<u8>, &str, &RawValue) -> Result<(), serde_json::Error>,
) -> Result<usize, serde_json::Error> {
    let mut n = 0;
    for (k, v) in entries {
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
        value(out, k, v)?;
        n += 1;
    }
    Ok(n)
}

fn write_raw(out: &mut Vec<u8>, v: &RawValue) {
    out.extend_from_slice(v.get().as_bytes());
}

fn try_write(out: &mut Vec<u8>, v: &Versioned) -> Result<(), serde_json::Error> {
    let top: Entries = serde_json::from_slice(&v.value)?;
    if !top.0.iter().any(|(k, _)| k == "metadata") {
        // what decode_stored does then (adds a metadata), the slow way: never in practice
        return Err(serde::de::Error::custom("no metadata"));
    }
    out.push(b'{');
    write_entries(out, top.0.iter(), |out, k, raw| {
        if k != "metadata" {
            write_raw(out, raw);
            return Ok(());
        }
        let meta: Entries = serde_json::from_str(raw.get())?;
        out.push(b'{');
        let kept = meta.0.iter().filter(|(k, _)| k != "resourceVersion");
        let written = write_entries(out, kept, |out, _, raw| {
            write_raw(out, raw);
            Ok(())
        })?;
        if written > 0 {
            out.push(b',');
        }
        write!(out, "\"resourceVersion\":\"{}\"}}", v.revision).map_err(serde_json::Error::io)
    })?;
    out.push(b'}');
    Ok(())
}

/// Appends the stored object `v` to `out` as JSON with its `resourceVersion`: the bytes that
/// `serde_json::to_writer(decode_stored(v))` writes, at a fraction of the cost.
pub fn write_with_rv(out: &mut Vec<u8>, v: &Versioned) -> Result<(), ApiError> {
    let start = out.len();
    if try_write(out, v).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    let obj = decode_stored(v)?;
    serde_json::to_writer(out, &obj).map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn stored(obj: &Value, revision: i64) -> Versioned {
        Versioned {
            key: "/registry/pods/default/p".into(),
            value: serde_json::to_vec(obj).unwrap(),
            revision,
        }
    }

    #[test]
    fn writes_what_decoding_and_encoding_would() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default", "labels": {"a": "b\"c"},
                    "annotations": {"x": "{\"metadata\":{}}"}},
                "spec": {"containers": [{"name": "c", "image": "i", "args": ["é", "\u{1}"]}],
                    "template": {"metadata": {"name": "inner"}}},
                "status": {"phase": "Running", "n": 1.5, "big": 9007199254740993u64}}),
            // metadata first, spec before kind, an empty metadata, a stale resourceVersion
            json!({"metadata": {}, "spec": {}, "kind": "Pod"}),
            json!({"kind": "Pod", "metadata": {"resourceVersion": "3", "name": "q"}}),
            json!({"kind": "Pod", "metadata": {"resourceVersion": "3"}}),
        ];
        for obj in objects {
            let v = stored(&obj, 42);
            let mut fast = b"[".to_vec();
            write_with_rv(&mut fast, &v).unwrap();
            let slow = serde_json::to_vec(&decode_stored(&v).unwrap()).unwrap();
            let read: Value = serde_json::from_slice(&fast[1..]).unwrap();
            assert_eq!(read, decode_stored(&v).unwrap(), "{obj}");
            assert_eq!(read["metadata"]["resourceVersion"], "42");
            if obj["metadata"].get("resourceVersion").is_none() {
                assert_eq!(
                    String::from_utf8_lossy(&fast[1..]),
                    String::from_utf8_lossy(&slow)
                );
            }
        }
    }

    #[test]
    fn an_object_without_metadata_or_not_an_object_takes_the_slow_way() {
        let mut out = Vec::new();
        write_with_rv(&mut out, &stored(&json!({"kind": "Pod"}), 7)).unwrap();
        let read: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(read["metadata"]["resourceVersion"], "7");
        let mut out = b"x".to_vec();
        let garbage = Versioned {
            key: "k".into(),
            value: b"{\"metadata\":".to_vec(),
            revision: 1,
        };
        assert!(write_with_rv(&mut out, &garbage).is_err());
    }
}
