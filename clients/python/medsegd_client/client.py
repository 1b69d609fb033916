"""The HTTP client: a keep-alive connection pool per process, retries, JSON errors as exceptions."""
import http.client
import json
import os
import threading
import time
import types
import urllib.parse

from . import arrays
from .buffers import ReceiveBuffers, _Received
from .errors import MedsegdError, TruncatedResponseError
from .options import _categories, _dtype, _region

RETRY_STATUSES = (502, 503, 504)
#: Array bodies at least this large are received into reused buffers (ReceiveBuffers).
REUSE_MIN_BYTES = 4 << 20

#: Wire options for a trainer on another machine than medsegd, for `RemoteDataset(client, name,
#: **REMOTE)`, `BatchLoader(..., **REMOTE)` and `client.item/batch(..., **REMOTE)`: images as
#: float16 (half of float32's bytes, rounded to 11 significant bits), masks as class indices
#: (H x W (x D) uint8: 0 where no class is set, k + 1 for class k; the target CrossEntropyLoss
#: takes), the mask deflated in the npz. Read-only; `dict(REMOTE, dtype=None)` keeps stored images.
REMOTE = types.MappingProxyType({"dtype": "float16", "mask_format": "labels", "compression": "deflate"})

#: Bodies are read in pieces of at most this many bytes (see Client._body).
BODY_PIECE = 1 << 20


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

        Connection errors are retried only before the response head arrives: a body that breaks
        off after its head (fewer bytes than its Content-Length, a chunked body without its end,
        a reset or timeout while reading it) raises TruncatedResponseError and is not requested
        again (unless its status was 502/503/504, which is retried as such).

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
            except (http.client.HTTPException, ConnectionError, OSError) as error:
                # No response head: the request may not have reached the server; sent again.
                connection.close()
                if attempt >= self.retries:
                    raise ConnectionError("medsegd at %s: %s" % (self.base_url, error)) from error
                attempt += 1
                time.sleep(self.backoff * (2 ** (attempt - 1)))
                continue
            # The head is in: the server answered. A body that fails from here on was cut (or
            # stalled) by the server or the network, and is not downloaded again blindly.
            received = _Received()
            try:
                data = self._body(reply, reuse and reply.status == 200, received)
            except (http.client.HTTPException, OSError) as error:
                connection.close()
                if reply.status not in RETRY_STATUSES:
                    raise self._truncated(reply, url, received, error) from error
                data = b""  # a 502/503/504 asks for a retry anyway (below); its cut body said why
            else:
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

    @staticmethod
    def _content_length(reply):
        """The Content-Length of a body that is not chunked, else None."""
        length = reply.getheader("Content-Length")
        if reply.chunked or length is None or not length.strip().isdigit():
            return None
        return int(length)

    def _body(self, reply, reuse, received):
        """The body, counting the bytes received in `received` (for the error when it is cut);
        with `reuse`, into a reused buffer when it is large and its length is known. Read in
        pieces of at most BODY_PIECE bytes: a piece that fails midway (a reset, a timeout) loses
        its count, one that ends early (the connection closed) does not."""
        length = self._content_length(reply)
        if reply.chunked:
            parts = []
            while True:
                try:
                    part = reply.read(BODY_PIECE)
                except http.client.IncompleteRead as error:
                    # The cut chunk's bytes are in the IncompleteRead it raised from (its __cause__; __context__ before 3.11).
                    inner = error.__cause__ or error.__context__
                    cause = inner if isinstance(inner, http.client.IncompleteRead) else None
                    received.bytes += len(error.partial) + (len(cause.partial) if cause is not None else 0)
                    raise
                except OSError:
                    received.exact = False
                    raise
                if not part:
                    return b"".join(parts)
                received.bytes += len(part)
                parts.append(part)
        if not reuse or length is None or length < REUSE_MIN_BYTES:
            try:
                data = reply.read()
            except http.client.IncompleteRead as error:
                received.bytes = len(error.partial)
                raise
            except OSError:
                received.bytes = None  # what the socket had delivered is lost with the error
                raise
            received.bytes = len(data)
            return data
        view = self._buffers.take(length)
        while received.bytes < length:
            try:
                n = reply.readinto(view[received.bytes:received.bytes + BODY_PIECE])
            except OSError:
                received.exact = False
                raise
            if not n:
                raise http.client.IncompleteRead(b"", length - received.bytes)
            received.bytes += n
        return view.toreadonly()

    def _truncated(self, reply, url, received, error):
        reason = "timed out" if isinstance(error, TimeoutError) else type(error).__name__
        if str(error) and not isinstance(error, (http.client.IncompleteRead, TimeoutError)):
            reason += ": %s" % error
        return TruncatedResponseError(reply.status, url, received.bytes, self._content_length(reply), reason,
                                      received.exact)

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
