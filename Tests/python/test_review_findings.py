"""Regression tests for the findings of the hostile review (each now fixed in the server): every
test writes its own HDF5 files with h5py, starts a real medsegd over them (MedsegdProcess, its
own state_dir, stopped by its PID), sends the request the finding was about, and checks the
documented answer (status, error code and a message naming the problem, or the documented
bytes) and that the server is still up afterwards (its process running, /healthz 200).

1. Volumes the sampler cannot read (a `volumes-3d` mask without its channel axis, a manifest
   item whose `volume` is 2-D) are skipped by the fingerprint pass with a warning, never listed,
   never sampled: sample is 422 "no readable volume" when nothing else is left.
2. Previews of float volumes with +-inf voxels (a window of +-1e308, the default window whose
   99.5th percentile is +inf): a PNG, black where the fraction is NaN.
3. A tiny file declaring a huge chunked volume (2^34 voxels, no chunk written): the server starts,
   the fingerprint skips it (over 2^31 voxels), RSS stays modest.
4. A sample whose archive would pass 4 GiB is 413 at once, without allocating it.
5. `background: "first"` padding of large patches over small volumes is fast and pads the
   background channel with 1.
6. `classes` with many duplicates and a big `count` is fast; /healthz answers meanwhile.
9. Preview cache keys: `slice=-1` and the default slice (the middle one) differ.
10. A reload that changes a category's colour changes the preview's ETag and picture.
11. A tampered fingerprint archive in state_dir is recomputed, not trusted (no crash, the same
    samples as an untampered run).
17. A preview along an axis of length 0 is 422.
Also: with `max_response_bytes: 16MiB`, a preview whose mask read (stored channels, or the
collated classes) would pass the limit is 413, so is one with too many classes to draw, and
`classes=none` does not read the mask (200, fast)."""
import base64
import io
import json
import os
import re
import struct
import threading
import time

import h5py
import numpy as np
import pytest

from conftest import in_dtype
from medsegd_process import CONNECTION_ERRORS, MedsegdProcess
from test_browser import decode_png

FINGERPRINT_TIMEOUT = 30  # seconds until a (small) dataset's fingerprint pass is done
FAST = 2.0  # seconds: "well under" for the requests a finding made slow
CATEGORIES = "[{id: 0, name: a, color: [255, 0, 0]}, {id: [1, 2], name: b, color: [0, 0, 255]}]"
COLORS = [[255, 0, 0], [0, 0, 255]]
IDS = [0, (1, 2)]  # the categories' ids over 3 stored channels
CHANNELS = 3

READY = re.compile(r"computed=(\d+) dataset=(\S+) reused=(\d+) seconds=\S+ skipped=(\d+) .*fingerprint ready")
SKIPS = re.compile(r"warning medsegd: aug=(\d+) dataset=(\S+) error=(.*) scan=(\S+) \[MedSegServer\] fingerprint skips a volume")


# --------------------------------------------------------------------------------------------
# Helpers


def write_config(root, datasets, server="", categories=CATEGORIES):
    """`root`/medsegd.yaml: one family of `categories` with `datasets` ({name: YAML mapping}),
    state in `root`/state; returns its path."""
    path = os.path.join(root, "medsegd.yaml")
    with open(path, "w") as f:
        f.write("server:\n  state_dir: %s\n%s" % (os.path.join(root, "state"), server)
                + "families:\n  knee:\n    categories: %s\n    datasets:\n" % categories
                + "".join("      %s: %s\n" % item for item in datasets.items()))
    return path


def write_volume(path, volume, seg=None, **options):
    """A volumes-3d file (`volume`, and `seg` when given)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("volume", data=volume, **options)
        if seg is not None:
            f.create_dataset("seg", data=seg, **options)


def write_manifest(folder, items):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "manifest.json")
    with open(path, "w") as f:
        json.dump(items, f)
    return path


def wait_fingerprint(server, name, timeout=FINGERPRINT_TIMEOUT):
    """The dataset's fingerprint JSON once its pass is done (503 until then)."""
    deadline = time.time() + timeout
    while True:
        reply = server.exchange("GET", "/v1/datasets/%s/fingerprint" % name)
        if reply.status != 503:
            assert reply.status == 200, reply
            return json.loads(reply.body)
        assert server.process.poll() is None, "medsegd died:\n" + server.log[-3000:]
        assert time.time() < deadline, "fingerprint of %s not ready after %d s" % (name, timeout)
        time.sleep(0.05)


