"""A TCP proxy on loopback in front of a storage emulator that fails connections on purpose: answers HTTP 503,
resets the connection, or stops altogether once a number of bytes went through (a server dying mid-read)."""

from __future__ import annotations

import socket
import struct
import threading

RESPONSE_503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class FlakyProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``. ``fail(*actions)`` queues what the next new
    connections get ("503" or "reset"); ``always`` fails every connection; ``cut_after`` stops the proxy (closes
    every connection and the listener, so later connections are refused) once that many bytes went to clients."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.plan: list[str] = []
        self.always: str | None = None
        self.cut_after: int | None = None
        self.sent = 0
        self.failed = 0
        self.connections = 0
        self.refused: list[str] = []  # the request line ("GET /path HTTP/1.1") of every request answered 503
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def fail(self, *actions: str) -> FlakyProxy:
        self.plan.extend(actions)
        return self

    def __enter__(self) -> FlakyProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def stopped(self) -> bool:
        return self._closed.is_set()

    def stop(self) -> None:
        self._closed.set()
        self._sock.close()
        with self._lock:
            conns, self._open = list(self._open), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                action = self.always or (self.plan.pop(0) if self.plan else None)
            if action:
                self.failed += 1
                line = self._refuse(conn, action)
                if line:
                    with self._lock:
                        self.refused.append(line)
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._open.update((conn, up))
            threading.Thread(target=self._pump, args=(conn, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, True), daemon=True).start()

    @staticmethod
    def _refuse(conn: socket.socket, action: str) -> str | None:
        """Fail ``conn`` by ``action``; the request line it answered with 503 (None for a reset)."""
        line = None
        if action == "503":
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                conn.sendall(RESPONSE_503)
            except OSError:
                pass
        else:  # "reset": close with SO_LINGER 0 -> TCP RST
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        return line

    def _pump(self, src: socket.socket, dst: socket.socket, to_client: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if to_client:
                    with self._lock:
                        self.sent += len(data)
                        cut = self.cut_after is not None and self.sent >= self.cut_after
                    if cut:
                        self.stop()
                        return
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._open.difference_update((src, dst))
