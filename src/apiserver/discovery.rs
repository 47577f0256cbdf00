//! API discovery as kube-apiserver serves it, built from the kind registry: `/version`, the
//! legacy group at `/api` and `/api/v1`, and the named groups at `/apis`, `/apis/GROUP` and
//! `/apis/GROUP/VERSION` — what kubectl and the client libraries read before anything else.

use serde_json::{json, Value};

use crate::api::Kind;

use crate::api::KUBE_MINOR;

/// The discovery document at `path`, or `None` when `path` is not a discovery path.
pub fn document(path: &str) -> Option<Value> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Some(version()),
        ["api"] => Some(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        })),
        ["api", "v1"] => Some(resources("v1")),
        ["apis"] => Some(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": groups().iter().map(|g| group(g)).collect::<Vec<_>>(),
        })),
        ["apis", g] if groups().contains(&g.to_string()) => Some(group(g)),
        ["apis", g, "v1"] if groups().contains(&g.to_string()) => {
            Some(resources(&format!("{g}/v1")))
        }
        _ => None,
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": crate::api::git_version(),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }),
    })
}

/// The named groups served (every one at `v1`), in the registry's order.
fn groups() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in Kind::all() {
        if let Some((g, _)) = k.api_version().split_once('/') {
            if !out.iter().any(|x| x == g) {
                out.push(g.to_string());
            }
        }
    }
    out
}

fn group(name: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": name,
        "versions": [gv], "preferredVersion": gv,
    })
}

/// The subresources a kind serves beside `status`, with their verbs.
fn subresources(kind: Kind) -> &'static [(&'static str, &'static [&'static str])] {
    match kind {
        Kind::Pod => &[
            ("binding", &["create"]),
            ("eviction", &["create"]),
            ("log", &["get"]),
            ("exec", &["create", "get"]),
            ("attach", &["create", "get"]),
        ],
        _ => &[],
    }
}

/// The `APIResourceList` of one group version.
fn resources(group_version: &str) -> Value {
    let mut list = Vec::new();
    for kind in Kind::all().filter(|k| k.api_version() == group_version) {
        let plural = kind.plural();
        let mut categories = Vec::new();
        if matches!(
            kind,
            Kind::Pod
                | Kind::Service
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::ReplicationController
                | Kind::Job
                | Kind::CronJob
                | Kind::StatefulSet
                | Kind::DaemonSet
        ) {
            categories.push("all");
        }
        list.push(json!({
            "name": plural,
            "singularName": kind.name().to_ascii_lowercase(),
            "namespaced": kind.namespaced(),
            "kind": kind.name(),
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": kind.short_names(),
            "categories": categories,
        }));
        if kind.has_status() {
            list.push(json!({
                "name": format!("{plural}/status"), "singularName": "",
                "namespaced": kind.namespaced(), "kind": kind.name(),
                "verbs": ["get", "patch", "update"],
            }));
        }
        if crate::apiserver::scale::scalable(kind) {
            list.push(json!({
                "name": format!("{plural}/scale"), "singularName": "",
                "namespaced": kind.namespaced(), "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        for (sub, verbs) in subresources(kind) {
            let mut r = json!({
                "name": format!("{plural}/{sub}"), "singularName": "",
                "namespaced": kind.namespaced(), "kind": kind.name(),
                "verbs": verbs,
            });
            match *sub {
                "binding" => r["kind"] = json!("Binding"),
                // kubectl drain looks for exactly this entry before it evicts instead of deleting
                "eviction" => {
                    r["kind"] = json!("Eviction");
                    r["group"] = json!("policy");
                    r["version"] = json!("v1");
                }
                _ => {}
            }
            list.push(r);
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_is_discoverable_where_its_api_version_says() {
        let apis = document("/apis").unwrap();
        let names: Vec<&str> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "batch",
                "policy",
                "coordination.k8s.io",
                "storage.k8s.io"
            ]
        );
        for kind in Kind::all() {
            let path = match kind.api_version() {
                "v1" => "/api/v1".to_string(),
                gv => format!("/apis/{gv}"),
            };
            let list = document(&path).unwrap();
            let found = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == kind.plural())
                .unwrap_or_else(|| panic!("{kind} missing from {path}"));
            assert_eq!(found["kind"], kind.name());
            assert_eq!(found["namespaced"], kind.namespaced());
        }
        assert!(document("/apis/networking.k8s.io/v1").is_none());
        let core = document("/api/v1").unwrap();
        let eviction = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("pods/eviction is discoverable");
        assert_eq!(
            (&eviction["kind"], &eviction["group"], &eviction["version"]),
            (&json!("Eviction"), &json!("policy"), &json!("v1"))
        );
        assert!(document("/api/v1/pods").is_none());
        let v = document("/version").unwrap();
        assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.32.0-"));
    }
}
