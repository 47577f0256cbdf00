"""Smoke test of the local cloud (moto on 127.0.0.1:4566), the calls orkops makes.

Run with the venv that ./up creates, while the local cloud is up:

    localstack/.venv/bin/python localstack/smoke.py

Builds a small cluster's worth of AWS resources (VPC, subnet, IGW, route table,
security group, ed25519 key pair, two Debian 12 instances with user data, an
NLB with a target group and a listener), all tagged orkops.io/cluster=<name>,
then deletes them in dependency order and checks that nothing tagged remains.
Exits 0 on success, 1 with a message on the first failure.
"""

import base64
import os
import sys
import time
import uuid

import boto3
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
REGION = os.environ.get("AWS_REGION", "us-east-1")
DEBIAN_OWNER = "136693071363"
TAG_KEY = "orkops.io/cluster"
CLUSTER = f"smoke-{uuid.uuid4().hex[:8]}"
USER_DATA = "#!/bin/sh\n# orkops node bootstrap (smoke)\necho hello > /tmp/orkops\n"


class SmokeFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise SmokeFailure(msg)


def step(msg):
    print(f"  - {msg}", flush=True)


def tags(extra=None):
    t = [{"Key": TAG_KEY, "Value": CLUSTER}]
    if extra:
        t += [{"Key": k, "Value": v} for k, v in extra.items()]
    return t


def tag_spec(resource_type, extra=None):
    return [{"ResourceType": resource_type, "Tags": tags(extra)}]


def cluster_filter():
    return [{"Name": f"tag:{TAG_KEY}", "Values": [CLUSTER]}]


def expect_error(code, fn, **kwargs):
    """Calls fn and requires it to fail with the given AWS error code."""
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"{fn.__name__}: expected {code}, got {got}")
        return
    raise SmokeFailure(f"{fn.__name__}: expected {code}, but it succeeded")


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


def ed25519_openssh_public_key():
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw + f" {CLUSTER}@orkops\n".encode()


