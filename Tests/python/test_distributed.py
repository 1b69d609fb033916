"""Issue 19, sharding across ranks: BatchLoader, RemoteDataset's ShardSampler and PatchLoader run
in real separate processes, one per rank, each with its own Client against one real medsegd.

What DDP needs and CLIENT.md promises: with the default seed, every rank computes the same order
of an epoch; the ranks' shards are disjoint positions of it whose union is every item exactly
once, plus (drop_last=False) the order's first items again as padding, or minus (drop_last=True)
its last num_items % world_size items; every rank has the same number of batches; epochs differ;
a state_dict saved mid-epoch resumes in a new process exactly where the run was.

Each item's image is filled with its index, so what a rank reports is what it received."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest

from conftest import ROOT
from medsegd_process import MedsegdProcess

try:
    import medsegd_client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    import medsegd_client

from medsegd_client import BatchLoader, Client, RemoteDataset

SIZES = {"n10": 10, "n7": 7, "n3": 3}  # datasets of this many items
WORKER_TIMEOUT = 120  # seconds for one rank's process
# The rank processes import the same medsegd_client as this module.
CLIENT_PATH = os.path.dirname(os.path.dirname(os.path.abspath(medsegd_client.__file__)))


@pytest.fixture(scope="module")
def daemon():
    root = tempfile.mkdtemp(prefix="medsegd-distributed-")
    rng = np.random.default_rng(19)
    for name, count in SIZES.items():
        folder = os.path.join(root, name)
        os.makedirs(folder)
        for index in range(count):
            stem = os.path.join(folder, "%07d_V00-Aug00_%03d" % (1, index + 1))
            with h5py.File(stem + ".im", "w") as f:
                f["data"] = np.full((4, 4, 1), index, np.float32)  # item i's image is i
            with h5py.File(stem + ".seg", "w") as f:
                f["data"] = (rng.random((4, 4, 1, 1)) > 0.5).astype(np.uint8)
    folder = os.path.join(root, "v3d")
    os.makedirs(folder)
    for scan in ["0000002_V00", "0000003_V00"]:
        seg = np.zeros((16, 16, 8, 1), np.uint8)
        seg[4:9, 5:11, 2:6] = 1
        with h5py.File(os.path.join(folder, scan + ".h5"), "w") as f:
            f["volume"] = rng.standard_normal((16, 16, 8)).astype(np.float32)
            f["seg"] = seg
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write("families:\n  f:\n    categories: [{id: 0, name: a}]\n    datasets:\n")
        for name in SIZES:
            f.write("      %s: {format: slices-2d, scan_root: %s}\n" % (name, name))
        f.write("      v3d: {format: volumes-3d, scan_root: v3d}\n")
    server = MedsegdProcess(config)
    try:
        client = Client(server.base)
        for name, count in SIZES.items():  # item i is the file of slice i + 1
            assert [int(client.image(name, i)[0, 0, 0]) for i in range(count)] == list(range(count))
        client.close()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# One process per rank

WORKER = r"""
import json, sys
import numpy as np
from medsegd_client import BatchLoader, Client, PatchLoader, RemoteDataset

job = json.loads(sys.argv[1])
client = Client(job["base"], retries=2, backoff=0.05)
out = {"epochs": [], "lengths": []}
kwargs = job.get("kwargs", {})
rank, world_size = job["rank"], job["world_size"]

def received(images):
    # Each item's image is filled with its index.
    return [int(v) for v in np.asarray(images).reshape(len(images), -1)[:, 0]]

def run_epochs(loader, record):
    # The loader's epochs, each batch recorded by `record`; stops (saving the state) at
    # job["stop"] = [epoch, batches handed out].
    for epoch in range(job["epochs"]):
        out["lengths"].append(len(loader))
        batches = []
        for batch in loader:
            batches.append(record(*batch))
            if job.get("stop") == [epoch, len(batches)]:
                out["state"] = loader.state_dict()
                break
        out["epochs"].append(batches)
        if "state" in out:
            break


if job["kind"] == "batch":
    loader = BatchLoader(client, job["name"], rank=rank, world_size=world_size, **kwargs)
    if job.get("state") is not None:
        loader.load_state_dict(job["state"])

    def batch_of_items(images, masks):
        assert len(masks) == len(images)
        return received(images)

    run_epochs(loader, batch_of_items)
elif job["kind"] == "sampler":
    dataset = RemoteDataset(client, job["name"])
    sampler = dataset.sampler(rank, world_size, **kwargs)
    for epoch in range(job["epochs"]):
        sampler.set_epoch(epoch)
        out["lengths"].append(len(sampler))
        out["epochs"].append([received([dataset[i][0]]) for i in sampler])
        assert dataset.shard(rank, world_size, epoch=epoch, **kwargs) == list(sampler)
