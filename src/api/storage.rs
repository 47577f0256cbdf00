//! Storage beyond a pod's own volumes: `storage.k8s.io/v1` StorageClass and `v1`
//! PersistentVolume, their defaults and validation as kube-apiserver's. The sources a node of
//! orkops can mount are served (`hostPath`, `local`, and the `csi` volumes of orkops' own
//! `orkops.io/local` provisioner: a Docker volume on one node); every other upstream source is
//! decoded so that it is refused by name, with what to use instead.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admit::{one_of, quantity, validate_host_path, validate_node_term, Errors};
use super::core::{object, HostPathVolumeSource, NodeSelector};
use super::labels;
use super::meta::{ObjectMeta, ObjectReference, Quantity, Time};

/// The provisioner of orkops' own volumes: a Docker volume on the node of the claim's first pod.
pub const LOCAL_PROVISIONER: &str = "orkops.io/local";
/// The StorageClass the master makes at start-up (the default one, unless a user changes that).
pub const LOCAL_CLASS: &str = "local";
/// Marks the default StorageClass (`"true"`), as Kubernetes' DefaultStorageClass admission reads it.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// The beta spelling of the same annotation, still honoured upstream.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// On a PersistentVolume: the provisioner that made it (`pv.kubernetes.io/provisioned-by`).
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// StorageClass describes the parameters for a class of storage for which PersistentVolumes can be dynamically provisioned. StorageClasses are non-namespaced; the name of the storage class according to etcd is in ObjectMeta.Name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageClass {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// provisioner indicates the type of the provisioner.
    #[serde(default)]
    pub provisioner: String,
    /// parameters holds the parameters for the provisioner that should create volumes of this storage class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<String>,
    /// mountOptions controls the mountOptions for dynamically provisioned PersistentVolumes of this storage class. e.g. ["ro", "soft"]. Not validated - mount of the PVs will simply fail if one is invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub mount_options: Vec<String>,
    /// allowVolumeExpansion shows whether the storage class allow volume expand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_volume_expansion: Option<bool>,
    /// volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound. When unset, VolumeBindingImmediate is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_binding_mode: Option<String>,
    /// allowedTopologies restrict the node topologies where volumes can be dynamically provisioned. An empty TopologySelectorTerm list means there is no topology restriction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub allowed_topologies: Vec<TopologySelectorTerm>,
}

/// A topology selector term represents the result of label queries. A null or empty topology selector term matches no objects. The requirements of them are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySelectorTerm {
    /// A list of topology selector requirements by labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_label_expressions: Vec<TopologySelectorLabelRequirement>,
}

/// A topology selector requirement is a selector that matches given label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySelectorLabelRequirement {
    /// The label key that the selector applies to.
    pub key: String,
    /// An array of string values. One value must match the label to be selected. Each entry in Values is ORed.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub values: Vec<String>,
}

impl StorageClass {
    /// Whether the class is marked the default one.
    pub fn is_default(&self) -> bool {
        let a = &self.metadata.annotations;
        [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION]
            .iter()
            .any(|k| a.get(*k).is_some_and(|v| v == "true"))
    }

    /// Whether claims of this class wait for their first pod before they are bound.
    pub fn waits_for_first_consumer(&self) -> bool {
        self.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
    }
}

pub fn default_storage_class(c: &mut StorageClass) {
    c.reclaim_policy.get_or_insert_with(|| "Delete".into());
    c.volume_binding_mode
        .get_or_insert_with(|| "Immediate".into());
}

