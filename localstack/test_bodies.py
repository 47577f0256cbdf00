"""End-to-end test of the local cloud's bodies: real moto, real Docker, real sshd.

Run: localstack/.venv/bin/python localstack/test_bodies.py   (as root; exit 0 = pass)

Starts its own moto servers on free ports and its own bodies daemons (unique owners), then:
1. an instance with user data gets a body; SSH as admin with the key pair's key works (private
   and public IP, same host key); hostname, sudo, docker, user data, ~/.aws/config + the AWS
   endpoint from inside; root login and password logins are off; a wrong key is refused;
2. a second instance in another subnet; they reach each other; an NLB with a TCP listener
   forwards to both through its DNS name from the host (and from a body); when one target's
   server stops, traffic goes to the healthy one only; deregistering follows; a UDP listener
   forwards datagrams and replies;
3. stop/start keeps the host key, does not re-run user data, starts the units enabled with the
   body's systemctl shim again, follows the new public IP; terminate removes the body;
4. a daemon SIGKILLed and restarted with its owner adopts its bodies; the LB follows;
   a second daemon with its own moto runs at the same time: a VPC with the same CIDR gets a
   clear error; a distinct one works; SIGKILL, then --sweep removes its leftovers and leaves
   the live daemon's bodies alone;
5. SIGTERM of the first daemon leaves no container, volume, network, route, address, hosts
   entry or lock file.
Prints the figures: image build, RunInstances -> SSH answers, LB created -> first answer,
request latency through the LB and direct. Cleans up whatever happens (try/finally).
"""
import ipaddress
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

from bodiesd.hostnet import lb_label  # the per-owner label of load-balancer addresses on lo

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.path.join(HERE, ".venv", "bin", "python")
BODIES = os.path.join(HERE, "bodies")
AMI = "ami-0d3e5d2e9a6f1c001"
HOSTS = "/etc/hosts"
RUN_DIR = os.environ.get("ORKOPS_LOCALCLOUD_RUN_DIR", "/run/orkops-localcloud")
FIGURES = {}


