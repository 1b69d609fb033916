"""A map-style dataset over one medsegd dataset: PyTorch-compatible without importing torch."""
from .sampler import ShardSampler, shard_indices


class RemoteDataset:
    """`dataset[i]` is `(image, mask)` of item i (mask None when unlabeled); `len(dataset)` its size.

    Works as a `torch.utils.data.Dataset` (the protocol is just __len__ and __getitem__). The
    client's connections are per process, created after a DataLoader forks its workers. With
    DDP, give each rank's DataLoader `sampler=dataset.sampler(rank, world_size)` (PyTorch's
    DistributedSampler semantics, see `ShardSampler`) and call its `set_epoch(e)` every epoch.
    """

    def __init__(self, client, name, categories=None, background=None, region=None, dtype=None, mask_format=None,
                 compression=None):
        self.client = client
        self.name = name
        self.categories = categories
        self.background = background
        self.region = region
        self.dtype = dtype
        self.mask_format = mask_format
        self.compression = compression
        self._length = client.dataset(name)["num_items"]

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        index = int(index)
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("index out of range for dataset %r of %d items" % (self.name, self._length))
        return self.client.item(self.name, index, self.categories, self.background, self.region, self.dtype,
                                self.mask_format, self.compression)

    def sampler(self, rank=None, world_size=None, shuffle=True, seed=0, drop_last=False):
        """A `ShardSampler` over this dataset for rank `rank` of `world_size`: DistributedSampler's
        semantics (the same seed on every rank, default 0; every rank the same number of indices,
        padded with the permutation's first items, or its tail left out with `drop_last`)."""
        return ShardSampler(self, rank, world_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def shard(self, rank, world_size, seed=0, epoch=0, drop_last=False, shuffle=True):
        """Rank `rank`'s item indices of `epoch` as a list, what `sampler(...)` yields after
        `set_epoch(epoch)` (see `shard_indices`)."""
        return shard_indices(self._length, rank, world_size, shuffle, seed, epoch, drop_last).tolist()

    def __repr__(self):
        return "RemoteDataset(%r, %d items)" % (self.name, self._length)
