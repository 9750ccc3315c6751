//! Secrets: put (a new version), the audited read, metadata, list, delete (a tombstone
//! version), destroy (crypto-shred one version), restore; the ciphertext cache and the
//! erasing of destroyed rows at start-up.
//!
//! The read path is [`bulwark_secrets::read::AuditedRead`], driven here by [`drive`]: the
//! machine decides the order (rate limits per node and per org → authorize, denial
//! journaled → name → exists → journal the read, fail-closed → still live → digest and
//! AEAD); this module only performs each step. The API's reads and the node API's (one
//! secret, or a whole env as a secrets file) drive the same machine through a [`Reader`].
//! Plaintext lives in zeroizing buffers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use bulwark_authz::{Permission, Subject};
use bulwark_core::{Problem, ProblemCode, RequestId, Scope};
use bulwark_secrets::envelope::{self, Coordinates, Envelope};
use bulwark_secrets::read::{AuditedRead, EnvKey, Input, Next, Rate, ReadError, Revealed};
use bulwark_secrets::view::{SecretEvent, SecretKey, VersionMeta, VersionState, digest};
use bulwark_store::{SecretBlobs, SecretRow};
use zeroize::Zeroizing;

use super::Request;
use crate::AppState;
use crate::error::Error;

/// The stored envelopes, loaded at start-up and kept in step with the store: reads never
/// touch the disk. They hold only ciphertext.
#[derive(Default)]
pub struct SecretCache {
    rows: RwLock<HashMap<(SecretKey, u64), Envelope>>,
}

impl SecretCache {
    /// Loads every row of `blobs`.
    pub fn load(blobs: &dyn SecretBlobs) -> anyhow::Result<Self> {
        let mut rows = HashMap::new();
        for r in blobs.load_all()? {
            let key = SecretKey {
                org: r.org,
                app: r.app,
                env: r.env,
                name: r.name,
            };
            if let Some(ciphertext) = r.ciphertext {
                rows.insert(
                    (key, r.version),
                    Envelope {
                        kek_kid: r.kek_kid,
                        wrapped_dek: r.wrapped_dek,
                        ciphertext,
                    },
                );
            }
        }
        Ok(Self {
            rows: RwLock::new(rows),
        })
    }

    fn get(&self, key: &SecretKey, version: u64) -> Option<Envelope> {
        self.rows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(key.clone(), version))
            .cloned()
    }

    fn insert(&self, key: SecretKey, version: u64, env: Envelope) {
        self.rows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((key, version), env);
    }

    fn remove(&self, key: &SecretKey, version: u64) {
        self.rows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(key.clone(), version));
    }
}

/// Erases stored rows of versions the journal says are destroyed (a destroy whose erase
/// failed, or a crash between journal and store).
pub fn shred_destroyed(
    view: &bulwark_secrets::view::SecretsView,
    blobs: &dyn SecretBlobs,
    cache: &SecretCache,
) {
    let rows = cache
        .rows
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    for (key, version) in rows {
        let destroyed = view.versions(&key).is_some_and(|vs| {
            vs.iter()
                .any(|m| m.version == version && m.state == VersionState::Destroyed)
        });
        if destroyed {
            cache.remove(&key, version);
            if let Err(e) = blobs.destroy(&key.org, &key.app, &key.env, &key.name, version) {
                tracing::error!(error = %e, "erasing a destroyed secret version failed");
            }
        }
    }
}

