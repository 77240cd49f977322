#!/usr/bin/env python3
"""Benchmark set-up for the UMA grant under the `heart-fhir` profile: `private_key_jwt` clients
(ES256 keys), a DPoP-bound RPT per request (RS256-signed by Custodia), the requesting party's
claims gathered once at the claims interaction endpoint and reused through a PCT.

usage:
  heart_setup.py keys DIR
      ES256 keys for the resource server, the client app and the app's DPoP proofs (DIR/*.pem),
      and the two clients' JWK sets (DIR/rs.jwks.json, DIR/app.jwks.json) for `client add --jwks`.
  heart_setup.py setup DIR BASE RS_ID APP_ID OWNER PARTY PASSWORD N
      The resource server's PAT (code flow, PKCE, client assertion), one FHIR resource, N owner
      policies (N - 1 strangers and the party), then one grant through claims gathering (the party
      signs in and lets the app remember the claims) for a PCT. Prints {"pat", "resource_id",
      "pct"} as JSON.
  heart_setup.py requests DIR BASE APP_ID TICKET_DIR
      For every ticket in TICKET_DIR/tickets.<n>, a line `ticket TAB client_assertion TAB proof`
      in TICKET_DIR/requests.<n>: a fresh assertion (unique `jti`) and a fresh DPoP proof for the
      token endpoint, made just before the run (proofs are good for 5 minutes).

Needs Python's `cryptography` package (ES256 signatures).
"""
import base64, concurrent.futures, hashlib, html.parser, http.cookiejar, json, os, sys, time
import urllib.parse, urllib.request, uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

