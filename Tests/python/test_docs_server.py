"""The documents and the server in step (issue 24): what README, GUIDE, CLIENT, API, CONFIG and
OPERATIONS promise is what a real server over the demo data does, so that drift fails CI.

- Every metric OPERATIONS.md names is exported by a fresh server; those its table says exist
  from the start are in the first scrape (counters at 0); every medsegd_/hb_/http_server_ family
  the server exports is in that table.
- Every route the router registers (read from Sources/MedSegServer: the route structs'
  `routes.get/post` calls and the prefixes MedSegServer.swift registers them under) is in
  openapi.yaml, in GUIDE's and README's route tables, and nothing more; every documented route
  answers 2xx on the demo; openapi.yaml's query parameters are the ones each route knows; the
  routes it marks `security: []` are the ones open without a token.
- Every `curl` line of README and GUIDE runs (subprocess curl, the port substituted) and answers
  2xx, or the status its comment names; shapes its comment gives are the saved array's.
- The Python blocks of README, GUIDE, CLIENT.md and the client's README run against the demo, in
  order, each file in one interpreter with a timeout; a `print` whose line ends in a comment must
  print that comment's text. Without torch or MedSegPy installed, the statements that need them
  (and those using what they made) are left out, and the test says which.
- The two example scripts take `--url` and print what CLIENT.md shows (rates aside); API.md's
  fingerprint example has the server's keys and the demo's values; GUIDE's `check` lines behave
  as GUIDE says.
"""
import ast
import glob
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tokenize

import numpy as np
import pytest
import yaml

from conftest import ROOT, medsegd_binary
from medsegd_process import MedsegdProcess

SERVER_SOURCES = os.path.join(ROOT, "Sources", "MedSegServer")
OPENAPI = os.path.join(ROOT, "docs", "openapi.yaml")
CURL_TIMEOUT = 30  # seconds per curl line
SCRIPT_TIMEOUT = 180  # seconds per Python block file or example script
FINGERPRINT_TIMEOUT = 120  # seconds until every demo fingerprint is computed
DOC_PORT = "8080"  # the port the documents use
TOKEN = "docs-server-test-token"


def read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------------------------------------------
# Reading the documents


def fenced_blocks(text, languages):
    """(language, body, line number of the body's first line) of every fenced block whose
    language is in `languages` ("" for a bare fence)."""
    blocks = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        match = re.match(r"^```(\w*)\s*$", lines[index])
        if match:
            language, start = match.group(1), index + 1
            end = start
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if language in languages:
                blocks.append((language, "\n".join(lines[start:end]), start + 1))
            index = end + 1
        else:
            index += 1
    return blocks


def table_after(text, heading):
    """The rows (lists of cells) of the first Markdown table after `heading`."""
    at = text.index(heading)
    rows = []
    for line in text[at:].split("\n")[1:]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                rows.append(cells)
        elif rows:
            break
    assert rows, "no table after %r" % heading
    return rows


def canonical(path):
    """A route's path with its parameters unnamed, its query dropped, slashes normalized."""
    path = path.split("?")[0]
    path = re.sub(r"/+", "/", "/" + path)
    if len(path) > 1:
        path = path.rstrip("/")
    return re.sub(r"\{[^}]*\}", "{}", path)


def routes_in_table(text, heading):
    """{(METHOD, canonical path): path as written} of every backticked `METHOD /path` in the
    first column of the table after `heading`."""
    routes = {}
    for row in table_after(text, heading)[1:]:
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`", row[0]):
            routes[(method, canonical(path))] = path.split("?")[0]
    return routes


def split_comment(line):
    """(command, comment) of a shell line: the comment is the text after an unquoted ` #`."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1:].strip()
    return line.rstrip(), ""


# ------------------------------------------------------------------------------------------------
# Reading the router


def matching_paren(text, start):
    """The index of the `)` closing the `(` at `start - 1`."""
    depth, index, quote = 1, start, False
    while depth:
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == '"':
                quote = False
        elif char == '"':
            quote = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        index += 1
    return index - 1


def loop_values(text, variable):
    """`for arrays in [ArrayRequest.Arrays.image, .mask]` -> ["image", "mask"]."""
    match = re.search(r"\bfor\s+%s\s+in\s+\[([^\]]*)\]" % re.escape(variable), text)
    assert match, "cannot find the loop over %r that a route path interpolates" % variable
    return [element.strip().split(".")[-1] for element in match.group(1).split(",") if element.strip()]


