"""The HTTP client: a keep-alive connection pool per process, retries, JSON errors as exceptions."""
import http.client
import json
import os
import threading
import time
import types
import urllib.parse

from . import arrays

RETRY_STATUSES = (502, 503, 504)
#: Array bodies at least this large are received into reused buffers (ReceiveBuffers).
REUSE_MIN_BYTES = 4 << 20

#: Wire options for a trainer on another machine than medsegd, for `RemoteDataset(client, name,
#: **REMOTE)`, `BatchLoader(..., **REMOTE)` and `client.item/batch(..., **REMOTE)`: images as
#: float16 (half of float32's bytes, rounded to 11 significant bits), masks as class indices
#: (H x W (x D) uint8: 0 where no class is set, k + 1 for class k; the target CrossEntropyLoss
#: takes), the mask deflated in the npz. Read-only; `dict(REMOTE, dtype=None)` keeps stored images.
REMOTE = types.MappingProxyType({"dtype": "float16", "mask_format": "labels", "compression": "deflate"})


class MedsegdError(Exception):
    """An error answer from medsegd, with the contract's code (`not_found`, `bad_request`, ...)."""

    def __init__(self, status, code, message):
        super().__init__("%s (%d): %s" % (code, status, message))
        self.status = status
        self.code = code
        self.message = message


def _region(region):
    """`region=` in Python slice syntax, from a string or a tuple of slices and ints."""
    if region is None or isinstance(region, str):
        return region
    if not isinstance(region, tuple):
        region = (region,)
    parts = []
    for component in region:
        if isinstance(component, slice):
            text = "%s:%s" % ("" if component.start is None else component.start, "" if component.stop is None else component.stop)
            if component.step is not None:
                text += ":%d" % component.step
            parts.append(text)
        elif isinstance(component, int):
            parts.append(str(component))
        else:
            raise TypeError("region components are slices or ints, not %r" % (component,))
    return ",".join(parts)


def _dtype(dtype):
    """A NumPy dtype, type or name as medsegd's name for it (`float32`, `uint8`, `bool`)."""
    if dtype is None:
        return None
    import numpy as np
    return np.dtype(dtype).name


def _categories(categories):
    """MedSegPy's index, e.g. [0, (1, 2), 3], as the JSON medsegd takes."""
    if categories is None:
        return None
    if isinstance(categories, int):
        return categories
    return [list(c) if isinstance(c, (tuple, list)) else int(c) for c in categories]


class ReceiveBuffers:
    """Buffers large array bodies are received into, each reused once no array views it any more.

    A fresh buffer of tens of MB costs the kernel a page fault per 4 KiB page and zeroing (glibc
    maps allocations over 32 MiB anew each time): receiving a 33 MB sample into a reused buffer
    takes about a quarter of the CPU. Arrays are read-only views of the buffer and keep it
    exported; a bytearray with exports cannot be resized, which is how a free one is told apart.
    Keeps up to `count` buffers."""

    def __init__(self, count=4):
        self.count = count
        self._lock = threading.Lock()
        self._buffers = []

    @staticmethod
    def _free(buffer):
        try:  # each buffer has a spare last byte: popping and re-appending it never reallocates
            buffer.append(buffer.pop())
            return True
        except BufferError:
            return False

    def take(self, size):
        """A writable memoryview of `size` bytes over a free buffer (exported before the lock
        is released, so no other thread can take it)."""
        with self._lock:
            for buffer in self._buffers:
                if size < len(buffer) <= 2 * size + 1 and self._free(buffer):
                    return memoryview(buffer)[:size]
            buffer = bytearray(size + 1)
            free = [b for b in self._buffers if self._free(b)]
            if len(self._buffers) >= self.count and free:
                self._buffers.remove(min(free, key=len))
            if len(self._buffers) < self.count:
                self._buffers.append(buffer)
            return memoryview(buffer)[:size]


