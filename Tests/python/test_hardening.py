"""Regression tests for issue 10 (hardening): tokens cannot be walked around, the cache and ETags
follow the configuration, a client that stops reading is cut off, collation work is bounded,
a reload applies the live limits, and TLS refuses versions before 1.2.

Each test starts its own medsegd on 127.0.0.1 (a free port) over its own h5py-written data in a
temporary folder, and stops every process it starts."""
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

import h5py
import numpy as np
import pytest

from conftest import free_port, in_dtype
from medsegd_process import MedsegdProcess

ETAG = re.compile(r'^"[0-9a-f]{32}"$')
TIMEOUT = 30  # seconds, any single request


# --------------------------------------------------------------------------------------------
# Helpers


class Daemon(MedsegdProcess):
    """`medsegd serve` as a child process (see MedsegdProcess), over TLS with `tls`."""

    def __init__(self, config, port=None, port_in_config=False, tls=False):
        self.tls = tls
        super().__init__(config, port=port, port_in_config=port_in_config)

    def connection(self, timeout=TIMEOUT):
        if not self.tls:
            return super().connection(timeout)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=context)


@pytest.fixture
def folder():
    path = tempfile.mkdtemp(prefix="medsegd-hardening-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemons():
    """Every daemon a test starts, stopped at its end whatever happened."""
    started = []
    yield started
    for daemon in started:
        daemon.stop()


def write_slices(folder, count=4, shape=(16, 16), channels=6, seed=1):
    """slices-2d data as MedSegPy lays it out: `.im` (H x W x 1 float32) and `.seg`
    (H x W x 1 x C uint8); returns the arrays in dataset order."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = []
    for s in range(1, count + 1):
        stem = os.path.join(folder, "%07d_V00-Aug00_%03d" % (1, s))
        image = rng.standard_normal(shape + (1,)).astype(np.float32)
        mask = (rng.random(shape + (1, channels)) > 0.5).astype(np.uint8)
        with h5py.File(stem + ".im", "w") as f:
            f["data"] = image
        with h5py.File(stem + ".seg", "w") as f:
            f["data"] = mask
        arrays.append((image, mask))
    return arrays


def write_config(folder, datasets, server="", categories="[{id: 0, name: a}, {id: [1, 2], name: b}]"):
    path = os.path.join(folder, "medsegd.yaml")
    text = (server + "\n" if server else "") + "families:\n  f:\n    categories: " + categories + "\n    datasets:\n"
    for line in datasets:
        text += "      " + line + "\n"
    with open(path, "w") as f:
        f.write(text)
    return path


def collate(mask, categories):
    """MedSegPy's collect_mask over a 2D slice mask (H x W x 1 x C -> H x W x C')."""
    mask = mask[:, :, 0, :]
    out = []
    for c in categories:
        channels = c if isinstance(c, (list, tuple)) else [c]
        out.append(in_dtype(np.sum([mask[..., k] for k in channels], axis=0), mask.dtype))
    return np.stack(out, axis=-1)


def error_of(body):
    return json.loads(body)["error"]


def raw_exchange(port, request_bytes, timeout=10):
    """Sends bytes as they are on a fresh socket; returns (status or None, whole reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request_bytes)
        chunks = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            data = b"".join(chunks)
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if match and len(rest) >= int(match.group(1)):
                    break
    data = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(match.group(1)) if match else None), data


# --------------------------------------------------------------------------------------------
# 1. Tokens: deny by default, exact comparison


TOKEN = "s3cr3t-Token_Q7x"

PROTECTED = [
    ("GET", "//v1/datasets", None),
    ("GET", "///v1/datasets/D/items/0/image", None),
    ("POST", "//v1/datasets/D/batch", {"indices": [0]}),
    ("GET", "/metrics/", None),
    ("GET", "//metrics", None),
    ("GET", "/v1/datasets/", None),
    ("GET", "/v1//datasets", None),
    ("GET", "/v1/datasets", None),
    ("GET", "/metrics", None),
    ("GET", "/nonexistent", None),
]


