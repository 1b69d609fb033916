"""Regression tests for the second hostile review (issue 19), server side. Each test writes its own
HDF5 files with h5py, starts a real medsegd over them (MedsegdProcess, stopped by its PID), sends
the request the finding was about and checks the documented answer.

2. Fingerprints are keyed by where a volume's arrays live: a manifest edit that points a scan at
   another group of the same file recomputes it; a file rewritten in place without a reload is
   never sampled with its old foreground index (503 + Retry-After, then the new index).
3. Bool masks OR 256 or more channels of a class, integer sums saturate (a byte sum wrapped to 0:
   "nothing labelled"); an overlap in a label
   map is named in the item's or scan's array, not the region's.
5. ETags agree between replicas serving copies of the same files at different folders.
6. `classes=` of a preview is a bounded set: 15,000 repeats are 400, `0,0` is `0`.
7. Label maps over many repeated large groups are refused (413) at once, not computed.
8. A sample too large for max_response_bytes is 413 at once, even while memory is held.
9. After a reload, ready fingerprints keep serving while a changed dataset is recomputed.
10. Tokens take effect at once on SIGHUP, even when the rest of the configuration is refused.
"""
import json
import os
import shutil
import signal
import socket
import struct
import tempfile
import time

import h5py
import numpy as np
import pytest

from medsegd_process import MedsegdProcess
from test_review_findings import wait_fingerprint

FAST = 5.0  # seconds: what "at once" means on a loaded 2-core machine with a debug build


