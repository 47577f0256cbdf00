"""The status file, `<state-dir>/bodies.json`, rewritten atomically after every tick.

Shape (see localstack/README.md): owner, pid, endpoint, regions, image, privileged, updated,
emulator {ok, error}, instances {id: {container, state, instance_state, private_ip, public_ip,
private_dns, vpc, busy, last_error}}, networks {vpc: {name, cidr, gateway, bridge, aws_endpoint,
last_error}}, load_balancers {arn: {name, dns_name, address, listeners, targets,
healthy_targets, last_error}}; after a clean exit: {"owner", "pid", "stopped": true}.
"""
import json
import os
import time

PID = os.getpid()


def write(path, data):
    data = {**data, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = f"{path}.{PID}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
