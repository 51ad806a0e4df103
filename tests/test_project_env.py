"""The project's environment: its own virtualenv, runner and Node package manager, found from
its files, and its checks passing with it while ocactors runs from another virtualenv."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ocactors.actors.project import ProjectEnv, detect_checks, project_environment

TIMEOUT = 60


def write(root: Path, rel: str, text: str = "") -> Path:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
    return root / rel


def make_venv(folder: Path) -> Path:
    """A real virtualenv (no pip: it is not needed to import from it), in ~30 ms."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=TIMEOUT
    )
    return folder


def tiny_wheel(where: Path) -> Path:
    """A wheel of a package ``tinypkg`` (VALUE = 42), built by hand: no network, no backend."""
    files = {
        "tinypkg/__init__.py": "VALUE = 42\n",
        "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
        "tinypkg-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},{_digest(text)},{len(text)}\n" for name, text in files.items())
    wheel = where / "tinypkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(
            "tinypkg-0.1.dist-info/RECORD", record + "tinypkg-0.1.dist-info/RECORD,,\n"
        )
    return wheel


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def install(venv: Path, wheel: Path) -> None:
    """pip (ours) installs the wheel into the project's virtualenv, offline."""
    command = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    command += ["install", "-q", "--no-index", "--no-deps", str(wheel)]
    subprocess.run(command, check=True, capture_output=True, timeout=TIMEOUT)