/// As kube-apiserver's ValidateStorageClass, plus what orkops' own provisioner needs.
pub fn validate_storage_class(c: &StorageClass, e: &mut Errors) {
    if c.provisioner.is_empty() {
        e.add("provisioner", "Required value");
    } else if let Err(msg) = labels::validate_label_key(&c.provisioner.to_lowercase()) {
        e.add(
            "provisioner",
            format!(
                "Invalid value: {:?}: {}",
                c.provisioner,
                msg.replace("label key", "provisioner name")
            ),
        );
    }
    const MAX_PARAMETERS: usize = 512;
    if c.parameters.len() > MAX_PARAMETERS {
        e.add(
            "parameters",
            format!(
                "Too many: {}: must have at most {MAX_PARAMETERS} items",
                c.parameters.len()
            ),
        );
    }
    let size: usize = c.parameters.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > 256 * 1024 {
        e.add(
            "parameters",
            format!("Too long: {size} bytes: must have at most 262144 bytes"),
        );
    }
    if c.parameters.keys().any(String::is_empty) {
        e.add("parameters", "Invalid value: \"\": key may not be empty");
    }
    match c.reclaim_policy.as_deref() {
        None | Some("Delete" | "Retain") => {}
        Some(p) => e.add(
            "reclaimPolicy",
            format!("Unsupported value: {p:?}: supported values: \"Delete\", \"Retain\""),
        ),
    }
    match c.volume_binding_mode.as_deref() {
        None => e.add("volumeBindingMode", "Required value"),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(m) => e.add(
            "volumeBindingMode",
            format!("Unsupported value: {m:?}: supported values: \"Immediate\", \"WaitForFirstConsumer\""),
        ),
    }
    for (i, t) in c.allowed_topologies.iter().enumerate() {
        validate_topology_term(t, &format!("allowedTopologies[{i}]"), e);
    }
    if c.provisioner == LOCAL_PROVISIONER {
        if c.volume_binding_mode.as_deref() == Some("Immediate") {
            e.add(
                "volumeBindingMode",
                format!("Unsupported value: \"Immediate\": the {LOCAL_PROVISIONER} provisioner makes a volume on the node of the claim's first pod; hint: use WaitForFirstConsumer"),
            );
        }
        if !c.mount_options.is_empty() {
            e.add(
                "mountOptions",
                format!("Forbidden: the volumes of {LOCAL_PROVISIONER} (Docker volumes) take no mount options"),
            );
        }
        if !c.parameters.is_empty() {
            e.add(
                "parameters",
                format!("Forbidden: the {LOCAL_PROVISIONER} provisioner takes no parameters"),
            );
        }
    }
}

