//! The resource types the stand-in serves: the built-in ones of `BUILTINS` (issue #4's list
//! and the kinds of the deploy manifests) and any resource defined by a
//! CustomResourceDefinition once that definition is created.

use serde_json::{Value, json};

use super::error::ApiError;

/// Identifies a resource independently of version: `(group, plural)`.
pub type ResKey = (String, String);

/// Identifies a stored object within its resource: `(namespace, name)`.
pub type ObjKey = (String, String);

/// What discovery advertises and what the storage layer needs to know about one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    /// Served versions; the first is the storage and preferred version.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// `/status` is a separate endpoint and the main endpoint ignores `status`.
    pub status_subresource: bool,
    /// Served from a CRD: no strategic merge patch, updates need a resourceVersion,
    /// DELETE answers the object.
    pub custom: bool,
    /// `metadata.generation` is maintained (custom resources and CRDs, as in kube-apiserver;
    /// core Secrets/ConfigMaps have none).
    pub has_generation: bool,
}

impl ResourceType {
    pub fn key(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn storage_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    /// The `APIResource` entries for discovery (the resource and its status subresource).
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if self.plural == "namespaces" {
            verbs.retain(|v| *v != "deletecollection");
        }
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut entries = vec![main];
        if self.status_subresource {
            entries.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

/// One row of the built-in resource table.
///
/// Every built-in resource is stored and served by the same generic machinery as custom
/// resources (`store.rs`): the usual verbs, watches, selectors, finalizers, garbage
/// collection, and `/status` where `status_subresource` is set. Only a handful of kinds get
/// type-specific normalisation on top (Secret `stringData`/base64, Namespace phase, Service
/// `clusterIP`, CRD conditions; see `Store::normalize`); every other row is plain storage.
struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status_subresource: bool,
    /// kube-apiserver's registry strategy for the kind maintains `metadata.generation`.
    has_generation: bool,
}

/// The resources served from the start.
///
/// The first group is issue #4's list (what the controller and CLI talk to). The second group
/// is what the deploy manifests (`deploy/base`, the Helm chart) contain, so that they can be
/// applied to the stand-in (issue #7). Those are stored objects only; nothing acts on them:
/// no ReplicaSets or Pods are created for a Deployment and its status stays whatever a client
/// writes to `/status`; Roles and bindings are not enforced (every request is allowed);
/// PodDisruptionBudgets and NetworkPolicies have no effect. Adding a kind is adding a row.
const BUILTINS: &[Builtin] = &[
    // Issue #4.
    Builtin {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        status_subresource: true,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        status_subresource: true,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        status_subresource: true,
        has_generation: true,
    },
    // Issue #7: the kinds of the deploy manifests, storage only.
    Builtin {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        status_subresource: true,
        has_generation: true,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        status_subresource: true,
        has_generation: true,
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        status_subresource: false,
        has_generation: true,
    },
];

impl Builtin {
    fn resource_type(&self) -> ResourceType {
        ResourceType {
            group: self.group.to_owned(),
            versions: vec![self.version.to_owned()],
            plural: self.plural.to_owned(),
            singular: self.kind.to_lowercase(),
            kind: self.kind.to_owned(),
            list_kind: format!("{}List", self.kind),
            namespaced: self.namespaced,
            short_names: self.short_names.iter().map(|s| (*s).to_owned()).collect(),
            categories: self.categories.iter().map(|s| (*s).to_owned()).collect(),
            status_subresource: self.status_subresource,
            custom: false,
            has_generation: self.has_generation,
        }
    }
}

/// The built-in resources (`BUILTINS`).
pub fn builtins() -> Vec<ResourceType> {
    BUILTINS.iter().map(Builtin::resource_type).collect()
}

/// Reads the resource a CRD defines. Errors are `Invalid` as kube-apiserver would answer.
pub fn from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let invalid = |cause: &str| ApiError::invalid("CustomResourceDefinition", name, cause);
    let spec = &crd["spec"];
    let group = spec["group"]
        .as_str()
        .filter(|g| !g.is_empty())
        .ok_or_else(|| invalid("spec.group: Required value"))?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("spec.names.plural: Required value"))?;
    let kind = names["kind"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid("spec.names.kind: Required value"))?;
    if name != format!("{plural}.{group}") {
        return Err(invalid(&format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        )));
    }
    let scope = spec["scope"].as_str().unwrap_or("Namespaced");
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(invalid(&format!(
                "spec.scope: Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            )));
        }
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    let mut status_subresource = false;
    let mut storage = None;
    for v in spec["versions"].as_array().into_iter().flatten() {
        let Some(vname) = v["name"].as_str() else {
            return Err(invalid("spec.versions.name: Required value"));
        };
        if v["storage"].as_bool() == Some(true) {
            storage = Some(vname.to_owned());
        }
        if v["served"].as_bool() != Some(false) {
            versions.push(vname.to_owned());
        }
        // Simplification: kube-apiserver decides per version; we enable /status for the
        // resource when any served version declares it.
        if v["subresources"]["status"].is_object() {
            status_subresource = true;
        }
    }
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        ));
    }
    if let Some(storage) = storage
        && let Some(pos) = versions.iter().position(|v| *v == storage)
    {
        let v = versions.remove(pos);
        versions.insert(0, v);
    }
    Ok(ResourceType {
        group: group.to_owned(),
        versions,
        plural: plural.to_owned(),
        singular: names["singular"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind: kind.to_owned(),
        list_kind: names["listKind"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{kind}List")),
        namespaced,
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        status_subresource,
        custom: true,
        has_generation: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store keys types by `(group, plural)`: a duplicate row would silently replace an
    /// earlier one.
    #[test]
    fn builtin_rows_are_unique_and_consistent() {
        let types = builtins();
        let mut keys: Vec<ResKey> = types.iter().map(ResourceType::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), types.len());
        for t in &types {
            assert!(!t.custom, "{}", t.plural);
            assert!(t.plural.ends_with('s'), "{}", t.plural);
            assert_eq!(t.singular, t.kind.to_lowercase());
            let entries = t.discovery_entries();
            assert_eq!(entries.len(), if t.status_subresource { 2 } else { 1 });
            assert_eq!(entries[0]["namespaced"], t.namespaced);
        }
    }
}
