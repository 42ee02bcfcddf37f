#!/usr/bin/env python3
"""Writes the values table of helm/waas/README.md from the `# --` comments of values.yaml.

    python3 deploy/chart-readme.py          # rewrite the table between the README's markers
    python3 deploy/chart-readme.py --check  # exit 1 if the README is stale or a value has no doc

Every key of values.yaml must be documented, by a `# --` comment on itself or on a map above
it (a documented map's keys, e.g. resources, are shown in its default). Needs PyYAML (the
venv of deploy/tools/install.sh has it).
"""
import difflib
import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "helm" / "waas"
START, END = "<!-- values:start -->", "<!-- values:end -->"


def documented(text):
    """(path, doc) for every key with a `# --` comment, in file order."""
    docs, stack, pending, pending_indent = [], [], None, None
    for line in text.splitlines():
        start = re.match(r"^(\s*)# -- (.*)$", line)
        more = re.match(r"^(\s*)#\s?(.*)$", line)
        key = re.match(r"^(\s*)([A-Za-z0-9_.\-/]+):(\s|$)", line)
        if start:
            pending, pending_indent = [start.group(2).strip()], len(start.group(1))
        elif more and pending is not None and len(more.group(1)) == pending_indent:
            pending.append(more.group(2).strip())
        elif key:
            indent = len(key.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key.group(2)))
            if pending is not None:
                if indent != pending_indent:
                    sys.exit(f"values.yaml: the comment above {key.group(2)!r} is not aligned with it")
                docs.append((tuple(k for _, k in stack), " ".join(pending)))
            pending = None
        elif line.strip() and not more:
            pending = None
        elif not line.strip():
            pending = None
    return docs


def leaves(value, path=()):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from leaves(v, path + (k,))
    else:
        yield path


def lookup(values, path):
    for k in path:
        values = values[k]
    return values


def table(values_text):
    values = yaml.safe_load(values_text)
    docs = documented(values_text)
    paths = {p for p, _ in docs}
    errors = []
    for p in paths:
        try:
            lookup(values, p)
        except (KeyError, TypeError):
            errors.append(f"documented key {'.'.join(p)} is not in values.yaml")
    for leaf in leaves(values):
        if not any(leaf[: i] in paths for i in range(1, len(leaf) + 1)):
            errors.append(f"{'.'.join(leaf)} has no `# --` comment (on itself or a map above it)")
    if errors:
        sys.exit("values.yaml:\n  " + "\n  ".join(errors))
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for path, doc in docs:
        default = json.dumps(lookup(values, path), separators=(", ", ": "))
        cell = lambda s: s.replace("|", "\\|")
        rows.append(f"| `{'.'.join(path)}` | `{cell(default)}` | {cell(doc)} |")
    return "\n".join(rows) + "\n"


def main():
    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    if START not in readme or END not in readme:
        sys.exit(f"{readme_path}: markers {START} and {END} missing")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + START + "\n" + table((CHART / "values.yaml").read_text()) + END + tail
    if "--check" in sys.argv[1:]:
        if new != readme:
            diff = difflib.unified_diff(readme.splitlines(), new.splitlines(), "README.md", "generated", lineterm="")
            sys.exit("helm/waas/README.md is stale: run python3 deploy/chart-readme.py\n" + "\n".join(diff))
        return
    readme_path.write_text(new)


if __name__ == "__main__":
    main()