/// As kube-apiserver's ValidateTopologySelectorTerm.
fn validate_topology_term(t: &TopologySelectorTerm, path: &str, e: &mut Errors) {
    let mut keys = std::collections::BTreeSet::new();
    for (j, r) in t.match_label_expressions.iter().enumerate() {
        let rp = format!("{path}.matchLabelExpressions[{j}]");
        if let Err(msg) = labels::validate_label_key(&r.key) {
            e.add(
                format!("{rp}.key"),
                format!("Invalid value: {:?}: {msg}", r.key),
            );
        }
        if r.values.is_empty() {
            e.add(
                format!("{rp}.values"),
                "Required value: must specify as least one value",
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (k, v) in r.values.iter().enumerate() {
            if !seen.insert(v) {
                e.add(
                    format!("{rp}.values[{k}]"),
                    format!("Duplicate value: {v:?}"),
                );
            }
        }
        if !keys.insert(&r.key) {
            e.add(format!("{rp}.key"), format!("Duplicate value: {:?}", r.key));
        }
    }
}

object!(
    /// PersistentVolume (PV) is a storage resource provisioned by an administrator. It is analogous to a node.
    PersistentVolume { spec: PersistentVolumeSpec, status: PersistentVolumeStatus }
);

/// PersistentVolumeSpec is the specification of a persistent volume: its capacity, how it may be mounted, what happens to it once released, and its source (exactly one of `hostPath`, `local` or `csi`).
///
/// Its unknown fields are not refused by serde (a flattened map holds them, and serde cannot
/// deny unknown fields beside one): validation refuses each, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeSpec {
    /// capacity is the description of the persistent volume's resources and capacity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Quantity>,
    /// accessModes contains all ways the volume can be mounted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub access_modes: Vec<String>,
    /// claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-map-type" = "granular"))]
    pub claim_ref: Option<ObjectReference>,
    /// persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes) and Delete (default for dynamically provisioned PersistentVolumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_reclaim_policy: Option<String>,
    /// storageClassName is the name of StorageClass to which this persistent volume belongs. Empty value means that this volume does not belong to any StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// mountOptions is the list of mount options, e.g. ["ro", "soft"].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub mount_options: Vec<String>,
    /// volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
    /// nodeAffinity defines constraints that limit what nodes this volume can be accessed from. This field influences the scheduling of pods that use this volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<VolumeNodeAffinity>,
    /// hostPath represents a directory on the host. Provisioned by a developer or tester. This is useful for single-node development and testing only! On-host storage is not supported in any way and WILL NOT WORK in a multi-node cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    /// local represents directly-attached storage with node affinity
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalVolumeSource>,
    /// csi represents storage that is handled by an external CSI driver; orkops serves its own driver `orkops.io/local` (a Docker volume on one node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi: Option<CsiPersistentVolumeSource>,
    /// nfs represents an NFS mount on the host. Accepted so that it is refused by name: orkops' nodes mount no NFS exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsVolumeSource>,
    /// The sources of other clouds and storage systems, decoded only to be refused by name.
    #[serde(flatten)]
    #[schemars(skip)]
    pub unsupported: BTreeMap<String, Value>,
}

/// VolumeNodeAffinity defines constraints that limit what nodes this volume can be accessed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeNodeAffinity {
    /// required specifies hard node constraints that must be met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<NodeSelector>,
}

/// Local represents directly-attached storage with node affinity
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalVolumeSource {
    /// path of the full path to the volume on the node. It can be either a directory or block device (disk, partition, ...).
    #[serde(default)]
    pub path: String,
    /// fsType is the filesystem type to mount. It applies only when the Path is a block device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
}

/// Represents storage that is managed by an external CSI volume driver
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsiPersistentVolumeSource {
    /// driver is the name of the driver to use for this volume. Required.
    #[serde(default)]
    pub driver: String,
    /// volumeHandle is the unique volume name returned by the CSI volume plugin's CreateVolume to refer to the volume on all subsequent calls. Required.
    #[serde(default)]
    pub volume_handle: String,
    /// readOnly value to pass to ControllerPublishVolumeRequest. Defaults to false (read/write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// fsType to mount. Must be a filesystem type supported by the host operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// volumeAttributes of the volume to publish.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_attributes: BTreeMap<String, String>,
}

/// Represents an NFS mount that lasts the lifetime of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NfsVolumeSource {
    /// server is the hostname or IP address of the NFS server.
    #[serde(default)]
    pub server: String,
    /// path that is exported by the NFS server.
    #[serde(default)]
    pub path: String,
    /// readOnly here will force the NFS export to be mounted with read-only permissions. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// PersistentVolumeStatus is the current status of a persistent volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeStatus {
    /// phase indicates if a volume is available, bound to a claim, or released by a claim: Pending, Available, Bound, Released or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// message is a human-readable message indicating details about why the volume is in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// lastPhaseTransitionTime is the time the phase transitioned from one to another and automatically resets to current time everytime a volume phase transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_phase_transition_time: Option<Time>,
}

