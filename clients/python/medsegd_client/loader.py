"""Batches in the Keras `Sequence` style MedSegPy's loaders use, with sharding, prefetch and
resumable positions: items in a shuffled order (BatchLoader), or patches sampled by the server
(PatchLoader)."""
import hashlib
import queue
import threading

import numpy as np

from .sampler import shard_indices


def _prefetched(fetch, batches, prefetch, workers):
    """`fetch(b)` for each b of `batches`, yielded in order, with up to `prefetch` batches fetched
    ahead on `workers` threads (a bounded queue); an error of a fetch is raised where its batch
    would have been yielded. Without prefetch, fetched one by one on the caller's thread."""
    batches = list(batches)
    if prefetch == 0:
        for b in batches:
            yield fetch(b)
        return
    ready = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    next_batch = iter(batches)
    lock = threading.Lock()
    results = {}
    done = threading.Condition()

    def work():
        while not stop.is_set():
            with lock:
                b = next(next_batch, None)
            if b is None:
                return
            try:
                value = (b, fetch(b), None)
            except BaseException as error:  # surfaced in the consumer
                value = (b, None, error)
            with done:
                results[b] = value
                done.notify_all()
            # Bound how far ahead the workers run.
            ready.put(b)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, max(len(batches), 1)))]
    for thread in threads:
        thread.start()
    try:
        for b in batches:
            with done:
                while b not in results:
                    done.wait()
                _, batch, error = results.pop(b)
            ready.get()
            if error is not None:
                raise error
            yield batch
    finally:
        stop.set()
        while True:
            try:
                ready.get_nowait()
            except queue.Empty:
                break
        for thread in threads:
            thread.join(timeout=5)


class _Epochs:
    """Epoch and position bookkeeping shared by the loaders: iterating yields the current
    epoch's batches from its first (or, after `load_state_dict`, from the saved position), then
    moves to the next epoch; `position` counts the epoch's batches handed out so far."""

    #: Keys of `state_dict()` a loader must agree on to resume (its other keys it adopts).
    _fixed = ()

    def _start_epochs(self):
        self.epoch = 0
        self.position = 0
        self._resume = 0

    def _new_epoch(self):
        """Called when the epoch number changes (the order of a BatchLoader depends on it)."""

    def set_epoch(self, epoch):
        """Moves to `epoch` (as PyTorch's DistributedSampler.set_epoch), from its first batch."""
        self.epoch = int(epoch)
        self.position = 0
        self._resume = 0
        self._new_epoch()

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def __iter__(self):
        """The current epoch's batches, prefetched; the next epoch starts when it is exhausted."""
        start, self._resume = self._resume, 0
        self.position = start
        for batch in _prefetched(self.__getitem__, range(start, len(self)), self.prefetch, self.workers):
            self.position += 1  # handed out: a state saved from here on resumes after it
            yield batch
        self.on_epoch_end()

    def _state(self):
        return {"loader": type(self).__name__, "epoch": self.epoch, "position": self.position}

    def state_dict(self):
        """Where the loader is (epoch, batches of it handed out, and what its order depends on),
        as plain JSON-able values: a loader built with the same arguments and given it by
        `load_state_dict` yields exactly the rest of that epoch, then continues as this one would."""
        return self._state()

    def load_state_dict(self, state):
        """Resumes at `state` (from `state_dict()`): the next iteration starts at its position.
        Raises ValueError when the state is another loader's (a different dataset, batch size,
        rank, ...): its remaining batches would not be the ones the saved run had left."""
        if state.get("loader") != type(self).__name__:
            raise ValueError("state of a %s, not a %s" % (state.get("loader"), type(self).__name__))
        mine = self._state()
        for key in self._fixed:
            if _plain(state.get(key)) != _plain(mine[key]):
                raise ValueError("cannot resume: the state has %s=%r, this loader %r" % (key, state.get(key), mine[key]))
        self._adopt(state)
        self.epoch = int(state["epoch"])
        self._new_epoch()
        self._restore(state)
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise ValueError("position %d outside the epoch's %d batches" % (position, len(self)))
        self.position = self._resume = position

    def _adopt(self, state):
        """Takes the state's order parameters (the seed) before the epoch's order is rebuilt."""

    def _restore(self, state):
        """Anything the rebuilt epoch cannot recompute (a BatchLoader's unseeded order)."""


