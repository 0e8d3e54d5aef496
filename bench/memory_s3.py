"""A minimal S3-compatible server holding objects in memory, for benchmarks only.

    python bench/memory_s3.py --port 0        # prints "PORT <n>" once listening

Why it exists: moto (the tests' server) copies an object's whole value for every
GET, ranged or not, and pays a few ms of Python per request, so against moto every
client measures moto. No S3 server that installs from PyPI or crates.io without
Docker answers from memory at the speed of the loopback (s3s-fs streams files at
~40 MB/s per response here). This one does only what the benchmarks need and
nothing that would make it slow:

- ``PUT /bucket`` (create), ``PUT /bucket/key`` (Content-Length or aws-chunked
  bodies, ``Expect: 100-continue``), ``HEAD``/``GET /bucket/key`` with ``Range``
  (``a-b``, ``a-``, ``-n``) and ``If-Match``, ``GET /bucket?list-type=2`` (prefix,
  delimiter, max-keys, continuation-token), ``DELETE /bucket/key``;
- path-style addressing only; requests are not authenticated (signatures are
  ignored); HTTP/1.1 keep-alive, one thread per connection;
- a GET body is written with ``socket.sendall`` straight from the stored bytes (a
  ``memoryview`` slice: no copy in Python, the GIL released while the kernel copies).

Not for tests: the test suite runs against moto, a real, independent S3
implementation. This server only removes the server from what benchmarks measure.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import socket
import threading
import time
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape


class Store:
    """Buckets of objects: key -> (bytes, etag, last-modified time, seconds)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, tuple[bytes, str, float]]] = {}


def _xml_error(code: str, message: str, resource: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message><Resource>{escape(resource)}</Resource>"
            "</Error>").encode()


class Connection:
    """One client connection: requests answered in order until it closes."""

    def __init__(self, sock: socket.socket, store: Store) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=65536)
        self.store = store

    def send(self, status: str, headers: dict[str, str], body: bytes | memoryview = b"",
             head: bool = False, length: int | None = None) -> None:
        n = len(body) if length is None else length
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {n}", "x-amz-request-id: mem",
                 "Date: " + email.utils.formatdate(usegmt=True)]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if head or not body:
            self.sock.sendall(head_bytes)
        elif len(body) < 65536:
            self.sock.sendall(head_bytes + bytes(body))
        else:
            self.sock.sendall(head_bytes)
            self.sock.sendall(body)

    def error(self, status: str, code: str, message: str, resource: str, head: bool) -> None:
        self.send(status, {"Content-Type": "application/xml"}, _xml_error(code, message, resource), head=head)

    def read_body(self, headers: dict[str, str]) -> bytes:
        if headers.get("expect", "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = self._read_chunked()
        else:
            raw = self.rfile.read(int(headers.get("content-length", "0")))
        if "aws-chunked" in headers.get("content-encoding", ""):
            return self._decode_aws_chunked(raw)
        return raw

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    @staticmethod
    def _decode_aws_chunked(raw: bytes) -> bytes:
        out = bytearray()
        pos = 0
        while True:
            eol = raw.index(b"\r\n", pos)
            size = int(raw[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                return bytes(out)
            out += raw[pos:pos + size]
            pos += size + 2

    def serve(self) -> None:
        try:
            while self.one():
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self.sock.close()

    def one(self) -> bool:
        line = self.rfile.readline()
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            h = self.rfile.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        path = unquote(url.path).lstrip("/")
        bucket, _, key = path.partition("/")
        head = method == "HEAD"
        store = self.store
        if method == "PUT":
            body = self.read_body(headers)
            with store.lock:
                if not key:
                    store.buckets.setdefault(bucket, {})
                    self.send("200 OK", {"Location": f"/{bucket}"})
                    return True
                if bucket not in store.buckets:
                    self.error("404 Not Found", "NoSuchBucket", "no such bucket", bucket, head)
                    return True
                etag = '"' + hashlib.md5(body).hexdigest() + '"'
                store.buckets[bucket][key] = (body, etag, time.time())
            self.send("200 OK", {"ETag": etag})
            return True
        objects = store.buckets.get(bucket)
        if objects is None:
            self.read_body(headers)
            self.error("404 Not Found", "NoSuchBucket", "no such bucket", bucket, head)
            return True
        if method == "DELETE":
            with store.lock:
                objects.pop(key, None)
            self.send("204 No Content", {})
            return True
        if not key and method == "GET":
            self.list(bucket, objects, query)
            return True
        if not key:  # HEAD bucket
            self.send("200 OK", {})
            return True
        entry = objects.get(key)
        if entry is None:
            self.error("404 Not Found", "NoSuchKey", "no such key", f"{bucket}/{key}", head)
            return True
        data, etag, modified = entry
        if "if-match" in headers and headers["if-match"] not in (etag, "*"):
            self.error("412 Precondition Failed", "PreconditionFailed", "If-Match", f"{bucket}/{key}", head)
            return True
        size = len(data)
        common = {"ETag": etag, "Last-Modified": email.utils.formatdate(modified, usegmt=True),
                  "Accept-Ranges": "bytes",
                  "Content-Type": "application/octet-stream"}
        rng = headers.get("range")
        if rng is None:
            self.send("200 OK", common, memoryview(data), head=head, length=size)
            return True
        first, _, last = rng.removeprefix("bytes=").partition("-")
        if not first:
            a, b = max(size - int(last), 0), size - 1
        else:
            a = int(first)
            b = min(int(last), size - 1) if last else size - 1
        if a >= size or a > b:
            self.send("416 Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
            return True
        common["Content-Range"] = f"bytes {a}-{b}/{size}"
        self.send("206 Partial Content", common, memoryview(data)[a:b + 1], head=head, length=b + 1 - a)
        return True

    def list(self, bucket: str, objects: dict, query: dict) -> None:
        def q(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        prefix, delimiter = q("prefix"), q("delimiter")
        max_keys = int(q("max-keys", "1000"))
        start = q("continuation-token") or q("start-after")
        with self.store.lock:
            keys = sorted(k for k in objects if k.startswith(prefix) and k > start)
        contents: list[str] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for k in keys:
            if delimiter and delimiter in k[len(prefix):]:
                p = k[:len(prefix) + k[len(prefix):].index(delimiter) + len(delimiter)]
                if p in prefixes:
                    continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                prefixes.append(p)
                last = k
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            data, etag, modified = objects[k]
            iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(modified))
            contents.append(f"<Contents><Key>{escape(k)}</Key><LastModified>{iso}</LastModified>"
                            f"<ETag>{escape(etag)}</ETag><Size>{len(data)}</Size>"
                            "<StorageClass>STANDARD</StorageClass></Contents>")
            last = k
        body = ['<?xml version="1.0" encoding="UTF-8"?>',
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>",
                f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
                f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if delimiter:
            body.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated:
            body.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        body += contents
        body += [f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        body.append("</ListBucketResult>")
        self.send("200 OK", {"Content-Type": "application/xml"}, "".join(body).encode())


def serve(port: int) -> None:
    store = Store()
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Connection(sock, store).serve, daemon=True).start()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    serve(ap.parse_args().port)