# --- helpers -----------------------------------------------------------------------------------

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_until(what, fn, timeout=120, every=0.2):
    """Polls fn() until it returns a truthy value; fails naming `what` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the condition may raise while it is not met yet
            last = f"{type(e).__name__}: {e}"
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def run(args, check=True, timeout=120, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_lines(*args):
    return [x for x in run(["docker", *args]).stdout.splitlines() if x.strip()]


def free_cidr(taken):
    """A 10.x.0.0/16 that overlaps no Docker network, no host route and nothing in `taken`."""
    used = [ipaddress.ip_network(c) for c in taken]
    for n in docker_lines("network", "ls", "-q"):
        out = run(["docker", "network", "inspect", "-f",
                   "{{range .IPAM.Config}}{{.Subnet}} {{end}}", n]).stdout.split()
        used += [ipaddress.ip_network(s, strict=False) for s in out if ":" not in s]
    for r in json.loads(run(["ip", "-j", "-4", "route"]).stdout):
        if r.get("dst") not in (None, "default"):
            used.append(ipaddress.ip_network(r["dst"], strict=False))
    for _ in range(200):
        cand = ipaddress.ip_network(f"10.{random.randint(64, 127)}.0.0/16")
        if not any(cand.overlaps(u) for u in used):
            return str(cand)
    raise RuntimeError("no free 10.x.0.0/16")


class Moto:
    all = []  # every server started, so that main's finally stops them whatever failed

    def __init__(self, tmp, name):
        Moto.all.append(self)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_AMIS_PATH=os.path.join(HERE, "amis.json"),
                   MOTO_ENABLE_AMI_VALIDATION="true", MOTO_ENABLE_KEYPAIR_VALIDATION="true")
        self.log = open(os.path.join(tmp, f"{name}.log"), "w")
        self.proc = subprocess.Popen([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_until(f"moto on {self.url}", self._answers, timeout=60)
        kw = dict(endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="test",
                  aws_secret_access_key="test")
        self.ec2, self.elb = boto3.client("ec2", **kw), boto3.client("elbv2", **kw)

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"moto exited ({self.proc.returncode}); see {self.log.name}")
        with urllib.request.urlopen(self.url + "/moto-api/config", timeout=2) as r:
            return r.status < 300

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Daemon:
    all = []  # every daemon started, so that main's finally ends them whatever failed

    def __init__(self, tmp, moto, owner):
        Daemon.all.append(self)
        self.owner, self.moto = owner, moto
        self.state = os.path.join(tmp, f"state-{owner}")
        self.out = open(os.path.join(tmp, f"bodies-{owner}.out"), "w")
        self.proc = subprocess.Popen([BODIES, "--endpoint", moto.url, "--owner", owner,
                                      "--state-dir", self.state],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        wait_until(f"status file of daemon {owner}", lambda: self.status().get("emulator", {}).get("ok"),
                   timeout=60)

    def status(self):
        if self.proc.poll() is not None and self.proc.returncode not in (0, -9):
            raise AssertionError(f"daemon {self.owner} exited ({self.proc.returncode}); see {self.out.name}")
        try:
            with open(os.path.join(self.state, "bodies.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def body(self, iid):
        return self.status().get("instances", {}).get(iid, {})

    def lb(self, arn):
        return self.status().get("load_balancers", {}).get(arn, {})

    def terminate(self, timeout=120):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        self.out.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


class Ssh:
    def __init__(self, tmp, name):
        self.key = os.path.join(tmp, name)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", self.key])
        self.known_hosts = os.path.join(tmp, name + ".known_hosts")
        open(self.known_hosts, "w").close()

    def public_key(self):
        with open(self.key + ".pub") as f:
            return f.read()

    def __call__(self, host, cmd, check=True, user="admin", strict="accept-new", timeout=120, input=None):
        args = ["ssh", "-i", self.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={strict}", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"{user}@{host}", cmd]
        return run(args, check=check, timeout=timeout, input=input)

    def host_key(self, host):
        out = run(["ssh-keygen", "-F", host, "-f", self.known_hosts], check=False).stdout
        return sorted(line.split(None, 1)[1] for line in out.splitlines() if line and not line.startswith("#"))


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


def owner_leftovers(owner, public_ips=()):
    """Everything of owner's that is still on the host (empty list = nothing)."""
    left = []
    flt = f"label=orkops.localcloud/owner={owner}"
    left += [f"container {x}" for x in docker_lines("ps", "-aq", "--filter", flt)]
    left += [f"volume {x}" for x in docker_lines("volume", "ls", "-q", "--filter", flt)]
    left += [f"network {x}" for x in docker_lines("network", "ls", "-q", "--filter", flt)]
    routes = run(["ip", "-4", "route"]).stdout
    left += [f"route {ip}" for ip in public_ips if ip and ip + " via" in routes]
    label = lb_label(owner)
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show", "dev", "lo"]).stdout):
        left += [f"lo address {a['local']}" for a in link.get("addr_info", []) if a.get("label") == label]
    with open(HOSTS) as f:
        if f"# BEGIN orkops-localcloud {owner}" in f.read():
            left.append("hosts block")
    for ext in (".lock", ".json"):
        if os.path.exists(os.path.join(RUN_DIR, "owners", owner + ext)):
            left.append(f"owner file {owner}{ext}")
    return left


# --- the test ----------------------------------------------------------------------------------

USER_DATA = """#!/bin/bash
set -e
echo "user data ran as $(id -un) on $(hostname)" > /var/tmp/user-data-ran
docker info --format '{{.Driver}}' >> /var/tmp/user-data-ran
"""


