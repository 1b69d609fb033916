#!/usr/bin/env python3
"""medsegd against local h5py, the way a training job reads: items/s, MB/s, latency, CPU.

Writes a realistic dataset (384x384 float32 slices with 384x384x1x6 uint8 masks, 8 scans x 40
slices, contiguous and h5py's chunks=True+gzip; three 384x384x160 volumes, both layouts), starts
the release build of medsegd on 127.0.0.1, and measures with N client processes:

  items    random items, image + mask collated [0,[1,2],3,[4,5]], decoded to numpy;
           epoch 1 (cold: medsegd's cache empty) then epoch 2 (warm)
  batch32  batches of 32 random items
  patch    random 64x64x32 patches of the volumes, image + collated mask

and the same workloads read locally with h5py as MedSegPy does (one h5py.File per slice,
collation in numpy). Server CPU per item comes from /proc of the server process. Every process
it starts is stopped; the data folder is removed. Run it with the project's venv:

    scripts/bench                       # = .build/venv/bin/python bench/throughput.py
"""
import argparse
import ast
import http.client
import json
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
CATEGORIES = [0, (1, 2), 3, (4, 5)]
CATEGORIES_JSON = "%5B0,%5B1,2%5D,3,%5B4,5%5D%5D"
SIDE, CHANNELS, SCANS, SLICES, DEPTH, VOLUMES = 384, 6, 8, 40, 160, 3
PATCH = (64, 64, 32)
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- data

def phantom(rng, shape):
    """Smooth anatomy-like intensities plus 12-bit noise, as MRI exports look (gzip gets ~2x)."""
    rows, columns, depth = shape
    y, x = np.meshgrid(np.linspace(0, 3, rows, dtype=np.float32), np.linspace(0, 3, columns, dtype=np.float32), indexing="ij")
    base = (np.sin(y * 2.1) * np.cos(x * 1.7))[..., None] * np.linspace(0.5, 1.0, depth, dtype=np.float32)
    return (base + rng.integers(0, 64, shape).astype(np.float32) / 4096).astype(np.float32)


def label_masks(rng, depth, singleton):
    """One-hot masks of 6 classes (plus background) from random labels: H x W x D x C."""
    labels = rng.integers(0, CHANNELS + 3, (SIDE, SIDE, 1))
    one_hot = np.stack([(labels == c) for c in range(CHANNELS)], axis=-1).astype(np.uint8)
    return one_hot if singleton else np.repeat(one_hot, depth, axis=2)


def write_data(root):
    rng = np.random.default_rng(7)
    started = time.time()
    for layout, options in [("contig", {}), ("gzip", dict(chunks=True, compression="gzip"))]:
        folder = os.path.join(root, "2d_" + layout)
        os.makedirs(folder)
        for scan in range(SCANS):
            for s in range(1, SLICES + 1):
                stem = "%07d_V00-Aug00_%03d" % (scan + 1, s)
                with h5py.File(os.path.join(folder, stem + ".im"), "w") as f:
                    f.create_dataset("data", data=phantom(rng, (SIDE, SIDE, 1)), **options)
                with h5py.File(os.path.join(folder, stem + ".seg"), "w") as f:
                    f.create_dataset("data", data=label_masks(rng, 1, singleton=True), **options)
        folder = os.path.join(root, "3d_" + layout)
        os.makedirs(folder)
        for v in range(VOLUMES):
            seg = label_masks(rng, DEPTH, singleton=False)
            with h5py.File(os.path.join(folder, "%07d_V00.h5" % (100 + v)), "w") as f:
                f.create_dataset("volume", data=phantom(rng, (SIDE, SIDE, DEPTH)), **options)
                f.create_dataset("seg", data=seg, **options)
    with open(os.path.join(root, "medsegd.yaml"), "w") as f:
        f.write("families:\n  bench:\n    categories:\n")
        for i, c in enumerate(CATEGORIES):
            f.write("      - {id: %s, name: c%d}\n" % (json.dumps(list(c)) if isinstance(c, tuple) else c, i))
        f.write("    datasets:\n")
        for name in ["2d_contig", "2d_gzip"]:
            f.write("      %s: {format: slices-2d, scan_root: %s}\n" % (name, name))
        for name in ["3d_contig", "3d_gzip"]:
            f.write("      %s: {format: volumes-3d, scan_root: %s}\n" % (name, name))
    print("wrote the dataset in %.0f s" % (time.time() - started), file=sys.stderr)


def item_files(root, layout):
    folder = os.path.join(root, "2d_" + layout)
    stems = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".im"))
    return [(os.path.join(folder, s + ".im"), os.path.join(folder, s + ".seg")) for s in stems]


def volume_files(root, layout):
    folder = os.path.join(root, "3d_" + layout)
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))]


# ---------------------------------------------------------------- local h5py, as MedSegPy reads

def collect_mask(mask, index):
    out = np.stack([mask[..., list(i)].sum(-1) if isinstance(i, tuple) else mask[..., i] for i in index], axis=-1)
    return np.squeeze(out, axis=-2) if out.shape[-2] == 1 else out


