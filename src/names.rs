//! The names more than one module uses: AWS tags on a cluster's resources, labels and
//! annotations on API objects, and well-known objects (the network ConfigMap). One name for one
//! thing: the cloud code writes a tag, the CLI and the controllers read it, from here.

/// Tag naming the cluster a resource belongs to (delete finds a cluster by it).
pub const TAG_CLUSTER: &str = "orkops.io/cluster";
/// Tag naming the resource's role (`master`, `node`, `api`, `network`, `service`, ...).
pub const TAG_ROLE: &str = "orkops.io/role";
/// Tag holding the resource's creation time (RFC 3339), for `--older-than` clean-ups.
pub const TAG_CREATED: &str = "orkops.io/created";
/// Tag naming an instance within its cluster (`master-1`, `node-2`).
pub const TAG_NAME: &str = "orkops.io/name";
/// Prefix of the spec tags on a cluster's VPC (`orkops.io/spec-nodes`, ...).
pub const TAG_SPEC: &str = "orkops.io/spec-";
/// Tag naming the Service (`NAMESPACE/NAME`) a load balancer was made for.
pub const TAG_SERVICE: &str = "orkops.io/service";
/// Tag holding the uid of the Service a load balancer was made for.
pub const TAG_SERVICE_UID: &str = "orkops.io/service-uid";
/// Tag naming the listener (port and protocol) a target group serves.
pub const TAG_LISTENER: &str = "orkops.io/listener";

/// Node label holding the cloud instance the node runs on.
pub const LABEL_INSTANCE_ID: &str = "orkops.io/instance-id";
/// Kubernetes' well-known node label of the zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Kubernetes' well-known node label of the instance type.
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// Service annotation choosing the AWS load balancer orkops makes (`nlb`, `alb`).
pub const ANNOTATION_LOAD_BALANCER_TYPE: &str = "orkops.io/load-balancer-type";

/// The namespace of orkops' own objects.
pub const SYSTEM_NAMESPACE: &str = "orkops-system";
/// The ConfigMap (in `SYSTEM_NAMESPACE`) where the master publishes the cluster's address
/// ranges for the agents and the add-ons.
pub const NETWORK_CONFIG_MAP: &str = "cluster-network";
