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
//! A sync is one `nft -f` transaction that rewrites only the service ports that changed since
//! the last one (the first sync after a start replaces the whole table); affinity sets of
//! unchanged endpoints keep their clients.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub const TABLE: &str = "orkops";

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

/// What the table holds after a sync: each service port as it was programmed, so the next
/// sync rewrites only the ports that changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub ports: BTreeMap<String, ServicePort>,
}

impl Applied {
    /// Every per-service chain in the table.
    pub fn chains(&self) -> BTreeSet<String> {
        self.ports
            .values()
            .flat_map(|p| p.emit(Ipv4Net::default()).chains)
            .collect()
    }
    /// Every affinity set in the table.
    pub fn sets(&self) -> BTreeSet<String> {
        self.ports
            .values()
            .flat_map(|p| p.emit(Ipv4Net::default()).sets.into_iter().map(|(n, _)| n))
            .collect()
    }
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

/// The table objects one service port needs.
struct Emitted {
    chains: BTreeSet<String>,
    /// (name, timeout in seconds)
    sets: Vec<(String, u32)>,
    /// `add rule` lines
    rules: String,
    /// (map, "key : verdict")
    elements: Vec<(&'static str, String)>,
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

    fn emit(&self, cluster_cidr: Ipv4Net) -> Emitted {
        let t = format!("ip {TABLE}");
        let proto = self.protocol;
        let mut e = Emitted {
            chains: BTreeSet::new(),
            sets: Vec::new(),
            rules: String::new(),
            elements: Vec::new(),
        };
        if self.endpoints.is_empty() {
            if let Some(ip) = self.cluster_ip {
                e.elements.push((
                    "no-endpoint-services",
                    format!("{ip} . {proto} . {} : goto reject-connection", self.port),
                ));
            }
            if let Some(np) = self.node_port {
                e.elements.push((
                    "no-endpoint-nodeports",
                    format!("{proto} . {np} : goto reject-connection"),
                ));
            }
            return e;
        }
        let r = &mut e.rules;
        let svc = self.chain("svc");
        e.chains.insert(svc.clone());
        let _ = writeln!(
            r,
            "add rule {t} {svc} ip saddr != {cluster_cidr} jump mark-for-masquerade"
        );
        let mut choices = Vec::new();
        for (i, ep) in self.endpoints.iter().enumerate() {
            let epc = self.endpoint_chain(ep);
            e.chains.insert(epc.clone());
            let _ = writeln!(
                r,
                "add rule {t} {epc} ip saddr {} jump mark-for-masquerade",
                ep.0
            );
            if let Some(secs) = self.affinity_seconds {
                let set = self.affinity_set(ep);
                e.sets.push((set.clone(), secs));
                let _ = writeln!(r, "add rule {t} {svc} ip saddr @{set} goto {epc}");
                let _ = writeln!(r, "add rule {t} {epc} update @{set} {{ ip saddr }}");
            }
            let _ = writeln!(
                r,
                "add rule {t} {epc} meta l4proto {proto} dnat to {}:{}",
                ep.0, ep.1
            );
            choices.push(format!("{i} : goto {epc}"));
        }
        let _ = writeln!(
            r,
            "add rule {t} {svc} numgen random mod {} vmap {{ {} }}",
            self.endpoints.len(),
            choices.join(", ")
        );
        if let Some(ip) = self.cluster_ip {
            e.elements.push((
                "service-ips",
                format!("{ip} . {proto} . {} : goto {svc}", self.port),
            ));
        }
        if let Some(np) = self.node_port {
            let ext = self.chain("ext");
            e.chains.insert(ext.clone());
            let _ = writeln!(r, "add rule {t} {ext} jump mark-for-masquerade");
            let _ = writeln!(r, "add rule {t} {ext} goto {svc}");
            e.elements
                .push(("service-nodeports", format!("{proto} . {np} : goto {ext}")));
        }
        e
    }
}

/// The fixed part of the table: hooks, maps, masquerade and reject chains.
fn skeleton(s: &mut String) {
    let t = format!("ip {TABLE}");
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
    }
    for rule in [
        "nat-prerouting jump services",
        "nat-output jump services",
        "services ip daddr . meta l4proto . th dport vmap @service-ips",
        "services fib daddr type local meta l4proto . th dport vmap @service-nodeports",
        "mark-for-masquerade meta mark set meta mark | 0x4000",
        "nat-postrouting meta mark & 0x4000 == 0 return",
        "nat-postrouting meta mark set meta mark ^ 0x4000 masquerade fully-random",
        "reject-connection meta l4proto tcp reject with tcp reset",
        "reject-connection reject",
        "filter-forward ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
        "filter-output ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
        "filter-input ct state new fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports",
        "filter-output ct state new fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports",
    ] {
        let _ = writeln!(s, "add rule {t} {rule}");
    }
}

/// Renders the sync that takes the table from `previous` (what the last sync of this agent
/// loaded) to `services`. Without `previous` (the first sync, or after a failed one) the table
/// is replaced wholesale, clearing anything an earlier run left; with it, only the service
/// ports that changed are rewritten — their map elements swapped, their chains flushed and
/// refilled, the chains and sets they no longer need deleted — so a sync costs what changed,
/// not what exists, and the affinity sets of unchanged endpoints keep their clients.
pub fn render(
    cluster_cidr: Ipv4Net,
    services: &[ServicePort],
    previous: Option<&Applied>,
) -> Rendered {
    let t = format!("ip {TABLE}");
    let mut s = String::new();
    let mut applied = Applied::default();
    for sp in services {
        applied.ports.insert(sp.id(), sp.clone());
    }
    let empty = Applied::default();
    let prev = match previous {
        Some(p) => p,
        None => {
            let _ = writeln!(s, "add table {t}\ndelete table {t}\nadd table {t}");
            skeleton(&mut s);
            &empty
        }
    };
    let changed: Vec<&ServicePort> = applied
        .ports
        .iter()
        .filter(|(id, sp)| prev.ports.get(*id) != Some(*sp))
        .map(|(_, sp)| sp)
        .collect();
    let gone: Vec<&ServicePort> = prev
        .ports
        .iter()
        .filter(|(id, sp)| applied.ports.get(*id) != Some(*sp))
        .map(|(_, sp)| sp)
        .collect();
    // 1. take the old elements of changed and removed ports out of the maps
    let mut old_chains = BTreeSet::new();
    let mut old_sets = BTreeSet::new();
    for sp in &gone {
        let e = sp.emit(cluster_cidr);
        for (map, el) in &e.elements {
            let key = el.split(" : ").next().unwrap_or("");
            let _ = writeln!(s, "delete element {t} {map} {{ {key} }}");
        }
        old_chains.extend(e.chains);
        old_sets.extend(e.sets.into_iter().map(|(n, _)| n));
    }
    // 2. the chains and sets of changed ports, empty; 3. their rules; 4. their elements
    let emitted: Vec<Emitted> = changed.iter().map(|sp| sp.emit(cluster_cidr)).collect();
    let mut new_chains = BTreeSet::new();
    let mut new_sets = BTreeSet::new();
    for e in &emitted {
        for c in &e.chains {
            let _ = writeln!(s, "add chain {t} {c}\nflush chain {t} {c}");
            new_chains.insert(c.clone());
        }
        for (set, secs) in &e.sets {
            let _ = writeln!(
                s,
                "add set {t} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {secs}s; }}"
            );
            new_sets.insert(set.clone());
        }
    }
    for e in &emitted {
        s.push_str(&e.rules);
    }
    for e in &emitted {
        for (map, el) in &e.elements {
            let _ = writeln!(s, "add element {t} {map} {{ {el} }}");
        }
    }
    // 5. what the changed and removed ports no longer need
    let stale: Vec<&String> = old_chains.difference(&new_chains).collect();
    for c in &stale {
        let _ = writeln!(s, "flush chain {t} {c}");
    }
    for c in &stale {
        let _ = writeln!(s, "delete chain {t} {c}");
    }
    for set in old_sets.difference(&new_sets) {
        let _ = writeln!(s, "delete set {t} {set}");
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
        assert_eq!(r.applied.chains().len(), 4, "{:?}", r.applied.chains());
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
        assert!(r.applied.chains().is_empty());
    }

    #[test]
    fn later_syncs_rewrite_only_what_changed() {
        let mut a = web(vec![
            ("10.244.1.5".parse().unwrap(), 8080),
            ("10.244.2.7".parse().unwrap(), 8080),
        ]);
        a.affinity_seconds = Some(600);
        let mut other = web(vec![("10.244.3.3".parse().unwrap(), 80)]);
        other.name = "other".into();
        other.cluster_ip = Some("10.96.0.20".parse().unwrap());
        other.node_port = None;
        let first = render(cidr(), &[a.clone(), other.clone()], None);
        assert_eq!(first.applied.sets().len(), 2);
        assert!(first.script.contains("timeout 600s"));
        assert!(first.script.contains("update @aff-"));
        // nothing changed: an empty transaction
        let same = render(cidr(), &[a.clone(), other.clone()], Some(&first.applied));
        assert!(same.script.is_empty(), "{}", same.script);
        // one endpoint of `web` goes: only web's chains are touched
        a.endpoints.pop();
        let second = render(cidr(), &[a, other.clone()], Some(&first.applied));
        assert!(!second.script.contains("delete table"));
        assert!(
            !second.script.contains(&other.chain("svc")),
            "{}",
            second.script
        );
        let gone: Vec<_> = first
            .applied
            .chains()
            .difference(&second.applied.chains())
            .cloned()
            .collect();
        assert_eq!(gone.len(), 1);
        assert!(second
            .script
            .contains(&format!("delete chain ip orkops {}", gone[0])));
        assert_eq!(second.script.matches("delete set ip orkops").count(), 1);
        assert!(second
            .script
            .contains("delete element ip orkops service-ips { 10.96.0.10 . tcp . 80 }"));
        // a removed service leaves nothing behind
        let third = render(cidr(), &[other], Some(&second.applied));
        assert!(third
            .script
            .contains("delete element ip orkops service-nodeports { tcp . 30080 }"));
        assert_eq!(
            third.script.matches("delete chain").count(),
            3,
            "{}",
            third.script
        );
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
        let second = render(cidr(), &[a, u.clone()], Some(&first.applied));
        load_in(second.script.clone()).await;
        let third = render(cidr(), &[u], Some(&second.applied));
        load_in(third.script.clone()).await;
        load_in(teardown_script()).await;
    }
}
