//! [`Processor`]: the application's per-record logic, written once and run
//! by [`crate::App`] in production and by `kafka_state::testing` in tests.

use super::context::Context;
use super::record::Record;

/// The error a processor returns: any error (`?` converts the manager's,
/// the transactions', serde's and your own).
pub type ProcessError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Processes one record at a time: reads and writes the current
/// checkpoint's store transactions and sends output records, all through
/// the [`Context`]. Everything it does for a record commits with the
/// checkpoint that holds the record's offset, or not at all (exactly-once:
/// state, changelog, outputs and offsets in one Kafka transaction).
///
/// Returning an error aborts the current checkpoint (nothing of it is
/// kept, its outputs are aborted under exactly-once) and ends the run
/// ([`crate::AppError::Process`]); a restart processes its records again
/// from the last committed offsets, as Kafka Streams' default exception
/// handler does. Handle errors you want to skip inside `process`.
///
/// Implement it on a struct holding your [`crate::StoreHandle`]s, or wrap
/// a closure with [`processor_fn`].
pub trait Processor {
    /// Processes `record`.
    fn process(&mut self, record: &Record<'_>, ctx: &mut Context<'_>) -> Result<(), ProcessError>;
}

impl<P: Processor + ?Sized> Processor for Box<P> {
    fn process(&mut self, record: &Record<'_>, ctx: &mut Context<'_>) -> Result<(), ProcessError> {
        (**self).process(record, ctx)
    }
}

/// A [`Processor`] from a closure (see [`processor_fn`]).
#[derive(Clone, Debug)]
pub struct FnProcessor<F>(F);

/// A [`Processor`] that calls `f` for every record. The closure's argument
/// types are inferred from here, so `processor_fn(move |record, ctx| ...)`
/// needs no annotations.
pub fn processor_fn<F>(f: F) -> FnProcessor<F>
where
    F: FnMut(&Record<'_>, &mut Context<'_>) -> Result<(), ProcessError>,
{
    FnProcessor(f)
}

impl<F> Processor for FnProcessor<F>
where
    F: FnMut(&Record<'_>, &mut Context<'_>) -> Result<(), ProcessError>,
{
    fn process(&mut self, record: &Record<'_>, ctx: &mut Context<'_>) -> Result<(), ProcessError> {
        (self.0)(record, ctx)
    }
}
