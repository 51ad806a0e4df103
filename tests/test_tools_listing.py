"""The repository as its developers see it: git's view, .gitignore outside git, the one
skip-list, the repository map, and every tool result within its size cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ocactors.tools import ShellConfig, Toolbox, ToolContext, WebConfig, Workspace, worker_tools
from ocactors.tools.listing import repo_map, walk_files
from ocactors.tools.spec import RESULT_LIMIT, cap_result

IGNORED_COUNTS = {
    ".tox": 500,
    "build": 500,
    "dist": 400,
    "mylib.egg-info": 100,
    "target": 500,
    "node_modules": 500,
    "env": 500,
}
IGNORED = tuple(IGNORED_COUNTS)
GITIGNORE = ".tox/\nbuild/\ndist/\n*.egg-info/\ntarget/\nnode_modules/\nenv/\n"


def write(root: Path, rel: str, text: str = "x\n") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=60,
    )


def make_venv_folder(root: Path, name: str) -> None:
    """What a virtualenv looks like to a lister: pyvenv.cfg at its top, a site-packages."""
    write(root, f"{name}/pyvenv.cfg", "home = /usr/bin\n")
    write(root, f"{name}/lib/python3.11/site-packages/dep/__init__.py", "needle\n")


def box(root: Path, limit: int = RESULT_LIMIT) -> Toolbox:
    ctx = ToolContext(Workspace(root), shell=ShellConfig(result_limit=limit))
    return Toolbox(worker_tools(WebConfig()), ctx)


def call(toolbox: Toolbox, name: str, **args: Any) -> tuple[str, bool]:
    result = toolbox.call(name, json.dumps(args))
    return result.output, result.is_error


# --- git's view -------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    write(root, ".gitignore", "*.log\nout/\n")
    write(root, "src/app.py")
    write(root, "src/gone.py")
    write(root, "build/keep.txt")  # tracked: the developers chose to commit it
    write(root, "pkg/.gitignore", "secret.txt\n")
    write(root, "pkg/secret.txt")
    write(root, "pkg/mod.py")
    git(root, "add", "-A")
    (root / "src" / "gone.py").unlink()  # deleted, still in the index
    write(root, "new.py")  # untracked, not ignored
    write(root, "debug.log")  # ignored
    write(root, "out/result.txt")  # ignored folder
    write(root, ".tox/py311/x.py")  # untracked, not ignored, but a tool's folder
    write(root, "lib.egg-info/PKG-INFO")
    make_venv_folder(root, "env")  # a virtualenv by any name
    write(root, ".opencode/missions/m/events.jsonl")
    return root


def test_in_a_git_work_tree_files_are_what_git_lists(repo: Path) -> None:
    assert walk_files(repo) == [
        ".gitignore",
        "build/keep.txt",
        "new.py",
        "pkg/.gitignore",
        "pkg/mod.py",
        "src/app.py",
    ]


def test_git_view_of_a_subfolder_and_of_a_folder_named_like_a_glob(repo: Path) -> None:
    write(repo, "odd[1]/a.py")
    write(repo, "odd1/b.py")
    assert walk_files(repo, "pkg") == ["pkg/.gitignore", "pkg/mod.py"]
    assert walk_files(repo, "odd[1]") == ["odd[1]/a.py"]
    assert walk_files(repo / "pkg") == [".gitignore", "mod.py"]


def test_an_ignored_folder_asked_for_by_name_is_listed(repo: Path, plain: Path) -> None:
    assert walk_files(repo, "out") == ["out/result.txt"]
    assert walk_files(repo, ".tox") == [".tox/py311/x.py"]
    assert walk_files(plain, "node_modules") == ["node_modules/dep/index.js"]
    assert walk_files(plain, "out") == ["out/r.txt"]
    write(plain, "node_modules/dep/node_modules/inner/i.js")
    assert walk_files(plain, "node_modules/dep") == ["node_modules/dep/index.js"]
    assert walk_files(repo, "env") == walk_files(repo, "env/lib") == []
    assert walk_files(repo, ".opencode") == walk_files(repo, ".opencode/missions") == []
    output, is_error = call(box(repo), "grep", pattern="x", path="out")
    assert (output, is_error) == ("out/result.txt:1: x", False)


def test_a_tracked_virtualenv_or_mission_log_still_never_appears(repo: Path) -> None:
    git(repo, "add", "-f", "env", ".opencode")
    listed = walk_files(repo)
    assert not [p for p in listed if p.startswith(("env/", ".opencode/"))]


# --- outside git ------------------------------------------------------------------------


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    root = tmp_path / "plain"
    write(root, ".gitignore", "*.log\nout/\n!keep.log\n")
    write(root, "a.py")
    write(root, "x.log")
    write(root, "keep.log")
    write(root, "out/r.txt")
    write(root, "docs/out.txt")  # a file called out is not the folder out/
    write(root, "sub/.gitignore", "*.tmp\n!wanted.log\n")  # deeper rules win
    write(root, "sub/wanted.log")
    write(root, "sub/t.tmp")
    write(root, "sub/inner/u.tmp")
    write(root, "sub/inner/v.py")
    write(root, "other/t.tmp")  # sub's rules do not reach a sibling
    write(root, "node_modules/dep/index.js")
    write(root, "dist/wheel.whl")
    write(root, ".git-like/.git/config")  # a nested .git is private at any depth
    make_venv_folder(root, "myenv")
    write(root, ".opencode/log")
    return root


def test_outside_git_gitignore_files_skip_list_and_virtualenvs_apply(plain: Path) -> None:
    assert walk_files(plain) == [
        ".gitignore",
        "a.py",
        "docs/out.txt",
        "keep.log",
        "other/t.tmp",
        "sub/.gitignore",
        "sub/inner/v.py",
        "sub/wanted.log",
    ]


def test_outside_git_a_subfolder_keeps_the_rules_above_it(plain: Path) -> None:
    assert walk_files(plain, "sub/inner") == ["sub/inner/v.py"]
    assert walk_files(plain, "sub") == ["sub/.gitignore", "sub/inner/v.py", "sub/wanted.log"]


# --- the size cap -----------------------------------------------------------------------


def test_cap_result_cuts_at_a_line_end_and_counts_what_is_left() -> None:
    text = "\n".join(f"line {i:04}" for i in range(1000))  # 9,999 characters
    capped = cap_result(text, 1000, "ask for less")
    kept, note = capped.rsplit("\n", 1)
    assert len(capped) <= 1000 and kept.endswith("line 0077")
    rest = text[len(kept) + 1 :]
    assert note == (
        f"[result cut at 1,000 characters: {len(rest):,} more characters (922 lines) not shown; "
        "ask for less]"
    )
    assert cap_result(text, 10_000) == text


def test_every_result_is_capped_and_says_how_to_get_the_rest(tmp_path: Path) -> None:
    for i in range(300):
        write(tmp_path, f"folder_with_a_long_name_{i:03}/file_with_a_long_name.py", "needle\n")
    output, is_error = call(box(tmp_path, limit=2000), "list_files")
    assert not is_error and len(output) <= 2000
    assert output.endswith("give a folder as path, or a narrower pattern]")
    output, _ = call(box(tmp_path, limit=2000), "grep", pattern="needle")
    assert len(output) <= 2000
    assert output.endswith("give a narrower pattern, or a folder or file as path]")


def test_read_file_is_capped_by_characters_and_reads_on_where_it_stopped(tmp_path: Path) -> None:
    write(tmp_path, "wide.txt", "".join(f"{i:04} " + "x" * 1500 + "\n" for i in range(1, 401)))
    toolbox = box(tmp_path)
    first, _ = call(toolbox, "read_file", path="wide.txt")
    assert len(first) <= RESULT_LIMIT
    note = first.splitlines()[-1]
    assert note == "[wide.txt: lines 1-26 of 400] (more: read_file with start_line=27)"
    second, _ = call(toolbox, "read_file", path="wide.txt", start_line=27)
    assert second.splitlines()[0].startswith("   27  0027 ")


def test_a_single_line_longer_than_the_cap_is_still_shown_cut(tmp_path: Path) -> None:
    write(tmp_path, "one.txt", "y" * 5000 + "\nz\n")
    output, _ = call(box(tmp_path, limit=1000), "read_file", path="one.txt")
    assert output.startswith("    1  yyy") and len(output) <= 1000
    assert "read_file the same path with a later start_line" in output


# --- a big repository with most of its files in ignored folders ---------------------------

SOURCE_FOLDERS = ("mylib/core", "mylib/sets", "mylib/solvers", "mylib/utils")


def make_big(root: Path) -> None:
    """5,000 files: 2,000 the developers read, 3,000 in ignored folders."""
    files = {f"{SOURCE_FOLDERS[i % 4]}/m{i:04}.py": f"needle = {i}\n" for i in range(1600)}
    files |= {f"doc/src/page{i:03}.rst": "needle\n" for i in range(300)}
    files |= {f"mylib/tests/test_{i:03}.py": "needle\n" for i in range(96)}
    files |= {name: "x\n" for name in ("README.md", "setup.py", "pyproject.toml")}
    files[".gitignore"] = GITIGNORE
    files["env/pyvenv.cfg"] = "home = /usr/bin\n"  # a virtualenv
    for folder, count in IGNORED_COUNTS.items():
        for i in range(count - (folder == "env")):
            files[f"{folder}/pkg{i % 7}/f{i:04}.py"] = "IGNORED_MARK needle\n"
    write_many(root, files)


def write_many(root: Path, files: dict[str, str]) -> None:
    """Many files quickly: each folder made once."""
    for folder in {os.path.dirname(rel) for rel in files}:
        os.makedirs(root / folder, exist_ok=True)
    for rel, text in files.items():
        with open(root / rel, "w") as handle:
            handle.write(text)


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "tree"
    make_big(root)
    return root


@pytest.fixture(scope="module", params=["git", "gitignore", "bare"])
def big(request: pytest.FixtureRequest, big_tree: Path) -> Path:
    """The big tree in a git work tree (files untracked), outside git, and outside git with
    no .gitignore at all (the skip-list alone); hard-linked copies, made in a blink."""
    root: Path = big_tree.parent / request.param
    subprocess.run(["cp", "-al", str(big_tree), str(root)], check=True, timeout=60)
    if request.param == "bare":
        (root / ".gitignore").rename(root / "LICENSE")
    if request.param == "git":
        git(root, "init", "-q")
    return root


def test_the_generated_repository_has_5000_files_3000_ignored(big: Path) -> None:
    everything = [p for p in big.rglob("*") if p.is_file() and ".git" not in p.parts]
    inside = [p for p in everything if p.relative_to(big).parts[0] in IGNORED]
    assert len(everything) == 5000 and len(inside) == 3000


def _ignored(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.split("/")[0] in IGNORED]


def test_no_ignored_path_in_any_listing_and_each_result_within_its_cap(big: Path) -> None:
    listed = walk_files(big)
    assert len(listed) == 2000 and not _ignored("\n".join(listed))
    toolbox = box(big)
    results = [
        call(toolbox, "list_files"),
        call(toolbox, "list_files", pattern="**/*.py"),
        call(toolbox, "grep", pattern="needle"),
        call(toolbox, "grep", pattern="needle", path="mylib"),
    ]
    for output, is_error in results:
        assert not is_error and not _ignored(output) and len(output) <= RESULT_LIMIT
    assert call(toolbox, "grep", pattern="IGNORED_MARK") == ("no match for 'IGNORED_MARK'", False)


def test_the_map_fits_its_budget_names_the_source_folders_first_and_nothing_ignored(
    big: Path,
) -> None:
    view = repo_map(big)
    assert len(view) <= 6000
    folders = [line.strip().split("/")[0] for line in view.splitlines() if "/  " in line]
    assert folders[0] == "mylib" and {"core", "sets", "solvers", "utils", "tests"} <= set(folders)
    assert folders.index("mylib") < folders.index("doc")
    assert not set(folders) & set(IGNORED) and ".egg-info" not in view
    assert "README.md, pyproject.toml, setup.py" in view.splitlines()[1]


# --- the map of repositories of other shapes -------------------------------------------


def test_a_small_repository_is_shown_whole_and_an_empty_one_says_so(tmp_path: Path) -> None:
    assert repo_map(tmp_path) == "(empty: no files yet)"
    write(tmp_path, "b/x.py")
    write(tmp_path, "a.md")
    assert repo_map(tmp_path) == "a.md\nb/x.py"


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 top-level files and 400 top-level folders, each four deep."""
    root = tmp_path_factory.mktemp("wide")
    files = {f"top_level_file_{i:03}.txt": "" for i in range(400)}
    write_many(root, files | {f"folder_{i:03}/deep/er/still/f.py": "" for i in range(400)})
    return root


@pytest.mark.parametrize("budget", [600, 2000, 6000])
def test_the_map_stays_within_budget_whatever_the_shape(wide: Path, budget: int) -> None:
    view = repo_map(wide, budget)
    assert len(view) <= budget
    assert "more folders" in view and "(+" in view


def test_listing_a_repository_of_5000_files_is_quick(big: Path) -> None:
    code = "import sys,time;from ocactors.tools.listing import walk_files as w;t=time.time()"
    code += ";w(__import__('pathlib').Path(sys.argv[1]));print(time.time()-t)"
    done = subprocess.run(
        [sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=60
    )
    assert float(done.stdout) < 2.0, done.stderr
