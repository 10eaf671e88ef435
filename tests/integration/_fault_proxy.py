"""A tiny TCP proxy on 127.0.0.1 that drops or stalls connections mid-request.

Faults are drawn from a seeded RNG per forwarded chunk: the client→server
direction can be cut before the server sees the request; the server→client
direction can be cut after the server acted but before the client hears back
(the ambiguous case), or stalled past the client's read timeout. Every loop is
bounded by socket timeouts and the ``stop`` event.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from dataclasses import dataclass


@dataclass
class Faults:
    drop_request: float = 0.0
    drop_response: float = 0.0
    stall: float = 0.0
    stall_seconds: float = 2.0


class FaultProxy:
    def __init__(self, target: tuple[str, int], faults: Faults, seed: int = 7) -> None:
        self._target = target
        self.faults = faults
        self.enabled = True
        self.injected = {"drop_request": 0, "drop_response": 0, "stall": 0}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])

    def __enter__(self) -> FaultProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _draw(self, kind: str, probability: float) -> bool:
        with self._lock:
            hit = self.enabled and self._rng.random() < probability
            if hit:
                self.injected[kind] += 1
            return hit

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(0.2)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if to_server and self._draw("drop_request", self.faults.drop_request):
                break
            if not to_server:
                if self._draw("drop_response", self.faults.drop_response):
                    sink.sendall(data[: len(data) // 2])  # a torn response, then nothing
                    break
                if self._draw("stall", self.faults.stall):
                    self._stop.wait(self.faults.stall_seconds)
                    break
            try:
                sink.sendall(data)
            except OSError:
                break
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
