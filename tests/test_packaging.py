"""`pip install .` gives a posledger that works outside the checkout: the wheel carries the SQL."""

import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import psycopg

from posledger.migrations import SQL_DIR

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_wheel_installed_in_a_fresh_venv_migrates_a_database_from_outside_the_checkout(tmp_path, pg_server):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", ROOT, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("posledger-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"posledger/sql/{path.relative_to(SQL_DIR)}" for path in SQL_DIR.glob("*/*") if path.is_file()}
    assert shipped <= packed and any(name.endswith("0001_core_schema.sql") for name in shipped)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
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
        location = run(venv / "bin" / "python", "-c", "import posledger; print(posledger.__file__)", cwd=tmp_path)
        assert Path(location.strip()).is_relative_to(venv)
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
