"""A TCP proxy that holds every chunk it passes on for a while: a network's latency between the app and a
database that here runs on loopback, where a round trip costs almost nothing and so hides what saving one is worth.

Runs its own event loop in a thread; each direction of each connection is a queue drained in order, so chunks keep
their order and the delay does not add up over a pipeline of them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        try:
            while True:
                due, chunk = await held.get()
                if not chunk:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass  # the far side went away: what is left of this direction has nowhere to go
        finally:
            writer.close()

    releasing = asyncio.create_task(release())
    try:
        while chunk := await reader.read(65536):
            held.put_nowait((time.monotonic() + delay, chunk))
    except ConnectionError:
        pass
    held.put_nowait((0.0, b""))
    await releasing


@contextmanager
def delaying_proxy(target_host: str, target_port: int, *, one_way_ms: float) -> Iterator[int]:
    """Yields the loopback port of a proxy to ``target_host:target_port`` that delays each direction by
    ``one_way_ms`` (asyncio's timers round a wait up to the millisecond)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stopping = asyncio.Event()
    port: list[int] = []

    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()  # as the database would: the client sees the connection refused
            return
        delay = one_way_ms / 1000
        await asyncio.gather(_pipe(client_reader, server_writer, delay), _pipe(server_reader, client_writer, delay))

    async def serve() -> None:
        server = await asyncio.start_server(connect, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await stopping.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the delaying proxy did not start listening within 10 s")
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