elif job["kind"] == "patch":
    loader = PatchLoader(client, job["name"], [4, 4, 4], rank=rank, world_size=world_size, keys=("image", "center"),
                         **kwargs)
    if job.get("state") is not None:
        loader.load_state_dict(job["state"])
    run_epochs(loader, lambda images, centres: [np.asarray(images).tobytes().hex()[:64], np.asarray(centres).tolist()])
print(json.dumps(out))
"""


def run_ranks(daemon, kind, name, world_size, epochs, kwargs=None, stop=None, states=None):
    """Runs rank 0..world_size-1 each in its own process, all at once; returns what each saw."""
    env = dict(os.environ, PYTHONPATH=CLIENT_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    processes = []
    for rank in range(world_size):
        job = dict(base=daemon.base, kind=kind, name=name, rank=rank, world_size=world_size, epochs=epochs,
                   kwargs=kwargs or {}, stop=stop, state=None if states is None else states[rank])
        processes.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(job)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for rank, process in enumerate(processes):
        stdout, stderr = process.communicate(timeout=WORKER_TIMEOUT)
        assert process.returncode == 0, "rank %d of %d failed:\n%s" % (rank, world_size, stderr[-3000:])
        results.append(json.loads(stdout))
    return results


def permutation(num_items, seed, epoch):
    """The epoch's order CLIENT.md documents: numpy's default_rng(seed + epoch) shuffling 0..n-1."""
    order = np.arange(num_items)
    np.random.default_rng(seed + epoch).shuffle(order)
    return order.tolist()


def check_epoch(shards, num_items, world_size, drop_last, order=None):
    """`shards[r]` is the items rank r received in one epoch, in order. Rebuilds the epoch's
    global order (rank r's k-th item is its position r + k * world_size) and checks it is a
    permutation of every item, padded with its own first items or cut to a multiple of
    world_size; with `order`, that it is that permutation."""
    lengths = {len(shard) for shard in shards}
    assert len(lengths) == 1, "ranks received different numbers of items: %s" % [len(s) for s in shards]
    per_rank = lengths.pop()
    expected = num_items // world_size if drop_last else -(-num_items // world_size)
    assert per_rank == expected, (per_rank, expected)
    sequence = [shards[p % world_size][p // world_size] for p in range(per_rank * world_size)]
    if drop_last:
        kept = num_items - num_items % world_size
        assert len(sequence) == kept and len(set(sequence)) == kept, "an item reached two ranks: %s" % shards
        if order is not None:
            assert sequence == order[:kept]
    else:
        head, padding = sequence[:num_items], sequence[num_items:]
        assert sorted(head) == list(range(num_items)), "not every item exactly once: %s" % shards
        assert padding == (head * world_size)[:len(padding)], "the padding is not the order's first items"
        if order is not None:
            assert head == order
    return sequence


def batches_per_rank(results):
    return [[len(epoch) for epoch in result["epochs"]] for result in results]


# (dataset, world_size, batch_size, drop_last)
COMBOS = [("n10", 4, 1, False), ("n10", 4, 1, True), ("n10", 4, 2, False), ("n10", 3, 3, True), ("n10", 3, 2, True),
          ("n10", 3, 4, False),
          ("n7", 2, 3, False), ("n7", 2, 3, True), ("n7", 3, 2, False), ("n3", 4, 2, False), ("n3", 4, 1, True),
          ("n10", 1, 4, False)]


@pytest.mark.parametrize("name,world_size,batch_size,drop_last", COMBOS)
def test_batch_loader_ranks_share_one_order_and_stay_in_step(daemon, name, world_size, batch_size, drop_last):
    num_items = SIZES[name]
    kwargs = dict(batch_size=batch_size, drop_last=drop_last, prefetch=2)  # the default seed
    results = run_ranks(daemon, "batch", name, world_size, epochs=3, kwargs=kwargs)
    # Every rank: the same number of batches, every epoch (DDP's all-reduces stay paired).
    per_rank = -(-num_items // world_size) if not drop_last else num_items // world_size
    batches = per_rank // batch_size if drop_last else -(-per_rank // batch_size)
    assert batches_per_rank(results) == [[batches] * 3] * world_size
    assert all(result["lengths"] == [batches] * 3 for result in results)
    sequences = []
    for epoch in range(3):
        order = permutation(num_items, 0, epoch)
        shards = [[i for batch in result["epochs"][epoch] for i in batch] for result in results]
        if drop_last and per_rank % batch_size:
            # The short last batch is left out too: each rank has its shard's first full batches.
            assert all(len(b) == batch_size for result in results for b in result["epochs"][epoch])
            kept = order[:num_items - num_items % world_size]
            assert shards == [kept[r::world_size][:batches * batch_size] for r in range(world_size)]
            sequences.append(shards)
        else:
            sequences.append(check_epoch(shards, num_items, world_size, drop_last, order))
    if num_items > 3:
        assert sequences[0] != sequences[1], "the order did not change between epochs"


@pytest.mark.parametrize("seed", [5, 123])
def test_a_shared_explicit_seed_gives_the_same_guarantees(daemon, seed):
    results = run_ranks(daemon, "batch", "n10", 4, epochs=2, kwargs=dict(batch_size=1, seed=seed, prefetch=0))
    assert batches_per_rank(results) == [[3, 3]] * 4
    for epoch in range(2):
        shards = [[i for batch in result["epochs"][epoch] for i in batch] for result in results]
        check_epoch(shards, 10, 4, False, permutation(10, seed, epoch))


@pytest.mark.parametrize("name,world_size,batch_size,drop_last", [("n10", 4, 1, False), ("n7", 3, 2, False),
                                                                  ("n10", 3, 1, True)])
def test_batch_loader_resumes_mid_epoch_in_new_processes(daemon, name, world_size, batch_size, drop_last):
    num_items = SIZES[name]
    kwargs = dict(batch_size=batch_size, drop_last=drop_last, prefetch=2)
    reference = run_ranks(daemon, "batch", name, world_size, epochs=3, kwargs=kwargs)
    per_epoch = len(reference[0]["epochs"][1])
    for stop in sorted({1, max(1, per_epoch - 1)}):
        # Run epoch 0, stop after `stop` batches of epoch 1 and keep each rank's state (as JSON).
        stopped = run_ranks(daemon, "batch", name, world_size, epochs=3, kwargs=kwargs, stop=[1, stop])
        states = [json.loads(json.dumps(result["state"])) for result in stopped]
        assert all(state["epoch"] == 1 and state["position"] == stop for state in states)
        assert "order" not in states[0], "with a shared seed the order is recomputed, not saved"
        # New processes resume: the rest of epoch 1, then epoch 2, as the uninterrupted run.
        resumed = run_ranks(daemon, "batch", name, world_size, epochs=2, kwargs=kwargs, states=states)
        for rank in range(world_size):
            assert stopped[rank]["epochs"][1] + resumed[rank]["epochs"][0] == reference[rank]["epochs"][1]
            assert resumed[rank]["epochs"][1] == reference[rank]["epochs"][2]
        assert len({len(result["epochs"][0]) for result in resumed}) == 1
        if not drop_last:
            for epoch in (1, 2):
                shards = [[i for batch in result["epochs"][epoch] for i in batch] for result in reference]
                check_epoch(shards, num_items, world_size, False, permutation(num_items, 0, epoch))


@pytest.mark.parametrize("name,world_size,drop_last", [("n10", 4, False), ("n10", 4, True), ("n7", 3, False),
                                                       ("n3", 4, False)])
def test_remote_dataset_sampler_is_distributed_samplers_semantics(daemon, name, world_size, drop_last):
    num_items = SIZES[name]
    results = run_ranks(daemon, "sampler", name, world_size, epochs=2, kwargs=dict(drop_last=drop_last))
    expected = num_items // world_size if drop_last else -(-num_items // world_size)
    assert all(result["lengths"] == [expected] * 2 for result in results)
    for epoch in range(2):
        shards = [[batch[0] for batch in result["epochs"][epoch]] for result in results]
        check_epoch(shards, num_items, world_size, drop_last, permutation(num_items, 0, epoch))
    # The sampler and a BatchLoader of batch 1 give a rank the same items.
    client = Client(daemon.base)
    loader = BatchLoader(client, name, batch_size=1, drop_last=drop_last, rank=1, world_size=world_size)
    assert loader.indices.tolist() == [batch[0] for batch in results[1]["epochs"][0]]
    client.close()


def test_patch_loader_ranks_are_in_step_and_resume_in_new_processes(daemon):
    kwargs = dict(batch_size=2, batches_per_epoch=3, prefetch=2)  # the default seed, 0
    reference = run_ranks(daemon, "patch", "v3d", 3, epochs=3, kwargs=kwargs)
    assert batches_per_rank(reference) == [[3, 3, 3]] * 3 and all(r["lengths"] == [3] * 3 for r in reference)
    # Ranks draw different patches; epochs differ.
    batches = [json.dumps(batch) for result in reference for epoch in result["epochs"] for batch in epoch]
    assert len(set(batches)) == len(batches)
    # The default seed is shared: the same rank in another process draws the same batches.
    again = run_ranks(daemon, "patch", "v3d", 3, epochs=1, kwargs=kwargs)
    assert [r["epochs"][0] for r in again] == [r["epochs"][0] for r in reference]
    # Stopped mid-epoch 1, resumed in new processes: the rest of epoch 1, then epoch 2.
    stopped = run_ranks(daemon, "patch", "v3d", 3, epochs=3, kwargs=kwargs, stop=[1, 2])
    states = [json.loads(json.dumps(result["state"])) for result in stopped]
    resumed = run_ranks(daemon, "patch", "v3d", 3, epochs=2, kwargs=kwargs, states=states)
    for rank in range(3):
        assert stopped[rank]["epochs"][1] + resumed[rank]["epochs"][0] == reference[rank]["epochs"][1]
        assert resumed[rank]["epochs"][1] == reference[rank]["epochs"][2]


# --------------------------------------------------------------------------------------------
# In one process: the sharding rule itself, and its arguments


def distributed_sampler(order, rank, world_size, drop_last):
    """torch.utils.data.DistributedSampler.__iter__ (PyTorch 2.x) over a given permutation:
    `order` stands for torch.randperm(len(dataset), generator=seeded with seed + epoch)."""
    indices = list(order)
    n = len(indices)
    if drop_last and n % world_size != 0:
        num_samples = -(-(n - world_size) // world_size)
    else:
        num_samples = -(-n // world_size)
    total_size = num_samples * world_size
    if not drop_last:
        padding_size = total_size - len(indices)
        if padding_size <= len(indices):
            indices += indices[:padding_size]
        else:
            indices += (indices * -(-padding_size // len(indices)))[:padding_size]
    else:
        indices = indices[:total_size]
    assert len(indices) == total_size
    indices = indices[rank:total_size:world_size]
    assert len(indices) == num_samples
    return indices


def test_shard_indices_are_distributed_samplers_over_numpys_permutation():
    from medsegd_client import ShardSampler, shard_indices

    for num_items in [1, 2, 3, 5, 7, 10, 11, 16]:
        for world_size in [1, 2, 3, 4, 8]:
            for drop_last in [False, True]:
                for seed, epoch in [(0, 0), (0, 1), (7, 3)]:
                    order = permutation(num_items, seed, epoch)
                    for rank in range(world_size):
                        expected = distributed_sampler(order, rank, world_size, drop_last)
                        got = shard_indices(num_items, rank, world_size, True, seed, epoch, drop_last).tolist()
                        assert got == expected, (num_items, world_size, drop_last, seed, epoch, rank)
                        sampler = ShardSampler(num_items, rank, world_size, seed=seed, drop_last=drop_last)
                        sampler.set_epoch(epoch)
                        assert list(sampler) == expected and len(sampler) == len(expected)
                    unshuffled = distributed_sampler(range(num_items), 0, world_size, drop_last)
                    assert shard_indices(num_items, 0, world_size, False, seed, epoch, drop_last).tolist() == unshuffled


def test_unshared_seeds_and_bad_ranks_are_refused(daemon):
    from medsegd_client import ShardSampler

    client = Client(daemon.base)
    try:
        with pytest.raises(ValueError, match="same seed"):
            BatchLoader(client, "n10", batch_size=2, seed=None, rank=0, world_size=2)
        with pytest.raises(ValueError):
            ShardSampler(10, 0, 2, seed=None)
        with pytest.raises(ValueError):
            ShardSampler(10, 2, 2)
        with pytest.raises(ValueError, match="rank and world_size"):
            ShardSampler(10)  # no process group to take them from
        # seed=None stays what it was for one rank: entropy, its order kept in the state.
        alone = BatchLoader(client, "n10", batch_size=3, seed=None)
        state = json.loads(json.dumps(alone.state_dict()))
        assert sorted(state["order"]) == list(range(10))
        # Such a state (saved before shared seeds) cannot resume on several ranks.
        two = BatchLoader(client, "n10", batch_size=3, rank=1, world_size=2)
        with pytest.raises(ValueError, match="without a seed"):
            two.load_state_dict(dict(state, rank=1, world_size=2))
        # A rank that shuffles nothing needs no seed.
        ordered = BatchLoader(client, "n10", batch_size=3, shuffle=False, seed=None, rank=1, world_size=4)
        assert ordered.indices.tolist() == [1, 5, 9] and len(ordered) == 1
        dataset = RemoteDataset(client, "n10")
        assert dataset.shard(3, 4) == shard_of(10, 3, 4) and len(dataset.sampler(3, 4)) == 3
    finally:
        client.close()


def shard_of(num_items, rank, world_size):
    return distributed_sampler(permutation(num_items, 0, 0), rank, world_size, False)