/// Why a secrets operation refused.
#[derive(Debug)]
pub enum SecretsError {
    /// The calling node is over its read rate (or, for renewals, its request rate).
    NodeRateLimited {
        /// Seconds to wait.
        retry_after: u64,
        /// What the rate limits.
        what: &'static str,
    },
    /// The caller's org is over its secret-read rate.
    OrgRateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Not a secret name (the detail differs between the API and the node API).
    BadName(&'static str),
    /// The value is over 64 KiB.
    ValueTooLarge,
    /// Not there: `what` does not exist.
    NotFound(String),
    /// A stored row failed its integrity check during a read: nothing was returned.
    IntegrityFailure,
    /// A stored row failed its integrity check during a restore: nothing was restored.
    RestoreIntegrityFailure,
    /// The secret store cannot write.
    StoreUnwritable,
    /// More live secrets than one secrets file holds.
    TooManyForFile,
    /// The secrets file cannot be rendered.
    File(String),
}

impl From<SecretsError> for Error {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::NodeRateLimited { retry_after, what } => Error::Refused(
                Problem::new(
                    ProblemCode::PerNodeRateLimited,
                    format!("this node is over its {what} rate"),
                )
                .retry_after(retry_after),
            ),
            SecretsError::OrgRateLimited { retry_after } => Error::Refused(
                Problem::new(
                    ProblemCode::PerOrgRateLimited,
                    "this org is over its secret-read rate",
                )
                .retry_after(retry_after),
            ),
            SecretsError::BadName(detail) => Error::bad_request(detail),
            SecretsError::ValueTooLarge => Error::refused(
                ProblemCode::BodyTooLarge,
                "secret values are at most 64 KiB",
            ),
            SecretsError::NotFound(what) => Error::not_found(what),
            SecretsError::IntegrityFailure => Error::refused(
                ProblemCode::IntegrityFailure,
                "the stored secret failed its integrity check; nothing was returned",
            ),
            SecretsError::RestoreIntegrityFailure => Error::refused(
                ProblemCode::IntegrityFailure,
                "the stored version failed its integrity check; nothing was restored",
            ),
            SecretsError::StoreUnwritable => Error::Refused(
                Problem::new(ProblemCode::NotReady, "the secret store cannot write").retry_after(1),
            ),
            SecretsError::TooManyForFile => {
                Error::bad_request("more secrets than one secrets file holds")
            }
            SecretsError::File(detail) => Error::bad_request(detail),
        }
    }
}

/// A 500 whose detail is shown as it always was.
fn internal(detail: impl Into<String>) -> Error {
    Error::refused(ProblemCode::Internal, detail)
}

fn coordinates(key: &SecretKey, version: u64) -> Coordinates<'_> {
    Coordinates {
        org: &key.org,
        app: &key.app,
        env: &key.env,
        name: &key.name,
        version,
    }
}

/// The env of `scope`.
fn env_key(scope: &Scope) -> Result<EnvKey, Error> {
    let Scope::Env(o, a, e) = scope else {
        return Err(Error::bad_request("not an env"));
    };
    Ok(EnvKey {
        org: o.to_string(),
        app: a.to_string(),
        env: e.to_string(),
    })
}

const BAD_NAME: &str = "secret names match ^[a-z][a-z0-9_-]{0,62}$";

/// The secret `name` of env `scope`, or 400.
fn secret_key(scope: &Scope, name: &str) -> Result<SecretKey, Error> {
    if !bulwark_secrets::name::is_valid(name) {
        return Err(SecretsError::BadName(BAD_NAME).into());
    }
    Ok(env_key(scope)?.secret(name))
}

// ---------------------------------------------------------------------------------------
// The audited read.

/// Who reads, as the read path needs to know it: whose rates, how it is authorized, what
/// the journal records.
pub trait Reader: Sync {
    /// The detail of the 400 for a name that is not a secret name.
    const BAD_NAME: &'static str;
    /// The key of the caller's node rate, if the caller is a node.
    fn node_bucket(&self) -> Option<String>;
    /// The key of the caller's org rate.
    fn org_bucket(&self) -> String;
    /// The journal's actor.
    fn actor(&self) -> String;
    /// The request id.
    fn corr(&self) -> Option<&RequestId>;
    /// Authorizes reading secret values (journaling a denial): the env read.
    fn authorize(&self, s: &AppState) -> impl Future<Output = Result<EnvKey, Error>> + Send;
}

