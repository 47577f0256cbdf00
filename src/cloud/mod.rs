//! Cluster infrastructure on a cloud (the kops half of orkops): the cluster spec, the provider
//! profile (`providers/`), the tags every resource carries, and the AWS implementation (`aws`)
//! of create and delete. AWS is the source of truth: delete finds a cluster's resources by tag,
//! also without local state.

pub mod aws;

use serde::Deserialize;

/// Tag naming the cluster a resource belongs to.
pub const TAG_CLUSTER: &str = "orkops.io/cluster";
/// Tag naming the resource's role (`master`, `node`, `api`, `network`, ...).
pub const TAG_ROLE: &str = "orkops.io/role";
/// Tag holding the resource's creation time (RFC 3339), for `--older-than` clean-ups.
pub const TAG_CREATED: &str = "orkops.io/created";

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
    #[serde(rename = "vpcCIDR")]
    pub vpc_cidr: ipnet::Ipv4Net,
    pub subnet_prefix: u8,
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

/// What the user asked for.
#[derive(Debug, Clone)]
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
    /// Who may reach the API port.
    pub api_cidrs: Vec<String>,
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

/// The `/prefix` subnet of the VPC for zone number `i`.
pub fn zone_subnet(p: &NetworkProfile, i: usize) -> Result<ipnet::Ipv4Net, String> {
    p.vpc_cidr
        .subnets(p.subnet_prefix)
        .map_err(|e| format!("providers: subnetPrefix {}: {e}", p.subnet_prefix))?
        .nth(i)
        .ok_or_else(|| {
            format!(
                "the VPC {} has no room for zone number {}",
                p.vpc_cidr,
                i + 1
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_profile_parses_and_gives_one_subnet_per_zone() {
        let p = aws_profile();
        assert_eq!(p.cloud, "aws");
        assert_eq!(p.ports.api, 6443);
        assert_eq!(
            zone_subnet(&p.network, 0).unwrap().to_string(),
            "10.0.0.0/20"
        );
        assert_eq!(
            zone_subnet(&p.network, 2).unwrap().to_string(),
            "10.0.32.0/20"
        );
        assert!(zone_subnet(&p.network, 16).is_err());
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(check_name("dev-1").is_ok());
        for bad in ["", "Dev", "-a", "a-", "a_b", "averyveryverylongclustername"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
