#!/usr/bin/env python3
"""Tests of release/oci_image.py (fast, no container engine; run by deploy/check.sh).

Builds an image from a small root filesystem twice and checks: byte-identical archives
(reproducible), an OCI layout whose every digest and size match its blob, a config that runs the
entrypoint as 1001:1001 with the given ports, a layer holding exactly the root filesystem with
modes kept and root ownership; and that a missing entrypoint is refused.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "oci_image.py")
failures = 0


def check(ok, what, detail=""):
    global failures
    print("%s %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures += 1
        if detail:
            print("     %s" % detail)


def build(rootfs, out, *extra):
    return subprocess.run([sys.executable, TOOL, rootfs, out, "--version", "1.2.3", "--commit", "abc",
                           "--epoch", "1700000000", "--ref-name", "example.com/c:1.2.3",
                           "--port", "8080", *extra], capture_output=True, text=True)


def blob(tar, digest):
    return tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1]).read()


def main():
    with tempfile.TemporaryDirectory() as d:
        rootfs = os.path.join(d, "rootfs")
        os.makedirs(os.path.join(rootfs, "usr/local/bin"))
        os.makedirs(os.path.join(rootfs, "tmp"))
        os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
        entry = os.path.join(rootfs, "usr/local/bin/sealed-secrets-controller")
        with open(entry, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(entry, 0o755)
        if os.geteuid() == 0:
            # Files owned by someone else than root must still be root's in the layer.
            for p in (entry, os.path.join(rootfs, "tmp")):
                os.chown(p, 1001, 1001)
        a, b = os.path.join(d, "a.tar"), os.path.join(d, "b.tar")
        ra = build(rootfs, a)
        time.sleep(1.1)  # a time stamp taken from the clock would now differ
        os.utime(entry)
        rb = build(rootfs, b)
        check(ra.returncode == 0 and rb.returncode == 0, "builds", ra.stderr + rb.stderr)
        if ra.returncode:
            return 1
        check(open(a, "rb").read() == open(b, "rb").read(), "two builds are byte-identical")
        check(oct(os.stat(a).st_mode & 0o777) == "0o644", "the archive is world-readable (0644)")
        with tarfile.open(a) as t:
            layout = json.loads(t.extractfile("oci-layout").read())
            index = json.loads(t.extractfile("index.json").read())
            m = index["manifests"][0]
            raw_manifest = blob(t, m["digest"])
            manifest = json.loads(raw_manifest)
            ok = layout == {"imageLayoutVersion": "1.0.0"} and len(raw_manifest) == m["size"]
            ok = ok and "sha256:" + hashlib.sha256(raw_manifest).hexdigest() == m["digest"]
            check(ok, "index names the manifest by its digest and size")
            check(m["annotations"]["org.opencontainers.image.ref.name"] == "example.com/c:1.2.3"
                  and ra.stdout.strip() == m["digest"], "ref name set, manifest digest printed")
            blobs_ok = True
            for desc in [manifest["config"]] + manifest["layers"]:
                data = blob(t, desc["digest"])
                blobs_ok &= len(data) == desc["size"] and \
                    "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
            check(blobs_ok, "config and layer blobs match their digests and sizes")
            config = json.loads(blob(t, manifest["config"]["digest"]))
            c = config["config"]
            check(c["User"] == "1001:1001" and c["Entrypoint"] == ["/usr/local/bin/sealed-secrets-controller"]
                  and c["ExposedPorts"] == {"8080/tcp": {}} and config["os"] == "linux"
                  and config["architecture"] == "amd64", "config: user 1001, entrypoint, port", c)
            layer = blob(t, manifest["layers"][0]["digest"])
            raw = __import__("gzip").decompress(layer)
            check("sha256:" + hashlib.sha256(raw).hexdigest() == config["rootfs"]["diff_ids"][0],
                  "diff_id is the digest of the uncompressed layer")
            with tarfile.open(fileobj=io.BytesIO(raw)) as lt:
                members = {m.name: m for m in lt.getmembers()}
            check(sorted(members) == ["tmp", "usr", "usr/local", "usr/local/bin",
                                      "usr/local/bin/sealed-secrets-controller"],
                  "the layer holds exactly the root filesystem", sorted(members))
            e, tmp = members["usr/local/bin/sealed-secrets-controller"], members["tmp"]
            check(e.mode == 0o755 and tmp.mode == 0o1777 and all(
                x.uid == 0 and x.gid == 0 and x.mtime == 1700000000 for x in members.values()),
                "modes kept (0755, 1777), root-owned, time stamps at the epoch")
        os.unlink(entry)
        r = build(rootfs, os.path.join(d, "c.tar"))
        check(r.returncode != 0 and "entrypoint" in r.stderr and not os.path.exists(os.path.join(d, "c.tar")),
              "a root filesystem without the entrypoint is refused, nothing written", r.stderr)
    print("oci_image.py checks: %d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
