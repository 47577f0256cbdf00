//! The files the agent writes for a pod's containers as the kubelet does: `/etc/resolv.conf`
//! from the pod's `dnsPolicy` and `dnsConfig` (the cluster DNS, the node's resolver, or only what
//! the pod gives; merged and cut to resolver limits as the kubelet's DNS configurer does), and
//! the managed `/etc/hosts` (localhost, the pod's own name and address, its `hostAliases`; under
//! `hostNetwork` the node's hosts file plus the aliases). Pure functions; `container` mounts
//! what they return.

use crate::api::core::Pod;

/// The node's resolver configuration file (the kubelet's `--resolv-conf` default).
pub const NODE_RESOLV_CONF: &str = "/etc/resolv.conf";
/// What systemd-resolved serves when `/etc/resolv.conf` names only its stub (127.0.0.53).
const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// The node's hosts file, the base of a host-network pod's.
pub const NODE_HOSTS: &str = "/etc/hosts";

/// The cluster DNS a node's pods use (when the node runs the orkops pod network).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDns {
    pub server: String,
    pub domain: String,
}

/// A resolver configuration: nameservers, search domains, options (`ndots:5`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolv {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Reads a resolv.conf as the kubelet does: nameservers accumulate, the last `search` and
/// `options` lines win, a search domain's trailing dot is dropped.
pub fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => r.servers.extend(f.next().map(str::to_string)),
            Some("search") => r.searches = f.map(|s| s.trim_end_matches('.').to_string()).collect(),
            Some("options") => r.options = f.map(str::to_string).collect(),
            _ => {}
        }
    }
    r
}

/// The node's resolver: `/etc/resolv.conf`, or systemd-resolved's upstream file when that names
/// only the local stub (what kubeadm points the kubelet at).
pub fn node_resolv() -> Resolv {
    let text = std::fs::read_to_string(NODE_RESOLV_CONF).unwrap_or_default();
    let r = parse_resolv(&text);
    let stub = !r.servers.is_empty() && r.servers.iter().all(|s| s == "127.0.0.53");
    if stub {
        if let Ok(t) = std::fs::read_to_string(SYSTEMD_RESOLV_CONF) {
            return parse_resolv(&t);
        }
    }
    r
}

pub fn render(r: &Resolv) -> String {
    let mut out = String::new();
    for s in &r.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

fn omit_duplicates(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

/// Where a pod's resolver configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DnsType {
    Cluster,
    Host,
    None,
}

/// The kubelet's getPodDNSType: ClusterFirst falls back to the node's resolver for a
/// host-network pod; ClusterFirstWithHostNet does not.
pub fn dns_type(pod: &Pod) -> DnsType {
    match pod.spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "None" => DnsType::None,
        "Default" => DnsType::Host,
        "ClusterFirst" if pod.spec.host_network => DnsType::Host,
        _ => DnsType::Cluster,
    }
}

/// The pod's resolver configuration, and whether the cluster DNS was wanted but the node has
/// none (the kubelet's MissingClusterDNS: it falls back to the node's resolver).
pub fn pod_resolv(pod: &Pod, cluster: Option<&ClusterDns>, node: &Resolv) -> (Resolv, bool) {
    let mut missing = false;
    let mut r = match (dns_type(pod), cluster) {
        (DnsType::None, _) => Resolv::default(),
        (DnsType::Cluster, Some(c)) => {
            let ns = pod.metadata.namespace();
            let d = &c.domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(node.searches.iter().cloned());
            Resolv {
                servers: vec![c.server.clone()],
                searches: omit_duplicates(searches),
                options: vec!["ndots:5".into()],
            }
        }
        (DnsType::Cluster, None) => {
            missing = true;
            node.clone()
        }
        (DnsType::Host, _) => node.clone(),
    };
    if let Some(cfg) = &pod.spec.dns_config {
        let mut servers = r.servers;
        servers.extend(cfg.nameservers.iter().cloned());
        r.servers = omit_duplicates(servers);
        let mut searches = r.searches;
        searches.extend(cfg.searches.iter().cloned());
        r.searches = omit_duplicates(searches);
        for o in &cfg.options {
            let entry = match o.value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!("{}:{v}", o.name),
                None => o.name.clone(),
            };
            let same = |x: &String| x.split(':').next() == Some(o.name.as_str());
            match r.options.iter().position(same) {
                Some(i) => r.options[i] = entry,
                None => r.options.push(entry),
            }
        }
    }
    (fit_limits(r), missing)
}

/// The kubelet's limits: 3 nameservers, 32 search domains of at most 253 characters and 2048
/// characters in all.
fn fit_limits(mut r: Resolv) -> Resolv {
    r.servers.truncate(3);
    r.searches.truncate(32);
    r.searches.retain(|s| s.len() <= 253);
    while r.searches.join(" ").len() > 2048 {
        r.searches.pop();
    }
    r
}

