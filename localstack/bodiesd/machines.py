"""Bodies of EC2 instances: Docker containers, their volumes, one Docker network per VPC.

For instance i-X in VPC vpc-Y (CIDR C) the daemon makes
- network `orkops-vpc-vpc-Y`: a bridge with subnet C and gateway = C's first address (the VPC
  router: bodies in different subnets of the VPC reach each other through it);
- volume `orkops-body-i-X` at /var/lib/docker (the inner dockerd's overlay2 data, and under
  `.orkops-body/` the instance's SSH host keys, machine id and user-data markers);
- container `orkops-body-i-X` from the body image, at the instance's private IP, hostname the
  first label of the private DNS name and domain the rest (`hostname -f` is the private DNS
  name, as on Debian's AMIs), with /etc/orkops-body (authorized_keys, user-data, aws/) copied
  in before its first start;
- if the instance has a public IP: that /32 on the body's eth0 and the host route
  `PUBLIC/32 via PRIVATE` (journalled, removed when the body stops or goes).
Every object carries the labels orkops.localcloud/owner, .../owner-pid, .../instance or .../vpc.

The body runs without --privileged when the engine refuses it (this one cannot grant
CAP_SYS_RESOURCE): all capabilities but SYS_RESOURCE, no seccomp or AppArmor profile,
/dev/fuse, and a private cgroup namespace (the init mounts the cgroup hierarchy read-write;
the inner Docker's containers nest under the body's cgroup and are removed with it).

All methods are blocking (Docker API, `ip`); the daemon runs them in worker threads, at most
one operation per instance at a time. `bodies` and `networks` change in those threads: other
threads iterate over copies (list(...), atomic in CPython).
"""
import io
import ipaddress
import logging
import os
import tarfile
import threading
import time
from dataclasses import dataclass

import docker
import docker.errors
import docker.types

from . import hostnet
from .common import (LABEL_ENDPOINT, LABEL_INSTANCE, LABEL_OWNER, LABEL_OWNER_PID, LABEL_VPC)

log = logging.getLogger("bodies")

BODY_PREFIX = "orkops-body-"
NETWORK_PREFIX = "orkops-vpc-"
STOP_TIMEOUT = 30      # docker stop of a body: its init stops dockerd, which stops containers


class MachineError(Exception):
    pass


@dataclass
class Network:
    vpc_id: str
    name: str
    cidr: str
    gateway: str
    bridge: str


@dataclass
class Body:
    instance_id: str
    name: str
    container_id: str = ""
    status: str = ""          # Docker's: created, running, exited
    exit_code: int = 0
    pid: int = 0              # the body's init, as seen from the host
    hosts_path: str = ""
    private_ip: str = ""
    vpc_id: str = ""
    applied_pid: int = 0      # the pid for which the public IP was set up
    public_ip: str = ""       # the public IP set up for applied_pid ("" none)
    created_at: float = 0.0


def _gateway(cidr):
    return str(next(ipaddress.ip_network(cidr).hosts()))


