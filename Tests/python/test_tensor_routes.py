"""Every tensor route, read with np.load and compared with h5py reads of the same files and
with MedSegPy's collation rules (collect_mask, add_background_labels)."""
import io
import json

import numpy as np
import pytest

from conftest import OAI_IDS, in_dtype


def collect_mask(mask, index):
    """MedSegPy's data_utils.collect_mask, restated: channels summed per class, then the
    stored singleton axis squeezed; kept here in the stored dtype as the API says."""
    channels = []
    for idx in index:
        if isinstance(idx, (tuple, list)):
            summed = mask[..., list(idx)].sum(axis=-1)
            channels.append(in_dtype(summed, mask.dtype))
        else:
            channels.append(mask[..., idx])
    out = np.stack(channels, axis=-1)
    if out.ndim >= 2 and out.shape[-2] == 1:
        out = np.squeeze(out, axis=-2)
    return out


def add_background(mask, last):
    background = (~np.sum(mask, axis=-1, dtype=bool)).astype(mask.dtype)[..., np.newaxis]
    return np.concatenate([mask, background] if last else [background, mask], axis=-1)


def load(body):
    return np.load(io.BytesIO(body))


def slice_items(server):
    """(index, stem) of oai_2d in catalog order: sorted file names."""
    stems = sorted(k for k in server.arrays if "-Aug" in k and k.startswith("000000") and not k.startswith("0000007"))
    return list(enumerate(stems))


def test_every_2d_item_image_and_mask(server):
    for index, stem in slice_items(server):
        image, mask = server.arrays[stem]
        status, headers, body = server.get("/v1/datasets/oai_2d/items/%d/image" % index)
        assert status == 200 and headers["Content-Type"] == "application/x-npy"
        got = load(body)
        assert got.dtype == image.dtype and got.shape == image.shape
        np.testing.assert_array_equal(got, image)
        status, _, body = server.get("/v1/datasets/oai_2d/items/%d/mask" % index)
        np.testing.assert_array_equal(load(body), collect_mask(mask, OAI_IDS))


@pytest.mark.parametrize("categories,background", [
    ("[0,[1,2],3,[4,5]]", None), ("[5,[0,3,4]]", "first"), ("[[0,1,2,3,4,5]]", "last"), ("2", None),
])
def test_collation_and_background(server, categories, background):
    image, mask = server.arrays["0000001_V00-Aug00_002"]
    query = "categories=" + categories + ("&background=" + background if background else "")
    _, _, body = server.get("/v1/datasets/oai_2d/items/1/mask?" + query)
    index = json.loads(categories)
    index = [tuple(i) if isinstance(i, list) else i for i in (index if isinstance(index, list) else [index])]
    expected = collect_mask(mask, index)
    if background:
        expected = add_background(expected, background == "last")
    np.testing.assert_array_equal(load(body), expected)


@pytest.mark.parametrize("region,slicer", [
    ("0:10,5:15", np.s_[0:10, 5:15]),
    ("-8:,::3", np.s_[-8:, ::3]),
    (":,:,0", np.s_[:, :, 0]),
    ("3", np.s_[3]),
    ("2:100:5,-1", np.s_[2:100:5, -1]),
    ("5:2", np.s_[5:2]),
])
def test_regions_match_numpy_slicing(server, region, slicer):
    image, mask = server.arrays["0000001_V00-Aug00_001"]
    _, _, body = server.get("/v1/datasets/oai_2d/items/0/image?region=" + region)
    np.testing.assert_array_equal(load(body), image[slicer])
    _, _, body = server.get("/v1/datasets/oai_2d/items/0/mask?categories=[0,[1,2]]&region=" + region)
    np.testing.assert_array_equal(load(body), collect_mask(mask[slicer], [0, (1, 2)]) if mask[slicer].ndim > 1 else None)


def test_gzip_chunked_slice_reads_like_h5py(server):
    index = [stem for _, stem in slice_items(server)].index("0000002_V00-Aug00_002")
    image, mask = server.arrays["0000002_V00-Aug00_002"]
    _, _, body = server.get("/v1/datasets/oai_2d/items/%d" % index)
    archive = load(body)
    np.testing.assert_array_equal(archive["image"], image)
    np.testing.assert_array_equal(archive["mask"], collect_mask(mask, OAI_IDS))


def test_raw_encoding_and_headers(server):
    image, _ = server.arrays["0000001_V00-Aug00_001"]
    status, headers, body = server.get("/v1/datasets/oai_2d/items/0/image", headers={"Accept": "application/octet-stream"})
    assert headers["Content-Type"] == "application/octet-stream"
    shape = tuple(int(n) for n in headers["X-Tensor-Shape"].split(","))
    np.testing.assert_array_equal(np.frombuffer(body, dtype=headers["X-Tensor-Dtype"]).reshape(shape), image)


