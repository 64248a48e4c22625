"""check-config, the offline check users run before a change reaches a sidecar:
every pluginConfig of the shipped manifests passes the filters' own parsers,
and each kind of mistake is reported with file, resource and field path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "check-config"))

import manifests  # noqa: E402

FIXTURES = Path("tests/fixtures/manifests")
OVERLAYS = [
    "wasm-plugins-yaml/base",
    "wasm-plugins-yaml/overlays/production",
    "wasm-plugins-yaml/overlays/staging",
    "wasm-plugins-yaml/overlays/production-global-ratelimit",
]
FILTER_NAMES = ["api-key-auth", "org-rate-limit", "debate-access-log", "token-usage-metrics"]


@pytest.fixture(scope="module")
def check_config() -> Path:
    return manifests.binary()


def plugins(overlay: str) -> list[dict]:
    return [e["resource"] for e in manifests.render(overlay) if e["resource"]["kind"] == "WasmPlugin"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_shipped_plugin_config_passes_its_filters_parser(check_config, overlay):
    out = manifests.run(overlay)
    assert out.returncode == 0, out.stdout + out.stderr
    count = len(plugins(overlay))
    # mcp-mesh on mcp-gateway and mcp-llm, access log on the other four,
    # token usage on mcp-llm's outbound calls.
    assert count == 7
    assert f"{count} pluginConfig(s) checked" in out.stderr, out.stderr


def test_broken_plugin_config_in_a_manifest_names_file_resource_and_field(check_config):
    out = manifests.run(FIXTURES / "broken-rate-limit.yaml")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    # Only the broken resource is reported, not the valid one next to it.
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "tests/fixtures/manifests/broken-rate-limit.yaml: "
        "WasmPlugin production/org-rate-limit-llm: "
        "spec.pluginConfig.plans.free.requests_per_minute: "
    ), lines[0]


def test_make_check_config_fails_on_the_broken_manifest(check_config):
    out = subprocess.run(
        ["make", "-s", "check-config", f"FILE={FIXTURES / 'broken-rate-limit.yaml'}"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode != 0
    assert "WasmPlugin production/org-rate-limit-llm: spec.pluginConfig.plans.free.requests_per_minute" in out.stdout


def test_a_broken_overlay_patch_is_blamed_on_the_patch_file(check_config):
    out = manifests.run(FIXTURES / "broken-overlay")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "tests/fixtures/manifests/broken-overlay/patches/token-usage-metrics.yaml "
        "(patch on wasm-plugins-yaml/base/token-usage-metrics.yaml): "
        "WasmPlugin production/token-usage-metrics-llm: spec.pluginConfig.max_orgs: must be > 0"
    ]


def test_a_lone_plugin_config_file(check_config, tmp_path):
    out = manifests.run(FIXTURES / "org-rate-limit.bad.json")
    assert out.returncode == 1
    assert out.stdout.startswith(
        "tests/fixtures/manifests/org-rate-limit.bad.json: org-rate-limit pluginConfig: plans.free.burts: unknown field `burts`"
    ), out.stdout

    # The filter comes from --filter when the file name does not say it.
    good = tmp_path / "limits.yaml"
    good.write_text("default_plan: free\nplans:\n  free: {requests_per_minute: 60, burst: 10}\n")
    assert manifests.run("--filter", "org-rate-limit", good).returncode == 0
    unnamed = tmp_path / "limits.json"
    unnamed.write_text("{}")
    out = manifests.run(unnamed)
    assert out.returncode == 1 and "pass --filter NAME" in out.stdout, out.stdout
    out = manifests.run("--filter", "no-such-filter", good)
    assert out.returncode == 2 and "unknown filter" in out.stderr


def wasm_plugin(tmp_path: Path, spec_changes: dict, config: dict) -> Path:
    """A one-resource manifest derived from the shipped token-usage plugin."""
    plugin = next(p for p in plugins("wasm-plugins-yaml/overlays/production") if p["metadata"]["name"] == "token-usage-metrics-llm")
    plugin["spec"].update(spec_changes)
    plugin["spec"]["pluginConfig"] = config
    path = tmp_path / "plugin.yaml"
    path.write_text(json.dumps(plugin))  # JSON is YAML
    return path


def test_numbers_are_checked_as_istio_delivers_them(check_config, tmp_path):
    # Istio's protobuf Struct turns 100.0 into 100: accepted.
    assert manifests.run(wasm_plugin(tmp_path, {}, {"max_orgs": 100.0})).returncode == 0
    # Beyond 2^53 the Struct's double changes the value: reported.
    out = manifests.run(wasm_plugin(tmp_path, {}, {"max_orgs": 2**53 + 1}))
    assert out.returncode == 1
    assert "WasmPlugin production/token-usage-metrics-llm: spec.pluginConfig.max_orgs: integer above 2^53" in out.stdout


def test_wasm_plugin_mistakes_beyond_the_plugin_config(check_config, tmp_path):
    cases = {
        "spec.phase": {"phase": "AUTHN"},
        "spec.pluginName": {"pluginName": "api-key-auth"},
        "spec.sha256": {"sha256": "ab" * 32},
        "spec.url": {"url": "oci://ghcr.io/mcp-debate/mcp-mesh-filters/token-usage-metrics:latest", "sha256": None},
    }
    for field, change in cases.items():
        spec = {k: v for k, v in change.items() if v is not None}
        path = wasm_plugin(tmp_path, spec, {})
        if change.get("sha256", "") is None:
            doc = json.loads(path.read_text())
            del doc["spec"]["sha256"]
            path.write_text(json.dumps(doc))
        out = manifests.run(path)
        assert out.returncode == 1, (field, out.stdout)
        assert f"WasmPlugin production/token-usage-metrics-llm: {field}: " in out.stdout, (field, out.stdout)


def test_committed_json_schemas_are_the_generated_ones(check_config):
    out = manifests.run("schemas", "--check", "schemas")
    assert out.returncode == 0, out.stdout


def schema_validator(name: str):
    schema = json.loads((REPO / "schemas" / f"{name}.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft202012Validator
    cls.check_schema(schema)  # a valid JSON Schema itself
    return cls(schema)


@pytest.mark.parametrize("overlay", OVERLAYS[1:])
def test_json_schemas_accept_the_shipped_configs_and_catch_typos(overlay):
    modules, stages = set(), set()
    for plugin in plugins(overlay):
        name = plugin["spec"]["pluginName"]
        config = plugin["spec"]["pluginConfig"]
        validator = schema_validator(name)
        assert not list(validator.iter_errors(config)), (plugin["metadata"]["name"], [e.message for e in validator.iter_errors(config)])
        typo = {**config, "max_body_byte": 1}
        assert list(validator.iter_errors(typo)), name
        modules.add(name)
        # mcp-mesh's sections are each filter's pluginConfig: its schema too.
        sections = {f: config[f.replace("-", "_")] for f in FILTER_NAMES if f.replace("-", "_") in config} \
            if name == "mcp-mesh" else {name: config}
        for f, c in sections.items():
            assert not list(schema_validator(f).iter_errors(c)), (plugin["metadata"]["name"], f)
            stages.add(f)
    assert modules == {"mcp-mesh", "token-usage-metrics"}
    assert stages == set(FILTER_NAMES)


def test_a_folder_of_plain_manifests_is_checked_across_files(check_config, tmp_path):
    import shutil

    for f in (REPO / "wasm-plugins-yaml" / "base").glob("*.yaml"):
        if f.name != "kustomization.yaml":
            shutil.copy(f, tmp_path / f.name)
    out = manifests.run(tmp_path)
    assert out.returncode == 0, out.stdout
    assert "7 pluginConfig(s) checked" in out.stderr
    # Token usage moved onto mcp-llm's inbound traffic, into AUTHN ahead of
    # the mcp-mesh plugin (whose first stage is auth): the order
    # check spans files and knows mcp-mesh's place.
    path = tmp_path / "token-usage-metrics.yaml"
    text = path.read_text()
    assert "- mode: CLIENT" in text and "phase: STATS\n  priority: 100" in text
    path.write_text(text.replace("- mode: CLIENT", "- mode: SERVER", 1)
                    .replace("phase: STATS\n  priority: 100", "phase: AUTHN\n  priority: 500", 1))
    out = manifests.run(tmp_path)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(l.startswith(f"{path}: WasmPlugin token-usage-metrics-llm: spec.phase: must be STATS") for l in lines), lines
    assert any("WasmPlugin token-usage-metrics-llm: spec.priority: token-usage-metrics would run before api-key-auth "
               "(WasmPlugin mcp-mesh-llm)" in l for l in lines), lines
    # mcp-mesh takes its first stage's phase.
    mesh = tmp_path / "mcp-mesh.yaml"
    gateway, llm = mesh.read_text().split("name: mcp-mesh-llm", 1)
    mesh.write_text(gateway + "name: mcp-mesh-llm" + llm.replace("phase: AUTHN", "phase: STATS", 1))
    out = manifests.run(mesh)
    assert "WasmPlugin mcp-mesh-llm: spec.phase: must be AUTHN for mcp-mesh (first stage api-key-auth) (is STATS)" in out.stdout, out.stdout
