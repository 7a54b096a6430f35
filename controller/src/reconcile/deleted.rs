//! A deleted SealedSecret: its metrics and retry state go, and with `--old-gc-behavior`
//! (§4.1) the Secret produced from exactly that object is deleted (without it, the
//! ownerReference lets the garbage collector do it).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Preconditions};
use sealed_secrets_api::annotations;

use super::context::{Context, lock};
use super::decide::old_gc_deletes;

/// Upstream counts deletes as unseal requests and drops their condition series; with
/// `--old-gc-behavior` it deletes the Secret itself (see [`old_gc_deletes`]). `deleted` is
/// what the watch's deletion event carried of it ([`cached_metadata`]).
pub fn on_sealed_secret_deleted(ctx: &Arc<Context>, deleted: &ObjectMeta) {
    ctx.metrics.unseal_requests.inc();
    let ns = deleted.namespace.clone().unwrap_or_default();
    let name = deleted.name.clone().unwrap_or_default();
    let instance = deleted
        .labels
        .as_ref()
        .and_then(|l| l.get(annotations::APP_INSTANCE_LABEL))
        .cloned()
        .unwrap_or_default();
    ctx.metrics.remove_condition(&ns, &name, &instance);
    let key = (ns.clone(), name.clone());
    ctx.retries().remove(&key);
    lock(&ctx.status_retries).remove(&key);
    let uid = deleted.uid.clone().unwrap_or_default();
    // The Secret this controller produced from exactly this object (not from an older one
    // of the same name).
    let produced = lock(&ctx.produced)
        .remove(&key)
        .filter(|(ss_uid, _)| *ss_uid == uid)
        .map(|(_, secret_uid)| secret_uid);
    if !ctx.settings.old_gc_behavior {
        return;
    }
    let client = ctx.client.clone();
    tokio::spawn(async move {
        let api: Api<Secret> = Api::namespaced(client, &ns);
        match api.get_opt(&name).await {
            Ok(Some(s)) if old_gc_deletes(&s.metadata, &uid, produced.as_deref()) => {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: s.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => {
                        tracing::info!(secret = %format!("{ns}/{name}"), "deleted Secret of deleted SealedSecret")
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "failed to delete Secret")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "failed to read Secret")
            }
        }
    });
}
