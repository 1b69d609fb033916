"""Issue 12, fewer bytes per item: `mask_format=labels` (class indices instead of channels) and
`compression=deflate` (the npz's mask member deflated), on every route that has them, compared
with numpy over h5py-written files: labels are the argmax of MedSegPy's collated mask with its
background channel (first for background none/first, last for last) wherever at most one class
is set. Also the Python client's options, its REMOTE preset, and its decoding of deflated members
(one buffer per inflated member, no copies).

One medsegd serves the data this module writes (MedsegdProcess); tests only read."""
import io
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import tracemalloc
import zipfile
import zlib

import h5py
import numpy as np
import pytest

from conftest import ROOT
from medsegd_process import MedsegdProcess
from test_tensor_routes import add_background, collect_mask

try:
    import medsegd_client
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    import medsegd_client

from medsegd_client import REMOTE, BatchLoader, Client, MedsegdError, RemoteDataset
from medsegd_client.arrays import from_npz

IDS = [0, (1, 2), 3]  # the datasets' category_ids: class 1 is channels 1 and 2 summed
SHAPE = (24, 20)
BIG = (384, 384)
MANY = 300  # channels (and classes) of the `many` dataset: labels need uint16
OVERLAP_2D = (9, 14)  # the one pixel of `overlap` item 1 where classes 1 ([1, 2]) and 2 (3) are both set
OVERLAP_3D = (5, 7, 3)  # the one voxel of `overlap_3d` where classes 0 (0) and 2 (3) are both set
CHUNKED_LIMIT = 8 << 20  # batches with compression larger than this are sent chunked
TIMEOUT = 180  # seconds: the debug build collates and deflates the large batch slowly


# --------------------------------------------------------------------------------------------
# Data: masks whose classes never overlap (but whose channels 1 and 2, one class, may)


def one_class_mask(rng, shape, dtype=np.uint8, fill=0.4):
    """A stored mask (shape + (4,)) with at most one class of IDS set per pixel: class 0 is
    channel 0, class 1 channel 1, 2 or both, class 2 channel 3."""
    classes = np.where(rng.random(shape) < fill, rng.integers(1, 4, shape), 0)  # 0: none, k + 1: class k
    mask = np.zeros(shape + (4,), dtype=dtype)
    mask[..., 0] = classes == 1
    which = rng.integers(0, 3, shape)  # class 1: channel 1, channel 2, or both
    mask[..., 1] = (classes == 2) & (which != 1)
    mask[..., 2] = (classes == 2) & (which != 0)
    mask[..., 3] = classes == 3
    return mask


def write_slices(folder, subjects, shape, rng, make_mask, dtype=np.float32):
    """slices-2d files (H x W x 1 image, H x W x 1 x C mask); returns (images, masks) in the
    dataset's order (sorted file names) and the stems."""
    os.makedirs(folder)
    stems = []
    for subject, count in subjects:
        for s in range(1, count + 1):
            stem = "%07d_V00-Aug00_%03d" % (subject, s)
            image = rng.standard_normal(shape + (1,)).astype(dtype)
            mask = make_mask(shape)[:, :, np.newaxis, :]
            with h5py.File(os.path.join(folder, stem + ".im"), "w") as f:
                f["data"] = image
            with h5py.File(os.path.join(folder, stem + ".seg"), "w") as f:
                f["data"] = mask
            stems.append((stem, image, mask))
    stems.sort()
    return [image for _, image, _ in stems], [mask for _, _, mask in stems], [stem for stem, _, _ in stems]


def write_volumes(folder, names, shape, rng, make_mask):
    os.makedirs(folder)
    volumes = {}
    for index, name in enumerate(names):
        volume = rng.standard_normal(shape).astype(np.float32)
        seg = make_mask(shape)
        chunked = dict(chunks=True, compression="gzip") if index == 1 else {}
        with h5py.File(os.path.join(folder, name + ".h5"), "w") as f:
            f.create_dataset("volume", data=volume, **chunked)
            f.create_dataset("seg", data=seg, **chunked)
        volumes[name] = (volume, seg)
    return volumes


def category_yaml(ids):
    return "[" + ", ".join("{id: %s, name: c%d}" % (json.dumps(list(i) if isinstance(i, tuple) else i), n)
                           for n, i in enumerate(ids)) + "]"


class Data:
    """What the module's server serves, kept to compare with."""