def static_files(text):
    """The paths of `static var files`: the first string of each tuple of that array."""
    match = re.search(r"static\s+(?:var|let)\s+files\b", text)
    assert match, "a route registers RouterPath(file.path) but its struct has no `static var files`"
    body = text[match.end():]
    body = body[:body.index("\n    }")] if "\n    }" in body else body
    return re.findall(r'\(\s*"([^"]+)"\s*,', body)


def route_paths(argument, text, where):
    """The paths one `routes.get(ARGUMENT)` registers."""
    argument = argument.strip()
    literal = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', argument)
    if literal:
        paths = [literal.group(1)]
        while any("\\(" in path for path in paths):
            expanded = []
            for path in paths:
                interpolation = re.search(r"\\\((\w+)\.rawValue\)", path)
                assert interpolation, "%s: cannot read the interpolation in %s" % (where, path)
                for value in loop_values(text, interpolation.group(1)):
                    expanded.append(path[:interpolation.start()] + value + path[interpolation.end():])
            paths = expanded
        return paths
    if re.fullmatch(r"RouterPath\(\s*(\w+)\.path\s*\)", argument):
        return static_files(text)
    raise AssertionError(
        "%s: cannot read the route registration routes.…(%s); teach test_docs_server.py this form" % (where, argument))


def served_routes(sources=SERVER_SOURCES):
    """(METHOD, canonical path) of every route the router registers, read from the sources."""
    with open(os.path.join(sources, "Server", "MedSegServer.swift"), encoding="utf-8") as f:
        server = f.read()
    registrations = re.findall(
        r"(\w+Routes)\((?:[^()]|\([^()]*\))*\)\s*\.register\(\s*on:\s*routes(?:\.group\(\"([^\"]*)\"\))?\s*\)", server)
    assert registrations, "MedSegServer.swift registers no route structs the way this test reads them"
    # A route registered straight on Hummingbird's router would escape this reading.
    for path in glob.glob(os.path.join(sources, "**", "*.swift"), recursive=True):
        if os.path.basename(path) == "Routes.swift":
            continue  # the registry itself
        text = open(path, encoding="utf-8").read()
        assert not re.search(r"\brouter\.(get|post|put|patch|delete|head|on)\s*\(", text), \
            "%s registers a route on the router directly; register it through Routes" % path
    structs = {}
    for path in glob.glob(os.path.join(sources, "Router", "*.swift")):
        text = open(path, encoding="utf-8").read()
        for name in re.findall(r"\bstruct\s+(\w+Routes)\b", text):
            structs[name] = (os.path.relpath(path, sources), text)
    registered = {name for name, _ in registrations}
    unused = [name for name, (_, text) in structs.items() if "func register(on" in text and name not in registered]
    assert not unused, "route structs that MedSegServer.swift never registers: %s" % unused
    routes = set()
    for name, prefix in registrations:
        assert name in structs, "%s is registered but not defined in Sources/MedSegServer/Router" % name
        where, text = structs[name]
        calls = list(re.finditer(r"\broutes\.(get|post|put|patch|delete|head|on)\b\s*([({])", text))
        assert calls, "%s registers no route" % name
        for call in calls:
            method = call.group(1).upper()
            assert method != "ON", "%s: routes.on(...) is not read by this test; use routes.get/post" % where
            if call.group(2) == "{":
                paths = [""]
            else:
                paths = route_paths(text[call.end():matching_paren(text, call.end())], text, where)
            for path in paths:
                routes.add((method, canonical(prefix + "/" + path)))
    return routes


def openapi():
    with open(OPENAPI, encoding="utf-8") as f:
        return yaml.safe_load(f)


def openapi_routes(document=None):
    document = document or openapi()
    return {(method.upper(), canonical(path)): (path, operation)
            for path, item in document["paths"].items() for method, operation in item.items()
            if method in ("get", "post", "put", "patch", "delete")}


def openapi_query_parameters(document, operation):
    names = set()
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        if parameter["in"] == "query":
            names.add(parameter["name"])
    return names


