//! The multi-aggregation layout, quixstreams' `.agg(a=Sum("x"), b=Count(),
//! c=Collect())`: a tuple of named parts ([`Part`]), each an aggregator or
//! a collector.
//!
//! * State: one object, the aggregators' states keyed `"{name}/{suffix}"`
//!   in declaration order (`{"n/Count":3,"s/Sum/x":15}`); keys no longer
//!   declared are dropped on the next write, missing ones start from the
//!   initial state.
//! * Collected values: the whole record if any collector reads it
//!   ([`Collect::new`]), else an object of the collected columns in
//!   declaration order (`{"x":1,"y":10}`).
//! * Output: the tuple of the parts' results.
//!
//! Which layout a collected value has is decided by the types of the parts
//! ([`WholeKind`], folded over the tuple), so only a window that collects
//! whole records needs its record type to be `Serialize +
//! DeserializeOwned`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Serialize, Serializer};

use super::schema::{self, Schema, SlotOf};
use super::{Aggregation, MergeAggregation, Sealed};
use crate::aggregate::{state_suffix, Aggregator, Collect, Field, Mergeable, Whole};
use crate::error::DefinitionError;

/// What a part of a multi-aggregation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartRole {
    /// An aggregator: keeps a state in the window.
    Aggregate,
    /// A collector of whole records.
    CollectRecord,
    /// A collector of one column.
    CollectColumn,
}

/// Whether a part collects whole records (`WholeValue<V>`) or not
/// ([`NoWhole`]); `Or` folds the parts of a tuple into the window's.
pub trait WholeKind {
    /// `Self` if it collects whole records, else `B`.
    type Or<B: WholeKind>: WholeKind;
}

/// A part that does not collect whole records.
#[derive(Debug)]
pub struct NoWhole;

/// A part that collects whole records of type `V`.
pub struct WholeValue<V>(PhantomData<fn() -> V>);

impl WholeKind for NoWhole {
    type Or<B: WholeKind> = B;
}

impl<V> WholeKind for WholeValue<V> {
    type Or<B: WholeKind> = WholeValue<V>;
}

/// A value that never exists: the whole record of a window that collects
/// none.
#[derive(Debug)]
pub enum Never {}

impl<'de> Deserialize<'de> for Never {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Never, D::Error> {
        Err(de::Error::custom("this window collects no whole records"))
    }
}

/// How a window (the fold of its parts' [`WholeKind`]) stores collected
/// values: whole records of `V`, or objects of columns.
pub trait WholeOf<V: ?Sized> {
    /// The stored whole record ([`Never`] when columns are stored).
    type Record: DeserializeOwned;
    /// True if whole records are stored.
    const PRESENT: bool;
    /// The record a stored one is.
    fn record(stored: &Self::Record) -> Option<&V>;
    /// Serializes `record` as stored.
    fn serialize<S: Serializer>(record: &V, s: S) -> Result<S::Ok, S::Error>;
}

impl<V: ?Sized> WholeOf<V> for NoWhole {
    type Record = Never;
    const PRESENT: bool = false;

    fn record(stored: &Never) -> Option<&V> {
        match *stored {}
    }

    fn serialize<S: Serializer>(_: &V, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("this window collects no whole records"))
    }
}

impl<V: Serialize + DeserializeOwned> WholeOf<V> for WholeValue<V> {
    type Record = V;
    const PRESENT: bool = true;

    fn record(stored: &V) -> Option<&V> {
        Some(stored)
    }

    fn serialize<S: Serializer>(record: &V, s: S) -> Result<S::Ok, S::Error> {
        record.serialize(s)
    }
}

/// One named part of a multi-aggregation: an aggregator ([`AggPart`]) or
/// a collector ([`CollectPart`]). Made from `("name", aggregator)` pairs by
/// [`IntoPart`].
pub trait Part<V: ?Sized> {
    /// The part's state in the window (`()` for collectors).
    type State: Serialize + DeserializeOwned;
    /// The part's result.
    type Output;
    /// The collected column (column collectors; `()` otherwise).
    type Column: Serialize + DeserializeOwned;
    /// Whether it collects whole records.
    type Whole: WholeKind;
    /// What the part does.
    const ROLE: PartRole;

