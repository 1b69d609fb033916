"""What a newcomer reads (issue 24): every message says what was wrong and what to do, and every
JSON body has one style. A real medsegd over the demo dataset, on 127.0.0.1."""
import json
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import medsegd_binary
from medsegd_process import MedsegdProcess


@pytest.fixture(scope="module")
def demo():
    root = tempfile.mkdtemp(prefix="medsegd-newcomer-")
    subprocess.run([medsegd_binary(), "demo", root], check=True, capture_output=True, timeout=120)
    config = os.path.join(root, "medsegd.yaml")
    server = MedsegdProcess(config)  # started, and ready
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_busy_port_names_the_address_and_what_to_do(demo):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        run = subprocess.run([medsegd_binary(), "serve", "--config", demo.config, "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert run.returncode == 1, run
    assert "cannot listen on 127.0.0.1:%d" % port in run.stderr and "already in use" in run.stderr, run.stderr
    assert "--port" in run.stderr and "errno" not in run.stderr, run.stderr


def test_a_body_over_the_limit_names_max_body_bytes(demo):
    body = json.dumps({"indices": [0]}).encode() + b" " * (2 << 20)  # past the default 1 MiB
    reply = demo.exchange("POST", "/v1/datasets/demo_2d_train/batch", body=body)
    assert reply.status == 413 and "max_body_bytes" in reply.message and "MiB" in reply.message, reply


def test_whole_numbers_state_their_rule(demo):
    reply = demo.exchange("GET", "/v1/datasets/demo_2d_train/dicts?limit=99999999999999999999")
    assert reply.status == 400 and "19 digits" in reply.message and "9223372036854775807" in reply.message, reply


def test_one_json_style_and_a_final_newline(demo):
    for path in ["/healthz", "/v1/datasets", "/v1/datasets/demo_2d_train/metadata", "/v1/datasets/demo_2d_train/dicts?limit=1",
                 "/v1/datasets/nope"]:
        compact = demo.exchange("GET", path)
        assert compact.body.endswith(b"\n") and b"\n" not in compact.body[:-1], (path, compact.body[:200])
        pretty = demo.exchange("GET", path + ("&" if "?" in path else "?") + "pretty=1")
        assert pretty.body.endswith(b"\n") and b'" : ' not in pretty.body and b'": ' in pretty.body, (path, pretty.body[:200])
        assert json.loads(pretty.body) == json.loads(compact.body)
    # A route that refuses `pretty` answers its 400 compactly.
    refused = demo.exchange("GET", "/v1/datasets/demo_2d_train/items/0/image?pretty=1")
    assert refused.status == 400 and b"\n" not in refused.body[:-1], refused


def test_fingerprint_classes_are_category_ids(demo):
    demo.wait_fingerprints()
    metadata = json.loads(demo.exchange("GET", "/v1/datasets/demo_3d_test/metadata").body)
    fingerprint = json.loads(demo.exchange("GET", "/v1/datasets/demo_3d_test/fingerprint").body)
    assert fingerprint["classes"] == metadata["category_ids"], (fingerprint["classes"], metadata["category_ids"])


def test_reload_counters_exist_from_the_start(demo):
    text = demo.exchange("GET", "/metrics").body.decode()
    assert 'medsegd_reloads_total{result="ok"} 0' in text and 'medsegd_reloads_total{result="failed"} 0' in text, text[:2000]
