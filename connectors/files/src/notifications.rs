//! Discovery by S3 event notifications delivered to an SQS queue (Auto Loader's file notification mode): the
//! keys of objects created since the last pass, without listing the bucket. A notification is acknowledged
//! (deleted from the queue) only after the files it names are committed, so a crash leaves it in the queue to
//! be received again; the ledger skips what was already ingested. Notifications that never arrive are caught by
//! the periodic full listing.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use serde_json::Value;
use tracing::warn;

use connector_core::error::{Error, ErrorKind, Result, Retry};

/// Longest wait for the first notification of a receive: long polling asks every SQS server, so an empty
/// answer means an empty queue (short polling samples a few servers and may miss messages).
const RECEIVE_WAIT_SECONDS: i32 = 1;

/// Messages one ReceiveMessage (and one DeleteMessageBatch) takes at most: SQS's own bound.
const MESSAGES_PER_REQUEST: usize = 10;

/// An object a notification says was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    pub bucket: String,
    /// The object's key, decoded.
    pub key: String,
}

/// What one receive gave: the objects created, and the receipts that acknowledge their notifications.
#[derive(Debug, Default)]
pub struct ReceivedNotifications {
    pub created: Vec<CreatedObject>,
    pub receipts: Vec<String>,
    /// The bound was reached: more notifications may be waiting.
    pub more: bool,
}

/// An SQS queue that S3 sends a bucket's event notifications to.
#[derive(Debug, Clone)]
pub struct NotificationQueue {
    client: Client,
    url: String,
}

fn queue_error(url: &str, what: &str, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
    let message = format!(
        "cannot {what} the notification queue {url}; check queue_url (--queue-url), the AWS_* variables and that \
         the credentials may receive and delete its messages"
    );
    Error::new(ErrorKind::Source, Retry::WithBackoff, message).caused_by(cause)
}

impl NotificationQueue {
    /// A client of the queue at `url`, with the usual AWS environment (`AWS_REGION`, credentials,
    /// `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_SQS` for an emulator).
    pub async fn connect(url: &str) -> Self {
        let config = aws_config::load_from_env().await;
        NotificationQueue { client: Client::new(&config), url: url.to_string() }
    }

    /// Receives up to `limit` notifications waiting in the queue.
    pub async fn receive(&self, limit: usize) -> Result<ReceivedNotifications> {
        let mut received = ReceivedNotifications::default();
        let mut taken = 0;
        while taken < limit {
            let wanted = (limit - taken).min(MESSAGES_PER_REQUEST);
            let answer = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(wanted as i32)
                .wait_time_seconds(RECEIVE_WAIT_SECONDS)
                .send()
                .await
                .map_err(|cause| queue_error(&self.url, "receive from", aws_sdk_sqs::Error::from(cause)))?;
            let messages = answer.messages();
            if messages.is_empty() {
                return Ok(received);
            }
            taken += messages.len();
            for message in messages {
                let body = message.body().unwrap_or_default();
                match serde_json::from_str::<Value>(body) {
                    Ok(event) => received.created.extend(created_objects(&event)),
                    // Acknowledged all the same: left in the queue it would come back forever, and the files
                    // it may have named are found by the next full listing.
                    Err(cause) => warn!(queue = %self.url, %cause, "a message that is not an S3 event notification"),
                }
                if let Some(receipt) = message.receipt_handle() {
                    received.receipts.push(receipt.to_string());
                }
            }
        }
        received.more = true;
        Ok(received)
    }

    /// Deletes acknowledged notifications from the queue. A receipt SQS refuses (its message was received
    /// again meanwhile) only means the notification comes back, and its files are skipped then.
    pub async fn acknowledge(&self, receipts: Vec<String>) -> Result<()> {
        for receipts in receipts.chunks(MESSAGES_PER_REQUEST) {
            let entries = receipts
                .iter()
                .enumerate()
                .map(|(index, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .map_err(|cause| Error::state("internal: a notification's acknowledgement").caused_by(cause))
                })
                .collect::<Result<Vec<_>>>()?;
            let answer = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|cause| queue_error(&self.url, "delete from", aws_sdk_sqs::Error::from(cause)))?;
            for failed in answer.failed() {
                warn!(queue = %self.url, code = failed.code(), message = failed.message().unwrap_or_default(),
                      "a notification was not deleted; it will be received again and its files skipped");
            }
        }
        Ok(())
    }
}

/// The objects an S3 event notification says were created: direct from S3, or wrapped by SNS. Other events
/// (removals, S3's test event) create nothing.
fn created_objects(event: &Value) -> Vec<CreatedObject> {
    if event["Type"] == "Notification"
        && let Some(message) = event["Message"].as_str()
    {
        return serde_json::from_str(message).map(|inner: Value| created_objects(&inner)).unwrap_or_default();
    }
    let Some(records) = event["Records"].as_array() else {
        return Vec::new();
    };
    records
        .iter()
        .filter(|record| record["eventName"].as_str().is_some_and(|name| name.starts_with("ObjectCreated:")))
        .filter_map(|record| {
            let bucket = record["s3"]["bucket"]["name"].as_str()?;
            let key = record["s3"]["object"]["key"].as_str()?;
            Some(CreatedObject { bucket: bucket.to_string(), key: decoded_key(key) })
        })
        .collect()
}

/// S3 writes keys in notifications form-encoded: `+` for a space, `%2B` for a plus.
fn decoded_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_objects_come_from_s3_events_direct_or_through_sns_with_their_keys_decoded() {
        let direct: Value = serde_json::json!({ "Records": [
            { "eventName": "ObjectCreated:Put",
              "s3": { "bucket": { "name": "landing" }, "object": { "key": "orders/day%3D1/a+b%2Bc.csv" } } },
            { "eventName": "ObjectRemoved:Delete",
              "s3": { "bucket": { "name": "landing" }, "object": { "key": "orders/gone.csv" } } },
        ]});
        let expected = vec![CreatedObject { bucket: "landing".into(), key: "orders/day=1/a b+c.csv".into() }];
        assert_eq!(created_objects(&direct), expected);
        let through_sns = serde_json::json!({ "Type": "Notification", "Message": direct.to_string() });
        assert_eq!(created_objects(&through_sns), expected);
        let test_event = serde_json::json!({ "Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "landing" });
        assert!(created_objects(&test_event).is_empty());
    }
}