def test_tokens_deny_by_default_and_compare_exactly(folder, daemons):
    write_slices(os.path.join(folder, "2d"))
    with open(os.path.join(folder, "tokens"), "w") as f:
        f.write("# the training jobs' token\n\n" + TOKEN + "\n")
    path = write_config(folder, ["D: {format: slices-2d, scan_root: 2d}"], server="server: {tokens_file: tokens}")
    daemon = Daemon(path)
    daemons.append(daemon)

    # Without a token: 401 on every route outside the allow-list, unknown routes included.
    for method, route, body in PROTECTED:
        status, headers, data = daemon.request(method, route, body=body)
        assert status == 401, (method, route, status, data[:300])
        assert error_of(data)["code"] == "unauthorized", (route, data)
    # The allow-list, however the path is spelled.
    for route in ["/healthz", "/readyz", "/openapi.yaml", "//healthz", "/healthz/"]:
        status, _, data = daemon.request("GET", route)
        assert status == 200, (route, status, data[:300])

    # With the token: the protected routes answer (an unknown route is then a plain 404).
    auth = {"Authorization": "Bearer " + TOKEN}
    for method, route, body in PROTECTED:
        status, headers, data = daemon.request(method, route, body=body, headers=auth)
        expected = 404 if route == "/nonexistent" else 200
        assert status == expected, (method, route, status, data[:300])
    status, _, data = daemon.request("GET", "/v1/datasets/", headers=auth)
    assert [d["name"] for d in json.loads(data)["datasets"]] == ["D"]
    status, headers, data = daemon.request("GET", "///v1/datasets/D/items/0/image", headers=auth)
    assert np.load(io.BytesIO(data)).shape == (16, 16, 1)
    status, _, data = daemon.request("GET", "//metrics", headers=auth)
    assert b"medsegd_catalog_ready" in data

    # Anything but the exact token is refused: sent as raw bytes (no client-side checks).
    def with_token(value):
        return (b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
                + value + b"\r\n\r\n")

    token = TOKEN.encode()
    status, data = raw_exchange(daemon.port, with_token(token))
    assert status == 200, data[:300]
    wrong = {
        "NUL": token + b"\x00",
        "256 NULs": token + b"\x00" * 256,
        "extra character": token + b"X",
        "prefix": token[:-1],
        "short prefix": token[:4],
        "upper case": token.upper(),
        "lower case": token.lower(),
        "empty": b"",
    }
    for what, value in wrong.items():
        status, data = raw_exchange(daemon.port, with_token(value))
        assert status is not None, (what, data[:300])
        if b"\x00" in value:
            # The HTTP parser may refuse a NUL in a header outright; never a 200.
            assert status in (400, 401), (what, status, data[:300])
        else:
            assert status == 401, (what, status, data[:300])
    assert daemon.process.poll() is None


# --------------------------------------------------------------------------------------------
# 2. Cache and ETags follow the configuration


