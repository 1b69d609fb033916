"""Issue 19, a body cut after its head: the Python client raises TruncatedResponseError (a
MedsegdError and a ConnectionError) naming the status, the bytes received and announced and the
path, and sends the request once; errors before a response head are still retried.

A raw socket server in a thread cuts bodies deterministically (Content-Length and chunked bodies,
a FIN, a reset, a stall) and counts the requests it gets. The real medsegd cuts a streamed body
when the client stops reading for `idle_timeout`, when a file is truncated while it is read, and
(unless it finds the overlap before the head) for two classes overlapping at the end of a labels
mask of over 8 MiB; its access log counts the requests."""
import http.client
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

import h5py
import numpy as np
import pytest

from conftest import ROOT
from medsegd_process import MedsegdProcess

try:
    import medsegd_client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    import medsegd_client

from medsegd_client import Client, MedsegdError

MiB = 1 << 20
LATE = (512, 512, 272)  # the labels mask whose classes overlap at its last voxel


def truncated_type():
    """medsegd_client.TruncatedResponseError (looked up when used: the checks of what the server
    got come first, so that a client without it fails on them)."""
    return getattr(medsegd_client, "TruncatedResponseError")


# --------------------------------------------------------------------------------------------
# A raw socket server that cuts bodies


class CuttingServer:
    """Accepts connections on 127.0.0.1, each served on a thread of its own: for each request
    (read whole: head and any Content-Length body) calls `answer(number, connection)` with the
    request's number (0 first), then closes the connection. `requests` lists the request lines
    received."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.closing = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.closing:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(connection,), daemon=True).start()

    def handle(self, connection):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = connection.recv(65536)
                if not data:
                    return
                head += data
            head, body = head.split(b"\r\n\r\n", 1)
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            while length and len(body) < int(length.group(1)):
                body += connection.recv(65536)
            with self.lock:
                number = len(self.requests)
                self.requests.append(head.split(b"\r\n", 1)[0].decode())
            self.answer(number, connection)
        except OSError:
            pass
        finally:
            connection.close()

    def close(self):
        self.closing = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def cutting():
    servers = []

    def start(answer):
        server = CuttingServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def head(status=200, length=None, chunked=False, extra=()):
    lines = ["HTTP/1.1 %d %s" % (status, "OK" if status == 200 else "Error"), "Content-Type: application/octet-stream",
             "X-Tensor-Dtype: |u1"]
    if length is not None:
        lines += ["X-Tensor-Shape: %d" % length, "Content-Length: %d" % length]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def client_of(server, **options):
    return Client(server.base, **dict(dict(retries=3, backoff=0.01), **options))


def failure(call):
    try:
        call()
    except Exception as error:  # checked by the caller
        return error
    raise AssertionError("no error raised")


def assert_truncated(error, server, status, received, expected, path):
    """One request, and the typed error saying what happened."""
    assert len(server.requests) == 1, "the request was sent %d times: %s" % (len(server.requests), server.requests)
    assert isinstance(error, truncated_type()), repr(error)
    assert isinstance(error, MedsegdError) and isinstance(error, ConnectionError)
    assert error.status == status and error.code == "truncated_response"
    assert error.received == received and error.exact and error.expected == expected
    assert error.path.startswith(path), error.path
    text = str(error)
    assert path in text and ("%d head" % status) in text and "see the server's log" in text, text
    if expected is None:
        assert "chunked body broke off" in text, text
    else:
        assert ("of the %d bytes its Content-Length announced" % expected) in text, text
    if received is not None:
        assert ("after %d " % received) in text, text


def test_a_large_body_cut_after_its_head_is_not_downloaded_again(cutting):
    size, sent = 8 * MiB, 3 * MiB + 17  # received into a reused buffer (>= 4 MiB)

    def answer(number, connection):
        connection.sendall(head(length=size) + bytes(sent))

    server = cutting(answer)
    error = failure(lambda: client_of(server).volume("d", "s"))
    assert_truncated(error, server, 200, sent, size, "/v1/datasets/d/scans/s/image")


def test_a_small_body_cut_after_its_head(cutting):
    def answer(number, connection):
        connection.sendall(head(length=1000).replace(b"application/octet-stream", b"application/json") + b'{"datas')

    server = cutting(answer)
    error = failure(lambda: client_of(server).datasets())
    assert_truncated(error, server, 200, 7, 1000, "/v1/datasets")


@pytest.mark.parametrize("tail,received", [(b"", 3000), (b"400\r\n" + bytes(100), 3100)])
def test_a_chunked_body_without_its_last_chunk(cutting, tail, received):
    """Cut at a chunk's end, or inside a chunk."""
    def answer(number, connection):
        connection.sendall(head(chunked=True) + chunk(bytes(1000)) + chunk(bytes(2000)) + tail)

    server = cutting(answer)
    error = failure(lambda: client_of(server).batch("d", [0, 1]))
    assert server.requests == ["POST /v1/datasets/d/batch HTTP/1.1"]
    assert_truncated(error, server, 200, received, None, "/v1/datasets/d/batch")


