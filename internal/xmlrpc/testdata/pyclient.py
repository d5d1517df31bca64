#!/usr/bin/env python3
"""Admin-style checks of backupsync's XML-RPC server with Python's own client.

Usage: pyclient.py BASE_URL      (http://127.0.0.1:PORT or https://127.0.0.1:PORT)

The server is the one python_test.go starts: its methods (echo, types,
nested, zope, fault42, fail, panic, callPlugin, whoami) are served at "/"
and, behind Basic auth admin:s3cret, at "/cluster1/" as EXAoperation did.
Prints "ok: N checks" and exits 0 when every check passed; any failure is a
traceback and exit status 1.
"""
import datetime
import math
import os
import ssl
import sys
import urllib.error
import urllib.request
import xmlrpc.client

BASE = sys.argv[1].rstrip("/")
TLS = BASE.startswith("https://")
CTX = ssl._create_unverified_context() if TLS else None
MAX_BODY = 1 << 20
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def eq(got, want, what):
    check(got == want and type(got) is type(want), f"{what}: got {got!r}, want {want!r}")


def proxy(path="/", userinfo="", **kw):
    url = BASE.replace("://", "://" + userinfo + "@", 1) if userinfo else BASE
    kw.setdefault("allow_none", True)
    return xmlrpc.client.ServerProxy(url + path, context=CTX, **kw)


def fault(call, code, string, what):
    try:
        got = call()
    except xmlrpc.client.Fault as f:
        eq(f.faultCode, code, what + " faultCode")
        eq(f.faultString, string, what + " faultString")
        return
    raise AssertionError(f"{what}: no Fault, got {got!r}")


s = proxy()

# Every type Python sends, echoed back: the server decodes and re-encodes it.
when = datetime.datetime(2026, 11, 25, 12, 0, 0)
blob = bytes(range(256)) * 4  # base64 with Python's line breaks
args = [
    0, 1, -(2**31), 2**31 - 1, True, False,
    "str", "", "<&>]]> \"'", "äöü € 😀 \u2028", "tab\tnl\n  trailing  ",
    1.5, -0.0, 1e100, 5e-324,
    None,
    xmlrpc.client.Binary(blob), b"\x00raw\xff", bytearray(b"ba"),
    when, xmlrpc.client.DateTime(when),
    [], {}, [1, [2, [3, None]]], {"a": {"b": [None, {"c": "d"}]}, "": 0},
    list(range(1000)),
]
got = s.echo(*args)
eq(type(got), list, "echo result type")
eq(len(got), len(args), "echo length")
for i, (g, a) in enumerate(zip(got, args)):
    if isinstance(a, (bytes, bytearray, xmlrpc.client.Binary)):
        want = a.data if isinstance(a, xmlrpc.client.Binary) else bytes(a)
        check(isinstance(g, xmlrpc.client.Binary) and g.data == want, f"echo arg {i}: {g!r}")
    elif isinstance(a, (datetime.datetime, xmlrpc.client.DateTime)):
        check(isinstance(g, xmlrpc.client.DateTime) and g.value == "20261125T12:00:00", f"echo arg {i}: {g!r}")
    else:
        eq(g, a, f"echo arg {i}")
check(math.copysign(1, got[12]) == -1, "sign of -0.0 kept")

# What the Go handler received: the documented Go types.
want_types = (["int64"] * 4 + ["bool"] * 2 + ["string"] * 5 + ["float64"] * 4 + ["<nil>"]
              + ["[]uint8"] * 3 + ["time.Time"] * 2
              + ["[]interface {}", "map[string]interface {}", "[]interface {}",
                 "map[string]interface {}", "[]interface {}"])
eq(s.types(*args), want_types, "Go types of the params")
eq(s.types(), [], "no params")

# Builtin types: bytes and datetime come back as bytes and datetime.
eq(proxy(use_builtin_types=True).echo(b"x\x00", when, None), [b"x\x00", when, None], "echo with use_builtin_types")

# A large base64 upload (UPLOAD_CONFIG style) just under the body limit.
big = os.urandom(600_000)
eq(proxy(use_builtin_types=True).echo(xmlrpc.client.Binary(big))[0], big, "600 kB base64 round trip")

