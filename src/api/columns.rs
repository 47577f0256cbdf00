//! The columns each kind is shown with: the definitions (name as Kubernetes spells it, type,
//! priority 1 for the `-o wide` ones) and the cells of one object. One source for `orkops get`
//! (the CLI's tables) and the API server's `meta.k8s.io/v1 Table`s, which `kubectl get` prints.
//! Pure functions of the object and the time; Secret values never appear, only their count.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Kind;

/// One column of a kind's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// As Kubernetes spells it (`Up-to-date`); printed upper-cased.
    pub name: &'static str,
    /// The OpenAPI type of the cells: `string` or `integer`.
    pub kind: &'static str,
    /// `name` for the column holding the object's name, else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for the default columns, 1 for those only `-o wide` shows.
    pub priority: u8,
    /// Only in the API's Tables (kube's columns orkops has no data for), not in `orkops get`.
    pub table_only: bool,
}

/// One cell of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    Int(i64),
}

impl Cell {
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Int(n) => Value::from(*n),
        }
    }
}

const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
        table_only: false,
    }
}

const fn wide(c: Column) -> Column {
    Column { priority: 1, ..c }
}

const NAME: Column = Column {
    format: "name",
    ..col(
        "Name",
        "string",
        "Name must be unique within a namespace. Cannot be updated.",
    )
};
const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created, shown as the time since then.",
);
const CONTAINERS: Column = wide(col(
    "Containers",
    "string",
    "Names of each container in the template.",
));
const IMAGES: Column = wide(col(
    "Images",
    "string",
    "Images referenced by each container in the template.",
));