@pytest.fixture
def root():
    path = tempfile.mkdtemp(prefix="medsegd-review2-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def config(root, datasets, categories="[{id: 0, name: a}, {id: 1, name: b}]", server="", name="medsegd.yaml"):
    path = os.path.join(root, name)
    with open(path, "w") as f:
        f.write("server:\n  state_dir: %s\n%s" % (os.path.join(root, "state"), server)
                + "families:\n  knee:\n    categories: %s\n    datasets:\n" % categories
                + "".join("      %s: %s\n" % item for item in datasets.items()))
    return path


def write_volume(path, volume, seg=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("volume", data=volume)
        if seg is not None:
            f.create_dataset("seg", data=seg)


def blob(shape, corner, size=4):
    """A two-channel uint8 mask: channel 0 set on a size^3 cube at `corner`, channel 1 nowhere."""
    seg = np.zeros(shape + (2,), np.uint8)
    x, y, z = corner
    seg[x:x + size, y:y + size, z:z + size, 0] = 1
    return seg


def hold_memory(server, clients=4):
    """Clients that ask for scan 0000001_V00's 4 MiB volume of dataset `v` and read nothing: with
    `max_inflight_bytes: 8MiB` they hold the whole budget (until closed)."""
    hogs = []
    for _ in range(clients):
        hog = socket.create_connection(("127.0.0.1", server.port))
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.sendall(b"GET /v1/datasets/v/scans/0000001_V00/image?aug=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        hogs.append(hog)
    return hogs


def sample(server, name, **body):
    return server.exchange("POST", "/v1/datasets/%s/sample" % name, body=body, timeout=60)


# --------------------------------------------------------------------------------------------
# 2. Fingerprint keys


def test_a_manifest_edit_that_swaps_groups_recomputes_the_fingerprint(root):
    data = os.path.join(root, "data")
    os.makedirs(data)
    with h5py.File(os.path.join(data, "all.h5"), "w") as f:
        f["small/volume"] = np.ones((8, 8, 4), np.float32)
        f["small/seg"] = blob((8, 8, 4), (0, 0, 0), 2)
        f["large/volume"] = np.full((16, 12, 6), 7, np.float32)
        f["large/seg"] = blob((16, 12, 6), (8, 4, 1), 4)

    def manifest(group):
        with open(os.path.join(data, "manifest.json"), "w") as f:
            json.dump([{"file_name": group, "singlefile_path": "all.h5", "sem_seg_file": group, "scan_id": "s1"}], f)

    manifest("small")
    path = config(root, {"m": "{format: manifest, path: %s}" % os.path.join(data, "manifest.json")})
    with MedsegdProcess(path) as server:
        before = wait_fingerprint(server, "m")
        assert before["scans"][0]["shape"] == [8, 8, 4]
        manifest("large")
        server.reload()
        deadline = time.time() + 30
        while True:
            after = wait_fingerprint(server, "m")
            if after["scans"][0]["shape"] != [8, 8, 4] or time.time() > deadline:
                break
            time.sleep(0.1)
        assert after["scans"][0]["shape"] == [16, 12, 6], "the old group's record was reused"
        assert after["scans"][0]["intensity"]["mean"] == 7
        reply = sample(server, "m", patch_size=[4, 4, 2], count=4, seed=1, foreground_fraction=1)
        assert reply.status == 200, reply
        centers = reply.array()["center"]
        assert all(8 <= x < 12 and 4 <= y < 8 and 1 <= z < 5 for x, y, z in centers), centers
    # The persisted record is the new group's too: a restart reuses it as is.
    with MedsegdProcess(path) as server:
        assert wait_fingerprint(server, "m")["scans"][0]["shape"] == [16, 12, 6]


def test_a_file_rewritten_without_a_reload_is_never_sampled_with_its_old_index(root):
    volume = np.arange(16 * 16 * 8, dtype=np.float32).reshape(16, 16, 8)
    file = os.path.join(root, "v3d", "0000001_V00.h5")
    write_volume(file, volume, blob((16, 16, 8), (0, 0, 0)))
    path = config(root, {"v3d": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v3d")})
    body = dict(patch_size=[2, 2, 2], count=8, seed=3, foreground_fraction=1, mask_format="labels")
    with MedsegdProcess(path) as server:
        wait_fingerprint(server, "v3d")
        assert sample(server, "v3d", **body).status == 200
        # The foreground moves to the far corner; the file keeps its name, inode and size.
        time.sleep(0.01)
        write_volume(file, volume, blob((16, 16, 8), (12, 12, 4)))
        first = sample(server, "v3d", **body)
        assert first.status == 503 and first.code == "not_ready", first
        assert "changed since its fingerprint" in first.message and first.headers["Retry-After"]
        deadline = time.time() + 60
        reply = first
        while reply.status == 503 and time.time() < deadline:
            time.sleep(0.2)
            reply = sample(server, "v3d", **body)
        assert reply.status == 200, reply
        arrays = reply.array()
        assert all(12 <= x < 16 and 12 <= y < 16 and 4 <= z < 8 for x, y, z in arrays["center"]), arrays["center"]
        assert (arrays["mask"] > 0).any(axis=(1, 2, 3)).all(), "every foreground patch holds foreground"


# --------------------------------------------------------------------------------------------
# 3. Bool masks and overlap coordinates


def test_bool_masks_or_256_or_more_channels(root):
    seg = np.zeros((4, 4, 2, 300), bool)
    seg[0, 0, 0, :256] = True  # 256 set channels: a byte sum wraps to 0
    seg[1, 1, 1, :300] = True
    seg[2, 2, 0, 5] = True
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.zeros((4, 4, 2), np.float32), seg)
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")})
    everything = json.dumps([list(range(300))])
    with MedsegdProcess(path) as server:
        reply = server.exchange("GET", "/v1/datasets/v/items/0/mask?categories=%s&background=none" % everything.replace(" ", ""))
        assert reply.status == 200, reply
        expected = seg.any(axis=-1)
        np.testing.assert_array_equal(reply.array()[..., 0], expected)
        labels = server.exchange("GET", "/v1/datasets/v/items/0/mask?mask_format=labels&categories=%s" % everything.replace(" ", ""))
        assert labels.status == 200, labels
        np.testing.assert_array_equal(labels.array(), expected.astype(np.uint8))


def test_integer_masks_saturate_instead_of_wrapping(root):
    # uint8 values 255 + 1 (a byte sum wraps to 0) and 128 + 128; int8 100 + 100.
    seg = np.zeros((2, 2, 1, 2), np.uint8)
    seg[0, 0, 0] = [255, 1]
    seg[1, 1, 0] = [128, 128]
    write_volume(os.path.join(root, "u", "0000001_V00.h5"), np.zeros((2, 2, 1), np.float32), seg)
    path = config(root, {"u": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "u")})
    with MedsegdProcess(path) as server:
        reply = server.exchange("GET", "/v1/datasets/u/items/0/mask?categories=[[0,1]]&background=first")
        assert reply.status == 200, reply
        mask = reply.array()
        np.testing.assert_array_equal(mask[..., 1], np.array([[[255], [0]], [[0], [255]]], np.uint8))
        np.testing.assert_array_equal(mask[..., 0], np.array([[[0], [1]], [[1], [0]]], np.uint8), "background where a class is set")
        labels = server.exchange("GET", "/v1/datasets/u/items/0/mask?categories=[[0,1]]&mask_format=labels")
        np.testing.assert_array_equal(labels.array(), np.array([[[1], [0]], [[0], [1]]], np.uint8))


def test_overlaps_are_named_in_the_items_and_scans_array(root):
    seg = np.zeros((32, 24, 8, 2), np.uint8)
    seg[20, 17, 5, :] = 1  # both classes at (20, 17, 5)
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.zeros((32, 24, 8), np.float32), seg)
    slices = os.path.join(root, "s")
    os.makedirs(slices)
    for k in range(1, 5):
        with h5py.File(os.path.join(slices, "0000001_V00-Aug00_%03d.im" % k), "w") as f:
            f["data"] = np.zeros((16, 12, 1), np.float32)
        mask = np.zeros((16, 12, 1, 2), np.uint8)
        if k == 3:
            mask[9, 7, 0, :] = 1  # slice index 2 of the stacked scan
        with h5py.File(os.path.join(slices, "0000001_V00-Aug00_%03d.seg" % k), "w") as f:
            f["data"] = mask
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v"),
                         "s": "{format: slices-2d, scan_root: %s}" % slices})
    with MedsegdProcess(path) as server:
        reply = server.exchange("GET", "/v1/datasets/v/items/0/mask?mask_format=labels&region=16:32,8:,4:")
        assert reply.status == 422 and "pixel (20, 17, 5)" in reply.message, reply
        reply = server.exchange("GET", "/v1/datasets/v/items/0/mask?mask_format=labels&region=::2,1::2,5")
        assert reply.status == 422 and "pixel (20, 17, 5)" in reply.message, reply
        reply = server.exchange("GET", "/v1/datasets/s/scans/0000001_V00/mask?mask_format=labels&region=8:,4:,1:")
        assert reply.status == 422 and "pixel (9, 7, 2)" in reply.message, reply
        reply = server.exchange("GET", "/v1/datasets/s/items/2/mask?mask_format=labels&region=5:,3:")
        assert reply.status == 422 and "pixel (9, 7)" in reply.message, reply
        wait_fingerprint(server, "v")
        reply = sample(server, "v", patch_size=[8, 8, 4], count=1, seed=0, foreground_fraction=1, mask_format="labels",
                       classes=[1])
        assert reply.status == 422 and "pixel (20, 17, 5)" in reply.message, reply