def ready_lines(server, start=0):
    """{dataset: (computed, reused, skipped)} of the "fingerprint ready" lines logged after `start`."""
    return {m.group(2): tuple(int(m.group(i)) for i in (1, 3, 4)) for m in READY.finditer(server.log[start:])}


def wait_ready_lines(server, names, start=0, timeout=FINGERPRINT_TIMEOUT):
    deadline = time.time() + timeout
    while True:
        lines = ready_lines(server, start)
        if set(names) <= set(lines):
            return lines
        assert server.process.poll() is None and time.time() < deadline, server.log[-3000:]
        time.sleep(0.05)


def skip_warnings(server, start=0):
    """[(dataset, scan, aug, error)] of the fingerprint pass's "skips a volume" warnings."""
    return [(m.group(2), m.group(4), int(m.group(1)), m.group(3)) for m in SKIPS.finditer(server.log[start:])]


def post_sample(server, name, body, timeout=30):
    return server.exchange("POST", "/v1/datasets/%s/sample" % name, body=body, timeout=timeout)


def npz(reply):
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "application/x-npz"
    with np.load(io.BytesIO(reply.body)) as archive:
        return {key: archive[key] for key in archive.files}


def assert_up(server, after):
    """The process still runs and /healthz answers 200."""
    assert server.process.poll() is None, "medsegd exited (%s) after %s:\n%s" % (server.process.returncode, after, server.log[-3000:])
    server.assert_healthy(after)


def assert_error(reply, status, code, *words):
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json"), reply.headers
    assert reply.code == code, reply
    message = reply.message
    for word in words:
        assert word in message, (word, message)
    return message


def collate(seg, ids=IDS):
    """MedSegPy's collect_mask over the last axis (never squeezed)."""
    return np.stack([in_dtype(seg[..., list(i)].sum(axis=-1), seg.dtype) if isinstance(i, tuple) else seg[..., i] for i in ids], axis=-1)


def picture(image, marks, colors, window=None, opacity=0.5):
    """docs/API.md's preview of one `h x w` slice with `h x w x C` class marks (or None), in
    NumPy: grey through the window (auto: nanpercentile 0.5/99.5), 0 where the fraction is NaN
    or the window is empty, the highest class drawn blended over it."""
    values = image.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if window is not None:
            low, high = window
        elif np.isnan(values).all():
            low = high = 0.0
        else:
            low, high = np.nanpercentile(values, [0.5, 99.5])
        fraction = (values - low) / (high - low)
        grey = np.round(255 * np.clip(fraction, 0, 1))
    grey[np.isnan(fraction)] = 0
    if not high > low:
        grey[...] = 0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if marks is not None:
        painted = np.full(values.shape, -1)
        for k in range(marks.shape[-1]):
            painted[marks[..., k] != 0] = k
        for k in range(marks.shape[-1]):
            where = painted == k
            rgb[where] = np.round((1 - opacity) * grey[where][:, None] + opacity * np.asarray(colors[k], np.float64))
    return rgb.astype(np.uint8)


def png(reply):
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "image/png", reply.headers
    return decode_png(reply.body)


@pytest.fixture
def root(tmp_path):
    return str(tmp_path)


# --------------------------------------------------------------------------------------------
# 1. Volumes the sampler cannot read are skipped by the fingerprint pass, never sampled


