"""Host network changes the bodies need, made with the `ip` and `nsenter` commands.

Owns nothing by itself: callers journal what they add (see owners.Journal) before adding it.
- public IPs: `PUBLIC/32 via PRIVATE` routes on the host, and the /32 on the body's eth0;
- load-balancer addresses: /32s on the host's loopback device with a per-owner label;
- overlap checks of a VPC CIDR against the host's own routes.
"""
import hashlib
import ipaddress
import json
import subprocess

LB_LABEL_PREFIX = "lo:olc"  # "lo:" + "olc" + 9 hex = 15 chars, the kernel's limit for a label


class HostNetError(Exception):
    pass


def _run(args, check=True):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise HostNetError(f"`{' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _exists(proc):
    """Did `ip addr add` fail only because the address is there already?"""
    return "File exists" in proc.stderr or "already assigned" in proc.stderr


def _ip_json(*args):
    out = _run(["ip", "-j", *args]).stdout.strip()
    return json.loads(out) if out else []


# --- routes for public IPs ---------------------------------------------------------------------

def route_replace(dst, via):
    _run(["ip", "route", "replace", f"{dst}/32", "via", via])


def route_delete(dst, via=None):
    """Deletes the host route to dst/32 (only the one via `via` if given); absent is fine."""
    args = ["ip", "route", "del", f"{dst}/32"] + (["via", via] if via else [])
    proc = _run(args, check=False)
    if proc.returncode != 0 and "No such process" not in proc.stderr:
        raise HostNetError(f"`{' '.join(args)}` failed: {proc.stderr.strip()}")


def host_routes_via(gateway):
    """The /32 destinations the host routes via `gateway` (a body's private IP)."""
    return [r["dst"].split("/")[0] for r in _ip_json("-4", "route", "show")
            if r.get("gateway") == gateway and r.get("dst", "").count(".") == 3
            and (r["dst"].endswith("/32") or "/" not in r["dst"])]


def netns_add_address(pid, addr, dev="eth0"):
    """Adds addr/32 to dev inside the network namespace of process pid (a body's init)."""
    proc = _run(["nsenter", "-t", str(pid), "-n", "ip", "addr", "add", f"{addr}/32", "dev", dev],
                check=False)
    if proc.returncode != 0 and not _exists(proc):
        raise HostNetError(f"adding {addr}/32 to {dev} of pid {pid} failed: {proc.stderr.strip()}")


def netns_del_address(pid, addr, dev="eth0"):
    _run(["nsenter", "-t", str(pid), "-n", "ip", "addr", "del", f"{addr}/32", "dev", dev],
         check=False)


# --- load-balancer addresses on loopback -------------------------------------------------------

def lb_label(owner):
    return LB_LABEL_PREFIX + hashlib.sha1(owner.encode()).hexdigest()[:9]


def loopback_addresses():
    """[(address, label)] of the IPv4 addresses on lo."""
    result = []
    for link in _ip_json("-4", "addr", "show", "dev", "lo"):
        for a in link.get("addr_info", []):
            result.append((a["local"], a.get("label", "lo")))
    return result


def loopback_add(addr, label):
    proc = _run(["ip", "addr", "add", f"{addr}/32", "dev", "lo", "label", label], check=False)
    if proc.returncode != 0 and not _exists(proc):
        raise HostNetError(f"adding {addr}/32 to lo failed: {proc.stderr.strip()}")


def loopback_del(addr):
    proc = _run(["ip", "addr", "del", f"{addr}/32", "dev", "lo"], check=False)
    if proc.returncode != 0 and "Cannot assign" not in proc.stderr:
        raise HostNetError(f"removing {addr}/32 from lo failed: {proc.stderr.strip()}")


# --- overlap checks ----------------------------------------------------------------------------

def host_route_conflict(cidr, docker_bridges):
    """A host route (not a Docker bridge's, not a /32, not the default) that overlaps cidr, as
    'DST dev DEV', or None. A VPC network there would cut the host off from that destination."""
    net = ipaddress.ip_network(cidr)
    for r in _ip_json("-4", "route", "show"):
        dst, dev = r.get("dst"), r.get("dev", "")
        if dst in (None, "default") or dev in docker_bridges or dev.startswith("br-") or dev == "docker0":
            continue
        if "/" not in dst or dst.endswith("/32"):
            continue
        if ipaddress.ip_network(dst, strict=False).overlaps(net):
            return f"{dst} dev {dev}"
    return None
