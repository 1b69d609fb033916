"""Issue 13, fingerprints and patch sampling: `GET .../fingerprint`, `GET .../scans/{id}/fingerprint`
and `POST .../sample` against numpy and h5py over files this module writes (3D volumes contiguous
and gzip-chunked, 2D slices stacked to scans, a single-file 3D dataset; masks of known blobs):
every sampled patch is the h5py hyperslab at its centre, padded as the contract says; foreground
patches sit on their classes; samples are deterministic, also across restarts; fingerprints are
numpy's nan-statistics; the state directory survives restarts and follows changed files; hostile
bodies are 4xx; split hygiene warnings. Also the Python client's fingerprint/sample, its
waiting on 503 + Retry-After, PatchLoader, and BatchLoader/PatchLoader resuming from state_dict.

One medsegd serves the module's data (MedsegdProcess, its own state_dir); tests that restart,
reload or rewrite files start servers of their own over data of their own."""
import copy
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import h5py
import numpy as np
import pytest

from conftest import ROOT, medsegd_binary, in_dtype
from medsegd_process import MedsegdProcess
from test_tensor_routes import add_background

try:
    import medsegd_client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    import medsegd_client

from medsegd_client import BatchLoader, Client, MedsegdError, PatchLoader
from medsegd_client.arrays import from_npz

IDS = [0, (1, 2), 3, (4, 5)]  # the datasets' category_ids over 6 stored channels
CHANNELS = 6
FOREGROUND_INDEX = 10_000  # voxels indexed per channel and volume
INTENSITY_SAMPLE = 10_000  # voxels per volume behind the dataset's percentiles
READY_TIMEOUT = 120  # seconds for a fingerprint pass (the debug build over this module's data)
TIMEOUT = 60


# --------------------------------------------------------------------------------------------
# Data: intensities with a few NaNs, masks of spheres (classes never overlap; the channels of
# one class may)


def blob_mask(rng, shape, absent=()):
    """An H x W x D x 6 uint8 mask: each class of IDS (but those in `absent`) one or two balls,
    classes disjoint; class 1's balls are split over channels 1 and 2 (both in their overlap),
    class 3's over channels 4 and 5."""
    grid = np.indices(shape)
    labels = np.zeros(shape, np.int64)  # 0: none, k + 1: class k
    for k in range(len(IDS)):
        if k in absent:
            continue
        for _ in range(int(rng.integers(1, 3))):
            centre = [rng.integers(0, n) for n in shape]
            radius = rng.uniform(2.0, max(2.5, min(shape) / 3))
            ball = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2
            labels[ball & (labels == 0)] = k + 1
    mask = np.zeros(shape + (CHANNELS,), np.uint8)
    split = grid[0] < shape[0] // 2
    both = grid[1] < shape[1] // 3
    mask[..., 0] = labels == 1
    mask[..., 1] = (labels == 2) & (split | both)
    mask[..., 2] = (labels == 2) & (~split | both)
    mask[..., 3] = labels == 3
    mask[..., 4] = labels == 4
    mask[..., 5] = (labels == 4) & split
    return mask


def intensities(rng, shape, nans=0, dtype=np.float32):
    image = (rng.standard_normal(shape) * 100 + 40).astype(dtype)
    if nans:
        flat = image.reshape(-1)
        flat[rng.choice(flat.size, nans, replace=False)] = np.nan
    return image


class Volume:
    """One volume as the server sees it (a scan at one augmentation), and how h5py reads it."""

    def __init__(self, scan_id, aug, image, seg, reader):
        self.scan_id, self.aug, self.image, self.seg = scan_id, aug, image, seg
        self.read = reader  # read(slices) -> (image, seg) of an H x W x D index, from the files

    @property
    def shape(self):
        return self.image.shape


def file_reader(path, group=""):
    def read(index):
        with h5py.File(path, "r") as f:
            return f[group + "volume"][index], f[group + "seg"][index]
    return read


def slices_reader(paths):
    """A stacked 2D scan: each slice from its own .im/.seg files (H x W x 1, H x W x 1 x C)."""
    def read(index):
        rows, columns, depth = index
        images, segs = [], []
        for stem in paths[depth]:
            with h5py.File(stem + ".im", "r") as f:
                images.append(f["data"][rows, columns, 0])
            with h5py.File(stem + ".seg", "r") as f:
                segs.append(f["data"][rows, columns, 0])
        return np.stack(images, axis=2), np.stack(segs, axis=2)
    return read


def mask_options(options):
    """h5py options of an image for its mask: chunks get the channel axis whole."""
    if isinstance(options.get("chunks"), tuple):
        return dict(options, chunks=options["chunks"] + (CHANNELS,))
    return options


