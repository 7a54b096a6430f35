//! The store's writes: create, update, patch, server-side apply, replace and delete, with
//! kube-apiserver's preconditions, generation, status-subresource and finalizer rules.

use super::*;

impl Store {
    pub fn create(
        &mut self,
        rt_key: &ResKey,
        ns: &str,
        mut obj: Value,
        tracking: Tracking<'_>,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        let rt = self
            .types
            .get(rt_key)
            .cloned()
            .ok_or_else(ApiError::not_found_path)?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let api_version = rt.api_version(rt.storage_version());
        if let Some(k) = obj["kind"].as_str()
            && k != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the provided object ({k}) does not match the resource ({})",
                rt.kind
            )));
        }
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(rt.kind);
        let meta = meta_mut(&mut obj);
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(mns) if !mns.is_empty() && mns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            }
        }
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                format!(
                    "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        meta.remove("resourceVersion");
        meta.remove("selfLink");
        if rt.has_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        // With a status subresource, kube-apiserver's strategies reset the status on create
        // (custom resources, Deployments, PodDisruptionBudgets, Services); Namespace and CRD
        // status is then set by `normalize`.
        if rt.status_subresource
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        self.check_namespace(&rt, ns)?;
        let okey = Self::okey(&rt, ns, &name);
        if self
            .objects
            .get(rt_key)
            .is_some_and(|m| m.contains_key(&okey))
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let scope = Scope::Main {
            status_subresource: rt.status_subresource,
        };
        let managed = tracking.managed(None, &obj, scope);
        set_managed(&mut obj, &managed);
        self.normalize(&rt, &mut obj, true)?;
        if dry_run {
            return Ok(Arc::new(Obj::new(obj)));
        }
        let out = self.commit(rt_key, okey, ChangeKind::Added, obj, None);
        self.after_write(&rt, &out.value);
        Ok(out)
    }

    /// PUT: `new` replaces the object (or only its status when `status_only`).
    #[allow(clippy::too_many_arguments)] // mirrors the PUT request's parts one to one
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        new: Value,
        manager: &Manager,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        let okey = Self::okey(rt, ns, name);
        let old = self.lookup(rt, &okey)?;
        if let Some(bname) = str_of(&new, &["metadata", "name"])
            && bname != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bname}) does not match the name on the URL ({name})"
            )));
        }
        match str_of(&new, &["metadata", "resourceVersion"]).filter(|s| !s.is_empty()) {
            Some(rv) if Some(rv) != str_of(&old.value, &["metadata", "resourceVersion"]) => {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name));
            }
            None if rt.custom => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            _ => {}
        }
        let tracking = Tracking::Update(manager);
        self.replace(rt, okey, old, new, tracking, status_only, dry_run)
    }

    /// PATCH: the patch is applied to the stored object; a resourceVersion the patch sets is a
    /// precondition, as in kube-apiserver.
    #[allow(clippy::too_many_arguments)] // mirrors the PATCH request's parts one to one
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        manager: &Manager,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        if kind == PatchKind::Strategic && rt.custom {
            return Err(ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let okey = Self::okey(rt, ns, name);
        let old = self.lookup(rt, &okey)?;
        let mut new = old.value.clone();
        patch::apply(&mut new, kind, body)?;
        if str_of(&new, &["metadata", "resourceVersion"])
            != str_of(&old.value, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let tracking = Tracking::Update(manager);
        self.replace(rt, okey, old, new, tracking, status_only, dry_run)
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply of `config` by
    /// `manager` (see `fields.rs`); creates the object when it does not exist.
    #[allow(clippy::too_many_arguments)] // mirrors the PATCH request's parts one to one
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        config: Value,
        manager: &Manager,
        force: bool,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON or YAML object",
            ));
        }
        match config["kind"].as_str() {
            Some(k) if k == rt.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind of the applied object ({k}) does not match the resource ({})",
                    rt.kind
                )));
            }
            None => {
                return Err(ApiError::bad_request(
                    "invalid object type: kind must be set",
                ));
            }
        }
        if config["apiVersion"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion must be set",
            ));
        }
        if let Some(bname) = str_of(&config, &["metadata", "name"])
            && bname != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bname}) does not match the name on the URL ({name})"
            )));
        }
        let scope = if status_only {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: rt.status_subresource,
            }
        };
        let now = now_rfc3339();
        let okey = Self::okey(rt, ns, name);
        let old = match self.lookup(rt, &okey) {
            Ok(old) => old,
            Err(e) if e.code == 404 && !status_only => {
                let mut managed = Managed::default();
                let mut obj = managed
                    .apply(manager, scope, None, &config, force, &now)
                    .map_err(|c| c.into_error())?;
                meta_mut(&mut obj).insert("name".into(), json!(name));
                let tracking = Tracking::Applied(managed);
                return self.create(&rt.key(), ns, obj, tracking, dry_run);
            }
            Err(e) => return Err(e),
        };
        if let Some(rv) = str_of(&config, &["metadata", "resourceVersion"])
            && Some(rv) != str_of(&old.value, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let mut managed = Managed::of(&old.value);
        let merged = managed
            .apply(manager, scope, Some(&old.value), &config, force, &now)
            .map_err(|c| c.into_error())?;
        let tracking = Tracking::Applied(managed);
        self.replace(rt, okey, old, merged, tracking, status_only, dry_run)
    }

    /// Stores `new` in place of `old` with the metadata rules of an update.
    #[allow(clippy::too_many_arguments)] // the parts of a write, one to one
    pub(crate) fn replace(
        &mut self,
        rt: &ResourceType,
        okey: ObjKey,
        old: Stored,
        mut new: Value,
        tracking: Tracking<'_>,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let name = okey.1.clone();
        if status_only {
            let status = new.get("status").cloned();
            new = old.value.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else if rt.status_subresource {
            match old.value.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        new["apiVersion"] = old.value["apiVersion"].clone();
        new["kind"] = old.value["kind"].clone();
        let old_meta = &old.value["metadata"];
        let meta = meta_mut(&mut new);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        meta.remove("managedFields");
        let scope = if status_only {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: rt.status_subresource,
            }
        };
        let managed = tracking.managed(Some(&old.value), &new, scope);
        set_managed(&mut new, &managed);
        if is_terminating(&old.value) {
            let before: HashSet<String> = finalizers(&old.value).into_iter().collect();
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &name,
                    format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}"
                    ),
                ));
            }
        }
        self.normalize(rt, &mut new, false)?;
        if rt.has_generation && spec_changed(&old.value, &new, rt.status_subresource) {
            let g = old.value["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        if same_content(&old.value, &new) {
            return Ok(old);
        }
        if dry_run {
            return Ok(Arc::new(Obj::new(new)));
        }
        if is_terminating(&new) && finalizers(&new).is_empty() && rt.key() != key(NAMESPACES) {
            return Ok(self.remove(rt, okey, new, Some(old)));
        }
        let out = self.commit(&rt.key(), okey, ChangeKind::Modified, new, Some(old));
        self.after_write(rt, &out.value);
        Ok(out)
    }

    pub(super) fn remove(
        &mut self,
        rt: &ResourceType,
        okey: ObjKey,
        obj: Value,
        old: Option<Stored>,
    ) -> Stored {
        let out = self.commit(&rt.key(), okey, ChangeKind::Deleted, obj, old);
        if rt.key() == key(CRDS)
            && let Ok(t) = resources::from_crd(&out.value)
        {
            let objs: Vec<(ObjKey, Stored)> = self
                .objects
                .get(&t.key())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            for (k, v) in objs {
                self.commit(&t.key(), k, ChangeKind::Deleted, v.value.clone(), None);
            }
            self.types.remove(&t.key());
            self.objects.remove(&t.key());
        }
        out
    }

    /// DELETE. Returns the object and whether it is gone (`false`: finalizers pending).
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        dry_run: bool,
    ) -> Result<(Stored, bool), ApiError> {
        let okey = Self::okey(rt, ns, name);
        let old = self.lookup(rt, &okey)?;
        if rt.key() == key(NAMESPACES) && ["default", "kube-system", "kube-public"].contains(&name)
        {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            ));
        }
        if let Some(uid) = &opts.precondition_uid {
            let actual = str_of(&old.value, &["metadata", "uid"]).unwrap_or_default();
            if uid != actual {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}", crate::error::qualified(&rt.group, &rt.plural))).with_details(&rt.group, &rt.plural, name));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            let actual = str_of(&old.value, &["metadata", "resourceVersion"]).unwrap_or_default();
            if rv != actual {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}", crate::error::qualified(&rt.group, &rt.plural))).with_details(&rt.group, &rt.plural, name));
            }
        }
        if is_terminating(&old.value) {
            return Ok((old, false));
        }
        let mut fins = finalizers(&old.value);
        match opts.propagation.as_deref() {
            Some("Orphan") => fins.push("orphan".to_owned()),
            Some("Foreground") => fins.push("foregroundDeletion".to_owned()),
            _ => {}
        }
        let namespace = rt.key() == key(NAMESPACES);
        if fins.is_empty() && !namespace {
            if dry_run {
                return Ok((old, true));
            }
            let out = self.remove(rt, okey, old.value.clone(), Some(old));
            return Ok((out, true));
        }
        let mut new = old.value.clone();
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if fins.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(fins));
        }
        if namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        if dry_run {
            return Ok((Arc::new(Obj::new(new)), false));
        }
        let out = self.commit(&rt.key(), okey, ChangeKind::Modified, new, Some(old));
        Ok((out, false))
    }
}