@pytest.fixture(scope="module")
def data():
    root = tempfile.mkdtemp(prefix="medsegd-wire-")
    rng = np.random.default_rng(12)
    d = Data()
    d.root = root
    d.images, d.masks, d.stems = write_slices(os.path.join(root, "s2d"), [(1, 4), (2, 3)], SHAPE, rng,
                                              lambda shape: one_class_mask(rng, shape))
    d.bool_images, d.bool_masks, _ = write_slices(os.path.join(root, "b2d"), [(3, 2)], (10, 12), rng,
                                                  lambda shape: one_class_mask(rng, shape, dtype=bool))
    d.big_images, d.big_masks, _ = write_slices(os.path.join(root, "big"), [(4, 8)], BIG, rng,
                                                lambda shape: one_class_mask(rng, shape, fill=0.2))

    def many_mask(shape):
        labels = rng.integers(0, MANY + 1, shape)  # 0: none, k + 1: channel k
        labels[-1, -1], labels[0, 0] = MANY, 0  # the last class and no class are both there
        return (labels[..., np.newaxis] == np.arange(1, MANY + 1)).astype(np.uint8)

    d.many_images, d.many_masks, _ = write_slices(os.path.join(root, "many"), [(5, 2)], (12, 10), rng, many_mask)
    d.volumes = write_volumes(os.path.join(root, "v3d"), ["0000006_V00", "0000007_V01"], (20, 18, 6), rng,
                              lambda shape: one_class_mask(rng, shape))

    overlap_slices = []

    def overlap_2d(shape):  # item 0 is clean, item 1 has the overlap
        mask = one_class_mask(rng, shape)
        if overlap_slices:
            mask[OVERLAP_2D] = [0, 1, 0, 1]
        overlap_slices.append(mask)
        return mask

    def overlap_3d(shape):
        mask = one_class_mask(rng, shape)
        mask[OVERLAP_3D] = [1, 0, 0, 1]
        return mask

    _, d.overlap_masks, _ = write_slices(os.path.join(root, "overlap"), [(8, 2)], SHAPE, rng, overlap_2d)
    os.makedirs(os.path.join(root, "unlabeled"))
    d.unlabeled_image = rng.standard_normal(SHAPE + (1,)).astype(np.float32)
    with h5py.File(os.path.join(root, "unlabeled", "0000010_V00-Aug00_001.im"), "w") as f:
        f["data"] = d.unlabeled_image
    d.overlap_volumes = write_volumes(os.path.join(root, "overlap3d"), ["0000009_V00"], (20, 18, 6), rng, overlap_3d)
    for mask in d.masks + d.big_masks + d.many_masks + [seg for _, seg in d.volumes.values()]:
        assert (collect_mask(mask, IDS if mask.shape[-1] == 4 else range(MANY)) != 0).sum(-1).max() <= 1
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write("families:\n"
                "  knee:\n    categories: %s\n    datasets:\n" % category_yaml(IDS)
                + "".join("      %s: {format: slices-2d, scan_root: %s}\n" % (n, n) for n in ["s2d", "b2d", "big", "overlap", "unlabeled"])
                + "      v3d: {format: volumes-3d, scan_root: v3d}\n"
                + "      overlap3d: {format: volumes-3d, scan_root: overlap3d}\n"
                + "  many:\n    categories: %s\n    datasets:\n" % category_yaml(list(range(MANY)))
                + "      many: {format: slices-2d, scan_root: many}\n")
    d.server = MedsegdProcess(config)
    yield d
    d.server.stop()
    shutil.rmtree(root, ignore_errors=True)


def get(data, path, headers=None):
    return data.server.exchange("GET", path, headers=headers, timeout=TIMEOUT)


def post(data, path, body, headers=None):
    return data.server.exchange("POST", path, body=body, headers=headers, timeout=TIMEOUT)


def ok(reply):
    assert reply.status == 200, reply
    return reply


def query(**params):
    """A query string, categories as compact JSON, None values left out."""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if key == "categories":
            value = json.dumps([list(c) if isinstance(c, tuple) else c for c in value], separators=(",", ":"))
        pairs.append("%s=%s" % (key, value))
    return "?" + "&".join(pairs) if pairs else ""


def label_dtype(classes):
    return np.dtype("<u1") if classes + 1 <= 256 else np.dtype("<u2")


def labels(collated, background=None):
    """What mask_format=labels promises for a collated mask (channels last, no background):
    argmax with the background channel first (background none or first) or last, in the
    smallest unsigned type that holds the number of classes + 1 values."""
    with_background = add_background(collated, last=background == "last")
    return np.argmax(with_background, axis=-1).astype(label_dtype(collated.shape[-1]))


def check_labels(got, collated, background=None):
    expected = labels(collated, background)
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.dtype, expected.shape)
    np.testing.assert_array_equal(got, expected)


def members(body):
    """{member name: ZipInfo} of an npz body, read by Python's zipfile (not the client's parser)."""
    return {info.filename: info for info in zipfile.ZipFile(io.BytesIO(body)).infolist()}


def member_bytes(body, name):
    """A member's .npy bytes, inflated by zipfile (which checks its CRC-32)."""
    return zipfile.ZipFile(io.BytesIO(body)).read(name)