/// Every column of `kind`'s table: the default ones, then the wide ones (priority 1).
pub fn columns(kind: Kind) -> Vec<Column> {
    let text = |n, d| col(n, "string", d);
    let int = |n, d| col(n, "integer", d);
    #[allow(unreachable_patterns)]
    match kind {
        Kind::Pod => vec![
            NAME,
            text("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            text("Status", "The aggregate status of the containers in this pod."),
            text("Restarts", "The number of times the containers in this pod have been restarted."),
            AGE,
            wide(text("IP", "The IP address allocated to the pod.")),
            wide(text("Node", "The node the pod is bound to.")),
            Column {
                table_only: true,
                ..wide(text("Nominated Node", "The node the scheduler nominated for preemption."))
            },
            Column {
                table_only: true,
                ..wide(text("Readiness Gates", "The pod's readiness gates, ready over all."))
            },
        ],
        Kind::Node => vec![
            NAME,
            text("Status", "The status of the node."),
            AGE,
            text("Version", "The version of the node agent."),
            wide(text("Internal-IP", "The node's internal address.")),
            wide(text("Pod-CIDR", "The address range of the node's pods.")),
            wide(text("OS-Image", "The OS image reported by the node.")),
        ],
        Kind::Namespace => vec![NAME, text("Status", "The status of the namespace."), AGE],
        Kind::Deployment => vec![
            NAME,
            text("Ready", "Number of the pod with ready state."),
            int("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            int("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(text("Selector", "Label selector for pods.")),
        ],
        Kind::ReplicaSet => vec![
            NAME,
            int("Desired", "Number of desired pods."),
            int("Current", "Number of actual replicas."),
            int("Ready", "Number of ready replicas."),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(text("Selector", "Label selector for pods.")),
        ],
        Kind::Service => vec![
            NAME,
            text("Type", "The type of the service."),
            text("Cluster-IP", "The cluster IP of the service."),
            text("External-IP", "The load balancer address of the service."),
            text("Port(s)", "The ports the service exposes."),
            AGE,
            wide(text("Selector", "The pods the service routes to.")),
        ],
        Kind::Job => vec![
            NAME,
            text("Completions", "The desired number of successfully finished pods the job should be run with."),
            text("Duration", "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        Kind::CronJob => vec![
            NAME,
            text("Schedule", "The schedule in Cron format."),
            text("Suspend", "Whether subsequent executions are suspended."),
            int("Active", "The number of running jobs."),
            text("Last Schedule", "When the job was last successfully scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        Kind::ConfigMap => vec![NAME, int("Data", "The number of keys."), AGE],
        Kind::Endpoints => vec![NAME, text("Endpoints", "The ready endpoints."), AGE],
        Kind::ControllerRevision => vec![
            NAME,
            text("Controller", "The object that owns this revision."),
            int("Revision", "The revision number."),
            AGE,
        ],
        Kind::Secret => vec![
            NAME,
            text("Type", "The type of the secret."),
            int("Data", "The number of keys."),
            AGE,
        ],
        Kind::PersistentVolumeClaim => vec![
            NAME,
            text("Status", "The phase of the claim."),
            text("Volume", "The PersistentVolume the claim is bound to."),
            text("Capacity", "The capacity of the bound volume."),
            text("Access Modes", "The access modes of the bound volume."),
            text("StorageClass", "The StorageClass of the claim."),
            VOLUME_ATTRIBUTES_CLASS,
            AGE,
            wide(text("VolumeMode", "Filesystem or Block.")),
        ],
        Kind::Event => vec![
            text("Last Seen", "The time since the event was last seen."),
            text("Type", "The type of the event."),
            text("Reason", "Why the event was emitted."),
            text("Object", "The object the event is about."),
            text("Message", "The event's message."),
        ],
        Kind::ServiceAccount => vec![NAME, int("Secrets", "The number of secrets listed."), AGE],
        Kind::PodDisruptionBudget => vec![
            NAME,
            text("Min Available", "The minimum number of pods that must be available."),
            text("Max Unavailable", "The maximum number of pods that may be unavailable."),
            int("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time."),
            AGE,
        ],
        Kind::Lease => vec![NAME, text("Holder", "The holder of the lease."), AGE],
        Kind::StatefulSet => vec![
            NAME,
            text("Ready", "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        Kind::DaemonSet => vec![
            NAME,
            int("Desired", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
            int("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            int("Ready", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
            int("Up-to-date", "The total number of nodes that are running updated daemon pod"),
            int("Available", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            text("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node."),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(text("Selector", "A label query over pods that are managed by the daemon set.")),
        ],
        Kind::ReplicationController => columns(Kind::ReplicaSet),
        Kind::StorageClass => vec![
            NAME,
            text("Provisioner", "The provisioner of the class's volumes."),
            text("ReclaimPolicy", "What happens to a provisioned volume once its claim goes."),
            text("VolumeBindingMode", "When claims are bound: Immediate or WaitForFirstConsumer."),
            text("AllowVolumeExpansion", "Whether claims of the class may grow."),
            AGE,
        ],
        Kind::PersistentVolume => vec![
            NAME,
            text("Capacity", "The capacity of the volume."),
            text("Access Modes", "The ways the volume can be mounted."),
            text("Reclaim Policy", "What happens to the volume once its claim goes."),
            text("Status", "The phase of the volume."),
            text("Claim", "The claim bound to the volume (namespace/name)."),
            text("StorageClass", "The StorageClass of the volume."),
            VOLUME_ATTRIBUTES_CLASS,
            text("Reason", "Why the volume is in its phase."),
            AGE,
            wide(text("VolumeMode", "Filesystem or Block.")),
        ],
        _ => vec![NAME, AGE],
    }
}

/// kubectl's column of the (beta, off by default) VolumeAttributesClass: always `<unset>`.
const VOLUME_ATTRIBUTES_CLASS: Column = Column {
    table_only: true,
    ..col(
        "VolumeAttributesClass",
        "string",
        "The VolumeAttributesClass of the volume (orkops serves none).",
    )
};

/// The cells of `obj`'s row, one per column of `columns(kind)`, in order.
pub fn cells(kind: Kind, obj: &Value, now: DateTime<Utc>) -> Vec<Cell> {
    let name = Cell::Text(s(obj, "/metadata/name").to_string());
    let created = Cell::Text(age(s(obj, "/metadata/creationTimestamp"), now));
    let t = |x: String| Cell::Text(x);
    #[allow(unreachable_patterns)]
    match kind {
        Kind::Pod => pod_cells(obj, name, created),
        Kind::Node => node_cells(obj, name, created),
        Kind::Namespace => vec![name, t(or_none(s(obj, "/status/phase"))), created],
        Kind::Deployment => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let sel = labels_text(obj.pointer("/spec/selector/matchLabels"), ",");
            vec![
                name,
                t(format!(
                    "{}/{}",
                    i(obj, "/status/readyReplicas"),
                    i(obj, "/spec/replicas")
                )),
                Cell::Int(i(obj, "/status/updatedReplicas")),
                Cell::Int(i(obj, "/status/availableReplicas")),
                created,
                t(cn),
                t(im),
                t(sel),
            ]
        }
        Kind::ReplicaSet => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let sel = labels_text(obj.pointer("/spec/selector/matchLabels"), ",");
            vec![
                name,
                Cell::Int(i(obj, "/spec/replicas")),
                Cell::Int(i(obj, "/status/replicas")),
                Cell::Int(i(obj, "/status/readyReplicas")),
                created,
                t(cn),
                t(im),
                t(sel),
            ]
        }
        Kind::Service => vec![
            name,
            t(s(obj, "/spec/type").into()),
            t(or_none(s(obj, "/spec/clusterIP"))),
            t(external_ips(obj)),
            t(service_ports(obj)),
            created,
            t(labels_text(obj.pointer("/spec/selector"), ",")),
        ],
        Kind::Job => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let duration = match (
                DateTime::parse_from_rfc3339(s(obj, "/status/startTime")),
                DateTime::parse_from_rfc3339(s(obj, "/status/completionTime")),
            ) {
                (Ok(a), Ok(b)) => format!("{}s", (b - a).num_seconds()),
                (Ok(a), Err(_)) => format!("{}s", (now - a.with_timezone(&Utc)).num_seconds()),
                _ => "".into(),
            };
            vec![
                name,
                t(format!(
                    "{}/{}",
                    i(obj, "/status/succeeded"),
                    i(obj, "/spec/completions")
                )),
                t(duration),
                created,
                t(cn),
                t(im),
            ]
        }
        Kind::CronJob => {
            let (cn, im) = containers_of(obj, "/spec/jobTemplate/spec/template/spec/containers");
            let last = match s(obj, "/status/lastScheduleTime") {
                "" => "<none>".into(),
                ts => age(ts, now),
            };
            let active = obj
                .pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let suspend = obj
                .pointer("/spec/suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            vec![
                name,
                t(s(obj, "/spec/schedule").into()),
                t(suspend.to_string()),
                Cell::Int(active as i64),
                t(last),
                created,
                t(cn),
                t(im),
            ]
        }
        Kind::ControllerRevision => {
            let owner = obj
                .pointer("/metadata/ownerReferences/0")
                .map(|o| {
                    // as upstream's formatResourceName: `daemonset.apps/agent`
                    let kind = s(o, "/kind").to_lowercase();
                    match s(o, "/apiVersion").split_once('/') {
                        Some((group, _)) => format!("{kind}.{group}/{}", s(o, "/name")),
                        None => format!("{kind}/{}", s(o, "/name")),
                    }
                })
                .unwrap_or_else(|| "<none>".into());
            let rev = obj.get("revision").and_then(Value::as_i64).unwrap_or(0);
            vec![name, t(owner), Cell::Int(rev), created]
        }
        Kind::Endpoints => vec![name, t(endpoints_column(obj)), created],
        Kind::ConfigMap => {
            let n = keys(obj, "data") + keys(obj, "binaryData");
            vec![name, Cell::Int(n as i64), created]
        }
        Kind::Secret => vec![
            name,
            t(s(obj, "/type").into()),
            Cell::Int(keys(obj, "data") as i64),
            created,
        ],
        Kind::PersistentVolumeClaim => pvc_cells(obj, name, created),
        Kind::Event => {
            let last = match s(obj, "/lastTimestamp") {
                "" => age(s(obj, "/metadata/creationTimestamp"), now),
                ts => age(ts, now),
            };
            let object = format!(
                "{}/{}",
                s(obj, "/involvedObject/kind").to_lowercase(),
                s(obj, "/involvedObject/name")
            );
            vec![
                t(last),
                t(s(obj, "/type").into()),
                t(s(obj, "/reason").into()),
                t(object),
                t(s(obj, "/message").into()),
            ]
        }
        Kind::ServiceAccount => {
            let n = obj
                .get("secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, Cell::Int(n as i64), created]
        }
        Kind::PodDisruptionBudget => {
            let or_na = |p: &str| match obj.pointer(p) {
                Some(Value::String(v)) => v.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => "N/A".into(),
            };
            vec![
                name,
                t(or_na("/spec/minAvailable")),
                t(or_na("/spec/maxUnavailable")),
                Cell::Int(i(obj, "/status/disruptionsAllowed")),
                created,
            ]
        }
        Kind::Lease => vec![name, t(s(obj, "/spec/holderIdentity").into()), created],
        Kind::StatefulSet => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let ready = format!(
                "{}/{}",
                i(obj, "/status/readyReplicas"),
                i(obj, "/spec/replicas")
            );
            vec![name, t(ready), created, t(cn), t(im)]
        }
        Kind::DaemonSet => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let nodes = labels_text(obj.pointer("/spec/template/spec/nodeSelector"), ",");
            let sel = labels_text(obj.pointer("/spec/selector/matchLabels"), ",");
            let n = |f: &str| Cell::Int(i(obj, &format!("/status/{f}")));
            vec![
                name,
                n("desiredNumberScheduled"),
                n("currentNumberScheduled"),
                n("numberReady"),
                n("updatedNumberScheduled"),
                n("numberAvailable"),
                t(nodes),
                created,
                t(cn),
                t(im),
                t(sel),
            ]
        }
        Kind::ReplicationController => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            vec![
                name,
                Cell::Int(i(obj, "/spec/replicas")),
                Cell::Int(i(obj, "/status/replicas")),
                Cell::Int(i(obj, "/status/readyReplicas")),
                created,
                t(cn),
                t(im),
                t(labels_text(obj.pointer("/spec/selector"), ",")),
            ]
        }
        Kind::StorageClass => {
            let default = [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ]
            .iter()
            .any(|a| {
                // (a JSON pointer would need the '/' of the key escaped)
                obj.pointer("/metadata/annotations").and_then(|m| m.get(*a))
                    == Some(&Value::from("true"))
            });
            let shown = s(obj, "/metadata/name").to_string();
            let shown = if default {
                format!("{shown} (default)")
            } else {
                shown
            };
            let expand = obj
                .get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            vec![
                t(shown),
                t(s(obj, "/provisioner").into()),
                t(s(obj, "/reclaimPolicy").into()),
                t(s(obj, "/volumeBindingMode").into()),
                t(expand.to_string()),
                created,
            ]
        }
        Kind::PersistentVolume => {
            let claim = match (
                s(obj, "/spec/claimRef/namespace"),
                s(obj, "/spec/claimRef/name"),
            ) {
                (_, "") => String::new(),
                (ns, n) => format!("{ns}/{n}"),
            };
            vec![
                name,
                t(s(obj, "/spec/capacity/storage").into()),
                t(access_modes(obj.pointer("/spec/accessModes"))),
                t(s(obj, "/spec/persistentVolumeReclaimPolicy").into()),
                t(s(obj, "/status/phase").into()),
                t(claim),
                t(s(obj, "/spec/storageClassName").into()),
                t("<unset>".into()),
                t(s(obj, "/status/reason").into()),
                created,
                t(s(obj, "/spec/volumeMode").into()),
            ]
        }
        _ => vec![name, created],
    }
}

fn pod_cells(obj: &Value, name: Cell, created: Cell) -> Vec<Cell> {
    let cs = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let init = obj
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array);
    // kubectl counts the sidecars (restartPolicy: Always init containers) with the containers
    let sidecars = sidecar_names(obj);
    let total = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
        + sidecars.len();
    let ready = cs
        .into_iter()
        .flatten()
        .chain(
            init.into_iter()
                .flatten()
                .filter(|c| sidecars.contains(&c["name"].as_str().unwrap_or(""))),
        )
        .filter(|c| c["ready"] == Value::Bool(true))
        .count();
    // kubectl counts the init containers' restarts too
    let restarts: i64 = cs
        .into_iter()
        .chain(init)
        .flatten()
        .map(|c| i(c, "/restartCount"))
        .fold(0, i64::saturating_add);
    let gates: Vec<&str> = obj
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g["conditionType"].as_str())
        .collect();
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = obj.pointer("/status/conditions").and_then(Value::as_array);
        let met = gates
            .iter()
            .filter(|t| {
                conditions
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == **t && c["status"] == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name,
        Cell::Text(format!("{ready}/{total}")),
        Cell::Text(pod_status(obj)),
        Cell::Text(restarts.to_string()),
        created,
        Cell::Text(or_none(s(obj, "/status/podIP"))),
        Cell::Text(or_none(s(obj, "/spec/nodeName"))),
        Cell::Text(or_none(s(obj, "/status/nominatedNodeName"))),
        Cell::Text(gates),
    ]
}

fn node_cells(obj: &Value, name: Cell, created: Cell) -> Vec<Cell> {
    let status = match ready_condition(obj) {
        "True" => "Ready",
        _ => "NotReady",
    };
    let status = if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        format!("{status},SchedulingDisabled")
    } else {
        status.to_string()
    };
    let ip = obj
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| s(x, "/type") == "InternalIP"))
        .map(|x| s(x, "/address"))
        .unwrap_or("");
    vec![
        name,
        Cell::Text(status),
        created,
        Cell::Text(or_none(s(obj, "/status/nodeInfo/agentVersion"))),
        Cell::Text(or_none(ip)),
        Cell::Text(or_none(s(obj, "/spec/podCIDR"))),
        Cell::Text(or_none(s(obj, "/status/nodeInfo/osImage"))),
    ]
}

