//! The README's bench figures are quoted, not retyped: its bench block is the summary of
//! bench/results.md as `make bench` wrote it.

use crate::common::repo_root;

/// The lines of `text` strictly between the line `begin` and the next line `end`.
fn block<'a>(text: &'a str, begin: &str, end: &str) -> Option<Vec<&'a str>> {
    let mut lines = text.lines().skip_while(|l| l.trim() != begin);
    lines.next()?;
    let inner: Vec<&str> = lines.take_while(|l| l.trim() != end).collect();
    Some(inner)
}

#[test]
fn the_readme_quotes_the_bench_summary_verbatim() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let results = std::fs::read_to_string(root.join("bench/results.md")).expect("bench/results.md");
    let quoted = block(&readme, "<!-- bench-summary:begin -->", "<!-- bench-summary:end -->")
        .expect("README.md has a bench-summary block");
    let mut summary: Vec<&str> =
        results.lines().skip_while(|l| *l != "## Summary").skip(2).take_while(|l| !l.starts_with("## ")).collect();
    while summary.last().is_some_and(|l| l.is_empty()) {
        summary.pop();
    }
    assert!(!summary.is_empty(), "bench/results.md has no summary section");
    assert_eq!(
        quoted, summary,
        "the README's bench block differs from bench/results.md's summary: rerun `make bench` (it writes both)"
    );
}
