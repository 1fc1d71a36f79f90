"""A relying party written on Python's authlib, against Countersign.

Run by crates/server/tests/oidc/authlib.rs, which holds the officer's
device. The script plays both the application (authlib: discovery, the
code flow with PKCE, the token request, ID-token validation of signature,
iss, aud, nonce and exp, userinfo, logout) and the officer's browser
(requests: the sign-in pages' forms). When the push page shows a number it
prints `PUSH <challenge id> <number>` and waits for a line on standard
input (the device has answered). It ends with `RESULT <json>`.

Usage: authlib_rp.py ISSUER CA_FILE CLIENT_ID CLIENT_SECRET REDIRECT_URI
       POST_LOGOUT_URI USERNAME TEMPORARY_PASSWORD NEW_PASSWORD
"""

import base64
import html
import json
import re
import secrets
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge

(ISSUER, CA, CLIENT_ID, SECRET, REDIRECT, POST_LOGOUT, USER, TEMP, NEW) = sys.argv[1:10]


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def hidden_fields(page):
    """The page's hidden inputs (the CSRF token, where the sign-in goes)."""
    fields = {}
    for name, value in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page):
        fields.setdefault(name, html.unescape(value))
    return fields


class Browser:
    """The officer's browser: cookies, forms, redirects within the server."""

    def __init__(self):
        self.http = requests.Session()
        # The environment's CA bundle would override `verify` (requests).
        self.http.trust_env = False
        self.http.verify = CA
        self.page = ""
        self.url = ""

    def go(self, response):
        # Follow redirects while they stay on the server; stop at the first
        # that leaves it (to the application) and return its address.
        while response.is_redirect:
            target = urljoin(response.url, response.headers["location"])
            if not target.startswith(ISSUER):
                return target
            response = self.http.get(target, allow_redirects=False)
        self.page, self.url = response.text, response.url
        return None

    def get(self, url):
        return self.go(self.http.get(url, allow_redirects=False))

    def post(self, path, **fields):
        data = hidden_fields(self.page)
        data.update(fields)
        return self.go(self.http.post(ISSUER + path, data=data, allow_redirects=False))

    def at(self, path):
        if urlparse(self.url).path != path:
            fail(f"expected {path}, at {self.url}: {self.page[:300]}")


discovery = requests.get(f"{ISSUER}/.well-known/openid-configuration", verify=CA).json()
if discovery["issuer"] != ISSUER:
    fail("discovery names another issuer")
jwks = JsonWebKey.import_key_set(requests.get(discovery["jwks_uri"], verify=CA).json())

app = OAuth2Session(
    CLIENT_ID,
    SECRET,
    scope="openid profile email",
    redirect_uri=REDIRECT,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)
app.trust_env = False
app.verify = CA
verifier = secrets.token_urlsafe(48)
nonce = secrets.token_urlsafe(16)
auth_url, state = app.create_authorization_url(
    discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
)
if create_s256_code_challenge(verifier) not in auth_url:
    fail("authlib sent no S256 challenge")

# The officer's browser goes through the sign-in pages.
b = Browser()
b.get(auth_url)
if "to continue to <strong>" not in b.page:
    fail("the sign-in page does not name the application")
b.post("/signin", email=USER)
b.at("/signin/password")
b.post("/signin/password", password=TEMP)
b.at("/signin/update-password")
b.post("/signin/update-password", current=TEMP, new=NEW, confirm=NEW)
b.at("/signin/mfa")
challenge = re.search(r'data-id="([^"]+)"', b.page).group(1)
number = re.search(r'aria-live="polite">\s*(\d+)\s*<', b.page).group(1)
print(f"PUSH {challenge} {number}", flush=True)
sys.stdin.readline()
b.get(f"{ISSUER}/signin/mfa/done")
b.at("/signin/stay")
back = b.post("/signin/stay", stay="no")
if not back or not back.startswith(REDIRECT):
    fail(f"not sent back to the application: {back or b.url}")
answer = parse_qs(urlparse(back).query)
if answer.get("iss") != [ISSUER]:
    fail("the authorization response lacks this issuer (RFC 9207)")

# The application: the code for tokens (authlib checks the state), the ID
# token checked (signature against the JWKS, iss, aud, nonce, exp).
tokens = app.fetch_token(
    discovery["token_endpoint"], authorization_response=back, state=state, code_verifier=verifier
)
claims = jwt.decode(
    tokens["id_token"],
    jwks,
    claims_options={
        "iss": {"essential": True, "value": ISSUER},
        "aud": {"essential": True, "value": CLIENT_ID},
        "nonce": {"essential": True, "value": nonce},
        "exp": {"essential": True},
    },
)
claims.validate()
header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
userinfo = app.get(discovery["userinfo_endpoint"]).json()
if userinfo["sub"] != claims["sub"]:
    fail("userinfo speaks of another officer")

# The application logs out: through the sign-out pages, back to it.
logout_state = secrets.token_urlsafe(8)
b.get(
    discovery["end_session_endpoint"]
    + "?"
    + requests.compat.urlencode(
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": POST_LOGOUT,
            "state": logout_state,
        }
    )
)
b.at("/signout")
b.post("/signout")
link = re.search(r'<a href="([^"]+)">Continue', b.page)
b.get(urljoin(ISSUER, html.unescape(link.group(1))))
way_back = re.search(r'<a href="([^"]+)">Click here to log in to the previous application', b.page)
if not way_back:
    fail(f"no way back to the application: {b.page[:400]}")
after = requests.get(discovery["userinfo_endpoint"], verify=CA,
                     headers={"authorization": f"Bearer {tokens['access_token']}"})

print(
    "RESULT "
    + json.dumps(
        {
            "alg": header["alg"],
            "claims": dict(claims),
            "userinfo": userinfo,
            "way_back": html.unescape(way_back.group(1)),
            "userinfo_after_logout": after.status_code,
        }
    ),
    flush=True,
)
