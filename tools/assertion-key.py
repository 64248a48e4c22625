"""A new P-256 key pair for the identity assertion (`make assertion-key`):
the private JWK goes into mcp-gateway's api_key_auth.identity_assertion, the
public one into every sidecar's jwt_providers entry. Printed once, never
stored. Keep the old public key in the verifiers' JWKS until the gateway has
signed with the new one for longer than the assertion's ttl (rotation)."""

import base64
import json
import sys
import time

from cryptography.hazmat.primitives.asymmetric import ec


def b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def main() -> None:
    kid = sys.argv[1] if len(sys.argv) > 1 else time.strftime("gw-%Y-%m")
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_numbers()
    public = {"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": b64(pub.x), "y": b64(pub.y)}
    private = {"kty": "EC", "crv": "P-256", "d": b64(key.private_numbers().private_value), "x": public["x"], "y": public["y"]}
    print("# mcp-gateway: api_key_auth.identity_assertion (a secret: keep it out of git)")
    print(json.dumps({"key_id": kid, "private_key": private}))
    print("# every sidecar behind it: api_key_auth.jwt_providers[mesh].local_jwks.keys[]")
    print(json.dumps(public))


if __name__ == "__main__":
    main()
