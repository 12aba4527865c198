//! `cargo xtask fuzz`: random and mutated inputs for every decoder that sees
//! bytes from disk or the network. A panic is a finding; typed errors are
//! the expected answer to garbage.
//!
//! Targets: key layouts (`keys::parse_window_key`, `parse_timestamped_key`,
//! `decode_u64`, `decode_u64_pair`), value codecs (MessagePack, JSON, raw
//! into several types), and changelog records (`ChangelogApplier::apply`
//! with arbitrary keys, values and headers). Inputs are seeded: a finding
//! prints the seed and the input in hex.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_changelog::{ApplierConfig, ChangelogApplier, IncomingRecord};
use state_core::{cf, keys, Codec, MemoryPartition, CF_HEADER, PROCESSED_OFFSETS_HEADER};

use crate::rng::Rng;

/// Valid encodings to mutate: bugs hide next to valid input.
fn corpus() -> Vec<Vec<u8>> {
    let mut c = vec![
        keys::window_key(b"user-1", 1_000, 2_000),
        keys::timestamped_key(b"k", 5, 7),
        keys::encode_u64(42).to_vec(),
        keys::encode_u64_pair(1, 2).to_vec(),
        br#"{"input":12,"other":3}"#.to_vec(),
        br#"{"a":1.5,"b":[1,"\u00e9",null,true],"big":1e+20}"#.to_vec(),
        b"\"text\"".to_vec(),
        Vec::new(),
    ];
    for v in [
        serde_json::json!({"a": [1, 2, {"b": null}], "c": "d"}),
        serde_json::json!(18446744073709551615u64),
        serde_json::json!(-1.25),
    ] {
        c.push(Codec::MsgPack.encode(&v).unwrap_or_default());
        c.push(Codec::Json.encode(&v).unwrap_or_default());
    }
    c
}

fn input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.index(3) == 0 {
        let len = rng.index(48);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut v = corpus[rng.index(corpus.len())].clone();
    for _ in 0..1 + rng.index(4) {
        match rng.index(4) {
            0 if !v.is_empty() => {
                let i = rng.index(v.len());
                v[i] ^= 1 << rng.index(8);
            }
            1 if !v.is_empty() => {
                let n = rng.index(v.len());
                v.truncate(n);
            }
            2 => {
                let i = rng.index(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            _ if !v.is_empty() => {
                let i = rng.index(v.len());
                v[i] = [0x00, 0xff, 0x7f, 0x80, b'|', b'"', b'{'][rng.index(7)];
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

fn keys_target(data: &[u8], _rng: &mut Rng) {
    let _ = keys::parse_window_key(data);
    let _ = keys::parse_timestamped_key(data);
    let _ = keys::decode_u64(data);
    let _ = keys::decode_u64_pair(data);
    let _ = keys::prefix_upper_bound(data);
}

fn codec_target(data: &[u8], _rng: &mut Rng) {
    for codec in [Codec::MsgPack, Codec::Json, Codec::Raw] {
        let _ = codec.decode::<serde_json::Value>(data);
        let _ = codec.decode::<u64>(data);
        let _ = codec.decode::<String>(data);
        let _ = codec.decode::<Vec<(i64, Option<String>)>>(data);
        let _ = codec.decode::<BTreeMap<String, f64>>(data);
        let _ = codec.decode_to_json(data);
    }
}

fn changelog_target(data: &[u8], rng: &mut Rng) {
    let partition = Arc::new(MemoryPartition::new());
    let committed: BTreeMap<String, i64> = [("input".to_owned(), 10)].into();
    let mut applier = ChangelogApplier::new(
        partition,
        "changelog__g--input--store",
        0,
        committed,
        ApplierConfig { max_batch_records: 4 },
    );
    let split = rng.index(data.len() + 1);
    let (a, b) = data.split_at(split);
    let cf_value: &[u8] = match rng.index(4) {
        0 => cf::DEFAULT.as_bytes(),
        1 => b,
        2 => b"__metadata__",
        _ => &[0xff, 0xfe],
    };
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
    if rng.index(5) != 0 {
        headers.push((CF_HEADER, Some(cf_value)));
    }
    if rng.index(3) != 0 {
        headers.push((PROCESSED_OFFSETS_HEADER, Some(b)));
    }
    if rng.index(4) == 0 {
        headers.push((CF_HEADER, None));
    }
    let key = (rng.index(6) != 0).then_some(a);
    let value = (rng.index(4) != 0).then_some(b);
    let offset = rng.next() as i64 >> rng.index(64);
    let _ = applier.apply(IncomingRecord::from_headers(offset, key, value, headers));
    let _ = applier.flush();
}

type Target = fn(&[u8], &mut Rng);

/// Runs every target for `per_target`; returns the findings.
pub fn fuzz(per_target: Duration, seed: u64) -> Vec<String> {
    let targets: [(&str, Target); 3] = [
        ("keys", keys_target),
        ("codecs", codec_target),
        ("changelog-records", changelog_target),
    ];
    let corpus = corpus();
    let mut findings = Vec::new();
    // Findings are reported below; the default hook would print each panic.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (name, target) in targets {
        let mut rng = Rng(seed ^ name.len() as u64);
        let started = Instant::now();
        let mut execs = 0u64;
        while started.elapsed() < per_target {
            let data = input(&mut rng, &corpus);
            let mut inner = Rng(rng.next());
            if catch_unwind(AssertUnwindSafe(|| target(&data, &mut inner))).is_err() {
                findings.push(format!("{name}: panic on input {:02x?} (seed {seed})", data));
                if findings.len() > 20 {
                    break;
                }
            }
            execs += 1;
        }
        println!(
            "{name}: {execs} inputs in {:.1} s, {} findings",
            started.elapsed().as_secs_f64(),
            findings.iter().filter(|f| f.starts_with(name)).count()
        );
    }
    std::panic::set_hook(hook);
    findings
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut seed = 1u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().and_then(|v| v.parse().ok());
        match (a.as_str(), v) {
            ("--seconds", Some(v)) => seconds = v,
            ("--seed", Some(v)) => seed = v,
            _ => return Err(format!("unknown or incomplete argument {a:?}")),
        }
    }
    let findings = fuzz(Duration::from_secs(seconds), seed);
    for f in &findings {
        println!("{f}");
    }
    if findings.is_empty() {
        println!("findings: 0");
        Ok(())
    } else {
        Err(format!("{} findings", findings.len()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_short_fuzz_run_finds_nothing() {
        let findings = super::fuzz(std::time::Duration::from_secs(2), 7);
        assert!(findings.is_empty(), "{findings:#?}");
    }
}