UMA = "urn:ietf:params:oauth:grant-type:uma-ticket"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key(d, name):
    with open(os.path.join(d, f"{name}.pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def public_jwk(k):
    n = k.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
            "y": b64u(n.y.to_bytes(32, "big"))}


def es256(k, header, claims):
    signing_input = b64u(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64u(json.dumps(claims, separators=(",", ":")).encode())
    r, s = decode_dss_signature(k.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def assertion(k, client_id, audience):
    now = int(time.time())
    return es256(k, {"alg": "ES256", "kid": "k1"}, {"iss": client_id, "sub": client_id,
        "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())})


def proof(k, url):
    return es256(k, {"alg": "ES256", "typ": "dpop+jwt", "jwk": public_jwk(k)},
                 {"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": int(time.time())})


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Hidden(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a.get("name")] = a.get("value", "")


def hidden(page):
    p = Hidden()
    p.feed(page)
    return p.fields


def browser():
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)


def call(opener, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def location(headers):
    return headers.get("Location") or headers.get("location") or ""


def form(data):
    return urllib.parse.urlencode(data).encode()


def keys(d):
    os.makedirs(d, exist_ok=True)
    for name in ["rs", "app", "dpop"]:
        k = ec.generate_private_key(ec.SECP256R1())
        with open(os.path.join(d, f"{name}.pem"), "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
        if name != "dpop":
            jwk = dict(public_jwk(k), kid="k1", alg="ES256", use="sig")
            with open(os.path.join(d, f"{name}.jwks.json"), "w") as f:
                json.dump({"keys": [jwk]}, f)


def setup(d, base, rs_id, app_id, owner, party, password, n):
    token_url = f"{base}/token"
    rs_key, app_key, dpop_key = key(d, "rs"), key(d, "app"), key(d, "dpop")

    # The resource server's PAT: the owner consents in a scripted browser.
    b = browser()
    verifier = b64u(os.urandom(32))
    challenge = b64u(hashlib.sha256(verifier.encode()).digest())
    q = urllib.parse.urlencode({"response_type": "code", "client_id": rs_id,
        "redirect_uri": "https://rs.example/cb", "scope": "uma_protection", "state": "bench",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    _, _, page = call(b, f"{base}/authorize?{q}")
    status, headers, page = call(b, f"{base}/authorize/login",
                                 form(dict(hidden(page), username=owner, password=password)))
    if status == 200:
        status, headers, page = call(b, f"{base}/authorize/consent",
                                     form(dict(hidden(page), decision="allow")))
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location(headers)).query).get("code", [""])[0]
    status, _, body = call(b, token_url, form({"grant_type": "authorization_code", "code": code,
        "redirect_uri": "https://rs.example/cb", "code_verifier": verifier,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(rs_key, rs_id, token_url)}))
    if status != 200:
        sys.exit(f"PAT: token endpoint answered {status}: {body}")
    pat = json.loads(body)["access_token"]
    auth = {"Authorization": f"Bearer {pat}", "Content-Type": "application/json"}
    status, _, body = call(b, f"{base}/uma/resources", json.dumps({
        "resource_scopes": ["patient/Observation.read", "patient/Observation.write"],
        "name": "Observations", "type": "Observation"}).encode(), auth)
    if status != 201:
        sys.exit(f"resource registration answered {status}: {body}")
    rid = json.loads(body)["_id"]

    # The owner's N policies: N - 1 strangers (by issuer and subject) and the party (by verified
    # email).
    ob = browser()
    _, _, page = call(ob, f"{base}/account")
    call(ob, f"{base}/account/login",
         form({"csrf": hidden(page).get("csrf", ""), "username": owner, "password": password}))

    def share(whom):
        body = json.dumps({"kind": "share", "resource": {"resource": rid}, "with": whom,
                           "scopes": ["patient/Observation.read"]}).encode()
        s, _, text = call(ob, f"{base}/owner/policies", body, {"Content-Type": "application/json"})
        if s != 201:
            sys.exit(f"policy creation answered {s}: {text}")

    strangers = [{"subject": {"issuer": base, "subject": str(uuid.uuid4())}} for _ in range(n - 1)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(share, strangers + [{"verified_email": f"{party}@example.org"}]))

    def ticket():
        s, _, body = call(b, f"{base}/uma/permission", json.dumps(
            {"resource_id": rid, "resource_scopes": ["patient/Observation.read"]}).encode(), auth)
        if s != 201:
            sys.exit(f"permission endpoint answered {s}: {body}")
        return json.loads(body)["ticket"]

    def grant(fields):
        data = dict(fields, grant_type=UMA, client_assertion_type=JWT_BEARER,
                    client_assertion=assertion(app_key, app_id, token_url))
        s, _, body = call(b, token_url, form(data), {"DPoP": proof(dpop_key, token_url)})
        return s, json.loads(body)

    # No claims yet: need_info; the party signs in at the claims interaction endpoint and lets the
    # app remember who they are; the grant with the new ticket gives a DPoP-bound RPT and a PCT.
    s, answer = grant({"ticket": ticket()})
    if s != 403 or answer.get("error") != "need_info":
        sys.exit(f"first grant: expected need_info, got {s}: {answer}")
    pb = browser()
    q = urllib.parse.urlencode({"client_id": app_id, "ticket": answer["ticket"],
                                "claims_redirect_uri": "https://client.example/claims",
                                "state": "bench"})
    _, _, page = call(pb, f"{base}/uma/claims?{q}")
    s, headers, page = call(pb, f"{base}/uma/claims/login", form(dict(
        hidden(page), username=party, password=password, remember="yes")))
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(location(headers)).query)
    if "ticket" not in back:
        sys.exit(f"claims gathering: {s} {location(headers) or page[:300]}")
    s, answer = grant({"ticket": back["ticket"][0]})
    if s != 200 or answer.get("token_type") != "DPoP" or "pct" not in answer:
        sys.exit(f"grant after gathering: expected a DPoP RPT and a PCT, got {s}: {answer}")
    # The PCT alone now suffices.
    s, answer2 = grant({"ticket": ticket(), "pct": answer["pct"]})
    if s != 200:
        sys.exit(f"grant with the PCT: {s}: {answer2}")
    return {"pat": pat, "resource_id": rid, "pct": answer["pct"]}


def main():
    mode = sys.argv[1]
    if mode == "keys":
        keys(sys.argv[2])
    elif mode == "setup":
        d, base, rs_id, app_id, owner, party, password, n = sys.argv[2:10]
        print(json.dumps(setup(d, base, rs_id, app_id, owner, party, password, int(n))))
    elif mode == "requests":
        d, base, app_id, tdir = sys.argv[2:6]
        app_key, dpop_key = key(d, "app"), key(d, "dpop")
        token_url = f"{base}/token"
        for name in sorted(os.listdir(tdir)):
            if not name.startswith("tickets."):
                continue
            with open(os.path.join(tdir, name)) as f, \
                    open(os.path.join(tdir, name.replace("tickets.", "requests.")), "w") as out:
                for count, line in enumerate(f):
                    t = line.strip()
                    # More than one thread sends in a 10 s rep on this machine.
                    if t and count < 15000:
                        out.write(f"{t}\t{assertion(app_key, app_id, token_url)}\t"
                                  f"{proof(dpop_key, token_url)}\n")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
