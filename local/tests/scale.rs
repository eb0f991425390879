//! The short sweep CI runs (`Design::short`, two points of `make scale`'s
//! streams sweep): one stream carries about its quota and not more, and
//! the stream count the plan gives carries the whole load, with nothing
//! lost at either point. The whole pipeline on 127.0.0.1, as
//! `tests/pipeline.rs` runs it.

use std::time::Duration;

use bridge_local::scale::{self, Design, Setup, Sweep};
use bridge_local::template::Deployed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_its_quota_and_the_planned_streams_carry_the_load() {
    let design = Design::short();
    let deployed = Deployed::from_repo().expect("the template's settings");
    let setup = Setup::new(&design, &deployed).await.expect("the sweep's quota");
    let planned = setup.planned_streams;
    let dir = std::env::temp_dir().join(format!("bridge-local-test-scale-{}", std::process::id()));
    let mut points = Vec::new();
    for point in design.points() {
        let name = format!("streams-{}", point.streams);
        let figures = scale::run_point(&design, &point, &setup, &dir.join(name), Some(Duration::from_secs(5)))
            .await
            .unwrap_or_else(|e| panic!("the point failed: {e}"));
        eprintln!("{}", figures.line());
        assert_eq!(figures.sweep, Sweep::Streams);
        assert!(figures.unsteady.is_none(), "steady: {:?}", figures.unsteady);
        assert!(figures.balanced && figures.lost == 0, "{figures:?}");
        points.push(figures);
    }
    assert_eq!(points[1].streams, planned, "the second point is the plan's");
    assert!(points[0].throttled_entries_per_s > 0.0, "one stream is over its quota");
    assert!(points[0].dead_lettered > 0, "what one stream cannot take is kept in S3");
    let misses = scale::misses(&points, planned);
    assert!(misses.is_empty(), "{misses:#?}");
}
