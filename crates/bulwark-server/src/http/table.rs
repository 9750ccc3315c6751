//! The one route table: every route of every plane (the HTTPS API, the mTLS node API, the
//! admin socket) with its method, path pattern and authorization [`Rule`].
//!
//! Each area declares its routes in its `routes(t)` function through [`Table::add`], which
//! takes the rule: a route cannot be declared without one. The routers are built from the
//! table ([`Table::router`]), so no route is served that the table does not list, and
//! tests walk [`Table::routes`] (the cross-tenant matrix, the invariants below).

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use bulwark_authz::Permission;
use http::Method;

use crate::AppState;

/// Where a route is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plane {
    /// The HTTPS API listener.
    Api,
    /// The node API listener (client certificates required).
    Node,
    /// The admin unix socket.
    Admin,
}

/// The methods our routes use (each maps to one axum method filter, so the method the
/// table records is the one the router serves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `GET` (axum also answers `HEAD` with it).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

impl Verb {
    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Delete => Method::DELETE,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Delete => MethodFilter::DELETE,
        }
    }
}

/// The scope a [`Rule::Bearer`] permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeFrom {
    /// The whole instance.
    Instance,
    /// The org named by `{org}`.
    Org,
    /// The app named by `{org}` and `{app}`.
    App,
    /// The env named by `{org}`, `{app}` and `{env}`.
    Env,
    /// The scope of the relation tuple in the body, confined to `{org}` (the org itself
    /// when the body names no scope, or one outside the org).
    BodyInOrg,
}

impl ScopeFrom {
    /// The path parameter this scope is read from, if any.
    pub const fn path_param(self) -> Option<&'static str> {
        match self {
            Self::Instance => None,
            Self::Org | Self::BodyInOrg => Some("{org}"),
            Self::App => Some("{app}"),
            Self::Env => Some("{env}"),
        }
    }
}

/// How a route authorizes its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No credentials at all; `reason` says why that is safe.
    Public {
        /// Why the route may be public.
        reason: &'static str,
    },
    /// OAuth client authentication (client secret or `private_key_jwt`): 401
    /// `invalid_client` without it.
    Client,
    /// A single-use join token in the body.
    JoinToken,
    /// A node certificate (mTLS) whose identity must match the `{id}` of the path.
    Node,
    /// An access token holding `permission` on `scope`.
    Bearer {
        /// The permission the handler authorizes.
        permission: Permission,
        /// Where the scope comes from.
        scope: ScopeFrom,
    },
    /// Any valid access token: no permission is checked on the path, the answer is
    /// confined to what the caller itself holds (`reason` says how).
    Caller {
        /// How the answer is confined.
        reason: &'static str,
    },
    /// Public for part of what the path pattern matches, [`Rule::Bearer`] for the rest.
    PartlyPublic {
        /// What is public, and why.
        public: &'static str,
        /// What needs the permission.
        gated: &'static str,
        /// The permission it needs.
        permission: Permission,
        /// On which scope.
        scope: ScopeFrom,
    },
    /// The admin socket: the peer's uid must be on the allow-list (checked on accept).
    AdminPeer,
}

impl Rule {
    /// [`Rule::Bearer`]: `permission` on `scope`.
    pub const fn bearer(permission: Permission, scope: ScopeFrom) -> Self {
        Self::Bearer { permission, scope }
    }
}

/// A route as the table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Where it is served.
    pub plane: Plane,
    /// The method.
    pub method: Method,
    /// The axum path pattern, e.g. `/v1/orgs/{org}/apps`.
    pub path: &'static str,
    /// How it authorizes.
    pub rule: Rule,
}

/// Attaches a route's handler, given the application state.
type Attach = Box<dyn Fn(&Arc<AppState>) -> MethodRouter + Send + Sync>;

/// Every route of every plane, each with the handler that serves it.
pub struct Table {
    entry_bundles_on_api: bool,
    routes: Vec<(RouteInfo, Attach)>,
}

