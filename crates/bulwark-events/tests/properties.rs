//! Properties of envelopes: what the publisher signs, the parser reads back unchanged;
//! changing any field of a signed envelope breaks its signature; no input makes the parser
//! panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bulwark_events::{Envelope, KeyRing, Refusal, Unsigned};
use proptest::prelude::*;
use serde_json::json;

fn payload() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        (-((1i64 << 53) - 1)..=((1i64 << 53) - 1)).prop_map(|n| json!(n)),
        "\\PC{0,20}".prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> &'static bulwark_crypto::SigningKey {
    static K: std::sync::OnceLock<bulwark_crypto::SigningKey> = std::sync::OnceLock::new();
    K.get_or_init(|| bulwark_crypto::SigningKey::generate().unwrap())
}

fn ring() -> KeyRing {
    let mut r = KeyRing::new();
    r.rotate_in(&key().verifying_key(), 0, 0);
    r
}

proptest! {
    #[test]
    fn signed_envelopes_round_trip_and_verify(
        id in "[A-Za-z0-9_-]{1,64}",
        kind in "[a-z][a-z0-9._-]{0,63}",
        org in "[a-z][a-z0-9]{0,20}",
        node in "[a-z][a-z0-9]{0,20}",
        at in 0i64..4_000_000_000,
        p in payload(),
    ) {
        let env = Unsigned::new(id, kind, org, node, at, p).unwrap().sign(key()).unwrap();
        let back = Envelope::parse(&env.render().unwrap()).unwrap();
        prop_assert_eq!(&back, &env);
        prop_assert_eq!(ring().verify(&back, at), Ok(()));
    }

    #[test]
    fn any_changed_field_breaks_the_signature(field in 0usize..8, at in 0i64..4_000_000_000) {
        let env = Unsigned::new("e1", "secrets.changed", "acme", "n1", at, json!({"a": 1}))
            .unwrap()
            .sign(key())
            .unwrap();
        let mut m = env.clone();
        match field {
            0 => m.id.push('x'),
            1 => m.kind.push('x'),
            2 => m.org.push('x'),
            3 => m.node.push('x'),
            4 => m.key_id.push('x'),
            5 => m.issued_at += 1,
            6 => m.nonce.push('x'),
            _ => m.payload = json!({"a": 2}),
        }
        let r = ring().verify(&m, at);
        prop_assert!(
            r == Err(Refusal::BadSignature) || r == Err(Refusal::UnknownKey),
            "{:?}", r
        );
    }

    #[test]
    fn integers_beyond_2_pow_53_and_fractions_are_refused(n in (1i64 << 53)..i64::MAX, f in 0.001f64..1e6) {
        let key = key();
        for p in [json!({"n": n}), json!({"n": -n}), json!({"f": f + 0.5})] {
            let signed = Unsigned::new("e1", "t", "acme", "n1", 1, p).unwrap().sign(key);
            prop_assert!(signed.is_err());
        }
    }

    #[test]
    fn the_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::parse(&bytes);
    }
}
