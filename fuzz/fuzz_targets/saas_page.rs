//! A SaaS API's page (`connector_saas`): the response body parsed as the client parses it, its records taken
//! from the list the services read (`stream::records_of` at Stripe's `data`, HubSpot's `results`,
//! Salesforce's `records`, Zendesk's `tickets`, or the whole body as a declarative stream's list), the
//! columns inferred from them (`schema::StreamSchema`) beside declared typed columns, and the records turned
//! into Arrow rows (`codec::record_batch`); an error body's message as errors quote it (`client::api_message`).
#![no_main]

extern crate connector_fuzz;

use connector_core::arrow::datatypes::DataType;
use connector_core::change::Operation;
use connector_core::schema::{Column, TableId};
use connector_saas::client::{api_error_code, api_message};
use connector_saas::codec::record_batch;
use connector_saas::schema::{StreamSchema, timestamp_type};
use connector_saas::stream::{RecordChange, StreamShape, records_of, value_at_mut};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const LIST_PATHS: &[&str] = &["data", "results", "records", "tickets", ""];

fn shape(key: Vec<String>) -> StreamShape {
    StreamShape {
        name: "fuzz".into(),
        key,
        declared: vec![
            Column::new("created", timestamp_type(), "declared"),
            Column::new("updated_at", timestamp_type(), "declared"),
            Column::new("day", DataType::Date32, "declared"),
            Column::new("amount", DataType::Int64, "declared"),
            Column::new("score", DataType::Float64, "declared"),
            Column::new("active", DataType::Boolean, "declared"),
            Column::new("name", DataType::Utf8, "declared"),
        ],
        declared_only: false,
        modified: Some("updated_at".into()),
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = api_message(data);
    let _ = api_error_code(data);
    let Ok(mut body) = serde_json::from_slice::<Value>(data) else { return };
    let path = LIST_PATHS.iter().find(|path| value_at_mut(&mut body, path).is_some_and(|list| list.is_array()));
    let Some(path) = path else { return };
    let Ok(records) = records_of(value_at_mut(&mut body, path), "records list") else { return };
    let changes: Vec<RecordChange> = records
        .into_iter()
        .enumerate()
        .map(|(index, record)| match index % 3 {
            0 => RecordChange::upsert(Operation::Insert, record),
            1 => RecordChange::upsert(Operation::Update, record),
            _ => RecordChange::delete(record),
        })
        .collect();
    for key in [vec!["id".to_string()], Vec::new()] {
        let mut schema = StreamSchema::new(TableId::new("fuzz", "records"), &shape(key), &[]);
        schema.observe(&changes);
        if let Ok(table) = schema.table_schema() {
            let _ = record_batch(&table, &changes);
            break;
        }
    }
});