/// `RWO,ROX`: access modes as kubectl abbreviates them.
fn access_modes(v: Option<&Value>) -> String {
    let modes: Vec<&str> = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect();
    modes.join(",")
}

/// As kubectl: the capacity and access modes are the bound volume's (none while unbound).
fn pvc_cells(obj: &Value, name: Cell, created: Cell) -> Vec<Cell> {
    let volume = s(obj, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            s(obj, "/status/capacity/storage").to_string(),
            access_modes(obj.pointer("/status/accessModes")),
        )
    };
    vec![
        name,
        Cell::Text(s(obj, "/status/phase").into()),
        Cell::Text(volume.into()),
        Cell::Text(capacity),
        Cell::Text(modes),
        Cell::Text(s(obj, "/spec/storageClassName").into()),
        Cell::Text("<unset>".into()),
        created,
        Cell::Text(s(obj, "/spec/volumeMode").into()),
    ]
}

pub(crate) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn keys(v: &Value, field: &str) -> usize {
    v.get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

pub(crate) fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.into()
    }
}

/// Kubernetes-style short age: 45s, 12m, 5h, 3d.
pub fn age(ts: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

pub(crate) fn labels_text(v: Option<&Value>, sep: &str) -> String {
    let Some(m) = v.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    m.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(sep)
}

/// What `get` shows in the STATUS column of a pod.
pub fn pod_status(p: &Value) -> String {
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    if let Some(init) = init_status(p) {
        return init;
    }
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    for c in statuses.into_iter().flatten() {
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            return r.into();
        }
        if let Some(r) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            if s(p, "/status/phase") != "Succeeded" {
                return r.into();
            }
        }
    }
    let reason = s(p, "/status/reason");
    if !reason.is_empty() {
        return reason.into();
    }
    or_none(s(p, "/status/phase"))
}

