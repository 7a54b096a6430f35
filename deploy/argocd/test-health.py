#!/usr/bin/env python3
"""Runs health.lua under a real Lua 5.4 interpreter on the sample SealedSecrets of
health-cases.json, the way Argo CD does (the object as global `obj`, the chunk returns a table
with `status` and `message`). JSON is turned into Lua table literals here because stock Lua has
no JSON decoder; JSON null becomes nil, as in Argo CD. Exit 1 on any mismatch."""
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
lua = sys.argv[1] if len(sys.argv) > 1 else "lua5.4"


def to_lua(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string literal is a valid Lua string literal for ASCII
    if isinstance(v, list):
        return "{" + ", ".join(to_lua(x) for x in v) + "}"
    return "{" + ", ".join("[%s] = %s" % (json.dumps(k), to_lua(x)) for k, x in v.items()) + "}"


cases = json.load(open(os.path.join(here, "health-cases.json")))
prog = ["local chunk = assert(loadfile(%s))" % json.dumps(os.path.join(here, "health.lua"))]
for c in cases:
    prog.append("obj = %s" % to_lua(c["obj"]))
    prog.append('do local hs = chunk(); print(tostring(hs.status) .. "\\t" .. tostring(hs.message)) end')
out = subprocess.run([lua, "-"], input="\n".join(prog), capture_output=True, text=True)
if out.returncode != 0:
    sys.exit("lua failed: " + out.stderr)
lines = out.stdout.splitlines()
failed = 0
for c, line in zip(cases, lines):
    status, message = line.split("\t", 1)
    ok = status == c["status"] and ("message" not in c or message == c["message"])
    print("%s %s -> %s (%s)" % ("ok  " if ok else "FAIL", c["name"], status, message))
    failed += not ok
if len(lines) != len(cases):
    sys.exit("expected %d results, got %d" % (len(cases), len(lines)))
sys.exit(1 if failed else 0)
