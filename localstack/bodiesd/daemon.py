"""The reconcile loop: every tick, read the emulator and move the bodies towards it.

A tick (about once a second) reads one snapshot of the emulator, observes the owner's
containers, then
- starts an operation (in a worker thread, at most one per instance at a time, failures
  retried with back-off up to 30 s) for each instance whose body is not what its state asks:
  running -> body running with its public IP set up; stopped -> body stopped; terminated or
  gone -> body, volume and route removed;
- keeps one AWS-endpoint forwarder per VPC network (GATEWAY:PORT -> the emulator), so that an
  SDK in a body reaches the emulator with the ~/.aws/config the body was given;
- removes the networks no body needs any more;
- reconciles the load balancers (loadbalancers.py) and the hosts blocks;
- writes the status file.
An emulator that does not answer changes nothing (the error is in the log and the status).
SIGTERM/SIGINT end the loop; `teardown()` then removes everything the daemon made.
"""
import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import docker.errors

from . import hostsfile, status
from .emulator import GONE, RUNNING, STOPPED, EmulatorError
from .forward import TcpForwarder
from .hostnet import HostNetError
from .loadbalancers import LoadBalancers
from .machines import MachineError, Machines

log = logging.getLogger("bodies")

EXPECTED = (MachineError, EmulatorError, HostNetError, docker.errors.APIError, OSError)


@dataclass
class OpError:
    message: str
    retry_at: float
    failures: int


def endpoint_address(endpoint):
    u = urlsplit(endpoint)
    host = u.hostname or "127.0.0.1"
    return ("127.0.0.1" if host == "localhost" else host), u.port or (443 if u.scheme == "https" else 80)


