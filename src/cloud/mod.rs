//! Cluster infrastructure on a cloud (the kops half of orkops): the cluster spec, the provider
//! profile (`providers/`), the tags every resource carries, the reconciler that plans the
//! infrastructure (`plan`, over the data in `model`), and the AWS implementation (`aws`) of
//! observing, changing and tearing it down. AWS is the source of truth: the spec is kept in
//! the VPC's tags, and delete finds a cluster's resources by tag, also without local state.

pub mod aws;
pub mod model;
pub mod plan;

use std::collections::BTreeMap;

use serde::Deserialize;

/// An error from the cloud. The kinds the provisioning flow acts on are variants: a resource
/// that is gone (`NotFound`, often success for a delete), throttling (`Throttled`, retried
/// with back-off), an endpoint that does not answer, missing credentials; each says what the
/// user can do.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// No connection to the endpoint.
    #[error("{what}: cannot reach the AWS endpoint ({detail}); hint: is the endpoint up (`localstack/status`) and AWS_ENDPOINT_URL right?")]
    Unreachable { what: String, detail: String },
    /// The endpoint took the request but did not answer in time.
    #[error("{what}: the AWS endpoint did not answer in time; hint: check the network (and AWS_ENDPOINT_URL), then run the command again")]
    Timeout { what: String },
    /// AWS refused the request rate (`Throttling`, `RequestLimitExceeded`, ...).
    #[error("{what}: {code}: {message}; hint: AWS is throttling this account's requests: wait a minute, then run the command again")]
    Throttled {
        what: String,
        code: String,
        message: String,
    },
    /// The resource the request is about does not exist (AWS's `...NotFound` codes).
    #[error("{what}: {code}: {message}")]
    NotFound {
        what: String,
        code: String,
        message: String,
    },
    /// Any other error code AWS answered with.
    #[error("{what}: {code}: {message}")]
    Service {
        what: String,
        code: String,
        message: String,
    },
    /// No credentials (or no region) to call AWS with.
    #[error("{0}")]
    Credentials(String),
    /// A value the cloud does not have: a zone, instance type or image the user named.
    #[error("{0}")]
    Invalid(String),
    /// The infrastructure did not converge, or another failure with its own explanation.
    #[error("{0}")]
    Failed(String),
}

impl CloudError {
    /// The error code AWS answered with, if it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Throttled { code, .. }
            | CloudError::NotFound { code, .. }
            | CloudError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CloudError::NotFound { .. })
    }

    pub fn is_throttled(&self) -> bool {
        matches!(self, CloudError::Throttled { .. })
    }

    /// The error of an AWS answer with `code`, classified.
    pub fn from_code(what: &str, code: &str, message: &str) -> CloudError {
        let (what, c, message) = (what.to_string(), code.to_string(), message.to_string());
        if is_throttling_code(code) {
            CloudError::Throttled {
                what,
                code: c,
                message,
            }
        } else if code.contains("NotFound") {
            CloudError::NotFound {
                what,
                code: c,
                message,
            }
        } else {
            CloudError::Service {
                what,
                code: c,
                message,
            }
        }
    }
}

/// AWS's codes for "too many requests" (EC2, ELBv2 and the SDK's own).
fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "SlowDown"
    )
}

/// The most nodes a cluster has (`--nodes`).
pub const MAX_NODES: u32 = 500;

pub use crate::names::{TAG_CLUSTER, TAG_CREATED, TAG_NAME, TAG_ROLE, TAG_SPEC};

