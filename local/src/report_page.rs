//! The run's report as a page to look at: `report.html` in the run folder.
//!
//! One self-contained file, drawn from a [`RunRecord`] (also written as
//! `run.json`): the charts are inline SVG made by `plotters`, the styles
//! inline, nothing fetched from the network, no script. It shows, on one
//! time axis, the events per second (sent, delivered, rejected,
//! dead-lettered, given up) against the target rate; the send-to-S3 delay
//! (p50, p99); what the fault proxy did, with its outages shaded; what the
//! event source mapping did; then the final account, the settings and the
//! CPU each part used. A run that ended early still gets its page, saying
//! so at the top. `make scale`'s page (`scale_page.rs`) draws with the
//! same charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::cpu::CpuUse;
use crate::progress::Snapshot;
use crate::verify::{Ending, Report, Trace, percentile};

/// What the page is drawn from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub settings: Settings,
    /// When the load started, ms since the epoch.
    pub started_ms: u64,
    /// The counters, once a second.
    pub timeline: Vec<Snapshot>,
    /// What happened to the events sent in, or landing in, each second.
    pub seconds: Vec<Second>,
    /// The account right after the run; `None` when it ended early.
    pub account: Option<Report>,
    /// The account after the replay, when there was one.
    pub after_replay: Option<Report>,
    pub cpu: Option<CpuUse>,
    /// Why the run ended before its account, when it did.
    pub ended_early: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub rate: f64,
    pub duration_s: u64,
    pub shards: u32,
    pub delivery_streams: usize,
    pub faults: String,
    pub invoke: String,
    pub bridge_env: Vec<(String, String)>,
    pub event_source_mapping: String,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the load started.
    pub at: u64,
    /// Events sent in this second.
    pub sent: u64,
    /// Events that reached their place in this second.
    pub delivered: u64,
    pub rejected: u64,
    pub dead_lettered: u64,
    pub given_up: u64,
    /// Send-to-S3 delay of the events sent in this second and delivered.
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

/// Seconds of the run from every event's trace.
pub fn seconds(traces: &[Trace], started_ms: u64) -> Vec<Second> {
    let second = |ms: u64| ms.saturating_sub(started_ms) / 1000;
    let mut by_second: BTreeMap<u64, (Second, Vec<u64>)> = BTreeMap::new();
    fn at(by_second: &mut BTreeMap<u64, (Second, Vec<u64>)>, s: u64) -> &mut (Second, Vec<u64>) {
        by_second.entry(s).or_insert_with(|| {
            (
                Second {
                    at: s,
                    ..Second::default()
                },
                Vec::new(),
            )
        })
    }
    for trace in traces {
        at(&mut by_second, second(trace.sent_ms)).0.sent += 1;
        let Some(landed) = trace.at_ms else { continue };
        let entry = &mut at(&mut by_second, second(landed)).0;
        match trace.ending {
            Ending::Delivered => entry.delivered += 1,
            Ending::Rejected => entry.rejected += 1,
            Ending::DeadLettered => entry.dead_lettered += 1,
            Ending::GivenUp => entry.given_up += 1,
            Ending::Lost => {}
        }
        if trace.ending == Ending::Delivered {
            at(&mut by_second, second(trace.sent_ms))
                .1
                .push(landed.saturating_sub(trace.sent_ms));
        }
    }
    by_second
        .into_values()
        .map(|(mut s, mut delays)| {
            delays.sort_unstable();
            if !delays.is_empty() {
                s.p50_ms = Some(percentile(&delays, 50.0));
                s.p99_ms = Some(percentile(&delays, 99.0));
            }
            s
        })
        .collect()
}

/// Writes `record` as `run.json` and `report.html` in `dir`; returns the
/// page's path.
pub fn write(record: &RunRecord, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(record)?)?;
    let path = dir.join("report.html");
    std::fs::write(&path, page(record)?).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The page, as one HTML document.
