//! The registry of supported kinds: names, plurals, short names, API groups, scope, and the
//! REST paths built from them. One table, used by the API server, the store keys and the CLI.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    Event,
    Deployment,
    ReplicaSet,
    ControllerRevision,
    Job,
    CronJob,
    ServiceAccount,
    PodDisruptionBudget,
    Lease,
    StatefulSet,
    DaemonSet,
    ReplicationController,
    StorageClass,
    PersistentVolume,
}

struct Info {
    kind: Kind,
    name: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    api_version: &'static str,
    namespaced: bool,
    has_status: bool,
}

#[rustfmt::skip]
const TABLE: &[Info] = &[
    Info { kind: Kind::Namespace, name: "Namespace", plural: "namespaces", short: &["ns"], api_version: "v1", namespaced: false, has_status: true },
    Info { kind: Kind::Node, name: "Node", plural: "nodes", short: &["no"], api_version: "v1", namespaced: false, has_status: true },
    Info { kind: Kind::Pod, name: "Pod", plural: "pods", short: &["po"], api_version: "v1", namespaced: true, has_status: true },
    Info { kind: Kind::Service, name: "Service", plural: "services", short: &["svc"], api_version: "v1", namespaced: true, has_status: true },
    Info { kind: Kind::Endpoints, name: "Endpoints", plural: "endpoints", short: &["ep"], api_version: "v1", namespaced: true, has_status: false },
    Info { kind: Kind::ConfigMap, name: "ConfigMap", plural: "configmaps", short: &["cm"], api_version: "v1", namespaced: true, has_status: false },
    Info { kind: Kind::Secret, name: "Secret", plural: "secrets", short: &[], api_version: "v1", namespaced: true, has_status: false },
    Info { kind: Kind::PersistentVolumeClaim, name: "PersistentVolumeClaim", plural: "persistentvolumeclaims", short: &["pvc"], api_version: "v1", namespaced: true, has_status: true },
    Info { kind: Kind::Event, name: "Event", plural: "events", short: &["ev"], api_version: "v1", namespaced: true, has_status: false },
    Info { kind: Kind::Deployment, name: "Deployment", plural: "deployments", short: &["deploy"], api_version: "apps/v1", namespaced: true, has_status: true },
    Info { kind: Kind::ReplicaSet, name: "ReplicaSet", plural: "replicasets", short: &["rs"], api_version: "apps/v1", namespaced: true, has_status: true },
    Info { kind: Kind::ControllerRevision, name: "ControllerRevision", plural: "controllerrevisions", short: &[], api_version: "apps/v1", namespaced: true, has_status: false },
    Info { kind: Kind::Job, name: "Job", plural: "jobs", short: &[], api_version: "batch/v1", namespaced: true, has_status: true },
    Info { kind: Kind::CronJob, name: "CronJob", plural: "cronjobs", short: &["cj"], api_version: "batch/v1", namespaced: true, has_status: true },
    Info { kind: Kind::ServiceAccount, name: "ServiceAccount", plural: "serviceaccounts", short: &["sa"], api_version: "v1", namespaced: true, has_status: false },
    Info { kind: Kind::PodDisruptionBudget, name: "PodDisruptionBudget", plural: "poddisruptionbudgets", short: &["pdb"], api_version: "policy/v1", namespaced: true, has_status: true },
    Info { kind: Kind::Lease, name: "Lease", plural: "leases", short: &[], api_version: "coordination.k8s.io/v1", namespaced: true, has_status: false },
    Info { kind: Kind::StatefulSet, name: "StatefulSet", plural: "statefulsets", short: &["sts"], api_version: "apps/v1", namespaced: true, has_status: true },
    Info { kind: Kind::DaemonSet, name: "DaemonSet", plural: "daemonsets", short: &["ds"], api_version: "apps/v1", namespaced: true, has_status: true },
    Info { kind: Kind::ReplicationController, name: "ReplicationController", plural: "replicationcontrollers", short: &["rc"], api_version: "v1", namespaced: true, has_status: true },
    Info { kind: Kind::StorageClass, name: "StorageClass", plural: "storageclasses", short: &["sc"], api_version: "storage.k8s.io/v1", namespaced: false, has_status: false },
    Info { kind: Kind::PersistentVolume, name: "PersistentVolume", plural: "persistentvolumes", short: &["pv"], api_version: "v1", namespaced: false, has_status: true },
];

