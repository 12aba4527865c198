//! Runs the word count against a broker until Enter is pressed:
//! `KAFKA_BOOTSTRAP_SERVERS=host:9092 cargo run -p first-processor`
//! (topics `words`, `word-counts` and `word-windows` must exist; the
//! changelog topics are created on start). `RUST_LOG=info` shows what the
//! state manager does.

use kafka_state::rdkafka::ClientConfig;
use kafka_state::{App, ManagerConfig, Shutdown};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs (restores, rebalances, warnings) go through `tracing`: install
    // a subscriber or they go nowhere.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let brokers = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "localhost:9092".into());
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", &brokers);
    let mut config = ManagerConfig::new(first_processor::GROUP, "./state");
    first_processor::configure(&mut config);

    let app = App::new(config, kafka, first_processor::word_count)?;
    // Any thread (a signal handler, say) can ask the app to stop; it then
    // commits, leaves the group and hands its partitions over.
    let shutdown = Shutdown::new();
    let on_enter = shutdown.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        on_enter.request();
    });
    println!("counting words from {brokers}; press Enter to stop");
    app.run(&shutdown)?;
    Ok(())
}
