//! A Kafka-compatible broker for the tests: `tansu` (crates.io; no JVM, no Docker) with in-memory storage on a
//! free loopback port, installed by `scripts/test.sh`, stopped on drop. `CONNECTOR_TEST_KAFKA_BROKERS` points the
//! same tests at a broker of the user's (Apache Kafka, Redpanda) instead. Topics are created and messages
//! produced by an independent client, Python's `kafka-python`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::certificates::client_certificate;
use super::loopback::{free_port, wait_until_listening};
use super::tls_terminator::TlsTerminator;

pub struct KafkaBroker {
    child: Option<Child>,
    pub brokers: String,
    /// Keyword arguments of the test's `kafka-python` clients (SASL and TLS), a Python dict literal.
    client_options: String,
    /// How the broker was started, to start it again on its storage (`restart`).
    tansu_args: Vec<String>,
    /// Where tansu runs: its SQLite storage is a path relative to it (tansu 0.6 joins an absolute one to it).
    working_dir: Option<PathBuf>,
    tls: Option<TlsTerminator>,
}

/// A broker that asks for credentials and speaks TLS: tansu with `--authentication`, its SCRAM users kept in a
/// SQLite file, behind a TLS listener ([`TlsTerminator`]) whose certificate comes from `ca`.
pub struct SecuredBroker {
    pub broker: KafkaBroker,
    /// The authority of the listener's certificate, what clients trust.
    pub ca: PathBuf,
    /// With mutual TLS, the client certificate and key the listener asks for (signed by `ca`).
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    pub user: String,
    pub password: String,
    _dir: tempfile::TempDir,
}

impl KafkaBroker {
    pub fn start() -> KafkaBroker {
        if let Ok(brokers) = std::env::var("CONNECTOR_TEST_KAFKA_BROKERS") {
            return KafkaBroker {
                child: None,
                brokers,
                client_options: "{}".into(),
                tansu_args: Vec::new(),
                working_dir: None,
                tls: None,
            };
        }
        let port = free_port();
        let listener = format!("tcp://127.0.0.1:{port}");
        let args = tansu_args(&listener, &listener, "memory://tansu/");
        KafkaBroker {
            child: Some(spawn_tansu(&args, port, None)),
            brokers: format!("127.0.0.1:{port}"),
            client_options: "{}".into(),
            tansu_args: args,
            working_dir: None,
            tls: None,
        }
    }

    /// A broker asking for SASL credentials over TLS, with one user (SCRAM-SHA-512 and SCRAM-SHA-256; tansu
    /// takes any PLAIN password); `None` when the tests run against
    /// a broker of the user's (`CONNECTOR_TEST_KAFKA_BROKERS`), whose security they do not set up, or when the
    /// tansu found lacks SQLite storage (where it keeps users).
    /// With `mutual_tls`, the listener also asks clients for a certificate `ca` signed.
    pub async fn start_secured(mutual_tls: bool) -> Option<SecuredBroker> {
        if std::env::var("CONNECTOR_TEST_KAFKA_BROKERS").is_ok() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        super::servers::write_test_certificates(dir.path(), None, &dir.path().join("openssl.log")).await;
        let (user, password) = ("connector".to_string(), "a SCRAM secret".to_string());
        let port = free_port();
        let plain = format!("tcp://127.0.0.1:{port}");
        let storage = "sqlite://tansu.db";
        // Users are created through the broker, before it asks for them.
        let setup_args = tansu_args(&plain, &plain, storage);
        let mut setup = spawn_tansu(&setup_args, port, Some(dir.path()));
        for mechanism in ["scram512", "scram256"] {
            let created = Command::new(tansu())
                .args(["user", "create", "--broker", &plain, "--mechanism", mechanism, &user, &password])
                .output()
                .expect("tansu runs");
            assert!(created.status.success(), "tansu user create: {}", String::from_utf8_lossy(&created.stderr));
        }
        let _ = setup.kill();
        let _ = setup.wait();
        let ca = dir.path().join("ca.crt");
        let client_certificate = mutual_tls.then(|| client_certificate(dir.path(), "connector"));
        let terminator = TlsTerminator::start(
            &dir.path().join("server.crt"),
            &dir.path().join("server.key"),
            mutual_tls.then_some(ca.as_path()),
            format!("127.0.0.1:{port}"),
        )
        .await;
        let advertised = format!("tcp://127.0.0.1:{}", terminator.port);
        let mut args = tansu_args(&plain, &advertised, storage);
        args.push("--authentication".into());
        let client_files = match &client_certificate {
            Some((certificate, key)) => {
                format!(", 'ssl_certfile': {:?}, 'ssl_keyfile': {:?}", certificate.display(), key.display())
            }
            None => String::new(),
        };
        let client_options = format!(
            "{{'security_protocol': 'SASL_SSL', 'sasl_mechanism': 'SCRAM-SHA-512', 'sasl_plain_username': {user:?}, \
             'sasl_plain_password': {password:?}, 'ssl_cafile': {:?}{client_files}}}",
            ca.display().to_string()
        );
        let broker = KafkaBroker {
            child: Some(spawn_tansu(&args, port, Some(dir.path()))),
            brokers: format!("127.0.0.1:{}", terminator.port),
            client_options,
            tansu_args: args,
            working_dir: Some(dir.path().to_path_buf()),
            tls: Some(terminator),
        };
        Some(SecuredBroker { broker, ca, client_certificate, user, password, _dir: dir })
    }

