#!/usr/bin/env python3
"""medsegd's sample route against nnU-Net-style local patch sampling: patches/s and CPU per patch.

Writes three 384x384x160 volumes (float32 images, 4-channel uint8 masks of ellipsoid blobs), each
contiguous and with h5py's chunks=True + gzip, starts the release build of medsegd on 127.0.0.1
(a free port, its own state_dir) and waits until its fingerprint pass is done. Then, per layout,
patch size (64^3 in batches of 8; 128^3 in batches of 2, as nnU-Net's 3D plans batch them) and
number of trainer processes (1, 4), it runs each method for a fixed time:

  medsegd    POST /v1/datasets/{name}/sample, foreground_fraction 0.33, a seed per batch, decoded
             by medsegd_client (arrays are views of the body)
  whole      nnU-Net's loader: each patch's volume and mask read whole with h5py, then cropped
             (zero-padded at the borders); the last round(batch x 0.33) patches of a batch centred
             on a voxel of a class present in the volume, from a precomputed index of up to 10,000
             voxels per class and volume (nnU-Net's class_locations)
  hyperslab  the same draw, reading only the patch's hyperslab of image and mask with h5py

and prints a markdown table: patches/s, trainer CPU ms per patch (the trainer processes' own CPU),
server CPU ms per patch (/proc of the server), and medsegd's rate over the faster local method's.
Targets: >= 3x the faster local rate, trainer CPU per patch <= 1/3 of that method's (PASS/MISS).
The machine's cores are shared: the server and the trainers compete for them. Every process it
starts is stopped by PID; the data folder is removed.

    .build/venv/bin/python bench/patches.py [--binary .build/release/medsegd] [--seconds 2]
"""
import argparse
import http.client
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))  # the source tree's client if not installed
from medsegd_client import Client  # noqa: E402

SHAPE, CHANNELS, VOLUMES = (384, 384, 160), 4, 3
FRACTION = 0.33
INDEX = 10_000  # foreground voxels indexed per class and volume, as nnU-Net keeps
PLANS = [(64, 8), (128, 2)]  # patch side, patches per batch
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- data

def phantom(rng, shape):
    """Smooth anatomy-like intensities plus 12-bit noise, as MRI exports look (gzip gets ~2x)."""
    rows, columns, depth = shape
    y, x = np.meshgrid(np.linspace(0, 3, rows, dtype=np.float32), np.linspace(0, 3, columns, dtype=np.float32), indexing="ij")
    base = (np.sin(y * 2.1) * np.cos(x * 1.7))[..., None] * np.linspace(0.5, 1.0, depth, dtype=np.float32)
    return (base + rng.integers(0, 64, shape).astype(np.float32) / 4096).astype(np.float32)


def blob_masks(rng, shape):
    """H x W x D x 4 uint8: per channel two or three ellipsoids (tissue-sized, a few % of the volume)."""
    mask = np.zeros(shape + (CHANNELS,), np.uint8)
    for channel in range(CHANNELS):
        for _ in range(int(rng.integers(2, 4))):
            radii = rng.uniform([12, 12, 6], [40, 40, 20])
            centre = rng.uniform([0, 0, 0], shape)
            low = np.maximum(0, (centre - radii).astype(int))
            high = np.minimum(shape, (centre + radii).astype(int) + 1)
            grid = np.ogrid[tuple(slice(a, b) for a, b in zip(low, high))]
            inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
            mask[low[0]:high[0], low[1]:high[1], low[2]:high[2], channel] |= inside.astype(np.uint8)
    return mask


def class_locations(rng, seg):
    """nnU-Net's foreground index: up to INDEX voxel coordinates per class (None when absent)."""
    locations = []
    for channel in range(seg.shape[-1]):
        flat = np.flatnonzero(seg[..., channel])
        if len(flat) > INDEX:
            flat = rng.choice(flat, INDEX, replace=False)
        locations.append(np.stack(np.unravel_index(flat, seg.shape[:3]), axis=1) if len(flat) else None)
    return locations


