//! The service data path of a node (kube-proxy's job): renders the cluster's services and
//! their ready endpoints into one nftables table, `ip orkops`, and loads it atomically with
//! `nft -f`. Lookups are verdict maps keyed by (address, protocol, port), so the cost of the
//! first packet of a connection does not grow with the number of services; after that
//! conntrack carries the connection.
//!
//! - ClusterIP: `nat` prerouting (pods, other hosts) and output (this node) DNAT the service
//!   address to one ready endpoint, picked at random (`numgen random`), or by a per-endpoint
//!   set of recent client addresses for `sessionAffinity: ClientIP`.
//! - NodePort: the same, on any local address of the node, with the source masqueraded so
//!   replies come back through this node whatever node the endpoint is on.
//! - A service port without ready endpoints is rejected at once (TCP reset, ICMP port
//!   unreachable for UDP) instead of timing out.
//! - Traffic a pod sends to itself through a service (hairpin) and traffic from outside the
//!   cluster CIDR to a ClusterIP are masqueraded, as kube-proxy does.
//!
//! Every sync rewrites the rules in one transaction but keeps the affinity sets, so clients
//! stay with their endpoint across unrelated changes.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub const TABLE: &str = "orkops";
const MASQ_MARK: &str = "0x4000";

/// One port of one service, with where its traffic may go.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The service port's name, or empty.
    pub port_name: String,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Ready endpoints: pod address and target port.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_seconds: Option<u32>,
}

/// What one sync loaded: the names of per-service chains and sets, so the next sync can
/// remove the ones no longer needed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

/// A rendered ruleset: the `nft -f` script and what it leaves in place.
pub struct Rendered {
    pub script: String,
    pub applied: Applied,
}

fn short_hash(s: &str) -> String {
    // FNV-1a: stable across runs and releases, unlike std's hasher
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", h as u32)
}

impl ServicePort {
    fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol,
            if self.port_name.is_empty() {
                format!("p{}", self.port)
            } else {
                self.port_name.clone()
            }
        )
    }
    fn chain(&self, prefix: &str) -> String {
        let id = self.id();
        format!("{prefix}-{}-{id}", short_hash(&id))
    }
    fn endpoint_chain(&self, ep: &(Ipv4Addr, u16)) -> String {
        let id = format!("{}__{}/{}", self.id(), ep.0, ep.1);
        format!("ep-{}-{id}", short_hash(&id))
    }
    fn affinity_set(&self, ep: &(Ipv4Addr, u16)) -> String {
        let id = format!("{}__{}/{}", self.id(), ep.0, ep.1);
        format!("aff-{}", short_hash(&id))
    }
}