# --------------------------------------------------------------------------------------------
# mask_format=labels against numpy


CASES = [  # categories, background, region (a numpy index for the H x W x 1 x C stored mask)
    (None, None, None),
    (IDS, "first", None),
    (IDS, "last", None),
    ([3, 0], "last", None),
    ([(1, 2)], None, None),
    ([(0, 1, 2, 3)], "first", None),
    (IDS, "last", ("2:18,::3", np.s_[2:18, ::3])),
    ([(1, 2), 3], None, ("-5:,4", np.s_[-5:, 4])),  # an integer index drops an axis: labels are 1-D
]


@pytest.mark.parametrize("categories,background,region", CASES)
def test_item_masks_as_labels_are_the_argmax_of_the_collated_mask(data, categories, background, region):
    index_ids = IDS if categories is None else categories
    for i, mask in enumerate(data.masks):
        stored = mask if region is None else mask[region[1]]
        path = "/v1/datasets/s2d/items/%d/mask" % i + query(mask_format="labels", categories=categories,
                                                              background=background, region=region and region[0])
        check_labels(ok(get(data, path)).array(), collect_mask(stored, index_ids), background)


def test_labels_in_raw_format_and_channels_is_the_default(data):
    reply = ok(get(data, "/v1/datasets/s2d/items/2/mask?mask_format=labels&format=raw"))
    assert reply.headers["x-tensor-dtype"] == "|u1" and reply.headers["x-tensor-shape"] == "24,20"
    check_labels(reply.raw(), collect_mask(data.masks[2], IDS))
    default = ok(get(data, "/v1/datasets/s2d/items/2/mask"))
    channels = ok(get(data, "/v1/datasets/s2d/items/2/mask?mask_format=channels"))
    assert channels.body == default.body and channels.headers["etag"] == default.headers["etag"]
    np.testing.assert_array_equal(channels.array(), collect_mask(data.masks[2], IDS))


def test_bool_masks_as_labels(data):
    for i, mask in enumerate(data.bool_masks):
        for background in [None, "last"]:
            got = ok(get(data, "/v1/datasets/b2d/items/%d/mask" % i + query(mask_format="labels", background=background))).array()
            check_labels(got, collect_mask(mask, IDS), background)


@pytest.mark.parametrize("background", [None, "first", "last"])
def test_item_pairs_with_labels(data, background):
    for i, (image, mask) in enumerate(zip(data.images, data.masks)):
        archive = np.load(io.BytesIO(ok(get(data, "/v1/datasets/s2d/items/%d" % i + query(
            mask_format="labels", background=background, dtype="float16", region="1:-1"))).body))
        np.testing.assert_array_equal(archive["image"], image[1:-1].astype(np.float16))
        check_labels(archive["mask"], collect_mask(mask[1:-1], IDS), background)


@pytest.mark.parametrize("categories,background,region", [
    (None, None, None), (IDS, "last", None), ([3, (1, 2)], "first", ("::2,3:15,1:3", np.s_[::2, 3:15, 1:3])),
])
def test_scan_masks_as_labels(data, categories, background, region):
    index_ids = IDS if categories is None else categories
    slicer = np.s_[...] if region is None else region[1]
    # 2D slices stacked to H x W x D (subject 1: the first four items).
    stacked = np.stack([collect_mask(m, index_ids) for m in data.masks[:4]], axis=-2)[slicer]
    path = "/v1/datasets/s2d/scans/0000001_V00/mask" + query(mask_format="labels", categories=categories,
                                                            background=background, region=region and region[0])
    check_labels(ok(get(data, path)).array(), stacked, background)
    # 3D volumes (one contiguous, one gzip-chunked), as scans and as items.
    for i, (name, (_, seg)) in enumerate(sorted(data.volumes.items())):
        collated = collect_mask(seg[slicer], index_ids)
        common = dict(mask_format="labels", categories=categories, background=background, region=region and region[0])
        check_labels(ok(get(data, "/v1/datasets/v3d/scans/%s/mask" % name + query(**common))).array(), collated, background)
        check_labels(ok(get(data, "/v1/datasets/v3d/items/%d/mask" % i + query(**common))).array(), collated, background)


@pytest.mark.parametrize("background", [None, "first", "last"])
def test_batches_with_labels(data, background):
    indices = [5, 0, 3, 5]
    body = {"indices": indices, "categories": [0, [1, 2], 3], "region": "2:20,1:", "mask_format": "labels",
            "dtype": "float16"}
    if background:
        body["background"] = background
    archive = np.load(io.BytesIO(ok(post(data, "/v1/datasets/s2d/batch", body)).body))
    np.testing.assert_array_equal(archive["image"], np.stack([data.images[i][2:20, 1:] for i in indices]).astype(np.float16))
    check_labels(archive["mask"], np.stack([collect_mask(data.masks[i][2:20, 1:], IDS) for i in indices]), background)
    volumes = post(data, "/v1/datasets/v3d/batch", {"indices": [1, 0], "mask_format": "labels", "background": "last"})
    check_labels(np.load(io.BytesIO(ok(volumes).body))["mask"],
                 np.stack([collect_mask(data.volumes[n][1], IDS) for n in ["0000007_V01", "0000006_V00"]]), "last")


