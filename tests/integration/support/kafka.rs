//! A Kafka-compatible broker for the tests: `tansu` (crates.io; no JVM, no Docker) with in-memory storage on a
//! free loopback port, installed by `scripts/test.sh`, stopped on drop. `CONNECTOR_TEST_KAFKA_BROKERS` points the
//! same tests at a broker of the user's (Apache Kafka, Redpanda) instead. Topics are created and messages
//! produced by an independent client, Python's `kafka-python`.

use std::process::{Child, Command, Stdio};

use super::loopback::{free_port, wait_until_listening};

pub struct KafkaBroker {
    child: Option<Child>,
    pub brokers: String,
}

impl KafkaBroker {
    pub fn start() -> KafkaBroker {
        if let Ok(brokers) = std::env::var("CONNECTOR_TEST_KAFKA_BROKERS") {
            return KafkaBroker { child: None, brokers };
        }
        let port = free_port();
        let listener = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu runs (scripts/test.sh installs it: cargo install --locked tansu --features dynostore)");
        wait_until_listening(port, "tansu");
        KafkaBroker { child: Some(child), brokers: format!("127.0.0.1:{port}") }
    }

    /// Creates `topic` with `partitions` partitions; a topic name unique to the test keeps a user's broker usable.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let script = r#"
import sys
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
admin.create_topics([NewTopic(name=sys.argv[2], num_partitions=int(sys.argv[3]), replication_factor=1)])
admin.close()
"#;
        python(script, &[&self.brokers, topic, &partitions.to_string()]);
    }

    /// Deletes `topic` and creates it again with `partitions`, empty. A broker deletes a topic in the background,
    /// so the creation is retried while the old topic is still being removed.
    pub fn recreate_topic(&self, topic: &str, partitions: u32) {
        let script = r#"
import sys, time
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
admin.delete_topics([sys.argv[2]])
for attempt in range(100):
    try:
        admin.create_topics([NewTopic(name=sys.argv[2], num_partitions=int(sys.argv[3]), replication_factor=1)])
        break
    except TopicAlreadyExistsError:
        time.sleep(0.2)
else:
    raise SystemExit("the deleted topic is still there after 20 s")
admin.close()
"#;
        python(script, &[&self.brokers, topic, &partitions.to_string()]);
    }

    /// Whether the broker finds a partition's offset by time (ListOffsets with a timestamp). tansu 0.6 answers
    /// offset 0 whatever the time; Apache Kafka and Redpanda find it.
    pub fn finds_offsets_by_time(&self, topic: &str) -> bool {
        let script = r#"
import sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
producer = KafkaProducer(bootstrap_servers=sys.argv[1], batch_size=1, linger_ms=0)
for i in range(3):
    producer.send(sys.argv[2], partition=0, value=b"probe", timestamp_ms=1_000_000_000_000 + i * 1000)
producer.flush()
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1])
found = consumer.offsets_for_times({TopicPartition(sys.argv[2], 0): 1_000_000_002_000})
print("yes" if list(found.values())[0].offset == 2 else "no")
"#;
        python(script, &[&self.brokers, topic]).trim() == "yes"
    }

    /// Adds partitions to `topic`, to `partitions` in all; `false` when the broker cannot (tansu 0.6 lacks the
    /// CreatePartitions request; Apache Kafka and Redpanda have it).
    pub fn add_partitions(&self, topic: &str, partitions: u32) -> bool {
        let script = r#"
import sys
from kafka.admin import KafkaAdminClient, NewPartitions
from kafka.errors import IncompatibleBrokerVersion
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
try:
    admin.create_partitions({sys.argv[2]: NewPartitions(total_count=int(sys.argv[3]))})
    print("added")
except IncompatibleBrokerVersion:
    print("unsupported")
admin.close()
"#;
        python(script, &[&self.brokers, topic, &partitions.to_string()]).trim() == "added"
    }

    /// Runs a Python script with `producer` (a `kafka-python` producer connected to the broker) and `topic`
    /// defined; it returns after every message is acknowledged. On tansu each message is a record batch of its
    /// own: tansu 0.6 answers a fetch from an offset inside a batch of several records with a later batch (and
    /// its end offsets fall short of its log), which a broker of the Kafka protocol never does.
    /// Returns what the script prints.
    pub fn produce(&self, topic: &str, script: &str) -> String {
        self.produce_with(topic, script, &[])
    }

    /// [`produce`](Self::produce) with more arguments for the script, from `sys.argv[3]` on.
    pub fn produce_with(&self, topic: &str, script: &str, args: &[&str]) -> String {
        let batching = if self.child.is_some() { "batch_size=1, linger_ms=0" } else { "linger_ms=5" };
        let program = format!(
            "import sys, json\nfrom kafka import KafkaProducer\nproducer = KafkaProducer(bootstrap_servers=sys.argv[1], \
             acks='all', {batching})\ntopic = sys.argv[2]\n{script}\nproducer.flush()\nproducer.close()\n"
        );
        let mut all = vec![self.brokers.as_str(), topic];
        all.extend_from_slice(args);
        python(&program, &all)
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The tansu binary: on the PATH, or where `scripts/test.sh` installs it.
fn tansu() -> String {
    let installed = std::env::var("HOME").map(|home| format!("{home}/.cache/connector-tools/tansu/bin/tansu"));
    match installed {
        Ok(path) if std::path::Path::new(&path).exists() => path,
        _ => "tansu".to_string(),
    }
}

fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python Kafka client failed (pip install kafka-python): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The schema registry emulator (`fixtures/schema-registry/registry.py`) on a free loopback port, or the registry
/// at `CONNECTOR_TEST_SCHEMA_REGISTRY_URL`; stopped on drop.
pub struct SchemaRegistry {
    child: Option<Child>,
    pub url: String,
}

impl SchemaRegistry {
    pub fn start() -> SchemaRegistry {
        if let Ok(url) = std::env::var("CONNECTOR_TEST_SCHEMA_REGISTRY_URL") {
            return SchemaRegistry { child: None, url };
        }
        Self::emulator(None)
    }

    /// The emulator asking every request for `user_and_password` (`user:password`) by HTTP basic
    /// authentication; `None` when the tests run against a registry of the user's, whose credentials they do
    /// not set.
    pub fn start_with_credentials(user_and_password: &str) -> Option<SchemaRegistry> {
        if std::env::var("CONNECTOR_TEST_SCHEMA_REGISTRY_URL").is_ok() {
            return None;
        }
        Some(Self::emulator(Some(user_and_password)))
    }

    fn emulator(credentials: Option<&str>) -> SchemaRegistry {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/schema-registry/registry.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .args(credentials)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the schema registry emulator");
        wait_until_listening(port, "the schema registry emulator");
        SchemaRegistry { child: Some(child), url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
