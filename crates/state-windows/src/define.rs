//! Window definitions: [`Tumbling`], [`Hopping`], [`Sliding`],
//! [`Session`], [`TumblingCount`], [`HoppingCount`] and [`SlidingCount`].
//! Each is a builder with named options, ended by what the window computes:
//! `aggregate(aggregator)` (quixstreams' `.count()`, `.sum()`, ...),
//! `agg((("name", aggregator), ...))` (quixstreams' `.agg(name=...)`) or
//! `collect()`; that call checks the definition and returns the
//! [`WindowOperator`].

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::aggregate::{Aggregator, Mergeable};
use crate::error::DefinitionError;
use crate::kinds::{Closing, CountKind, FixedKind, SessionKind, SlidingKind};
use crate::layout::{Aggregation, CollectValues, IntoParts, MergeParts, Multi, Single};
use crate::operator::{WindowOperator, MAX_DURATION_MS};
use crate::result::Emit;

/// `d` in whole milliseconds, at least `min`.
fn millis(what: &'static str, d: Duration, min: u64) -> Result<i64, DefinitionError> {
    let bad = || DefinitionError::Duration { what, value: d, min };
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(bad());
    }
    let ms = i64::try_from(d.as_millis()).map_err(|_| bad())?;
    if (ms as u64) < min {
        return Err(bad());
    }
    if ms > MAX_DURATION_MS {
        return Err(DefinitionError::DurationTooLong {
            what,
            value: d,
            max_ms: MAX_DURATION_MS,
        });
    }
    Ok(ms)
}

/// The options every definition has.
#[derive(Clone, Debug, Default)]
struct Common {
    name: Option<String>,
    emit: Emit,
}

impl Common {
    /// Checks `aggregation` and builds the operator named
    /// `{name}_{base}_{function}` as quixstreams names its stores.
    fn build<V: ?Sized, K, G: Aggregation<V>>(
        self,
        kind: K,
        base: String,
        aggregation: G,
    ) -> Result<WindowOperator<V, K, G>, DefinitionError> {
        aggregation.validate()?;
        if self.emit == Emit::OnUpdate && aggregation.collects() {
            return Err(DefinitionError::CollectOnUpdate);
        }
        let mut store_name = match &self.name {
            Some(n) => format!("{n}_{base}"),
            None => base,
        };
        if let Some(function) = aggregation.function() {
            store_name.push('_');
            store_name.push_str(&function);
        }
        Ok(WindowOperator {
            kind,
            aggregation,
            emit: self.emit,
            store_name,
            on_late: None,
            record: PhantomData,
        })
    }
}

/// The options and terminal calls every definition shares; `$mergeable`
/// adds the session windows' bounds on what can be computed.
macro_rules! definition {
    ($def:ident, $kind:ty) => {
        impl $def {
            /// Prefixes the store name with `name` (quixstreams' `name=`):
            /// `{name}_tumbling_window_60000_count`. Two windows of one
            /// stream need different names.
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.common.name = Some(name.into());
                self
            }

            /// When windows are emitted (default [`Emit::OnClose`],
            /// quixstreams' `.final()`; [`Emit::OnUpdate`] is `.current()`).
            pub fn emit(mut self, emit: Emit) -> Self {
                self.common.emit = emit;
                self
            }

            /// Whole records collected into a list per window (quixstreams'
            /// `.collect()`); windows emit on close only.
            pub fn collect<V: Serialize + DeserializeOwned>(
                self,
            ) -> Result<WindowOperator<V, $kind, CollectValues<V>>, DefinitionError> {
                let (kind, base) = self.kind()?;
                self.common.build(kind, base, CollectValues::new())
            }
        }
    };
}

