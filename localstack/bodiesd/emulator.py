"""What the emulator says: one read of EC2 instances and ELBv2 load balancers per tick.

`Emulator.snapshot()` returns plain dataclasses; any API error raises EmulatorError and the
caller keeps what it has (an unreachable emulator must not tear bodies down). Per-instance
details that never change (key pair public key, user data, VPC CIDR) are read once, when a
body is made. Findings against moto 5.2.5:
- DescribeKeyPairs(IncludePublicKey=True) returns the OpenSSH public key of imported and of
  created key pairs (`PublicKey`); this is what goes into authorized_keys.
- DescribeInstanceAttribute(userData) returns the user data base64-encoded (as AWS does).
- Registered targets are "healthy" at once: health is judged by health.py, not read here.
"""
import base64
from dataclasses import dataclass, field

import boto3
import botocore.config
import botocore.exceptions

RUNNING = ("pending", "running")
STOPPED = ("stopping", "stopped")
GONE = ("shutting-down", "terminated")


class EmulatorError(Exception):
    pass


@dataclass
class Instance:
    id: str
    region: str
    state: str
    private_ip: str
    private_dns: str
    public_ip: str
    public_dns: str
    vpc_id: str
    subnet_id: str
    az: str
    key_name: str


@dataclass
class HealthCheck:
    protocol: str      # TCP, HTTP, HTTPS
    port: str          # "traffic-port" or a number
    path: str
    interval: int
    timeout: int
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str       # "200", "200,202", "200-399"
    enabled: bool


@dataclass
class TargetGroup:
    arn: str
    name: str
    protocol: str
    port: int
    target_type: str
    health: HealthCheck
    targets: list = field(default_factory=list)  # [(id, port)]


@dataclass
class Listener:
    arn: str
    port: int
    protocol: str
    target_groups: list  # ARNs of the default action's forward target groups


@dataclass
class LoadBalancer:
    arn: str
    name: str
    dns_name: str
    type: str
    vpc_id: str
    region: str
    listeners: list


@dataclass
class Snapshot:
    instances: dict   # id -> Instance
    load_balancers: dict  # arn -> LoadBalancer
    target_groups: dict   # arn -> TargetGroup


