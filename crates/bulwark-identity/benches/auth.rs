//! What authenticating one request costs on one core: the access token (EdDSA JWT, all
//! claim checks), the DPoP proof (EdDSA or ES256, `htm`/`htu`/`iat`/`ath`), the key
//! binding comparison and the replay-cache insert.
//!
//! `cargo bench -p bulwark-identity --bench auth`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use bulwark_crypto::SigningKey;
use bulwark_identity::dpop::{self, Expect};
use bulwark_identity::jose::{b64, now_secs};
use bulwark_identity::replay::ReplayCache;
use bulwark_identity::token::{AccessClaims, AccessVerifier, Audience, Confirmation, Minter};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;

const ISS: &str = "https://bulwark.bench";
const URL: &str = "https://bulwark.bench/v1/orgs/acme/apps/web/envs/prod/secrets/db";

enum ClientKey {
    Ed(Ed25519KeyPair),
    Es(EcdsaKeyPair),
}

impl ClientKey {
    fn jwk(&self) -> serde_json::Value {
        match self {
            Self::Ed(k) => json!({"kty":"OKP","crv":"Ed25519","x": b64(k.public_key().as_ref())}),
            Self::Es(k) => {
                let p = k.public_key().as_ref();
                json!({"kty":"EC","crv":"P-256","x": b64(&p[1..33]),"y": b64(&p[33..65])})
            }
        }
    }
    fn proof(&self, token: &str, n: u64) -> String {
        let alg = match self {
            Self::Ed(_) => "EdDSA",
            Self::Es(_) => "ES256",
        };
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk()});
        let claims = json!({
            "jti": format!("p{n}"), "htm": "GET", "htu": URL, "iat": now_secs(),
            "ath": b64(&bulwark_crypto::sha256(token.as_bytes())),
        });
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
}

fn bench(c: &mut Criterion) {
    let server = SigningKey::generate().unwrap();
    let minter = Minter::new(&server.pkcs8_der(), server.kid());
    let vk = server.verifying_key();
    let verifier = AccessVerifier::new(ISS, ISS, [(server.kid(), vk.as_bytes())]);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ed = ClientKey::Ed(
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap(),
    );
    let es = ClientKey::Es(
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref(),
        )
        .unwrap(),
    );
    let token_for = |jkt: Option<String>| {
        let now = now_secs();
        minter
            .mint(&AccessClaims {
                iss: ISS.into(),
                sub: "service:svc_bench".into(),
                aud: Audience::One(ISS.into()),
                exp: now + 600,
                iat: now,
                nbf: now,
                jti: "bench".into(),
                client_id: "svc_bench".into(),
                scope: "secrets:read read".into(),
                org: Some("acme".into()),
                cnf: jkt.map(|j| Confirmation {
                    jkt: Some(j),
                    x5t_s256: None,
                }),
            })
            .unwrap()
    };
    let bearer = token_for(None);
    // The floor: one raw Ed25519 signature check over the same bytes.
    let (signed, sig) = bearer.rsplit_once('.').unwrap();
    let sig =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    c.bench_function("raw_ed25519_verify", |b| {
        b.iter(|| assert!(vk.verify(signed.as_bytes(), &sig)));
    });
    c.bench_function("access_token_verify_eddsa", |b| {
        b.iter(|| verifier.verify(&bearer, now_secs()).unwrap());
    });

    for (name, key) in [("eddsa", &ed), ("es256", &es)] {
        // The thumbprint the token is bound to, as the server computes it.
        let probe = key.proof("x", 0);
        let jkt = dpop::verify(
            &probe,
            &Expect {
                method: "GET",
                url: URL,
                access_token: Some("x"),
                nonces: None,
                nonce_required: false,
            },
            now_secs(),
        )
        .unwrap()
        .jkt;
        let token = token_for(Some(jkt.clone()));
        let cache = ReplayCache::new(60, 1 << 22);
        let mut n = 0u64;
        c.bench_function(&format!("full_request_auth_dpop_{name}"), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    key.proof(&token, n)
                },
                |proof| {
                    let now = now_secs();
                    let claims = verifier.verify(&token, now).unwrap();
                    let v = dpop::verify(
                        &proof,
                        &Expect {
                            method: "GET",
                            url: URL,
                            access_token: Some(&token),
                            nonces: None,
                            nonce_required: false,
                        },
                        now,
                    )
                    .unwrap();
                    assert_eq!(
                        Some(v.jkt.as_str()),
                        claims.cnf.as_ref().and_then(|c| c.jkt.as_deref())
                    );
                    cache
                        .first_use(&[b"dpop", v.jkt.as_bytes(), v.jti.as_bytes()], now)
                        .unwrap();
                },
                BatchSize::SmallInput,
            );
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