/// Renders the table for `services`. With `previous` (what the last sync of this agent
/// loaded), stale chains and sets are deleted and the affinity sets kept; without it (the
/// first sync) the table is replaced wholesale, clearing anything an earlier run left.
pub fn render(
    cluster_cidr: Ipv4Net,
    services: &[ServicePort],
    previous: Option<&Applied>,
) -> Rendered {
    let t = format!("ip {TABLE}");
    let mut s = String::new();
    let mut applied = Applied::default();
    let _ = writeln!(s, "add table {t}");
    if previous.is_some() {
        let _ = writeln!(s, "flush table {t}");
    } else {
        let _ = writeln!(s, "delete table {t}\nadd table {t}");
    }
    for (name, hook) in [
        ("nat-prerouting", "type nat hook prerouting priority dstnat"),
        ("nat-output", "type nat hook output priority -100"),
        (
            "nat-postrouting",
            "type nat hook postrouting priority srcnat",
        ),
        ("filter-input", "type filter hook input priority -110"),
        ("filter-forward", "type filter hook forward priority -110"),
        ("filter-output", "type filter hook output priority -110"),
    ] {
        let _ = writeln!(s, "add chain {t} {name} {{ {hook}; policy accept; }}");
    }
    for c in ["services", "mark-for-masquerade", "reject-connection"] {
        let _ = writeln!(s, "add chain {t} {c}");
    }
    for (map, key) in [
        ("service-ips", "ipv4_addr . inet_proto . inet_service"),
        ("service-nodeports", "inet_proto . inet_service"),
        (
            "no-endpoint-services",
            "ipv4_addr . inet_proto . inet_service",
        ),
        ("no-endpoint-nodeports", "inet_proto . inet_service"),
    ] {
        let _ = writeln!(s, "add map {t} {map} {{ type {key} : verdict; }}");
        let _ = writeln!(s, "flush map {t} {map}");
    }
    // the fixed rules
    let _ = writeln!(s, "add rule {t} nat-prerouting jump services");
    let _ = writeln!(s, "add rule {t} nat-output jump services");
    let _ = writeln!(
        s,
        "add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips"
    );
    let _ = writeln!(
        s,
        "add rule {t} services fib daddr type local meta l4proto . th dport vmap @service-nodeports"
    );
    let _ = writeln!(
        s,
        "add rule {t} mark-for-masquerade meta mark set meta mark | {MASQ_MARK}"
    );
    let _ = writeln!(
        s,
        "add rule {t} nat-postrouting meta mark & {MASQ_MARK} == 0 return"
    );
    let _ = writeln!(
        s,
        "add rule {t} nat-postrouting meta mark set meta mark ^ {MASQ_MARK} masquerade fully-random"
    );
    let _ = writeln!(
        s,
        "add rule {t} reject-connection meta l4proto tcp reject with tcp reset"
    );
    let _ = writeln!(s, "add rule {t} reject-connection reject");
    for chain in ["filter-forward", "filter-output"] {
        let _ = writeln!(
            s,
            "add rule {t} {chain} ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services"
        );
    }
    for chain in ["filter-input", "filter-output"] {
        let _ = writeln!(
            s,
            "add rule {t} {chain} ct state new fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports"
        );
    }

    let mut rules = String::new();
    for sp in services {
        let proto = sp.protocol;
        if sp.endpoints.is_empty() {
            if let Some(ip) = sp.cluster_ip {
                let _ = writeln!(
                    rules,
                    "add element {t} no-endpoint-services {{ {ip} . {proto} . {} : goto reject-connection }}",
                    sp.port
                );
            }
            if let Some(np) = sp.node_port {
                let _ = writeln!(
                    rules,
                    "add element {t} no-endpoint-nodeports {{ {proto} . {np} : goto reject-connection }}"
                );
            }
            continue;
        }
        let svc = sp.chain("svc");
        applied.chains.insert(svc.clone());
        let _ = writeln!(
            rules,
            "add rule {t} {svc} ip saddr != {cluster_cidr} jump mark-for-masquerade"
        );
        let mut choices = Vec::new();
        for (i, ep) in sp.endpoints.iter().enumerate() {
            let epc = sp.endpoint_chain(ep);
            applied.chains.insert(epc.clone());
            let _ = writeln!(
                rules,
                "add rule {t} {epc} ip saddr {} jump mark-for-masquerade",
                ep.0
            );
            if let Some(secs) = sp.affinity_seconds {
                let set = sp.affinity_set(ep);
                applied.sets.insert(set.clone());
                let _ = writeln!(
                    s,
                    "add set {t} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {secs}s; }}"
                );
                let _ = writeln!(rules, "add rule {t} {svc} ip saddr @{set} goto {epc}");
                let _ = writeln!(rules, "add rule {t} {epc} update @{set} {{ ip saddr }}");
            }
            let _ = writeln!(
                rules,
                "add rule {t} {epc} meta l4proto {proto} dnat to {}:{}",
                ep.0, ep.1
            );
            choices.push(format!("{i} : goto {epc}"));
        }
        let _ = writeln!(
            rules,
            "add rule {t} {svc} numgen random mod {} vmap {{ {} }}",
            sp.endpoints.len(),
            choices.join(", ")
        );
        if let Some(ip) = sp.cluster_ip {
            let _ = writeln!(
                rules,
                "add element {t} service-ips {{ {ip} . {proto} . {} : goto {svc} }}",
                sp.port
            );
        }
        if let Some(np) = sp.node_port {
            let ext = sp.chain("ext");
            applied.chains.insert(ext.clone());
            let _ = writeln!(rules, "add rule {t} {ext} jump mark-for-masquerade");
            let _ = writeln!(rules, "add rule {t} {ext} goto {svc}");
            let _ = writeln!(
                rules,
                "add element {t} service-nodeports {{ {proto} . {np} : goto {ext} }}"
            );
        }
    }
    for c in &applied.chains {
        let _ = writeln!(s, "add chain {t} {c}");
    }
    s.push_str(&rules);
    if let Some(prev) = previous {
        for c in prev.chains.difference(&applied.chains) {
            let _ = writeln!(s, "delete chain {t} {c}");
        }
        for set in prev.sets.difference(&applied.sets) {
            let _ = writeln!(s, "delete set {t} {set}");
        }
    }
    Rendered { script: s, applied }
}

