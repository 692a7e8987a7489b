#!/usr/bin/env python3
"""Validates every example manifest against examples/manifest.schema.json (JSON Schema draft 2020-12).

examples/manifests/invalid-*.json must FAIL the schema; every other *.json there must PASS.
Usage: python3 Tests/schema/check_examples.py [REPO_ROOT]
Exit: 0 all as expected, 1 some example did not behave as expected, 77 python jsonschema is not installed.
"""
import json
import pathlib
import sys

try:
    import jsonschema
except ImportError:
    print("SKIP: python3 module jsonschema is not installed (pip install jsonschema)")
    sys.exit(77)

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
schema = json.loads((root / "examples" / "manifest.schema.json").read_text())
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

manifests = sorted((root / "examples" / "manifests").glob("*.json"))
if not manifests:
    print(f"FAIL: no manifests under {root / 'examples' / 'manifests'}")
    sys.exit(1)
failures = 0
for path in manifests:
    errors = sorted(validator.iter_errors(json.loads(path.read_text())), key=lambda e: list(e.absolute_path))
    expect_invalid = path.name.startswith("invalid-")
    ok = bool(errors) == expect_invalid
    failures += not ok
    where = ", ".join("/" + "/".join(str(p) for p in e.absolute_path) for e in errors)
    print(f"{'ok  ' if ok else 'FAIL'} {path.name}: {len(errors)} schema error(s){' at ' + where if errors else ''}")
sys.exit(1 if failures else 0)
