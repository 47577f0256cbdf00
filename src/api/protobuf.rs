//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`, what kubectl's generator
//! commands and client-go's typed clients send) decoded into the same JSON `Value` a JSON body
//! gives, so that everything past the HTTP layer sees JSON only.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` (typeMeta 1 {apiVersion 1, kind 2}, raw 2,
//! contentEncoding 3, contentType 4) whose `raw` is the object's own message. Messages are read
//! against a table of field numbers (`protobuf.fields`, from the protobuf tags of Kubernetes' Go
//! types) and turned into JSON as Kubernetes' JSON has them: `Time` as RFC 3339, `Quantity` and
//! `IntOrString` as their scalar, bytes as base64, inlined structs (Probe's handler) merged into
//! their parent, and zero scalars left out unless Go keeps them (a pointer such as `replicas`, or
//! a field without `omitempty`). A field number the table lacks is collected by path for
//! `fieldValidation` to refuse or warn about. Everything is bounded: nesting depth, and every
//! length against the bytes left in a body that is itself bounded by the API server.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use prost::encoding::{decode_key, decode_varint, WireType};
use serde_json::{Map, Value};

use super::Kind;

/// The media type of a Kubernetes protobuf body.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The 4 bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";
/// How deep messages may nest (a Pod template in a CronJob is about 12 levels).
const MAX_DEPTH: usize = 64;
/// How many unknown fields are named one by one; the rest are counted.
const MAX_UNKNOWN: usize = 100;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

static FIELDS_TEXT: &str = include_str!("protobuf.fields");

/// What a field holds on the wire and in JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Str,
    I32,
    I64,
    Bool,
    Bytes,
    Time,
    MicroTime,
    Quantity,
    IntOrString,
    /// `RawExtension` / `FieldsV1`: embedded JSON in field 1.
    Raw,
    Message(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Single,
    Repeated,
    Map,
}

#[derive(Debug)]
struct Field {
    /// The JSON name; empty for a struct inlined into its parent.
    json: &'static str,
    ty: Ty,
    shape: Shape,
    /// A Go pointer: sent only when set, so a zero sent is kept (`replicas: 0`).
    pointer: bool,
    /// Go's JSON has no `omitempty` on the field: a zero is written too.
    keep_zero: bool,
}

type Table = HashMap<&'static str, HashMap<u32, Field>>;

static TABLE: LazyLock<Table> = LazyLock::new(|| parse_table(FIELDS_TEXT));

fn parse_table(text: &'static str) -> Table {
    let mut table = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut words = line.split(' ');
        let name = words.next().unwrap_or_default();
        let fields = words.filter_map(parse_field).collect();
        table.insert(name, fields);
    }
    table
}

/// `replicas=1:*i` -> (1, Field).
fn parse_field(word: &'static str) -> Option<(u32, Field)> {
    let (json, rest) = word.split_once('=')?;
    let (number, ty) = rest.split_once(':')?;
    let flags = &ty[..ty.len() - ty.trim_start_matches(['*', '!']).len()];
    let (pointer, keep_zero) = (flags.contains('*'), flags.contains('!'));
    let ty = ty.trim_start_matches(['*', '!']);
    let (shape, ty) = if let Some(t) = ty.strip_prefix("[]") {
        (Shape::Repeated, t)
    } else if let Some(t) = ty.strip_prefix("{}") {
        (Shape::Map, t)
    } else {
        (Shape::Single, ty)
    };
    let ty = match ty {
        "s" => Ty::Str,
        "i" => Ty::I32,
        "l" => Ty::I64,
        "b" => Ty::Bool,
        "y" => Ty::Bytes,
        "T" => Ty::Time,
        "M" => Ty::MicroTime,
        "Q" => Ty::Quantity,
        "I" => Ty::IntOrString,
        "R" => Ty::Raw,
        other => Ty::Message(other),
    };
    Some((
        number.parse().ok()?,
        Field {
            json,
            ty,
            shape,
            pointer,
            keep_zero,
        },
    ))
}

/// Why a protobuf body cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The body is not a well-formed Kubernetes protobuf message.
    #[error("the protobuf body is not valid: {0}")]
    Invalid(String),
    /// A well-formed body of a type orkops does not decode from protobuf.
    #[error("the protobuf body holds a {kind} of {api_version}, which this server does not decode from protobuf (it decodes the kinds it serves, DeleteOptions, autoscaling/v1 Scale and policy/v1 Eviction); send it as application/json")]
    UnsupportedType { api_version: String, kind: String },
}

/// A decoded body: the object as JSON, and the paths of the field numbers Kubernetes does not
/// define (`spec.template.<protobuf field 99>`).
#[derive(Debug, PartialEq)]
pub struct Decoded {
    pub value: Value,
    pub unknown: Vec<String>,
}