/// Counts one secret read of `bucket` against `quota` on the shared rate port; the whole
/// seconds to wait (≥ 1) when over it. A port that cannot answer refuses (fail closed).
pub async fn read_rate(
    s: &AppState,
    namespace: &str,
    bucket: &str,
    quota: Option<bulwark_shared::Quota>,
) -> Result<(), u64> {
    let Some(quota) = quota else {
        return Ok(());
    };
    let key = bulwark_shared::Key::from_parts(&[bucket.as_bytes()]);
    match s.shared.rate.check(namespace, key, quota).await {
        Ok(bulwark_shared::Rate::Allowed) => Ok(()),
        Ok(bulwark_shared::Rate::Limited { retry_after }) => {
            Err((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
        }
        Err(e) => {
            tracing::error!(error = %e, namespace, "the rate limiter cannot answer: refused");
            Err(1)
        }
    }
}

/// Drives `read` to its end: the values read, each journaled before it was decrypted.
pub async fn drive<R: Reader>(
    s: &AppState,
    who: &R,
    mut read: AuditedRead,
) -> Result<Vec<Revealed>, Error> {
    let actor = who.actor();
    let corr = who.corr().map(RequestId::as_str);
    let mut next = read.start();
    loop {
        let input = match next {
            Next::Done(result) => return result.map_err(|e| read_error::<R>(e)),
            Next::CheckRate(Rate::Node) => Input::Rate(match who.node_bucket() {
                Some(b) => read_rate(s, "secret-reads/node", &b, s.secrets.node_reads).await,
                None => Ok(()),
            }),
            Next::CheckRate(Rate::Org) => Input::Rate(
                read_rate(
                    s,
                    "secret-reads/org",
                    &who.org_bucket(),
                    s.secrets.org_reads,
                )
                .await,
            ),
            Next::Authorize => match who.authorize(s).await {
                Ok(env) => Input::Authorized(env),
                Err(e) => Input::Failed(e),
            },
            Next::List { env, limit } => Input::Listed(
                s.secrets
                    .view
                    .list(&env.org, &env.app, &env.env, None, limit),
            ),
            Next::Lookup(key) | Next::Recheck(key) => {
                Input::Versions(s.secrets.view.versions(&key))
            }
            // The stored row as of the decision (a destroy racing this read removes it from
            // the cache; the snapshot keeps the integrity check honest either way).
            Next::Fetch { key, version } => Input::Row(s.secrets.cache.get(&key, version)),
            // Journal the read before a byte is decrypted.
            Next::Journal(record) => match record.draft(&actor, corr) {
                Err(_) => Input::Failed(internal("entry does not encode")),
                Ok(draft) => match s.journal.ledger.append(draft).await {
                    Ok(a) => Input::Journaled(a.seq),
                    Err(e) => Input::Failed(e.into()),
                },
            },
            Next::Decrypt { key, version, row } => Input::Decrypted(
                envelope::open(&s.secrets.kek, &coordinates(&key, version), &row).map_err(|_| ()),
            ),
            Next::RecordIntegrityFailure(record) => {
                metrics::counter!(bulwark_http::metrics::INTEGRITY_FAIL_TOTAL).increment(1);
                tracing::error!(
                    why = record.why.unwrap_or_default(),
                    resource = bulwark_secrets::view::resource(&record.key, record.version),
                    "secret integrity failure"
                );
                if let Ok(d) = record.draft(&actor, corr)
                    && let Err(e) = s.journal.ledger.append(d).await
                {
                    tracing::error!(error = %e, "could not journal an integrity failure");
                }
                Input::Recorded
            }
        };
        next = read.advance(input);
    }
}

fn read_error<R: Reader>(e: ReadError<Error>) -> Error {
    match e {
        ReadError::RateLimited(Rate::Node, retry_after) => SecretsError::NodeRateLimited {
            retry_after,
            what: "secret-read",
        }
        .into(),
        ReadError::RateLimited(Rate::Org, retry_after) => {
            SecretsError::OrgRateLimited { retry_after }.into()
        }
        ReadError::Failed(e) => e,
        ReadError::BadName => SecretsError::BadName(R::BAD_NAME).into(),
        ReadError::NotFound(missing) => SecretsError::NotFound(missing.to_string()).into(),
        ReadError::TooMany => SecretsError::TooManyForFile.into(),
        ReadError::Integrity(_) => SecretsError::IntegrityFailure.into(),
        ReadError::OutOfOrder => Error::internal("the read path was driven out of order"),
    }
}

/// A principal reading through the API.
struct ApiReader<'a> {
    req: &'a Request<'a>,
    scope: &'a Scope,
}

impl Reader for ApiReader<'_> {
    const BAD_NAME: &'static str = BAD_NAME;

    fn node_bucket(&self) -> Option<String> {
        match &self.req.caller.subject {
            Subject::Node(node) => Some(node.to_string()),
            _ => None,
        }
    }

    // Keyed by the caller's org, not the path's: a principal of another org hammering this
    // org's paths (and getting 403s) must not use up this org's reads.
    fn org_bucket(&self) -> String {
        self.req
            .caller
            .org
            .as_ref()
            .map_or_else(|| "(instance)".to_owned(), ToString::to_string)
    }

    fn actor(&self) -> String {
        self.req.caller.subject.to_string()
    }

    fn corr(&self) -> Option<&RequestId> {
        self.req.corr
    }

    async fn authorize(&self, s: &AppState) -> Result<EnvKey, Error> {
        self.req
            .authorize(s, Permission::ReadSecretValue, self.scope)
            .await?;
        env_key(self.scope)
    }
}