/// Whether the agent writes the pod's resolv.conf itself. Without a cluster DNS, a pod on the
/// node's resolver (ClusterFirst falls back to it) with no dnsConfig gets the engine's copy of
/// the node's file, which drops loopback nameservers a pod cannot reach.
pub fn own_resolv(pod: &Pod, cluster: Option<&ClusterDns>) -> bool {
    cluster.is_some() || pod.spec.dns_config.is_some() || dns_type(pod) == DnsType::None
}

/// The pod's host name: `spec.hostname`, else its name cut to 63 characters (without a
/// trailing '-' or '.'). A pod has a domain (an FQDN) only with `spec.subdomain`, which orkops
/// does not serve here, so `setHostnameAsFQDN` has nothing to change, as Kubernetes says.
pub fn hostname(pod: &Pod) -> String {
    match pod.spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => {
            let n: String = pod.metadata.name().chars().take(63).collect();
            n.trim_end_matches(['-', '.']).to_string()
        }
    }
}

fn aliases(pod: &Pod) -> String {
    if pod.spec.host_aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in &pod.spec.host_aliases {
        for h in &a.hostnames {
            out.push_str(&format!("{}\t{h}\n", a.ip));
        }
    }
    out
}

/// The pod's `/etc/hosts`: the kubelet's managed file for the pod's addresses, or under
/// `hostNetwork` the node's hosts file (`node_hosts`) with the aliases after it.
pub fn hosts(pod: &Pod, pod_ips: &[String], node_hosts: &str) -> String {
    if pod.spec.host_network {
        return format!(
            "# Kubernetes-managed hosts file (host network).\n{node_hosts}{}",
            aliases(pod)
        );
    }
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    let name = hostname(pod);
    for ip in pod_ips {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    out.push_str(&aliases(pod));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{HostAlias, PodDNSConfig, PodDNSConfigOption};

    fn pod(policy: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web-0".into());
        p.metadata.namespace = Some("shop".into());
        p.spec.dns_policy = Some(policy.into());
        p
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            server: "10.244.1.1".into(),
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn each_dns_policy_gives_the_kubelets_resolv_conf() {
        let node = parse_resolv(
            "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch ec2.internal.\noptions timeout:2\n",
        );
        assert_eq!(node.searches, vec!["ec2.internal"]);
        let (r, missing) = pod_resolv(&pod("ClusterFirst"), Some(&cluster()), &node);
        assert!(!missing);
        assert_eq!(
            render(&r),
            "nameserver 10.244.1.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\noptions ndots:5\n"
        );
        // no cluster DNS: the node's, and the kubelet's warning
        let (r, missing) = pod_resolv(&pod("ClusterFirst"), None, &node);
        assert!(missing);
        assert_eq!(r, node);
        let (r, _) = pod_resolv(&pod("Default"), Some(&cluster()), &node);
        assert_eq!(r, node);
        // host network: ClusterFirst is the node's, ClusterFirstWithHostNet the cluster's
        let mut hn = pod("ClusterFirst");
        hn.spec.host_network = true;
        assert_eq!(pod_resolv(&hn, Some(&cluster()), &node).0, node);
        hn.spec.dns_policy = Some("ClusterFirstWithHostNet".into());
        assert_eq!(
            pod_resolv(&hn, Some(&cluster()), &node).0.servers,
            vec!["10.244.1.1"]
        );
        // None: only dnsConfig; a dnsConfig merges into any base
        let mut none = pod("None");
        none.spec.dns_config = Some(Box::new(PodDNSConfig {
            nameservers: vec!["1.1.1.1".into(), "10.244.1.1".into()],
            searches: vec!["corp.example".into()],
            options: vec![
                PodDNSConfigOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: "single-request-reopen".into(),
                    value: None,
                },
            ],
        }));
        assert_eq!(
            render(&pod_resolv(&none, Some(&cluster()), &node).0),
            "nameserver 1.1.1.1\nnameserver 10.244.1.1\nsearch corp.example\noptions ndots:2 single-request-reopen\n"
        );
        let mut merged = none.clone();
        merged.spec.dns_policy = Some("ClusterFirst".into());
        let (r, _) = pod_resolv(&merged, Some(&cluster()), &node);
        assert_eq!(r.servers, vec!["10.244.1.1", "1.1.1.1"], "no duplicates");
        assert_eq!(r.options, vec!["ndots:2", "single-request-reopen"]);
        assert!(own_resolv(&none, None) && !own_resolv(&pod("ClusterFirst"), None));
    }

    #[test]
    fn the_hosts_file_is_the_kubelets() {
        let mut p = pod("ClusterFirst");
        p.spec.host_aliases = vec![HostAlias {
            ip: "10.1.2.3".into(),
            hostnames: vec!["foo.local".into(), "bar.local".into()],
        }];
        let h = hosts(&p, &["172.17.0.5".into()], "");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("172.17.0.5\tweb-0\n"), "{h}");
        assert!(h.ends_with(
            "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\n10.1.2.3\tbar.local\n"
        ));
        p.spec.host_network = true;
        let h = hosts(&p, &[], "127.0.0.1 localhost node-1\n");
        assert!(h.starts_with(
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost node-1\n\n# Entries"
        ));
        p.spec.hostname = Some("db".into());
        assert_eq!(hostname(&p), "db");
    }
}
