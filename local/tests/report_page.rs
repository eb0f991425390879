//! The report page, built from a recorded run (`fixtures/run.json`, a
//! `make demo` with throttling and an outage): it parses as HTML, holds one
//! SVG per chart, its account table says what the run's account says, and
//! it refers to no address.

use bridge_local::report_page::{self, RunRecord};
use scraper::{Html, Selector};

fn recorded() -> RunRecord {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn select(html: &Html, selector: &str) -> Vec<String> {
    let selector = Selector::parse(selector).unwrap();
    html.select(&selector).map(|e| e.text().collect::<String>()).collect()
}

#[test]
fn the_page_holds_one_svg_per_chart_and_the_run_s_account() {
    let record = recorded();
    let page = report_page::page(&record).unwrap();
    let html = Html::parse_document(&page);
    assert!(html.errors.is_empty(), "{:?}", html.errors);

    for chart in ["events", "delay", "faults", "mapping"] {
        let svgs = Selector::parse(&format!("figure#{chart} > svg")).unwrap();
        assert_eq!(html.select(&svgs).count(), 1, "one SVG in the {chart} chart");
    }
    assert_eq!(html.select(&Selector::parse("svg").unwrap()).count(), 4);

    let report = record.after_replay.as_ref().or(record.account.as_ref()).unwrap();
    let rows: Vec<(String, String)> = select(&html, "table#account th")
        .into_iter()
        .zip(select(&html, "table#account td"))
        .collect();
    let value = |name: &str| -> u64 {
        rows.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
            .1
            .parse()
            .unwrap()
    };
    assert_eq!(value("sent"), report.sent);
    assert_eq!(value("delivered"), report.delivered);
    assert_eq!(value("rejected"), report.rejected);
    assert_eq!(value("dead-lettered"), report.dead_lettered);
    assert_eq!(value("given up (kept in S3)"), report.given_up);
    assert_eq!(value("lost"), report.lost);
    assert_eq!(value("duplicates"), report.duplicates);
    assert_eq!(
        select(&html, "#verdict"),
        vec!["The books balance: every event accounted for, none lost."]
    );
    // The run's settings are on it, faults included.
    assert!(
        select(&html, "table#settings td")
            .iter()
            .any(|t| t.contains("outage=4s+3s"))
    );

    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page refers to an address"
    );
    assert!(!page.contains("<script"), "the page runs no script");
}

#[test]
fn a_run_that_ended_early_says_so_at_the_top_and_shows_what_it_had() {
    let mut record = recorded();
    record.account = None;
    record.after_replay = None;
    record.seconds.clear();
    record.ended_early = Some("interrupted (Ctrl-C)".to_owned());
    let page = report_page::page(&record).unwrap();
    let html = Html::parse_document(&page);
    let first = select(&html, "body > p").into_iter().next().unwrap_or_default();
    assert_eq!(
        first,
        "This run ended early: interrupted (Ctrl-C). The page shows what it had."
    );
    assert_eq!(
        html.select(&Selector::parse("svg").unwrap()).count(),
        4,
        "the charts of what it had"
    );
    assert!(select(&html, "#verdict").is_empty());
}
