//! An OAuth/DPoP client for tests: bootstrap over the admin socket, tokens by client
//! secret or `private_key_jwt`, DPoP proofs by Ed25519 or P-256 keys, and a forger that
//! signs with the server's own key file (to make tokens the server would never mint:
//! expired, wrong audience, too long).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use super::{Response, Server};

pub fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// A client-held key (DPoP or `private_key_jwt`).
pub enum Key {
    Ed(Ed25519KeyPair),
    Es(EcdsaKeyPair),
}

impl Key {
    pub fn ed() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        Self::Ed(Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap())
    }
    pub fn es() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::Es(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap())
    }
    /// A P-256 key and its PKCS#8 PEM (for clients in other languages).
    pub fn es_with_pem() -> (Self, String) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let body = STANDARD.encode(doc.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        (Self::Es(key), pem)
    }

    /// The server's token signing key, read from its data directory.
    pub fn server_signing(server: &Server) -> Self {
        let enc = std::fs::read_to_string(server.dir.join("signing.key")).unwrap();
        let der = STANDARD.decode(enc.trim()).unwrap();
        Self::Ed(Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap())
    }
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Ed(_) => "EdDSA",
            Self::Es(_) => "ES256",
        }
    }
    pub fn jwk(&self) -> Value {
        match self {
            Self::Ed(k) => json!({"kty":"OKP","crv":"Ed25519","x": b64(k.public_key().as_ref())}),
            Self::Es(k) => {
                let p = k.public_key().as_ref();
                json!({"kty":"EC","crv":"P-256","x": b64(&p[1..33]),"y": b64(&p[33..65])})
            }
        }
    }
    /// RFC 7638 thumbprint.
    pub fn thumbprint(&self) -> String {
        let canon = match self {
            Self::Ed(_) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                self.jwk()["x"].as_str().unwrap()
            ),
            Self::Es(_) => {
                let j = self.jwk();
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    j["x"].as_str().unwrap(),
                    j["y"].as_str().unwrap()
                )
            }
        };
        b64(&sha256(canon.as_bytes()))
    }
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = match self {
            Self::Ed(k) => k.sign(msg.as_bytes()).as_ref().to_vec(),
            Self::Es(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), msg.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{msg}.{}", b64(&sig))
    }
    /// A DPoP proof; `claims` are merged over the defaults.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce: Option<&str>,
        over: Value,
    ) -> String {
        let mut jti = [0u8; 12];
        aws_lc_rs::rand::fill(&mut jti).unwrap();
        let mut c = json!({"jti": b64(&jti), "htm": method, "htu": url, "iat": now()});
        if let Some(t) = token {
            c["ath"] = b64(&sha256(t.as_bytes())).into();
        }
        if let Some(n) = nonce {
            c["nonce"] = n.into();
        }
        if let (Some(o), Some(m)) = (c.as_object_mut(), over.as_object()) {
            for (k, v) in m {
                if v.is_null() {
                    o.remove(k);
                } else {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()}),
            &c,
        )
    }
}

impl Server {
    /// When the server process was started (Unix seconds, from its start-up log line).
    pub fn started_at_secs(&self) -> i64 {
        let logs = self.logs_with("listening");
        let ts = logs[0]["ts"].as_str().unwrap().to_owned();
        let t = time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339)
            .unwrap();
        t.unix_timestamp()
    }

    /// The host:port clients address (and put into `htu`).
    pub fn authority(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority())
    }

    /// `bulwark admin bootstrap --json`: (client_id, client_secret).
    pub fn bootstrap(&self, binding: &str) -> (String, String) {
        let out = std::process::Command::new(super::BIN)
            .args([
                "admin",
                "bootstrap",
                "--json",
                "--token-binding",
                binding,
                "--data-dir",
            ])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v.as_object().unwrap().len(),
            2,
            "exactly client_id and client_secret: {v}"
        );
        (
            v["client_id"].as_str().unwrap().into(),
            v["client_secret"].as_str().unwrap().into(),
        )
    }

    /// Sends a request with optional headers and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.authority());
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        self.request(
            b.body(Full::new(Bytes::from(body.unwrap_or_default())))
                .unwrap(),
        )
        .await
    }

    /// `POST /oauth2/token` with a form body.
    pub async fn token_request(
        &self,
        form: &[(&str, &str)],
        headers: &[(&str, String)],
    ) -> Response {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut h = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        h.extend(headers.iter().cloned());
        self.send("POST", "/oauth2/token", &h, Some(body.into_bytes()))
            .await
    }

    /// A token by client secret (Basic), with the nonce dance when `dpop` is given.
    pub async fn token<'a>(
        &'a self,
        id: &str,
        secret: &str,
        scope: &str,
        dpop: Option<&'a Key>,
    ) -> Session<'a> {
        let basic = (
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
        let form = [("grant_type", "client_credentials"), ("scope", scope)];
        let url = self.url("/oauth2/token");
        let mut nonce: Option<String> = None;
        for _ in 0..2 {
            let mut h = vec![basic.clone()];
            if let Some(k) = dpop {
                h.push((
                    "dpop",
                    k.proof("POST", &url, None, nonce.as_deref(), json!({})),
                ));
            }
            let r = self.token_request(&form, &h).await;
            if r.status == 400 && r.json()["error"] == "use_dpop_nonce" {
                nonce = Some(r.headers["dpop-nonce"].to_str().unwrap().to_owned());
                continue;
            }
            assert_eq!(r.status, 200, "token: {}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            return Session {
                server: self,
                token: v["access_token"].as_str().unwrap().to_owned(),
                dpop,
            };
        }
        panic!("no token after the nonce dance");
    }
}

/// A client holding a token (and its DPoP key, if bound).
pub struct Session<'a> {
    pub server: &'a Server,
    pub token: String,
    pub dpop: Option<&'a Key>,
}

impl Session<'_> {
    /// The headers for `method path`, with a fresh proof when bound.
    pub fn auth_headers(&self, method: &str, path: &str) -> Vec<(&'static str, String)> {
        match self.dpop {
            Some(k) => {
                let clean = path.split('?').next().unwrap();
                vec![
                    ("authorization", format!("DPoP {}", self.token)),
                    (
                        "dpop",
                        k.proof(
                            method,
                            &self.server.url(clean),
                            Some(&self.token),
                            None,
                            json!({}),
                        ),
                    ),
                ]
            }
            None => vec![("authorization", format!("Bearer {}", self.token))],
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let mut h = self.auth_headers(method, path);
        h.push(("content-type", "application/json".into()));
        self.server
            .send(method, path, &h, body.map(|b| b.to_string().into_bytes()))
            .await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.call("POST", path, Some(body)).await
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
