"""The Python client against the real medsegd binary, compared with h5py reads of the files and
MedSegPy-style collation."""
import json
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import OAI_IDS, ROOT

try:
    import medsegd_client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    import medsegd_client

from medsegd_client import BatchLoader, Client, MedsegdError, RemoteDataset, register_with_medsegpy
from test_tensor_routes import add_background, collect_mask, slice_items


@pytest.fixture
def client(server):
    client = Client(server.base, retries=2, backoff=0.01)
    yield client
    client.close()


def test_catalog(client, server):
    names = [d["name"] for d in client.datasets()]
    assert names == sorted(names) and "oai_2d" in names
    meta = client.metadata("oai_2d")
    assert meta["category_ids"] == [0, (1, 2), 3, (4, 5)]
    assert meta["category_id_to_contiguous_id"] == {0: 0, (1, 2): 1, 3: 2, (4, 5): 3}
    dicts = client.dicts("oai_2d", scan_id="0000001_V00", aug=1)
    assert [d["slice_id"] for d in dicts] == [1, 2, 3, 4]
    assert client.dicts("oai_2d", limit=2, offset=1)[0]["file_name"].endswith("0000001_V00-Aug00_002.im")
    assert client.scans("oai_3d")[0]["scan_id"] == "0000003_V00"


def test_arrays_match_h5py(client, server):
    for index, stem in slice_items(server)[:4]:
        image, mask = server.arrays[stem]
        got = client.image("oai_2d", index)
        assert got.dtype == image.dtype and not got.flags.writeable  # a view of the received bytes
        np.testing.assert_array_equal(got, image)
        np.testing.assert_array_equal(client.mask("oai_2d", index), collect_mask(mask, OAI_IDS))
        pair = client.item("oai_2d", index, categories=[5, (0, 1)], background="last")
        np.testing.assert_array_equal(pair[0], image)
        np.testing.assert_array_equal(pair[1], add_background(collect_mask(mask, [5, (0, 1)]), last=True))
    image, _ = server.arrays["0000001_V00-Aug00_001"]
    np.testing.assert_array_equal(client.image("oai_2d", 0, region=(slice(2, 10), slice(None, None, 3))), image[2:10, ::3])
    np.testing.assert_array_equal(client.image("oai_2d", 0, region="-4:", dtype=np.float16), image[-4:].astype(np.float16))
    big_endian, _ = server.arrays["0000007_V01-Aug00_001"]
    assert client.image("typed_2d", 0).dtype == np.dtype(">i2")


def test_volumes_and_batches(client, server):
    volume, seg = server.arrays["0000004_V01"]
    np.testing.assert_array_equal(client.volume("oai_3d", "0000004_V01", region=(slice(0, 8), 3)), volume[0:8, 3])
    np.testing.assert_array_equal(client.volume_mask("oai_3d", "0000004_V01", categories=[(4, 5)])[..., 0],
                                  seg[..., 4] + seg[..., 5])
    items = slice_items(server)
    images, masks = client.batch("oai_2d", [3, 1], categories=OAI_IDS, region=(slice(0, 5),))
    np.testing.assert_array_equal(images, np.stack([server.arrays[items[i][1]][0][0:5] for i in [3, 1]]))
    np.testing.assert_array_equal(masks, np.stack([collect_mask(server.arrays[items[i][1]][1][0:5], OAI_IDS) for i in [3, 1]]))


def test_errors_carry_code_and_message(client):
    with pytest.raises(MedsegdError) as error:
        client.image("oai_2d", 999)
    assert error.value.status == 404 and error.value.code == "not_found" and "out of range" in error.value.message
    with pytest.raises(MedsegdError) as error:
        client.mask("oai_2d", 0, categories=[9])
    assert error.value.code == "bad_request"
    with pytest.raises(ConnectionError):
        Client("http://127.0.0.1:9", retries=1, backoff=0.01).datasets()


def test_retries_on_503_then_succeeds(server):
    """A server that is still loading answers 503 not_ready; the client waits it out."""
    import http.server

    calls = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append(self.path)
            if len(calls) < 3:
                self.send_response(503)
                body = b'{"error": {"code": "not_ready", "message": "loading"}}'
            else:
                self.send_response(200)
                body = b'{"datasets": []}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        assert Client("http://127.0.0.1:%d" % httpd.server_port, retries=3, backoff=0.01).datasets() == []
        assert len(calls) == 3
        calls.clear()
        with pytest.raises(MedsegdError) as error:
            Client("http://127.0.0.1:%d" % httpd.server_port, retries=1, backoff=0.01).datasets()
        assert error.value.code == "not_ready"
    finally:
        httpd.shutdown()