macro_rules! terminals {
    ($def:ident, $kind:ty) => {
        impl $def {
            /// One aggregation, its state stored bare (quixstreams'
            /// `.count()`, `.sum()`, `.mean()`, `.min()`, `.max()`,
            /// `.reduce()`; the store name ends with the aggregation's name
            /// in lower case).
            pub fn aggregate<V: ?Sized, A: Aggregator<V>>(
                self,
                aggregator: A,
            ) -> Result<WindowOperator<V, $kind, Single<A>>, DefinitionError> {
                let (kind, base) = self.kind()?;
                self.common.build(kind, base, Single { aggregator })
            }

            /// Several named aggregations and collectors at once
            /// (quixstreams' `.agg(total=Sum("x"), n=Count())`): a tuple of
            /// 1 to 12 `("name", aggregator or collector)` pairs. The result
            /// is the tuple of their results; the state is one object keyed
            /// `"{name}/{aggregation}"` (`"total/Sum/x"`).
            pub fn agg<V: ?Sized, T: IntoParts<V, M>, M>(
                self,
                parts: T,
            ) -> Result<WindowOperator<V, $kind, Multi<T::Parts>>, DefinitionError> {
                let (kind, base) = self.kind()?;
                self.common.build(kind, base, Multi::new(parts.into_parts()))
            }
        }
    };
}

/// Tumbling windows: `[0, size)`, `[size, 2 size)`, ... (quixstreams'
/// `tumbling_window`).
///
/// ```
/// use std::time::Duration;
/// use state_windows::{Closing, Count, Sum, Tumbling};
///
/// struct Order { cents: i64 }
/// // Orders and revenue per key and minute, closed by the partition's time.
/// let per_minute = Tumbling::new(Duration::from_secs(60))
///     .grace(Duration::from_secs(5))
///     .closing(Closing::Partition)
///     .agg((("orders", Count::new()), ("revenue", Sum::of("cents", |o: &Order| o.cents))))?;
/// assert_eq!(per_minute.store_name(), "tumbling_window_60000");
/// # Ok::<(), state_windows::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Tumbling {
    size: Duration,
    grace: Duration,
    closing: Closing,
    common: Common,
}

impl Tumbling {
    /// Windows of `size` (a whole number of milliseconds, at least 1).
    pub fn new(size: Duration) -> Self {
        Tumbling {
            size,
            grace: Duration::ZERO,
            closing: Closing::Key,
            common: Common::default(),
        }
    }

    /// How long after its end a window still takes late records (default
    /// 0).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Whose event time closes windows (default [`Closing::Key`]).
    pub fn closing(mut self, closing: Closing) -> Self {
        self.closing = closing;
        self
    }

    fn kind(&self) -> Result<(FixedKind, String), DefinitionError> {
        let size = millis("size", self.size, 1)?;
        let kind = FixedKind {
            size,
            step: size,
            grace: millis("grace", self.grace, 0)?,
            closing: self.closing,
        };
        Ok((kind, format!("tumbling_window_{size}")))
    }
}

definition!(Tumbling, FixedKind);
terminals!(Tumbling, FixedKind);

/// Hopping windows: `size` long, one starting every `step` (quixstreams'
/// `hopping_window`); a record counts in every window it falls in.
///
/// ```
/// use std::time::Duration;
/// use state_windows::{Hopping, Mean};
///
/// // A 5-minute moving average, updated every minute.
/// let avg = Hopping::new(Duration::from_secs(300), Duration::from_secs(60)).aggregate(Mean::<_>::new())?;
/// assert_eq!(avg.store_name(), "hopping_window_300000_60000_mean");
/// # let _: &state_windows::WindowOperator<f64, _, _> = &avg;
/// # Ok::<(), state_windows::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Hopping {
    size: Duration,
    step: Duration,
    grace: Duration,
    closing: Closing,
    common: Common,
}

impl Hopping {
    /// Windows of `size`, one every `step` (`0 < step < size`, whole
    /// milliseconds).
    pub fn new(size: Duration, step: Duration) -> Self {
        Hopping {
            size,
            step,
            grace: Duration::ZERO,
            closing: Closing::Key,
            common: Common::default(),
        }
    }

    /// How long after its end a window still takes late records (default
    /// 0).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Whose event time closes windows (default [`Closing::Key`]).
    pub fn closing(mut self, closing: Closing) -> Self {
        self.closing = closing;
        self
    }

    fn kind(&self) -> Result<(FixedKind, String), DefinitionError> {
        let size = millis("size", self.size, 1)?;
        let step = millis("step", self.step, 1)?;
        if step >= size {
            return Err(DefinitionError::StepNotBelowSize { size, step });
        }
        let kind = FixedKind {
            size,
            step,
            grace: millis("grace", self.grace, 0)?,
            closing: self.closing,
        };
        Ok((kind, format!("hopping_window_{size}_{step}")))
    }
}

