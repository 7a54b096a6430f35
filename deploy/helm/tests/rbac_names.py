#!/usr/bin/env python3
"""The RBAC table of docs/install.md names exactly the RBAC objects of both renders.

Usage: rbac_names.py BASE.yaml HELM-DEFAULT.yaml (called by deploy/check.sh)

Each table row reads "Kind `base-name` / `helm-name` ..., bound by Kind `base` / `helm`". Every
named object must exist in its render with that kind, and every RBAC object of each render must
be named in the table, so the docs cannot drift from the manifests.
"""
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RBAC = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def rbac_objects(path):
    return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(open(path))
            if d and d["kind"] in RBAC}


def documented():
    text = open(os.path.join(ROOT, "docs", "install.md")).read()
    section = text.split("## What the RBAC grants, and why", 1)[1].split("\n## ", 1)[0]
    base, helm = set(), set()
    for row in section.splitlines():
        if not row.startswith("| ") or row.startswith("| Object"):
            continue
        first_cell = row.split(" | ", 1)[0]
        for kind, b, h in re.findall(r"\b(ClusterRoleBinding|ClusterRole|RoleBinding|Role) `([^`]+)` / `([^`]+)`", first_cell):
            base.add((kind, b))
            helm.add((kind, h))
    return base, helm


def main():
    base_doc, helm_doc = documented()
    failed = 0
    for label, path, doc in (("base", sys.argv[1], base_doc), ("helm", sys.argv[2], helm_doc)):
        rendered = rbac_objects(path)
        for kind, name in sorted(doc - rendered):
            print("FAIL docs/install.md names %s %s, which the %s render does not have" % (kind, name, label))
            failed += 1
        for kind, name in sorted(rendered - doc):
            print("FAIL the %s render has %s %s, which docs/install.md does not name" % (label, kind, name))
            failed += 1
        if not failed:
            print("ok   %s: docs/install.md names its %d RBAC objects" % (label, len(rendered)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