def _tar(files):
    """A tar (bytes) of {path: (bytes, mode)}, for put_archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = set()
        for path in files:
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755 if d.count("/") < 2 else 0o700
            tar.addfile(info)
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Machines:
    def __init__(self, client, emulator, owner, image, endpoint_port, journal):
        self.client, self.api = client, client.api
        self.emu, self.owner, self.image = emulator, owner, image
        self.endpoint_port, self.journal = endpoint_port, journal
        self.privileged = False
        self.bodies = {}    # instance id -> Body
        self.networks = {}  # vpc id -> Network
        self._net_lock = threading.Lock()
        self._labels = {LABEL_OWNER: owner, LABEL_OWNER_PID: str(os.getpid()),
                        LABEL_ENDPOINT: emulator.endpoint}

    # --- start-up ------------------------------------------------------------------------------

    def check_image(self):
        try:
            self.api.inspect_image(self.image)
        except docker.errors.ImageNotFound:
            raise MachineError(f"body image {self.image} is not in the local Docker engine: "
                               "run localstack/build-body-image") from None

    def detect_privileged(self, mode):
        """Use --privileged if mode is "on", or "auto" and the engine grants it."""
        if mode != "auto":
            self.privileged = mode == "on"
            return self.privileged
        c = self.api.create_container(self.image, entrypoint=["/bin/true"], labels=self._labels,
                                      host_config=self.api.create_host_config(
                                          privileged=True, network_mode="none"))
        try:
            self.api.start(c["Id"])
            self.api.wait(c["Id"], timeout=60)
            self.privileged = True
            log.info("the engine grants --privileged: bodies use it")
        except docker.errors.APIError as e:
            log.info("the engine refuses --privileged (%s): bodies get all capabilities but "
                     "SYS_RESOURCE, no seccomp or AppArmor profile, /dev/fuse",
                     str(e.explanation or e).strip()[:200])
            self.privileged = False
        finally:
            self.api.remove_container(c["Id"], force=True)
        return self.privileged

    def adopt(self):
        """Takes over the owner's networks left by an earlier daemon (bodies: see refresh)."""
        for n in self.api.networks(filters={"label": f"{LABEL_OWNER}={self.owner}"}):
            vpc = n["Labels"].get(LABEL_VPC, "")
            cfg = (n.get("IPAM") or {}).get("Config") or [{}]
            if vpc and cfg[0].get("Subnet"):
                self.networks[vpc] = Network(vpc, n["Name"], cfg[0]["Subnet"],
                                             cfg[0].get("Gateway") or _gateway(cfg[0]["Subnet"]),
                                             "br-" + n["Id"][:12])

    # --- observing -----------------------------------------------------------------------------

    def refresh(self, busy=()):
        """Reads the state of the owner's body containers (one list, one inspect per running
        one), leaving alone the instances that have an operation in flight (`busy`)."""
        seen = set(busy)
        for c in self.api.containers(all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"}):
            iid = c["Labels"].get(LABEL_INSTANCE)
            if not iid or iid in busy:
                continue
            seen.add(iid)
            adopted = iid not in self.bodies
            body = self.bodies.setdefault(iid, Body(iid, c["Names"][0].lstrip("/")))
            body.container_id, body.status = c["Id"], c["State"]
            body.vpc_id = c["Labels"].get(LABEL_VPC, body.vpc_id)
            for net in (c.get("NetworkSettings") or {}).get("Networks", {}).values():
                body.private_ip = net.get("IPAddress") or body.private_ip
            if adopted:  # made by an earlier daemon of this owner: its route is in the journal
                body.public_ip = self.journal.route_via(body.private_ip)
            if body.status == "running":
                try:
                    info = self.api.inspect_container(c["Id"])
                except docker.errors.NotFound:
                    continue
                body.pid, body.hosts_path = info["State"]["Pid"], info["HostsPath"]
            else:
                body.pid = 0
                body.exit_code = c.get("ExitCode", body.exit_code)
        for iid in [i for i in list(self.bodies) if i not in seen]:
            body = self.bodies[iid]
            if body.container_id:   # it was there and is gone (removed behind our back)
                del self.bodies[iid]

    def prune_routes(self):
        """Removes journalled routes (from an earlier daemon) via no known body."""
        privates = {b.private_ip for b in list(self.bodies.values())}
        for dst, via in list(self.journal.record["routes"].items()):
            if via not in privates:
                hostnet.route_delete(dst, via)
                self.journal.drop_route(dst)
                log.info("removed route %s via %s (no body of this owner is there any more)", dst, via)

    def needs_run(self, inst):
        b = self.bodies.get(inst.id)
        return (b is None or b.status != "running" or b.applied_pid != b.pid
                or b.public_ip != (inst.public_ip or ""))

    def needs_stop(self, instance_id):
        b = self.bodies.get(instance_id)
        return b is not None and b.status == "running"

    # --- networks ------------------------------------------------------------------------------

    def ensure_network(self, inst):
        with self._net_lock:
            net = self.networks.get(inst.vpc_id)
            if net is None:
                net = self.networks[inst.vpc_id] = self._make_network(inst)
            return net

    def _make_network(self, inst):
        vpc = inst.vpc_id
        if not vpc:
            raise MachineError(f"instance {inst.id} has no VPC")
        cidr = self.emu.vpc_cidr(inst.region, vpc)
        name, gateway = NETWORK_PREFIX + vpc, _gateway(cidr)
        for n in self.api.networks(names=[name]):
            if n["Name"] == name:
                owner = (n.get("Labels") or {}).get(LABEL_OWNER)
                raise MachineError(f"Docker network {name} already exists and belongs to "
                                   f"{'owner ' + owner if owner else 'no bodies daemon'}")
        self._check_overlaps(vpc, cidr)
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=cidr,
                                                                         gateway=gateway)])
        try:
            n = self.api.create_network(name, driver="bridge", ipam=ipam, check_duplicate=True,
                                        labels={**self._labels, LABEL_VPC: vpc})
        except docker.errors.APIError as e:
            raise MachineError(f"cannot create Docker network {name} for VPC {vpc} ({cidr}): "
                               f"{e.explanation or e}") from None
        log.info("network %s: subnet %s, gateway %s (VPC %s)", name, cidr, gateway, vpc)
        return Network(vpc, name, cidr, gateway, "br-" + n["Id"][:12])

    def _check_overlaps(self, vpc, cidr):
        want = ipaddress.ip_network(cidr)
        bridges = set()
        for n in self.api.networks():
            bridges.add("br-" + n["Id"][:12])
            for cfg in ((n.get("IPAM") or {}).get("Config") or []):
                sub = cfg.get("Subnet")
                if sub and ":" not in sub and ipaddress.ip_network(sub, strict=False).overlaps(want):
                    owner = (n.get("Labels") or {}).get(LABEL_OWNER)
                    raise MachineError(
                        f"VPC {vpc} CIDR {cidr} overlaps Docker network {n['Name']} ({sub}"
                        f"{', owner ' + owner if owner else ''}): no network for its bodies "
                        "(Docker networks cannot overlap; give concurrent VPCs distinct CIDRs)")
        conflict = hostnet.host_route_conflict(cidr, bridges)
        if conflict:
            raise MachineError(f"VPC {vpc} CIDR {cidr} overlaps the host route {conflict}: "
                               "no network for its bodies (it would cut the host off)")

    def unused_networks(self, wanted_vpcs, busy_vpcs):
        used = {b.vpc_id for b in list(self.bodies.values())}
        return [v for v in list(self.networks) if v not in wanted_vpcs | used | busy_vpcs]

    def remove_network(self, vpc):
        net = self.networks.pop(vpc, None)
        if net is None:
            return
        try:
            self.api.remove_network(net.name)
        except docker.errors.NotFound:
            pass
        log.info("network %s removed", net.name)

    # --- bodies --------------------------------------------------------------------------------

    def run_body(self, inst, net):
        """Makes the instance's body run, with its public IP set up. Idempotent."""
        body = self.bodies.get(inst.id)
        if body is None or not body.container_id:
            if ipaddress.ip_address(inst.private_ip or "0.0.0.0") not in ipaddress.ip_network(net.cidr):
                raise MachineError(
                    f"private IP {inst.private_ip or '(none)'} is outside VPC {inst.vpc_id}'s CIDR "
                    f"{net.cidr}: no body (moto gives instances launched without SubnetId a random "
                    "IP; pass a SubnetId)")
            body = self._create(inst, net)
        info = self.api.inspect_container(body.container_id)
        if not info["State"]["Running"]:
            if body.status == "exited" and body.applied_pid:
                log.warning("body %s exited (code %s) while instance %s runs: starting it again",
                            body.name, info["State"].get("ExitCode"), inst.id)
            self.api.start(body.container_id)
            info = self.api.inspect_container(body.container_id)
            log.info("body %s started for %s at %s (%s)%s", body.name, inst.id, inst.private_ip,
                     inst.private_dns, f", public {inst.public_ip}" if inst.public_ip else "")
        body.status, body.pid = "running", info["State"]["Pid"]
        body.hosts_path = info["HostsPath"]
        self._set_public_ip(body, inst.public_ip or "")

    def _set_public_ip(self, body, public_ip):
        """The public IP on the body's eth0 and the host route to it (both idempotent, so that
        an adopted or restarted body keeps its route without a gap); an old one is removed."""
        old = body.public_ip
        if old and old != public_ip:
            hostnet.route_delete(old, body.private_ip)
            self.journal.drop_route(old)
            if body.applied_pid == body.pid:
                hostnet.netns_del_address(body.pid, old)
        if public_ip:
            hostnet.netns_add_address(body.pid, public_ip)
            self.journal.add_route(public_ip, body.private_ip)
            hostnet.route_replace(public_ip, body.private_ip)
        body.public_ip, body.applied_pid = public_ip, body.pid

    def _create(self, inst, net):
        name = BODY_PREFIX + inst.id
        labels = {**self._labels, LABEL_INSTANCE: inst.id, LABEL_VPC: inst.vpc_id}
        self._ensure_volume(name, labels)
        files = self._inputs(inst, net)
        short, _, domain = (inst.private_dns or "ip-" + inst.private_ip.replace(".", "-")).partition(".")
        api = self.api
        hc = api.create_host_config(
            binds={name: {"bind": "/var/lib/docker", "mode": "rw"}},
            tmpfs={"/run": "rw,exec,nosuid,nodev,mode=755"},
            cgroupns="private",
            log_config=docker.types.LogConfig(type="json-file", config={"max-size": "10m",
                                                                        "max-file": "2"}),
            **self._isolation())
        if not self.privileged:
            # `docker run --security-opt systempaths=unconfined`: /proc/sys writable (a node sets
            # its own network namespace's forwarding and bridge sysctls), as --privileged has it
            hc["MaskedPaths"], hc["ReadonlyPaths"] = [], []
        aliases = [n for n in (inst.private_dns, short) if n]  # Docker's DNS in the network
        netcfg = api.create_networking_config({net.name: api.create_endpoint_config(
            ipv4_address=inst.private_ip, aliases=aliases)})
        t0 = time.monotonic()
        try:
            c = api.create_container(self.image, name=name, hostname=short,
                                     domainname=domain or None, labels=labels, host_config=hc,
                                     networking_config=netcfg, stop_timeout=STOP_TIMEOUT)
        except docker.errors.APIError as e:
            raise MachineError(f"cannot create container {name}: {e.explanation or e}") from None
        try:
            api.put_archive(c["Id"], "/", _tar(files))
        except docker.errors.APIError as e:
            api.remove_container(c["Id"], force=True)
            raise MachineError(f"cannot copy /etc/orkops-body into {name}: {e.explanation or e}") from None
        body = self.bodies[inst.id] = Body(inst.id, name, c["Id"], "created",
                                           private_ip=inst.private_ip, vpc_id=inst.vpc_id,
                                           created_at=t0)
        return body

    def _isolation(self):
        if self.privileged:
            return {"privileged": True}
        devices = ["/dev/fuse:/dev/fuse:rwm"] if os.path.exists("/dev/fuse") else []
        return {"cap_add": ["ALL"], "cap_drop": ["SYS_RESOURCE"], "devices": devices,
                "security_opt": ["seccomp=unconfined", "apparmor=unconfined"]}

    def _ensure_volume(self, name, labels):
        try:
            v = self.api.inspect_volume(name)
            owner = (v.get("Labels") or {}).get(LABEL_OWNER)
            if owner != self.owner:
                raise MachineError(f"Docker volume {name} exists and belongs to "
                                   f"{'owner ' + owner if owner else 'no bodies daemon'}")
        except docker.errors.NotFound:
            self.api.create_volume(name, labels=labels)

    def _inputs(self, inst, net):
        """The files of /etc/orkops-body that the body's init installs."""
        key = self.emu.key_public_key(inst.region, inst.key_name)
        user_data = self.emu.user_data(inst.region, inst.id)
        endpoint = f"http://{net.gateway}:{self.endpoint_port}"
        aws_config = f"[default]\nregion = {inst.region}\nendpoint_url = {endpoint}\n"
        aws_creds = "[default]\naws_access_key_id = test\naws_secret_access_key = test\n"
        facts = (f"INSTANCE_ID={inst.id}\nREGION={inst.region}\nAVAILABILITY_ZONE={inst.az}\n"
                 f"VPC_ID={inst.vpc_id}\nSUBNET_ID={inst.subnet_id}\nPRIVATE_IP={inst.private_ip}\n"
                 f"PRIVATE_DNS_NAME={inst.private_dns}\nPUBLIC_IP={inst.public_ip}\n"
                 f"KEY_NAME={inst.key_name}\nAWS_ENDPOINT_URL={endpoint}\n")
        files = {
            "etc/orkops-body/instance.env": (facts.encode(), 0o644),
            "etc/orkops-body/user-data": (user_data, 0o600),
            "etc/orkops-body/aws/config": (aws_config.encode(), 0o600),
            "etc/orkops-body/aws/credentials": (aws_creds.encode(), 0o600),
        }
        if key:
            files["etc/orkops-body/authorized_keys"] = ((key + "\n").encode(), 0o644)
        return files

    def stop_body(self, instance_id, timeout=STOP_TIMEOUT):
        body = self.bodies.get(instance_id)
        if body is None:
            return
        self._set_public_ip_off(body)
        self.api.stop(body.container_id, timeout=timeout)
        body.status, body.pid = "exited", 0
        log.info("body %s stopped (instance %s stopped)", body.name, instance_id)

    def _set_public_ip_off(self, body):
        if body.public_ip:
            hostnet.route_delete(body.public_ip, body.private_ip)
            self.journal.drop_route(body.public_ip)
            body.public_ip = ""

    def remove_body(self, instance_id, timeout=10, why="instance terminated"):
        body = self.bodies.get(instance_id)
        if body is None:
            return
        self._set_public_ip_off(body)
        if body.container_id:
            try:
                if body.status == "running":
                    self.api.stop(body.container_id, timeout=timeout)
                self.api.remove_container(body.container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
        try:
            self.api.remove_volume(body.name, force=True)
        except docker.errors.NotFound:
            pass
        self.bodies.pop(instance_id, None)
        log.info("body %s removed with its volume (%s)", body.name, why)

    # --- views ---------------------------------------------------------------------------------

    def running(self):
        return [b for b in list(self.bodies.values()) if b.status == "running" and b.pid]
