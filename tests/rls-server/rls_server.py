"""A test-only rate-limit service: envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit
over gRPC (grpcio), counting in a real Redis with the `limits` library
(atomic fixed windows, the engine behind Flask-Limiter and SlowAPI).

It matches descriptors the way envoyproxy/ratelimit does: a configured
descriptor applies when the request descriptor has exactly its keys, with
equal values or `*` (one counter per value):

A descriptor's own `hits_addend` overrides the request's (token budgets
charge several counters by different amounts in one call).

    rls_server.py --redis redis://127.0.0.1:6379 --port 0 [--delay-ms 50] --limits '[
      {"domain": "mcp", "descriptor": {"plan": "free", "org_id": "*"},
       "requests_per_unit": 100, "unit": "minute"}]'

Prints `listening on <port>` once it serves. `--delay-ms` answers late (the
filter's timeout test); `--hang` accepts every call and never answers, and
`--stall` sends the response headers and then nothing (the two ways a service
can hang that another Proxy-Wasm shim's timeout missed, Kuadrant wasm-shim#425). The messages are built at run time from a
hand-written descriptor (no protoc), wire-compatible with the envoy protos.

Why not Kuadrant's limitador crate, as first planned: its `redis_storage`
does not compile without `disk_storage` (limitador 0.12 to 0.14 reference
`storage::keys::bin`, gated on that feature), which builds RocksDB from C++
sources with libclang: far too slow for CI on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from limits import RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

PACKAGE = "envoy.service.ratelimit.v3"
SERVICE = f"{PACKAGE}.RateLimitService"
UNITS = {"second": (1, RateLimitItemPerSecond), "minute": (2, RateLimitItemPerMinute),
         "hour": (3, RateLimitItemPerHour), "day": (4, RateLimitItemPerDay)}
OK, OVER_LIMIT = 1, 2

F = descriptor_pb2.FieldDescriptorProto


def _messages() -> dict:
    """The request/response messages, only the fields used here."""
    fdp = descriptor_pb2.FileDescriptorProto(name="rls_test.proto", package=PACKAGE, syntax="proto3")

    def message(name, *fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = f".{PACKAGE}.{type_name}"

    message("Entry", ("key", 1, F.TYPE_STRING, False, None), ("value", 2, F.TYPE_STRING, False, None))
    message("UInt64Value", ("value", 1, F.TYPE_UINT64, False, None))
    message("RateLimitDescriptor", ("entries", 1, F.TYPE_MESSAGE, True, "Entry"),
            ("hits_addend", 3, F.TYPE_MESSAGE, False, "UInt64Value"))
    message("RateLimitRequest", ("domain", 1, F.TYPE_STRING, False, None),
            ("descriptors", 2, F.TYPE_MESSAGE, True, "RateLimitDescriptor"),
            ("hits_addend", 3, F.TYPE_UINT32, False, None))
    message("Duration", ("seconds", 1, F.TYPE_INT64, False, None), ("nanos", 2, F.TYPE_INT32, False, None))
    message("RateLimit", ("requests_per_unit", 1, F.TYPE_UINT32, False, None),
            ("unit", 2, F.TYPE_INT32, False, None), ("name", 3, F.TYPE_STRING, False, None))
    message("DescriptorStatus", ("code", 1, F.TYPE_INT32, False, None),
            ("current_limit", 2, F.TYPE_MESSAGE, False, "RateLimit"),
            ("limit_remaining", 3, F.TYPE_UINT32, False, None),
            ("duration_until_reset", 4, F.TYPE_MESSAGE, False, "Duration"))
    message("RateLimitResponse", ("overall_code", 1, F.TYPE_INT32, False, None),
            ("statuses", 2, F.TYPE_MESSAGE, True, "DescriptorStatus"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{m.name}"))
            for m in fdp.message_type}


M = _messages()


class Limit:
    def __init__(self, spec: dict):
        self.domain = spec["domain"]
        self.descriptor = dict(spec["descriptor"])
        self.per_unit = int(spec["requests_per_unit"])
        self.unit_code, item = UNITS[spec["unit"]]
        self.item = item(self.per_unit)

    def key_for(self, domain: str, entries: list[tuple[str, str]]) -> str | None:
        """The counter key when this limit applies to the descriptor, else None."""
        if domain != self.domain or {k for k, _ in entries} != set(self.descriptor):
            return None
        for k, v in entries:
            if self.descriptor[k] not in ("*", v):
                return None
        return "|".join(f"{k}={v}" for k, v in entries)


class Service:
    def __init__(self, redis_url: str, limits: list[Limit], delay: float, hang: str | None = None):
        self.limiter = FixedWindowRateLimiter(storage_from_string(redis_url))
        self.limits = limits
        self.delay = delay
        self.hang = hang

    def should_rate_limit(self, request, context):
        if self.hang == "stall":
            context.send_initial_metadata(())
        if self.hang:
            # Until the caller gives up (or for an hour).
            deadline = time.monotonic() + 3600
            while context.is_active() and time.monotonic() < deadline:
                time.sleep(0.01)
            return M["RateLimitResponse"](overall_code=OK)
        if self.delay:
            time.sleep(self.delay)
        response = M["RateLimitResponse"](overall_code=OK)
        for descriptor in request.descriptors:
            entries = [(e.key, e.value) for e in descriptor.entries]
            # A descriptor's own hits_addend (google.protobuf.UInt64Value)
            # overrides the request's, as in envoyproxy/ratelimit.
            if descriptor.HasField("hits_addend"):
                cost = descriptor.hits_addend.value
            else:
                cost = max(1, request.hits_addend)
            status = response.statuses.add(code=OK)
            for limit in self.limits:
                key = limit.key_for(request.domain, entries)
                if key is None:
                    continue
                # Every hit counts, over the limit too (as envoyproxy/ratelimit
                # counts them in Redis).
                allowed = self.limiter.hit(limit.item, request.domain, key, cost=cost)
                stats = self.limiter.get_window_stats(limit.item, request.domain, key)
                status.code = OK if allowed else OVER_LIMIT
                status.current_limit.requests_per_unit = limit.per_unit
                status.current_limit.unit = limit.unit_code
                status.limit_remaining = max(0, stats.remaining)
                status.duration_until_reset.seconds = max(0, int(stats.reset_time - time.time()) + 1)
                if not allowed:
                    response.overall_code = OVER_LIMIT
                break
        return response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--limits", default="[]")
    parser.add_argument("--delay-ms", type=int, default=0)
    hang = parser.add_mutually_exclusive_group()
    hang.add_argument("--hang", dest="hang", action="store_const", const="hang")
    hang.add_argument("--stall", dest="hang", action="store_const", const="stall")
    args = parser.parse_args()
    service = Service(args.redis, [Limit(s) for s in json.loads(args.limits)], args.delay_ms / 1000, args.hang)
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
            service.should_rate_limit,
            request_deserializer=M["RateLimitRequest"].FromString,
            response_serializer=M["RateLimitResponse"].SerializeToString,
        )
    })
    # gRPC sets SO_REUSEPORT by default: a second server on a taken port would
    # bind too and silently share its connections (this made a test flaky
    # when two pytest workers got the same free port). Port 0 plus the
    # printed port, and no port sharing.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening on {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