    /// The result name.
    fn name(&self) -> &str;
    /// The aggregator's state suffix (aggregators only).
    fn state_suffix(&self) -> Option<String>;
    /// The collected column's name (column collectors only).
    fn column(&self) -> Option<&str>;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// Adds a record to the state.
    fn add(&self, state: &mut Self::State, record: &V, timestamp: i64);
    /// The column value of `record` (column collectors only).
    fn column_value(&self, record: &V) -> Option<Self::Column>;
    /// The part's result: from `state`, or from the collected values
    /// (`records` when whole records are stored, else `columns`).
    fn output(&self, state: &Self::State, records: &[&V], columns: Vec<Self::Column>) -> Self::Output;
}

/// A [`Part`] that session windows can merge.
pub trait MergePart<V: ?Sized>: Part<V> {
    /// The state of the window made of `earlier` and `later`.
    fn merge(&self, earlier: Self::State, later: Self::State) -> Self::State;
}

/// A named aggregator.
#[derive(Clone, Debug)]
pub struct AggPart<A> {
    name: Cow<'static, str>,
    aggregator: A,
}

impl<V: ?Sized, A: Aggregator<V>> Part<V> for AggPart<A> {
    type State = A::State;
    type Output = A::Output;
    type Column = ();
    type Whole = NoWhole;
    const ROLE: PartRole = PartRole::Aggregate;

    fn name(&self) -> &str {
        &self.name
    }

    fn state_suffix(&self) -> Option<String> {
        Some(state_suffix::<V, A>(&self.aggregator))
    }

    fn column(&self) -> Option<&str> {
        None
    }

    fn init(&self) -> A::State {
        self.aggregator.initialize()
    }

    fn add(&self, state: &mut A::State, record: &V, timestamp: i64) {
        self.aggregator.aggregate(state, record, timestamp);
    }

    fn column_value(&self, _: &V) -> Option<()> {
        None
    }

    fn output(&self, state: &A::State, _: &[&V], _: Vec<()>) -> A::Output {
        self.aggregator.result(state)
    }
}

impl<V: ?Sized, A: Mergeable<V>> MergePart<V> for AggPart<A> {
    fn merge(&self, earlier: A::State, later: A::State) -> A::State {
        self.aggregator.merge(earlier, later)
    }
}

/// A named collector.
#[derive(Clone, Debug)]
pub struct CollectPart<X> {
    name: Cow<'static, str>,
    input: X,
}

impl<V: Clone + Serialize + DeserializeOwned> Part<V> for CollectPart<Whole> {
    type State = ();
    type Output = Vec<V>;
    type Column = ();
    type Whole = WholeValue<V>;
    const ROLE: PartRole = PartRole::CollectRecord;

    fn name(&self) -> &str {
        &self.name
    }

    fn state_suffix(&self) -> Option<String> {
        None
    }

    fn column(&self) -> Option<&str> {
        None
    }

    fn init(&self) {}

    fn add(&self, _: &mut (), _: &V, _: i64) {}

    fn column_value(&self, _: &V) -> Option<()> {
        None
    }

    fn output(&self, _: &(), records: &[&V], _: Vec<()>) -> Vec<V> {
        records.iter().map(|r| (*r).clone()).collect()
    }
}

impl<V, T, F> Part<V> for CollectPart<Field<F, T>>
where
    V: ?Sized,
    T: Serialize + DeserializeOwned,
    F: Fn(&V) -> T,
{
    type State = ();
    type Output = Vec<T>;
    type Column = T;
    type Whole = NoWhole;
    const ROLE: PartRole = PartRole::CollectColumn;

    fn name(&self) -> &str {
        &self.name
    }

    fn state_suffix(&self) -> Option<String> {
        None
    }

    fn column(&self) -> Option<&str> {
        crate::aggregate::Extract::<V>::column(&self.input)
    }

    fn init(&self) {}

    fn add(&self, _: &mut (), _: &V, _: i64) {}

    fn column_value(&self, record: &V) -> Option<T> {
        crate::aggregate::Extract::<V>::extract(&self.input, record)
    }

    fn output(&self, _: &(), records: &[&V], columns: Vec<T>) -> Vec<T> {
        if records.is_empty() {
            columns
        } else {
            records.iter().filter_map(|r| self.column_value(r)).collect()
        }
    }
}

