"""Bodies of ELBv2 load balancers: an address, a forwarder per listener, health-checked targets.

A load balancer with at least one listener gets an address of its own, allocated from
`--lb-cidr` (default 198.18.0.0/16, a range meant for tests) and added as a /32 to the host's
loopback device: the host reaches it, and so do the bodies (their default route goes through
the host). Its DNS name maps to that address in the host's /etc/hosts and in the bodies'.

Each listener port gets a TCP forwarder (TCP, TLS, HTTP, HTTPS: plain TCP passthrough, nothing
is terminated), a UDP forwarder (UDP), or both (TCP_UDP). Every connection (UDP: every flow)
goes to the next target, round-robin, among the healthy targets of the listener's forward
target groups; when none is healthy it goes to any registered target ("fail open", as an NLB
does when all targets are unhealthy). Targets: instances (their private IP, if running) or IPs,
on the registered port or the group's port. Changes in the emulator are followed every tick.
"""
import asyncio
import ipaddress
import logging

from . import hostnet
from .common import flocked
from .emulator import RUNNING
from .forward import TcpForwarder, UdpForwarder
from .health import TargetHealth

log = logging.getLogger("bodies")

KINDS = {"TCP": ("tcp",), "TLS": ("tcp",), "HTTP": ("tcp",), "HTTPS": ("tcp",),
         "UDP": ("udp",), "TCP_UDP": ("tcp", "udp")}


class TargetPool:
    """The targets behind one listener and its round-robin counter."""

    def __init__(self, health):
        self.health = health   # the shared {(tg_arn, ip, port): TargetHealth}
        self.targets = []      # [(tg_arn, ip, port)]
        self._next = 0

    def healthy(self):
        return [t for t in self.targets if (h := self.health.get(t)) and h.state == "healthy"]

    def pick(self):
        candidates = self.healthy() or self.targets
        if not candidates:
            return None
        t = candidates[self._next % len(candidates)]
        self._next += 1
        return t[1], t[2]


class LbBody:
    def __init__(self, lb, address):
        self.arn, self.name, self.dns_name, self.address = lb.arn, lb.name, lb.dns_name, address
        self.forwarders = {}   # (port, kind) -> forwarder
        self.pools = {}        # port -> TargetPool
        self.errors = {}       # (port, kind) -> message
        self.protocols = {}    # port -> listener protocol


