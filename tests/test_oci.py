"""`make oci`: one OCI image layout per filter, in the format Istio pulls (the
"compat" variant: a single tar+gzip layer holding plugin.wasm), with correct
digests. Checked by reading the layout byte by byte, then with real tools:
skopeo reads it, refuses a corrupted copy, pushes it to a real registry
(Debian's docker-registry) and pulls it back by digest, the way Istio's agent
does before it extracts plugin.wasm."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from harness.process import ChildProcess, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "check-config"))

import manifests  # noqa: E402

FILTERS = ["api-key-auth", "mcp-guard", "org-rate-limit", "debate-access-log", "token-usage-metrics"]
VERSION = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(out: Path) -> dict:
    """Runs what `make oci` runs, into `out`; returns digests.json."""
    subprocess.run([sys.executable, str(REPO / "tools" / "oci" / "build.py"), "--out", str(out)], check=True, capture_output=True)
    return json.loads((out / "digests.json").read_text())


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, dict, dict[str, bytes]]:
    # The .wasm files are read once, before the build, so that a concurrent
    # `make build` cannot make the comparison below flaky.
    wasm = {f: (REPO / "dist" / f"{f}.wasm").read_bytes() for f in FILTERS}
    out = tmp_path_factory.mktemp("oci")
    digests = build(out)
    assert all((REPO / "dist" / f"{f}.wasm").read_bytes() == wasm[f] for f in FILTERS), "dist changed during the build"
    return out, digests, wasm


def blob(layout: Path, digest: str) -> bytes:
    data = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert sha256(data) == digest, f"blob {digest} does not hash to its name"
    return data


def plugin_wasm(layer: bytes) -> bytes:
    """What Istio's compat-variant extraction does: gunzip, untar, plugin.wasm."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        return tar.extractfile(members[0]).read()


@pytest.mark.parametrize("name", FILTERS)
def test_layout_media_types_and_digests_match_the_wasm(images, name):
    out, digests, wasm = images
    layout = out / name
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == INDEX
    [desc] = index["manifests"]
    assert desc["mediaType"] == MANIFEST
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == VERSION
    raw = blob(layout, desc["digest"])
    assert desc["size"] == len(raw)
    assert digests["digests"][name] == desc["digest"] and digests["version"] == VERSION

    manifest = json.loads(raw)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST
    assert manifest["config"]["mediaType"] == CONFIG
    config_raw = blob(layout, manifest["config"]["digest"])
    assert manifest["config"]["size"] == len(config_raw)
    [layer] = manifest["layers"]
    assert layer["mediaType"] == LAYER
    layer_raw = blob(layout, layer["digest"])
    assert layer["size"] == len(layer_raw)
    assert plugin_wasm(layer_raw) == wasm[name]

    config = json.loads(config_raw)
    assert (config["architecture"], config["os"]) == ("wasm", "wasip1")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(gzip.decompress(layer_raw))]}
    assert manifest["annotations"]["io.mcp-mesh.wasm.sha256"] == hashlib.sha256(wasm[name]).hexdigest()

    # Nothing else in the layout: every blob is referenced.
    stored = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    referenced = {d.removeprefix("sha256:") for d in (desc["digest"], manifest["config"]["digest"], layer["digest"])}
    assert stored == referenced


def test_builds_are_reproducible(images, tmp_path):
    _, digests, _ = images
    assert build(tmp_path)["digests"] == digests["digests"]


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120)


def test_skopeo_reads_the_layout_and_refuses_a_corrupted_copy(images, tmp_path):
    out, digests, _ = images
    name = "org-rate-limit"
    inspect = skopeo("inspect", "--raw", f"oci:{out / name}:{VERSION}")
    assert inspect.returncode == 0, inspect.stderr
    assert sha256(inspect.stdout.encode()) == digests["digests"][name]

    broken = tmp_path / name
    shutil.copytree(out / name, broken)
    manifest = json.loads(blob(broken, digests["digests"][name]))
    layer_path = broken / "blobs" / "sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    data = bytearray(layer_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer_path.write_bytes(bytes(data))
    copy = skopeo("copy", f"oci:{broken}:{VERSION}", f"dir:{tmp_path / 'copy'}")
    assert copy.returncode != 0
    assert "digest" in copy.stderr.lower(), copy.stderr


@pytest.fixture
def registry(tmp_path):
    """A real OCI registry (distribution 2.8, Debian's docker-registry) on loopback."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    proc = ChildProcess("registry", ["docker-registry", "serve", str(config)], tmp_path)
    try:
        wait_for_port(port, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop()


def test_push_to_a_registry_and_pull_by_the_pinned_digest(images, registry, tmp_path):
    out, digests, wasm = images
    for name in FILTERS:
        ref = f"{registry}/mcp-mesh-filters/{name}"
        push = skopeo("copy", "--dest-tls-verify=false", f"oci:{out / name}:{VERSION}", f"docker://{ref}:{VERSION}")
        assert push.returncode == 0, push.stderr
        digest = digests["digests"][name]
        # Istio pulls `oci://<ref>:<tag>@sha256:<digest>` and checks the manifest digest.
        pulled = tmp_path / name
        pull = skopeo("copy", "--src-tls-verify=false", f"docker://{ref}@{digest}", f"dir:{pulled}")
        assert pull.returncode == 0, pull.stderr
        manifest_raw = (pulled / "manifest.json").read_bytes()
        assert sha256(manifest_raw) == digest
        layer = json.loads(manifest_raw)["layers"][0]["digest"].removeprefix("sha256:")
        assert plugin_wasm((pulled / layer).read_bytes()) == wasm[name]


def test_pin_digests_writes_url_and_sha256_of_every_plugin(images, tmp_path):
    out, digests, _ = images
    copy = tmp_path / "wasm-plugins-yaml"
    shutil.copytree(REPO / "wasm-plugins-yaml", copy)
    pin = [sys.executable, str(REPO / "tools" / "oci" / "pin.py"), "--digests", str(out / "digests.json"), "--manifests", str(copy)]
    registry = "registry.example.com:5000/team/mesh"
    subprocess.run([*pin, "--registry", registry], check=True, capture_output=True)
    manifests.binary()
    plugins = [e["resource"] for e in manifests.render(copy / "overlays" / "production") if e["resource"]["kind"] == "WasmPlugin"]
    assert len(plugins) == 7
    for p in plugins:
        name, digest = p["spec"]["pluginName"], digests["digests"][p["spec"]["pluginName"]]
        assert p["spec"]["url"] == f"oci://{registry}/{name}:{VERSION}@{digest}"
        assert p["spec"]["sha256"] == digest.removeprefix("sha256:")
    # Still valid, and a second run changes nothing.
    assert manifests.run(copy / "overlays" / "production").returncode == 0
    check = subprocess.run([*pin, "--registry", registry, "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    # Comments survive pinning.
    assert (copy / "base" / "mcp-mesh.yaml").read_text().count("#") == (REPO / "wasm-plugins-yaml" / "base" / "mcp-mesh.yaml").read_text().count("#")
