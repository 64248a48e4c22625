"""Python side of the manifest checks: the check-config binary, and validation
of every resource against the Istio CRD schemas with a real JSON Schema
validator (python-jsonschema on each CRD's openAPIV3Schema) and the CRDs' CEL
rules (`x-kubernetes-validations`, evaluated with cel-python).

    python tools/check-config/manifests.py PATH...   # CRD schema check, like check-config's output

Used by `make check-config` and by tests/test_manifests.py. The CRDs are the
project's own copy in tools/check-config/istio-crds (Istio's
customresourcedefinitions.gen.yaml, cut per kind; its README gives the source);
ISTIO_CRDS=dir points elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import celpy
import jsonschema
import yaml
from celpy import celtypes

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "target" / "debug" / "check-config"
CRD_DIR = Path(os.environ.get("ISTIO_CRDS", REPO / "tools" / "check-config" / "istio-crds"))

# metadata is not covered by the CRD schemas: the Kubernetes API server checks it.
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def binary() -> Path:
    """The native check-config binary (`make check-config-bin`), built by cargo
    here only when it is missing or older than its sources or a filter's
    config, so that tests run under `make test` never wait on cargo's lock."""
    sources = [*REPO.glob("tools/check-config/src/*.rs"), *REPO.glob("filters/*/src/**/*.rs"), REPO / "Cargo.lock"]
    newest = max(p.stat().st_mtime for p in sources)
    if not BINARY.exists() or BINARY.stat().st_mtime < newest:
        subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", "check-config"], cwd=REPO, check=True)
    return BINARY


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), *map(str, args)], cwd=REPO, capture_output=True, text=True)


