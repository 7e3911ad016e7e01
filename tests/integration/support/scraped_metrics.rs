//! Reading a running connector's Prometheus endpoint the way a scraper does.

/// The metrics text served at `address` (`host:port`), or empty while the endpoint does not answer yet.
pub async fn scrape(address: &str) -> String {
    match reqwest::get(format!("http://{address}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The value of the series whose line starts with `series` (its name and labels, e.g.
/// `connector_rows_read_total{pipeline="p",table="s.t"}`) in `text`.
pub fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits up to a minute for the series `series` at `address` to hold a value `accepted` takes, and returns it;
/// fails the test with the last text scraped otherwise.
pub async fn wait_for_value(address: &str, series: &str, accepted: impl Fn(f64) -> bool) -> f64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = scrape(address).await;
        if let Some(value) = value_of(&text, series).filter(|&value| accepted(value)) {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{series} never took the value awaited:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Asserts that `text` counts `rows` rows read for `table` of pipeline `test`, in at least `bytes_per_row` times
/// as many bytes and at most twice that (a copy's framing around its values).
pub fn assert_copy_read(text: &str, table: &str, rows: u64, bytes_per_row: u64) {
    let series = |name: &str| format!(r#"connector_{name}_total{{pipeline="test",table="{table}"}}"#);
    assert_eq!(value_of(text, &series("rows_read")), Some(rows as f64), "{table}'s rows read:\n{text}");
    let bytes = value_of(text, &series("bytes_read")).unwrap_or(0.0);
    let (least, most) = ((rows * bytes_per_row) as f64, (2 * rows * bytes_per_row) as f64);
    assert!(
        least <= bytes && bytes <= most,
        "{table}: {bytes} bytes read for {rows} rows, not in {least}..={most}:\n{text}"
    );
}
