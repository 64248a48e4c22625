"""Seeds fuzz/corpus/<target>/ from the project's test fixtures and the
hostile bodies of issue 12: python3 fuzz/seed_corpora.py (the committed
corpora were made so; libFuzzer adds what it finds when `make fuzz` runs).
Files named `regression-*` are inputs that once crashed a target: kept by
hand, never rewritten here."""

import base64
import hashlib
import hmac
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"


def put(target: str, name: str, data) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data.encode() if isinstance(data, str) else data)


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


META = ('"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
        '"io.modelcontextprotocol/clientCapabilities":{}}')
BODIES = {
    "call": '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_debate_round","arguments":{"debate_id":"d-42"}}}',
    "modern": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{%s,"name":"create_debate","arguments":{"topic":"t"}}}' % META,
    "nan": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_debate_round","x":NaN}}',
    "inf": '{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"x","n":-Infinity}}',
    "deep": '{"jsonrpc":"2.0","method":"tools/call","params":{"a":%s1%s,"name":"t"}}' % ("[" * 200, "]" * 200),
    "dup": '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get_debate","name":"run_debate_round"}}',
    "escaped": '{"jsonrpc":"2.0","\\u006dethod":"tools\\/call","params":{"n\\u0061me":"\\ud83d\\ude00"}}',
    "batch": '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"vote"}},3]',
    "cut": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"t":"aaaa',
    "resource": '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"debate://d-1?x=1"}}',
}


def main() -> None:
    for name, body in BODIES.items():
        put("jsonrpc_scan", name, b" " + body.encode())
        put("jsonrpc_scan_vs_serde", name, body)
    for f in sorted((ROOT / "tests" / "fixtures" / "llm").iterdir()):
        if f.suffix not in (".sse", ".json") or f.name == "cases.json":
            continue
        data = f.read_bytes()
        put("sse_framer", f.name, b"\x11" + data)
        selector = {"anthropic": 2, "gemini": 3}.get(f.name.split("_")[0], 0)
        if f.name.startswith("openai_responses"):
            selector = 1
        if f.suffix == ".sse":
            selector |= 0x80
        put("llm_usage", f.name, bytes([selector]) + data)
    put("credential", "sources", "/mcp?x=1&api_key=mcpk_q\nx-api-key: mcpk_test\nauthorization: Bearer mcpk_b\n")
    put("credential", "query", "/mcp?api_key=mcpk_q&api_key=two\n")
    head = b64(json.dumps({"alg": "HS256", "kid": "h"}).encode())
    body = b64(json.dumps({"iss": "hs", "exp": 1700000300, "org_id": "acme", "plan": "pro", "role": "user"}).encode())
    sig = b64(hmac.new(b"0123456789abcdef0123456789abcdef", f"{head}.{body}".encode(), hashlib.sha256).digest())
    put("jwt", "hs256", f"{head}.{body}.{sig}")
    put("jwt", "none", b64(b'{"alg":"none"}') + f".{body}.")
    rs = json.loads((ROOT / "tests" / "fixtures" / "auth" / "rs256.json").read_text())
    message = unb64(rs["message"])
    signature = unb64(rs[next(k for k in rs if k.startswith("sig"))])
    put("rsa_vs_rsa_crate", "valid", bytes([min(len(message), 255)]) + message[:255] + signature)
    put("rsa_vs_rsa_crate", "short", b"\x03abc" + b"\x00" * 256)
    put("jwt", "rs256", message.decode(errors="replace") + "." + b64(signature))
    env = yaml.safe_load((ROOT / "local" / "envoy.yaml").read_text())

    def plugin_configs(o):
        if isinstance(o, dict):
            cfg = o.get("configuration")
            if isinstance(cfg, dict) and "value" in cfg:
                yield o.get("name", "x"), cfg["value"]
            for v in o.values():
                yield from plugin_configs(v)
        elif isinstance(o, list):
            for v in o:
                yield from plugin_configs(v)

    for name, value in plugin_configs(env):
        put("configs", name, value)
    put("configs", "empty", "{}")
    put("configs", "bad", '{"plans":{"free":{"requests_per_minute":-1}}}')
    for i in range(4):
        put("configs_structured", f"seed{i}", bytes([i]) * 16)
    for i, p in enumerate(["/mcp", "/health/../admin", "/.well-known/%2e%2e/mcp", "//a\\b/%2F..%2f",
                           "/a/./b/../../../c?x#y", "/%252e%252e/x"]):
        put("path_normalize", f"p{i}", p)
    put("ratelimit_headers", "free", bytes(range(32)) + b"free")
    put("ratelimit_headers", "hostile", b"\xff" * 32 + b'pl"an\r\n\x00\xe2\x80\xa8')


if __name__ == "__main__":
    main()
