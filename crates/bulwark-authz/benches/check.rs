//! `check` on 10,000 orgs × 10 apps × 3 envs with 1,000,000 relation tuples.
//!
//! `cargo bench -p bulwark-authz --bench check`

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bulwark_authz::{Permission, Relation, Relations, Subject, Tuple};
use bulwark_core::{Name, Scope};
use criterion::{Criterion, criterion_group, criterion_main};

fn name(prefix: &str, i: u32) -> Name {
    Name::parse(&format!("{prefix}{i}")).unwrap()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let mut r = Relations::new();
    let mut envs = Vec::new();
    // 300,000 envs; 1,000,000 tuples spread over 100,000 subjects.
    for o in 0..10_000u32 {
        for a in 0..10u32 {
            for e in 0..3u32 {
                envs.push(Scope::Env(name("o", o), name("a", a), name("e", e)));
            }
        }
    }
    let subjects: Vec<Subject> = (0..100_000u32)
        .map(|i| Subject::Service(Arc::from(format!("svc-{i}"))))
        .collect();
    let mut x = 0x2545_f491u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let before = rss_kib();
    while r.len() < 1_000_000 {
        let s = &subjects[(next() % subjects.len() as u64) as usize];
        let env = &envs[(next() % envs.len() as u64) as usize];
        let scope = match next() % 4 {
            0 => Scope::Org(env.org().unwrap().clone()),
            1 => env.parent().unwrap(),
            _ => env.clone(),
        };
        let relation = Relation::ALL[(next() % 7) as usize + 1];
        r.grant(&Tuple {
            scope,
            relation,
            subject: s.clone(),
        });
    }
    eprintln!(
        "relations projection: {} tuples, ~{} MiB resident",
        r.len(),
        (rss_kib() - before) / 1024
    );
    // Tail latency, outside criterion: 1,000,000 timed checks.
    let mut samples: Vec<u64> = (0..1_000_000usize)
        .map(|k| {
            let s = &subjects[(k * 7919) % subjects.len()];
            let env = &envs[(k * 31) % envs.len()];
            let t = std::time::Instant::now();
            std::hint::black_box(r.check(s, Permission::ReadSecretValue, env));
            t.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    eprintln!(
        "check latency: p50 {} ns, p99 {} ns, p99.9 {} ns",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        samples[samples.len() * 999 / 1000]
    );
    let mut i = 0usize;
    c.bench_function("check_1m_tuples", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let s = &subjects[i % subjects.len()];
            let env = &envs[(i * 31) % envs.len()];
            r.check(s, Permission::ReadSecretValue, env)
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