impl<V: ?Sized, X> MergePart<V> for CollectPart<X>
where
    CollectPart<X>: Part<V, State = ()>,
{
    fn merge(&self, _: (), _: ()) {}
}

/// Marks a `("name", aggregator)` pair for [`IntoPart`].
#[derive(Debug)]
pub enum AggregatorPart {}
/// Marks a `("name", collector)` pair for [`IntoPart`].
#[derive(Debug)]
pub enum CollectorPart {}

/// A `("name", aggregator)` or `("name", collector)` pair of an
/// [`agg`](crate::Tumbling::agg) tuple. `M` tells the two apart.
pub trait IntoPart<V: ?Sized, M> {
    /// The part it makes.
    type Part: Part<V>;
    /// The part.
    fn into_part(self) -> Self::Part;
}

impl<V: ?Sized, S: Into<Cow<'static, str>>, A: Aggregator<V>> IntoPart<V, AggregatorPart> for (S, A) {
    type Part = AggPart<A>;

    fn into_part(self) -> AggPart<A> {
        AggPart {
            name: self.0.into(),
            aggregator: self.1,
        }
    }
}

impl<V: ?Sized, S: Into<Cow<'static, str>>, X> IntoPart<V, CollectorPart> for (S, Collect<X>)
where
    CollectPart<X>: Part<V>,
{
    type Part = CollectPart<X>;

    fn into_part(self) -> CollectPart<X> {
        CollectPart {
            name: self.0.into(),
            input: self.1.input,
        }
    }
}

/// A tuple of `("name", aggregator or collector)` pairs, as
/// [`agg`](crate::Tumbling::agg) takes it (1 to 12 pairs).
pub trait IntoParts<V: ?Sized, M> {
    /// The tuple of parts it makes.
    type Parts: Parts<V>;
    /// The parts.
    fn into_parts(self) -> Self::Parts;
}

/// Facts about one part, for validation and the schema.
#[derive(Clone, Debug)]
pub struct PartInfo {
    name: String,
    role: PartRole,
    state_key: Option<String>,
    column: Option<String>,
}

impl PartInfo {
    fn of<V: ?Sized, P: Part<V>>(part: &P) -> PartInfo {
        PartInfo {
            name: part.name().to_owned(),
            role: P::ROLE,
            state_key: part.state_suffix().map(|s| format!("{}/{s}", part.name())),
            column: part.column().map(str::to_owned),
        }
    }
}

/// A tuple of [`Part`]s: what a multi-aggregation computes.
pub trait Parts<V: ?Sized> {
    /// The parts' states.
    type States;
    /// The parts' states as read (missing ones `None`).
    type OptStates;
    /// The parts' results.
    type Outputs;
    /// A stored object of columns, by part.
    type Cols;
    /// How collected values are stored.
    type Whole: WholeOf<V>;