def test_an_overlap_in_a_large_pair_is_a_422_before_the_head(root):
    # A 16 MiB label map beside a 64 MiB image: the body streams, and the overlap is at its end.
    shape = (256, 256, 256)
    seg = np.zeros(shape + (2,), np.uint8)
    seg[255, 255, 255, :] = 1
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.zeros(shape, np.float32), seg)
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")},
                  server="  max_response_bytes: 1GiB\n")
    with MedsegdProcess(path) as server:
        reply = server.exchange("GET", "/v1/datasets/v/items/0?mask_format=labels", timeout=180)
        assert reply.status == 422 and "pixel (255, 255, 255)" in reply.message, reply
        batch = server.exchange("POST", "/v1/datasets/v/batch", body={"indices": [0], "mask_format": "labels"}, timeout=180)
        assert batch.status == 422 and "pixel (255, 255, 255)" in batch.message, batch
        assert "body=aborted" not in server.log


# --------------------------------------------------------------------------------------------
# 5. ETags across replicas


def test_replicas_over_copies_of_the_files_agree_on_etags(root):
    first = os.path.join(root, "a", "data")
    write_volume(os.path.join(first, "v", "0000001_V00.h5"), np.ones((8, 8, 4), np.float32), blob((8, 8, 4), (1, 1, 1), 2))
    second = os.path.join(root, "b", "elsewhere", "data")
    shutil.copytree(first, second, copy_function=shutil.copy2)  # as `cp -p` or `rsync -a`: the times kept
    configs = [config(os.path.join(root, side), {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(data, "v")})
               for side, data in (("a", first), ("b", second))]
    paths = ["/v1/datasets/v/items/0/image", "/v1/datasets/v/items/0", "/v1/datasets/v/scans/0000001_V00/mask?aug=0",
             "/v1/datasets/v/items/0/preview.png"]
    with MedsegdProcess(configs[0]) as a, MedsegdProcess(configs[1]) as b:
        for path in paths:
            tag = a.exchange("GET", path).headers["ETag"]
            assert b.exchange("GET", path).headers["ETag"] == tag, path
            assert b.exchange("GET", path, headers={"If-None-Match": tag}).status == 304, path
        # Another version of the file on one replica: another tag.
        os.utime(os.path.join(second, "v", "0000001_V00.h5"), (1, 1))
        assert b.exchange("GET", paths[0]).headers["ETag"] != a.exchange("GET", paths[0]).headers["ETag"]


