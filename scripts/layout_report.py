"""How the house reads: largest files and functions, places that read a model's config.json by
string key or decide a model's kind, per tree (this checkout, or an older one given as
arguments, e.g. a ``git worktree`` of an earlier commit). Prints a Markdown table.

    .venv/bin/python scripts/layout_report.py . /tmp/old
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PACKAGES = ("tokenizer", "vocoder", "lm_probe", "serving", "bench", "speechtok")
CONFIG_READ = re.compile(
    r"\b(model\.config|config|cfg|raw|section|tokenizer_config)(\[|\.get\()\"(name|kind|K|K2|"
    r"tokenizer|frame_rate|layer|encoder|features|window|graphs|generator|units_model|sample_rate)\""
)
KIND_DECISION = re.compile(
    r"\bkind\b\s*(==|!=)\s*\"(hubert|spin|dcspin|kmeans|vocoder)\"|\.get\(\"kind\"\)|\[\"kind\"\]"
)


def sources(root: Path) -> list[Path]:
    return [
        p
        for package in PACKAGES
        for p in sorted((root / package).rglob("*.py"))
        if "/pb/" not in str(p) and "import_" not in p.name  # generated stubs, checkpoint cfgs
    ]


def functions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [
        (n.end_lineno - n.lineno + 1, n.name)
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno
    ]


def report(root: Path) -> dict[str, str]:
    files = sources(root)
    rel = {p: str(p.relative_to(root)) for p in files}
    sizes = sorted(((len(p.read_text().splitlines()), rel[p]) for p in files), reverse=True)
    funcs = sorted(
        ((n, f"{rel[p]}:{name}") for p in files for n, name in functions(p)), reverse=True
    )

    def hits(pattern: re.Pattern[str]) -> str:
        found = {rel[p]: sum(bool(pattern.search(line)) for line in p.read_text().splitlines())
                 for p in files}  # fmt: skip
        found = {k: v for k, v in found.items() if v}
        return f"{len(found)} files, {sum(found.values())} lines: " + ", ".join(
            f"{k} ({v})" for k, v in sorted(found.items())
        )

    return {
        "python files / lines": f"{len(files)} / {sum(n for n, _ in sizes)}",
        "largest files (lines)": ", ".join(f"{name} {n}" for n, name in sizes[:5]),
        "largest functions (lines)": ", ".join(f"{name} {n}" for n, name in funcs[:5]),
        "functions over 30 lines": str(sum(n > 30 for n, _ in funcs)),
        "config.json read by string key": hits(CONFIG_READ),
        "model kind compared by string": hits(KIND_DECISION),
    }


def main(roots: list[str]) -> None:
    reports = {r: report(Path(r)) for r in roots}
    print("| | " + " | ".join(roots) + " |")
    print("|---" * (len(roots) + 1) + "|")
    for key in reports[roots[0]]:
        print(f"| {key} | " + " | ".join(reports[r][key] for r in roots) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["."])
