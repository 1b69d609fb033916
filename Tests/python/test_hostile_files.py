"""A hostile-file corpus written with h5py (issue 10): external storage, virtual datasets and
external links that reach outside the data root, huge dimensions and huge chunks, scans whose
slices differ in dtype or byte order, NaN/inf converted to every dtype, filters, compact layout,
scalar and zero-sized datasets, files truncated or replaced while served.

Every case answers 200 with exact bytes or a 4xx JSON error naming the file; no body carries the
secret bytes or the temporary folder's path; the process never dies; `medsegd check` reports
what is refused."""
import io
import json
import math
import os
import subprocess
import time

import h5py
import numpy as np
import pytest

from conftest import medsegd_binary
from medsegd_process import CONNECTION_ERRORS, MedsegdProcess

SECRET = b"TOPSECRET"
DATASET_2D = "h2d"
DATASET_3D = "h3d"
FLOAT_VALUES = [np.nan, np.inf, -np.inf, 1e30, -1e30, 3.7, -3.7, 300.0]
CONVERSION_DTYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "bool"]

CONFIG = """
families:
  hostile:
    categories: [{id: 0, name: a}, {id: 1, name: b}]
    datasets:
      h2d: {format: slices-2d, scan_root: 2d}
      h3d: {format: volumes-3d, scan_root: 3d}
"""


def stem(subject, slice_id=1):
    return "%07d_V00-Aug00_%03d" % (subject, slice_id)


def scan(subject):
    return "%07d_V00" % subject


# One subject (scan) per hostile case in the 2D dataset.
EXTERNAL_STORAGE, VIRTUAL, EXTERNAL_LINK, SOFT_LINK, HUGE_DIMS, HUGE_CHUNKS, MIXED_DTYPE, MIXED_ORDER, \
    NONFINITE, FLETCHER32, LZF, COMPACT, SCALAR, ZERO_SIZED, TRUNCATED, REPLACED, REWRITTEN = range(1, 18)
# 3D scans.
VOLUME_NONFINITE, VOLUME_EXTERNAL_LINK, VOLUME_HUGE_DIMS = "0000101_V00", "0000102_V00", "0000103_V00"


