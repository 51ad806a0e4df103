"""How a project runs: its own environment, and the checks its developers run.

A project's checks only mean something when they run the way its developers run them: with
the project's virtualenv (not the Python ocactors happens to be installed in, which lacks the
project's test dependencies), with the package manager its lock file names, and with every
ecosystem of a polyglot repository checked.  :func:`project_environment` finds the
environment once at mission start; :func:`detect_checks` finds the checks after each build (a
mission that starts in an empty folder writes its tests as it goes).

Where the environment comes from, first found wins:

1. a virtualenv in the project: ``.venv``, ``venv``, any top-level folder with ``pyvenv.cfg``;
2. an activated virtualenv (``VIRTUAL_ENV``) that is not the one ocactors runs from;
3. a uv, poetry, pdm or hatch project whose tool is installed: checks go through ``<tool> run``;
4. only then ocactors' own interpreter.

Folders that are never scanned for tests are those :func:`ocactors.tools.listing.walk_files`
leaves out: what git ignores, virtualenvs, ``node_modules``, ``.tox``, ``.nox``, build outputs.
"""

from __future__ import annotations

import configparser
import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ocactors.tools.listing import is_virtualenv, walk_files

RUNNERS = ("uv", "poetry", "pdm", "hatch")
NODE_LOCKS = (
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
)
NPM_PLACEHOLDER = "no test specified"
PYTEST_FILES = ("test_*.py", "*_test.py")
UNITTEST_FILES = ("test*.py",)


