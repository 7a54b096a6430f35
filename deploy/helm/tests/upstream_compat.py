#!/usr/bin/env python3
"""Upstream's Helm values against our chart (called by deploy/check.sh; needs helm on PATH).

Test input: upstream Sealed Secrets' own chart values.yaml, read from the Go module that
tests/upstream/go.mod pins (tests/upstream/chart-dir.sh prints its helm/sealed-secrets directory;
needs Go and the Go module proxy or a warm module cache). Nothing of upstream's is copied here.
Checks:

  keys       every key of upstream's values is declared in our values.schema.json (the schema
             closes every fixed-shape object, so an undeclared key would be refused)
  effects    each upstream key our chart once ignored either changes the render as upstream's
             chart does or is refused with a message that says why
  migration  the `helm upgrade` migration command of docs/migrate-from-upstream.md and
             the chart's README, run as `helm template` with upstream's values file, renders our image (never
             upstream's image with our flags); upstream's values alone are refused, naming why
  unknown    a misspelt top-level key (replicaCont) is refused

Prints one line per check, exits 1 if any failed.
"""
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
CHART = os.path.join(ROOT, "deploy", "helm", "sealed-secrets")
CHART_DIR_SH = os.path.join(ROOT, "tests", "upstream", "chart-dir.sh")
OUR_IMAGE = "ghcr.io/sealed-secrets-rs/sealed-secrets-controller"
# The user docs that show the migration command.
DOCS = ("docs/migrate-from-upstream.md", "deploy/helm/sealed-secrets/README.md")

failures = 0


