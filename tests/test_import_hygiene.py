"""The headless core never imports Textual (DESIGN §2: nothing below tui/ imports textual)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import triage

CORE_PREFIXES = ("triage.store", "triage.metrics", "triage.alerts", "triage.runbooks", "triage.config")


def core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(triage.__path__, "triage.")]
    return sorted(n for n in names if n.startswith(CORE_PREFIXES) or n == "triage.engine")


def test_core_modules_exist() -> None:
    assert "triage.config" in core_modules()


def test_core_does_not_import_textual() -> None:
    modules = core_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"core imported textual: {result.stdout.strip()}"


def test_cli_help_does_not_import_textual() -> None:
    code = (
        "import sys\n"
        "from triage.cli import build_parser\n"
        "build_parser()\n"
        "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
