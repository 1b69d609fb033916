#!/usr/bin/env python3
"""medsegd over an emulated network link: items/s, wire bytes, trainer CPU and latency (issue 12).

Runs the servers inside a network namespace joined to the client (the root namespace) by a veth
pair, with a `tc tbf` qdisc shaping what the server side sends (1 Gbit/s and 10 Gbit/s). The
round trip is the veth's own (~0.05 ms): this kernel has no sch_netem, so no delay is added, and
the output says so. It writes a dataset like bench/throughput.py's (384x384 float32 slices, 8 scans
x 40, contiguous; three 384x384x160 volumes) but with realistic masks: a few smooth blobs per
class, mostly background, no two collated classes sharing a pixel. Then, for each link rate and
each number of trainer processes, it measures

  items    random items, image + mask collated [0,[1,2],3,[4,5]], decoded to numpy, from
           nginx-static  nginx sending the raw .im/.seg files, parsed with h5py, collated in numpy
           plain npz     medsegd today: float32 image, one-hot uint8 mask
           float16       + dtype=float16
           labels        + mask_format=labels (class-index map)
           deflate       + compression=deflate (the one-hot mask deflated in the .npz)
           remote preset float16 + labels + deflate
  batch32  POST .../batch of 32 random items (plain npz, remote preset)
  patch    random 64x64x32 patches of the volumes, image and mask requests (plain, float16 + labels)

Each row runs for --seconds. medsegd's response cache is off (cache_bytes: 0), so every read
takes the cold path (files in the page cache). Wire bytes are the veth's counter of what the
server side sent (Ethernet frames: headers included); trainer CPU is the client processes' own
CPU (HTTP, decoding, inflating, h5py); server CPU comes from /proc (medsegd and its vetting
child; nginx's master and workers). Latency is per fetch of an item, batch or patch (nginx items
and patches are two requests). Needs root; removes the namespace, the veth, every process it
started and its data folder when it ends (also on SIGINT/SIGTERM):

    .build/venv/bin/python bench/network.py --binary .build/release/medsegd
"""
import argparse
import ast
import datetime
import functools
import http.client
import io
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import h5py
import numpy as np

from throughput import CATEGORIES, CATEGORIES_JSON, CHANNELS, DEPTH, PATCH, SCANS, SIDE, SLICES, TICKS, VOLUMES, collect_mask, phantom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITEMS = SCANS * SLICES
MEDSEGD_PORT, NGINX_PORT = 8080, 8081
WIRE_OPTIONS = {
    "nginx-static": None,
    "plain npz": {},
    "float16": {"dtype": "float16"},
    "labels": {"mask_format": "labels"},
    "deflate": {"compression": "deflate"},
    "remote preset": {"dtype": "float16", "mask_format": "labels", "compression": "deflate"},
}
NEW_OPTIONS = {"mask_format", "compression"}
ROWS = [("items", name) for name in WIRE_OPTIONS] + [("batch32", "plain npz"), ("batch32", "remote preset"),
                                                     ("patch", "plain npz"), ("patch", "remote preset")]
TARGETS = [  # (rate, config, against, at least): random items
    ("1gbit", "remote preset", "plain npz", 3.0),
    ("1gbit", "remote preset", "nginx-static", 4.0),
    ("10gbit", "remote preset", "plain npz", 1.3),
]
TRAINER_CPU_TARGET_MS = 0.5


# ---------------------------------------------------------------- data