def check(ok, what, detail=""):
    global failures
    print("%s %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures += 1
        if detail:
            print("     " + str(detail).strip().replace("\n", "\n     "))
    return ok


def helm_template(*args):
    """(exit code, rendered objects or None, stderr) of `helm template ARGS`."""
    p = subprocess.run(["helm", "template", *args], capture_output=True, text=True)
    docs = [d for d in yaml.safe_load_all(p.stdout) if d] if p.returncode == 0 else None
    return p.returncode, docs, p.stderr


def leaves(values, path=()):
    """Key paths of a values tree; lists and scalars are leaves (a list is one value)."""
    if isinstance(values, dict) and values:
        for k, v in values.items():
            yield from leaves(v, path + (k,))
    else:
        yield path


def schema_declares(schema, path):
    node = schema
    for key in path:
        props = node.get("properties")
        if props is None:
            # An open object (probe, security context, labels): any key passes through.
            return node.get("type") == "object" and node.get("additionalProperties") is not False
        if key not in props:
            return node.get("additionalProperties") is not False
        node = props[key]
    return True


def deployment(docs):
    return next(d for d in docs if d["kind"] == "Deployment")


def container(docs):
    return deployment(docs)["spec"]["template"]["spec"]["containers"][0]


def find(docs, kind, name_suffix=""):
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


def upstream_chart():
    """Upstream's chart directory in Go's module cache, or exits 1 saying why it is missing."""
    p = subprocess.run(["bash", CHART_DIR_SH], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("FAIL upstream's chart values are unavailable (tests/upstream/chart-dir.sh):\n"
                 + p.stderr.strip())
    return p.stdout.strip()


def check_keys(upstream, label):
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    missing = [".".join(p) for p in leaves(upstream) if not schema_declares(schema, p)]
    check(not missing, "every key of %s is declared in values.schema.json (%d keys)"
          % (label, len(list(leaves(upstream)))), "undeclared: %s" % missing)


# (what, --set/--set-json arguments, predicate on the render or expected error regex)
EFFECTS = [
    ("containerPorts.http sets the port and --listen-addr",
     ["--set", "containerPorts.http=9000"],
     lambda d: {"name": "http", "containerPort": 9000, "protocol": "TCP"} in container(d)["ports"]
     and "--listen-addr=:9000" in container(d)["args"]),
    ("containerPorts.metrics sets the port and --listen-metrics-addr",
     ["--set", "containerPorts.metrics=9001"],
     lambda d: any(p["containerPort"] == 9001 for p in container(d)["ports"])
     and "--listen-metrics-addr=:9001" in container(d)["args"]),
    ("hostPorts.http and hostPorts.metrics set hostPort",
     ["--set", "hostPorts.http=18080,hostPorts.metrics=18081"],
     lambda d: sorted(p.get("hostPort") for p in container(d)["ports"]) == [18080, 18081]),
    ("hostNetwork uses the container ports as host ports (as upstream)",
     ["--set", "hostNetwork=true"],
     lambda d: sorted(p.get("hostPort") for p in container(d)["ports"]) == [8080, 8081]),
    ("service.loadBalancerClass reaches the Service",
     ["--set", "service.type=LoadBalancer,service.loadBalancerClass=example.com/lb"],
     lambda d: [s["spec"].get("loadBalancerClass") for s in find(d, "Service")
                if not s["metadata"]["name"].endswith("-metrics")] == ["example.com/lb"]),
    ("metrics.service.loadBalancerClass reaches the metrics Service",
     ["--set", "metrics.service.type=LoadBalancer,metrics.service.loadBalancerClass=example.com/lb"],
     lambda d: [s["spec"].get("loadBalancerClass") for s in find(d, "Service", "-metrics")] == ["example.com/lb"]),
    ("ingress.secrets become TLS Secrets",
     ["--set", "ingress.enabled=true", "--set-json",
      'ingress.secrets=[{"name":"cert-tls","certificate":"CERT","key":"KEY"}]'],
     lambda d: [(s["type"], s["data"]["tls.crt"]) for s in find(d, "Secret", "cert-tls")]
     == [("kubernetes.io/tls", "Q0VSVA==")]),
    ("ingress.selfSigned generates <hostname>-tls",
     ["--set", "ingress.enabled=true,ingress.tls=true,ingress.selfSigned=true,ingress.hostname=ss.example.com"],
     lambda d: [sorted(s["data"]) for s in find(d, "Secret", "ss.example.com-tls")] == [["ca.crt", "tls.crt", "tls.key"]]),
    ("ingress.apiVersion networking.k8s.io/v1 is accepted",
     ["--set", "ingress.enabled=true,ingress.apiVersion=networking.k8s.io/v1"],
     lambda d: [i["apiVersion"] for i in find(d, "Ingress")] == ["networking.k8s.io/v1"]),
    ("ingress.apiVersion of a removed API is refused, saying why",
     ["--set", "ingress.enabled=true,ingress.apiVersion=networking.k8s.io/v1beta1"],
     r'ingress.apiVersion "networking.k8s.io/v1beta1": only networking.k8s.io/v1 exists'),
    ("kubeVersion below 1.21 is refused, saying why",
     ["--set", "kubeVersion=1.19.0"], r"kubeVersion 1.19.0: this chart needs Kubernetes 1.21 or newer"),
    ("kubeVersion 1.35 renders", ["--set", "kubeVersion=1.35.0"], lambda d: bool(find(d, "Deployment"))),
    ("rbac.pspEnabled=true is refused, saying why",
     ["--set", "rbac.pspEnabled=true"], r"rbac.pspEnabled: PodSecurityPolicy was removed in Kubernetes 1.25"),
    ("rbac.serviceProxier.subjects as a YAML string (upstream's form) is rendered with tpl",
     ["--set-string", "rbac.serviceProxier.subjects=- kind: Group\n  name: '{{ .Release.Namespace }}-devs'"],
     lambda d: [b["subjects"] for b in find(d, "RoleBinding", "-service-proxier")]
     == [[{"kind": "Group", "name": "kube-system-devs"}]]),
    ("hostUsers=false reaches the pod spec (new in upstream's chart 2.19)",
     ["--set", "hostUsers=false"],
     lambda d: deployment(d)["spec"]["template"]["spec"]["hostUsers"] is False),
    ("hostUsers unset (upstream's ~) leaves the pod spec field out",
     [], lambda d: "hostUsers" not in deployment(d)["spec"]["template"]["spec"]),
    ("hostUsers=false with hostNetwork=true is refused, saying why",
     ["--set", "hostUsers=false,hostNetwork=true"],
     r"hostUsers=false with hostNetwork=true: Kubernetes refuses"),
    ("metrics.prometheusRule.groups are added after our alerts (new in upstream's chart 2.19)",
     ["--set", "metrics.prometheusRule.enabled=true", "--set-json",
      'metrics.prometheusRule.groups=[{"name":"mine","rules":[{"alert":"A","expr":"up == 0","for":"1m"}]}]'],
     lambda d: [g["name"] for g in find(d, "PrometheusRule")[0]["spec"]["groups"]] == ["sealed-secrets", "mine"]
     and find(d, "PrometheusRule")[0]["spec"]["groups"][1]["rules"]
     == [{"alert": "A", "expr": "up == 0", "for": "1m"}]),
    ("metrics.prometheusRule.groups repeating a group name is refused, saying why",
     ["--set", "metrics.prometheusRule.enabled=true", "--set-json",
      'metrics.prometheusRule.groups=[{"name":"sealed-secrets","rules":[]}]'],
     r'the group name "sealed-secrets" is used twice .*Prometheus needs unique group names'),
    ("unknown top-level key (replicaCont) is refused",
     ["--set", "replicaCont=3"], r"additional properties 'replicaCont' not allowed"),
    ("unknown nested key (image.tga) is refused",
     ["--set", "image.tga=1"], r"additional properties 'tga' not allowed"),
]


def check_effects():
    for what, args, expect in EFFECTS:
        rc, docs, err = helm_template("x", CHART, "--namespace", "kube-system", *args)
        if callable(expect):
            ok = rc == 0
            try:
                ok = ok and expect(docs)
            except (KeyError, StopIteration, TypeError) as e:
                ok, err = False, "%s: %s" % (type(e).__name__, e)
            check(ok, what, err if rc else "render does not show the effect")
        else:
            check(rc != 0 and re.search(expect, err) is not None, what,
                  "exit %d, stderr: %s" % (rc, err or "(empty)"))


def migration_commands():
    """The `helm upgrade ... deploy/helm/sealed-secrets ...` commands in the user docs, with
    backslash continuations joined."""
    found = []
    for doc in DOCS:
        text = open(os.path.join(ROOT, doc)).read()
        for block in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", text, re.S | re.M):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.strip()
                if line.startswith("helm upgrade ") and "deploy/helm/sealed-secrets" in line:
                    found.append((doc, line.strip()))
    return found


def check_migration(values):
    rc, _, err = helm_template("x", CHART, "-f", values)
    check(rc != 0 and "upstream's controller" in err and "would crash-loop" in err,
          "upstream's values alone are refused: their image with our flags would crash-loop", err)

    our_image = ["--set", "image.registry=ghcr.io,image.repository=sealed-secrets-rs/sealed-secrets-controller,image.tag="]
    rc, docs, err = helm_template("x", CHART, "-f", values, *our_image, "--set", "metrics.prometheusRule.enabled=true")
    groups = [g["name"] for g in find(docs, "PrometheusRule")[0]["spec"]["groups"]] if rc == 0 else err
    upstream_groups = [g["name"] for g in yaml.safe_load(open(values))["metrics"]["prometheusRule"]["groups"]]
    check(groups == ["sealed-secrets"] + upstream_groups,
          "upstream's values with metrics.prometheusRule.enabled: our alerts, then upstream's groups %s"
          % upstream_groups, groups)

    commands = migration_commands()
    docs_with = {doc for doc, _ in commands}
    check(docs_with == set(DOCS),
          "%s each show the helm upgrade migration command" % ", ".join(DOCS),
          "found in: %s" % sorted(docs_with))
    for doc, line in commands:
        argv = shlex.split(line)
        # `helm upgrade RELEASE CHART ...` -> `helm template RELEASE CHART ...` (no cluster here),
        # the user's values file -> upstream's values, as the issue asks.
        args = [values if a in ("your-values.yaml", "values.yaml") else a for a in argv[2:]]
        args = [os.path.join(ROOT, a) if a == "deploy/helm/sealed-secrets" else a for a in args]
        rc, docs, err = helm_template(*args)
        what = "%s: `%s` with upstream's values" % (doc, line)
        if not check(rc == 0, what + " renders", err):
            continue
        c = container(docs)
        check(c["image"].startswith(OUR_IMAGE + ":"), what + " runs our image", c["image"])
        check(c["command"] == ["sealed-secrets-controller"], what + " runs our binary", c["command"])
        proxier = find(docs, "RoleBinding", "-service-proxier")
        check([b["subjects"] for b in proxier] ==
              [[{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]],
              what + " binds upstream's service-proxier subjects (a string there)", proxier)


def main():
    chart = upstream_chart()
    version = yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))["version"]
    values = os.path.join(chart, "values.yaml")
    print("upstream's chart %s: %s" % (version, chart))
    check_keys(yaml.safe_load(open(values)), "upstream's chart %s values.yaml" % version)
    check_effects()
    check_migration(values)
    print("upstream values checks: %d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