impl Kind {
    pub fn all() -> impl Iterator<Item = Kind> {
        TABLE.iter().map(|i| i.kind)
    }

    fn info(self) -> &'static Info {
        TABLE
            .iter()
            .find(|i| i.kind == self)
            .expect("every kind is in the table")
    }

    /// The kind as written in manifests: `Pod`.
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// The REST resource name: `pods`.
    pub fn plural(self) -> &'static str {
        self.info().plural
    }
    pub fn short_names(self) -> &'static [&'static str] {
        self.info().short
    }
    /// `v1`, or a named group's version: `apps/v1`, `coordination.k8s.io/v1`.
    pub fn api_version(self) -> &'static str {
        self.info().api_version
    }
    pub fn namespaced(self) -> bool {
        self.info().namespaced
    }
    /// Whether the kind has a `status` written only through the `/status` subresource.
    pub fn has_status(self) -> bool {
        self.info().has_status
    }

    /// Finds a kind from a manifest `kind`, a plural, a singular or a short name, any case.
    pub fn lookup(word: &str) -> Option<Kind> {
        let w = word.to_ascii_lowercase();
        TABLE
            .iter()
            .find(|i| {
                i.name.eq_ignore_ascii_case(&w) || i.plural == w || i.short.contains(&w.as_str())
            })
            .map(|i| i.kind)
    }

    /// Finds a kind from its `apiVersion` and `kind` as written in a manifest.
    pub fn from_manifest(api_version: &str, kind: &str) -> Option<Kind> {
        TABLE
            .iter()
            .find(|i| i.name == kind && i.api_version == api_version)
            .map(|i| i.kind)
    }

    /// Finds a kind from its URL group/version (`v1`, `apps/v1`) and plural.
    pub fn from_path(group_version: &str, plural: &str) -> Option<Kind> {
        TABLE
            .iter()
            .find(|i| i.plural == plural && i.api_version == group_version)
            .map(|i| i.kind)
    }

    /// The REST path of a collection (`name` None) or an object, in a namespace or across all.
    pub fn path(self, namespace: Option<&str>, name: Option<&str>) -> String {
        let root = if self.api_version() == "v1" {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}", self.api_version())
        };
        let mut p = match (self.namespaced(), namespace) {
            (true, Some(ns)) => format!("{root}/namespaces/{ns}/{}", self.plural()),
            _ => format!("{root}/{}", self.plural()),
        };
        if let Some(n) = name {
            p.push('/');
            p.push_str(n);
        }
        p
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_accepts_every_spelling() {
        assert_eq!(Kind::lookup("pods"), Some(Kind::Pod));
        assert_eq!(Kind::lookup("Pod"), Some(Kind::Pod));
        assert_eq!(Kind::lookup("po"), Some(Kind::Pod));
        assert_eq!(Kind::lookup("deploy"), Some(Kind::Deployment));
        assert_eq!(Kind::lookup("svc"), Some(Kind::Service));
        assert_eq!(Kind::lookup("cronjobs"), Some(Kind::CronJob));
        assert_eq!(Kind::lookup("rs"), Some(Kind::ReplicaSet));
        assert_eq!(Kind::lookup("sts"), Some(Kind::StatefulSet));
        assert_eq!(Kind::lookup("widgets"), None);
        assert_eq!(Kind::lookup("ds"), Some(Kind::DaemonSet));
    }

    #[test]
    fn paths_follow_the_kubernetes_layout() {
        assert_eq!(
            Kind::Pod.path(Some("default"), Some("web")),
            "/api/v1/namespaces/default/pods/web"
        );
        assert_eq!(Kind::Pod.path(None, None), "/api/v1/pods");
        assert_eq!(
            Kind::Node.path(Some("ignored"), Some("n1")),
            "/api/v1/nodes/n1"
        );
        assert_eq!(
            Kind::Deployment.path(Some("a"), None),
            "/apis/apps/v1/namespaces/a/deployments"
        );
        assert_eq!(Kind::from_path("batch/v1", "cronjobs"), Some(Kind::CronJob));
        assert_eq!(
            Kind::from_manifest("apps/v1", "Deployment"),
            Some(Kind::Deployment)
        );
        assert_eq!(Kind::from_manifest("v1", "Deployment"), None);
    }
}