def test_labels_are_uint16_past_255_classes(data):
    mask = data.many_masks[1]
    reply = ok(get(data, "/v1/datasets/many/items/1/mask?mask_format=labels"))  # the dataset's 300 classes
    got = reply.array()
    assert got.dtype == np.dtype("<u2") and reply.body[8:60].find(b"'<u2'") > 0  # little-endian on the wire
    check_labels(got, collect_mask(mask, range(MANY)))
    assert got.max() == MANY  # the data uses the last class: values up to C fit
    for classes, background in [(255, None), (255, "last"), (256, None), (256, "first")]:
        got = ok(get(data, "/v1/datasets/many/items/1/mask" + query(
            mask_format="labels", categories=list(range(classes)), background=background))).array()
        assert got.dtype == label_dtype(classes), (classes, got.dtype)
        check_labels(got, collect_mask(mask, range(classes)), background)
    archive = np.load(io.BytesIO(ok(post(data, "/v1/datasets/many/batch", {
        "indices": [1, 0], "mask_format": "labels", "background": "last", "compression": "deflate"})).body))
    check_labels(archive["mask"], np.stack([collect_mask(data.many_masks[i], range(MANY)) for i in [1, 0]]), "last")


# --------------------------------------------------------------------------------------------
# Overlaps and invalid values


def assert_names_pixel(reply, coordinates):
    """A 422 whose message names the pixel, "pixel (h, w[, d])" in the response array's
    coordinates (any coordinates when none are given), and two classes."""
    assert reply.status == 422 and reply.code == "unprocessable", reply
    pattern = r"\D+".join(r"(?<!\d)%d(?!\d)" % c for c in coordinates)
    assert re.search(r"pixel \(" + pattern, reply.message), (coordinates, reply.message)
    assert re.search(r"classes \d+ and \d+", reply.message), reply.message
    return reply.message


def test_overlapping_classes_are_422_naming_the_pixel(data):
    row, column = OVERLAP_2D
    # Classes 1 ([1, 2]) and 2 (3) overlap at one pixel of item 1: labels cannot say both.
    for path in ["/v1/datasets/overlap/items/1/mask?mask_format=labels", "/v1/datasets/overlap/items/1?mask_format=labels"]:
        assert_names_pixel(get(data, path), (row, column))
    # Coordinates in the item's array, whatever region was read.
    assert_names_pixel(get(data, "/v1/datasets/overlap/items/1/mask?mask_format=labels&region=2:,4:"), (row, column))
    assert_names_pixel(get(data, "/v1/datasets/overlap/scans/0000008_V00/mask?mask_format=labels"), (row, column, 1))
    # In a batch the item is named by its index, the pixel by its coordinates in the item.
    message = assert_names_pixel(post(data, "/v1/datasets/overlap/batch", {"indices": [0, 0, 1], "mask_format": "labels"}),
                                 (row, column))
    assert "item 1" in message, message
    # Classes that share a stored channel are both set wherever it is.
    assert_names_pixel(get(data, "/v1/datasets/overlap/items/0/mask?mask_format=labels&categories=[[0,1],[1,2]]"), ())
    # Without both classes selected, outside the pixel, or as channels, the same mask is fine.
    for query_string, ids, slicer in [("categories=[0,3]", [0, 3], np.s_[...]), ("region=:9", IDS, np.s_[:9]),
                                      ("region=:,15:", IDS, np.s_[:, 15:])]:
        got = ok(get(data, "/v1/datasets/overlap/items/1/mask?mask_format=labels&" + query_string)).array()
        check_labels(got, collect_mask(data.overlap_masks[1][slicer], ids))
    np.testing.assert_array_equal(ok(get(data, "/v1/datasets/overlap/items/1/mask")).array(),
                                  collect_mask(data.overlap_masks[1], IDS))
    assert_names_pixel(get(data, "/v1/datasets/overlap3d/items/0/mask?mask_format=labels&background=last"), OVERLAP_3D)
    assert_names_pixel(get(data, "/v1/datasets/overlap3d/scans/0000009_V00/mask?mask_format=labels&region=1:,2:"), OVERLAP_3D)