@dataclass(frozen=True, slots=True)
class ProjectEnv:
    """The environment project commands run in, and what it was chosen from.

    ``path_first`` go first on PATH, ``path_drop`` leave it (ocactors' own virtualenv when the
    project has its own), ``variables`` are set and ``unset`` removed.  ``python`` is how a
    check calls the project's Python (``python``, or ``uv run python`` through a runner).
    """

    python_source: str  # "venv", "active", a runner's name, or "ocactors"
    python: str = "python"
    venv: Path | None = None
    node: str | None = None
    path_first: tuple[str, ...] = ()
    path_drop: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    unset: tuple[str, ...] = ()
    base_path: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)

    def apply(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` (secrets already stripped) with this environment's PATH and variables."""
        env = {k: v for k, v in base.items() if k not in self.unset}
        env.update(self.variables)
        env["PATH"] = self._path(env.get("PATH", os.defpath))
        return env

    def _path(self, path: str) -> str:
        rest = [p for p in path.split(os.pathsep) if p and p not in self.path_first]
        rest = [p for p in rest if p not in self.path_drop]
        return os.pathsep.join([*self.path_first, *rest])

    def which(self, tool: str) -> str | None:
        """Where ``tool`` is found on this environment's PATH, if anywhere."""
        return shutil.which(tool, path=self._path(self.base_path))

    @property
    def description(self) -> str:
        """One line for the start banner and ``mission.started``."""
        parts = [self._python_line()]
        if self.node:
            parts.append(f"Node: {self.node}")
        return "; ".join([*parts, *self.notes])

    def _python_line(self) -> str:
        if self.python_source == "venv" and self.venv is not None:
            return (
                f"Python: the project's virtualenv {self.venv.name}/ ({_venv_version(self.venv)})"
            )
        if self.python_source == "active" and self.venv is not None:
            return f"Python: the active virtualenv {self.venv} ({_venv_version(self.venv)})"
        if self.python_source in RUNNERS:
            return f"Python: through `{self.python}` ({self.python_source} project)"
        return f"Python: ocactors' own interpreter {sys.executable} (the project has none)"


def project_environment(workspace: Path, environ: Mapping[str, str]) -> ProjectEnv:
    """How commands should run in ``workspace``: the project's Python and Node tooling."""
    workspace = Path(workspace)
    base_path = environ.get("PATH", os.defpath)
    python = _python_env(workspace, environ, base_path)
    node, node_notes = _node_manager(workspace, base_path)
    node_bin = workspace / "node_modules" / ".bin"
    first = (*python.path_first, *([str(node_bin)] if node_bin.is_dir() else []))
    return ProjectEnv(
        python_source=python.python_source,
        python=python.python,
        venv=python.venv,
        node=node,
        path_first=first,
        path_drop=python.path_drop,
        variables=python.variables,
        unset=python.unset,
        base_path=base_path,
        notes=(*python.notes, *node_notes),
    )


def _python_env(workspace: Path, environ: Mapping[str, str], base_path: str) -> ProjectEnv:
    venv = project_venv(workspace)
    if venv is not None:
        return _venv_env("venv", venv, base_path)
    active = environ.get("VIRTUAL_ENV", "")
    if active and _venv_python(Path(active)) is not None and not _is_own(Path(active)):
        return _venv_env("active", Path(active), base_path)
    runner, notes = _runner(workspace, base_path)
    if runner is not None:
        return ProjectEnv(runner, f"{runner} run python", unset=_own_venv_vars(environ))
    own_bin = str(Path(sys.executable).parent)
    own_python = "python" if (Path(own_bin) / "python").exists() else shlex.quote(sys.executable)
    return ProjectEnv("ocactors", own_python, path_first=(own_bin,), notes=notes)


def project_venv(workspace: Path) -> Path | None:
    """The project's own virtualenv: ``.venv``, ``venv``, else any top-level folder holding
    ``pyvenv.cfg`` (``env/``, ``.env311/``...), with a Python in it."""
    named = [workspace / ".venv", workspace / "venv"]
    try:
        others = sorted(p for p in workspace.iterdir() if p.is_dir() and p not in named)
    except OSError:
        others = []
    for folder in [*named, *others]:
        if is_virtualenv(folder) and _venv_python(folder) is not None:
            return folder
    return None


def _venv_env(source: str, venv: Path, base_path: str) -> ProjectEnv:
    python = _venv_python(venv)
    assert python is not None
    return ProjectEnv(
        source,
        "python",
        venv=venv,
        path_first=(str(python.parent),),
        path_drop=_own_bin_if_venv(python.parent),
        variables=(("VIRTUAL_ENV", str(venv)),),
        unset=("PYTHONHOME",),
        base_path=base_path,
    )


def _venv_python(venv: Path) -> Path | None:
    for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
        if candidate.exists():
            return candidate
    return None


def _is_own(venv: Path) -> bool:
    """Whether ``venv`` is the environment ocactors itself runs from."""
    try:
        return venv.resolve() == Path(sys.prefix).resolve()
    except OSError:
        return False


def _own_bin_if_venv(project_bin: Path) -> tuple[str, ...]:
    """ocactors' own bin folder, to leave PATH, when it belongs to a virtualenv of its own
    (never a system folder such as /usr/bin, which holds everything else too)."""
    own = Path(sys.executable).parent
    if sys.prefix == sys.base_prefix or own == project_bin:
        return ()
    return (str(own),)


def _own_venv_vars(environ: Mapping[str, str]) -> tuple[str, ...]:
    """``VIRTUAL_ENV`` pointing at ocactors' environment would mislead poetry and uv."""
    active = environ.get("VIRTUAL_ENV", "")
    return ("VIRTUAL_ENV",) if active and _is_own(Path(active)) else ()


def _runner(workspace: Path, base_path: str) -> tuple[str | None, tuple[str, ...]]:
    """The project tool (uv, poetry, pdm, hatch) whose ``run`` the project uses, if installed."""
    tool = project_tool(workspace)
    if tool is None:
        return None, ()
    if shutil.which(tool, path=base_path) is None:
        return None, (f"a {tool} project, but {tool} is not installed",)
    return tool, ()


def project_tool(workspace: Path) -> str | None:
    """Which of uv, poetry, pdm, hatch manages the project's environment, from its files."""
    tool = _pyproject(workspace).get("tool", {})
    marks = {
        "uv": (workspace / "uv.lock").is_file() or "uv" in tool,
        "poetry": (workspace / "poetry.lock").is_file() or "poetry" in tool,
        "pdm": (workspace / "pdm.lock").is_file() or "pdm" in tool,
        "hatch": (workspace / "hatch.toml").is_file() or "envs" in tool.get("hatch", {}),
    }
    return next((name for name in RUNNERS if marks[name]), None)


def _node_manager(workspace: Path, base_path: str) -> tuple[str | None, tuple[str, ...]]:
    """npm, pnpm, yarn or bun, from the lock file (else ``packageManager``, else npm)."""
    if not (workspace / "package.json").is_file():
        return None, ()
    found = next((pm for lock, pm in NODE_LOCKS if (workspace / lock).is_file()), None)
    declared = str(_package_json(workspace).get("packageManager", "")).split("@")[0]
    manager = found or (declared if declared in {"npm", "pnpm", "yarn", "bun"} else "npm")
    missing = shutil.which(manager, path=base_path) is None
    return manager, ((f"{manager} is not installed",) if missing else ())


def _venv_version(venv: Path) -> str:
    for line in _read(venv / "pyvenv.cfg").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return f"Python {value.strip()}"
    return "Python"


# --- checks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One named check and the shell command that runs it in the workspace."""

    name: str
    command: str


def detect_checks(workspace: Path, env: ProjectEnv) -> list[Check]:
    """Every check a developer of each of the project's ecosystems would run, in order."""
    workspace = Path(workspace)
    files = walk_files(workspace)
    found = [
        *_python_checks(workspace, env, files),
        _node_check(workspace, env),
        _deno_check(workspace),
        _file_check(workspace, "go.mod", Check("go", "go test ./...")),
        _file_check(workspace, "Cargo.toml", Check("cargo", "cargo test")),
        _make_check(workspace),
        _cmake_check(workspace),
        _gradle_check(workspace),
        _maven_check(workspace),
        _just_check(workspace),
    ]
    return [check for check in found if check is not None]


def describe_checks(checks: list[Check]) -> str:
    """``pytest: python -m pytest -q; npm: npm test``, or a sentence saying there are none."""
    if not checks:
        return "no automated checks found"
    return "; ".join(f"{check.name}: {check.command}" for check in checks)


def _file_check(workspace: Path, name: str, check: Check) -> Check | None:
    return check if (workspace / name).is_file() else None


# --- Python -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PytestConfig:
    """Whether the project configures pytest, and the test file names it asks for."""

    found: bool = False
    python_files: tuple[str, ...] = ()
    django: bool = False


def _python_checks(workspace: Path, env: ProjectEnv, files: list[str]) -> list[Check]:
    config = pytest_config(workspace)
    pytest_files = _matching(files, config.python_files or PYTEST_FILES)
    unittest_files = _matching(files, UNITTEST_FILES)
    delegate = _tox_or_nox(workspace, env)
    if delegate is not None and env.python_source == "ocactors":
        return [delegate]
    if _is_django(workspace) and unittest_files and not (config.django and pytest_files):
        return [Check("django", f"{env.python} manage.py test")]
    if pytest_files and _wants_pytest(workspace, env, config, pytest_files - unittest_files):
        return [Check("pytest", f"{env.python} -m pytest -q")]
    if unittest_files:
        return [Check("unittest", _unittest_command(workspace, env, unittest_files))]
    return []


def _matching(files: list[str], patterns: tuple[str, ...]) -> set[str]:
    names = ((rel, PurePosixPath(rel).name) for rel in files if rel.endswith(".py"))
    return {rel for rel, name in names if any(fnmatch.fnmatch(name, p) for p in patterns)}


def _wants_pytest(
    workspace: Path, env: ProjectEnv, config: PytestConfig, pytest_only: set[str]
) -> bool:
    """pytest when the project says so (config, conftest.py, files unittest would not find)
    or when its environment has pytest; otherwise the standard library's unittest."""
    conftest = (workspace / "conftest.py").is_file() or (workspace / "tests/conftest.py").is_file()
    return config.found or conftest or bool(pytest_only) or _has_pytest(workspace, env)


def _has_pytest(workspace: Path, env: ProjectEnv) -> bool:
    if env.venv is not None:
        return any(env.venv.glob("lib*/python*/site-packages/pytest")) or any(
            env.venv.glob("Lib/site-packages/pytest")
        )
    if env.python_source in RUNNERS:
        return "pytest" in _read(workspace / "pyproject.toml")
    return importlib.util.find_spec("pytest") is not None


def _unittest_command(workspace: Path, env: ProjectEnv, files: set[str]) -> str:
    """``discover`` from the top, or from the one test folder that is not a package (discovery
    does not descend into folders without ``__init__.py``)."""
    tops = {PurePosixPath(rel).parts[0] for rel in files if "/" in rel}
    at_top = any("/" not in rel for rel in files)
    if len(tops) == 1 and not at_top:
        top = tops.pop()
        if not (workspace / top / "__init__.py").is_file():
            return f"{env.python} -m unittest discover -s {shlex.quote(top)}"
    return f"{env.python} -m unittest discover"


def pytest_config(workspace: Path) -> PytestConfig:
    """pytest's settings from the first file pytest itself would read them from."""
    ini = _ini_section(workspace / "pytest.ini", "pytest")
    if ini is not None or (workspace / "pytest.ini").is_file():
        return _from_ini(ini or {})
    tool = _pyproject(workspace).get("tool", {}).get("pytest", None)
    if isinstance(tool, dict):
        return _from_toml(tool.get("ini_options", tool))
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        found = _ini_section(workspace / name, section)
        if found is not None:
            return _from_ini(found)
    return PytestConfig()


def _from_ini(section: Mapping[str, str]) -> PytestConfig:
    patterns = tuple(section.get("python_files", "").split())
    return PytestConfig(True, patterns, _mentions_django(section))


def _from_toml(options: Any) -> PytestConfig:
    options = options if isinstance(options, dict) else {}
    raw = options.get("python_files", ())
    patterns = tuple(raw.split() if isinstance(raw, str) else (str(p) for p in raw))
    return PytestConfig(True, patterns, _mentions_django(options))


def _mentions_django(options: Mapping[str, Any]) -> bool:
    text = str(options).lower()  # configparser lowercases keys
    return "django_settings_module" in text or "--ds" in text


def _is_django(workspace: Path) -> bool:
    return "django" in _read(workspace / "manage.py").lower()


def _tox_or_nox(workspace: Path, env: ProjectEnv) -> Check | None:
    """tox or nox when the project configures it and it is installed: how its developers run
    the tests when they have no environment of their own at hand."""
    if _tox_configured(workspace) and env.which("tox"):
        return Check("tox", "tox")
    if (workspace / "noxfile.py").is_file() and env.which("nox"):
        return Check("nox", "nox")
    return None


def _tox_configured(workspace: Path) -> bool:
    if (workspace / "tox.toml").is_file():
        return True
    tox_ini = _ini_sections(workspace / "tox.ini")
    if "tox" in tox_ini or any(s.startswith("testenv") for s in tox_ini):
        return True
    tool = _pyproject(workspace).get("tool", {})
    return "tox" in tool or "tox:tox" in _ini_sections(workspace / "setup.cfg")


# --- other ecosystems -----------------------------------------------------------------------


def _node_check(workspace: Path, env: ProjectEnv) -> Check | None:
    """The package manager's test script, unless it is ``npm init``'s always-failing one."""
    script = _package_json(workspace).get("scripts", {})
    test = script.get("test") if isinstance(script, dict) else None
    if not isinstance(test, str) or not test.strip() or NPM_PLACEHOLDER in test:
        return None
    manager = env.node or "npm"
    return Check(manager, "bun run test" if manager == "bun" else f"{manager} test")


def _deno_check(workspace: Path) -> Check | None:
    for name in ("deno.json", "deno.jsonc"):
        if (workspace / name).is_file():
            tasks = _jsonc(_read(workspace / name)).get("tasks", {})
            has_task = isinstance(tasks, dict) and "test" in tasks
            return Check("deno", "deno task test" if has_task else "deno test")
    return None


MAKE_RULE = re.compile(r"^(?P<targets>[^\s:=#][^:=#]*?)\s*::?(?!=)")


def make_targets(text: str) -> set[str]:
    """The targets a Makefile defines (``test : build``, ``test check::``) or marks .PHONY."""
    targets: set[str] = set()
    for line in text.splitlines():
        match = MAKE_RULE.match(line)
        if match:
            names = match["targets"].split()
            phony = line.split(":", 1)[1].split() if names == [".PHONY"] else []
            targets.update(n for n in names + phony if not n.startswith("."))
    return targets


def _make_check(workspace: Path) -> Check | None:
    for name in ("GNUmakefile", "makefile", "Makefile"):
        if (workspace / name).is_file():
            targets = make_targets(_read(workspace / name))
            target = next((t for t in ("test", "check") if t in targets), None)
            return Check("make", f"make {target}") if target else None
    return None


CMAKE_TESTS = re.compile(r"\b(enable_testing|add_test|include\s*\(\s*CTest|gtest_discover_tests)")


def _cmake_check(workspace: Path) -> Check | None:
    if not CMAKE_TESTS.search(_read(workspace / "CMakeLists.txt")):
        return None
    build = "cmake -S . -B build && cmake --build build"
    return Check("ctest", f"{build} && ctest --test-dir build --output-on-failure")


def _gradle_check(workspace: Path) -> Check | None:
    if (workspace / "gradlew").is_file():
        return Check("gradle", "./gradlew test")
    names = ("build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts")
    return Check("gradle", "gradle test") if any((workspace / n).is_file() for n in names) else None


def _maven_check(workspace: Path) -> Check | None:
    if not (workspace / "pom.xml").is_file():
        return None
    return Check("maven", "./mvnw test" if (workspace / "mvnw").is_file() else "mvn -B test")


JUST_TEST = re.compile(r"^@?test(?:\s[^\n:]*)?:(?!=)", re.MULTILINE)


def _just_check(workspace: Path) -> Check | None:
    for name in ("justfile", "Justfile", ".justfile"):
        if (workspace / name).is_file():
            return Check("just", "just test") if JUST_TEST.search(_read(workspace / name)) else None
    return None


# --- reading project files leniently ------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8", errors="replace")
    except OSError:
        return ""


def _pyproject(workspace: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(_read(workspace / "pyproject.toml"))
    except tomllib.TOMLDecodeError:
        return {}


def _package_json(workspace: Path) -> dict[str, Any]:
    return _json(_read(workspace / "package.json"))


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _jsonc(text: str) -> dict[str, Any]:
    """JSON with ``//`` comment lines and trailing commas, as deno.jsonc allows."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("//")]
    return _json(re.sub(r",(\s*[}\]])", r"\1", "\n".join(lines)))


def _ini_sections(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(_read(path))
    except configparser.Error:
        return {}
    return {name: dict(parser[name]) for name in parser.sections()}


def _ini_section(path: Path, section: str) -> dict[str, str] | None:
    return _ini_sections(path).get(section)
