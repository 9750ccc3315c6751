//! Principals: service principals (client credentials, secret shown once, Argon2id hash
//! journaled), operator-created users (until OIDC federation), rotation, token binding,
//! "revoke every token" (a not-before), deletion, and the first operator
//! ([`bootstrap`]). Org principals live in their org; instance principals (operators) in
//! the instance (`org` is `None`).
//!
//! Every operation needs `administer` on the principal's org (or the instance) to change,
//! `view` to read; a principal of another org is not found.

use bulwark_authz::{Permission, Relation};
use bulwark_core::{Name, ProblemCode, Scope};
use bulwark_directory::{Binding, Event, Principal, PrincipalKind};
use bulwark_identity::{assertion::ClientKey, client_secret};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::Request;
use crate::AppState;
use crate::error::Error;

/// Why a principal operation was refused, besides authorization and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalError {
    /// The name is empty, longer than 128 characters or holds a control character.
    BadName,
    /// A key was given for a principal that is not a service.
    KeyOfNonService,
    /// The key was refused (the refusal's reason).
    KeyRefused(&'static str),
    /// A token binding was given for a user.
    UserBinding,
    /// No such principal in this org (or the instance).
    NotFound(String),
    /// A principal asked to delete itself.
    DeleteSelf,
    /// Rotation of a principal without a secret (not a service).
    NoSecret,
    /// A token binding for a principal without client credentials (not a service).
    NoBinding,
    /// `bootstrap` once the instance has an operator.
    OperatorExists,
    /// The credential could not be issued.
    Issuance,
    /// The random source failed.
    Random,
}

impl std::fmt::Display for PrincipalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadName => f.write_str("name must be 1 to 128 printable characters"),
            Self::KeyOfNonService => f.write_str("only service principals register keys"),
            Self::KeyRefused(reason) => write!(f, "jwk refused: {reason}"),
            Self::UserBinding => f.write_str("users have no client credentials to bind"),
            Self::NotFound(id) => write!(f, "principal `{id}` does not exist"),
            Self::DeleteSelf => f.write_str("a principal cannot delete itself"),
            Self::NoSecret => f.write_str("only service principals have secrets"),
            Self::NoBinding => f.write_str("only service principals have a token binding"),
            Self::OperatorExists => {
                f.write_str("the instance has an operator already; create more with the API")
            }
            Self::Issuance => f.write_str("credential issuance failed"),
            Self::Random => f.write_str("random source failed"),
        }
    }
}

impl std::error::Error for PrincipalError {}

impl From<PrincipalError> for Error {
    fn from(e: PrincipalError) -> Self {
        let code = match &e {
            PrincipalError::BadName
            | PrincipalError::KeyOfNonService
            | PrincipalError::KeyRefused(_)
            | PrincipalError::UserBinding
            | PrincipalError::DeleteSelf
            | PrincipalError::NoSecret
            | PrincipalError::NoBinding => ProblemCode::BadRequest,
            PrincipalError::NotFound(_) => ProblemCode::NotFound,
            PrincipalError::OperatorExists => ProblemCode::AlreadyExists,
            // Shown as they are (no cause to hide).
            PrincipalError::Issuance | PrincipalError::Random => ProblemCode::Internal,
        };
        Self::refused(code, e.to_string())
    }
}

/// A principal to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    /// User or service.
    pub kind: PrincipalKind,
    /// Its display name (1 to 128 printable characters).
    pub name: String,
    /// Services only: how its tokens are bound (default: the default binding).
    #[serde(default)]
    pub token_binding: Option<Binding>,
    /// Services only: a public key for `private_key_jwt`.
    #[serde(default)]
    pub jwk: Option<serde_json::Value>,
}

/// A new token binding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBinding {
    /// The binding.
    pub token_binding: Binding,
}

/// A principal created.
#[derive(Debug)]
pub struct Created {
    /// Its id (a service's client id).
    pub id: String,
    /// Its kind.
    pub kind: PrincipalKind,
    /// Its org (`None`: the instance).
    pub org: Option<Name>,
    /// Its token binding.
    pub token_binding: Binding,
    /// A service's client secret, shown this once.
    pub client_secret: Option<Zeroizing<String>>,
    /// The seq of its creation.
    pub seq: u64,
}

