#!/usr/bin/env python3
"""Offline checks of rendered deploy manifests, called by deploy/check.sh.

    validate.py schema   LABEL=FILE...   every object against the Kubernetes JSON schemas shipped
                                         in the PyPI package kubernetes-validate (newest version
                                         it ships, strict: unknown fields are errors); SealedSecret
                                         objects against the CRD's openAPIV3Schema; Prometheus
                                         Operator objects structurally, with metric names checked
    validate.py policy   LABEL=FILE...   the project's requirements on the controller objects
                                         (docs/design.md, upstream §7): names, ports, args, probes,
                                         security context, RBAC shape
    validate.py same     BASE HELM       base and default Helm render are the same objects
    validate.py observability DIR        dashboard JSON and alert rules use only known metrics
    validate.py values   HELM-FULL       the ci/full-values.yaml render carries every option
    validate.py negative CRD             the validators reject broken objects (so they can fail)

Each subcommand prints one line per check ("ok ..." / "FAIL ...") and exits 1 if any failed.
"""
import copy
import json
import re
import sys

import jsonschema
import yaml
import kubernetes_validate
from kubernetes_validate import utils as kv

# Upstream §5 metric names plus ours (docs/design.md), and what Prometheus itself provides.
METRIC_PREFIX = "sealed_secrets_controller_"
KNOWN_METRICS = {
    METRIC_PREFIX + m
    for m in [
        "build_info",
        "unseal_requests_total",
        "unseal_errors_total",
        "condition_info",
        "http_requests_total",
        "http_request_duration_seconds",
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count",
        "key_values_opened_total",
        "key_created_timestamp_seconds",
        "keys_active",
        "keys_foreign",
        "leader",
        "rsa_decryptions_total",
    ]
} | {"up"}

CONTROLLER_FLAGS = [
    "--update-status",
    "--key-prefix=",
    "--listen-addr=:8080",
    "--listen-metrics-addr=:8081",
    "--leader-election=true",
    "--leader-election-lease-name=",
    "--cert-configmap=",
]

failures = 0
quiet = False


def check(ok, what, detail=""):
    global failures
    if ok:
        if not quiet:
            print("ok   " + what)
    else:
        failures += 1
        if not quiet:
            print("FAIL " + what + (": " + detail if detail else ""))
    return ok


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def name_of(o):
    md = o.get("metadata") or {}
    ns = md.get("namespace")
    return "%s %s%s" % (o.get("kind"), ns + "/" if ns else "", md.get("name"))


def nullable_to_jsonschema(schema):
    """Turns an OpenAPI v3 (structural) schema into JSON Schema: `nullable: true` means null is
    also allowed; x-kubernetes-* extensions are ignored by jsonschema anyway."""
    if isinstance(schema, dict):
        out = {k: nullable_to_jsonschema(v) for k, v in schema.items() if k != "nullable"}
        if schema.get("nullable") and "type" in schema:
            out["type"] = [schema["type"], "null"]
        return out
    if isinstance(schema, list):
        return [nullable_to_jsonschema(v) for v in schema]
    return schema


def crd_validator(crds, kind):
    for crd in crds:
        if crd["spec"]["names"]["kind"] == kind:
            storage = [v for v in crd["spec"]["versions"] if v.get("storage")][0]
            schema = nullable_to_jsonschema(storage["schema"]["openAPIV3Schema"])
            return jsonschema.Draft7Validator(schema)
    return None