def _plain(value):
    """Lists and tuples compare alike (a state may have been through JSON)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


class BatchLoader(_Epochs):
    """`loader[b]` is batch b as `(images, masks)`, `len(loader)` the batches per epoch,
    `on_epoch_end()` moves to the next epoch (a new order when shuffling), and iterating yields
    the epoch's batches with up to `prefetch` batches fetched ahead on background threads.

    Rank r of `world_size` gets `shard_indices(num_items, r, world_size, shuffle, seed, epoch,
    drop_last)`, as PyTorch's DistributedSampler: the items are shuffled with `seed + epoch` (the
    default seed 0 is shared by every rank, so every rank computes the same order; give every rank
    the same seed), then rank r takes every world_size-th position from r. Every rank gets the same
    number of items, hence of batches, so DDP ranks stay in step:

    - `drop_last=False` (default): the order is padded to a multiple of world_size with its first
      items, so every item is in the epoch and up to world_size - 1 items twice; a last, short
      batch is kept (DistributedSampler(drop_last=False) + DataLoader(drop_last=False));
    - `drop_last=True`: the order's last num_items % world_size items are left out of the epoch
      (no item twice), and so is a last, short batch (DistributedSampler(drop_last=True) +
      DataLoader(drop_last=True)).

    `seed=None` (entropy, a new order each run) is for a single rank only: ValueError otherwise.
    `state_dict()` / `load_state_dict()` resume mid-epoch after a restart.
    """

    _fixed = ("name", "num_items", "batch_size", "drop_last", "rank", "world_size")

    def __init__(self, client, name, batch_size, shuffle=True, seed=0, drop_last=False, rank=0, world_size=1,
                 prefetch=2, categories=None, background=None, region=None, dtype=None, workers=None, mask_format=None,
                 compression=None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError("rank must be in 0..world_size-1")
        if shuffle and seed is None and world_size > 1:
            raise ValueError("seed=None would shuffle each rank differently (overlapping shards): give every rank the "
                             "same seed (the default is 0)")
        self.client = client
        self.name = name
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.prefetch = max(0, int(prefetch))
        self.workers = workers or max(1, self.prefetch)
        self.options = dict(categories=categories, background=background, region=region, dtype=dtype,
                            mask_format=mask_format, compression=compression)
        self.num_items = client.dataset(name)["num_items"]
        self._start_epochs()
        self._order = self._make_order()

    def _make_order(self):
        return shard_indices(self.num_items, self.rank, self.world_size, self.shuffle, self.seed, self.epoch,
                             self.drop_last)

    def _new_epoch(self):
        self._order = self._make_order()

    @property
    def indices(self):
        """This rank's item indices for the current epoch, in order."""
        return self._order

    def __len__(self):
        if self.drop_last:
            return len(self._order) // self.batch_size
        return (len(self._order) + self.batch_size - 1) // self.batch_size

    def batch_indices(self, batch_index):
        if not 0 <= batch_index < len(self):
            raise IndexError("batch %d out of range (%d batches)" % (batch_index, len(self)))
        start = batch_index * self.batch_size
        return [int(i) for i in self._order[start:start + self.batch_size]]

    def __getitem__(self, batch_index):
        return self.client.batch(self.name, self.batch_indices(batch_index), **self.options)

    def _state(self):
        state = super()._state()
        state.update(name=self.name, num_items=self.num_items, batch_size=self.batch_size, drop_last=self.drop_last,
                     rank=self.rank, world_size=self.world_size, shuffle=self.shuffle, seed=self.seed)
        if self.shuffle and self.seed is None:
            state["order"] = [int(i) for i in self._order]  # drawn from entropy: not recomputable
        return state

    def _adopt(self, state):
        shuffle = bool(state["shuffle"])
        seed = None if state["seed"] is None else int(state["seed"])
        if shuffle and seed is None and self.world_size > 1:
            # Saved by a client before shared seeds: each rank's order was its own draw.
            raise ValueError("cannot resume a state without a seed on %d ranks (each rank had drawn its own order): "
                             "start its epoch again with a shared seed, loader.set_epoch(state['epoch'])" % self.world_size)
        self.shuffle = shuffle
        self.seed = seed

    def _restore(self, state):
        if "order" in state:
            self._order = np.array(state["order"], dtype=np.int64)


