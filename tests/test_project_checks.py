"""Checks detected as a developer of each ecosystem runs them: the command chosen for a tiny
real project of each kind, and run where the toolchain is installed and the run is cheap."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocactors.actors.project import (
    Check,
    ProjectEnv,
    describe_checks,
    detect_checks,
    make_targets,
    project_environment,
    pytest_config,
)

TIMEOUT = 120
PASSING = "def test_ok():\n    assert True\n"
FAILING = "def test_bad():\n    assert 1 == 2\n"


def write(root: Path, rel: str, text: str = "") -> Path:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
    return root / rel


def env_of(root: Path) -> ProjectEnv:
    return project_environment(root, os.environ)


def checks(root: Path) -> list[Check]:
    return detect_checks(root, env_of(root))


def commands(root: Path) -> list[str]:
    return [check.command for check in checks(root)]


def run(root: Path, check: Check) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", "-c", check.command],
        cwd=root,
        env=env_of(root).apply(os.environ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed")


# --- Python -----------------------------------------------------------------------------


def test_pytest_runs_a_passing_project_and_a_failing_one_fails(tmp_path: Path) -> None:
    write(tmp_path, "tests/test_ok.py", PASSING)
    [check] = checks(tmp_path)
    assert check == Check("pytest", "python -m pytest -q")  # pytest is in our own environment
    assert run(tmp_path, check).returncode == 0
    write(tmp_path, "tests/test_bad.py", FAILING)
    assert run(tmp_path, check).returncode == 1


def test_pytest_own_naming_star_test_py_is_found_and_its_failure_seen(tmp_path: Path) -> None:
    write(tmp_path, "pkg/core_test.py", FAILING)
    [check] = checks(tmp_path)
    assert check.name == "pytest"
    done = run(tmp_path, check)
    assert done.returncode == 1 and "1 failed" in done.stdout


@pytest.mark.parametrize(
    ("rel", "text"),
    [
        ("pytest.ini", "[pytest]\npython_files = check_*.py\n"),
        ("pyproject.toml", "[tool.pytest.ini_options]\npython_files = ['check_*.py']\n"),
        ("pyproject.toml", '[tool.pytest]\npython_files = ["check_*.py"]\n'),
        ("setup.cfg", "[tool:pytest]\npython_files = check_*.py other_*.py\n"),
        ("tox.ini", "[pytest]\npython_files = check_*.py\n"),
    ],
)
def test_custom_python_files_from_any_pytest_config(tmp_path: Path, rel: str, text: str) -> None:
    write(tmp_path, rel, text)
    write(tmp_path, "suite/check_math.py", FAILING)
    assert pytest_config(tmp_path).python_files[0] == "check_*.py"
    assert checks(tmp_path) == [Check("pytest", "python -m pytest -q")]


def test_tests_named_by_python_files_run_and_fail(tmp_path: Path) -> None:
    write(tmp_path, "setup.cfg", "[tool:pytest]\npython_files = check_*.py other_*.py\n")
    write(tmp_path, "suite/other_math.py", FAILING)
    [check] = checks(tmp_path)
    done = run(tmp_path, check)
    assert done.returncode == 1 and "other_math.py" in done.stdout


def test_no_tests_means_no_python_check_even_with_a_pytest_config(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.pytest.ini_options]\naddopts = '-q'\n")
    write(tmp_path, "app.py", "x = 1\n")
    assert checks(tmp_path) == []
    assert describe_checks([]) == "no automated checks found"


def test_unittest_when_the_projects_python_has_no_pytest(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")],
        check=True,
        timeout=TIMEOUT,
    )
    write(tmp_path, "calc.py", "def add(a, b):\n    return a + b\n")
    test = "import unittest\nfrom calc import add\n\nclass T(unittest.TestCase):\n"
    test += "    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n"
    write(tmp_path, "tests/test_calc.py", test)
    [check] = checks(tmp_path)
    assert check == Check("unittest", "python -m unittest discover -s tests")
    done = run(tmp_path, check)
    assert done.returncode == 0 and "Ran 1 test" in done.stderr
    write(tmp_path, "tests/__init__.py")
    assert commands(tmp_path) == ["python -m unittest discover"]
    assert run(tmp_path, checks(tmp_path)[0]).returncode == 0


def test_django_runs_manage_py_test_unless_pytest_django_is_configured(tmp_path: Path) -> None:
    write(tmp_path, "manage.py", "import django\nfrom django.core.management import execute\n")
    write(tmp_path, "shop/tests.py", "from django.test import TestCase\n")
    assert checks(tmp_path) == [Check("django", "python manage.py test")]
    write(tmp_path, "pytest.ini", "[pytest]\nDJANGO_SETTINGS_MODULE = site.settings\n")
    write(tmp_path, "shop/test_views.py", PASSING)
    assert commands(tmp_path) == ["python -m pytest -q"]


def fake_tool(bin_dir: Path, name: str) -> None:
    tool = write(bin_dir, name, "#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)


@pytest.mark.parametrize(
    ("rel", "text", "tool"),
    [
        ("tox.ini", "[tox]\nenvlist = py311\n[testenv]\ncommands = pytest\n", "tox"),
        ("tox.ini", "[testenv]\ncommands = pytest\n", "tox"),
        ("setup.cfg", "[tox:tox]\nenvlist = py311\n", "tox"),
        ("pyproject.toml", "[tool.tox]\nlegacy_tox_ini = ''\n", "tox"),
        ("tox.toml", "env_list = ['3.11']\n", "tox"),
        ("noxfile.py", "import nox\n", "nox"),
    ],
)
def test_tox_and_nox_when_configured_installed_and_the_project_has_no_env(
    tmp_path: Path, rel: str, text: str, tool: str
) -> None:
    project = tmp_path / "proj"
    write(project, rel, text)
    write(project, "tests/test_a.py", PASSING)
    fake_tool(tmp_path / "bin", tool)
    path = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    assert detect_checks(project, project_environment(project, path)) == [Check(tool, tool)]
    assert commands(project) == ["python -m pytest -q"]  # not installed: pytest directly
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(project / ".venv")],
        check=True,
        timeout=TIMEOUT,
    )
    with_venv = detect_checks(project, project_environment(project, path))
    assert [c.name for c in with_venv] != [tool]  # the project's own venv runs the tests


def test_ignored_folders_are_never_scanned_for_tests(tmp_path: Path) -> None:
    for folder in (".tox/py311/lib", "node_modules/x", "build/lib", ".nox/s", "env/lib", "out"):
        write(tmp_path, f"{folder}/test_thing.py", PASSING)
    write(tmp_path, "env/pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path, ".gitignore", "out/\n")
    write(tmp_path, "app.py", "x = 1\n")
    assert checks(tmp_path) == []


# --- Node, Deno -------------------------------------------------------------------------


@needs("npm")
def test_npm_runs_the_test_script(tmp_path: Path) -> None:
    write(tmp_path, "package.json", '{"name": "t", "scripts": {"test": "node test.js"}}')
    write(tmp_path, "test.js", "process.exit(require('./x.json').ok ? 0 : 1)\n")
    write(tmp_path, "x.json", '{"ok": true}')
    [check] = checks(tmp_path)
    assert check == Check("npm", "npm test") and run(tmp_path, check).returncode == 0
    write(tmp_path, "x.json", '{"ok": false}')
    assert run(tmp_path, check).returncode != 0


@pytest.mark.parametrize(
    ("lock", "command"),
    [
        ("pnpm-lock.yaml", "pnpm test"),
        ("yarn.lock", "yarn test"),
        ("bun.lockb", "bun run test"),
        ("bun.lock", "bun run test"),
        ("package-lock.json", "npm test"),
    ],
)
def test_the_lock_files_manager_runs_the_test_script(
    tmp_path: Path, lock: str, command: str
) -> None:
    write(tmp_path, "package.json", '{"scripts": {"test": "vitest run"}}')
    write(tmp_path, lock)
    assert commands(tmp_path) == [command]


def test_the_npm_init_placeholder_is_not_a_check(tmp_path: Path) -> None:
    placeholder = '"echo \\"Error: no test specified\\" && exit 1"'
    write(tmp_path, "package.json", f'{{"scripts": {{"test": {placeholder}}}}}')
    assert checks(tmp_path) == []
    write(tmp_path, "package.json", '{"scripts": {"build": "tsc"}}')
    assert checks(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "text", "command"),
    [
        ("deno.json", '{"tasks": {"test": "deno test -A"}}', "deno task test"),
        ("deno.jsonc", '{\n  // tasks\n  "tasks": {"test": "x",},\n}', "deno task test"),
        ("deno.json", '{"imports": {}}', "deno test"),
    ],
)
def test_deno(tmp_path: Path, name: str, text: str, command: str) -> None:
    write(tmp_path, name, text)
    assert checks(tmp_path) == [Check("deno", command)]


# --- Go, Rust ---------------------------------------------------------------------------


def test_go_tests_every_package(tmp_path: Path) -> None:
    write(tmp_path, "go.mod", "module example.com/t\n\ngo 1.22\n")
    assert checks(tmp_path) == [Check("go", "go test ./...")]


def test_cargo(tmp_path: Path) -> None:
    write(tmp_path, "Cargo.toml", '[package]\nname = "t"\nversion = "0.1.0"\nedition = "2021"\n')
    write(tmp_path, "src/lib.rs", "#[test]\nfn ok() { assert_eq!(1 + 1, 2); }\n")
    assert checks(tmp_path) == [Check("cargo", "cargo test")]


@needs("cargo")
def test_cargo_test_runs(tmp_path: Path) -> None:
    write(tmp_path, "Cargo.toml", '[package]\nname = "t"\nversion = "0.1.0"\nedition = "2021"\n')
    write(tmp_path, "src/lib.rs", "#[test]\nfn ok() { assert_eq!(1 + 1, 2); }\n")
    [check] = checks(tmp_path)
    assert run(tmp_path, check).returncode == 0
    write(tmp_path, "src/lib.rs", "#[test]\nfn bad() { assert_eq!(1 + 1, 3); }\n")
    assert run(tmp_path, check).returncode != 0


# --- make, just, CMake ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("makefile", "command"),
    [
        ("test:\n\ttrue\n", "make test"),
        ("test : build\n\ttrue\nbuild:\n\ttrue\n", "make test"),
        ("check:\n\ttrue\n", "make check"),
        ("all check::\n\ttrue\n", "make check"),
        (".PHONY: lint test\n%:\n\ttrue\n", "make test"),
        ("test check: x\n\ttrue\n", "make test"),
        ("test := 1\nall:\n\techo $(test)\n", None),
        ("all:\n\t@echo test:\n", None),
    ],
)
def test_make_targets_in_any_syntax(tmp_path: Path, makefile: str, command: str | None) -> None:
    write(tmp_path, "Makefile", makefile)
    assert commands(tmp_path) == ([command] if command else [])


def test_make_targets_parser() -> None:
    assert make_targets("test : build\ncheck::\nx := 1\n.PHONY: lint\n\ttest: no\n") == {
        "test",
        "check",
        "lint",
    }


@needs("make")
def test_make_test_runs(tmp_path: Path) -> None:
    write(tmp_path, "makefile", "test : prepare\n\ttest -f ready\nprepare:\n\ttouch ready\n")
    [check] = checks(tmp_path)
    assert check == Check("make", "make test") and run(tmp_path, check).returncode == 0


@pytest.mark.parametrize("name", ["justfile", "Justfile", ".justfile"])
def test_just(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "build:\n    cargo build\n\ntest filter='': build\n    cargo test\n")
    assert checks(tmp_path) == [Check("just", "just test")]
    write(tmp_path, name, "build:\n    echo test:\n")
    assert checks(tmp_path) == []


CMAKE = (
    "cmake_minimum_required(VERSION 3.20)\nproject(t NONE)\nenable_testing()\n"
    "add_test(NAME ok COMMAND ${CMAKE_COMMAND} -E {outcome})\n"
)


def test_cmake_without_tests_is_not_a_check(tmp_path: Path) -> None:
    write(tmp_path, "CMakeLists.txt", "project(t NONE)\n")
    assert checks(tmp_path) == []


@needs("cmake")
def test_ctest_builds_and_runs(tmp_path: Path) -> None:
    write(tmp_path, "CMakeLists.txt", CMAKE.replace("{outcome}", "true"))
    [check] = checks(tmp_path)
    assert check.name == "ctest" and check.command.endswith(
        "ctest --test-dir build --output-on-failure"
    )
    assert run(tmp_path, check).returncode == 0
    write(tmp_path, "CMakeLists.txt", CMAKE.replace("{outcome}", "false"))
    assert run(tmp_path, check).returncode != 0


# --- Gradle, Maven ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (("gradlew", "build.gradle"), Check("gradle", "./gradlew test")),
        (("build.gradle.kts",), Check("gradle", "gradle test")),
        (("settings.gradle",), Check("gradle", "gradle test")),
        (("pom.xml",), Check("maven", "mvn -B test")),
        (("pom.xml", "mvnw"), Check("maven", "./mvnw test")),
    ],
)
def test_jvm_builds_wrapper_first(tmp_path: Path, files: tuple[str, ...], expected: Check) -> None:
    for name in files:
        write(tmp_path, name)
    assert checks(tmp_path) == [expected]


# --- a polyglot repository ----------------------------------------------------------------


def test_a_polyglot_repository_gets_every_check_each_named(tmp_path: Path) -> None:
    write(tmp_path, "package.json", '{"scripts": {"test": "node t.js"}}')
    write(tmp_path, "pnpm-lock.yaml")
    write(tmp_path, "server/tests/test_api.py", PASSING)
    write(tmp_path, "go.mod", "module x\n")
    write(tmp_path, "Makefile", "check:\n\ttrue\n")
    found = checks(tmp_path)
    assert [c.name for c in found] == ["pytest", "pnpm", "go", "make"]
    assert describe_checks(found) == (
        "pytest: python -m pytest -q; pnpm: pnpm test; go: go test ./...; make: make check"
    )