def create(ec2, elb):
    ids = {}

    step("DescribeImages: Debian 12 amd64 by owner + name pattern")
    images = ec2.describe_images(
        Owners=[DEBIAN_OWNER],
        Filters=[{"Name": "name", "Values": ["debian-12-amd64-*"]}, {"Name": "state", "Values": ["available"]}],
    )["Images"]
    check(images, "no debian-12-amd64-* image owned by 136693071363 (is MOTO_AMIS_PATH set?)")
    image = max(images, key=lambda i: i["CreationDate"])
    check(image["Architecture"] == "x86_64", f"amd64 image has architecture {image['Architecture']}")
    check(image["RootDeviceName"] == "/dev/xvda", "root device is not /dev/xvda")
    arm = ec2.describe_images(Owners=[DEBIAN_OWNER], Filters=[{"Name": "name", "Values": ["debian-12-arm64-*"]}])["Images"]
    check(arm and arm[0]["Architecture"] == "arm64", "no debian-12-arm64-* image with architecture arm64")
    ids["image"] = image["ImageId"]

    step("VPC with tags, DNS hostnames")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16", TagSpecifications=tag_spec("vpc", {"Name": CLUSTER}))["Vpc"]
    ids["vpc"] = vpc["VpcId"]
    ec2.modify_vpc_attribute(VpcId=ids["vpc"], EnableDnsHostnames={"Value": True})
    found = ec2.describe_vpcs(Filters=cluster_filter())["Vpcs"]
    check([v["VpcId"] for v in found] == [ids["vpc"]], f"tag filter on VPCs returned {found}")

    step("subnet (public IPs on launch), internet gateway, route table + default route")
    subnet = ec2.create_subnet(
        VpcId=ids["vpc"], CidrBlock="10.42.1.0/24", AvailabilityZone=f"{REGION}a", TagSpecifications=tag_spec("subnet")
    )["Subnet"]
    ids["subnet"] = subnet["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=ids["subnet"], MapPublicIpOnLaunch={"Value": True})
    ids["igw"] = ec2.create_internet_gateway(TagSpecifications=tag_spec("internet-gateway"))["InternetGateway"][
        "InternetGatewayId"
    ]
    ec2.attach_internet_gateway(InternetGatewayId=ids["igw"], VpcId=ids["vpc"])
    ids["rtb"] = ec2.create_route_table(VpcId=ids["vpc"], TagSpecifications=tag_spec("route-table"))["RouteTable"][
        "RouteTableId"
    ]
    ec2.create_route(RouteTableId=ids["rtb"], DestinationCidrBlock="0.0.0.0/0", GatewayId=ids["igw"])
    ids["rtb_assoc"] = ec2.associate_route_table(RouteTableId=ids["rtb"], SubnetId=ids["subnet"])["AssociationId"]

    step("security group + ingress rules (ssh, api, all from itself)")
    ids["sg"] = ec2.create_security_group(
        GroupName=f"{CLUSTER}-nodes", Description="orkops smoke nodes", VpcId=ids["vpc"],
        TagSpecifications=tag_spec("security-group"),
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=ids["sg"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 6443, "ToPort": 6443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": ids["sg"]}]},
        ],
    )
    perms = ec2.describe_security_groups(GroupIds=[ids["sg"]])["SecurityGroups"][0]["IpPermissions"]
    check(len(perms) == 3, f"expected 3 ingress rules, got {perms}")

    step("ImportKeyPair with an ed25519 OpenSSH key")
    ids["key"] = f"{CLUSTER}-key"
    kp = ec2.import_key_pair(
        KeyName=ids["key"], PublicKeyMaterial=ed25519_openssh_public_key(), TagSpecifications=tag_spec("key-pair")
    )
    check(kp.get("KeyPairId", "").startswith("key-"), f"ImportKeyPair returned {kp}")
    described = ec2.describe_key_pairs(KeyNames=[ids["key"]])["KeyPairs"][0]
    check(described["KeyType"] == "ed25519", f"key type {described['KeyType']}")

    step("RunInstances x2 from the Debian image, with user data and tags")
    res = ec2.run_instances(
        ImageId=ids["image"], MinCount=2, MaxCount=2, InstanceType="t3.medium", KeyName=ids["key"],
        SubnetId=ids["subnet"], SecurityGroupIds=[ids["sg"]], UserData=USER_DATA,
        TagSpecifications=tag_spec("instance", {"Name": f"{CLUSTER}-node", "orkops.io/role": "node"}) + tag_spec("volume"),
    )
    ids["instances"] = [i["InstanceId"] for i in res["Instances"]]
    check(len(ids["instances"]) == 2, "RunInstances did not return 2 instances")
    ec2.get_waiter("instance_running").wait(InstanceIds=ids["instances"], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    running = [
        i for r in ec2.describe_instances(
            Filters=cluster_filter() + [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"] for i in r["Instances"]
    ]
    check(sorted(i["InstanceId"] for i in running) == sorted(ids["instances"]), "tag filter on instances is wrong")
    for inst in running:
        check(inst["ImageId"] == ids["image"], "instance has the wrong image")
        check(inst.get("PublicIpAddress") and inst.get("PrivateIpAddress"), "instance lacks public/private IP")
        check(inst["KeyName"] == ids["key"], "instance lacks key name")
    ud = ec2.describe_instance_attribute(InstanceId=ids["instances"][0], Attribute="userData")["UserData"]["Value"]
    check(base64.b64decode(ud).decode() == USER_DATA, "user data did not round-trip")

    step("NLB + TCP target group + listener, register the instances")
    lb = elb.create_load_balancer(
        Name=f"{CLUSTER}-api", Type="network", Scheme="internet-facing", Subnets=[ids["subnet"]], Tags=tags()
    )["LoadBalancers"][0]
    ids["lb"] = lb["LoadBalancerArn"]
    check(lb["Type"] == "network", f"load balancer type {lb['Type']}")
    check(lb.get("DNSName"), "load balancer has no DNS name")
    state = elb.describe_load_balancers(LoadBalancerArns=[ids["lb"]])["LoadBalancers"][0]["State"]["Code"]
    check(state == "active", f"load balancer state after a describe is {state}")
    ids["tg"] = elb.create_target_group(
        Name=f"{CLUSTER}-api", Protocol="TCP", Port=6443, VpcId=ids["vpc"], TargetType="instance",
        HealthCheckProtocol="TCP", Tags=tags(),
    )["TargetGroups"][0]["TargetGroupArn"]
    ids["listener"] = elb.create_listener(
        LoadBalancerArn=ids["lb"], Protocol="TCP", Port=6443,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": ids["tg"]}], Tags=tags(),
    )["Listeners"][0]["ListenerArn"]
    elb.register_targets(TargetGroupArn=ids["tg"], Targets=[{"Id": i, "Port": 6443} for i in ids["instances"]])
    health = elb.describe_target_health(TargetGroupArn=ids["tg"])["TargetHealthDescriptions"]
    check(sorted(h["Target"]["Id"] for h in health) == sorted(ids["instances"]), f"targets: {health}")
    tagged = {
        d["ResourceArn"] for d in elb.describe_tags(ResourceArns=[ids["lb"], ids["tg"], ids["listener"]])["TagDescriptions"]
        if {"Key": TAG_KEY, "Value": CLUSTER} in d["Tags"]
    }
    check(tagged == {ids["lb"], ids["tg"], ids["listener"]}, f"ELBv2 tags missing: {tagged}")
    return ids


def delete(ec2, elb, ids):
    step("out-of-order deletes are refused (ResourceInUse, DependencyViolation)")
    expect_error("ResourceInUse", elb.delete_target_group, TargetGroupArn=ids["tg"])
    expect_error("DependencyViolation", ec2.delete_internet_gateway, InternetGatewayId=ids["igw"])
    expect_error("DependencyViolation", ec2.delete_route_table, RouteTableId=ids["rtb"])
    expect_error("DependencyViolation", ec2.delete_vpc, VpcId=ids["vpc"])

    step("deregister targets, delete listener, NLB, target group")
    elb.deregister_targets(TargetGroupArn=ids["tg"], Targets=[{"Id": i} for i in ids["instances"]])
    elb.delete_listener(ListenerArn=ids["listener"])
    elb.delete_load_balancer(LoadBalancerArn=ids["lb"])
    elb.delete_target_group(TargetGroupArn=ids["tg"])

    step("terminate instances, wait for terminated")
    resp = ec2.terminate_instances(InstanceIds=ids["instances"])["TerminatingInstances"]
    check(all(t["CurrentState"]["Name"] in ("shutting-down", "terminated") for t in resp), f"terminate: {resp}")
    t0 = time.monotonic()
    ec2.get_waiter("instance_terminated").wait(InstanceIds=ids["instances"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    step(f"  terminated after {time.monotonic() - t0:.2f}s")

    step("delete key pair, security group, route table, internet gateway, subnet, VPC")
    ec2.delete_key_pair(KeyName=ids["key"])
    ec2.revoke_security_group_ingress(
        GroupId=ids["sg"], IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": ids["sg"]}]}]
    )
    ec2.delete_security_group(GroupId=ids["sg"])
    ec2.disassociate_route_table(AssociationId=ids["rtb_assoc"])
    ec2.delete_route_table(RouteTableId=ids["rtb"])
    ec2.detach_internet_gateway(InternetGatewayId=ids["igw"], VpcId=ids["vpc"])
    ec2.delete_internet_gateway(InternetGatewayId=ids["igw"])
    ec2.delete_subnet(SubnetId=ids["subnet"])
    ec2.delete_vpc(VpcId=ids["vpc"])


def check_nothing_left(ec2, elb):
    step(f"nothing tagged {TAG_KEY}={CLUSTER} remains")
    f = cluster_filter()
    left = {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=f)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=f)["Subnets"]],
        "internet gateways": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=f)["InternetGateways"]],
        "route tables": [r["RouteTableId"] for r in ec2.describe_route_tables(Filters=f)["RouteTables"]],
        "security groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=f)["SecurityGroups"]],
        "key pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=f)["KeyPairs"]],
        "volumes": [v["VolumeId"] for v in ec2.describe_volumes(Filters=f)["Volumes"]],
        # Terminated instances stay visible (as on AWS for about an hour): not "left".
        "instances": [
            i["InstanceId"] for r in ec2.describe_instances(
                Filters=f + [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
            )["Reservations"] for i in r["Instances"]
        ],
    }
    lbs = [lb["LoadBalancerArn"] for lb in elb.describe_load_balancers()["LoadBalancers"]]
    tgs = [tg["TargetGroupArn"] for tg in elb.describe_target_groups()["TargetGroups"]]
    arns = lbs + tgs
    left["elbv2 resources"] = [
        d["ResourceArn"]
        for i in range(0, len(arns), 20)  # DescribeTags takes at most 20 ARNs
        for d in elb.describe_tags(ResourceArns=arns[i:i + 20])["TagDescriptions"]
        if {"Key": TAG_KEY, "Value": CLUSTER} in d["Tags"]
    ]
    leftovers = {k: v for k, v in left.items() if v}
    check(not leftovers, f"left behind: {leftovers}")


def main():
    print(f"smoke test against {ENDPOINT} ({REGION}), cluster {CLUSTER}")
    ec2, elb = client("ec2"), client("elbv2")
    try:
        ec2.describe_regions()
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: {ENDPOINT} does not answer EC2 ({e}); start it with localstack/up", file=sys.stderr)
        return 1
    try:
        ids = create(ec2, elb)
        delete(ec2, elb, ids)
        check_nothing_left(ec2, elb)
    except (SmokeFailure, ClientError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("OK: local cloud smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