def test_cache_and_etags_follow_reloaded_categories(folder, daemons):
    arrays = write_slices(os.path.join(folder, "2d"))
    datasets = ["D: {format: slices-2d, scan_root: 2d}"]
    server = "server: {cache_bytes: 64MiB}"
    path = write_config(folder, datasets, server=server)
    daemon = Daemon(path)
    daemons.append(daemon)
    route = "/v1/datasets/D/items/0/mask"
    mask = arrays[0][1]

    status, headers, before = daemon.request("GET", route)
    assert status == 200, before[:300]
    old_etag = headers["etag"]
    assert ETAG.match(old_etag), old_etag
    np.testing.assert_array_equal(np.load(io.BytesIO(before)), collate(mask, [0, [1, 2]]))
    # The same request again: the same tag, and 304 with If-None-Match.
    status, headers, again = daemon.request("GET", route)
    assert status == 200 and headers["etag"] == old_etag and again == before
    status, headers, empty = daemon.request("GET", route, headers={"If-None-Match": old_etag})
    assert status == 304 and empty == b"" and headers["etag"] == old_etag

    # Different requests never share a tag.
    q = urllib.parse.quote
    variants = [
        route + "?categories=" + q("[0]"),
        route + "?categories=" + q("[1]"),
        route + "?region=" + q("0:2"),
        route + "?region=" + q("0:3"),
        route + "?background=first",
        "/v1/datasets/D/items/1/mask",
        "/v1/datasets/D/items/0/image",
    ]
    tags = {}
    for variant in variants:
        status, headers, data = daemon.request("GET", variant)
        assert status == 200, (variant, status, data[:300])
        assert ETAG.match(headers["etag"]), (variant, headers["etag"])
        tags[variant] = headers["etag"]
        status, again_headers, again = daemon.request("GET", variant)
        assert status == 200 and again_headers["etag"] == headers["etag"] and again == data, variant
        status, _, empty = daemon.request("GET", variant, headers={"If-None-Match": headers["etag"]})
        assert status == 304 and empty == b"", variant
    assert len(set(tags.values()) | {old_etag}) == len(variants) + 1, tags
    np.testing.assert_array_equal(np.load(io.BytesIO(daemon.request("GET", variants[0])[2])), collate(mask, [0]))
    np.testing.assert_array_equal(np.load(io.BytesIO(daemon.request("GET", variants[1])[2])), collate(mask, [1]))
    np.testing.assert_array_equal(np.load(io.BytesIO(daemon.request("GET", variants[2])[2])), collate(mask, [0, [1, 2]])[0:2])
    np.testing.assert_array_equal(np.load(io.BytesIO(daemon.request("GET", variants[3])[2])), collate(mask, [0, [1, 2]])[0:3])

    # The family's categories change: the default collation changes with them, cache or not.
    write_config(folder, datasets, server=server, categories="[{id: 3, name: c}]")
    daemon.reload()
    status, _, data = daemon.request("GET", "/v1/datasets/D/metadata")
    assert json.loads(data)["category_ids"] == [3]
    status, headers, after = daemon.request("GET", route)
    assert status == 200, after[:300]
    np.testing.assert_array_equal(np.load(io.BytesIO(after)), collate(mask, [3]))
    assert ETAG.match(headers["etag"]) and headers["etag"] != old_etag
    status, _, data = daemon.request("GET", route, headers={"If-None-Match": old_etag})
    assert status == 200 and data == after, (status, data[:300])
    status, _, empty = daemon.request("GET", route, headers={"If-None-Match": headers["etag"]})
    assert status == 304 and empty == b""


# --------------------------------------------------------------------------------------------
# 3. A client that stops reading is cut off; a huge batch opens no pile of files


def test_a_client_that_stops_reading_is_cut_off(folder, daemons):
    os.makedirs(os.path.join(folder, "3d"))
    with h5py.File(os.path.join(folder, "3d", "0000001_V00.h5"), "w") as f:
        f["volume"] = np.random.default_rng(0).standard_normal((512, 512, 64)).astype(np.float32)  # 64 MiB
        f["seg"] = np.zeros((4, 4, 4, 1), np.uint8)
    path = write_config(folder, ["v: {format: volumes-3d, scan_root: 3d}"], server="server: {idle_timeout: 1s, cache_bytes: 0}",
                        categories="[{id: 0, name: a}]")
    daemon = Daemon(path)
    daemons.append(daemon)
    # The background fingerprint pass reads the whole volume (seconds of CPU in a debug build):
    # done before anything is measured, so that only the dropped client is.
    daemon.wait_fingerprints()
    volume_bytes = 512 * 512 * 64 * 4
    baseline_files = daemon.open_files()

    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(10)
        stalled.connect(("127.0.0.1", daemon.port))
        stalled.sendall(b"GET /v1/datasets/v/scans/0000001_V00/image?format=raw HTTP/1.1\r\nHost: x\r\n\r\n")
        # Read nothing (a peek takes nothing): once the response has begun, the socket buffers
        # fill and the response makes no progress for idle_timeout.
        assert stalled.recv(1, socket.MSG_PEEK) == b"H"
        time.sleep(6)
        received, eof = 0, False
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                chunk = stalled.recv(1 << 20)
            except ConnectionResetError:
                eof = True  # closed by the server with data unsent: as good as EOF here
                break
            except socket.timeout:
                break
            if not chunk:
                eof = True
                break
            received += len(chunk)
    finally:
        stalled.close()
    assert eof, "the server kept the stalled connection open (%d bytes read)" % received
    assert received < volume_bytes, "the whole volume arrived (%d bytes): the connection was not cut" % received

    # The reading stopped: the file handles go (waited for: a loaded machine is slow to get there).
    deadline = time.time() + 20
    while daemon.open_files() > baseline_files + 1 and time.time() < deadline:
        time.sleep(0.1)
    assert daemon.open_files() <= baseline_files + 1, (baseline_files, daemon.open_files())
    # Then, after a moment's grace, the server idles: a few percent of a core, where streaming the
    # volume on would take a whole one.
    time.sleep(1)
    cpu = daemon.cpu_seconds()
    time.sleep(2)
    assert daemon.cpu_seconds() - cpu < 0.4, "the server kept working for a client it dropped"
    status, _, _ = daemon.request("GET", "/healthz")
    assert status == 200
    assert daemon.process.poll() is None


