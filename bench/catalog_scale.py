#!/usr/bin/env python3
"""Catalog scale: how fast medsegd registers a large slices-2d folder and streams its dicts.

Creates N slice names (`%07d_V%02d-Aug%02d_%03d.im` and `.seg`, 160 slices a scan) in a temporary
folder, serves it with the release build on 127.0.0.1, and prints the load time (from the
server's own log), the time until /readyz answers 200, the server's RSS, and the /dicts
streaming rate. The files are empty: registering a slices-2d folder reads names only, never file
contents, so their size does not matter here. Everything it starts is stopped; the folder is removed.

    python3 bench/catalog_scale.py --slices 100000
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def release_binary():
    subprocess.run(["swift", "build", "-c", "release", "--product", "medsegd"], cwd=ROOT, check=True)
    path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "medsegd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_folder(folder, slices):
    per_scan = 160
    for index in range(slices):
        subject, slice_id = divmod(index, per_scan)
        stem = "%07d_V%02d-Aug%02d_%03d" % (subject + 1, 0, 0, slice_id + 1)
        for ext in (".im", ".seg"):
            os.close(os.open(os.path.join(folder, stem + ext), os.O_CREAT | os.O_WRONLY, 0o644))


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=100_000)
    parser.add_argument("--binary", help="medsegd binary (default: build the release one)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for /readyz")
    args = parser.parse_args()

    binary = args.binary or release_binary()
    work = tempfile.mkdtemp(prefix="medsegd-scale-")
    server = None
    try:
        folder = os.path.join(work, "train")
        os.mkdir(folder)
        started = time.time()
        make_folder(folder, args.slices)
        print("created %d slice names (x2 files) in %.1f s" % (args.slices, time.time() - started))
        config = os.path.join(work, "medsegd.yaml")
        with open(config, "w") as f:
            f.write("families:\n  scale:\n    categories: [{id: 0, name: a}, {id: [1, 2], name: b}]\n"
                    "    datasets:\n      scale_2d: {format: slices-2d, scan_root: train}\n")
        # Drop the folder's pages from the equation as far as a user can: list it once (warm dentry cache).
        os.listdir(folder)

        port = free_port()
        log_path = os.path.join(work, "server.log")
        log = open(log_path, "w")
        launched = time.time()
        server = subprocess.Popen([binary, "serve", "--config", config, "--port", str(port)], stdout=log, stderr=log)
        base = "http://127.0.0.1:%d" % port
        ready_after = None
        while time.time() - launched < args.timeout:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as reply:
                    if reply.status == 200:
                        ready_after = time.time() - launched
                        break
            except Exception:
                time.sleep(0.02)
        if ready_after is None:
            sys.exit("server not ready after %.0f s; log: %s" % (args.timeout, open(log_path).read()))
        rss_loaded, peak_loaded = rss_mib(server.pid)
        load_seconds = float(re.search(r"seconds=([0-9.]+)", open(log_path).read()).group(1))

        started = time.time()
        received = 0
        with urllib.request.urlopen(base + "/v1/datasets/scale_2d/dicts", timeout=600) as reply:
            while True:
                chunk = reply.read(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
        stream_seconds = time.time() - started
        rss_after, peak_after = rss_mib(server.pid)
        with urllib.request.urlopen(base + "/v1/datasets/scale_2d/dicts?offset=%d" % (args.slices - 1)) as reply:
            last = json.loads(reply.read())
        assert len(last) == 1 and last[0]["scan_num_slices"] == 160, last

        print()
        print("| slices | load (server log) | process start to /readyz | RSS loaded | RSS peak | /dicts stream | dicts/s |")
        print("|---|---|---|---|---|---|---|")
        print("| %d | %.2f s | %.2f s | %.0f MiB | %.0f MiB | %.2f s (%.0f MB) | %.0f |" % (
            args.slices, load_seconds, ready_after, rss_loaded, max(peak_loaded, peak_after), stream_seconds,
            received / 1e6, args.slices / stream_seconds))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