def test_volumes_without_a_channel_axis_or_a_third_axis_are_skipped_not_sampled(root):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((8, 8, 4)).astype(np.float32)
    # (a) volumes-3d whose seg is H x W x D (no channel axis).
    write_volume(os.path.join(root, "flatseg", "0000001_V00.h5"), image, np.ones((8, 8, 4), np.uint8))
    # (b) a manifest item whose volume is 2-D.
    write_volume(os.path.join(root, "man", "flat.h5"), image[..., 0], np.ones((8, 8, 1, CHANNELS), np.uint8))
    write_manifest(os.path.join(root, "man"), [{"file_name": "flat.h5", "sem_seg_file": "flat.h5", "scan_id": "flat"}])
    # (c) both kinds beside a good volume in one manifest: only the good one is sampled.
    good_seg = (rng.random((8, 8, 4, CHANNELS)) > 0.6).astype(np.uint8)
    write_volume(os.path.join(root, "mixed", "nochannel.h5"), image, np.ones((8, 8, 4), np.uint8))
    write_volume(os.path.join(root, "mixed", "flat.h5"), image[..., 0], np.ones((8, 8, 1, CHANNELS), np.uint8))
    write_volume(os.path.join(root, "mixed", "good.h5"), image, good_seg)
    write_manifest(os.path.join(root, "mixed"), [{"file_name": n + ".h5", "sem_seg_file": n + ".h5", "scan_id": n}
                                                 for n in ["nochannel", "flat", "good"]])
    config = write_config(root, {"flatseg": "{format: volumes-3d, scan_root: flatseg}",
                                 "man": "{format: manifest, path: man/manifest.json}",
                                 "mixed": "{format: manifest, path: mixed/manifest.json}"})
    body = {"patch_size": [8, 8, 4], "count": 2, "foreground_fraction": 1}
    with MedsegdProcess(config) as server:
        for name in ["flatseg", "man", "mixed"]:
            wait_fingerprint(server, name)
        assert ready_lines(server) == {"flatseg": (0, 0, 1), "man": (0, 0, 1), "mixed": (1, 0, 2)}, server.log[-3000:]
        warned = {(dataset, scan): error for dataset, scan, _, error in skip_warnings(server)}
        assert set(warned) == {("flatseg", "0000001_V00"), ("man", "flat"), ("mixed", "nochannel"), ("mixed", "flat")}, warned
        assert "the mask has shape [8, 8, 4]" in warned["flatseg", "0000001_V00"], warned
        assert "the image has shape [8, 8]" in warned["man", "flat"], warned

        for name, scan in [("flatseg", "0000001_V00"), ("man", "flat")]:
            fingerprint = wait_fingerprint(server, name)
            assert fingerprint["scans"] == [] and fingerprint["volumes"] == 0, fingerprint
            assert_error(server.exchange("GET", "/v1/datasets/%s/scans/%s/fingerprint" % (name, scan)), 404, "not_found", scan)
            assert_error(post_sample(server, name, body), 422, "unprocessable", "no readable volume", name)
            assert_error(post_sample(server, name, dict(body, scans=[scan])), 422, "unprocessable", "no readable volume")
            assert_up(server, "sampling %s" % name)

        fingerprint = wait_fingerprint(server, "mixed")
        assert [s["scan_id"] for s in fingerprint["scans"]] == ["good"], fingerprint["scans"]
        scans = json.loads(server.exchange("GET", "/v1/datasets/mixed/scans").body)
        assert [s["scan_id"] for s in scans] == ["flat", "good", "nochannel"]  # all three listed, one sampled
        out = npz(post_sample(server, "mixed", dict(body, count=6, seed=4)))
        assert out["scan_index"].tolist() == [1] * 6  # the good volume's position in /scans
        assert out["foreground"].all() and out["mask"].shape == (6, 8, 8, 4, len(IDS))
        assert_error(post_sample(server, "mixed", dict(body, scans=["flat", "nochannel"])), 422, "unprocessable",
                     "no readable volume", "among the scans given")
        assert_up(server, "sampling the mixed dataset")


# --------------------------------------------------------------------------------------------
# 2. Previews of volumes with infinite voxels


