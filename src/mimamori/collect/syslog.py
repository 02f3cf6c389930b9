"""Syslog receivers: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425), on asyncio.

TCP and TLS streams are framed per message: octet counting (``LEN SP MSG``, RFC 5425 and
RFC 6587 3.4.1) when a frame starts with a digit, else non-transparent framing by LF (an
optional CR before it is dropped). A message longer than ``max_message_bytes`` is cut
there (logged); the cut message still reaches the pipeline, whose reader quarantines lines
over 1 MiB with the reason. An LF inside an octet-counted message is written ``#012`` (as
rsyslog escapes control characters), so one message stays one line.

Each message is mapped to a sensor, and so a tenant: by a token in structured data
(``[mimamori@32473 token="mms_..."]``; the token is masked before storage) or else by the
sender's source address (``collect_sender`` networks). A connection whose sender is
unknown is closed with a logged reason; unknown UDP datagrams are dropped and counted.

Messages are batched per connection (UDP: per sensor) and spooled (fsynced) every
``flush_bytes`` or ``flush_seconds``. A connection reads nothing more while its batch is
being spooled, and while the spool is over quota it waits and retries: TCP back-pressure
reaches the sender. UDP cannot be slowed down, so over quota its datagrams are dropped and
counted in a logged warning. A client silent for ``idle_seconds`` is disconnected.

Vendor recognition happens later, on the whole batch (``collect.vendors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import ssl
import threading
import time
from collections import defaultdict
from typing import Any

from mimamori.collect import QuotaExceeded
from mimamori.collect.service import Collector, SensorRef

log = logging.getLogger(__name__)

RAW_SOURCE = "syslog-raw"
_TOKEN = re.compile(rb'(\[mimamori@\d+\b[^\]]*?\btoken=")([^"]+)(")')
_DIGITS = frozenset(b"0123456789")


class Framer:
    """RFC 6587 framing of one stream: bytes in, whole messages out."""

    def __init__(self, max_message: int) -> None:
        self.max = max_message
        self.buf = bytearray()
        self.skip = 0  # bytes of an over-long octet-counted message still to drop
        self.drop_line = False  # an over-long LF-framed message: drop up to its LF
        self.cut = 0  # messages cut to ``max``

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        buf = self.buf
        buf += data
        pos = 0
        n = len(buf)
        while pos < n:
            if self.skip:
                take = min(self.skip, n - pos)
                self.skip -= take
                pos += take
                continue
            if self.drop_line:
                i = buf.find(b"\n", pos)
                if i < 0:
                    pos = n
                    break
                self.drop_line = False
                pos = i + 1
                continue
            if buf[pos] in _DIGITS:
                sp = buf.find(b" ", pos, pos + 11)
                if sp < 0 and n - pos < 11:
                    break  # the length may still be arriving
                if sp > pos and all(c in _DIGITS for c in buf[pos:sp]):
                    length = int(buf[pos:sp])
                    start = sp + 1
                    if length > self.max:
                        avail = min(n - start, self.max)
                        if avail < self.max:
                            break  # wait until the part we keep is here
                        out.append(bytes(buf[start : start + self.max]).replace(b"\n", b"#012"))
                        self.cut += 1
                        self.skip = length - self.max
                        pos = start + self.max
                        continue
                    if n - start < length:
                        break
                    out.append(bytes(buf[start : start + length]).replace(b"\n", b"#012"))
                    pos = start + length
                    continue
            i = buf.find(b"\n", pos)
            if i < 0:
                if n - pos > self.max:
                    out.append(bytes(buf[pos : pos + self.max]))
                    self.cut += 1
                    self.drop_line = True
                    pos = n
                break
            end = i - 1 if i > pos and buf[i - 1] == 0x0D else i
            if end > pos:
                out.append(bytes(buf[pos:end]))
            pos = i + 1
        del buf[:pos]
        return out

    def rest(self) -> bytes:
        """What is left at the end of the stream (an unterminated last message)."""
        data = bytes(self.buf).rstrip(b"\r\n\x00")
        self.buf.clear()
        return data


class SyslogServer:
    """The receivers of one collector, on an asyncio loop in a thread of their own."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.cfg = collector.config
        # a batch must fit in the spool's quota many times over, or a full spool never frees
        self.flush_bytes = max(1, min(self.cfg.flush_bytes, self.cfg.max_spool_bytes // 8))
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
        self.dropped_udp = 0
        self.connections = 0
        self._thread = threading.Thread(target=self._run, name="mimamori-syslog", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._servers: list[Any] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._udp_pending: dict[SensorRef, list[bytes]] = defaultdict(list)
        self._udp_peer: dict[SensorRef, str] = {}
        self._stopping = False
        self._tls: ssl.SSLContext | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._stopping = True
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        with contextlib.suppress(Exception):
            fut.result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(self._loop_error)
        try:
            self.loop.run_until_complete(self._open())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        log.warning("syslog receiver: %s%s", context.get("message"), f" ({exc!r})" if exc else "")

    async def _open(self) -> None:
        c = self.cfg
        if c.syslog_udp is not None:
            transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(c.host, c.syslog_udp)
            )
            self._udp.append(transport)
            self.ports["udp"] = transport.get_extra_info("sockname")[1]
            self._tasks.append(self.loop.create_task(self._udp_flusher()))
        if c.syslog_tcp is not None:
            srv = await asyncio.start_server(
                lambda r, w: self._handle(r, w, "tcp"), c.host, c.syslog_tcp, limit=1 << 16
            )
            self._servers.append(srv)
            self.ports["tcp"] = srv.sockets[0].getsockname()[1]
        if c.syslog_tls is not None:
            if not c.tls_cert or not c.tls_key:
                raise ValueError("--syslog-tls needs --tls-cert and --tls-key")
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(c.tls_cert), str(c.tls_key))
            self._tls = ctx
            # the handshake is done per connection (``_handle``), so a failed one is logged
            srv = await asyncio.start_server(
                lambda r, w: self._handle(r, w, "tls"), c.host, c.syslog_tls, limit=1 << 16
            )
            self._servers.append(srv)
            self.ports["tls"] = srv.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for srv in self._servers:
            srv.close()
        for t in self._udp:
            t.close()
        await self._flush_udp()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:  # connection handlers: they flush what they hold when they end
            await asyncio.wait(others, timeout=5)
        for task in others:
            task.cancel()

    # ------------------------------------------------------------------ mapping
    def _tokens(
        self, msgs: list[bytes], default: SensorRef | None, cache: dict[bytes, SensorRef | None]
    ) -> dict[SensorRef | None, list[bytes]]:
        """Messages grouped by sensor: their own token's, else the connection's."""
        out: dict[SensorRef | None, list[bytes]] = defaultdict(list)
        for m in msgs:
            ref = default
            if b"token=" in m[:4096]:
                found = _TOKEN.search(m, 0, 4096)
                if found:
                    tok = found.group(2)
                    if tok not in cache:
                        cache[tok] = self.collector.authenticate(tok.decode("ascii", "replace"))
                        if cache[tok] is None:
                            log.warning("syslog token in a message is unknown or revoked")
                    ref = cache[tok] or default
                    m = m[: found.start(2)] + b"***" + m[found.end(2) :]
            out[ref].append(m)
        return out

    # ------------------------------------------------------------------ TCP / TLS
    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "?"
        self.connections += 1
        if transport == "tls":
            assert self._tls is not None
            try:
                await writer.start_tls(self._tls, ssl_handshake_timeout=10)
            except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
                log.warning(
                    "syslog tls from %s: TLS handshake failed (%s: %s)", peer, type(exc).__name__, exc
                )
                writer.close()
                return
        framer = Framer(self.cfg.max_message_bytes)
        ref = await self.loop.run_in_executor(None, self.collector.sender, peer)
        cache: dict[bytes, SensorRef | None] = {}
        batch: dict[SensorRef, list[bytes]] = defaultdict(list)
        size = 0
        last_flush = last_data = time.monotonic()
        reason = "closed by the sender"
        try:
            while not self._stopping:
                now = time.monotonic()
                wait = (
                    self.cfg.flush_seconds if size else max(0.05, self.cfg.idle_seconds - (now - last_data))
                )
                try:
                    data = await asyncio.wait_for(reader.read(1 << 16), wait)
                except TimeoutError:
                    if size:
                        await self._flush(batch, transport, peer)
                        size, last_flush = 0, time.monotonic()
                    elif time.monotonic() - last_data >= self.cfg.idle_seconds:
                        reason = f"idle for {self.cfg.idle_seconds:g} s, disconnected"
                        break
                    continue
                except (ConnectionError, ssl.SSLError, OSError) as exc:
                    reason = f"connection broken: {type(exc).__name__}: {exc}"
                    break
                if not data:
                    break
                last_data = time.monotonic()
                cut_before = framer.cut
                msgs = framer.feed(data)
                if framer.cut > cut_before:
                    log.warning(
                        "syslog %s from %s: message over %d bytes cut there", transport, peer, framer.max
                    )
                if not msgs:
                    continue
                for r, ms in self._tokens(msgs, ref, cache).items():
                    if r is None:
                        reason = "unknown sender (no collect_sender network, no token): connection refused"
                        return
                    batch[r].extend(ms)
                    size += sum(len(m) + 1 for m in ms)
                if size >= self.flush_bytes or time.monotonic() - last_flush >= self.cfg.flush_seconds:
                    await self._flush(batch, transport, peer)
                    size, last_flush = 0, time.monotonic()
            tail = framer.rest()
            if tail:
                for r, ms in self._tokens([tail], ref, cache).items():
                    if r is not None:
                        batch[r].extend(ms)
                        size += len(tail)
        finally:
            if size:
                await self._flush(batch, transport, peer)
            log.info("syslog %s connection from %s ended: %s", transport, peer, reason)
            if reason.startswith("unknown") or reason.startswith("idle") or reason.startswith("connection"):
                log.warning("syslog %s from %s: %s", transport, peer, reason)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _flush(self, batch: dict[SensorRef, list[bytes]], transport: str, peer: str) -> None:
        """Spool the batch; while over quota, wait (the connection reads nothing meanwhile)."""
        warned = False
        for ref in list(batch):
            payload = b"\n".join(batch[ref]) + b"\n"
            while True:
                try:
                    await self.loop.run_in_executor(
                        None,
                        functools.partial(
                            self.collector.submit, ref, RAW_SOURCE, payload, transport=transport, peer=peer
                        ),
                    )
                    break
                except QuotaExceeded as exc:
                    if not warned:
                        log.warning(
                            "syslog %s from %s paused (back-pressure): %s", transport, peer, exc.reason
                        )
                        warned = True
                    await asyncio.sleep(min(exc.retry_after, 0.5))
            del batch[ref]

    # ------------------------------------------------------------------ UDP
    def _datagram(self, data: bytes, addr: Any) -> None:
        peer = str(addr[0])
        msg = data.rstrip(b"\r\n\x00").replace(b"\n", b"#012")
        if not msg:
            return
        if len(msg) > self.cfg.max_message_bytes:
            msg = msg[: self.cfg.max_message_bytes]
        ref = self.collector.sender(peer)
        for r, ms in self._tokens([msg], ref, {}).items():
            if r is None:
                self.dropped_udp += 1
                if self.dropped_udp in (1, 10, 100) or self.dropped_udp % 1000 == 0:
                    log.warning(
                        "syslog udp from %s: unknown sender, %d datagrams dropped", peer, self.dropped_udp
                    )
                continue
            self._udp_pending[r].extend(ms)
            self._udp_peer[r] = peer

    async def _udp_flusher(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.cfg.flush_seconds)
            await self._flush_udp()

    async def _flush_udp(self) -> None:
        pending, self._udp_pending = self._udp_pending, defaultdict(list)
        for ref, msgs in pending.items():
            payload = b"\n".join(msgs) + b"\n"
            try:
                await self.loop.run_in_executor(
                    None,
                    functools.partial(
                        self.collector.submit,
                        ref,
                        RAW_SOURCE,
                        payload,
                        transport="udp",
                        peer=self._udp_peer.get(ref),
                    ),
                )
            except QuotaExceeded as exc:
                self.dropped_udp += len(msgs)
                log.warning("syslog udp: %d datagrams dropped, %s", len(msgs), exc.reason)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("syslog udp: %s", exc)