def test_swapping_two_files_of_one_size_and_time_changes_their_etags(root):
    # Files unpacked from one archive share size and mtime; `mv` keeps both.
    folder = os.path.join(root, "v")
    for k, value in ((1, 0), (2, 9)):
        write_volume(os.path.join(folder, "%07d_V00.h5" % k), np.full((16, 16, 8), value, np.float32))
        os.utime(os.path.join(folder, "%07d_V00.h5" % k), (1_700_000_000, 1_700_000_000))
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % folder})
    with MedsegdProcess(path) as server:
        before = server.exchange("GET", "/v1/datasets/v/items/0/image")
        os.rename(os.path.join(folder, "0000001_V00.h5"), os.path.join(folder, "swap"))
        os.rename(os.path.join(folder, "0000002_V00.h5"), os.path.join(folder, "0000001_V00.h5"))
        os.rename(os.path.join(folder, "swap"), os.path.join(folder, "0000002_V00.h5"))
        after = server.exchange("GET", "/v1/datasets/v/items/0/image")
        assert after.array().max() == 9 and before.array().max() == 0
        assert after.headers["ETag"] != before.headers["ETag"]
        assert server.exchange("GET", "/v1/datasets/v/items/0/image", headers={"If-None-Match": before.headers["ETag"]}).status == 200


# --------------------------------------------------------------------------------------------
# 6, 7. Work bounded by the request's size


def test_preview_classes_are_a_bounded_set(root):
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.ones((64, 64, 4), np.float32), blob((64, 64, 4), (1, 1, 1), 2))
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")})
    with MedsegdProcess(path) as server:
        started = time.time()
        reply = server.exchange("GET", "/v1/datasets/v/items/0/preview.png?classes=" + ",".join(["0"] * 15000))
        assert reply.status == 400 and "classes" in reply.message and "1024" in reply.message, reply
        assert time.time() - started < FAST
        once = server.exchange("GET", "/v1/datasets/v/items/0/preview.png?classes=0")
        twice = server.exchange("GET", "/v1/datasets/v/items/0/preview.png?classes=0,0,0")
        assert once.status == twice.status == 200
        assert once.body == twice.body and once.headers["ETag"] == twice.headers["ETag"]


def test_label_maps_of_repeated_large_groups_are_refused_at_once(root):
    # 1,000 copies of a class over a 128x128x32 region: 10^9 additions for 0.5 MB of labels.
    seg = np.zeros((128, 128, 32, 64), np.uint8)
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.zeros((128, 128, 32), np.float32), seg)
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")})
    group = [0, 1]
    categories = json.dumps([group] * 1000).replace(" ", "")
    with MedsegdProcess(path) as server:
        for route in ("items/0/mask", "scans/0000001_V00/mask"):
            started = time.time()
            reply = server.exchange("GET", "/v1/datasets/v/%s?mask_format=labels&categories=%s" % (route, categories))
            assert reply.status == 413 and "too much work" in reply.message, reply
            assert time.time() - started < FAST, "the work was done before it was refused"
        # One copy of the group is fine.
        reply = server.exchange("GET", "/v1/datasets/v/items/0/mask?mask_format=labels&categories=%s" % json.dumps([group]).replace(" ", ""))
        assert reply.status == 200, reply


# --------------------------------------------------------------------------------------------
# 8. Samples sized before they wait


