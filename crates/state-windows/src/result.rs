//! What a window operator emits: [`WindowResult`]s, on close or on every
//! update ([`Emit`]).

/// When a window operator emits a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Emit {
    /// Once, when the window closes (quixstreams' `.final()`): its final
    /// result. The default.
    #[default]
    OnClose,
    /// After every record that changes it (quixstreams' `.current()`): its
    /// result so far. Closing windows still expire (their state is
    /// deleted) but are not emitted again.
    OnUpdate,
}

/// One window's result, as [`WindowOperator::process`](crate::WindowOperator::process)
/// returns it.
///
/// The bounds follow quixstreams per kind: tumbling and hopping `[start,
/// end)`; sliding `[start, end]` (both inclusive); session `[first event,
/// last event + 1)`; count windows `[min, max]` event time of their
/// records (both inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowResult<O> {
    /// The key the window belongs to (under partition-wide closing, other
    /// keys' windows close too).
    pub key: Vec<u8>,
    /// Start, ms.
    pub start: i64,
    /// End, ms.
    pub end: i64,
    /// The aggregation's result.
    pub value: O,
}