def promql_metrics(expr):
    """Metric names referenced by a PromQL expression (identifiers followed by { [ or ) or an
    operator, excluding functions and keywords) -- enough to catch typos in our names."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # drop label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # drop label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # drop range selectors such as [5m]
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    keywords = {
        "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase",
        "histogram_quantile", "absent", "time", "vector", "or", "and", "unless", "on",
        "ignoring", "group_left", "group_right", "label_values", "le", "bool", "offset",
        "topk", "bottomk", "clamp_min", "clamp_max", "delta", "deriv", "changes", "resets",
        "__rate_interval", "__interval", "__range", "job", "reason", "namespace", "path",
        "code", "method", "fingerprint", "pod", "name", "condition", "instance", "e",
    }
    return {n for n in names if n not in keywords and not n.startswith("$")}


def validate_monitoring(o, where):
    kind = o["kind"]
    spec = o.get("spec") or {}
    if kind == "ServiceMonitor":
        eps = spec.get("endpoints") or []
        check(bool(eps) and all(e.get("port") == "metrics" for e in eps),
              "%s %s scrapes port `metrics`" % (where, name_of(o)))
        check(bool((spec.get("selector") or {}).get("matchLabels")),
              "%s %s has a selector" % (where, name_of(o)))
    elif kind == "PrometheusRule":
        rules = [r for g in spec.get("groups") or [] for r in g.get("rules") or []]
        check(bool(rules), "%s %s has rules" % (where, name_of(o)))
        for r in rules:
            label = r.get("alert") or r.get("record")
            used = promql_metrics(r.get("expr", ""))
            unknown = used - KNOWN_METRICS
            check(bool(label) and bool(r.get("expr")) and not unknown,
                  "%s %s rule %s uses known metrics %s" % (where, name_of(o), label, sorted(used)),
                  "unknown: %s" % sorted(unknown))
    else:
        check(False, "%s %s" % (where, name_of(o)), "no schema known for this kind")


def cmd_schema(args):
    version = kv.latest_version()
    print("kubernetes-validate %s, Kubernetes schemas v%s (newest shipped), strict"
          % (kubernetes_validate.__version__, version))
    files = [a.split("=", 1) for a in args]
    docs = [(label, o) for label, path in files for o in load(path)]
    crds = [o for _, o in docs if o.get("kind") == "CustomResourceDefinition"]
    for label, o in docs:
        if o.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            validate_monitoring(o, label)
            continue
        if o.get("apiVersion", "").startswith("bitnami.com/"):
            v = crd_validator(crds, o.get("kind"))
            if not check(v is not None, "%s %s has its CRD in the same set" % (label, name_of(o))):
                continue
            errors = sorted(v.iter_errors(o), key=lambda e: list(e.path))
            check(not errors, "%s %s valid against the CRD schema" % (label, name_of(o)),
                  "; ".join("%s: %s" % (".".join(map(str, e.path)), e.message) for e in errors))
            continue
        try:
            kv.validate(o, version, strict=True)
            check(True, "%s %s valid (k8s %s)" % (label, name_of(o), version))
        except kv.ValidationError as e:
            check(False, "%s %s" % (label, name_of(o)),
                  "%s: %s" % (".".join(map(str, e.path)), e.message))
        except kv.SchemaNotFoundError as e:
            check(False, "%s %s" % (label, name_of(o)), e.message)


def by_kind(docs, kind):
    return [o for o in docs if o["kind"] == kind]


def cmd_policy(args):
    for arg in args:
        label, path = arg.split("=", 1)
        docs = load(path)
        deps = by_kind(docs, "Deployment")
        if not check(len(deps) == 1, "%s: one Deployment" % label):
            continue
        d = deps[0]
        ns = d["metadata"]["namespace"]
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        check(d["spec"]["replicas"] >= 2, "%s: >= 2 replicas" % label)
        args_ = c.get("args", [])
        for flag in CONTROLLER_FLAGS:
            check(any(a == flag or (flag.endswith("=") and a.startswith(flag)) or
                      (flag == "--update-status" and a.startswith("--update-status"))
                      for a in args_), "%s: arg %s" % (label, flag))
        env = {e["name"]: e for e in c.get("env", [])}
        check(env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
              == "metadata.namespace", "%s: POD_NAMESPACE from the downward API" % label)
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports == {"http": 8080, "metrics": 8081}, "%s: container ports http 8080, metrics 8081" % label, str(ports))
        # Liveness on /healthz (up), readiness on /readyz (a usable key): both served on the
        # probe slots, so a loaded server neither restarts nor leaves its Service.
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            g = (c.get(probe) or {}).get("httpGet") or {}
            check(g.get("path") == path and g.get("port") == "http",
                  "%s: %s GET %s on port http" % (label, probe, path))
        sc = c.get("securityContext") or {}
        psc = pod.get("securityContext") or {}
        check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 1001
              and sc.get("readOnlyRootFilesystem") is True
              and sc.get("allowPrivilegeEscalation") is False
              and (sc.get("capabilities") or {}).get("drop") == ["ALL"]
              and ((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault"),
              "%s: container security context (non-root 1001, read-only root, drop ALL, no escalation, seccomp RuntimeDefault)" % label, json.dumps(sc))
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        check("emptyDir" in vols.get(mounts.get("/tmp"), {}), "%s: /tmp is an emptyDir" % label)
        res = c.get("resources") or {}
        check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
              and res.get("limits", {}).get("memory"), "%s: requests cpu+memory and a memory limit" % label)
        check(bool(pod.get("topologySpreadConstraints")) or bool((pod.get("affinity") or {}).get("podAntiAffinity")),
              "%s: replicas spread across nodes" % label)
        sel = d["spec"]["selector"]["matchLabels"]
        tmpl = d["spec"]["template"]["metadata"]["labels"]
        check(all(tmpl.get(k) == v for k, v in sel.items()), "%s: selector matches the pod labels" % label)

        svcs = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
        name = d["metadata"]["name"]
        s = svcs.get(name)
        check(s is not None and s["spec"]["ports"][0].get("name") == "http" and s["spec"]["ports"][0]["port"] == 8080
              and s["metadata"]["namespace"] == ns,
              "%s: Service %s first port `http` 8080 (what kubeseal's proxy path uses)" % (label, name))
        m = svcs.get(name + "-metrics")
        check(m is not None and m["spec"]["ports"][0].get("name") == "metrics" and m["spec"]["ports"][0]["port"] == 8081,
              "%s: Service %s-metrics port `metrics` 8081" % (label, name))
        for svc in (s, m):
            if svc:
                check(all(tmpl.get(k) == v for k, v in svc["spec"]["selector"].items()),
                      "%s: Service %s selects the controller pods" % (label, svc["metadata"]["name"]))
        pdbs = by_kind(docs, "PodDisruptionBudget")
        check(len(pdbs) == 1 and pdbs[0]["spec"].get("minAvailable") == 1
              and all(tmpl.get(k) == v for k, v in pdbs[0]["spec"]["selector"]["matchLabels"].items()),
              "%s: PodDisruptionBudget minAvailable 1 on the controller pods" % label)

        roles = by_kind(docs, "Role") + by_kind(docs, "ClusterRole")
        rules = [(r, ro) for ro in roles for r in ro.get("rules", [])]

        def granted(group, resource, verb, role_filter=lambda ro: True):
            return any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
                       and verb in r.get("verbs", []) and role_filter(ro) for r, ro in rules)

        for verb in ("get", "list", "watch"):
            check(granted("bitnami.com", "sealedsecrets", verb), "%s: RBAC sealedsecrets %s" % (label, verb))
        check(granted("bitnami.com", "sealedsecrets/status", "update"), "%s: RBAC sealedsecrets/status update" % label)
        check(not any("*" in r.get("verbs", []) or "*" in r.get("resources", []) for r, _ in rules),
              "%s: no wildcard RBAC" % label)
        check(not granted("bitnami.com", "sealedsecrets", "update") and not granted("bitnami.com", "sealedsecrets", "patch"),
              "%s: controller cannot modify SealedSecret specs" % label)
        in_ns = lambda ro: ro["kind"] == "Role" and ro["metadata"].get("namespace") == ns
        check(granted("coordination.k8s.io", "leases", "create", in_ns) and granted("coordination.k8s.io", "leases", "update", in_ns),
              "%s: Lease create/update in the controller namespace" % label)
        check(granted("", "configmaps", "create", in_ns) and granted("", "configmaps", "update", in_ns),
              "%s: cert ConfigMap create/update in the controller namespace" % label)
        # Update/patch of ConfigMaps and Leases only by name (create cannot
        # be narrowed by name, so it stays a separate rule).
        for res in ("configmaps", "leases"):
            check(not any(res in r.get("resources", []) and set(r.get("verbs", [])) & {"get", "update", "patch"}
                          and not r.get("resourceNames") for r, _ in rules),
                  "%s: %s get/update/patch limited by resourceNames" % (label, res))
        proxier = [ro for ro in roles if any("services/proxy" in r.get("resources", []) for r in ro.get("rules", []))]
        check(len(proxier) == 1 and any(
            sorted(r.get("resourceNames", [])) == sorted(["http:%s:" % name, "http:%s:http" % name, name])
            and sorted(r["verbs"]) == ["create", "get"] for r in proxier[0]["rules"]),
            "%s: service-proxier Role as upstream §7.1" % label)
        bindings = by_kind(docs, "RoleBinding")
        check(any(b["roleRef"]["name"] == (proxier[0]["metadata"]["name"] if proxier else None)
                  and any(s_.get("name") == "system:authenticated" for s_ in b["subjects"]) for b in bindings),
              "%s: service-proxier bound to system:authenticated" % label)
        check(any(r.get("resources") == ["configmaps"] and r.get("verbs") == ["get"] for ro in roles for r in ro.get("rules", [])
                  if any(b["roleRef"]["name"] == ro["metadata"]["name"] and
                         any(s_.get("name") == "system:authenticated" for s_ in b["subjects"]) for b in bindings)),
              "%s: cert ConfigMap readable by system:authenticated" % label)
        sa = pod.get("serviceAccountName")
        bound = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings + by_kind(docs, "ClusterRoleBinding")
                 if any(s_.get("kind") == "ServiceAccount" and s_.get("name") == sa for s_ in b["subjects"])}
        for ro in roles:
            if ro["metadata"]["name"] in (proxier[0]["metadata"]["name"] if proxier else "",):
                continue
            if any(r.get("resources") == ["configmaps"] and r.get("verbs") == ["get"] for r in ro["rules"]) and len(ro["rules"]) == 1:
                continue  # cert reader, bound to users
            check((ro["kind"], ro["metadata"]["name"]) in bound,
                  "%s: %s %s bound to the controller ServiceAccount" % (label, ro["kind"], ro["metadata"]["name"]))
        check(any(o["kind"] == "ServiceAccount" and o["metadata"]["name"] == sa for o in docs),
              "%s: ServiceAccount %s exists" % (label, sa))


def normalise(o):
    """What must be equal between the kustomize base and the default Helm render: everything but
    names of RBAC objects (each follows its upstream distribution so in-place upgrades work),
    labels/annotations and selectors (Helm uses the chart's app.kubernetes.io labels)."""
    o = copy.deepcopy(o)
    kind = o["kind"]
    md = o["metadata"]
    keep = {"namespace": md.get("namespace")}
    if kind not in ("Role", "RoleBinding"):
        keep["name"] = md.get("name")
    o["metadata"] = keep
    if kind == "Deployment":
        spec = o["spec"]
        spec.pop("selector")
        t = spec["template"]
        t.pop("metadata")
        ps = t["spec"]
        ps.pop("topologySpreadConstraints", None)
        ps.pop("affinity", None)
        for c in ps["containers"]:
            c.pop("name")
            c.pop("image")
            for p in ("livenessProbe", "readinessProbe"):
                c[p] = {k: v for k, v in c[p].items() if k not in ("initialDelaySeconds", "successThreshold")}
            c["args"] = [a.replace('"', "") for a in c["args"]]
            c["args"][0] = c["args"][0]
        ps["securityContext"] = ps.get("securityContext")
    if kind in ("Service", "PodDisruptionBudget"):
        (o["spec"].get("selector") or {}).clear()
    if kind == "RoleBinding" or kind == "ClusterRoleBinding":
        o["roleRef"].pop("name")
    if kind == "CustomResourceDefinition":
        pass
    return o


def cmd_same(args):
    base, helm = load(args[0]), load(args[1])
    key = lambda o: json.dumps(o, sort_keys=True)
    nb = sorted((normalise(o) for o in base), key=key)
    nh = sorted((normalise(o) for o in helm), key=key)
    check([o["kind"] for o in sorted(base, key=lambda o: o["kind"])] ==
          [o["kind"] for o in sorted(helm, key=lambda o: o["kind"])],
          "base and Helm defaults render the same kinds and counts",
          "base %s vs helm %s" % (sorted(o["kind"] for o in base), sorted(o["kind"] for o in helm)))
    hs = {key(o) for o in nh}
    for o, raw in zip(nb, sorted(base, key=lambda o: key(normalise(o)))):
        detail = ""
        if key(o) not in hs:
            import difflib
            peers = [h for h in nh if h["kind"] == o["kind"] and h["metadata"] == o["metadata"]] or \
                    [h for h in nh if h["kind"] == o["kind"]]
            if peers:
                a = json.dumps(o, indent=1, sort_keys=True).splitlines()
                b = json.dumps(peers[0], indent=1, sort_keys=True).splitlines()
                detail = "closest Helm object differs:\n" + "\n".join(
                    list(difflib.unified_diff(a, b, "base", "helm", lineterm="", n=1))[2:30])
        check(key(o) in hs, "base %s has an equal Helm object" % name_of(raw), detail)


def cmd_observability(args):
    d = args[0]
    dash = json.load(open(d + "/grafana-dashboard.json"))
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t.get("expr", "") for t in p.get("targets", []))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            exprs.append(q.get("query", ""))
    check(len(exprs) >= 10, "dashboard has %d queries" % len(exprs))
    used = set().union(*(promql_metrics(e) for e in exprs))
    check(not (used - KNOWN_METRICS), "dashboard uses only known metrics %s" % sorted(used),
          "unknown: %s" % sorted(used - KNOWN_METRICS))
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "dashboard panel ids are unique")
    rules = [r for o in load(d + "/prometheus-rules.yaml") for g in o["spec"]["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r["expr"] for r in rules}
    for alert, metric in [("SealedSecretsUnsealErrorHigh", "unseal_errors_total"),
                          ("SealedSecretsKeyRenewalOverdue", "key_created_timestamp_seconds"),
                          ("SealedSecretsNoLeader", "leader"),
                          ("SealedSecretsForeignKey", "keys_foreign"),
                          ("SealedSecretsControllerDown", "up")]:
        name = metric if metric == "up" else METRIC_PREFIX + metric
        check(alert in alerts and name in promql_metrics(alerts[alert]), "alert %s reads %s" % (alert, name))


def cmd_values(args):
    """The full-values render carries every configured option through to the objects."""
    docs = load(args[0])
    dep = by_kind(docs, "Deployment")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    want = ["--update-status=false", "--key-prefix=my-sealing-key", "--leader-election=true",
            "--leader-election-lease-name=ss-leader", "--cert-configmap=sealing-cert",
            "--key-renew-period=720h", "--key-ttl=87600h",
            "--key-cutoff-time=Mon, 02 Jan 2006 15:04:05 -0700", "--rate-limit=5",
            "--rate-limit-burst=10", "--additional-namespaces=team-a,team-b",
            "--privatekey-annotations=example.com/backup=true", "--privatekey-labels=backup=velero",
            "--log-info-stdout", "--log-level=DEBUG", "--log-format=json",
            "--max-unseal-retries=7", "--skip-recreate", "--watch-for-secrets",
            "--kubeclient-qps=20", "--kubeclient-burst=40", "--key-size=3072"]
    for a in want:
        check(a in c["args"], "full values: arg %s" % a)
    for a in ["--key-backend=pkcs11", "--key-pkcs11-token=sealed-secrets",
              "--key-pkcs11-pin-file=/etc/sealed-secrets/pkcs11-keys/pin",
              "--key-pkcs11-adopt=operator-key"]:
        check(a in c["args"], "full values: pkcs11Keys arg %s" % a)
    check(dep["spec"]["replicas"] == 3 and dep["metadata"]["namespace"] == "sealed-secrets",
          "full values: replicaCount and namespace")
    check(c["image"] == "registry.example.com/mirror/sealed-secrets-controller:0.1.0", "full values: image")
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in docs
             if o["kind"] in ("Role", "ClusterRole")}
    check(not any(k == "ClusterRole" for k, _, _ in roles), "full values: rbac.clusterRole false renders no ClusterRole")
    for ns in ("sealed-secrets", "team-a", "team-b"):
        check(("Role", ns, "ss-unsealer") in roles, "full values: namespaced Role ss-unsealer in %s" % ns)
    local = [o for o in docs if o["kind"] == "Role" and o["metadata"]["name"].endswith("-local")][0]
    names = {n for r in local["rules"] for n in r.get("resourceNames", [])}
    check(names == {"sealing-cert", "ss-leader"}, "full values: local Role names the ConfigMap and Lease", str(names))
    kinds = {o["kind"] for o in docs}
    for k in ("Ingress", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ConfigMap"):
        check(k in kinds, "full values: renders a %s" % k)
    rule = by_kind(docs, "PrometheusRule")[0]
    check(rule["metadata"]["namespace"] == "monitoring" and "SealedSecretsNoLeader" in json.dumps(rule),
          "full values: PrometheusRule carries the alerts")
    check(not any(o["kind"] == "RoleBinding" and o["metadata"]["name"].endswith("-cert-reader") for o in docs),
          "full values: rbac.certReader.bind false renders no binding")


def cmd_negative(args):
    """Mutates valid objects and expects each validator to refuse them."""
    global failures, quiet
    crds = load(args[0])
    version = kv.latest_version()
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    typo = copy.deepcopy(dep)
    typo["spec"]["replica"] = 2
    for what, obj, should_pass in [("a minimal Deployment", dep, True),
                                   ("a Deployment with a wrongly typed field", bad, False),
                                   ("a Deployment with an unknown field (strict)", typo, False)]:
        try:
            kv.validate(obj, version, strict=True)
            passed = True
        except kv.ValidationError:
            passed = False
        check(passed == should_pass, "k8s schema %s %s" % ("accepts" if should_pass else "rejects", what))
    v = crd_validator(crds, "SealedSecret")
    ss = {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": {"name": "a"},
          "spec": {"encryptedData": {"k": "AgA="}, "template": {"metadata": None}}}
    no_data = copy.deepcopy(ss)
    del no_data["spec"]["encryptedData"]
    wrong = copy.deepcopy(ss)
    wrong["spec"]["template"]["immutable"] = "yes"
    for what, obj, should_pass in [("a SealedSecret with null template metadata", ss, True),
                                   ("a SealedSecret without encryptedData", no_data, False),
                                   ("a SealedSecret with a non-boolean immutable", wrong, False)]:
        check(v.is_valid(obj) == should_pass, "CRD schema %s %s" % ("accepts" if should_pass else "rejects", what))
    before, quiet = failures, True
    validate_monitoring({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "typo"},
                         "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sealed_secrets_controller_leaders > 0"}]}]}},
                        "(negative)")
    caught = failures > before
    failures, quiet = before, False
    check(caught, "metric check rejects an unknown metric name")


if __name__ == "__main__":
    cmd = {"schema": cmd_schema, "policy": cmd_policy, "same": cmd_same,
           "observability": cmd_observability, "negative": cmd_negative, "values": cmd_values}[sys.argv[1]]
    cmd(sys.argv[2:])
    sys.exit(1 if failures else 0)
