"""Decoding medsegd's array bodies without copies: numpy views of the received bytes."""
import ast

import numpy as np


def from_raw(body, dtype, shape):
    """A raw body (Accept: application/octet-stream) with its X-Tensor-Dtype/-Shape headers."""
    dims = tuple(int(n) for n in shape.split(",")) if shape else ()
    return np.frombuffer(body, dtype=np.dtype(dtype)).reshape(dims)


def _npy_at(view, offset):
    """The array of the .npy file starting at `offset`, and where its data ends."""
    if bytes(view[offset:offset + 6]) != b"\x93NUMPY":
        raise ValueError("not an .npy member")
    major = view[offset + 6]
    if major == 1:
        header_length = int.from_bytes(view[offset + 8:offset + 10], "little")
        start = offset + 10
    else:
        header_length = int.from_bytes(view[offset + 8:offset + 12], "little")
        start = offset + 12
    header = ast.literal_eval(bytes(view[start:start + header_length]).decode("latin1"))
    if header.get("fortran_order"):
        raise ValueError("fortran-order arrays are not sent by medsegd")
    dtype = np.dtype(header["descr"])
    shape = tuple(header["shape"])
    count = int(np.prod(shape)) if shape else 1
    data = start + header_length
    array = np.frombuffer(view, dtype=dtype, count=count, offset=data).reshape(shape)
    return array, data + count * dtype.itemsize


def from_npz(body):
    """The members of medsegd's uncompressed .npz as a dict of numpy views of `body`.

    Walks the ZIP local headers (medsegd writes stored members with data descriptors); any other
    archive falls back to numpy's own reader.
    """
    view = memoryview(body)
    arrays, position = {}, 0
    try:
        while position + 30 <= len(view) and int.from_bytes(view[position:position + 4], "little") == 0x04034B50:
            method = int.from_bytes(view[position + 8:position + 10], "little")
            if method != 0:
                raise ValueError("compressed member")
            flags = int.from_bytes(view[position + 6:position + 8], "little")
            name_length = int.from_bytes(view[position + 26:position + 28], "little")
            extra_length = int.from_bytes(view[position + 28:position + 30], "little")
            name = bytes(view[position + 30:position + 30 + name_length]).decode("utf-8")
            array, end = _npy_at(view, position + 30 + name_length + extra_length)
            arrays[name[:-4] if name.endswith(".npy") else name] = array
            position = end
            if flags & 0x08:
                # A data descriptor follows: 16 bytes, or 24 with ZIP64 sizes. The next record's
                # signature tells which.
                following = int.from_bytes(view[position + 16:position + 20], "little")
                position += 16 if following in (0x04034B50, 0x02014B50) else 24
        return arrays
    except (ValueError, IndexError, SyntaxError):
        import io
        with np.load(io.BytesIO(bytes(body))) as archive:
            return {name: archive[name] for name in archive.files}
