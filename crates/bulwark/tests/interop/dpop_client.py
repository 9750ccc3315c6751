"""An OAuth client built on authlib (client authentication, token requests) and joserfc
(DPoP proofs, JWK thumbprints), run against a live Bulwark by crates/bulwark/tests/interop.rs.

Input (JSON on stdin): base URL, CA file, a DPoP-bound client's id and secret, a
private_key_jwt client's id and the path of its PKCS#8 PEM key. Output (JSON on stdout):
what each step saw. Any failed expectation raises, and the process exits non-zero.
"""

import base64
import hashlib
import json
import ssl
import sys
import time
import uuid

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jws
from joserfc.jwk import ECKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


cfg = json.load(sys.stdin)
base = cfg["base"]
ctx = ssl.create_default_context(cafile=cfg["ca"])
token_url = base + "/oauth2/token"
orgs_url = base + "/v1/orgs/acme"

# The client's DPoP key, made here and never sent anywhere but in proofs' headers.
dpop_key = ECKey.generate_key("P-256")
public_jwk = dpop_key.as_dict(private=False)


def proof(method, url, access_token=None, nonce=None):
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
    if access_token is not None:
        claims["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
    if nonce is not None:
        claims["nonce"] = nonce
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk}
    return jws.serialize_compact(header, json.dumps(claims), dpop_key)


out = {}
seen_nonce = {}


def capture(response):
    n = response.headers.get("dpop-nonce")
    if n:
        seen_nonce["value"] = n


# 1. client_credentials with client_secret_basic and a DPoP proof; the server asks for a
#    nonce first (use_dpop_nonce), as RFC 9449 §8 lets it.
client = OAuth2Client(
    cfg["client_id"],
    cfg["client_secret"],
    token_endpoint_auth_method="client_secret_basic",
    scope="read",
    verify=ctx,
    event_hooks={"response": [capture]},
)
try:
    client.fetch_token(token_url, grant_type="client_credentials", headers={"DPoP": proof("POST", token_url)})
    raise SystemExit("expected use_dpop_nonce on the first token request")
except OAuthError as e:
    assert e.error == "use_dpop_nonce", e.error
    out["first_error"] = e.error
nonce = seen_nonce["value"]
token = client.fetch_token(
    token_url,
    grant_type="client_credentials",
    headers={"DPoP": proof("POST", token_url, nonce=nonce)},
)
assert token["token_type"] == "DPoP", token
access = token["access_token"]
payload = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
assert payload["cnf"]["jkt"] == dpop_key.thumbprint(), (payload["cnf"], dpop_key.thumbprint())
out["token_type"] = token["token_type"]
out["jkt_matches"] = True

# 2. A protected route with the DPoP-bound token and a fresh proof (with ath).
with httpx.Client(verify=ctx) as http:
    p = proof("GET", orgs_url, access_token=access)
    r = http.get(orgs_url, headers={"Authorization": f"DPoP {access}", "DPoP": p})
    assert r.status_code == 200, (r.status_code, r.text)
    out["protected_status"] = r.status_code
    out["protected_body"] = r.json()
    # The same proof again is a replay.
    r = http.get(orgs_url, headers={"Authorization": f"DPoP {access}", "DPoP": p})
    assert r.status_code == 401, r.status_code
    out["replay_status"] = r.status_code
    out["replay_challenge"] = r.headers["www-authenticate"]
    # The bound token without its proof, as a bearer token, is refused.
    r = http.get(orgs_url, headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 401, r.status_code

# 3. private_key_jwt: authlib signs the client assertion with the client's registered key.
with open(cfg["pkjwt_key_pem"], "rb") as f:
    client_key = ECKey.import_key(f.read())
pk_client = OAuth2Client(
    cfg["pkjwt_client_id"],
    client_key,
    token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="ES256"),
    scope="read",
    verify=ctx,
)
pk_token = pk_client.fetch_token(token_url, grant_type="client_credentials")
assert pk_token["token_type"] == "Bearer", pk_token
with httpx.Client(verify=ctx) as http:
    r = http.get(orgs_url, headers={"Authorization": f"Bearer {pk_token['access_token']}"})
    assert r.status_code == 200, (r.status_code, r.text)
out["pkjwt_status"] = r.status_code

print(json.dumps(out))
