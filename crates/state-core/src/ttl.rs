//! quixstreams 3.28.1's per-write TTL: the parts every layer shares.
//!
//! A key-value partition switches into *TTL mode* the first time a value is
//! written with a TTL. From then on:
//!
//! * every `default` value is `expires_at (u64 BE) ++ payload`
//!   ([`stamp_value`]), with [`NEVER`] (`0xFF` x 8) for values that never
//!   expire;
//! * every value that can expire has an entry `expires_at ++ key -> ""` in
//!   the local-only [`crate::cf::TTL_INDEX`] ([`index_key`]);
//! * `__metadata__` holds `__ttl_enabled__ = 01`, `__ttl_format_version__ =
//!   u64(2)` and, after every flush, `__ttl_high_water_ms__ = u64(hw)`;
//! * changelog records of `default` carry the `__ttl_stamped__` header.
//!
//! The clock of the read-time filter and of the sweep is the partition's
//! *high-water*: the highest event time any read or write with a timestamp
//! has carried ([`TtlState`]). A value whose stamp is at or below it reads as
//! absent.
//!
//! Transactions (`state-txn`) implement the write and read paths; recovery
//! (`state-changelog`) uses [`crate::ReplayCheck`]; both share a partition's
//! [`TtlState`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Result;
use crate::partition::StorePartition;
use crate::{cf, keys};

/// The quixstreams migration states refused on open or replay (defined
/// apart because [`crate::Error`] carries it).
pub use crate::legacy_ttl::LegacyTtl;

/// Length of the stamp in front of every TTL-mode `default` value.
pub const STAMP_LEN: usize = 8;

/// The stamp of a value that never expires.
pub const NEVER: u64 = u64::MAX;

/// Stamps at or above this (about year 33658) are not plausible epoch
/// milliseconds: a value starting with such bytes is not treated as stamped,
/// writes computing such an expiry are refused, and timestamps this large do
/// not move the high-water.
pub const MAX_PLAUSIBLE_STAMP_MS: u64 = 1_000_000_000_000_000;

/// Lower bound of quixstreams' "these bytes are a stamp" evidence window
/// (2000-01-01T00:00:00Z).
pub const EVIDENCE_FLOOR_MS: u64 = 946_684_800_000;

/// How far past "now" a stamp may lie and still count as evidence (100
/// years).
pub const EVIDENCE_LOOKAHEAD_MS: u64 = 100 * 365 * 86_400_000;

