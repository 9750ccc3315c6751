//! What one envelope costs on one core: signing (canonical JSON + Ed25519), parsing the
//! bounded JSON, verifying (canonical JSON + Ed25519 verify), the whole agent-side check
//! (parse + addressed-to + staleness + signature + replay insert), and the raw Ed25519
//! verify for reference.
//!
//! `cargo bench -p bulwark-events --bench envelopes`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_events::gate::{NonceCache, admit_at_agent};
use bulwark_events::{Envelope, KeyRing, Unsigned};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let key = bulwark_crypto::SigningKey::generate().unwrap();
    let mut ring = KeyRing::new();
    ring.rotate_in(&key.verifying_key(), 0, 0);
    let payload = json!({"app": "web", "env": "prod", "name": "db-password"});
    let unsigned = || {
        Unsigned::new(
            "evt-0001",
            "secrets.changed",
            "acme",
            "n1",
            now(),
            payload.clone(),
        )
        .unwrap()
    };
    let env = unsigned().sign(&key).unwrap();
    let bytes = env.render().unwrap();
    println!("envelope size: {} bytes", bytes.len());

    c.bench_function("sign (canonical JSON + Ed25519)", |b| {
        b.iter_batched(unsigned, |u| u.sign(&key).unwrap(), BatchSize::SmallInput)
    });
    c.bench_function("parse (bounded)", |b| {
        b.iter(|| Envelope::parse(&bytes).unwrap())
    });
    c.bench_function("verify (canonical JSON + Ed25519)", |b| {
        b.iter(|| ring.verify(&env, now()).unwrap())
    });
    let cache = NonceCache::new(10_000_000);
    c.bench_function(
        "agent check (parse, address, staleness, signature, replay)",
        |b| {
            b.iter_batched(
                || unsigned().sign(&key).unwrap().render().unwrap(),
                |raw| {
                    let e = Envelope::parse(&raw).unwrap();
                    admit_at_agent(&e, ("acme", "n1"), &ring, &cache, now()).unwrap();
                },
                BatchSize::SmallInput,
            )
        },
    );
    let batch: Vec<Envelope> = (0..64).map(|_| unsigned().sign(&key).unwrap()).collect();
    let mut g = c.benchmark_group("verify batch of 64 (per batch)");
    g.throughput(criterion::Throughput::Elements(64));
    g.bench_function("ed25519-dalek verify_batch", |b| {
        b.iter(|| assert!(ring.verify_batch(&batch, now()).iter().all(Result::is_ok)))
    });
    g.finish();
    let msg = env.unsigned().signing_bytes().unwrap();
    let sig = env.signature_bytes().unwrap();
    let vk = key.verifying_key();
    c.bench_function("raw Ed25519 verify (reference)", |b| {
        b.iter(|| assert!(vk.verify(&msg, &sig)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
