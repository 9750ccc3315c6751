//! The CLI's side of the API: a saved profile (server URL, CA, client credentials and a
//! DPoP key, in a 0600 file in a 0700 directory) and a session that gets a DPoP-bound
//! token by `client_credentials` (answering the server's nonce challenge) and signs a
//! fresh proof for every call.
//!
//! Secrets given to the CLI come from stdin or files, never from argv.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bulwark_crypto::SigningKey;
use bulwark_identity::jose::{b64, now_secs};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use bulwark_fs::{ensure_private_dir, read_private, write_atomic};

use crate::client::Client;

/// A saved login. Not `Debug`: it holds a client secret and a private key.
#[derive(Serialize, Deserialize)]
pub struct Profile {
    /// The API's base URL, e.g. `https://localhost:8443`.
    pub server: String,
    /// PEM of the CA to trust for it.
    pub ca_pem: String,
    /// The service principal's client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: Zeroizing<String>,
    /// The DPoP key (the stored form of an Ed25519 key), made at login.
    pub dpop_key: Zeroizing<String>,
}

impl Profile {
    /// `$BULWARK_PROFILE`, else `$XDG_CONFIG_HOME/bulwark/profile.json`, else
    /// `~/.config/bulwark/profile.json`.
    pub fn default_path() -> anyhow::Result<PathBuf> {
        if let Some(p) = std::env::var_os("BULWARK_PROFILE") {
            return Ok(PathBuf::from(p));
        }
        let base = match std::env::var_os("XDG_CONFIG_HOME") {
            Some(x) => PathBuf::from(x),
            None => PathBuf::from(std::env::var_os("HOME").context("no HOME")?).join(".config"),
        };
        Ok(base.join("bulwark").join("profile.json"))
    }

    /// `path`, else [`Profile::default_path`].
    pub fn path_or_default(path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        path.map_or_else(Self::default_path, Ok)
    }

    /// Reads a profile (refused if readable by others).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = read_private(path).with_context(|| {
            format!(
                "no usable profile at `{}`: run `bulwark login`",
                path.display()
            )
        })?;
        serde_json::from_str(&text).context("the profile is not valid")
    }

    /// Writes the profile 0600 in a 0700 directory.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().context("profile path without a directory")?;
        ensure_private_dir(dir)?;
        let text = Zeroizing::new(serde_json::to_string_pretty(self)?);
        write_atomic(path, text.as_bytes(), 0o600)
    }
}

/// A logged-in session.
pub struct Session {
    client: Client,
    server: String,
    key: SigningKey,
    token: Option<Zeroizing<String>>,
    nonce: Option<String>,
    client_id: String,
    client_secret: Zeroizing<String>,
}

/// A response: status, headers, body.
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body (zeroizing: it may carry a secret value).
    pub body: Zeroizing<Vec<u8>>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the server's answer is not JSON")
    }

    /// Fails with the server's problem unless the status is 2xx.
    pub fn ok(self) -> anyhow::Result<Self> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let detail = self
            .json()
            .ok()
            .map(|v| {
                format!(
                    "{} ({})",
                    v["detail"].as_str().unwrap_or_default(),
                    v["code"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        bail!("the server answered {}: {detail}", self.status)
    }
}

/// A DPoP proof for `method url` (RFC 9449), with `ath` when a token is given.
fn proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    token: Option<&str>,
    nonce: Option<&str>,
) -> anyhow::Result<Zeroizing<String>> {
    let mut jti = [0u8; 16];
    bulwark_crypto::fill_random(&mut jti)?;
    let header = serde_json::json!({
        "typ": "dpop+jwt",
        "alg": "EdDSA",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(key.verifying_key().as_bytes())},
    });
    let mut claims =
        serde_json::json!({"jti": b64(&jti), "htm": method, "htu": url, "iat": now_secs()});
    if let Some(t) = token {
        claims["ath"] = b64(&bulwark_crypto::sha256(t.as_bytes())).into();
    }
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(signing_input.as_bytes());
    Ok(Zeroizing::new(format!("{signing_input}.{}", b64(&sig))))
}

