#!/usr/bin/env python3
"""Benchmark setup for the UMA grant: the resource server's PAT and one resource (uma_setup.py),
the requesting party's ID token (the code flow of the client app, through the real login and
consent forms), and N owner policies created through the owner API — one resource shared with N
people, the requesting party among them. Prints {"pat", "resource_id", "id_token"} as JSON.

usage: grant_setup.py BASE RS_ID RS_SECRET APP_ID APP_SECRET OWNER PARTY PASSWORD N
"""
import base64, concurrent.futures, hashlib, json, os, subprocess, sys, urllib.parse, uuid
import http.cookiejar, urllib.request

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

base, rs_id, rs_secret, app_id, app_secret, owner, party, password, n = sys.argv[1:10]
n = int(n)

setup = json.loads(subprocess.check_output([
    sys.executable, os.path.join(here, "uma_setup.py"), base, rs_id, rs_secret, owner, password,
    "https://rs.example/cb"]))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def browser():
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)


def call(opener, url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener.open(req) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def hidden(page, name):
    import html, re
    m = re.search(r'name="%s" value="([^"]*)"' % name, page)
    return html.unescape(m.group(1)) if m else ""


# The requesting party's ID token, for the client app.
b = browser()
verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
q = urllib.parse.urlencode({"response_type": "code", "client_id": app_id,
    "redirect_uri": "https://client.example/cb", "scope": "openid", "state": "s",
    "code_challenge": challenge, "code_challenge_method": "S256"})
_, _, page = call(b, f"{base}/authorize?{q}")
form = {"csrf": hidden(page, "csrf"), "request": hidden(page, "request"),
        "username": party, "password": password}
status, headers, page = call(b, f"{base}/authorize/login", urllib.parse.urlencode(form).encode())
if status == 200:
    form = {"csrf": hidden(page, "csrf"), "request": hidden(page, "request"), "decision": "allow"}
    status, headers, page = call(b, f"{base}/authorize/consent", urllib.parse.urlencode(form).encode())
loc = headers.get("Location") or headers.get("location") or ""
code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["code"][0]
basic = base64.b64encode(f"{urllib.parse.quote(app_id)}:{urllib.parse.quote(app_secret)}".encode()).decode()
_, _, body = call(b, f"{base}/token", urllib.parse.urlencode({"grant_type": "authorization_code",
    "code": code, "redirect_uri": "https://client.example/cb", "code_verifier": verifier}).encode(),
    {"Authorization": f"Basic {basic}"})
id_token = json.loads(body)["id_token"]
sub = json.loads(base64.urlsafe_b64decode(id_token.split(".")[1] + "=="))["sub"]

# The owner's session and N policies: N - 1 strangers and the requesting party.
ob = browser()
_, _, page = call(ob, f"{base}/account")
call(ob, f"{base}/account/login", urllib.parse.urlencode({"csrf": hidden(page, "csrf"),
    "username": owner, "password": password}).encode())


def share(subject):
    body = json.dumps({"kind": "share", "resource": {"resource": setup["resource_id"]},
        "with": {"subject": {"issuer": base, "subject": subject}},
        "scopes": ["patient/Observation.read"]}).encode()
    s, _, text = call(ob, f"{base}/owner/policies", body, {"Content-Type": "application/json"})
    if s != 201:
        raise SystemExit(f"policy creation answered {s}: {text}")


subjects = [str(uuid.uuid4()) for _ in range(n - 1)] + [sub]
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(share, subjects))
print(json.dumps({"pat": setup["pat"], "resource_id": setup["resource_id"], "id_token": id_token}))
