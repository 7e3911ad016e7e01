//! `connector load`: files into a table in one commit, then what was written.

use std::process::ExitCode;

use connector_core::error::Result;
use connector_files::load::LoadArgs;
use connector_files::schema_hints::sql_type_name;

pub async fn load(args: LoadArgs) -> Result<ExitCode> {
    let table = args.table.clone();
    let key = args.key.clone();
    let report = connector_files::load::load(args).await?;
    match report.version {
        Some(version) => {
            println!("{table}: {} rows from {} files, Delta version {version}", report.rows, report.files)
        }
        None => println!("{table}: the files hold no rows; nothing was committed"),
    }
    if let Some(merged) = report.merged {
        let superseded = report.rows.saturating_sub(merged.source_rows as u64);
        print!("merged on {}: {} rows updated, {} inserted", key.join(","), merged.updated, merged.inserted);
        match superseded {
            0 => println!(),
            _ => println!(", {superseded} replaced by a later row with the same key"),
        }
        print!(
            "table files: {} rewritten, {} marked (replaced rows in a deletion vector), {} added",
            merged.files_removed, merged.files_marked, merged.files_added
        );
        match merged.key_slices {
            0 | 1 => println!(),
            slices => println!("; rows read back in {slices} slices of the keys (--merge-memory)"),
        }
    }
    println!("columns:");
    for column in &report.schema.columns {
        println!("  {} {}", column.name, sql_type_name(&column.data_type));
    }
    Ok(ExitCode::SUCCESS)
}