def test_remote_dataset_is_a_map_dataset_and_survives_fork(client, server):
    dataset = RemoteDataset(client, "oai_2d", categories=OAI_IDS)
    items = slice_items(server)
    assert len(dataset) == len(items)
    image, mask = dataset[-1]
    np.testing.assert_array_equal(image, server.arrays[items[-1][1]][0])
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    assert len(dataset[1:3]) == 2
    # Worker processes (as a DataLoader forks them) use their own connections.
    copy = pickle.loads(pickle.dumps(dataset))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ok = all(np.array_equal(copy[i][0], server.arrays[items[i][1]][0]) for i in range(len(items)))
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert dataset[0][0].shape == (24, 20, 1)  # the parent's pool still works


def test_batch_loader_shuffles_shards_and_prefetches(client, server):
    loader = BatchLoader(client, "oai_2d", batch_size=3, shuffle=True, seed=7, drop_last=False, prefetch=2)
    n = len(slice_items(server))
    assert len(loader) == (n + 2) // 3
    first_epoch = [loader.batch_indices(b) for b in range(len(loader))]
    assert sorted(i for batch in first_epoch for i in batch) == list(range(n))
    seen = []
    for images, masks in loader:  # iterating runs one epoch, then moves to the next
        assert images.shape[1:] == (24, 20, 1) and masks.shape[1:] == (24, 20, 4)
        seen.append(images.shape[0])
    assert sum(seen) == n
    assert loader.epoch == 1 and [loader.batch_indices(b) for b in range(len(loader))] != first_epoch
    same_seed = BatchLoader(client, "oai_2d", batch_size=3, seed=7)
    assert [same_seed.batch_indices(b) for b in range(len(same_seed))] == first_epoch
    # Keras Sequence style: loader[b] matches the items it names.
    images, masks = loader[0]
    expected = np.stack([server.arrays[slice_items(server)[i][1]][0] for i in loader.batch_indices(0)])
    np.testing.assert_array_equal(images, expected)
    # Ranks take every world_size-th position of one shared order, in equal numbers (issue 19;
    # Tests/python/test_distributed.py runs them in separate processes): with drop_last the
    # order's last n % 3 items are left out (disjoint shards), without it the order's first items
    # pad it (every item, and the padding twice).
    order = np.arange(n)
    np.random.default_rng(3).shuffle(order)
    shards = [BatchLoader(client, "oai_2d", batch_size=2, seed=3, rank=r, world_size=3, drop_last=True) for r in range(3)]
    covered = [shard.indices.tolist() for shard in shards]
    assert covered == [order[:n - n % 3][r::3].tolist() for r in range(3)]
    assert len(set(sum(covered, []))) == n - n % 3 and all(len(shard) == (n // 3) // 2 for shard in shards)
    padded = [BatchLoader(client, "oai_2d", batch_size=2, seed=3, rank=r, world_size=3) for r in range(3)]
    every = sum((shard.indices.tolist() for shard in padded), [])
    per_rank = (n + 2) // 3
    assert sorted(every) == sorted(list(range(n)) + order[:per_rank * 3 - n].tolist())
    assert {len(shard.indices) for shard in padded} == {per_rank} and {len(shard) for shard in padded} == {(per_rank + 1) // 2}


def test_register_with_medsegpy_needs_medsegpy(client):
    try:
        import medsegpy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="MedSegPy"):
            register_with_medsegpy(client, ["oai_2d"])
        return
    assert register_with_medsegpy(client, ["oai_2d"]) == ["oai_2d"]


def test_register_with_a_stand_in_medsegpy(client, tmp_path, monkeypatch):
    """MedSegPy is not on PyPI's path here: a stand-in with its catalog API checks the calls."""
    package = tmp_path / "medsegpy" / "data"
    package.mkdir(parents=True)
    (tmp_path / "medsegpy" / "__init__.py").write_text("")
    (package / "__init__.py").write_text(
        "class _Metadata(dict):\n"
        "    def set(self, **kwargs): self.update(kwargs); return self\n"
        "class DatasetCatalog:\n    registry = {}\n"
        "    @staticmethod\n    def register(name, func): DatasetCatalog.registry[name] = func\n"
        "    @staticmethod\n    def get(name): return DatasetCatalog.registry[name]()\n"
        "class MetadataCatalog:\n    entries = {}\n"
        "    @staticmethod\n    def get(name): return MetadataCatalog.entries.setdefault(name, _Metadata())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in [m for m in sys.modules if m.startswith("medsegpy")]:
        monkeypatch.delitem(sys.modules, module)
    assert register_with_medsegpy(client, ["oai_2d"]) == ["oai_2d"]
    from medsegpy.data import DatasetCatalog, MetadataCatalog
    assert len(DatasetCatalog.get("oai_2d")) == len(client.dicts("oai_2d"))
    assert MetadataCatalog.get("oai_2d")["category_id_to_contiguous_id"][(1, 2)] == 1
