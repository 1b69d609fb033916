"""Fixtures: HDF5 files written with h5py, and the real medsegd binary serving them on 127.0.0.1."""
import os
import socket
import subprocess
import time
import urllib.request

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OAI_IDS = [0, (1, 2), 3, (4, 5)]


def medsegd_binary():
    binary = os.environ.get("MEDSEGD_BIN") or os.path.join(ROOT, ".build", "debug", "medsegd")
    if not os.path.exists(binary):
        pytest.exit("medsegd binary not found at %s: build it first (scripts/test does)" % binary)
    return os.path.abspath(binary)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_data(root, rng):
    """A dataset per layout MedSegPy users have: arrays are kept to compare against."""
    arrays = {}
    # 2D slices, contiguous float32 with uint8 masks, plus one slice stored gzip-chunked as
    # h5py's chunks=True default does.
    d2 = os.path.join(root, "2d")
    os.makedirs(d2)
    for subject, aug, slices in [(1, 0, 4), (1, 1, 4), (2, 0, 3)]:
        for s in range(1, slices + 1):
            stem = "%07d_V%02d-Aug%02d_%03d" % (subject, 0, aug, s)
            image = rng.standard_normal((24, 20, 1)).astype(np.float32)
            mask = (rng.random((24, 20, 1, 6)) > 0.7).astype(np.uint8)
            chunked = dict(chunks=True, compression="gzip") if (subject, s) == (2, 2) else {}
            with h5py.File(os.path.join(d2, stem + ".im"), "w") as f:
                f.create_dataset("data", data=image, **chunked)
            with h5py.File(os.path.join(d2, stem + ".seg"), "w") as f:
                f.create_dataset("data", data=mask, **chunked)
            arrays[stem] = (image, mask)
    # 2D slices of other dtypes: big-endian int16 images with bool masks; float16 images.
    typed = os.path.join(root, "typed")
    os.makedirs(typed)
    for s in range(1, 3):
        stem = "%07d_V%02d-Aug%02d_%03d" % (7, 1, 0, s)
        image = rng.integers(-3000, 3000, (10, 12, 1)).astype(">i2") if s == 1 else rng.standard_normal((10, 12, 1)).astype(np.float16)
        mask = rng.random((10, 12, 1, 3)) > 0.5
        with h5py.File(os.path.join(typed, stem + ".im"), "w") as f:
            f.create_dataset("data", data=image)
        with h5py.File(os.path.join(typed, stem + ".seg"), "w") as f:
            f.create_dataset("data", data=mask)
        arrays[stem] = (image, mask)
    # 3D volumes: one contiguous, one gzip-chunked; and a single file with a group per scan.
    d3 = os.path.join(root, "3d")
    os.makedirs(d3)
    for name, chunked in [("0000003_V00", {}), ("0000004_V01", dict(chunks=True, compression="gzip"))]:
        volume = rng.standard_normal((32, 28, 12)).astype(np.float32)
        seg = (rng.random((32, 28, 12, 6)) > 0.8).astype(np.uint8)
        with h5py.File(os.path.join(d3, name + ".h5"), "w") as f:
            f.create_dataset("volume", data=volume, **chunked)
            f.create_dataset("seg", data=seg, **chunked)
        arrays[name] = (volume, seg)
    with h5py.File(os.path.join(root, "single.h5"), "w") as f:
        for name in ["0000005_V00", "0000006_V00"]:
            volume = rng.standard_normal((16, 16, 5)).astype(np.float32)
            seg = (rng.random((16, 16, 5, 6)) > 0.8).astype(np.uint8)
            f.create_dataset(name + "/volume", data=volume)
            f.create_dataset(name + "/seg", data=seg)
            arrays["sf/" + name] = (volume, seg)
    return arrays


CONFIG = """
families:
  oai:
    categories:
      - {id: 0,      name: femoral cartilage,  abbrev: fc,  color: [220, 20, 60]}
      - {id: [1, 2], name: tibial cartilage,   abbrev: tc,  color: [119, 11, 32]}
      - {id: 3,      name: patellar cartilage, abbrev: pc,  color: [0, 0, 142]}
      - {id: [4, 5], name: meniscus,           abbrev: men, color: [0, 0, 230]}
    datasets:
      oai_2d: {format: slices-2d, scan_root: 2d}
      oai_3d: {format: volumes-3d, scan_root: 3d}
      oai_3d_sf: {format: volumes-3d-singlefile, path: single.h5}
  typed:
    categories: [{id: 0, name: a}, {id: [1, 2], name: b}]
    datasets:
      typed_2d: {format: slices-2d, scan_root: typed}
"""


class Server:
    def __init__(self, base, arrays, root):
        self.base = base
        self.arrays = arrays
        self.root = root

    def get(self, path, headers=None, data=None, method=None):
        request = urllib.request.Request(self.base + path, headers=headers or {}, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("medsegd-data"))
    arrays = write_data(root, np.random.default_rng(1234))
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write(CONFIG)
    port = free_port()
    log = open(os.path.join(root, "server.log"), "w")
    process = subprocess.Popen([medsegd_binary(), "serve", "--config", config, "--port", str(port)], stdout=log, stderr=log)
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except Exception:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError("medsegd did not become ready: " + open(log.name).read())
                time.sleep(0.05)
        yield Server(base, arrays, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def in_dtype(summed, dtype):
    """A collated class's sum kept in the stored dtype as docs/API.md says: bool by logical or,
    integers saturated at the type's bounds (MedSegPy's np.sum never wraps), floats rounded."""
    dtype = np.dtype(dtype)
    summed = np.asarray(summed)
    if dtype == bool:
        return summed.astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(summed.astype(np.int64), info.min, info.max).astype(dtype)
    return summed.astype(dtype)