def make_vpc(moto, cidr, public=True):
    ec2 = moto.ec2
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    net = ipaddress.ip_network(cidr)
    subnets = list(net.subnets(new_prefix=24))
    sa = ec2.create_subnet(VpcId=vpc, CidrBlock=str(subnets[1]), AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    sb = ec2.create_subnet(VpcId=vpc, CidrBlock=str(subnets[2]), AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    if public:
        ec2.modify_subnet_attribute(SubnetId=sa, MapPublicIpOnLaunch={"Value": True})
    return vpc, sa, sb


def run_instance(moto, subnet, key_name, user_data=""):
    r = moto.ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.medium",
                               KeyName=key_name, SubnetId=subnet, UserData=user_data)
    return r["Instances"][0]


def wait_ssh(ssh, host, timeout=180):
    return wait_until(f"SSH as admin on {host}",
                      lambda: ssh(host, "true", check=False, timeout=30).returncode == 0,
                      timeout=timeout, every=0.1)


def check_first_instance(d, moto, ssh, inst, t_run):
    iid, ip, pub = inst["InstanceId"], inst["PrivateIpAddress"], inst.get("PublicIpAddress")
    assert pub, "the instance in the MapPublicIpOnLaunch subnet has no public IP"
    wait_until(f"body of {iid} running", lambda: d.body(iid).get("state") == "running", timeout=120)
    wait_ssh(ssh, ip)
    FIGURES["RunInstances -> SSH answers (first body)"] = f"{time.monotonic() - t_run:.1f} s"
    log(f"{iid}: SSH answers {FIGURES['RunInstances -> SSH answers (first body)']} after RunInstances")

    out = ssh(ip, "hostname; hostname -f").stdout.split()
    assert out == [inst["PrivateDnsName"].split(".")[0], inst["PrivateDnsName"]], out
    assert ssh(ip, "sudo -n id -u").stdout.strip() == "0"
    assert ssh(ip, "sudo -n docker info --format '{{.Driver}}'").stdout.strip() == "overlay2"
    ud = wait_until("user data to finish",
                    lambda: ssh(ip, "sudo cat /var/tmp/user-data-ran", check=False).stdout, timeout=90)
    assert "user data ran as root" in ud and "overlay2" in ud, ud
    assert "exited with status 0" in ssh(ip, "sudo cat /var/log/orkops-user-data.log").stdout

    # AWS from inside, the way an SDK with default configuration finds it
    conf = ssh(ip, "sudo cat /root/.aws/config /root/.aws/credentials").stdout
    endpoint = [line.split("=", 1)[1].strip() for line in conf.splitlines() if line.startswith("endpoint_url")][0]
    assert "region = us-east-1" in conf and "aws_access_key_id = test" in conf, conf
    xml = ssh(ip, "curl -sS -m 10 -X POST -d 'Action=DescribeInstances&Version=2016-11-15' "
                  "-H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, "
                  f"SignedHeaders=host, Signature=0' {endpoint}/").stdout
    assert f"<instanceId>{iid}</instanceId>" in xml, xml[:300]

    # sshd: key logins for admin only
    cfg = ssh(ip, "sudo sshd -T").stdout
    assert "permitrootlogin no" in cfg and "passwordauthentication no" in cfg
    assert ssh(ip, "true", check=False, user="root").returncode != 0, "root could log in"

    # the public IP reaches the same machine (same host key)
    wait_ssh(ssh, pub, timeout=60)
    assert ssh(pub, "hostname -f").stdout.strip() == inst["PrivateDnsName"]
    assert ssh.host_key(pub) == ssh.host_key(ip), "different host keys on the public and private IP"
    return endpoint


def check_wrong_key(tmp, ip):
    other = Ssh(tmp, "wrong_key")
    p = other(ip, "true", check=False)
    assert p.returncode == 255 and "Permission denied" in p.stderr, (p.returncode, p.stderr)


def start_httpd(ssh, ip, iid, port=8080):
    ssh(ip, f"sudo mkdir -p /srv/www && echo {iid} | sudo tee /srv/www/index.html >/dev/null "
            f"&& sudo busybox httpd -p {port} -h /srv/www")


def check_load_balancer(d, moto, ssh, inst1, inst2, subnets):
    elb = moto.elb
    ip1, ip2 = inst1["PrivateIpAddress"], inst2["PrivateIpAddress"]
    t0 = time.monotonic()
    lb = elb.create_load_balancer(Name="bodies-test", Type="network", Subnets=subnets)["LoadBalancers"][0]
    tg = elb.create_target_group(Name="bodies-test", Protocol="TCP", Port=8080, VpcId=inst1["VpcId"],
                                 TargetType="instance", HealthCheckProtocol="TCP",
                                 HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=5, HealthyThresholdCount=2,
                                 UnhealthyThresholdCount=2)["TargetGroups"][0]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=80,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    elb.register_targets(TargetGroupArn=tg["TargetGroupArn"],
                         Targets=[{"Id": inst1["InstanceId"]}, {"Id": inst2["InstanceId"]}])
    arn, dns = lb["LoadBalancerArn"], lb["DNSName"]
    url = f"http://{dns}/"
    st = wait_until("the LB's body", lambda: d.lb(arn).get("address") and d.lb(arn), timeout=60)
    assert socket.gethostbyname(dns) == st["address"], (dns, st["address"])
    first = wait_until(f"an answer through {url}", lambda: http_get(url), timeout=60, every=0.05)
    FIGURES["CreateLoadBalancer -> first answer through its DNS name"] = f"{time.monotonic() - t0:.2f} s"
    assert first in (inst1["InstanceId"], inst2["InstanceId"]), first

    wait_until("both targets healthy",
               lambda: d.lb(arn).get("healthy_targets") == sorted([f"{ip1}:8080", f"{ip2}:8080"]), timeout=60)
    answers = {http_get(url) for _ in range(10)}
    assert answers == {inst1["InstanceId"], inst2["InstanceId"]}, answers
    measure_latency(url, f"http://{ip1}:8080/")

    # reachable from a body too, by name
    from_body = ssh(ip2, f"curl -sS -m 5 {url}").stdout.strip()
    assert from_body in answers, from_body

    # one target's server stops: only the healthy one gets traffic
    ssh(ip2, "sudo pkill -f 'busybox httpd'")
    wait_until("the stopped target marked unhealthy",
               lambda: d.lb(arn).get("healthy_targets") == [f"{ip1}:8080"], timeout=60)
    answers = [http_get(url) for _ in range(10)]
    assert set(answers) == {inst1["InstanceId"]}, answers

    # deregistering follows
    elb.deregister_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": inst2["InstanceId"]}])
    wait_until("the deregistered target gone from the LB",
               lambda: [t["ip"] for t in d.lb(arn).get("targets", [])] == [ip1], timeout=30)
    return lb, tg


class UdpEcho:
    """A UDP echo server (and a TCP listener for the health check) on addr:port of the host."""

    def __init__(self, addr):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((addr, self.port))
        self.tcp.listen(16)
        import threading
        threading.Thread(target=self._serve_udp, daemon=True).start()
        threading.Thread(target=self._serve_tcp, daemon=True).start()

    def _serve_udp(self):
        while True:
            try:
                data, peer = self.udp.recvfrom(2048)
                self.udp.sendto(b"echo:" + data, peer)
            except OSError:
                return

    def _serve_tcp(self):
        while True:
            try:
                self.tcp.accept()[0].close()
            except OSError:
                return

    def close(self):
        self.udp.close()
        self.tcp.close()


def check_udp_listener(d, moto, lb, vpc, gateway):
    """A UDP listener forwards datagrams (and the replies) to an IP target: the VPC gateway,
    i.e. the host's side of the VPC network, where this test serves a UDP echo."""
    echo = UdpEcho(gateway)
    try:
        tg = moto.elb.create_target_group(Name="bodies-udp", Protocol="UDP", Port=echo.port, VpcId=vpc,
                                          TargetType="ip", HealthCheckProtocol="TCP")["TargetGroups"][0]
        moto.elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": gateway}])
        moto.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="UDP", Port=5353,
                                 DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        addr = socket.gethostbyname(lb["DNSName"])

        def roundtrip():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(1)
                c.sendto(b"ping", (addr, 5353))
                return c.recvfrom(2048)[0]
        assert wait_until("a UDP answer through the LB", roundtrip, timeout=30) == b"echo:ping"
    finally:
        echo.close()


def measure_latency(lb_url, direct_url, n=50):
    def sample(url):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            http_get(url)
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times), sorted(times)[int(n * 0.99) - 1]
    lb50, lb99 = sample(lb_url)
    d50, d99 = sample(direct_url)
    FIGURES["HTTP GET through the LB, p50/p99"] = f"{lb50:.2f} / {lb99:.2f} ms"
    FIGURES["HTTP GET direct to the target, p50/p99"] = f"{d50:.2f} / {d99:.2f} ms"