def test_a_batch_over_max_response_bytes_is_413_without_opening_files(folder, daemons):
    write_slices(os.path.join(folder, "2d"), count=64, shape=(64, 64))  # 16 KiB image + 24 KiB mask per item
    path = write_config(folder, ["D: {format: slices-2d, scan_root: 2d}"], server="server: {max_response_bytes: 1MiB, cache_bytes: 0}")
    daemon = Daemon(path)
    daemons.append(daemon)
    route = "/v1/datasets/D/batch"
    # A small batch fits: the limit is what refuses the large one.
    status, _, data = daemon.request("POST", route, body={"indices": [0, 1, 0, 1]})
    assert status == 200, data[:300]
    assert np.load(io.BytesIO(data))["image"].shape == (4, 64, 64, 1)

    baseline_files = daemon.open_files()
    peak = [baseline_files]
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], daemon.open_files())
            except OSError:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # 512 (max_batch_items) indices, each item 8 times: 128 distinct files behind them.
        status, _, data = daemon.request("POST", route, body={"indices": list(range(64)) * 8})
        right_after = daemon.open_files()
    finally:
        done.set()
        watcher.join()
    assert status == 413, (status, data[:300])
    assert error_of(data)["code"] == "too_large", data
    assert right_after <= baseline_files + 2, (baseline_files, right_after)
    assert peak[0] <= baseline_files + 16, "open files went from %d to %d during the batch" % (baseline_files, peak[0])
    assert daemon.request("GET", "/healthz")[0] == 200


# --------------------------------------------------------------------------------------------
# 4. Collation work is bounded


def test_repeated_channels_are_refused(folder, daemons):
    write_slices(os.path.join(folder, "2d"), count=2)
    path = write_config(folder, ["D: {format: slices-2d, scan_root: 2d}"])
    daemon = Daemon(path)
    daemons.append(daemon)
    batch = "/v1/datasets/D/batch"

    status, _, data = daemon.request("POST", batch, body={"indices": [0], "categories": [[0, 0]]})
    assert status == 400, data[:300]
    error = error_of(data)
    assert error["code"] == "bad_request" and "twice" in error["message"] and "0" in error["message"], error

    body = {"indices": [0, 1], "categories": [[0, 1] * 500 for _ in range(300)]}
    assert len(json.dumps(body)) < 1 << 20
    started = time.time()
    status, _, data = daemon.request("POST", batch, body=body)
    assert status == 400, data[:300]
    error = error_of(data)
    assert error["code"] == "bad_request" and "twice" in error["message"], error
    assert time.time() - started < 10

    status, _, data = daemon.request("GET", "/v1/datasets/D/items/0/mask?categories=" + urllib.parse.quote("[[1,1]]"))
    assert status == 400, data[:300]
    error = error_of(data)
    assert error["code"] == "bad_request" and "twice" in error["message"] and "1" in error["message"], error
    # A class without repeats is still served.
    status, _, data = daemon.request("GET", "/v1/datasets/D/items/0/mask?categories=" + urllib.parse.quote("[[1,2]]"))
    assert status == 200, data[:300]