class Client:
    """A medsegd client. Safe to share between threads; after a fork, each process builds its own
    connections (lazily), so it also works in PyTorch DataLoader workers."""

    def __init__(self, base_url, token=None, timeout=60.0, retries=3, backoff=0.2, pool_size=8, pending_retries=60,
                 max_retry_after=30.0):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError("base_url must be http:// or https://, not %r" % base_url)
        self.base_url = base_url.rstrip("/")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._prefix = parsed.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.pool_size = pool_size
        #: 503s with Retry-After from the fingerprint and sample routes (the dataset's fingerprint
        #: pass is still running) are waited out this many times, Retry-After seconds each.
        self.pending_retries = pending_retries
        #: The longest Retry-After honoured, in seconds (a longer one is cut to this).
        self.max_retry_after = max_retry_after
        self._lock = threading.Lock()
        self._pool = []
        self._buffers = ReceiveBuffers()
        self._pid = os.getpid()

    # -- connections ------------------------------------------------------------------------

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pool"] = []
        del state["_lock"], state["_buffers"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._buffers = ReceiveBuffers()

    def _connection(self):
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's sockets are not ours to use.
                self._pool = []
                self._pid = os.getpid()
            if self._pool:
                return self._pool.pop()
        kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.timeout)

    def _release(self, connection):
        with self._lock:
            if self._pid == os.getpid() and len(self._pool) < self.pool_size:
                self._pool.append(connection)
                return
        connection.close()

    def close(self):
        with self._lock:
            pool, self._pool = self._pool, []
        for connection in pool:
            connection.close()

    def request(self, method, path, query=None, body=None, accept=None, pending_retries=0, reuse=False):
        """One request with retries on connection errors and 502/503/504; returns (headers, body).

        Every route medsegd has only reads, so POSTs (batch, sample) are retried like GETs. A
        503's Retry-After (seconds, at most `max_retry_after`) is the delay before the next
        attempt, else the exponential backoff. `pending_retries` more 503s with Retry-After are
        waited out on top of `retries` (the fingerprint and sample routes, while the dataset's
        fingerprint pass runs). With `reuse`, a successful body of REUSE_MIN_BYTES or more is a
        read-only memoryview of a reused receive buffer (for arrays; JSON needs bytes)."""
        url = self._prefix + path
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        headers = {}
        if accept:
            headers["Accept"] = accept
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        attempt = 0
        pending = 0
        while True:
            connection = self._connection()
            try:
                connection.request(method, url, body=body, headers=headers)
                reply = connection.getresponse()
                data = self._read(reply) if reuse and reply.status == 200 else reply.read()
            except (http.client.HTTPException, ConnectionError, OSError) as error:
                connection.close()
                if attempt >= self.retries:
                    raise ConnectionError("medsegd at %s: %s" % (self.base_url, error)) from error
                attempt += 1
                time.sleep(self.backoff * (2 ** (attempt - 1)))
                continue
            if reply.will_close:
                connection.close()
            else:
                self._release(connection)
            if reply.status in RETRY_STATUSES:
                delay = self._retry_after(reply) if reply.status == 503 else None
                if delay is not None and pending < pending_retries:
                    pending += 1
                    time.sleep(delay)
                    continue
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * (2 ** (attempt - 1)) if delay is None else delay)
                    continue
            if reply.status >= 400:
                raise self._error(reply.status, data)
            return reply, data

    def _read(self, reply):
        """The body, into a reused buffer when it is large and its length is known."""
        length = reply.getheader("Content-Length")
        if length is None or not length.isdigit() or int(length) < REUSE_MIN_BYTES:
            return reply.read()
        size = int(length)
        view = self._buffers.take(size)
        got = 0
        while got < size:
            n = reply.readinto(view[got:])
            if not n:
                raise http.client.IncompleteRead(b"", size - got)
            got += n
        return view.toreadonly()

    def _retry_after(self, reply):
        """A Retry-After header in seconds (HTTP dates are not sent by medsegd), capped at
        `max_retry_after`; None when absent or not a number."""
        value = reply.getheader("Retry-After")
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return None
        if seconds != seconds or seconds < 0:  # NaN or negative
            return None
        return min(seconds, self.max_retry_after)

    @staticmethod
    def _error(status, data):
        try:
            error = json.loads(data)["error"]
            return MedsegdError(status, error.get("code", "unknown"), error.get("message", ""))
        except (ValueError, KeyError, TypeError):
            return MedsegdError(status, "unknown", data[:200].decode("utf-8", "replace"))

    def _json(self, path, **query):
        _, data = self.request("GET", path, query)
        return json.loads(data)

    @staticmethod
    def _quote(name):
        return urllib.parse.quote(str(name), safe="")

    # -- catalog ----------------------------------------------------------------------------

    def datasets(self):
        return self._json("/v1/datasets")["datasets"]

    def dataset(self, name):
        return self._json("/v1/datasets/" + self._quote(name))

    def metadata(self, name):
        """The MetadataCatalog entry as MedSegPy holds it: collated ids as tuples and
        `category_id_to_contiguous_id` as a dict (tuple keys for collated ids)."""
        meta = self._json("/v1/datasets/%s/metadata" % self._quote(name))

        def key(value):
            return tuple(value) if isinstance(value, list) else value

        meta["category_ids"] = [key(i) for i in meta.get("category_ids", [])]
        meta["category_id_to_contiguous_id"] = {key(i): c for i, c in meta.get("category_id_to_contiguous_id", [])}
        return meta

    def dicts(self, name, scan_id=None, subject_id=None, time_point=None, aug=None, offset=None, limit=None):
        return self._json("/v1/datasets/%s/dicts" % self._quote(name), scan_id=scan_id, subject_id=subject_id,
                          time_point=time_point, aug=aug, offset=offset, limit=limit)

    def scans(self, name):
        return self._json("/v1/datasets/%s/scans" % self._quote(name))

    def __len__(self):
        raise TypeError("use len(client.dicts(name)) or client.dataset(name)['num_items']")

    # -- arrays -----------------------------------------------------------------------------

    def _array(self, path, query):
        reply, data = self.request("GET", path, query, accept="application/octet-stream", reuse=True)
        return arrays.from_raw(data, reply.getheader("X-Tensor-Dtype"), reply.getheader("X-Tensor-Shape"))

    @staticmethod
    def _options(categories=None, background=None, region=None, dtype=None, mask_format=None, compression=None):
        categories = _categories(categories)
        return {
            "categories": None if categories is None else json.dumps(categories, separators=(",", ":")),
            "background": background,
            "region": _region(region),
            "dtype": _dtype(dtype),
            "mask_format": mask_format,
            "compression": compression,
        }

    def image(self, name, index, region=None, dtype=None):
        """Item `index`'s image (2D: H x W x 1; 3D: H x W x D), as stored unless `dtype` is given."""
        return self._array("/v1/datasets/%s/items/%d/image" % (self._quote(name), index), self._options(region=region, dtype=dtype))

    def mask(self, name, index, categories=None, background=None, region=None, mask_format=None):
        """Item `index`'s mask collated as MedSegPy's collect_mask (default: the dataset's ids);
        `mask_format="labels"` gives class indices instead of channels (H x W, uint8 or uint16)."""
        return self._array("/v1/datasets/%s/items/%d/mask" % (self._quote(name), index),
                           self._options(categories, background, region, mask_format=mask_format))

    def item(self, name, index, categories=None, background=None, region=None, dtype=None, mask_format=None,
             compression=None):
        """(image, mask) in one request; mask is None for an unlabeled item. `compression="deflate"`
        deflates the mask on the wire (the image stays stored)."""
        _, data = self.request("GET", "/v1/datasets/%s/items/%d" % (self._quote(name), index),
                               self._options(categories, background, region, dtype, mask_format, compression),
                               accept="application/x-npz", reuse=True)
        members = arrays.from_npz(data)
        return members["image"], members.get("mask")

    def volume(self, name, scan_id, aug=0, region=None, dtype=None):
        """A scan's whole volume (2D datasets: slices stacked to H x W x D)."""
        query = self._options(region=region, dtype=dtype)
        query["aug"] = aug
        return self._array("/v1/datasets/%s/scans/%s/image" % (self._quote(name), self._quote(scan_id)), query)

    def volume_mask(self, name, scan_id, aug=0, categories=None, background=None, region=None, mask_format=None):
        """A scan's collated mask volume (H x W x D x C'; H x W x D class indices with
        `mask_format="labels"`)."""
        query = self._options(categories, background, region, mask_format=mask_format)
        query["aug"] = aug
        return self._array("/v1/datasets/%s/scans/%s/mask" % (self._quote(name), self._quote(scan_id)), query)

    def batch(self, name, indices, categories=None, background=None, region=None, dtype=None, mask_format=None,
              compression=None):
        """(images, masks) of many items, stacked: N x ... each."""
        body = {"indices": [int(i) for i in indices]}
        if categories is not None:
            body["categories"] = _categories(categories)
        options = self._options(None, background, region, dtype, mask_format, compression)
        body.update((key, value) for key, value in options.items() if value is not None)
        _, data = self.request("POST", "/v1/datasets/%s/batch" % self._quote(name), body=body, accept="application/x-npz",
                               reuse=True)
        members = arrays.from_npz(data)
        return members["image"], members["mask"]

    # -- fingerprints and patches -------------------------------------------------------------

    def fingerprint(self, name, scan_id=None, aug=0):
        """The dataset's fingerprint (per volume in `scans`, and aggregated: shapes, dtypes,
        intensity statistics, voxels per channel and class), or one volume's with `scan_id`.
        Waits while the server computes it (503 + Retry-After, up to `pending_retries` times).
        Intensity values the server sends as strings ("Infinity", "-Infinity", "NaN") are floats."""
        if scan_id is None:
            path, query = "/v1/datasets/%s/fingerprint" % self._quote(name), None
        else:
            path = "/v1/datasets/%s/scans/%s/fingerprint" % (self._quote(name), self._quote(scan_id))
            query = {"aug": int(aug)}
        _, data = self.request("GET", path, query, pending_retries=self.pending_retries)
        fingerprint = json.loads(data)
        for entry in [fingerprint] + list(fingerprint.get("scans", [])):
            intensity = entry.get("intensity")
            if isinstance(intensity, dict):
                entry["intensity"] = {k: float(v) if isinstance(v, str) else v for k, v in intensity.items()}
        return fingerprint

    def sample(self, name, patch_size, count, seed=0, foreground_fraction=0.0, classes=None, scans=None,
               categories=None, background=None, dtype=None, mask_format=None, compression=None):
        """`count` patches of `patch_size` (3 sides; 2 give 2D patches of the centre's slice)
        drawn by the server from the dataset's volumes, the last round(count x
        foreground_fraction) centred on a voxel of one of `classes` (positions in the
        categories); the same arguments give the same patches. Returns a dict of arrays:
        `image` (N x patch), `mask` (N x patch x C', or N x patch with mask_format="labels";
        absent for unlabeled volumes), `scan_index`, `aug`, `center` (N x 3), `foreground`.
        Waits while the dataset's fingerprint is computed (503 + Retry-After)."""
        body = {"patch_size": [int(n) for n in patch_size], "count": int(count), "seed": int(seed),
                "foreground_fraction": float(foreground_fraction)}
        if classes is not None:
            body["classes"] = [int(k) for k in classes]
        if scans is not None:
            body["scans"] = [str(s) for s in scans]
        if categories is not None:
            body["categories"] = _categories(categories)
        options = self._options(None, background, None, dtype, mask_format, compression)
        body.update((key, value) for key, value in options.items() if value is not None)
        _, data = self.request("POST", "/v1/datasets/%s/sample" % self._quote(name), body=body,
                               accept="application/x-npz", pending_retries=self.pending_retries, reuse=True)
        return arrays.from_npz(data)
