"""The dataset browser (`GET /`) in a real browser: Debian's Chromium, headless, driven through
playwright (never playwright's own browser download), over the demo data.

Each step a person takes (a dataset, a scan, the slice slider, the axis, the augmentation, a
class toggled, opacity, outlines, the window) must end with the page showing the PNG that
docs/API.md's formula gives for the arrays the API serves: the test renders them with NumPy
(np.nanpercentile window, round half to even, colours, highest drawn class wins, the opacity
blend, the outline rule, size) and compares pixel by pixel, both the PNG bytes the page received
and the pixels the page displays (its <img> drawn into a canvas). Both must be exact: the server
computes in float64 as NumPy does, and Chromium decodes an untagged 8-bit RGB PNG without colour
conversion, so any difference is a bug (`TOLERANCE` below).

Also: a token-protected server shows the token form, refuses a wrong token and shows the data
with the right one; behind nginx under a path prefix the page works on relative URLs; no step
breaks the page's Content-Security-Policy. Screenshots go to .build/test-artifacts/."""
import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import urllib.parse
import urllib.request
import zlib

import h5py
import numpy as np
import pytest

from conftest import ROOT, free_port, medsegd_binary
from medsegd_process import MedsegdProcess

try:
    import playwright.sync_api as playwright_api
except ImportError:
    playwright_api = None

CHROMIUM = os.environ.get("MEDSEGD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
ARTIFACTS = os.path.join(ROOT, ".build", "test-artifacts")

# Largest difference allowed per channel between NumPy's picture and the page's: none. (The PNG
# bytes are compared exactly as well; the canvas is what Chromium displays.)
TOLERANCE = 0
STEP_TIMEOUT_MS = 20_000  # any single wait in the page: a request, an element state
TAB10 = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
         [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]]
TOKEN = "browser-test-token-4711"


# ------------------------------------------------------------------------------------------------
# NumPy's picture (docs/API.md, "Previews and the browser UI")


