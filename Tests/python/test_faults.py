"""Broken files, reloads under load, kills and restarts, stalled and vanishing clients: medsegd
keeps serving what it can, answers the rest with JSON errors, and leaks nothing."""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import h5py
import numpy as np
import pytest

from conftest import ROOT, medsegd_binary
from medsegd_process import MedsegdProcess

try:
    import medsegd_client
except ImportError:
    import sys
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    import medsegd_client

CATEGORIES = "    categories: [{id: 0, name: a}, {id: [1, 2], name: b}, {id: 3, name: c}, {id: [4, 5], name: d}]\n"


_binary_copy = []


def unprivileged_binary():
    """The binary where `nobody` may run it: the build folder may sit in a private home."""
    if os.geteuid() != 0:
        return medsegd_binary()
    if not _binary_copy:
        folder = tempfile.mkdtemp(prefix="medsegd-bin-")
        atexit.register(shutil.rmtree, folder, True)
        os.chmod(folder, 0o755)
        target = os.path.join(folder, "medsegd")
        shutil.copy2(medsegd_binary(), target)
        os.chmod(target, 0o755)
        _binary_copy.append(target)
    return _binary_copy[0]


class Daemon(MedsegdProcess):
    """medsegd serve as a child process (see MedsegdProcess); as `nobody` when the tests run as
    root, so that file permissions mean something. A restart keeps the port. With setpriv, the
    server is exec'ed in place: `pid` is the server's."""

    def __init__(self, config, port=None, extra_env=None):
        super().__init__(config, port=port, env=extra_env)

    def command(self):
        command = [unprivileged_binary()] + super().command()[1:]
        if os.geteuid() == 0 and shutil.which("setpriv"):
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + command
        return command

    def get(self, path, timeout=30):
        reply = self.exchange("GET", path, timeout=timeout)
        return reply.status, reply.body


@pytest.fixture
def folder():
    # Under /tmp with open permissions: the server may run as nobody.
    path = tempfile.mkdtemp(prefix="medsegd-faults-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_slices(folder, count=4, subject=1):
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o755)
    rng = np.random.default_rng(subject)
    for s in range(1, count + 1):
        stem = os.path.join(folder, "%07d_V00-Aug00_%03d" % (subject, s))
        with h5py.File(stem + ".im", "w") as f:
            f["data"] = rng.standard_normal((16, 16, 1)).astype(np.float32)
        with h5py.File(stem + ".seg", "w") as f:
            f["data"] = (rng.random((16, 16, 1, 6)) > 0.5).astype(np.uint8)
        for path in (stem + ".im", stem + ".seg"):
            os.chmod(path, 0o644)


def config(folder, datasets, server=""):
    path = os.path.join(folder, "medsegd.yaml")
    with open(path, "w") as f:
        f.write(server + "families:\n  f:\n" + CATEGORIES + "    datasets:\n")
        for line in datasets:
            f.write("      " + line + "\n")
    os.chmod(path, 0o644)
    return path