def secret_array(shape):
    count = int(np.prod(shape))
    return np.frombuffer((SECRET * (count // len(SECRET) + 1))[:count], dtype=np.uint8).reshape(shape)


def write_corpus(tmp):
    """The data root (tmp/root) and, beside it, the files hostile files try to reach."""
    root = os.path.join(tmp, "root")
    d2 = os.path.join(root, "2d")
    d3 = os.path.join(root, "3d")
    os.makedirs(d2)
    os.makedirs(d3)
    rng = np.random.default_rng(20261126)
    expected = {}  # stem -> the array a 200 must return

    secret_path = os.path.join(tmp, "secret.bin")
    with open(secret_path, "wb") as f:
        f.write(SECRET * 64)
    outside_link = os.path.join(tmp, "outside_link.h5")
    with h5py.File(outside_link, "w") as f:
        f.create_dataset("data", data=secret_array((8, 8, 1)))
        f.create_dataset("volume", data=secret_array((8, 8, 1)))
    outside_vds = os.path.join(tmp, "outside_vds.h5")
    with h5py.File(outside_vds, "w") as f:
        f.create_dataset("data", data=secret_array((8, 8, 1)))

    def image(subject, slice_id=1):
        return os.path.join(d2, stem(subject, slice_id) + ".im")

    with h5py.File(image(EXTERNAL_STORAGE), "w") as f:
        f.create_dataset("data", shape=(8, 8, 1), dtype="<f4", external=[(secret_path, 0, 256)])
    with open(secret_path, "rb") as f:
        assert f.read(len(SECRET)) == SECRET, "h5py overwrote the external file"

    with h5py.File(image(VIRTUAL), "w", libver=("earliest", "v110")) as f:  # readable by HDF5 1.10
        layout = h5py.VirtualLayout(shape=(8, 8, 1), dtype="u1")
        layout[:] = h5py.VirtualSource(outside_vds, "data", shape=(8, 8, 1))
        f.create_virtual_dataset("data", layout, fillvalue=0)

    with h5py.File(image(EXTERNAL_LINK), "w") as f:
        f["data"] = h5py.ExternalLink(outside_link, "data")
        # Large enough that an address taken from the linked file still falls inside this one.
        f.create_dataset("padding", data=np.ones(8192, dtype=np.uint8))

    with h5py.File(image(SOFT_LINK), "w") as f:
        real = rng.standard_normal((6, 5, 1)).astype("<f4")
        f.create_dataset("real", data=real)
        f["data"] = h5py.SoftLink("/real")
        expected[stem(SOFT_LINK)] = real

    with h5py.File(image(HUGE_DIMS), "w") as f:
        dataset = f.create_dataset("data", shape=(2 ** 20, 2 ** 20, 1), dtype="<f4", chunks=(16, 16, 1))
        corner = np.arange(16, dtype="<f4").reshape(4, 4) + 0.5
        dataset[0:4, 0:4, 0] = corner
        dataset[2 ** 20 - 16:, 2 ** 20 - 16:, 0] = 7.0
        expected[stem(HUGE_DIMS)] = corner

    huge = (np.arange(4096 * 4096, dtype=np.uint32) % 251).astype(np.uint8).reshape(4096, 4096, 1)
    with h5py.File(image(HUGE_CHUNKS), "w") as f:
        f.create_dataset("data", data=huge, chunks=(4096, 4096, 1), compression="gzip")
    expected[stem(HUGE_CHUNKS)] = huge

    for subject, odd in [(MIXED_DTYPE, "|u1"), (MIXED_ORDER, ">f4")]:
        slices = []
        for slice_id, dtype in [(1, "<f4"), (2, "<f4"), (3, odd)]:
            if dtype == "|u1":
                data = rng.integers(0, 256, (4, 4, 1)).astype("|u1")
            else:
                data = (rng.standard_normal((4, 4, 1)) * 100).astype(dtype)
            with h5py.File(image(subject, slice_id), "w") as f:
                f.create_dataset("data", data=data)
            slices.append(data)
        promoted = np.result_type(*[s.dtype for s in slices])
        expected[scan(subject)] = np.concatenate([s.astype(promoted) for s in slices], axis=2)

    values = np.array(FLOAT_VALUES, dtype="<f4").reshape(2, 4, 1)
    with h5py.File(image(NONFINITE), "w") as f:
        f.create_dataset("data", data=values)
    with h5py.File(os.path.join(d2, stem(NONFINITE) + ".seg"), "w") as f:
        f.create_dataset("data", data=(rng.random((2, 4, 1, 2)) > 0.5).astype(np.uint8))
    expected[stem(NONFINITE)] = values

    data = rng.standard_normal((8, 8, 1)).astype("<f4")
    with h5py.File(image(FLETCHER32), "w") as f:
        f.create_dataset("data", data=data, fletcher32=True, chunks=True)
    expected[stem(FLETCHER32)] = data

    # Compressible, so that the (optional) lzf filter really applies to the chunk.
    with h5py.File(image(LZF), "w") as f:
        data = np.tile(np.array([1.5, 2.5, 0, 0], dtype="<f4"), 64).reshape(16, 16, 1)
        dataset = f.create_dataset("data", data=data, compression="lzf", chunks=(16, 16, 1))
        mask, _, size = dataset.id.get_chunk_info(0)[1:]
        assert mask == 0 and size < data.nbytes, "lzf was not applied to the chunk"

    data = rng.standard_normal((4, 4, 1)).astype("<f4")
    with h5py.File(image(COMPACT), "w") as f:
        space = h5py.h5s.create_simple((4, 4, 1))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        dataset = h5py.h5d.create(f.id, b"data", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
    with h5py.File(image(COMPACT), "r") as f:
        assert f["data"].id.get_create_plist().get_layout() == h5py.h5d.COMPACT
    expected[stem(COMPACT)] = data

    with h5py.File(image(SCALAR), "w") as f:
        f.create_dataset("data", data=np.float32(1.5))
    expected[stem(SCALAR)] = np.array(1.5, dtype="<f4")
    with h5py.File(image(ZERO_SIZED), "w") as f:
        f.create_dataset("data", shape=(0, 8, 1), dtype="<f4")
    expected[stem(ZERO_SIZED)] = np.zeros((0, 8, 1), dtype="<f4")

    for subject in (TRUNCATED, REPLACED, REWRITTEN):
        data = rng.standard_normal((64, 64, 1)).astype("<f4")
        with h5py.File(image(subject), "w") as f:
            f.create_dataset("data", data=data)
        expected[stem(subject)] = data

    # 3D volumes.
    volume = np.array(FLOAT_VALUES, dtype="<f4").reshape(2, 4, 1)
    with h5py.File(os.path.join(d3, VOLUME_NONFINITE + ".h5"), "w") as f:
        f.create_dataset("volume", data=volume)
        f.create_dataset("seg", data=np.ones((2, 4, 1, 2), dtype=np.uint8))
    expected[VOLUME_NONFINITE] = volume
    with h5py.File(os.path.join(d3, VOLUME_EXTERNAL_LINK + ".h5"), "w") as f:
        f["volume"] = h5py.ExternalLink(outside_link, "volume")
        f.create_dataset("seg", data=np.ones((8, 8, 1, 2), dtype=np.uint8))
    with h5py.File(os.path.join(d3, VOLUME_HUGE_DIMS + ".h5"), "w") as f:
        dataset = f.create_dataset("volume", shape=(2 ** 20, 2 ** 20, 4), dtype="<f4", chunks=(16, 16, 4))
        corner = np.arange(64, dtype="<f4").reshape(4, 4, 4) - 10.25
        dataset[0:4, 0:4, 0:4] = corner
        f.create_dataset("seg", shape=(2 ** 20, 2 ** 20, 4, 2), dtype="u1", chunks=(16, 16, 4, 2))
        expected[VOLUME_HUGE_DIMS] = corner

    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write(CONFIG)
    stems = sorted(name[:-3] for name in os.listdir(d2) if name.endswith(".im"))
    return root, config, expected, {s: i for i, s in enumerate(stems)}


class Daemon(MedsegdProcess):
    """medsegd serving the corpus. A death is recorded and the server restarted (ensure_alive), so
    that the case that killed it fails and the following ones still run; the last test fails if
    any died."""

    def __init__(self, tmp, root, config, expected, index):
        self.tmp, self.root, self.expected, self.index = tmp, root, expected, index
        self.scan_status = {}
        super().__init__(config)

    def safe(self, path, data=None, headers=None, timeout=30):
        """The request (a POST with `data`), checked: no 5xx, no secret, no temporary path; the
        process answers /healthz afterwards."""
        try:
            reply = self.exchange("GET" if data is None else "POST", path, body=data, headers=headers, timeout=timeout)
        except CONNECTION_ERRORS as error:
            raise AssertionError("%s: no answer (%r); process exited: %s" % (path, error, self.exited()))
        assert reply.status < 500, (path, reply.status, reply.body[:400])
        assert SECRET not in reply.body, (path, "secret bytes in the response")
        assert self.tmp.encode() not in reply.body, (path, "temporary path in the response", reply.body[:400])
        if reply.status >= 400:
            assert reply.headers.get("Content-Type", "").startswith("application/json"), (path, reply.status)
            assert reply.message
        self.assert_healthy(path)
        return reply

    def image_path(self, subject, slice_id=1):
        return os.path.join(self.root, "2d", stem(subject, slice_id) + ".im")

    def item(self, subject, slice_id=1):
        return "/v1/datasets/%s/items/%d" % (DATASET_2D, self.index[stem(subject, slice_id)])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("hostile-files"))
    root, config, expected, index = write_corpus(tmp)
    with Daemon(tmp, root, config, expected, index) as server:
        yield server


@pytest.fixture(autouse=True)
def alive(daemon):
    daemon.ensure_alive()
    yield


def assert_exact(reply, expected, what):
    assert reply.status == 200, (what, reply.status, reply.body[:300])
    array = reply.array()
    assert array.shape == expected.shape, (what, array.shape, expected.shape)
    assert array.dtype == expected.dtype, (what, array.dtype, expected.dtype)
    assert np.array_equal(array, expected, equal_nan=array.dtype.kind == "f"), (what, array, expected)


@pytest.mark.parametrize("subject", [EXTERNAL_STORAGE, VIRTUAL, EXTERNAL_LINK], ids=["external-storage", "virtual", "external-link"])
def test_data_reaching_outside_the_root_is_refused_with_the_file_named(daemon, subject):
    name = stem(subject) + ".im"
    for path in [daemon.item(subject) + "/image", daemon.item(subject) + "/image?format=raw",
                 daemon.item(subject) + "/image?region=0:2,0:2", daemon.item(subject) + "/image?dtype=uint8",
                 daemon.item(subject), "/v1/datasets/%s/scans/%s/image" % (DATASET_2D, scan(subject))]:
        reply = daemon.safe(path)
        assert reply.status == 422, (path, reply.status, reply.body[:300])
        assert name in reply.message, (path, reply.message)


def test_external_link_of_a_volume_is_never_followed_out_of_the_root(daemon):
    # A 3D dataset reads the volume's shape at load: the scan may be refused there (404) or at
    # request time (422 naming the file); its bytes never come back.
    reply = daemon.safe("/v1/datasets/%s/scans/%s/image" % (DATASET_3D, VOLUME_EXTERNAL_LINK))
    assert reply.status in (404, 422), (reply.status, reply.body[:300])
    if reply.status == 422:
        assert VOLUME_EXTERNAL_LINK + ".h5" in reply.message, reply.message


def test_soft_link_inside_the_file(daemon):
    reply = daemon.safe(daemon.item(SOFT_LINK) + "/image")
    assert reply.status in (200, 422), (reply.status, reply.body[:300])
    if reply.status == 200:
        assert_exact(reply, daemon.expected[stem(SOFT_LINK)], "soft link")


def test_huge_dimensions_with_small_chunks(daemon):
    for path in [daemon.item(HUGE_DIMS) + "/image", daemon.item(HUGE_DIMS) + "/image?dtype=float64",
                 daemon.item(HUGE_DIMS), "/v1/datasets/%s/scans/%s/image" % (DATASET_2D, scan(HUGE_DIMS))]:
        reply = daemon.safe(path)
        assert reply.status in (413, 422), (path, reply.status, reply.body[:300])
    reply = daemon.safe(daemon.item(HUGE_DIMS) + "/image?region=0:4,0:4,0")
    assert_exact(reply, daemon.expected[stem(HUGE_DIMS)], "corner of a huge image")
    reply = daemon.safe(daemon.item(HUGE_DIMS) + "/image?region=-4:,-4:,0")
    assert_exact(reply, np.full((4, 4), 7.0, dtype="<f4"), "far corner of a huge image")


def test_huge_volume_dimensions(daemon):
    for path in ["/v1/datasets/%s/scans/%s/image" % (DATASET_3D, VOLUME_HUGE_DIMS),
                 "/v1/datasets/%s/scans/%s/mask" % (DATASET_3D, VOLUME_HUGE_DIMS)]:
        reply = daemon.safe(path)
        assert reply.status in (413, 422), (path, reply.status, reply.body[:300])
    reply = daemon.safe("/v1/datasets/%s/scans/%s/image?region=0:4,0:4,0:4" % (DATASET_3D, VOLUME_HUGE_DIMS))
    assert_exact(reply, daemon.expected[VOLUME_HUGE_DIMS], "corner of a huge volume")


def test_huge_chunk(daemon):
    reply = daemon.safe(daemon.item(HUGE_CHUNKS) + "/image", timeout=60)
    assert reply.status in (200, 413, 422), (reply.status, reply.body[:300])
    if reply.status == 200:
        assert_exact(reply, daemon.expected[stem(HUGE_CHUNKS)], "huge chunk")
    reply = daemon.safe(daemon.item(HUGE_CHUNKS) + "/image?region=100:104,4000:,0", timeout=60)
    assert reply.status in (200, 413, 422), (reply.status, reply.body[:300])
    if reply.status == 200:
        assert_exact(reply, daemon.expected[stem(HUGE_CHUNKS)][100:104, 4000:, 0], "region of a huge chunk")


@pytest.mark.parametrize("subject", [MIXED_DTYPE, MIXED_ORDER], ids=["u1-among-f4", "big-endian-among-little"])
def test_scan_whose_slices_differ_in_dtype(daemon, subject):
    names = [stem(subject, s) + ".im" for s in (1, 2, 3)]
    expected = daemon.expected[scan(subject)]
    for path in ["/v1/datasets/%s/scans/%s/image" % (DATASET_2D, scan(subject)),
                 "/v1/datasets/%s/scans/%s/image?format=raw" % (DATASET_2D, scan(subject)),
                 "/v1/datasets/%s/scans/%s/image?region=1:3,:,1:" % (DATASET_2D, scan(subject))]:
        reply = daemon.safe(path)
        assert reply.status in (200, 422), (path, reply.status, reply.body[:300])
        daemon.scan_status[subject] = reply.status
        if reply.status == 422:
            assert any(name in reply.message for name in names), (path, reply.message)
        elif "format=raw" in path:
            dtype = np.dtype(reply.headers["X-Tensor-Dtype"])
            shape = tuple(int(n) for n in reply.headers["X-Tensor-Shape"].split(","))
            array = np.frombuffer(reply.body, dtype=dtype).reshape(shape)
            assert array.dtype == expected.dtype and np.array_equal(array, expected), (path, array, expected)
        elif "region" in path:
            assert_exact(reply, expected[1:3, :, 1:], path)
        else:
            assert_exact(reply, expected, path)
    # Each slice alone is fine.
    for slice_id in (1, 2, 3):
        reply = daemon.safe(daemon.item(subject, slice_id) + "/image")
        assert reply.status == 200, (slice_id, reply.status, reply.body[:300])


def expected_conversion(values, dtype):
    """The documented rule: NaN -> 0, +inf and values above the maximum -> the maximum, -inf and
    values below the minimum -> the minimum, others truncate toward zero; float16 is IEEE; bool
    is nonzero (NaN included)."""
    if dtype == "bool":
        return values.astype(bool)
    if dtype == "float16":
        with np.errstate(over="ignore", invalid="ignore"):
            return values.astype("<f2")
    info = np.iinfo(dtype)
    out = []
    for value in values.ravel().astype(np.float64).tolist():
        if math.isnan(value):
            out.append(0)
        elif value >= info.max:
            out.append(int(info.max))
        elif value <= info.min:
            out.append(int(info.min))
        else:
            out.append(math.trunc(value))
    return np.array(out, dtype=np.dtype(dtype).newbyteorder("<")).reshape(values.shape)


@pytest.mark.parametrize("dtype", CONVERSION_DTYPES)
def test_nonfinite_and_out_of_range_floats_convert_by_the_documented_rule(daemon, dtype):
    values = daemon.expected[stem(NONFINITE)]
    expected = expected_conversion(values, dtype)
    reply = daemon.safe(daemon.item(NONFINITE) + "/image?dtype=" + dtype)
    assert_exact(reply, expected, "item image as " + dtype)
    reply = daemon.safe("/v1/datasets/%s/scans/%s/image?dtype=%s" % (DATASET_2D, scan(NONFINITE), dtype))
    assert_exact(reply, expected, "scan image as " + dtype)
    reply = daemon.safe("/v1/datasets/%s/scans/%s/image?dtype=%s" % (DATASET_3D, VOLUME_NONFINITE, dtype))
    assert_exact(reply, expected_conversion(daemon.expected[VOLUME_NONFINITE], dtype), "volume as " + dtype)


@pytest.mark.parametrize("dtype", CONVERSION_DTYPES)
def test_nonfinite_and_out_of_range_floats_convert_in_a_batch(daemon, dtype):
    values = daemon.expected[stem(NONFINITE)]
    body = json.dumps({"indices": [daemon.index[stem(NONFINITE)]], "dtype": dtype}).encode()
    reply = daemon.safe("/v1/datasets/%s/batch" % DATASET_2D, data=body, headers={"Content-Type": "application/json"})
    assert reply.status == 200, (reply.status, reply.body[:300])
    archive = np.load(io.BytesIO(reply.body), allow_pickle=False)
    assert sorted(archive.files) == ["image", "mask"]
    expected = expected_conversion(values, dtype)[None]
    image = archive["image"]
    assert image.dtype == expected.dtype and image.shape == expected.shape, (image.dtype, image.shape)
    assert np.array_equal(image, expected, equal_nan=image.dtype.kind == "f"), (image, expected)
    assert archive["mask"].shape == (1, 2, 4, 2)


def test_fletcher32(daemon):
    reply = daemon.safe(daemon.item(FLETCHER32) + "/image")
    assert reply.status in (200, 422), (reply.status, reply.body[:300])
    if reply.status == 200:
        assert_exact(reply, daemon.expected[stem(FLETCHER32)], "fletcher32")
    else:
        assert stem(FLETCHER32) + ".im" in reply.message


def test_lzf_without_the_filter_is_422_naming_the_file(daemon):
    for path in [daemon.item(LZF) + "/image", daemon.item(LZF) + "/image?region=0:2"]:
        reply = daemon.safe(path)
        assert reply.status == 422, (path, reply.status, reply.body[:300])
        assert stem(LZF) + ".im" in reply.message, reply.message


def test_compact_layout(daemon):
    reply = daemon.safe(daemon.item(COMPACT) + "/image")
    assert_exact(reply, daemon.expected[stem(COMPACT)], "compact")
    reply = daemon.safe(daemon.item(COMPACT) + "/image?region=1:3,::2")
    assert_exact(reply, daemon.expected[stem(COMPACT)][1:3, ::2], "compact region")


@pytest.mark.parametrize("subject", [SCALAR, ZERO_SIZED], ids=["scalar", "zero-sized"])
def test_scalar_and_zero_sized(daemon, subject):
    for path in [daemon.item(subject) + "/image", daemon.item(subject) + "/image?format=raw",
                 "/v1/datasets/%s/scans/%s/image" % (DATASET_2D, scan(subject))]:
        reply = daemon.safe(path)
        assert reply.status in (200, 422), (path, reply.status, reply.body[:300])
        if reply.status == 200:
            expected = daemon.expected[stem(subject)]
            if "format=raw" in path:
                assert reply.body == expected.tobytes(), path
            elif "/scans/" not in path:
                assert_exact(reply, expected, path)


def test_file_truncated_while_served(daemon):
    path = daemon.item(TRUNCATED) + "/image"
    expected = daemon.expected[stem(TRUNCATED)]
    assert_exact(daemon.safe(path), expected, "before truncation")
    file = daemon.image_path(TRUNCATED)
    os.truncate(file, os.path.getsize(file) // 2)
    for attempt in [path, path + "?format=raw", path + "?region=60:", daemon.item(TRUNCATED)]:
        reply = daemon.safe(attempt)
        assert reply.status in (200, 422), (attempt, reply.status, reply.body[:300])
        if reply.status == 422:
            assert stem(TRUNCATED) + ".im" in reply.message, (attempt, reply.message)
        elif attempt == path:
            assert_exact(reply, expected, "after truncation")
        elif "format=raw" in attempt:
            assert reply.body == expected.tobytes(), attempt
        elif "region" in attempt:
            assert_exact(reply, expected[60:], attempt)
        else:
            image = np.load(io.BytesIO(reply.body), allow_pickle=False)["image"]
            assert np.array_equal(image, expected), attempt


def rewrite(path, data):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)


def test_file_replaced_while_served(daemon):
    path = daemon.item(REPLACED) + "/image"
    first = daemon.safe(path)
    assert_exact(first, daemon.expected[stem(REPLACED)], "before replacement")
    old_etag = first.headers.get("ETag")
    assert old_etag
    new = np.random.default_rng(5).standard_normal((64, 64, 1)).astype("<f4")
    target = daemon.image_path(REPLACED)
    temporary = target + ".new"
    rewrite(temporary, new)
    os.replace(temporary, target)
    second = daemon.safe(path)
    assert_exact(second, new, "after replacement")
    assert second.headers.get("ETag") and second.headers.get("ETag") != old_etag
    third = daemon.safe(path, headers={"If-None-Match": old_etag})
    assert third.status == 200, third.status
    assert_exact(third, new, "If-None-Match with the old ETag")


def test_file_rewritten_in_place_with_its_old_mtime(daemon):
    # Same inode, same size, same mtime: only the ctime tells the file changed.
    path = daemon.item(REWRITTEN) + "/image"
    first = daemon.safe(path)
    assert_exact(first, daemon.expected[stem(REWRITTEN)], "before rewrite")
    old_etag = first.headers.get("ETag")
    target = daemon.image_path(REWRITTEN)
    before = os.stat(target)
    time.sleep(0.05)
    new = np.random.default_rng(6).standard_normal((64, 64, 1)).astype("<f4")
    rewrite(target, new)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(target)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    second = daemon.safe(path)
    assert_exact(second, new, "after an in-place rewrite")
    assert second.headers.get("ETag") != old_etag
    third = daemon.safe(path, headers={"If-None-Match": old_etag})
    assert third.status == 200, third.status


def test_check_reports_every_refused_file(daemon):
    result = subprocess.run([medsegd_binary(), "check", "--config", daemon.config], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, (result.returncode, output[-3000:])
    for subject in (EXTERNAL_STORAGE, VIRTUAL, EXTERNAL_LINK, LZF):
        assert stem(subject) + ".im" in output, (stem(subject), output[-3000:])
    assert VOLUME_EXTERNAL_LINK + ".h5" in output, output[-3000:]
    # A scan the server refuses for its slices' dtypes (422) is reported too; one it stacks by
    # promotion (200) is not a problem.
    for subject in (MIXED_DTYPE, MIXED_ORDER):
        if daemon.scan_status.get(subject, 422) == 422:
            assert any(stem(subject, s) + ".im" in output for s in (1, 2, 3)), (scan(subject), output[-3000:])
    assert SECRET.decode() not in output


def test_the_process_never_died(daemon):
    daemon.assert_healthy("every case")
    assert daemon.process.poll() is None
    assert daemon.deaths == [], "medsegd died %d time(s) during this module (exit codes %s); see %s" % (
        len(daemon.deaths), daemon.deaths, daemon.log_path)