def test_a_body_reset_after_its_head(cutting):
    def answer(number, connection):
        connection.sendall(head(length=6 * MiB) + bytes(MiB))
        time.sleep(0.2)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST

    server = cutting(answer)
    error = failure(lambda: client_of(server).volume("d", "s"))
    assert len(server.requests) == 1, server.requests
    assert isinstance(error, truncated_type()) and error.expected == 6 * MiB, repr(error)
    assert error.received is None or error.received <= MiB


def test_a_body_that_stalls_past_the_timeout(cutting):
    release = threading.Event()

    def answer(number, connection):
        connection.sendall(head(length=5 * MiB) + bytes(1000))
        release.wait(10)

    server = cutting(answer)
    try:
        error = failure(lambda: client_of(server, timeout=0.5).volume("d", "s"))
    finally:
        release.set()
    assert len(server.requests) == 1, server.requests
    assert isinstance(error, truncated_type()), repr(error)
    # The piece being read when the timeout struck is not counted: at least 0 of the 1000 bytes.
    assert error.expected == 5 * MiB and not error.exact and 0 <= error.received <= 1000, str(error)
    assert "timed out" in str(error) and "after at least %d of the" % error.received in str(error), str(error)


def test_errors_before_a_head_are_still_retried(cutting):
    body = b'{"datasets": []}'

    def answer(number, connection):
        if number < 2:
            return  # closed without a byte: no response head
        connection.sendall(head(length=len(body), extra=["Connection: close"]) + body)

    server = cutting(answer)
    assert client_of(server).datasets() == []
    assert len(server.requests) == 3
    # Out of retries: ConnectionError as before, not a truncated body.
    error = failure(lambda: client_of(cutting(lambda number, connection: None), retries=1).datasets())
    assert type(error) is ConnectionError, repr(error)


def test_a_cut_503_is_retried_as_a_503(cutting):
    body = b'{"datasets": []}'

    def answer(number, connection):
        if number == 0:
            connection.sendall(head(503, length=100) + b'{"err')
        else:
            connection.sendall(head(length=len(body), extra=["Connection: close"]) + body)

    server = cutting(answer)
    assert client_of(server).datasets() == []
    assert len(server.requests) == 2


# --------------------------------------------------------------------------------------------
# The real medsegd cutting a streamed body


def access_lines(daemon, path):
    """The access log's lines (one a request: method, route, status, body) for `path` (no query)."""
    return [line for line in daemon.log.splitlines()
            if " method=" in line and " status=" in line and re.search(r" path=%s(\s|$)" % re.escape(path), line)]


def wait_logged(daemon, path, count, timeout=30):
    deadline = time.time() + timeout
    while len(access_lines(daemon, path)) < count and time.time() < deadline:
        time.sleep(0.1)
    return access_lines(daemon, path)


