"""A map-style dataset over one medsegd dataset: PyTorch-compatible without importing torch."""


class RemoteDataset:
    """`dataset[i]` is `(image, mask)` of item i (mask None when unlabeled); `len(dataset)` its size.

    Works as a `torch.utils.data.Dataset` (the protocol is just __len__ and __getitem__). The
    client's connections are per process, created after a DataLoader forks its workers.
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

    def __repr__(self):
        return "RemoteDataset(%r, %d items)" % (self.name, self._length)
