//! The small keys (`pid`) index rows carry instead of their resource type and parameter name:
//! the `search_keys` table, mirrored in memory. Every parameter of a registry is registered
//! before anything is indexed with it (the standard ones when the store opens, custom ones when
//! the server adopts a new registry), so writes never have to create a key inside a user's
//! transaction.

use std::collections::HashMap;
use std::sync::RwLock;

use fhir::search::{ParamKind, Registry};

#[derive(Default)]
struct Maps {
    by_name: HashMap<(String, String), i64>,
    by_param: HashMap<String, Vec<i64>>,
    by_type_kind: HashMap<(String, String), Vec<i64>>,
}

#[derive(Default)]
pub(crate) struct Keys {
    maps: RwLock<Maps>,
}

impl Keys {
    fn read<T>(&self, f: impl FnOnce(&Maps) -> T) -> T {
        match self.maps.read() {
            Ok(m) => f(&m),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Replaces the mirror with the rows of `search_keys`: (pid, resource type, param, kind).
    pub fn load(&self, rows: Vec<(i64, String, String, String)>) {
        let mut maps = Maps::default();
        for (pid, rt, param, kind) in rows {
            maps.by_param.entry(param.clone()).or_default().push(pid);
            maps.by_type_kind.entry((rt.clone(), kind)).or_default().push(pid);
            maps.by_name.insert((rt, param), pid);
        }
        match self.maps.write() {
            Ok(mut m) => *m = maps,
            Err(poisoned) => *poisoned.into_inner() = maps,
        }
    }

    pub fn pid(&self, resource_type: &str, param: &str) -> Option<i64> {
        self.read(|m| m.by_name.get(&(resource_type.to_owned(), param.to_owned())).copied())
    }

    /// The keys of a parameter in a scope: one type, some types, or (both empty) all.
    pub fn pids(&self, resource_type: Option<&str>, types: &[String], param: &str) -> Vec<i64> {
        match (resource_type, types) {
            (Some(rt), _) => self.pid(rt, param).into_iter().collect(),
            (None, []) => self.read(|m| m.by_param.get(param).cloned().unwrap_or_default()),
            (None, types) => types.iter().filter_map(|t| self.pid(t, param)).collect(),
        }
    }

    /// The keys of every parameter of a kind on a type.
    pub fn of_kind(&self, resource_type: &str, kind: ParamKind) -> Vec<i64> {
        self.read(|m| {
            m.by_type_kind.get(&(resource_type.to_owned(), kind.name().to_owned())).cloned().unwrap_or_default()
        })
    }

    /// The rows of a registry not registered yet.
    pub fn missing(&self, registry: &Registry) -> Vec<(String, String, String)> {
        self.read(|m| {
            registry
                .row_names()
                .into_iter()
                .filter(|(rt, p, _)| !m.by_name.contains_key(&(rt.clone(), p.clone())))
                .map(|(rt, p, k)| (rt, p, k.name().to_owned()))
                .collect()
        })
    }
}