definition!(Hopping, FixedKind);
terminals!(Hopping, FixedKind);

/// Sliding windows (quixstreams' `sliding_window`): for each record at
/// `t`, the window `[t - size, t]` of the records before it, emitted when
/// it closes; closing is per key.
///
/// ```
/// use std::time::Duration;
/// use state_windows::{Max, Sliding};
///
/// // The highest price of the 10 seconds up to each trade.
/// let high = Sliding::new(Duration::from_secs(10)).aggregate(Max::new())?;
/// # let _: &state_windows::WindowOperator<i64, _, _> = &high;
/// assert_eq!(high.store_name(), "sliding_window_10000_max");
/// # Ok::<(), state_windows::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sliding {
    size: Duration,
    grace: Duration,
    common: Common,
}

impl Sliding {
    /// Windows of `size` (whole milliseconds, at least 1).
    pub fn new(size: Duration) -> Self {
        Sliding {
            size,
            grace: Duration::ZERO,
            common: Common::default(),
        }
    }

    /// How long after its end a window still takes late records (default
    /// 0).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    fn kind(&self) -> Result<(SlidingKind, String), DefinitionError> {
        let size = millis("size", self.size, 1)?;
        let kind = SlidingKind {
            size,
            grace: millis("grace", self.grace, 0)?,
        };
        Ok((kind, format!("sliding_window_{size}")))
    }
}

definition!(Sliding, SlidingKind);
terminals!(Sliding, SlidingKind);

/// Session windows (quixstreams' `session_window`): a key's records at
/// most `gap` apart form one session; a session closes once the key (or
/// the partition, with [`Closing::Partition`]) has moved `gap + grace`
/// past its gap. A late record that bridges two sessions merges them, so
/// every aggregation must be [`Mergeable`].
///
/// ```
/// use std::time::Duration;
/// use state_windows::{Count, Earliest, Session};
///
/// struct Click { page: String }
/// let visits = Session::new(Duration::from_secs(30 * 60))
///     .agg((
///         ("clicks", Count::new()),
///         ("landing", Earliest::of("page", |c: &Click| c.page.clone())),
///     ))?;
/// assert_eq!(visits.store_name(), "session_window_1800000");
/// # Ok::<(), state_windows::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Session {
    gap: Duration,
    grace: Duration,
    closing: Closing,
    common: Common,
}

impl Session {
    /// Sessions with inactivity gap `gap` (whole milliseconds, at least 1).
    pub fn new(gap: Duration) -> Self {
        Session {
            gap,
            grace: Duration::ZERO,
            closing: Closing::Key,
            common: Common::default(),
        }
    }

    /// How long past a session's gap it still takes late records (default
    /// 0).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Whose event time closes sessions (default [`Closing::Key`]).
    pub fn closing(mut self, closing: Closing) -> Self {
        self.closing = closing;
        self
    }

    fn kind(&self) -> Result<(SessionKind, String), DefinitionError> {
        let gap = millis("gap", self.gap, 1)?;
        let kind = SessionKind {
            gap,
            grace: millis("grace", self.grace, 0)?,
            closing: self.closing,
        };
        Ok((kind, format!("session_window_{gap}")))
    }

    /// One aggregation, its state stored bare (quixstreams' `.count()`,
    /// `.sum()`, ...); it must be [`Mergeable`].
    pub fn aggregate<V: ?Sized, A: Mergeable<V>>(
        self,
        aggregator: A,
    ) -> Result<WindowOperator<V, SessionKind, Single<A>>, DefinitionError> {
        let (kind, base) = self.kind()?;
        self.common.build(kind, base, Single { aggregator })
    }

    /// Several named aggregations and collectors at once (quixstreams'
    /// `.agg(...)`); every aggregation must be [`Mergeable`].
    pub fn agg<V: ?Sized, T: IntoParts<V, M>, M>(
        self,
        parts: T,
    ) -> Result<WindowOperator<V, SessionKind, Multi<T::Parts>>, DefinitionError>
    where
        T::Parts: MergeParts<V>,
    {
        let (kind, base) = self.kind()?;
        self.common.build(kind, base, Multi::new(parts.into_parts()))
    }
}