def write_data(root):
    """Both layouts of the same volumes, the config, and the local foreground index per volume."""
    rng = np.random.default_rng(7)
    started = time.time()
    index = []
    for layout in ["contig", "gzip"]:
        os.makedirs(os.path.join(root, layout))
    for v in range(VOLUMES):
        image, seg = phantom(rng, SHAPE), blob_masks(rng, SHAPE)
        for layout, options in [("contig", {}), ("gzip", dict(chunks=True, compression="gzip"))]:
            with h5py.File(os.path.join(root, layout, "%07d_V00.h5" % (v + 1)), "w") as f:
                f.create_dataset("volume", data=image, **options)
                f.create_dataset("seg", data=seg, **options)
        index.append(class_locations(rng, seg))
    with open(os.path.join(root, "medsegd.yaml"), "w") as f:
        f.write("server:\n  state_dir: state\nfamilies:\n  bench:\n    categories:\n")
        for c in range(CHANNELS):
            f.write("      - {id: %d, name: c%d}\n" % (c, c))
        f.write("    datasets:\n")
        for layout in ["contig", "gzip"]:
            f.write("      %s: {format: volumes-3d, scan_root: %s}\n" % (layout, layout))
    print("wrote the data in %.0f s" % (time.time() - started), file=sys.stderr)
    return index


def volume_files(root, layout):
    return [os.path.join(root, layout, "%07d_V00.h5" % (v + 1)) for v in range(VOLUMES)]


# ---------------------------------------------------------------- local sampling, as nnU-Net does

def foreground_patches(batch):
    """nnU-Net's oversampling: the last round(batch x 0.33) of a batch (halves rounded up)."""
    return int(np.floor(batch * FRACTION + 0.5))


def draw(rng, index, position, batch):
    """(volume, centre) of the patch at `position` in its batch."""
    v = int(rng.integers(VOLUMES))
    if position >= batch - foreground_patches(batch):
        present = [c for c in index[v] if c is not None]
        if present:
            voxels = present[int(rng.integers(len(present)))]
            return v, voxels[int(rng.integers(len(voxels)))]
    return v, [int(rng.integers(n)) for n in SHAPE]


def window(centre, side):
    """Per axis: the clipped slice of the volume and where it lands in the patch."""
    source, target = [], []
    for c, n in zip(centre, SHAPE):
        start = int(c) - side // 2
        low, high = max(0, start), min(n, start + side)
        source.append(slice(low, high))
        target.append(slice(low - start, high - start))
    return tuple(source), tuple(target)


def crop(files, index, rng, position, batch, side, whole):
    v, centre = draw(rng, index, position, batch)
    source, target = window(centre, side)
    image = np.zeros((side,) * 3, np.float32)
    mask = np.zeros((side,) * 3 + (CHANNELS,), np.uint8)
    with h5py.File(files[v], "r") as f:
        if whole:  # nnU-Net loads the case, then crops
            image[target] = f["volume"][:][source]
            mask[target] = f["seg"][:][source]
        else:
            image[target] = f["volume"][source]
            mask[target] = f["seg"][source]
    return image.nbytes + mask.nbytes


# ---------------------------------------------------------------- trainers

def trainer(method, worker, job, start, results):
    """Runs `method` from `start` (an Event) for job["seconds"]; reports patches, CPU and time."""
    side, batch, seconds = job["side"], job["batch"], job["seconds"]
    rng = np.random.default_rng(1000 + worker)
    client = Client(job["url"], timeout=300) if method == "medsegd" else None
    start.wait()
    cpu0, began = os.times(), time.perf_counter()
    patches = 0
    while patches == 0 or time.perf_counter() - began < seconds:
        if method == "medsegd":
            arrays = client.sample(job["dataset"], [side] * 3, batch, seed=worker * 1_000_000 + patches,
                                   foreground_fraction=FRACTION)
            assert arrays["image"].shape == (batch, side, side, side) and arrays["mask"].shape[-1] == CHANNELS
            patches += batch
        else:
            crop(job["files"], job["index"], rng, patches % batch, batch, side, whole=method == "whole")
            patches += 1
    elapsed = time.perf_counter() - began
    cpu1 = os.times()
    results.put((patches, (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), elapsed))


