//! Reading criterion's estimates back to print one benchmark as a ratio of another.
// Compiled into each bench; `cargo clippy --all-targets` also builds the benches as tests,
// where `main` (and so these helpers) is not the entry point.
#![allow(dead_code)]

use std::path::PathBuf;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The mean time (ns) criterion measured for `group/id` in this run.
pub(crate) fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints `candidate / baseline` for a group, with both means.
pub(crate) fn print_ratio(group: &str, baseline: &str, candidate: &str, target: Option<f64>) {
    match (mean_ns(group, baseline), mean_ns(group, candidate)) {
        (Some(b), Some(c)) => {
            let ratio = c / b;
            let verdict = match target {
                Some(t) if ratio <= t => format!("; target <= {t:.2}x: met"),
                Some(t) => format!("; target <= {t:.2}x: NOT met"),
                None => String::new(),
            };
            println!("RATIO {group}: {candidate} / {baseline} = {ratio:.3}x  ({c:.0} ns vs {b:.0} ns{verdict})");
        }
        _ => println!("RATIO {group}: estimates not found (was the group filtered out?)"),
    }
}