def render(path: str | Path) -> list[dict]:
    """What a kustomization renders to, with origins: [{file, patches, resource}]."""
    out = run("render", "--json", path)
    if out.returncode != 0:
        raise RuntimeError(f"check-config render {path} failed:\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout)


def resources_of(path: str | Path) -> list[dict]:
    """Resources with origins, from what check-config accepts: a kustomization
    folder (or its kustomization.yaml), a folder of manifests, a manifest
    file. Lone pluginConfig files (.json) hold no resources."""
    path = Path(path)
    if path.name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = path.parent
    if path.is_dir():
        if any((path / n).is_file() for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
            return render(path)
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        return [r for f in files for r in resources_of(f)]
    if path.suffix == ".json":
        return []
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return [{"file": str(path), "patches": [], "resource": d} for d in docs]


@lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema, for every served version."""
    if not CRD_DIR.is_dir():
        raise FileNotFoundError(f"{CRD_DIR}: Istio CRDs not found (set ISTIO_CRDS)")
    schemas = {}
    for path in sorted(CRD_DIR.glob("*-crd.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    # Every object has these; CRDs leave them to the API server.
                    schema["properties"] = {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        **schema["properties"],
                    }
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def strict(schema: dict) -> dict:
    """Unknown fields become errors, as with `kubectl apply`'s default strict
    field validation (the API server would otherwise prune them silently),
    except where the schema preserves unknown fields (pluginConfig)."""
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if isinstance(v, dict) else ([strict(i) for i in v] if isinstance(v, list) else v)
           for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
    return out


def resource_id(r: dict) -> str:
    meta = r.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{r.get('kind', '<no kind>')} {ns + '/' if ns else ''}{meta.get('name', '<no name>')}"


def validate(resource: dict) -> list[tuple[str, str]]:
    """(field path, message) of every schema violation of one resource."""
    key = (resource.get("apiVersion", ""), resource.get("kind", ""))
    schema = crd_schemas().get(key)
    if schema is None:
        known = ", ".join(sorted(f"{k} {v}" for v, k in crd_schemas()))
        return [("apiVersion", f"no CRD schema for {key[0]} {key[1]} (known: {known})")]
    errors = []
    validator = jsonschema.Draft7Validator(schema)
    for e in sorted(validator.iter_errors(resource), key=lambda e: [str(p) for p in e.absolute_path]):
        path = dotted(e.absolute_path)
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            known = set(e.schema.get("properties", {}))
            for extra in sorted(set(e.instance) - known):
                errors.append((dotted([*e.absolute_path, extra]), "unknown field (not in the CRD schema)"))
            continue
        errors.append((path or "<root>", e.message))
    errors += cel_errors(schema, resource)
    errors += metadata_errors(resource.get("metadata") or {})
    return errors


# ---- CEL rules ----------------------------------------------------------------
# The API server evaluates each `x-kubernetes-validations` rule with `self`
# bound to the value at the rule's place in the schema (when present). The
# Kubernetes CEL libraries the Istio CRDs use are provided here: the URL
# library (isURL, url().getScheme(), approximated with urllib's parser) and
# strings.substring; the rest is standard CEL.


def _is_url(value):
    from urllib.parse import urlparse

    try:
        parsed = urlparse(str(value))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(bool(parsed.scheme) and bool(parsed.netloc or parsed.path))


def _get_scheme(value):
    from urllib.parse import urlparse

    return celtypes.StringType(urlparse(str(value)).scheme)


def _substring(value, start, end=None):
    text = str(value)
    return celtypes.StringType(text[int(start):] if end is None else text[int(start):int(end)])


CEL_FUNCTIONS = {"isURL": _is_url, "url": celtypes.StringType, "getScheme": _get_scheme, "substring": _substring}


@lru_cache(maxsize=None)
def _cel_program(rule: str):
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=CEL_FUNCTIONS)


def cel_errors(schema: dict, value, path: list | None = None) -> list[tuple[str, str]]:
    path = path or []
    errors = []
    for v in schema.get("x-kubernetes-validations", []):
        rule = v["rule"]
        if "oldSelf" in rule:
            continue  # transition rules compare with the stored object
        try:
            ok = _cel_program(rule).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as e:  # noqa: BLE001 - an unevaluable rule is a finding, never a pass
            errors.append((dotted(path) or "<root>", f"CEL rule {rule!r} could not be evaluated: {e}"))
            continue
        if ok is not True and not (isinstance(ok, celtypes.BoolType) and bool(ok)):
            errors.append((dotted(path) or "<root>", v.get("message") or f"violates {rule}"))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            child = props.get(key, extra if isinstance(extra, dict) else None)
            if child:
                errors += cel_errors(child, sub, [*path, key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += cel_errors(schema["items"], item, [*path, i])
    return errors


def dotted(path) -> str:
    """["spec", "match", 0, "mode"] -> spec.match[0].mode"""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def metadata_errors(meta: dict) -> list[tuple[str, str]]:
    errors = []
    name = meta.get("name", "")
    if not (0 < len(name) <= 253 and DNS1123_SUBDOMAIN.match(name)):
        errors.append(("metadata.name", f"{name!r} is not a DNS-1123 subdomain"))
    ns = meta.get("namespace")
    if ns is not None and not (len(ns) <= 63 and DNS1123_LABEL.match(ns)):
        errors.append(("metadata.namespace", f"{ns!r} is not a DNS-1123 label"))
    for field in ("labels", "annotations"):
        for k, v in (meta.get(field) or {}).items():
            prefix, _, base = k.rpartition("/")
            if not LABEL_NAME.match(base) or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
                errors.append((f"metadata.{field}.{k}", "invalid key"))
            if field == "labels" and not (isinstance(v, str) and len(v) <= 63 and LABEL_VALUE.match(v)):
                errors.append((f"metadata.labels.{k}", f"invalid value {v!r}"))
    return errors


def check_paths(paths: list[str], skipped: list[str] | None = None) -> list[str]:
    """Every CRD schema violation as `file: Kind ns/name: field: message`.
    Kinds of groups without a CRD here (e.g. IstioOperator) go to `skipped`;
    an unknown kind of a group we do have (a typo) is an error."""
    known_groups = {api.rsplit("/", 1)[0] for api, _ in crd_schemas()}
    lines = []
    for path in paths:
        for entry in resources_of(path):
            r = entry["resource"]
            key = (r.get("apiVersion", ""), r.get("kind", ""))
            if key not in crd_schemas() and key[0].rsplit("/", 1)[0] not in known_groups:
                if skipped is not None:
                    skipped.append(f"{entry['file']}: {resource_id(r)}")
                continue
            where = entry["file"] if not entry["patches"] else f"{entry['file']} (patched by {', '.join(entry['patches'])})"
            for field, message in validate(entry["resource"]):
                lines.append(f"{where}: {resource_id(entry['resource'])}: {field}: {message}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if not BINARY.exists():
        binary()
    skipped: list[str] = []
    problems = check_paths(sys.argv[1:], skipped)
    for line in problems:
        print(line)
    for line in skipped:
        print(f"manifests.py: skipped {line}: no CRD schema for its group", file=sys.stderr)
    print(f"manifests.py: CRD schema check of {' '.join(sys.argv[1:])}: {len(problems)} error(s)", file=sys.stderr)
    sys.exit(1 if problems else 0)
