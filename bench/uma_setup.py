#!/usr/bin/env python3
"""Benchmark setup for the UMA protection API: an owner consents in a scripted browser (the real
login and consent forms, PKCE S256), the resource server's code becomes a PAT, and one resource is
registered. Prints {"pat": ..., "resource_id": ...} as JSON.

usage: uma_setup.py BASE_URL CLIENT_ID CLIENT_SECRET USERNAME PASSWORD REDIRECT_URI
"""
import base64, hashlib, html.parser, http.cookiejar, json, os, sys, urllib.parse, urllib.request

base, client_id, secret, username, password, redirect_uri = sys.argv[1:7]


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


jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)


def call(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def hidden(page):
    p = Hidden()
    p.feed(page)
    return p.fields


verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
q = urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
    "scope": "uma_protection", "state": "bench", "code_challenge": challenge,
    "code_challenge_method": "S256",
})
_, _, page = call(f"{base}/authorize?{q}")
form = hidden(page)
form.update({"username": username, "password": password})
status, headers, page = call(f"{base}/authorize/login", urllib.parse.urlencode(form).encode())
if status == 200:  # the consent page
    form = hidden(page)
    form["decision"] = "allow"
    status, headers, page = call(f"{base}/authorize/consent", urllib.parse.urlencode(form).encode())
location = headers.get("Location") or headers.get("location") or ""
code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code", [None])[0]
if not code:
    sys.exit(f"no code (status {status}): {location or page[:300]}")
basic = base64.b64encode(f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()).decode()
status, _, body = call(f"{base}/token", urllib.parse.urlencode({
    "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
    "code_verifier": verifier,
}).encode(), {"Authorization": f"Basic {basic}"})
if status != 200:
    sys.exit(f"token endpoint answered {status}: {body}")
pat = json.loads(body)["access_token"]
status, _, body = call(f"{base}/uma/resources", json.dumps({
    "resource_scopes": ["patient/Observation.read", "patient/Observation.write"],
    "name": "Observations", "type": "Observation",
}).encode(), {"Authorization": f"Bearer {pat}", "Content-Type": "application/json"})
if status != 201:
    sys.exit(f"resource registration answered {status}: {body}")
print(json.dumps({"pat": pat, "resource_id": json.loads(body)["_id"]}))
