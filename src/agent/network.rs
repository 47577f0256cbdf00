//! The pod network of a node (`orkops-agent --network orkops`), the part a CNI plugin,
//! kube-proxy and the cluster DNS do on a Kubernetes node:
//!
//! - the bridge `orkops0` carrying the first address of the node's pod CIDR (given by the
//!   master when the node registered), IP forwarding, and a veth per pod sandbox with the
//!   pod's address (host-local IPAM: the addresses in use are the labels of the sandboxes);
//! - a route to every other node's pod CIDR via that node's address, kept in step with the
//!   Node list (routes carry protocol number 199 so the agent only ever touches its own); a
//!   node off this host's subnets is left to the default route (on AWS the VPC route table);
//! - the service rules (`proxy`), resynced whenever a Service or Endpoints object changes;
//! - the DNS server on the bridge address answering `NAME.NAMESPACE.svc[.DOMAIN]` (and
//!   `HOST.NAME.NAMESPACE.svc[.DOMAIN]` for the pods of a headless service, such as a
//!   StatefulSet's), which pods get as their only nameserver, and the service environment
//!   variables.
//!
//! Everything is done in the agent's own network namespace with `ip` and `nft`, so a test
//! can run several agents side by side, each in a namespace of its own.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde_json::Value;
use tokio::sync::{watch, Notify};

use super::dns::{self, Answer};
use super::proxy;
use crate::api::core::{Endpoints, Node, Service};
use crate::api::Kind;
use crate::client::{ApiClient, ClientError};

pub const BRIDGE: &str = "orkops0";
/// The routing protocol number marking the agent's routes.
pub const ROUTE_PROTO: &str = "199";
/// The Docker network name that selects the pod network.
pub const MODE: &str = "orkops";

/// The cluster-wide ranges, as the master publishes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterNetwork {
    pub cluster_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub cluster_domain: String,
}

