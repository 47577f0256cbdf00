"""Target health, judged by the daemon itself (moto says "healthy" for every target).

One asyncio task per (target group, target address, port) runs the group's health check:
TCP connect, or HTTP/HTTPS GET of the path with the matcher's codes; `port` is the target's
port for "traffic-port", else the given number. The interval is capped (`max_interval`,
default 2 s) so that tests see changes in seconds; the timeout is capped by the interval.
States as on AWS: "initial" until `healthy_threshold` passes in a row ("healthy"), then
"unhealthy" after `unhealthy_threshold` failures in a row. A target group with health checks
disabled counts every target as healthy.
"""
import asyncio
import ssl

USER_AGENT = "ELB-HealthChecker/2.0"


def matches(code, matcher):
    """Does HTTP status `code` match a matcher like "200", "200,202" or "200-399"?"""
    for part in str(matcher).split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            if int(lo) <= code <= int(hi):
                return True
        elif part and int(part) == code:
            return True
    return False


async def probe(hc, host, port, timeout):
    """One health check; returns None when it passes, else why it failed."""
    use_tls = hc.protocol.upper() == "HTTPS"
    ctx = None
    if use_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return f"connect: {e or 'timeout'}"
    try:
        if hc.protocol.upper() not in ("HTTP", "HTTPS"):
            return None
        req = (f"GET {hc.path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
               "Connection: close\r\n\r\n")
        writer.write(req.encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.decode("latin-1").split()
        if len(parts) < 2 or not parts[1].isdigit():
            return f"bad HTTP answer {line[:60]!r}"
        code = int(parts[1])
        return None if matches(code, hc.matcher) else f"HTTP {code} (want {hc.matcher})"
    except (OSError, asyncio.TimeoutError) as e:
        return f"HTTP: {e or 'timeout'}"
    finally:
        writer.close()


class TargetHealth:
    """The health of one target of one group, kept up to date by its own task."""

    def __init__(self, hc, host, port, max_interval):
        self.hc, self.host, self.port = hc, host, port
        self.state = "healthy" if not hc.enabled else "initial"
        self.reason = ""
        self._ok = self._bad = 0
        self.interval = max(0.2, min(float(hc.interval), max_interval))
        self.timeout = max(0.2, min(float(hc.timeout), self.interval))
        self.check_port = port if hc.port in ("", "traffic-port") else int(hc.port)
        self.task = asyncio.create_task(self._run()) if hc.enabled else None

    async def _run(self):
        while True:
            why = await probe(self.hc, self.host, self.check_port, self.timeout)
            self._record(why)
            await asyncio.sleep(self.interval)

    def _record(self, why):
        if why is None:
            self._ok, self._bad = self._ok + 1, 0
            if self._ok >= self.hc.healthy_threshold:
                self.state, self.reason = "healthy", ""
        else:
            self._ok, self._bad = 0, self._bad + 1
            self.reason = why
            if self._bad >= self.hc.unhealthy_threshold:
                self.state = "unhealthy"

    def stop(self):
        if self.task:
            self.task.cancel()