class Emulator:
    def __init__(self, endpoint, regions):
        self.endpoint = endpoint
        self.regions = regions
        cfg = botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=20)
        self._ec2, self._elb = {}, {}
        for r in regions:
            kw = dict(endpoint_url=endpoint, region_name=r, aws_access_key_id="test",
                      aws_secret_access_key="test", config=cfg)
            self._ec2[r] = boto3.client("ec2", **kw)
            self._elb[r] = boto3.client("elbv2", **kw)
        self._vpc_cidrs = {}

    def _call(self, what, fn, **kw):
        try:
            return fn(**kw)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise EmulatorError(f"{what} at {self.endpoint}: {e}") from e

    def _pages(self, client, op, key, what, **kw):
        out = []
        for page in self._call(what, lambda **k: list(client.get_paginator(op).paginate(**k)), **kw):
            out += page.get(key, [])
        return out

    # --- the per-tick read ---------------------------------------------------------------------

    def snapshot(self):
        instances, lbs, tgs = {}, {}, {}
        for r in self.regions:
            for i in self._instances(r):
                instances[i.id] = i
            region_tgs = {tg.arn: tg for tg in self._target_groups(r)}
            for lb in self._load_balancers(r):
                lbs[lb.arn] = lb
                for lis in lb.listeners:
                    for arn in lis.target_groups:
                        tg = region_tgs.get(arn)
                        if tg is not None and arn not in tgs:
                            tg.targets = self._targets(r, arn)
                            tgs[arn] = tg
        return Snapshot(instances, lbs, tgs)

    def _instances(self, region):
        result = []
        for res in self._pages(self._ec2[region], "describe_instances", "Reservations",
                               "DescribeInstances"):
            for i in res.get("Instances", []):
                result.append(Instance(
                    id=i["InstanceId"], region=region, state=i["State"]["Name"],
                    private_ip=i.get("PrivateIpAddress", ""), private_dns=i.get("PrivateDnsName", ""),
                    public_ip=i.get("PublicIpAddress", ""), public_dns=i.get("PublicDnsName", ""),
                    vpc_id=i.get("VpcId", ""), subnet_id=i.get("SubnetId", ""),
                    az=i.get("Placement", {}).get("AvailabilityZone", ""),
                    key_name=i.get("KeyName", "")))
        return result

    def _load_balancers(self, region):
        elb = self._elb[region]
        result = []
        for lb in self._pages(elb, "describe_load_balancers", "LoadBalancers", "DescribeLoadBalancers"):
            listeners = []
            for lis in self._pages(elb, "describe_listeners", "Listeners", "DescribeListeners",
                                   LoadBalancerArn=lb["LoadBalancerArn"]):
                listeners.append(Listener(lis["ListenerArn"], int(lis["Port"]), lis["Protocol"],
                                          _forward_target_groups(lis.get("DefaultActions", []))))
            result.append(LoadBalancer(lb["LoadBalancerArn"], lb["LoadBalancerName"], lb["DNSName"],
                                       lb.get("Type", "application"), lb.get("VpcId", ""), region,
                                       listeners))
        return result

    def _target_groups(self, region):
        result = []
        for tg in self._pages(self._elb[region], "describe_target_groups", "TargetGroups",
                              "DescribeTargetGroups"):
            hc_proto = tg.get("HealthCheckProtocol") or "TCP"
            interval = int(tg.get("HealthCheckIntervalSeconds") or 30)
            hc = HealthCheck(
                protocol=hc_proto, port=str(tg.get("HealthCheckPort") or "traffic-port"),
                path=tg.get("HealthCheckPath") or "/", interval=interval,
                timeout=int(tg.get("HealthCheckTimeoutSeconds") or 10),
                healthy_threshold=int(tg.get("HealthyThresholdCount") or 5),
                unhealthy_threshold=int(tg.get("UnhealthyThresholdCount") or 2),
                matcher=(tg.get("Matcher") or {}).get("HttpCode") or "200-399",
                enabled=tg.get("HealthCheckEnabled", True))
            result.append(TargetGroup(tg["TargetGroupArn"], tg["TargetGroupName"],
                                      tg.get("Protocol") or "TCP", int(tg.get("Port") or 0),
                                      tg.get("TargetType") or "instance", hc))
        return result

    def _targets(self, region, tg_arn):
        descs = self._call("DescribeTargetHealth", self._elb[region].describe_target_health,
                           TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
        return [(d["Target"]["Id"], d["Target"].get("Port")) for d in descs
                if (d.get("TargetHealth") or {}).get("State") != "draining"]

    # --- read once per body --------------------------------------------------------------------

    def vpc_cidr(self, region, vpc_id):
        if vpc_id not in self._vpc_cidrs:
            vpcs = self._call(f"DescribeVpcs {vpc_id}", self._ec2[region].describe_vpcs,
                              VpcIds=[vpc_id])["Vpcs"]
            self._vpc_cidrs[vpc_id] = vpcs[0]["CidrBlock"]
        return self._vpc_cidrs[vpc_id]

    def key_public_key(self, region, key_name):
        """The OpenSSH public key of a key pair, or "" if the instance has none."""
        if not key_name:
            return ""
        kps = self._call(f"DescribeKeyPairs {key_name}", self._ec2[region].describe_key_pairs,
                         KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
        return (kps[0].get("PublicKey") or "").strip() if kps else ""

    def user_data(self, region, instance_id):
        """The instance's user data as bytes (b"" if none)."""
        attr = self._call(f"DescribeInstanceAttribute userData {instance_id}",
                          self._ec2[region].describe_instance_attribute,
                          InstanceId=instance_id, Attribute="userData")
        value = (attr.get("UserData") or {}).get("Value") or ""
        return base64.b64decode(value) if value else b""


def _forward_target_groups(actions):
    arns = []
    for a in actions:
        if a.get("Type") != "forward":
            continue
        if a.get("TargetGroupArn"):
            arns.append(a["TargetGroupArn"])
        for tg in (a.get("ForwardConfig") or {}).get("TargetGroups", []):
            if tg.get("TargetGroupArn") and tg["TargetGroupArn"] not in arns:
                arns.append(tg["TargetGroupArn"])
    return arns
