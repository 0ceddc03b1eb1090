"""Static checks: plpgsql_check over every PL/pgSQL function, squawk over the migrations, ruff and mypy
over the Python. A finding fails the suite; the few rules we disable are justified where disabled."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def run(tool, *args):
    executable = shutil.which(tool, path=str(VENV_BIN)) or shutil.which(tool)
    assert executable, f"{tool} is not installed: run ./scripts/test, which installs the test tools"
    return subprocess.run([executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})


def test_plpgsql_check_finds_nothing_in_any_function(db):
    if db.execute("SELECT FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone() is None:
        if os.environ.get("POSLEDGER_TEST_SERVER", "system") == "system" and os.environ.get("CI"):
            pytest.fail("CI must check the functions: scripts/test installs plpgsql_check when run as root")
        pytest.skip("plpgsql_check is not installed for this server (Debian: postgresql-15-plpgsql-check)")
    db.execute("CREATE EXTENSION plpgsql_check")
    findings = db.execute("""
        SELECT p.oid::regprocedure::text, c.lineno, c.level, c.message, c.detail
        FROM pg_proc p
        JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql',
        LATERAL plpgsql_check_function_tb(
            p.oid, coalesce((SELECT t.tgrelid FROM pg_trigger t WHERE t.tgfoid = p.oid LIMIT 1), 0),
            extra_warnings => true, performance_warnings => true, security_warnings => true) c
        WHERE p.pronamespace IN ('public'::regnamespace, 'posledger_private'::regnamespace)""").fetchall()
    checked = db.execute("SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                         " WHERE l.lanname = 'plpgsql' AND p.pronamespace IN ('public'::regnamespace,"
                         " 'posledger_private'::regnamespace)").fetchone()[0]
    assert checked >= 25
    assert findings == []


def test_squawk_finds_nothing_in_the_migrations():
    done = run("squawk", "--reporter", "gcc", *sorted(str(p) for p in (ROOT / "sql" / "migrations").glob("*.sql")))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_ruff_finds_nothing():
    done = run("ruff", "check", "pyshell", "tests", "bench")
    assert done.returncode == 0, done.stdout


def test_mypy_finds_nothing_in_the_package_or_the_benchmarks():
    done = run("mypy", "--ignore-missing-imports", "pyshell/posledger", "bench")
    assert done.returncode == 0, done.stdout