def render(volume, mask, axis, index, colors, classes=None, opacity=0.5, outline=False, size=None, window=None):
    image = np.take(volume, index, axis=axis).astype(np.float64)
    if window is not None:
        low, high = window
    elif np.isnan(image).all():
        low = high = 0.0
    else:
        low, high = np.nanpercentile(image, [0.5, 99.5])
    if high > low:
        with np.errstate(invalid="ignore"):
            grey = np.round(255 * np.clip((image - low) / (high - low), 0, 1))
    else:
        grey = np.zeros_like(image)
    grey[np.isnan(image)] = 0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if mask is not None:
        marks = np.take(mask, index, axis=axis) != 0  # h x w x C
        count = marks.shape[-1]
        shown = sorted(k for k in (range(count) if classes is None else classes) if k < count)
        painted = np.full(image.shape, -1)
        for k in shown:
            marked = marks[..., k]
            if outline:
                padded = np.pad(marked, 1, constant_values=False)
                inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
                marked = marked & ~inside
            painted[marked] = k
        for k in shown:
            where = painted == k
            rgb[where] = np.round((1 - opacity) * grey[where][:, None] + opacity * np.asarray(colors[k], dtype=np.float64))
    rgb = rgb.astype(np.uint8)
    height, width = rgb.shape[:2]
    if size is not None and max(height, width) > size:
        out_h = max(1, height * size // max(height, width))
        out_w = max(1, width * size // max(height, width))
        rows = np.arange(out_h) * height // out_h
        columns = np.arange(out_w) * width // out_w
        rgb = rgb[rows][:, columns]
    return rgb


def js_number(value):
    """A number as JavaScript's String() writes it (the page's query parameters)."""
    return "%d" % value if float(value).is_integer() else repr(float(value))


def class_colors(metadata):
    colors = metadata.get("category_colors")
    return [colors[k] if colors else TAB10[k % 10] for k in range(len(metadata["category_ids"]))]


def decode_png(data):
    """An 8-bit RGB, non-interlaced PNG (what the preview routes send) as an h x w x 3 array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    position, idat, header = 8, b"", None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, color_type, _, _, interlace = header
    assert (depth, color_type, interlace) == (8, 2, 0), header
    raw = zlib.decompress(idat)
    stride = width * 3
    out = np.zeros((height, stride), dtype=np.int64)
    previous = np.zeros(stride, dtype=np.int64)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], np.frombuffer(raw[start + 1:start + 1 + stride], dtype=np.uint8).astype(np.int64)
        if kind == 0:
            current = line
        elif kind == 2:
            current = (line + previous) % 256
        else:  # Sub, Average, Paeth depend on the left neighbour: byte by byte
            current = np.zeros(stride, dtype=np.int64)
            for i in range(stride):
                left = current[i - 3] if i >= 3 else 0
                up, corner = previous[i], (previous[i - 3] if i >= 3 else 0)
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + up) // 2
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                current[i] = (line[i] + predictor) % 256
        out[row] = current
        previous = current
    return out.reshape(height, width, 3).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Fixtures: the demo served, Chromium


def write_demo(folder):
    subprocess.run([medsegd_binary(), "demo", folder], check=True, stdout=subprocess.DEVNULL, timeout=120)
    return os.path.join(folder, "medsegd.yaml")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config = write_demo(str(tmp_path_factory.mktemp("browser-demo")))
    with MedsegdProcess(config) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """The demo with bearer tokens: a config that adds `tokens_file` to the demo's."""
    folder = str(tmp_path_factory.mktemp("browser-tokens"))
    config = write_demo(folder)
    with open(os.path.join(folder, "tokens"), "w") as f:
        f.write(TOKEN + "\n")
    text = open(config).read()
    assert "\nserver:\n" in text
    secured = os.path.join(folder, "medsegd-tokens.yaml")
    with open(secured, "w") as f:
        f.write(text.replace("\nserver:\n", "\nserver:\n  tokens_file: %s\n" % os.path.join(folder, "tokens"), 1))
    with MedsegdProcess(secured) as server:
        yield server


OWN_CONFIG = """
families:
  plain:
    categories: [{id: 0, name: first}, {id: [1, 2], name: second}, {id: 2, name: third}]
    datasets:
      plain_3d: {format: volumes-3d, scan_root: volumes}
"""


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """What the demo lacks: classes that overlap (channel 2 is in two classes), categories without
    colours (tab10), NaN voxels, an int16 image, and a slice taller than the page's size bound."""
    folder = str(tmp_path_factory.mktemp("browser-own"))
    os.makedirs(os.path.join(folder, "volumes"))
    rng = np.random.default_rng(14)
    small = rng.standard_normal((36, 28, 5)).astype(np.float32)
    small[3, 4, :] = np.nan
    tall = rng.integers(-2000, 3000, (1100, 24, 2)).astype(np.int16)
    for name, volume in [("0000001_V00", small), ("0000002_V00", tall)]:
        seg = (rng.random(volume.shape + (3,)) > 0.6).astype(np.uint8)
        with h5py.File(os.path.join(folder, "volumes", name + ".h5"), "w") as f:
            f.create_dataset("volume", data=volume)
            f.create_dataset("seg", data=seg)
    config = os.path.join(folder, "medsegd.yaml")
    with open(config, "w") as f:
        f.write(OWN_CONFIG)
    with MedsegdProcess(config) as server:
        yield server


def unavailable(what):
    """A missing browser skips the test on a developer's machine, but fails it in CI (CI=true),
    where scripts/install-deps --tests must have installed it."""
    message = "%s (scripts/install-deps --tests installs it)" % what
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    if playwright_api is None:
        unavailable("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        unavailable("Chromium is not installed at %s" % CHROMIUM)
    manager = playwright_api.sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        manager.stop()


class Page:
    """One browser tab on the UI at 1280x800, recording what would be a bug in any step: page
    errors and console errors (Content-Security-Policy violations and failed requests among them,
    except the HTTP statuses a step expects)."""

    def __init__(self, browser, server, base=None):
        self.server = server
        self.base = base or server.base + "/"
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(STEP_TIMEOUT_MS)
        self.problems = []
        self.requests = []
        self.page.on("pageerror", lambda error: self.problems.append("page error: %s" % error))
        self.page.on("console", self.console)
        self.page.on("request", lambda request: self.requests.append((request.url, request.headers.get("authorization"))))
        self.token = None
        self.arrays = {}
        self.allowed = set()  # HTTP statuses a step expects (the console reports each failed request)

    def console(self, message):
        if message.type == "error" and not any("status of %d" % status in message.text for status in self.allowed):
            self.problems.append("console: " + message.text)

    def open(self):
        self.page.goto(self.base)
        self.page.wait_for_load_state("networkidle")

    def close(self):
        self.context.close()

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.page.screenshot(path=os.path.join(ARTIFACTS, name))

    # The API, as the test reads it (with the token when the server needs one)

    def api(self, path):
        headers = {"Authorization": "Bearer " + self.token} if self.token else {}
        reply = self.server.exchange("GET", path, headers=headers)
        assert reply.status == 200, (path, reply)
        return reply

    def volume(self, dataset, scan, aug):
        key = (dataset, scan, aug)
        if key not in self.arrays:
            prefix = "/v1/datasets/%s/scans/%s/" % (dataset, scan)
            image = self.api(prefix + "image?aug=%d" % aug).array()
            mask = self.api(prefix + "mask?aug=%d" % aug).array()
            metadata = json.loads(self.api("/v1/datasets/%s" % dataset).body)["metadata"]
            self.arrays[key] = (image, mask, class_colors(metadata))
        return self.arrays[key]

    # Steps: an action, then the picture it must lead to

    def step(self, action, dataset, scan, aug, axis, index, classes=None, opacity=0.5, outline=False, window=None, screenshot=None):
        """Runs `action`, waits for the preview request of the view described, and checks that the
        page shows it: the PNG received and the pixels displayed, each against NumPy."""
        wanted = {"aug": str(aug), "axis": str(axis), "slice": str(index), "opacity": js_number(opacity),
                  "classes": None if classes is None else ",".join(map(str, classes)), "outline": "1" if outline else None,
                  "window": None if window is None else "%s:%s" % window}
        path = "/v1/datasets/%s/scans/%s/preview.png" % (dataset, scan)

        def matches(response):
            url = urllib.parse.urlsplit(response.url)
            if not url.path.endswith(path):
                return False
            query = dict(urllib.parse.parse_qsl(url.query))
            return all(query.get(key) == value for key, value in wanted.items())

        with self.page.expect_response(matches) as info:
            action()
        response = info.value
        assert response.status == 200, (response.url, response.status, response.text())
        png = response.body()
        self.page.wait_for_function(
            "url => { const img = document.getElementById('preview'); return img.dataset.state === 'ready' && img.dataset.source === url; }",
            arg=response.url)
        size = urllib.parse.parse_qs(urllib.parse.urlsplit(response.url).query).get("size")
        image, mask, colors = self.volume(dataset, scan, aug)
        expected = render(image, mask, axis, index, colors, classes=classes, opacity=opacity, outline=outline,
                          size=int(size[0]) if size else None, window=window)
        received = decode_png(png)
        assert received.shape == expected.shape, (response.url, received.shape, expected.shape)
        differ = np.argwhere(np.any(received != expected, axis=2))
        assert len(differ) == 0, "%s: %d pixels differ from NumPy, first at %s: %s != %s" % (
            response.url, len(differ), tuple(differ[0]), received[tuple(differ[0])], expected[tuple(differ[0])])
        shown = self.displayed()
        assert (shown["height"], shown["width"]) == expected.shape[:2]
        pixels = np.array(shown["rgba"], dtype=np.int64).reshape(shown["height"], shown["width"], 4)
        assert (pixels[..., 3] == 255).all()
        worst = np.abs(pixels[..., :3] - expected.astype(np.int64)).max()
        assert worst <= TOLERANCE, "%s: the displayed pixels differ from NumPy's by up to %d" % (response.url, worst)
        assert shown["rendering"] == "pixelated"
        if max(expected.shape[:2]) <= 128:
            assert shown["shownWidth"] >= 2 * shown["width"], "a small slice is shown scaled up: %s" % shown
        assert not self.problems, self.problems
        if screenshot:
            self.screenshot(screenshot)
        return expected

    def displayed(self):
        """The picture the page displays, as the browser decoded it (drawn into a canvas)."""
        return self.page.evaluate("""() => {
            const img = document.getElementById('preview');
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            return {width: canvas.width, height: canvas.height, rgba: Array.from(data),
                    shownWidth: img.getBoundingClientRect().width, rendering: getComputedStyle(img).imageRendering};
        }""")

    # Controls

    def click_dataset(self, name):
        return lambda: self.page.click("#datasets button[data-name='%s']" % name)

    def click_scan(self, scan):
        return lambda: self.page.click("#scans button[data-scan='%s']" % scan)

    def press(self, selector, key, times=1):
        def action():
            self.page.focus(selector)
            for _ in range(times):
                self.page.keyboard.press(key)
        return action

    def type_into(self, selector, text):
        def action():
            self.page.fill(selector, text)
            self.page.press(selector, "Enter")
        return action

    def dict_shown(self):
        text = self.page.text_content("#dict")
        return json.loads(text) if text else None


@pytest.fixture
def page(browser, demo):
    tab = Page(browser, demo)
    yield tab
    tab.close()


def dicts(tab, dataset, scan, aug):
    found = json.loads(tab.api("/v1/datasets/%s/dicts?scan_id=%s&aug=%d" % (dataset, scan, aug)).body)
    return sorted(found, key=lambda d: d.get("slice_id", 0))


# ------------------------------------------------------------------------------------------------
# Tests


def test_a_3d_dataset_step_by_step(page):
    page.open()
    summaries = json.loads(page.api("/v1/datasets").body)["datasets"]
    for summary in summaries:
        meta = page.page.text_content("#datasets button[data-name='%s'] .item-meta" % summary["name"])
        assert "%d item" % summary["num_items"] in meta and "%d scan" % summary["num_scans"] in meta, meta

    dataset = "demo_3d_test"
    # The dataset: its first scan opens at the middle slice of axis 2.
    page.step(page.click_dataset(dataset), dataset, "0000004_V00", 0, axis=2, index=8)
    detail = json.loads(page.api("/v1/datasets/" + dataset).body)
    metadata = detail["metadata"]
    assert page.page.text_content("#metadata") and json.loads(page.page.text_content("#metadata")) == metadata
    summary = page.page.text_content("#summary")
    assert "volumes-3d" in summary and " × ".join(str(v) for v in metadata["spacing"]) in summary
    for position, name in enumerate(metadata["categories"]):
        label = page.page.text_content("label[for='class-%d']" % position)
        assert name in label
        swatch = page.page.eval_on_selector("label[for='class-%d'] .swatch" % position, "e => getComputedStyle(e).backgroundColor")
        assert swatch == "rgb(%d, %d, %d)" % tuple(class_colors(metadata)[position])

    # Another scan, then the slider moved with the keyboard.
    scan = "0000005_V00"
    page.step(page.click_scan(scan), dataset, scan, 0, axis=2, index=8)
    assert page.dict_shown() == dicts(page, dataset, scan, 0)[0]
    page.step(page.press("#slice", "ArrowRight", 3), dataset, scan, 0, axis=2, index=11)
    page.step(page.press("#slice", "Home"), dataset, scan, 0, axis=2, index=0)

    # The axis: 0 opens at its middle slice; the number field picks another.
    page.step(lambda: page.page.click("label[for='axis-0']"), dataset, scan, 0, axis=0, index=32)
    page.step(page.type_into("#slice-number", "40"), dataset, scan, 0, axis=0, index=40)
    page.step(lambda: page.page.click("label[for='axis-1']"), dataset, scan, 0, axis=1, index=32)
    assert page.dict_shown() == dicts(page, dataset, scan, 0)[0], "a 3D scan shows its volume's dict on every axis"

    # Classes, opacity, outlines, the window.
    page.step(lambda: page.page.click("label[for='class-1']"), dataset, scan, 0, axis=1, index=32, classes=[0, 2, 3])
    page.step(page.press("#opacity", "ArrowRight", 6), dataset, scan, 0, axis=1, index=32, classes=[0, 2, 3], opacity=0.8)
    page.step(lambda: page.page.check("#outline"), dataset, scan, 0, axis=1, index=32, classes=[0, 2, 3], opacity=0.8, outline=True,
              screenshot="browser-3d.png")
    page.step(lambda: page.page.uncheck("#class-3"), dataset, scan, 0, axis=1, index=32,
              classes=[0, 2], opacity=0.8, outline=True)

    # An error from the API is shown with its message; a valid window is drawn.
    page.allowed = {400}
    with page.page.expect_response(lambda r: "preview.png" in r.url and "window=5%3A1" in r.url) as info:
        page.type_into("#window", "5:1")()
    assert info.value.status == 400
    message = json.loads(info.value.text())["error"]["message"]
    page.page.wait_for_selector("#stage-message:not([hidden])")
    assert message in page.page.text_content("#stage-message")
    page.allowed = set()
    page.step(page.type_into("#window", "-1:1.5"), dataset, scan, 0, axis=1, index=32, classes=[0, 2], opacity=0.8, outline=True,
              window=(-1, 1.5))
    assert page.page.is_hidden("#stage-message")
    page.step(page.press("#stage", "ArrowUp"), dataset, scan, 0, axis=1, index=33, classes=[0, 2], opacity=0.8, outline=True,
              window=(-1, 1.5))

    # The location keeps the scan, augmentation, axis and slice: a reload shows that slice (drawn
    # with the default classes, opacity and window).
    assert "axis=1" in page.page.url and "slice=33" in page.page.url and "scan=" + scan in page.page.url
    page.step(lambda: page.page.reload(), dataset, scan, 0, axis=1, index=33)


def test_the_page_runs_under_its_content_security_policy(page):
    """The policy is in force in this browser, so a step's "no console errors" would catch any
    inline script or style the page used."""
    with page.page.expect_response(lambda r: r.url == page.base) as info:
        page.open()
    assert "script-src" not in info.value.headers["content-security-policy"]
    assert info.value.headers["content-security-policy"].startswith("default-src 'self'")
    page.page.wait_for_selector("#datasets button[data-name='demo_2d_val']")
    ran = page.page.evaluate("""() => {
        const script = document.createElement('script');
        script.textContent = 'window.inlineRan = true';
        document.head.append(script);
        return window.inlineRan === true;
    }""")
    assert not ran
    deadline = time.time() + 10
    while not any("Content Security Policy" in problem for problem in page.problems):
        assert time.time() < deadline, "no console error for a refused inline script: %s" % page.problems
        page.page.wait_for_timeout(50)


def test_a_2d_dataset_with_augmentations(page):
    page.open()
    dataset, scan = "demo_2d_train", "0000001_V00"
    page.step(page.click_dataset(dataset), dataset, scan, 0, axis=2, index=5)
    assert page.dict_shown() == dicts(page, dataset, scan, 0)[5], "axis 2: the dict of the slice shown"

    # The scan has two augmentations: the second one, then its last slice.
    assert page.page.is_visible("#aug")
    page.step(lambda: page.page.select_option("#aug", "1"), dataset, scan, 1, axis=2, index=5)
    page.step(page.press("#slice", "End"), dataset, scan, 1, axis=2, index=9)
    shown = page.dict_shown()
    assert shown == dicts(page, dataset, scan, 1)[9] and shown["slice_id"] == 10 and shown["aug"] == 1

    # Axis 0 crosses every slice: the page lists all their dicts.
    page.step(lambda: page.page.click("label[for='axis-0']"), dataset, scan, 1, axis=0, index=32)
    assert page.dict_shown() == dicts(page, dataset, scan, 1)
    page.step(page.press("#slice", "ArrowLeft", 2), dataset, scan, 1, axis=0, index=30)

    # Every class off draws the grey image alone (opacity 0); then one class, in outlines.
    def all_off():
        for k in range(4):
            page.page.uncheck("#class-%d" % k)
    # Each uncheck sends its own request; the last one is the view wanted.
    page.step(all_off, dataset, scan, 1, axis=0, index=30, classes=None, opacity=0)
    page.step(lambda: page.page.check("#class-2"), dataset, scan, 1, axis=0, index=30, classes=[2])
    page.step(lambda: page.page.check("#outline"), dataset, scan, 1, axis=0, index=30, classes=[2], outline=True)
    page.step(page.press("#opacity", "ArrowLeft", 4), dataset, scan, 1, axis=0, index=30, classes=[2], opacity=0.3, outline=True)

    # Another scan of another subject keeps the axis.
    page.step(page.click_scan("0000009_V00"), dataset, "0000009_V00", 0, axis=0, index=32, classes=[2], opacity=0.3, outline=True,
              screenshot="browser-2d.png")


def test_the_token_form(browser, token_server):
    tab = Page(browser, token_server)
    tab.allowed = {401}
    try:
        tab.open()
        # /, /ui/app.js and /ui/style.css need no token; the API does: the form asks for one.
        tab.page.wait_for_selector("#token-dialog[open]")
        assert tab.page.is_visible("#token-input")
        tab.screenshot("browser-token-form.png")

        # Cancelled, the page says a token is needed; "Set token" opens the form again.
        tab.page.click("#token-cancel")
        tab.page.wait_for_selector("#error:not([hidden])")
        assert "401" in tab.page.text_content("#error-text") and "token" in tab.page.text_content("#error-text")
        tab.page.click("#token-button")
        tab.page.wait_for_selector("#token-dialog[open]")

        tab.page.fill("#token-input", "wrong-token")
        tab.page.click("#token-form button[type=submit]")
        tab.page.wait_for_function("() => document.getElementById('token-message').textContent.includes('refused')")
        assert tab.page.is_visible("#token-dialog")

        tab.page.fill("#token-input", TOKEN)
        tab.page.click("#token-form button[type=submit]")
        tab.page.wait_for_selector("#datasets button[data-name='demo_3d_sf_test']")
        assert tab.page.is_hidden("#token-dialog") and tab.page.is_hidden("#error")
        assert tab.page.evaluate("() => sessionStorage.getItem('medsegd.token')") == TOKEN
        tab.token = TOKEN
        tab.step(tab.click_dataset("demo_3d_sf_test"), "demo_3d_sf_test", "0000006_V00", 0, axis=2, index=8, screenshot="browser-token-data.png")
        api = [(url, auth) for url, auth in tab.requests if "/v1/" in url]
        last_refusal = max(i for i, (_, auth) in enumerate(api) if auth != "Bearer " + TOKEN)
        assert all(auth == "Bearer " + TOKEN for _, auth in api[last_refusal + 1:]) and len(api) - last_refusal > 4
        assert not tab.problems, tab.problems
    finally:
        tab.close()


def test_overlapping_classes_tab10_nan_and_size(browser, own_data):
    tab = Page(browser, own_data)
    try:
        tab.open()
        dataset = "plain_3d"
        tab.step(tab.click_dataset(dataset), dataset, "0000001_V00", 0, axis=2, index=2)
        for position in range(3):
            swatch = tab.page.eval_on_selector("label[for='class-%d'] .swatch" % position, "e => getComputedStyle(e).backgroundColor")
            assert swatch == "rgb(%d, %d, %d)" % tuple(TAB10[position])
        image, mask, _ = tab.volume(dataset, "0000001_V00", 0)
        both = (mask[:, :, 2, 1] != 0) & (mask[:, :, 2, 2] != 0)
        assert both.sum() > 20 and np.isnan(image[:, :, 2]).any(), "the data must test overlaps and NaN"
        tab.step(lambda: tab.page.uncheck("#class-2"), dataset, "0000001_V00", 0, axis=2, index=2, classes=[0, 1])
        tab.step(lambda: tab.page.check("#class-2"), dataset, "0000001_V00", 0, axis=2, index=2, classes=None)
        tab.step(lambda: tab.page.check("#outline"), dataset, "0000001_V00", 0, axis=2, index=2, outline=True)
        tab.step(lambda: tab.page.click("label[for='axis-0']"), dataset, "0000001_V00", 0, axis=0, index=18, outline=True)
        # 1100 x 24 pixels: the page asks for at most 1024 on the longer edge (nearest neighbour).
        tab.step(tab.click_scan("0000002_V00"), dataset, "0000002_V00", 0, axis=0, index=550, outline=True)
        expected = tab.step(lambda: tab.page.click("label[for='axis-2']"), dataset, "0000002_V00", 0, axis=2, index=1, outline=True,
                            screenshot="browser-overlaps.png")
        assert expected.shape == (1024, 22, 3)
    finally:
        tab.close()


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /tools/medsegd/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def test_behind_a_reverse_proxy_under_a_path_prefix(browser, demo, tmp_path):
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/install-deps --tests installs it)")
    root = str(tmp_path)
    for folder in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        os.makedirs(os.path.join(root, folder))
    port = free_port()
    with open(os.path.join(root, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(root=root, port=port, upstream=demo.port))
    nginx = subprocess.Popen([NGINX, "-p", root, "-c", os.path.join(root, "nginx.conf")],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "nginx.out"), "w"))
    base = "http://127.0.0.1:%d/tools/medsegd/" % port
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "healthz", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                assert nginx.poll() is None and time.time() < deadline, open(os.path.join(root, "nginx.out")).read()
                time.sleep(0.05)
        tab = Page(browser, demo, base=base)
        try:
            tab.open()
            tab.step(tab.click_dataset("demo_manifest"), "demo_manifest", "0000008_V00", 0, axis=2, index=2)
            assert tab.dict_shown()["site"] == "A" and tab.dict_shown()["slice_id"] == 3
            outside = [url for url, _ in tab.requests if not url.startswith(base) and not url.startswith(("blob:", "data:"))]
            assert not outside, "every request stays under the prefix: %s" % outside
        finally:
            tab.close()
    finally:
        if nginx.poll() is None:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(timeout=15)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