class Daemon:
    def __init__(self, opts, client, emulator, journal):
        self.opts, self.emu, self.journal = opts, emulator, journal
        self.emu_addr = endpoint_address(opts.endpoint)
        self.machines = Machines(client, emulator, opts.owner, opts.image, self.emu_addr[1], journal)
        self.lbs = LoadBalancers(opts.owner, journal, opts.lb_cidr, opts.health_interval_max)
        self.ops, self.op_vpcs, self.op_errors = {}, {}, {}
        self.endpoints, self.endpoint_errors = {}, {}
        self.snap = None
        self.emulator_error = None
        self.stop = asyncio.Event()
        self._hosts_written, self._hosts_errors = {}, {}
        self._pruned = False
        self.loop = None
        self._endpoint_lock = asyncio.Lock()

    # --- life ----------------------------------------------------------------------------------

    async def run(self):
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        await asyncio.to_thread(self.machines.adopt)
        log.info("watching %s (regions %s) as owner %s; status in %s", self.opts.endpoint,
                 ",".join(self.opts.regions), self.opts.owner, self.opts.status_path)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                await self.tick()
            except Exception:  # a bug: keep the loop alive, say where
                log.exception("tick failed")
            self._write_status()
            delay = max(0.05, self.opts.interval - (time.monotonic() - started))
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
        await self.teardown()

    def _on_signal(self, sig):
        if self.stop.is_set():
            log.info("%s again: teardown is already under way", signal.Signals(sig).name)
            return
        log.info("%s: removing everything and exiting", signal.Signals(sig).name)
        self.stop.set()

    # --- the tick ------------------------------------------------------------------------------

    async def tick(self):
        try:
            snap = await asyncio.to_thread(self.emu.snapshot)
        except EmulatorError as e:
            if self.emulator_error != str(e):
                log.error("emulator: %s (bodies are left as they are)", e)
            self.emulator_error = str(e)
            return
        if self.emulator_error:
            log.info("emulator answers again")
        self.emulator_error, self.snap = None, snap
        await asyncio.to_thread(self.machines.refresh, set(self.ops))
        if not self._pruned:
            await asyncio.to_thread(self.machines.prune_routes)
            self._pruned = True
        wanted_vpcs = self._reconcile_instances(snap)
        await self._remove_unused_networks(wanted_vpcs)
        await self.lbs.reconcile(snap)
        await asyncio.to_thread(self._sync_hosts, snap)

    def _reconcile_instances(self, snap):
        wanted_vpcs = set()
        m = self.machines
        for inst in snap.instances.values():
            if inst.state in RUNNING:
                wanted_vpcs.add(inst.vpc_id)
                if m.needs_run(inst):
                    self._spawn(inst.id, inst.vpc_id, "body", self._run_body, inst)
            elif inst.state in STOPPED:
                if m.needs_stop(inst.id):
                    self._spawn(inst.id, inst.vpc_id, "stopping body", m.stop_body, inst.id)
            elif inst.id in m.bodies:
                self._spawn(inst.id, inst.vpc_id, "removing body", m.remove_body, inst.id)
        for iid in [i for i in list(m.bodies) if i not in snap.instances]:
            body = m.bodies.get(iid)
            if body:
                self._spawn(iid, body.vpc_id, "removing body", m.remove_body, iid, 10,
                            "instance gone from the emulator")
        for iid in list(self.op_errors):
            inst = snap.instances.get(iid)
            if iid not in m.bodies and (inst is None or inst.state in GONE):
                del self.op_errors[iid]
        return wanted_vpcs

    def _spawn(self, iid, vpc, what, fn, *args):
        """Runs fn(*args) in a worker thread unless iid has an operation in flight or waits
        for its retry."""
        if iid in self.ops:
            return
        err = self.op_errors.get(iid)
        if err and time.monotonic() < err.retry_at:
            return

        async def op():
            try:
                await asyncio.to_thread(fn, *args)
                if self.op_errors.pop(iid, None):
                    log.info("%s %s: done after earlier errors", what, iid)
            except Exception as e:
                msg = f"{what} {iid}: {e}"
                prev = self.op_errors.get(iid)
                n = prev.failures + 1 if prev else 1
                if not isinstance(e, EXPECTED):
                    log.exception("%s", msg)
                elif prev is None or prev.message != msg:
                    log.error("%s", msg)
                self.op_errors[iid] = OpError(msg, time.monotonic() + min(30, 2 ** n), n)
            finally:
                self.ops.pop(iid, None)
                self.op_vpcs.pop(iid, None)

        self.op_vpcs[iid] = vpc
        self.ops[iid] = asyncio.create_task(op())

    def _run_body(self, inst):
        """(worker thread) network, AWS endpoint in it, then the body."""
        net = self.machines.ensure_network(inst)
        asyncio.run_coroutine_threadsafe(self._ensure_endpoint(net), self.loop).result(30)
        self.machines.run_body(inst, net)

    # --- AWS endpoint in each VPC --------------------------------------------------------------

    async def _ensure_endpoint(self, net):
        async with self._endpoint_lock:
            if net.vpc_id not in self.endpoints:
                await self._open_endpoint(net)

    async def _open_endpoint(self, net):
        fwd = TcpForwarder(net.gateway, self.emu_addr[1], lambda: self.emu_addr,
                           f"aws-endpoint:{net.vpc_id}")
        try:
            await fwd.start()
        except OSError as e:
            msg = f"cannot listen on {net.gateway}:{self.emu_addr[1]} (the AWS endpoint of VPC " \
                  f"{net.vpc_id}): {e}; SDKs in its bodies will not reach the emulator"
            if self.endpoint_errors.get(net.vpc_id) != msg:
                log.error("%s", msg)
            self.endpoint_errors[net.vpc_id] = msg
            return
        self.endpoint_errors.pop(net.vpc_id, None)
        self.endpoints[net.vpc_id] = fwd
        log.info("AWS endpoint for VPC %s: http://%s:%s -> %s", net.vpc_id, net.gateway,
                 self.emu_addr[1], self.opts.endpoint)

    async def _close_endpoint(self, vpc):
        fwd = self.endpoints.pop(vpc, None)
        if fwd:
            await fwd.close()
        self.endpoint_errors.pop(vpc, None)

    async def _remove_unused_networks(self, wanted_vpcs):
        for vpc in self.machines.unused_networks(wanted_vpcs, set(self.op_vpcs.values())):
            await self._close_endpoint(vpc)
            try:
                await asyncio.to_thread(self.machines.remove_network, vpc)
            except EXPECTED as e:
                log.error("removing the network of VPC %s: %s", vpc, e)

    # --- names ---------------------------------------------------------------------------------

    def _sync_hosts(self, snap):
        """(worker thread) the owner's block in /etc/hosts and in each running body's hosts."""
        lb_entries = self.lbs.hosts_entries()
        running = {i.id: i for i in snap.instances.values() if i.state in RUNNING}
        public = [(i.public_ip, [i.public_dns]) for i in running.values()
                  if i.public_ip and i.public_dns and i.id in self.machines.bodies]
        self._write_hosts(hostsfile.HOSTS_FILE, lb_entries + public, locked=True)
        for body in self.machines.running():
            inst = running.get(body.instance_id)
            if inst is None or not body.hosts_path or body.applied_pid != body.pid:
                continue
            peers = [(i.private_ip, [i.private_dns, i.private_dns.split(".")[0]])
                     for i in running.values() if i.id != inst.id and i.vpc_id == inst.vpc_id
                     and i.private_dns and i.id in self.machines.bodies]
            self._write_hosts(body.hosts_path, lb_entries + peers + public, locked=False,
                              key=(body.hosts_path, body.pid))

    def _write_hosts(self, path, entries, locked, key=None):
        key = key or path
        if self._hosts_written.get(key) == entries:
            return
        try:
            if locked:
                hostsfile.set_block(path, self.opts.owner, entries)
            else:
                hostsfile.set_block_unlocked(path, self.opts.owner, entries)
            self._hosts_written[key] = entries
            self._hosts_errors.pop(path, None)
        except OSError as e:
            if self._hosts_errors.get(path) != str(e):
                log.error("writing the hosts block in %s: %s", path, e)
            self._hosts_errors[path] = str(e)

    # --- status --------------------------------------------------------------------------------

    def _write_status(self):
        try:
            status.write(self.opts.status_path, self.status())
        except OSError as e:
            log.error("writing %s: %s", self.opts.status_path, e)

    def status(self):
        m = self.machines
        snap_instances = self.snap.instances if self.snap else {}
        instances = {}
        for iid in sorted(set(m.bodies) | set(self.op_errors) |
                          {i for i, x in snap_instances.items() if x.state not in GONE}):
            inst, body, err = snap_instances.get(iid), m.bodies.get(iid), self.op_errors.get(iid)
            instances[iid] = {
                "container": body.name if body else None,
                "state": (body.status if body else "none"),
                "instance_state": inst.state if inst else "gone",
                "private_ip": inst.private_ip if inst else (body.private_ip if body else None),
                "public_ip": (inst.public_ip or None) if inst else None,
                "private_dns": inst.private_dns if inst else None,
                "vpc": inst.vpc_id if inst else (body.vpc_id if body else None),
                "busy": iid in self.ops,
                "last_error": err.message if err else None,
            }
        networks = {vpc: {"name": n.name, "cidr": n.cidr, "gateway": n.gateway, "bridge": n.bridge,
                          "aws_endpoint": f"http://{n.gateway}:{self.emu_addr[1]}",
                          "last_error": self.endpoint_errors.get(vpc)}
                    for vpc, n in list(m.networks.items())}
        return {
            "owner": self.opts.owner, "pid": status.PID, "endpoint": self.opts.endpoint,
            "regions": self.opts.regions, "image": self.opts.image, "privileged": m.privileged,
            "emulator": {"ok": self.emulator_error is None and self.snap is not None,
                         "error": self.emulator_error},
            "instances": instances, "networks": networks,
            "load_balancers": self.lbs.status(),
        }

    # --- teardown ------------------------------------------------------------------------------

    async def teardown(self):
        t0 = time.monotonic()
        if self.ops:
            log.info("waiting for %d operation(s) in flight", len(self.ops))
            await asyncio.wait(list(self.ops.values()), timeout=90)
        await self.lbs.close_all()
        m = self.machines
        await asyncio.gather(*(asyncio.to_thread(self._remove_quietly, iid) for iid in list(m.bodies)))
        for vpc in list(self.endpoints):
            await self._close_endpoint(vpc)
        for vpc in list(m.networks):
            try:
                await asyncio.to_thread(m.remove_network, vpc)
            except EXPECTED as e:
                log.error("removing the network of VPC %s: %s", vpc, e)
        try:
            await asyncio.to_thread(hostsfile.remove_block, hostsfile.HOSTS_FILE, self.opts.owner)
        except OSError as e:
            log.error("removing the %s block: %s", hostsfile.HOSTS_FILE, e)
        log.info("teardown done in %.1f s", time.monotonic() - t0)

    def _remove_quietly(self, iid):
        try:
            self.machines.remove_body(iid, timeout=5, why="daemon exiting")
        except EXPECTED as e:
            log.error("removing body of %s: %s", iid, e)