# Results of every type, nested, as Go returns them.
deep = "bottom"
for i in range(10):
    deep = [deep, {"level": i}]
want = {
    "nodes": ["n0011", "n0012", "n0013"],
    "plugin": [0, "activated"],
    "big": 2**40,
    "neg": -7,
    "yes": True,
    "no": False,
    "none": None,
    "pi": 3.25,
    "special": "<&>]]> \"' \r\n\t é € 😀",
    "ctrl": "a\ufffdb\ufffdc",
    "empty": "",
    "list": [],
    "dict": {},
    "deep": deep,
}
n = s.nested()
eq(sorted(n), sorted(list(want) + ["bytes", "when"]), "nested keys")
for k, v in want.items():
    eq(n[k], v, "nested " + k)
check(isinstance(n["bytes"], xmlrpc.client.Binary) and n["bytes"].data == b"\x00\x01\x02\xfe\xff", "nested bytes")
check(isinstance(n["when"], xmlrpc.client.DateTime) and n["when"].value == "20261125T12:00:00", "nested when")
nb = proxy(use_builtin_types=True).nested()
eq(nb["bytes"], b"\x00\x01\x02\xfe\xff", "nested bytes (builtin)")
eq(nb["when"], when, "nested when (builtin)")
# A client without allow_none still reads <nil/>.
eq(proxy(allow_none=False).nested()["none"], None, "nil without allow_none")

# Faults raise xmlrpc.client.Fault with the server's code and string.
fault(s.zope, -1, "Unexpected Zope exception: NotFound: n0099", "Zope-style fault")
fault(s.fault42, 42, 'custom <fault> & "stuff"', "typed fault")
fault(s.fail, -32500, "disk full", "plain error")
fault(s.panic, -32603, "panic: internal error", "panic")
fault(s.nosuch, -32601, 'unknown method "nosuch"', "unknown method")
fault(lambda: s.callPlugin("Administration.BackupSync-1.0.1", "n0011", 5), -32602,
      "argument 3 is int, want string", "bad argument")
fault(lambda: proxy(allow_none=True).callPlugin(None), -32602, "argument 1 is nil, want string", "None argument")

# The EXAoperation way: credentials in the URL, /cluster1/, list comprehensions.
plugin = "Administration.BackupSync-1.0.1"
srv = proxy("/cluster1/", "admin:s3cret", allow_none=False)
eq(srv.whoami(), "admin", "Basic auth user in the request context")
eq(srv.callPlugin(plugin, "n0011", "STATUS", ""), [0, "activated"], "callPlugin STATUS")
eq([[node] + srv.callPlugin(plugin, node, "status") for node in ["n0011", "n0012"]],
   [["n0011", 0, "activated"], ["n0012", 0, "activated"]], "per-node list comprehension")
eq(srv.callPlugin(plugin, "n0011", "BOGUS", ""), [256, "unknown verb BOGUS"], "failed verb as [256, reason]")
try:
    proxy("/cluster1/", "admin:wrong").whoami()
    raise AssertionError("wrong password accepted")
except xmlrpc.client.ProtocolError as e:
    eq(e.errcode, 401, "wrong password is HTTP 401")

# Raw HTTP, as urllib sees it.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                     urllib.request.HTTPSHandler(context=CTX) if TLS else urllib.request.HTTPHandler())


def http_post(body, method="POST"):
    req = urllib.request.Request(BASE + "/", data=body, method=method, headers={"Content-Type": "text/xml"})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


status, ctype, _ = http_post(None, "GET")
eq(status, 405, "GET")
status, ctype, body = http_post(b"<methodCall><methodName>echo</methodName><params>")
eq((status, ctype), (200, "text/xml"), "malformed call answered 200 text/xml")
try:
    xmlrpc.client.loads(body)
    raise AssertionError("malformed call answered without a fault")
except xmlrpc.client.Fault as f:
    eq(f.faultCode, -32700, "malformed call faultCode")
    check(f.faultString.startswith("xmlrpc: line 1: "), f"malformed call faultString {f.faultString!r}")
status, _, _ = http_post(b"<" * (MAX_BODY + 1))
eq(status, 413, "body over 1 MiB")

print(f"ok: {checks} checks over {'https' if TLS else 'http'}")
