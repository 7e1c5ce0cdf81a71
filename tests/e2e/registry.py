"""Registry fixtures for the image tests: Debian's docker-registry (the CNCF
distribution registry 2.8) on 127.0.0.1, with TLS from a test CA, htpasswd Basic auth,
or Bearer tokens from a small token server in this process (JWTs signed RS256 with a
test key whose certificate the registry trusts). Also a socket that accepts and never
answers. Everything started here is stopped by PID; files live in the given tmp dir.

    with Registry(tmp, auth="basic") as reg:   # or auth=None / "token"
        reg.host         # "127.0.0.1:PORT"
        reg.ca           # the CA certificate (PEM) to trust
        reg.upload_count("repo")  # blob uploads completed, from the access log
"""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER, PASSWORD = "alice", "s3cret-pass"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def make_ca(d):
    """A CA and a server certificate for 127.0.0.1 signed by it; returns (ca, crt, key)."""
    os.makedirs(d, exist_ok=True)
    ca, cakey = f"{d}/ca.crt", f"{d}/ca.key"
    crt, key, csr, ext = f"{d}/server.crt", f"{d}/server.key", f"{d}/server.csr", f"{d}/ext.cnf"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cakey, "-out", ca,
         "-days", "2", "-subj", "/CN=seed test CA")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer:
    """GET /token?service=S&scope=repository:R:pull,push...: a JWT granting the scopes
    asked for, to USER with PASSWORD (anonymous and wrong credentials: 401)."""

    def __init__(self, d, service, issuer):
        self.service, self.issuer = service, issuer
        self.key, self.cert = f"{d}/token.key", f"{d}/token.crt"
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
             "-out", self.cert, "-days", "2", "-subj", "/CN=seed test token issuer")
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests = []  # (user or None, [scopes])
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlparse
                u = urlparse(self.path)
                q = parse_qs(u.query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if (user, pw) != (USER, PASSWORD):
                        user = "!bad"
                scopes = q.get("scope", [])
                srv.requests.append((user, scopes))
                if user in (None, "!bad") or q.get("service") != [srv.service]:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": srv.sign(user, scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, user, scopes):
        access = []
        for sc in scopes:
            for item in sc.split(" "):
                parts = item.split(":")
                if len(parts) >= 3:
                    access.append({"type": parts[0], "name": ":".join(parts[1:-1]),
                                   "actions": parts[-1].split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": user, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = (_b64url(json.dumps(header).encode()) + "." +
                   _b64url(json.dumps(claims).encode())).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing,
                             check=True, capture_output=True).stdout
        return signing.decode() + "." + _b64url(sig)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Registry:
    def __init__(self, tmp, auth=None, tls=True):
        self.dir = os.path.join(str(tmp), f"registry-{auth or 'anon'}-{os.urandom(3).hex()}")
        os.makedirs(self.dir)
        self.auth, self.tls = auth, tls
        self.proc = None
        self.token = None
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.ca = None
        self.log = os.path.join(self.dir, "registry.log")

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        cfg = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: false",
               "storage:", "  filesystem:", f"    rootdirectory: {self.dir}/data",
               "  delete:", "    enabled: true", "http:", f"  addr: 127.0.0.1:{self.port}",
               f"  secret: {os.urandom(8).hex()}"]
        if self.tls:
            self.ca, crt, key = make_ca(os.path.join(self.dir, "tls"))
            cfg += ["  tls:", f"    certificate: {crt}", f"    key: {key}"]
        if self.auth == "basic":
            pw = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                capture_output=True, text=True).stdout
            with open(f"{self.dir}/htpasswd", "w") as f:
                f.write(pw)
            cfg += ["auth:", "  htpasswd:", "    realm: seed-test", f"    path: {self.dir}/htpasswd"]
        elif self.auth == "token":
            self.token = TokenServer(self.dir, "seed-test-registry", "seed-test-issuer")
            cfg += ["auth:", "  token:", f"    realm: {self.token.realm}",
                    "    service: seed-test-registry", "    issuer: seed-test-issuer",
                    f"    rootcertbundle: {self.token.cert}"]
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w") as f:
            f.write("\n".join(cfg) + "\n")
        logf = open(self.log, "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", path], stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited: " + open(self.log).read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not listen: " + open(self.log).read()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.token:
            self.token.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        """The registry's log once it stopped growing: it writes an access line after the
        answer went out, so a client may be done before the line is there."""
        last = None
        for _ in range(40):
            with open(self.log, errors="replace") as f:
                text = f.read()
            if text == last:
                return text
            last = text
            time.sleep(0.05)
        return last

    def upload_count(self, repo=None):
        """Blob uploads completed (PUT .../blobs/uploads/...digest=... answered 201)."""
        r = re.escape(repo) if repo else r"[^ ]+"
        pat = re.compile(r'"PUT /v2/' + r + r'/blobs/uploads/[^ "]*digest=[^ "]* HTTP/[0-9.]+" 201')
        return len(pat.findall(self.log_text()))

    def mount_count(self, repo=None):
        r = re.escape(repo) if repo else r"[^ ]+"
        pat = re.compile(r'"POST /v2/' + r + r'/blobs/uploads/\?mount=[^ "]* HTTP/[0-9.]+" 201')
        return len(pat.findall(self.log_text()))

    def skopeo_args(self):
        a = []
        if self.ca:
            certdir = os.path.join(self.dir, "skopeo-certs")
            os.makedirs(certdir, exist_ok=True)
            shutil.copy(self.ca, os.path.join(certdir, "ca.crt"))
            a.append(f"--cert-dir={certdir}")
        else:
            a.append("--tls-verify=false")
        if self.auth:
            a.append(f"--creds={USER}:{PASSWORD}")
        return a


    def skopeo_src_args(self):
        """skopeo_args() for the source of a skopeo copy."""
        return [a.replace("--cert-dir", "--src-cert-dir").replace("--creds", "--src-creds")
                .replace("--tls-verify", "--src-tls-verify") for a in self.skopeo_args()]


class HangingServer:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                return

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()
