//! A topic's offsets as the engine commits them: the next offset to read in every partition, as a JSON object
//! (`{"0":1200,"1":1187}`), the token of the engine's polled streams. The Delta commit that lands a batch's rows
//! carries the offsets after them, so the table is the consumer's only checkpoint. Messages the broker deleted
//! before they were read, skipped because the pipeline allows it (`fail_on_data_loss = false`), are counted in
//! the token too (`{"0":1200,"skipped":{"0":100}}`), so `connector status` shows the loss for as long as the
//! table holds the gap.

use std::collections::BTreeMap;

use connector_core::error::{Error, Result};

/// The key of the skipped counts in a token; partitions are numbers, so it cannot be one.
const SKIPPED_KEY: &str = "skipped";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicOffsets {
    /// Partition → next offset to read.
    pub next: BTreeMap<i32, i64>,
    /// Partition → messages skipped in it, in all, because the broker deleted them before they were read.
    pub skipped: BTreeMap<i32, i64>,
}

impl TopicOffsets {
    pub fn new(next: BTreeMap<i32, i64>) -> Self {
        TopicOffsets { next, skipped: BTreeMap::new() }
    }

    /// The offsets a committed token holds; `topic` names it in the error.
    pub fn parse(token: &str, topic: &str, pipeline: &str) -> Result<Self> {
        let broken = || {
            Error::state(format!(
                "kafka.{topic}: the committed offsets `{token}` are not a JSON object of partitions to offsets; \
                 resync the topic (connector resync --pipeline {pipeline} --table kafka.{topic})"
            ))
        };
        let entries: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(token).map_err(|cause| broken().caused_by(cause))?;
        let mut offsets = TopicOffsets::default();
        for (key, value) in entries {
            if key == SKIPPED_KEY {
                let counts: BTreeMap<String, i64> = serde_json::from_value(value).map_err(|_| broken())?;
                offsets.skipped = by_partition(counts, topic)?;
            } else {
                let offset = value.as_i64().ok_or_else(broken)?;
                offsets.next.insert(partition_number(&key, topic)?, offset);
            }
        }
        Ok(offsets)
    }

    pub fn token(&self) -> String {
        let mut named: serde_json::Map<String, serde_json::Value> =
            self.next.iter().map(|(partition, offset)| (partition.to_string(), (*offset).into())).collect();
        if !self.skipped.is_empty() {
            let skipped = self.skipped.iter().map(|(partition, count)| (partition.to_string(), (*count).into()));
            named.insert(SKIPPED_KEY.into(), serde_json::Value::Object(skipped.collect()));
        }
        serde_json::Value::Object(named).to_string()
    }

    /// Moves `partition` on to `to`, counting the messages from its next offset up to `to` as skipped.
    pub fn skip(&mut self, partition: i32, to: i64) {
        let from = self.next.insert(partition, to).unwrap_or(to);
        *self.skipped.entry(partition).or_default() += (to - from).max(0);
    }
}

fn partition_number(key: &str, topic: &str) -> Result<i32> {
    key.parse::<i32>()
        .map_err(|_| Error::state(format!("kafka.{topic}: the committed offsets name a partition `{key}`")))
}

fn by_partition(counts: BTreeMap<String, i64>, topic: &str) -> Result<BTreeMap<i32, i64>> {
    counts.into_iter().map(|(key, count)| Ok((partition_number(&key, topic)?, count))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_their_token_and_a_broken_token_says_to_resync() {
        let offsets = TopicOffsets::new(BTreeMap::from([(0, 1200), (1, 0), (12, 7)]));
        assert_eq!(offsets.token(), r#"{"0":1200,"1":0,"12":7}"#);
        assert_eq!(TopicOffsets::parse(&offsets.token(), "orders", "p").expect("parsed"), offsets);
        assert_eq!(TopicOffsets::parse("{}", "orders", "p").expect("empty"), TopicOffsets::default());
        let error = TopicOffsets::parse("[1]", "orders", "p").expect_err("not an object");
        assert!(error.to_string().contains("connector resync --pipeline p --table kafka.orders"), "{error}");
    }

    #[test]
    fn skipped_messages_add_up_in_the_token_beside_the_offsets() {
        let mut offsets = TopicOffsets::new(BTreeMap::from([(0, 100), (1, 40)]));
        offsets.skip(0, 200);
        offsets.skip(0, 250);
        assert_eq!(offsets.token(), r#"{"0":250,"1":40,"skipped":{"0":150}}"#);
        assert_eq!(TopicOffsets::parse(&offsets.token(), "orders", "p").expect("parsed"), offsets);
        let error = TopicOffsets::parse(r#"{"0":1,"skipped":[]}"#, "orders", "p").expect_err("not counts");
        assert!(error.to_string().contains("resync"), "{error}");
    }
}
