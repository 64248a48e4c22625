#!/usr/bin/env python3
"""Writes the Istio side of local/envoy.yaml's observability config.

local/envoy.yaml is the one source of the access-log fields and the stats tag
regexes. This script turns them into what Istio needs:

* mesh/istio-operator.yaml: meshConfig with the `mcp-json-access-log`
  extension provider (envoyFileAccessLog, logFormat.labels = json_format) and
  defaultConfig.extraStatTags / proxyStatsMatcher for the filters' labeled
  metrics;
* base/telemetry.yaml: the access-log CEL filter expression.

    make mesh-config          # rewrite both
    make mesh-config CHECK=1  # exit 1 if they are stale

tests/test_manifests.py checks the committed files against local/envoy.yaml.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ENVOY = ROOT / "local" / "envoy.yaml"
OPERATOR = HERE / "istio-operator.yaml"
TELEMETRY = HERE.parent / "base" / "telemetry.yaml"

PROVIDER = "mcp-json-access-log"
# Envoy names proxy-wasm metrics `wasmcustom.<name>`; ours all end in an
# `mcp_*` base name after the `label=.=value;.;` segments. The stats matcher
# matches the whole name.
INCLUSION_REGEX = r"wasmcustom\..*mcp_.*"


def istio_tag_regex(tag: str) -> str:
    """The regex Istio's bootstrap template generates for an extraStatTag."""
    return f"({tag}=\\.=(.*?);\\.;)"


def envoy_facts() -> tuple[list[str], dict, str]:
    envoy = yaml.safe_load(ENVOY.read_text())
    tags = []
    for tag in envoy["stats_config"]["stats_tags"]:
        if tag.get("regex") != istio_tag_regex(tag["tag_name"]):
            sys.exit(f"{ENVOY}: stats tag {tag['tag_name']}: regex {tag.get('regex')!r} is not "
                     "the one Istio generates for extraStatTags; keep the label=.=value;.; form")
        tags.append(tag["tag_name"])
    hcm = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    access_log = hcm["access_log"][0]
    labels = access_log["typed_config"]["log_format"]["json_format"]
    expression = access_log["filter"]["extension_filter"]["typed_config"]["expression"]
    return tags, labels, expression


def operator_yaml(tags: list[str], labels: dict) -> str:
    q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    label_lines = "\n".join(f"              {k}: {q(v)}" for k, v in labels.items())
    tag_lines = "\n".join(f"        - {t}" for t in tags)
    return f"""# Mesh-wide config for the MCP mesh filters. GENERATED from local/envoy.yaml
# by `make mesh-config` (wasm-plugins-yaml/mesh/sync_from_envoy.py): edit
# local/envoy.yaml and regenerate; tests/test_manifests.py checks they agree.
#
# Install with the rest of Istio's config (it is merged into meshConfig):
#   istioctl install -f <your IstioOperator> -f wasm-plugins-yaml/mesh/istio-operator.yaml
# With Helm, put the `meshConfig:` block below into the istiod chart's values.
# defaultConfig is read when a sidecar starts: restart the pods afterwards.
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata:
  name: mcp-mesh-filters
  namespace: istio-system
spec:
  meshConfig:
    extensionProviders:
      # Enabled per namespace by wasm-plugins-yaml/base/telemetry.yaml. One
      # JSON object per request; the mcp fields are the filter state the
      # filters write (wasm.mcp_*), exactly the json_format of local/envoy.yaml.
      - name: {PROVIDER}
        envoyFileAccessLog:
          path: /dev/stdout
          logFormat:
            labels:
{label_lines}
    defaultConfig:
      # proxy-wasm metrics have no labels: the filters encode them in the
      # name (label=.=value;.;mcp_...) and Envoy's stats tags extract them.
      # Istio's bootstrap generates, for each extraStatTag, the regex
      # (<tag>=\\.=(.*?);\\.;): the same stats_tags as local/envoy.yaml.
      extraStatTags:
{tag_lines}
      # Istio keeps only its own stats by default; let the filters' through.
      proxyStatsMatcher:
        inclusionRegexps:
          - {q(INCLUSION_REGEX)}
"""


def telemetry_yaml(expression: str) -> str:
    text = TELEMETRY.read_text()
    new, n = re.subn(r"(?m)^(\s+expression: ).*$", lambda m: m.group(1) + json.dumps(expression), text)
    if n != 1:
        sys.exit(f"{TELEMETRY}: expected exactly one `expression:` line")
    return new


def main() -> int:
    check = "--check" in sys.argv[1:]
    tags, labels, expression = envoy_facts()
    wanted = {OPERATOR: operator_yaml(tags, labels), TELEMETRY: telemetry_yaml(expression)}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    for path in stale:
        rel = path.relative_to(ROOT)
        if check:
            print(f"{rel}: out of date with local/envoy.yaml: run `make mesh-config`")
        else:
            path.write_text(wanted[path])
            print(f"wrote {rel}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