def test_previews_of_infinite_voxels_are_pngs_black_where_the_fraction_is_nan(root):
    rng = np.random.default_rng(2)
    # A window of +-1e308: hi - lo overflows to inf, so every fraction is 0 or NaN (+-inf voxels).
    windowed = rng.standard_normal((10, 12, 4)).astype(np.float32) * 100
    windowed[2, 3, 2], windowed[4, 5, 2], windowed[6, 7, 2] = np.inf, -np.inf, np.nan
    # The default window: 3 of 120 voxels of the middle slice +inf, so the 99.5th percentile is +inf or NaN.
    auto = rng.standard_normal((10, 12, 4)).astype(np.float32) * 100
    auto[0, 0, 2], auto[5, 5, 2], auto[9, 11, 2], auto[3, 3, 2] = np.inf, np.inf, np.inf, -np.inf
    seg = np.zeros((10, 12, 4, CHANNELS), np.uint8)
    seg[2, 3, :, 0] = seg[4, 5, :, 1] = seg[0, 0, :, 2] = seg[8, 8, :, 0] = 1  # on inf, -inf, inf and a finite voxel
    write_volume(os.path.join(root, "inf", "0000001_V00.h5"), windowed, seg)
    write_volume(os.path.join(root, "inf", "0000002_V00.h5"), auto, seg)
    config = write_config(root, {"inf": "{format: volumes-3d, scan_root: inf}"})
    marks = collate(seg[:, :, 2])
    with np.errstate(invalid="ignore"):
        high = np.nanpercentile(auto[:, :, 2].astype(np.float64), 99.5)
    assert not np.isfinite(high)  # the case under test
    with MedsegdProcess(config) as server:
        base = "/v1/datasets/inf/scans/%s/preview.png"
        for url, volume, window in [
            (base % "0000001_V00" + "?window=-1e308:1e308", windowed, (-1e308, 1e308)),
            (base % "0000001_V00" + "?window=-1e308:1e308&classes=none", windowed, (-1e308, 1e308)),
            (base % "0000002_V00", auto, None),
            (base % "0000002_V00" + "?classes=none", auto, None),
            # A finite window: +inf is the fraction +inf (clipped to white), -inf is 0, NaN black.
            (base % "0000001_V00" + "?window=-50:50", windowed, (-50, 50)),
        ]:
            got = png(server.exchange("GET", url))
            shown = None if "classes=none" in url else marks
            expected = picture(volume[:, :, 2], shown, COLORS, window=window)
            assert got.shape == (10, 12, 3), (url, got.shape)
            assert np.array_equal(got, expected), (url, np.argwhere(got != expected)[:5])
            if shown is None:
                with np.errstate(invalid="ignore", over="ignore"):
                    low, top = window or np.nanpercentile(volume[:, :, 2].astype(np.float64), [0.5, 99.5])
                    nan = np.isnan((volume[:, :, 2].astype(np.float64) - low) / (top - low))
                assert nan.any() and (got[nan] == 0).all(), url
            assert_up(server, url)
        # The item route (a 3D item: its middle slice) takes the same path.
        got = png(server.exchange("GET", "/v1/datasets/inf/items/1/preview.png"))
        assert np.array_equal(got, picture(auto[:, :, 2], marks, COLORS))
        assert_up(server, "the previews")


# --------------------------------------------------------------------------------------------
# 3. A tiny file declaring a huge chunked volume


def test_a_huge_declared_volume_without_chunks_is_skipped_and_costs_no_memory(root):
    folder = os.path.join(root, "huge")
    os.makedirs(folder)
    path = os.path.join(folder, "0000001_V00.h5")
    with h5py.File(path, "w") as f:  # 2^34 voxels declared, no chunk written: a few KiB on disk
        f.create_dataset("volume", shape=(4096, 4096, 1024), dtype=np.uint8, chunks=(64, 64, 64))
        f.create_dataset("seg", shape=(4096, 4096, 1024, 1), dtype=np.uint8, chunks=(64, 64, 64, 1))
    assert os.path.getsize(path) < 1 << 20
    config = write_config(root, {"huge": "{format: volumes-3d, scan_root: huge}"}, categories="[{id: 0, name: a}]")
    with MedsegdProcess(config) as server:
        fingerprint = wait_fingerprint(server, "huge")
        assert fingerprint["scans"] == [], fingerprint
        assert ready_lines(server) == {"huge": (0, 0, 1)}
        (warning,) = skip_warnings(server)
        assert warning[:3] == ("huge", "0000001_V00", 0) and "17179869184 voxels" in warning[3] and "2147483648" in warning[3], warning
        assert_error(post_sample(server, "huge", {"patch_size": [8, 8, 4], "count": 2}), 422, "unprocessable", "no readable volume")
        # It still serves the volume's parts (unwritten chunks read as the fill value).
        reply = server.exchange("GET", "/v1/datasets/huge/items/0/image?region=0:4,0:4,1000:1003")
        assert reply.status == 200 and np.array_equal(reply.array(), np.zeros((4, 4, 3), np.uint8)), reply
        assert_up(server, "the huge volume's fingerprint")
        peak = server.rss_kib("VmHWM") << 10
        assert peak < 1 << 30, "peak RSS %d MiB" % (peak >> 20)


# --------------------------------------------------------------------------------------------
# 4. A sample whose archive would pass 4 GiB