/// The provider profile: image lookup, sizes and ports, as data.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub cloud: String,
    pub image: ImageLookup,
    pub sizes: Sizes,
    pub network: NetworkProfile,
    pub ports: Ports,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLookup {
    pub owner: String,
    pub name: String,
    /// The user the image lets log in with the key pair.
    pub user: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub master: String,
    pub node: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkProfile {
    /// The default `--network-cidr`.
    #[serde(rename = "vpcCIDR")]
    pub vpc_cidr: ipnet::Ipv4Net,
    /// Each zone's subnet is this many bits longer than the VPC's prefix.
    pub subnet_bits: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ports {
    pub ssh: i32,
    pub api: i32,
    pub agent: i32,
    pub node_port_first: i32,
    pub node_port_last: i32,
}

/// The AWS profile shipped in `providers/aws.yaml`.
pub fn aws_profile() -> Profile {
    serde_yaml_ng::from_str(include_str!("../../providers/aws.yaml"))
        .expect("providers/aws.yaml is valid (checked by a unit test)")
}

/// What the user asked for. Kept in the tags of the cluster's VPC (`to_tags`, `from_tags`), so
/// that `update cluster` works from AWS alone.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub name: String,
    pub region: String,
    pub zones: Vec<String>,
    pub masters: u32,
    pub nodes: u32,
    pub master_size: String,
    pub node_size: String,
    /// An image id; looked up from the profile when unset.
    pub image: Option<String>,
    /// OpenSSH public key line for the instances.
    pub ssh_public_key: String,
    /// Who may reach the API and SSH ports.
    pub api_cidrs: Vec<String>,
    /// The VPC's address range; one subnet per zone is cut from it.
    pub network_cidr: ipnet::Ipv4Net,
    /// The IAM instance profile of the masters (their load balancer controller's AWS access).
    pub master_instance_profile: Option<String>,
}

impl ClusterSpec {
    /// The spec as VPC tags (the SSH key is the key pair's, not a tag).
    pub fn to_tags(&self) -> BTreeMap<String, String> {
        let mut t = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            t.insert(format!("{TAG_SPEC}{k}"), v);
        };
        put("zones", self.zones.join(","));
        put("masters", self.masters.to_string());
        put("nodes", self.nodes.to_string());
        put("master-size", self.master_size.clone());
        put("node-size", self.node_size.clone());
        put("image", self.image.clone().unwrap_or_default());
        put("api-cidrs", self.api_cidrs.join(","));
        put("network-cidr", self.network_cidr.to_string());
        put(
            "master-instance-profile",
            self.master_instance_profile.clone().unwrap_or_default(),
        );
        t
    }

    /// The spec a cluster's VPC tags hold (no SSH key: that lives in the key pair and the local
    /// state).
    pub fn from_tags(
        name: &str,
        region: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<ClusterSpec, String> {
        let get = |k: &str| {
            tags.get(&format!("{TAG_SPEC}{k}"))
                .cloned()
                .ok_or_else(|| format!("the VPC of cluster {name} has no tag {TAG_SPEC}{k}"))
        };
        let num = |k: &str| -> Result<u32, String> {
            get(k)?
                .parse()
                .map_err(|_| format!("the VPC's tag {TAG_SPEC}{k} is not a number"))
        };
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Ok(ClusterSpec {
            name: name.to_string(),
            region: region.to_string(),
            zones: list(get("zones")?),
            masters: num("masters")?,
            nodes: num("nodes")?,
            master_size: get("master-size")?,
            node_size: get("node-size")?,
            image: Some(get("image")?).filter(|i| !i.is_empty()),
            ssh_public_key: String::new(),
            api_cidrs: list(get("api-cidrs")?),
            network_cidr: get("network-cidr")?
                .parse()
                .map_err(|_| format!("the VPC's tag {TAG_SPEC}network-cidr is not a CIDR"))?,
            // (absent from clusters made before it was recorded)
            master_instance_profile: tags
                .get(&format!("{TAG_SPEC}master-instance-profile"))
                .filter(|p| !p.is_empty())
                .cloned(),
        })
    }

    /// Checks what can be checked without the cloud; errors name the flag.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.zones.is_empty() {
            return Err("--zones: at least one zone".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for z in &self.zones {
            if !seen.insert(z) {
                return Err(format!("--zones: {z} is given twice"));
            }
            if !z.starts_with(&self.region) {
                return Err(format!(
                    "--zones: {z} is not a zone of region {} (set AWS_REGION for another region)",
                    self.region
                ));
            }
        }
        if !matches!(self.masters, 1 | 3) {
            return Err(format!(
                "--masters {}: a cluster has 1 or 3 masters",
                self.masters
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(format!("--nodes {}: at most {MAX_NODES}", self.nodes));
        }
        let p = self.network_cidr.prefix_len();
        if !(16..=24).contains(&p) {
            return Err(format!(
                "--network-cidr {}: the prefix must be /16 to /24 (AWS allows /16 to /28 per VPC, and each zone needs a subnet)",
                self.network_cidr
            ));
        }
        if self.network_cidr.trunc() != self.network_cidr {
            return Err(format!(
                "--network-cidr {}: not a network address (did you mean {}?)",
                self.network_cidr,
                self.network_cidr.trunc()
            ));
        }
        Ok(())
    }
}

/// Normalises a CIDR (`10.1.2.3/8` becomes `10.0.0.0/8`), naming the flag when it is not one.
pub fn normal_cidr(flag: &str, c: &str) -> Result<String, String> {
    c.parse::<ipnet::Ipv4Net>()
        .map(|n| n.trunc().to_string())
        .map_err(|_| format!("{flag}: {c:?} is not an IPv4 CIDR"))
}

/// Checks a cluster name: it becomes part of AWS names (load balancers allow 32 characters).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cluster name {name:?} must be 1-20 lower-case letters, digits or '-', not starting or ending with '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_errors_are_classified_by_code() {
        let e = CloudError::from_code("creating a VPC", "RequestLimitExceeded", "slow down");
        assert!(
            e.is_throttled() && e.to_string().contains("hint: AWS is throttling"),
            "{e}"
        );
        let e = CloudError::from_code("deleting subnet-1", "InvalidSubnetID.NotFound", "gone");
        assert!(e.is_not_found() && e.code() == Some("InvalidSubnetID.NotFound"));
        let e = CloudError::from_code("x", "DependencyViolation", "in use");
        assert!(!e.is_not_found() && !e.is_throttled());
        assert_eq!(e.to_string(), "x: DependencyViolation: in use");
    }

    #[test]
    fn the_aws_profile_parses() {
        let p = aws_profile();
        assert_eq!(p.cloud, "aws");
        assert_eq!(p.ports.api, 6443);
        assert_eq!(p.network.subnet_bits, 4);
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(check_name("dev-1").is_ok());
        for bad in ["", "Dev", "-a", "a-", "a_b", "averyveryverylongclustername"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    fn spec() -> ClusterSpec {
        ClusterSpec {
            name: "dev".into(),
            region: "us-east-1".into(),
            zones: vec!["us-east-1a".into(), "us-east-1b".into()],
            masters: 3,
            nodes: 4,
            master_size: "t3.medium".into(),
            node_size: "t3.large".into(),
            image: Some("ami-1".into()),
            ssh_public_key: String::new(),
            api_cidrs: vec!["10.0.0.0/8".into(), "192.168.1.0/24".into()],
            network_cidr: "10.20.0.0/16".parse().unwrap(),
            master_instance_profile: Some("orkops-master".into()),
        }
    }

    #[test]
    fn the_spec_round_trips_through_tags() {
        let s = spec();
        assert_eq!(
            ClusterSpec::from_tags("dev", "us-east-1", &s.to_tags()).unwrap(),
            s
        );
        let mut t = s.to_tags();
        t.remove("orkops.io/spec-nodes");
        let e = ClusterSpec::from_tags("dev", "us-east-1", &t).unwrap_err();
        assert!(e.contains("orkops.io/spec-nodes"), "{e}");
    }

    #[test]
    fn bad_specs_name_the_flag() {
        type Change = Box<dyn Fn(&mut ClusterSpec)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|s| s.zones = vec!["eu-west-1a".into()]),
                "--zones: eu-west-1a",
            ),
            (
                Box::new(|s| s.zones.push("us-east-1a".into())),
                "given twice",
            ),
            (Box::new(|s| s.masters = 2), "--masters 2"),
            (Box::new(|s| s.nodes = 501), "--nodes 501"),
            (
                Box::new(|s| s.network_cidr = "10.0.0.0/8".parse().unwrap()),
                "--network-cidr",
            ),
            (
                Box::new(|s| s.network_cidr = "10.0.0.1/16".parse().unwrap()),
                "10.0.0.0/16",
            ),
        ];
        assert!(spec().check().is_ok());
        for (change, want) in cases {
            let mut s = spec();
            change(&mut s);
            let e = s.check().unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        assert_eq!(
            normal_cidr("--api-cidrs", "10.1.2.3/8").unwrap(),
            "10.0.0.0/8"
        );
        assert!(normal_cidr("--api-cidrs", "nope")
            .unwrap_err()
            .contains("--api-cidrs"));
    }
}