def test_unlabeled_items_and_empty_regions(data):
    # An unlabeled item's pair is its image alone, with any mask options.
    reply = ok(get(data, "/v1/datasets/unlabeled/items/0?mask_format=labels&compression=deflate"))
    assert list(members(reply.body)) == ["image.npy"] and members(reply.body)["image.npy"].compress_type == zipfile.ZIP_STORED
    assert list(from_npz(reply.body)) == ["image"]
    np.testing.assert_array_equal(from_npz(reply.body)["image"], data.unlabeled_image)
    assert get(data, "/v1/datasets/unlabeled/items/0/mask?mask_format=labels").status == 404
    # An empty region deflates to an empty mask member.
    plain = ok(get(data, "/v1/datasets/s2d/items/0?mask_format=labels&region=5:2"))
    deflated = ok(get(data, "/v1/datasets/s2d/items/0?mask_format=labels&region=5:2&compression=deflate"))
    check_deflated(plain.body, deflated.body)
    assert from_npz(deflated.body)["mask"].shape == (0, SHAPE[1])


@pytest.mark.parametrize("path", [
    "/v1/datasets/s2d/items/0/mask?mask_format=label",
    "/v1/datasets/s2d/items/0/mask?mask_format=Labels",
    "/v1/datasets/s2d/items/0/mask?mask_format=",
    "/v1/datasets/s2d/items/0?mask_format=onehot",
    "/v1/datasets/s2d/scans/0000001_V00/mask?mask_format=1",
    "/v1/datasets/s2d/items/0?compression=gzip",
    "/v1/datasets/s2d/items/0?compression=",
    "/v1/datasets/s2d/items/0?compression=deflate&compression=deflate",
    # compression is for npz bodies only; mask_format for masks only
    "/v1/datasets/s2d/items/0/mask?compression=deflate",
    "/v1/datasets/s2d/items/0/mask?compression=deflate&format=raw",
    "/v1/datasets/s2d/items/0/image?compression=deflate",
    "/v1/datasets/s2d/scans/0000001_V00/mask?compression=deflate",
    "/v1/datasets/s2d/scans/0000001_V00/image?compression=deflate",
    "/v1/datasets/s2d/items/0/image?mask_format=labels",
])
def test_invalid_values_are_400(data, path):
    reply = get(data, path)
    assert reply.status == 400 and reply.code == "bad_request", reply


@pytest.mark.parametrize("extra", [
    {"mask_format": "label"}, {"mask_format": 1}, {"mask_format": ["labels"]}, {"compression": "gzip"},
    {"compression": True}, {"compression": ""},
])
def test_invalid_batch_values_are_400(data, extra):
    reply = post(data, "/v1/datasets/s2d/batch", dict({"indices": [0, 1]}, **extra))
    assert reply.status == 400 and reply.code == "bad_request", reply
    assert list(extra)[0] in reply.message, reply.message


# --------------------------------------------------------------------------------------------
# compression=deflate


def check_deflated(plain, deflated):
    """The deflated npz reads as the plain one; its mask member is method 8 (inflating to the
    plain mask member's bytes) and its image member method 0."""
    plain_members, deflated_members = members(plain), members(deflated)
    assert set(plain_members) == set(deflated_members) == {"image.npy", "mask.npy"}
    assert plain_members["mask.npy"].compress_type == plain_members["image.npy"].compress_type == zipfile.ZIP_STORED
    assert deflated_members["image.npy"].compress_type == zipfile.ZIP_STORED
    assert deflated_members["mask.npy"].compress_type == zipfile.ZIP_DEFLATED
    assert member_bytes(deflated, "mask.npy") == member_bytes(plain, "mask.npy")
    assert member_bytes(deflated, "image.npy") == member_bytes(plain, "image.npy")
    # Raw deflate, inflated by zlib from where the local header says the data starts.
    info = deflated_members["mask.npy"]
    start = info.header_offset + 30 + sum(struct.unpack("<HH", deflated[info.header_offset + 26:info.header_offset + 30]))
    assert zlib.decompress(deflated[start:start + info.compress_size], -15) == member_bytes(plain, "mask.npy")
    with np.load(io.BytesIO(plain)) as a, np.load(io.BytesIO(deflated)) as b:
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])
        assert a["mask"].dtype == b["mask"].dtype and a["image"].dtype == b["image"].dtype
    # The client reads it as numpy does.
    for archive in (from_npz(deflated), from_npz(plain)):
        np.testing.assert_array_equal(archive["mask"], np.load(io.BytesIO(plain))["mask"])
        np.testing.assert_array_equal(archive["image"], np.load(io.BytesIO(plain))["image"])
    return info


@pytest.mark.parametrize("options", [{}, {"mask_format": "labels"}, {"mask_format": "labels", "background": "last",
                                                                     "dtype": "float16", "region": "3:,:-2"}])
