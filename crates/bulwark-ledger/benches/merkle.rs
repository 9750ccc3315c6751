//! Merkle tree figures: inclusion/consistency proof generation and verification at
//! 1,000,000 leaves, and building that tree.
//!
//! `cargo bench -p bulwark-ledger --bench merkle`

#![allow(clippy::unwrap_used)]

use bulwark_ledger::merkle::{Tree, leaf_hash, verify_consistency, verify_inclusion};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const N: u64 = 1_000_000;

fn bench(c: &mut Criterion) {
    let leaves: Vec<_> = (0..N).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut g = c.benchmark_group("merkle_1m");
    g.sample_size(10);
    g.bench_function("build_tree_1m_leaves", |b| {
        b.iter(|| {
            let mut t = Tree::new();
            for l in &leaves {
                t.push(*l);
            }
            t
        });
    });
    g.finish();

    let mut tree = Tree::new();
    for l in &leaves {
        tree.push(*l);
    }
    let root = tree.root();
    let mut i = 0u64;
    let mut g = c.benchmark_group("proofs_at_1m");
    g.bench_function("inclusion_proof_generate", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            tree.inclusion_proof(i, N).unwrap()
        });
    });
    g.bench_function("inclusion_proof_verify", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % N;
                (i, tree.inclusion_proof(i, N).unwrap())
            },
            |(i, p)| assert!(verify_inclusion(i, N, &leaves[i as usize], &p, &root)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("consistency_proof_generate", |b| {
        b.iter(|| {
            i = (i + 7919) % N + 1;
            tree.consistency_proof(i, N).unwrap()
        });
    });
    g.bench_function("consistency_proof_verify", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % (N - 1) + 1;
                (
                    i,
                    tree.root_at(i).unwrap(),
                    tree.consistency_proof(i, N).unwrap(),
                )
            },
            |(m, r1, p)| assert!(verify_consistency(m, N, &r1, &root, &p)),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