def blob_labels(rng, depth):
    """H x W x depth stored-channel labels (0 background, c + 1 channel c): two smooth ellipsoids
    per channel, painted over each other, so channels never overlap; mostly background."""
    labels = np.zeros((SIDE, SIDE, depth), np.uint8)
    for channel in range(CHANNELS):
        for _ in range(2):
            radius = rng.uniform([15, 15, depth * 0.2], [45, 60, depth * 0.5])
            centre = rng.uniform([90, 90, 0], [SIDE - 90, SIDE - 90, depth])
            low = np.maximum(np.floor(centre - radius).astype(int), 0)
            high = np.minimum(np.ceil(centre + radius).astype(int) + 1, (SIDE, SIDE, depth))
            y, x, z = np.ogrid[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
            inside = ((y - centre[0]) / radius[0]) ** 2 + ((x - centre[1]) / radius[1]) ** 2 + ((z - centre[2]) / radius[2]) ** 2 < 1
            labels[low[0]:high[0], low[1]:high[1], low[2]:high[2]][inside] = channel + 1
    return labels


def one_hot(labels):
    """Stored masks: labels H x W x D -> H x W x D x CHANNELS uint8."""
    return (labels[..., None] == np.arange(1, CHANNELS + 1, dtype=np.uint8)).astype(np.uint8)


def write_data(root):
    rng = np.random.default_rng(7)
    started = time.time()
    os.makedirs(os.path.join(root, "2d"))
    for scan in range(SCANS):
        masks = one_hot(blob_labels(rng, SLICES))
        for s in range(SLICES):
            stem = os.path.join(root, "2d", "%07d_V00-Aug00_%03d" % (scan + 1, s + 1))
            with h5py.File(stem + ".im", "w") as f:
                f.create_dataset("data", data=phantom(rng, (SIDE, SIDE, 1)))
            with h5py.File(stem + ".seg", "w") as f:
                f.create_dataset("data", data=masks[:, :, s:s + 1])
    os.makedirs(os.path.join(root, "3d"))
    for v in range(VOLUMES):
        with h5py.File(os.path.join(root, "3d", "%07d_V00.h5" % (100 + v)), "w") as f:
            f.create_dataset("volume", data=phantom(rng, (SIDE, SIDE, DEPTH)))
            f.create_dataset("seg", data=one_hot(blob_labels(rng, DEPTH)))
    with open(os.path.join(root, "medsegd.yaml"), "w") as f:
        f.write("server:\n  cache_bytes: 0\n  max_batch_items: 64\nfamilies:\n  bench:\n    categories:\n")
        for i, c in enumerate(CATEGORIES):
            f.write("      - {id: %s, name: c%d}\n" % (json.dumps(list(c)) if isinstance(c, tuple) else c, i))
        f.write("    datasets:\n      slices: {format: slices-2d, scan_root: 2d}\n      volumes: {format: volumes-3d, scan_root: 3d}\n")
    os.chmod(root, 0o755)  # nginx's workers run as nobody
    print("wrote the dataset in %.0f s" % (time.time() - started), file=sys.stderr)


def slice_stems(root):
    return sorted(f[:-3] for f in os.listdir(os.path.join(root, "2d")) if f.endswith(".im"))


def scan_ids(root):
    return [f[:-3] for f in sorted(os.listdir(os.path.join(root, "3d")))]


# ---------------------------------------------------------------- decoding (no client library)

def u16(view, at):
    return int.from_bytes(view[at:at + 2], "little")


def u32(view, at):
    return int.from_bytes(view[at:at + 4], "little")


@functools.lru_cache(maxsize=64)
def npy_header(text):
    header = ast.literal_eval(text.decode("latin1"))
    if header["fortran_order"]:
        raise ValueError("Fortran-order .npy")
    return np.dtype(header["descr"]), tuple(header["shape"])


def npy_array(buffer):
    """A .npy body as a numpy view of `buffer` (no copy)."""
    view = memoryview(buffer)
    if bytes(view[:6]) != b"\x93NUMPY":
        raise ValueError("not a .npy body")
    length, start = (u16(view, 8), 10) if view[6] == 1 else (u32(view, 8), 12)
    dtype, shape = npy_header(bytes(view[start:start + length]))
    return np.frombuffer(view, dtype, int(np.prod(shape)), start + length).reshape(shape)


def npz_arrays(view):
    """The members of a .npz found through its central directory: stored members are views of
    `view`, deflated ones (method 8) are inflated. Local headers may carry no sizes (data
    descriptors), so the central directory's are used. Archives here are far below ZIP64 sizes."""
    end = len(view) - 22
    if u32(view, end) != 0x06054B50:
        raise ValueError("no ZIP end record where expected")
    count, entry = u16(view, end + 10), u32(view, end + 16)
    if entry == 0xFFFFFFFF:
        raise ValueError("ZIP64 archive: not expected at these sizes")
    arrays = {}
    for _ in range(count):
        method, size, local = u16(view, entry + 10), u32(view, entry + 20), u32(view, entry + 42)
        name_length = u16(view, entry + 28)
        name = bytes(view[entry + 46:entry + 46 + name_length]).decode()
        data = local + 30 + u16(view, local + 26) + u16(view, local + 28)
        member = view[data:data + size]
        arrays[name[:-len(".npy")]] = npy_array(zlib.decompress(member, -15) if method == 8 else member)
        entry += 46 + name_length + u16(view, entry + 30) + u16(view, entry + 32)
    return arrays


def h5_array(view):
    """The `data` dataset of an HDF5 file held in memory, read as MedSegPy reads its files."""
    with h5py.File(io.BytesIO(view), "r") as f:
        return f["data"][:]


# ---------------------------------------------------------------- HTTP

class Connection:
    """Keep-alive HTTP; each body is read into a reused buffer per slot (a patch's image and mask
    need two), with or without Content-Length (large compressed batches come chunked)."""

    def __init__(self, host, port):
        self.http = http.client.HTTPConnection(host, port, timeout=120)
        self.buffers = [bytearray(8 << 20), bytearray(8 << 20)]

    def request(self, method, path, body=None, slot=0):
        headers = {"Content-Type": "application/json"} if body else {}
        self.http.request(method, path, body=body, headers=headers)
        reply = self.http.getresponse()
        if reply.status != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, reply.status, reply.read()[:300]))
        length = reply.getheader("Content-Length")
        got = self.read_exactly(reply, int(length), slot) if length is not None else self.read_to_end(reply, slot)
        return memoryview(self.buffers[slot])[:got]

    def read_exactly(self, reply, length, slot):
        if length > len(self.buffers[slot]):
            self.buffers[slot] = bytearray(length)
        view, got = memoryview(self.buffers[slot]), 0
        while got < length:
            n = reply.readinto(view[got:length])
            if not n:
                raise RuntimeError("short body")
            got += n
        return got

    def read_to_end(self, reply, slot):
        got = 0
        while True:
            if got == len(self.buffers[slot]):
                grown = bytearray(2 * got)
                grown[:got] = self.buffers[slot]
                self.buffers[slot] = grown
            n = reply.readinto(memoryview(self.buffers[slot])[got:])
            if not n:
                return got
            got += n