def local_item(files):
    image_file, mask_file = files
    with h5py.File(image_file, "r") as f:
        image = f["data"][:]
    with h5py.File(mask_file, "r") as f:
        mask = collect_mask(f["data"][:], CATEGORIES)
    return image.nbytes + mask.nbytes


def local_patch(path, corner):
    a, b, c = corner
    with h5py.File(path, "r") as f:
        image = f["volume"][a:a + PATCH[0], b:b + PATCH[1], c:c + PATCH[2]]
        mask = collect_mask(f["seg"][a:a + PATCH[0], b:b + PATCH[1], c:c + PATCH[2]], CATEGORIES)
    return image.nbytes + mask.nbytes


# ---------------------------------------------------------------- medsegd client

class Client:
    """Keep-alive HTTP; bodies read into one reused buffer; arrays are views of it (no copies)."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port)
        self.buffer = bytearray(64 << 20)

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body else {}
        self.connection.request(method, path, body=body, headers=headers)
        reply = self.connection.getresponse()
        length = int(reply.getheader("Content-Length"))
        if reply.status != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, reply.status, reply.read()[:300]))
        if length > len(self.buffer):
            self.buffer = bytearray(length)
        view = memoryview(self.buffer)[:length]
        got = 0
        while got < length:
            n = reply.readinto(view[got:])
            if not n:
                raise RuntimeError("short body")
            got += n
        return view

    @staticmethod
    def npz_arrays(view):
        """The members of an uncompressed .npz, as numpy views of `view`."""
        arrays, position = {}, 0
        while int.from_bytes(view[position:position + 4], "little") == 0x04034B50:
            name_length = int.from_bytes(view[position + 26:position + 28], "little")
            extra_length = int.from_bytes(view[position + 28:position + 30], "little")
            name = bytes(view[position + 30:position + 30 + name_length]).decode()
            npy = position + 30 + name_length + extra_length
            header_length = int.from_bytes(view[npy + 8:npy + 10], "little")
            header = ast.literal_eval(bytes(view[npy + 10:npy + 10 + header_length]).decode())
            data = npy + 10 + header_length
            dtype = np.dtype(header["descr"])
            count = int(np.prod(header["shape"])) if header["shape"] else 1
            arrays[name[:-4]] = np.frombuffer(view, dtype, count, data).reshape(header["shape"])
            position = data + count * dtype.itemsize + (16 if int.from_bytes(view[position + 18:position + 22], "little") != 0xFFFFFFFF else 24)
        return arrays


# ---------------------------------------------------------------- workers

def worker(task, jobs, port, results):
    os.sched_setaffinity(0, os.sched_getaffinity(0))
    client = Client(port) if port else None
    latencies, payload = [], 0
    cpu0 = os.times()
    for job in jobs:
        started = time.perf_counter()
        if task == "local_item":
            payload += local_item(job)
        elif task == "local_batch":
            payload += sum(local_item(files) for files in job)
        elif task == "local_patch":
            payload += local_patch(*job)
        elif task == "item":
            dataset, index = job
            arrays = Client.npz_arrays(client.request("GET", "/v1/datasets/%s/items/%d?categories=%s" % (dataset, index, CATEGORIES_JSON)))
            payload += arrays["image"].nbytes + arrays["mask"].nbytes
        elif task == "batch":
            dataset, indices = job
            body = json.dumps({"indices": indices, "categories": [list(c) if isinstance(c, tuple) else c for c in CATEGORIES]})
            arrays = Client.npz_arrays(client.request("POST", "/v1/datasets/%s/batch" % dataset, body))
            payload += arrays["image"].nbytes + arrays["mask"].nbytes
        elif task == "patch":
            dataset, index, (a, b, c) = job
            region = "%d:%d,%d:%d,%d:%d" % (a, a + PATCH[0], b, b + PATCH[1], c, c + PATCH[2])
            arrays = Client.npz_arrays(client.request("GET", "/v1/datasets/%s/items/%d?region=%s&categories=%s" % (dataset, index, region, CATEGORIES_JSON)))
            payload += arrays["image"].nbytes + arrays["mask"].nbytes
        latencies.append(time.perf_counter() - started)
    cpu1 = os.times()
    results.put((latencies, payload, (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)))


def run(task, jobs, workers, port=None, items_per_job=1, server_pid=None):
    shares = [jobs[i::workers] for i in range(workers)]
    results = mp.Queue()
    cpu_before = server_cpu(server_pid)
    started = time.perf_counter()
    processes = [mp.Process(target=worker, args=(task, share, port, results)) for share in shares]
    for p in processes:
        p.start()
    collected = [results.get(timeout=600) for _ in processes]
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - started
    latencies = sorted(l for c in collected for l in c[0])
    items = len(jobs) * items_per_job
    return {
        "items_s": items / elapsed,
        "mb_s": sum(c[1] for c in collected) / elapsed / 1e6,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "server_ms": (server_cpu(server_pid) - cpu_before) * 1000 / items if server_pid else None,
        "client_ms": sum(c[2] for c in collected) * 1000 / items,
    }


def server_cpu(pid):
    if not pid:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# ---------------------------------------------------------------- server

class Server:
    def __init__(self, binary, root, cache):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = os.path.join(root, "medsegd.yaml")
        text = open(config).read().split("families:", 1)[1]
        self.config = os.path.join(root, "bench-%s.yaml" % cache)
        with open(self.config, "w") as f:
            f.write("server:\n  cache_bytes: %s\n  max_batch_items: 64\nfamilies:%s" % (cache, text))
        self.log = open(os.path.join(root, "server.log"), "a")
        self.process = subprocess.Popen([binary, "serve", "--config", self.config, "--port", str(self.port), "--log-level", "warning"],
                                        stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    self.wait_for_fingerprints(deadline + 600)
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("medsegd did not become ready")

    def wait_for_fingerprints(self, deadline):
        """The background fingerprint pass (saved in the data folder's state/, so only the first
        server of a run computes it) must not run while we time requests or count server CPU."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/v1/datasets")
        names = [d["name"] for d in json.loads(c.getresponse().read())["datasets"]]
        for name in names:
            while True:
                c.request("GET", "/v1/datasets/%s/fingerprint" % name)
                reply = c.getresponse()
                reply.read()
                if reply.status == 200:
                    break
                if time.time() > deadline:
                    raise RuntimeError("the fingerprint of %s was not ready in time" % name)
                time.sleep(0.2)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def release_binary():
    subprocess.run(["swift", "build", "-c", "release", "--product", "medsegd"], cwd=ROOT, check=True)
    path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "medsegd")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", help="medsegd binary (default: build the release one)")
    parser.add_argument("--workers", default="1,4", help="client process counts, e.g. 1,4")
    parser.add_argument("--batches", type=int, default=12, help="batches of 32 per run")
    parser.add_argument("--patches", type=int, default=240, help="patches per run")
    parser.add_argument("--only", default="", help="comma list of rows to run (items,gzip,batch,patch)")
    parser.add_argument("--data", help="reuse a data folder written by an earlier run (kept)")
    args = parser.parse_args()
    binary = args.binary or release_binary()
    workers_list = [int(w) for w in args.workers.split(",")]
    only = set(filter(None, args.only.split(",")))
    root = args.data or tempfile.mkdtemp(prefix="medsegd-bench-")
    rows = []
    rng = np.random.default_rng(11)
    try:
        if not args.data or not os.path.exists(os.path.join(root, "medsegd.yaml")):
            write_data(root)
        n_items = SCANS * SLICES
        for layout in ["contig", "gzip"]:
            if only and ("items" if layout == "contig" else "gzip") not in only:
                continue
            files = item_files(root, layout)
            for workers in workers_list:
                order = [int(i) for i in rng.permutation(n_items)]
                local = run("local_item", [files[i] for i in order], workers)
                server = Server(binary, root, "1GiB")
                try:
                    jobs = [("2d_" + layout, i) for i in order]
                    cold = run("item", jobs, workers, server.port, server_pid=server.process.pid)
                    warm = run("item", jobs, workers, server.port, server_pid=server.process.pid)
                finally:
                    server.stop()
                rows.append(("items %s, cold" % layout, workers, cold, local))
                rows.append(("items %s, warm" % layout, workers, warm, local))
        if not only or "batch" in only:
            files = item_files(root, "contig")
            for workers in workers_list:
                batches = [[int(i) for i in rng.choice(n_items, 32, replace=False)] for _ in range(args.batches)]
                local = run("local_batch", [[files[i] for i in b] for b in batches], workers, items_per_job=32)
                server = Server(binary, root, "0")
                try:
                    remote = run("batch", [("2d_contig", b) for b in batches], workers, server.port, items_per_job=32, server_pid=server.process.pid)
                finally:
                    server.stop()
                rows.append(("batch32 contig", workers, remote, local))
        if not only or "patch" in only:
            for layout in ["contig", "gzip"]:
                files = volume_files(root, layout)
                for workers in workers_list:
                    corners = [(int(rng.integers(VOLUMES)), (int(rng.integers(SIDE - PATCH[0])), int(rng.integers(SIDE - PATCH[1])), int(rng.integers(DEPTH - PATCH[2])))) for _ in range(args.patches)]
                    local = run("local_patch", [(files[v], c) for v, c in corners], workers)
                    server = Server(binary, root, "0")
                    try:
                        remote = run("patch", [("3d_" + layout, v, c) for v, c in corners], workers, server.port, server_pid=server.process.pid)
                    finally:
                        server.stop()
                    rows.append(("patch %s" % layout, workers, remote, local))
    finally:
        if not args.data:
            shutil.rmtree(root, ignore_errors=True)

    print("| workload | clients | items/s | MB/s | p50 ms | p99 ms | server CPU ms/item | client CPU ms/item | local h5py items/s | local client CPU ms/item | medsegd/local |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, workers, remote, local in rows:
        print("| %s | %d | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %.2fx |" % (
            name, workers, remote["items_s"], remote["mb_s"], remote["p50_ms"], remote["p99_ms"], remote["server_ms"],
            remote["client_ms"], local["items_s"], local["client_ms"], remote["items_s"] / local["items_s"]))


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