def run(method, job, trainers, server_pid=None):
    """patches/s, trainer CPU ms per patch and server CPU ms per patch of `trainers` processes."""
    start, results = mp.Event(), mp.Queue()
    processes = [mp.Process(target=trainer, args=(method, w, job, start, results)) for w in range(trainers)]
    try:
        for p in processes:
            p.start()
        time.sleep(0.3)  # connections made, imports done
        server_before = server_cpu(server_pid)
        start.set()
        collected = [results.get(timeout=600) for _ in processes]
        server_after = server_cpu(server_pid)
        for p in processes:
            p.join(timeout=30)
    finally:
        for p in processes:
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
                p.join()
    patches = sum(c[0] for c in collected)
    return {
        "rate": patches / max(c[2] for c in collected),
        "cpu_ms": sum(c[1] for c in collected) * 1000 / patches,
        "server_ms": (server_after - server_before) * 1000 / patches if server_pid else None,
    }


def server_cpu(pid):
    if not pid:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# ---------------------------------------------------------------- server

class Server:
    """The release binary on 127.0.0.1 over the data's config, state in the data folder."""

    def __init__(self, binary, root):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(os.path.join(root, "server.log"), "a")
        self.process = subprocess.Popen([binary, "serve", "--config", os.path.join(root, "medsegd.yaml"), "--port", str(self.port),
                                         "--log-level", "warning"], stdout=self.log, stderr=self.log)
        self.url = "http://127.0.0.1:%d" % self.port
        try:
            self.wait(["contig", "gzip"])
        except BaseException:
            self.stop()
            raise

    def status(self, path):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path)
            reply = connection.getresponse()
            reply.read()
            return reply.status
        except OSError:
            return None
        finally:
            connection.close()

    def wait(self, datasets, timeout=300):
        """Until /readyz, then every dataset's fingerprint, answer 200 (503 while the pass runs)."""
        started = time.time()
        for path in ["/readyz"] + ["/v1/datasets/%s/fingerprint" % name for name in datasets]:
            while self.status(path) != 200:
                if self.process.poll() is not None or time.time() - started > timeout:
                    raise RuntimeError("medsegd did not get ready (%s); see its log" % path)
                time.sleep(0.1)
        print("fingerprints ready %.0f s after start" % (time.time() - started), file=sys.stderr)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "medsegd"),
                        help="medsegd binary (default: the release build; scripts/bench builds it)")
    parser.add_argument("--trainers", default="1,4", help="trainer process counts, e.g. 1,4")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per method and row")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit("no medsegd binary at %s: build it first (swift build -c release)" % args.binary)
    trainer_counts = [int(n) for n in args.trainers.split(",")]
    root = tempfile.mkdtemp(prefix="medsegd-patches-")
    rows = []
    server = None
    try:
        index = write_data(root)
        server = Server(args.binary, root)
        for layout in ["contig", "gzip"]:
            for side, batch in PLANS:
                for trainers in trainer_counts:
                    job = dict(side=side, batch=batch, seconds=args.seconds, url=server.url, dataset=layout,
                               files=volume_files(root, layout), index=index)
                    remote = run("medsegd", job, trainers, server.process.pid)
                    whole = run("whole", job, trainers)
                    hyperslab = run("hyperslab", job, trainers)
                    rows.append((layout, side, batch, trainers, remote, whole, hyperslab))
                    print("done: %s %d^3 x%d, %d trainer(s)" % (layout, side, batch, trainers), file=sys.stderr)
    finally:
        if server:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    print("| layout | patch x batch | trainers | medsegd patches/s | local whole-volume patches/s | local hyperslab patches/s "
          "| medsegd / faster local | trainer CPU ms/patch: medsegd | trainer CPU ms/patch: faster local | server CPU ms/patch "
          "| >= 3x rate | <= 1/3 CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for layout, side, batch, trainers, remote, whole, hyperslab in rows:
        local = max(whole, hyperslab, key=lambda r: r["rate"])
        ratio = remote["rate"] / local["rate"]
        print("| %s | %d^3 x %d | %d | %.1f | %.2f | %.1f | %.2fx | %.2f | %.2f | %.2f | %s | %s |" % (
            layout, side, batch, trainers, remote["rate"], whole["rate"], hyperslab["rate"], ratio, remote["cpu_ms"],
            local["cpu_ms"], remote["server_ms"], "PASS" if ratio >= 3 else "MISS",
            "PASS" if remote["cpu_ms"] <= local["cpu_ms"] / 3 else "MISS"))


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