/// Reads secret `name` of env `scope` (`version`, or the latest) for an API caller.
pub async fn read(
    s: &AppState,
    req: &Request<'_>,
    scope: &Scope,
    name: &str,
    version: Option<u64>,
) -> Result<Revealed, Error> {
    let node_caller = matches!(req.caller.subject, Subject::Node(_));
    let read = AuditedRead::one(name, version, node_caller);
    drive(s, &ApiReader { req, scope }, read)
        .await?
        .pop()
        .ok_or_else(|| Error::internal("a read ended without its value"))
}

// ---------------------------------------------------------------------------------------
// Metadata and lists.

/// A page of an env's secrets.
pub struct SecretList {
    /// Name and latest version of each secret not deleted.
    pub items: Vec<(String, u64)>,
    /// Where the next page starts (`None`: this is the last).
    pub next_after: Option<String>,
}

/// Names and versions only, paged by name.
pub async fn list(
    s: &AppState,
    req: &Request<'_>,
    scope: &Scope,
    after: Option<&str>,
    limit: usize,
) -> Result<SecretList, Error> {
    req.authorize(s, Permission::View, scope).await?;
    if !s.directory.read().exists(scope) {
        return Err(Error::not_found(scope));
    }
    let env = env_key(scope)?;
    let page = s
        .secrets
        .view
        .list(&env.org, &env.app, &env.env, after, limit + 1);
    let more = page.len() > limit;
    let items = page
        .iter()
        .take(limit)
        .filter(|(_, m)| m.state != VersionState::Tombstone)
        .map(|(n, m)| (n.clone(), m.version))
        .collect();
    let next_after = more
        .then(|| page.get(limit - 1).map(|(n, _)| n.clone()))
        .flatten();
    Ok(SecretList { items, next_after })
}

/// A secret's versions.
pub struct Metadata {
    /// The secret's name.
    pub name: String,
    /// Its versions, ascending.
    pub versions: Vec<VersionMeta>,
}