@pytest.fixture(scope="module")
def daemon():
    root = tempfile.mkdtemp(prefix="medsegd-cut-")
    rng = np.random.default_rng(4)
    os.makedirs(os.path.join(root, "big"))
    with h5py.File(os.path.join(root, "big", "0000001_V00.h5"), "w") as f:
        f["volume"] = rng.standard_normal((512, 512, 32)).astype(np.float32)  # 32 MiB, streamed
        f.create_dataset("seg", data=np.zeros((512, 512, 32, 2), np.uint8), chunks=True, compression="gzip")
    # A labels mask of 512 x 512 x 272 (68 MiB: medsegd builds label maps up to 64 MiB whole,
    # larger ones it streams) whose two classes overlap only in its last voxel, the body's last
    # byte. Stored gzip-chunked: the file is small.
    os.makedirs(os.path.join(root, "late"))
    seg = np.zeros(LATE + (2,), np.uint8)
    seg[:LATE[0] // 2, ..., 0] = 1
    seg[LATE[0] // 2:, ..., 1] = 1
    seg[-1, -1, -1] = 1
    with h5py.File(os.path.join(root, "late", "0000002_V00.h5"), "w") as f:
        f.create_dataset("volume", data=np.zeros(LATE, np.uint8), chunks=True, compression="gzip")
        f.create_dataset("seg", data=seg, chunks=(64, 64, LATE[2], 2), compression="gzip", compression_opts=1)
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write("server: {idle_timeout: 1s, cache_bytes: 0}\n"
                "families:\n  f:\n    categories: [{id: 0, name: a}, {id: 1, name: b}]\n    datasets:\n"
                "      big: {format: volumes-3d, scan_root: big}\n"
                "      late: {format: volumes-3d, scan_root: late}\n")
    server = MedsegdProcess(config)
    server.root = root
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def after_head(monkeypatch):
    """`after_head(action)`: `action(reply)` runs once each response head has arrived, before the
    client reads the body (in this process's http.client, so on any client version)."""
    actions = []
    original = http.client.HTTPConnection.getresponse

    def getresponse(self, *args, **kwargs):
        reply = original(self, *args, **kwargs)
        for action in actions:
            action(reply)
        return reply

    monkeypatch.setattr(http.client.HTTPConnection, "getresponse", getresponse)
    return actions.append


def test_medsegd_cuts_a_client_that_stops_reading(daemon, after_head):
    """idle_timeout is 1 s: a client that takes no byte for 3 s after the head is cut off."""
    after_head(lambda reply: time.sleep(3) if reply.getheader("Content-Length") == str(32 * MiB) else None)
    path = "/v1/datasets/big/scans/0000001_V00/image"
    before = len(access_lines(daemon, path))
    error = failure(lambda: Client(daemon.base, retries=3, backoff=0.01).volume("big", "0000001_V00"))
    time.sleep(1)
    lines = access_lines(daemon, path)[before:]
    assert len(lines) == 1, "the request was sent %d times:\n%s" % (len(lines), "\n".join(lines))
    assert "body=aborted" in lines[0], lines[0]
    assert isinstance(error, truncated_type()), repr(error)
    assert error.status == 200 and error.expected == 32 * MiB and 0 <= error.received < 32 * MiB, str(error)
    assert error.path.startswith(path + "?") and "see the server's log" in str(error)


def test_medsegd_cuts_a_body_whose_file_is_truncated_while_it_is_read(daemon, after_head):
    folder = os.path.join(daemon.root, "shrinking")
    os.makedirs(folder)
    source = os.path.join(daemon.root, "big", "0000001_V00.h5")
    target = os.path.join(folder, "0000003_V00.h5")
    shutil.copy(source, target)
    with open(daemon.config, "a") as f:
        f.write("      shrinking: {format: volumes-3d, scan_root: shrinking}\n")
    daemon.reload()
    path = "/v1/datasets/shrinking/scans/0000003_V00/image"
    try:
        after_head(lambda reply: os.truncate(target, 1 << 16) if reply.getheader("Content-Length") == str(32 * MiB) else None)
        error = failure(lambda: Client(daemon.base, retries=3, backoff=0.01).volume("shrinking", "0000003_V00"))
        wait_logged(daemon, path, 1)
        time.sleep(1)  # time for a retry to show
        lines = access_lines(daemon, path)
        assert len(lines) == 1, "the request was sent %d times:\n%s\n%r" % (len(lines), "\n".join(lines), error)
        assert "body=aborted" in lines[0], lines[0]
        assert isinstance(error, truncated_type()), repr(error)
        assert error.status == 200 and error.expected == 32 * MiB and error.received < 32 * MiB, str(error)
    finally:
        shutil.copy(source, target)


def test_an_overlap_found_late_in_a_streamed_labels_mask(daemon):
    """medsegd cuts the streamed body where it finds the overlap (or, should it find it before the
    head, answers 422): either way one request and a MedsegdError saying what happened."""
    path = "/v1/datasets/late/scans/0000002_V00/mask"
    client = Client(daemon.base, retries=3, backoff=0.01, timeout=180)
    # The same mask without the overlap (one class) streams whole.
    whole = client.volume_mask("late", "0000002_V00", categories=[0], mask_format="labels")
    assert whole.shape == LATE and int(whole[0, 0, 0]) == 1 and int(whole[-1, -1, -1]) == 1
    before = len(wait_logged(daemon, path, 1))  # logged once its body is written out, maybe after it was read
    error = failure(lambda: client.volume_mask("late", "0000002_V00", mask_format="labels"))
    time.sleep(1)
    lines = access_lines(daemon, path)[before:]
    assert len(lines) == 1, "the request was sent %d times:\n%s\n%r" % (len(lines), "\n".join(lines), error)
    assert isinstance(error, MedsegdError), repr(error)
    if isinstance(error, truncated_type()):
        assert "body=aborted" in lines[0] and error.status == 200 and error.received < error.expected, (lines[0], str(error))
        # The server's log says why: the client only saw the body end.
        assert "reason=" in lines[0] and "(%d, %d, %d)" % tuple(n - 1 for n in LATE) in lines[0], lines[0]
    else:
        assert error.status == 422 and "(%d, %d, %d)" % tuple(n - 1 for n in LATE) in error.message, str(error)