    /// A broker keeping its messages on disk (tansu's SQLite storage), where retention deletes them; `None` against
    /// a broker of the user's (`CONNECTOR_TEST_KAFKA_BROKERS`), whose retention the tests do not control.
    pub fn start_on_disk(dir: &Path) -> Option<KafkaBroker> {
        if std::env::var("CONNECTOR_TEST_KAFKA_BROKERS").is_ok() {
            return None;
        }
        let port = free_port();
        let listener = format!("tcp://127.0.0.1:{port}");
        let args = tansu_args(&listener, &listener, "sqlite://tansu.db");
        Some(KafkaBroker {
            child: Some(spawn_tansu(&args, port, Some(dir))),
            brokers: format!("127.0.0.1:{port}"),
            client_options: "{}".into(),
            tansu_args: args,
            working_dir: Some(dir.to_path_buf()),
            tls: None,
        })
    }

    /// Stops the broker and starts it again on the same storage and ports: what a broker's own periodic work
    /// (retention) does first on start happens now.
    pub fn restart(&mut self) {
        let Some(child) = self.child.as_mut() else { return };
        let _ = child.kill();
        let _ = child.wait();
        let port: u16 = self.tansu_args[2].rsplit(':').next().and_then(|port| port.parse().ok()).expect("port");
        self.child = Some(spawn_tansu(&self.tansu_args, port, self.working_dir.as_deref()));
    }

    /// Creates `topic` with `partitions` partitions; a topic name unique to the test keeps a user's broker usable.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let script = r#"
import sys
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], **client_options)
admin.create_topics([NewTopic(name=sys.argv[2], num_partitions=int(sys.argv[3]), replication_factor=1)])
admin.close()
"#;
        self.python(script, &[&self.brokers, topic, &partitions.to_string()]);
    }

    /// Creates `topic` with one partition and the topic configuration `configs` (`retention.ms`, …).
    pub fn create_topic_with_config(&self, topic: &str, configs: &[(&str, &str)]) {
        let script = r#"
import sys, json
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], **client_options)
configs = json.loads(sys.argv[3])
admin.create_topics([NewTopic(name=sys.argv[2], num_partitions=1, replication_factor=1, topic_configs=configs)])
admin.close()
"#;
        let configs: BTreeMap<&str, &str> = configs.iter().copied().collect();
        let configs = serde_json::to_string(&configs).expect("JSON");
        self.python(script, &[&self.brokers, topic, &configs]);
    }

    /// The offset of partition 0's oldest message the broker keeps.
    pub fn earliest_offset(&self, topic: &str) -> i64 {
        let script = r#"
import sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], **client_options)
print(list(consumer.beginning_offsets([TopicPartition(sys.argv[2], 0)]).values())[0])
"#;
        self.python(script, &[&self.brokers, topic]).trim().parse().expect("an offset")
    }

    /// The offsets consumer group `group` has committed for partitions `0..partitions` of `topic` (`None` where
    /// it has none), as a lag tool reads them.
    pub fn group_offsets(&self, group: &str, topic: &str, partitions: u32) -> Vec<Option<i64>> {
        let script = r#"
import sys, json
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], group_id=sys.argv[3], enable_auto_commit=False, **client_options)
print(json.dumps([consumer.committed(TopicPartition(sys.argv[2], p)) for p in range(int(sys.argv[4]))]))
consumer.close(autocommit=False)
"#;
        let printed = self.python(script, &[&self.brokers, topic, group, &partitions.to_string()]);
        serde_json::from_str(printed.trim()).expect("offsets as JSON")
    }

    /// Deletes `topic`.
    pub fn delete_topic(&self, topic: &str) {
        let script = r#"
import sys
from kafka.admin import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], **client_options)
admin.delete_topics([sys.argv[2]])
admin.close()
"#;
        self.python(script, &[&self.brokers, topic]);
    }

    /// Deletes `topic` and creates it again with `partitions`, empty. A broker deletes a topic in the background,
    /// so the creation is retried while the old topic is still being removed.
    pub fn recreate_topic(&self, topic: &str, partitions: u32) {
        let script = r#"
import sys, time
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], **client_options)
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
        self.python(script, &[&self.brokers, topic, &partitions.to_string()]);
    }

    /// Whether the broker finds a partition's offset by time (ListOffsets with a timestamp). tansu 0.6 answers
    /// offset 0 whatever the time; Apache Kafka and Redpanda find it.
    pub fn finds_offsets_by_time(&self, topic: &str) -> bool {
        let script = r#"
import sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
producer = KafkaProducer(bootstrap_servers=sys.argv[1], batch_size=1, linger_ms=0, **client_options)
for i in range(3):
    producer.send(sys.argv[2], partition=0, value=b"probe", timestamp_ms=1_000_000_000_000 + i * 1000)
producer.flush()
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], **client_options)
found = consumer.offsets_for_times({TopicPartition(sys.argv[2], 0): 1_000_000_002_000})
print("yes" if list(found.values())[0].offset == 2 else "no")
"#;
        self.python(script, &[&self.brokers, topic]).trim() == "yes"
    }

    /// Adds partitions to `topic`, to `partitions` in all; `false` when the broker cannot. tansu 0.6 lacks the
    /// CreatePartitions request (Apache Kafka and Redpanda have it): on its SQLite storage the partitions are
    /// added there as CreatePartitions would (the topic's count, a partition row and its watermarks), which the
    /// running broker then serves; on its in-memory storage they cannot be.
    pub fn add_partitions(&self, topic: &str, partitions: u32) -> bool {
        let script = r#"
import sys
from kafka.admin import KafkaAdminClient, NewPartitions
from kafka.errors import IncompatibleBrokerVersion
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], **client_options)
try:
    admin.create_partitions({sys.argv[2]: NewPartitions(total_count=int(sys.argv[3]))})
    print("added")
