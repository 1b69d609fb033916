"""Regression tests for a hostile review of how medsegd reads storage: sparse contiguous volumes,
masks with a huge channel axis, bytes HDF5 leaves uninitialized, the decoding budget, symbolic
links out of the data roots, manifest single-file items across a reload, paths and addresses in
error messages, element types that were served wrong, and `Vary: Accept`.

The module writes its data with h5py (low-level APIs where needed) into a temporary folder,
serves it with the real binary on 127.0.0.1 (a free port), stops every process it starts by its
PID, removes the folder, and bounds every request with a timeout. After every case the server
must still answer /healthz."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import zlib

import h5py
import numpy as np
import pytest

from conftest import medsegd_binary
from medsegd_process import CONNECTION_ERRORS, MedsegdProcess

TIMEOUT = 30  # seconds, any single request unless a case says less
SECRET_VALUE = 4242.0
SECRET_BYTES = np.float32(SECRET_VALUE).tobytes()
CATEGORIES = "[{id: 0, name: a}, {id: 1, name: b}]"

SPARSE_SCAN = "0000006_V00"
SPARSE_SHAPE = (2, 2 ** 18, 2 ** 17)  # 64 GiB of uint8
CHANNELS_SCAN = "0000002_V00"
BUDGET_EMPTY_SCAN, BUDGET_WRITTEN_SCAN = "0000041_V00", "0000042_V00"
BUDGET_SHAPE, BUDGET_CHUNKS = (8192, 8192, 1024), (1024, 1024, 64)
LINKED_SCAN, REAL_SCAN = "0000009_V00", "0000008_V00"
GONE_SCAN = "0000007_V00"


def stem(subject, slice_id=1):
    return "%07d_V00-Aug00_%03d" % (subject, slice_id)


# --------------------------------------------------------------------------------------------
# The server


class Daemon(MedsegdProcess):
    """`medsegd serve` as a child process (see MedsegdProcess), its requests checked."""

    def __init__(self, config, tmp):
        self.tmp = tmp
        super().__init__(config)

    def assert_alive(self, after):
        assert self.process is not None and self.process.poll() is None, \
            "after %s: medsegd exited with %s\n%s" % (after, self.process and self.process.poll(), self.log[-3000:])
        status = self.request("GET", "/healthz", timeout=10).status
        assert status == 200, "after %s: /healthz %s" % (after, status)

    def get(self, path, method="GET", body=None, headers=None, timeout=TIMEOUT):
        """The request, checked: an answer within the timeout, never a 5xx, never the secret's
        values, errors as JSON; the process answers /healthz afterwards."""
        try:
            reply = self.request(method, path, body=body, headers=headers, timeout=timeout)
        except CONNECTION_ERRORS as error:
            raise AssertionError("%s: no answer within %ss (%r); process exit code %s\n%s" % (
                path, timeout, error, self.process.poll(), self.log[-3000:]))
        assert reply.status < 500, (path, reply.status, reply.body[:400])
        if reply.status >= 400:
            assert reply.headers.get("content-type", "").startswith("application/json"), (path, reply)
            assert reply.message, (path, reply)
        self.assert_alive(path)
        return reply

    def index_of(self, dataset, file_name):
        """The item index of the dict whose file_name ends with `file_name`."""
        reply = self.get("/v1/datasets/%s/dicts" % dataset)
        assert reply.status == 200, reply
        for index, item in enumerate(json.loads(reply.body)):
            if os.path.basename(item["file_name"]) == file_name:
                return index
        raise AssertionError("%s is not an item of %s" % (file_name, dataset))


# --------------------------------------------------------------------------------------------
# The data


def write_volume(path, volume, seg=None):
    with h5py.File(path, "w") as f:
        f.create_dataset("volume", data=volume)
        f.create_dataset("seg", data=np.zeros(volume.shape + (2,), np.uint8) if seg is None else seg)


def write_slice(folder, name, image, mask=None):
    with h5py.File(os.path.join(folder, name + ".im"), "w") as f:
        f.create_dataset("data", data=image)
    if mask is not None:
        with h5py.File(os.path.join(folder, name + ".seg"), "w") as f:
            f.create_dataset("data", data=mask)


def write_sparse(folder):
    """Case 1: a 64 GiB contiguous volume allocated at creation and never written. Returns None,
    or why the filesystem cannot hold it."""
    path = os.path.join(folder, SPARSE_SCAN + ".h5")
    try:
        with h5py.File(path, "w") as f:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.CONTIGUOUS)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            space = h5py.h5s.create_simple(SPARSE_SHAPE)
            h5py.h5d.create(f.id, b"volume", h5py.h5t.STD_U8LE, space, dcpl=dcpl)
            f.create_dataset("seg", data=np.zeros((2, 2, 2, 1), np.uint8))
    except (OSError, RuntimeError, ValueError) as error:
        if os.path.exists(path):
            os.remove(path)
        return "the filesystem of %s refuses a 64 GiB sparse file: %r" % (folder, error)
    info = os.stat(path)
    if info.st_size < int(np.prod(SPARSE_SHAPE)):
        os.remove(path)
        return "the 64 GiB file was not extended by HDF5 (size %d)" % info.st_size
    if info.st_blocks * 512 > 64 * 2 ** 20:
        os.remove(path)
        return "the filesystem does not keep the file sparse (%d bytes on disk)" % (info.st_blocks * 512)
    return None


def write_world(tmp):
    """Every dataset of the main server, and the secret file outside all their folders."""
    root = os.path.join(tmp, "root")
    secret_folder = os.path.join(tmp, "secret")
    os.makedirs(secret_folder)
    secret = os.path.join(secret_folder, "secret.h5")
    with h5py.File(secret, "w") as f:
        f.create_dataset("data", data=np.full((4, 4, 1), SECRET_VALUE, np.float32))
        f.create_dataset("volume", data=np.full((4, 4, 4), SECRET_VALUE, np.float32))
        f.create_dataset("seg", data=np.ones((4, 4, 4, 2), np.uint8))
    folders = {name: os.path.join(root, name) for name in
               ["plain", "sparse", "channels", "uninit", "budget", "links3d", "links2d", "manifest", "gone3d", "types"]}
    for folder in folders.values():
        os.makedirs(folder)
    rng = np.random.default_rng(20261129)
    world = {"tmp": tmp, "root": root, "secret": secret, "folders": folders}

    # Ordinary slices (heap dirtying, batch bodies, Vary).
    plain = []
    for s in range(1, 4):
        image = (rng.standard_normal((200, 200, 1)) * 50 + 100).astype(np.float32)
        mask = (rng.random((200, 200, 1, 2)) > 0.5).astype(np.uint8)
        write_slice(folders["plain"], stem(1, s), image, mask)
        plain.append(image)
    world["plain"] = plain

    world["sparse_skip"] = write_sparse(folders["sparse"])

    # Case 2: seg of 2^36 channels in chunks of 2^28 bytes, never written.
    with h5py.File(os.path.join(folders["channels"], CHANNELS_SCAN + ".h5"), "w") as f:
        f.create_dataset("volume", data=rng.standard_normal((8, 8, 8)).astype(np.float32))
        f.create_dataset("seg", shape=(8, 8, 8, 2 ** 36), dtype=np.uint8, chunks=(1, 1, 1, 2 ** 28))

    # Case 3: ordinary slices of the same size, then one whose chunks were never written, with
    # fill time "never" and fletcher32 (the HDF5 library's read path).
    for s in range(1, 5):
        write_slice(folders["uninit"], stem(1, s), (rng.standard_normal((200, 200, 1)) * 1e6 + 7).astype(np.float32))
    with h5py.File(os.path.join(folders["uninit"], stem(2) + ".im"), "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((10, 10, 1))
        dcpl.set_fletcher32()
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        h5py.h5d.create(f.id, b"data", h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple((200, 200, 1)), dcpl=dcpl)
    with h5py.File(os.path.join(folders["uninit"], stem(2) + ".im"), "r") as f:
        assert f["data"].id.get_num_chunks() == 0 and f["data"].fletcher32

    # Case 4: 8192 x 8192 x 1024 uint8 in gzip chunks of 64 MiB: none written, and 9 written.
    ones = zlib.compress(b"\x01" * int(np.prod(BUDGET_CHUNKS)))
    for scan, written in [(BUDGET_EMPTY_SCAN, False), (BUDGET_WRITTEN_SCAN, True)]:
        with h5py.File(os.path.join(folders["budget"], scan + ".h5"), "w") as f:
            dataset = f.create_dataset("volume", shape=BUDGET_SHAPE, dtype=np.uint8, chunks=BUDGET_CHUNKS, compression="gzip")
            f.create_dataset("seg", data=np.zeros((2, 2, 2, 2), np.uint8))
            if written:  # dset[0:3072, 0:3072, 0:64] = 1, chunk by chunk, compressed once
                for i in range(3):
                    for j in range(3):
                        dataset.id.write_direct_chunk((i * 1024, j * 1024, 0), ones)
    with h5py.File(os.path.join(folders["budget"], BUDGET_WRITTEN_SCAN + ".h5"), "r") as f:
        assert f["volume"].id.get_num_chunks() == 9 and f["volume"][3071, 3071, 63] == 1 and f["volume"][3072, 0, 0] == 0

    # Case 5a: a volumes-3d folder with a real scan and a link to the secret file.
    write_volume(os.path.join(folders["links3d"], REAL_SCAN + ".h5"), np.ones((4, 4, 4), np.float32))
    os.symlink(secret, os.path.join(folders["links3d"], LINKED_SCAN + ".h5"))
    # Case 5b: a slices-2d folder whose second slice image is a link to the secret file.
    mask = np.zeros((4, 4, 1, 2), np.uint8)
    write_slice(folders["links2d"], stem(1, 1), np.ones((4, 4, 1), np.float32), mask)
    os.symlink(secret, os.path.join(folders["links2d"], stem(1, 2) + ".im"))
    with h5py.File(os.path.join(folders["links2d"], stem(1, 2) + ".seg"), "w") as f:
        f.create_dataset("data", data=mask)
    # Case 5c: a manifest naming a file that does not exist yet, and a real one.
    real = np.full((4, 4, 1), 3.0, np.float32)
    write_slice(folders["manifest"], "real", real, mask)
    with open(os.path.join(folders["manifest"], "m.json"), "w") as f:
        json.dump([{"file_name": "later.im", "scan_id": "later"},
                   {"file_name": "real.im", "sem_seg_file": "real.seg", "scan_id": "real"}], f)
    world["manifest_real"] = real

    # Case 7: a scan file that becomes a directory.
    gone = rng.standard_normal((4, 4, 3)).astype(np.float32)
    write_volume(os.path.join(folders["gone3d"], GONE_SCAN + ".h5"), gone)
    world["gone"] = gone

    # Case 8: an int16 with 8 bits of precision at bit offset 4, and an enum mask over int8.
    padded = np.arange(16, dtype="<i2").reshape(4, 4, 1) - 8
    with h5py.File(os.path.join(folders["types"], stem(1) + ".im"), "w") as f:
        type_ = h5py.h5t.STD_I16LE.copy()
        type_.set_precision(8)
        type_.set_offset(4)
        dataset = h5py.h5d.create(f.id, b"data", type_, h5py.h5s.create_simple((4, 4, 1)))
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, padded)
    with h5py.File(os.path.join(folders["types"], stem(1) + ".im"), "r") as f:
        stored = f["data"].id.get_type()
        assert (stored.get_precision(), stored.get_offset(), stored.get_size()) == (8, 4, 2)
        assert np.array_equal(f["data"][()], padded)
    with h5py.File(os.path.join(folders["types"], stem(2) + ".im"), "w") as f:
        f.create_dataset("data", data=np.ones((4, 4, 1), np.float32))
    enum = h5py.enum_dtype({"OFF": 7, "ON": 9}, basetype="i1")
    with h5py.File(os.path.join(folders["types"], stem(2) + ".seg"), "w") as f:
        f.create_dataset("data", data=np.where(rng.random((4, 4, 1, 2)) > 0.5, 9, 7).astype(np.int8), dtype=enum)
    with h5py.File(os.path.join(folders["types"], stem(2) + ".seg"), "r") as f:
        assert h5py.check_enum_dtype(f["data"].dtype) == {"OFF": 7, "ON": 9}

    datasets = {
        "plain": "{format: slices-2d, scan_root: plain}",
        "sparse": "{format: volumes-3d, scan_root: sparse}",
        "channels": "{format: volumes-3d, scan_root: channels}",
        "uninit": "{format: slices-2d, scan_root: uninit}",
        "budget": "{format: volumes-3d, scan_root: budget}",
        "links3d": "{format: volumes-3d, scan_root: links3d}",
        "links2d": "{format: slices-2d, scan_root: links2d}",
        "manifest": "{format: manifest, path: manifest/m.json}",
        "gone3d": "{format: volumes-3d, scan_root: gone3d}",
        "types": "{format: slices-2d, scan_root: types}",
    }
    world["config"] = write_config(os.path.join(root, "medsegd.yaml"), datasets)
    world["check_links_config"] = write_config(os.path.join(root, "check-links.yaml"), {"links3d": datasets["links3d"]})
    return world


def write_config(path, datasets, server=""):
    text = server + "families:\n  f:\n    categories: " + CATEGORIES + "\n    datasets:\n"
    for name, value in datasets.items():
        text += "      %s: %s\n" % (name, value)
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def world():
    tmp = tempfile.mkdtemp(prefix="medsegd-storage-")
    try:
        yield write_world(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(world):
    with Daemon(world["config"], world["tmp"]) as server:
        yield server


@pytest.fixture(autouse=True)
def restart_a_dead_server(request):
    """A case that killed the server fails on its own (every request and the end of every case
    check /healthz); the server is restarted so that the following cases still run."""
    yield
    if "daemon" in request.fixturenames:
        request.getfixturevalue("daemon").ensure_alive(timeout=10)


def assert_no_secret(reply, what):
    assert SECRET_BYTES not in reply.body, (what, "the secret's float32 bytes are in the response")
    assert b"4242" not in reply.body, (what, "the secret's value is in the response")


def assert_no_path(reply, world, what):
    for folder in {world["tmp"], os.path.realpath(world["tmp"])}:
        assert folder.encode() not in reply.body, (what, "a temporary path in the response", reply.body[:400])


def query(**params):
    return "?" + urllib.parse.urlencode(params)


# --------------------------------------------------------------------------------------------
# 1. Sparse contiguous volume


def test_sparse_contiguous_volume_is_read_by_runs_not_spans(world, daemon):
    if world["sparse_skip"]:
        pytest.skip(world["sparse_skip"])
    path = "/v1/datasets/sparse/scans/%s/image?region=:,::262143,::131071&format=raw" % SPARSE_SCAN
    peak = [daemon.rss_kib()]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], daemon.rss_kib())
            except (OSError, AssertionError):
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        reply = daemon.get(path, timeout=60)
    finally:
        done.set()
        sampler.join(timeout=5)
    rss = max(peak[0], daemon.rss_kib())
    assert reply.status == 200, (path, reply)
    assert reply.headers.get("x-tensor-shape") == "2,2,2", reply.headers
    assert reply.headers.get("x-tensor-dtype") == "|u1", reply.headers
    assert reply.body == bytes(8), reply.body
    assert rss < 300 * 1024, "VmRSS reached %d KiB serving 8 bytes of a sparse 64 GiB volume" % rss
    daemon.assert_alive("case 1")


# --------------------------------------------------------------------------------------------
# 2. Mask with a huge channel axis


def test_mask_with_two_to_the_36_channels_is_refused(daemon):
    path = "/v1/datasets/channels/items/0/mask" + query(region="0,0,0", categories="[0]")
    reply = daemon.get(path, timeout=60)
    assert reply.status == 422, (path, reply)
    assert reply.code == "unprocessable", reply
    assert "channel" in reply.message.lower() or "mask" in reply.message.lower(), reply.message
    # The image of the same item is fine.
    reply = daemon.get("/v1/datasets/channels/items/0/image?format=raw")
    assert reply.status == 200 and reply.raw().shape == (8, 8, 8), reply
    daemon.assert_alive("case 2")


# --------------------------------------------------------------------------------------------
# 3. Uninitialized memory


def test_unwritten_chunks_with_fill_time_never_read_as_zeros(world, daemon):
    # Dirty the heap: other datasets' items of the same size, as npy and raw, and dict listings.
    for dataset in ["plain", "uninit"]:
        for index in range(3):
            for form in ["", "?format=raw"]:
                reply = daemon.get("/v1/datasets/%s/items/%d/image%s" % (dataset, index, form))
                assert reply.status == 200, reply
        assert daemon.get("/v1/datasets/%s/dicts" % dataset).status == 200
    assert daemon.get("/v1/datasets/manifest/dicts?pretty=1").status == 200
    index = daemon.index_of("uninit", stem(2) + ".im")
    for _ in range(3):
        reply = daemon.get("/v1/datasets/uninit/items/%d/image?format=raw" % index)
        assert reply.status == 200, reply
        assert reply.headers.get("x-tensor-shape") == "200,200,1", reply.headers
        array = reply.raw()
        assert np.array_equal(array, np.zeros((200, 200, 1), np.float32)), \
            "%d of 160000 bytes are not zero" % np.count_nonzero(np.frombuffer(reply.body, np.uint8))
        assert b"file_name" not in reply.body
        assert_no_path(reply, world, "unwritten image")
        # Between attempts, more responses go through the heap.
        assert daemon.get("/v1/datasets/plain/items/%d/image" % (_ % 3)).status == 200
        assert daemon.get("/v1/datasets/uninit/dicts").status == 200
    daemon.assert_alive("case 3")


# --------------------------------------------------------------------------------------------
# 4. Decode budget


def test_unwritten_gzip_chunks_cost_nothing(daemon):
    index = daemon.index_of("budget", BUDGET_EMPTY_SCAN + ".h5")
    path = "/v1/datasets/budget/items/%d/image?region=::1024,::1024,::64&format=raw" % index
    start = time.time()
    reply = daemon.get(path, timeout=25)
    elapsed = time.time() - start
    assert reply.status == 200, (path, reply)
    assert reply.headers.get("x-tensor-shape") == "8,8,16", reply.headers
    assert reply.body == bytes(8 * 8 * 16)
    assert elapsed < 20, "%s took %.1f s" % (path, elapsed)
    daemon.assert_alive("case 4a")


def test_decoding_more_than_the_budget_is_refused_while_cheap_requests_work(daemon):
    index = daemon.index_of("budget", BUDGET_WRITTEN_SCAN + ".h5")
    path = "/v1/datasets/budget/items/%d/image?region=0:3072:1024,0:3072:1024,0:64:64&format=raw" % index
    result = {}

    def expensive():
        start = time.time()
        try:
            result["reply"] = daemon.request("GET", path, timeout=25)
        except Exception as error:  # reported below
            result["error"] = error
        result["elapsed"] = time.time() - start

    thread = threading.Thread(target=expensive)
    thread.start()
    try:
        time.sleep(0.05)
        start = time.time()
        cheap = daemon.get("/v1/datasets/plain/items/0/image?region=0:4,0:4", timeout=10)
        cheap_elapsed = time.time() - start
    finally:
        thread.join(timeout=30)
    assert not thread.is_alive(), "the expensive request did not finish within 30 s"
    assert "error" not in result, (path, result.get("error"), daemon.process.poll())
    reply = result["reply"]
    assert reply.status == 422, (path, reply)
    assert reply.code == "unprocessable", reply
    assert "stored chunks" in reply.message and "more decoding than medsegd does for one read" in reply.message, reply.message
    assert result["elapsed"] < 20, "%s took %.1f s" % (path, result["elapsed"])
    assert cheap.status == 200 and cheap.array().shape == (4, 4, 1), cheap
    assert cheap_elapsed < 5, "a cheap request took %.1f s beside the expensive one" % cheap_elapsed
    daemon.assert_alive("case 4b")


# --------------------------------------------------------------------------------------------
# 5. Symbolic links out of the roots


def test_volume_link_out_of_scan_root_is_skipped_at_load(world, daemon):
    reply = daemon.get("/v1/datasets/links3d/scans/%s/image" % LINKED_SCAN)
    assert reply.status == 404, reply
    assert_no_secret(reply, "linked scan")
    reply = daemon.get("/v1/datasets/links3d/dicts")
    assert reply.status == 200
    assert [os.path.basename(d["file_name"]) for d in json.loads(reply.body)] == [REAL_SCAN + ".h5"], reply.body
    reply = daemon.get("/v1/datasets/links3d/scans/%s/image" % REAL_SCAN)
    assert reply.status == 200 and np.array_equal(reply.array(), np.ones((4, 4, 4), np.float32)), reply
    result = subprocess.run([medsegd_binary(), "check", "--config", world["check_links_config"]],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, (result.returncode, output[-3000:])
    lines = [line for line in output.splitlines() if LINKED_SCAN + ".h5" in line]
    assert any("outside scan_root" in line for line in lines), output[-3000:]
    daemon.assert_alive("case 5a")


def test_slice_link_out_of_scan_root_is_refused(daemon):
    index = daemon.index_of("links2d", stem(1, 2) + ".im")
    reply = daemon.get("/v1/datasets/links2d/items/%d/image" % index)
    assert reply.status == 422, reply
    assert "link" in reply.message and "outside" in reply.message, reply.message
    assert_no_secret(reply, "linked slice")
    for path in ["/v1/datasets/links2d/items/%d/image?format=raw" % index, "/v1/datasets/links2d/items/%d" % index,
                 "/v1/datasets/links2d/scans/0000001_V00/image"]:
        reply = daemon.get(path)
        assert reply.status == 422, (path, reply)
        assert_no_secret(reply, path)
    # Its sibling, a real file, is served.
    other = daemon.index_of("links2d", stem(1, 1) + ".im")
    reply = daemon.get("/v1/datasets/links2d/items/%d/image" % other)
    assert reply.status == 200 and np.array_equal(reply.array(), np.ones((4, 4, 1), np.float32)), reply
    daemon.assert_alive("case 5b")


def test_manifest_paths_that_become_links_out_of_the_roots_are_refused(world, daemon):
    folder = world["folders"]["manifest"]
    later, real = "/v1/datasets/manifest/items/0/image", "/v1/datasets/manifest/items/1/image"
    reply = daemon.get(later)
    assert reply.status == 422, ("before later.im exists", reply)
    reply = daemon.get(real)
    assert reply.status == 200 and np.array_equal(reply.array(), world["manifest_real"]), reply

    os.symlink(world["secret"], os.path.join(folder, "later.im"))
    for path in [later, later + "?format=raw", "/v1/datasets/manifest/items/0"]:
        reply = daemon.get(path)
        assert reply.status == 422, (path, reply)
        assert_no_secret(reply, path)
    reply = daemon.get(later)
    assert "link" in reply.message and "outside" in reply.message, reply.message

    link = os.path.join(folder, "real.im.new")
    os.symlink(world["secret"], link)
    os.replace(link, os.path.join(folder, "real.im"))
    for path in [real, real + "?format=raw", "/v1/datasets/manifest/items/1"]:
        reply = daemon.get(path)
        assert reply.status == 422, (path, reply)
        assert_no_secret(reply, path)
    reply = daemon.get(real)
    assert "link" in reply.message and "outside" in reply.message, reply.message
    daemon.assert_alive("case 5c")


# --------------------------------------------------------------------------------------------
# 6. Manifest single-file items follow a reload


def test_manifest_single_file_item_follows_a_reload(world):
    folder = os.path.join(world["tmp"], "singlefile")
    os.makedirs(folder)
    with h5py.File(os.path.join(folder, "sf.h5"), "w") as f:
        for group, value in [("g1", 1.0), ("g2", 2.0)]:
            f.create_dataset(group + "/volume", data=np.full((4, 4, 2), value, np.float32))
            f.create_dataset(group + "/seg", data=np.zeros((4, 4, 2, 2), np.uint8))
    manifest = os.path.join(folder, "m.json")

    def write_manifest(group):
        with open(manifest, "w") as f:
            json.dump([{"file_name": group, "singlefile_path": "sf.h5", "sem_seg_file": group, "scan_id": "x"}], f)

    write_manifest("g1")
    config = write_config(os.path.join(folder, "medsegd.yaml"), {"sfm": "{format: manifest, path: m.json}"},
                          server="server:\n  cache_bytes: 64MiB\n")
    daemon = Daemon(config, world["tmp"])
    try:
        path = "/v1/datasets/sfm/items/0/image"
        first = daemon.get(path)
        assert first.status == 200 and np.array_equal(first.array(), np.full((4, 4, 2), 1.0, np.float32)), first
        old_etag = first.headers.get("etag")
        assert old_etag, first.headers
        write_manifest("g2")
        daemon.reload()
        second = daemon.get(path)
        assert second.status == 200, second
        assert np.array_equal(second.array(), np.full((4, 4, 2), 2.0, np.float32)), ("stale after reload", second.array())
        assert second.headers.get("etag") and second.headers.get("etag") != old_etag, (old_etag, second.headers)
        third = daemon.get(path, headers={"If-None-Match": old_etag})
        assert third.status == 200, third
        assert np.array_equal(third.array(), np.full((4, 4, 2), 2.0, np.float32)), third.array()
        daemon.assert_alive("case 6")
    finally:
        daemon.stop()


# --------------------------------------------------------------------------------------------
# 7. No path or address in errors


def test_scan_file_replaced_by_a_directory_is_422_without_paths_or_addresses(world, daemon):
    path = "/v1/datasets/gone3d/scans/%s/image" % GONE_SCAN
    reply = daemon.get(path)
    assert reply.status == 200 and np.array_equal(reply.array(), world["gone"]), reply
    file = os.path.join(world["folders"]["gone3d"], GONE_SCAN + ".h5")
    os.remove(file)
    os.mkdir(file)
    for attempt in [path, path + "?format=raw", "/v1/datasets/gone3d/items/0/image", "/v1/datasets/gone3d/items/0"]:
        reply = daemon.get(attempt)
        assert reply.status == 422, (attempt, reply)
        assert_no_path(reply, world, attempt)
        for text in [b"file descriptor", b"0x"]:
            assert text not in reply.body, (attempt, text, reply.body)
    daemon.assert_alive("case 7")


# --------------------------------------------------------------------------------------------
# 8. Element types served wrong before


def test_integer_with_a_bit_offset_is_refused(daemon):
    index = daemon.index_of("types", stem(1) + ".im")
    for path in ["/v1/datasets/types/items/%d/image" % index, "/v1/datasets/types/items/%d/image?dtype=float32" % index]:
        reply = daemon.get(path)
        assert reply.status == 422, (path, reply)
        assert re.search(r"bit", reply.message) and re.search(r"offset|padding|precision|layout", reply.message), reply.message
    daemon.assert_alive("case 8a")


def test_enum_mask_other_than_bool_is_refused(daemon):
    index = daemon.index_of("types", stem(2) + ".im")
    reply = daemon.get("/v1/datasets/types/items/%d/image" % index)
    assert reply.status == 200, reply
    for path in ["/v1/datasets/types/items/%d/mask" % index, "/v1/datasets/types/items/%d/mask?categories=%%5B0%%5D" % index,
                 "/v1/datasets/types/items/%d" % index]:
        reply = daemon.get(path)
        assert reply.status == 422, (path, reply)
        assert "enum" in reply.message, reply.message
    daemon.assert_alive("case 8b")


def test_batch_body_with_a_key_twice_is_400(daemon):
    path = "/v1/datasets/plain/batch"
    reply = daemon.get(path, method="POST", body=b'{"indices":[0]}')
    assert reply.status == 200, reply
    reply = daemon.get(path, method="POST", body=b'{"indices":[0],"indices":[0,0]}')
    assert reply.status == 400, reply
    assert reply.code == "bad_request", reply
    assert "indices" in reply.message, reply.message
    daemon.assert_alive("case 8c")


# --------------------------------------------------------------------------------------------
# 9. Vary: Accept


def test_array_responses_vary_on_accept(daemon):
    for path in ["/v1/datasets/plain/items/0/image", "/v1/datasets/plain/items/0/image?format=raw",
                 "/v1/datasets/plain/items/0/mask", "/v1/datasets/plain/items/0"]:
        first = daemon.get(path)
        assert first.status == 200, (path, first)
        assert "accept" in [v.strip().lower() for v in first.headers.get("vary", "").split(",")], (path, first.headers)
        etag = first.headers.get("etag")
        assert etag, first.headers
        second = daemon.get(path, headers={"If-None-Match": etag})
        assert second.status == 304, (path, second)
        assert "accept" in [v.strip().lower() for v in second.headers.get("vary", "").split(",")], (path, second.headers)
    daemon.assert_alive("case 9")


def test_the_server_never_died(daemon):
    daemon.assert_alive("every case")
    assert daemon.deaths == [], "medsegd died %d time(s) during this module (exit codes %s); see its log:\n%s" % (
        len(daemon.deaths), daemon.deaths, daemon.log[-3000:])
