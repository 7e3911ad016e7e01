//! `connector load`: files into a table in one commit, then what was written.

use std::process::ExitCode;

use connector_core::error::Result;
use connector_files::load::LoadArgs;
use connector_files::schema_hints::sql_type_name;

pub async fn load(args: LoadArgs) -> Result<ExitCode> {
    let table = args.table.clone();
    let report = connector_files::load::load(args).await?;
    match report.version {
        Some(version) => {
            println!("{table}: {} rows from {} files, Delta version {version}", report.rows, report.files)
        }
        None => println!("{table}: the files hold no rows; nothing was committed"),
    }
    println!("columns:");
    for column in &report.schema.columns {
        println!("  {} {}", column.name, sql_type_name(&column.data_type));
    }
    Ok(ExitCode::SUCCESS)
}