class PatchLoader(_Epochs):
    """Batches of patches the server samples (`Client.sample`): `batches_per_epoch` batches of
    `batch_size` patches of `patch_size`, a `foreground_fraction` of each centred on foreground.

    Batch b of epoch e on rank r is the sample seeded with `batch_seed(b)`, a hash of (seed, e, b,
    r): epochs differ, ranks draw different patches, and the same seed and epoch give the same
    batches again (on any machine, after restarts). Every rank has `batches_per_epoch` batches,
    and the default seed 0 is the same on every rank: nothing to shard, ranks stay in step. `loader[b]` is a tuple of the sample's
    members named in `keys` (default `("image", "mask")`; `keys=None` gives the whole dict, with
    `center`, `scan_index`, `aug` and `foreground`); iterating prefetches as BatchLoader does.
    `options` go to `Client.sample`: classes, scans, categories, background, dtype, mask_format,
    compression.
    """

    _fixed = ("name", "patch_size", "batch_size", "batches_per_epoch", "foreground_fraction", "rank", "world_size")

    def __init__(self, client, name, patch_size, batch_size, batches_per_epoch, seed=0, foreground_fraction=0.33,
                 rank=0, world_size=1, prefetch=2, workers=2, keys=("image", "mask"), **options):
        if batch_size < 1 or batches_per_epoch < 1:
            raise ValueError("batch_size and batches_per_epoch must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError("rank must be in 0..world_size-1")
        unknown = set(options) - {"classes", "scans", "categories", "background", "dtype", "mask_format", "compression"}
        if unknown:
            raise TypeError("unknown PatchLoader option(s): %s" % ", ".join(sorted(unknown)))
        self.client = client
        self.name = name
        self.patch_size = [int(n) for n in patch_size]
        self.batch_size = int(batch_size)
        self.batches_per_epoch = int(batches_per_epoch)
        self.seed = int(seed)
        self.foreground_fraction = float(foreground_fraction)
        self.rank = rank
        self.world_size = world_size
        self.prefetch = max(0, int(prefetch))
        self.workers = max(1, int(workers))
        self.keys = None if keys is None else tuple(keys)
        self.options = options
        self._start_epochs()

    def __len__(self):
        return self.batches_per_epoch

    def batch_seed(self, batch_index, epoch=None):
        """The sample seed of batch `batch_index` of `epoch` (default: the current one) on this
        rank: the first 63 bits of BLAKE2b over (seed, epoch, batch, rank)."""
        epoch = self.epoch if epoch is None else epoch
        text = ("medsegd PatchLoader %d %d %d %d" % (self.seed, epoch, batch_index, self.rank)).encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1

    def batch(self, batch_index):
        """Batch `batch_index` of the current epoch: the sample's whole dict of arrays."""
        if not 0 <= batch_index < len(self):
            raise IndexError("batch %d out of range (%d batches)" % (batch_index, len(self)))
        return self.client.sample(self.name, self.patch_size, self.batch_size, seed=self.batch_seed(batch_index),
                                  foreground_fraction=self.foreground_fraction, **self.options)

    def __getitem__(self, batch_index):
        members = self.batch(batch_index)
        return members if self.keys is None else tuple(members.get(key) for key in self.keys)

    def _state(self):
        state = super()._state()
        state.update(name=self.name, patch_size=list(self.patch_size), batch_size=self.batch_size,
                     batches_per_epoch=self.batches_per_epoch, foreground_fraction=self.foreground_fraction,
                     rank=self.rank, world_size=self.world_size, seed=self.seed)
        return state

    def _adopt(self, state):
        self.seed = int(state["seed"])
