"""Sharding items over distributed ranks as PyTorch's `DistributedSampler` does, without torch:
every rank computes the same permutation (from a shared seed and the epoch) and takes every
world_size-th index of it, after padding or trimming it so that every rank gets the same count."""
import sys

import numpy as np


def shard_indices(num_items, rank=0, world_size=1, shuffle=True, seed=0, epoch=0, drop_last=False):
    """Rank `rank`'s item indices of epoch `epoch`, in order, as an int64 array.

    The permutation is `numpy.random.default_rng(seed + epoch)` shuffling 0..num_items-1 (with
    `shuffle`; else 0..num_items-1 in order), the same on every rank given the same seed. Then,
    as `DistributedSampler`:

    - `drop_last=False`: the permutation is padded to the next multiple of `world_size` by
      repeating its first items (its start again, cyclically when world_size > num_items), so
      every item is seen and up to world_size - 1 are seen twice per epoch;
    - `drop_last=True`: its last num_items % world_size items are left out for this epoch, so
      no item is seen twice;

    and rank r takes positions r, r + world_size, r + 2 world_size, ...: every rank has the same
    number of indices (ceil or floor of num_items / world_size) and the ranks' indices are
    disjoint positions of the permutation. `seed=None` draws the permutation from entropy: only
    for a single rank (each rank would draw its own)."""
    num_items, rank, world_size = int(num_items), int(rank), int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError("rank must be in 0..world_size-1 (rank %d, world_size %d)" % (rank, world_size))
    if num_items < 0:
        raise ValueError("num_items must not be negative")
    if shuffle and seed is None and world_size > 1:
        raise ValueError("seed=None draws a different order on each rank: give every rank the same seed")
    order = np.arange(num_items, dtype=np.int64)
    if shuffle:
        np.random.default_rng(None if seed is None else int(seed) + int(epoch)).shuffle(order)
    if drop_last:
        total = num_items - num_items % world_size
        order = order[:total]
    else:
        total = -(-num_items // world_size) * world_size
        if total > num_items:  # num_items > 0 here: 0 items need no padding
            order = np.concatenate([order, np.resize(order, total - num_items)])
    return order[rank:total:world_size]


def _process_group():
    """(rank, world_size) of torch.distributed's default process group when torch is already
    imported and the group initialized (torch is never imported here); else None."""
    distributed = sys.modules.get("torch.distributed")
    try:
        if distributed is not None and distributed.is_available() and distributed.is_initialized():
            return distributed.get_rank(), distributed.get_world_size()
    except Exception:  # a stand-in module, or a group being torn down
        return None
    return None


class ShardSampler:
    """A sampler with `torch.utils.data.DistributedSampler`'s semantics and protocol (`__iter__`,
    `__len__`, `set_epoch`), without importing torch: pass it as `sampler=` to a DataLoader over a
    `RemoteDataset` (or any sized dataset) in each DDP rank.

    `dataset` is a sized dataset or the number of items. `rank` and `world_size` (PyTorch's
    `num_replicas`) default, as in PyTorch, to the initialized default process group's when torch
    is already imported; otherwise they must be given. `seed` must be the same on every rank
    (default 0, as PyTorch's). Iterating yields `shard_indices(len(dataset), rank, world_size,
    shuffle, seed, epoch, drop_last)` as ints: every rank the same number (`len(sampler)`),
    padded with repeats of the permutation's first items (`drop_last=False`) or with the
    permutation's tail left out (`drop_last=True`). Call `set_epoch(e)` before each epoch's
    iteration, as with DistributedSampler, for a new order each epoch."""

    def __init__(self, dataset, rank=None, world_size=None, shuffle=True, seed=0, drop_last=False):
        if rank is None or world_size is None:
            group = _process_group()
            if group is None:
                raise ValueError("give rank and world_size (no initialized torch.distributed process group)")
            rank = group[0] if rank is None else rank
            world_size = group[1] if world_size is None else world_size
        self.num_items = dataset if isinstance(dataset, (int, np.integer)) else len(dataset)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.drop_last = bool(drop_last)
        self.epoch = 0
        shard_indices(0, self.rank, self.world_size, self.shuffle, self.seed)  # checks the arguments

    #: PyTorch's name for world_size.
    @property
    def num_replicas(self):
        return self.world_size

    def set_epoch(self, epoch):
        """The epoch whose order the next iterations give (seeded with seed + epoch)."""
        self.epoch = int(epoch)

    @property
    def indices(self):
        """This rank's indices for the current epoch, in order (an int64 array)."""
        return shard_indices(self.num_items, self.rank, self.world_size, self.shuffle, self.seed, self.epoch,
                             self.drop_last)

    def __iter__(self):
        return iter(self.indices.tolist())

    def __len__(self):
        if self.drop_last:
            return self.num_items // self.world_size
        return -(-self.num_items // self.world_size)

    def __repr__(self):
        return "ShardSampler(%d items, rank %d of %d, shuffle=%s, seed=%r, drop_last=%s, epoch %d)" % (
            self.num_items, self.rank, self.world_size, self.shuffle, self.seed, self.drop_last, self.epoch)