def write_volumes(folder, specs, rng):
    """volumes-3d files: (name, shape, h5py options, classes absent, NaNs) each."""
    os.makedirs(folder)
    volumes = []
    for name, shape, options, absent, nans in specs:
        image, seg = intensities(rng, shape, nans), blob_mask(rng, shape, absent)
        path = os.path.join(folder, name + ".h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("volume", data=image, **options)
            f.create_dataset("seg", data=seg, **mask_options(options))
        volumes.append(Volume(name, 0, image, seg, file_reader(path)))
    return volumes


def write_slices(folder, specs, rng):
    """slices-2d files of stacked scans: (subject, aug, H x W x D, h5py options) each; returns
    the volumes sorted by (scan_id, aug) as /scans lists them."""
    os.makedirs(folder)
    volumes = []
    for subject, aug, shape, options in specs:
        image, seg = intensities(rng, shape, nans=3), blob_mask(rng, shape)
        stems = []
        for s in range(shape[2]):
            stem = os.path.join(folder, "%07d_V00-Aug%02d_%03d" % (subject, aug, s + 1))
            with h5py.File(stem + ".im", "w") as f:
                f.create_dataset("data", data=image[:, :, s:s + 1], **options)
            with h5py.File(stem + ".seg", "w") as f:
                f.create_dataset("data", data=seg[:, :, np.newaxis, s], **options)
            stems.append(stem)
        volumes.append(Volume("%07d_V00" % subject, aug, image, seg, slices_reader(np.array(stems))))
    return sorted(volumes, key=lambda v: (v.scan_id, v.aug))


def write_single_file(path, specs, rng):
    volumes = []
    with h5py.File(path, "w") as f:
        for name, shape in specs:
            image, seg = intensities(rng, shape, nans=1), blob_mask(rng, shape)
            f.create_dataset(name + "/volume", data=image)
            f.create_dataset(name + "/seg", data=seg)
            volumes.append(Volume(name, 0, image, seg, file_reader(path, name + "/")))
    return volumes


def category_yaml(ids):
    return "[" + ", ".join("{id: %s, name: c%d}" % (json.dumps(list(i) if isinstance(i, tuple) else i), n)
                           for n, i in enumerate(ids)) + "]"


def config_text(state_dir, datasets, extra_server=""):
    """A config of one family (IDS) with `datasets` ({name: YAML mapping text})."""
    return ("server:\n  state_dir: %s\n  max_body_bytes: 64KiB\n  max_batch_items: 256\n%s"
            "families:\n  knee:\n    categories: %s\n    metadata: {spacing: [0.5, 0.5, 2.0]}\n    datasets:\n"
            % (state_dir, extra_server, category_yaml(IDS))
            + "".join("      %s: %s\n" % item for item in datasets.items()))


class Data:
    """What the module's server serves, kept to compare with."""


def write_module_data(root):
    """The module's datasets under `root`, and their config."""
    rng = np.random.default_rng(13)
    d = Data()
    d.root = root
    gzip = dict(chunks=(8, 8, 6), compression="gzip")
    d.volumes = {
        # every volume under 10,000 voxels: the dataset's percentiles are exact
        "v3d": write_volumes(os.path.join(root, "v3d"), [
            ("0000001_V00", (24, 20, 16), {}, (), 5),
            ("0000002_V00", (20, 22, 18), gzip, (2,), 0),  # class 2 absent
            ("0000003_V01", (18, 24, 12), {}, (), 0),
        ], rng),
        "s2d": write_slices(os.path.join(root, "s2d"), [
            (4, 0, (22, 18, 6), {}), (4, 1, (22, 18, 6), {}), (5, 0, (22, 18, 5), dict(chunks=True, compression="gzip")),
        ], rng),
        "sf3d": write_single_file(os.path.join(root, "sf3d.h5"), [("0000006_V00", (16, 16, 10)), ("0000007_V00", (14, 18, 8))], rng),
        # over 10,000 voxels, channel 0 over 10,000 set: a sampled foreground index
        "big3d": write_volumes(os.path.join(root, "big3d"), [("0000008_V00", (40, 36, 24), gzip, (), 50)], rng),
    }
    big = d.volumes["big3d"][0]
    big.seg[:20, :, :, 0] = 1
    big.seg[:20, :, :, 1:] = 0
    with h5py.File(os.path.join(root, "big3d", "0000008_V00.h5"), "r+") as f:
        f["seg"][...] = big.seg
    assert big.seg[..., 0].sum() > FOREGROUND_INDEX
    # Intensities the float32 sample behind the dataset's percentiles cannot hold: float64
    # values 1e-9 apart, and int32 values above 2^24.
    os.makedirs(os.path.join(root, "wide"))
    wide = []
    for name, image in [("0000010_V00", 1 + np.arange(12 * 10 * 6, dtype=np.float64).reshape(12, 10, 6) * 1e-9),
                        ("0000011_V00", (np.arange(12 * 10 * 6, dtype=np.int64).reshape(12, 10, 6) * 7 + (1 << 25) + 1).astype(np.int32))]:
        path = os.path.join(root, "wide", name + ".h5")
        seg = blob_mask(rng, image.shape)
        with h5py.File(path, "w") as f:
            f["volume"], f["seg"] = image, seg
        wide.append(Volume(name, 0, image, seg, file_reader(path)))
    d.volumes["wide"] = wide
    # An all-NaN volume and one with infinities.
    os.makedirs(os.path.join(root, "odd"))
    odd = []
    infinite = intensities(rng, (8, 8, 4))
    infinite[0, 0, :2] = np.inf
    infinite[1, 1, 0] = -np.inf
    for name, image in [("0000012_V00", np.full((8, 8, 4), np.nan, np.float32)), ("0000013_V00", infinite)]:
        path = os.path.join(root, "odd", name + ".h5")
        seg = blob_mask(rng, image.shape)
        with h5py.File(path, "w") as f:
            f["volume"], f["seg"] = image, seg
        odd.append(Volume(name, 0, image, seg, file_reader(path)))
    d.volumes["odd"] = odd
    d.config = os.path.join(root, "medsegd.yaml")
    with open(d.config, "w") as f:
        f.write(config_text(os.path.join(root, "state"), {
            "v3d": "{format: volumes-3d, scan_root: v3d}",
            "s2d": "{format: slices-2d, scan_root: s2d}",
            "sf3d": "{format: volumes-3d-singlefile, path: sf3d.h5}",
            "big3d": "{format: volumes-3d, scan_root: big3d}",
            "wide": "{format: volumes-3d, scan_root: wide}",
            "odd": "{format: volumes-3d, scan_root: odd}",
        }))
    return d


@pytest.fixture(scope="module")
def data():
    root = tempfile.mkdtemp(prefix="medsegd-sampling-")
    server = None
    try:
        d = write_module_data(root)
        d.server = server = MedsegdProcess(d.config)
        for name in d.volumes:
            wait_fingerprint(server, name)
        yield d
    finally:
        if server:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_fingerprint(server, name, timeout=READY_TIMEOUT):
    """The dataset's fingerprint reply once its pass is done (503 until then)."""
    deadline = time.time() + timeout
    while True:
        reply = server.exchange("GET", "/v1/datasets/%s/fingerprint" % name, timeout=TIMEOUT)
        if reply.status != 503:
            assert reply.status == 200, reply
            return reply
        assert reply.code == "not_ready" and reply.headers["retry-after"] == "5", reply
        assert time.time() < deadline, "fingerprint of %s not ready after %d s" % (name, timeout)
        time.sleep(0.1)


def post(server, name, body, timeout=TIMEOUT):
    return server.exchange("POST", "/v1/datasets/%s/sample" % name, body=body, timeout=timeout)


def sample(server, name, body):
    reply = post(server, name, body)
    assert reply.status == 200, (body, reply)
    assert reply.headers["content-type"] == "application/x-npz"
    with np.load(io.BytesIO(reply.body)) as archive:
        return {key: archive[key] for key in archive.files}


# --------------------------------------------------------------------------------------------
# Patches against h5py


def window(shape, center, size):
    """Per axis: the volume's slice the patch covers (clipped) and where it lands in the patch."""
    source, target = [], []
    for n, c, s in zip(shape, center, size):
        start = c - s // 2
        low, high = max(0, start), min(n, start + s)
        source.append(slice(low, max(low, high)))
        target.append(slice(low - start, max(low, high) - start))
    return tuple(source), tuple(target)


def collate(seg, categories):
    """MedSegPy's collect_mask over the last axis, never squeezing (a patch may be 1 voxel deep)."""
    return np.stack([in_dtype(seg[..., list(c)].sum(axis=-1), seg.dtype) if isinstance(c, tuple) else seg[..., c]
                     for c in categories], axis=-1)


def expected_patch(volume, center, size, options):
    """(image, mask) of the patch at `center` as numpy says it must be: the h5py hyperslab of the
    volume's files pasted into a patch of padding (image 0; the mask where nothing is labelled:
    background channel 1, labels the "none" index). Two sizes: the centre's slice, 2D."""
    categories = options.get("categories", IDS)
    categories = [tuple(c) if isinstance(c, list) else c for c in categories]
    background = options.get("background")
    spatial = list(size) if len(size) == 3 else list(size) + [1]
    source, target = window(volume.shape, center, spatial)
    if len(size) == 2:
        source = source[:2] + (slice(center[2], center[2] + 1),)
    image_block, seg_block = volume.read(source)
    classes = collate(seg_block, categories)
    image_dtype = np.dtype(options.get("dtype", volume.image.dtype))
    image = np.zeros(spatial, image_dtype)
    image[target] = image_block.astype(image_dtype)
    if options.get("mask_format") == "labels":
        empty = len(categories) if background == "last" else 0
        mask = np.full(spatial, empty, np.uint8)
        with_background = add_background(classes, last=background == "last")
        mask[target] = np.argmax(with_background, axis=-1)
    else:
        channels = classes if background is None else add_background(classes, last=background == "last")
        empty = np.zeros(channels.shape[-1], channels.dtype)
        if background is not None:
            empty[0 if background == "first" else -1] = 1
        mask = np.empty(spatial + [channels.shape[-1]], channels.dtype)
        mask[...] = empty
        mask[target] = channels
    if len(size) == 2:
        return image[:, :, 0], mask[:, :, 0]
    return image, mask


def check_sample(d, name, body, got=None):
    """Every patch of the sample `body` asks for against expected_patch; returns the arrays."""
    got = got or sample(d.server, name, body)
    count, size = body["count"], body["patch_size"]
    volumes = d.volumes[name]
    scans = [s["scan_id"] for s in json.loads(d.server.exchange("GET", "/v1/datasets/%s/scans" % name).body)]
    labels = body.get("mask_format") == "labels"
    assert got["image"].shape == (count,) + tuple(size)
    assert got["image"].dtype == np.dtype(body.get("dtype", volumes[0].image.dtype))
    assert got["mask"].shape[:len(size) + 1] == (count,) + tuple(size)
    assert got["mask"].ndim == len(size) + (1 if labels else 2)
    assert got["scan_index"].dtype == got["aug"].dtype == got["center"].dtype == np.dtype("<i8")
    assert got["center"].shape == (count, 3) and got["foreground"].dtype == bool and got["foreground"].shape == (count,)
    for n in range(count):
        scan_id, aug = scans[got["scan_index"][n]], int(got["aug"][n])
        volume = next(v for v in volumes if (v.scan_id, v.aug) == (scan_id, aug))
        center = [int(c) for c in got["center"][n]]
        assert all(0 <= c < s for c, s in zip(center, volume.shape)), (center, volume.shape)
        image, mask = expected_patch(volume, center, size, body)
        assert image.dtype == got["image"].dtype and mask.dtype == got["mask"].dtype, (image.dtype, mask.dtype)
        np.testing.assert_array_equal(got["image"][n], image, err_msg="patch %d of %s at %s" % (n, scan_id, center))
        np.testing.assert_array_equal(got["mask"][n], mask, err_msg="patch %d of %s at %s" % (n, scan_id, center))
    return got


SAMPLES = [  # dataset, body (count, seed, foreground_fraction and the options)
    ("v3d", dict(patch_size=[16, 16, 8], count=24, seed=1, foreground_fraction=0.5)),
    ("v3d", dict(patch_size=[15, 9, 7], count=20, seed=2, foreground_fraction=0.33, background="first")),
    ("v3d", dict(patch_size=[40, 40, 30], count=6, seed=3, background="last")),  # larger than every volume
    ("v3d", dict(patch_size=[1, 1, 1], count=16, seed=4, foreground_fraction=1)),
    ("v3d", dict(patch_size=[12, 12, 6], count=12, seed=5, dtype="float16", compression="deflate",
                 categories=[3, [1, 2], [0, 4, 5]], background="first")),
    ("s2d", dict(patch_size=[12, 10, 4], count=24, seed=6, foreground_fraction=0.5, categories=[[1, 2], 0],
                 background="first")),
    ("s2d", dict(patch_size=[30, 8, 9], count=12, seed=7, background="last", dtype="float64")),
    ("sf3d", dict(patch_size=[8, 8, 8], count=16, seed=8, foreground_fraction=0.25, mask_format="labels")),
    ("sf3d", dict(patch_size=[9, 20, 3], count=16, seed=9, mask_format="labels", background="last")),
    ("sf3d", dict(patch_size=[9, 20, 3], count=16, seed=9, mask_format="labels", background="first", compression="deflate")),
    ("big3d", dict(patch_size=[32, 32, 16], count=8, seed=10, foreground_fraction=0.5, classes=[0, 2])),
]


@pytest.mark.parametrize("name,body", SAMPLES)
def test_every_patch_is_the_h5py_hyperslab_at_its_centre_padded(data, name, body):
    got = check_sample(data, name, body)
    assert sorted(got) == ["aug", "center", "foreground", "image", "mask", "scan_index"]


@pytest.mark.parametrize("name,body", [
    ("s2d", dict(patch_size=[12, 10], count=20, seed=11, foreground_fraction=0.5)),
    ("s2d", dict(patch_size=[40, 7], count=10, seed=12, background="first", mask_format="labels")),
    ("v3d", dict(patch_size=[9, 30], count=20, seed=13, foreground_fraction=0.3, background="last")),
    ("sf3d", dict(patch_size=[1, 17], count=10, seed=14, dtype="float16")),
])
def test_two_patch_sides_give_2d_patches_of_the_centre_slice(data, name, body):
    got = check_sample(data, name, body)
    assert got["image"].shape == (body["count"],) + tuple(body["patch_size"])


def test_sample_arrays_are_little_endian_npz_members_in_order(data):
    reply = post(data.server, "v3d", dict(patch_size=[4, 4, 4], count=3, seed=0))
    assert reply.status == 200 and int(reply.headers["content-length"]) == len(reply.body)
    members = from_npz(reply.body)
    assert list(members) == ["image", "mask", "scan_index", "aug", "center", "foreground"]
    assert members["foreground"].dtype == np.dtype("|b1") and members["center"].dtype == np.dtype("<i8")


# --------------------------------------------------------------------------------------------
# Where patches are centred


def centre_classes(volume, center, categories=IDS):
    """The collated classes set at a voxel of the volume."""
    return set(np.nonzero(collate(volume.seg[tuple(center)], categories))[0].tolist())


@pytest.mark.parametrize("name", ["v3d", "s2d", "sf3d"])
@pytest.mark.parametrize("count,fraction", [(20, 0.0), (20, 0.25), (24, 0.33), (10, 0.25), (5, 0.5), (9, 1.0), (1, 0.5)])
def test_the_last_round_count_x_fraction_patches_sit_on_foreground(data, name, count, fraction):
    got = sample(data.server, name, dict(patch_size=[6, 6, 4], count=count, seed=count, foreground_fraction=fraction))
    k = round(count * fraction)  # Python's round: 10 x 0.25 = 2.5 gives 2; 1 x 0.5 gives 0
    assert got["foreground"].tolist() == [False] * (count - k) + [True] * k
    volumes = sorted(data.volumes[name], key=lambda v: (v.scan_id, v.aug))
    scans = sorted({v.scan_id for v in volumes})
    for n in range(count - k, count):
        volume = next(v for v in volumes if v.scan_id == scans[got["scan_index"][n]] and v.aug == got["aug"][n])
        assert centre_classes(volume, got["center"][n]), (n, volume.scan_id, got["center"][n])


def test_foreground_patches_sit_on_the_classes_asked_for(data):
    volumes = data.volumes["v3d"]
    for classes in [[0], [2], [1, 3], [3]]:
        got = sample(data.server, "v3d", dict(patch_size=[5, 5, 5], count=60, seed=sum(classes), foreground_fraction=1,
                                              classes=classes))
        for n in range(60):
            volume = volumes[got["scan_index"][n]]
            present = [k for k in classes if collate(volume.seg, IDS)[..., k].any()]
            # A volume holding none of the classes (0000002_V00 lacks class 2) gets a uniform centre.
            assert got["foreground"][n] == bool(present), (classes, volume.scan_id)
            if present:
                assert centre_classes(volume, got["center"][n]) & set(classes), (classes, volume.scan_id, got["center"][n])
        assert got["foreground"].sum() > 0
    # Each class present is drawn: both classes of [1, 3] appear at centres.
    got = sample(data.server, "v3d", dict(patch_size=[1, 1, 1], count=80, seed=3, foreground_fraction=1, classes=[1, 3]))
    hit = set()
    for n in range(80):
        hit |= centre_classes(volumes[got["scan_index"][n]], got["center"][n])
    assert {1, 3} <= hit


def test_classes_are_positions_in_the_bodys_categories(data):
    # categories [3, [1, 2]]: class 0 is stored channel 3, class 1 channels 1 and 2.
    got = sample(data.server, "v3d", dict(patch_size=[1, 1, 1], count=40, seed=5, foreground_fraction=1,
                                          categories=[3, [1, 2]], classes=[0]))
    assert got["mask"].shape == (40, 1, 1, 1, 2)
    foreground = got["foreground"]
    assert foreground.any()
    # Each foreground patch's centre voxel (its only voxel) has class 0 of the returned mask set.
    assert (got["mask"][foreground, 0, 0, 0, 0] != 0).all(), got["mask"][foreground, 0, 0, 0]


def test_uniform_centres_cover_every_volume_within_its_shape(data):
    for name in ["v3d", "s2d"]:
        volumes = sorted(data.volumes[name], key=lambda v: (v.scan_id, v.aug))
        got = sample(data.server, name, dict(patch_size=[3, 3, 3], count=240, seed=21))
        assert not got["foreground"].any()
        drawn = {}
        for n in range(240):
            key = (int(got["scan_index"][n]), int(got["aug"][n]))
            drawn[key] = drawn.get(key, 0) + 1
        scans = sorted({v.scan_id for v in volumes})
        assert sorted(drawn) == sorted((scans.index(v.scan_id), v.aug) for v in volumes)
        for key, times in drawn.items():  # uniform over volumes: each near 240 / len(volumes)
            assert 240 / len(volumes) / 2 < times < 240 / len(volumes) * 2, drawn
        for n in range(240):
            volume = next(v for v in volumes if (scans.index(v.scan_id), v.aug) == (got["scan_index"][n], got["aug"][n]))
            assert all(0 <= c < s for c, s in zip(got["center"][n], volume.shape))
    # `scans` limits the draw (every augmentation of a scan is a volume).
    got = sample(data.server, "s2d", dict(patch_size=[3, 3, 3], count=40, seed=2, scans=["0000004_V00"]))
    assert set(got["scan_index"].tolist()) == {0} and set(got["aug"].tolist()) == {0, 1}
    got = sample(data.server, "v3d", dict(patch_size=[3, 3, 3], count=20, seed=2, scans=["0000003_V01", "0000001_V00"]))
    assert set(got["scan_index"].tolist()) == {0, 2}


def test_the_same_body_gives_the_same_bytes(data):
    body = dict(patch_size=[10, 9, 5], count=16, seed=77, foreground_fraction=0.4, background="first")
    first, again = post(data.server, "v3d", body), post(data.server, "v3d", body)
    assert first.status == again.status == 200 and first.body == again.body
    other = post(data.server, "v3d", dict(body, seed=78))
    assert other.status == 200 and other.body != first.body
    # The draw does not depend on how the arrays are sent.
    a, b = from_npz(first.body), sample(data.server, "v3d", dict(body, mask_format="labels", dtype="float16"))
    for key in ["center", "scan_index", "aug", "foreground"]:
        np.testing.assert_array_equal(a[key], b[key])
    # seed 0 is the default
    assert post(data.server, "v3d", dict(patch_size=[4, 4, 4], count=4)).body == \
        post(data.server, "v3d", dict(patch_size=[4, 4, 4], count=4, seed=0)).body


# --------------------------------------------------------------------------------------------
# Fingerprints against numpy


def numpy_intensity(values):
    """nanmin, nanmax, nanmean, nanstd, nanpercentile 0.5 and 99.5, in float64."""
    values = np.asarray(values, np.float64).reshape(-1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices, inf - inf
        return {"min": np.nanmin(values), "max": np.nanmax(values), "mean": np.nanmean(values), "std": np.nanstd(values),
                "percentile_00_5": np.nanpercentile(values, 0.5), "percentile_99_5": np.nanpercentile(values, 99.5)}


def as_float(value):
    return float(value) if isinstance(value, str) else value  # "Infinity", "-Infinity", "NaN"


def check_intensity(got, expected, percentiles=True, what=""):
    for key in ["min", "max"]:
        assert as_float(got[key]) == expected[key], (what, key, got[key], expected[key])
    keys = ["mean", "std"] + (["percentile_00_5", "percentile_99_5"] if percentiles else [])
    for key in keys:
        np.testing.assert_allclose(as_float(got[key]), expected[key], rtol=1e-12, atol=0, err_msg="%s %s" % (what, key))


def volume_fingerprint(volume):
    collated = collate(volume.seg, IDS)
    spatial = tuple(range(3))
    channels = (volume.seg != 0).sum(axis=spatial).tolist()
    return {
        "scan_id": volume.scan_id, "aug": volume.aug, "shape": list(volume.shape), "dtype": volume.image.dtype.str,
        "voxels": int(volume.image.size), "channel_voxels": channels,
        "class_voxels": (collated != 0).sum(axis=spatial).tolist(),
        "foreground_samples": [min(n, FOREGROUND_INDEX) for n in channels],
    }


@pytest.mark.parametrize("name", ["v3d", "s2d", "sf3d", "big3d", "wide"])
def test_fingerprints_are_numpys_statistics(data, name):
    fingerprint = json.loads(data.server.exchange("GET", "/v1/datasets/%s/fingerprint" % name).body)
    volumes = sorted(data.volumes[name], key=lambda v: (v.scan_id, v.aug))
    assert [(s["scan_id"], s["aug"]) for s in fingerprint["scans"]] == [(v.scan_id, v.aug) for v in volumes]
    for scan, volume in zip(fingerprint["scans"], volumes):
        expected = volume_fingerprint(volume)
        assert {k: scan[k] for k in expected} == expected
        assert set(scan) == set(expected) | {"intensity"}
        check_intensity(scan["intensity"], numpy_intensity(volume.image), what=volume.scan_id)
    # The dataset: sums, shapes and dtypes, and the intensity over every voxel.
    assert fingerprint["dataset"] == name and fingerprint["spacing"] == [0.5, 0.5, 2.0]
    assert fingerprint["classes"] == [0, [1, 2], 3, [4, 5]]
    assert fingerprint["volumes"] == len(volumes) and fingerprint["voxels"] == sum(v.image.size for v in volumes)
    assert fingerprint["shapes"] == {"min": np.min([v.shape for v in volumes], axis=0).tolist(),
                                     "max": np.max([v.shape for v in volumes], axis=0).tolist()}
    assert fingerprint["dtypes"] == sorted({v.image.dtype.str for v in volumes})
    assert fingerprint["channel_voxels"] == np.sum([volume_fingerprint(v)["channel_voxels"] for v in volumes], axis=0).tolist()
    assert fingerprint["class_voxels"] == np.sum([volume_fingerprint(v)["class_voxels"] for v in volumes], axis=0).tolist()
    everything = np.concatenate([v.image.astype(np.float64).reshape(-1) for v in volumes])
    expected = numpy_intensity(everything)
    small = all(np.count_nonzero(~np.isnan(v.image.astype(np.float64))) <= INTENSITY_SAMPLE for v in volumes)
    if name == "wide":  # exact percentiles here are a known bug: see the test below
        check_intensity(fingerprint["intensity"], expected, percentiles=False, what=name)
        return
    check_intensity(fingerprint["intensity"], expected, percentiles=small, what=name)
    if not small:  # a sample of 10,000 voxels: near the true percentiles
        low, high = fingerprint["intensity"]["percentile_00_5"], fingerprint["intensity"]["percentile_99_5"]
        assert np.nanpercentile(everything, 0.1) < low < np.nanpercentile(everything, 1.5)
        assert np.nanpercentile(everything, 98.5) < high < np.nanpercentile(everything, 99.9)


def test_dataset_percentiles_are_exact_for_float64_and_int32_volumes_under_10000_voxels(data):
    fingerprint = json.loads(data.server.exchange("GET", "/v1/datasets/wide/fingerprint").body)
    everything = np.concatenate([v.image.astype(np.float64).reshape(-1) for v in data.volumes["wide"]])
    check_intensity(fingerprint["intensity"], numpy_intensity(everything), what="wide")


def test_nan_voxels_are_left_out_and_infinities_are_strings(data):
    reply = data.server.exchange("GET", "/v1/datasets/odd/fingerprint")
    # Strict JSON: no bare NaN or Infinity tokens.
    fingerprint = json.loads(reply.body, parse_constant=lambda token: pytest.fail("bare %s in the JSON" % token))
    all_nan, infinite = fingerprint["scans"]
    assert all_nan["voxels"] == 256 and all_nan.get("intensity") is None  # nothing to count
    assert all_nan["channel_voxels"] == volume_fingerprint(data.volumes["odd"][0])["channel_voxels"]
    expected = numpy_intensity(data.volumes["odd"][1].image)
    assert infinite["intensity"]["min"] == "-Infinity" and infinite["intensity"]["max"] == "Infinity"
    for key, value in expected.items():
        got = as_float(infinite["intensity"][key])
        assert got == value or (np.isnan(got) and np.isnan(value)), (key, got, value)
    # v3d's first volume has 5 NaN voxels: they count as voxels, not in the statistics.
    volume = data.volumes["v3d"][0]
    assert np.isnan(volume.image).sum() == 5
    scan = json.loads(data.server.exchange("GET", "/v1/datasets/v3d/scans/%s/fingerprint" % volume.scan_id).body)
    assert scan["voxels"] == volume.image.size and not any(np.isnan(as_float(v)) for v in scan["intensity"].values())


def test_dataset_statistics_with_infinities_are_numpys(data):
    fingerprint = json.loads(data.server.exchange("GET", "/v1/datasets/odd/fingerprint").body)
    expected = numpy_intensity(np.concatenate([v.image.reshape(-1) for v in data.volumes["odd"]]))
    for key, value in expected.items():
        got = as_float(fingerprint["intensity"][key])
        assert got == value or (np.isnan(got) and np.isnan(value)), (key, got, value)


def test_a_volumes_fingerprint_route(data):
    fingerprint = json.loads(data.server.exchange("GET", "/v1/datasets/s2d/fingerprint").body)
    for scan in fingerprint["scans"]:
        reply = data.server.exchange("GET", "/v1/datasets/s2d/scans/%s/fingerprint?aug=%d" % (scan["scan_id"], scan["aug"]))
        assert reply.status == 200 and json.loads(reply.body) == scan
    default = json.loads(data.server.exchange("GET", "/v1/datasets/s2d/scans/0000004_V00/fingerprint").body)
    assert default["aug"] == 0
    pretty = data.server.exchange("GET", "/v1/datasets/s2d/scans/0000004_V00/fingerprint?pretty=1")
    assert json.loads(pretty.body) == default and b"\n  " in pretty.body
    for path, status in [("/v1/datasets/s2d/scans/0000004_V00/fingerprint?aug=7", 404),
                         ("/v1/datasets/s2d/scans/0000009_V00/fingerprint", 404),
                         ("/v1/datasets/nope/fingerprint", 404),
                         ("/v1/datasets/s2d/scans/0000004_V00/fingerprint?aug=x", 400),
                         ("/v1/datasets/s2d/fingerprint?aug=1", 400),
                         ("/v1/datasets/s2d/fingerprint?pretty=1&pretty=1", 400)]:
        reply = data.server.exchange("GET", path)
        assert reply.status == status and reply.code in ("not_found", "bad_request"), (path, reply)
    assert data.server.exchange("HEAD", "/v1/datasets/s2d/fingerprint").status == 200


# --------------------------------------------------------------------------------------------
# Hostile bodies

P = [8, 8, 8]
HOSTILE = [  # body (bytes, or an object sent as JSON), status
    (b"", 400), (b"{", 400), (b"\xff\xfe", 400), (b"null", 400), (b"[8, 8, 8]", 400), (b'"x"', 400), (b"{}", 400),
    (b'{"patch_size": [8, 8, 8], "count": 1} trailing', 400),
    (b'{"patch_size": [8, 8, 8], "count": 1, "count": 2}', 400),
    (b'{"patch_size": [8, 8, 8], "count": 1, "foreground_fraction": NaN}', 400),
    (b'{"patch_size": [8, 8, 8], "count": 1' + b" " * (100 * 1024) + b"}", 413),  # 100 KB, over max_body_bytes
    (b"[" * 100_000, 413),
    ({"patch_size": [0, 8, 8], "count": 1}, 400), ({"patch_size": [-1, 8, 8], "count": 1}, 400),
    ({"patch_size": [2 ** 63, 8, 8], "count": 1}, 400), ({"patch_size": [2 ** 64 + 8, 8, 8], "count": 1}, 400),
    ({"patch_size": [4097, 8, 8], "count": 1}, 400), ({"patch_size": [8, 8, 8, 8, 8], "count": 1}, 400),
    ({"patch_size": [8, 8, 8, 8], "count": 1}, 400), ({"patch_size": [8], "count": 1}, 400),
    ({"patch_size": [], "count": 1}, 400), ({"patch_size": [8.5, 8, 8], "count": 1}, 400),
    ({"patch_size": ["8", 8, 8], "count": 1}, 400), ({"patch_size": "8,8,8", "count": 1}, 400),
    ({"patch_size": [True, 8, 8], "count": 1}, 400), ({"patch_size": [None, 8, 8], "count": 1}, 400),
    ({"count": 1}, 400), ({"patch_size": P}, 400), ({"patch_size": P, "count": 0}, 400),
    ({"patch_size": P, "count": -1}, 400), ({"patch_size": P, "count": "4"}, 400), ({"patch_size": P, "count": 1.5}, 400),
    ({"patch_size": P, "count": 257}, 413), ({"patch_size": P, "count": 10 ** 6}, 413),
    ({"patch_size": P, "count": 2 ** 63 - 1}, 413), ({"patch_size": P, "count": 2 ** 63}, 400),
    ({"patch_size": P, "count": 1, "foreground_fraction": -1}, 400),
    ({"patch_size": P, "count": 1, "foreground_fraction": 2}, 400),
    ({"patch_size": P, "count": 1, "foreground_fraction": 1.0000001}, 400),
    ({"patch_size": P, "count": 1, "foreground_fraction": "x"}, 400),
    ({"patch_size": P, "count": 1, "foreground_fraction": "NaN"}, 400),
    ({"patch_size": P, "count": 1, "foreground_fraction": "0.5"}, 400),
    ({"patch_size": P, "count": 1, "foreground_fraction": [0.5]}, 400),
    ({"patch_size": P, "count": 1, "seed": -1}, 400), ({"patch_size": P, "count": 1, "seed": 2 ** 64}, 400),
    ({"patch_size": P, "count": 1, "seed": 1.5}, 400), ({"patch_size": P, "count": 1, "seed": "7"}, 400),
    ({"patch_size": P, "count": 1, "classes": [4]}, 400), ({"patch_size": P, "count": 1, "classes": [-1]}, 400),
    ({"patch_size": P, "count": 1, "classes": [2 ** 63]}, 400), ({"patch_size": P, "count": 1, "classes": []}, 400),
    ({"patch_size": P, "count": 1, "classes": 2}, 400), ({"patch_size": P, "count": 1, "classes": ["0"]}, 400),
    ({"patch_size": P, "count": 1, "scans": ["0000009_V00"]}, 404),
    ({"patch_size": P, "count": 1, "scans": ["0000001_V00", "../0000002_V00"]}, 404),
    ({"patch_size": P, "count": 1, "scans": []}, 400), ({"patch_size": P, "count": 1, "scans": [1]}, 400),
    ({"patch_size": P, "count": 1, "scans": "0000001_V00"}, 400),
    ({"patch_size": P, "count": 1, "unknown": 1}, 400), ({"patch_size": P, "count": 1, "region": "0:4"}, 400),
    ({"patch_size": P, "count": 1, "indices": [0]}, 400),
    ({"patch_size": P, "count": 1, "categories": [9]}, 400), ({"patch_size": P, "count": 1, "categories": "x"}, 400),
    ({"patch_size": P, "count": 1, "background": "middle"}, 400),
    ({"patch_size": P, "count": 1, "dtype": "complex64"}, 400),
    ({"patch_size": P, "count": 1, "mask_format": "onehot"}, 400),
    ({"patch_size": P, "count": 1, "compression": "gzip"}, 400),
]


@pytest.mark.parametrize("body,status", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_sample_bodies_are_json_errors(data, body, status):
    reply = post(data.server, "v3d", body)
    assert reply.status == status, (body if isinstance(body, dict) else body[:80], reply)
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.code == {400: "bad_request", 404: "not_found", 413: "too_large"}[status], reply
    data.server.assert_healthy("hostile body %r" % (body if isinstance(body, dict) else body[:40]))


def test_sample_route_errors(data):
    assert post(data.server, "nope", {"patch_size": P, "count": 1}).status == 404
    assert data.server.exchange("GET", "/v1/datasets/v3d/sample").status == 405
    reply = data.server.exchange("POST", "/v1/datasets/v3d/sample?seed=1", body={"patch_size": P, "count": 1})
    assert reply.status == 400 and "seed" in reply.message
    assert data.server.exchange("POST", "/v1/datasets/v3d/fingerprint", body={}).status == 405
    # Volumes of different dtypes cannot share one image array.
    reply = post(data.server, "wide", {"patch_size": [4, 4, 4], "count": 40})
    assert reply.status == 422 and reply.code == "unprocessable", reply
    assert post(data.server, "wide", {"patch_size": [4, 4, 4], "count": 40, "dtype": "float64"}).status == 200
    data.server.assert_healthy("errors")


# --------------------------------------------------------------------------------------------
# Limits: max_response_bytes bounds what a sample holds, and what the server allocates for it

LIMIT = 32 << 20


@pytest.fixture(scope="module")
def limited(data):
    """A second server over the module's data with max_response_bytes: 32MiB."""
    config = os.path.join(data.root, "limited.yaml")
    with open(config, "w") as f:
        f.write(config_text(os.path.join(data.root, "state-limited"), {"v3d": "{format: volumes-3d, scan_root: v3d}"},
                            extra_server="  max_response_bytes: 32MiB\n"))
    server = MedsegdProcess(config)
    wait_fingerprint(server, "v3d")
    yield server
    server.stop()


def test_a_sample_within_max_response_bytes_is_served(limited):
    # 1 x 128 x 128 x 64: 4 MiB of image and 5 MiB of mask (background first).
    reply = post(limited, "v3d", {"patch_size": [128, 128, 64], "count": 1, "background": "first"}, timeout=120)
    assert reply.status == 200 and len(reply.body) < LIMIT
    assert post(limited, "v3d", {"patch_size": [256, 256, 64], "count": 3}, timeout=120).status == 413


def test_a_sample_over_max_response_bytes_is_413(limited):
    # 256 x 256 x 80 voxels: 20 MiB of image and 25 MiB of mask (5 channels), over 32 MiB.
    reply = post(limited, "v3d", {"patch_size": [256, 256, 80], "count": 1, "background": "first"}, timeout=120)
    assert reply.status == 413 and reply.code == "too_large", (reply.status, len(reply.body))


def test_a_sample_refused_for_its_size_does_not_allocate_it(limited):
    before = limited.rss_kib("VmHWM")
    # 32 patches of 16 MiB of image and 16 MiB of mask: 413 after the second patch.
    reply = post(limited, "v3d", {"patch_size": [256, 256, 64], "count": 32}, timeout=120)
    assert reply.status == 413
    grown = (limited.rss_kib("VmHWM") - before) << 10
    assert grown < 4 * LIMIT, "peak RSS grew by %d MiB for a request refused at 32 MiB" % (grown >> 20)


# --------------------------------------------------------------------------------------------
# The state directory: fingerprints survive restarts and follow changed files

READY = re.compile(r"computed=(\d+) dataset=(\S+) reused=(\d+) .*fingerprint ready")


def ready_lines(server, start=0):
    """{dataset: (computed, reused)} of the "fingerprint ready" lines logged after `start`."""
    return {m.group(2): (int(m.group(1)), int(m.group(3))) for m in READY.finditer(server.log[start:])}


def wait_ready_lines(server, names, start, timeout=READY_TIMEOUT):
    deadline = time.time() + timeout
    while True:
        lines = ready_lines(server, start)
        if set(names) <= set(lines):
            return lines
        assert server.process.poll() is None and time.time() < deadline, server.log[-3000:]
        time.sleep(0.05)


def write_persisted_data(root, rng):
    volumes = write_volumes(os.path.join(root, "p3d"), [
        ("0000001_V00", (20, 16, 10), {}, (), 2), ("0000002_V00", (16, 18, 8), dict(chunks=True, compression="gzip"), (), 0),
        ("0000003_V00", (12, 12, 12), {}, (1,), 0)], rng)
    slices = write_slices(os.path.join(root, "p2d"), [(4, 0, (14, 12, 4), {}), (5, 0, (14, 12, 3), {})], rng)
    for state in ["state", "fresh"]:
        with open(os.path.join(root, state + ".yaml"), "w") as f:
            f.write(config_text(os.path.join(root, state), {"p3d": "{format: volumes-3d, scan_root: p3d}",
                                                           "p2d": "{format: slices-2d, scan_root: p2d}"}))
    return volumes, slices


def snapshot(server):
    """The datasets' fingerprint bodies and a seeded sample's bytes of each."""
    out = {}
    for name in ["p3d", "p2d"]:
        fingerprint = wait_fingerprint(server, name).body
        reply = post(server, name, dict(patch_size=[8, 8, 4], count=12, seed=3, foreground_fraction=0.5))
        assert reply.status == 200, reply
        out[name] = (fingerprint, reply.body)
    return out


def test_fingerprints_persist_across_restarts_and_follow_changed_files(tmp_path):
    root = str(tmp_path)
    volumes, _ = write_persisted_data(root, np.random.default_rng(5))
    config = os.path.join(root, "state.yaml")
    server = MedsegdProcess(config)
    try:
        assert wait_ready_lines(server, ["p3d", "p2d"], 0) == {"p3d": (3, 0), "p2d": (2, 0)}
        first = snapshot(server)
        assert sorted(os.listdir(os.path.join(root, "state", "fingerprints"))) == ["p2d.json", "p3d.json"]
        server.stop()
        # Restarted over the same state_dir: every volume reused, the same JSON and samples.
        start = len(server.log)
        server.start()
        assert wait_ready_lines(server, ["p3d", "p2d"], start) == {"p3d": (0, 3), "p2d": (0, 2)}
        assert snapshot(server) == first
        # One volume rewritten with other values: after a reload, only it is computed again.
        changed = volumes[1]
        image = (changed.image * 2 + 7).astype(np.float32)
        seg = np.roll(changed.seg, 3, axis=0)
        with h5py.File(os.path.join(root, "p3d", changed.scan_id + ".h5"), "w") as f:
            f["volume"], f["seg"] = image, seg
        start = len(server.log)
        server.reload()
        assert wait_ready_lines(server, ["p3d", "p2d"], start) == {"p3d": (1, 2), "p2d": (0, 2)}
        after = snapshot(server)
        assert after["p2d"] == first["p2d"]
        old, new = json.loads(first["p3d"][0]), json.loads(after["p3d"][0])
        assert old["scans"][0] == new["scans"][0] and old["scans"][2] == new["scans"][2]
        assert old["scans"][1] != new["scans"][1]
        check_intensity(new["scans"][1]["intensity"], numpy_intensity(image))
        assert new["scans"][1]["channel_voxels"] == (seg != 0).sum(axis=(0, 1, 2)).tolist()
        server.stop()
        start = len(server.log)
        server.start()
        assert wait_ready_lines(server, ["p3d", "p2d"], start) == {"p3d": (0, 3), "p2d": (0, 2)}
        assert snapshot(server) == after
    finally:
        server.stop()
    # Another state_dir, empty: everything computed again, to the same JSON and the same samples.
    fresh = MedsegdProcess(os.path.join(root, "fresh.yaml"))
    try:
        assert wait_ready_lines(fresh, ["p3d", "p2d"], 0) == {"p3d": (3, 0), "p2d": (2, 0)}
        assert snapshot(fresh) == after
    finally:
        fresh.stop()


def test_a_corrupt_state_file_is_recomputed(tmp_path):
    root = str(tmp_path)
    write_persisted_data(root, np.random.default_rng(6))
    server = MedsegdProcess(os.path.join(root, "state.yaml"))
    try:
        wait_ready_lines(server, ["p3d", "p2d"], 0)
        first = snapshot(server)
        server.stop()
        with open(os.path.join(root, "state", "fingerprints", "p3d.json"), "r+b") as f:
            f.truncate(100)
        start = len(server.log)
        server.start()
        assert wait_ready_lines(server, ["p3d", "p2d"], start) == {"p3d": (3, 0), "p2d": (0, 2)}
        assert snapshot(server) == first
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# 503 + Retry-After while a pass runs


def test_fingerprint_and_sample_are_503_until_the_pass_is_done(tmp_path):
    """A dataset of two 8-million-voxel volumes keeps the pass busy for a few seconds (about 6 in
    the debug build): requests in that time are 503 with Retry-After, and the client waits."""
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "big"))
    for i in range(2):
        with h5py.File(os.path.join(root, "big", "%07d_V00.h5" % (i + 1)), "w") as f:
            volume = f.create_dataset("volume", shape=(256, 256, 128), dtype=np.float32, chunks=(64, 64, 32),
                                      compression="gzip", fillvalue=1.5)
            volume[:, :, :4] = np.random.default_rng(i).standard_normal((256, 256, 4))
            seg = f.create_dataset("seg", shape=(256, 256, 128, CHANNELS), dtype=np.uint8, chunks=(64, 64, 32, CHANNELS),
                                   compression="gzip")
            seg[:40, :40, :16, 0] = 1
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write(config_text(os.path.join(root, "state"), {"big": "{format: volumes-3d, scan_root: big}"}))
    server = MedsegdProcess(config)
    try:
        replies = [server.exchange("GET", "/v1/datasets/big/fingerprint"),
                   server.exchange("GET", "/v1/datasets/big/scans/0000001_V00/fingerprint"),
                   post(server, "big", {"patch_size": [8, 8, 8], "count": 1})]
        if replies[-1].status == 200:
            pytest.skip("the fingerprint pass finished before the first request")
        for reply in replies:
            assert reply.status == 503 and reply.code == "not_ready" and reply.headers["retry-after"] == "5", reply
            assert "being computed" in reply.message
        with pytest.raises(MedsegdError) as error:
            Client(server.base, retries=0, pending_retries=0).fingerprint("big")
        assert error.value.status == 503 and error.value.code == "not_ready"
        metrics = server.exchange("GET", "/metrics").body.decode()
        assert 'medsegd_fingerprint_volumes{dataset="big"} 2' in metrics
        # The client waits Retry-After between attempts until the pass is done.
        client = Client(server.base, retries=0, pending_retries=20)
        refused = server.log.count("status=503")
        started = time.time()
        got = client.sample("big", [8, 8, 8], 4, seed=1, foreground_fraction=1)
        waited = time.time() - started
        # It waited whenever it was told to (the pass may also have ended before it asked).
        assert server.log.count("status=503") == refused or waited >= 1, waited
        assert got["foreground"].all()
        assert (got["mask"][:, 4, 4, 4, 0] == 1).all()  # centred on the one labelled box of channel 0
        assert client.fingerprint("big")["channel_voxels"] == [2 * 40 * 40 * 16, 0, 0, 0, 0, 0]
        assert server.log.count("status=503") >= 4
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Split hygiene


def write_split_data(root):
    rng = np.random.default_rng(0)

    def slices(folder, specs):
        os.makedirs(os.path.join(root, folder))
        for subject, aug, count in specs:
            for s in range(count):
                stem = os.path.join(root, folder, "%07d_V00-Aug%02d_%03d" % (subject, aug, s + 1))
                with h5py.File(stem + ".im", "w") as f:
                    f["data"] = rng.standard_normal((8, 8, 1)).astype(np.float32)
                with h5py.File(stem + ".seg", "w") as f:
                    f["data"] = np.zeros((8, 8, 1, CHANNELS), np.uint8)

    slices("train", [(1, 0, 2), (1, 1, 2), (2, 0, 2)])  # augmented training data is fine
    slices("val", [(3, 0, 2), (3, 1, 2)])  # (a) augmented validation data
    os.makedirs(os.path.join(root, "test"))
    with h5py.File(os.path.join(root, "test", "0000002_V00.h5"), "w") as f:  # (b) subject 2 is in train too
        f["volume"], f["seg"] = np.zeros((8, 8, 4), np.float32), np.zeros((8, 8, 4, CHANNELS), np.uint8)
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write(config_text(os.path.join(root, "state"), {"knee_train": "{format: slices-2d, scan_root: train}",
                                                         "knee_val": "{format: slices-2d, scan_root: val}",
                                                         "knee_test": "{format: volumes-3d, scan_root: test}"}))
    return config


AUGMENTED = re.compile(r"knee_val.*validation split.*2 of its 4 items are augmented.*0000003_V00-Aug01_001\.im")
SHARED = re.compile(r"knee_(test|train).*subject_id 2\).*knee_(train|test).*family 'knee'")


def test_check_and_the_load_log_warn_about_split_hygiene(tmp_path):
    config = write_split_data(str(tmp_path))
    check = subprocess.run([medsegd_binary(), "check", "--config", config], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr  # warnings, not errors
    output = check.stdout + check.stderr
    assert AUGMENTED.search(output) and SHARED.search(output), output
    assert "0 error(s), 2 warning(s)" in output, output
    assert "knee_train" not in [line.split("'")[1] for line in output.splitlines() if "augmented" in line]
    server = MedsegdProcess(config)
    try:
        log = server.log
        assert AUGMENTED.search(log) and SHARED.search(log), log[-3000:]
        assert re.search(r"warning.*knee_val", log), log[-3000:]
    finally:
        server.stop()


def test_the_demo_has_no_split_warning(tmp_path):
    demo = str(tmp_path / "demo")
    subprocess.run([medsegd_binary(), "demo", demo], check=True, capture_output=True, timeout=60)
    check = subprocess.run([medsegd_binary(), "check", "--config", os.path.join(demo, "medsegd.yaml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and " 0 warning(s)" in check.stdout, check.stdout + check.stderr
    assert "warning" not in check.stdout.replace("0 warning(s)", "") + check.stderr


# --------------------------------------------------------------------------------------------
# The Python client: fingerprint, sample, waiting on 503 + Retry-After


@pytest.fixture
def client(data):
    client = Client(data.server.base, retries=1, backoff=0.01, timeout=TIMEOUT)
    yield client
    client.close()


def test_client_fingerprint_and_sample_are_the_routes(client, data):
    for name in ["v3d", "s2d"]:
        assert client.fingerprint(name) == json.loads(data.server.exchange("GET", "/v1/datasets/%s/fingerprint" % name).body)
    scan = client.fingerprint("s2d", "0000004_V00", aug=1)
    assert (scan["scan_id"], scan["aug"]) == ("0000004_V00", 1) and scan == client.fingerprint("s2d")["scans"][1]
    odd = client.fingerprint("odd")  # strings for non-finite values become floats
    assert odd["intensity"]["min"] == -np.inf and odd["intensity"]["max"] == np.inf and np.isnan(odd["intensity"]["mean"])
    assert odd["scans"][0].get("intensity") is None
    with pytest.raises(MedsegdError) as error:
        client.fingerprint("s2d", "0000009_V00")
    assert error.value.status == 404
    body = dict(patch_size=[6, 5, 4], count=9, seed=4, foreground_fraction=0.5, classes=[0, 3], scans=["0000001_V00", "0000003_V01"],
                categories=[0, [1, 2], 3, [4, 5]], background="last", dtype="float16", mask_format="labels",
                compression="deflate")
    got = client.sample("v3d", (6, 5, 4), 9, seed=4, foreground_fraction=0.5, classes=(0, 3), scans=("0000001_V00", "0000003_V01"),
                        categories=IDS, background="last", dtype=np.float16, mask_format="labels", compression="deflate")
    expected = sample(data.server, "v3d", body)
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(got[key], expected[key])
    check_sample(data, "v3d", body, got)
    two_d = client.sample("s2d", [7, 7], 3)
    assert two_d["image"].shape == (3, 7, 7) and not two_d["foreground"].any()
    with pytest.raises(MedsegdError) as error:
        client.sample("v3d", [0, 8, 8], 1)
    assert error.value.status == 400 and "patch_size" in error.value.message


def root_buffer(array):
    """The object at the end of an array's base chain (what holds its bytes)."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def test_client_receives_large_bodies_into_reused_buffers(client, data):
    body = dict(patch_size=[64, 64, 32], count=8, seed=1, foreground_fraction=0.5)  # 8 MiB of image, 8 of mask
    first = client.sample("v3d", **body)
    kept = {key: value.copy() for key, value in first.items()}
    buffer = root_buffer(first["image"])
    assert type(buffer) is bytearray and root_buffer(first["mask"]) is buffer
    assert not first["image"].flags.writeable and not first["mask"].flags.writeable
    # Arrays still referenced keep their buffer: later samples go elsewhere and leave them intact.
    later = [client.sample("v3d", **dict(body, seed=seed)) for seed in range(2, 8)]
    for key in kept:
        np.testing.assert_array_equal(first[key], kept[key])
    assert all(root_buffer(s["image"]) is not buffer for s in later)
    expected = sample(data.server, "v3d", dict(body, seed=7))
    for key in expected:
        np.testing.assert_array_equal(later[-1][key], expected[key])
    # Once nothing views it, a buffer is taken again (of the right size).
    del first, later
    again = client.sample("v3d", **dict(body, seed=9))
    assert root_buffer(again["image"]) in [b for b in client._buffers._buffers]
    assert len(client._buffers._buffers) <= client._buffers.count
    np.testing.assert_array_equal(again["image"], sample(data.server, "v3d", dict(body, seed=9))["image"])
    # Small bodies stay bytes objects.
    assert type(root_buffer(client.sample("v3d", [4, 4, 4], 2)["image"])) is bytes


class FakeServer:
    """A stand-in medsegd on a thread: answers each request with the next of `replies`
    ((status, headers, body); the last repeats), recording (method, path, body)."""

    def __init__(self, replies):
        self.calls = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.calls.append((self.command, self.path, self.rfile.read(length), time.monotonic()))
                status, headers, body = replies[min(len(outer.calls), len(replies)) - 1]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = "http://127.0.0.1:%d" % self.httpd.server_port

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


NOT_READY = b'{"error": {"code": "not_ready", "message": "the fingerprint of dataset \'d\' is being computed (0 of 1 volumes)"}}'


def npz_body(**arrays):
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_client_waits_retry_after_on_503_for_sample_and_fingerprint():
    ok = npz_body(image=np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2), foreground=np.array([True]))
    fake = FakeServer([(503, {"Retry-After": "1"}, NOT_READY)] * 2 + [(200, {"Content-Type": "application/x-npz"}, ok)])
    try:
        client = Client(fake.base, retries=0, pending_retries=5)
        started = time.monotonic()
        got = client.sample("d", [2, 2, 2], 1, seed=9)
        assert time.monotonic() - started >= 2  # Retry-After: 1, twice
        np.testing.assert_array_equal(got["image"], np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2))
        assert len(fake.calls) == 3 and {c[:3] for c in fake.calls} == {fake.calls[0][:3]}  # the same POST, resent
        method, path, body, _ = fake.calls[0]
        assert method == "POST" and path == "/v1/datasets/d/sample"
        assert json.loads(body) == {"patch_size": [2, 2, 2], "count": 1, "seed": 9, "foreground_fraction": 0.0}
        assert all(b[3] - a[3] >= 0.9 for a, b in zip(fake.calls, fake.calls[1:]))
    finally:
        fake.close()
    fake = FakeServer([(503, {"Retry-After": "0"}, NOT_READY), (200, {}, b'{"dataset": "d", "scans": []}')])
    try:
        assert Client(fake.base, retries=0, pending_retries=1).fingerprint("d") == {"dataset": "d", "scans": []}
        assert [c[:2] for c in fake.calls] == [("GET", "/v1/datasets/d/fingerprint")] * 2
    finally:
        fake.close()


def test_client_waits_a_bounded_number_of_times():
    fake = FakeServer([(503, {"Retry-After": "3600"}, NOT_READY)])  # capped by max_retry_after
    try:
        client = Client(fake.base, retries=1, backoff=0.01, pending_retries=3, max_retry_after=0.05)
        started = time.monotonic()
        with pytest.raises(MedsegdError) as error:
            client.sample("d", [2, 2, 2], 1)
        assert error.value.status == 503 and error.value.code == "not_ready"
        assert len(fake.calls) == 1 + 3 + 1  # the first try, 3 waits for the pass, 1 ordinary retry
        assert time.monotonic() - started < 5
        # Routes other than fingerprint and sample get the ordinary retries only (Retry-After as the delay).
        del fake.calls[:]
        with pytest.raises(MedsegdError):
            client.datasets()
        assert len(fake.calls) == 2
        del fake.calls[:]
        with pytest.raises(MedsegdError):
            Client(fake.base, retries=0, pending_retries=0).fingerprint("d")
        assert len(fake.calls) == 1
    finally:
        fake.close()
    # A 503 without Retry-After backs off exponentially as before, on every route.
    fake = FakeServer([(503, {}, NOT_READY)] * 2 + [(200, {}, b'{"datasets": []}')])
    try:
        assert Client(fake.base, retries=2, backoff=0.01, pending_retries=0).datasets() == []
        assert len(fake.calls) == 3
    finally:
        fake.close()


# --------------------------------------------------------------------------------------------
# PatchLoader


def epoch_of(loader):
    """One epoch of a loader that yields whole samples (keys=None), as lists of arrays per key."""
    return [{key: np.array(value) for key, value in batch.items()} for batch in loader]


def same_batches(a, b):
    return len(a) == len(b) and all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_patch_loader_batches(client, data):
    loader = PatchLoader(client, "v3d", [8, 8, 4], batch_size=6, batches_per_epoch=3, seed=5, foreground_fraction=0.5)
    assert len(loader) == 3
    batches = list(loader)
    assert len(batches) == 3 and loader.epoch == 1
    for images, masks in batches:
        assert images.shape == (6, 8, 8, 4) and images.dtype == np.float32
        assert masks.shape == (6, 8, 8, 4, 4) and masks.dtype == np.uint8
    # Batch b is the sample seeded with batch_seed(b), checked against h5py.
    loader.set_epoch(0)
    for b in range(3):
        body = dict(patch_size=[8, 8, 4], count=6, seed=loader.batch_seed(b), foreground_fraction=0.5)
        got = loader.batch(b)
        check_sample(data, "v3d", body, got)
        assert got["foreground"].sum() == round(6 * 0.5)
        np.testing.assert_array_equal(got["image"], batches[b][0])
    # Options go to the sample route; keys picks the members.
    labelled = PatchLoader(client, "s2d", [6, 6], batch_size=4, batches_per_epoch=2, classes=[1], mask_format="labels",
                           background="last", dtype="float16", keys=("image", "mask", "center"), prefetch=0)
    images, masks, centres = labelled[1]
    assert images.shape == (4, 6, 6) and images.dtype == np.float16 and masks.shape == (4, 6, 6) and centres.shape == (4, 3)
    check_sample(data, "s2d", dict(patch_size=[6, 6], count=4, seed=labelled.batch_seed(1), foreground_fraction=0.33,
                                   classes=[1], mask_format="labels", background="last", dtype="float16"))
    with pytest.raises(IndexError):
        loader[3]
    with pytest.raises(TypeError):
        PatchLoader(client, "v3d", [8, 8, 4], 2, 2, region="0:4")
    with pytest.raises(ValueError):
        PatchLoader(client, "v3d", [8, 8, 4], 2, 2, rank=2, world_size=2)


def test_patch_loader_epochs_differ_and_replay(client):
    def loader(**kwargs):
        return PatchLoader(client, "v3d", [5, 5, 5], **dict(dict(batch_size=4, batches_per_epoch=3, seed=11, keys=None), **kwargs))

    first = loader()
    epochs = [epoch_of(first) for _ in range(3)]
    assert first.epoch == 3
    for a in range(3):
        for b in range(a + 1, 3):
            assert not any(np.array_equal(x["center"], y["center"]) for x in epochs[a] for y in epochs[b])
    # The same seed and epoch give the same batches: in a new loader, and after set_epoch.
    again = loader()
    assert same_batches(epoch_of(again), epochs[0])
    again.set_epoch(2)
    assert same_batches(epoch_of(again), epochs[2]) and again.epoch == 3
    first.set_epoch(1)
    assert same_batches([first[b] for b in range(3)], epochs[1])
    # Prefetching does not change what comes out, nor in which order.
    assert same_batches(epoch_of(loader(prefetch=0)), epochs[0])
    assert same_batches(epoch_of(loader(prefetch=3, workers=3)), epochs[0])
    # Another seed, other batches.
    assert not same_batches(epoch_of(loader(seed=12)), epochs[0])


def test_patch_loader_ranks_draw_different_patches(client):
    ranks = [PatchLoader(client, "v3d", [5, 5, 5], batch_size=4, batches_per_epoch=4, seed=3, rank=r, world_size=4, keys=None)
             for r in range(4)]
    seeds = [loader.batch_seed(b, epoch) for loader in ranks for b in range(4) for epoch in range(3)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2 ** 63 for s in seeds)
    centres = [tuple(map(tuple, batch["center"])) for loader in ranks for batch in epoch_of(loader)]
    assert len(set(centres)) == len(centres)
    # world_size is not in the seed: rank r draws the same batches whatever the number of ranks.
    alone = PatchLoader(client, "v3d", [5, 5, 5], batch_size=4, batches_per_epoch=4, seed=3, rank=1, world_size=2)
    assert [alone.batch_seed(b) for b in range(4)] == [ranks[1].batch_seed(b, 0) for b in range(4)]


# --------------------------------------------------------------------------------------------
# Resuming mid-epoch: state_dict / load_state_dict


def run_epochs(loader, epochs):
    """Every batch of `epochs` epochs, as bytes per array (None for absent members)."""
    return [[tuple(None if a is None else np.asarray(a).tobytes() for a in batch) for batch in loader] for _ in range(epochs)]


def interrupted(make, epoch, consumed):
    """A loader run to batch `consumed` of `epoch` (full epochs before it), then dropped; its state
    through JSON (as a checkpoint keeps it)."""
    loader = make()
    for _ in range(epoch):
        for _ in loader:
            pass
    iterator = iter(loader)
    for _ in range(consumed):
        next(iterator)
    state = json.loads(json.dumps(loader.state_dict()))
    iterator.close()
    return state


def resumed(make, state, epochs_after):
    loader = make()
    loader.load_state_dict(copy.deepcopy(state))
    rest = [tuple(np.asarray(a).tobytes() for a in batch) for batch in loader]
    return loader, rest, run_epochs(loader, epochs_after)


@pytest.mark.parametrize("prefetch", [0, 2, 4])
@pytest.mark.parametrize("rank,world_size,drop_last", [(0, 1, False), (1, 2, False), (2, 3, True)])
def test_batch_loader_resumes_mid_epoch(client, prefetch, rank, world_size, drop_last):
    def make():
        return BatchLoader(client, "s2d", batch_size=2, shuffle=True, seed=5, rank=rank, world_size=world_size,
                           drop_last=drop_last, prefetch=prefetch)

    reference = run_epochs(make(), 3)
    batches = len(reference[1])
    for consumed in sorted({0, 1, batches - 1, batches}):
        state = interrupted(make, 1, consumed)
        assert (state["epoch"], state["position"]) == (1, consumed)
        loader, rest, later = resumed(make, state, 1)
        assert rest == reference[1][consumed:]
        assert later == [reference[2]] and loader.epoch == 3


def test_batch_loader_resume_without_a_seed_keeps_the_order(client):
    loader = BatchLoader(client, "s2d", batch_size=3, shuffle=True, seed=None, prefetch=2)
    remaining = [loader.batch_indices(b) for b in range(2, len(loader))]
    iterator = iter(loader)
    next(iterator), next(iterator)
    state = json.loads(json.dumps(loader.state_dict()))
    iterator.close()
    assert state["seed"] is None and len(state["order"]) == 17
    other = BatchLoader(client, "s2d", batch_size=3, shuffle=True, seed=None)
    other.load_state_dict(state)
    assert [other.batch_indices(b) for b in range(2, len(other))] == remaining
    got = [images for images, _ in other]
    assert len(got) == len(remaining) and other.epoch == 1
    for images, indices in zip(got, remaining):
        np.testing.assert_array_equal(images, client.batch("s2d", indices)[0])


def test_batch_loader_set_epoch_and_state_checks(client):
    a = BatchLoader(client, "s2d", batch_size=4, seed=9)
    orders = []
    for _ in range(3):
        orders.append(a.indices.tolist())
        a.on_epoch_end()
    b = BatchLoader(client, "s2d", batch_size=4, seed=9)
    b.set_epoch(2)
    assert b.indices.tolist() == orders[2] and b.position == 0
    state = b.state_dict()
    assert state["loader"] == "BatchLoader" and state["epoch"] == 2 and state["seed"] == 9
    # A loader built with another seed takes the state's; one of another shape cannot resume it.
    c = BatchLoader(client, "s2d", batch_size=4, seed=1)
    c.load_state_dict(state)
    assert c.indices.tolist() == orders[2] and c.seed == 9
    for other in [BatchLoader(client, "s2d", batch_size=3, seed=9), BatchLoader(client, "s2d", batch_size=4, seed=9, rank=1, world_size=2),
                  BatchLoader(client, "v3d", batch_size=4, seed=9)]:
        with pytest.raises(ValueError):
            other.load_state_dict(state)
    with pytest.raises(ValueError):
        c.load_state_dict(dict(state, position=99))
    with pytest.raises(ValueError):
        PatchLoader(client, "s2d", [4, 4], 4, 5).load_state_dict(state)


@pytest.mark.parametrize("prefetch", [0, 3])
def test_patch_loader_resumes_mid_epoch(client, prefetch):
    def make(seed=7):
        return PatchLoader(client, "sf3d", [6, 6, 6], batch_size=3, batches_per_epoch=4, seed=seed, rank=1, world_size=2,
                           prefetch=prefetch, keys=("image", "mask", "center"))

    reference = run_epochs(make(), 3)
    for consumed in [0, 1, 3, 4]:
        state = interrupted(make, 1, consumed)
        assert (state["loader"], state["epoch"], state["position"]) == ("PatchLoader", 1, consumed)
        loader, rest, later = resumed(make, state, 1)
        assert rest == reference[1][consumed:] and later == [reference[2]] and loader.epoch == 3
    # The state's seed is taken; a different patch size, batch size or rank cannot resume it.
    loader, rest, _ = resumed(lambda: make(seed=0), interrupted(make, 0, 2), 0)
    assert rest == reference[0][2:] and loader.seed == 7
    for other in [PatchLoader(client, "sf3d", [6, 6, 5], 3, 4, rank=1, world_size=2),
                  PatchLoader(client, "sf3d", [6, 6, 6], 2, 4, rank=1, world_size=2),
                  PatchLoader(client, "sf3d", [6, 6, 6], 3, 4, rank=0, world_size=2)]:
        with pytest.raises(ValueError):
            other.load_state_dict(state)