def test_deflated_item_pairs(data, options):
    for i in [0, 4]:
        plain = ok(get(data, "/v1/datasets/s2d/items/%d" % i + query(**options)))
        deflated = ok(get(data, "/v1/datasets/s2d/items/%d" % i + query(compression="deflate", **options)))
        assert deflated.headers["content-type"] == "application/x-npz"
        assert int(deflated.headers["content-length"]) == len(deflated.body) < len(plain.body)
        check_deflated(plain.body, deflated.body)
        none = ok(get(data, "/v1/datasets/s2d/items/%d" % i + query(compression="none", **options)))
        assert none.body == plain.body and none.headers["etag"] == plain.headers["etag"]


@pytest.mark.parametrize("options", [{}, {"mask_format": "labels", "background": "first", "categories": [3, [1, 2]]}])
def test_deflated_batches(data, options):
    body = dict(indices=[6, 2, 2, 0], **options)
    plain = ok(post(data, "/v1/datasets/s2d/batch", body))
    deflated = ok(post(data, "/v1/datasets/s2d/batch", dict(body, compression="deflate")))
    check_deflated(plain.body, deflated.body)
    with np.load(io.BytesIO(deflated.body)) as archive:
        collated = np.stack([collect_mask(data.masks[i], options.get("categories", IDS)) for i in body["indices"]])
        if options:
            check_labels(archive["mask"], collated, "first")
        else:
            np.testing.assert_array_equal(archive["mask"], collated)


def test_a_deflated_batch_over_8_mib_is_chunked_unless_it_holds_labels(data):
    """Chunked with channels; with labels built whole first (an overlap must be a 422 before the
    head), so its length is known."""
    indices = [i % 8 for i in range(40)]  # 40 x 384 x 384 float32: 22.5 MiB of images
    images = np.stack([data.big_images[i] for i in indices])
    collated = np.stack([collect_mask(data.big_masks[i], IDS) for i in indices])
    for options in [{}, {"mask_format": "labels"}]:
        body = dict(indices=indices, **options)
        plain = ok(post(data, "/v1/datasets/big/batch", body))
        deflated = ok(post(data, "/v1/datasets/big/batch", dict(body, compression="deflate")))
        assert len(deflated.body) > CHUNKED_LIMIT
        if options:
            assert deflated.headers.get("content-length") == str(len(deflated.body)), deflated.headers
        else:
            assert deflated.headers.get("transfer-encoding") == "chunked" and "content-length" not in deflated.headers, \
                deflated.headers
        check_deflated(plain.body, deflated.body)
        archive = from_npz(deflated.body)
        np.testing.assert_array_equal(archive["image"], images)
        if options:
            check_labels(archive["mask"], collated)
        else:
            np.testing.assert_array_equal(archive["mask"], collated)


# --------------------------------------------------------------------------------------------
# ETags and the cache


def test_each_option_set_has_its_own_etag_and_304(data):
    variants = {
        "mask": "/v1/datasets/s2d/items/1/mask",
        "mask labels": "/v1/datasets/s2d/items/1/mask?mask_format=labels",
        "mask labels last": "/v1/datasets/s2d/items/1/mask?mask_format=labels&background=last",
        "pair": "/v1/datasets/s2d/items/1",
        "pair deflate": "/v1/datasets/s2d/items/1?compression=deflate",
        "pair labels": "/v1/datasets/s2d/items/1?mask_format=labels",
        "pair labels deflate": "/v1/datasets/s2d/items/1?mask_format=labels&compression=deflate",
        "pair preset": "/v1/datasets/s2d/items/1?mask_format=labels&compression=deflate&dtype=float16",
        "scan": "/v1/datasets/s2d/scans/0000001_V00/mask",
        "scan labels": "/v1/datasets/s2d/scans/0000001_V00/mask?mask_format=labels",
    }
    etags = {}
    for name, path in variants.items():
        first, again = ok(get(data, path)), ok(get(data, path))
        assert first.body == again.body and first.headers["etag"] == again.headers["etag"], name
        etags[name] = (first.headers["etag"], first.body)
    assert len({etag for etag, _ in etags.values()}) == len(variants), etags
    for name, path in variants.items():
        etag, body = etags[name]
        not_modified = get(data, path, headers={"If-None-Match": etag})
        assert not_modified.status == 304 and not_modified.body == b"" and not_modified.headers["etag"] == etag, name
        other = [e for n, (e, _) in etags.items() if n != name]
        assert ok(get(data, path, headers={"If-None-Match": ", ".join(other)})).body == body, name


