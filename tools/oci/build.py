#!/usr/bin/env python3
"""`make oci`: one OCI image layout per filter, the image Istio pulls.

    dist/oci/<filter>/oci-layout
    dist/oci/<filter>/index.json                  tag <version> -> manifest
    dist/oci/<filter>/blobs/sha256/<manifest>     OCI image manifest
    dist/oci/<filter>/blobs/sha256/<config>       OCI image config
    dist/oci/<filter>/blobs/sha256/<layer>        tar+gzip holding plugin.wasm
    dist/oci/digests.json                         {"<filter>": "sha256:<manifest digest>"}

`--out DIR` writes somewhere else than dist/oci (the tests do).

The format is the "compat" variant of the Wasm image spec that Istio's image
fetcher reads first (pkg/wasm/imagefetcher.go): a standard single-layer OCI
image whose `application/vnd.oci.image.layer.v1.tar+gzip` layer contains
`plugin.wasm`. Being a plain OCI image, every registry and tool handles it
(oras, crane, skopeo, docker). Istio verifies WasmPlugin `sha256` against the
*manifest* digest for oci:// URLs, which is what digests.json records and
`make pin-digests` writes into the manifests.

The build is reproducible: no timestamps, fixed tar and gzip headers, sorted
JSON keys, so the same .wasm always gives the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# The four standalone modules and the composed one.
FILTERS = ["api-key-auth", "mcp-guard", "org-rate-limit", "debate-access-log", "token-usage-metrics", "mcp-mesh"]
WASM_MAGIC = b"\0asm"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"
SOURCE = "https://github.com/mcp-debate/mcp-mesh-filters"


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(wasm: bytes) -> bytes:
    """plugin.wasm in a tar with fixed owner, mode and time."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size = len(wasm)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_fixed(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def write_blob(layout: Path, data: bytes) -> dict:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def build_image(name: str, wasm: bytes, version: str, layout: Path) -> str:
    """Writes the layout of one filter; returns the manifest digest."""
    if layout.exists():
        shutil.rmtree(layout)
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))

    tar = layer_tar(wasm)
    layer = {"mediaType": MEDIA_LAYER, **write_blob(layout, gzip_fixed(tar))}
    config = {
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
    }
    config_desc = {"mediaType": MEDIA_CONFIG, **write_blob(layout, canonical(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc,
        "layers": [layer],
        "annotations": {
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.source": SOURCE,
            "org.opencontainers.image.description": f"{name} Proxy-Wasm filter (Istio WasmPlugin, compat image with {PLUGIN_FILE})",
            # sha256 of the module itself, for `http(s)://` users and audits.
            "io.mcp-mesh.wasm.sha256": hashlib.sha256(wasm).hexdigest(),
        },
    }
    manifest_desc = {"mediaType": MEDIA_MANIFEST, **write_blob(layout, canonical(manifest))}
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{**manifest_desc, "annotations": {"org.opencontainers.image.ref.name": version}}],
    }
    (layout / "index.json").write_bytes(canonical(index))
    return manifest_desc["digest"]


def main() -> int:
    dist = ROOT / "dist"
    out = Path(sys.argv[2]) if sys.argv[1:2] == ["--out"] and len(sys.argv) > 2 else dist / "oci"
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    digests = {}
    for name in FILTERS:
        wasm_path = dist / f"{name}.wasm"
        if not wasm_path.is_file():
            print(f"{wasm_path.relative_to(ROOT)}: missing: run `make build` first", file=sys.stderr)
            return 1
        wasm = wasm_path.read_bytes()
        if not wasm.startswith(WASM_MAGIC):
            print(f"{wasm_path.relative_to(ROOT)}: not a Wasm module", file=sys.stderr)
            return 1
        digests[name] = build_image(name, wasm, version, out / name)
        print(f"{out / name}:{version}  {digests[name]}  ({len(wasm)} bytes of wasm)")
    (out / "digests.json").write_text(json.dumps({"version": version, "digests": digests}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