/// The versions of secret `name` of env `scope`.
pub async fn metadata(
    s: &AppState,
    req: &Request<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Metadata, Error> {
    req.authorize(s, Permission::View, scope).await?;
    let key = secret_key(scope, name)?;
    let versions = s
        .secrets
        .view
        .versions(&key)
        .ok_or_else(|| SecretsError::NotFound(format!("secret `{}`", key.name)))?;
    Ok(Metadata {
        name: key.name,
        versions,
    })
}

// ---------------------------------------------------------------------------------------
// Changes.

/// A version written (put or restore).
pub struct Written {
    /// The secret's name.
    pub name: String,
    /// The new version.
    pub version: u64,
    /// The version it restores.
    pub restored_from: Option<u64>,
    /// The `secret.put` entry.
    pub seq: u64,
}

/// A change that made no new value: a delete (the tombstone's version) or a destroy (the
/// destroyed version).
pub struct Changed {
    /// The secret's name.
    pub name: String,
    /// The version the change is about.
    pub version: u64,
    /// Its entry.
    pub seq: u64,
}

/// Puts a new version of secret `name` of env `scope`. `value` is decoded only once the
/// caller may write (403 before 400).
pub async fn put(
    s: &Arc<AppState>,
    req: &Request<'_>,
    scope: &Scope,
    name: &str,
    value: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, Error>,
) -> Result<Written, Error> {
    req.authorize(s, Permission::WriteSecret, scope).await?;
    let key = secret_key(scope, name)?;
    let value = value()?;
    if value.len() > envelope::MAX_VALUE_LEN {
        return Err(SecretsError::ValueTooLarge.into());
    }
    let _seq = s.journal.sequencer.lock().await;
    if !s.directory.read().exists(scope) {
        return Err(Error::not_found(scope));
    }
    // After an uncertain append failure the view may lag the journal: numbering a new
    // version from it could reuse one. Writes wait until the journal is healthy again.
    if !s.journal.ledger.is_healthy() {
        return Err(Error::JournalUnavailable(
            "the journal is not healthy".into(),
        ));
    }
    let version = s.secrets.view.latest(&key).map_or(1, |m| m.version + 1);
    let seq = write_version(s, req, scope, &key, version, &value, None).await?;
    super::events::secrets_changed(s, scope, &key.name);
    Ok(Written {
        name: key.name,
        version,
        restored_from: None,
        seq,
    })
}

/// Seals `value` as `version` of `key`, stores its row, caches it and journals the put
/// (re-deciding `write_secret` under the caller's sequencer first); the entry's seq.
async fn write_version(
    s: &AppState,
    req: &Request<'_>,
    scope: &Scope,
    key: &SecretKey,
    version: u64,
    value: &[u8],
    restored_from: Option<u64>,
) -> Result<u64, Error> {
    let sealed = envelope::seal(&s.secrets.kek, &coordinates(key, version), value)
        .map_err(|e| internal(e.to_string()))?;
    let row = SecretRow {
        org: key.org.clone(),
        app: key.app.clone(),
        env: key.env.clone(),
        name: key.name.clone(),
        version,
        kek_kid: sealed.kek_kid.clone(),
        wrapped_dek: sealed.wrapped_dek.clone(),
        ciphertext: Some(sealed.ciphertext.clone()),
    };
    req.recheck(s, Permission::WriteSecret, scope)?;
    store_new(s, row).await?;
    let event = SecretEvent::Put {
        key: key.clone(),
        version,
        digest: digest(&sealed),
        kek_kid: sealed.kek_kid.clone(),
        size: value.len() as u64,
        restored_from,
    };
    // In the cache before the journal makes the version readable (the view decides what
    // is readable; a read must never find a live version without its row).
    s.secrets.cache.insert(key.clone(), version, sealed);
    append(s, req, &event).await
}

/// Stores a new version's row durably (never overwriting one).
async fn store_new(s: &AppState, row: SecretRow) -> Result<(), Error> {
    let blobs = s.secrets.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.put_new(&row))
        .await
        .map_err(|_| internal("store task failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "secret store write failed");
            SecretsError::StoreUnwritable.into()
        })
}

/// Journals a secret event by the caller; its seq once durable.
async fn append(s: &AppState, req: &Request<'_>, event: &SecretEvent) -> Result<u64, Error> {
    let draft = event
        .draft(
            &req.caller.subject.to_string(),
            req.corr.map(RequestId::as_str),
        )
        .map_err(|_| internal("event does not encode"))?;
    Ok(s.journal.ledger.append(draft).await?.seq)
}