def test_batches_differ_per_option_set(data):
    bodies = {}
    for options in [{}, {"mask_format": "labels"}, {"compression": "deflate"}, {"mask_format": "labels", "compression": "deflate"}]:
        reply = ok(post(data, "/v1/datasets/s2d/batch", dict(indices=[0, 1], **options)))
        bodies[json.dumps(options)] = reply
        if "etag" in reply.headers:
            assert post(data, "/v1/datasets/s2d/batch", dict(indices=[0, 1], **options),
                        headers={"If-None-Match": reply.headers["etag"]}).status == 304
    assert len({r.body for r in bodies.values()}) == 4
    etags = [r.headers.get("etag") for r in bodies.values() if "etag" in r.headers]
    assert len(set(etags)) == len(etags)


# --------------------------------------------------------------------------------------------
# The Python client


@pytest.fixture
def client(data):
    client = Client(data.server.base, retries=1, backoff=0.01, timeout=TIMEOUT)
    yield client
    client.close()


def test_client_options_match_numpy(client, data):
    check_labels(client.mask("s2d", 3, mask_format="labels", background="last"), collect_mask(data.masks[3], IDS), "last")
    check_labels(client.volume_mask("v3d", "0000006_V00", mask_format="labels", categories=[3, (1, 2)]),
                 collect_mask(data.volumes["0000006_V00"][1], [3, (1, 2)]))
    check_labels(client.volume_mask("s2d", "0000002_V00", mask_format="labels"),
                 np.stack([collect_mask(m, IDS) for m in data.masks[4:]], axis=-2))
    image, mask = client.item("s2d", 2, compression="deflate", region=(slice(0, 10),))
    np.testing.assert_array_equal(image, data.images[2][:10])
    np.testing.assert_array_equal(mask, collect_mask(data.masks[2][:10], IDS))
    images, masks = client.batch("s2d", [1, 6], mask_format="labels", compression="deflate", categories=[(1, 2), 3],
                                 background="first")
    np.testing.assert_array_equal(images, np.stack([data.images[1], data.images[6]]))
    check_labels(masks, np.stack([collect_mask(data.masks[i], [(1, 2), 3]) for i in [1, 6]]), "first")
    with pytest.raises(MedsegdError) as error:
        client.mask("overlap", 1, mask_format="labels")
    assert error.value.status == 422 and error.value.code == "unprocessable"
    with pytest.raises(MedsegdError) as error:
        client.batch("s2d", [0], mask_format="one-hot")
    assert error.value.status == 400 and "mask_format" in error.value.message


def test_remote_preset(client, data):
    assert dict(REMOTE) == {"dtype": "float16", "mask_format": "labels", "compression": "deflate"}
    with pytest.raises(TypeError):
        REMOTE["dtype"] = "float32"  # read-only: a job cannot change it for every other user
    dataset = RemoteDataset(client, "s2d", **REMOTE)
    for i in range(len(dataset)):
        image, mask = dataset[i]
        assert image.dtype == np.float16 and mask.dtype == np.uint8 and mask.shape == SHAPE
        np.testing.assert_array_equal(image, data.images[i].astype(np.float16))
        check_labels(mask, collect_mask(data.masks[i], IDS))
    loader = BatchLoader(client, "s2d", batch_size=3, shuffle=True, seed=1, prefetch=1, **REMOTE)
    batches = [loader.batch_indices(b) for b in range(len(loader))]
    for b, (images, masks) in enumerate(loader):
        indices = batches[b]
        assert images.dtype == np.float16 and masks.shape == (len(indices),) + SHAPE
        np.testing.assert_array_equal(images, np.stack([data.images[i] for i in indices]).astype(np.float16))
        check_labels(masks, np.stack([collect_mask(data.masks[i], IDS) for i in indices]))
    assert loader.epoch == 1
    image, mask = client.item("v3d", 1, **REMOTE)
    np.testing.assert_array_equal(image, data.volumes["0000007_V01"][0].astype(np.float16))
    check_labels(mask, collect_mask(data.volumes["0000007_V01"][1], IDS))