def test_cheap_requests_stay_fast_while_large_batches_run(folder, daemons):
    arrays = write_slices(os.path.join(folder, "2d"), count=8, shape=(64, 64))
    path = write_config(folder, ["D: {format: slices-2d, scan_root: 2d}"], server="server: {cache_bytes: 0}")
    daemon = Daemon(path)
    daemons.append(daemon)
    daemon.wait_fingerprints()  # its CPU time below is the batches' only
    # Each: 64 items x 300 classes of 6 channels, ~80 MB of masks, seconds of collation.
    body = {"indices": list(range(8)) * 8, "categories": [[0, 1, 2, 3, 4, 5]] * 300}
    results = []

    def heavy():
        started = time.time()
        status, _, data = daemon.request("POST", "/v1/datasets/D/batch", body=body, timeout=120)
        results.append((status, len(data), time.time() - started, data[:300] if status != 200 else b""))

    threads = [threading.Thread(target=heavy) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        # Until the server works on them (its CPU time moves): a guessed sleep may end before a
        # loaded machine has even sent them.
        cpu, deadline = daemon.cpu_seconds(), time.time() + 30
        while daemon.cpu_seconds() - cpu < 0.3 and any(t.is_alive() for t in threads) and time.time() < deadline:
            time.sleep(0.02)
        busy = all(thread.is_alive() for thread in threads)
        started = time.time()
        status, _, data = daemon.request("GET", "/v1/datasets/D/items/0/image", timeout=60)
        elapsed = time.time() - started
    finally:
        for thread in threads:
            thread.join(timeout=150)
    assert status == 200, data[:300]
    np.testing.assert_array_equal(np.load(io.BytesIO(data)), arrays[0][0])
    assert len(results) == 2 and all(r[0] == 200 for r in results), results
    # Measured against the batches themselves (a debug build on a loaded machine is slow at
    # both): waiting behind one would take about as long as it.
    heavy = min(r[2] for r in results)
    assert elapsed < max(2.0, heavy / 2), (elapsed, heavy)
    # 64 x 64 x 64 x 300 uint8 masks: the heavy requests did real work.
    assert all(r[1] > 64 * 64 * 64 * 300 for r in results), results
    assert busy, "the heavy batches ended before the cheap request was sent: %r" % results


# --------------------------------------------------------------------------------------------
# 5. A reload applies the live limits, and names the ones that need a restart


def start_for_reloads(folder, daemons, **keys):
    """A daemon whose port is the config's own (so that a reload may try to change it); returns
    it and a function that rewrites the config with other server keys."""
    write_slices(os.path.join(folder, "2d"), count=6)
    datasets = ["D: {format: slices-2d, scan_root: 2d}"]
    port = free_port()

    def rewrite(**keys):
        settings = {"port": port}
        settings.update(keys)
        write_config(folder, datasets, server="server: {" + ", ".join("%s: %s" % item for item in settings.items()) + "}")

    rewrite(**keys)
    daemon = Daemon(os.path.join(folder, "medsegd.yaml"), port=port, port_in_config=True)
    daemons.append(daemon)
    return daemon, rewrite


def test_reload_applies_max_batch_items(folder, daemons):
    daemon, rewrite = start_for_reloads(folder, daemons, max_batch_items=4)
    batch = "/v1/datasets/D/batch"
    five = {"indices": [0, 1, 2, 3, 4]}
    status, _, data = daemon.request("POST", batch, body=five)
    assert status == 413 and error_of(data)["code"] == "too_large", (status, data[:300])
    assert "max_batch_items" in error_of(data)["message"], data
    rewrite(max_batch_items=8)
    daemon.reload()
    status, _, data = daemon.request("POST", batch, body=five)
    assert status == 200, (status, data[:300])
    archive = np.load(io.BytesIO(data))
    assert archive["image"].shape == (5, 16, 16, 1) and archive["mask"].shape == (5, 16, 16, 2)
    status, _, data = daemon.request("POST", batch, body={"indices": list(range(6)) + [0, 1, 2]})
    assert status == 413 and error_of(data)["code"] == "too_large", (status, data[:300])


def test_reload_applies_max_response_bytes(folder, daemons):
    daemon, rewrite = start_for_reloads(folder, daemons)
    # One image is 1,024 bytes of data plus the .npy header.
    assert daemon.request("GET", "/v1/datasets/D/items/0/image")[0] == 200
    rewrite(max_response_bytes=512)
    daemon.reload()
    # An image not asked for before, then the one just served (and cached): both over the limit.
    for index in (1, 0):
        status, _, data = daemon.request("GET", "/v1/datasets/D/items/%d/image" % index)
        assert status == 413 and error_of(data)["code"] == "too_large", (index, status, data[:300])
    status, _, data = daemon.request("GET", "/v1/datasets/D/items/0/image?region=" + urllib.parse.quote("0:4,0:4"))
    assert status == 200 and np.load(io.BytesIO(data)).shape == (4, 4, 1), (status, data[:300])


def access_lines(log):
    """Access-log lines: `... method=GET ... route=/v1/datasets status=200 [MedSegServer] request`,
    without the readiness polls of the start (a line is written once its body has been sent, so
    the last poll's line may come after the poll's answer)."""
    return [line for line in log.splitlines() if " route=" in line and line.endswith("] request") and "route=/readyz" not in line]


def wait_access_lines(daemon, count, timeout=20):
    """The access-log lines once there are at least `count` (a line may follow its response)."""
    deadline = time.time() + timeout
    while len(access_lines(daemon.log)) < count and time.time() < deadline:
        time.sleep(0.05)
    return access_lines(daemon.log)


def test_reload_applies_access_log(folder, daemons):
    daemon, rewrite = start_for_reloads(folder, daemons)
    lines = len(wait_access_lines(daemon, 0))
    assert daemon.request("GET", "/v1/datasets")[0] == 200
    new = wait_access_lines(daemon, lines + 1)[lines:]
    assert len(new) == 1 and "route=/v1/datasets " in new[0] and "status=200" in new[0], new
    rewrite(access_log="false")
    daemon.reload()
    time.sleep(0.2)
    lines = len(access_lines(daemon.log))
    for route in ["/v1/datasets", "/v1/datasets/D/items/0/image", "/nonexistent"]:
        daemon.request("GET", route)
    time.sleep(0.2)
    assert access_lines(daemon.log)[lines:] == []
    rewrite(access_log="true")
    daemon.reload()
    assert daemon.request("GET", "/v1/datasets")[0] == 200
    # Exactly one more: none of the three above came late either.
    assert len(wait_access_lines(daemon, lines + 1)) == lines + 1


def test_reload_names_the_settings_that_need_a_restart(folder, daemons):
    daemon, rewrite = start_for_reloads(folder, daemons, max_batch_items=4)
    log_before = len(daemon.log)
    rewrite(port=free_port(), cache_bytes="1MiB", max_batch_items=8)
    daemon.reload()
    log = daemon.log[log_before:]
    warnings = [line for line in log.splitlines() if "take effect at the next restart" in line]
    assert len(warnings) == 1, log
    assert re.search(r"\bport\b", warnings[0]) and "cache_bytes" in warnings[0], warnings[0]
    assert "max_batch_items" not in warnings[0], warnings[0]
    # Still listening where it was, and the live key applied.
    status, _, data = daemon.request("POST", "/v1/datasets/D/batch", body={"indices": [0, 1, 2, 3, 4]})
    assert status == 200, (status, data[:300])
    # Back to the settings it runs with, one live key changed: no warning.
    log_before = len(daemon.log)
    rewrite(max_batch_items=6)
    daemon.reload()
    log = daemon.log[log_before:]
    assert "take effect at the next restart" not in log, log
    status, _, data = daemon.request("POST", "/v1/datasets/D/batch", body={"indices": [0, 1, 2, 3, 4, 5, 0]})
    assert status == 413, (status, data[:300])


# --------------------------------------------------------------------------------------------
# 6. TLS 1.2 or later only


def client_context(minimum=None, maximum=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


TLS_NAMES = {ssl.TLSVersion.TLSv1: "TLSv1", ssl.TLSVersion.TLSv1_1: "TLSv1.1"}


def client_can_speak(version, cert, key):
    """Whether this Python/OpenSSL completes a handshake at `version` at all (against a local
    Python server limited to it): otherwise medsegd refusing it would prove nothing."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
        server_context.minimum_version = version
        server_context.maximum_version = version
        server_context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError):
        return False
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    outcome = {}

    def serve():
        try:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                outcome["server"] = tls.version()
        except (OSError, ssl.SSLError) as error:
            outcome["server_error"] = repr(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client_context(minimum=version, maximum=version).wrap_socket(raw) as tls:
                return tls.version() == TLS_NAMES[version]
    except (OSError, ssl.SSLError):
        return False
    finally:
        thread.join(timeout=15)
        listener.close()


def test_tls_refuses_versions_before_1_2(folder, daemons):
    write_slices(os.path.join(folder, "2d"), count=2)
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    path = write_config(folder, ["D: {format: slices-2d, scan_root: 2d}"],
                        server="server: {tls: {certificate: cert.pem, private_key: key.pem}}")
    daemon = Daemon(path, tls=True)
    daemons.append(daemon)

    # TLS 1.2 and later: served.
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
        with client_context(minimum=ssl.TLSVersion.TLSv1_2).wrap_socket(raw) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    connection = http.client.HTTPSConnection("127.0.0.1", daemon.port, timeout=TIMEOUT,
                                             context=client_context(minimum=ssl.TLSVersion.TLSv1_2))
    try:
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        assert reply.status == 200
        reply.read()
    finally:
        connection.close()

    # TLS 1.1 and earlier: refused in the handshake (the client offers that version only).
    if not client_can_speak(ssl.TLSVersion.TLSv1_1, cert, key):
        pytest.skip("this Python/OpenSSL build cannot complete a TLS 1.1 handshake even with a local "
                    "TLS 1.1 server, so a refusal by medsegd would prove nothing")
    versions = [ssl.TLSVersion.TLSv1_1]
    if client_can_speak(ssl.TLSVersion.TLSv1, cert, key):
        versions.append(ssl.TLSVersion.TLSv1)
    for version in versions:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with client_context(minimum=version, maximum=version).wrap_socket(raw) as tls:
                    pytest.fail("medsegd completed a %s handshake" % tls.version())
    assert daemon.process.poll() is None


# --------------------------------------------------------------------------------------------
# Every limit is reached: max_connections (the others are reached above and in test_hostile.py)


def test_connections_over_max_connections_wait_their_turn(folder, daemons):
    write_slices(os.path.join(folder, "2d"), count=1)
    daemon = Daemon(write_config(folder, ["d: {format: slices-2d, scan_root: 2d}"], server="server: {max_connections: 2}"))
    daemons.append(daemon)
    held = []
    for _ in range(2):
        connection = daemon.connection()
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b'{"status":"ok"}\n'
        held.append(connection)
    # A third connection is queued, not served, while two are open ...
    waiting = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    waiting.settimeout(1.5)
    with pytest.raises(socket.timeout):
        waiting.recv(1024)
    # ... and answered once one of them closes.
    held.pop().close()
    waiting.settimeout(10)
    assert waiting.recv(1024).startswith(b"HTTP/1.1 200")
    waiting.close()
    for connection in held:
        connection.close()


def test_shutdown_grace_cuts_a_response_that_would_outlast_it(folder, daemons):
    os.makedirs(os.path.join(folder, "3d"))
    with h5py.File(os.path.join(folder, "3d", "0000001_V00.h5"), "w") as f:
        f["volume"] = np.zeros((512, 512, 64), np.float32)  # 64 MiB
        f["seg"] = np.zeros((4, 4, 4, 1), np.uint8)
    path = write_config(folder, ["v: {format: volumes-3d, scan_root: 3d}"],
                        server="server: {shutdown_grace: 1s, idle_timeout: 60s, cache_bytes: 0}", categories="[{id: 0, name: a}]")
    daemon = Daemon(path)
    daemons.append(daemon)
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(10)
        slow.connect(("127.0.0.1", daemon.port))
        slow.sendall(b"GET /v1/datasets/v/scans/0000001_V00/image?format=raw HTTP/1.1\r\nHost: x\r\n\r\n")
        assert slow.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.time()
        daemon.process.send_signal(signal.SIGTERM)
        # The response would take minutes at this pace; the grace period ends it after 1 s.
        daemon.process.wait(timeout=15)
        assert time.time() - started < 10
    finally:
        slow.close()


def test_clients_that_read_nothing_hold_at_most_max_inflight_bytes(folder, daemons):
    # 40 items of 4 MiB each: built whole (under the 8 MiB streaming threshold) and never read.
    os.makedirs(os.path.join(folder, "big"))
    zeros = np.zeros((1024, 1024, 1), np.float32)
    for s in range(1, 41):
        with h5py.File(os.path.join(folder, "big", "%07d_V00-Aug00_%03d.im" % (1, s)), "w") as f:
            f["data"] = zeros + s
    path = write_config(folder, ["d: {format: slices-2d, scan_root: big}"],
                        server="server: {max_inflight_bytes: 16MiB, idle_timeout: 3s, cache_bytes: 0}")
    daemon = Daemon(path)
    daemons.append(daemon)

    def rss_mib():
        return daemon.rss_kib() / 1024

    daemon.wait_fingerprints()  # the background pass reads every slice once
    baseline = rss_mib()
    stalled = []
    try:
        for index in range(40):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.settimeout(10)
            client.connect(("127.0.0.1", daemon.port))
            client.sendall(b"GET /v1/datasets/d/items/%d/image?format=raw HTTP/1.1\r\nHost: x\r\n\r\n" % index)
            stalled.append(client)
        peak = baseline
        for _ in range(20):
            time.sleep(0.1)
            peak = max(peak, rss_mib())
        # 160 MiB of bodies were asked for; at most 16 MiB of them may wait in memory at once.
        assert peak - baseline < 64, "RSS grew by %.0f MiB for clients that read nothing" % (peak - baseline)
    finally:
        for client in stalled:
            client.close()
    status, _, body = daemon.request("GET", "/v1/datasets/d/items/39/image?format=raw", timeout=30)
    assert status == 200 and np.frombuffer(body, np.float32)[0] == 40.0


def test_idle_timeout_0_means_never(folder, daemons):
    # A zero idle timer once closed every connection before it was answered.
    write_slices(os.path.join(folder, "2d"), count=1)
    daemon = Daemon(write_config(folder, ["d: {format: slices-2d, scan_root: 2d}"], server="server: {idle_timeout: 0}"))
    daemons.append(daemon)
    connection = daemon.connection()
    for _ in range(2):
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b'{"status":"ok"}\n'
    connection.close()


def test_fixed_shape_json_is_the_same_bytes_every_time(folder, daemons):
    write_slices(os.path.join(folder, "2d"), count=1)
    daemon = Daemon(write_config(folder, ["d: {format: slices-2d, scan_root: 2d}"]))
    daemons.append(daemon)
    errors = {daemon.request("GET", "/v1/datasets/nope")[2] for _ in range(8)}
    ready = {daemon.request("GET", "/readyz")[2] for _ in range(8)}
    assert len(errors) == 1 and next(iter(errors)).startswith(b'{"error":{"code":"not_found","message":')
    assert ready == {b'{"datasets":1,"status":"ready"}\n'}
