"""Query strings as real clients send them (issue 10): `requests` and `urllib.parse.urlencode`
encode a space as `+` (application/x-www-form-urlencoded); unknown parameters are a 400 naming
them and the route's known ones; numbers that overflow never take the server down."""
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request

import h5py
import numpy as np
import pytest
import requests

from conftest import in_dtype
from medsegd_process import MedsegdProcess

NAME = "qs"
SCAN = "0000001_V00"
IDS = [0, [1, 2], 3, [4, 5]]
BIG = "9223372036854775807"  # Int64.max
TIMEOUT = 30

CONFIG = """
families:
  qs:
    categories:
      - {id: 0,      name: femoral cartilage}
      - {id: [1, 2], name: tibial cartilage}
      - {id: 3,      name: patellar cartilage}
      - {id: [4, 5], name: meniscus}
    datasets:
      qs: {format: slices-2d, scan_root: 2d}
"""


class Daemon(MedsegdProcess):
    """medsegd serving the dataset, asked with `requests`. A death is recorded and the server
    restarted (ensure_alive), so that the request that killed it fails its own test and the others
    still run; the last test fails if the process ever died."""

    def __init__(self, root, config):
        self.root = root
        super().__init__(config)

    def get(self, path, **kwargs):
        return self.checked(requests.get, path, **kwargs)

    def post(self, path, **kwargs):
        return self.checked(requests.post, path, **kwargs)

    def checked(self, method, path, **kwargs):
        """The reply, or an assertion saying the server did not answer; never a 5xx; /healthz
        answers afterwards."""
        try:
            reply = method(self.base + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as error:
            raise AssertionError("%s %s: no answer (%r); process exited: %s" % (path, kwargs, error, self.exited()))
        assert reply.status_code < 500, (reply.url, reply.status_code, reply.text[:300])
        self.assert_healthy(reply.url)
        return reply


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("query-strings"))
    folder = os.path.join(root, "2d")
    os.makedirs(folder)
    rng = np.random.default_rng(8)
    arrays = []
    for slice_id in (1, 2, 3):
        stem = "%s-Aug00_%03d" % (SCAN, slice_id)
        image = rng.standard_normal((8, 6, 1)).astype("<f4")
        mask = (rng.random((8, 6, 1, 6)) > 0.6).astype(np.uint8)
        with h5py.File(os.path.join(folder, stem + ".im"), "w") as f:
            f.create_dataset("data", data=image)
        with h5py.File(os.path.join(folder, stem + ".seg"), "w") as f:
            f.create_dataset("data", data=mask)
        arrays.append((image, mask))
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write(CONFIG)
    with Daemon(root, config) as server:
        server.arrays = arrays
        yield server


@pytest.fixture(autouse=True)
def alive(daemon):
    daemon.ensure_alive()
    yield


def collate(mask, categories, background=None):
    """MedSegPy's collect_mask (and add_background_labels) on a 2D slice's H x W x 1 x C mask."""
    mask = mask[:, :, 0, :]
    channels = [mask[..., c] if isinstance(c, int) else in_dtype(np.sum([mask[..., k] for k in c], axis=0), mask.dtype) for c in categories]
    out = np.stack(channels, axis=-1).astype(mask.dtype)
    if background:
        extra = (out.sum(axis=-1) == 0).astype(mask.dtype)[..., None]
        out = np.concatenate([extra, out] if background == "first" else [out, extra], axis=-1)
    return out


def npy(reply):
    assert reply.status_code == 200, (reply.url, reply.status_code, reply.text[:300])
    return np.load(io.BytesIO(reply.content), allow_pickle=False)


def urllib_get(daemon, path, query):
    """A GET with the query exactly as given (urllib sends what it is handed)."""
    try:
        with urllib.request.urlopen(daemon.base + path + "?" + query, timeout=TIMEOUT) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    assert status < 500, (query, status, body[:300])
    daemon.assert_healthy(query)
    return status, body