/// A service principal's new secret.
#[derive(Debug)]
pub struct Rotated {
    /// The client id.
    pub client_id: String,
    /// The new secret, shown this once.
    pub client_secret: Zeroizing<String>,
    /// The seq of the rotation.
    pub seq: u64,
}

/// Every token of a principal revoked.
#[derive(Debug)]
pub struct TokensRevoked {
    /// Tokens issued before this second (Unix) are refused.
    pub not_before: i64,
    /// The seq of the revocation.
    pub seq: u64,
}

/// The first operator.
#[derive(Debug)]
pub struct Bootstrapped {
    /// Its client id.
    pub client_id: String,
    /// Its secret, shown this once.
    pub client_secret: Zeroizing<String>,
    /// The seq of its `operator` grant.
    pub seq: u64,
}

fn scope_of(org: Option<&Name>) -> Scope {
    org.map_or(Scope::Instance, |o| Scope::Org(o.clone()))
}

fn random_id(prefix: &str) -> Result<String, PrincipalError> {
    let mut b = [0u8; 12];
    bulwark_crypto::fill_random(&mut b).map_err(|_| PrincipalError::Random)?;
    Ok(format!("{prefix}{}", bulwark_identity::jose::b64(&b)))
}

/// Issues a credential off the async runtime (Argon2id is deliberately slow).
async fn issue_credential() -> Result<client_secret::Issued, PrincipalError> {
    tokio::task::spawn_blocking(client_secret::issue)
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or(PrincipalError::Issuance)
}

/// What a new principal's fields must satisfy, before anything is issued.
fn check_new(c: &NewPrincipal) -> Result<(), PrincipalError> {
    if c.name.is_empty() || c.name.chars().count() > 128 || c.name.chars().any(char::is_control) {
        return Err(PrincipalError::BadName);
    }
    if let Some(jwk) = &c.jwk {
        if c.kind != PrincipalKind::Service {
            return Err(PrincipalError::KeyOfNonService);
        }
        ClientKey::parse(jwk).map_err(|r| PrincipalError::KeyRefused(r.reason()))?;
    }
    if c.kind == PrincipalKind::User && c.token_binding.is_some() {
        return Err(PrincipalError::UserBinding);
    }
    Ok(())
}

/// Looks up `id` within `org` (not found for a principal of another org: the caller was
/// authorized on this org only).
fn find(state: &AppState, org: Option<&Name>, id: &str) -> Result<Principal, PrincipalError> {
    state
        .directory
        .read()
        .principal(id)
        .filter(|p| p.org.as_deref() == org.map(Name::as_str))
        .cloned()
        .ok_or_else(|| PrincipalError::NotFound(id.to_owned()))
}

/// Creates the principal `input` describes in `org`: `administer` there, decided before
/// `input` is read; the org must exist. Service principals get a client id and a secret
/// shown once. The credential is hashed first (slow); the org and the caller's rights are
/// checked again under the sequencer.
pub async fn create<E: Into<Error>>(
    state: &AppState,
    req: &Request<'_>,
    org: Option<Name>,
    input: impl FnOnce() -> Result<NewPrincipal, E>,
) -> Result<Created, Error> {
    let scope = scope_of(org.as_ref());
    req.authorize(state, Permission::Administer, &scope).await?;
    let c = input().map_err(Into::into)?;
    if !state.directory.read().exists(&scope) {
        return Err(Error::not_found(&scope));
    }
    check_new(&c)?;
    let (id, secret, hash) = match c.kind {
        PrincipalKind::Service => {
            let issued = issue_credential().await?;
            (
                issued.client_id,
                Some(issued.client_secret),
                Some(issued.hash),
            )
        }
        PrincipalKind::User => (random_id("usr_")?, None, None),
    };
    let binding = c.token_binding.unwrap_or_default();
    let event = Event::PrincipalCreate {
        id: id.clone(),
        kind: c.kind,
        name: c.name,
        org: org.as_ref().map(ToString::to_string),
        token_binding: binding,
        secret_hash: hash,
        jwk: c.jwk,
    };
    let _seq = state.journal.sequencer.lock().await;
    if !state.directory.read().exists(&scope) {
        return Err(Error::not_found(&scope));
    }
    let seq = req
        .commit(
            state,
            (Permission::Administer, &scope),
            org.as_ref(),
            &event,
        )
        .await?;
    Ok(Created {
        id,
        kind: c.kind,
        org,
        token_binding: binding,
        client_secret: secret,
        seq,
    })
}

