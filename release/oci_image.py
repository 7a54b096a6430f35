#!/usr/bin/env python3
"""Assembles an OCI image (image-spec v1.1 layout, as one tar archive) from a root filesystem
directory, without pulling any base image and without a container engine.

Usage: oci_image.py ROOTFS OUT.tar --version V --commit SHA --epoch SECONDS
                    [--ref-name NAME] [--entrypoint PATH] [--user UID:GID] [--port N ...]

The image has a single layer: the ROOTFS tree as a tar with every file owned by root, sorted,
with all timestamps set to --epoch (the commit time), gzip without a name or time stamp: the same
ROOTFS and arguments give byte-identical blobs and digests. The archive is an OCI layout
(`oci-layout`, `index.json`, `blobs/sha256/...`) that `podman load -i`, `skopeo copy
oci-archive:OUT.tar ...` and `umoci` read; its index names the manifest with --ref-name.

Prints the manifest digest (sha256:...) on stdout.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def layer_tar(rootfs, epoch):
    """The uncompressed layer: ROOTFS's entries in sorted order, root-owned, fixed mtime.
    Modes are kept (0755 binaries, 1777 /tmp); symlinks are kept as symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs + files):
                paths.append(os.path.join(top, name))
        for path in sorted(paths, key=lambda p: os.path.relpath(p, rootfs)):
            rel = os.path.relpath(path, rootfs)
            info = tar.gettarinfo(path, arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = epoch
            info.pax_headers = {}
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def gzip_bytes(data):
    out = io.BytesIO()
    # mtime=0 and no file name: reproducible output.
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(data)
    return out.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("rootfs")
    p.add_argument("out")
    p.add_argument("--version", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--ref-name", default=None, help="org.opencontainers.image.ref.name (default: --version)")
    p.add_argument("--entrypoint", default="/usr/local/bin/sealed-secrets-controller")
    p.add_argument("--user", default="1001:1001")
    p.add_argument("--port", type=int, action="append", default=[])
    p.add_argument("--source", default="https://github.com/sealed-secrets-rs/sealed-secrets-rs")
    args = p.parse_args()

    if not os.path.isdir(args.rootfs):
        sys.exit("oci_image.py: %s is not a directory" % args.rootfs)
    entry = os.path.join(args.rootfs, args.entrypoint.lstrip("/"))
    if not (os.path.isfile(entry) and os.stat(entry).st_mode & stat.S_IXUSR):
        sys.exit("oci_image.py: the entrypoint %s is not an executable file in %s" % (args.entrypoint, args.rootfs))

    created = __import__("datetime").datetime.fromtimestamp(args.epoch, __import__("datetime").timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": "sealed-secrets-rs controller",
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.revision": args.commit,
        "org.opencontainers.image.source": args.source,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": created,
    }

    raw = layer_tar(args.rootfs, args.epoch)
    layer = gzip_bytes(raw)
    config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": args.user,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Entrypoint": [args.entrypoint],
            "ExposedPorts": {"%d/tcp" % port: {} for port in args.port},
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
        "history": [{"created": created, "created_by": "release/build.sh (release/oci_image.py)"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": sha256(layer), "size": len(layer)}],
        "annotations": labels,
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": sha256(manifest),
            "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": args.ref_name or args.version},
        }],
    })

    entries = [("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})), ("index.json", index)]
    for blob in (layer, config, manifest):
        entries.append(("blobs/sha256/" + sha256(blob).split(":", 1)[1], blob))

    # Written next to OUT and renamed, so a failure never leaves a half archive.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)) or ".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for d in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, args.epoch
                tar.addfile(info)
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, args.epoch
                tar.addfile(info, io.BytesIO(data))
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(sha256(manifest))


if __name__ == "__main__":
    main()
