//! `make invoke`'s code path: the function built and run under `cargo lambda
//! watch`, invoked by `cargo lambda invoke --data-file` with every file of
//! `events/`, and what landed in moto's S3 checked against
//! `events/expected.json`.

use bridge_local::round_trip;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_file_round_trips_through_cargo_lambda_as_expected() {
    let dir = std::env::temp_dir().join(format!("bridge-local-test-invoke-{}", std::process::id()));
    let trip = round_trip::run(&[], false, &dir, |line| eprintln!("{line}"))
        .await
        .unwrap_or_else(|e| panic!("the round trip failed: {e}"));
    let expected = round_trip::expectations().unwrap();
    assert_eq!(trip.checked.len(), expected.len(), "every file was invoked");
    for check in &trip.checked {
        assert!(check.matches(), "{}", check.line());
    }
    assert!(trip.kept.is_none(), "nothing left running");
}

#[tokio::test]
async fn a_file_that_is_not_an_event_file_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("bridge-local-test-invoke-bad-{}", std::process::id()));
    let error = round_trip::run(&["nope.json".to_owned()], false, &dir, |_| {})
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("nope.json: not an event file"), "{error}");
}