/// The definition a body's `apiVersion`/`kind` is decoded as.
fn root_definition(api_version: &str, kind: &str) -> Option<String> {
    if kind == "DeleteOptions" {
        return Some(format!("{META}.DeleteOptions"));
    }
    if (api_version, kind) == ("autoscaling/v1", "Scale") {
        return Some("io.k8s.api.autoscaling.v1.Scale".into());
    }
    if matches!(api_version, "policy/v1" | "policy/v1beta1") && kind == "Eviction" {
        return Some("io.k8s.api.policy.v1.Eviction".into());
    }
    Kind::all()
        .find(|k| k.name() == kind && k.api_version() == api_version)
        .map(|k| super::openapi::definition_name(k).to_string())
}

/// Decodes a Kubernetes protobuf body (magic, `runtime.Unknown`, the object) into JSON.
pub fn decode(body: &[u8]) -> Result<Decoded, DecodeError> {
    let invalid = |m: &str| DecodeError::Invalid(m.to_string());
    let Some(mut buf) = body.strip_prefix(MAGIC) else {
        return Err(invalid(
            "it does not start with the 4 bytes \"k8s\\0\" of a Kubernetes protobuf body",
        ));
    };
    let (mut api_version, mut kind, mut raw, mut encoding) =
        (String::new(), String::new(), &[][..], String::new());
    while !buf.is_empty() {
        let (number, wire) = key(&mut buf, "the envelope")?;
        match (number, wire) {
            (1, WireType::LengthDelimited) => {
                let mut meta = length_delimited(&mut buf, "typeMeta")?;
                while !meta.is_empty() {
                    match key(&mut meta, "typeMeta")? {
                        (1, WireType::LengthDelimited) => {
                            api_version =
                                utf8(length_delimited(&mut meta, "apiVersion")?, "apiVersion")?
                        }
                        (2, WireType::LengthDelimited) => {
                            kind = utf8(length_delimited(&mut meta, "kind")?, "kind")?
                        }
                        (_, w) => skip(&mut meta, w, "typeMeta")?,
                    }
                }
            }
            (2, WireType::LengthDelimited) => raw = length_delimited(&mut buf, "raw")?,
            (3, WireType::LengthDelimited) => {
                encoding = utf8(
                    length_delimited(&mut buf, "contentEncoding")?,
                    "contentEncoding",
                )?
            }
            (_, w) => skip(&mut buf, w, "the envelope")?,
        }
    }
    if !encoding.is_empty() {
        return Err(DecodeError::Invalid(format!(
            "contentEncoding {encoding:?} is not supported: send the object unencoded"
        )));
    }
    if kind.is_empty() {
        return Err(invalid("the envelope names no kind (typeMeta.kind)"));
    }
    let def = root_definition(&api_version, &kind).ok_or_else(|| DecodeError::UnsupportedType {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    let mut reader = Reader {
        unknown: Vec::new(),
        unknown_count: 0,
    };
    reader.message(&def, &def, raw, "", 0, &mut out)?;
    if reader.unknown_count > reader.unknown.len() {
        let more = reader.unknown_count - reader.unknown.len();
        reader.unknown.push(format!("and {more} more"));
    }
    Ok(Decoded {
        value: Value::Object(out),
        unknown: reader.unknown,
    })
}

struct Reader {
    unknown: Vec<String>,
    unknown_count: usize,
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "the object".into()
    } else {
        format!("{path:?}")
    }
}

impl Reader {
    /// Decodes the message `def` from `buf` into `out` (merging, as protobuf merges a message
    /// sent twice). `schema` is the orkops definition the fields land in (the parent's for an
    /// inlined struct).
    fn message(
        &mut self,
        def: &str,
        schema: &str,
        mut buf: &[u8],
        path: &str,
        depth: usize,
        out: &mut Map<String, Value>,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::Invalid(format!(
                "messages nest deeper than {MAX_DEPTH} levels at {}",
                at(path)
            )));
        }
        let fields = TABLE.get(def).ok_or_else(|| {
            DecodeError::Invalid(format!("no field table for {def} (at {})", at(path)))
        })?;
        while !buf.is_empty() {
            let (number, wire) = key(&mut buf, path)?;
            let Some(field) = fields.get(&number) else {
                self.unknown_count += 1;
                if self.unknown.len() < MAX_UNKNOWN {
                    self.unknown
                        .push(join(path, &format!("<protobuf field {number}>")));
                }
                skip(&mut buf, wire, path)?;
                continue;
            };
            let fpath = join(path, field.json);
            if field.json.is_empty() {
                // a struct Go inlines: its fields are the parent's
                let bytes = expect_bytes(&mut buf, wire, &fpath)?;
                let Ty::Message(sub) = field.ty else {
                    return Err(DecodeError::Invalid(format!("inline field in {def}")));
                };
                self.message(sub, schema, bytes, path, depth + 1, out)?;
                continue;
            }
            match field.shape {
                Shape::Single => {
                    if let Ty::Message(sub) = field.ty {
                        let bytes = expect_bytes(&mut buf, wire, &fpath)?;
                        let existed = out.contains_key(field.json);
                        let entry = out
                            .entry(field.json)
                            .or_insert_with(|| Value::Object(Map::new()));
                        if !entry.is_object() {
                            *entry = Value::Object(Map::new());
                        }
                        if let Value::Object(m) = entry {
                            self.message(sub, sub, bytes, &fpath, depth + 1, m)?;
                        }
                        // Go writes every struct that is not a pointer: an empty one of a
                        // field orkops does not serve is no value sent
                        let empty = out[field.json].as_object().is_some_and(Map::is_empty);
                        if !existed && empty && !field.pointer && !served(schema, field.json) {
                            out.remove(field.json);
                        }
                    } else if let Some(v) = scalar(field.ty, &mut buf, wire, &fpath)? {
                        // Go writes every scalar that is not a pointer, zero or not: a zero
                        // is kept where Go's JSON keeps it, and only for a field orkops serves
                        let keep = !is_zero(&v)
                            || field.pointer
                            || (field.keep_zero && served(schema, field.json));
                        if keep {
                            out.insert(field.json.to_string(), v);
                        }
                    }
                }
                Shape::Repeated => {
                    let entry = out
                        .entry(field.json)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !entry.is_array() {
                        *entry = Value::Array(Vec::new());
                    }
                    let index = entry.as_array().map_or(0, Vec::len);
                    let items = self.repeated(field.ty, &mut buf, wire, &fpath, index, depth)?;
                    if let Some(a) = out.get_mut(field.json).and_then(Value::as_array_mut) {
                        a.extend(items);
                    }
                }
                Shape::Map => {
                    let entry = expect_bytes(&mut buf, wire, &fpath)?;
                    let (k, v) = self.map_entry(field.ty, entry, &fpath, depth)?;
                    if let Value::Object(m) = out
                        .entry(field.json)
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        m.insert(k, v);
                    }
                }
            }
        }
        Ok(())
    }

    /// One occurrence of a repeated field, the `index`th element: one element, or several
    /// when numbers are packed.
    fn repeated(
        &mut self,
        ty: Ty,
        buf: &mut &[u8],
        wire: WireType,
        path: &str,
        index: usize,
        depth: usize,
    ) -> Result<Vec<Value>, DecodeError> {
        let ipath = format!("{path}[{index}]");
        match ty {
            Ty::Message(sub) => {
                let bytes = expect_bytes(buf, wire, &ipath)?;
                let mut m = Map::new();
                self.message(sub, sub, bytes, &ipath, depth + 1, &mut m)?;
                Ok(vec![Value::Object(m)])
            }
            Ty::I32 | Ty::I64 | Ty::Bool if wire == WireType::LengthDelimited => {
                let mut packed = length_delimited(buf, &ipath)?;
                let mut items = Vec::new();
                while !packed.is_empty() {
                    items.extend(scalar(ty, &mut packed, WireType::Varint, &ipath)?);
                }
                Ok(items)
            }
            _ => Ok(scalar(ty, buf, wire, &ipath)?.into_iter().collect()),
        }
    }

    /// A map entry: key 1 (a string), value 2.
    fn map_entry(
        &mut self,
        ty: Ty,
        mut entry: &[u8],
        path: &str,
        depth: usize,
    ) -> Result<(String, Value), DecodeError> {
        let (mut k, mut v) = (String::new(), None);
        while !entry.is_empty() {
            match key(&mut entry, path)? {
                (1, WireType::LengthDelimited) => {
                    k = utf8(length_delimited(&mut entry, path)?, path)?
                }
                (2, wire) => {
                    let vpath = join(path, &k);
                    v = match ty {
                        Ty::Message(sub) => {
                            let mut m = Map::new();
                            let bytes = expect_bytes(&mut entry, wire, &vpath)?;
                            self.message(sub, sub, bytes, &vpath, depth + 1, &mut m)?;
                            Some(Value::Object(m))
                        }
                        _ => scalar(ty, &mut entry, wire, &vpath)?,
                    }
                }
                (_, wire) => skip(&mut entry, wire, path)?,
            }
        }
        let v = v.unwrap_or_else(|| zero(ty));
        Ok((k, v))
    }
}

