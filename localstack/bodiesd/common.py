"""Names shared by the modules: the run directory, the Docker labels, a cross-process lock."""
import contextlib
import fcntl
import os

RUN_DIR = os.environ.get("ORKOPS_LOCALCLOUD_RUN_DIR", "/run/orkops-localcloud")

LABEL_OWNER = "orkops.localcloud/owner"
LABEL_OWNER_PID = "orkops.localcloud/owner-pid"
LABEL_INSTANCE = "orkops.localcloud/instance"
LABEL_VPC = "orkops.localcloud/vpc"
LABEL_ENDPOINT = "orkops.localcloud/endpoint"


@contextlib.contextmanager
def flocked(name):
    """An exclusive flock on RUN_DIR/<name>.lock, shared by every daemon on the host."""
    os.makedirs(RUN_DIR, exist_ok=True)
    fd = os.open(os.path.join(RUN_DIR, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
