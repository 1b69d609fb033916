"""Bad requests of every kind: a property-based run of the OpenAPI document (schemathesis), and
hand-written hostile input. Nothing may answer 5xx, leak a path or take the server down."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import urllib.parse

import pytest

from conftest import ROOT

VENV_BIN = os.path.dirname(__import__("sys").executable)


def raw(server, method, path, body=None, headers=None):
    """A request sent as given (no client-side normalization of the path)."""
    host, port = urllib.parse.urlsplit(server.base).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    reply = connection.getresponse()
    data = reply.read()
    connection.close()
    return reply.status, dict(reply.getheaders()), data


def assert_json_error(server, status, headers, body, expected_status):
    assert status == expected_status, body[:300]
    assert headers.get("Content-Type", "").startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] and error["message"]
    assert server.root not in body.decode("utf-8", "replace"), "a path leaked"


def test_openapi_document_is_served_as_kept(server):
    status, headers, body = server.get("/openapi.yaml")
    assert status == 200 and headers["Content-Type"].startswith("application/yaml")
    assert body == open(os.path.join(ROOT, "docs", "openapi.yaml"), "rb").read()


def test_schemathesis_finds_no_5xx_and_no_mismatch(server, tmp_path):
    schemathesis = shutil.which("schemathesis", path=VENV_BIN) or shutil.which("schemathesis")
    if schemathesis is None:
        pytest.skip("schemathesis is not installed (scripts/install-deps --tests installs it)")
    # Every check but two that do not fit a catalog server: `positive_data_acceptance` expects
    # any schema-valid name to exist, `ignored_auth` expects tokens (none configured here).
    result = subprocess.run(
        [schemathesis, "run", os.path.join(ROOT, "docs", "openapi.yaml"), "--url", server.base, "--checks", "all",
         "--exclude-checks", "positive_data_acceptance,ignored_auth", "--max-examples", "25", "--seed", "20261126",
         "--request-timeout", "30"],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    status, _, _ = server.get("/healthz")
    assert status == 200


@pytest.mark.parametrize("path,expected", [
    ("/v1/datasets/../../etc/passwd", 404),
    ("/v1/datasets/..%2F..%2Fetc%2Fpasswd/metadata", 404),
    ("/v1/datasets/%2e%2e/dicts", 404),
    ("/v1/datasets/oai_2d%00/metadata", 404),
    ("/v1/datasets/oai_2d/scans/..%2F..%2F3d%2F0000003_V00/image", 404),
    ("/v1/datasets/oai_2d/scans/0000001_V00%00/image", 404),
    ("/v1/datasets/oai_2d/items/99999999999999999999999999/image", 404),
    ("/v1/datasets/oai_2d/items/-1/image", 404),
    ("/v1/datasets/oai_2d/items/1e3/image", 400),
    ("/v1/datasets/oai_2d/items/0/image?region=0:999999999999999999:999999999999999999", 200),
    ("/v1/datasets/oai_2d/items/0/image?region=-999999999999999999:", 200),
    ("/v1/datasets/oai_2d/items/0/image?region=999999999999999999", 400),
    ("/v1/datasets/oai_2d/items/0/image?region=" + ",".join(["0"] * 300), 400),
    ("/v1/datasets/oai_2d/items/0/image?region=" + "1" * 900, 400),
    ("/v1/datasets/oai_2d/items/0/mask?categories=" + "[" * 500 + "]" * 500, 400),
    ("/v1/datasets/oai_2d/items/0/mask?categories=[99999999999999999999]", 400),
    ("/v1/datasets/oai_2d/items/0/mask?categories=[-1]", 400),
    ("/v1/datasets/oai_2d/items/0/mask?categories=[[]]", 400),
    ("/v1/datasets/oai_2d/dicts?limit=99999999999999999999", 400),
    ("/v1/datasets/oai_2d/dicts?offset=99999999999999", 200),
])
def test_hostile_paths_and_queries(server, path, expected):
    status, headers, body = raw(server, "GET", path)
    if expected == 200:
        assert status == 200
    else:
        assert_json_error(server, status, headers, body, expected)


@pytest.mark.parametrize("body,expected", [
    (b"{", 400),
    (b"not json", 400),
    (b"\xff\xfe\x00", 400),
    (b'{"indices": [0], "indices": [1]}', 400),
    (b'{"indices": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400),
    (b'{"indices": [0], "categories": ' + b"[" * 64 + b"0" + b"]" * 64 + b"}", 400),
    (b'{"indices": [' + b",".join([b"0"] * 600) + b"]}", 413),
    (b'{"indices": [1e400]}', 400),
    (b" " * (2 << 20), 413),
])
def test_hostile_batch_bodies(server, body, expected):
    status, headers, data = raw(server, "POST", "/v1/datasets/oai_2d/batch", body, {"Content-Type": "application/json"})
    if expected == 200:
        assert status == 200
    else:
        assert_json_error(server, status, headers, data, expected)


def test_oversized_headers_are_refused_and_the_server_lives_on(server):
    status, _, _ = raw(server, "GET", "/v1/datasets", headers={"X-Big": "a" * (64 << 10)})
    assert status in (400, 431)
    status, _, _ = raw(server, "GET", "/v1/datasets/" + "a" * (64 << 10))
    assert status in (400, 404, 414, 431)
    assert server.get("/healthz")[0] == 200


def test_garbage_on_the_socket(server):
    host, port = urllib.parse.urlsplit(server.base).netloc.split(":")
    for garbage in [b"\x00\x01\x02 garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"]:
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(garbage)
            try:
                connection.recv(4096)
            except (ConnectionResetError, socket.timeout):
                pass
    assert server.get("/healthz")[0] == 200


def read_one_response(connection):
    """One HTTP/1.1 response read off a raw socket: (status, headers with lower-case names, body,
    whatever followed it before the server closed or went quiet for a second)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection without a response: %r" % data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = connection.recv(65536)
        assert chunk, "the response was cut short"
        rest += chunk
    body, after = rest[:length], rest[length:]
    connection.settimeout(1)
    try:
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            after += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return status, headers, body, after


