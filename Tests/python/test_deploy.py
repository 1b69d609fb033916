"""The deployment files: the systemd unit passes `systemd-analyze verify` where systemd is
available, and the example configurations pass `medsegd check`'s configuration stage."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, medsegd_binary


def test_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = open(os.path.join(ROOT, "deploy", "medsegd.service")).read()
    # The unit names the installed binary; verify it against the one just built.
    unit = unit.replace("/usr/local/bin/medsegd", medsegd_binary())
    path = tmp_path / "medsegd.service"
    path.write_text(unit)
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "medsegd.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["config/medsegd.example.yaml", "deploy/etc-medsegd/medsegd.yaml"])
def test_example_configurations_parse(tmp_path, config):
    # The data folders do not exist here: exit 1 (data) is fine, 78 (invalid configuration) is not.
    source = os.path.join(ROOT, config)
    if config.startswith("deploy/"):
        # tokens_file is relative to the config's folder: give it one.
        shutil.copy(source, tmp_path / "medsegd.yaml")
        (tmp_path / "tokens").write_text("example-token\n")
        os.makedirs(tmp_path / "datasets.d")
        shutil.copy(os.path.join(ROOT, "deploy/etc-medsegd/oai.yaml"), tmp_path / "datasets.d" / "oai.yaml")
        source = str(tmp_path / "medsegd.yaml")
    result = subprocess.run([medsegd_binary(), "check", "--config", source], capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stdout + result.stderr