# Demo values for a documented path: a dataset with 2D scans (stacked volumes) and a 3D one.
PATH_VALUES = {"{name}": "demo_2d_train", "{index}": "0", "{i}": "0", "{scan}": "0000001_V00", "{scan_id}": "0000001_V00",
               "{id}": "0000001_V00"}
BODIES = {"batch": {"indices": [0, 1]}, "sample": {"patch_size": [16, 16, 4], "count": 2, "seed": 0}}


def concrete(path):
    path = path.split("?")[0]
    for parameter, value in PATH_VALUES.items():
        path = path.replace(parameter, value)
    assert "{" not in path, "no demo value for a parameter of %s" % path
    return path


def body_for(path):
    return BODIES.get(path.rstrip("/").rsplit("/", 1)[-1])


# ------------------------------------------------------------------------------------------------
# Servers over the demo


def write_demo(folder):
    subprocess.run([medsegd_binary(), "demo", folder], check=True, stdout=subprocess.DEVNULL, timeout=120)
    return os.path.join(folder, "medsegd.yaml")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo served, every fingerprint computed (the fingerprint and sample routes answer 503
    until then, as the documents say)."""
    config = write_demo(str(tmp_path_factory.mktemp("docs-demo")))
    with MedsegdProcess(config) as server:
        server.wait_fingerprints(timeout=FINGERPRINT_TIMEOUT)
        yield server


@pytest.fixture(scope="module")
def token_demo(tmp_path_factory):
    """The demo with a tokens file."""
    folder = str(tmp_path_factory.mktemp("docs-demo-tokens"))
    config = write_demo(folder)
    with open(os.path.join(folder, "tokens"), "w") as f:
        f.write(TOKEN + "\n")
    text = open(config).read()
    assert "\nserver:\n" in text
    with open(config, "w") as f:
        f.write(text.replace("\nserver:\n", "\nserver:\n  tokens_file: tokens\n", 1))
    with MedsegdProcess(config) as server:
        deadline = time.time() + FINGERPRINT_TIMEOUT
        for name in ("demo_2d_train", "demo_3d_test"):  # the datasets PATH_VALUES and BODIES use
            while server.exchange("GET", "/v1/datasets/%s/fingerprint" % name, headers={"Authorization": "Bearer " + TOKEN}).status == 503:
                assert time.time() < deadline, "the fingerprint of %s was not ready in %d s" % (name, FINGERPRINT_TIMEOUT)
                time.sleep(0.05)
        yield server


def substitute_port(text, port):
    for host in ("localhost", "127.0.0.1"):
        text = text.replace("%s:%s" % (host, DOC_PORT), "127.0.0.1:%d" % port)
    return text


# ------------------------------------------------------------------------------------------------
# Metrics: OPERATIONS.md and /metrics


def scrape(server, headers=None):
    """{family: (type, [(labels dict, value)])} of a /metrics answer; histograms by their _count."""
    reply = server.exchange("GET", "/metrics", headers=headers)
    assert reply.status == 200, reply
    families, samples = {}, []
    for line in reply.body.decode().splitlines():
        typed = re.match(r"# TYPE (\S+) (\S+)", line)
        if typed:
            families[typed.group(1)] = (typed.group(2), [])
        elif line and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
            assert match, "unreadable metrics line %r" % line
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    for name, labels, value in samples:
        if name in families:
            families[name][1].append((labels, value))
        elif name.endswith("_count") and families.get(name[:-6], ("",))[0] == "histogram":
            families[name[:-6]][1].append((labels, value))
    return families


def documented_metrics():
    """OPERATIONS.md's metrics table: [(name, [(label, value or None)], when)], when one of
    "start", "fingerprint", "request"."""
    text = read("docs", "OPERATIONS.md")
    rows = table_after(text, "## Metrics")
    assert rows[0][:3] == ["series", "labels", "exists"], rows[0]
    metrics = []
    for row in rows[1:]:
        name = re.fullmatch(r"`([\w:]+)`", row[0])
        assert name, "OPERATIONS.md's metrics table: the first cell of %r is not one `name`" % row
        labels = []
        for label in re.findall(r"`([^`]+)`", row[1]):
            key, _, value = label.partition("=")
            labels.append((key, value.strip('"') if value else None))
        when = "start" if row[2].startswith("from the start") else \
            "fingerprint" if "background pass" in row[2] else "request"
        metrics.append((name.group(1), labels, when))
    return metrics


def metric_mentions():
    """Every metric name OPERATIONS.md mentions anywhere (prose, tables, code), with the label
    values it gives, e.g. ("medsegd_reloads_total", {"result": "failed"})."""
    mentions = set()
    for name, labels in re.findall(r"\b((?:medsegd|hb|http_server)_[a-z0-9_]+)(\{[^}]*\})?", read("docs", "OPERATIONS.md")):
        mentions.add((name, tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels)))))
    return mentions


def check_metric(families, name, labels, where):
    problems = []
    if name not in families:
        return ["%s: %s is not exported" % (where, name)]
    series = families[name][1]
    for key, value in labels:
        if value is None:
            if not any(key in present for present, _ in series):
                problems.append("%s: %s has no series with label %s" % (where, name, key))
        elif not any(present.get(key) == value for present, _ in series):
            problems.append("%s: %s has no series %s=%r" % (where, name, key, value))
    return problems


def test_every_metric_operations_md_names_is_exported_and_the_start_set_is_there_at_once(tmp_path):
    metrics = documented_metrics()
    config = write_demo(str(tmp_path / "demo"))
    with MedsegdProcess(config) as server:
        # The first scrape once /readyz answers 200 (MedsegdProcess waited for it).
        first = scrape(server)
        problems = []
        for name, labels, when in metrics:
            if when == "start":
                problems += check_metric(first, name, labels, "in the first scrape")
                if name in first and first[name][0] == "counter":
                    problems += ["%s %s is %s in the first scrape, not 0" % (name, labels, value)
                                 for labels, value in first[name][1] if value != 0]
        # A request of each kind that times its reads, every fingerprint, then everything.
        assert server.exchange("GET", "/v1/datasets/demo_2d_train/items/0/image").status == 200
        assert server.exchange("GET", "/v1/datasets/demo_2d_train/items/0/preview.png").status == 200
        server.wait_fingerprints(timeout=FINGERPRINT_TIMEOUT)
        assert server.exchange("POST", "/v1/datasets/demo_3d_test/sample", BODIES["sample"]).status == 200
        datasets = [d["name"] for d in json.loads(server.exchange("GET", "/v1/datasets").body)["datasets"]]
        deadline = time.time() + 30
        while True:
            later = scrape(server)
            gauges = later.get("medsegd_fingerprint_volumes", ("", []))[1]
            if {labels.get("dataset") for labels, _ in gauges} >= set(datasets) or time.time() > deadline:
                break
            time.sleep(0.2)
        for name, labels, _ in metrics:
            problems += check_metric(later, name, labels, "OPERATIONS.md's table")
        for name, labels in metric_mentions():
            problems += check_metric(later, name, [(key, value) for key, value in labels], "OPERATIONS.md's text")
        for dataset in datasets:
            for name in ("medsegd_catalog_items", "medsegd_fingerprint_volumes", "medsegd_fingerprint_volumes_done"):
                problems += check_metric(later, name, [("dataset", dataset)], "every dataset")
        documented = {name for name, _, _ in metrics}
        undocumented = sorted(name for name in later if re.match(r"(medsegd|hb|http_server)_", name) and name not in documented)
        problems += ["/metrics exports %s, which OPERATIONS.md's table does not list" % name for name in undocumented]
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------
# Routes: the router, openapi.yaml, GUIDE's and README's tables


def test_the_served_openapi_document_is_docs_openapi_yaml():
    served = os.path.join(SERVER_SOURCES, "OpenAPI", "openapi.yaml")
    assert open(served, "rb").read() == open(OPENAPI, "rb").read(), \
        "docs/openapi.yaml and Sources/MedSegServer/OpenAPI/openapi.yaml (what /openapi.yaml serves) differ"


def test_every_route_the_router_serves_is_documented_and_nothing_else():
    served = served_routes()
    # The reading itself: the routes any medsegd has served since the preview routes.
    assert {("GET", "/healthz"), ("GET", "/"), ("GET", "/ui/app.js"), ("POST", "/v1/datasets/{}/batch"),
            ("GET", "/v1/datasets/{}/items/{}/mask"), ("GET", "/v1/datasets/{}/scans/{}/preview.png")} <= served
    documents = {
        "docs/openapi.yaml": set(openapi_routes()),
        "docs/GUIDE.md's route table": set(routes_in_table(read("docs", "GUIDE.md"), "## Routes and errors")),
        "README.md's route table": set(routes_in_table(read("README.md"), "## Routes at a glance")),
    }
    problems = []
    for document, routes in documents.items():
        problems += ["%s lacks %s %s, which the router serves" % (document, *route) for route in sorted(served - routes)]
        problems += ["%s documents %s %s, which the router does not serve" % (document, *route) for route in sorted(routes - served)]
    assert not problems, "\n".join(problems)


def documented_routes():
    """(METHOD, a documented path) of openapi.yaml and GUIDE's table, one path per route."""
    routes = {}
    for (method, key), (path, _) in openapi_routes().items():
        routes[(method, key)] = path
    for (method, key), path in routes_in_table(read("docs", "GUIDE.md"), "## Routes and errors").items():
        routes.setdefault((method, key), path)
    return sorted((method, path) for (method, _), path in routes.items())