/// The names of the pod's sidecars (init containers with `restartPolicy: Always`).
fn sidecar_names(p: &Value) -> Vec<&str> {
    p.pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["restartPolicy"] == "Always")
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// `Init:N/M`, `Init:Error`, `Init:CrashLoopBackOff`...: what kubectl shows while the first
/// init container that has not completed (or sidecar that has not started) holds the pod
/// back; `None` once all did.
fn init_status(p: &Value) -> Option<String> {
    let sidecars = sidecar_names(p);
    let initialized = p
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    let statuses = p
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)?;
    let total = p
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(statuses.len(), Vec::len);
    for (i, c) in statuses.iter().enumerate() {
        if sidecars.contains(&c["name"].as_str().unwrap_or("")) {
            if initialized || c["started"] == Value::Bool(true) {
                continue;
            }
        } else if initialized {
            continue;
        }
        if let Some(t) = c.pointer("/state/terminated") {
            let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
            if code == 0 {
                continue;
            }
            let reason = t.get("reason").and_then(Value::as_str).unwrap_or("");
            let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
            return Some(match (reason, signal) {
                ("", 0) => format!("Init:ExitCode:{code}"),
                ("", s) => format!("Init:Signal:{s}"),
                (r, _) => format!("Init:{r}"),
            });
        }
        let waiting = c.pointer("/state/waiting/reason").and_then(Value::as_str);
        return Some(match waiting {
            Some(r) if !r.is_empty() && r != "PodInitializing" => format!("Init:{r}"),
            _ => format!("Init:{i}/{total}"),
        });
    }
    None
}