/// A field of a small fixed message: a number or a slice.
enum Small<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of a small fixed message (Time, Quantity, IntOrString, RawExtension) by number.
fn small<'a>(mut buf: &'a [u8], path: &str) -> Result<HashMap<u32, Small<'a>>, DecodeError> {
    let mut out = HashMap::new();
    while !buf.is_empty() {
        let (number, wire) = key(&mut buf, path)?;
        let v = match wire {
            WireType::Varint => Small::Varint(varint(&mut buf, path)?),
            WireType::LengthDelimited => Small::Bytes(length_delimited(&mut buf, path)?),
            _ => {
                skip(&mut buf, wire, path)?;
                continue;
            }
        };
        out.insert(number, v);
    }
    Ok(out)
}

fn varint(buf: &mut &[u8], path: &str) -> Result<u64, DecodeError> {
    decode_varint(buf).map_err(|e| DecodeError::Invalid(format!("{e} at {}", at(path))))
}

/// A scalar or one of Kubernetes' scalar-like messages; `None` for an empty `Time` or
/// `RawExtension` (null in Kubernetes' JSON).
fn scalar(
    ty: Ty,
    buf: &mut &[u8],
    wire: WireType,
    path: &str,
) -> Result<Option<Value>, DecodeError> {
    let number = |buf: &mut &[u8]| -> Result<u64, DecodeError> {
        if wire != WireType::Varint {
            return Err(wrong_wire(path, wire, "a number or bool"));
        }
        varint(buf, path)
    };
    let v = match ty {
        Ty::I32 => Value::from(number(buf)? as i64 as i32),
        Ty::I64 => Value::from(number(buf)? as i64),
        Ty::Bool => Value::Bool(number(buf)? != 0),
        Ty::Str => Value::String(utf8(expect_bytes(buf, wire, path)?, path)?),
        Ty::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(expect_bytes(buf, wire, path)?),
        ),
        Ty::Time | Ty::MicroTime => return time(expect_bytes(buf, wire, path)?, ty, path),
        Ty::Quantity => match small(expect_bytes(buf, wire, path)?, path)?.remove(&1) {
            Some(Small::Bytes(b)) => Value::String(utf8(b, path)?),
            _ => Value::String("0".into()),
        },
        Ty::IntOrString => {
            let mut f = small(expect_bytes(buf, wire, path)?, path)?;
            match (f.remove(&1), f.remove(&2), f.remove(&3)) {
                (Some(Small::Varint(1)), _, Some(Small::Bytes(s))) => Value::String(utf8(s, path)?),
                (Some(Small::Varint(1)), _, _) => Value::String(String::new()),
                (_, Some(Small::Varint(i)), _) => Value::from(i as i64 as i32),
                _ => Value::from(0),
            }
        }
        Ty::Raw => match small(expect_bytes(buf, wire, path)?, path)?.remove(&1) {
            Some(Small::Bytes(raw)) if !raw.is_empty() => {
                serde_json::from_slice(raw).map_err(|e| {
                    DecodeError::Invalid(format!(
                        "the embedded object at {} is not JSON: {e}",
                        at(path)
                    ))
                })?
            }
            _ => return Ok(None),
        },
        Ty::Message(_) => {
            return Err(DecodeError::Invalid(format!(
                "a message where a scalar was expected at {}",
                at(path)
            )))
        }
    };
    Ok(Some(v))
}

