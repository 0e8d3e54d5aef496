"""A small threaded HTTP/1.1 proxy for tests, put between a client and a local server.

It counts requests and bytes each way and injects faults on demand:

- ``fail_next(n, mode)``: the next ``n`` (matching) requests get an HTTP 503
  (``mode="503"``), a connection reset (``"reset"``) or a 500 (``"500"``) instead of
  reaching the server;
- ``cut_next(n, after)``: the next ``n`` responses with a body are cut after ``after``
  body bytes (the connection is closed mid-body);
- ``hang = True``: requests are read and never answered (until ``hang`` is cleared or
  the proxy stops);
- ``refuse()`` / ``accept_again()``: close the listening socket (connections are
  refused) and open it again on the same port;
- ``on_request``: a callback ``(method, path, headers)`` run before a request is
  forwarded (e.g. to replace an object between two ranged reads).

The proxy speaks just enough HTTP to find message boundaries (Content-Length, chunked
transfer coding, HEAD / 1xx / 204 / 304 without a body, read-to-close), so it keeps
client connections alive across requests and counts each request.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Request:
    """One request the proxy saw."""

    method: str
    path: str
    headers: dict = field(default_factory=dict)
    fault: Optional[str] = None  # what the proxy did instead of forwarding it, if anything


class _Closed(Exception):
    pass


def _read_head(sock: socket.socket, buf: bytearray) -> bytes:
    """Bytes up to and including the blank line that ends a message's head; ``buf``
    holds what was read past it. Raises _Closed at a clean end of stream."""
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            head = bytes(buf[: i + 4])
            del buf[: i + 4]
            return head
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed()
        buf += chunk


def _parse_headers(head: bytes) -> tuple[str, dict]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


class FaultProxy:
    """See the module documentation. ``upstream`` is ``(host, port)``."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream
        self.host = host
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.bytes_up = 0  # client -> server, heads and bodies
        self.bytes_down = 0  # server -> client, heads and bodies
        self._fail: list[str] = []
        self._cut: list[int] = []
        self.hang = False
        self.match: Callable[[str, str, dict], bool] = lambda method, path, headers: True
        self.on_request: Optional[Callable[[str, str, dict], None]] = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._listener: Optional[socket.socket] = None
        self.port = port
        self._listen()

    # --- control ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the proxy."""
        return f"http://{self.host}:{self.port}"

    def reset_counts(self) -> None:
        """Forget requests and bytes seen so far."""
        with self._lock:
            self.requests = []
            self.bytes_up = 0
            self.bytes_down = 0

    def fail_next(self, n: int, mode: str = "503") -> None:
        """Answer the next ``n`` matching requests with ``mode`` ("503", "500", "reset")."""
        assert mode in ("503", "500", "reset")
        with self._lock:
            self._fail += [mode] * n

    def cut_next(self, n: int, after: int = 1000) -> None:
        """Cut the next ``n`` matching responses after ``after`` bytes of body."""
        with self._lock:
            self._cut += [after] * n

    def clear_faults(self) -> None:
        """No more injected faults."""
        with self._lock:
            self._fail = []
            self._cut = []
            self.hang = False

    def refuse(self) -> None:
        """Close the listening socket: new connections are refused; open ones are
        closed."""
        if self._listener is not None:
            try:  # wakes the thread blocked in accept() (close alone does not, on Linux)
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        self._close_conns()

    def accept_again(self) -> None:
        """Listen again on the same port after :meth:`refuse`."""
        if self._listener is None:
            self._listen()

    def stop(self) -> None:
        """Stop listening, close every connection and join every thread."""
        self._stopping.set()
        self.refuse()
        for t in list(self._threads):
            t.join(timeout=10)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def get_requests(self, method: Optional[str] = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    # --- machinery -------------------------------------------------------------------

    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        self.port = s.getsockname()[1]
        self._listener = s
        t = threading.Thread(target=self._accept_loop, args=(s,), name="fault-proxy-accept", daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by refuse() / stop()
            with self._lock:
                self._conns.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
            t = threading.Thread(target=self._serve, args=(conn,), name="fault-proxy-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _close_conns(self) -> None:
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _count(self, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self.bytes_up += up
            self.bytes_down += down

    def _take(self, queue: list) -> Optional[object]:
        with self._lock:
            return queue.pop(0) if queue else None

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        """Close with RST instead of FIN."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def _serve(self, client: socket.socket) -> None:
        upstream: Optional[socket.socket] = None
        cbuf = bytearray()
        ubuf = bytearray()
        try:
            while not self._stopping.is_set():
                try:
                    head = _read_head(client, cbuf)
                except (_Closed, OSError):
                    return
                line, headers = _parse_headers(head)
                method, path = (line.split(" ") + ["", ""])[:2]
                body = self._read_body(client, cbuf, headers, request=True)
                req = Request(method, path, headers)
                matched = self.match(method, path, headers)
                with self._lock:
                    self.requests.append(req)
                    self.bytes_up += len(head) + len(body)
                if self.hang:
                    req.fault = "hang"
                    while self.hang and not self._stopping.is_set():
                        self._stopping.wait(0.05)
                    return
                fail = self._take(self._fail) if matched else None
                if fail == "reset":
                    req.fault = "reset"
                    self._reset(client)
                    return
                if fail in ("503", "500"):
                    req.fault = fail
                    reason = "Service Unavailable" if fail == "503" else "Internal Server Error"
                    msg = (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                        b"<Message>injected by the test proxy</Message></Error>"
                    )
                    resp = (
                        f"HTTP/1.1 {fail} {reason}\r\nContent-Type: application/xml\r\n"
                        f"Content-Length: {len(msg)}\r\nConnection: close\r\n\r\n"
                    ).encode() + msg
                    self._count(down=len(resp))
                    client.sendall(resp)
                    return
                if self.on_request is not None:
                    self.on_request(method, path, headers)
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    ubuf = bytearray()
                upstream.sendall(head + body)
                cut = self._take(self._cut) if matched else None
                keep = self._relay_response(upstream, ubuf, client, method, cut, req)
                if keep is None:
                    return  # cut: both connections dropped
                if not keep:
                    upstream.close()
                    upstream = None
                    if headers.get("connection", "").lower() == "close":
                        return
        except (_Closed, OSError):
            return
        finally:
            with self._lock:
                self._conns.discard(client)
            try:
                client.close()
            except OSError:
                pass
            if upstream is not None:
                upstream.close()

    def _read_body(self, sock: socket.socket, buf: bytearray, headers: dict, request: bool) -> bytes:
        """A whole message body (requests: Content-Length or chunked; nothing else)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                line = self._read_line(sock, buf)
                out += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers up to the blank line
                    while True:
                        t = self._read_line(sock, buf)
                        out += t
                        if t == b"\r\n":
                            return bytes(out)
                out += self._read_n(sock, buf, size + 2)
        n = int(headers.get("content-length", "0") or 0)
        return self._read_n(sock, buf, n)

    @staticmethod
    def _read_line(sock: socket.socket, buf: bytearray) -> bytes:
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                line = bytes(buf[: i + 2])
                del buf[: i + 2]
                return line
            chunk = sock.recv(65536)
            if not chunk:
                raise _Closed()
            buf += chunk

    @staticmethod
    def _read_n(sock: socket.socket, buf: bytearray, n: int) -> bytes:
        while len(buf) < n:
            chunk = sock.recv(max(65536, n - len(buf)))
            if not chunk:
                raise _Closed()
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _relay_response(
        self,
        up: socket.socket,
        ubuf: bytearray,
        client: socket.socket,
        method: str,
        cut: Optional[int],
        req: Request,
    ) -> Optional[bool]:
        """Relay one response. True: both sides may be reused; False: the upstream
        connection ends after it; None: the response was cut (connections dropped)."""
        while True:
            head = _read_head(up, ubuf)
            status_line, headers = _parse_headers(head)
            status = int(status_line.split(" ")[1])
            self._count(down=len(head))  # counted before sent: a client never sees more
            client.sendall(head)
            if 100 <= status < 200:
                continue  # e.g. 100 Continue: the real response follows
            break
        http10 = status_line.startswith("HTTP/1.0")
        close = headers.get("connection", "").lower() == "close" or (
            http10 and headers.get("connection", "").lower() != "keep-alive"
        )
        if method == "HEAD" or status in (204, 304):
            return not close
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body_iter = self._chunked_pieces(up, ubuf)
        elif "content-length" in headers:
            body_iter = self._length_pieces(up, ubuf, int(headers["content-length"]))
        else:
            body_iter = self._until_close_pieces(up, ubuf)
            close = True
        sent = 0
        for piece in body_iter:
            if cut is not None and sent + len(piece) > cut:
                piece = piece[: max(cut - sent, 0)]
                if piece:
                    self._count(down=len(piece))
                    client.sendall(piece)
                req.fault = f"cut after {cut} body bytes"
                self._reset(client)
                up.close()
                return None
            self._count(down=len(piece))
            client.sendall(piece)
            sent += len(piece)
        return not close

    @staticmethod
    def _length_pieces(sock: socket.socket, buf: bytearray, n: int):
        left = n
        while left > 0:
            if not buf:
                chunk = sock.recv(min(1 << 20, left))
                if not chunk:
                    raise _Closed()
                buf += chunk
            piece = bytes(buf[:left])
            del buf[: len(piece)]
            left -= len(piece)
            yield piece

    def _chunked_pieces(self, sock: socket.socket, buf: bytearray):
        while True:
            line = self._read_line(sock, buf)
            yield line
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    t = self._read_line(sock, buf)
                    yield t
                    if t == b"\r\n":
                        return
            yield from self._length_pieces(sock, buf, size + 2)

    @staticmethod
    def _until_close_pieces(sock: socket.socket, buf: bytearray):
        if buf:
            yield bytes(buf)
            buf.clear()
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            yield chunk
