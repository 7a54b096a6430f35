//! The sequence nearly every scenario starts with: create a SealedSecret and wait until the
//! controller has produced its Secret; and its variant over a Secret that was there first
//! (create the Secret, create the SealedSecret, wait until the controller has taken the Secret
//! over). One helper each, so every test waits the same way and a test reads as what it checks.
//!
//! Tests that create many SealedSecrets before waiting for any (load, cold start, restart)
//! create them with `create_ss` on purpose: waiting after each would serialise what they
//! measure.

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use sealed_secrets_api::SealedSecret;

use crate::common::Env;

/// Whether `s` is controlled by the object with `uid`: the owner reference the controller
/// sets on a Secret it produced or took over.
pub fn owned_by(s: &Secret, uid: &str) -> bool {
    s.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

impl Env {
    /// Creates `ss` and waits until its Secret (same namespace and name) exists. Returns the
    /// SealedSecret as the API server stored it (with its uid) and the Secret.
    pub async fn unseal(&self, ss: &SealedSecret) -> (SealedSecret, Secret) {
        let created = self.create_ss(ss).await;
        let ns = created.metadata.namespace.clone().unwrap();
        let name = created.metadata.name.clone().unwrap();
        let secret = self.wait_secret(&ns, &name).await;
        (created, secret)
    }

    /// Creates `existing` (a Secret that was there before any SealedSecret), then `ss` with
    /// the same name, without waiting. Returns the stored SealedSecret.
    pub async fn create_over(&self, existing: &Secret, ss: &SealedSecret) -> SealedSecret {
        let ns = existing.metadata.namespace.as_deref().unwrap();
        self.secrets(ns)
            .create(&PostParams::default(), existing)
            .await
            .unwrap();
        self.create_ss(ss).await
    }

    /// [`Env::create_over`], then waits until the controller has taken the Secret over: it is
    /// controlled by the new SealedSecret. `what` names the wait in a timeout.
    pub async fn take_over(&self, existing: &Secret, ss: &SealedSecret, what: &str) -> Secret {
        let created = self.create_over(existing, ss).await;
        let ns = created.metadata.namespace.clone().unwrap();
        let name = created.metadata.name.clone().unwrap();
        let uid = created.metadata.uid.clone().unwrap();
        self.wait_secret_where(&ns, &name, what, |s| owned_by(s, &uid))
            .await
    }
}