def test_broken_files_are_422_per_item_logged_and_checked(folder):
    data = os.path.join(folder, "2d")
    write_slices(data, count=8)
    stems = sorted(f[:-3] for f in os.listdir(data) if f.endswith(".im"))
    broken = {}
    # 1: truncated; 2: not HDF5; 3: no `data`; 4: a mask with 2 channels; 5: a compound dataset;
    # 6: unreadable (permissions); 7: deleted after the catalog is loaded.
    path = os.path.join(data, stems[1] + ".im")
    os.truncate(path, os.path.getsize(path) // 2)
    broken[1] = stems[1]
    with open(os.path.join(data, stems[2] + ".im"), "w") as f:
        f.write("this is not HDF5")
    broken[2] = stems[2]
    with h5py.File(os.path.join(data, stems[3] + ".im"), "w") as f:
        f["other"] = np.zeros((16, 16, 1), np.float32)
    broken[3] = stems[3]
    with h5py.File(os.path.join(data, stems[4] + ".seg"), "w") as f:
        f["data"] = np.zeros((16, 16, 1, 2), np.uint8)
    broken[4] = stems[4] + ".seg"
    with h5py.File(os.path.join(data, stems[5] + ".im"), "w") as f:
        f["data"] = np.zeros((16,), dtype=[("a", "<i4"), ("b", "<f8")])
    broken[5] = stems[5]
    os.chmod(os.path.join(data, stems[6] + ".im"), 0)
    broken[6] = stems[6]
    for name in os.listdir(data):
        if name != stems[6] + ".im":
            os.chmod(os.path.join(data, name), 0o644)
    path = config(folder, ["d: {format: slices-2d, scan_root: 2d}"])

    check = subprocess.run([medsegd_binary(), "check", "--config", path], capture_output=True, text=True)
    assert check.returncode == 1
    for index in [1, 2, 3, 4, 5] + ([6] if os.geteuid() != 0 else []):
        assert broken[index] in check.stdout, (index, check.stdout)

    daemon = Daemon(path)
    try:
        os.remove(os.path.join(data, stems[7] + ".im"))
        broken[7] = stems[7]
        for index, stem in enumerate(stems):
            route = "/v1/datasets/d/items/%d/%s" % (index, "mask" if index == 4 else "image")
            status, body = daemon.get(route)
            if index in broken:
                assert status == 422, (index, status, body)
                error = json.loads(body)["error"]
                assert error["code"] == "unprocessable" and stem in error["message"]
                assert folder not in error["message"]
            else:
                assert status == 200, (index, body)
        log = daemon.log
        for index, name in broken.items():
            if index == 6 and os.geteuid() == 0 and not shutil.which("setpriv"):
                continue
            assert "data cannot be served" in log and name in log, name
        # The good items keep being served after all that.
        assert daemon.get("/v1/datasets/d/items/0")[0] == 200
        # A file replaced while the server runs is served anew.
        with h5py.File(os.path.join(data, stems[0] + ".im"), "w") as f:
            f["data"] = np.full((16, 16, 1), 7, np.float32)
        status, body = daemon.get("/v1/datasets/d/items/0/image?format=raw")
        assert status == 200 and np.all(np.frombuffer(body, "<f4") == 7)
    finally:
        daemon.stop()


def test_reloads_in_a_loop_while_clients_fetch(folder):
    write_slices(os.path.join(folder, "a"), count=6, subject=1)
    write_slices(os.path.join(folder, "b"), count=6, subject=2)
    one = ["a: {format: slices-2d, scan_root: a}"]
    two = one + ["b: {format: slices-2d, scan_root: b}"]
    path = config(folder, one)
    daemon = Daemon(path)
    failures, lists = [], set()
    stop = threading.Event()

    def fetch():
        connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        while not stop.is_set():
            for route in ["/v1/datasets", "/v1/datasets/a/items/3", "/v1/datasets/a/dicts"]:
                try:
                    connection.request("GET", route)
                    reply = connection.getresponse()
                    body = reply.read()
                except (OSError, http.client.HTTPException) as error:
                    failures.append((route, repr(error)))
                    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
                    continue
                if reply.status != 200:
                    failures.append((route, reply.status, body[:200]))
                elif route == "/v1/datasets":
                    lists.add(tuple(d["name"] for d in json.loads(body)["datasets"]))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round in range(30):
            config(folder, two if round % 2 == 0 else one)
            daemon.process.send_signal(signal.SIGHUP)
            time.sleep(0.05)
    finally:
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        daemon.stop()
    assert not failures, failures[:5]
    # Every answer was one whole catalog or the other, never a mixture.
    assert lists <= {("a",), ("a", "b")} and lists == {("a",), ("a", "b")}
    assert daemon.process.returncode == 0


def test_sigkill_and_restart_lose_nothing_with_retries(folder):
    write_slices(os.path.join(folder, "a"), count=6)
    path = config(folder, ["a: {format: slices-2d, scan_root: a}"])
    daemon = Daemon(path)
    client = medsegd_client.Client(daemon.base, retries=8, backoff=0.1)
    results, errors = [], []

    def train():
        for step in range(150):
            try:
                results.append(client.image("a", step % 6).shape)
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(error))
            time.sleep(0.005)

    thread = threading.Thread(target=train)
    thread.start()
    try:
        time.sleep(0.2)
        daemon.stop(signal.SIGKILL)
        time.sleep(0.5)
        daemon.start()
        thread.join(timeout=60)
    finally:
        daemon.stop()
    assert not errors, errors[:3]
    assert len(results) == 150


def test_stalled_and_slow_clients(folder):
    os.makedirs(os.path.join(folder, "3d"))
    os.chmod(os.path.join(folder, "3d"), 0o755)
    volume_path = os.path.join(folder, "3d", "0000001_V00.h5")
    with h5py.File(volume_path, "w") as f:
        f["volume"] = np.random.default_rng(0).standard_normal((512, 512, 64)).astype(np.float32)  # 64 MiB
        f["seg"] = np.zeros((4, 4, 4, 1), np.uint8)
    os.chmod(volume_path, 0o644)
    path = config(folder, ["v: {format: volumes-3d, scan_root: 3d}"], server="server: {idle_timeout: 1s, cache_bytes: 0}\n")
    daemon = Daemon(path)
    try:
        daemon.wait_fingerprints()  # the background pass reads the volume once
        baseline_rss = daemon.rss_kib()
        baseline_files = daemon.open_files()
        # A connection that sends half a request and stalls is dropped after the idle timeout.
        stalled = socket.create_connection(("127.0.0.1", daemon.port))
        stalled.sendall(b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\n")
        stalled.settimeout(30)
        started = time.time()
        assert stalled.recv(4096) == b""
        assert time.time() - started < 15  # idle_timeout is 1 s; without it the recv times out
        # A reader that takes nothing: the server does not buffer the 64 MiB volume.
        slow = socket.create_connection(("127.0.0.1", daemon.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"GET /v1/datasets/v/scans/0000001_V00/image?format=raw HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.settimeout(30)
        assert slow.recv(1, socket.MSG_PEEK) == b"H"  # the response has begun (a loaded machine is slow to get there)
        time.sleep(2)
        grown = daemon.rss_kib() - baseline_rss
        assert grown < 24 * 1024, "RSS grew %d KiB for a stalled reader" % grown
        # A client that leaves mid-stream: the reading stops and every file handle is released.
        slow.recv(1 << 16)
        slow.close()
        deadline = time.time() + 20
        while daemon.open_files() > baseline_files + 1 and time.time() < deadline:
            time.sleep(0.1)
        assert daemon.open_files() <= baseline_files + 1
        # After a moment's grace the server idles: a few percent of a core, where reading on
        # for the client would take a whole one.
        time.sleep(1)
        cpu = daemon.cpu_seconds()
        time.sleep(2)
        assert daemon.cpu_seconds() - cpu < 0.4, "the server kept working for a client that left"
        assert daemon.get("/healthz")[0] == 200
    finally:
        daemon.stop()
