//! Defaults and validation of the pod fields real-world manifests and Helm charts use beyond
//! the basics (`admit` calls in here): host namespaces, DNS (`dnsPolicy`, `dnsConfig`,
//! `hostAliases`), priority and scheduler names, topology spread, readiness gates, the runtime
//! class and OS, ephemeral containers, sidecar (`restartPolicy: Always`) init containers, the
//! downward API (env `fieldRef`/`resourceFieldRef`, `downwardAPI` and `projected` volumes),
//! volume mount options and the newer security-context fields. Defaults are kube-apiserver's;
//! messages are worded as its validation words them, and a field orkops cannot honour is
//! refused by path with the reason.

use std::collections::BTreeSet;

use super::admit::Errors;
use super::core::*;
use super::labels;
use super::meta::Quantity;

/// The field paths an env var's `fieldRef` may name (besides `metadata.labels['k']` and
/// `metadata.annotations['k']`).
pub const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The field paths a downward API volume file may name (besides the subscripted forms).
pub const VOLUME_FIELD_PATHS: [&str; 5] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.uid",
];

/// The resources a `resourceFieldRef` may name.
pub const RESOURCE_FIELDS: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// The sysctls the kubelet allows without `--allowed-unsafe-sysctls` (orkops nodes allow no
/// others).
pub const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The name of the scheduler orkops runs.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Where a container's termination message is read from by default.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

fn unsupported(e: &mut Errors, path: &str, v: &str, allowed: &[&str]) {
    let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    e.add(
        path,
        format!(
            "Unsupported value: {v:?}: supported values: {}",
            list.join(", ")
        ),
    );
}

fn one_of(e: &mut Errors, path: &str, v: Option<&str>, allowed: &[&str]) {
    if let Some(v) = v.filter(|v| !allowed.contains(v)) {
        unsupported(e, path, v, allowed);
    }
}

fn subdomain(e: &mut Errors, path: &str, v: &str) {
    if !labels::is_dns_subdomain(v) {
        e.add(path, format!("Invalid value: {v:?}: {SUBDOMAIN_MSG}"));
    }
}

fn ip(e: &mut Errors, path: &str, v: &str) {
    if v.parse::<std::net::IpAddr>().is_err() {
        e.add(path, format!("Invalid value: {v:?}: {IP_MSG}"));
    }
}

fn int32(e: &mut Errors, path: &str, v: i64) -> bool {
    if !(i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
        e.add(
            path,
            format!("Invalid value: {v}: must be an integer within range"),
        );
        return false;
    }
    true
}

/// A relative path without `..` elements (Kubernetes' validateLocalDescendingPath).
fn descending_path(e: &mut Errors, path: &str, p: &str) {
    if p.starts_with('/') {
        e.add(
            path,
            format!("Invalid value: {p:?}: must be a relative path"),
        );
    }
    if p.split('/').any(|part| part == "..") {
        e.add(path, format!("Invalid value: {p:?}: must not contain '..'"));
    }
}

/// Whether a container is a sidecar: an init container with `restartPolicy: Always`.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Defaults of the fields of this module in every pod spec (pods and templates), as
/// kube-apiserver's SetDefaults_PodSpec and SetDefaults_Container have them.
pub fn default_spec(s: &mut PodSpec) {
    s.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    s.scheduler_name
        .get_or_insert_with(|| DEFAULT_SCHEDULER.into());
    s.security_context.get_or_insert_with(Default::default);
    let containers = s
        .init_containers
        .iter_mut()
        .chain(s.containers.iter_mut())
        .chain(s.ephemeral_containers.iter_mut().map(|e| &mut e.container));
    for c in containers {
        c.termination_message_path
            .get_or_insert_with(|| TERMINATION_MESSAGE_PATH.into());
        c.termination_message_policy
            .get_or_insert_with(|| "File".into());
        for v in &mut c.env {
            if let Some(src) = &mut v.value_from {
                if let Some(f) = &mut src.field_ref {
                    f.api_version.get_or_insert_with(|| "v1".into());
                }
                if let Some(r) = &mut src.resource_field_ref {
                    r.divisor.get_or_insert_with(|| Quantity("0".into()));
                }
            }
        }
    }
    for v in &mut s.volumes {
        let files = v
            .downward_api
            .as_mut()
            .map(|d| {
                d.default_mode.get_or_insert(0o644);
                &mut d.items
            })
            .into_iter()
            .chain(v.projected.iter_mut().flat_map(|p| {
                p.default_mode.get_or_insert(0o644);
                p.sources
                    .iter_mut()
                    .filter_map(|s| s.downward_api.as_mut().map(|d| &mut d.items))
            }));
        for items in files {
            for f in items {
                if let Some(r) = &mut f.field_ref {
                    r.api_version.get_or_insert_with(|| "v1".into());
                }
                if let Some(r) = &mut f.resource_field_ref {
                    r.divisor.get_or_insert_with(|| Quantity("0".into()));
                }
            }
        }
        let tokens = v
            .projected
            .iter_mut()
            .flat_map(|p| p.sources.iter_mut())
            .filter_map(|s| s.service_account_token.as_mut());
        for t in tokens {
            t.expiration_seconds.get_or_insert(3600);
        }
    }
}