def test_a_sample_over_4_gib_is_413_before_anything_is_allocated(root):
    folder = os.path.join(root, "tiny")
    write_volume(os.path.join(folder, "tiny.h5"), np.full((1, 1, 1), 7, np.uint8))
    write_manifest(folder, [{"file_name": "tiny.h5", "scan_id": "tiny"}])  # unlabeled
    config = write_config(root, {"tiny": "{format: manifest, path: tiny/manifest.json}"})  # default limits (4GiB)
    patch = [2114, 2979, 682]  # 4,294,967,292 bytes of uint8 image: the archive passes 2^32 bytes
    assert 2114 * 2979 * 682 < 1 << 32
    with MedsegdProcess(config) as server:
        wait_fingerprint(server, "tiny")
        before = server.rss_kib("VmHWM")
        started = time.monotonic()
        reply = post_sample(server, "tiny", {"patch_size": patch, "count": 1})
        elapsed = time.monotonic() - started
        message = assert_error(reply, 413, "too_large", "max_response_bytes")
        counted = re.search(r"would be (\d+) bytes", message)  # the sample's size, counted in 64 bits
        assert counted and int(counted.group(1)) >= 2114 * 2979 * 682, message
        assert elapsed < FAST, "413 after %.1f s" % elapsed
        grown = (server.rss_kib("VmHWM") - before) << 10
        assert grown < 64 << 20, "peak RSS grew by %d MiB" % (grown >> 20)
        # A sample of that volume that fits is served.
        out = npz(post_sample(server, "tiny", {"patch_size": [3, 3, 3], "count": 1}))
        assert out["image"].shape == (1, 3, 3, 3) and out["image"][0, 1, 1, 1] == 7 and out["image"].sum() == 7
        assert "mask" not in out
        assert_up(server, "the 413")


# --------------------------------------------------------------------------------------------
# 5. background: first padding is fast and pads the background channel with 1


def test_background_first_padding_is_fast_and_padded_with_background(root):
    rng = np.random.default_rng(5)
    volumes = {}
    for name, shape in [("0000001_V00", (12, 10, 6)), ("0000002_V00", (9, 14, 5))]:
        image = rng.standard_normal(shape).astype(np.float32)
        seg = (rng.random(shape + (CHANNELS,)) > 0.7).astype(np.uint8)
        write_volume(os.path.join(root, "small", name + ".h5"), image, seg)
        volumes[name] = (image, seg)
    config = write_config(root, {"small": "{format: volumes-3d, scan_root: small}"})
    size = [64, 64, 32]
    with MedsegdProcess(config) as server:
        wait_fingerprint(server, "small")
        started = time.monotonic()
        reply = post_sample(server, "small", {"patch_size": size, "count": 8, "background": "first", "seed": 11})
        elapsed = time.monotonic() - started
        out = npz(reply)
        assert elapsed < FAST, "background=first sample took %.1f s" % elapsed
        assert out["image"].shape == (8, 64, 64, 32) and out["mask"].shape == (8, 64, 64, 32, 1 + len(IDS))
        order = sorted(volumes)
        for n in range(8):
            image, seg = volumes[order[out["scan_index"][n]]]
            center = out["center"][n]
            inside = np.zeros(size, bool)
            source, target = [], []
            for length, c, s in zip(image.shape, center, size):
                start = c - s // 2
                low, high = max(0, start), min(length, start + s)
                source.append(slice(low, high))
                target.append(slice(low - start, high - start))
            source, target = tuple(source), tuple(target)
            inside[target] = True
            mask = out["mask"][n]
            assert (out["image"][n][~inside] == 0).all()
            assert (mask[~inside][:, 0] == 1).all() and (mask[~inside][:, 1:] == 0).all()
            assert np.array_equal(out["image"][n][target], image[source])
            classes = collate(seg[source])
            assert np.array_equal(mask[target][..., 1:], classes)
            assert np.array_equal(mask[target][..., 0], (classes == 0).all(axis=-1).astype(np.uint8))
        assert_up(server, "the background=first sample")


# --------------------------------------------------------------------------------------------
# 6. classes with many duplicates


