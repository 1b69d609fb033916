"""`medsegd serve` as a child process, for the test modules that start their own servers.

`MedsegdProcess` starts the real binary over a config (its log in a file beside the config),
waits until /readyz answers 200, talks to it with `http.client` (the path sent as given, never
normalized), reads its RSS, open files and CPU time from /proc, reloads it with SIGHUP, and stops
it by its PID. Modules subclass it for what only they need (TLS, `requests`, checked requests)."""
import collections
import http.client
import io
import json
import os
import signal
import subprocess
import time

import numpy as np

from conftest import free_port, medsegd_binary

READY_TIMEOUT = 60  # seconds from start until /readyz answers 200
REQUEST_TIMEOUT = 30  # seconds, any single request unless a caller says otherwise
STOP_TIMEOUT = 10  # seconds from the signal until the process is killed
LOG_TAIL = 3000  # characters of the log quoted in failures

# What a request may raise when the server is gone, hung or answers garbage.
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class Headers(dict):
    """Response headers under lower-case names, looked up in any case."""

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class Reply(collections.namedtuple("Reply", "status headers body")):
    """A response: unpacks as (status, headers, body bytes)."""

    @property
    def message(self):
        return json.loads(self.body)["error"]["message"]

    @property
    def code(self):
        return json.loads(self.body)["error"]["code"]

    def array(self):
        return np.load(io.BytesIO(self.body), allow_pickle=False)

    def raw(self):
        """A `format=raw` body as the array its X-Tensor-Dtype and X-Tensor-Shape headers describe."""
        dtype = np.dtype(self.headers["x-tensor-dtype"])
        shape = tuple(int(n) for n in self.headers["x-tensor-shape"].split(",") if n)
        return np.frombuffer(self.body, dtype=dtype).reshape(shape)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:400])


class MedsegdProcess:
    """`medsegd serve --config CONFIG [--port PORT] [ARGS]` on 127.0.0.1, its output appended to
    CONFIG.log.

    With `port_in_config`, the port is not given on the command line (so the config's
    `server.port` is the one in force and a reload may change it); `port` must then be that port.
    `deaths` lists the exit codes of the processes `ensure_alive` found dead or hung."""

    def __init__(self, config, port=None, port_in_config=False, args=(), env=None):
        self.config = config
        self.port = port or free_port()
        self.port_in_config = port_in_config
        self.args = list(args)
        self.env = env
        self.log_path = config + ".log"
        self.deaths = []
        self.process = None
        self.start()

    # ----------------------------------------------------------------------------------------
    # Life cycle

    def command(self):
        command = [medsegd_binary(), "serve", "--config", self.config]
        if not self.port_in_config:
            command += ["--port", str(self.port)]
        return command + self.args

    def start(self):
        """Starts the process and waits until it is ready (it is stopped if it never is)."""
        env = None if self.env is None else dict(os.environ, **self.env)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        self.wait_ready()

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until /readyz answers 200; raises with the log's tail if the process exits first or
        `timeout` seconds pass."""
        deadline = time.time() + timeout
        while True:
            try:
                if self.exchange("GET", "/readyz", timeout=2).status == 200:
                    return
            except CONNECTION_ERRORS:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                exit_code = self.process.poll()
                self.stop()
                raise RuntimeError("medsegd did not become ready (exit code %s):\n%s" % (exit_code, self.log[-LOG_TAIL:]))
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signals this child only, by its PID, waits `timeout` seconds, then kills it. The
        ended process stays in `process` (its `returncode` says how it ended)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def exited(self):
        """Whether the process has exited, giving a crashing one a moment to finish dying."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return self.process.poll() is not None

    def healthy(self, timeout=10):
        """Whether the process runs and /healthz answers 200."""
        try:
            return self.process is not None and self.process.poll() is None and \
                self.exchange("GET", "/healthz", timeout=timeout).status == 200
        except CONNECTION_ERRORS:
            return False

    def assert_healthy(self, after):
        try:
            status = self.exchange("GET", "/healthz", timeout=10).status
        except CONNECTION_ERRORS as error:
            status = repr(error)
        assert status == 200, "after %s: /healthz %s, process exit code %s" % (after, status, self.process.poll())

    def ensure_alive(self, timeout=5):
        """Restarts the server (on a fresh port unless the config names it) when the previous
        test killed or hung it, recording the exit code in `deaths`; a dying process may still
        be running for a moment: it is waited for."""
        if self.healthy(timeout=timeout):
            return
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.deaths.append(self.process and self.process.returncode)
        if not self.port_in_config:
            self.port = free_port()
        self.start()

    def reload(self, timeout=20):
        """SIGHUP, then wait until the log says the reload finished ("reloaded")."""
        before = self.log.count("] reloaded")
        self.process.send_signal(signal.SIGHUP)
        deadline = time.time() + timeout
        while self.log.count("] reloaded") <= before:
            assert self.process.poll() is None, "medsegd died on reload:\n" + self.log[-LOG_TAIL:]
            assert "reload refused" not in self.log, self.log[-LOG_TAIL:]
            assert time.time() < deadline, "no 'reloaded' in the log after SIGHUP:\n" + self.log[-LOG_TAIL:]
            time.sleep(0.05)

    # ----------------------------------------------------------------------------------------
    # Requests

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def connection(self, timeout=REQUEST_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def exchange(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT):
        """One request on a fresh connection, the path sent as given (no normalization); a body
        that is not bytes is sent as JSON, and any body is `application/json` unless `headers`
        say otherwise. Returns a Reply: (status, headers, body bytes)."""
        headers = dict(headers or {})
        connection = self.connection(timeout)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            if body is not None:
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                if not any(name.lower() == "content-type" for name in headers):
                    headers["Content-Type"] = "application/json"
                headers["Content-Length"] = str(len(body))
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            reply = connection.getresponse()
            data = reply.read()
            return Reply(reply.status, Headers((k.lower(), v) for k, v in reply.getheaders()), data)
        finally:
            connection.close()

    request = exchange

    # ----------------------------------------------------------------------------------------
    # The process as the system sees it

    @property
    def pid(self):
        return self.process.pid

    @property
    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def wait_fingerprints(self, timeout=120):
        """Until every dataset's background fingerprint pass is done (its route no longer answers
        503): tests that measure memory or CPU take their baseline after it."""
        deadline = time.time() + timeout
        listing = self.exchange("GET", "/v1/datasets")
        if listing.status != 200:
            return
        for dataset in json.loads(listing.body)["datasets"]:
            while self.exchange("GET", "/v1/datasets/%s/fingerprint" % dataset["name"]).status == 503:
                if time.time() > deadline:
                    raise AssertionError("the fingerprint of %s was not ready in %d s" % (dataset["name"], timeout))
                time.sleep(0.05)

    def rss_kib(self, field="VmRSS"):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError("no %s in /proc/%d/status" % (field, self.pid))

    def open_files(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
