//! The frame every console page shares: title, navigation, style. No script but the upload page's drop zone and
//! the confirmation prompts, so the pages work (and are tested) as plain HTML forms.

use maud::{DOCTYPE, Markup, PreEscaped, html};

const STYLE: &str = r#"
:root { --ink: #1d2433; --muted: #5f6b7a; --line: #d9dee5; --accent: #2458d3; --bad: #b42318; --warn: #b54708; --good: #067647; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0; background: #f6f7f9; }
header { background: #111827; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: center; }
header a { color: #cbd5e1; text-decoration: none; } header a:hover { color: #fff; }
header .brand { font-weight: 600; color: #fff; }
main { padding: 20px 24px; max-width: 1200px; }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 24px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f5; font-weight: 600; font-size: 13px; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #e5e7eb; }
.state.running { background: #d1fadf; color: var(--good); } .state.paused { background: #fef0c7; color: var(--warn); }
.state.failing, .state.needs-person { background: #fee4e2; color: var(--bad); }
.error { background: #fff; border-left: 4px solid var(--bad); padding: 8px 12px; white-space: pre-wrap; }
.notice { background: #fff; border-left: 4px solid var(--good); padding: 8px 12px; }
.muted { color: var(--muted); }
form.inline { display: inline; } .actions { margin: 12px 0; }
button, .button { font: inherit; padding: 5px 12px; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; text-decoration: none; }
button.secondary { background: #fff; color: var(--accent); } button.danger { background: var(--bad); border-color: var(--bad); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; border: 1px solid var(--line); padding: 10px 14px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.charts { display: flex; gap: 16px; flex-wrap: wrap; } .chart { margin: 0; background: #fff; border: 1px solid var(--line); padding: 8px; }
.drop { border: 2px dashed var(--line); background: #fff; padding: 28px; text-align: center; border-radius: 6px; }
.drop.over { border-color: var(--accent); background: #eef3ff; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; }
"#;

/// A whole page: `title` in the tab and the heading.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · connector" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "connector" }
                    a href="/" { "Pipelines" }
                    a href="/upload" { "Upload files" }
                    a href="/events" { "Event log" }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A number with thousands separated, as people read counts.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Bytes in the largest unit that keeps a whole number in front.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = value as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value} B") } else { format!("{size:.1} {}", UNITS[unit]) }
}

/// A moment as UTC text, or a dash.
pub fn moment(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(|| "—".to_string(), |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sizes_read_as_people_write_them() {
        assert_eq!(
            (count(0), count(999), count(1000), count(1234567)),
            ("0".into(), "999".into(), "1,000".into(), "1,234,567".into())
        );
        assert_eq!(
            (bytes(512), bytes(1536), bytes(3 * 1024 * 1024)),
            ("512 B".into(), "1.5 KiB".into(), "3.0 MiB".into())
        );
    }
}
