//! A word count, exactly once: each record of topic `words` is one word,
//! keyed by itself. The processor keeps each word's total and its counts
//! per minute, sends the new total to `word-counts`, and each minute's
//! count to `word-windows` once the minute is over.

use kafka_state::{
    Context, ExpireOptions, KeyValueStore, ManagerConfig, ManagerError, ProcessError, ProcessingGuarantee, Processor,
    Record, StoreHandle, StoreSpec, Topology, WindowedStore,
};
use serde::{Deserialize, Serialize};

/// The consumer group, and the prefix of the changelog topics.
pub const GROUP: &str = "word-count";
/// The input: one word per record, keyed by the word.
pub const WORDS: &str = "words";
/// Each word's new total, on every update.
pub const COUNTS: &str = "word-counts";
/// Each word's count of a minute, once the minute is over.
pub const WINDOWS: &str = "word-windows";
/// Window length, ms.
pub const MINUTE: i64 = 60_000;

/// The settings production and tests share.
pub fn configure(config: &mut ManagerConfig) {
    config.guarantee = ProcessingGuarantee::ExactlyOnce;
}

/// A minute's count of a word, as sent to [`WINDOWS`] (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteCount {
    /// Start of the minute, ms since the epoch.
    pub start: i64,
    /// The word's records in it.
    pub count: u64,
}

/// The processor: the handles of its two stores.
pub struct WordCount {
    /// Each word's total, under state key `"total"`.
    pub totals: StoreHandle<KeyValueStore>,
    /// Each word's count per minute.
    pub minutes: StoreHandle<WindowedStore>,
}

/// The topology: two stores on `words` (which makes it the input), two
/// outputs. Production (`App::new`) and tests (`TestDriver`) call it.
pub fn word_count(topology: &mut Topology<'_>) -> Result<WordCount, ManagerError> {
    let totals = topology.store(StoreSpec::key_value(WORDS, "totals"))?;
    let minutes = topology.store(StoreSpec::windowed(WORDS, "minutes"))?;
    topology.output(COUNTS).output(WINDOWS);
    Ok(WordCount { totals, minutes })
}

impl Processor for WordCount {
    fn process(&mut self, record: &Record<'_>, ctx: &mut Context<'_>) -> Result<(), ProcessError> {
        let word = record
            .key()
            .ok_or("a record without a key: words are keyed by themselves")?;
        let now = record.timestamp().ok_or("a record without a timestamp")?;

        // The total: read, add one, write (inside this checkpoint).
        let mut total = ctx.store(&self.totals)?.key(word);
        let n: u64 = total.get("total")?.unwrap_or(0) + 1;
        total.set("total", &n)?;
        ctx.send_to(COUNTS, word, n.to_string().as_bytes())?;

        // This minute's count, and every earlier minute of the word: final.
        let start = now - now.rem_euclid(MINUTE);
        let mut minutes = ctx.store(&self.minutes)?.key(word);
        let count: u64 = minutes.get_window(start, start + MINUTE)?.unwrap_or(0) + 1;
        minutes.update_window(start, start + MINUTE, &count, now)?;
        let closed = minutes.expire_windows::<u64, ()>(start - MINUTE, ExpireOptions::delete())?;
        for window in closed {
            let done = MinuteCount {
                start: window.start,
                count: window.value,
            };
            ctx.send_to(WINDOWS, word, &serde_json::to_vec(&done)?)?;
        }
        Ok(())
    }
}
