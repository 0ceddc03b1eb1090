"""`pip install .` gives a posledger that works outside the checkout: the wheel carries the SQL and needs no
pytest, and with its testing extra a backend's own project runs the README's backend test against it."""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import readme_block
from posledger.migrations import SQL_DIR

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    # Nothing of the checkout leaks into the fresh venv's Python through the environment.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """posledger's wheel, built from a copy of the checkout without build leftovers: a stale egg-info would
    hand setuptools the file list of an earlier build, and hide a wheel that would lack the SQL on a fresh
    clone."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "posledger"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".posledger", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", work / "dist", ".", cwd=source)
    (built,) = (work / "dist").glob("posledger-*.whl")
    return built


def installed(venv, requirement):
    """A fresh venv with `requirement` installed; the folder posledger is imported from in it."""
    run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", requirement, cwd=venv.parent)
    location = run(venv / "bin" / "python", "-c", "import posledger; print(posledger.__file__)", cwd=venv.parent)
    package = Path(location.strip()).parent
    assert package.is_relative_to(venv)
    return package


def test_the_wheel_in_a_fresh_venv_migrates_a_database_from_outside_the_checkout_without_pytest(
        tmp_path, wheel, pg_server):
    venv = tmp_path / "venv"
    package = installed(venv, wheel)
    assert not (package / "sql").is_symlink()
    for path in SQL_DIR.glob("*/*"):
        copy = package / "sql" / path.relative_to(SQL_DIR)
        assert copy.read_bytes() == path.read_bytes(), f"the wheel did not carry {path.name}"
    run(venv / "bin" / "python", "-c", "import importlib.util as u, posledger.cli; assert not u.find_spec('pytest')",
        cwd=tmp_path)

    name = f"wheel_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        applied = json.loads(run(venv / "bin" / "posledger", "migrate", "--json", "--dsn", pg_server.dsn(name),
                                 cwd=tmp_path))["applied"]
        assert applied == sorted(path.stem for path in (SQL_DIR / "migrations").glob("*.sql"))
        found = json.loads(run(venv / "bin" / "python", "-m", "posledger", "version", "--json", "--dsn",
                               pg_server.dsn(name), cwd=tmp_path))
        assert found["migrations_pending"] == []
        sold = sell_the_shipped_samples(venv / "bin", pg_server.dsn(name), cwd=tmp_path)
        assert sold["inventory_updates"]["updated_count"] == 3
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def sell_the_shipped_samples(bin_dir, dsn, cwd):
    """The README's store, stocked and sold to by piping the samples the package ships into their commands, as
    the help examples do, from a folder that is not the checkout; the sale's result."""
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO stores (id, name) VALUES ('5071d685-00dc-4e56-bb11-36e31b305c50', 'Queen St')")
    script = f"""export PATH="{bin_dir}:$PATH" POSLEDGER_DSN="{dsn}"
        posledger example catalogue | posledger catalogue load - > /dev/null
        posledger example receive | posledger receive - --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 > /dev/null
        posledger example sale | posledger sale - --json"""
    return json.loads(run("bash", "-euo", "pipefail", "-c", script, cwd=cwd))


def test_the_readmes_backend_test_passes_in_a_project_of_its_own_against_the_installed_wheel(tmp_path, wheel):
    venv = tmp_path / "venv"
    installed(venv, f"{wheel}[testing]")
    project = tmp_path / "backend"
    project.mkdir()
    (project / "test_backend.py").write_text(readme_block("# test_backend.py", "python"))
    # On a server of its own, of the kind this run uses (POSLEDGER_TEST_SERVER is passed on).
    out = run(venv / "bin" / "python", "-m", "pytest", "-p", "posledger.testing", "-p", "no:cacheprovider", cwd=project)
    assert "1 passed" in out