@pytest.mark.parametrize("method,path", documented_routes())
def test_every_documented_route_answers(demo, method, path):
    url = concrete(path)
    reply = demo.exchange(method, url, body=body_for(url) if method == "POST" else None)
    assert 200 <= reply.status < 300, "%s %s: %r" % (method, url, reply)


@pytest.mark.parametrize("path", sorted(path for (_, _), (path, _) in openapi_routes().items()))
def test_openapi_query_parameters_are_the_ones_the_route_knows(demo, path):
    """An unknown parameter is a 400 that lists what the route knows: openapi.yaml must list
    exactly those."""
    document = openapi()
    for method, operation in document["paths"][path].items():
        url = concrete(path)
        reply = demo.exchange(method.upper(), url + "?zz_not_a_parameter=1", body=body_for(url) if method == "post" else None)
        assert reply.status == 400, "%s %s?zz_not_a_parameter=1: %r" % (method, url, reply)
        message = reply.message
        match = re.search(r"this route knows (.*)$", message)
        assert match, message
        knows = set() if match.group(1) == "no query parameters" else set(match.group(1).split(", "))
        assert openapi_query_parameters(document, operation) == knows, "%s %s: openapi.yaml lists %s, the server knows %s" % (
            method, path, sorted(openapi_query_parameters(document, operation)), sorted(knows))


