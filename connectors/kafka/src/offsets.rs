//! A topic's offsets as the engine commits them: the next offset to read in every partition, as a JSON object
//! (`{"0":1200,"1":1187}`), the token of the engine's polled streams. The Delta commit that lands a batch's rows
//! carries the offsets after them, so the table is the consumer's only checkpoint.

use std::collections::BTreeMap;

use connector_core::error::{Error, Result};

/// Partition → next offset to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicOffsets(pub BTreeMap<i32, i64>);

impl TopicOffsets {
    /// The offsets a committed token holds; `topic` names it in the error.
    pub fn parse(token: &str, topic: &str, pipeline: &str) -> Result<Self> {
        let offsets: BTreeMap<String, i64> = serde_json::from_str(token).map_err(|cause| {
            Error::state(format!(
                "kafka.{topic}: the committed offsets `{token}` are not a JSON object of partitions to offsets; \
                 resync the topic (connector resync --pipeline {pipeline} --table kafka.{topic})"
            ))
            .caused_by(cause)
        })?;
        let mut parsed = BTreeMap::new();
        for (partition, offset) in offsets {
            let number = partition.parse::<i32>().map_err(|_| {
                Error::state(format!("kafka.{topic}: the committed offsets name a partition `{partition}`"))
            })?;
            parsed.insert(number, offset);
        }
        Ok(TopicOffsets(parsed))
    }

    pub fn token(&self) -> String {
        let named: BTreeMap<String, i64> =
            self.0.iter().map(|(partition, offset)| (partition.to_string(), *offset)).collect();
        serde_json::to_string(&named).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_their_token_and_a_broken_token_says_to_resync() {
        let offsets = TopicOffsets(BTreeMap::from([(0, 1200), (1, 0), (12, 7)]));
        assert_eq!(offsets.token(), r#"{"0":1200,"1":0,"12":7}"#);
        assert_eq!(TopicOffsets::parse(&offsets.token(), "orders", "p").expect("parsed"), offsets);
        assert_eq!(TopicOffsets::parse("{}", "orders", "p").expect("empty"), TopicOffsets::default());
        let error = TopicOffsets::parse("[1]", "orders", "p").expect_err("not an object");
        assert!(error.to_string().contains("connector resync --pipeline p --table kafka.orders"), "{error}");
    }
}