definition!(Session, SessionKind);

fn count_of(count: u64) -> Result<i64, DefinitionError> {
    match i64::try_from(count) {
        Ok(c) if c >= 2 => Ok(c),
        _ => Err(DefinitionError::CountTooSmall(count)),
    }
}

/// Tumbling count windows (quixstreams' `tumbling_count_window`): each
/// key's records in groups of `count`; a window closes with its
/// `count`-th record.
///
/// ```
/// use state_windows::{Sum, TumblingCount};
/// let batches = TumblingCount::new(100).aggregate(Sum::new())?;
/// # let _: &state_windows::WindowOperator<i64, _, _> = &batches;
/// assert_eq!(batches.store_name(), "tumbling_count_window_sum");
/// # Ok::<(), state_windows::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TumblingCount {
    count: u64,
    common: Common,
}

impl TumblingCount {
    /// Windows of `count` records (at least 2).
    pub fn new(count: u64) -> Self {
        TumblingCount {
            count,
            common: Common::default(),
        }
    }

    fn kind(&self) -> Result<(CountKind, String), DefinitionError> {
        let kind = CountKind {
            count: count_of(self.count)?,
            step: None,
        };
        Ok((kind, "tumbling_count_window".to_owned()))
    }
}

definition!(TumblingCount, CountKind);
terminals!(TumblingCount, CountKind);

/// Hopping count windows (quixstreams' `hopping_count_window`): windows of
/// `count` records, a new one every `step` records.
///
/// ```
/// use state_windows::{HoppingCount, Mean};
/// let smoothed = HoppingCount::new(10, 5).aggregate(Mean::new())?;
/// # let _: &state_windows::WindowOperator<f64, _, _> = &smoothed;
/// assert_eq!(smoothed.store_name(), "hopping_count_window_mean");
/// # Ok::<(), state_windows::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct HoppingCount {
    count: u64,
    step: u64,
    common: Common,
}

impl HoppingCount {
    /// Windows of `count` records (at least 2), one every `step` (at least
    /// 1).
    pub fn new(count: u64, step: u64) -> Self {
        HoppingCount {
            count,
            step,
            common: Common::default(),
        }
    }

    fn kind(&self) -> Result<(CountKind, String), DefinitionError> {
        let step = match i64::try_from(self.step) {
            Ok(s) if s >= 1 => s,
            _ => return Err(DefinitionError::CountStepZero),
        };
        let kind = CountKind {
            count: count_of(self.count)?,
            step: Some(step),
        };
        Ok((kind, "hopping_count_window".to_owned()))
    }
}

definition!(HoppingCount, CountKind);
terminals!(HoppingCount, CountKind);

/// Sliding count windows (quixstreams' `sliding_count_window`): for each
/// record, the window of the `count` records ending with it (a hopping
/// count window with step 1).
///
/// ```
/// use state_windows::{Max, SlidingCount};
/// let recent_max = SlidingCount::new(3).aggregate(Max::new())?;
/// # let _: &state_windows::WindowOperator<u32, _, _> = &recent_max;
/// assert_eq!(recent_max.store_name(), "sliding_count_window_max");
/// # Ok::<(), state_windows::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SlidingCount {
    count: u64,
    common: Common,
}

impl SlidingCount {
    /// Windows of `count` records (at least 2).
    pub fn new(count: u64) -> Self {
        SlidingCount {
            count,
            common: Common::default(),
        }
    }

    fn kind(&self) -> Result<(CountKind, String), DefinitionError> {
        let kind = CountKind {
            count: count_of(self.count)?,
            step: Some(1),
        };
        Ok((kind, "sliding_count_window".to_owned()))
    }
}

