"""Owners: which bodies daemon made what, whether it still lives, and the sweep.

Several daemons (one per emulator) share the host; each has an owner name and touches only
what carries that name. Under RUN_DIR (/run/orkops-localcloud, or $ORKOPS_LOCALCLOUD_RUN_DIR):

- `owners/<owner>.lock`: a live daemon holds an exclusive flock on it for its whole life. The
  kernel drops the lock when the process dies, even by SIGKILL: an owner is alive exactly when
  its lock is held, and the sweep takes the lock itself before removing anything.
- `owners/<owner>.json`: the daemon's pid, endpoint, state dir, and a write-ahead journal of the
  host objects that cannot carry a label: public-IP routes and load-balancer addresses (an entry
  is written before the object is made and dropped after it is removed).
- `hosts.lock`, `alloc.lock`: serialise /etc/hosts edits and load-balancer address allocation.

Docker objects carry the labels `orkops.localcloud/owner` (and `.../owner-pid`); /etc/hosts
blocks name their owner. `sweep()` finds owners in all of these places.
"""
import contextlib
import fcntl
import json
import os
import re
import threading

from . import hostnet, hostsfile
from .common import LABEL_OWNER, RUN_DIR

OWNERS_DIR = os.path.join(RUN_DIR, "owners")
OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class OwnerBusy(Exception):
    def __init__(self, owner, pid):
        super().__init__(f"owner {owner!r} is already in use by a live bodies daemon (pid {pid}); "
                         f"pick another --owner or stop that daemon")
        self.owner, self.pid = owner, pid


def check_owner_name(owner):
    if not OWNER_RE.match(owner):
        raise ValueError(f"invalid owner {owner!r}: 1-40 characters of A-Z a-z 0-9 _ . - "
                         "(starting with a letter or digit)")


def _paths(owner):
    return os.path.join(OWNERS_DIR, owner + ".lock"), os.path.join(OWNERS_DIR, owner + ".json")


def try_lock(owner):
    """The owner's lock as an open fd if nobody holds it (the caller now does), else None."""
    os.makedirs(OWNERS_DIR, exist_ok=True)
    lock_path, _ = _paths(owner)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # the sweep may have unlinked the file between our open and our flock: retry on a new one
        try:
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def release(owner, fd):
    """Removes the owner's lock and journal files, then releases the lock."""
    for path in _paths(owner):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    os.close(fd)


def read_record(owner):
    try:
        with open(_paths(owner)[1]) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def holder_pid(owner):
    return read_record(owner).get("pid", "?")


class Journal:
    """The owner's record: who it is and the unlabelled host objects it has made."""

    def __init__(self, owner, info, routes=None):
        self.owner = owner
        self.path = _paths(owner)[1]
        self.record = {"owner": owner, **info, "routes": dict(routes or {}), "lb_addresses": {}}
        self._lock = threading.Lock()  # body operations run in several threads
        self._update(lambda r: None)

    def _update(self, change):
        with self._lock:
            change(self.record)
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.record, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)

    def add_route(self, dst, via):
        self._update(lambda r: r["routes"].__setitem__(dst, via))

    def route_via(self, via):
        """The destination journalled via `via`, or ""."""
        return next((d for d, v in list(self.record["routes"].items()) if v == via), "")

    def drop_route(self, dst):
        self._update(lambda r: r["routes"].pop(dst, None))

    def add_lb_address(self, addr, lb_arn):
        self._update(lambda r: r["lb_addresses"].__setitem__(addr, lb_arn))

    def drop_lb_address(self, addr):
        self._update(lambda r: r["lb_addresses"].pop(addr, None))


# --- discovery and sweep -----------------------------------------------------------------------

def known_owners(docker_client):
    """Every owner that has something on this host: lock/journal files, labelled Docker
    objects, /etc/hosts blocks."""
    owners = set()
    if os.path.isdir(OWNERS_DIR):
        for name in os.listdir(OWNERS_DIR):
            base, ext = os.path.splitext(name)
            if ext in (".lock", ".json"):
                owners.add(base)
    api = docker_client.api
    for c in api.containers(all=True, filters={"label": LABEL_OWNER}):
        owners.add(c["Labels"][LABEL_OWNER])
    for v in (api.volumes(filters={"label": LABEL_OWNER}).get("Volumes") or []):
        owners.add(v["Labels"][LABEL_OWNER])
    for n in api.networks(filters={"label": LABEL_OWNER}):
        owners.add(n["Labels"][LABEL_OWNER])
    owners.update(hostsfile.owners_in(hostsfile.HOSTS_FILE))
    return {o for o in owners if OWNER_RE.match(o)}


def remove_docker_objects(docker_client, owner, stop_timeout=5):
    """Removes the owner's body containers (and their public-IP routes), volumes and networks."""
    api = docker_client.api
    flt = {"label": f"{LABEL_OWNER}={owner}"}
    removed = []
    for c in api.containers(all=True, filters=flt):
        for net in (c.get("NetworkSettings") or {}).get("Networks", {}).values():
            ip = net.get("IPAddress")
            if ip:
                for dst in hostnet.host_routes_via(ip):
                    hostnet.route_delete(dst, ip)
        with contextlib.suppress(Exception):
            api.stop(c["Id"], timeout=stop_timeout)
        api.remove_container(c["Id"], force=True, v=True)
        removed.append(c["Names"][0].lstrip("/"))
    for v in (api.volumes(filters=flt).get("Volumes") or []):
        api.remove_volume(v["Name"], force=True)
        removed.append("volume " + v["Name"])
    for n in api.networks(filters=flt):
        api.remove_network(n["Id"])
        removed.append("network " + n["Name"])
    return removed


def remove_host_objects(owner, record, keep_routes=False, keep_hosts=False):
    """Removes the owner's journalled routes and loopback addresses and its /etc/hosts block
    (a daemon taking over from a dead one of its owner keeps the routes and the block)."""
    removed = []
    for dst, via in (record.get("routes") or {}).items():
        if keep_routes:
            continue
        hostnet.route_delete(dst, via)
        removed.append(f"route {dst} via {via}")
    label = hostnet.lb_label(owner)
    addrs = set(record.get("lb_addresses") or {})
    addrs.update(a for a, lbl in hostnet.loopback_addresses() if lbl == label)
    for addr in sorted(addrs):
        hostnet.loopback_del(addr)
        removed.append(f"address {addr} on lo")
    if not keep_hosts and hostsfile.remove_block(hostsfile.HOSTS_FILE, owner):
        removed.append(f"{hostsfile.HOSTS_FILE} block")
    return removed


def sweep(docker_client, only_owner=None):
    """Removes what dead owners left (all of them, or only_owner). Returns 0 if all went well."""
    owners = {only_owner} if only_owner else known_owners(docker_client)
    rc = 0
    if not owners:
        print("sweep: nothing to sweep")
    for owner in sorted(owners):
        fd = try_lock(owner)
        if fd is None:
            print(f"sweep: owner {owner} is alive (pid {holder_pid(owner)}): left alone")
            continue
        try:
            removed = remove_docker_objects(docker_client, owner)
            removed += remove_host_objects(owner, read_record(owner))
            print(f"sweep: owner {owner}: " + (", ".join(removed) if removed else "nothing left"))
        except Exception as e:  # report and go on with the other owners
            print(f"sweep: owner {owner}: error: {e}")
            rc = 1
        finally:
            release(owner, fd)
    return rc
