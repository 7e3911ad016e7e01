//! `connector preview`: the columns a load of the files would create and their first rows, as text or JSON.

use std::process::ExitCode;

use connector_core::arrow::json::WriterBuilder;
use connector_core::arrow::json::writer::JsonArray;
use connector_core::arrow::util::pretty::pretty_format_batches;
use connector_core::error::{Error, Result};
use connector_files::preview::PreviewArgs;
use connector_files::schema_hints::sql_type_name;
use serde_json::json;

pub async fn preview(args: PreviewArgs) -> Result<ExitCode> {
    let as_json = args.json;
    let preview = connector_files::preview::preview(args).await?;
    let internal = |cause: &dyn std::fmt::Display| Error::state(format!("internal: cannot print the preview: {cause}"));
    if as_json {
        // Nulls written out, so that every row names every column.
        let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
        writer.write(&preview.rows).map_err(|cause| internal(&cause))?;
        writer.finish().map_err(|cause| internal(&cause))?;
        let rows: serde_json::Value = match writer.into_inner() {
            bytes if bytes.is_empty() => json!([]),
            bytes => serde_json::from_slice(&bytes).map_err(|cause| internal(&cause))?,
        };
        let columns: Vec<serde_json::Value> = preview
            .columns
            .iter()
            .map(|column| json!({"name": column.name(), "type": sql_type_name(column.data_type())}))
            .collect();
        let document = json!({"files": preview.files, "columns": columns, "rows": rows});
        println!("{}", serde_json::to_string_pretty(&document).map_err(|cause| internal(&cause))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("columns (as --schema-hints takes them):");
    for column in &preview.columns {
        println!("  {} {}", column.name(), sql_type_name(column.data_type()));
    }
    println!("first {} rows of {} files:", preview.rows.num_rows(), preview.files);
    println!("{}", pretty_format_batches(std::slice::from_ref(&preview.rows)).map_err(|cause| internal(&cause))?);
    Ok(ExitCode::SUCCESS)
}