pub fn page(record: &RunRecord) -> Result<String> {
    let settings = &record.settings;
    let figures = [
        ("events", events_chart(record)?),
        ("delay", delay_chart(record)?),
        ("faults", faults_chart(record)?),
        ("mapping", mapping_chart(record)?),
    ];
    let mut html = String::new();
    let title = format!(
        "kinesis-firehose-bridge: {:.0} events/s for {} s",
        settings.rate, settings.duration_s
    );
    let _ = writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    if let Some(why) = &record.ended_early {
        let _ = writeln!(
            html,
            "<p class=\"early\">This run ended early: {}. The page shows what it had.</p>",
            escape(why)
        );
    }
    html.push_str(&account_section(record));
    for (id, svg) in figures {
        let _ = writeln!(html, "<figure id=\"{id}\">{svg}</figure>");
    }
    html.push_str(&settings_section(record));
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

/// The time axis's length, in seconds: the timeline's or the events'.
fn length(record: &RunRecord) -> f64 {
    record
        .timeline
        .last()
        .map_or(0.0, |s| s.elapsed_ms as f64 / 1000.0)
        .max(record.seconds.last().map_or(0.0, |s| s.at as f64 + 1.0))
        .max(1.0)
}

/// Events per second sent, delivered, rejected, dead-lettered and given up.
fn events_chart(record: &RunRecord) -> Result<String> {
    let per_second = |f: fn(&Second) -> u64| -> Vec<(f64, f64)> {
        record
            .seconds
            .iter()
            .map(|s| (s.at as f64 + 0.5, f(s) as f64))
            .collect()
    };
    chart(&Chart {
        title: "Events per second",
        y_label: "events / s",
        x: (0.0, length(record)),
        x_desc: SECONDS,
        series: vec![
            ("sent into Kinesis", BLUE, per_second(|s| s.sent)),
            ("delivered to S3", GREEN, per_second(|s| s.delivered)),
            ("rejected", MAGENTA, per_second(|s| s.rejected)),
            ("dead-lettered", RED, per_second(|s| s.dead_lettered)),
            ("given up (kept in S3)", BLACK, per_second(|s| s.given_up)),
        ],
        bands: &outage_windows(&record.timeline),
        target: Some(("target rate", record.settings.rate)),
    })
}

/// The send-to-S3 delay's p50 and p99, by the second the events were sent.
fn delay_chart(record: &RunRecord) -> Result<String> {
    let delay = |f: fn(&Second) -> Option<u64>| -> Vec<(f64, f64)> {
        record
            .seconds
            .iter()
            .filter_map(|s| f(s).map(|ms| (s.at as f64 + 0.5, ms as f64)))
            .collect()
    };
    chart(&Chart {
        title: "Send-to-S3 delay, by the second the events were sent",
        y_label: "ms",
        x: (0.0, length(record)),
        x_desc: SECONDS,
        series: vec![("p50", BLUE, delay(|s| s.p50_ms)), ("p99", RED, delay(|s| s.p99_ms))],
        bands: &outage_windows(&record.timeline),
        target: None,
    })
}

/// What the fault proxy did, per second.
fn faults_chart(record: &RunRecord) -> Result<String> {
    let rate_of = |f: fn(&Snapshot) -> Option<u64>| rates(&record.timeline, f);
    chart(&Chart {
        title: if record.settings.faults.is_empty() {
            "Fault proxy: no faults in this run"
        } else {
            "Fault proxy (outages shaded)"
        },
        y_label: "per second",
        x: (0.0, length(record)),
        x_desc: SECONDS,
        series: vec![
            ("entries throttled", MAGENTA, rate_of(|s| s.throttled)),
            ("calls failed whole", RED, rate_of(|s| s.calls_failed)),
        ],
        bands: &outage_windows(&record.timeline),
        target: None,
    })
}

/// What the event source mapping did, per second.
fn mapping_chart(record: &RunRecord) -> Result<String> {
    let rate_of = |f: fn(&Snapshot) -> Option<u64>| rates(&record.timeline, f);
    chart(&Chart {
        title: "Event source mapping",
        y_label: "per second",
        x: (0.0, length(record)),
        x_desc: SECONDS,
        series: vec![
            ("invocations", BLUE, rate_of(|s| Some(s.invocations))),
            ("function errors", RED, rate_of(|s| Some(s.function_errors))),
            ("bisects", MAGENTA, rate_of(|s| Some(s.bisects))),
            ("retries", CYAN, rate_of(|s| Some(s.retries))),
            ("batches given up", BLACK, rate_of(|s| Some(s.batches_given_up))),
        ],
        bands: &outage_windows(&record.timeline),
        target: None,
    })
}

pub(crate) const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px}\
.early{background:#fde8e8;border:1px solid #c33;padding:8px 12px;font-weight:bold}\
.verdict{font-size:32px;font-weight:bold;margin:8px 0}.ok{color:#1a7f37}.bad{color:#c33}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
th{text-align:left;background:#f4f4f4}figure{margin:16px 0}";

fn account_section(record: &RunRecord) -> String {
    let mut html = String::from("<h2>The account</h2>\n");
    let Some(report) = record.after_replay.as_ref().or(record.account.as_ref()) else {
        html.push_str("<p class=\"verdict bad\">No account: the run ended before it.</p>\n");
        return html;
    };
    let balanced =
        report.delivered + report.rejected + report.dead_lettered + report.given_up + report.lost == report.sent;
    let kept = balanced && report.is_clean();
    let _ = writeln!(
        html,
        "<p class=\"verdict {}\" id=\"verdict\">{}</p>",
        if kept { "ok" } else { "bad" },
        if kept {
            "The books balance: every event accounted for, none lost."
        } else if report.lost > 0 {
            "Events were lost."
        } else {
            "The account is not clean."
        }
    );
    let mut rows = vec![
        ("sent", report.sent),
        ("delivered", report.delivered),
        ("rejected", report.rejected),
        ("dead-lettered", report.dead_lettered),
        ("given up (kept in S3)", report.given_up),
        ("lost", report.lost),
        ("duplicates", report.duplicates),
    ];
    if let (Some(before), Some(_)) = (&record.account, &record.after_replay) {
        rows.push(("dead-lettered before the replay", before.dead_lettered));
        rows.push(("given up before the replay", before.given_up));
    }
    html.push_str("<table id=\"account\">\n");
    for (name, value) in rows {
        let _ = writeln!(html, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    let _ = writeln!(
        html,
        "<tr><th>delay send to S3, p50 / p99 / max</th><td>{} / {} / {} ms</td></tr>\n</table>",
        report.p50_delivery_ms, report.p99_delivery_ms, report.max_delivery_ms
    );
    html
}

fn settings_section(record: &RunRecord) -> String {
    let s = &record.settings;
    let mut html = String::from("<h2>Settings</h2>\n<table id=\"settings\">\n");
    let env: Vec<String> = s.bridge_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (name, value) in [
        ("target rate", format!("{:.0} events/s", s.rate)),
        ("duration", format!("{} s", s.duration_s)),
        ("shards", s.shards.to_string()),
        ("delivery streams", s.delivery_streams.to_string()),
        (
            "faults",
            if s.faults.is_empty() {
                "none".to_owned()
            } else {
                s.faults.clone()
            },
        ),
        ("function", s.invoke.clone()),
        (
            "bridge environment",
            if env.is_empty() {
                "defaults".to_owned()
            } else {
                env.join(" ")
            },
        ),
        ("event source mapping", s.event_source_mapping.clone()),
    ] {
        let _ = writeln!(html, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    html.push_str("</table>\n");
    if let Some(cpu) = &record.cpu {
        let show = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.1} s"));
        html.push_str("<h2>CPU used</h2>\n<table id=\"cpu\">\n");
        let _ = writeln!(
            html,
            "<tr><th>wall time of load and drain</th><td>{:.1} s ({} cores: {:.0} CPU-seconds available)</td></tr>\n\
             <tr><th>kinesalite (Kinesis)</th><td>{}</td></tr>\n<tr><th>moto (Firehose and S3)</th><td>{}</td></tr>\n\
             <tr><th>load generator, event source mapping, bridge, proxy</th><td>{}</td></tr>\n</table>",
            cpu.seconds,
            cpu.cores,
            cpu.seconds * cpu.cores as f64,
            show(cpu.kinesalite),
            show(cpu.moto_firehose_s3),
            show(cpu.pipeline)
        );
    }
    html
}

/// Per-second rates of a cumulative counter, at the end of each interval.
fn rates(timeline: &[Snapshot], f: fn(&Snapshot) -> Option<u64>) -> Vec<(f64, f64)> {
    timeline
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (f(&w[0])?, f(&w[1])?);
            let seconds = (w[1].elapsed_ms.saturating_sub(w[0].elapsed_ms)) as f64 / 1000.0;
            (seconds > 0.0).then(|| (w[1].elapsed_ms as f64 / 1000.0, b.saturating_sub(a) as f64 / seconds))
        })
        .collect()
}

/// The stretches the timeline saw an outage, in seconds.
fn outage_windows(timeline: &[Snapshot]) -> Vec<(f64, f64)> {
    let mut windows = Vec::new();
    let mut start: Option<f64> = None;
    for s in timeline {
        let t = s.elapsed_ms as f64 / 1000.0;
        match (s.in_outage, start) {
            (true, None) => start = Some(t),
            (false, Some(from)) => {
                windows.push((from, t));
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(from), Some(last)) = (start, timeline.last()) {
        windows.push((from, last.elapsed_ms as f64 / 1000.0));
    }
    windows
}

/// The time charts' x axis.
const SECONDS: &str = "seconds since the load started";

/// A line: its name, its colour, its points (x, value).
pub(crate) type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

pub(crate) struct Chart<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    /// The x axis: from, to, and what it counts.
    pub x: (f64, f64),
    pub x_desc: &'a str,
    pub series: Vec<Series<'a>>,
    /// Stretches to shade, in seconds.
    pub bands: &'a [(f64, f64)],
    pub target: Option<(&'a str, f64)>,
}

/// A tick label: whole numbers as such, others with the one decimal that
/// tells them apart.
fn tick(y: f64) -> String {
    if (y - y.round()).abs() < 1e-9 {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}

/// One chart as an SVG element, without the namespace attribute (inline
/// SVG in HTML needs none, and the page refers to no address).
pub(crate) fn chart(chart: &Chart<'_>) -> Result<String> {
    let failed = |e: &dyn std::fmt::Display| format!("drawing the chart {:?}: {e}", chart.title);
    let top = chart
        .series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .chain(chart.target.map(|t| t.1))
        // Counts: a chart of zeros still gets whole-number ticks.
        .fold(5.0f64, f64::max)
        * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let mut plot = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(chart.x.0..chart.x.1, 0f64..top)
            .map_err(|e| failed(&e))?;
        plot.configure_mesh()
            .x_desc(chart.x_desc)
            .y_desc(chart.y_label)
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| failed(&e))?;
        plot.draw_series(
            chart
                .bands
                .iter()
                .map(|&(from, to)| Rectangle::new([(from, top), (to, 0.0)], RED.mix(0.12).filled())),
        )
        .map_err(|e| failed(&e))?;
        if let Some((name, value)) = chart.target {
            plot.draw_series(LineSeries::new(
                [(chart.x.0, value), (chart.x.1, value)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| failed(&e))?
            .label(format!("{name} ({value:.0})"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.5).stroke_width(1)));
        }
        for (name, color, points) in &chart.series {
            let color = *color;
            plot.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| failed(&e))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        plot.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", ""))
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_count_each_event_where_and_when_it_ended() {
        let traces = [
            Trace {
                sent_ms: 10_100,
                ending: Ending::Delivered,
                at_ms: Some(11_200),
            },
            Trace {
                sent_ms: 10_900,
                ending: Ending::Rejected,
                at_ms: Some(12_000),
            },
            Trace {
                sent_ms: 11_000,
                ending: Ending::Lost,
                at_ms: None,
            },
        ];
        let seconds = seconds(&traces, 10_000);
        assert_eq!(seconds.len(), 3);
        assert_eq!((seconds[0].at, seconds[0].sent, seconds[0].p50_ms), (0, 2, Some(1_100)));
        assert_eq!((seconds[1].at, seconds[1].sent, seconds[1].delivered), (1, 1, 1));
        assert_eq!((seconds[2].at, seconds[2].rejected), (2, 1));
    }

    #[test]
    fn outages_are_the_stretches_the_timeline_flagged() {
        let snap = |ms, in_outage| Snapshot {
            elapsed_ms: ms,
            in_outage,
            ..Snapshot::default()
        };
        let timeline = [
            snap(0, false),
            snap(1_000, true),
            snap(2_000, true),
            snap(3_000, false),
            snap(4_000, true),
        ];
        assert_eq!(outage_windows(&timeline), vec![(1.0, 3.0), (4.0, 4.0)]);
    }

    /// The numbers written as y-axis tick labels (the x axis is seconds).
    fn y_ticks(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter(|t| t.contains("text-anchor=\"end\""))
            .filter_map(|t| t.split_once('>').and_then(|(_, rest)| rest.split_once("</text>")))
            .map(|(label, _)| label.trim().to_owned())
            .filter(|label| label.parse::<f64>().is_ok())
            .collect()
    }

    #[test]
    fn a_chart_of_zeros_has_distinct_whole_number_ticks() {
        let quiet = Chart {
            title: "no faults",
            y_label: "per second",
            x: (0.0, 60.0),
            x_desc: SECONDS,
            series: vec![("throttled", RED, vec![(0.0, 0.0), (59.0, 0.0)])],
            bands: &[],
            target: None,
        };
        let ticks = y_ticks(&chart(&quiet).unwrap());
        assert!(ticks.len() >= 3, "{ticks:?}");
        let mut distinct = ticks.clone();
        distinct.dedup();
        assert_eq!(distinct, ticks, "every tick label appears once");
        assert!(ticks.iter().all(|t| !t.contains('.')), "{ticks:?}");
    }

    #[test]
    fn tick_labels_keep_a_decimal_only_where_it_tells_them_apart() {
        assert_eq!(tick(4.0), "4");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(1500.0), "1500");
    }
}
