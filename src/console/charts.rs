//! Bar charts drawn as inline SVG on the server: a pipeline's throughput and commit times from its event log,
//! readable without any script.

use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{Markup, html};

const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 140.0;
const MARGIN_LEFT: f64 = 56.0;
const MARGIN_BOTTOM: f64 = 22.0;

/// Values summed (or maxed) into equal time buckets ending now.
#[derive(Debug)]
pub struct Series {
    pub start: DateTime<Utc>,
    pub bucket: Duration,
    pub values: Vec<f64>,
}

impl Series {
    /// `buckets` buckets of `bucket` each, the last holding now.
    pub fn ending_now(buckets: usize, bucket: Duration) -> Series {
        Series::ending_at(Utc::now(), buckets, bucket)
    }

    fn ending_at(end: DateTime<Utc>, buckets: usize, bucket: Duration) -> Series {
        let last = end.duration_trunc(bucket).unwrap_or(end);
        Series { start: last - bucket * (buckets as i32 - 1), bucket, values: vec![0.0; buckets] }
    }

    fn index_of(&self, at: DateTime<Utc>) -> Option<usize> {
        let offset = (at - self.start).num_milliseconds();
        let index = offset.div_euclid(self.bucket.num_milliseconds());
        (offset >= 0 && (index as usize) < self.values.len()).then_some(index as usize)
    }

    pub fn add(&mut self, at: DateTime<Utc>, value: f64) {
        if let Some(index) = self.index_of(at) {
            self.values[index] += value;
        }
    }

    pub fn max(&mut self, at: DateTime<Utc>, value: f64) {
        if let Some(index) = self.index_of(at) {
            self.values[index] = self.values[index].max(value);
        }
    }
}

/// `series` as bars under `title`, the axis labelled in `unit`.
pub fn bars(title: &str, unit: &str, series: &Series) -> Markup {
    let highest = series.values.iter().copied().fold(0.0_f64, f64::max);
    let scale_top = if highest > 0.0 { highest } else { 1.0 };
    let plot_width = WIDTH - MARGIN_LEFT;
    let plot_height = HEIGHT - MARGIN_BOTTOM;
    let slot = plot_width / series.values.len().max(1) as f64;
    let first = series.start.format("%H:%M").to_string();
    let last = (series.start + series.bucket * (series.values.len() as i32 - 1)).format("%H:%M").to_string();
    html! {
        figure.chart {
            figcaption { strong { (title) } " " span.muted { "(" (unit) ", per " (series.bucket.num_minutes()) " min)" } }
            svg width=(WIDTH) height=(HEIGHT) viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
                line x1=(MARGIN_LEFT) y1="0" x2=(MARGIN_LEFT) y2=(plot_height) stroke="#9aa4b2" {}
                line x1=(MARGIN_LEFT) y1=(plot_height) x2=(WIDTH) y2=(plot_height) stroke="#9aa4b2" {}
                text x=(MARGIN_LEFT - 4.0) y="10" text-anchor="end" font-size="10" { (axis_label(highest)) }
                text x=(MARGIN_LEFT - 4.0) y=(plot_height) text-anchor="end" font-size="10" { "0" }
                text x=(MARGIN_LEFT) y=(HEIGHT - 6.0) font-size="10" { (first) }
                text x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" font-size="10" { (last) " UTC" }
                @for (index, value) in series.values.iter().enumerate() {
                    @let height = value / scale_top * (plot_height - 4.0);
                    @if *value > 0.0 {
                        rect x=(MARGIN_LEFT + index as f64 * slot + 1.0) y=(plot_height - height) width=((slot - 2.0).max(1.0)) height=(height) fill="#2458d3" {
                            title { (format!("{}: {}", (series.start + series.bucket * index as i32).format("%H:%M"), axis_label(*value))) }
                        }
                    }
                }
            }
        }
    }
}

fn axis_label(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_their_bucket_and_older_ones_are_left_out() {
        let now = Utc::now();
        let mut series = Series::ending_at(now, 60, Duration::minutes(1));
        series.add(now, 5.0);
        series.add(now, 7.0);
        series.add(now - Duration::minutes(59), 1.0);
        series.add(now - Duration::hours(2), 100.0);
        assert_eq!(series.values[59], 12.0);
        assert_eq!(series.values[0], 1.0);
        assert_eq!(series.values.iter().sum::<f64>(), 13.0);
        let drawn = bars("Rows", "rows", &series).into_string();
        assert_eq!(drawn.matches("<rect").count(), 2, "{drawn}");
    }
}