def test_stored_dtypes_kept_and_converted(server):
    big_endian, bool_mask = server.arrays["0000007_V01-Aug00_001"]
    _, _, body = server.get("/v1/datasets/typed_2d/items/0/image")
    got = load(body)
    assert got.dtype == np.dtype(">i2")
    np.testing.assert_array_equal(got, big_endian)
    _, _, body = server.get("/v1/datasets/typed_2d/items/0/image?dtype=float32")
    got = load(body)
    assert got.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(got, big_endian.astype(np.float32))
    half, _ = server.arrays["0000007_V01-Aug00_002"]
    _, _, body = server.get("/v1/datasets/typed_2d/items/1/image")
    assert load(body).dtype == np.float16
    np.testing.assert_array_equal(load(body), half)
    _, _, body = server.get("/v1/datasets/typed_2d/items/0/mask?background=first")
    got = load(body)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, add_background(collect_mask(bool_mask, [0, (1, 2)]), last=False))


def test_3d_items_and_scans(server):
    for index, name in enumerate(["0000003_V00", "0000004_V01"]):
        volume, seg = server.arrays[name]
        _, _, body = server.get("/v1/datasets/oai_3d/items/%d/image" % index)
        np.testing.assert_array_equal(load(body), volume)
        _, _, body = server.get("/v1/datasets/oai_3d/scans/%s/mask?region=4:20,::2,3:9" % name)
        expected = np.stack([seg[4:20, ::2, 3:9][..., list(i) if isinstance(i, tuple) else i].sum(-1) if isinstance(i, tuple)
                             else seg[4:20, ::2, 3:9][..., i] for i in OAI_IDS], axis=-1).astype(np.uint8)
        got = load(body)
        assert got.shape == (16, 14, 6, 4)  # 3D masks are never squeezed
        np.testing.assert_array_equal(got, expected)
    for index, name in enumerate(["0000005_V00", "0000006_V00"]):
        volume, _ = server.arrays["sf/" + name]
        _, _, body = server.get("/v1/datasets/oai_3d_sf/scans/%s/image" % name)
        np.testing.assert_array_equal(load(body), volume)


def test_2d_scan_volumes_stack_slices(server):
    stems = ["0000001_V00-Aug01_%03d" % s for s in range(1, 5)]
    images = [server.arrays[s][0] for s in stems]
    masks = [server.arrays[s][1] for s in stems]
    _, _, body = server.get("/v1/datasets/oai_2d/scans/0000001_V00/image?aug=1")
    np.testing.assert_array_equal(load(body), np.stack([i[:, :, 0] for i in images], axis=-1))
    _, _, body = server.get("/v1/datasets/oai_2d/scans/0000001_V00/mask?aug=1&region=::2,3:9,1:3")
    expected = np.stack([collect_mask(m, OAI_IDS) for m in masks], axis=-2)[::2, 3:9, 1:3]
    np.testing.assert_array_equal(load(body), expected)


def test_batch(server):
    items = slice_items(server)
    indices = [5, 0, 7, 5]
    body = json.dumps({"indices": indices, "categories": [[0, 1], 5], "background": "last", "region": "2:18,:", "dtype": "float16"})
    status, headers, reply = server.get("/v1/datasets/oai_2d/batch", data=body.encode(), method="POST",
                                        headers={"Content-Type": "application/json"})
    assert status == 200 and headers["Content-Type"] == "application/x-npz"
    archive = load(reply)
    images = np.stack([server.arrays[items[i][1]][0][2:18] for i in indices]).astype(np.float16)
    masks = np.stack([add_background(collect_mask(server.arrays[items[i][1]][1][2:18], [(0, 1), 5]), last=True) for i in indices])
    np.testing.assert_array_equal(archive["image"], images)
    np.testing.assert_array_equal(archive["mask"], masks)


def test_etag_and_not_modified(server):
    status, headers, _ = server.get("/v1/datasets/oai_2d/items/0/mask")
    etag = headers["ETag"]
    status, _, body = server.get("/v1/datasets/oai_2d/items/0/mask", headers={"If-None-Match": etag})
    assert status == 304 and body == b""


@pytest.mark.parametrize("path,status,code", [
    ("/v1/datasets/oai_2d/items/999/image", 404, "not_found"),
    ("/v1/datasets/oai_2d/items/0/mask?categories=[0,6]", 400, "bad_request"),
    ("/v1/datasets/oai_2d/items/0/image?region=::0", 400, "bad_request"),
    ("/v1/datasets/oai_2d/scans/0000001_V00/image?aug=7", 404, "not_found"),
    ("/v1/datasets/nope/items/0/image", 404, "not_found"),
])
def test_errors_are_json(server, path, status, code):
    got_status, headers, body = server.get(path)
    assert got_status == status
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == code