def option_query(options):
    return "".join("&%s=%s" % item for item in options.items())


def nginx_item(connection, stem):
    image = h5_array(connection.request("GET", "/2d/%s.im" % stem))
    mask = collect_mask(h5_array(connection.request("GET", "/2d/%s.seg" % stem)), CATEGORIES)
    return image, mask


def medsegd_item(connection, index, options):
    arrays = npz_arrays(connection.request("GET", "/v1/datasets/slices/items/%d?categories=%s%s" % (index, CATEGORIES_JSON, option_query(options))))
    return arrays["image"], arrays["mask"]


def medsegd_batch(connection, indices, options):
    body = dict(indices=indices, categories=[list(c) if isinstance(c, tuple) else c for c in CATEGORIES], **options)
    arrays = npz_arrays(connection.request("POST", "/v1/datasets/slices/batch", json.dumps(body)))
    return arrays["image"], arrays["mask"]


def medsegd_patch(connection, scan, corner, options):
    """Two requests (npy routes; no compression there): the image region and the mask region."""
    region = ",".join("%d:%d" % (a, a + n) for a, n in zip(corner, PATCH))
    image_query = "&dtype=%s" % options["dtype"] if "dtype" in options else ""
    mask_query = "&mask_format=%s" % options["mask_format"] if "mask_format" in options else ""
    image = npy_array(connection.request("GET", "/v1/datasets/volumes/scans/%s/image?region=%s%s" % (scan, region, image_query), slot=0))
    mask = npy_array(connection.request("GET", "/v1/datasets/volumes/scans/%s/mask?region=%s&categories=%s%s" % (scan, region, CATEGORIES_JSON, mask_query), slot=1))
    return image, mask