def test_openapi_security_says_which_routes_need_a_token(token_demo):
    document = openapi()
    problems = []
    for (method, _), (path, operation) in sorted(openapi_routes(document).items()):
        url = concrete(path)
        body = body_for(url) if method == "POST" else None
        without = token_demo.exchange(method, url, body=body)
        with_token = token_demo.exchange(method, url, body=body, headers={"Authorization": "Bearer " + TOKEN})
        is_open = operation.get("security") == []
        if is_open and not 200 <= without.status < 300:
            problems.append("%s %s is open in openapi.yaml but answers %d without a token" % (method, path, without.status))
        if not is_open and without.status != 401:
            problems.append("%s %s needs a token in openapi.yaml but answers %d without one" % (method, path, without.status))
        if not 200 <= with_token.status < 300:
            problems.append("%s %s answers %d with a token" % (method, path, with_token.status))
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------
# curl lines of README and GUIDE


def curl_lines():
    lines = []
    for document in ("README.md", os.path.join("docs", "GUIDE.md")):
        for _, body, first in fenced_blocks(read(document), {"sh", "bash", "console", "shell"}):
            joined, start = "", None
            for offset, line in enumerate(body.split("\n")):
                if start is None:
                    start = first + offset
                joined += line[:-1] + " " if line.endswith("\\") else line
                if line.endswith("\\"):
                    continue
                if joined.lstrip().startswith("curl "):
                    lines.append(pytest.param(joined.strip(), id="%s:%d" % (document, start)))
                joined, start = "", None
    return lines