definition!(SlidingCount, CountKind);
terminals!(SlidingCount, CountKind);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Collect, Count, Reduce, Sum};

    #[test]
    fn definitions_are_checked_as_quixstreams_checks_them() {
        let ms = Duration::from_millis;
        assert!(matches!(
            Tumbling::new(ms(0))
                .aggregate(Count::new())
                .map(|_: WindowOperator<(), _, _>| ()),
            Err(DefinitionError::Duration { what: "size", .. })
        ));
        assert!(matches!(
            Tumbling::new(Duration::from_micros(1500))
                .aggregate(Count::new())
                .map(|_: WindowOperator<(), _, _>| ()),
            Err(DefinitionError::Duration { what: "size", .. })
        ));
        assert_eq!(
            Hopping::new(ms(10), ms(10))
                .aggregate(Count::new())
                .map(|_: WindowOperator<(), _, _>| ())
                .unwrap_err(),
            DefinitionError::StepNotBelowSize { size: 10, step: 10 }
        );
        assert_eq!(
            TumblingCount::new(1)
                .aggregate(Count::new())
                .map(|_: WindowOperator<(), _, _>| ())
                .unwrap_err(),
            DefinitionError::CountTooSmall(1)
        );
        assert_eq!(
            HoppingCount::new(3, 0)
                .aggregate(Count::new())
                .map(|_: WindowOperator<(), _, _>| ())
                .unwrap_err(),
            DefinitionError::CountStepZero
        );
        let too_long = Duration::from_millis(MAX_DURATION_MS as u64 + 1);
        assert_eq!(
            Tumbling::new(ms(10))
                .grace(too_long)
                .aggregate(Count::new())
                .map(|_: WindowOperator<(), _, _>| ())
                .unwrap_err(),
            DefinitionError::DurationTooLong {
                what: "grace",
                value: too_long,
                max_ms: MAX_DURATION_MS
            }
        );
        let err = Tumbling::new(ms(10))
            .agg((("start", Count::new()),))
            .map(|_: WindowOperator<(), _, _>| ())
            .unwrap_err();
        assert_eq!(err, DefinitionError::ReservedName("start".into()));
        let err = Tumbling::new(ms(10))
            .agg((("n", Count::new()), ("n", Sum::new())))
            .map(|_: WindowOperator<i64, _, _>| ())
            .unwrap_err();
        assert_eq!(err, DefinitionError::DuplicateName("n".into()));
        let err = Tumbling::new(ms(10))
            .emit(Emit::OnUpdate)
            .collect::<i64>()
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err, DefinitionError::CollectOnUpdate);
        let err = Tumbling::new(ms(10))
            .emit(Emit::OnUpdate)
            .agg((("n", Count::new()), ("all", Collect::new())))
            .map(|_: WindowOperator<i64, _, _>| ())
            .unwrap_err();
        assert_eq!(err, DefinitionError::CollectOnUpdate);
    }

    #[test]
    fn store_names_are_quixstreams_names() {
        let ms = Duration::from_millis;
        let name = |r: Result<String, DefinitionError>| r.unwrap();
        assert_eq!(
            name(
                Tumbling::new(ms(60_000))
                    .aggregate(Count::new())
                    .map(|w: WindowOperator<(), _, _>| w.store_name().to_owned())
            ),
            "tumbling_window_60000_count"
        );
        assert_eq!(
            name(
                Hopping::new(ms(10_000), ms(1_000))
                    .agg((("n", Count::new()),))
                    .map(|w: WindowOperator<(), _, _>| w.store_name().to_owned())
            ),
            "hopping_window_10000_1000"
        );
        assert_eq!(
            name(
                Sliding::new(ms(500))
                    .name("prices")
                    .collect::<i64>()
                    .map(|w| w.store_name().to_owned())
            ),
            "prices_sliding_window_500_collect"
        );
        let reduce = Reduce::new(|v: &i64| *v, |a: i64, v: &i64| a + v).merger(|a: i64, b: i64| a + b);
        assert_eq!(
            name(
                Session::new(ms(30_000))
                    .aggregate(reduce)
                    .map(|w| w.store_name().to_owned())
            ),
            "session_window_30000_reduce"
        );
        assert_eq!(
            name(
                HoppingCount::new(5, 2)
                    .aggregate(Sum::new())
                    .map(|w: WindowOperator<i64, _, _>| w.store_name().to_owned())
            ),
            "hopping_count_window_sum"
        );
        assert_eq!(
            name(
                SlidingCount::new(5)
                    .name("x")
                    .aggregate(Count::new())
                    .map(|w: WindowOperator<(), _, _>| w.store_name().to_owned())
            ),
            "x_sliding_count_window_count"
        );
    }
}