/// Whether orkops' schema of `def` has the field `json` (true for a definition it does not
/// have: validation judges that one).
fn served(def: &str, json: &str) -> bool {
    match super::openapi::definitions()
        .get(def)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
    {
        Some(props) => props.contains_key(json),
        None => true,
    }
}

/// The zero value of a map's missing value, as Go decodes it.
fn zero(ty: Ty) -> Value {
    match ty {
        Ty::I32 | Ty::I64 => Value::from(0),
        Ty::Bool => Value::Bool(false),
        Ty::Quantity => Value::String("0".into()),
        Ty::Message(_) => Value::Object(Map::new()),
        Ty::Time | Ty::MicroTime | Ty::Raw => Value::Null,
        _ => Value::String(String::new()),
    }
}

/// Whether Go's `omitempty` leaves the value out.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        Value::Null => true,
        _ => false,
    }
}

/// `Time` {seconds 1, nanos 2} as RFC 3339 (`MicroTime` with microseconds); an empty one is
/// the zero time, which Kubernetes writes as null (left out here).
fn time(buf: &[u8], ty: Ty, path: &str) -> Result<Option<Value>, DecodeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let f = small(buf, path)?;
    let get = |n: u32| match f.get(&n) {
        Some(&Small::Varint(v)) => v as i64,
        _ => 0,
    };
    let (seconds, nanos) = (get(1), get(2));
    let t =
        DateTime::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0)).ok_or_else(|| {
            DecodeError::Invalid(format!(
                "time {seconds}s {nanos}ns at {} is out of range",
                at(path)
            ))
        })?;
    let format = if ty == Ty::MicroTime {
        SecondsFormat::Micros
    } else {
        SecondsFormat::Secs
    };
    Ok(Some(Value::String(t.to_rfc3339_opts(format, true))))
}

fn wrong_wire(path: &str, wire: WireType, wanted: &str) -> DecodeError {
    DecodeError::Invalid(format!(
        "wire type {wire:?} at {} where {wanted} was expected",
        at(path)
    ))
}

fn key(buf: &mut &[u8], path: &str) -> Result<(u32, WireType), DecodeError> {
    decode_key(buf).map_err(|e| DecodeError::Invalid(format!("{e} in {}", at(path))))
}

