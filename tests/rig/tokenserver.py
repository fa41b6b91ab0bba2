#!/usr/bin/env python3
"""Minimal registry v2 *token* server (stdlib + openssl CLI) for Debian's docker-registry on loopback.

    python3 tokenserver.py --key token.key --cert token.crt --issuer test-issuer \\
        --listen 127.0.0.1:0 --user testuser:testpass --private-prefix private/ --port-file F

GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]
  - valid Basic creds       -> token granting the requested actions
  - no Authorization header -> token granting only "pull" (anonymous pull, like Docker Hub), and nothing
                               for repositories under --private-prefix
  - wrong Basic creds       -> 401
Every request is logged to stdout as one JSON line (path, query, authenticated) so tests can check scopes.
JWT: RS256, header carries x5c=[cert], which the registry checks against auth.token.rootcertbundle.
"""

import argparse
import base64
import json
import os
import subprocess
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--issuer", default="test-issuer")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--user", default="testuser:testpass")
    ap.add_argument("--ttl", type=int, default=300)
    ap.add_argument("--private-prefix", default="")
    ap.add_argument("--port-file", default="")
    a = ap.parse_args()
    der = subprocess.run(
        ["openssl", "x509", "-in", a.cert, "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    jwt_header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    header = b64u(json.dumps(jwt_header).encode())
    good = "Basic " + base64.b64encode(a.user.encode()).decode()
    account = a.user.split(":")[0]

    def sign(msg: bytes) -> bytes:
        return subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", a.key],
            input=msg,
            check=True,
            capture_output=True,
        ).stdout

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            u = urlparse(self.path)
            q = parse_qs(u.query)
            auth = self.headers.get("Authorization")
            print(
                json.dumps({"path": u.path, "query": q, "authenticated": auth == good}),
                flush=True,
            )
            if u.path != "/token":
                self.send_error(404)
                return
            if auth is not None and auth != good:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="token"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            access = []
            for sc in q.get("scope", []):
                for one in sc.split(" "):
                    parts = one.split(":")
                    if len(parts) < 3:
                        continue
                    typ, name = parts[0], ":".join(parts[1:-1])
                    actions = parts[-1].split(",")
                    if auth is None:
                        private = a.private_prefix and name.startswith(a.private_prefix)
                        actions = [] if private else [x for x in actions if x == "pull"]
                    access.append({"type": typ, "name": name, "actions": actions})
            now = int(time.time())
            claims = {
                "iss": a.issuer,
                "sub": account if auth else "",
                "aud": q.get("service", [""])[0],
                "exp": now + a.ttl,
                "nbf": now - 10,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "access": access,
            }
            msg = (header + "." + b64u(json.dumps(claims).encode())).encode()
            tok = msg.decode() + "." + b64u(sign(msg))
            body = json.dumps(
                {
                    "token": tok,
                    "access_token": tok,
                    "expires_in": a.ttl,
                    "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass

    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), H)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(srv.server_address[1]))
        os.replace(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
