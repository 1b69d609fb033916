"""Batches in the Keras `Sequence` style MedSegPy's loaders use, with sharding and prefetch."""
import queue
import threading

import numpy as np


class BatchLoader:
    """`loader[b]` is batch b as `(images, masks)`, `len(loader)` the batches per epoch,
    `on_epoch_end()` moves to the next epoch (a new order when shuffling), and iterating yields
    the epoch's batches with up to `prefetch` batches fetched ahead on background threads.

    Items are shuffled with `seed` (the same order on every rank), then rank r of `world_size`
    takes every world_size-th item: ranks see disjoint items. `drop_last` drops a last, short batch.
    """

    def __init__(self, client, name, batch_size, shuffle=True, seed=None, drop_last=False, rank=0, world_size=1,
                 prefetch=2, categories=None, background=None, region=None, dtype=None, workers=None, mask_format=None,
                 compression=None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError("rank must be in 0..world_size-1")
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
        self.epoch = 0
        self._order = self._make_order()

    def _make_order(self):
        order = np.arange(self.num_items)
        if self.shuffle:
            seed = None if self.seed is None else self.seed + self.epoch
            np.random.default_rng(seed).shuffle(order)
        return order[self.rank::self.world_size]

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

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._make_order()

    def __iter__(self):
        """The current epoch's batches, prefetched; the next epoch starts when it is exhausted."""
        count = len(self)
        if self.prefetch == 0:
            for b in range(count):
                yield self[b]
            self.on_epoch_end()
            return
        ready = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        next_batch = iter(range(count))
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
                    value = (b, self[b], None)
                except BaseException as error:  # surfaced in the consumer
                    value = (b, None, error)
                with done:
                    results[b] = value
                    done.notify_all()
                # Bound how far ahead the workers run.
                ready.put(b)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(min(self.workers, max(count, 1)))]
        for thread in threads:
            thread.start()
        try:
            for b in range(count):
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
        self.on_epoch_end()