/// The upstream sources orkops refuses, each with why and what to use instead.
const UNSUPPORTED_SOURCES: &[(&str, &str)] = &[
    ("gcePersistentDisk", "GCE persistent disks"),
    ("awsElasticBlockStore", "AWS EBS volumes"),
    ("azureDisk", "Azure data disks"),
    ("azureFile", "Azure file shares"),
    ("cinder", "OpenStack Cinder volumes"),
    ("vsphereVolume", "vSphere disks"),
    ("portworxVolume", "Portworx volumes"),
    ("photonPersistentDisk", "Photon disks"),
    ("scaleIO", "ScaleIO volumes"),
    ("storageos", "StorageOS volumes"),
    ("glusterfs", "GlusterFS volumes"),
    ("rbd", "Ceph RBD images"),
    ("cephfs", "CephFS mounts"),
    ("iscsi", "iSCSI disks"),
    ("fc", "Fibre Channel disks"),
    ("flocker", "Flocker datasets"),
    ("flexVolume", "FlexVolume drivers"),
    ("quobyte", "Quobyte volumes"),
];

const HINT: &str = "hint: use a hostPath or local volume of a directory on the node, or a claim of the StorageClass \"local\" (a Docker volume on the node of its first pod)";

impl PersistentVolumeSpec {
    /// The name of the class (`""` for none).
    pub fn class(&self) -> &str {
        self.storage_class_name.as_deref().unwrap_or("")
    }

    /// The storage capacity in thousandths of a byte, 0 when missing or not a quantity.
    pub fn storage(&self) -> i128 {
        self.capacity
            .get("storage")
            .and_then(|q| q.millis().ok())
            .unwrap_or(0)
    }
}

pub fn default_persistent_volume(v: &mut PersistentVolume) {
    let s = &mut v.spec;
    s.persistent_volume_reclaim_policy
        .get_or_insert_with(|| "Retain".into());
    s.volume_mode.get_or_insert_with(|| "Filesystem".into());
}

/// As kube-apiserver's ValidatePersistentVolume, with the sources orkops cannot mount refused
/// by name.
pub fn validate_persistent_volume(v: &PersistentVolume, e: &mut Errors) {
    let s = &v.spec;
    validate_access_modes(&s.access_modes, "spec.accessModes", true, e);
    if s.capacity.is_empty() {
        e.add("spec.capacity", "Required value");
    }
    for (k, q) in &s.capacity {
        if k != "storage" {
            e.add(
                "spec.capacity",
                format!("Unsupported value: {k:?}: supported values: \"storage\""),
            );
            continue;
        }
        quantity(e, "spec.capacity.storage", q);
        if q.millis().is_ok_and(|m| m <= 0) {
            e.add(
                "spec.capacity.storage",
                format!("Invalid value: {:?}: must be greater than zero", q.0),
            );
        }
    }
    match s.persistent_volume_reclaim_policy.as_deref() {
        None | Some("Retain" | "Delete") => {}
        Some("Recycle") => e.add(
            "spec.persistentVolumeReclaimPolicy",
            "Unsupported value: \"Recycle\": orkops does not scrub volumes (Recycle is deprecated upstream); hint: use Retain, or Delete",
        ),
        Some(p) => e.add(
            "spec.persistentVolumeReclaimPolicy",
            format!("Unsupported value: {p:?}: supported values: \"Delete\", \"Recycle\", \"Retain\""),
        ),
    }
    if !s.class().is_empty() && !labels::is_dns_subdomain(s.class()) {
        e.add(
            "spec.storageClassName",
            format!("Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character", s.class()),
        );
    }
    validate_volume_mode(&s.volume_mode, "spec.volumeMode", e);
    if !s.mount_options.is_empty() {
        e.add(
            "spec.mountOptions",
            "Forbidden: may not specify mount options for this volume type (orkops bind-mounts hostPath and local volumes and mounts Docker volumes as they are)",
        );
    }
    if let Some(r) = &s.claim_ref {
        if r.name.as_deref().is_none_or(str::is_empty) {
            e.add("spec.claimRef.name", "Required value");
        }
        if r.namespace.as_deref().is_none_or(str::is_empty) {
            e.add("spec.claimRef.namespace", "Required value");
        }
    }
    if let Some(na) = &s.node_affinity {
        match &na.required {
            None => e.add("spec.nodeAffinity.required", "Required value"),
            Some(sel) if sel.node_selector_terms.is_empty() => e.add(
                "spec.nodeAffinity.required.nodeSelectorTerms",
                "Required value: must have at least one node selector term",
            ),
            Some(sel) => {
                for (i, t) in sel.node_selector_terms.iter().enumerate() {
                    validate_node_term(
                        t,
                        &format!("spec.nodeAffinity.required.nodeSelectorTerms[{i}]"),
                        e,
                    );
                }
            }
        }
    }
    validate_sources(s, e);
}