def test_an_oversized_sample_is_413_at_once_while_memory_is_held(root):
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.ones((128, 128, 64), np.float32), blob((128, 128, 64), (9, 9, 9)))
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")},
                  server="  max_inflight_bytes: 8MiB\n  max_response_bytes: 64MiB\n  idle_timeout: 60s\n")
    with MedsegdProcess(path) as server:
        wait_fingerprint(server, "v")
        # A client that asks for a 4 MiB volume and never reads it holds the memory budget.
        hog = socket.create_connection(("127.0.0.1", server.port))
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(4):
            hog.sendall(b"GET /v1/datasets/v/scans/0000001_V00/image?aug=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1)
        try:
            started = time.time()
            reply = sample(server, "v", patch_size=[128, 128, 64], count=12, seed=0)  # 88 MiB
            assert reply.status == 413 and "max_response_bytes" in reply.message, reply
            assert time.time() - started < FAST, "the sample waited for memory before its size was checked"
        finally:
            hog.close()
        small = sample(server, "v", patch_size=[8, 8, 8], count=2, seed=0)
        assert small.status == 200 and small.array()["image"].shape == (2, 8, 8, 8)


def test_a_client_that_leaves_while_waiting_for_memory_gives_up_its_place(root):
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.ones((128, 128, 64), np.float32))
    write_volume(os.path.join(root, "v", "0000002_V00.h5"), np.ones((64, 64, 8), np.float32))
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")},
                  server="  max_inflight_bytes: 8MiB\n  idle_timeout: 60s\n")
    with MedsegdProcess(path) as server:
        # Clients that ask for 4 MiB volumes and read nothing hold the whole budget.
        hogs = hold_memory(server)
        time.sleep(1)
        try:
            # A 128 KiB item waits for memory; its client closes normally (FIN) while it waits.
            leaver = socket.create_connection(("127.0.0.1", server.port))
            leaver.sendall(b"GET /v1/datasets/v/items/1/image HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.5)
            leaver.close()
            deadline = time.time() + 10
            while "path=/v1/datasets/v/items/1/image" not in server.log:
                assert time.time() < deadline, "the abandoned request still waits:\n" + server.log[-2000:]
                time.sleep(0.05)
        finally:
            for hog in hogs:
                hog.close()
        line = next(l for l in server.log.splitlines() if "path=/v1/datasets/v/items/1/image" in l)
        assert "status=503" in line, line  # given up while waiting, never built
        assert "internal error" not in server.log


def test_clients_that_reset_while_queued_are_never_built(root):
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.ones((128, 128, 64), np.float32))
    write_volume(os.path.join(root, "v", "0000002_V00.h5"), np.ones((64, 64, 8), np.float32))
    path = config(root, {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")},
                  server="  max_inflight_bytes: 8MiB\n  idle_timeout: 60s\n")

    def trips():
        text = server.exchange("GET", "/metrics").body.decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("medsegd_read_duration_count") and 'route="item-image"' in line)

    with MedsegdProcess(path) as server:
        hogs = hold_memory(server)
        time.sleep(1)
        before = trips()
        ghosts = 40
        try:
            for _ in range(ghosts):
                ghost = socket.create_connection(("127.0.0.1", server.port))
                ghost.sendall(b"GET /v1/datasets/v/items/1/image HTTP/1.1\r\nHost: x\r\n\r\n")
                time.sleep(0.002)
                ghost.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
                ghost.close()
            time.sleep(2)
        finally:
            for hog in hogs:
                hog.close()
        time.sleep(2)
        # Each ghost had its first trip (deciding the response); none was built after the release.
        assert trips() - before <= ghosts + 2, (before, trips())
        started = time.time()
        assert server.exchange("GET", "/v1/datasets/v/items/1/image").status == 200
        assert time.time() - started < FAST


# --------------------------------------------------------------------------------------------
# 9, 10. Reloads


