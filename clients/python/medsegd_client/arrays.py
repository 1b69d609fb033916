"""Decoding medsegd's array bodies without copies: numpy views of the received bytes."""
import ast
import zlib

import numpy as np


def from_raw(body, dtype, shape):
    """A raw body (Accept: application/octet-stream) with its X-Tensor-Dtype/-Shape headers."""
    dims = tuple(int(n) for n in shape.split(",")) if shape else ()
    return np.frombuffer(body, dtype=np.dtype(dtype)).reshape(dims)


def _npy_at(buffer, offset):
    """The array of the .npy file starting at `offset` in `buffer` (a view of it, not a copy),
    and where its data ends."""
    view = memoryview(buffer)
    if bytes(view[offset:offset + 6]) != b"\x93NUMPY":
        raise ValueError("not an .npy file")
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
    if data + count * dtype.itemsize > len(view):
        raise ValueError("the .npy header announces %d bytes of %s %s, only %d follow"
                         % (count * dtype.itemsize, dtype.str, shape, len(view) - data))
    array = np.frombuffer(buffer, dtype=dtype, count=count, offset=data).reshape(shape)
    return array, data + count * dtype.itemsize


def _u16(view, at):
    return int.from_bytes(view[at:at + 2], "little")


def _u32(view, at):
    return int.from_bytes(view[at:at + 4], "little")


def _u64(view, at):
    return int.from_bytes(view[at:at + 8], "little")


def _directory(view):
    """(number of entries, offset) of the ZIP central directory, from the end record and, when
    its fields are saturated, the ZIP64 end record."""
    start = max(0, len(view) - 22 - 0xFFFF)  # the end record, then a comment of up to 64 KiB
    end = bytes(view[start:]).rfind(b"PK\x05\x06", 0, len(view) - start - 18)  # a whole record of 22 bytes
    if end < 0:
        raise ValueError("no ZIP end of central directory record (not a whole archive?)")
    end += start
    count, offset = _u16(view, end + 10), _u32(view, end + 16)
    if count == 0xFFFF or offset == 0xFFFFFFFF:
        locator = end - 20
        if locator < 0 or _u32(view, locator) != 0x07064B50:
            raise ValueError("the end record's fields are saturated but no ZIP64 locator precedes it")
        record = _u64(view, locator + 8)
        if _u32(view, record) != 0x06064B50:
            raise ValueError("no ZIP64 end of central directory record at byte %d" % record)
        count, offset = _u64(view, record + 32), _u64(view, record + 48)
    return count, offset


def _entries(view):
    """(name, method, flags, crc, compressed size, size, local header offset) of each member,
    from the central directory: with data descriptors (flag bit 3) it is the only place before
    the data that has a deflated member's sizes."""
    count, position = _directory(view)
    for _ in range(count):
        if _u32(view, position) != 0x02014B50:
            raise ValueError("no central directory entry at byte %d" % position)
        flags, method, crc = _u16(view, position + 8), _u16(view, position + 10), _u32(view, position + 16)
        compressed, size, local = _u32(view, position + 20), _u32(view, position + 24), _u32(view, position + 42)
        name_length, extra_length = _u16(view, position + 28), _u16(view, position + 30)
        comment_length = _u16(view, position + 32)
        name = bytes(view[position + 46:position + 46 + name_length]).decode("utf-8")
        extra = position + 46 + name_length
        if 0xFFFFFFFF in (size, compressed, local):
            # ZIP64 extended information: the saturated fields, in this order, as 8-byte values.
            at, stop = extra, extra + extra_length
            while at + 4 <= stop and _u16(view, at) != 0x0001:
                at += 4 + _u16(view, at + 2)
            if at + 4 > stop:
                raise ValueError("member %r: saturated sizes without a ZIP64 extra field" % name)
            field = at + 4
            if size == 0xFFFFFFFF:
                size, field = _u64(view, field), field + 8
            if compressed == 0xFFFFFFFF:
                compressed, field = _u64(view, field), field + 8
            if local == 0xFFFFFFFF:
                local = _u64(view, field)
        yield name, method, flags, crc, compressed, size, local
        position = extra + extra_length + comment_length


def from_npz(body):
    """The members of medsegd's .npz as a dict of arrays, without copies.

    Members are found through the ZIP central directory (ZIP64 too). A stored member (method 0)
    is a numpy view of `body`; a deflated one (method 8, `compression=deflate`) is inflated once
    into a bytes object of the size the directory gives, checked against its CRC-32 (raw deflate
    has no checksum of its own; the check costs about 5% of inflating), and viewed.
    """
    view = memoryview(body)
    arrays = {}
    for name, method, flags, crc, compressed, size, local in _entries(view):
        try:
            if _u32(view, local) != 0x04034B50:
                raise ValueError("no local header at byte %d" % local)
            data = local + 30 + _u16(view, local + 26) + _u16(view, local + 28)
            if flags & 0x01:
                raise ValueError("encrypted")
            if method == 0:
                array, end = _npy_at(body, data)
                if end - data != size:
                    raise ValueError("its .npy is %d bytes, the directory says %d" % (end - data, size))
            elif method == 8:
                inflated = zlib.decompress(view[data:data + compressed], -15, bufsize=max(size, 1))
                if len(inflated) != size:
                    raise ValueError("inflates to %d bytes, the directory says %d" % (len(inflated), size))
                if zlib.crc32(inflated) != crc:
                    raise ValueError("CRC-32 %08x of the inflated bytes, the directory says %08x" % (zlib.crc32(inflated), crc))
                array, end = _npy_at(inflated, 0)
                if end != size:
                    raise ValueError("its .npy is %d bytes, inflated %d" % (end, size))
            else:
                raise ValueError("compression method %d (only 0, stored, and 8, deflate, are read)" % method)
        except (ValueError, IndexError, SyntaxError, zlib.error) as error:
            raise ValueError("npz member %r: %s" % (name, error)) from error
        arrays[name[:-4] if name.endswith(".npy") else name] = array
    return arrays
