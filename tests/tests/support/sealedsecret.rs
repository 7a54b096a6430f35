//! The minimal SealedSecret type the stand-in tests use: the stand-in serves it from the
//! generic CRD fixture, so the tests need no dependency on `sealed-secrets-api`. Shared by the
//! `standin_kube_rs` and `standin_scale` test targets.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "bitnami.com",
    version = "v1alpha1",
    kind = "SealedSecret",
    namespaced,
    status = "SealedSecretStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    #[serde(default)]
    pub encrypted_data: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SealedSecretStatus {
    #[serde(default)]
    pub conditions: Vec<serde_json::Value>,
}

pub const CRD_YAML: &str = include_str!("../../fixtures/sealedsecret-crd.yaml");
