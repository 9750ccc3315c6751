//! Relation tuples over the API (granted and revoked as journal events), `GET
//! /v1/authz/check`, and the paged lookup of what a subject can reach.

use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_authz::{Permission, Relation, Subject, Tuple};
use bulwark_core::{Name, ProblemCode, Scope};
use bulwark_directory::Event;
use bulwark_http::ApiProblem;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, Table, body, clamp_limit, name, problem};
use crate::AppState;
use crate::authn::{Caller, decide};

pub(super) fn routes(t: Table) -> Table {
    use super::table::{Plane::Api, Rule, ScopeFrom::*, Verb::*};
    use bulwark_authz::Permission::*;
    // A grant or revocation takes `grant` on the tuple's scope (in the body), within the
    // path's org; without an org in the path, on the instance.
    t.add(
        Api,
        Post,
        "/v1/orgs/{org}/relations",
        Rule::bearer(Grant, BodyInOrg),
        grant_in_org,
    )
    .add(
        Api,
        Post,
        "/v1/orgs/{org}/relations/revoke",
        Rule::bearer(Grant, BodyInOrg),
        revoke_in_org,
    )
    .add(
        Api,
        Get,
        "/v1/orgs/{org}/relations",
        Rule::bearer(View, Org),
        list_in_org,
    )
    .add(
        Api,
        Post,
        "/v1/relations",
        Rule::bearer(Grant, Instance),
        grant_instance,
    )
    .add(
        Api,
        Post,
        "/v1/relations/revoke",
        Rule::bearer(Grant, Instance),
        revoke_instance,
    )
    .add(
        Api,
        Get,
        "/v1/authz/check",
        Rule::Caller {
            reason: "decides for the caller's own token; another subject needs `administer` on the queried scope",
        },
        check,
    )
    .add(
        Api,
        Get,
        "/v1/authz/lookup",
        Rule::Caller {
            reason: "lists the caller's own relations; another subject's need `administer` on the caller's org (or instance)",
        },
        lookup,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TupleBody {
    scope: String,
    relation: String,
    subject: String,
}

/// Parses and validates a tuple for `org` (`None`: the instance scope only): the scope must
/// lie in the org, the relation must make sense there, and the subject must be a principal
/// of the same org (or an instance principal for instance tuples).
fn validate(s: &AppState, org: Option<&Name>, b: &TupleBody) -> Result<Tuple, ApiProblem> {
    let bad = |d: &str| problem(ProblemCode::BadRequest, d.to_owned());
    let scope = Scope::parse(&b.scope)
        .ok_or_else(|| bad("scope is `instance` or `org/<o>[/app/<a>[/env/<e>]]`"))?;
    if scope.org() != org {
        return Err(bad(
            "the scope must lie in the org of the path (instance tuples go to /v1/relations)",
        ));
    }
    let relation = Relation::parse(&b.relation).ok_or_else(|| bad("unknown relation"))?;
    let fits = match relation {
        Relation::Operator => scope == Scope::Instance,
        Relation::SecretReader | Relation::Exec | Relation::BoundNode => {
            matches!(scope, Scope::Env(..))
        }
        Relation::Deployer => matches!(scope, Scope::App(..) | Scope::Env(..)),
        _ => true,
    };
    if !fits {
        return Err(bad("this relation does not apply to this kind of scope"));
    }
    let subject = Subject::parse(&b.subject)
        .ok_or_else(|| bad("subject is `user:<id>`, `service:<id>` or `node:<id>`"))?;
    let dir = s.directory.read();
    if !dir.exists(&scope) {
        return Err(problem(
            ProblemCode::NotFound,
            format!("{scope} does not exist"),
        ));
    }
    let ok = match &subject {
        // `node:<org>_<node>`: a node of this org.
        Subject::Node(id) => match (org, id.split_once('_')) {
            (Some(o), Some((node_org, node))) => {
                node_org == o.as_str() && dir.node(node_org, node).is_some()
            }
            _ => false,
        },
        Subject::User(id) | Subject::Service(id) => dir
            .principal(id)
            .is_some_and(|p| p.subject() == subject && p.org.as_deref() == org.map(Name::as_str)),
    };
    if !ok {
        return Err(problem(
            ProblemCode::NotFound,
            format!(
                "no principal `{subject}` in this {}",
                if org.is_some() { "org" } else { "instance" }
            ),
        ));
    }
    Ok(Tuple {
        scope,
        relation,
        subject,
    })
}

async fn change(
    s: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<Name>,
    b: &[u8],
    grant: bool,
) -> Result<Response, ApiProblem> {
    let home = org.clone().map_or(Scope::Instance, Scope::Org);
    let req: TupleBody = match body(b) {
        Ok(r) => r,
        Err(e) => {
            // No tuple to authorize on: the path's scope decides whether the caller
            // learns that the body was malformed.
            ctx.authorize(s, caller, Permission::Grant, &home).await?;
            return Err(e);
        }
    };
    // Authorize on the tuple's scope first (403 before any validation that could reveal
    // what exists); a scope outside the path's org is refused right after.
    let target = Scope::parse(&req.scope)
        .filter(|t| t.org() == org.as_ref())
        .unwrap_or(home);
    ctx.authorize(s, caller, Permission::Grant, &target).await?;
    let _seq = s.journal.sequencer.lock().await;
    let t = validate(s, org.as_ref(), &req)?;
    let held = s
        .directory
        .read()
        .relations()
        .holds(&t.subject, &t.scope, t.relation);
    if held == grant {
        return Ok(Json(json!({"tuple": t.to_string(), "changed": false})).into_response());
    }
    let (scope, relation, subject) = (
        t.scope.to_string(),
        t.relation.as_str().to_owned(),
        t.subject.to_string(),
    );
    let event = if grant {
        Event::RelationGrant {
            scope,
            relation,
            subject,
        }
    } else {
        Event::RelationRevoke {
            scope,
            relation,
            subject,
        }
    };
    let seq = ctx
        .commit(
            s,
            caller,
            (Permission::Grant, &target),
            org.as_ref(),
            &event,
        )
        .await?;
    let status = if grant {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"tuple": t.to_string(), "changed": true, "seq": seq})),
    )
        .into_response())
}