def test_a_reload_keeps_ready_fingerprints_serving(root):
    # "a_big" is computed first and slowly (debug build); "b_small" is ready long before.
    write_volume(os.path.join(root, "a", "0000001_V00.h5"), np.random.default_rng(0).random((256, 256, 96), np.float32),
                 np.zeros((256, 256, 96, 2), np.uint8))
    write_volume(os.path.join(root, "b", "0000001_V00.h5"), np.ones((8, 8, 4), np.float32), blob((8, 8, 4), (1, 1, 1), 2))
    for k in range(1, 4):  # c_scans loses a scan in the reload
        write_volume(os.path.join(root, "c", "%07d_V00.h5" % k), np.ones((8, 8, 4), np.float32), blob((8, 8, 4), (1, 1, 1), 2))
    path = config(root, {"a_big": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "a"),
                         "b_small": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "b"),
                         "c_scans": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "c")})
    with MedsegdProcess(path) as server:
        server.wait_fingerprints(timeout=300)
        # a_big changes: the reload recomputes it, and b_small must keep serving meanwhile.
        write_volume(os.path.join(root, "a", "0000001_V00.h5"), np.random.default_rng(1).random((256, 256, 96), np.float32),
                     np.zeros((256, 256, 96, 2), np.uint8))
        os.remove(os.path.join(root, "c", "0000003_V00.h5"))
        server.reload()
        reply = sample(server, "b_small", patch_size=[2, 2, 2], count=2, seed=0)
        assert reply.status == 200, reply
        assert server.exchange("GET", "/v1/datasets/b_small/fingerprint").status == 200
        # A scan the reload removed is never drawn, not even while the pass is busy elsewhere.
        for seed in range(4):
            reply = sample(server, "c_scans", patch_size=[2, 2, 2], count=8, seed=seed)
            assert reply.status in (200, 503), reply
        after_reload = server.log.split("] reloaded", 1)[-1]
        assert "computed=1 dataset=a_big" not in after_reload, "the test ran after a_big's recomputation, not during it"
        deadline = time.time() + 300
        while "computed=1 dataset=a_big" not in server.log.split("] reloaded", 1)[-1]:
            assert time.time() < deadline, server.log[-3000:]
            time.sleep(0.2)


def test_a_reload_that_removes_or_adds_a_scan_never_samples_what_is_gone(root):
    for k in range(1, 4):
        write_volume(os.path.join(root, "m", "%07d_V00.h5" % k), np.ones((8, 8, 4), np.float32), blob((8, 8, 4), (1, 1, 1), 2))
    path = config(root, {"m": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "m")})
    with MedsegdProcess(path) as server:
        wait_fingerprint(server, "m")
        os.remove(os.path.join(root, "m", "0000003_V00.h5"))
        write_volume(os.path.join(root, "m", "0000009_V00.h5"), np.ones((8, 8, 4), np.float32), blob((8, 8, 4), (1, 1, 1), 2))
        server.reload()
        deadline = time.time() + 60
        seen = set()
        seed = 0
        while time.time() < deadline and "0000009_V00" not in seen:
            reply = sample(server, "m", patch_size=[2, 2, 2], count=8, seed=seed)
            assert reply.status in (200, 503), reply  # never 404 for a scan the reload removed
            if reply.status == 200:
                scans = [s["scan_id"] for s in json.loads(server.exchange("GET", "/v1/datasets/m/scans").body)]
                seen |= {scans[i] for i in reply.array()["scan_index"]}
            seed += 1
        assert "0000003_V00" not in seen and "0000009_V00" in seen, seen
        added = sample(server, "m", patch_size=[2, 2, 2], count=2, seed=0, scans=["0000009_V00"])
        assert added.status == 200, added


def test_tokens_take_effect_at_once_even_when_the_rest_is_refused(root):
    write_volume(os.path.join(root, "v", "0000001_V00.h5"), np.ones((8, 8, 4), np.float32))
    tokens = os.path.join(root, "tokens")
    with open(tokens, "w") as f:
        f.write("keep-me\nrevoke-me\n")
    datasets = {"v": "{format: volumes-3d, scan_root: %s}" % os.path.join(root, "v")}
    path = config(root, datasets, server="  tokens_file: %s\n" % tokens)
    with MedsegdProcess(path) as server:
        def status(token):
            return server.exchange("GET", "/v1/datasets", headers={"Authorization": "Bearer " + token}).status

        assert status("revoke-me") == 200 and status("keep-me") == 200
        with open(tokens, "w") as f:
            f.write("keep-me\n")
        # The same edit breaks another part of the configuration: that part is refused.
        with open(path, "a") as f:
            f.write("      broken: {format: no-such-format, scan_root: /nowhere}\n")
        before = server.log.count("reload refused")
        server.process.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while server.log.count("reload refused") == before:
            assert time.time() < deadline, server.log[-3000:]
            time.sleep(0.05)
        assert "tokens reloaded" in server.log
        assert status("revoke-me") == 401, "a revoked token still works"
        assert status("keep-me") == 200