    /// Facts about each part, in order.
    fn infos(&self) -> Vec<PartInfo>;
    /// The initial states.
    fn init(&self) -> Self::States;
    /// Adds a record to every state.
    fn add(&self, states: &mut Self::States, record: &V, timestamp: i64);
    /// The states of what was read, missing ones initial.
    fn restore(&self, read: Self::OptStates) -> Self::States;
    /// Writes the aggregators' states as entries of `map`.
    fn serialize_states<M: SerializeMap>(
        &self,
        keys: &[Option<Box<str>>],
        states: &Self::States,
        map: &mut M,
    ) -> Result<(), M::Error>;
    /// Reads a stored object of states.
    fn deserialize_states<'de, A: MapAccess<'de>>(
        keys: &[Option<Box<str>>],
        map: A,
    ) -> Result<Self::OptStates, A::Error>;
    /// Writes the collected columns of `record` as entries of `map`.
    fn serialize_columns<M: SerializeMap>(
        &self,
        columns: &[Option<Box<str>>],
        record: &V,
        map: &mut M,
    ) -> Result<(), M::Error>;
    /// Reads a stored object of columns.
    fn deserialize_columns<'de, A: MapAccess<'de>>(
        columns: &[Option<Box<str>>],
        map: A,
    ) -> Result<Self::Cols, A::Error>;
    /// The results from the states and the collected values.
    fn outputs(&self, states: &Self::States, collected: Vec<MultiItem<Self, V>>) -> Self::Outputs
    where
        Self: Sized;
}

/// [`Parts`] whose every part can merge.
pub trait MergeParts<V: ?Sized>: Parts<V> {
    /// Merges every part.
    fn merge(&self, earlier: Self::States, later: Self::States) -> Self::States;
}

/// The parts' [`WholeKind`]s folded: the window's.
macro_rules! whole_fold {
    ($v:ident; $p:ident) => { <$p as Part<$v>>::Whole };
    ($v:ident; $p:ident, $($rest:ident),+) => {
        <<$p as Part<$v>>::Whole as WholeKind>::Or<whole_fold!($v; $($rest),+)>
    };
}

