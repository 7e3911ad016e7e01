//! MySQL's binary JSON (a JSON column's value in a row image), parsed by mysql_common and rendered as MySQL
//! prints it (`connector_mysql::json_text::mysql_json_text`).
#![no_main]

extern crate connector_fuzz;

use connector_mysql::json_text::mysql_json_text;
use libfuzzer_sys::fuzz_target;
use mysql_common::binlog::jsonb;
use mysql_common::io::ParseBuf;
use mysql_common::proto::MyDeserialize;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = jsonb::Value::deserialize((), &mut ParseBuf(data)) {
        let _ = mysql_json_text(value);
    }
});
