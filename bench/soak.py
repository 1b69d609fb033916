#!/usr/bin/env python3
"""Soak: many keep-alive connections for a fixed time against a release medsegd on 127.0.0.1.

Writes 400 slices (256x256 float32, 256x256x1x6 uint8 masks) so that the responses (~250 MB)
outgrow the tensor cache (64 MiB: it fills and evicts), then runs CONNECTIONS threads for
SECONDS with a mix of requests (item archives, raw images, collated masks, dicts, batches of 8).
Reports requests/s, errors, and the server's RSS after warm-up and at the end; every
--sample-seconds it also prints a line with the RSS, malloc's heap in use and free (from
/metrics) and the cache's bytes, which tells a leak (in use grows) from fragmentation (free
grows). Stops everything it started; removes its data.

    .build/venv/bin/python bench/soak.py --connections 64 --seconds 120
    .build/venv/bin/python bench/soak.py --connections 64 --seconds 3600 --sample-seconds 60   # the hour
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITEMS = 400


def write_data(root, server_config=""):
    folder = os.path.join(root, "2d")
    os.makedirs(folder)
    rng = np.random.default_rng(5)
    for i in range(ITEMS):
        stem = os.path.join(folder, "%07d_V00-Aug00_%03d" % (i // 100 + 1, i % 100 + 1))
        with h5py.File(stem + ".im", "w") as f:
            f["data"] = rng.standard_normal((256, 256, 1)).astype(np.float32)
        with h5py.File(stem + ".seg", "w") as f:
            f["data"] = (rng.random((256, 256, 1, 6)) > 0.8).astype(np.uint8)
    with open(os.path.join(root, "medsegd.yaml"), "w") as f:
        f.write("server: {cache_bytes: 64MiB, access_log: false%s}\nfamilies:\n  soak:\n"
                "    categories: [{id: 0, name: a}, {id: [1, 2], name: b}, {id: 3, name: c}, {id: [4, 5], name: d}]\n"
                "    datasets:\n      soak: {format: slices-2d, scan_root: 2d}\n" % (", " + server_config if server_config else ""))


def rss_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024


def scrape(port):
    """The medsegd_* figures of /metrics, by series (name with labels)."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("medsegd_") and " " in line}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--binary", help="medsegd binary (default: the release build)")
    parser.add_argument("--sample-seconds", type=float, default=0, help="print memory figures this often (0: only the summary)")
    parser.add_argument("--server-config", default="", help="extra server keys, e.g. 'heap_trim_interval: 0'")
    args = parser.parse_args()
    binary = args.binary
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "medsegd"], cwd=ROOT, check=True)
        binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                                             capture_output=True, text=True).stdout.strip(), "medsegd")
    root = tempfile.mkdtemp(prefix="medsegd-soak-")
    server = None
    try:
        write_data(root, args.server_config)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([binary, "serve", "--config", os.path.join(root, "medsegd.yaml"), "--port", str(port),
                                   "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "log"), "w"))
        while True:
            try:
                if urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        counts = {"ok": 0, "errors": 0}
        errors = []
        lock = threading.Lock()
        stop = threading.Event()
        routes = [(0.5, lambda r: ("GET", "/v1/datasets/soak/items/%d" % r.randrange(ITEMS), None)),
                  (0.2, lambda r: ("GET", "/v1/datasets/soak/items/%d/image?format=raw" % r.randrange(ITEMS), None)),
                  (0.15, lambda r: ("GET", "/v1/datasets/soak/items/%d/mask?background=first" % r.randrange(ITEMS), None)),
                  (0.1, lambda r: ("GET", "/v1/datasets/soak/dicts?limit=50&offset=%d" % r.randrange(ITEMS), None)),
                  (0.05, lambda r: ("POST", "/v1/datasets/soak/batch", json.dumps({"indices": r.sample(range(ITEMS), 8)})))]

        def worker(seed):
            rng = random.Random(seed)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while not stop.is_set():
                pick, total = rng.random(), 0
                for weight, make in routes:
                    total += weight
                    if pick <= total:
                        method, path, body = make(rng)
                        break
                try:
                    connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
                    reply = connection.getresponse()
                    reply.read()
                    ok = reply.status == 200
                except (OSError, http.client.HTTPException) as error:
                    ok = False
                    errors.append(repr(error))
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    counts["ok" if ok else "errors"] += 1

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.connections)]
        for thread in threads:
            thread.start()
        time.sleep(args.warmup)
        rss_start = rss_mib(server.pid)
        with lock:
            start_counts = dict(counts)
        started = time.time()
        samples = []
        next_report = started
        if args.sample_seconds:
            print("| minute | requests/s | RSS MiB | heap in use MiB | heap free MiB | cache MiB |", flush=True)
            print("|---|---|---|---|---|---|", flush=True)
        last_count, last_time = start_counts["ok"], started
        while time.time() - started < args.seconds:
            time.sleep(min(5, max(0.1, args.seconds - (time.time() - started))))
            samples.append(rss_mib(server.pid))
            if args.sample_seconds and time.time() >= next_report + args.sample_seconds:
                next_report += args.sample_seconds
                figures = scrape(port)
                with lock:
                    count = counts["ok"]
                now = time.time()
                print("| %.1f | %.0f | %.0f | %.0f | %.0f | %.0f |" % (
                    (now - started) / 60, (count - last_count) / (now - last_time), samples[-1],
                    figures.get('medsegd_heap_bytes{state="in_use"}', 0) / 2**20, figures.get('medsegd_heap_bytes{state="free"}', 0) / 2**20,
                    figures.get("medsegd_cache_bytes", 0) / 2**20), flush=True)
                last_count, last_time = count, now
        elapsed = time.time() - started
        with lock:
            done = counts["ok"] - start_counts["ok"]
            failed = counts["errors"]
        rss_end = rss_mib(server.pid)
        cache = scrape(port)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        print("| connections | seconds | requests/s | errors | RSS after warm-up | RSS at end | growth | RSS max | cache bytes / budget | evictions |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        print("| %d | %.0f | %.0f | %d | %.0f MiB | %.0f MiB | %+.1f%% | %.0f MiB | %.0f / %.0f MiB | %d |" % (
            args.connections, elapsed, done / elapsed, failed, rss_start, rss_end, (rss_end - rss_start) / rss_start * 100,
            max(samples + [rss_end]), cache.get("medsegd_cache_bytes", 0) / 2**20, cache.get("medsegd_cache_budget_bytes", 0) / 2**20,
            cache.get("medsegd_cache_evictions_total", 0)))
        if errors:
            print("first errors:", errors[:3], file=sys.stderr)
        return 1 if failed else 0
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