macro_rules! parts_tuple {
    ($( ($idx:tt $P:ident $E:ident $M:ident) ),+) => {
        impl<V: ?Sized, $($E: IntoPart<V, $M>, $M),+> IntoParts<V, ($($M,)+)> for ($($E,)+)
        where
            ($($E::Part,)+): Parts<V>,
        {
            type Parts = ($($E::Part,)+);

            fn into_parts(self) -> Self::Parts {
                ($(self.$idx.into_part(),)+)
            }
        }

        impl<V: ?Sized, $($P: Part<V>),+> Parts<V> for ($($P,)+)
        where
            whole_fold!(V; $($P),+): WholeOf<V>,
        {
            type States = ($($P::State,)+);
            type OptStates = ($(Option<$P::State>,)+);
            type Outputs = ($($P::Output,)+);
            type Cols = ($(Option<$P::Column>,)+);
            type Whole = whole_fold!(V; $($P),+);

            fn infos(&self) -> Vec<PartInfo> {
                vec![$(PartInfo::of::<V, $P>(&self.$idx)),+]
            }

            fn init(&self) -> Self::States {
                ($(self.$idx.init(),)+)
            }

            fn add(&self, states: &mut Self::States, record: &V, timestamp: i64) {
                $(self.$idx.add(&mut states.$idx, record, timestamp);)+
            }

            fn restore(&self, read: Self::OptStates) -> Self::States {
                ($(match read.$idx {
                    Some(s) => s,
                    None => self.$idx.init(),
                },)+)
            }

            fn serialize_states<Ser: SerializeMap>(
                &self,
                keys: &[Option<Box<str>>],
                states: &Self::States,
                map: &mut Ser,
            ) -> Result<(), Ser::Error> {
                $(if let Some(Some(key)) = keys.get($idx) {
                    map.serialize_entry(&**key, &states.$idx)?;
                })+
                Ok(())
            }

            fn deserialize_states<'de, A: MapAccess<'de>>(
                keys: &[Option<Box<str>>],
                mut map: A,
            ) -> Result<Self::OptStates, A::Error> {
                let mut read: Self::OptStates = ($(None::<$P::State>,)+);
                while let Some(slot) = map.next_key_seed(SlotOf(keys))? {
                    match slot {
                        $(Some($idx) => read.$idx = Some(map.next_value()?),)+
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(read)
            }

            fn serialize_columns<Ser: SerializeMap>(
                &self,
                columns: &[Option<Box<str>>],
                record: &V,
                map: &mut Ser,
            ) -> Result<(), Ser::Error> {
                $(if let Some(Some(column)) = columns.get($idx) {
                    if let Some(value) = self.$idx.column_value(record) {
                        map.serialize_entry(&**column, &value)?;
                    }
                })+
                Ok(())
            }

            fn deserialize_columns<'de, A: MapAccess<'de>>(
                columns: &[Option<Box<str>>],
                mut map: A,
            ) -> Result<Self::Cols, A::Error> {
                let mut read: Self::Cols = ($(None::<$P::Column>,)+);
                while let Some(slot) = map.next_key_seed(SlotOf(columns))? {
                    match slot {
                        $(Some($idx) => read.$idx = Some(map.next_value()?),)+
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(read)
            }

            fn outputs(&self, states: &Self::States, collected: Vec<MultiItem<Self, V>>) -> Self::Outputs {
                let mut stored = Vec::new();
                let mut columns = ($(Vec::<$P::Column>::new(),)+);
                for item in collected {
                    match item {
                        MultiItem::Record(r) => stored.push(r),
                        MultiItem::Columns(c) => {
                            $(if let Some(v) = c.$idx {
                                columns.$idx.push(v);
                            })+
                        }
                    }
                }
                let records: Vec<&V> = stored
                    .iter()
                    .filter_map(<Self::Whole as WholeOf<V>>::record)
                    .collect();
                ($(self.$idx.output(&states.$idx, &records, columns.$idx),)+)
            }
        }

        impl<V: ?Sized, $($P: MergePart<V>),+> MergeParts<V> for ($($P,)+)
        where
            ($($P,)+): Parts<V, States = ($($P::State,)+)>,
        {
            fn merge(&self, earlier: Self::States, later: Self::States) -> Self::States {
                ($(self.$idx.merge(earlier.$idx, later.$idx),)+)
            }
        }
    };
}

parts_tuple!((0 P0 E0 M0));
parts_tuple!((0 P0 E0 M0), (1 P1 E1 M1));
parts_tuple!((0 P0 E0 M0), (1 P1 E1 M1), (2 P2 E2 M2));
parts_tuple!((0 P0 E0 M0), (1 P1 E1 M1), (2 P2 E2 M2), (3 P3 E3 M3));
parts_tuple!((0 P0 E0 M0), (1 P1 E1 M1), (2 P2 E2 M2), (3 P3 E3 M3), (4 P4 E4 M4));
parts_tuple!((0 P0 E0 M0), (1 P1 E1 M1), (2 P2 E2 M2), (3 P3 E3 M3), (4 P4 E4 M4), (5 P5 E5 M5));
parts_tuple!(
    (0 P0 E0 M0),
    (1 P1 E1 M1),
    (2 P2 E2 M2),
    (3 P3 E3 M3),
    (4 P4 E4 M4),
    (5 P5 E5 M5),
    (6 P6 E6 M6)
);
parts_tuple!(
    (0 P0 E0 M0),
    (1 P1 E1 M1),
    (2 P2 E2 M2),
    (3 P3 E3 M3),
    (4 P4 E4 M4),
    (5 P5 E5 M5),
    (6 P6 E6 M6),
    (7 P7 E7 M7)
);
parts_tuple!(
    (0 P0 E0 M0),
    (1 P1 E1 M1),
    (2 P2 E2 M2),
    (3 P3 E3 M3),
    (4 P4 E4 M4),
    (5 P5 E5 M5),
    (6 P6 E6 M6),
    (7 P7 E7 M7),
    (8 P8 E8 M8)
);
parts_tuple!(
    (0 P0 E0 M0),
    (1 P1 E1 M1),
    (2 P2 E2 M2),
    (3 P3 E3 M3),
    (4 P4 E4 M4),
    (5 P5 E5 M5),
    (6 P6 E6 M6),
    (7 P7 E7 M7),
    (8 P8 E8 M8),
    (9 P9 E9 M9)
);
parts_tuple!(
    (0 P0 E0 M0),
    (1 P1 E1 M1),
    (2 P2 E2 M2),
    (3 P3 E3 M3),
    (4 P4 E4 M4),
    (5 P5 E5 M5),
    (6 P6 E6 M6),
    (7 P7 E7 M7),
    (8 P8 E8 M8),
    (9 P9 E9 M9),
    (10 P10 E10 M10)
);
parts_tuple!(
    (0 P0 E0 M0),
    (1 P1 E1 M1),
    (2 P2 E2 M2),
    (3 P3 E3 M3),
    (4 P4 E4 M4),
    (5 P5 E5 M5),
    (6 P6 E6 M6),
    (7 P7 E7 M7),
    (8 P8 E8 M8),
    (9 P9 E9 M9),
    (10 P10 E10 M10),
    (11 P11 E11 M11)
);

/// A multi-aggregation: quixstreams' `.agg(...)`. Made by a definition's
/// `agg((..))`.
pub struct Multi<T> {
    parts: T,
    infos: Vec<PartInfo>,
    schema: Arc<Schema>,
}

impl<T> fmt::Debug for Multi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multi").field("parts", &self.infos).finish()
    }
}

impl<T> Multi<T> {
    pub(crate) fn new<V: ?Sized>(parts: T) -> Self
    where
        T: Parts<V>,
    {
        let infos = parts.infos();
        let whole = <T::Whole as WholeOf<V>>::PRESENT;
        let schema = Schema {
            state_keys: infos.iter().map(|i| i.state_key.as_deref().map(Into::into)).collect(),
            // Columns are stored only when no collector stores whole records.
            columns: infos
                .iter()
                .map(|i| (!whole && i.role == PartRole::CollectColumn).then(|| i.column.as_deref().map(Into::into)))
                .map(Option::flatten)
                .collect(),
        };
        Multi {
            parts,
            infos,
            schema: Arc::new(schema),
        }
    }
}

impl<T> Sealed for Multi<T> {}

/// The states of a multi-aggregation, as an object.
struct StatesRef<'a, T, S> {
    parts: &'a T,
    keys: &'a [Option<Box<str>>],
    len: usize,
    states: &'a S,
}

impl<'a, T, S> StatesRef<'a, T, S> {
    fn serialize_with<Ser: Serializer>(
        &self,
        s: Ser,
        write: impl FnOnce(&mut Ser::SerializeMap) -> Result<(), Ser::Error>,
    ) -> Result<Ser::Ok, Ser::Error> {
        let mut map = s.serialize_map(Some(self.len))?;
        write(&mut map)?;
        map.end()
    }
}

/// The Serialize impl of [`StatesRef`] for record type `V`.
struct StatesOf<'a, T, V: ?Sized, S>(StatesRef<'a, T, S>, PhantomData<fn(&V)>);

