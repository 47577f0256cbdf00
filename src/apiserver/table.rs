//! Server-side printing: a request whose `Accept` asks for
//! `application/json;as=Table;v=v1;g=meta.k8s.io` (or `v1beta1`) gets a `meta.k8s.io Table`
//! instead of the objects — column definitions and one row of cells per object, the columns
//! `orkops get` prints (`crate::api::columns`) — which is what `kubectl get` prints. Each row
//! carries the object as `includeObject` asks: none, its metadata (the default), or whole.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use crate::api::columns;
use crate::api::Kind;

/// What a row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// How a read is answered: as the objects, or as a Table of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Objects,
    Table {
        kind: Kind,
        /// `v1` or `v1beta1`, as asked.
        version: &'static str,
        include: Include,
    },
}

/// The output a GET asks for with its `Accept` header and `includeObject` parameter. The first
/// acceptable media type wins, as in kube-apiserver; a type orkops does not serve is skipped, and
/// with none acceptable the objects are sent as JSON.
pub fn negotiate(
    kind: Kind,
    accept: Option<&str>,
    include_object: Option<&str>,
) -> Result<Output, ApiError> {
    let include = match include_object.unwrap_or("") {
        "" | "Metadata" => Include::Metadata,
        "None" => Include::None,
        "Object" => Include::Object,
        other => {
            return Err(ApiError::BadRequest(format!(
                "includeObject={other:?} is not one of None, Metadata, Object"
            )))
        }
    };
    for media in accept.unwrap_or("").split(',') {
        let mut parts = media.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        if !matches!(base, "application/json" | "application/*" | "*/*") {
            continue;
        }
        let (mut as_, mut g, mut v) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                _ => {}
            }
        }
        match (as_, g, v) {
            ("", _, _) => return Ok(Output::Objects),
            ("Table", "meta.k8s.io", "v1") => {
                return Ok(Output::Table {
                    kind,
                    version: "v1",
                    include,
                })
            }
            ("Table", "meta.k8s.io", "v1beta1") => {
                return Ok(Output::Table {
                    kind,
                    version: "v1beta1",
                    include,
                })
            }
            _ => continue,
        }
    }
    Ok(Output::Objects)
}

/// The `columnDefinitions` of `kind`'s Table.
pub fn column_definitions(kind: Kind) -> Value {
    Value::Array(
        columns::columns(kind)
            .iter()
            .map(|c| {
                json!({
                    "name": c.name, "type": c.kind, "format": c.format,
                    "description": c.description, "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// One row of a Table: the cells of `obj` and the object as `include` asks.
pub fn row(kind: Kind, obj: &Value, version: &str, include: Include, now: DateTime<Utc>) -> Value {
    let cells: Vec<Value> = columns::cells(kind, obj, now)
        .iter()
        .map(columns::Cell::to_json)
        .collect();
    let mut r = Map::new();
    r.insert("cells".into(), Value::Array(cells));
    match include {
        Include::None => {}
        Include::Metadata => {
            r.insert(
                "object".into(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": format!("meta.k8s.io/{version}"),
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            );
        }
        Include::Object => {
            r.insert("object".into(), obj.clone());
        }
    }
    Value::Object(r)
}

/// The JSON text of a Table up to its rows (`"rows":[` included): the caller writes the rows,
/// separated by commas, then `]}`. `metadata` is the list metadata (resourceVersion, continue).
pub fn list_head(kind: Kind, version: &str, metadata: &Value) -> String {
    format!(
        r#"{{"kind":"Table","apiVersion":"meta.k8s.io/{version}","metadata":{metadata},"columnDefinitions":{},"rows":["#,
        column_definitions(kind)
    )
}

/// A Table of one object (a single GET, a watch event).
pub fn single(kind: Kind, obj: &Value, version: &str, include: Include) -> Value {
    let rv = obj
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or_else(|| json!(""));
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": column_definitions(kind),
        "rows": [row(kind, obj, version, include, Utc::now())],
    })
}

/// The object of a watch event as `output` asks: the object itself or a one-row Table. An
/// ERROR's Status and a BOOKMARK stay as they are.
pub fn event_object(output: &Output, event: &str, obj: &Value) -> Value {
    match output {
        Output::Table {
            kind,
            version,
            include,
        } if event != "ERROR" && event != "BOOKMARK" => single(*kind, obj, version, *include),
        _ => obj.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_acceptable_media_type_wins() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Kind::Pod, Some(kubectl), Some("Object")).unwrap(),
            Output::Table {
                kind: Kind::Pod,
                version: "v1",
                include: Include::Object
            }
        );
        let beta = "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json";
        assert!(matches!(
            negotiate(Kind::Pod, Some(beta), None).unwrap(),
            Output::Table {
                version: "v1beta1",
                include: Include::Metadata,
                ..
            }
        ));
        for plain in [
            None,
            Some("application/json"),
            Some("*/*"),
            Some("text/html"),
        ] {
            assert_eq!(negotiate(Kind::Pod, plain, None).unwrap(), Output::Objects);
        }
        let partial =
            "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Kind::Pod, Some(partial), None).unwrap(),
            Output::Objects
        );
        let e = negotiate(Kind::Pod, Some(kubectl), Some("All")).unwrap_err();
        assert!(e.to_string().contains("includeObject"), "{e}");
    }

    #[test]
    fn rows_carry_cells_and_the_object_asked_for() {
        let pod = json!({"metadata": {"name": "web", "creationTimestamp": Utc::now().to_rfc3339()},
            "spec": {"containers": [{"name": "a"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5",
                "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0}]}});
        let t = single(Kind::Pod, &pod, "v1", Include::Metadata);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][5]["name"], "IP");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "1/1");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[6], "n1");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(t["rows"][0]["object"].get("spec").is_none());
        let t = single(Kind::Pod, &pod, "v1", Include::None);
        assert!(t["rows"][0].get("object").is_none());
        let t = single(Kind::Pod, &pod, "v1", Include::Object);
        assert_eq!(t["rows"][0]["object"]["spec"]["nodeName"], "n1");
    }
}
