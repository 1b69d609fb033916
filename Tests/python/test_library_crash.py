"""A file that crashes libhdf5 itself (found by fuzzing: H5Dopen2 reads 256 MiB past a 280-byte
buffer in H5O_msg_read_oh, in the Debian 1.10.8 build) must not take the server down: every file
is first opened by a child process (`medsegd vet`), whose death refuses the file with a 422."""
import os
import shutil
import subprocess

import h5py
import numpy as np

from conftest import medsegd_binary
from medsegd_process import MedsegdProcess

CRASHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "libhdf5-crash-H5O_msg_read_oh.h5")


def test_a_file_that_crashes_the_hdf5_library_is_refused_and_the_server_lives(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "2d"))
    os.makedirs(os.path.join(root, "3d"))
    shutil.copy(CRASHER, os.path.join(root, "2d", "0000001_V00-Aug00_001.im"))
    shutil.copy(CRASHER, os.path.join(root, "2d", "0000001_V00-Aug00_001.seg"))
    good = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    with h5py.File(os.path.join(root, "2d", "0000002_V00-Aug00_001.im"), "w") as f:
        f["data"] = good
    shutil.copy(CRASHER, os.path.join(root, "3d", "0000003_V00.h5"))
    with open(os.path.join(root, "manifest.json"), "w") as f:
        f.write('[{"file_name": "3d/0000003_V00.h5", "sem_seg_file": "3d/0000003_V00.h5", "scan_id": "0000003_V00"}]')
    config = os.path.join(root, "medsegd.yaml")
    with open(config, "w") as f:
        f.write("families:\n  f:\n    categories: [{id: 0, name: a}]\n    datasets:\n"
                "      s: {format: slices-2d, scan_root: 2d}\n      m: {format: manifest, path: manifest.json}\n")
    daemon = MedsegdProcess(config)
    try:
        for path in ["/v1/datasets/s/items/0/image", "/v1/datasets/s/items/0/mask", "/v1/datasets/m/items/0/image",
                     "/v1/datasets/m/items/0", "/v1/datasets/s/scans/0000001_V00/image"]:
            reply = daemon.exchange("GET", path)
            assert reply.status == 422, (path, reply.status, reply.body[:300])
            assert b"HDF5 library fails on this file" in reply.body, reply.body[:300]
            assert daemon.healthy() and daemon.process.poll() is None
        reply = daemon.exchange("GET", "/v1/datasets/s/items/1/image?format=raw")
        assert reply.status == 200 and np.frombuffer(reply.body, np.float32).tolist() == good.ravel().tolist()
    finally:
        daemon.stop()
    # `medsegd check` names the file instead of crashing.
    result = subprocess.run([medsegd_binary(), "check", "--config", config], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "0000001_V00-Aug00_001.im" in result.stdout and "HDF5 library fails on this file" in result.stdout


def test_the_vetting_child_keeps_no_inherited_file_open(tmp_path):
    """HDF5 locks the files it opens, and a lock lives as long as any descriptor of the opening:
    a `medsegd vet` child that kept one it inherited would keep the file locked after the server
    closed it (a later h5py rewrite or open fails "unable to lock file")."""
    path = str(tmp_path / "locked.h5")
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(4)
    writer = h5py.File(path, "a")
    child = subprocess.Popen([medsegd_binary(), "vet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             pass_fds=[writer.id.get_vfd_handle()])
    try:
        child.stdin.write(b"/nonexistent\n")
        child.stdin.flush()
        assert child.stdout.readline() == b"ok\n"  # the child is running, past its start
        writer.close()
        with h5py.File(path, "r") as f:  # fails while the child holds the inherited lock
            assert f["x"].shape == (4,)
    finally:
        child.kill()
        child.wait()