UNIT = """[Unit]
Description=a unit the bootstrap would write
[Service]
ExecStart=/bin/busybox httpd -f -p 8090 -h /etc
Restart=always
[Install]
WantedBy=multi-user.target
"""


def check_stop_start(d, moto, ssh, inst):
    iid, ip = inst["InstanceId"], inst["PrivateIpAddress"]
    before = ssh.host_key(ip)
    # the systemctl shim: an enabled unit runs, and runs again after a restart of the instance
    ssh(ip, "sudo tee /etc/systemd/system/orkops-test.service >/dev/null && sudo systemctl daemon-reload "
            "&& sudo systemctl enable --now orkops-test", input=UNIT)
    assert ssh(ip, "systemctl is-active orkops-test").stdout.strip() == "active"
    moto.ec2.stop_instances(InstanceIds=[iid])
    wait_until(f"body of {iid} stopped", lambda: d.body(iid).get("state") == "exited", timeout=90)
    assert ssh(ip, "true", check=False, timeout=30).returncode != 0
    moto.ec2.start_instances(InstanceIds=[iid])
    wait_until(f"body of {iid} running again", lambda: d.body(iid).get("state") == "running", timeout=90)
    wait_ssh(ssh, ip)
    ssh(ip, "true", strict="yes")   # the same host key, or ssh refuses
    assert ssh.host_key(ip) == before
    assert "already ran" in ssh(ip, "sudo cat /var/log/orkops-user-data.log").stdout
    wait_until("the enabled unit running after the restart",
               lambda: ssh(ip, "systemctl is-active orkops-test", check=False).stdout.strip() == "active",
               timeout=60)
    # as on AWS, the auto-assigned public IP changes with a stop/start: the body follows
    old_pub = inst["PublicIpAddress"]
    inst.update(moto.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0])
    new_pub = inst["PublicIpAddress"]
    assert new_pub and new_pub != old_pub, (old_pub, new_pub)
    wait_ssh(ssh, new_pub, timeout=60)
    assert f"{old_pub} via" not in run(["ip", "-4", "route"]).stdout, f"the old public IP {old_pub} is still routed"
    return new_pub


