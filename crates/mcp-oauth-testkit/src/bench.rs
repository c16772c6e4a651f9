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

/// The URL the hot-path measurements address (no server behind it: the inner service is
/// [`trivial_resource`]).
pub const HOT_PATH_URL: &str = "http://mcp.bench/mcp";

/// The request the hot-path measurements send: a small JSON-RPC `tools/list` POST to
/// [`HOT_PATH_URL`], with `authorization` when the caller adds the token itself.
pub fn hot_path_request(
    authorization: Option<&http::HeaderValue>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let mut req = http::Request::post(HOT_PATH_URL)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(BODY)))
        .expect("a valid request");
    if let Some(v) = authorization {
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, v.clone());
    }
    req
}

/// A trivial resource for the hot-path measurements: `401` without a token, `200` with one.
pub fn trivial_resource<B>(
    req: http::Request<B>,
) -> std::future::Ready<
    Result<http::Response<http_body_util::Empty<bytes::Bytes>>, std::convert::Infallible>,
> {
    let status = if req.headers().contains_key(http::header::AUTHORIZATION) {
        http::StatusCode::OK
    } else {
        http::StatusCode::UNAUTHORIZED
    };
    let mut resp = http::Response::new(http_body_util::Empty::new());
    *resp.status_mut() = status;
    std::future::ready(Ok(resp))
}