/// Appends `u64 BE expires_at ++ payload` to `out`.
pub fn stamp_value_into(expires_at: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(STAMP_LEN + payload.len());
    out.extend_from_slice(&expires_at.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `u64 BE expires_at ++ payload`: a TTL-mode `default` value.
pub fn stamp_value(expires_at: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STAMP_LEN + payload.len());
    stamp_value_into(expires_at, payload, &mut out);
    out
}

/// quixstreams' strict stamp validator (`_safe_decode_stamp`): the stamp and
/// payload of `value` if it is at least 8 bytes long and its first 8 bytes
/// are [`NEVER`] or a plausible expiry (`0 < stamp <` [`MAX_PLAUSIBLE_STAMP_MS`]);
/// `None` otherwise (the value is not stamped and is read as it is).
pub fn decode_stamp(value: &[u8]) -> Option<(u64, &[u8])> {
    let head: [u8; STAMP_LEN] = value.get(..STAMP_LEN)?.try_into().ok()?;
    let stamp = u64::from_be_bytes(head);
    (stamp == NEVER || (stamp > 0 && stamp < MAX_PLAUSIBLE_STAMP_MS)).then(|| (stamp, &value[STAMP_LEN..]))
}

/// `u64 BE expires_at ++ key`: the [`crate::cf::TTL_INDEX`] key of a value
/// expiring at `expires_at`. Index order is expiry order.
pub fn index_key(expires_at: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STAMP_LEN + key.len());
    out.extend_from_slice(&expires_at.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits an index key into expiry and `default` key; `None` if it is
/// shorter than a stamp.
pub fn parse_index_key(index_key: &[u8]) -> Option<(u64, &[u8])> {
    let head: [u8; STAMP_LEN] = index_key.get(..STAMP_LEN)?.try_into().ok()?;
    Some((u64::from_be_bytes(head), &index_key[STAMP_LEN..]))
}

/// What a stored `default` value says about whether its store is in TTL
/// mode (quixstreams' `_stamp_evidence_for`). Used only for store-level
/// decisions, never to route a single value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StampEvidence {
    /// A valid stamp (never, or within 2000-01-01 .. now + 100 years) in front
    /// of a non-empty payload.
    Stamped,
    /// Exactly a plausible 8-byte stamp and nothing else: the shape of a
    /// legacy `set_bytes` timestamp, counter-evidence.
    Bare,
    /// Anything else: a plain (legacy) value.
    Unstamped,
}

/// Classifies `value` as TTL-mode evidence, with `now_ms` (wall clock) as
/// the reference for the window's upper bound.
pub fn stamp_evidence(value: &[u8], now_ms: u64) -> StampEvidence {
    let Some((stamp, payload)) = decode_stamp(value) else {
        return StampEvidence::Unstamped;
    };
    if stamp != NEVER && !(EVIDENCE_FLOOR_MS..=now_ms.saturating_add(EVIDENCE_LOOKAHEAD_MS)).contains(&stamp) {
        return StampEvidence::Unstamped;
    }
    if payload.is_empty() {
        StampEvidence::Bare
    } else {
        StampEvidence::Stamped
    }
}

/// Wall-clock milliseconds since the epoch (0 if the clock is before it).
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// A stored `default` value of a TTL-mode partition, as the read-time
/// filter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StampedRead<'a> {
    /// Live: the payload after the stamp.
    Live(&'a [u8]),
    /// The stamp is at or below the high-water: the key reads as absent.
    Expired,
    /// Not a valid stamp: quixstreams' fail-safe returns the bytes as they
    /// are, as a value that never expires.
    Unstamped(&'a [u8]),
}

/// The stamp and payload of a stored TTL-mode value as quixstreams reads
/// it: [`decode_stamp`], then the repair of a double-stamped value (a stamp
/// whose payload is itself `00..`/`FF..`-led stamped evidence keeps the
/// inner stamp and payload). `None` if the value has no valid stamp.
pub fn decode_stamped(value: &[u8]) -> Option<(u64, &[u8])> {
    let (stamp, payload) = decode_stamp(value)?;
    if payload.len() > STAMP_LEN
        && matches!(payload[0], 0x00 | 0xFF)
        && stamp_evidence(payload, wall_clock_ms()) == StampEvidence::Stamped
    {
        if let Some(inner) = decode_stamp(payload) {
            return Some(inner);
        }
    }
    Some((stamp, payload))
}

/// The read-time filter of a TTL-mode partition (quixstreams'
/// `_get_bytes`): strips the stamp ([`decode_stamped`]) and hides values
/// expired at `high_water` (expiry is inclusive).
pub fn read_stamped(value: &[u8], high_water: Option<u64>) -> StampedRead<'_> {
    let Some((stamp, payload)) = decode_stamped(value) else {
        return StampedRead::Unstamped(value);
    };
    if stamp != NEVER && high_water.is_some_and(|hw| stamp <= hw) {
        StampedRead::Expired
    } else {
        StampedRead::Live(payload)
    }
}

/// Milliseconds of a TTL, rounded up (a TTL of 1 µs lasts 1 ms), as
/// quixstreams' `_ttl_to_ms`. Saturates at `u64::MAX`.
pub fn ttl_to_ms(ttl: Duration) -> u64 {
    let nanos = ttl.as_nanos();
    let ms = nanos.div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Where the bounded sweep sends the deletes of expired keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SweepTombstones {
    /// Deleted in the transaction: each becomes a changelog tombstone (with
    /// the `__ttl_stamped__` header), so the changelog shrinks with the
    /// store (quixstreams' default, `ttl_changelog_tombstones=True`).
    #[default]
    Changelog,
    /// Deleted locally in the flush batch only; nothing is produced
    /// (`ttl_changelog_tombstones=False`).
    LocalOnly,
}

/// Settings of per-write TTL for one store (quixstreams' `RocksDBOptions`
/// TTL fields); none is persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtlOptions {
    /// Most index entries the sweep visits per flush (expired or not
    /// current). quixstreams' `max_evictions_per_flush`, default 150 000.
    pub max_evictions_per_flush: usize,
    /// Expiry given to the values already in a populated store when it
    /// switches into TTL mode: `high-water + this`. `None`: the largest TTL
    /// written in the switching transaction (quixstreams' implicit default).
    pub legacy_records_ttl: Option<Duration>,
    /// Where the sweep's deletes go.
    pub sweep: SweepTombstones,
    /// Most values a populated store may hold when it switches into TTL
    /// mode. quixstreams stamps them in chunks committed one by one; we stamp
    /// them inside the switching transaction (one atomic batch), so their
    /// number is bounded: above it the switch is refused with a typed error
    /// and nothing is written.
    pub max_backfill_records: usize,
}

impl Default for TtlOptions {
    fn default() -> Self {
        TtlOptions {
            max_evictions_per_flush: 150_000,
            legacy_records_ttl: None,
            sweep: SweepTombstones::Changelog,
            max_backfill_records: 150_000,
        }
    }
}

const NO_HIGH_WATER: u64 = u64::MAX;

/// The per-partition runtime state of per-write TTL, shared by every
/// transaction on the partition and by its recovery: whether the partition
/// is in TTL mode, and its high-water.
///
/// Guarantees: the high-water only moves forward; negative timestamps and
/// timestamps at or above [`MAX_PLAUSIBLE_STAMP_MS`] never move it; once in
/// TTL mode, a partition stays in it. It also knows the last high-water
/// written to the partition ([`unsaved_high_water`](Self::unsaved_high_water)),
/// so a transaction whose reads moved the clock saves it although it
/// changed nothing.
#[derive(Debug)]
pub struct TtlState {
    enabled: AtomicBool,
    high_water: AtomicU64,
    /// The high-water the partition holds (loaded, or last written).
    saved_high_water: AtomicU64,
    migration_done: AtomicBool,
    options: TtlOptions,
}

impl TtlState {
    /// The state of a partition not in TTL mode, with no high-water.
    pub fn new(options: TtlOptions) -> Self {
        TtlState {
            enabled: AtomicBool::new(false),
            high_water: AtomicU64::new(NO_HIGH_WATER),
            saved_high_water: AtomicU64::new(NO_HIGH_WATER),
            migration_done: AtomicBool::new(false),
            options,
        }
    }

    /// Reads the mode, the stored high-water (ignored if implausible, as
    /// quixstreams does) and the migration-done marker from `partition`.
    pub fn load<P: StorePartition + ?Sized>(partition: &P, options: TtlOptions) -> Result<Self> {
        let state = TtlState::new(options);
        if partition
            .get(cf::METADATA, cf::TTL_ENABLED_KEY)?
            .is_some_and(|v| !v.is_empty())
        {
            state.enabled.store(true, Ordering::Release);
            if let Some(hw) = partition.get(cf::METADATA, cf::TTL_HIGH_WATER_KEY)? {
                if let Ok(hw) = keys::decode_u64(&hw) {
                    if hw < MAX_PLAUSIBLE_STAMP_MS {
                        state.high_water.store(hw, Ordering::Release);
                        state.saved_high_water.store(hw, Ordering::Release);
                    }
                }
            }
        }
        if partition.get(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY)?.is_some() {
            state.migration_done.store(true, Ordering::Release);
        }
        Ok(state)
    }

    /// The settings.
    pub fn options(&self) -> &TtlOptions {
        &self.options
    }

    /// True once the partition is in TTL mode.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Puts the partition in TTL mode (in memory; the caller persists the
    /// metadata in the same batch as the first stamped values).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    /// True if the partition holds (or replayed) the migration-done marker.
    pub fn migration_done(&self) -> bool {
        self.migration_done.load(Ordering::Acquire)
    }

    /// Records that the migration-done marker is in the partition.
    pub fn set_migration_done(&self) {
        self.migration_done.store(true, Ordering::Release);
    }

    /// The high-water, if any timestamped operation has set it.
    pub fn high_water(&self) -> Option<u64> {
        match self.high_water.load(Ordering::Acquire) {
            NO_HIGH_WATER => None,
            hw => Some(hw),
        }
    }

    /// The high-water, if it is ahead of the one the partition holds (a
    /// read or write moved it since it was loaded or last written with
    /// [`note_high_water_saved`](Self::note_high_water_saved)).
    pub fn unsaved_high_water(&self) -> Option<u64> {
        let hw = self.high_water()?;
        match self.saved_high_water.load(Ordering::Acquire) {
            NO_HIGH_WATER => Some(hw),
            saved if hw > saved => Some(hw),
            _ => None,
        }
    }

    /// Records that the partition now holds high-water `hw` (a batch
    /// carrying it was written).
    pub fn note_high_water_saved(&self, hw: u64) {
        raise(&self.saved_high_water, hw);
    }

    /// Raises the high-water to `timestamp` if it is higher. `None`,
    /// negative timestamps (Kafka's `NO_TIMESTAMP` is -1) and timestamps at or
    /// above [`MAX_PLAUSIBLE_STAMP_MS`] are ignored.
    pub fn advance_high_water(&self, timestamp: Option<i64>) {
        let Some(ts) = timestamp.and_then(|t| u64::try_from(t).ok()) else {
            return;
        };
        if ts >= MAX_PLAUSIBLE_STAMP_MS {
            tracing::warn!(
                timestamp = ts,
                "ignoring an implausibly large event time for the TTL high-water (milliseconds expected)"
            );
            return;
        }
        raise(&self.high_water, ts);
    }
}

/// Raises `cell` (a high-water, [`NO_HIGH_WATER`] when unset) to `value` if
/// it is higher.
fn raise(cell: &AtomicU64, value: u64) {
    let mut current = cell.load(Ordering::Acquire);
    while current == NO_HIGH_WATER || value > current {
        match cell.compare_exchange_weak(current, value, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryPartition;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn layouts_match_quixstreams_bytes() {
        // ttl_populated_flip: `1` stamped at T0 + 61 s, and its index key.
        let t = 1_700_000_061_000u64;
        assert_eq!(hex(&stamp_value(t, b"1")), "0000018bcfe6564831");
        assert_eq!(
            hex(&index_key(t, b"user-1|\"count\"")),
            "0000018bcfe65648757365722d317c22636f756e7422"
        );
        assert_eq!(
            hex(&stamp_value(NEVER, b"\"no-ttl\"")),
            "ffffffffffffffff226e6f2d74746c22"
        );
        assert_eq!(parse_index_key(&index_key(t, b"k")), Some((t, &b"k"[..])));
        assert_eq!(parse_index_key(b"short"), None);
    }

    #[test]
    fn strict_validator() {
        assert_eq!(decode_stamp(&stamp_value(5, b"x")), Some((5, &b"x"[..])));
        assert_eq!(decode_stamp(&stamp_value(NEVER, b"")), Some((NEVER, &b""[..])));
        assert_eq!(decode_stamp(&stamp_value(0, b"x")), None, "zero is not a stamp");
        assert_eq!(decode_stamp(&stamp_value(MAX_PLAUSIBLE_STAMP_MS, b"x")), None);
        assert_eq!(decode_stamp(b"\"alice\""), None, "JSON is never a stamp");
        assert_eq!(decode_stamp(b"1234567"), None, "too short");
    }

    #[test]
    fn evidence() {
        let now = 1_700_000_000_000;
        assert_eq!(stamp_evidence(&stamp_value(now, b"1"), now), StampEvidence::Stamped);
        assert_eq!(stamp_evidence(&stamp_value(NEVER, b"1"), now), StampEvidence::Stamped);
        assert_eq!(stamp_evidence(&stamp_value(now, b""), now), StampEvidence::Bare);
        assert_eq!(stamp_evidence(&stamp_value(5, b"1"), now), StampEvidence::Unstamped);
        assert_eq!(stamp_evidence(b"\"x\"", now), StampEvidence::Unstamped);
    }

    #[test]
    fn read_filter_is_inclusive_and_repairs_double_stamps() {
        let v = stamp_value(1_700_000_001_500, b"\"x\"");
        assert_eq!(read_stamped(&v, None), StampedRead::Live(b"\"x\""));
        assert_eq!(read_stamped(&v, Some(1_700_000_001_499)), StampedRead::Live(b"\"x\""));
        assert_eq!(read_stamped(&v, Some(1_700_000_001_500)), StampedRead::Expired);
        let never = stamp_value(NEVER, b"1");
        assert_eq!(read_stamped(&never, Some(u64::MAX - 1)), StampedRead::Live(b"1"));
        assert_eq!(read_stamped(b"\"raw\"", Some(1)), StampedRead::Unstamped(b"\"raw\""));
        let inner = stamp_value(NEVER, b"\"in\"");
        let double = stamp_value(1_700_000_000_000, &inner);
        assert_eq!(
            read_stamped(&double, Some(1_800_000_000_000)),
            StampedRead::Live(b"\"in\"")
        );
    }

    #[test]
    fn ttl_rounds_up_to_milliseconds() {
        assert_eq!(ttl_to_ms(Duration::from_micros(1)), 1);
        assert_eq!(ttl_to_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_to_ms(Duration::from_nanos(1_000_001)), 2);
        assert_eq!(ttl_to_ms(Duration::ZERO), 0);
    }

    #[test]
    fn high_water_moves_forward_only() {
        let s = TtlState::new(TtlOptions::default());
        assert_eq!(s.high_water(), None);
        s.advance_high_water(None);
        s.advance_high_water(Some(-1));
        assert_eq!(s.high_water(), None, "NO_TIMESTAMP never sets it");
        s.advance_high_water(Some(10));
        s.advance_high_water(Some(5));
        assert_eq!(s.high_water(), Some(10));
        s.advance_high_water(Some(MAX_PLAUSIBLE_STAMP_MS as i64));
        assert_eq!(s.high_water(), Some(10), "implausible timestamps are ignored");
    }

    #[test]
    fn load_reads_mode_and_high_water() {
        let p = MemoryPartition::new();
        let s = TtlState::load(&p, TtlOptions::default()).unwrap();
        assert!(!s.is_enabled() && s.high_water().is_none() && !s.migration_done());
        p.put(cf::METADATA, cf::TTL_ENABLED_KEY, b"\x01").unwrap();
        p.put(cf::METADATA, cf::TTL_HIGH_WATER_KEY, &42u64.to_be_bytes())
            .unwrap();
        p.put(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY, &2u64.to_be_bytes())
            .unwrap();
        let s = TtlState::load(&p, TtlOptions::default()).unwrap();
        assert!(s.is_enabled() && s.migration_done());
        assert_eq!(s.high_water(), Some(42));
        assert_eq!(s.unsaved_high_water(), None, "the loaded high-water is saved");
        s.advance_high_water(Some(50));
        assert_eq!(s.unsaved_high_water(), Some(50));
        s.note_high_water_saved(50);
        assert_eq!(s.unsaved_high_water(), None);
    }
}