fn form_escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `bulwark login`: a profile for `server` (trusting `ca_pem`) with the client's
/// credentials and a fresh DPoP key, checked by getting a token with `scope`, then saved
/// 0600 at `path` (default: [`Profile::default_path`]). Returns the profile and where it
/// was saved.
pub async fn login(
    server: &str,
    ca_pem: String,
    client_id: &str,
    client_secret: Zeroizing<String>,
    scope: &str,
    path: Option<PathBuf>,
) -> anyhow::Result<(Profile, PathBuf)> {
    if client_secret.is_empty() {
        bail!("give the client secret on stdin (it is never read from the command line)");
    }
    let key = SigningKey::generate()?;
    let p = Profile {
        server: server.trim_end_matches('/').to_owned(),
        ca_pem,
        client_id: client_id.to_owned(),
        client_secret,
        dpop_key: key.encode(),
    };
    let mut session = Session::new(&p)?;
    session.login(scope).await?;
    let path = Profile::path_or_default(path)?;
    p.save(&path)?;
    Ok((p, path))
}

impl Session {
    /// Loads the profile at `path` (default: [`Profile::default_path`]) and logs in with
    /// `scope`.
    pub async fn open(path: Option<PathBuf>, scope: &str) -> anyhow::Result<Self> {
        let p = Profile::load(&Profile::path_or_default(path)?)?;
        let mut s = Self::new(&p)?;
        s.login(scope).await?;
        Ok(s)
    }

    /// A session for `profile`; the first call fetches a token.
    pub fn new(profile: &Profile) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::new(&profile.ca_pem)?,
            server: profile.server.trim_end_matches('/').to_owned(),
            key: SigningKey::decode(&profile.dpop_key)
                .context("the profile's DPoP key is not valid")?,
            token: None,
            nonce: None,
            client_id: profile.client_id.clone(),
            client_secret: profile.client_secret.clone(),
        })
    }

    /// Gets a DPoP-bound token (retrying once with the server's nonce).
    pub async fn login(&mut self, scope: &str) -> anyhow::Result<()> {
        let url = format!("{}/oauth2/token", self.server);
        let basic = Zeroizing::new(format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                form_escape(&self.client_id),
                form_escape(&self.client_secret)
            ))
        ));
        let body = format!("grant_type=client_credentials&scope={}", form_escape(scope));
        for _ in 0..2 {
            let headers = vec![
                (http::header::AUTHORIZATION, basic.clone()),
                (
                    http::header::CONTENT_TYPE,
                    Zeroizing::new("application/x-www-form-urlencoded".to_owned()),
                ),
                (
                    http::HeaderName::from_static("dpop"),
                    proof(&self.key, "POST", &url, None, self.nonce.as_deref())?,
                ),
            ];
            let (status, h, b) = self
                .client
                .send(
                    http::Method::POST,
                    &url,
                    &headers,
                    body.clone().into_bytes(),
                )
                .await?;
            if let Some(n) = h.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
                self.nonce = Some(n.to_owned());
            }
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            if status == 400 && v["error"] == "use_dpop_nonce" {
                continue;
            }
            if status != 200 {
                bail!(
                    "login refused ({status}): {} {}",
                    v["error"].as_str().unwrap_or_default(),
                    v["error_description"].as_str().unwrap_or_default()
                );
            }
            let token = v["access_token"]
                .as_str()
                .context("no access token in the answer")?;
            self.token = Some(Zeroizing::new(token.to_owned()));
            return Ok(());
        }
        bail!("the server kept asking for a DPoP nonce")
    }

    /// Calls `method path` with the token and a fresh proof.
    pub async fn call(
        &mut self,
        method: http::Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> anyhow::Result<Answer> {
        let token = self.token.clone().context("not logged in")?;
        let url = format!("{}{path}", self.server);
        let htu = url.split('?').next().unwrap_or(&url).to_owned();
        let mut headers = vec![
            (
                http::header::AUTHORIZATION,
                Zeroizing::new(format!("DPoP {}", token.as_str())),
            ),
            (
                http::HeaderName::from_static("dpop"),
                proof(&self.key, method.as_str(), &htu, Some(&token), None)?,
            ),
        ];
        if body.is_some() {
            headers.push((
                http::header::CONTENT_TYPE,
                Zeroizing::new("application/json".to_owned()),
            ));
        }
        let bytes = body.map(|b| b.to_vec()).unwrap_or_default();
        let (status, h, b) = self.client.send(method, &url, &headers, bytes).await?;
        Ok(Answer {
            status,
            headers: h,
            body: Zeroizing::new(b),
        })
    }
}
