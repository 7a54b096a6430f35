//! The resource types the stand-in serves: the built-in ones listed in issue #4 and any
//! resource defined by a CustomResourceDefinition once that definition is created.

use serde_json::{Value, json};

use super::error::ApiError;

/// Identifies a resource independently of version: `(group, plural)`.
pub type ResKey = (String, String);

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

#[allow(clippy::too_many_arguments)] // a table of literals reads better than a builder here
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short_names: &[&str],
    categories: &[&str],
    status_subresource: bool,
    has_generation: bool,
) -> ResourceType {
    ResourceType {
        group: group.to_owned(),
        versions: vec![version.to_owned()],
        plural: plural.to_owned(),
        singular: kind.to_lowercase(),
        kind: kind.to_owned(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short_names.iter().map(|s| (*s).to_owned()).collect(),
        categories: categories.iter().map(|s| (*s).to_owned()).collect(),
        status_subresource,
        custom: false,
        has_generation,
    }
}

/// The built-in resources (issue #4's list).
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            &[],
            true,
            false,
        ),
        builtin("", "v1", "secrets", "Secret", true, &[], &[], false, false),
        builtin(
            "",
            "v1",
            "services",
            "Service",
            true,
            &["svc"],
            &["all"],
            true,
            false,
        ),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            &[],
            false,
            false,
        ),
        builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            &[],
            false,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            &[],
            false,
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            &[],
            false,
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            true,
            true,
        ),
    ]
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