def test_many_duplicate_classes_with_a_big_count_are_fast_and_the_server_stays_responsive(root):
    rng = np.random.default_rng(6)
    for name in ["0000001_V00", "0000002_V00"]:
        write_volume(os.path.join(root, "dup", name + ".h5"), rng.standard_normal((16, 16, 8)).astype(np.float32),
                     (rng.random((16, 16, 8, CHANNELS)) > 0.8).astype(np.uint8))
    config = write_config(root, {"dup": "{format: volumes-3d, scan_root: dup}"}, server="  max_body_bytes: 1MiB\n")
    body = {"patch_size": [4, 4, 2], "count": 512, "foreground_fraction": 1, "classes": [0] * 1000, "seed": 2}
    assert len(json.dumps(body)) < 1 << 20
    with MedsegdProcess(config) as server:
        wait_fingerprint(server, "dup")
        result = {}

        def run():
            started = time.monotonic()
            try:
                result["reply"] = post_sample(server, "dup", body)
            except CONNECTION_ERRORS as error:
                result["reply"] = error
            result["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=run)
        thread.start()
        probes = []
        while thread.is_alive() and len(probes) < 50:
            started = time.monotonic()
            status = server.exchange("GET", "/healthz", timeout=5).status
            probes.append((status, time.monotonic() - started))
        thread.join(timeout=30)
        assert not thread.is_alive(), "the sample did not finish in 30 s"
        out = npz(result["reply"])
        assert result["seconds"] < FAST, "classes [0] * 1000 took %.1f s" % result["seconds"]
        assert all(status == 200 and seconds < 1 for status, seconds in probes), probes
        assert out["image"].shape == (512, 4, 4, 2) and out["foreground"].all()
        # Duplicates change nothing: the same bytes as classes [0].
        assert post_sample(server, "dup", dict(body, classes=[0])).body == result["reply"].body
        # The list itself is bounded (at most 1024 entries, as categories are).
        assert_error(post_sample(server, "dup", dict(body, classes=[0] * 1025)), 400, "bad_request", "'classes'")
        assert_up(server, "the duplicate classes")


# --------------------------------------------------------------------------------------------
# 9. Preview cache keys: slice=-1 and the default (middle) slice


def test_the_default_preview_slice_and_slice_minus_one_are_cached_apart(root):
    rng = np.random.default_rng(9)
    volume = rng.standard_normal((8, 10, 16)).astype(np.float32)
    seg = (rng.random((8, 10, 16, CHANNELS)) > 0.7).astype(np.uint8)
    write_volume(os.path.join(root, "deep", "0000001_V00.h5"), volume, seg)
    config = write_config(root, {"deep": "{format: volumes-3d, scan_root: deep}"})
    url = "/v1/datasets/deep/scans/0000001_V00/preview.png"
    with MedsegdProcess(config) as server:
        last = server.exchange("GET", url + "?slice=-1")  # cached first
        middle = server.exchange("GET", url)
        assert np.array_equal(png(last), picture(volume[:, :, 15], collate(seg[:, :, 15]), COLORS))
        assert np.array_equal(png(middle), picture(volume[:, :, 8], collate(seg[:, :, 8]), COLORS))  # 16 // 2
        assert last.body != middle.body and last.headers["etag"] != middle.headers["etag"]
        assert server.exchange("GET", url + "?slice=15").body == last.body
        assert server.exchange("GET", url + "?slice=8").body == middle.body
        # Each ETag revalidates its own picture only.
        assert server.exchange("GET", url, headers={"If-None-Match": middle.headers["etag"]}).status == 304
        assert server.exchange("GET", url, headers={"If-None-Match": last.headers["etag"]}).status == 200
        assert server.exchange("GET", url + "?slice=-1", headers={"If-None-Match": middle.headers["etag"]}).status == 200
        assert_up(server, "the previews")


# --------------------------------------------------------------------------------------------
# 10. A reload that changes a category's colour


def test_a_reload_changing_a_colour_changes_the_preview_etag_and_picture(root):
    volume = np.arange(6 * 6 * 4, dtype=np.float32).reshape(6, 6, 4)
    seg = np.zeros((6, 6, 4, CHANNELS), np.uint8)
    seg[1:3, 1:4, :, 0] = 1
    seg[4, :, :, 2] = 1
    write_volume(os.path.join(root, "colour", "0000001_V00.h5"), volume, seg)
    datasets = {"colour": "{format: volumes-3d, scan_root: colour}"}
    config = write_config(root, datasets)
    url = "/v1/datasets/colour/scans/0000001_V00/preview.png?opacity=1"
    with MedsegdProcess(config) as server:
        before = server.exchange("GET", url)
        got = png(before)
        assert (got[1:3, 1:4] == [255, 0, 0]).all() and (got[4] == [0, 0, 255]).all()
        write_config(root, datasets, categories=CATEGORIES.replace("[255, 0, 0]", "[0, 200, 17]"))
        server.reload()
        after = server.exchange("GET", url)
        got = png(after)
        assert after.headers["etag"] != before.headers["etag"]
        assert (got[1:3, 1:4] == [0, 200, 17]).all() and (got[4] == [0, 0, 255]).all()
        assert np.array_equal(got, picture(volume[:, :, 2], collate(seg[:, :, 2]), [[0, 200, 17], [0, 0, 255]], opacity=1))
        assert server.exchange("GET", url, headers={"If-None-Match": before.headers["etag"]}).status == 200
        assert server.exchange("GET", url, headers={"If-None-Match": after.headers["etag"]}).status == 304
        assert_up(server, "the reload")


# --------------------------------------------------------------------------------------------
# 11. A tampered fingerprint archive is recomputed, not trusted

SAMPLE = {"patch_size": [8, 8, 4], "count": 12, "seed": 3, "foreground_fraction": 0.5}


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """A dataset of two volumes fingerprinted once: (root, config, the archive's text, the
    fingerprint JSON and a sample's bytes of that untampered run)."""
    root = str(tmp_path_factory.mktemp("archive"))
    rng = np.random.default_rng(11)
    for name, shape in [("0000001_V00", (12, 10, 8)), ("0000002_V00", (10, 12, 6))]:
        seg = np.zeros(shape + (CHANNELS,), np.uint8)
        seg[2:7, 3:8, 1:5, 0] = 1
        seg[5:9, 1:4, 2:6, 1] = 1
        write_volume(os.path.join(root, "p3d", name + ".h5"), rng.standard_normal(shape).astype(np.float32), seg)
    config = write_config(root, {"p3d": "{format: volumes-3d, scan_root: p3d}"})
    with MedsegdProcess(config) as server:
        assert wait_ready_lines(server, ["p3d"]) == {"p3d": (2, 0, 0)}
        fingerprint = wait_fingerprint(server, "p3d")
        reply = post_sample(server, "p3d", SAMPLE)
        assert reply.status == 200, reply
    with open(os.path.join(root, "state", "fingerprints", "p3d.json")) as f:
        text = f.read()
    return root, config, text, fingerprint, reply.body


def foreground_past_the_volume(record):
    indices = list(struct.unpack("<%dI" % (len(base64.b64decode(record["foreground"][0])) // 4), base64.b64decode(record["foreground"][0])))
    assert indices
    indices[0] = int(np.prod(record["fingerprint"]["shape"])) + 5
    record["foreground"][0] = base64.b64encode(struct.pack("<%dI" % len(indices), *indices)).decode()


TAMPERINGS = {
    "voxels_2_63": lambda record: record["fingerprint"].update(voxels=2 ** 63 - 1),
    "negative_shape": lambda record: record["fingerprint"].update(shape=[-5, 64, 16]),
    "foreground_past_the_volume": foreground_past_the_volume,
    "rank_2_mask_shape": lambda record: record.update(mask_shape=record["mask_shape"][:2]),
    "huge_shape_and_voxels": lambda record: record["fingerprint"].update(shape=[2 ** 62, 2 ** 62, 4], voxels=2 ** 63 - 1),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_a_tampered_fingerprint_record_is_recomputed(archived, tampering):
    root, config, text, fingerprint, sample_bytes = archived
    contents = json.loads(text)
    (record,) = [r for r in contents["records"] if r["key"]["scanID"] == "0000002_V00"]
    TAMPERINGS[tampering](record)  # its key kept: it would be reused as it is
    path = os.path.join(root, "state", "fingerprints", "p3d.json")
    with open(path, "w") as f:
        json.dump(contents, f)
    server = MedsegdProcess(config)
    try:
        start = server.log.rfind("configuration read")
        assert wait_ready_lines(server, ["p3d"], start) == {"p3d": (1, 1, 0)}, server.log[-3000:]
        assert re.search(r"computed=1 dataset=p3d reused=1 .*fingerprint ready", server.log[start:])
        assert wait_fingerprint(server, "p3d") == fingerprint
        reply = post_sample(server, "p3d", SAMPLE)
        assert reply.status == 200 and reply.body == sample_bytes, reply
        assert_up(server, "the tampered record (%s)" % tampering)
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log[-3000:]


def test_the_archive_fields_the_tamperings_edit_exist(archived):
    """The tamperings above edit what the server writes (else they would test nothing)."""
    record = json.loads(archived[2])["records"][1]
    assert record["key"]["scanID"] == "0000002_V00"
    assert record["fingerprint"]["shape"] == [10, 12, 6] and record["fingerprint"]["voxels"] == 720
    assert record["mask_shape"] == [10, 12, 6] and base64.b64decode(record["foreground"][0])


# --------------------------------------------------------------------------------------------
# 17. A preview along an axis of length 0


def test_a_preview_of_a_volume_with_a_zero_length_axis_is_422(root):
    write_volume(os.path.join(root, "empty", "0000001_V00.h5"), np.zeros((8, 0, 4), np.float32), np.zeros((8, 0, 4, CHANNELS), np.uint8))
    write_volume(os.path.join(root, "empty", "0000002_V00.h5"), np.zeros((8, 6, 0), np.float32), np.zeros((8, 6, 0, CHANNELS), np.uint8))
    config = write_config(root, {"empty": "{format: volumes-3d, scan_root: empty}"})
    with MedsegdProcess(config) as server:
        for scan, shape in [("0000001_V00", "[8, 0, 4]"), ("0000002_V00", "[8, 6, 0]")]:
            for axis in [0, 1, 2]:
                url = "/v1/datasets/empty/scans/%s/preview.png?axis=%d" % (scan, axis)
                assert_error(server.exchange("GET", url), 422, "unprocessable", shape, "axis %d" % axis)
                assert_error(server.exchange("GET", url + "&slice=0"), 422, "unprocessable", shape)
                assert_up(server, url)
        for item in [0, 1]:
            assert_error(server.exchange("GET", "/v1/datasets/empty/items/%d/preview.png" % item), 422, "unprocessable", "no slice")
        assert_up(server, "the previews")


# --------------------------------------------------------------------------------------------
# max_response_bytes and the preview's mask read


def test_a_preview_mask_read_over_the_limit_is_413_and_classes_none_reads_no_mask(root):
    side, channels = 768, 32  # the slice's stored mask: 768 * 768 * 32 = 18 MiB, over 16 MiB
    rng = np.random.default_rng(17)
    image = rng.integers(0, 255, (side, side, 1)).astype(np.uint8)
    os.makedirs(os.path.join(root, "wide"))
    with h5py.File(os.path.join(root, "wide", "0000001_V00.h5"), "w") as f:  # the mask gzip-chunked: a small file
        f.create_dataset("volume", data=image)
        f.create_dataset("seg", shape=(side, side, 1, channels), dtype=np.uint8, chunks=(256, 256, 1, channels), compression="gzip")
        f["seg"][:10, :10, 0, 0] = 1
    config = write_config(root, {"wide": "{format: volumes-3d, scan_root: wide}"}, server="  max_response_bytes: 16MiB\n")
    url = "/v1/datasets/wide/scans/0000001_V00/preview.png?size=64"
    with MedsegdProcess(config) as server:
        for query in ["", "&classes=0", "&classes=1&opacity=1"]:
            message = assert_error(server.exchange("GET", url + query), 413, "too_large")
            assert str(side * side * channels) in message and "max_response_bytes (16MiB)" in message, message
            assert_up(server, url + query)
        # The collated mask of 400 classes (channel 0 each: classes may share channels) is 400
        # bytes a pixel: over the limit before anything is read. 600 classes are too much to draw.
        for classes, words in [(400, [str(side * side * 400), "max_response_bytes"]), (600, ["600 classes", "too much to draw"])]:
            started = time.monotonic()
            reply = server.exchange("GET", url + "&categories=" + json.dumps([0] * classes).replace(" ", ""))
            assert_error(reply, 413, "too_large", *words)
            assert time.monotonic() - started < FAST
            assert_up(server, "%d classes" % classes)
        for query in ["&classes=none", "&classes="]:
            started = time.monotonic()
            reply = server.exchange("GET", url + query)
            elapsed = time.monotonic() - started
            got = png(reply)
            assert elapsed < FAST, "classes=none took %.1f s" % elapsed
            full = picture(image[:, :, 0], None, COLORS)
            rows = np.arange(64) * side // 64
            assert np.array_equal(got, full[rows][:, rows])
        assert_up(server, "the previews")