fn expect_bytes<'a>(
    buf: &mut &'a [u8],
    wire: WireType,
    path: &str,
) -> Result<&'a [u8], DecodeError> {
    if wire != WireType::LengthDelimited {
        return Err(wrong_wire(path, wire, "a string, bytes or a message"));
    }
    length_delimited(buf, path)
}

/// A length-prefixed slice; the length is checked against what is left.
fn length_delimited<'a>(buf: &mut &'a [u8], path: &str) -> Result<&'a [u8], DecodeError> {
    let len =
        decode_varint(buf).map_err(|e| DecodeError::Invalid(format!("{e} at {}", at(path))))?;
    if len > buf.len() as u64 {
        return Err(DecodeError::Invalid(format!(
            "a length of {len} bytes at {} runs past the end of the body ({} left)",
            at(path),
            buf.len()
        )));
    }
    let (head, tail) = buf.split_at(len as usize);
    *buf = tail;
    Ok(head)
}

fn utf8(b: &[u8], path: &str) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| DecodeError::Invalid(format!("the string at {} is not UTF-8", at(path))))
}

/// Skips a field the table does not know.
fn skip(buf: &mut &[u8], wire: WireType, path: &str) -> Result<(), DecodeError> {
    let n = match wire {
        WireType::Varint => {
            decode_varint(buf).map_err(|e| DecodeError::Invalid(format!("{e} at {}", at(path))))?;
            return Ok(());
        }
        WireType::LengthDelimited => {
            length_delimited(buf, path)?;
            return Ok(());
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::StartGroup | WireType::EndGroup => {
            return Err(wrong_wire(path, wire, "no group (Kubernetes sends none)"))
        }
    };
    if buf.len() < n {
        return Err(DecodeError::Invalid(format!(
            "a fixed-size field at {} runs past the end of the body",
            at(path)
        )));
    }
    *buf = &buf[n..];
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Fixtures are encoded with the `k8s-pb` crate (an independent source of Kubernetes'
    //! field numbers) and decoded here; the JSON is what kubectl would send for the object.
    use super::*;
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::batch::v1 as batch;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use prost::Message;
    use serde_json::json;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s(api_version),
                kind: s(kind),
            }),
            raw: Some(raw),
            content_encoding: s(""),
            content_type: s(""),
        };
        [&MAGIC[..], &unknown.encode_to_vec()].concat()
    }

    fn decoded(api_version: &str, kind: &str, msg: &impl Message) -> Value {
        let d = decode(&envelope(api_version, kind, msg.encode_to_vec())).unwrap();
        assert_eq!(d.unknown, Vec::<String>::new());
        d.value
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn meta(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: s(name),
            // gogo writes every non-pointer field, zero or not: these must not show up
            namespace: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            labels: [("app".to_string(), name.to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        })
    }

    fn int_or_string(v: Value) -> Option<IntOrString> {
        Some(match v {
            Value::String(s) => IntOrString {
                r#type: Some(1),
                int_val: Some(0),
                str_val: Some(s),
            },
            v => IntOrString {
                r#type: Some(0),
                int_val: v.as_i64().map(|i| i as i32),
                str_val: s(""),
            },
        })
    }

    fn container() -> core::Container {
        core::Container {
            name: s("web"),
            image: s("nginx"),
            resources: Some(core::ResourceRequirements {
                limits: [("memory".to_string(), Quantity { string: s("128Mi") })]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            termination_message_path: s(""),
            ..Default::default()
        }
    }

    fn deployment(replicas: Option<i32>, surge: Value) -> apps::Deployment {
        apps::Deployment {
            metadata: meta("web"),
            spec: Some(apps::DeploymentSpec {
                replicas,
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: meta("web"),
                    spec: Some(core::PodSpec {
                        containers: vec![container()],
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_surge: int_or_string(surge),
                        max_unavailable: int_or_string(json!(0)),
                    }),
                }),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        }
    }

    #[test]
    fn a_deployment_decodes_as_its_json() {
        let d = decoded("apps/v1", "Deployment", &deployment(Some(2), json!("25%")));
        let meta = json!({"name": "web", "labels": {"app": "web"}});
        assert_eq!(
            d,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": meta, "spec": {"containers": [{
                        "name": "web", "image": "nginx",
                        "resources": {"limits": {"memory": "128Mi"}},
                    }]}},
                    "strategy": {"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                },
                "status": {},
            })
        );
    }

    #[test]
    fn replicas_zero_is_kept_and_unset_stays_unset() {
        let zero = decoded("apps/v1", "Deployment", &deployment(Some(0), json!(1)));
        assert_eq!(zero["spec"]["replicas"], 0);
        assert_eq!(zero["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
        let unset = decoded("apps/v1", "Deployment", &deployment(None, json!(1)));
        assert!(unset["spec"].get("replicas").is_none(), "{unset}");
    }

    #[test]
    fn times_are_rfc3339() {
        let mut d = deployment(Some(1), json!(1));
        let m = d.metadata.as_mut().unwrap();
        m.creation_timestamp = Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        });
        m.deletion_timestamp = Some(meta::Time {
            seconds: Some(1_700_000_001),
            nanos: Some(5),
        });
        let v = decoded("apps/v1", "Deployment", &d);
        assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["metadata"]["deletionTimestamp"], "2023-11-14T22:13:21Z");
        let ev = core::Event {
            metadata: meta("e"),
            event_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_000),
            }),
            ..Default::default()
        };
        let v = decoded("v1", "Event", &ev);
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn secret_bytes_are_base64_and_configmaps_are_maps() {
        let secret = core::Secret {
            metadata: meta("s"),
            data: [("k".to_string(), b"\x00hi\xff".to_vec())]
                .into_iter()
                .collect(),
            r#type: s("Opaque"),
            immutable: Some(false),
            ..Default::default()
        };
        let v = decoded("v1", "Secret", &secret);
        assert_eq!(v["data"], json!({"k": "AGhp/w=="}));
        assert_eq!(v["type"], "Opaque");
        // a pointer: false is not unset
        assert_eq!(v["immutable"], false);
        let cm = core::ConfigMap {
            metadata: meta("c"),
            data: [("a".to_string(), "1".to_string()), ("b".into(), "".into())]
                .into_iter()
                .collect(),
            binary_data: [("bin".to_string(), vec![1, 2])].into_iter().collect(),
            ..Default::default()
        };
        let v = decoded("v1", "ConfigMap", &cm);
        assert_eq!(v["data"], json!({"a": "1", "b": ""}));
        assert_eq!(v["binaryData"], json!({"bin": "AQI="}));
    }

    #[test]
    fn a_service_has_int_or_string_ports() {
        let svc = core::Service {
            metadata: meta("web"),
            spec: Some(core::ServiceSpec {
                ports: vec![
                    core::ServicePort {
                        port: Some(80),
                        target_port: int_or_string(json!(8080)),
                        protocol: s("TCP"),
                        node_port: Some(0),
                        ..Default::default()
                    },
                    core::ServicePort {
                        name: s("metrics"),
                        port: Some(0),
                        target_port: int_or_string(json!("http")),
                        ..Default::default()
                    },
                    core::ServicePort {
                        port: Some(81),
                        // a zero targetPort is unset, as Kubernetes defaults it
                        target_port: int_or_string(json!(0)),
                        ..Default::default()
                    },
                ],
                selector: [("app".to_string(), "web".to_string())]
                    .into_iter()
                    .collect(),
                r#type: s("ClusterIP"),
                ..Default::default()
            }),
            status: Some(core::ServiceStatus::default()),
        };
        let v = decoded("v1", "Service", &svc);
        assert_eq!(
            v["spec"],
            json!({
                "ports": [
                    {"port": 80, "targetPort": 8080, "protocol": "TCP"},
                    // port has no omitempty: Kubernetes writes its zero
                    {"name": "metrics", "port": 0, "targetPort": "http"},
                    {"port": 81},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            })
        );
    }

    #[test]
    fn jobs_and_cronjobs() {
        let job_spec = batch::JobSpec {
            completions: Some(3),
            backoff_limit: Some(0),
            template: Some(core::PodTemplateSpec {
                metadata: meta("j"),
                spec: Some(core::PodSpec {
                    containers: vec![container()],
                    restart_policy: s("Never"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let job = batch::Job {
            metadata: meta("j"),
            spec: Some(job_spec.clone()),
            status: None,
        };
        let v = decoded("batch/v1", "Job", &job);
        assert_eq!(v["spec"]["completions"], 3);
        assert_eq!(v["spec"]["backoffLimit"], 0);
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let cj = batch::CronJob {
            metadata: meta("c"),
            spec: Some(batch::CronJobSpec {
                schedule: s("*/5 * * * *"),
                suspend: Some(false),
                job_template: Some(batch::JobTemplateSpec {
                    metadata: meta("c"),
                    spec: Some(job_spec),
                }),
                concurrency_policy: s(""),
                ..Default::default()
            }),
            status: None,
        };
        let v = decoded("batch/v1", "CronJob", &cj);
        assert_eq!(v["spec"]["schedule"], "*/5 * * * *");
        assert_eq!(v["spec"]["suspend"], false);
        assert!(v["spec"].get("concurrencyPolicy").is_none(), "{v}");
        let tmpl = &v["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(tmpl["containers"][0]["image"], "nginx");
    }

    #[test]
    fn a_pod_with_probes_env_and_volumes() {
        let probe = core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: int_or_string(json!(8080)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(0),
            ..Default::default()
        };
        let mut c = container();
        c.readiness_probe = Some(probe);
        c.command = vec!["sh".into(), "-c".into()];
        c.env = vec![
            core::EnvVar {
                name: s("A"),
                value: s("1"),
                value_from: None,
            },
            core::EnvVar {
                name: s("B"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("s") }),
                        key: s("k"),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
            },
        ];
        c.ports = vec![core::ContainerPort {
            container_port: Some(80),
            ..Default::default()
        }];
        c.volume_mounts = vec![core::VolumeMount {
            name: s("data"),
            mount_path: s("/data"),
            ..Default::default()
        }];
        let pod = core::Pod {
            metadata: meta("p"),
            spec: Some(core::PodSpec {
                containers: vec![c],
                volumes: vec![core::Volume {
                    name: s("data"),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(core::EmptyDirVolumeSource {
                            medium: s(""),
                            size_limit: Some(Quantity { string: s("1Gi") }),
                        }),
                        ..Default::default()
                    }),
                }],
                termination_grace_period_seconds: Some(0),
                ..Default::default()
            }),
            status: None,
        };
        let v = decoded("v1", "Pod", &pod);
        let spec = &v["spec"];
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(
            spec["volumes"],
            json!([{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}])
        );
        let c = &spec["containers"][0];
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5})
        );
        assert_eq!(c["command"], json!(["sh", "-c"]));
        assert_eq!(
            c["env"],
            json!([{"name": "A", "value": "1"},
                   {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}}])
        );
        assert_eq!(c["ports"], json!([{"containerPort": 80}]));
        assert_eq!(
            c["volumeMounts"],
            json!([{"name": "data", "mountPath": "/data"}])
        );
    }

    #[test]
    fn delete_options() {
        let opts = meta::DeleteOptions {
            grace_period_seconds: Some(0),
            propagation_policy: s("Foreground"),
            preconditions: Some(meta::Preconditions {
                uid: s("u-1"),
                resource_version: None,
            }),
            dry_run: vec!["All".into()],
            ..Default::default()
        };
        let v = decoded("apps/v1", "DeleteOptions", &opts);
        assert_eq!(
            v,
            json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "propagationPolicy": "Foreground", "preconditions": {"uid": "u-1"},
                   "dryRun": ["All"]})
        );
    }

    #[test]
    fn unknown_numbers_are_named_by_path() {
        let mut raw = deployment(Some(1), json!(1)).encode_to_vec();
        // field 99, a varint, at the top and inside spec (field 2)
        raw.extend([0x98, 0x06, 0x01]);
        let spec = vec![0x98, 0x06, 0x01];
        raw.extend([0x12, spec.len() as u8]);
        raw.extend(spec);
        let d = decode(&envelope("apps/v1", "Deployment", raw)).unwrap();
        assert_eq!(
            d.unknown,
            ["<protobuf field 99>", "spec.<protobuf field 99>"]
        );
        // what is known still decodes
        assert_eq!(d.value["spec"]["replicas"], 1);
    }

    #[test]
    fn bad_bodies_are_refused_with_what_and_where() {
        let e = decode(b"{\"kind\":\"Pod\"}").unwrap_err().to_string();
        assert!(e.contains("k8s\\0"), "{e}");
        let e = decode(&envelope("networking.k8s.io/v1", "Ingress", vec![])).unwrap_err();
        assert!(matches!(e, DecodeError::UnsupportedType { .. }), "{e}");
        assert!(
            e.to_string().contains("Ingress of networking.k8s.io/v1"),
            "{e}"
        );
        // a length past the end
        let e = decode(&envelope("v1", "Pod", vec![0x0a, 0x7f, 0x01]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("runs past the end"), "{e}");
        // a string where a number is expected: spec (2) { replicas (1) as bytes }
        let e = decode(&envelope(
            "apps/v1",
            "Deployment",
            vec![0x12, 0x03, 0x0a, 0x01, b'x'],
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"spec.replicas\""), "{e}");
        // random bytes never panic
        for seed in 0..2000u32 {
            let mut x = seed.wrapping_mul(2_654_435_761);
            let mut raw = Vec::new();
            for _ in 0..(seed % 64) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                raw.push(x as u8);
            }
            let _ = decode(&envelope("v1", "Pod", raw));
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // the table has no recursive message, so no body can nest this deep: the bound is
        // checked directly
        let mut r = Reader {
            unknown: Vec::new(),
            unknown_count: 0,
        };
        let e = r
            .message(
                "io.k8s.api.core.v1.Pod",
                "io.k8s.api.core.v1.Pod",
                &[],
                "x",
                MAX_DEPTH + 1,
                &mut Map::new(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("deeper than 64"), "{e}");
    }

    #[test]
    fn a_daemon_set_decodes_as_its_json() {
        let ds = apps::DaemonSet {
            metadata: meta("agent"),
            spec: Some(apps::DaemonSetSpec {
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "agent".to_string())]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: meta("agent"),
                    spec: Some(core::PodSpec {
                        containers: vec![container()],
                        ..Default::default()
                    }),
                }),
                update_strategy: Some(apps::DaemonSetUpdateStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDaemonSet {
                        max_unavailable: int_or_string(json!("10%")),
                        max_surge: int_or_string(json!(0)),
                    }),
                }),
                min_ready_seconds: Some(0),
                revision_history_limit: Some(3),
            }),
            // gogo writes the status counts, zero or not
            status: Some(apps::DaemonSetStatus {
                current_number_scheduled: Some(0),
                number_misscheduled: Some(0),
                desired_number_scheduled: Some(0),
                number_ready: Some(0),
                observed_generation: Some(0),
                ..Default::default()
            }),
        };
        let meta = json!({"name": "agent", "labels": {"app": "agent"}});
        assert_eq!(
            decoded("apps/v1", "DaemonSet", &ds),
            json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
                "spec": {
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": meta, "spec": {"containers": [{
                        "name": "web", "image": "nginx",
                        "resources": {"limits": {"memory": "128Mi"}},
                    }]}},
                    "updateStrategy": {"type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0}},
                    "revisionHistoryLimit": 3,
                },
                "status": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                    "desiredNumberScheduled": 0, "numberReady": 0},
            })
        );
    }

    /// Every field orkops' schema has can be sent as protobuf, under the same JSON name.
    #[test]
    fn the_table_covers_every_field_of_the_schema() {
        let defs = super::super::openapi::definitions();
        let mut missing = Vec::new();
        for (name, schema) in defs {
            let Some(fields) = TABLE.get(name.as_str()) else {
                continue;
            };
            let mut names: Vec<&str> = Vec::new();
            let mut todo: Vec<&HashMap<u32, Field>> = vec![fields];
            while let Some(f) = todo.pop() {
                for field in f.values() {
                    match (field.json, field.ty) {
                        ("", Ty::Message(sub)) => todo.push(&TABLE[sub]),
                        (json, _) => names.push(json),
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for p in props.into_iter().flat_map(|m| m.keys()) {
                if !names.contains(&p.as_str()) && p != "apiVersion" && p != "kind" {
                    missing.push(format!("{name}.{p}"));
                }
            }
        }
        // fields of orkops' own (the agent's version and endpoint) and the condition times its
        // one Condition type has where Kubernetes' condition of that kind has none: no
        // Kubernetes client sends these, in protobuf or JSON
        let not_upstream = [
            "core.v1.NodeSystemInfo.agentVersion",
            "core.v1.NodeDaemonEndpoints.agentEndpoint",
            "core.v1.PodCondition.lastHeartbeatTime",
            "core.v1.PodCondition.lastUpdateTime",
            "core.v1.NodeCondition.lastProbeTime",
            "core.v1.NodeCondition.lastUpdateTime",
            "apps.v1.DeploymentCondition.lastProbeTime",
            "apps.v1.DeploymentCondition.lastHeartbeatTime",
            "apps.v1.ReplicaSetCondition.lastProbeTime",
            "apps.v1.ReplicaSetCondition.lastHeartbeatTime",
            "apps.v1.ReplicaSetCondition.lastUpdateTime",
            "apps.v1.StatefulSetCondition.lastProbeTime",
            "apps.v1.StatefulSetCondition.lastHeartbeatTime",
            "apps.v1.StatefulSetCondition.lastUpdateTime",
            "batch.v1.JobCondition.lastHeartbeatTime",
            "batch.v1.JobCondition.lastUpdateTime",
            "apps.v1.DaemonSetCondition.lastProbeTime",
            "apps.v1.DaemonSetCondition.lastHeartbeatTime",
            "apps.v1.DaemonSetCondition.lastUpdateTime",
            "core.v1.ReplicationControllerCondition.lastProbeTime",
            "core.v1.ReplicationControllerCondition.lastHeartbeatTime",
            "core.v1.ReplicationControllerCondition.lastUpdateTime",
        ];
        missing.retain(|m| !not_upstream.iter().any(|n| m == &format!("io.k8s.api.{n}")));
        assert!(missing.is_empty(), "no protobuf number for {missing:?}");
        // every object definition orkops has is in the table, but those of responses only
        let response_only = |n: &str| {
            n.ends_with("List") || n.ends_with(".ListMeta") || n.ends_with("meta.v1.Status")
        };
        let absent: Vec<&String> = defs
            .iter()
            .filter(|(n, d)| {
                !TABLE.contains_key(n.as_str())
                    && d.get("properties").is_some()
                    && !response_only(n)
            })
            .map(|(n, _)| n)
            .collect();
        assert!(absent.is_empty(), "not in the protobuf table: {absent:?}");
        for k in Kind::all() {
            let def = super::super::openapi::definition_name(k);
            assert!(TABLE.contains_key(def), "{def}");
        }
        for fields in TABLE.values() {
            for f in fields.values() {
                if let Ty::Message(m) = f.ty {
                    assert!(
                        TABLE.contains_key(m),
                        "{m} is referred to but not in the table"
                    );
                }
            }
        }
    }
}