/// Exactly one source, and only one orkops' nodes can mount.
fn validate_sources(s: &PersistentVolumeSpec, e: &mut Errors) {
    let mut named: Vec<&str> = [
        ("hostPath", s.host_path.is_some()),
        ("local", s.local.is_some()),
        ("csi", s.csi.is_some()),
        ("nfs", s.nfs.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(n, _)| *n)
    .collect();
    for k in s.unsupported.keys() {
        match UNSUPPORTED_SOURCES.iter().find(|(n, _)| n == k) {
            Some((n, what)) => {
                named.push(n);
                e.add(
                    format!("spec.{n}"),
                    format!("Unsupported value: {n:?}: orkops' nodes cannot attach {what}; {HINT}"),
                );
            }
            None => e.add(
                format!("spec.{k}"),
                format!("strict decoding error: unknown field \"spec.{k}\" (orkops does not serve it; the volume sources here: hostPath, local, csi)"),
            ),
        }
    }
    match named.len() {
        0 => e.add("spec", "Required value: must specify a volume type"),
        1 => {}
        _ => e.add(
            format!("spec.{}", named[1]),
            "Forbidden: may not specify more than 1 volume type",
        ),
    }
    if s.nfs.is_some() {
        e.add(
            "spec.nfs",
            format!("Unsupported value: \"nfs\": orkops' nodes do not mount NFS exports; hint: mount the export on the nodes and use a hostPath or local volume of its mount point, or {}", &HINT[6..]),
        );
    }
    if let Some(h) = &s.host_path {
        validate_host_path(h, "spec.hostPath", e);
    }
    if let Some(l) = &s.local {
        if l.path.is_empty() {
            e.add("spec.local.path", "Required value");
        } else if !l.path.starts_with('/') || l.path.split('/').any(|p| p == "..") {
            e.add(
                "spec.local.path",
                format!(
                    "Invalid value: {:?}: must be an absolute path without '..'",
                    l.path
                ),
            );
        }
        if s.node_affinity
            .as_ref()
            .and_then(|n| n.required.as_ref())
            .is_none()
        {
            e.add(
                "spec.nodeAffinity",
                "Required value: Local volume requires node affinity",
            );
        }
    }
    if let Some(c) = &s.csi {
        if c.driver.is_empty() {
            e.add("spec.csi.driver", "Required value");
        } else if c.driver != LOCAL_PROVISIONER {
            e.add(
                "spec.csi.driver",
                format!("Unsupported value: {:?}: orkops runs no CSI drivers but its own {LOCAL_PROVISIONER:?} (Docker volumes); {HINT}", c.driver),
            );
        }
        if c.volume_handle.is_empty() {
            e.add("spec.csi.volumeHandle", "Required value");
        }
    }
}

/// Access modes: known ones, ReadWriteOncePod alone; `required` for a volume.
pub(super) fn validate_access_modes(modes: &[String], path: &str, required: bool, e: &mut Errors) {
    if required && modes.is_empty() {
        e.add(path, "Required value");
    }
    for (i, m) in modes.iter().enumerate() {
        if !ACCESS_MODES.contains(&m.as_str()) {
            e.add(
                format!("{path}[{i}]"),
                format!("Unsupported value: {m:?}: supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""),
            );
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        e.add(
            path,
            "Forbidden: may not use ReadWriteOncePod with other access modes",
        );
    }
}

/// `Filesystem`; `Block` is refused with why.
pub(super) fn validate_volume_mode(mode: &Option<String>, path: &str, e: &mut Errors) {
    if mode.as_deref() == Some("Block") {
        e.add(
            path,
            "Unsupported value: \"Block\": orkops mounts filesystems only (no raw block devices in containers); hint: use Filesystem",
        );
    } else {
        one_of(e, path, mode, &["Filesystem", "Block"]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{admit, Kind};
    use serde_json::json;

    fn fields(kind: Kind, v: serde_json::Value) -> Vec<String> {
        admit(kind, v)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_storage_class_defaults_to_delete_and_immediate_and_is_checked() {
        let sc = admit(
            Kind::StorageClass,
            json!({"metadata": {"name": "fast"}, "provisioner": "example.com/fast"}),
        )
        .unwrap();
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        let errs = fields(
            Kind::StorageClass,
            json!({"metadata": {"name": "x"}, "reclaimPolicy": "Recycle", "volumeBindingMode": "Later",
                "allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": []}]}]}),
        );
        for want in [
            "provisioner: Required value",
            "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
            "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
            "allowedTopologies[0].matchLabelExpressions[0].values: Required value: must specify as least one value",
        ] {
            assert!(errs.iter().any(|e| e == want), "{want} not in {errs:?}");
        }
        let errs = fields(
            Kind::StorageClass,
            json!({"metadata": {"name": "x"}, "provisioner": "orkops.io/local"}),
        );
        assert!(
            errs[0].starts_with("volumeBindingMode: Unsupported value: \"Immediate\""),
            "{errs:?}"
        );
    }

    #[test]
    fn a_volume_needs_one_source_orkops_can_mount_and_says_what_instead() {
        let pv = |extra: serde_json::Value| {
            let mut v = json!({"metadata": {"name": "pv1"}, "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
            for (k, x) in extra.as_object().unwrap() {
                v["spec"][k] = x.clone();
            }
            v
        };
        let ok = admit(
            Kind::PersistentVolume,
            pv(json!({"hostPath": {"path": "/srv/data"}})),
        )
        .unwrap();
        assert_eq!(ok["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(ok["spec"]["volumeMode"], "Filesystem");
        let errs = fields(
            Kind::PersistentVolume,
            pv(json!({"gcePersistentDisk": {"pdName": "disk-1", "fsType": "ext4"}})),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.gcePersistentDisk: Unsupported value: \"gcePersistentDisk\"")
                && errs[0].contains("hint"),
            "{errs:?}"
        );
        let errs = fields(Kind::PersistentVolume, pv(json!({})));
        assert_eq!(errs, ["spec: Required value: must specify a volume type"]);
        let errs = fields(
            Kind::PersistentVolume,
            pv(json!({"local": {"path": "/mnt/disk"}, "hostPath": {"path": "/x"}})),
        );
        assert!(
            errs.contains(
                &"spec.nodeAffinity: Required value: Local volume requires node affinity"
                    .to_string()
            ) && errs
                .iter()
                .any(|e| e.contains("may not specify more than 1 volume type")),
            "{errs:?}"
        );
        let errs = fields(
            Kind::PersistentVolume,
            pv(json!({"nfs": {"server": "nas", "path": "/export"}})),
        );
        assert!(
            errs[0].starts_with("spec.nfs: Unsupported value"),
            "{errs:?}"
        );
        let errs = fields(
            Kind::PersistentVolume,
            pv(json!({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"}})),
        );
        assert!(
            errs[0].starts_with("spec.csi.driver: Unsupported value"),
            "{errs:?}"
        );
        let errs = fields(
            Kind::PersistentVolume,
            pv(json!({"hostPath": {"path": "/x"}, "bogus": 1})),
        );
        assert!(errs[0].contains("unknown field \"spec.bogus\""), "{errs:?}");
    }
}
