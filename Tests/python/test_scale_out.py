"""Scale-out behind an existing engine: three medsegd replicas behind nginx with consistent
hashing on the request URI, all on 127.0.0.1. Requests spread over the replicas, each URI sticks
to one replica, answers are right, and stopping a replica under load loses no request."""
import concurrent.futures
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from conftest import free_port, medsegd_binary

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream medsegd {{
        hash $request_uri consistent;
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://medsegd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
            proxy_next_upstream_tries 3;
            add_header X-Medsegd-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def wait_ready(url, process, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except Exception:
            if process.poll() is not None:
                raise RuntimeError("process exited early")
            time.sleep(0.05)
    raise RuntimeError("not ready: " + url)


def stop(process, sig=signal.SIGTERM):
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def cluster(tmp_path):
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/install-deps --tests installs it)")
    root = str(tmp_path)
    subprocess.run([medsegd_binary(), "demo", os.path.join(root, "demo")], check=True, stdout=subprocess.DEVNULL)
    config = os.path.join(root, "demo", "medsegd.yaml")
    replicas = []
    try:
        for index in range(3):
            port = free_port()
            log = open(os.path.join(root, "replica%d.log" % index), "w")
            process = subprocess.Popen([medsegd_binary(), "serve", "--config", config, "--port", str(port), "--log-level", "warning"],
                                       stdout=log, stderr=log)
            replicas.append((port, process))
        for port, process in replicas:
            wait_ready("http://127.0.0.1:%d/readyz" % port, process)
        port = free_port()
        for folder in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
            os.makedirs(os.path.join(root, folder))
        servers = "\n".join("        server 127.0.0.1:%d max_fails=1 fail_timeout=30s;" % p for p, _ in replicas)
        with open(os.path.join(root, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(root=root, servers=servers, port=port))
        nginx = subprocess.Popen([NGINX, "-p", root, "-c", os.path.join(root, "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "nginx.out"), "w"))
        try:
            wait_ready("http://127.0.0.1:%d/healthz" % port, nginx)
            yield "http://127.0.0.1:%d" % port, replicas
        finally:
            stop(nginx, signal.SIGQUIT)
    finally:
        for _, process in replicas:
            stop(process)


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.status, reply.headers.get("X-Medsegd-Upstream"), reply.read()


def test_requests_spread_and_stick(cluster):
    base, replicas = cluster
    direct = "http://127.0.0.1:%d" % replicas[0][0]
    seen = {}
    for item in range(40):
        path = "/v1/datasets/demo_2d_train/items/%d/mask" % item
        status, upstream, body = fetch(base + path)
        assert status == 200
        _, _, expected = fetch(direct + path)
        np.testing.assert_array_equal(np.load(__import__("io").BytesIO(body)), np.load(__import__("io").BytesIO(expected)))
        again = fetch(base + path)[1]
        assert again == upstream, "the same URI must reach the same replica"
        seen[upstream] = seen.get(upstream, 0) + 1
    assert len(seen) == 3, "40 items should reach all 3 replicas: %s" % seen
    assert max(seen.values()) < 40 * 0.8


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_a_replica_loses_no_request(cluster, how):
    base, replicas = cluster
    paths = ["/v1/datasets/demo_2d_train/items/%d/image" % (i % 40) for i in range(300)]
    victim_port, victim = replicas[1]
    results = []

    def one(index):
        if index == 100:
            victim.send_signal(how)
        return fetch(base + paths[index])

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(len(paths))))
    assert all(status == 200 for status, _, _ in results)
    assert all(len(body) == 128 + 64 * 64 * 4 for _, _, body in results)
    victim.wait(timeout=15)
    tail = [upstream for _, upstream, _ in results[150:]]
    assert not any(u.split(", ")[-1].endswith(":%d" % victim_port) for u in tail), "the stopped replica kept answering"