fn external_ips(obj: &Value) -> String {
    let ingress: Vec<&str> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|x| {
            x.get("hostname")
                .or(x.get("ip"))
                .and_then(Value::as_str)
                .unwrap_or("")
        })
        .collect();
    if !ingress.is_empty() {
        ingress.join(",")
    } else if s(obj, "/spec/type") == "LoadBalancer" {
        "<pending>".into()
    } else {
        "<none>".into()
    }
}

fn service_ports(v: &Value) -> String {
    let ports = v.pointer("/spec/ports").and_then(Value::as_array);
    let out: Vec<String> = ports
        .into_iter()
        .flatten()
        .map(|p| {
            let np = p
                .get("nodePort")
                .and_then(Value::as_i64)
                .map(|n| format!(":{n}"))
                .unwrap_or_default();
            format!(
                "{}{np}/{}",
                i(p, "/port"),
                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
            )
        })
        .collect();
    if out.is_empty() {
        "<none>".into()
    } else {
        out.join(",")
    }
}

fn containers_of(v: &Value, template: &str) -> (String, String) {
    let cs = v.pointer(template).and_then(Value::as_array);
    let names: Vec<&str> = cs.into_iter().flatten().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.into_iter().flatten().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn ready_condition(v: &Value) -> &str {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
        .map(|c| s(c, "/status"))
        .unwrap_or("")
}

/// `10.244.1.5:8080,10.244.2.3:8080 + 2 more`, as kubectl shows ready endpoints.
fn endpoints_column(obj: &Value) -> String {
    let mut all = Vec::new();
    for sub in obj
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<i64> = sub["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        for a in sub["addresses"].as_array().into_iter().flatten() {
            let ip = a["ip"].as_str().unwrap_or("");
            if ports.is_empty() {
                all.push(ip.to_string());
            }
            for p in &ports {
                all.push(format!("{ip}:{p}"));
            }
            // the column shows three; counting the rest needs no more strings
            if all.len() > 3 {
                let more = remaining_endpoints(obj) - 3;
                return format!("{} + {more} more...", all[..3].join(","));
            }
        }
    }
    match all.len() {
        0 => "<none>".into(),
        _ => all.join(","),
    }
}