/// The defaults kube-apiserver gives a Pod only (not a template, SetDefaults_Pod): requests
/// from limits, enableServiceLinks, and hostPort = containerPort under hostNetwork.
pub fn default_pod(s: &mut PodSpec) {
    s.enable_service_links.get_or_insert(true);
    let host_network = s.host_network;
    for c in s.init_containers.iter_mut().chain(s.containers.iter_mut()) {
        if let Some(r) = &mut c.resources {
            for (k, v) in r.limits.clone() {
                r.requests.entry(k).or_insert(v);
            }
        }
        if host_network {
            for p in &mut c.ports {
                if p.host_port.is_none_or(|h| h == 0) {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
}

/// Validation of this module's pod spec fields; `is_pod` for a Pod (not a template).
pub fn validate_spec(s: &PodSpec, path: &str, is_pod: bool, e: &mut Errors) {
    one_of(
        e,
        &format!("{path}.dnsPolicy"),
        s.dns_policy.as_deref(),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    validate_dns(s, path, e);
    for (i, a) in s.host_aliases.iter().enumerate() {
        let ap = format!("{path}.hostAliases[{i}]");
        ip(e, &format!("{ap}.ip"), &a.ip);
        for (j, h) in a.hostnames.iter().enumerate() {
            subdomain(e, &format!("{ap}.hostnames[{j}]"), h);
        }
    }
    if s.host_network {
        for (i, c) in s.containers.iter().enumerate() {
            for (j, p) in c.ports.iter().enumerate() {
                let hp = p.host_port.unwrap_or(0);
                if (is_pod || hp != 0) && hp != p.container_port {
                    e.add(
                        format!("{path}.containers[{i}].ports[{j}].hostPort"),
                        format!("Invalid value: {hp}: must match `containerPort` when `hostNetwork` is true"),
                    );
                }
            }
        }
    }
    if s.share_process_namespace == Some(true) && s.host_pid {
        e.add(
            format!("{path}.securityContext.shareProcessNamespace"),
            "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
        );
    }
    validate_scheduling(s, path, e);
    for (i, g) in s.readiness_gates.iter().enumerate() {
        if let Err(msg) = labels::validate_label_key(&g.condition_type) {
            e.add(
                format!("{path}.readinessGates[{i}].conditionType"),
                format!("Invalid value: {:?}: {msg}", g.condition_type),
            );
        }
    }
    if let Some(r) = &s.runtime_class_name {
        subdomain(e, &format!("{path}.runtimeClassName"), r);
    }
    for (k, q) in &s.overhead {
        if let Err(msg) = q.millis() {
            e.add(format!("{path}.overhead.{k}"), msg);
        }
    }
    validate_os(s, path, e);
    if !s.ephemeral_containers.is_empty() {
        let why = if is_pod {
            "Forbidden: cannot be set on create (orkops has no ephemeralcontainers subresource, so `kubectl debug` cannot add them either)"
        } else {
            "Forbidden: ephemeral containers not allowed in pod template"
        };
        e.add(format!("{path}.ephemeralContainers"), why);
    }
    if let Some(sc) = &s.security_context {
        validate_pod_security(s, sc, &format!("{path}.securityContext"), e);
    }
    for (i, v) in s.volumes.iter().enumerate() {
        validate_volume(v, &format!("{path}.volumes[{i}]"), e);
    }
    let restart = s.restart_policy.as_deref().unwrap_or("Always");
    for (kind, list) in [
        ("initContainers", &s.init_containers),
        ("containers", &s.containers),
    ] {
        for (i, c) in list.iter().enumerate() {
            let cp = format!("{path}.{kind}[{i}]");
            validate_container(c, &cp, kind == "initContainers", restart, e);
        }
    }
}

fn validate_dns(s: &PodSpec, path: &str, e: &mut Errors) {
    let dp = format!("{path}.dnsConfig");
    if s.dns_policy.as_deref() == Some("None") {
        match &s.dns_config {
            None => {
                return e.add(
                    dp,
                    "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
                )
            }
            Some(c) if c.nameservers.is_empty() => return e.add(
                format!("{dp}.nameservers"),
                "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
            ),
            Some(_) => {}
        }
    }
    let Some(c) = &s.dns_config else { return };
    if c.nameservers.len() > 3 {
        e.add(
            format!("{dp}.nameservers"),
            format!(
                "Invalid value: {:?}: must not have more than 3 nameservers",
                c.nameservers
            ),
        );
    }
    for (i, n) in c.nameservers.iter().enumerate() {
        ip(e, &format!("{dp}.nameservers[{i}]"), n);
    }
    if c.searches.len() > 32 {
        e.add(
            format!("{dp}.searches"),
            format!(
                "Invalid value: {:?}: must not have more than 32 search paths",
                c.searches
            ),
        );
    }
    if c.searches.join(" ").len() > 2048 {
        e.add(
            format!("{dp}.searches"),
            "Invalid value: must not have more than 2048 characters (including spaces) in the search list",
        );
    }
    for (i, d) in c.searches.iter().enumerate() {
        subdomain(e, &format!("{dp}.searches[{i}]"), d.trim_end_matches('.'));
    }
    for (i, o) in c.options.iter().enumerate() {
        if o.name.is_empty() {
            e.add(
                format!("{dp}.options[{i}]"),
                "Required value: must not be empty",
            );
        }
    }
}

fn validate_scheduling(s: &PodSpec, path: &str, e: &mut Errors) {
    if let Some(n) = s.priority_class_name.as_deref().filter(|n| !n.is_empty()) {
        subdomain(e, &format!("{path}.priorityClassName"), n);
    }
    if let Some(p) = s.priority {
        int32(e, &format!("{path}.priority"), p);
    }
    one_of(
        e,
        &format!("{path}.preemptionPolicy"),
        s.preemption_policy.as_deref(),
        &["PreemptLowerPriority", "Never"],
    );
    let mut seen = BTreeSet::new();
    for (i, t) in s.topology_spread_constraints.iter().enumerate() {
        let tp = format!("{path}.topologySpreadConstraints[{i}]");
        if t.max_skew <= 0 {
            e.add(
                format!("{tp}.maxSkew"),
                format!("Invalid value: {}: must be greater than zero", t.max_skew),
            );
        } else {
            int32(e, &format!("{tp}.maxSkew"), t.max_skew);
        }
        if t.topology_key.is_empty() {
            e.add(
                format!("{tp}.topologyKey"),
                "Required value: can not be empty",
            );
        } else if let Err(msg) = labels::validate_label_key(&t.topology_key) {
            e.add(format!("{tp}.topologyKey"), msg);
        }
        one_of(
            e,
            &format!("{tp}.whenUnsatisfiable"),
            Some(t.when_unsatisfiable.as_str()),
            &["DoNotSchedule", "ScheduleAnyway"],
        );
        if !seen.insert((t.topology_key.as_str(), t.when_unsatisfiable.as_str())) {
            e.add(
                format!("{tp}.{{topologyKey, whenUnsatisfiable}}"),
                format!(
                    "Duplicate value: \"{{{}, {}}}\"",
                    t.topology_key, t.when_unsatisfiable
                ),
            );
        }
        if let Some(m) = t.min_domains {
            if m <= 0 {
                e.add(
                    format!("{tp}.minDomains"),
                    format!("Invalid value: {m}: must be greater than zero"),
                );
            }
            if t.when_unsatisfiable != "DoNotSchedule" {
                e.add(
                    format!("{tp}.minDomains"),
                    format!(
                        "Invalid value: {m}: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        t.when_unsatisfiable
                    ),
                );
            }
        }
        for (field, v) in [
            ("nodeAffinityPolicy", &t.node_affinity_policy),
            ("nodeTaintsPolicy", &t.node_taints_policy),
        ] {
            one_of(
                e,
                &format!("{tp}.{field}"),
                v.as_deref(),
                &["Honor", "Ignore"],
            );
        }
        validate_spread_selector(t, &tp, e);
    }
}

fn validate_spread_selector(t: &TopologySpreadConstraint, tp: &str, e: &mut Errors) {
    if let Some(ls) = &t.label_selector {
        if let Err(msg) = labels::Selector::from_label_selector(ls) {
            e.add(format!("{tp}.labelSelector"), msg);
        }
    }
    for (j, k) in t.match_label_keys.iter().enumerate() {
        let kp = format!("{tp}.matchLabelKeys[{j}]");
        if let Err(msg) = labels::validate_label_key(k) {
            e.add(&kp, msg);
        }
        match &t.label_selector {
            None => e.add(
                &kp,
                "Forbidden: must not be specified when labelSelector is not set",
            ),
            Some(ls)
                if ls.match_labels.contains_key(k)
                    || ls.match_expressions.iter().any(|r| &r.key == k) =>
            {
                e.add(
                    &kp,
                    format!(
                        "Invalid value: {k:?}: exists in both matchLabelKeys and labelSelector"
                    ),
                )
            }
            Some(_) => {}
        }
    }
}

fn validate_os(s: &PodSpec, path: &str, e: &mut Errors) {
    let Some(os) = &s.os else { return };
    match os.name.as_str() {
        "linux" => {
            let pod_level = s
                .security_context
                .as_ref()
                .is_some_and(|sc| sc.windows_options.is_some());
            if pod_level {
                e.add(
                    format!("{path}.securityContext.windowsOptions"),
                    "Forbidden: windows options cannot be set for a linux pod",
                );
            }
            for (kind, list) in [
                ("initContainers", &s.init_containers),
                ("containers", &s.containers),
            ] {
                for (i, c) in list.iter().enumerate() {
                    if c.security_context
                        .as_ref()
                        .is_some_and(|sc| sc.windows_options.is_some())
                    {
                        e.add(
                            format!("{path}.{kind}[{i}].securityContext.windowsOptions"),
                            "Forbidden: windows options cannot be set for a linux pod",
                        );
                    }
                }
            }
        }
        "windows" => e.add(
            format!("{path}.os.name"),
            "Unsupported value: \"windows\": orkops nodes run Linux containers only; hint: leave os unset or set it to linux",
        ),
        "" => e.add(format!("{path}.os.name"), "Required value"),
        other => unsupported(e, &format!("{path}.os.name"), other, &["linux", "windows"]),
    }
}

fn validate_pod_security(s: &PodSpec, sc: &PodSecurityContext, sp: &str, e: &mut Errors) {
    one_of(
        e,
        &format!("{sp}.fsGroupChangePolicy"),
        sc.fs_group_change_policy.as_deref(),
        &["OnRootMismatch", "Always"],
    );
    match sc.supplemental_groups_policy.as_deref() {
        None | Some("Merge") => {}
        Some("Strict") => e.add(
            format!("{sp}.supplementalGroupsPolicy"),
            "Unsupported value: \"Strict\": the Docker engine always merges the image's groups; hint: leave it unset or use Merge",
        ),
        Some(other) => unsupported(
            e,
            &format!("{sp}.supplementalGroupsPolicy"),
            other,
            &["Merge", "Strict"],
        ),
    }
    let mut names = BTreeSet::new();
    for (i, sy) in sc.sysctls.iter().enumerate() {
        let yp = format!("{sp}.sysctls[{i}]");
        let name = sy.name.replace('/', ".");
        if sy.name.is_empty() {
            e.add(format!("{yp}.name"), "Required value");
            continue;
        }
        if !names.insert(name.clone()) {
            e.add(
                format!("{yp}.name"),
                format!("Duplicate value: {:?}", sy.name),
            );
        }
        if s.host_network && name.starts_with("net.") {
            e.add(
                format!("{yp}.name"),
                format!(
                    "Invalid value: {:?}: sysctl {:?} not allowed with host net enabled",
                    sy.name, sy.name
                ),
            );
        } else if s.host_ipc
            && (name.starts_with("kernel.shm")
                || name.starts_with("kernel.msg")
                || name.starts_with("kernel.sem")
                || name.starts_with("fs.mqueue."))
        {
            e.add(
                format!("{yp}.name"),
                format!(
                    "Invalid value: {:?}: sysctl {:?} not allowed with host ipc enabled",
                    sy.name, sy.name
                ),
            );
        } else if !SAFE_SYSCTLS.contains(&name.as_str()) {
            e.add(
                format!("{yp}.name"),
                format!("Forbidden: sysctl {:?} is not in the kubelet's safe set, and orkops nodes allow no unsafe sysctls; safe: {}", sy.name, SAFE_SYSCTLS.join(", ")),
            );
        }
    }
    if let Some(p) = &sc.app_armor_profile {
        validate_app_armor(p, &format!("{sp}.appArmorProfile"), e);
    }
}

/// An AppArmor profile, as Kubernetes checks it.
pub fn validate_app_armor(p: &AppArmorProfile, path: &str, e: &mut Errors) {
    match p.type_.as_str() {
        "RuntimeDefault" | "Unconfined" if p.localhost_profile.is_some() => e.add(
            format!("{path}.localhostProfile"),
            "Invalid value: can only be set when AppArmor type is Localhost",
        ),
        "RuntimeDefault" | "Unconfined" => {}
        "Localhost" => match p.localhost_profile.as_deref() {
            None | Some("") => e.add(
                format!("{path}.localhostProfile"),
                "Required value: must be set when AppArmor type is Localhost",
            ),
            Some(n) if n.trim() != n => e.add(
                format!("{path}.localhostProfile"),
                format!("Invalid value: {n:?}: must not be padded with whitespace"),
            ),
            Some(_) => {}
        },
        "" => e.add(format!("{path}.type"), "Required value"),
        other => unsupported(
            e,
            &format!("{path}.type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        ),
    }
}

fn validate_container(c: &Container, cp: &str, init: bool, restart: &str, e: &mut Errors) {
    one_of(
        e,
        &format!("{cp}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );
    match (&c.restart_policy, init) {
        (None, _) => {}
        (Some(_), false) => e.add(
            format!("{cp}.restartPolicy"),
            "Forbidden: may not be set for non-init containers",
        ),
        (Some(p), true) => one_of(e, &format!("{cp}.restartPolicy"), Some(p), &["Always"]),
    }
    if init && !c.resize_policy.is_empty() {
        e.add(
            format!("{cp}.resizePolicy"),
            "Invalid value: must not be set for init containers",
        );
    }
    let mut resources = BTreeSet::new();
    for (i, r) in c.resize_policy.iter().enumerate() {
        let rp = format!("{cp}.resizePolicy");
        if !resources.insert(r.resource_name.as_str()) {
            e.add(
                format!("{rp}[{i}]"),
                format!("Duplicate value: {:?}", r.resource_name),
            );
        }
        match r.resource_name.as_str() {
            "" => e.add(&rp, "Required value"),
            n => one_of(e, &rp, Some(n), &["cpu", "memory"]),
        }
        match r.restart_policy.as_str() {
            "" => e.add(&rp, "Required value"),
            n => one_of(e, &rp, Some(n), &["NotRequired", "RestartContainer"]),
        }
        if restart == "Never" && r.restart_policy != "NotRequired" {
            e.add(
                &rp,
                format!(
                    "Invalid value: {:?}: must be 'NotRequired' when `restartPolicy` is 'Never'",
                    r.restart_policy
                ),
            );
        }
    }
    for (j, p) in c.ports.iter().enumerate() {
        if let Some(h) = p.host_ip.as_deref().filter(|h| !h.is_empty()) {
            ip(e, &format!("{cp}.ports[{j}].hostIP"), h);
        }
    }
    for (j, v) in c.env.iter().enumerate() {
        if let Some(src) = &v.value_from {
            let vp = format!("{cp}.env[{j}].valueFrom");
            if let Some(f) = &src.field_ref {
                validate_field_ref(f, &ENV_FIELD_PATHS, &format!("{vp}.fieldRef"), e);
            }
            if let Some(r) = &src.resource_field_ref {
                validate_resource_ref(r, false, &format!("{vp}.resourceFieldRef"), e);
            }
        }
    }
    validate_mounts(c, cp, e);
    if let Some(sc) = &c.security_context {
        let sp = format!("{cp}.securityContext");
        match sc.proc_mount.as_deref() {
            None | Some("Default") => {}
            Some("Unmasked") => e.add(
                format!("{sp}.procMount"),
                "Forbidden: `hostUsers` must be false to use `Unmasked`",
            ),
            Some(other) => unsupported(
                e,
                &format!("{sp}.procMount"),
                other,
                &["Default", "Unmasked"],
            ),
        }
        if let Some(p) = &sc.app_armor_profile {
            validate_app_armor(p, &format!("{sp}.appArmorProfile"), e);
        }
    }
}

fn validate_mounts(c: &Container, cp: &str, e: &mut Errors) {
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    let mut paths = BTreeSet::new();
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{cp}.volumeMounts[{j}]");
        if !paths.insert(m.mount_path.as_str()) {
            e.add(
                format!("{mp}.mountPath"),
                format!("Invalid value: {:?}: must be unique", m.mount_path),
            );
        }
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        if let Some(s) = sub {
            descending_path(e, &format!("{cp}.volumeMounts.subPath"), s);
        }
        if let Some(x) = m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            if sub.is_some() {
                e.add(
                    format!("{mp}.subPathExpr"),
                    format!("Invalid value: {x:?}: subPathExpr and subPath are mutually exclusive"),
                );
            }
            descending_path(e, &format!("{cp}.volumeMounts.subPathExpr"), x);
        }
        let prop = m.mount_propagation.as_deref();
        one_of(
            e,
            &format!("{cp}.volumeMounts.mountPropagation"),
            prop,
            &["Bidirectional", "HostToContainer", "None"],
        );
        if prop == Some("Bidirectional") && !privileged {
            e.add(
                format!("{cp}.volumeMounts.mountPropagation"),
                "Forbidden: Bidirectional mount propagation is available only to privileged containers",
            );
        }
        let rp = format!("{cp}.volumeMounts.recursiveReadOnly");
        match m.recursive_read_only.as_deref() {
            None | Some("Disabled") => {}
            Some("Enabled" | "IfPossible") => {
                if m.read_only != Some(true) {
                    e.add(
                        &rp,
                        "Forbidden: may only be specified when readOnly is true",
                    );
                }
                if prop.is_some_and(|p| p != "None") {
                    e.add(
                        &rp,
                        "Forbidden: may only be specified when mountPropagation is None or not specified",
                    );
                }
            }
            Some(other) => unsupported(e, &rp, other, &["Disabled", "Enabled", "IfPossible"]),
        }
    }
}

/// `path['subscript']` → (path, subscript), as Kubernetes' SplitMaybeSubscriptedPath.
pub fn split_subscript(p: &str) -> Option<(&str, &str)> {
    let rest = p.strip_suffix("']")?;
    let (path, sub) = rest.split_once("['")?;
    Some((path, sub))
}

fn validate_field_ref(f: &FieldSelectorRef, allowed: &[&str], path: &str, e: &mut Errors) {
    match f.api_version.as_deref() {
        None | Some("") => return e.add(format!("{path}.apiVersion"), "Required value"),
        Some("v1") => {}
        Some(v) => {
            return e.add(
                format!("{path}.fieldPath"),
                format!(
                    "Invalid value: {:?}: error converting fieldPath: unsupported version: {v}",
                    f.field_path
                ),
            )
        }
    }
    if f.field_path.is_empty() {
        return e.add(format!("{path}.fieldPath"), "Required value");
    }
    match split_subscript(&f.field_path) {
        Some(("metadata.labels" | "metadata.annotations", key)) => {
            if let Err(msg) = labels::validate_label_key(&key.to_lowercase()) {
                e.add(path, format!("Invalid value: {key:?}: {msg}"));
            }
        }
        Some((p, _)) => e.add(
            path,
            format!("Invalid value: {p:?}: does not support subscript"),
        ),
        None if !allowed.contains(&f.field_path.as_str()) => {
            unsupported(e, &format!("{path}.fieldPath"), &f.field_path, allowed)
        }
        None => {}
    }
}

/// The value of a divisor in thousandths of its unit, for the divisors Kubernetes allows.
pub fn divisor_millis(q: &str) -> Option<i128> {
    let (num, suffix) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: i128 = num.parse().ok()?;
    let unit: i128 = match suffix {
        "" => 1000,
        "m" => 1,
        "k" => 1_000_000,
        "M" => 1_000_000_000,
        "G" => 1_000_000_000_000,
        "T" => 1_000_000_000_000_000,
        "P" => 1_000_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000_000,
        "Ki" => 1000 << 10,
        "Mi" => 1000 << 20,
        "Gi" => 1000 << 30,
        "Ti" => 1000 << 40,
        "Pi" => 1000 << 50,
        "Ei" => 1000 << 60,
        _ => return None,
    };
    Some(n * unit)
}

fn validate_resource_ref(r: &ResourceFieldSelector, volume: bool, path: &str, e: &mut Errors) {
    if volume && r.container_name.as_deref().is_none_or(str::is_empty) {
        e.add(format!("{path}.containerName"), "Required value");
    } else if r.resource.is_empty() {
        e.add(format!("{path}.resource"), "Required value");
    } else if !RESOURCE_FIELDS.contains(&r.resource.as_str()) {
        unsupported(
            e,
            &format!("{path}.resource"),
            &r.resource,
            &RESOURCE_FIELDS,
        );
    }
    let Some(d) = r.divisor.as_ref().map(|d| d.0.trim()).filter(|d| *d != "0") else {
        return;
    };
    let value = divisor_millis(d);
    let cpu = r.resource.ends_with(".cpu");
    let ok = if cpu {
        matches!(value, Some(1 | 1000))
    } else {
        [
            "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
        ]
        .iter()
        .any(|a| divisor_millis(a) == value && value.is_some())
    };
    if !ok {
        let msg = if cpu {
            "only divisor's values 1m and 1 are supported with the cpu resource".to_string()
        } else {
            let what = if r.resource.ends_with(".memory") {
                "memory"
            } else {
                "local ephemeral storage"
            };
            format!("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the {what} resource")
        };
        e.add(
            format!("{path}.divisor"),
            format!("Invalid value: {:?}: {msg}", r.resource),
        );
    }
}

fn file_mode(e: &mut Errors, path: &str, mode: Option<i32>) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        e.add(
            path,
            format!(
                "Invalid value: {m}: must be a number between 0 and 0777 (octal), both inclusive"
            ),
        );
    }
}

fn validate_downward_file(f: &DownwardAPIVolumeFile, path: &str, e: &mut Errors) {
    if f.path.is_empty() {
        e.add(format!("{path}.path"), "Required value");
    }
    descending_path(e, &format!("{path}.path"), &f.path);
    if f.path.starts_with("..") && !f.path.starts_with("../") {
        e.add(
            format!("{path}.path"),
            format!("Invalid value: {:?}: must not start with '..'", f.path),
        );
    }
    match (&f.field_ref, &f.resource_field_ref) {
        (Some(r), other) => {
            validate_field_ref(r, &VOLUME_FIELD_PATHS, &format!("{path}.fieldRef"), e);
            if other.is_some() {
                e.add(
                    path,
                    "Invalid value: \"resource\": fieldRef and resourceFieldRef can not be specified simultaneously",
                );
            }
        }
        (None, Some(r)) => validate_resource_ref(r, true, &format!("{path}.resourceFieldRef"), e),
        (None, None) => e.add(
            path,
            "Required value: one of fieldRef and resourceFieldRef is required",
        ),
    }
    file_mode(e, &format!("{path}.mode"), f.mode);
}

fn validate_volume(v: &Volume, vp: &str, e: &mut Errors) {
    if let Some(q) = v.empty_dir.as_ref().and_then(|d| d.size_limit.as_ref()) {
        if let Err(msg) = q.millis() {
            e.add(format!("{vp}.emptyDir.sizeLimit"), msg);
        }
    }
    if let Some(d) = &v.downward_api {
        let dp = format!("{vp}.downwardAPI");
        file_mode(e, &format!("{dp}.defaultMode"), d.default_mode);
        for f in &d.items {
            validate_downward_file(f, &dp, e);
        }
    }
    let Some(p) = &v.projected else { return };
    let pp = format!("{vp}.projected");
    file_mode(e, &format!("{pp}.defaultMode"), p.default_mode);
    let mut paths = BTreeSet::new();
    let mut claim = |e: &mut Errors, path: &str, what: &str| {
        if !path.is_empty() && !paths.insert(path.to_string()) {
            e.add(
                &pp,
                format!("Invalid value: {what:?}: conflicting duplicate paths"),
            );
        }
    };
    for (i, s) in p.sources.iter().enumerate() {
        let sp = format!("{pp}.sources[{i}]");
        let set = [
            s.secret.is_some(),
            s.config_map.is_some(),
            s.downward_api.is_some(),
            s.service_account_token.is_some(),
            s.cluster_trust_bundle.is_some(),
        ];
        if set.iter().filter(|x| **x).count() > 1 {
            e.add(&sp, "Forbidden: may not specify more than 1 volume type");
        }
        for (kind, name, items) in [
            ("secret", s.secret.as_ref().map(|x| (&x.name, &x.items))),
            (
                "configMap",
                s.config_map.as_ref().map(|x| (&x.name, &x.items)),
            ),
        ]
        .into_iter()
        .filter_map(|(k, x)| x.map(|(n, i)| (k, n, i)))
        {
            if name.is_empty() {
                e.add(format!("{sp}.{kind}.name"), "Required value");
            }
            for (j, it) in items.iter().enumerate() {
                let ip = format!("{sp}.{kind}.items[{j}]");
                descending_path(e, &format!("{ip}.path"), &it.path);
                file_mode(e, &format!("{ip}.mode"), it.mode);
                claim(e, &it.path, name);
            }
        }
        if let Some(d) = &s.downward_api {
            for f in &d.items {
                validate_downward_file(f, &format!("{sp}.downwardAPI"), e);
                claim(e, &f.path, &f.path);
            }
        }
        if s.service_account_token.is_some() {
            e.add(
                format!("{sp}.serviceAccountToken"),
                "Unsupported value: orkops issues no service account tokens yet (issue 20); hint: mount a Secret holding a token instead",
            );
        }
        if s.cluster_trust_bundle.is_some() {
            e.add(
                format!("{sp}.clusterTrustBundle"),
                "Unsupported value: orkops serves no ClusterTrustBundle objects; hint: project a ConfigMap holding the bundle instead",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::api::{admit, Kind};

    fn errors(spec: serde_json::Value) -> Vec<String> {
        let v = json!({"metadata": {"name": "x"}, "spec": spec});
        admit(Kind::Pod, v)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn has(errs: &[String], want: &str) {
        assert!(errs.iter().any(|e| e == want), "{want}\nnot in {errs:#?}");
    }

    #[test]
    fn pods_get_kubernetes_defaults() {
        let v = json!({"metadata": {"name": "x"}, "spec": {"hostNetwork": true, "containers": [
            {"name": "a", "image": "busybox:1", "ports": [{"containerPort": 8080}],
             "resources": {"limits": {"cpu": "1"}},
             "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}});
        let out = admit(Kind::Pod, v).unwrap();
        let s = &out["spec"];
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["enableServiceLinks"], true);
        assert_eq!(s["securityContext"], json!({}));
        let c = &s["containers"][0];
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["hostPort"], 8080);
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        // false is left out, as Go's omitempty does
        let v = json!({"metadata": {"name": "x"}, "spec": {"hostPID": false, "containers": [
            {"name": "a", "image": "busybox:1"}]}});
        assert!(admit(Kind::Pod, v).unwrap()["spec"]
            .get("hostPID")
            .is_none());
    }

    #[test]
    fn dns_and_host_fields_are_refused_as_kubernetes_words_it() {
        let c = json!([{"name": "a", "image": "busybox:1", "ports": [{"containerPort": 80, "hostPort": 81}]}]);
        let errs = errors(json!({"dnsPolicy": "None", "containers": c}));
        has(
            &errs,
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
        );
        let errs = errors(
            json!({"dnsPolicy": "Bogus", "hostNetwork": true, "hostPID": true,
            "shareProcessNamespace": true,
            "dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "x"], "searches": ["Bad_Domain"],
                "options": [{"value": "2"}]},
            "hostAliases": [{"ip": "10.0.0.300", "hostnames": ["ok.example"]}],
            "containers": c}),
        );
        has(&errs, "spec.dnsPolicy: Unsupported value: \"Bogus\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"");
        has(&errs, "spec.dnsConfig.nameservers[3]: Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
        has(
            &errs,
            "spec.dnsConfig.options[0]: Required value: must not be empty",
        );
        has(&errs, "spec.hostAliases[0].ip: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
        has(&errs, "spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is true");
        has(&errs, "spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled");
        assert!(errs.iter().any(|e| e.starts_with("spec.dnsConfig.searches[0]: Invalid value: \"Bad_Domain\"")), "{errs:?}");
    }

    #[test]
    fn spread_constraints_sidecars_and_the_downward_api_are_checked() {
        let errs = errors(json!({
            "topologySpreadConstraints": [
                {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2},
                {"maxSkew": 1, "topologyKey": "", "whenUnsatisfiable": "Sometimes", "minDomains": 1}],
            "initContainers": [{"name": "i", "image": "busybox:1", "restartPolicy": "Never"}],
            "containers": [{"name": "a", "image": "busybox:1", "restartPolicy": "Always",
                "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}},
                        {"name": "Y", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "2"}}}],
                "volumeMounts": [{"name": "d", "mountPath": "/d", "subPath": "../x", "mountPropagation": "Bidirectional"}]}],
            "volumes": [{"name": "d", "downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels['a']x"}}]}},
                {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}));
        has(&errs, "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero");
        has(&errs, "spec.topologySpreadConstraints[1].{topologyKey, whenUnsatisfiable}: Duplicate value: \"{zone, DoNotSchedule}\"");
        has(
            &errs,
            "spec.topologySpreadConstraints[2].topologyKey: Required value: can not be empty",
        );
        has(&errs, "spec.topologySpreadConstraints[2].minDomains: Invalid value: 1: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not Sometimes");
        has(&errs, "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"");
        has(
            &errs,
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        );
        has(&errs, "spec.containers[0].env[1].valueFrom.resourceFieldRef.divisor: Invalid value: \"limits.cpu\": only divisor's values 1m and 1 are supported with the cpu resource");
        has(&errs, "spec.containers[0].volumeMounts.subPath: Invalid value: \"../x\": must not contain '..'");
        has(&errs, "spec.containers[0].volumeMounts.mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers");
        assert!(errs.iter().any(|e| e.starts_with("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\"")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e
                .starts_with("spec.volumes[0].downwardAPI.fieldRef.fieldPath: Unsupported value")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with(
                "spec.volumes[1].projected.sources[0].serviceAccountToken: Unsupported value"
            ) && e.contains("issue 20")),
            "{errs:?}"
        );
    }

    #[test]
    fn ephemeral_containers_windows_and_unsafe_sysctls_are_refused_by_path() {
        let errs = errors(json!({"os": {"name": "windows"},
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "ephemeralContainers": [{"name": "dbg", "image": "busybox:1", "targetContainerName": "a"}],
            "containers": [{"name": "a", "image": "busybox:1"}]}));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.os.name: Unsupported value: \"windows\"")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("spec.ephemeralContainers: Forbidden: cannot be set on create")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with(
                "spec.securityContext.sysctls[0].name: Forbidden: sysctl \"kernel.msgmax\""
            )),
            "{errs:?}"
        );
        assert!(errors(json!({"os": {"name": "linux"}, "priorityClassName": "system-node-critical",
            "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                "fsGroupChangePolicy": "OnRootMismatch", "seLinuxOptions": {}},
            "readinessGates": [{"conditionType": "example.com/ready"}],
            "containers": [{"name": "a", "image": "busybox:1", "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
                "securityContext": {"seLinuxOptions": {}, "appArmorProfile": {"type": "RuntimeDefault"}}}]}))
        .is_empty());
    }
}