impl Table {
    /// The table of every area's routes. `entry_bundles_on_api` is the test hook that
    /// serves audit entry bundles on the API without a token.
    pub fn build(entry_bundles_on_api: bool) -> Self {
        let t = Self {
            entry_bundles_on_api,
            routes: Vec::new(),
        };
        // The HTTPS API.
        let t = super::health::routes(t);
        let t = super::tiles::routes(t);
        let t = super::oauth::routes(t);
        let t = super::tenants::routes(t);
        let t = super::principals::routes(t);
        let t = super::relations::routes(t);
        let t = super::secrets::routes(t);
        let t = super::nodes::routes(t);
        let t = super::certs::routes(t);
        let t = super::events::routes(t);
        let t = super::audit::routes(t);
        // The node API.
        let t = super::node_api::routes(t);
        // The admin socket (its own tiles are added by `tiles::routes`).
        crate::admin::routes(t)
    }

    /// Whether entry bundles are served on the API without a token (test hook).
    pub(crate) fn entry_bundles_on_api(&self) -> bool {
        self.entry_bundles_on_api
    }

    /// Declares a route served by `handler` on the application state.
    pub(crate) fn add<H, T>(
        self,
        plane: Plane,
        verb: Verb,
        path: &'static str,
        rule: Rule,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add_with(plane, verb, path, rule, handler, Arc::clone)
    }

    /// Declares a route served by `handler` on a state made from the application state.
    pub(crate) fn add_with<H, T, S>(
        mut self,
        plane: Plane,
        verb: Verb,
        path: &'static str,
        rule: Rule,
        handler: H,
        state: impl Fn(&Arc<AppState>) -> S + Send + Sync + 'static,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        let info = RouteInfo {
            plane,
            method: verb.method(),
            path,
            rule,
        };
        let attach: Attach =
            Box::new(move |app| on(verb.filter(), handler.clone()).with_state(state(app)));
        self.routes.push((info, attach));
        self
    }

    /// Every route, in declaration order.
    pub fn routes(&self) -> impl Iterator<Item = &RouteInfo> {
        self.routes.iter().map(|(info, _)| info)
    }

    /// The router of one plane: its routes and nothing else, with problem+json 404 and
    /// 405 answers.
    pub fn router(&self, plane: Plane, state: &Arc<AppState>) -> Router {
        self.routes
            .iter()
            .filter(|(info, _)| info.plane == plane)
            .fold(Router::new(), |router, (info, attach)| {
                router.route(info.path, attach(state))
            })
            .fallback(super::health::not_found)
            .method_not_allowed_fallback(super::health::method_not_allowed)
    }
}

