//! The `async_counts` example (tokio, `StreamConsumer`, exactly-once) runs
//! against the in-process mock cluster and its counts are exact.

#[allow(dead_code)]
#[path = "../examples/async_counts.rs"]
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_counts_is_exact_on_the_mock_cluster() {
    let outcome = example::run(None, 3_000).await.expect("the example runs");
    assert_eq!(outcome.processed, 3_000);
    for (key, (have, want)) in &outcome.counts {
        assert_eq!(have, want, "{key}");
    }
    assert!(outcome.exact());
}