def random_fetch(workload, config, connection, rng, stems, scans):
    """One random fetch of `workload` with `config`; the number of items it brought."""
    options = WIRE_OPTIONS[config]
    if workload == "items" and options is None:
        nginx_item(connection, stems[int(rng.integers(ITEMS))])
        return 1
    if workload == "items":
        medsegd_item(connection, int(rng.integers(ITEMS)), options)
        return 1
    if workload == "batch32":
        medsegd_batch(connection, [int(i) for i in rng.choice(ITEMS, 32, replace=False)], options)
        return 32
    corner = [int(rng.integers(n - p + 1)) for n, p in zip((SIDE, SIDE, DEPTH), PATCH)]
    medsegd_patch(connection, scans[int(rng.integers(len(scans)))], corner, options)
    return 1


# ---------------------------------------------------------------- trainer processes

def worker(workload, config, address, stems, scans, seconds, seed, ready, start, results):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        connection, rng = Connection(*address), np.random.default_rng(seed)
        random_fetch(workload, config, connection, rng, stems, scans)  # connect, size the buffers
        ready.wait()
        start.wait()
        items, latencies = 0, []
        cpu0 = os.times()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            items += random_fetch(workload, config, connection, rng, stems, scans)
            latencies.append(time.perf_counter() - started)
        cpu1 = os.times()
        results.put((items, latencies, (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)))
    except Exception as error:  # noqa: BLE001 - reported by the parent
        results.put(("%s: %s" % (type(error).__name__, error),))
        ready.abort()


def tree_cpu(pid):
    """CPU seconds of `pid` and its children (nginx's workers, medsegd's vetting child)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def wait_until_idle(pid, timeout=300):
    """Waits until the server's background work is over (medsegd fingerprints new datasets after
    it starts), so that no row pays for it."""
    deadline, before = time.time() + timeout, tree_cpu(pid)
    while time.time() < deadline:
        time.sleep(1)
        now = tree_cpu(pid)
        if now - before < 0.02:
            return
        before = now
    print("medsegd was still busy after %d s; measuring anyway" % timeout, file=sys.stderr)


def measure(workload, config, trainers, seconds, link, server, stems, scans, live):
    """One row: `trainers` processes fetching for `seconds` at once."""
    ready, start, results = mp.Barrier(trainers + 1), mp.Event(), mp.Queue()
    address = (link.server_address, NGINX_PORT if WIRE_OPTIONS[config] is None else MEDSEGD_PORT)
    seed = zlib.crc32(("%s %s %d" % (workload, config, trainers)).encode())
    processes = [mp.Process(target=worker, args=(workload, config, address, stems, scans, seconds, seed + i, ready, start, results))
                 for i in range(trainers)]
    live.extend(processes)
    for p in processes:
        p.start()
    try:
        ready.wait(timeout=120)
    except threading.BrokenBarrierError:
        raise RuntimeError("%s / %s: %s" % (workload, config, results.get(timeout=10)[0])) from None
    wire0, cpu0 = link.received_bytes(), tree_cpu(server.pid)
    started = time.perf_counter()
    start.set()
    collected = [results.get(timeout=seconds + 300) for _ in processes]
    elapsed = time.perf_counter() - started
    wire, server_seconds = link.received_bytes() - wire0, tree_cpu(server.pid) - cpu0
    for p in processes:
        p.join()
        live.remove(p)
    errors = [c[0] for c in collected if len(c) == 1]
    if errors:
        raise RuntimeError("%s / %s: %s" % (workload, config, errors[0]))
    items = sum(c[0] for c in collected)
    latencies = sorted(l for c in collected for l in c[1])
    return {
        "items_s": items / elapsed,
        "wire_mb_s": wire / elapsed / 1e6,
        "wire_kb_item": wire / items / 1e3,
        "trainer_ms": sum(c[2] for c in collected) * 1000 / items,
        "server_ms": server_seconds * 1000 / items,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


# ---------------------------------------------------------------- namespace, link, servers

def sh(*command):
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def rate_bits(rate):
    """tc's rate syntax (`1gbit`, `500mbit`, `10gbit`) in bit/s."""
    for suffix, scale in [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1)]:
        if rate.endswith(suffix):
            return float(rate[:-len(suffix)]) * scale
    raise ValueError("rate %r: use tc's bit units, e.g. 1gbit" % rate)