async fn grant_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, Some(name(&org)?), &b, true).await
}
async fn revoke_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, Some(name(&org)?), &b, false).await
}
async fn grant_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, None, &b, true).await
}
async fn revoke_instance(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    b: Bytes,
) -> Result<Response, ApiProblem> {
    change(&s, &ctx, &caller, None, &b, false).await
}

/// The tuples of an org: `View` on the org.
async fn list_in_org(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiProblem> {
    let org = name(&org)?;
    let scope = Scope::Org(org.clone());
    ctx.authorize(&s, &caller, Permission::View, &scope).await?;
    let dir = s.directory.read();
    if !dir.exists(&scope) {
        return Err(problem(
            ProblemCode::NotFound,
            format!("{scope} does not exist"),
        ));
    }
    let mut tuples: Vec<String> = dir
        .relations()
        .tuples()
        .filter(|t| t.scope.org() == Some(&org))
        .map(|t| t.to_string())
        .collect();
    tuples.sort();
    Ok(Json(json!({"tuples": tuples})).into_response())
}

#[derive(Deserialize)]
struct CheckQuery {
    permission: String,
    scope: String,
    #[serde(default)]
    subject: Option<String>,
}

fn permission(s: &str) -> Option<Permission> {
    [
        Permission::Administer,
        Permission::Grant,
        Permission::Deploy,
        Permission::ReadSecretValue,
        Permission::Exec,
        Permission::ReadAudit,
        Permission::View,
        Permission::WriteSecret,
    ]
    .into_iter()
    .find(|p| p.as_str() == s)
}

/// `GET /v1/authz/check?permission=&scope=[&subject=]`: the decision and its reason. For
/// the caller itself, as narrowed by its token; for another subject, `administer` on the
/// scope is needed and the subject's relations answer.
async fn check(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Query(q): Query<CheckQuery>,
) -> Result<Response, ApiProblem> {
    let bad = |d: &str| problem(ProblemCode::BadRequest, d.to_owned());
    let p = permission(&q.permission).ok_or_else(|| bad("unknown permission"))?;
    let scope = Scope::parse(&q.scope).ok_or_else(|| bad("bad scope"))?;
    let decision = match q.subject.as_deref() {
        None => decide(&s, &caller, p, &scope),
        Some(sub) if sub == caller.subject.to_string() => decide(&s, &caller, p, &scope),
        Some(sub) => {
            let subject = Subject::parse(sub).ok_or_else(|| bad("bad subject"))?;
            ctx.authorize(&s, &caller, Permission::Administer, &scope)
                .await?;
            s.directory.read().relations().check(&subject, p, &scope)
        }
    };
    Ok(Json(json!({
        "allowed": decision.allowed,
        "reason": decision.reason.to_string(),
        "permission": p.as_str(),
        "scope": scope.to_string(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct LookupQuery {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
}

/// Signs "after this scope, for this subject" so a cursor cannot be forged or moved to
/// another subject.
fn sign_cursor(key: &hmac::Key, subject: &str, after: &str) -> String {
    let body = json!({"s": subject, "a": after}).to_string();
    let tag = hmac::sign(key, body.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(body),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

fn open_cursor(key: &hmac::Key, subject: &str, cursor: &str) -> Option<String> {
    let (b, t) = cursor.split_once('.')?;
    let body = URL_SAFE_NO_PAD.decode(b).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(t).ok()?;
    hmac::verify(key, &body, &tag).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    (v["s"] == subject).then(|| v["a"].as_str().map(str::to_owned))?
}

/// `GET /v1/authz/lookup[?subject=][&limit=][&cursor=]`: the scopes a subject holds
/// relations on, sorted, paged (`limit` 1–200), with signed cursors. Another subject than
/// the caller needs `administer` on the instance, or on the caller's org (and then only
/// that org's scopes are listed).
async fn lookup(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    caller: Caller,
    Query(q): Query<LookupQuery>,
) -> Result<Response, ApiProblem> {
    let subject = match q.subject.as_deref() {
        None => caller.subject.clone(),
        Some(sub) => {
            let subject = Subject::parse(sub)
                .ok_or_else(|| problem(ProblemCode::BadRequest, "bad subject"))?;
            if subject != caller.subject {
                let scope = caller.org.clone().map_or(Scope::Instance, Scope::Org);
                ctx.authorize(&s, &caller, Permission::Administer, &scope)
                    .await?;
            }
            subject
        }
    };
    let sub = subject.to_string();
    let after = match &q.cursor {
        None => None,
        Some(c) => Some(open_cursor(&s.auth.cursor_key, &sub, c).ok_or_else(|| {
            problem(
                ProblemCode::InvalidCursor,
                "the cursor was not issued for this lookup",
            )
        })?),
    };
    let limit = clamp_limit(q.limit);
    let mut all: Vec<(String, Vec<Relation>)> = s
        .directory
        .read()
        .relations()
        .scopes_of(&subject)
        .into_iter()
        .filter(|(scope, _)| caller.org.is_none() || scope.org() == caller.org.as_ref())
        .map(|(scope, rels)| (scope.to_string(), rels))
        .collect();
    // Cursors compare the text form, so page in that order.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut page = Vec::new();
    let mut more = false;
    for (text, rels) in all {
        if after.as_ref().is_some_and(|a| text.as_str() <= a.as_str()) {
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        page.push((text, rels));
    }
    let next = if more {
        page.last()
            .map(|(t, _)| sign_cursor(&s.auth.cursor_key, &sub, t))
    } else {
        None
    };
    let items: Vec<serde_json::Value> = page
        .into_iter()
        .map(|(scope, rels)| json!({"scope": scope, "relations": rels.iter().map(|r| r.as_str()).collect::<Vec<_>>()}))
        .collect();
    Ok(Json(json!({"subject": sub, "items": items, "next_cursor": next})).into_response())
}