def test_requests_params_send_plus_for_space(daemon):
    categories = [0, [1, 2]]
    reply = daemon.get("/v1/datasets/%s/items/0/mask" % NAME, params={"categories": json.dumps(categories)})
    assert "categories=%5B0%2C+%5B1%2C+2%5D%5D" in reply.url, reply.url  # what this test is about
    mask = npy(reply)
    expected = collate(daemon.arrays[0][1], categories)
    assert mask.dtype == expected.dtype and mask.shape == expected.shape, (mask.dtype, mask.shape)
    assert np.array_equal(mask, expected)


CASES = {
    "categories": ({"categories": json.dumps([0, [1, 2]])}, [0, [1, 2]], None, (slice(None), slice(None))),
    "region": ({"region": "0:4, 0:4"}, IDS, None, (slice(0, 4), slice(0, 4))),
    "background": ({"background": "last"}, IDS, "last", (slice(None), slice(None))),
    "all": ({"categories": json.dumps([[4, 5], 3, [0, 1, 2]]), "region": "1:7:2, -3:", "background": "first"},
            [[4, 5], 3, [0, 1, 2]], "first", (slice(1, 7, 2), slice(-3, None))),
}


@pytest.mark.parametrize("client", ["urlencode", "requests", "urlencode-quote"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_mask_queries_as_clients_encode_them(daemon, case, client):
    params, categories, background, region = CASES[case]
    path = "/v1/datasets/%s/items/1/mask" % NAME
    if client == "requests":
        mask = npy(daemon.get(path, params=params))
    else:
        quote = urllib.parse.quote if client == "urlencode-quote" else urllib.parse.quote_plus
        query = urllib.parse.urlencode(params, quote_via=quote)
        if client == "urlencode" and case != "background":
            assert "+" in query, query
        status, body = urllib_get(daemon, path, query)
        assert status == 200, (query, status, body[:300])
        mask = np.load(io.BytesIO(body), allow_pickle=False)
    expected = collate(daemon.arrays[1][1], categories, background)[region]
    assert mask.dtype == expected.dtype and mask.shape == expected.shape, (mask.dtype, mask.shape, expected.shape)
    assert np.array_equal(mask, expected)


def test_image_region_with_plus_for_space(daemon):
    status, body = urllib_get(daemon, "/v1/datasets/%s/items/2/image" % NAME, urllib.parse.urlencode({"region": "2:5, 1:4, 0", "dtype": "float64"}))
    assert status == 200, (status, body[:300])
    image = np.load(io.BytesIO(body), allow_pickle=False)
    expected = daemon.arrays[2][0][2:5, 1:4, 0].astype("<f8")
    assert image.dtype == expected.dtype and np.array_equal(image, expected)


@pytest.mark.parametrize("path,params,unknown,known", [
    ("/v1/datasets/%s/items/0/mask" % NAME, {"categores": "[0]"}, "categores", ["categories", "background", "region"]),
    ("/v1/datasets", {"foo": "1"}, "foo", ["pretty"]),
    ("/v1/datasets/%s/dicts" % NAME, {"foo": "1"}, "foo", ["offset", "limit", "scan_id", "aug"]),
    ("/v1/datasets/%s/items/0/image" % NAME, {"foo": "1"}, "foo", ["region", "dtype"]),
    ("/v1/datasets/%s/scans/%s/image" % (NAME, SCAN), {"foo": "1"}, "foo", ["aug", "region"]),
], ids=["mask-categores", "datasets-foo", "dicts-foo", "image-foo", "scan-image-foo"])
def test_unknown_query_parameters_are_400_naming_them(daemon, path, params, unknown, known):
    reply = daemon.get(path, params=params)
    assert reply.status_code == 400, (reply.url, reply.status_code, reply.text[:300])
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    error = reply.json()["error"]
    assert error["code"] == "bad_request"
    message = error["message"]
    assert unknown in message, message
    for name in known:
        assert name in message, (name, message)


def all_dicts(daemon):
    reply = daemon.get("/v1/datasets/%s/dicts" % NAME)
    assert reply.status_code == 200
    dicts = reply.json()
    assert len(dicts) == 3
    return dicts


def test_known_parameters_still_work(daemon):
    reply = daemon.get("/v1/datasets", params={"pretty": "1"})
    assert reply.status_code == 200, reply.text[:300]
    assert [d["name"] for d in reply.json()["datasets"]] == [NAME]
    assert "\n" in reply.text
    dicts = all_dicts(daemon)
    reply = daemon.get("/v1/datasets/%s/dicts" % NAME, params={"offset": 1, "limit": 1, "aug": 0})
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json() == dicts[1:2]
    reply = daemon.get("/v1/datasets/%s/items/0/image" % NAME, params={"region": "0:2", "format": "raw", "dtype": "float32"})
    assert reply.status_code == 200, reply.text[:300]
    assert reply.headers["X-Tensor-Dtype"] == "<f4" and reply.headers["X-Tensor-Shape"] == "2,6,1"
    assert reply.content == daemon.arrays[0][0][0:2].astype("<f4").tobytes()


def test_dicts_limit_at_int64_max(daemon):
    dicts = all_dicts(daemon)
    reply = daemon.get("/v1/datasets/%s/dicts" % NAME, params={"offset": 1, "limit": BIG})
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json() == dicts[1:]


def test_dicts_offset_at_int64_max(daemon):
    reply = daemon.get("/v1/datasets/%s/dicts" % NAME, params={"offset": BIG})
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json() == []


def test_dicts_negative_limit_is_400(daemon):
    reply = daemon.get("/v1/datasets/%s/dicts" % NAME, params={"limit": "-1"})
    assert reply.status_code == 400, reply.text[:300]
    assert reply.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("region,index", [
    ("::" + BIG, np.s_[::9223372036854775807]),
    ("0:%s:%s" % (BIG, BIG), np.s_[0:9223372036854775807:9223372036854775807]),
    (":,::%s" % BIG, np.s_[:, ::9223372036854775807]),
    ("-%s:%s" % (BIG, BIG), np.s_[-9223372036854775807:9223372036854775807]),
], ids=["step", "stop-and-step", "second-axis-step", "bounds"])
def test_image_region_at_int64_max(daemon, region, index):
    reply = daemon.get("/v1/datasets/%s/items/0/image" % NAME, params={"region": region})
    if index == np.s_[-9223372036854775807:9223372036854775807] and reply.status_code == 400:
        return  # Python clamps these bounds; refusing numbers this large is within the contract too
    image = npy(reply)
    expected = daemon.arrays[0][0][index]
    assert image.shape == expected.shape and np.array_equal(image, expected), (region, image.shape, expected.shape)


def test_batch_region_at_int64_max(daemon):
    body = {"indices": [0], "region": "::" + BIG}
    reply = daemon.post("/v1/datasets/%s/batch" % NAME, data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text[:300]
    archive = np.load(io.BytesIO(reply.content), allow_pickle=False)
    image, mask = daemon.arrays[0]
    assert np.array_equal(archive["image"], image[::9223372036854775807][None]), archive["image"].shape
    expected = collate(mask, IDS)[::9223372036854775807][None]
    assert archive["mask"].shape == expected.shape and np.array_equal(archive["mask"], expected)


def test_region_index_beyond_int64_is_400(daemon):
    reply = daemon.get("/v1/datasets/%s/items/0/image" % NAME, params={"region": "99999999999999999999"})
    assert reply.status_code == 400, reply.text[:300]


def test_the_process_never_died(daemon):
    daemon.assert_healthy("every request")
    assert daemon.process.poll() is None
    assert daemon.deaths == [], "medsegd died %d time(s) during this module (exit codes %s); see %s" % (
        len(daemon.deaths), daemon.deaths, daemon.log_path)
