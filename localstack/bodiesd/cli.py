"""Command line of `localstack/bodies`: run the daemon in the foreground, or --sweep.

    localstack/bodies --endpoint URL [--owner ID] [--state-dir DIR] [...]
    localstack/bodies --sweep [--owner ID]

Running: takes the owner's lock (refuses if a live daemon holds it), takes over what a dead
daemon of the same owner left (its bodies, networks and routes are adopted; its load-balancer
addresses are dropped and made again), then reconciles until SIGTERM/SIGINT, removes
everything it made and exits 0.
Exit 1: cannot start (not root, no Docker, no body image); 2: bad arguments or owner in use.
"""
import argparse
import asyncio
import logging
import os
import sys
import time

import docker
import docker.errors

from . import owners, status

DEFAULT_IMAGE = "orkops/body:bookworm"


def parse(argv):
    p = argparse.ArgumentParser(prog="localstack/bodies", description=(
        "Gives the local cloud's EC2 instances and ELBv2 load balancers real bodies "
        "(Docker containers with sshd and dockerd; TCP/UDP forwarders). See localstack/README.md."))
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
                   help="the emulator (default $AWS_ENDPOINT_URL or http://127.0.0.1:4566)")
    p.add_argument("--owner", help="name of this daemon's objects (default localcloud)")
    p.add_argument("--state-dir", help="status file and log (default /tmp/orkops-bodies-OWNER)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or
                   os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                   help="region(s) to watch, comma-separated (default $AWS_REGION or us-east-1)")
    p.add_argument("--image", default=DEFAULT_IMAGE, help=f"body image (default {DEFAULT_IMAGE})")
    p.add_argument("--lb-cidr", default="198.18.0.0/16",
                   help="load-balancer addresses, added to lo (default 198.18.0.0/16)")
    p.add_argument("--health-interval-max", type=float, default=2.0,
                   help="cap on target groups' health-check interval, seconds (default 2)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between ticks (default 1)")
    p.add_argument("--privileged", choices=("auto", "on", "off"), default="auto",
                   help="run bodies with --privileged: auto = if the engine grants it (default)")
    p.add_argument("--quiet", action="store_true", help="log to the log file only, not stderr")
    p.add_argument("--sweep", action="store_true",
                   help="remove what dead daemons (of --owner, or all) left behind, and exit")
    opts = p.parse_args(argv)
    opts.owner_given = opts.owner is not None
    opts.owner = opts.owner or "localcloud"
    try:
        owners.check_owner_name(opts.owner)
    except ValueError as e:
        p.error(str(e))
    opts.regions = [r.strip() for r in opts.region.split(",") if r.strip()]
    opts.state_dir = os.path.abspath(opts.state_dir or f"/tmp/orkops-bodies-{opts.owner}")
    opts.status_path = os.path.join(opts.state_dir, "bodies.json")
    opts.log_path = os.path.join(opts.state_dir, "bodies.log")
    return opts


def fail(msg, code=1):
    print(f"localstack/bodies: {msg}", file=sys.stderr)
    return code


def setup_logging(opts):
    fmt = logging.Formatter(f"%(asctime)s bodies[{opts.owner}] %(levelname)s %(message)s",
                            "%Y-%m-%dT%H:%M:%SZ")
    fmt.converter = time.gmtime
    logger = logging.getLogger("bodies")
    logger.setLevel(logging.INFO)
    handlers = [logging.FileHandler(opts.log_path)]
    if not opts.quiet:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


def docker_client():
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as e:
        raise RuntimeError(f"the Docker engine does not answer ({os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'}): {e}")


def main(argv=None):
    opts = parse(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        return fail("must run as root: it changes host routes, loopback addresses and /etc/hosts")
    try:
        client = docker_client()
    except RuntimeError as e:
        return fail(str(e))
    if opts.sweep:
        return owners.sweep(client, opts.owner if opts.owner_given else None)
    return run(opts, client)


def run(opts, client):
    from .daemon import Daemon
    from .emulator import Emulator
    from .machines import MachineError

    lock = owners.try_lock(opts.owner)
    if lock is None:
        return fail(str(owners.OwnerBusy(opts.owner, owners.holder_pid(opts.owner))), 2)
    os.makedirs(opts.state_dir, exist_ok=True)
    log = setup_logging(opts)
    journal = None
    try:
        # a dead daemon of this owner: its load-balancer addresses go (the forwarders are new);
        # its bodies, networks and routes are adopted, and its hosts block is rewritten
        old = owners.read_record(opts.owner)
        leftovers = owners.remove_host_objects(opts.owner, old, keep_routes=True, keep_hosts=True)
        if leftovers:
            log.info("removed what a dead daemon of owner %s left: %s", opts.owner, ", ".join(leftovers))
        journal = owners.Journal(opts.owner, {"pid": os.getpid(), "endpoint": opts.endpoint,
                                              "state_dir": opts.state_dir, "started": time.time()},
                                 routes=old.get("routes"))
        daemon = Daemon(opts, client, Emulator(opts.endpoint, opts.regions), journal)
        try:
            daemon.machines.check_image()
        except MachineError as e:
            log.error("%s", e)
            if opts.quiet:
                fail(str(e))
            return 1
        daemon.machines.detect_privileged(opts.privileged)
        asyncio.run(daemon.run())
        return 0
    finally:
        # whatever teardown missed (or all of it, after an exception)
        try:
            left = owners.remove_docker_objects(client, opts.owner)
            left += owners.remove_host_objects(opts.owner, journal.record if journal else {})
            if left:
                log.warning("removed at exit: %s", ", ".join(left))
        except Exception as e:
            log.error("final clean-up: %s", e)
        try:
            status.write(opts.status_path, {"owner": opts.owner, "pid": os.getpid(), "stopped": True})
        except OSError:
            pass
        owners.release(opts.owner, lock)
        log.info("exited")