CHUNKED_POST = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("request_bytes", [
    pytest.param(CHUNKED_POST % b"/v1/datasets/oai_2d/batch" + b"zz\r\n", id="bad-chunk-size"),
    pytest.param(CHUNKED_POST % b"/v1/datasets/oai_2d/batch" + b'5\r\n{"ind\r\nzz\r\nices": [0]}\r\n0\r\n\r\n', id="bad-second-chunk"),
    pytest.param(CHUNKED_POST % b"/v1/datasets/oai_3d/sample" + b"zz\r\n", id="sample-bad-chunk-size"),
    # A body cut short: Content-Length promises more than arrives before the client stops sending.
    pytest.param(b"POST /v1/datasets/oai_2d/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"indices\": [0", id="truncated"),
])
def test_a_malformed_request_body_is_400_json_and_the_server_lives_on(server, request, request_bytes):
    """HTTP framing broken inside the body (found by NIO's parser while the route reads it) is the
    client's error: 400 with the contract's JSON, one response, the connection closed after it."""
    host, port = urllib.parse.urlsplit(server.base).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request_bytes)
        if request.node.callspec.id == "truncated":
            connection.shutdown(socket.SHUT_WR)
        status, headers, body, after = read_one_response(connection)
    assert status == 400, (status, body[:300])
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "malformed" in error["message"], error
    assert server.root not in error["message"]
    assert after == b"", "more than one response: %r" % after[:300]
    assert server.get("/healthz")[0] == 200


def test_a_chunked_body_over_max_body_bytes_stays_413(server):
    host, port = urllib.parse.urlsplit(server.base).netloc.split(":")
    body = b" " * (2 << 20)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(CHUNKED_POST % b"/v1/datasets/oai_2d/batch" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        status, headers, body, _ = read_one_response(connection)
    assert status == 413, (status, body[:300])
    assert json.loads(body)["error"]["code"] == "too_large"
    assert server.get("/healthz")[0] == 200