def root_buffer(array):
    """The object at the end of an array's base chain (what holds its bytes)."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def test_client_inflates_each_deflated_member_once_without_copies(client, data):
    image, mask = client.item("s2d", 5, mask_format="labels", compression="deflate")
    mask_buffer, image_buffer = root_buffer(mask), root_buffer(image)
    # The mask is a view of exactly one bytes object: the inflated .npy member, header and data.
    assert type(mask_buffer) is bytes and mask_buffer.startswith(b"\x93NUMPY")
    assert len(mask_buffer) - mask.nbytes < 256 and mask_buffer.endswith(mask.tobytes())
    # The stored image is still a view of the response body itself.
    assert type(image_buffer) is bytes and len(image_buffer) > len(mask_buffer) + image.nbytes
    assert not mask.flags.writeable and not image.flags.writeable
    # Decoding a large deflated batch allocates one buffer the size of the inflated member (zlib's
    # output buffer is sized from the central directory), not a second copy of it.
    body = ok(post(data, "/v1/datasets/big/batch", {"indices": list(range(8)) * 2, "compression": "deflate"})).body
    size = members(body)["mask.npy"].file_size
    assert size > 4 << 20
    tracemalloc.start()
    try:
        archive = from_npz(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size <= peak < size + (1 << 20), (size, peak)
    assert len(root_buffer(archive["mask"])) == size and root_buffer(archive["image"]) is body


# --------------------------------------------------------------------------------------------
# The client's ZIP reading, offline: medsegd's layout (data descriptors, ZIP64) and bad archives


def npy_bytes(array):
    out = io.BytesIO()
    np.lib.format.write_array(out, array, allow_pickle=False)
    return out.getvalue()


def medsegd_zip(arrays, deflate=(), zip64=False):
    """An npz laid out as medsegd writes it (NPZ.swift): local headers with flag bit 3 and zero
    sizes, data descriptors, ZIP64 records when `zip64`; members named in `deflate` raw-deflated."""
    out, directory = bytearray(), bytearray()
    for name, array in arrays.items():
        data = npy_bytes(array)
        stored = data
        method = 0
        if name in deflate:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            stored, method = compressor.compress(data) + compressor.flush(), 8
        crc, offset, file_name = zlib.crc32(data), len(out), (name + ".npy").encode()
        saturated = 0xFFFFFFFF if zip64 else None
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 8, method, 0, 0x21, 0,
                           saturated or 0, saturated or 0, len(file_name), 20 if zip64 else 0) + file_name
        if zip64:
            out += struct.pack("<HHQQ", 1, 16, 0, 0)
        out += stored
        out += struct.pack("<IIQQ" if zip64 else "<IIII", 0x08074B50, crc, len(stored), len(data))
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 8, method, 0, 0x21, crc,
                                 saturated or len(stored), saturated or len(data), len(file_name), 28 if zip64 else 0,
                                 0, 0, 0, 0, saturated or offset) + file_name
        if zip64:
            directory += struct.pack("<HHQQQ", 1, 24, len(data), len(stored), offset)
    start = len(out)
    out += directory
    if zip64:
        record = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(arrays), len(arrays), len(directory), start)
        out += struct.pack("<IIQI", 0x07064B50, 0, record, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(arrays), len(arrays), len(directory), start, 0)
    return bytes(out)


@pytest.mark.parametrize("zip64", [False, True])
@pytest.mark.parametrize("deflate", [(), ("mask",), ("image", "mask")])
def test_client_reads_medsegd_zip_layouts(zip64, deflate):
    rng = np.random.default_rng(0)
    arrays = {"image": rng.standard_normal((6, 5, 1)).astype(">f4"), "mask": rng.integers(0, 300, (6, 5)).astype("<u2")}
    body = medsegd_zip(arrays, deflate, zip64)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:  # the layout is a valid ZIP to Python too
        assert archive.testzip() is None
        assert [i.compress_type for i in archive.infolist()] == [8 if n in deflate else 0 for n in arrays]
    decoded = from_npz(body)
    for name, array in arrays.items():
        assert decoded[name].dtype == array.dtype
        np.testing.assert_array_equal(decoded[name], array)
        assert (root_buffer(decoded[name]) is body) == (name not in deflate)


def test_client_names_what_is_wrong_with_an_archive():
    arrays = {"image": np.zeros((4, 4), np.float32), "mask": np.arange(16, dtype=np.uint8).reshape(4, 4)}
    good = medsegd_zip(arrays, deflate=("mask",))
    for cut in (10, 22):
        with pytest.raises(ValueError, match="end of central directory"):
            from_npz(good[:-cut])
    directory = good.rfind(b"PK\x01\x02")  # the mask's central directory entry
    bad_crc = bytearray(good)
    bad_crc[directory + 16] ^= 0xFF
    with pytest.raises(ValueError, match="'mask.npy'.*CRC-32"):
        from_npz(bytes(bad_crc))
    wrong_size = bytearray(good)
    struct.pack_into("<I", wrong_size, directory + 24, len(npy_bytes(arrays["mask"])) + 1)
    with pytest.raises(ValueError, match="'mask.npy'.*inflates to"):
        from_npz(bytes(wrong_size))
    bzip2 = bytearray(good)
    struct.pack_into("<H", bzip2, directory + 10, 12)
    with pytest.raises(ValueError, match="'mask.npy'.*compression method 12"):
        from_npz(bytes(bzip2))
    truncated = bytearray(good)
    info = zipfile.ZipFile(io.BytesIO(good)).getinfo("mask.npy")
    struct.pack_into("<I", truncated, directory + 20, info.compress_size - 3)
    with pytest.raises(ValueError, match="'mask.npy'"):
        from_npz(bytes(truncated))