/// The principals of `org`: `view` there; the org must exist.
pub async fn list(
    state: &AppState,
    req: &Request<'_>,
    org: Option<&Name>,
) -> Result<Vec<Principal>, Error> {
    let scope = scope_of(org);
    req.authorize(state, Permission::View, &scope).await?;
    let dir = state.directory.read();
    if !dir.exists(&scope) {
        return Err(Error::not_found(&scope));
    }
    Ok(dir
        .principals_in(org.map(Name::as_str))
        .into_iter()
        .cloned()
        .collect())
}

/// The principal `id` of `org`: `view` there.
pub async fn get(
    state: &AppState,
    req: &Request<'_>,
    org: Option<&Name>,
    id: &str,
) -> Result<Principal, Error> {
    req.authorize(state, Permission::View, &scope_of(org))
        .await?;
    Ok(find(state, org, id)?)
}

/// Deletes the principal `id` of `org` (not the caller itself): `administer` there. The
/// seq of the deletion.
pub async fn delete(
    state: &AppState,
    req: &Request<'_>,
    org: Option<&Name>,
    id: &str,
) -> Result<u64, Error> {
    let scope = scope_of(org);
    req.authorize(state, Permission::Administer, &scope).await?;
    let _seq = state.journal.sequencer.lock().await;
    let p = find(state, org, id)?;
    if p.id == req.caller.principal {
        return Err(PrincipalError::DeleteSelf.into());
    }
    req.commit(
        state,
        (Permission::Administer, &scope),
        org,
        &Event::PrincipalDelete { id: p.id },
    )
    .await
}

/// Gives the service principal `id` of `org` a new secret: `administer` there. The
/// credential is hashed first (slow); the principal is looked up again under the
/// sequencer.
pub async fn rotate_secret(
    state: &AppState,
    req: &Request<'_>,
    org: Option<&Name>,
    id: &str,
) -> Result<Rotated, Error> {
    let scope = scope_of(org);
    req.authorize(state, Permission::Administer, &scope).await?;
    let p = find(state, org, id)?;
    if p.kind != PrincipalKind::Service {
        return Err(PrincipalError::NoSecret.into());
    }
    let issued = issue_credential().await?;
    let _seq = state.journal.sequencer.lock().await;
    find(state, org, id)?;
    let seq = req
        .commit(
            state,
            (Permission::Administer, &scope),
            org,
            &Event::PrincipalRotateSecret {
                id: p.id.clone(),
                secret_hash: issued.hash,
            },
        )
        .await?;
    Ok(Rotated {
        client_id: p.id,
        client_secret: issued.client_secret,
        seq,
    })
}

/// Revokes every token the principal `id` of `org` holds: `administer` there.
pub async fn revoke_tokens(
    state: &AppState,
    req: &Request<'_>,
    org: Option<&Name>,
    id: &str,
) -> Result<TokensRevoked, Error> {
    let scope = scope_of(org);
    req.authorize(state, Permission::Administer, &scope).await?;
    let _seq = state.journal.sequencer.lock().await;
    let p = find(state, org, id)?;
    // Tokens minted in the current second are revoked too (iat has second resolution).
    let not_before = bulwark_identity::jose::now_secs() + 1;
    let seq = req
        .commit(
            state,
            (Permission::Administer, &scope),
            org,
            &Event::PrincipalRevokeTokens {
                id: p.id,
                not_before,
            },
        )
        .await?;
    Ok(TokensRevoked { not_before, seq })
}

