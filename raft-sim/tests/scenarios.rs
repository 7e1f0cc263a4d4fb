//! Every scenario file runs as a test; its transcript is an insta snapshot. A scenario that
//! stops early (an invariant violation, a condition not reached, a bad line) fails the test.

use raft_sim::scenario::run_script;

#[test]
fn scenarios() {
    insta::glob!("../scenarios", "*.scn", |path| {
        let text = std::fs::read_to_string(path).expect("scenario files are readable");
        let outcome = run_script(&text);
        insta::assert_snapshot!(outcome.transcript);
        assert_eq!(outcome.error, None, "{} stopped early", path.display());
    });
}