/// Deletes secret `name` of env `scope` (a tombstone version).
pub async fn delete(
    s: &Arc<AppState>,
    req: &Request<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Changed, Error> {
    req.authorize(s, Permission::WriteSecret, scope).await?;
    let key = secret_key(scope, name)?;
    let _seq = s.journal.sequencer.lock().await;
    let latest = s
        .secrets
        .view
        .latest(&key)
        .filter(|m| m.state != VersionState::Tombstone)
        .ok_or_else(|| SecretsError::NotFound(format!("secret `{}`", key.name)))?;
    let version = latest.version + 1;
    req.recheck(s, Permission::WriteSecret, scope)?;
    let seq = append(
        s,
        req,
        &SecretEvent::Delete {
            key: key.clone(),
            version,
        },
    )
    .await?;
    super::events::secrets_changed(s, scope, &key.name);
    Ok(Changed {
        name: key.name,
        version,
        seq,
    })
}

/// Restores an old version's value as a new version (after a delete, or to roll back).
/// The value is decrypted and re-sealed inside the server; the caller never sees it, so
/// `write_secret` suffices.
pub async fn restore(
    s: &Arc<AppState>,
    req: &Request<'_>,
    scope: &Scope,
    name: &str,
    version: u64,
) -> Result<Written, Error> {
    req.authorize(s, Permission::WriteSecret, scope).await?;
    let key = secret_key(scope, name)?;
    let _seq = s.journal.sequencer.lock().await;
    if !s.journal.ledger.is_healthy() {
        return Err(Error::JournalUnavailable(
            "the journal is not healthy".into(),
        ));
    }
    let versions = s
        .secrets
        .view
        .versions(&key)
        .ok_or_else(|| SecretsError::NotFound(format!("secret `{}`", key.name)))?;
    let old = versions
        .iter()
        .find(|m| m.version == version && m.state == VersionState::Live)
        .cloned()
        .ok_or_else(|| {
            SecretsError::NotFound(format!("live version {version} of `{}`", key.name))
        })?;
    let next = versions.last().map_or(1, |m| m.version + 1);
    let value = s
        .secrets
        .cache
        .get(&key, old.version)
        .filter(|e| old.digest.as_deref() == Some(digest(e).as_str()))
        .and_then(|e| envelope::open(&s.secrets.kek, &coordinates(&key, old.version), &e).ok())
        .ok_or_else(|| {
            metrics::counter!(bulwark_http::metrics::INTEGRITY_FAIL_TOTAL).increment(1);
            tracing::error!(
                resource = bulwark_secrets::view::resource(&key, old.version),
                "secret integrity failure during restore"
            );
            SecretsError::RestoreIntegrityFailure
        })?;
    let seq = write_version(s, req, scope, &key, next, &value, Some(old.version)).await?;
    super::events::secrets_changed(s, scope, &key.name);
    Ok(Written {
        name: key.name,
        version: next,
        restored_from: Some(old.version),
        seq,
    })
}

/// Destroys `version` of secret `name` of env `scope`: journaled first, then its row is
/// erased (crypto-shredding; retried at start-up if the erase fails).
pub async fn destroy(
    s: &Arc<AppState>,
    req: &Request<'_>,
    scope: &Scope,
    name: &str,
    version: u64,
) -> Result<Changed, Error> {
    req.authorize(s, Permission::WriteSecret, scope).await?;
    let key = secret_key(scope, name)?;
    let _seq = s.journal.sequencer.lock().await;
    let found = s
        .secrets
        .view
        .versions(&key)
        .and_then(|vs| vs.into_iter().find(|m| m.version == version))
        .filter(|m| m.state == VersionState::Live)
        .ok_or_else(|| {
            SecretsError::NotFound(format!("live version {version} of `{}`", key.name))
        })?;
    req.recheck(s, Permission::WriteSecret, scope)?;
    // Journal first: a destroy that is not recorded must not happen.
    let seq = append(
        s,
        req,
        &SecretEvent::Destroy {
            key: key.clone(),
            version: found.version,
        },
    )
    .await?;
    s.secrets.cache.remove(&key, version);
    let blobs = s.secrets.blobs.clone();
    let k = key.clone();
    let shred = tokio::task::spawn_blocking(move || {
        blobs.destroy(&k.org, &k.app, &k.env, &k.name, version)
    })
    .await;
    if !matches!(shred, Ok(Ok(()))) {
        // The journal says destroyed and the view refuses reads; the bytes are erased
        // at the next start (rows of destroyed versions are shredded on load).
        tracing::error!(
            resource = bulwark_secrets::view::resource(&key, version),
            "erasing a destroyed version failed; retried at start-up"
        );
    }
    super::events::secrets_changed(s, scope, &key.name);
    Ok(Changed {
        name: key.name,
        version,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(e: SecretsError) -> Problem {
        Error::from(e).into()
    }

    #[test]
    fn refusals_keep_their_codes_details_and_retry_after() {
        let p = problem(SecretsError::NodeRateLimited {
            retry_after: 3,
            what: "secret-read",
        });
        assert_eq!(p.code, ProblemCode::PerNodeRateLimited);
        assert_eq!(p.detail, "this node is over its secret-read rate");
        assert_eq!(p.retry_after_seconds, Some(3));
        let p = problem(SecretsError::OrgRateLimited { retry_after: 2 });
        assert_eq!(p.code, ProblemCode::PerOrgRateLimited);
        assert_eq!(p.retry_after_seconds, Some(2));
        let p = problem(SecretsError::NotFound("secret `x` (deleted)".into()));
        assert_eq!(p.code, ProblemCode::NotFound);
        assert_eq!(p.detail, "secret `x` (deleted) does not exist");
        let p = problem(SecretsError::IntegrityFailure);
        assert_eq!(p.code, ProblemCode::IntegrityFailure);
        assert!(p.detail.contains("nothing was returned"));
        let p = problem(SecretsError::StoreUnwritable);
        assert_eq!(p.code, ProblemCode::NotReady);
        assert_eq!(p.retry_after_seconds, Some(1));
    }
}