except IncompatibleBrokerVersion:
    print("unsupported")
admin.close()
"#;
        if self.python(script, &[&self.brokers, topic, &partitions.to_string()]).trim() == "added" {
            return true;
        }
        let Some(dir) = &self.working_dir else { return false };
        let in_storage = r#"
import sqlite3, sys
database = sqlite3.connect(sys.argv[1], timeout=30)
with database:
    topic, count = database.execute("select id, partitions from topic where name = ?", (sys.argv[2],)).fetchone()
    database.execute("update topic set partitions = ? where id = ?", (int(sys.argv[3]), topic))
    for partition in range(count, int(sys.argv[3])):
        row = database.execute("insert into topition (topic, partition) values (?, ?) returning id", (topic, partition))
        database.execute("insert into watermark (topition) values (?)", (row.fetchone()[0],))
"#;
        let database = dir.join("tansu.db");
        python(in_storage, &[database.to_str().expect("utf-8"), topic, &partitions.to_string()]);
        true
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
             acks='all', {batching}, **client_options)\ntopic = sys.argv[2]\n{script}\nproducer.flush()\nproducer.close()\n"
        );
        let mut all = vec![self.brokers.as_str(), topic];
        all.extend_from_slice(args);
        self.python(&program, &all)
    }

    /// Runs `script` with `client_options` defined: the keyword arguments its `kafka-python` clients need.
    fn python(&self, script: &str, args: &[&str]) -> String {
        python(&format!("client_options = {}\n{script}", self.client_options), args)
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.tls.take();
    }
}

fn tansu_args(listener: &str, advertised: &str, storage: &str) -> Vec<String> {
    ["broker", "--listener-url", listener, "--advertised-listener-url", advertised, "--storage-engine", storage]
        .map(String::from)
        .to_vec()
}

fn spawn_tansu(args: &[String], port: u16, working_dir: Option<&Path>) -> Child {
    let mut command = Command::new(tansu());
    if let Some(dir) = working_dir {
        command.current_dir(dir);
    }
    let child =
        command.args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect(
            "tansu runs (scripts/test.sh installs it: cargo install --locked tansu --features dynostore,libsql)",
        );
    wait_until_listening(port, "tansu");
    child
}

/// The tansu binary: on the PATH, or where `scripts/test.sh` installs it.
fn tansu() -> String {
    let installed =
        std::env::var("HOME").map(|home| format!("{home}/.cache/connector-tools/tansu-with-sqlite/bin/tansu"));
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
