//! Micro-benchmarks of the hot functions: key encoding, codecs, cache
//! lookups and batch building. `cargo bench -p state-txn`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use state_core::{cf, keys, Codec, MemoryPartition, WriteBatch};
use state_txn::PartitionTransaction;

fn key_encoding(c: &mut Criterion) {
    c.bench_function("keys::prefixed_key", |b| {
        b.iter(|| keys::prefixed_key(black_box(b"k12345"), black_box(b"\xa5count")))
    });
    c.bench_function("keys::window_key", |b| {
        b.iter(|| keys::window_key(black_box(b"k12345"), black_box(1000), 2000))
    });
    let wk = keys::window_key(b"k12345", 1000, 2000);
    c.bench_function("keys::parse_window_key", |b| {
        b.iter(|| keys::parse_window_key(black_box(&wk)))
    });
}

fn codecs(c: &mut Criterion) {
    for codec in [Codec::MsgPack, Codec::Json] {
        c.bench_function(&format!("{codec}::encode u64"), |b| {
            b.iter(|| codec.encode(black_box(&123_456u64)))
        });
        let enc = codec.encode(&123_456u64).unwrap();
        c.bench_function(&format!("{codec}::decode u64"), |b| {
            b.iter(|| codec.decode::<u64>(black_box(&enc)))
        });
    }
    c.bench_function("json::encode f64", |b| {
        b.iter(|| Codec::Json.encode(black_box(&1.2345e-7f64)))
    });
}

fn transaction_cache(c: &mut Criterion) {
    let p = Arc::new(MemoryPartition::new());
    let mut t = PartitionTransaction::new(p, Codec::MsgPack, None);
    let prefixes: Vec<Vec<u8>> = (0..10_000).map(|i| format!("k{i}").into_bytes()).collect();
    for pre in &prefixes {
        t.set("count", &1u64, pre).unwrap();
    }
    let mut i = 0;
    c.bench_function("txn get (cache hit, 10k keys)", |b| {
        b.iter(|| {
            i = (i + 7919) % prefixes.len();
            t.get::<_, u64>("count", black_box(&prefixes[i])).unwrap()
        })
    });
    c.bench_function("txn set (overwrite, 10k keys)", |b| {
        b.iter(|| {
            i = (i + 7919) % prefixes.len();
            t.set("count", &2u64, black_box(&prefixes[i])).unwrap()
        })
    });
}

fn batch_build(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..10_000).map(|i| format!("k{i}|\"count\"").into_bytes()).collect();
    let mut batch = WriteBatch::new();
    c.bench_function("WriteBatch 10k puts (reused)", |b| {
        b.iter(|| {
            batch.clear();
            for k in &keys {
                batch.put(cf::DEFAULT, k, b"\xcd\x30\x39");
            }
            black_box(batch.len())
        })
    });
}

criterion_group!(benches, key_encoding, codecs, transaction_cache, batch_build);
criterion_main!(benches);