class Link:
    """A namespace for the servers and a veth pair to it; the server side's egress goes through tbf."""

    def __init__(self):
        tag = os.getpid()
        self.namespace = "medsegd-bench-%d" % tag
        self.client_veth, self.server_veth = "msb%da" % tag, "msb%db" % tag
        self.subnet = "10.231.%d." % (tag % 256)
        self.client_address, self.server_address = self.subnet + "1", self.subnet + "2"
        self.rate = self.burst = None

    def create(self):
        if self.subnet in subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout:
            raise RuntimeError("%s0/30 is already in use on this machine" % self.subnet)
        sh("ip", "netns", "add", self.namespace)
        sh("ip", "link", "add", self.client_veth, "type", "veth", "peer", "name", self.server_veth)
        sh("ip", "link", "set", self.server_veth, "netns", self.namespace)
        sh("ip", "addr", "add", self.client_address + "/30", "dev", self.client_veth)
        sh("ip", "link", "set", self.client_veth, "up")
        self.inside("ip", "addr", "add", self.server_address + "/30", "dev", self.server_veth)
        self.inside("ip", "link", "set", self.server_veth, "up")
        self.inside("ip", "link", "set", "lo", "up")

    def inside(self, *command):
        sh("ip", "netns", "exec", self.namespace, *command)

    def shape(self, rate):
        """tbf at `rate` on what the servers send; its bucket holds at least one timer tick's worth."""
        burst = max(256 << 10, int(rate_bits(rate) / 8 / 250))
        self.inside("tc", "qdisc", "replace", "dev", self.server_veth, "root", "tbf", "rate", rate, "burst", str(burst), "latency", "50ms")
        self.rate, self.burst = rate, burst

    def received_bytes(self):
        with open("/sys/class/net/%s/statistics/rx_bytes" % self.client_veth) as f:
            return int(f.read())

    def connect_rtt_ms(self, port, tries=21):
        times = []
        for _ in range(tries):
            started = time.perf_counter()
            socket.create_connection((self.server_address, port), timeout=5).close()
            times.append(time.perf_counter() - started)
        return sorted(times)[tries // 2] * 1000

    def remove(self):
        subprocess.run(["ip", "link", "del", self.client_veth], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.namespace], stderr=subprocess.DEVNULL)