class LoadBalancers:
    def __init__(self, owner, journal, lb_cidr, max_interval):
        self.owner, self.journal = owner, journal
        self.lb_net = ipaddress.ip_network(lb_cidr)
        self.max_interval = max_interval
        self.label = hostnet.lb_label(owner)
        self.bodies = {}   # arn -> LbBody
        self.errors = {}   # arn -> message (no body could be made)
        self.health = {}   # (tg_arn, ip, port) -> TargetHealth

    # --- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, snap):
        for arn, lb in snap.load_balancers.items():
            if not lb.listeners:
                self.errors.pop(arn, None)
                await self._remove(arn)
                continue
            body = self.bodies.get(arn) or await self._create(lb)
            if body:
                await self._sync_listeners(body, lb, snap)
        for arn in [a for a in self.bodies if a not in snap.load_balancers]:
            await self._remove(arn)
        for arn in [a for a in self.errors if a not in snap.load_balancers]:
            del self.errors[arn]
        self._sync_health(snap)

    async def _create(self, lb):
        try:
            address = await asyncio.to_thread(self._allocate, lb.arn)
        except Exception as e:
            self._error(lb.arn, f"load balancer {lb.name}: no address: {e}")
            return None
        self.errors.pop(lb.arn, None)
        body = self.bodies[lb.arn] = LbBody(lb, address)
        log.info("load balancer %s (%s) has address %s", lb.name, lb.dns_name, address)
        return body

    def _allocate(self, arn):
        with flocked("alloc"):
            used = {a for a, _ in hostnet.loopback_addresses()}
            for ip in self.lb_net.hosts():
                addr = str(ip)
                if addr not in used:
                    self.journal.add_lb_address(addr, arn)
                    hostnet.loopback_add(addr, self.label)
                    return addr
        raise RuntimeError(f"every address of {self.lb_net} is in use on lo")

    async def _sync_listeners(self, body, lb, snap):
        want = {}
        for lis in lb.listeners:
            for kind in KINDS.get(lis.protocol.upper(), ("tcp",)):
                want[(lis.port, kind)] = lis
        for key in [k for k in body.forwarders if k not in want]:
            await body.forwarders.pop(key).close()
            log.info("load balancer %s: listener %s/%s closed", lb.name, *key)
        for key in [k for k in body.errors if k not in want]:
            del body.errors[key]
        for (port, kind), lis in want.items():
            pool = body.pools.setdefault(port, TargetPool(self.health))
            pool.targets = self._targets(lis, snap)
            body.protocols[port] = lis.protocol
            if (port, kind) not in body.forwarders:
                await self._open(body, port, kind, pool)
        for port in [p for p in body.pools if p not in {k[0] for k in want}]:
            del body.pools[port]
            body.protocols.pop(port, None)

    async def _open(self, body, port, kind, pool):
        cls = TcpForwarder if kind == "tcp" else UdpForwarder
        fwd = cls(body.address, port, pool.pick, f"{body.name}:{port}/{kind}")
        try:
            await fwd.start()
        except OSError as e:
            msg = f"cannot listen on {body.address}:{port}/{kind}: {e}"
            if body.errors.get((port, kind)) != msg:
                log.error("load balancer %s: %s", body.name, msg)
            body.errors[(port, kind)] = msg
            return
        body.errors.pop((port, kind), None)
        body.forwarders[(port, kind)] = fwd
        log.info("load balancer %s: listener %s:%s/%s open", body.name, body.dns_name, port, kind)

    @staticmethod
    def _targets(lis, snap):
        targets = []
        for tg_arn in lis.target_groups:
            tg = snap.target_groups.get(tg_arn)
            if tg is None:
                continue
            for tid, tport in tg.targets:
                if tg.target_type == "ip":
                    ip = tid
                elif tg.target_type == "instance":
                    inst = snap.instances.get(tid)
                    if inst is None or inst.state not in RUNNING or not inst.private_ip:
                        continue
                    ip = inst.private_ip
                else:  # lambda, alb: nothing to forward to
                    continue
                t = (tg_arn, ip, int(tport or tg.port))
                if t not in targets:
                    targets.append(t)
        return targets

    def _sync_health(self, snap):
        needed = {t for b in self.bodies.values() for p in b.pools.values() for t in p.targets}
        for key in list(self.health):
            tg = snap.target_groups.get(key[0])
            if key not in needed or tg is None or self.health[key].hc != tg.health:
                self.health.pop(key).stop()
        for key in needed - set(self.health):
            tg_arn, ip, port = key
            self.health[key] = TargetHealth(snap.target_groups[tg_arn].health, ip, port,
                                            self.max_interval)

    async def _remove(self, arn):
        body = self.bodies.pop(arn, None)
        if body is None:
            return
        for fwd in body.forwarders.values():
            await fwd.close()
        try:
            await asyncio.to_thread(hostnet.loopback_del, body.address)
            self.journal.drop_lb_address(body.address)
        except Exception as e:
            log.error("load balancer %s: %s", body.name, e)
        log.info("load balancer %s: body removed (address %s freed)", body.name, body.address)

    def _error(self, arn, msg):
        if self.errors.get(arn) != msg:
            log.error("%s", msg)
        self.errors[arn] = msg

    async def close_all(self):
        for arn in list(self.bodies):
            await self._remove(arn)
        for h in self.health.values():
            h.stop()
        self.health.clear()

    # --- views ---------------------------------------------------------------------------------

    def hosts_entries(self):
        """[(address, [dns name])] of every load balancer with a body."""
        return [(b.address, [b.dns_name]) for b in self.bodies.values()]

    def status(self):
        result = {}
        for arn, b in self.bodies.items():
            targets, healthy = [], set()
            for pool in b.pools.values():
                for t in pool.targets:
                    h = self.health.get(t)
                    entry = {"target_group": t[0], "ip": t[1], "port": t[2],
                             "health": h.state if h else "initial", "reason": h.reason if h else ""}
                    if entry not in targets:
                        targets.append(entry)
                for t in pool.healthy():
                    healthy.add(f"{t[1]}:{t[2]}")
            result[arn] = {
                "name": b.name, "dns_name": b.dns_name, "address": b.address,
                "listeners": [{"port": p, "protocol": b.protocols.get(p), "kinds": sorted(
                    k for (pp, k) in b.forwarders if pp == p)} for p in sorted(b.pools)],
                "targets": targets, "healthy_targets": sorted(healthy),
                "last_error": "; ".join(b.errors.values()) or None,
            }
        for arn, msg in self.errors.items():
            result.setdefault(arn, {"last_error": msg})
        return result
