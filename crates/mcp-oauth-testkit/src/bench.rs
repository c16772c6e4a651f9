//! Reading criterion's estimates back to print one benchmark as a ratio of another.

use std::path::PathBuf;

/// Where criterion writes its estimates: found the way criterion finds it (`CARGO_TARGET_DIR`,
/// else `cargo metadata`), so a bench in any member of any workspace reads its own run.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO")
        .and_then(|cargo| {
            std::process::Command::new(cargo)
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .output()
                .ok()
        })
        .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
        .and_then(|meta| meta["target_directory"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The mean time (ns) criterion measured for `group/id` in this run.
pub fn mean_ns(group: &str, id: &str) -> Option<f64> {
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
pub fn print_ratio(group: &str, baseline: &str, candidate: &str, target: Option<f64>) {
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