NGINX_CONF = """
worker_processes 2;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {root}/nginx-temp/body;
    proxy_temp_path {root}/nginx-temp/proxy;
    fastcgi_temp_path {root}/nginx-temp/fastcgi;
    uwsgi_temp_path {root}/nginx-temp/uwsgi;
    scgi_temp_path {root}/nginx-temp/scgi;
    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""


class Servers:
    """medsegd (the release binary) and nginx, both started inside the link's namespace."""

    def __init__(self, root, link):
        self.root, self.link, self.processes = root, link, []
        self.medsegd = self.nginx = self.log = None

    def start_all(self, binary):
        root, link = self.root, self.link
        self.log = open(os.path.join(root, "servers.log"), "a")
        self.medsegd = self.start([binary, "serve", "--config", os.path.join(root, "medsegd.yaml"), "--host", link.server_address,
                                   "--port", str(MEDSEGD_PORT), "--log-level", "warning"], MEDSEGD_PORT, "/readyz")
        os.makedirs(os.path.join(root, "nginx-temp"), exist_ok=True)
        with open(os.path.join(root, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(root=root, host=link.server_address, port=NGINX_PORT))
        self.nginx = self.start(["/usr/sbin/nginx", "-p", root, "-c", os.path.join(root, "nginx.conf")], NGINX_PORT, "/2d/")

    def start(self, command, port, probe):
        # `ip netns exec` execs the command: the process we get is the server itself.
        process = subprocess.Popen(["ip", "netns", "exec", self.link.namespace] + command, stdout=self.log, stderr=self.log, start_new_session=True)
        self.processes.append(process)
        deadline = time.time() + 60
        while time.time() < deadline and process.poll() is None:
            try:
                c = http.client.HTTPConnection(self.link.server_address, port, timeout=2)
                c.request("GET", probe)
                if c.getresponse().status in (200, 403, 404):
                    return process
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("%s did not come up (see %s)" % (command[0], self.log.name))

    def stop(self):
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            try:
                os.killpg(process.pid, signal.SIGKILL)  # what is left of its group (workers, children)
            except ProcessLookupError:
                pass
        if self.log:
            self.log.close()


def server_knows_wire_options(address):
    c = http.client.HTTPConnection(address, MEDSEGD_PORT, timeout=30)
    c.request("GET", "/v1/datasets/slices/items/0/mask?categories=%s&mask_format=labels" % CATEGORIES_JSON)
    reply = c.getresponse()
    reply.read()
    return reply.status == 200


# ---------------------------------------------------------------- checks before measuring

def as_labels(one_hot_mask):
    return (one_hot_mask * np.arange(1, one_hot_mask.shape[-1] + 1, dtype=np.uint8)).sum(-1, dtype=np.uint8)


def expect(config, image, mask, want_image, want_mask):
    options = WIRE_OPTIONS[config] or {}
    want_image = want_image.astype(options.get("dtype", want_image.dtype))
    want_mask = want_mask.astype(np.uint8)  # medsegd keeps the stored dtype; numpy's sum widens it
    want_mask = as_labels(want_mask) if options.get("mask_format") == "labels" else want_mask
    if image.dtype != want_image.dtype or not np.array_equal(image, want_image) or mask.dtype != want_mask.dtype or not np.array_equal(mask, want_mask):
        raise RuntimeError("%s: the decoded arrays differ from the files' (%s %s, %s %s)" % (config, image.dtype, image.shape, mask.dtype, mask.shape))


def warm_and_check(root, address, configs, stems, scans):
    """Reads every file once through medsegd (its vetting child opens each file version once,
    outside the measurements) and checks each configuration's arrays against the files."""
    medsegd, nginx = Connection(address, MEDSEGD_PORT), Connection(address, NGINX_PORT)
    for index in range(ITEMS):
        medsegd_item(medsegd, index, {})
    index = ITEMS // 2 + SLICES // 2
    image, mask = nginx_item(nginx, stems[index])
    if not mask.any() or mask.sum(-1).max() > 1:
        raise RuntimeError("the check item's mask is empty or has overlapping classes")
    for config in configs:
        if WIRE_OPTIONS[config] is not None:
            expect(config, *medsegd_item(medsegd, index, WIRE_OPTIONS[config]), image, mask)
            got_image, got_mask = medsegd_batch(medsegd, [index, index], WIRE_OPTIONS[config])
            expect(config, got_image[1], got_mask[1], image, mask)
    corner = (160, 150, DEPTH // 2 - PATCH[2] // 2)
    for scan in scans:
        with h5py.File(os.path.join(root, "3d", scan + ".h5"), "r") as f:
            box = tuple(slice(a, a + n) for a, n in zip(corner, PATCH))
            want_image, want_mask = f["volume"][box], collect_mask(f["seg"][box], CATEGORIES)
        for config in configs:
            if WIRE_OPTIONS[config] is not None:
                image, mask = medsegd_patch(medsegd, scan, corner, WIRE_OPTIONS[config])
                expect(config, image, mask, want_image, want_mask)


def link_goodput_gbit(link, root, scans):
    """What one HTTP transfer from nginx achieves at the current rate (about half a second's worth)."""
    path = "/3d/%s.h5" % scans[0]
    size = min(os.path.getsize(os.path.join(root, path[1:])), int(rate_bits(link.rate) / 8 / 2))
    connection = http.client.HTTPConnection(link.server_address, NGINX_PORT, timeout=60)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Range": "bytes=0-%d" % (size - 1)})
    reply = connection.getresponse()
    buffer, got = bytearray(1 << 20), 0
    while True:
        n = reply.readinto(buffer)
        if not n:
            break
        got += n
    return got * 8 / (time.perf_counter() - started) / 1e9


# ---------------------------------------------------------------- report

def machine():
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) / (1 << 20)
    return "%d cores (%s), %.0f GiB, Linux %s" % (os.cpu_count(), model, memory, os.uname().release)


def print_report(rows, links, rtt_ms, trainers_list, skipped, seconds, build):
    print("## medsegd over an emulated link, %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    print()
    print("- machine: %s; client, servers and kernel share these cores" % machine())
    print("- medsegd: %s" % build)
    print("- link: veth pair into a network namespace, the server side's egress shaped with tc tbf: %s" % "; ".join(
        "%s (burst %d KiB; one nginx transfer reached %.2f Gbit/s)" % (rate, burst >> 10, gbit) for rate, burst, gbit in links))
    print("- round trip: %.3f ms (median TCP connect across the veth). Not emulated: this kernel has no sch_netem, so the issue's"
          " ~0.2 ms round trip is not applied; latency-bound rows (1 trainer) would be slower over a real link" % rtt_ms)
    print("- medsegd's response cache off (cache_bytes: 0): every item read from its files (page cache), the cold path;"
          " rows start once medsegd is idle after its start (dataset fingerprints); nginx with sendfile, 2 workers; %g s per row" % seconds)
    print("- wire = bytes the server side sent (veth counter, Ethernet frames); trainer CPU = the client processes' CPU incl."
          " HTTP, inflate, npy/h5py decoding and (nginx) collation; latency per item, batch or patch fetch (nginx items and patches: both requests)")
    if skipped:
        print("- this medsegd binary does not know mask_format/compression: rows %s skipped" % ", ".join(skipped))
    print()
    print("| link | workload | configuration | trainers | items/s | wire MB/s | wire KB/item | trainer CPU ms/item | server CPU ms/item | p50 ms | p99 ms | vs plain npz | vs nginx |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (rate, workload, config, trainers), r in rows.items():
        plain = rows.get((rate, workload, "plain npz", trainers))
        nginx = rows.get((rate, workload, "nginx-static", trainers))
        print("| %s | %s | %s | %d | %.0f | %.0f | %.1f | %.2f | %.2f | %.2f | %.2f | %s | %s |" % (
            rate, workload, config, trainers, r["items_s"], r["wire_mb_s"], r["wire_kb_item"], r["trainer_ms"], r["server_ms"],
            r["p50_ms"], r["p99_ms"], "%.2fx" % (r["items_s"] / plain["items_s"]) if plain else "—",
            "%.2fx" % (r["items_s"] / nginx["items_s"]) if nginx else "—"))
    print()
    print("Targets (random items):")
    print()
    for rate, config, against, at_least in TARGETS:
        for trainers in trainers_list:
            mine, theirs = rows.get((rate, "items", config, trainers)), rows.get((rate, "items", against, trainers))
            if not (mine and theirs):
                print("- %s, %d trainer(s): %s / %s (target >= %gx): not measured" % (rate, trainers, config, against, at_least))
                continue
            ratio = mine["items_s"] / theirs["items_s"]
            print("- %s, %d trainer(s): %s / %s = %.2fx (target >= %gx) %s" % (
                rate, trainers, config, against, ratio, at_least, "PASS" if ratio >= at_least else "MISS"))
    for (rate, workload, config, trainers), r in rows.items():
        if workload == "items" and config == "remote preset":
            print("- %s, %d trainer(s): trainer CPU with the remote preset %.2f ms/item (target <= %g) %s" % (
                rate, trainers, r["trainer_ms"], TRAINER_CPU_TARGET_MS, "PASS" if r["trainer_ms"] <= TRAINER_CPU_TARGET_MS else "MISS"))


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "medsegd"), help="medsegd binary (default: the release build)")
    parser.add_argument("--rates", default="1gbit,10gbit", help="tc rates of the link, e.g. 1gbit,10gbit")
    parser.add_argument("--trainers", default="1,4", help="trainer process counts, e.g. 1,4")
    parser.add_argument("--seconds", type=float, default=6, help="seconds per row")
    parser.add_argument("--quick", action="store_true", help="2 s per row")
    parser.add_argument("--data", help="write the dataset here, or reuse one an earlier run wrote (kept)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/network.py needs root: it creates a network namespace, a veth pair and a tc qdisc")
    for tool in ["ip", "tc"]:
        if not shutil.which(tool):
            sys.exit("bench/network.py needs `%s` (iproute2)" % tool)
    if not os.access(args.binary, os.X_OK):
        sys.exit("no medsegd binary at %s (build it with `swift build -c release`, or pass --binary)" % args.binary)
    seconds = 2 if args.quick else args.seconds
    binary = os.path.abspath(args.binary)
    build = "%s, built %s" % (binary, datetime.datetime.fromtimestamp(os.path.getmtime(binary)).strftime("%Y-%m-%d %H:%M:%S"))
    rates, trainers_list = args.rates.split(","), [int(t) for t in args.trainers.split(",")]
    root = os.path.abspath(args.data) if args.data else tempfile.mkdtemp(prefix="medsegd-network-")
    for stop in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell's `&` starts us with it ignored
        signal.signal(stop, lambda number, _: sys.exit(128 + number))
    link = Link()
    servers = Servers(root, link)
    live = []  # trainer processes running
    rows, links = {}, []
    try:
        if not os.path.exists(os.path.join(root, "medsegd.yaml")):
            os.makedirs(root, exist_ok=True)
            write_data(root)
        stems, scans = slice_stems(root), scan_ids(root)
        link.create()
        servers.start_all(binary)
        known = server_knows_wire_options(link.server_address)
        configs = [c for c in WIRE_OPTIONS if known or not NEW_OPTIONS & set(WIRE_OPTIONS[c] or {})]
        skipped = [c for c in WIRE_OPTIONS if c not in configs]
        warm_and_check(root, link.server_address, configs, stems, scans)
        wait_until_idle(servers.medsegd.pid)
        rtt_ms = link.connect_rtt_ms(MEDSEGD_PORT)
        for rate in rates:
            link.shape(rate)
            links.append((rate, link.burst, link_goodput_gbit(link, root, scans)))
            for trainers in trainers_list:
                for workload, config in ROWS:
                    if config not in configs:
                        continue
                    server = servers.nginx if WIRE_OPTIONS[config] is None else servers.medsegd
                    rows[(rate, workload, config, trainers)] = r = measure(workload, config, trainers, seconds, link, server, stems, scans, live)
                    print("%s %s %s x%d: %.0f items/s, %.1f KB/item, trainer %.2f ms, server %.2f ms" % (
                        rate, workload, config, trainers, r["items_s"], r["wire_kb_item"], r["trainer_ms"], r["server_ms"]), file=sys.stderr)
    finally:
        for p in live:
            p.terminate()
            p.join()
        servers.stop()
        link.remove()
        if not args.data:
            shutil.rmtree(root, ignore_errors=True)
    print_report(rows, links, rtt_ms, trainers_list, skipped, seconds, build)


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
