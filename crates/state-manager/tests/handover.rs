//! Leaving the group under exactly-once on the mock cluster: a member that
//! closes hands its partitions over with nothing processed twice (the
//! survivor's offset commits wait out the rebalance instead of rewinding),
//! and a checkpoint the group does refuse is reported as an event and a
//! metric.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use state_manager::{ManagerEvent, ProcessingGuarantee, StateStoreManager};
use test_support::counting::*;
use test_support::metrics::Counters;

/// Every event a member's manager reported.
fn record_events(m: &Member) -> Arc<Mutex<Vec<ManagerEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    m.manager
        .lock()
        .set_event_listener(move |e| sink.lock().unwrap().push(e.clone()));
    events
}

#[test]
fn a_member_that_closes_hands_over_without_reprocessing() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let eos = ProcessingGuarantee::ExactlyOnce;
    let mut a = member(&bootstrap, eos, "a", "cooperative-sticky", Fate::Survives);
    let mut b = member(&bootstrap, eos, "b", "cooperative-sticky", Fate::Survives);
    let b_events = record_events(&b);
    settle(&mut a, &mut b);
    let truth = produce_input(&cluster);
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.processed < 45 || b.processed == 0 || a.since_commit == 0 {
        step(&mut a, 3);
        step(&mut b, 3);
        assert!(Instant::now() < deadline, "members did not share the work in time");
    }
    // A leaves with processed but uncommitted records: close commits them.
    let processed_by_a = a.processed;
    let Member { consumer, manager, .. } = a;
    StateStoreManager::close(&manager, consumer).expect("a clean close");
    assert!(
        manager.lock().restoring().is_empty() && !manager.lock().is_assigned(INPUT, 0),
        "a closed manager owns nothing"
    );

    finish(&mut b);
    assert_eq!(counts(&b), truth, "exact counts");
    assert_eq!(
        processed_by_a + b.processed,
        RECORDS,
        "records processed by both members: none processed twice"
    );
    let events = b_events.lock().unwrap();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ManagerEvent::CheckpointRewound { .. })),
        "the survivor rewound no checkpoint: {events:?}"
    );
}

#[test]
fn a_checkpoint_the_group_refuses_is_reported_as_an_event_and_a_metric() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut m = member_with(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "solo",
        "cooperative-sticky",
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        // A short wait for the group, so the refusal outlasts it.
        |c| c.kafka_timeout = Duration::from_secs(2),
    );
    let events = record_events(&m);
    own_all(&mut m);
    let truth = produce_input(&cluster);
    let counters = Counters::default();
    metrics::with_local_recorder(&counters, || {
        process_until(&mut m, 30);
        cluster.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS; 200],
        );
        m.commit()
            .expect("a refused mirror is no error: the checkpoint is rewound");
        cluster.clear_request_errors(RDKafkaApiKey::OffsetCommit);
    });
    let rewound: u64 = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ManagerEvent::CheckpointRewound { partitions, cause } => {
                assert!(cause.to_string().contains("rebalanc"), "{cause}");
                Some(partitions.iter().map(|p| p.records()).sum::<u64>())
            }
            _ => None,
        })
        .sum();
    assert_eq!(rewound, 30, "the checkpoint's 30 records are processed again");
    assert_eq!(counters.get("kafka_state_rewound_records_total"), 30);
    assert_eq!(counters.get("kafka_state_checkpoints_total,result=rewound"), 1);

    finish(&mut m);
    assert_eq!(counts(&m), truth, "exact after the rewind");
}
