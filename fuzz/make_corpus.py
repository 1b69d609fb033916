#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (fuzz/corpus/<target>/): small real inputs of every kind,
HDF5 files written with h5py in the layouts MedSegPy data uses and in the ones medsegd refuses.
Run once; the output is committed.    .build/venv/bin/python fuzz/make_corpus.py"""
import glob
import os
import shutil

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def seed(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def hdf5(name, build):
    folder = os.path.join(CORPUS, "hdf5")
    os.makedirs(folder, exist_ok=True)
    with h5py.File(os.path.join(folder, name), "w") as f:
        build(f)


def main():
    # Inputs the fuzzers found are kept (regression-*): they are not made here.
    kept = {}
    for path in glob.glob(os.path.join(CORPUS, "*", "regression-*")):
        kept[path] = open(path, "rb").read()
    shutil.rmtree(CORPUS, ignore_errors=True)
    for path, data in kept.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").write(data)
    for name, body in [
        ("basic", '{"patch_size": [64, 64, 32], "count": 8, "seed": 7, "foreground_fraction": 0.33}'),
        ("two-d", '{"patch_size": [32, 32], "count": 3, "classes": [0, 2], "mask_format": "labels", "background": "last"}'),
        ("all-keys", '{"patch_size": [1, 1, 1], "count": 1, "seed": 0, "foreground_fraction": 1, "classes": [3], "scans": ["0000001_V00"],'
                     ' "categories": [0, [1, 2]], "background": "first", "dtype": "float16", "compression": "deflate"}'),
    ]:
        seed("sample", name, body)
    for name, query in [
        ("default", ""),
        ("all", "window=0:1200&categories=[0,[1,2]]&classes=0,1&opacity=0.7&outline=1&size=2&slice=-1&axis=1&background=last"),
        ("auto", "window=auto&size=4096&opacity=0"),
    ]:
        seed("preview", name, query)
    rng = np.random.default_rng(7)
    image = rng.standard_normal((8, 6, 1)).astype(np.float32)
    mask = (rng.random((8, 6, 1, 3)) > 0.6).astype(np.uint8)
    hdf5("image_contiguous.h5", lambda f: f.create_dataset("data", data=image))
    hdf5("mask_contiguous.h5", lambda f: f.create_dataset("data", data=mask))
    hdf5("mask_gzip_shuffle.h5", lambda f: f.create_dataset("data", data=mask, chunks=(4, 3, 1, 3), compression="gzip", shuffle=True))
    hdf5("image_gzip.h5", lambda f: f.create_dataset("data", data=image, chunks=(3, 6, 1), compression="gzip"))
    hdf5("mask_bool.h5", lambda f: f.create_dataset("data", data=mask.astype(bool)))
    hdf5("image_big_endian.h5", lambda f: f.create_dataset("data", data=(image * 100).astype(">i2")))
    hdf5("image_fletcher32.h5", lambda f: f.create_dataset("data", data=image, chunks=(4, 6, 1), fletcher32=True))
    hdf5("image_nan_inf.h5", lambda f: f.create_dataset("data", data=np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 3.7], np.float32).reshape(3, 2, 1)))

    def compact(f):
        space = h5py.h5s.create_simple((4, 3, 1))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        dataset = h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_FLOAT, space, plist)
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(12, dtype=np.float32).reshape(4, 3, 1))
    hdf5("image_compact.h5", compact)
    hdf5("links.h5", lambda f: (f.create_dataset("real", data=image), f.__setitem__("data", h5py.SoftLink("/real")),
                                f.__setitem__("volume", h5py.ExternalLink("elsewhere.h5", "volume"))))
    volume = rng.standard_normal((6, 5, 4)).astype(np.float32)
    seg = (rng.random((6, 5, 4, 3)) > 0.7).astype(np.uint8)
    hdf5("volume_contiguous.h5", lambda f: (f.create_dataset("volume", data=volume), f.create_dataset("seg", data=seg)))
    hdf5("volume_chunked.h5", lambda f: (f.create_dataset("volume", data=volume, chunks=True, compression="gzip"),
                                         f.create_dataset("seg", data=seg, chunks=True, compression="gzip")))
    hdf5("volume_zero_sized.h5", lambda f: (f.create_dataset("volume", shape=(0, 5, 4), dtype="f4"), f.create_dataset("seg", shape=(0, 5, 4, 2), dtype="u1")))
    hdf5("volume_sparse_chunks.h5", lambda f: f.create_dataset("volume", shape=(64, 64, 64), dtype="f4", chunks=(8, 8, 8)))

    for index, text in enumerate(["0:128,0:128,40:72", ":,:,10", "::3", "-1", "1:9:4", "-64:", "5:2", "::9223372036854775807",
                                  "0:9223372036854775807:9223372036854775807", "0 : 4 , 1"]):
        seed("region", "seed%d" % index, text)
    for index, text in enumerate(["[0,[1,2],3,[4,5]]", "[[0,1,2,3,4,5]]", "5", "[0, [1, 1]]", "[[]]", "[0,[1,[2]]]"]):
        seed("categories", "seed%d" % index, text)
    for index, text in enumerate(['{"indices": [0, 1, 2], "categories": [0, [1, 2]], "region": "0:4", "dtype": "float16"}',
                                  '[1, -2.5e10, "a\\u00e9\\ud83d\\ude00", true, false, null, {"": []}]', '"\\\\\\"\\/\\b\\f\\n\\r\\t"',
                                  '{"a": {"b": {"c": [1e400, -0, 0.1]}}}']):
        seed("json", "seed%d" % index, text)
    for name in ["config/medsegd.example.yaml", "config/datasets.d/custom.yaml", "deploy/etc-medsegd/medsegd.yaml", "deploy/etc-medsegd/oai.yaml"]:
        with open(os.path.join(HERE, "..", name), "rb") as f:
            seed("config", os.path.basename(name), f.read())
    for index in range(4):
        seed("dicts", "seed%d" % index, rng.integers(0, 256, 48, dtype=np.uint8).tobytes())


if __name__ == "__main__":
    main()
