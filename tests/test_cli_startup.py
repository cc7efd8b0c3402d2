"""``speechtok`` starts fast: building its parser imports no torch, scipy or plotting; each
subcommand imports what it needs when it runs."""

from __future__ import annotations

import subprocess
import sys
import time

HEAVY = ("torch", "torchaudio", "scipy", "matplotlib", "kenlm")


def test_cli_import_leaves_heavy_modules_alone() -> None:
    code = f"import sys, speechtok.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert not loaded, f"import speechtok.cli imported {loaded}"


def test_help_is_fast() -> None:
    # Before the heavy imports moved into the commands, --help took about 5 s; now well under 1 s.
    for args in (["--help"], ["probe", "--help"], ["train", "hubert", "--help"]):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "speechtok", *args], capture_output=True, text=True
        )
        wall_s = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        assert "usage: speechtok" in done.stdout
        assert wall_s < 3.0, f"speechtok {' '.join(args)} took {wall_s:.1f} s"
