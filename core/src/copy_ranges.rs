//! Splitting a table's initial copy into ranges read over parallel connections: the `WHERE` conditions that
//! cover a key (or block) interval in equal parts.

/// `ranges` conditions covering `[low, low + span)` in equal parts, the first open below and the last above (so
/// rows outside the interval, added since it was read, are copied too); `None` is the whole table.
pub fn split_range(
    low: i128,
    span: i128,
    ranges: i128,
    at_least: impl Fn(i128) -> String,
    below: impl Fn(i128) -> String,
) -> Vec<Option<String>> {
    let ranges = ranges.min(span).max(1);
    let bound = |part: i128| low + span * part / ranges;
    (0..ranges)
        .map(|part| {
            let lower = (part > 0).then(|| at_least(bound(part)));
            let upper = (part < ranges - 1).then(|| below(bound(part + 1)));
            let conditions: Vec<String> = lower.into_iter().chain(upper).collect();
            (!conditions.is_empty()).then(|| conditions.join(" AND "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_range;

    #[test]
    fn ranges_cover_the_interval_open_at_both_ends() {
        let ranges = split_range(10, 90, 3, |bound| format!("k >= {bound}"), |bound| format!("k < {bound}"));
        assert_eq!(
            ranges,
            vec![Some("k < 40".to_string()), Some("k >= 40 AND k < 70".to_string()), Some("k >= 70".to_string())]
        );
        // More ranges than values: one per value at most; one range is the whole table.
        assert_eq!(split_range(1, 2, 8, |b| format!("k >= {b}"), |b| format!("k < {b}")).len(), 2);
        assert_eq!(split_range(1, 1, 8, |b| format!("k >= {b}"), |b| format!("k < {b}")), vec![None]);
    }
}