NUMPY_DTYPES = {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64"}


@pytest.mark.parametrize("line", curl_lines())
def test_every_curl_line_of_readme_and_guide_answers(demo, tmp_path, line):
    command, comment = split_comment(line)
    # A newcomer pastes these into a shell: no unquoted glob or control characters (zsh refuses
    # an unmatched `?` or `[`, `&` would run curl in the background).
    lexer = shlex.shlex(command, posix=False)
    lexer.whitespace_split = True
    for token in lexer:
        if token[0] not in "'\"":
            assert not re.search(r"[?*\[\]&;|<>]", token), "quote %r in: %s" % (token, line)
    arguments = shlex.split(substitute_port(command, demo.port))
    assert arguments[0] == "curl"
    result = subprocess.run(arguments + ["--max-time", str(CURL_TIMEOUT), "-w", "\n%{http_code}"],
                            capture_output=True, timeout=CURL_TIMEOUT + 10, cwd=str(tmp_path))
    assert result.returncode == 0, "%s\n%s" % (line, result.stderr.decode(errors="replace"))
    status = int(result.stdout.decode(errors="replace").rsplit("\n", 1)[-1])
    named = re.match(r"(\d{3})\b", comment)
    if named:
        assert status == int(named.group(1)), "%s answered %d" % (line, status)
    else:
        assert 200 <= status < 300, "%s answered %d: %r" % (line, status, result.stdout[-400:])
    output = arguments[arguments.index("-o") + 1] if "-o" in arguments else None
    if output and output != "/dev/null":
        path = os.path.join(str(tmp_path), output)
        if output.endswith(".npy"):
            array = np.load(path, allow_pickle=False)
            shape = re.search(r"(\d+(?: x \d+)+)(?:,? (\w+))?", comment)
            if shape:
                assert array.shape == tuple(int(n) for n in shape.group(1).split(" x ")), "%s gave %s" % (line, array.shape)
                if shape.group(2) in NUMPY_DTYPES:
                    assert array.dtype == np.dtype(shape.group(2)), "%s gave %s" % (line, array.dtype)
        elif output.endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                assert "image" in archive.files
        elif output.endswith(".png"):
            assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n", line


def test_guide_check_lines_do_what_guide_says(demo, tmp_path):
    guide = read("docs", "GUIDE.md")
    checks = [line for _, body, _ in fenced_blocks(guide, {"sh"}) for line in body.split("\n") if " check --config " in line]
    assert checks, "GUIDE shows no `medsegd check --config` line"
    for line in checks:
        config = shlex.split(line, comments=True)[-1]
        assert config == "demo-data/medsegd.yaml", "GUIDE's check line should name the demo's config (what scripts/run serves): " + line
        result = subprocess.run([medsegd_binary(), "check", "--config", demo.config], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "0 error(s)" in result.stdout, result.stdout + result.stderr
    assert "scripts/run" in guide and 'demo-data' in read("scripts", "run")
    # What GUIDE says of the example configuration on a machine without its data.
    if not os.path.exists("/data/oai"):
        example = os.path.join(ROOT, "config", "medsegd.example.yaml")
        result = subprocess.run([medsegd_binary(), "check", "--config", example], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stdout.count("NOT REGISTERED") == 5 and "five datasets" in guide


# ------------------------------------------------------------------------------------------------
# Python blocks and example scripts


OPTIONAL = {"torch": "torch", "medsegpy": "MedSegPy"}


def missing_optional():
    """The optional modules a fresh interpreter lacks (asked in a child: another test of this
    process may have put a stand-in `medsegpy` into sys.modules)."""
    probe = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    run = subprocess.run([sys.executable, "-c", probe, *OPTIONAL], capture_output=True, text=True, timeout=60, check=True)
    return set(run.stdout.split())


def needs(statement, missing):
    """The optional modules a statement uses directly."""
    used = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and node.id in missing:
            used.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            used |= {module.split(".")[0] for module in modules if module.split(".")[0] in missing}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "register_with_medsegpy" and "medsegpy" in missing:
            used.add("medsegpy")
    return used


def bound_names(statement):
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def loaded_names(statement):
    return {node.id for node in ast.walk(statement) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def runnable(source, missing, tainted):
    """The block without the top-level statements that need a missing module or use what such a
    statement made; (kept source, [(first line, source) left out], [(line, comment)] of kept
    print calls)."""
    tree = ast.parse(source)
    lines = source.split("\n")
    comments = {token.start[0]: token.string[1:].strip() for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    kept, left_out, promises = [], [], []
    for statement in tree.body:
        text = "\n".join(lines[statement.lineno - 1:statement.end_lineno])
        modules = needs(statement, missing)
        reasons = sorted(OPTIONAL[module] for module in modules) + sorted((loaded_names(statement) & tainted) - modules)
        if reasons:
            tainted |= bound_names(statement)
            left_out.append((statement.lineno, text, ", ".join(reasons)))
            continue
        tainted -= bound_names(statement)
        kept.append(text)
        for node in ast.walk(statement):
            call = node.value if isinstance(node, ast.Expr) else None
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print" and node.end_lineno in comments:
                promises.append((node.end_lineno, comments[node.end_lineno]))
    return "\n".join(kept), left_out, promises


PYTHON_DOCUMENTS = ["README.md", "docs/GUIDE.md", "docs/CLIENT.md", "clients/python/README.md"]


@pytest.mark.parametrize("document", PYTHON_DOCUMENTS)
def test_python_blocks_run_against_the_demo(demo, tmp_path, document):
    blocks = fenced_blocks(read(document), {"python"})
    assert blocks, document + " has no python block"
    missing = missing_optional()
    script, left_out, promises, tainted = [], [], [], set()
    for _, body, first in blocks:
        source = substitute_port(body, demo.port)
        kept, dropped, printed = runnable(source, missing, tainted)
        left_out += [(first + line - 1, text, reason) for line, text, reason in dropped]
        promises += [(first + line - 1, text) for line, text in printed]
        script.append("# %s, line %d\n%s" % (document, first, kept))
    path = tmp_path / "blocks.py"
    path.write_text("\n\n".join(script) + "\n")
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, cwd=str(tmp_path))
    report = "\n".join("%s:%d left out (needs %s): %s" % (document, line, reason, text.split("\n")[0])
                       for line, text, reason in left_out)
    assert result.returncode == 0, "%s\n%s\n--- script ---\n%s" % (result.stderr[-4000:], report, path.read_text())
    normalized = " ".join(result.stdout.split())
    broken = ["%s:%d prints %r, not %r" % (document, line, result.stdout[-600:], comment)
              for line, comment in promises if " ".join(comment.split()) not in normalized]
    assert not broken, "\n".join(broken)
    if left_out:
        print(report)  # shown with pytest -rA / -s: what ran without torch or MedSegPy


@pytest.mark.parametrize("script", ["train_demo.py", "train_patches.py"])
def test_example_scripts_take_url_and_print_what_client_md_shows(demo, script):
    client_md = read("docs", "CLIENT.md")
    command = "$ python clients/python/examples/%s --url http://127.0.0.1:8080" % script
    transcript = next((body for _, body, _ in fenced_blocks(client_md, {""}) if body.startswith(command + "\n")), None)
    assert transcript, "CLIENT.md shows no transcript starting with %r" % command
    path = os.path.join(ROOT, "clients", "python", "examples", script)
    usage = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "--url" in usage.stdout and "http://127.0.0.1:8080" in usage.stdout, usage.stdout
    result = subprocess.run([sys.executable, path, "--url", demo.base], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]

    def steady(text):  # rates differ from run to run
        return [re.sub(r"\d+ (items|patches)/s", r"N \1/s", line.rstrip()) for line in text.strip().split("\n")]

    assert steady(result.stdout) == steady(transcript.split("\n", 1)[1]), result.stdout


def test_api_md_fingerprint_example_is_what_the_server_sends(demo):
    api = read("docs", "API.md")
    marker = "On the demo (`demo_2d_train`"
    assert marker in api, "API.md shows no fingerprint of the demo"
    example = json.loads(fenced_blocks(api[api.index(marker):], {"json"})[0][1])
    served = json.loads(demo.exchange("GET", "/v1/datasets/demo_2d_train/fingerprint").body)
    assert sorted(example) == sorted(served)
    for key in example:
        if key == "scans":
            assert sorted(example["scans"][0]) == sorted(served["scans"][0])
            for field, value in example["scans"][0].items():
                if field != "intensity":
                    assert value == served["scans"][0][field], field
        elif key == "intensity":
            assert sorted(example[key]) == sorted(served[key])
            for field, value in example[key].items():
                assert value == pytest.approx(served[key][field], rel=0.05), field
        else:
            assert example[key] == served[key], key
    # The keys API.md's prose lists, dataset and volume, are the ones sent.
    for key in list(served) + list(served["scans"][0]):
        assert "`%s`" % key in api, "API.md does not name the fingerprint key %s" % key