impl<T: Parts<V, States = S>, V: ?Sized, S> Serialize for StatesOf<'_, T, V, S> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let r = &self.0;
        r.serialize_with(s, |map| r.parts.serialize_states(r.keys, r.states, map))
    }
}

/// What is collected for one record.
struct ItemOf<'a, T, V: ?Sized> {
    parts: &'a T,
    columns: &'a [Option<Box<str>>],
    len: usize,
    record: &'a V,
}

impl<T: Parts<V>, V: ?Sized> Serialize for ItemOf<'_, T, V> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        if <T::Whole as WholeOf<V>>::PRESENT {
            return <T::Whole as WholeOf<V>>::serialize(self.record, s);
        }
        let mut map = s.serialize_map(Some(self.len))?;
        self.parts.serialize_columns(self.columns, self.record, &mut map)?;
        map.end()
    }
}

/// A stored multi-aggregation state, as read.
pub struct MultiStored<T: Parts<V>, V: ?Sized>(T::OptStates, PhantomData<fn(&V)>);

impl<'de, T: Parts<V>, V: ?Sized> Deserialize<'de> for MultiStored<T, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T, V: ?Sized>(PhantomData<fn(&V) -> T>);
        impl<'de, T: Parts<V>, V: ?Sized> Visitor<'de> for Visit<T, V> {
            type Value = MultiStored<T, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of aggregation states")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                schema::with_current(|schema| {
                    Ok(MultiStored(
                        T::deserialize_states(&schema.state_keys, map)?,
                        PhantomData,
                    ))
                })
            }
        }
        d.deserialize_map(Visit(PhantomData))
    }
}

