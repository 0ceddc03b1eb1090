"""`pip install .` gives a posledger that works outside the checkout: the wheel carries the SQL."""

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from posledger.migrations import SQL_DIR

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_pip_install_dot_in_a_fresh_venv_migrates_a_database_from_outside_the_checkout(tmp_path, pg_server):
    # A copy of the checkout without build leftovers: a stale egg-info would hand setuptools the file list
    # of an earlier build, and hide a wheel that would lack the SQL on a fresh clone.
    source = tmp_path / "posledger"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".posledger", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", ".", cwd=source)   # pip install .
    location = run(venv / "bin" / "python", "-c", "import posledger; print(posledger.__file__)", cwd=tmp_path)
    installed = Path(location.strip()).parent
    assert installed.is_relative_to(venv) and not (installed / "sql").is_symlink()
    for path in SQL_DIR.glob("*/*"):
        copy = installed / "sql" / path.relative_to(SQL_DIR)
        assert copy.read_bytes() == path.read_bytes(), f"the wheel did not carry {path.name}"

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
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