def run(workspace: Path, command: str, env: ProjectEnv) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", "-c", command],
        cwd=workspace,
        env=env.apply(os.environ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture
def venv_project(tmp_path: Path) -> Path:
    """A project whose tests import ``tinypkg``, installed only in the project's ``.venv``."""
    root = tmp_path / "proj"
    write(root, "app.py", "import tinypkg\n\ndef answer():\n    return tinypkg.VALUE\n")
    test = "import unittest\nimport app\n\n\nclass T(unittest.TestCase):\n"
    test += "    def test_answer(self):\n        self.assertEqual(app.answer(), 42)\n"
    write(root, "tests/test_app.py", test)
    install(make_venv(root / ".venv"), tiny_wheel(tmp_path))
    return root


def test_the_projects_venv_runs_its_checks_while_ocactors_runs_from_another(
    venv_project: Path, tmp_path: Path
) -> None:
    assert sys.prefix != sys.base_prefix  # this test process is itself in a virtualenv
    env = project_environment(venv_project, os.environ)
    assert env.python_source == "venv" and env.venv == venv_project / ".venv"
    assert env.description.startswith("Python: the project's virtualenv .venv/ (Python 3.")
    [check] = detect_checks(venv_project, env)
    assert check.name == "unittest"  # pytest is not in the project's venv
    done = run(venv_project, check.command, env)
    assert done.returncode == 0, done.stderr
    assert "Ran 1 test" in done.stderr
    ours = project_environment(tmp_path / "nothing", os.environ)
    failed = run(venv_project, check.command, ours)
    assert failed.returncode != 0 and "No module named 'tinypkg'" in failed.stderr


def test_apply_puts_the_venv_first_sets_virtual_env_and_drops_ours(venv_project: Path) -> None:
    env = project_environment(venv_project, os.environ)
    ours = str(Path(sys.executable).parent)
    base = {"PATH": os.pathsep.join([ours, "/usr/bin"]), "PYTHONHOME": "/x", "LANG": "C"}
    applied = env.apply(base)
    venv_bin = str(venv_project / ".venv" / "bin")
    assert applied["PATH"] == os.pathsep.join([venv_bin, "/usr/bin"])
    assert applied["VIRTUAL_ENV"] == str(venv_project / ".venv")
    assert "PYTHONHOME" not in applied and applied["LANG"] == "C"
    found = run(venv_project, "command -v python", env).stdout.strip()
    assert found == f"{venv_bin}/python"


@pytest.mark.parametrize(
    ("folders", "chosen"),
    [
        ((".venv", "venv", "env"), ".venv"),
        (("venv", "env"), "venv"),
        (("env",), "env"),
        (("zz-py311", "env"), "env"),
    ],
)
def test_the_project_venv_is_found_by_name_then_by_pyvenv_cfg(
    tmp_path: Path, folders: tuple[str, ...], chosen: str
) -> None:
    for name in folders:
        make_venv(tmp_path / name)
    write(tmp_path, "plain/pyvenv.cfg")  # not a venv: no python in it
    env = project_environment(tmp_path, {"PATH": "/usr/bin"})
    assert env.venv == tmp_path / chosen and env.path_first == (str(tmp_path / chosen / "bin"),)


def test_an_active_virtualenv_counts_unless_it_is_ocactors_own(tmp_path: Path) -> None:
    active = make_venv(tmp_path / "elsewhere")
    project = tmp_path / "proj"
    project.mkdir()
    env = project_environment(project, {"PATH": "/usr/bin", "VIRTUAL_ENV": str(active)})
    assert env.python_source == "active" and env.venv == active
    own = project_environment(project, {"PATH": "/usr/bin", "VIRTUAL_ENV": sys.prefix})
    assert own.python_source == "ocactors"
    assert own.path_first == (str(Path(sys.executable).parent),)
    assert "ocactors' own interpreter" in own.description


def fake_tool(bin_dir: Path, name: str) -> None:
    """An executable of that name on PATH: all detection needs is that it is installed."""
    tool = write(bin_dir, name, "#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)


@pytest.mark.parametrize(
    ("files", "tool"),
    [
        ({"uv.lock": ""}, "uv"),
        ({"pyproject.toml": "[tool.uv]\ndev-dependencies = []\n"}, "uv"),
        ({"poetry.lock": ""}, "poetry"),
        ({"pyproject.toml": "[tool.poetry]\nname = 'x'\n"}, "poetry"),
        ({"pdm.lock": ""}, "pdm"),
        ({"hatch.toml": ""}, "hatch"),
        ({"pyproject.toml": "[tool.hatch.envs.default]\n"}, "hatch"),
    ],
)
def test_runner_projects_run_python_through_their_tool_when_installed(
    tmp_path: Path, files: dict[str, str], tool: str
) -> None:
    project = tmp_path / "proj"
    for rel, text in files.items():
        write(project, rel, text)
    write(project, "tests/test_x.py", "def test_x():\n    pass\n")
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, tool)
    env = project_environment(project, {"PATH": f"{bin_dir}:/usr/bin"})
    assert env.python_source == tool and env.python == f"{tool} run python"
    assert detect_checks(project, env)[0].command.startswith(f"{tool} run python -m")
    missing = project_environment(project, {"PATH": "/usr/bin"})
    assert missing.python_source == "ocactors"
    assert f"a {tool} project, but {tool} is not installed" in missing.description


def test_a_hatchling_build_alone_is_not_a_hatch_environment(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.hatch.build]\ninclude = ['x']\n")
    fake_tool(tmp_path / "bin", "hatch")
    env = project_environment(tmp_path, {"PATH": f"{tmp_path / 'bin'}:/usr/bin"})
    assert env.python_source == "ocactors"


def test_runner_drops_virtual_env_pointing_at_ocactors(tmp_path: Path) -> None:
    write(tmp_path, "poetry.lock")
    fake_tool(tmp_path / "bin", "poetry")
    env = project_environment(
        tmp_path, {"PATH": f"{tmp_path / 'bin'}:/usr/bin", "VIRTUAL_ENV": sys.prefix}
    )
    assert "VIRTUAL_ENV" not in env.apply({"PATH": "/usr/bin", "VIRTUAL_ENV": sys.prefix})


@pytest.mark.parametrize(
    ("lock", "manager"),
    [
        ("package-lock.json", "npm"),
        ("npm-shrinkwrap.json", "npm"),
        ("pnpm-lock.yaml", "pnpm"),
        ("yarn.lock", "yarn"),
        ("bun.lockb", "bun"),
        ("bun.lock", "bun"),
        (None, "npm"),
    ],
)
def test_the_node_package_manager_comes_from_the_lock_file(
    tmp_path: Path, lock: str | None, manager: str
) -> None:
    write(tmp_path, "package.json", '{"scripts": {"test": "node t.js"}}')
    if lock:
        write(tmp_path, lock)
    env = project_environment(tmp_path, {"PATH": "/usr/bin"})
    assert env.node == manager and f"Node: {manager}" in env.description


def test_package_manager_field_and_node_modules_bin(tmp_path: Path) -> None:
    write(tmp_path, "package.json", '{"packageManager": "pnpm@9.1.0"}')
    (tmp_path / "node_modules" / ".bin").mkdir(parents=True)
    env = project_environment(tmp_path, {"PATH": "/usr/bin"})
    assert env.node == "pnpm" and "pnpm is not installed" in env.description
    assert env.path_first[-1] == str(tmp_path / "node_modules" / ".bin")


def test_no_node_without_package_json(tmp_path: Path) -> None:
    write(tmp_path, "yarn.lock")
    assert project_environment(tmp_path, {"PATH": "/usr/bin"}).node is None