/// Sets how the tokens of the service principal `id` of `org` are bound: `administer`
/// there, decided before `input` is read. The binding set and its seq.
pub async fn set_binding<E: Into<Error>>(
    state: &AppState,
    req: &Request<'_>,
    org: Option<&Name>,
    id: &str,
    input: impl FnOnce() -> Result<SetBinding, E>,
) -> Result<(Binding, u64), Error> {
    let scope = scope_of(org);
    req.authorize(state, Permission::Administer, &scope).await?;
    let SetBinding { token_binding } = input().map_err(Into::into)?;
    let _seq = state.journal.sequencer.lock().await;
    let p = find(state, org, id)?;
    if p.kind != PrincipalKind::Service {
        return Err(PrincipalError::NoBinding.into());
    }
    let seq = req
        .commit(
            state,
            (Permission::Administer, &scope),
            org,
            &Event::PrincipalSetBinding {
                id: p.id,
                token_binding,
            },
        )
        .await?;
    Ok((token_binding, seq))
}

/// `bulwark admin bootstrap` by `actor`: the first operator, a service principal of the
/// instance holding `operator` on it. Refused once any instance principal holds
/// `operator` (checked and appended under the sequencer).
pub async fn bootstrap(
    state: &AppState,
    binding: Binding,
    actor: &str,
) -> Result<Bootstrapped, Error> {
    let issued = issue_credential().await?;
    let _seq = state.journal.sequencer.lock().await;
    let already = {
        let dir = state.directory.read();
        dir.principals_in(None).iter().any(|p| {
            dir.relations()
                .holds(&p.subject(), &Scope::Instance, Relation::Operator)
        })
    };
    if already {
        return Err(PrincipalError::OperatorExists.into());
    }
    let create = Event::PrincipalCreate {
        id: issued.client_id.clone(),
        kind: PrincipalKind::Service,
        name: "bootstrap operator".into(),
        org: None,
        token_binding: binding,
        secret_hash: Some(issued.hash.clone()),
        jwk: None,
    };
    super::append_event(state, &create, actor, None, None).await?;
    let grant = Event::RelationGrant {
        scope: Scope::Instance.to_string(),
        relation: Relation::Operator.as_str().into(),
        subject: format!("service:{}", issued.client_id),
    };
    let seq = super::append_event(state, &grant, actor, None, None).await?;
    Ok(Bootstrapped {
        client_id: issued.client_id,
        client_secret: issued.client_secret,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: PrincipalKind, name: &str) -> NewPrincipal {
        NewPrincipal {
            kind,
            name: name.into(),
            token_binding: None,
            jwk: None,
        }
    }

    #[test]
    fn names_are_one_to_128_printable_characters() {
        assert_eq!(
            check_new(&new(PrincipalKind::Service, "")),
            Err(PrincipalError::BadName)
        );
        assert_eq!(
            check_new(&new(PrincipalKind::Service, "a\nb")),
            Err(PrincipalError::BadName)
        );
        assert_eq!(
            check_new(&new(PrincipalKind::Service, &"é".repeat(129))),
            Err(PrincipalError::BadName)
        );
        assert_eq!(
            check_new(&new(PrincipalKind::Service, &"é".repeat(128))),
            Ok(())
        );
    }

    #[test]
    fn users_have_no_keys_and_no_binding() {
        let mut u = new(PrincipalKind::User, "alice");
        u.jwk = Some(serde_json::json!({}));
        assert_eq!(check_new(&u), Err(PrincipalError::KeyOfNonService));
        let mut u = new(PrincipalKind::User, "alice");
        u.token_binding = Some(Binding::default());
        assert_eq!(check_new(&u), Err(PrincipalError::UserBinding));
    }

    #[test]
    fn refusals_keep_their_codes_and_details() {
        let e: bulwark_core::Problem = Error::from(PrincipalError::NotFound("svc_x".into())).into();
        assert_eq!(e.code, ProblemCode::NotFound);
        assert_eq!(e.detail, "principal `svc_x` does not exist");
        let e: bulwark_core::Problem = Error::from(PrincipalError::OperatorExists).into();
        assert_eq!(e.code, ProblemCode::AlreadyExists);
        let e: bulwark_core::Problem = Error::from(PrincipalError::Issuance).into();
        assert_eq!(e.code, ProblemCode::Internal);
        assert_eq!(e.detail, "credential issuance failed");
    }
}
