//! The word count under the test driver: an in-process Kafka cluster, no
//! broker to install, no sleeps.

use std::time::Duration;

use first_processor::{configure, word_count, MinuteCount, WordCount, COUNTS, GROUP, MINUTE, WINDOWS, WORDS};
use kafka_state::testing::{Restart, TestDriver, TestError};

fn driver() -> Result<TestDriver<WordCount>, TestError> {
    TestDriver::builder()
        .group_id(GROUP)
        .configure(configure)
        .build(word_count)
}

/// The committed total of `word`.
fn total(driver: &TestDriver<WordCount>, word: &str) -> Result<Option<u64>, TestError> {
    driver.get(&driver.processor().totals, word, "total")
}

#[test]
fn counts_every_word() -> Result<(), TestError> {
    let mut driver = driver()?;
    let words = driver.input_topic(WORDS)?;
    let mut counts = driver.output_topic(COUNTS)?;
    words.pipe_all([("kafka", ""), ("state", ""), ("kafka", "")])?;
    driver.run_until_idle()?;

    assert_eq!(total(&driver, "kafka")?, Some(2));
    assert_eq!(total(&driver, "state")?, Some(1));
    let latest = counts.read_latest_by_key()?;
    assert_eq!(latest["kafka"], "2");
    assert_eq!(latest["state"], "1");
    Ok(())
}

#[test]
fn a_crash_loses_nothing_and_counts_nothing_twice() -> Result<(), TestError> {
    let mut driver = driver()?;
    let words = driver.input_topic(WORDS)?;
    let mut counts = driver.output_topic(COUNTS)?;
    words.pipe_all([("kafka", ""), ("kafka", "")])?;
    driver.run_until_idle()?;

    // Two more are processed, but the process dies before they commit,
    // and its disk with it: the next member restores from the changelogs
    // and processes them again.
    words.pipe_all([("kafka", ""), ("state", "")])?;
    driver.process_records(2)?;
    driver.restart(Restart::CrashLosingState)?;
    driver.run_until_idle()?;

    assert!(!driver.restores().is_empty(), "the state came back from the changelogs");
    assert_eq!(total(&driver, "kafka")?, Some(3));
    assert_eq!(total(&driver, "state")?, Some(1));
    // Exactly once: one output per input record, none from the lost work.
    let kafka_totals: Vec<String> = counts
        .read_key_values()?
        .into_iter()
        .filter(|(word, _)| word == "kafka")
        .map(|(_, total)| total)
        .collect();
    assert_eq!(kafka_totals, ["1", "2", "3"]);
    Ok(())
}

#[test]
fn a_minute_closes_when_time_moves_on() -> Result<(), Box<dyn std::error::Error>> {
    let mut driver = driver()?;
    let words = driver.input_topic(WORDS)?;
    let mut windows = driver.output_topic(WINDOWS)?;
    let minute = words.now() - words.now().rem_euclid(MINUTE);
    words.pipe("kafka", "")?;
    words.advance_time(Duration::from_secs(30));
    words.pipe("kafka", "")?;
    driver.run_until_idle()?;
    assert!(windows.read_records()?.is_empty(), "the minute is not over");

    words.advance_time(Duration::from_secs(60));
    words.pipe("kafka", "")?;
    driver.run_until_idle()?;
    let closed = windows.read_records()?;
    assert_eq!(closed.len(), 1);
    let count: MinuteCount = serde_json::from_slice(closed[0].value.as_deref().unwrap_or_default())?;
    assert_eq!(
        count,
        MinuteCount {
            start: minute,
            count: 2
        }
    );
    Ok(())
}
