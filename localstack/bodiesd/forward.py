"""Forwarders (asyncio): TCP and UDP, from a listening address to a backend chosen per flow.

`pick()` is called once per TCP connection or UDP flow and returns (host, port) or None (then
the connection is closed / the datagram dropped). The load balancers pass a round-robin over
healthy targets; the AWS-endpoint forwarders in each VPC pass the emulator's address.
A connection to a backend that fails is closed on the client, as an NLB would: no retry.
"""
import asyncio
import logging
import socket

log = logging.getLogger("bodies")

CONNECT_TIMEOUT = 10
UDP_FLOW_IDLE = 120  # seconds, NLB's UDP idle timeout


async def _pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


class TcpForwarder:
    def __init__(self, host, port, pick, name):
        self.host, self.port, self.pick, self.name = host, port, pick, name
        self.server = None
        self.connections = 0
        self._tasks = set()

    async def start(self):
        self.server = await asyncio.start_server(self._handle, self.host, self.port,
                                                 reuse_address=True)

    async def _handle(self, creader, cwriter):
        task = asyncio.current_task()
        self._tasks.add(task)
        backend = self.pick()
        try:
            if backend is None:
                return
            self.connections += 1
            try:
                breader, bwriter = await asyncio.wait_for(asyncio.open_connection(*backend),
                                                          CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                log.debug("%s: connect to %s:%s failed: %s", self.name, *backend, e)
                return
            try:
                await asyncio.gather(_pipe(creader, bwriter), _pipe(breader, cwriter))
            finally:
                bwriter.close()
        finally:
            cwriter.close()
            self._tasks.discard(task)

    async def close(self):
        if self.server:
            self.server.close()
            await self.server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        self._tasks.clear()


class _FlowProtocol(asyncio.DatagramProtocol):
    """One UDP flow's socket towards the backend; replies go back through the listener."""

    def __init__(self, forwarder, client):
        self.forwarder, self.client = forwarder, client
        self.transport = None
        self.last = asyncio.get_running_loop().time()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.last = asyncio.get_running_loop().time()
        if self.forwarder.transport:
            self.forwarder.transport.sendto(data, self.client)

    def error_received(self, exc):
        pass


class UdpForwarder(asyncio.DatagramProtocol):
    def __init__(self, host, port, pick, name):
        self.host, self.port, self.pick, self.name = host, port, pick, name
        self.transport = None
        self.flows = {}  # client address -> _FlowProtocol (or a pending future)
        self.connections = 0
        self._reaper = None

    async def start(self):
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port), family=socket.AF_INET)
        self._reaper = asyncio.create_task(self._reap())

    def datagram_received(self, data, addr):
        flow = self.flows.get(addr)
        if isinstance(flow, _FlowProtocol) and flow.transport:
            flow.last = asyncio.get_running_loop().time()
            flow.transport.sendto(data)
        elif flow is None:
            backend = self.pick()
            if backend is None:
                return
            self.connections += 1
            self.flows[addr] = asyncio.create_task(self._open_flow(addr, backend, data))
        # a flow still opening: drop the datagram (UDP may)

    async def _open_flow(self, client, backend, first):
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.create_datagram_endpoint(
                lambda: _FlowProtocol(self, client), remote_addr=backend, family=socket.AF_INET)
        except OSError as e:
            log.debug("%s: UDP flow to %s:%s failed: %s", self.name, *backend, e)
            self.flows.pop(client, None)
            return
        self.flows[client] = proto
        transport.sendto(first)

    async def _reap(self):
        while True:
            await asyncio.sleep(10)
            now = asyncio.get_running_loop().time()
            for client, flow in list(self.flows.items()):
                if isinstance(flow, _FlowProtocol) and now - flow.last > UDP_FLOW_IDLE:
                    flow.transport.close()
                    del self.flows[client]

    async def close(self):
        if self._reaper:
            self._reaper.cancel()
        for flow in self.flows.values():
            if isinstance(flow, _FlowProtocol):
                flow.transport.close()
            else:
                flow.cancel()
        self.flows.clear()
        if self.transport:
            self.transport.close()
