"""
A small S3-compatible object server for the backup tests, which checks
AWS Signature Version 4 on every request, the way S3 does.

Path-style URLs only (/BUCKET/KEY). Supports PUT, HEAD, GET and DELETE of
objects; objects are files under root/BUCKET/KEY. Every request must carry

  Authorization: AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/aws4_request,
                 SignedHeaders=h1;h2;..., Signature=HEX
  x-amz-date:    YYYYMMDDTHHMMSSZ (signed)
  x-amz-content-sha256: the payload hash used in the canonical request

A request without x-amz-content-sha256 gets 400 (as S3 answers), an unknown
access key 403 InvalidAccessKeyId, a wrong signature 403
SignatureDoesNotMatch. When x-amz-content-sha256 is a hex SHA-256 (not
UNSIGNED-PAYLOAD) the body must hash to it (400 XAmzContentSHA256Mismatch
otherwise), so a signed upload is also an integrity-checked one.

Usage in a test:

    srv = S3Server(root, "AKID", "SECRET").start()
    ... srv.url, srv.port, srv.object_bytes("bucket", "key"), srv.requests
    srv.stop()      # "S3 down": the port refuses connections
    srv.start()     # up again on the same port

sign_headers() signs a request in Python (for the tests of the server
itself).
"""
import datetime
import hashlib
import hmac
import http.server
import os
import re
import socket
import threading
import time
import urllib.parse
from pathlib import Path

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = 15 * 60          # seconds, as S3
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_AUTH = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*"
                   r"SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})$")


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region, service="s3"):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _uri_encode(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(raw_query):
    """The sorted canonical query string from the query as sent."""
    if not raw_query:
        return ""
    pairs = []
    for part in raw_query.split("&"):
        if part == "":
            continue
        k, _, v = part.partition("=")
        k = _uri_encode(urllib.parse.unquote(k))
        v = _uri_encode(urllib.parse.unquote(v))
        pairs.append((k, v))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _trim(v):
    return " ".join(v.strip().split())


def canonical_request(method, raw_path, raw_query, headers, signed,
                      payload_hash):
    """headers: {lower-case name: [values]}; signed: sorted names."""
    ch = "".join(f"{h}:{','.join(_trim(v) for v in headers.get(h, []))}\n"
                 for h in signed)
    return "\n".join([method, raw_path, canonical_query(raw_query), ch,
                      ";".join(signed), payload_hash])


def string_to_sign(amz_date, scope, creq):
    return "\n".join([ALGORITHM, amz_date, scope,
                      hashlib.sha256(creq.encode()).hexdigest()])


def sign_headers(method, url, access_key, secret_key, region="us-east-1",
                 body=b"", payload_hash=None, extra=None, now=None):
    """Headers (dict) that sign a request to url with SigV4, as an SDK
    would: host, x-amz-date, x-amz-content-sha256 and extra, all signed."""
    u = urllib.parse.urlsplit(url)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    hdrs = {"host": u.netloc, "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_hash}
    for k, v in (extra or {}).items():
        hdrs[k.lower()] = v
    signed = sorted(hdrs)
    creq = canonical_request(method, u.path or "/", u.query,
                             {k: [v] for k, v in hdrs.items()}, signed,
                             payload_hash)
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    sig = hmac.new(signing_key(secret_key, amz_date[:8], region),
                   string_to_sign(amz_date, scope, creq).encode(),
                   hashlib.sha256).hexdigest()
    out = dict(hdrs)
    out["authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(signed)}, "
                            f"Signature={sig}")
    return out


class AuthError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def verify_request(method, raw_path, raw_query, headers, keys, region,
                   check_time=True, now=None):
    """Checks a request's SigV4 signature. headers: {lower-case name:
    [values]}; keys: {access key: secret}. Returns the payload hash the
    request claims; raises AuthError."""
    def one(name):
        v = headers.get(name)
        return v[0] if v else None

    payload_hash = one("x-amz-content-sha256")
    if payload_hash is None:
        raise AuthError(400, "InvalidRequest", "Missing required header for "
                        "this request: x-amz-content-sha256")
    if payload_hash != "UNSIGNED-PAYLOAD" and \
            not _HEX64.match(payload_hash):
        raise AuthError(400, "InvalidArgument", "x-amz-content-sha256 must "
                        "be UNSIGNED-PAYLOAD or a hex SHA-256")
    auth = one("authorization")
    if auth is None:
        raise AuthError(403, "AccessDenied", "no Authorization header")
    m = _AUTH.match(auth.strip())
    if not m:
        raise AuthError(400, "AuthorizationHeaderMalformed",
                        f"cannot parse Authorization: {auth!r}")
    cred, signed_s, sig = m.groups()
    parts = cred.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise AuthError(400, "AuthorizationHeaderMalformed",
                        f"bad credential scope {cred!r}")
    ak, date, cred_region = parts[0], parts[1], parts[2]
    if ak not in keys:
        raise AuthError(403, "InvalidAccessKeyId", f"unknown access key "
                        f"{ak!r}")
    if cred_region != region:
        raise AuthError(400, "AuthorizationHeaderMalformed", f"the region "
                        f"{cred_region!r} is wrong; expecting {region!r}")
    signed = signed_s.split(";")
    if signed != sorted(signed) or "host" not in signed:
        raise AuthError(403, "AccessDenied", "SignedHeaders must be sorted "
                        "and include host")
    amz_date = one("x-amz-date")
    if amz_date is None or "x-amz-date" not in signed:
        raise AuthError(403, "AccessDenied", "x-amz-date must be present "
                        "and signed")
    if "x-amz-content-sha256" not in signed:
        raise AuthError(403, "AccessDenied", "x-amz-content-sha256 must be "
                        "signed")
    if amz_date[:8] != date:
        raise AuthError(403, "SignatureDoesNotMatch", "credential date and "
                        "x-amz-date differ")
    if check_time:
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise AuthError(403, "AccessDenied", f"bad x-amz-date "
                            f"{amz_date!r}")
        t = t.replace(tzinfo=datetime.timezone.utc)
        now = now or datetime.datetime.now(datetime.timezone.utc)
        if abs((now - t).total_seconds()) > MAX_SKEW:
            raise AuthError(403, "RequestTimeTooSkewed", "clock skew")
    for h in signed:
        if h not in headers:
            raise AuthError(403, "SignatureDoesNotMatch", f"signed header "
                            f"{h!r} is not in the request")
    creq = canonical_request(method, raw_path, raw_query, headers, signed,
                             payload_hash)
    scope = f"{date}/{region}/s3/aws4_request"
    want = hmac.new(signing_key(keys[ak], date, region),
                    string_to_sign(amz_date, scope, creq).encode(),
                    hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        raise AuthError(403, "SignatureDoesNotMatch", "The request signature "
                        "we calculated does not match the signature you "
                        "provided. Check your key and signing method.")
    return payload_hash


class S3Server:
    def __init__(self, root, access_key, secret_key, region="us-east-1",
                 port=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys = {access_key: secret_key}
        self.region = region
        self.port = port or _free_port()
        self.requests = []          # dicts: method, path, status, code
        self.lock = threading.Lock()
        self.server = None
        self.thread = None
        self.conns = set()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def object_path(self, bucket, key):
        p = (self.root / bucket / key).resolve()
        if not str(p).startswith(str(self.root.resolve()) + "/"):
            raise ValueError("key escapes the root")
        return p

    def object_bytes(self, bucket, key):
        p = self.object_path(bucket, key)
        return p.read_bytes() if p.is_file() else None

    def objects(self, bucket):
        base = self.root / bucket
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(base)) for p in base.rglob("*")
                      if p.is_file())

    def log(self, pred=None):
        with self.lock:
            return [r for r in self.requests if pred is None or pred(r)]

    def _record(self, **kw):
        kw["t"] = time.monotonic()
        with self.lock:
            self.requests.append(kw)

    def start(self):
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with srv.lock:
                    srv.conns.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with srv.lock:
                        srv.conns.discard(self.connection)

            def _headers(self):
                h = {}
                for k, v in self.headers.items():
                    h.setdefault(k.lower(), []).append(v)
                return h

            def _read_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding")
                                 or "").lower():
                    out = b""
                    while True:
                        line = self.rfile.readline()
                        n = int(line.split(b";")[0].strip() or b"0", 16)
                        if n == 0:
                            while self.rfile.readline() not in (b"\r\n",
                                                                b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(n)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _reply(self, status, body=b"", ctype="application/xml",
                       length=None, code=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length",
                                 str(len(body) if length is None else length))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status, code, message, parsed):
                srv._record(method=self.command, path=parsed.path,
                            status=status, code=code, message=message)
                body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
                        f"<Code>{code}</Code><Message>{message}</Message>"
                        f"</Error>").encode()
                self._reply(status, body)

            def _handle(self):
                parsed = urllib.parse.urlsplit(self.path)
                body = self._read_body()
                try:
                    payload_hash = verify_request(
                        self.command, parsed.path, parsed.query,
                        self._headers(), srv.keys, srv.region)
                except AuthError as e:
                    return self._error(e.status, e.code, e.message, parsed)
                if payload_hash != "UNSIGNED-PAYLOAD" and \
                        hashlib.sha256(body).hexdigest() != payload_hash:
                    return self._error(400, "XAmzContentSHA256Mismatch",
                                       "The provided 'x-amz-content-sha256'"
                                       " header does not match what was "
                                       "computed.", parsed)
                segs = urllib.parse.unquote(parsed.path).lstrip("/")
                bucket, _, key = segs.partition("/")
                if not bucket or not key:
                    return self._error(400, "InvalidRequest", "path-style "
                                       "/BUCKET/KEY only", parsed)
                try:
                    path = srv.object_path(bucket, key)
                except ValueError:
                    return self._error(400, "InvalidRequest", "bad key",
                                       parsed)
                status = 200
                if self.command == "PUT":
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(path.name + ".upload-tmp")
                    tmp.write_bytes(body)
                    os.replace(tmp, path)
                    etag = hashlib.md5(body).hexdigest()
                    self.send_response(200)
                    self.send_header("ETag", f'"{etag}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.command in ("GET", "HEAD"):
                    if not path.is_file():
                        return self._error(404, "NoSuchKey", "The "
                                           "specified key does not exist.",
                                           parsed)
                    data = path.read_bytes()
                    self._reply(200, data, "application/octet-stream",
                                length=len(data))
                elif self.command == "DELETE":
                    if path.is_file():
                        path.unlink()
                    status = 204
                    self.send_response(204)
                    self.end_headers()
                srv._record(method=self.command, path=parsed.path,
                            status=status, code=None, message=None,
                            size=len(body))

            do_PUT = do_GET = do_HEAD = do_DELETE = _handle

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Down: no listener, and kept-alive connections are cut too."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