fn remaining_endpoints(obj: &Value) -> usize {
    obj.get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|sub| {
            let addrs = sub["addresses"].as_array().map_or(0, Vec::len);
            let ports = sub["ports"].as_array().map_or(0, Vec::len).max(1);
            addrs.saturating_mul(ports)
        })
        .fold(0, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_has_one_cell_per_column() {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": Utc::now().to_rfc3339()}});
        for kind in Kind::all() {
            assert_eq!(
                columns(kind).len(),
                cells(kind, &obj, Utc::now()).len(),
                "{kind}"
            );
            let cols = columns(kind);
            let first_wide = cols.iter().position(|c| c.priority == 1);
            if let Some(w) = first_wide {
                assert!(cols[w..].iter().all(|c| c.priority == 1), "{kind}");
            }
        }
    }

    #[test]
    fn storage_rows_read_as_kubectl_prints_them() {
        let now = Utc::now();
        let sc = json!({"metadata": {"name": "local", "annotations": {
            "storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "orkops.io/local", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"});
        let row: Vec<String> = cells(Kind::StorageClass, &sc, now)
            .iter()
            .map(Cell::text)
            .collect();
        assert_eq!(
            row[..5],
            [
                "local (default)",
                "orkops.io/local",
                "Delete",
                "WaitForFirstConsumer",
                "false"
            ]
        );
        let pv = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "manual"},
            "status": {"phase": "Bound"}});
        let row: Vec<String> = cells(Kind::PersistentVolume, &pv, now)
            .iter()
            .map(Cell::text)
            .collect();
        assert_eq!(
            row[..8],
            [
                "pv1",
                "1Gi",
                "RWO,ROX",
                "Retain",
                "Bound",
                "default/data",
                "manual",
                "<unset>"
            ]
        );
        // an unbound claim shows no capacity yet, as kubectl
        let pvc = json!({"metadata": {"name": "c"}, "spec": {"storageClassName": "local",
            "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}});
        let row: Vec<String> = cells(Kind::PersistentVolumeClaim, &pvc, now)
            .iter()
            .map(Cell::text)
            .collect();
        assert_eq!(row[..6], ["c", "Pending", "", "", "", "local"]);
    }

    #[test]
    fn endpoints_show_three_and_count_the_rest() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "a"}, {"ip": "b"}, {"ip": "c"}],
            "ports": [{"port": 1}, {"port": 2}]}]});
        assert_eq!(endpoints_column(&ep), "a:1,a:2,b:1 + 3 more...");
        let ep = json!({"subsets": [{"addresses": [{"ip": "a"}], "ports": [{"port": 1}]}]});
        assert_eq!(endpoints_column(&ep), "a:1");
    }
}
