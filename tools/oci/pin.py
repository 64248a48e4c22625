#!/usr/bin/env python3
"""`make pin-digests`: writes the image digests of `make oci` into the
WasmPlugin manifests, so that `url` (…:<version>@sha256:<digest>) and
`sha256` name exactly the image in dist/oci.

    make pin-digests                              # from dist/oci/digests.json
    make pin-digests REGISTRY=ghcr.io/acme/mesh   # also move the images
    make pin-digests CHECK=1                      # exit 1 if a pin differs

Only the `url:` and `sha256:` lines of WasmPlugins that load one of our
filters change; comments and layout stay as they are.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MANIFESTS = ROOT / "wasm-plugins-yaml"

URL = re.compile(
    r"^(?P<indent>\s*)url:\s*oci://(?P<repo>[^\s@:]+(?::\d+)?(?:/[^\s@:]+)*?)/(?P<name>[a-z0-9-]+)"
    r"(?::(?P<tag>[\w.-]+))?(?:@sha256:[0-9a-f]*)?\s*$"
)
SHA = re.compile(r"^(?P<indent>\s*)sha256:\s*[0-9a-fA-F]*\s*$")


def pin_text(text: str, digests: dict[str, str], version: str, registry: str | None) -> str:
    """Rewrites one YAML file's url/sha256 lines. A `sha256:` line belongs to
    the `url:` of the same document before it."""
    out = []
    current = None  # hex digest of the last pinned url in this document
    for line in text.splitlines(keepends=True):
        if line.startswith("---"):
            current = None
        m = URL.match(line.rstrip("\n"))
        if m and m.group("name") in digests:
            hex_digest = digests[m.group("name")].removeprefix("sha256:")
            repo = registry or m.group("repo")
            line = f"{m.group('indent')}url: oci://{repo}/{m.group('name')}:{version}@sha256:{hex_digest}\n"
            current = hex_digest
        elif current and SHA.match(line.rstrip("\n")):
            line = f"{SHA.match(line).group('indent')}sha256: {current}\n"
            current = None
        out.append(line)
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", default=str(ROOT / "dist" / "oci" / "digests.json"))
    parser.add_argument("--registry", help="image repository prefix, e.g. ghcr.io/acme/mcp-mesh-filters")
    parser.add_argument("--check", action="store_true", help="only report differences")
    parser.add_argument("--manifests", default=str(MANIFESTS), help="folder of YAML files to pin")
    args = parser.parse_args()
    try:
        pinned = json.loads(Path(args.digests).read_text())
    except FileNotFoundError:
        print(f"{args.digests}: missing: run `make oci` first", file=sys.stderr)
        return 1
    stale = []
    root = Path(args.manifests)
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text()
        new = pin_text(text, pinned["digests"], pinned["version"], args.registry)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    for path in stale:
        print(f"{path}: {'pins differ from dist/oci (make pin-digests)' if args.check else 'pinned'}")
    if not stale:
        print("pins match dist/oci")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