/// Every route of every plane, as the server builds them (without test hooks).
pub fn route_table() -> Vec<RouteInfo> {
    Table::build(false).routes().cloned().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashSet;

    use super::*;

    /// The public routes. Adding one is a deliberate change: extend this list in review.
    const PUBLIC: &[(Plane, &str, &str)] = &[
        (Plane::Api, "GET", "/healthz"),
        (Plane::Api, "GET", "/readyz"),
        (Plane::Api, "GET", "/version"),
        (Plane::Api, "GET", "/metrics"),
        (Plane::Api, "GET", "/v1/audit/log/checkpoint"),
        (Plane::Api, "GET", "/v1/audit/log/key"),
        (Plane::Api, "GET", "/v1/audit/proof/inclusion"),
        (Plane::Api, "GET", "/v1/audit/proof/consistency"),
        (Plane::Api, "GET", "/.well-known/jwks.json"),
        (Plane::Api, "GET", "/.well-known/oauth-authorization-server"),
        (Plane::Api, "GET", "/v1/pki/crl"),
        (Plane::Api, "GET", "/v1/pki/revocations"),
        (Plane::Api, "GET", "/v1/pki/ca"),
    ];

    /// Routes partly public (public for some of what the pattern matches).
    const PARTLY_PUBLIC: &[(Plane, &str, &str)] =
        &[(Plane::Api, "GET", "/v1/audit/log/tile/{*path}")];

    /// Routes naming an org whose permission is checked on the instance: an org is
    /// disabled and enabled by the instance's administrators, never by itself.
    const INSTANCE_SCOPED_ORG_ROUTES: &[(&str, &str)] = &[
        ("POST", "/v1/orgs/{org}/disable"),
        ("POST", "/v1/orgs/{org}/enable"),
    ];

    fn key(r: &RouteInfo) -> (Plane, &str, &str) {
        (r.plane, r.method.as_str(), r.path)
    }

    #[test]
    fn no_route_twice_on_a_plane() {
        let table = route_table();
        let mut seen = HashSet::new();
        for r in &table {
            assert!(seen.insert(key(r)), "declared twice: {r:?}");
        }
        assert!(table.len() >= 80, "{}", table.len());
    }

    #[test]
    fn public_routes_are_exactly_the_allow_list() {
        for (hook, tile_public) in [(false, false), (true, true)] {
            let table: Vec<RouteInfo> = Table::build(hook).routes().cloned().collect();
            let public: HashSet<_> = table
                .iter()
                .filter(|r| matches!(r.rule, Rule::Public { .. }))
                .map(key)
                .collect();
            let mut want: HashSet<_> = PUBLIC.iter().copied().collect();
            if tile_public {
                want.extend(PARTLY_PUBLIC.iter().copied());
            }
            assert_eq!(public, want, "test hook {hook}");
            let partly: HashSet<_> = table
                .iter()
                .filter(|r| matches!(r.rule, Rule::PartlyPublic { .. }))
                .map(key)
                .collect();
            let want: HashSet<_> = if tile_public {
                HashSet::new()
            } else {
                PARTLY_PUBLIC.iter().copied().collect()
            };
            assert_eq!(partly, want, "test hook {hook}");
        }
        for r in route_table() {
            if let Rule::Public { reason } | Rule::Caller { reason } = r.rule {
                assert!(reason.len() >= 10, "{r:?} says why");
            }
        }
    }

    #[test]
    fn org_routes_authorize_on_a_scope_the_path_names() {
        for r in route_table() {
            let scope = match r.rule {
                Rule::Bearer { scope, .. } | Rule::PartlyPublic { scope, .. } => Some(scope),
                _ => None,
            };
            if let Some(param) = scope.and_then(ScopeFrom::path_param) {
                assert!(
                    r.path.contains(param),
                    "{r:?}: its scope is not in the path"
                );
            }
            if !r.path.contains("{org}") || r.plane == Plane::Admin {
                continue;
            }
            match scope {
                Some(ScopeFrom::Org | ScopeFrom::App | ScopeFrom::Env | ScopeFrom::BodyInOrg) => {}
                Some(ScopeFrom::Instance) => assert!(
                    INSTANCE_SCOPED_ORG_ROUTES.contains(&(r.method.as_str(), r.path)),
                    "{r:?}: an org route checked on the instance must be listed"
                ),
                _ => panic!("{r:?}: an org route needs a bearer rule on the org or below"),
            }
        }
    }

    #[test]
    fn each_plane_has_its_own_kind_of_rule() {
        let table = route_table();
        for r in &table {
            match (r.plane, r.rule) {
                (Plane::Admin, Rule::AdminPeer) => {}
                (Plane::Admin, _) | (_, Rule::AdminPeer) => {
                    panic!("{r:?}: the admin socket and only it uses AdminPeer")
                }
                (Plane::Node, Rule::Node) => assert!(r.path.contains("{id}"), "{r:?}"),
                (Plane::Node, _) | (_, Rule::Node) => {
                    panic!("{r:?}: the node API and only it uses Node")
                }
                (Plane::Api, _) => {}
            }
        }
        for plane in [Plane::Api, Plane::Node, Plane::Admin] {
            assert!(
                table.iter().any(|r| r.plane == plane),
                "{plane:?} has routes"
            );
        }
        // The admin operations exist on the admin socket only.
        for r in table.iter().filter(|r| r.path.starts_with("/v1/admin/")) {
            assert_eq!(r.plane, Plane::Admin, "{r:?}");
        }
    }
}
