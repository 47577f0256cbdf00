"""Blocks of names in hosts files: the host's /etc/hosts and each body's own.

A block is
    # BEGIN orkops-localcloud <OWNER>
    198.18.0.1 web-1.us-east-1.elb.amazonaws.com
    # END orkops-localcloud <OWNER>
and is the only part of the file this module changes. Edits of the host's file take a lock
shared by all daemons (common.flocked("hosts")) and rewrite the file in place, since /etc/hosts
may be a bind mount that cannot be replaced by a rename.
"""
import os
import re

from .common import flocked

HOSTS_FILE = os.environ.get("ORKOPS_LOCALCLOUD_HOSTS_FILE", "/etc/hosts")
_BEGIN = "# BEGIN orkops-localcloud "
_END = "# END orkops-localcloud "
_BEGIN_RE = re.compile(r"^# BEGIN orkops-localcloud (\S+)\s*$")


def _split(text, owner):
    """The lines of text with the owner's block(s) cut out."""
    kept, inside = [], False
    for line in text.splitlines():
        if line.strip() == _BEGIN + owner:
            inside = True
            continue
        if inside:
            if line.strip() == _END + owner:
                inside = False
            continue
        kept.append(line)
    return kept


def render_block(owner, entries):
    lines = [_BEGIN + owner]
    lines += [f"{addr} {' '.join(names)}" for addr, names in entries]
    lines.append(_END + owner)
    return lines


def _rewrite(path, owner, entries):
    """Replaces the owner's block with entries ([(address, [names])]; none: no block).
    Returns True if the file changed."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        if not entries:
            return False
        old = ""
    lines = _split(old, owner)
    if entries:
        lines += render_block(owner, entries)
    new = "\n".join(lines) + "\n" if lines else ""
    if new == old:
        return False
    with open(path, "r+" if os.path.exists(path) else "w") as f:
        f.seek(0)
        f.write(new)
        f.truncate()
    return True


def set_block(path, owner, entries):
    """Sets the owner's block in the host's hosts file (under the cross-daemon lock)."""
    with flocked("hosts"):
        return _rewrite(path, owner, entries)


def remove_block(path, owner):
    return set_block(path, owner, [])


def set_block_unlocked(path, owner, entries):
    """The same for a file only this daemon writes (a body's /etc/hosts, seen from the host)."""
    return _rewrite(path, owner, entries)


def owners_in(path):
    try:
        with open(path) as f:
            return {m.group(1) for m in map(_BEGIN_RE.match, f.read().splitlines()) if m}
    except FileNotFoundError:
        return set()