/// Reads `orkops-system/cluster-network`, written by the master at start.
pub async fn cluster_network(api: &ApiClient) -> Result<ClusterNetwork, String> {
    let cm = api
        .get(
            Kind::ConfigMap,
            Some("orkops-system"),
            crate::apiserver::engine::NETWORK_CONFIG_MAP,
        )
        .await
        .map_err(|e| format!("cannot read the cluster network ranges (ConfigMap orkops-system/cluster-network): {e}"))?;
    let field = |k: &str| {
        cm.pointer(&format!("/data/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("ConfigMap orkops-system/cluster-network has no data.{k}"))
    };
    let cidr = |k: &str| -> Result<Ipv4Net, String> {
        let v = field(k)?;
        v.parse().map_err(|_| {
            format!("ConfigMap orkops-system/cluster-network data.{k} {v:?} is not a CIDR")
        })
    };
    Ok(ClusterNetwork {
        cluster_cidr: cidr("clusterCIDR")?,
        service_cidr: cidr("serviceCIDR")?,
        cluster_domain: field("clusterDomain")?,
    })
}

/// Runs a command (`ip`, `nsenter`, ...) and returns its stdout, or an error naming it.
async fn run(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sets a sysctl, unless it has that value already (a container may have it set read-only).
fn write_sysctl(path: &str, value: &str) -> Result<(), String> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|e| format!("cannot set {path} to {value}: {e}"))
}

/// The objects of one kind, kept current by a list+watch.
#[derive(Default)]
pub struct Cache {
    objects: RwLock<BTreeMap<(String, String), Value>>,
}

impl Cache {
    fn key(v: &Value) -> (String, String) {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        (s("/metadata/namespace"), s("/metadata/name"))
    }
    pub fn all<T: serde::de::DeserializeOwned>(&self) -> Vec<T> {
        self.objects
            .read()
            .expect("cache lock")
            .values()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect()
    }
    pub fn get<T: serde::de::DeserializeOwned>(&self, ns: &str, name: &str) -> Option<T> {
        let g = self.objects.read().expect("cache lock");
        let v = g.get(&(ns.to_string(), name.to_string()))?;
        serde_json::from_value(v.clone()).ok()
    }
}

/// Lists `kind`, then follows its watch into `cache`, poking `changed` on every change;
/// relists when the watch ends or fails.
async fn follow(
    api: Arc<ApiClient>,
    kind: Kind,
    cache: Arc<Cache>,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    use futures::StreamExt;
    loop {
        let r: Result<(), ClientError> = async {
            let list = api.list(kind, None, &[]).await?;
            let rv = list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("0")
                .to_string();
            {
                let mut g = cache.objects.write().expect("cache lock");
                g.clear();
                for item in list["items"].as_array().cloned().unwrap_or_default() {
                    g.insert(Cache::key(&item), item);
                }
            }
            changed.notify_one();
            let mut events = api.watch(kind, None, &[("resourceVersion", rv)]).await?;
            loop {
                tokio::select! {
                    ev = events.next() => {
                        let Some(ev) = ev else { return Ok(()) };
                        let ev = ev?;
                        if ev.type_ == "ERROR" {
                            return Ok(());
                        }
                        let k = Cache::key(&ev.object);
                        {
                            let mut g = cache.objects.write().expect("cache lock");
                            if ev.type_ == "DELETED" {
                                g.remove(&k);
                            } else {
                                g.insert(k, ev.object);
                            }
                        }
                        changed.notify_one();
                    }
                    _ = stop.changed() => return Ok(()),
                }
            }
        }
        .await;
        if *stop.borrow() {
            return;
        }
        if let Err(e) = r {
            tracing::warn!(%kind, error = %e, "watch failed; listing again shortly");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A node's pod network.
pub struct PodNetwork {
    pub pod_cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub cluster: ClusterNetwork,
    pub node: String,
    /// Where the next address search starts, so a freed address is reused as late as possible.
    cursor: Mutex<u32>,
    /// Addresses handed out whose sandbox does not carry its label yet.
    pending: Mutex<HashSet<Ipv4Addr>>,
    pub services: Arc<Cache>,
    pub endpoints: Arc<Cache>,
    pub nodes: Arc<Cache>,
    changed: Arc<Notify>,
}

impl PodNetwork {
    /// Prepares the node: forwarding, the bridge with the gateway address, bridged traffic
    /// through the netfilter hooks (so service replies between pods of one bridge are
    /// un-NATed), and the route that sends service addresses to the bridge.
    pub async fn setup(
        node: &str,
        pod_cidr: Ipv4Net,
        cluster: ClusterNetwork,
    ) -> Result<PodNetwork, String> {
        let gateway = pod_cidr
            .hosts()
            .next()
            .ok_or_else(|| format!("the pod CIDR {pod_cidr} has no room for addresses"))?;
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        if let Err(e) = run(&["ip", "link", "add", BRIDGE, "type", "bridge"]).await {
            if !e.contains("File exists") {
                return Err(e);
            }
        }
        let gw = format!("{gateway}/{}", pod_cidr.prefix_len());
        run(&["ip", "addr", "replace", &gw, "dev", BRIDGE]).await?;
        run(&["ip", "link", "set", BRIDGE, "up"]).await?;
        const BR_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
        if !std::path::Path::new(BR_NF).exists() {
            let _ = run(&["modprobe", "br_netfilter"]).await;
        }
        write_sysctl(BR_NF, "1").map_err(|e| {
            format!("{e}; hint: load the br_netfilter kernel module (`modprobe br_netfilter`)")
        })?;
        let svc = cluster.service_cidr.to_string();
        run(&[
            "ip",
            "route",
            "replace",
            &svc,
            "dev",
            BRIDGE,
            "proto",
            ROUTE_PROTO,
        ])
        .await?;
        Ok(PodNetwork {
            pod_cidr,
            gateway,
            cluster,
            node: node.to_string(),
            cursor: Mutex::new(2),
            pending: Mutex::new(HashSet::new()),
            services: Arc::default(),
            endpoints: Arc::default(),
            nodes: Arc::default(),
            changed: Arc::default(),
        })
    }

    /// A free pod address, given the addresses the node's sandboxes hold. Call `allocated`
    /// once the sandbox carrying it exists (or failed).
    pub fn allocate(&self, used: &HashSet<Ipv4Addr>) -> Result<Ipv4Addr, String> {
        let base = u32::from(self.pod_cidr.network());
        let size = 1u32 << (32 - self.pod_cidr.prefix_len());
        let mut pending = self.pending.lock().expect("ipam lock");
        let mut cursor = self.cursor.lock().expect("ipam lock");
        // offsets 0 (network), 1 (gateway) and size-1 (broadcast) are not for pods
        for i in 0..size {
            let off = 2 + (*cursor - 2 + i) % (size - 3);
            let ip = Ipv4Addr::from(base + off);
            if !used.contains(&ip) && !pending.contains(&ip) {
                *cursor = 2 + (off - 2 + 1) % (size - 3);
                pending.insert(ip);
                return Ok(ip);
            }
        }
        Err(format!(
            "no free pod address is left in {} on node {}",
            self.pod_cidr, self.node
        ))
    }

    pub fn allocated(&self, ip: Ipv4Addr) {
        self.pending.lock().expect("ipam lock").remove(&ip);
    }

    /// Connects the sandbox whose process is `pid` to the bridge with `ip`.
    pub async fn attach(&self, pid: i64, container_id: &str, ip: Ipv4Addr) -> Result<(), String> {
        let host_if = format!("vo{}", &container_id[..container_id.len().min(12)]);
        let host_if = &host_if[..host_if.len().min(15)];
        let pid = pid.to_string();
        let ns = |args: &[&str]| {
            let mut v = vec!["nsenter", "-t", pid.as_str(), "-n"];
            v.extend_from_slice(args);
            v.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        run(&[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", &pid,
        ])
        .await?;
        run(&["ip", "link", "set", host_if, "master", BRIDGE, "up"]).await?;
        let addr = format!("{ip}/{}", self.pod_cidr.prefix_len());
        let gw = self.gateway.to_string();
        for cmd in [
            ns(&["ip", "link", "set", "lo", "up"]),
            ns(&["ip", "addr", "add", &addr, "dev", "eth0"]),
            ns(&["ip", "link", "set", "eth0", "up"]),
            ns(&["ip", "route", "add", "default", "via", &gw]),
        ] {
            let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
            run(&refs).await?;
        }
        Ok(())
    }

    /// Docker-link style variables for the services of `namespace`, as Kubernetes sets them:
    /// `WEB_SERVICE_HOST`, `WEB_SERVICE_PORT`, `WEB_PORT_80_TCP_ADDR`, ...
    pub fn service_env(&self, namespace: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for s in self.services.all::<Service>() {
            if s.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            let Some(ip) = s
                .spec
                .cluster_ip
                .as_deref()
                .filter(|i| !i.is_empty() && *i != "None")
            else {
                continue;
            };
            let prefix = s.metadata.name().to_uppercase().replace('-', "_");
            let Some(first) = s.spec.ports.first() else {
                continue;
            };
            out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
            out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
            let proto = |p: &crate::api::core::ServicePort| {
                p.protocol.as_deref().unwrap_or("TCP").to_lowercase()
            };
            out.push((
                format!("{prefix}_PORT"),
                format!("{}://{ip}:{}", proto(first), first.port),
            ));
            for p in &s.spec.ports {
                if let Some(n) = &p.name {
                    out.push((
                        format!(
                            "{prefix}_SERVICE_PORT_{}",
                            n.to_uppercase().replace('-', "_")
                        ),
                        p.port.to_string(),
                    ));
                }
                let pr = proto(p);
                let base = format!("{prefix}_PORT_{}_{}", p.port, pr.to_uppercase());
                out.push((base.clone(), format!("{pr}://{ip}:{}", p.port)));
                out.push((format!("{base}_PROTO"), pr.clone()));
                out.push((format!("{base}_PORT"), p.port.to_string()));
                out.push((format!("{base}_ADDR"), ip.to_string()));
            }
        }
        out
    }

    /// What the DNS server answers for `name` (lower-case, no trailing dot).
    pub fn lookup(&self, name: &str) -> Answer {
        let d = &self.cluster.cluster_domain;
        let rest = if let Some(r) = name.strip_suffix(&format!(".svc.{d}")) {
            r
        } else if let Some(r) = name.strip_suffix(".svc") {
            r
        } else if name == d.as_str() || name.ends_with(&format!(".{d}")) {
            return Answer::NoSuchName;
        } else {
            return Answer::NotOurs;
        };
        // SERVICE.NAMESPACE, or ENDPOINT.SERVICE.NAMESPACE (one address of a headless service)
        let labels: Vec<&str> = rest.split('.').collect();
        let (endpoint, svc, ns) = match labels.as_slice() {
            [svc, ns] => (None, *svc, *ns),
            [host, svc, ns] => (Some(*host), *svc, *ns),
            _ => return Answer::NoSuchName,
        };
        if svc.is_empty() || ns.is_empty() || endpoint.is_some_and(str::is_empty) {
            return Answer::NoSuchName;
        }
        let Some(s) = self.services.get::<Service>(ns, svc) else {
            return Answer::NoSuchName;
        };
        let headless = matches!(s.spec.cluster_ip.as_deref(), Some("None") | None | Some(""));
        match (endpoint, s.spec.cluster_ip.as_deref()) {
            (None, Some(ip)) if !headless => Answer::Found(ip.parse().ok().into_iter().collect()),
            // only a headless service has names for its endpoints
            (Some(_), _) if !headless => Answer::NoSuchName,
            (endpoint, _) => {
                // headless: the ready endpoints themselves, or the one named (by the hostname
                // it was given, as a StatefulSet's pods are, or its address with dashes)
                let ips: BTreeSet<Ipv4Addr> = self
                    .endpoints
                    .get::<Endpoints>(ns, svc)
                    .iter()
                    .flat_map(|e| e.subsets.iter().flat_map(|s| s.addresses.clone()))
                    .filter(|a| {
                        endpoint.is_none_or(|h| {
                            a.hostname.as_deref() == Some(h) || a.ip.replace('.', "-") == h
                        })
                    })
                    .filter_map(|a| a.ip.parse().ok())
                    .collect();
                match endpoint {
                    Some(_) if ips.is_empty() => Answer::NoSuchName,
                    _ => Answer::Found(ips.into_iter().collect()),
                }
            }
        }
    }

    /// The service ports to program, from the cached services and endpoints.
    pub fn service_ports(&self) -> Vec<proxy::ServicePort> {
        let mut out = Vec::new();
        for s in self.services.all::<Service>() {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let name = s.metadata.name().to_string();
            let cluster_ip = s
                .spec
                .cluster_ip
                .as_deref()
                .and_then(|i| i.parse::<Ipv4Addr>().ok());
            if cluster_ip.is_none() {
                continue; // headless: DNS only
            }
            let eps = self.endpoints.get::<Endpoints>(&ns, &name);
            let affinity = (s.spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
                s.spec
                    .session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .unwrap_or(10800)
                    .clamp(1, 86400) as u32
            });
            for p in &s.spec.ports {
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                let mut endpoints = Vec::new();
                for sub in eps.iter().flat_map(|e| &e.subsets) {
                    let Some(ep) = sub.ports.iter().find(|ep| {
                        ep.protocol.as_deref().unwrap_or("TCP") == proto
                            && (ep.name == p.name || s.spec.ports.len() == 1)
                    }) else {
                        continue;
                    };
                    for a in &sub.addresses {
                        if let (Ok(ip), Ok(port)) = (a.ip.parse(), u16::try_from(ep.port)) {
                            endpoints.push((ip, port));
                        }
                    }
                }
                endpoints.sort();
                out.push(proxy::ServicePort {
                    namespace: ns.clone(),
                    name: name.clone(),
                    port_name: p.name.clone().unwrap_or_default(),
                    protocol: if proto == "UDP" { "udp" } else { "tcp" },
                    cluster_ip,
                    port: u16::try_from(p.port).unwrap_or(0),
                    node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
                    endpoints,
                    affinity_seconds: affinity,
                });
            }
        }
        out
    }

    /// The routes to other nodes' pod CIDRs: (CIDR, via).
    fn desired_routes(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for n in self.nodes.all::<Node>() {
            if n.metadata.name() == self.node {
                continue;
            }
            let (Some(cidr), Some(addr)) = (
                n.spec.pod_cidr.clone(),
                n.status.as_ref().and_then(|s| {
                    s.addresses
                        .iter()
                        .find(|a| a.type_ == "InternalIP")
                        .map(|a| a.address.clone())
                }),
            ) else {
                continue;
            };
            out.insert(cidr, addr);
        }
        out
    }

    async fn sync_routes(&self) -> Result<(), String> {
        // a node in another subnet (another zone on AWS) is reached through the default route:
        // the VPC's route table carries its pod CIDR (the master's route controller)
        let links = on_link(&run(&["ip", "-j", "-4", "addr", "show"]).await?);
        let mut want = self.desired_routes();
        want.retain(|_, via| directly_reachable(&links, via));
        let listed = run(&["ip", "-j", "route", "show", "proto", ROUTE_PROTO]).await?;
        let have: Vec<Value> = serde_json::from_str(&listed).unwrap_or_default();
        let svc = self.cluster.service_cidr.to_string();
        for r in &have {
            let dst = r["dst"].as_str().unwrap_or("");
            let gw = r["gateway"].as_str().unwrap_or("");
            if dst == svc {
                continue;
            }
            if want.get(dst).map(String::as_str) != Some(gw) {
                run(&["ip", "route", "del", dst, "proto", ROUTE_PROTO]).await?;
            }
        }
        for (cidr, via) in &want {
            let present = have
                .iter()
                .any(|r| r["dst"].as_str() == Some(cidr) && r["gateway"].as_str() == Some(via));
            if !present {
                run(&[
                    "ip",
                    "route",
                    "replace",
                    cidr,
                    "via",
                    via,
                    "proto",
                    ROUTE_PROTO,
                ])
                .await?;
            }
        }
        Ok(())
    }
}

/// The networks of this host's IPv4 addresses (`ip -j -4 addr show`).
fn on_link(addr_json: &str) -> Vec<Ipv4Net> {
    let links: Vec<Value> = serde_json::from_str(addr_json).unwrap_or_default();
    links
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| {
            let ip: Ipv4Addr = a["local"].as_str()?.parse().ok()?;
            let len = u8::try_from(a["prefixlen"].as_u64()?).ok()?;
            Ipv4Net::new(ip, len).ok().map(|n| n.trunc())
        })
        .collect()
}

/// Whether `via` is on one of `links` (a route via it is then accepted by the kernel); with
/// no links known, every address counts as reachable, as before.
fn directly_reachable(links: &[Ipv4Net], via: &str) -> bool {
    match via.parse::<Ipv4Addr>() {
        Ok(ip) => links.is_empty() || links.iter().any(|n| n.contains(&ip)),
        Err(_) => true, // `ip` names the problem
    }
}

/// Follows Services, Endpoints and Nodes and keeps the routes and service rules in step;
/// serves DNS on the bridge address. Returns when `stop` turns true.
pub async fn serve(net: Arc<PodNetwork>, api: Arc<ApiClient>, stop: watch::Receiver<bool>) {
    for (kind, cache) in [
        (Kind::Service, net.services.clone()),
        (Kind::Endpoints, net.endpoints.clone()),
        (Kind::Node, net.nodes.clone()),
    ] {
        tokio::spawn(follow(
            api.clone(),
            kind,
            cache,
            net.changed.clone(),
            stop.clone(),
        ));
    }
    let resolver: dns::Resolver = {
        let net = net.clone();
        Arc::new(move |name: &str| net.lookup(name))
    };
    let upstream = std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|t| dns::upstream_from_resolv_conf(&t));
    match dns::DnsServer::bind(SocketAddr::from((net.gateway, 53)), resolver, upstream).await {
        Ok(server) => {
            tokio::spawn(server.serve(stop.clone()));
        }
        Err(e) => tracing::error!(
            error = %e,
            "cannot serve cluster DNS on {}:53; pods will not resolve service names",
            net.gateway
        ),
    }
    let mut applied: Option<proxy::Applied> = None;
    let mut stop = stop;
    loop {
        tokio::select! {
            _ = net.changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = stop.changed() => return,
        }
        // let a burst of changes settle into one sync
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let ports = net.service_ports();
        let rendered = proxy::render(net.cluster.cluster_cidr, &ports, applied.as_ref());
        let loaded = if rendered.script.is_empty() {
            Ok(()) // nothing changed
        } else {
            proxy::load(&rendered.script).await
        };
        match loaded {
            Ok(()) => applied = Some(rendered.applied),
            Err(e) => {
                tracing::warn!(error = %e, "cannot program the service rules; retrying");
                applied = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                net.changed.notify_one();
            }
        }
        if let Err(e) = net.sync_routes().await {
            tracing::warn!(error = %e, "cannot program the pod routes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            net.changed.notify_one();
        }
        tracing::debug!(
            service_ports = ports.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "synced the service rules and routes"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nodes_in_other_subnets_go_by_the_default_route() {
        let links = super::on_link(
            r#"[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]},
                {"ifname":"ens5","addr_info":[{"local":"10.0.3.7","prefixlen":20}]}]"#,
        );
        assert_eq!(
            links,
            [
                "127.0.0.0/8".parse().unwrap(),
                "10.0.0.0/20".parse().unwrap()
            ]
        );
        assert!(super::directly_reachable(&links, "10.0.9.1"), "same subnet");
        assert!(
            !super::directly_reachable(&links, "10.0.16.5"),
            "another zone's"
        );
        assert!(super::directly_reachable(&links, "127.0.0.1"));
        assert!(super::directly_reachable(&[], "10.0.16.5"), "nothing known");
    }

    use super::*;

    fn net() -> PodNetwork {
        PodNetwork {
            pod_cidr: "10.244.1.0/29".parse().unwrap(),
            gateway: "10.244.1.1".parse().unwrap(),
            cluster: ClusterNetwork {
                cluster_cidr: "10.244.0.0/16".parse().unwrap(),
                service_cidr: "10.96.0.0/16".parse().unwrap(),
                cluster_domain: "cluster.local".into(),
            },
            node: "n1".into(),
            cursor: Mutex::new(2),
            pending: Mutex::new(HashSet::new()),
            services: Arc::default(),
            endpoints: Arc::default(),
            nodes: Arc::default(),
            changed: Arc::default(),
        }
    }

    fn put(cache: &Cache, v: Value) {
        cache.objects.write().unwrap().insert(Cache::key(&v), v);
    }

    #[test]
    fn addresses_skip_network_gateway_broadcast_and_used_ones() {
        let n = net();
        let used: HashSet<Ipv4Addr> = ["10.244.1.3".parse().unwrap()].into();
        let mut got = Vec::new();
        while let Ok(ip) = n.allocate(&used) {
            got.push(ip.to_string());
        }
        assert_eq!(
            got,
            ["10.244.1.2", "10.244.1.4", "10.244.1.5", "10.244.1.6"]
        );
        // a released address comes back only after the others
        n.allocated("10.244.1.4".parse().unwrap());
        assert_eq!(n.allocate(&used).unwrap().to_string(), "10.244.1.4");
    }

    #[test]
    fn dns_answers_service_names_in_both_forms() {
        let n = net();
        put(
            &n.services,
            serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}),
        );
        put(
            &n.services,
            serde_json::json!({"metadata": {"name": "db", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}),
        );
        put(
            &n.endpoints,
            serde_json::json!({"metadata": {"name": "db", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "10.244.1.7"}, {"ip": "10.244.2.3"}], "ports": [{"port": 5432}]}]}),
        );
        let found = |name: &str| match n.lookup(name) {
            Answer::Found(ips) => ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            Answer::NoSuchName => vec!["NXDOMAIN".into()],
            Answer::NotOurs => vec!["forward".into()],
        };
        assert_eq!(found("web.default.svc"), ["10.96.0.10"]);
        assert_eq!(found("web.default.svc.cluster.local"), ["10.96.0.10"]);
        assert_eq!(found("db.default.svc"), ["10.244.1.7", "10.244.2.3"]);
        assert_eq!(found("nope.default.svc.cluster.local"), ["NXDOMAIN"]);
        assert_eq!(found("web.other.svc"), ["NXDOMAIN"]);
        assert_eq!(found("default.svc.cluster.local"), ["NXDOMAIN"]);
        assert_eq!(found("example.org"), ["forward"]);
    }

    #[test]
    fn dns_answers_the_pods_of_a_headless_service_by_hostname() {
        let n = net();
        put(
            &n.services,
            serde_json::json!({"metadata": {"name": "nginx", "namespace": "default"},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}}}),
        );
        put(
            &n.services,
            serde_json::json!({"metadata": {"name": "front", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}}),
        );
        // what the endpoints controller writes for a StatefulSet's pods (web-2 is not ready)
        put(
            &n.endpoints,
            serde_json::json!({"metadata": {"name": "nginx", "namespace": "default"},
                "subsets": [{"addresses": [
                    {"ip": "10.244.1.7", "hostname": "web-0"},
                    {"ip": "10.244.2.3", "hostname": "web-1"},
                    {"ip": "10.244.2.9"}],
                "notReadyAddresses": [{"ip": "10.244.1.8", "hostname": "web-2"}]}]}),
        );
        let found = |name: &str| match n.lookup(name) {
            Answer::Found(ips) => ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            Answer::NoSuchName => vec!["NXDOMAIN".into()],
            Answer::NotOurs => vec!["forward".into()],
        };
        assert_eq!(
            found("web-0.nginx.default.svc.cluster.local"),
            ["10.244.1.7"]
        );
        assert_eq!(found("web-1.nginx.default.svc"), ["10.244.2.3"]);
        // by the address, as CoreDNS names endpoints without a hostname
        assert_eq!(found("10-244-2-9.nginx.default.svc"), ["10.244.2.9"]);
        assert_eq!(
            found("nginx.default.svc.cluster.local"),
            ["10.244.1.7", "10.244.2.3", "10.244.2.9"]
        );
        // not ready: not served, as CoreDNS serves only ready addresses
        assert_eq!(found("web-2.nginx.default.svc.cluster.local"), ["NXDOMAIN"]);
        assert_eq!(found("web-9.nginx.default.svc.cluster.local"), ["NXDOMAIN"]);
        // a service with a cluster IP has no names below it
        assert_eq!(found("web-0.front.default.svc.cluster.local"), ["NXDOMAIN"]);
        // what the search path tries first, on the way to the name above
        assert_eq!(
            found("web-0.nginx.default.svc.default.svc.cluster.local"),
            ["NXDOMAIN"]
        );
        assert_eq!(found("web-0.nginx.svc.cluster.local"), ["NXDOMAIN"]);
    }

    #[test]
    fn service_env_follows_kubernetes_names() {
        let n = net();
        put(
            &n.services,
            serde_json::json!({"metadata": {"name": "my-web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        );
        let env: BTreeMap<_, _> = n.service_env("default").into_iter().collect();
        assert_eq!(env["MY_WEB_SERVICE_HOST"], "10.96.0.10");
        assert_eq!(env["MY_WEB_SERVICE_PORT"], "80");
        assert_eq!(env["MY_WEB_SERVICE_PORT_HTTP"], "80");
        assert_eq!(env["MY_WEB_PORT"], "tcp://10.96.0.10:80");
        assert_eq!(env["MY_WEB_PORT_80_TCP_ADDR"], "10.96.0.10");
        assert!(n.service_env("other").is_empty());
    }

    #[test]
    fn service_ports_take_ready_endpoints_by_port_name() {
        let n = net();
        put(
            &n.services,
            serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "sessionAffinity": "ClientIP",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        );
        put(
            &n.endpoints,
            serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "10.244.1.7"}], "notReadyAddresses": [{"ip": "10.244.1.8"}],
                             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                       {"name": "dns", "port": 5353, "protocol": "UDP"}]}]}),
        );
        let ports = n.service_ports();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].endpoints, [("10.244.1.7".parse().unwrap(), 8080)]);
        assert_eq!(ports[0].node_port, Some(30080));
        assert_eq!(ports[0].affinity_seconds, Some(10800));
        assert_eq!(ports[1].protocol, "udp");
        assert_eq!(ports[1].endpoints, [("10.244.1.7".parse().unwrap(), 5353)]);
    }
}
