//! quixstreams' aggregations: `Count()` and `Sum()` ([`Aggregator`]), and
//! how a window stores, merges and emits them with `Collect()`
//! ([`Aggregations`]).

use serde_json::{Map, Value};

/// An aggregator quixstreams ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregator {
    /// `Count()`: the number of non-null values.
    Count,
    /// `Sum()`: the sum of the (integer) values.
    Sum,
}

impl Aggregator {
    fn class(self) -> &'static str {
        match self {
            Aggregator::Count => "Count",
            Aggregator::Sum => "Sum",
        }
    }

    fn agg(self, old: &Value, value: &Value) -> Value {
        let old = old.as_i64().unwrap_or(0);
        if value.is_null() {
            return Value::from(old);
        }
        match self {
            Aggregator::Count => Value::from(old + 1),
            Aggregator::Sum => Value::from(old + value.as_i64().unwrap_or(0)),
        }
    }

    fn merge(self, a: &Value, b: &Value) -> Value {
        Value::from(a.as_i64().unwrap_or(0) + b.as_i64().unwrap_or(0))
    }
}

/// What a window computes: quixstreams' `SingleAggregationWindowMixin` (one
/// aggregator or collector, stored bare, emitted as `value`) or
/// `MultiAggregationWindowMixin` (a dictionary `{"<column>/<Class>": state}`,
/// emitted as one field per column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregations {
    /// `(result column, aggregator)`, in declaration order.
    pub aggregators: Vec<(String, Aggregator)>,
    /// The result column of a `Collect()` collector, if any.
    pub collect: Option<String>,
    /// The single-aggregation layout (exactly one aggregator or collector,
    /// named `value`).
    pub single: bool,
}

impl Aggregations {
    /// Multi-aggregation with the given aggregators and optional collector.
    pub fn multi(aggregators: &[(&str, Aggregator)], collect: Option<&str>) -> Self {
        Aggregations {
            aggregators: aggregators.iter().map(|(c, a)| ((*c).to_owned(), *a)).collect(),
            collect: collect.map(str::to_owned),
            single: false,
        }
    }

    /// Single aggregation with one aggregator.
    pub fn single(aggregator: Aggregator) -> Self {
        Aggregations {
            aggregators: vec![("value".to_owned(), aggregator)],
            collect: None,
            single: true,
        }
    }

    /// Single `Collect()`.
    pub fn single_collect() -> Self {
        Aggregations {
            aggregators: Vec::new(),
            collect: Some("value".to_owned()),
            single: true,
        }
    }

    /// True if there are aggregators.
    pub fn aggregate(&self) -> bool {
        !self.aggregators.is_empty()
    }

    /// True if values are collected.
    pub fn collects(&self) -> bool {
        self.collect.is_some()
    }

    fn state_key(column: &str, a: Aggregator) -> String {
        format!("{column}/{}", a.class())
    }

    /// `_initialize_value`.
    pub fn init(&self) -> Value {
        if self.single {
            return match self.aggregators.first() {
                Some(_) => Value::from(0),
                None => Value::Null,
            };
        }
        let mut m = Map::new();
        for (c, a) in &self.aggregators {
            m.insert(Self::state_key(c, *a), Value::from(0));
        }
        Value::Object(m)
    }

    /// `_aggregate_value`.
    pub fn agg(&self, state: &Value, value: &Value) -> Value {
        if self.single {
            return match self.aggregators.first() {
                Some((_, a)) => a.agg(state, value),
                None => Value::Null,
            };
        }
        let mut m = Map::new();
        for (c, a) in &self.aggregators {
            let k = Self::state_key(c, *a);
            let old = state.get(&k).cloned().unwrap_or(Value::from(0));
            m.insert(k, a.agg(&old, value));
        }
        Value::Object(m)
    }

    /// `_merge_values` (`a` starts earlier).
    pub fn merge(&self, a: &Value, b: &Value) -> Value {
        if self.single {
            return match self.aggregators.first() {
                Some((_, agg)) => agg.merge(a, b),
                None => Value::Null,
            };
        }
        let mut m = Map::new();
        for (c, agg) in &self.aggregators {
            let k = Self::state_key(c, *agg);
            let zero = Value::from(0);
            m.insert(
                k.clone(),
                agg.merge(a.get(&k).unwrap_or(&zero), b.get(&k).unwrap_or(&zero)),
            );
        }
        Value::Object(m)
    }

    /// `_results`: the dictionary emitted for a window.
    pub fn results(&self, aggregated: &Value, collected: &[Value], start: i64, end: i64) -> Value {
        let mut m = Map::new();
        m.insert("start".into(), Value::from(start));
        m.insert("end".into(), Value::from(end));
        if self.single {
            if self.aggregate() {
                m.insert("value".into(), aggregated.clone());
            } else {
                m.insert("value".into(), Value::Array(collected.to_vec()));
            }
            return Value::Object(m);
        }
        for (c, a) in &self.aggregators {
            let v = aggregated
                .get(Self::state_key(c, *a))
                .cloned()
                .unwrap_or(Value::from(0));
            m.insert(c.clone(), v);
        }
        if let Some(c) = &self.collect {
            m.insert(c.clone(), Value::Array(collected.to_vec()));
        }
        Value::Object(m)
    }
}
