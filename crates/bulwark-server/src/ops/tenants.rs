//! The tenant tree: orgs, apps and envs; create, list, describe, disable, enable.
//!
//! Creating and toggling a scope needs `administer` on its parent; describing it needs
//! `view` on it. Existence and uniqueness are checked under the sequencer.

use bulwark_authz::Permission;
use bulwark_core::{Name, Scope};
use bulwark_directory::Event;

use super::Request;
use crate::AppState;
use crate::authn::{Caller, decide};
use crate::error::Error;

/// A scope created.
#[derive(Debug)]
pub struct Created {
    /// The new scope.
    pub scope: Scope,
    /// The seq of its creation.
    pub seq: u64,
}

/// A scope disabled or enabled.
#[derive(Debug)]
pub struct Toggled {
    /// The scope.
    pub scope: Scope,
    /// Disabled (`true`) or enabled.
    pub disabled: bool,
    /// The seq of the change.
    pub seq: u64,
}

/// An existing scope as its viewers see it.
#[derive(Debug)]
pub struct Described {
    /// The scope.
    pub scope: Scope,
    /// The scope (itself or an ancestor) whose disabling disables it, if any.
    pub disabled: Option<Scope>,
    /// Its children.
    pub children: Children,
}

/// The children of a described scope.
#[derive(Debug)]
pub enum Children {
    /// An org's apps.
    Apps(Vec<Name>),
    /// An app's envs.
    Envs(Vec<Name>),
    /// Neither (the instance, an env).
    None,
}

/// Creates the child of `parent` named by `child`: `administer` on the parent, decided
/// before `child` is read (a caller without the right learns nothing from a bad body);
/// the parent must exist and the name must be free (checked and appended under the
/// sequencer).
pub async fn create<E: Into<Error>>(
    state: &AppState,
    req: &Request<'_>,
    parent: Scope,
    child: impl FnOnce() -> Result<Name, E>,
) -> Result<Created, Error> {
    req.authorize(state, Permission::Administer, &parent)
        .await?;
    let child = child().map_err(Into::into)?;
    let scope = match &parent {
        Scope::Instance => Scope::Org(child),
        Scope::Org(o) => Scope::App(o.clone(), child),
        Scope::App(o, a) => Scope::Env(o.clone(), a.clone(), child),
        Scope::Env(..) => return Err(Error::bad_request("envs have no children")),
    };
    let _seq = state.journal.sequencer.lock().await;
    {
        let dir = state.directory.read();
        if !dir.exists(&parent) {
            return Err(Error::not_found(&parent));
        }
        if dir.exists(&scope) {
            return Err(Error::conflict(format!("{scope} exists")));
        }
    }
    let event = match &scope {
        Scope::Org(o) => Event::OrgCreate { org: o.to_string() },
        Scope::App(o, a) => Event::AppCreate {
            org: o.to_string(),
            app: a.to_string(),
        },
        Scope::Env(o, a, e) => Event::EnvCreate {
            org: o.to_string(),
            app: a.to_string(),
            env: e.to_string(),
        },
        Scope::Instance => return Err(Error::bad_request("cannot create the instance")),
    };
    let seq = req
        .commit(
            state,
            (Permission::Administer, &parent),
            scope.org(),
            &event,
        )
        .await?;
    Ok(Created { scope, seq })
}

/// Disables or enables `scope`: `administer` on its parent; the scope must exist.
pub async fn set_disabled(
    state: &AppState,
    req: &Request<'_>,
    scope: Scope,
    disabled: bool,
) -> Result<Toggled, Error> {
    let parent = scope.parent().unwrap_or(Scope::Instance);
    req.authorize(state, Permission::Administer, &parent)
        .await?;
    let _seq = state.journal.sequencer.lock().await;
    if !state.directory.read().exists(&scope) {
        return Err(Error::not_found(&scope));
    }
    let s = scope.to_string();
    let event = if disabled {
        Event::ScopeDisable { scope: s }
    } else {
        Event::ScopeEnable { scope: s }
    };
    let seq = req
        .commit(
            state,
            (Permission::Administer, &parent),
            scope.org(),
            &event,
        )
        .await?;
    Ok(Toggled {
        scope,
        disabled,
        seq,
    })
}

/// Describes an existing scope: `view` on it.
pub async fn describe(
    state: &AppState,
    req: &Request<'_>,
    scope: Scope,
) -> Result<Described, Error> {
    req.authorize(state, Permission::View, &scope).await?;
    let dir = state.directory.read();
    if !dir.exists(&scope) {
        return Err(Error::not_found(&scope));
    }
    let names = |v: Vec<&Name>| v.into_iter().cloned().collect::<Vec<_>>();
    let children = match &scope {
        Scope::Org(o) => Children::Apps(names(dir.apps(o))),
        Scope::App(o, a) => Children::Envs(names(dir.envs(o, a))),
        _ => Children::None,
    };
    let disabled = dir.disabled_at(&scope);
    drop(dir);
    Ok(Described {
        scope,
        disabled,
        children,
    })
}

/// The orgs `caller` may view (no denial is journaled: a list only leaves out).
pub fn visible_orgs(state: &AppState, caller: &Caller) -> Vec<Name> {
    let orgs: Vec<Name> = state.directory.read().orgs().cloned().collect();
    orgs.into_iter()
        .filter(|o| decide(state, caller, Permission::View, &Scope::Org(o.clone())).allowed)
        .collect()
}