/// A collected value of a multi-aggregation, as read: a whole record or
/// an object of columns.
pub enum MultiItem<T: Parts<V>, V: ?Sized> {
    /// A whole record.
    Record(<T::Whole as WholeOf<V>>::Record),
    /// The collected columns, by part.
    Columns(T::Cols),
}

impl<'de, T: Parts<V>, V: ?Sized> Deserialize<'de> for MultiItem<T, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if <T::Whole as WholeOf<V>>::PRESENT {
            return Ok(MultiItem::Record(<T::Whole as WholeOf<V>>::Record::deserialize(d)?));
        }
        struct Visit<T, V: ?Sized>(PhantomData<fn(&V) -> T>);
        impl<'de, T: Parts<V>, V: ?Sized> Visitor<'de> for Visit<T, V> {
            type Value = MultiItem<T, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of collected columns")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                schema::with_current(|schema| Ok(MultiItem::Columns(T::deserialize_columns(&schema.columns, map)?)))
            }
        }
        d.deserialize_map(Visit(PhantomData))
    }
}

impl<V: ?Sized, T: Parts<V>> Aggregation<V> for Multi<T> {
    type State = T::States;
    type Output = T::Outputs;
    type Stored = MultiStored<T, V>;
    type Item = MultiItem<T, V>;

    fn aggregates(&self) -> bool {
        self.infos.iter().any(|i| i.role == PartRole::Aggregate)
    }

    fn collects(&self) -> bool {
        self.infos.iter().any(|i| i.role != PartRole::Aggregate)
    }

    fn init(&self) -> T::States {
        self.parts.init()
    }

    fn add(&self, state: &mut T::States, record: &V, timestamp: i64) {
        self.parts.add(state, record, timestamp);
    }

    fn restore(&self, stored: MultiStored<T, V>) -> T::States {
        self.parts.restore(stored.0)
    }

    fn stored<'a>(&'a self, state: &'a T::States) -> impl Serialize + 'a
    where
        V: 'a,
    {
        StatesOf::<T, V, T::States>(
            StatesRef {
                parts: &self.parts,
                keys: &self.schema.state_keys,
                len: self.schema.state_keys.iter().flatten().count(),
                states: state,
            },
            PhantomData,
        )
    }

    fn item<'a>(&'a self, record: &'a V) -> impl Serialize + 'a
    where
        V: 'a,
    {
        ItemOf {
            parts: &self.parts,
            columns: &self.schema.columns,
            len: self.schema.columns.iter().flatten().count(),
            record,
        }
    }

    fn decoding<R>(&self, f: impl FnOnce() -> R) -> R {
        schema::with_schema(&self.schema, f)
    }

    fn output(&self, state: &T::States, collected: Vec<MultiItem<T, V>>) -> T::Outputs {
        self.parts.outputs(state, collected)
    }

    fn function(&self) -> Option<String> {
        None
    }

    fn validate(&self) -> Result<(), DefinitionError> {
        let mut names: Vec<&str> = Vec::new();
        let mut columns: Vec<&str> = Vec::new();
        for info in &self.infos {
            if info.name == "start" || info.name == "end" {
                return Err(DefinitionError::ReservedName(info.name.clone()));
            }
            if names.contains(&info.name.as_str()) {
                return Err(DefinitionError::DuplicateName(info.name.clone()));
            }
            names.push(&info.name);
        }
        for column in self.schema.columns.iter().flatten() {
            if columns.contains(&&**column) {
                return Err(DefinitionError::DuplicateColumn(column.to_string()));
            }
            columns.push(column);
        }
        Ok(())
    }
}

impl<V: ?Sized, T: MergeParts<V>> MergeAggregation<V> for Multi<T> {
    fn merge(&self, earlier: T::States, later: T::States) -> T::States {
        self.parts.merge(earlier, later)
    }
}
