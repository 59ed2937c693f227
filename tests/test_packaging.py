"""What `pip install -e .` gives a user: the two commands, `import roundtrip`, the licence, and version bounds that
admit the versions roundtrip was tested with.

The project is installed into the test environment in editable mode (the Makefile's `setup`), so these read the
installed metadata and run the installed commands, as a user would.
"""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.requirements import Requirement

BIN = Path(sys.executable).parent  # the environment's scripts folder, where pip puts console scripts
COMMANDS = {"roundtrip-gen": ("gen.__main__:main", "sample"), "roundtrip-caption": ("caption.__main__:main", "describe")}
# The GPU machine lent to this project runs these; the lower bounds in pyproject.toml must admit them.
GPU_MACHINE = {"torch": "2.11.0", "transformers": "5.17.0"}


def requirements() -> dict[str, Requirement]:
    """The installed distribution's core dependencies (no extras), by name."""
    reqs = [Requirement(r) for r in metadata.requires("roundtrip") or []]
    return {r.name: r for r in reqs if r.marker is None}


@pytest.mark.parametrize("command", COMMANDS)
def test_console_script_is_installed_and_runs(command):
    target, subcommand = COMMANDS[command]
    [entry] = [e for e in metadata.entry_points(group="console_scripts") if e.name == command]
    assert entry.value == target and entry.dist.name == "roundtrip"
    script = BIN / command
    assert script.is_file(), f"{script} is missing: reinstall with `.venv/bin/pip install -e . --no-deps`"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and subcommand in done.stdout


def test_import_roundtrip_is_lazy_and_exports_the_public_classes(tmp_path):
    """`import roundtrip` loads no torch; each exported name is the class itself, loaded on first use."""
    probe = ("import sys, roundtrip; print('torch' in sys.modules, roundtrip.__version__); "
             "from roundtrip import Captioner, Judge, TextToImagePipeline; "
             "print(TextToImagePipeline.__module__, Captioner.__module__, Judge.__module__)")
    # run from an empty folder: the installed package is imported, not the working tree
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == f"False {metadata.version('roundtrip')}"
    assert second == "gen.generator.pipeline caption.model caption.judge.judge"


def test_an_unknown_name_is_an_attribute_error():
    import roundtrip

    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        roundtrip.Nothing  # noqa: B018
    assert {"Captioner", "Judge", "TextToImagePipeline", "__version__"} <= set(dir(roundtrip))


def test_licence_is_the_apache_text_pyproject_names():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert text.rstrip().endswith("limitations under the License.") and len(text.splitlines()) == 202
    meta = metadata.metadata("roundtrip")
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]


def test_lower_bounds_admit_the_gpu_machine_and_the_tested_versions():
    reqs = requirements()
    for name, version in GPU_MACHINE.items():
        assert reqs[name].specifier.contains(version), (name, version)
    pins = [Requirement(line) for line in (ROOT / "constraints" / "tested.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert {p.name for p in pins} == {"torch", "torchvision", "diffusers", "transformers", "accelerate"}
    for pin in pins:
        [version] = [s.version for s in pin.specifier if s.operator == "=="]
        assert reqs[pin.name].specifier.contains(version), pin
