//! `make scale`'s page, `scale.html` beside `scale.json` in the sweep's
//! folder: delivered against offered and the streams' quota as streams are
//! added; delivered, and the bridge's CPU per event, as load, shards and
//! streams grow together; then every point's figures. Drawn with the run
//! page's charts: inline SVG, nothing fetched.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::Result;
use crate::report_page::{Chart, STYLE, chart, escape};
use crate::scale::{Figures, Sweep};

/// Writes the sweep's points as `scale.json` and `scale.html` in `dir`;
/// returns the page's path.
pub fn write(points: &[Figures], dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("scale.json"), serde_json::to_vec_pretty(points)?)?;
    let path = dir.join("scale.html");
    std::fs::write(&path, page(points)?).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The page, as one HTML document.
pub fn page(points: &[Figures]) -> Result<String> {
    let of = |sweep: Sweep, x: fn(&Figures) -> f64, y: fn(&Figures) -> f64| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter(|p| p.sweep == sweep)
            .map(|p| (x(p), y(p)))
            .collect()
    };
    let streams = |p: &Figures| p.streams as f64;
    let factor = |p: &Figures| p.factor as f64;
    let widest = |sweep: Sweep, x: fn(&Figures) -> f64| {
        points.iter().filter(|p| p.sweep == sweep).map(x).fold(1.0, f64::max) + 0.5
    };
    let by_streams = chart(&Chart {
        title: "Streams sweep: one offered load, a quota per stream",
        y_label: "events / s",
        x: (0.5, widest(Sweep::Streams, streams)),
        x_desc: "delivery streams",
        series: vec![
            ("offered", BLUE, of(Sweep::Streams, streams, |p| p.offered_per_s)),
            ("delivered", GREEN, of(Sweep::Streams, streams, |p| p.delivered_per_s)),
            (
                "the streams' quota",
                BLACK,
                of(Sweep::Streams, streams, |p| p.quota_per_s),
            ),
        ],
        bands: &[],
        target: None,
    })?;
    let by_load = chart(&Chart {
        title: "Load sweep: load, shards and streams x1, x2, x4; the quota per stream fixed",
        y_label: "events / s",
        x: (0.5, widest(Sweep::Load, factor)),
        x_desc: "load factor",
        series: vec![
            ("offered", BLUE, of(Sweep::Load, factor, |p| p.offered_per_s)),
            ("delivered", GREEN, of(Sweep::Load, factor, |p| p.delivered_per_s)),
            ("the streams' quota", BLACK, of(Sweep::Load, factor, |p| p.quota_per_s)),
        ],
        bands: &[],
        target: None,
    })?;
    let base_cpu = points
        .iter()
        .find(|p| p.sweep == Sweep::Load && p.factor == 1)
        .map(|p| p.bridge_cpu_us_per_event);
    let cpu = chart(&Chart {
        title: "Load sweep: the bridge's CPU per event (target: within 20% of x1)",
        y_label: "microseconds / event",
        x: (0.5, widest(Sweep::Load, factor)),
        x_desc: "load factor",
        series: vec![(
            "bridge CPU per event",
            RED,
            of(Sweep::Load, factor, |p| p.bridge_cpu_us_per_event),
        )],
        bands: &[],
        target: base_cpu.map(|b| ("x1", b)),
    })?;
    let mut html = String::new();
    let title = "kinesis-firehose-bridge: make scale";
    let _ = writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>"
    );
    for (id, svg) in [("streams", by_streams), ("load", by_load), ("cpu", cpu)] {
        let _ = writeln!(html, "<figure id=\"{id}\">{svg}</figure>");
    }
    html.push_str(&points_table(points));
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

fn points_table(points: &[Figures]) -> String {
    let mut html = String::from(
        "<h2>Every point</h2>\n<table id=\"points\">\n<tr><th>sweep</th><th>streams</th><th>shards</th><th>offered/s</th>\
         <th>delivered/s</th><th>quota/s</th><th>throttled entries/s</th><th>failovers</th><th>dead-lettered</th>\
         <th>given up</th><th>handed back</th><th>lost</th><th>duplicates</th><th>p99 ms</th><th>bridge CPU us/event</th>\
         <th>steady</th></tr>\n",
    );
    for p in points {
        let _ = writeln!(
            html,
            "<tr><td>{:?}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.1}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            p.sweep,
            p.streams,
            p.shards,
            p.offered_per_s,
            p.delivered_per_s,
            p.quota_per_s,
            p.throttled_entries_per_s,
            p.failovers,
            p.dead_lettered,
            p.given_up,
            p.handed_back,
            p.lost,
            p.duplicates,
            p.p99_delivery_ms,
            p.bridge_cpu_us_per_event,
            escape(p.unsteady.as_deref().unwrap_or("yes"))
        );
    }
    html.push_str("</table>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuUse;
    use crate::scale::Figures;

    fn point(sweep: Sweep, streams: usize, factor: u32, offered: f64, delivered: f64) -> Figures {
        Figures {
            sweep,
            streams,
            shards: 2 * streams as u32,
            factor,
            target_per_s: offered,
            offered_per_s: offered,
            delivered_per_s: delivered,
            throttled_entries_per_s: 0.5,
            calls_over_quota: 0,
            quota_per_s: 1_300.0 * streams as f64,
            failovers: 3,
            dead_lettered: 0,
            given_up: 0,
            handed_back: 0,
            lost: 0,
            duplicates: 0,
            sent: 1_000,
            delivered: 990,
            rejected: 10,
            balanced: true,
            p99_delivery_ms: 2_000,
            bridge_cpu_us_per_event: 12.5,
            wire_bytes_per_event: 30.0,
            window_s: 30.0,
            backlog_growth_per_s: 0.0,
            unsteady: None,
            cpu: CpuUse::default(),
            quota: "quota=us-east-1,quota_scale=0.0074".to_owned(),
        }
    }

    #[test]
    fn the_page_draws_both_sweeps_and_lists_every_point() {
        let points = [
            point(Sweep::Streams, 1, 1, 3_000.0, 1_300.0),
            point(Sweep::Streams, 3, 1, 3_000.0, 3_000.0),
            point(Sweep::Load, 1, 1, 1_000.0, 1_000.0),
            point(Sweep::Load, 4, 4, 4_000.0, 4_000.0),
        ];
        let html = scraper::Html::parse_document(&page(&points).unwrap());
        assert!(html.errors.is_empty(), "{:?}", html.errors);
        for id in ["streams", "load", "cpu"] {
            let svg = scraper::Selector::parse(&format!("figure#{id} > svg")).unwrap();
            assert_eq!(html.select(&svg).count(), 1, "the {id} chart");
        }
        let rows = scraper::Selector::parse("table#points tr").unwrap();
        assert_eq!(html.select(&rows).count(), 1 + points.len());
    }
}
