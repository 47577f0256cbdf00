"""bodiesd: the bodies of the local cloud (run as `localstack/bodies`; see localstack/README.md).

An emulated EC2 instance or load balancer is only a record in moto. This daemon polls the
emulator about once a second and gives

- each running instance a body: a Docker container with sshd, its own dockerd and the
  instance's user data, at the instance's private IP on one Docker network per VPC
  (`machines.py`; the image is built by `localstack/build-body-image`);
- each ELBv2 load balancer with listeners a body: TCP/UDP forwarders on an address of the host,
  its DNS name in /etc/hosts, sending connections round-robin to the targets that pass the
  daemon's own health checks (`loadbalancers.py`, `forward.py`, `health.py`).

Module map: `cli` (arguments, foreground run, --sweep), `daemon` (the reconcile loop and its
teardown), `emulator` (one consistent read of EC2/ELBv2 per tick), `machines` (containers,
volumes, networks, public-IP routes), `loadbalancers`, `forward`, `health`, `hostsfile`
(/etc/hosts blocks), `owners` (who made what: locks, journal, sweep), `hostnet` (`ip` commands),
`status` (the bodies.json file).
"""
