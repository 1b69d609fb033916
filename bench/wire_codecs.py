#!/usr/bin/env python3
"""What compressing each array of an item costs and saves: the measurement behind medsegd's
`compression=deflate` choice (issue 12). No server: one item made as bench/network.py makes its
dataset (a 384x384 MRI-like slice as float16, its mask collated [0,[1,2],3,[4,5]] as a uint8
label map and as a 4-channel one-hot uint8 mask, smooth blobs, mostly background), then for
each array and codec: compressed bytes, compress ms and decompress ms (process CPU time, mean of
--repeat runs). Codecs: raw deflate (zlib, wbits=-15, as in a ZIP member) at levels 1 and 6,
deflate level 1 with Z_RLE, and zstd levels 1 and 3 when the `zstandard` module is installed.

    .build/venv/bin/python bench/wire_codecs.py
"""
import argparse
import time
import zlib

import numpy as np

from network import CATEGORIES, SLICES, as_labels, blob_labels, collect_mask, one_hot
from throughput import SIDE, phantom

try:
    import zstandard
except ImportError:
    zstandard = None


def item_arrays():
    rng = np.random.default_rng(7)
    image = phantom(rng, (SIDE, SIDE, 1)).astype(np.float16)
    masks = collect_mask(one_hot(blob_labels(rng, SLICES)[:, :, SLICES // 2:SLICES // 2 + 1]), CATEGORIES).astype(np.uint8)
    return [("image 384x384x1 float16", image), ("mask labels 384x384 uint8", as_labels(masks)), ("mask one-hot 384x384x4 uint8", masks)]


def deflate(level, strategy=zlib.Z_DEFAULT_STRATEGY):
    def compress(data):
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
        return compressor.compress(data) + compressor.flush()
    return compress, lambda data: zlib.decompress(data, -15)


def zstd(level):
    compressor, decompressor = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
    return compressor.compress, decompressor.decompress


def codecs():
    found = [("deflate 1", *deflate(1)), ("deflate 6", *deflate(6)), ("deflate 1 Z_RLE", *deflate(1, zlib.Z_RLE))]
    if zstandard:
        found += [("zstd 1", *zstd(1)), ("zstd 3", *zstd(3))]
    return found


def cpu_ms(function, argument, repeat):
    function(argument)
    started = time.process_time()
    for _ in range(repeat):
        result = function(argument)
    return (time.process_time() - started) / repeat * 1000, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=200, help="runs per measurement")
    args = parser.parse_args()
    print("| array | bytes | codec | compressed bytes | ratio | compress ms | decompress ms |")
    print("|---|---|---|---|---|---|---|")
    for name, array in item_arrays():
        data = array.tobytes()
        for codec, compress, decompress in codecs():
            compress_ms, packed = cpu_ms(compress, data, args.repeat)
            decompress_ms, unpacked = cpu_ms(decompress, packed, args.repeat)
            assert unpacked == data
            print("| %s | %d | %s | %d | %.1fx | %.3f | %.3f |" % (
                name, len(data), codec, len(packed), len(data) / len(packed), compress_ms, decompress_ms))
    if not zstandard:
        print("\n(zstd skipped: the `zstandard` module is not installed)")


if __name__ == "__main__":
    main()