/// The script that removes the table (an agent asked to clean up its node).
pub fn teardown_script() -> String {
    format!("add table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// Loads a script with `nft -f -`, in the calling process's network namespace.
pub async fn load(script: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (install the nftables package): {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = script.to_string();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(body.as_bytes()).await;
    });
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft failed: {e}"))?;
    let _ = writer.await;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "nft refused the service rules: {}",
            err.lines().take(6).collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(endpoints: Vec<(Ipv4Addr, u16)>) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: "tcp",
            cluster_ip: Some("10.96.0.10".parse().unwrap()),
            port: 80,
            node_port: Some(30080),
            endpoints,
            affinity_seconds: None,
        }
    }

    fn cidr() -> Ipv4Net {
        "10.244.0.0/16".parse().unwrap()
    }

    #[test]
    fn a_service_maps_its_address_and_node_port_to_a_random_endpoint() {
        let eps = vec![
            ("10.244.1.5".parse().unwrap(), 8080),
            ("10.244.2.7".parse().unwrap(), 8080),
        ];
        let r = render(cidr(), &[web(eps)], None);
        let s = &r.script;
        let svc = web(vec![]).chain("svc");
        assert!(s.contains(&format!(
            "add element ip orkops service-ips {{ 10.96.0.10 . tcp . 80 : goto {svc} }}"
        )));
        assert!(s.contains("service-nodeports { tcp . 30080 : goto ext-"));
        assert!(s.contains("numgen random mod 2 vmap { 0 : goto ep-"));
        assert!(s.contains("meta l4proto tcp dnat to 10.244.1.5:8080"));
        assert!(s.contains("meta l4proto tcp dnat to 10.244.2.7:8080"));
        assert!(
            s.contains("delete table ip orkops"),
            "first sync starts clean"
        );
        assert_eq!(r.applied.chains.len(), 4, "{:?}", r.applied.chains);
        assert!(!s.contains("add element ip orkops no-endpoint-services"));
    }

    #[test]
    fn a_service_without_endpoints_is_rejected() {
        let r = render(cidr(), &[web(vec![])], None);
        assert!(r.script.contains(
            "add element ip orkops no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-connection }"
        ));
        assert!(r
            .script
            .contains("no-endpoint-nodeports { tcp . 30080 : goto reject-connection }"));
        assert!(r.applied.chains.is_empty());
    }

    #[test]
    fn later_syncs_keep_affinity_sets_and_drop_stale_chains() {
        let mut a = web(vec![
            ("10.244.1.5".parse().unwrap(), 8080),
            ("10.244.2.7".parse().unwrap(), 8080),
        ]);
        a.affinity_seconds = Some(600);
        let first = render(cidr(), &[a.clone()], None);
        assert_eq!(first.applied.sets.len(), 2);
        assert!(first.script.contains("timeout 600s"));
        assert!(first.script.contains("update @aff-"));
        a.endpoints.pop();
        let second = render(cidr(), &[a], Some(&first.applied));
        assert!(!second.script.contains("delete table"));
        assert!(second.script.contains("flush table ip orkops"));
        let gone: Vec<_> = first
            .applied
            .chains
            .difference(&second.applied.chains)
            .collect();
        assert_eq!(gone.len(), 1);
        assert!(second
            .script
            .contains(&format!("delete chain ip orkops {}", gone[0])));
        assert_eq!(second.script.matches("delete set ip orkops").count(), 1);
    }

    #[test]
    fn names_are_stable_and_distinct() {
        let a = web(vec![]);
        let mut b = web(vec![]);
        b.namespace = "other".into();
        assert_eq!(a.chain("svc"), web(vec![]).chain("svc"));
        assert_ne!(a.chain("svc"), b.chain("svc"));
        assert!(
            a.chain("svc").starts_with("svc-") && a.chain("svc").ends_with("default/web/tcp/http")
        );
    }

    /// The rendered rules are valid for the kernel's nftables, tried in a throwaway network
    /// namespace (needs root and nft, as the agent does).
    #[tokio::test]
    async fn rendered_rules_load_into_a_network_namespace() {
        let ns = format!("orkpx{}", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "cannot create a network namespace (run the tests as root)"
        );
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .status();
            }
        }
        let _gone = Gone(ns.clone());
        let load_in = |script: String| {
            let ns = ns.clone();
            async move {
                use std::io::Write;
                let mut c = std::process::Command::new("ip")
                    .args(["netns", "exec", &ns, "nft", "-f", "-"])
                    .stdin(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(script.as_bytes())
                    .unwrap();
                let out = c.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "nft: {}\n{script}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let mut a = web(vec![
            ("10.244.1.5".parse().unwrap(), 8080),
            ("10.244.2.7".parse().unwrap(), 8080),
        ]);
        a.affinity_seconds = Some(60);
        let mut u = web(vec![("10.244.1.9".parse().unwrap(), 53)]);
        u.name = "dns".into();
        u.protocol = "udp";
        u.cluster_ip = Some("10.96.0.53".parse().unwrap());
        u.node_port = None;
        let mut empty = web(vec![]);
        empty.name = "empty".into();
        empty.cluster_ip = Some("10.96.0.99".parse().unwrap());
        empty.node_port = Some(30099);
        let first = render(cidr(), &[a.clone(), u.clone(), empty], None);
        load_in(first.script.clone()).await;
        a.endpoints.pop();
        let second = render(cidr(), &[a, u], Some(&first.applied));
        load_in(second.script.clone()).await;
        load_in(teardown_script()).await;
    }
}