def check_terminate(d, moto, iid):
    moto.ec2.terminate_instances(InstanceIds=[iid])
    name = f"orkops-body-{iid}"
    wait_until(f"body of {iid} removed",
               lambda: not docker_lines("ps", "-aq", "--filter", f"name=^{name}$")
               and not docker_lines("volume", "ls", "-q", "--filter", f"name=^{name}$"), timeout=90)


def check_takeover(tmp, d, moto, ssh, inst):
    """A daemon SIGKILLed and started again with the same owner adopts its bodies (the same
    container, the public IP keeps working) instead of making new ones."""
    flt = f"label=orkops.localcloud/owner={d.owner}"
    before = docker_lines("ps", "-q", "--filter", flt)
    d.kill()
    d = Daemon(tmp, moto, d.owner)
    wait_until("the adopted body settled", lambda: d.body(inst["InstanceId"]).get("state") == "running"
               and not d.body(inst["InstanceId"]).get("busy"), timeout=60)
    ssh(inst["PublicIpAddress"], "true", strict="yes")
    assert docker_lines("ps", "-q", "--filter", flt) == before, "the body was made again, not adopted"
    return d


def check_second_daemon(tmp, d1, cidr1, ssh):
    """A second moto + daemon at the same time; then SIGKILL it and sweep."""
    moto2 = Moto(tmp, "moto2")
    owner2 = d1.owner + "-b"
    d2 = Daemon(tmp, moto2, owner2)
    try:
        moto2.ec2.import_key_pair(KeyName="k", PublicKeyMaterial=ssh.public_key())
        # the same CIDR as the live daemon's VPC: a clear error, nothing else
        _, same_a, _ = make_vpc(moto2, cidr1)
        clash = run_instance(moto2, same_a, "k")["InstanceId"]
        err = wait_until("the overlap error in the status",
                         lambda: d2.body(clash).get("last_error"), timeout=60)
        assert "overlaps Docker network" in err and cidr1 in err, err
        log(f"same CIDR in a second daemon: {err}")
        moto2.ec2.terminate_instances(InstanceIds=[clash])
        # a distinct CIDR works alongside
        cidr2 = free_cidr([cidr1])
        vpc2, a2, _ = make_vpc(moto2, cidr2)
        inst = run_instance(moto2, a2, "k")
        wait_ssh(ssh, inst["PrivateIpAddress"])
        lb = moto2.elb.create_load_balancer(Name="b", Type="network", Subnets=[a2])["LoadBalancers"][0]
        tg = moto2.elb.create_target_group(Name="b", Protocol="TCP", Port=22, VpcId=vpc2)["TargetGroups"][0]
        moto2.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=2222,
                                  DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        wait_until("the second daemon's LB body", lambda: d2.lb(lb["LoadBalancerArn"]).get("address"), timeout=60)
        # SIGKILL: everything stays behind ...
        d2.kill()
        left = owner_leftovers(owner2, [inst.get("PublicIpAddress")])
        assert any(x.startswith("container") for x in left) and "hosts block" in left, left
        # ... until the sweep, which leaves the live daemon alone
        live_before = owner_leftovers(d1.owner)
        out = run([BODIES, "--sweep"]).stdout
        log(" | ".join(out.splitlines()))
        assert f"owner {d1.owner} is alive" in out, out
        left = owner_leftovers(owner2, [inst.get("PublicIpAddress")])
        assert left == [], f"--sweep left {left}"
        assert owner_leftovers(d1.owner) == live_before, "the sweep touched the live daemon"
    finally:
        d2.kill()
        run([BODIES, "--sweep", "--owner", owner2], check=False)
        moto2.stop()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks on SIGTERM too
    if os.geteuid() != 0:
        sys.exit("test_bodies.py must run as root (the bodies daemon changes routes and /etc/hosts)")
    t = time.monotonic()
    build = run([os.path.join(HERE, "build-body-image")], timeout=900)
    FIGURES["build-body-image"] = f"{time.monotonic() - t:.1f} s ({build.stdout.strip().splitlines()[-1]})"
    tmp = tempfile.mkdtemp(prefix="orkops-test-bodies-")
    owner = "test-" + os.urandom(4).hex()
    public_ips = []
    try:
        moto = Moto(tmp, "moto")
        d = Daemon(tmp, moto, owner)
        log(f"moto on {moto.url}, daemon owner {owner}, files in {tmp}")
        ssh = Ssh(tmp, "admin_key")
        moto.ec2.import_key_pair(KeyName="test-key", PublicKeyMaterial=ssh.public_key())
        cidr = free_cidr([])
        vpc, sa, sb = make_vpc(moto, cidr)
        log(f"VPC {vpc} {cidr}")

        t_run = time.monotonic()
        inst1 = run_instance(moto, sa, "test-key", USER_DATA)
        public_ips.append(inst1.get("PublicIpAddress"))
        check_first_instance(d, moto, ssh, inst1, t_run)
        check_wrong_key(tmp, inst1["PrivateIpAddress"])
        log("first instance: SSH, sudo, docker, user data, AWS endpoint, public IP, wrong key: ok")

        inst2 = run_instance(moto, sb, "test-key")
        wait_ssh(ssh, inst2["PrivateIpAddress"])
        banner = ssh(inst1["PrivateIpAddress"], "timeout 5 bash -c 'exec 3<>/dev/tcp/"
                     f"{inst2['PrivateIpAddress']}/22 && head -c 7 <&3'").stdout
        assert banner == "SSH-2.0", f"instance 1 does not reach instance 2 in the other subnet: {banner!r}"
        for inst in (inst1, inst2):
            start_httpd(ssh, inst["PrivateIpAddress"], inst["InstanceId"])
        lb, tg = check_load_balancer(d, moto, ssh, inst1, inst2, [sa, sb])
        log("load balancer: DNS name, round robin, health, deregistration: ok")
        check_udp_listener(d, moto, lb, vpc, str(next(ipaddress.ip_network(cidr).hosts())))
        log("load balancer: UDP listener: ok")

        public_ips.append(check_stop_start(d, moto, ssh, inst1))
        log("stop/start: same host key, user data not re-run, enabled unit back: ok")
        check_terminate(d, moto, inst2["InstanceId"])
        log("terminate: body and volume removed: ok")

        d = check_takeover(tmp, d, moto, ssh, inst1)
        log("SIGKILL + restart with the same owner: the body is adopted: ok")

        moto.elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        wait_until("the LB body gone", lambda: not d.lb(lb["LoadBalancerArn"]), timeout=30)
        with open(HOSTS) as f:
            assert lb["DNSName"] not in f.read(), "the deleted LB's name is still in /etc/hosts"

        check_second_daemon(tmp, d, cidr, ssh)
        log("second daemon: overlap error, SIGKILL + --sweep, live daemon untouched: ok")

        assert d.terminate() == 0, f"daemon exited {d.proc.returncode} on SIGTERM"
        left = owner_leftovers(owner, public_ips)
        assert left == [], f"SIGTERM left {left}"
        log("SIGTERM: nothing left")
    finally:
        for daemon in Daemon.all:
            try:
                daemon.terminate(timeout=120)
            except Exception:
                daemon.kill()
        for o in sorted({daemon.owner for daemon in Daemon.all}):
            run([BODIES, "--sweep", "--owner", o], check=False)
        for m in Moto.all:
            m.stop()
        run(["rm", "-rf", tmp], check=False)
    print("\nfigures:")
    for k, v in FIGURES.items():
        print(f"  {k}: {v}")
    print("test_bodies.py: PASS")


if __name__ == "__main__":
    main()
