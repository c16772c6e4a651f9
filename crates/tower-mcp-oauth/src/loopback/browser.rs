//! Opening the user's browser (RFC 8252 §4.1: the authorization request goes through the
//! system browser, never an embedded user agent).

use std::io;
use std::process::{Command, Stdio};

use url::Url;

/// Opens `url` in the user's default browser and returns without waiting for it.
///
/// Runs `open` on macOS, `rundll32 url.dll,FileProtocolHandler` on Windows, and `xdg-open`
/// elsewhere, detached, with no standard streams. On Linux and the BSDs it first requires a
/// graphical session (`DISPLAY` or `WAYLAND_DISPLAY`): without one `xdg-open` may start a text
/// browser in the very terminal the URL was printed to.
///
/// An error means no browser was started; the caller should show the URL instead (the
/// [`LoopbackReceiver`](super::LoopbackReceiver) always prints it first).
///
/// ```no_run
/// let url = url::Url::parse("https://auth.example.com/authorize?client_id=x").unwrap();
/// if let Err(e) = tower_mcp_oauth::loopback::open_browser(&url) {
///     eprintln!("open {url} yourself ({e})");
/// }
/// ```
pub fn open_browser(url: &Url) -> io::Result<()> {
    let graphical = std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty());
    let (program, args) = browser_command(std::env::consts::OS, graphical, url)?;
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Reap the opener when it exits (they hand the URL over and quit), so it does not linger
    // as a zombie for the life of this process; nobody waits for the thread.
    std::thread::Builder::new()
        .name("browser-opener".into())
        .spawn(move || {
            let _ = child.wait();
        })?;
    Ok(())
}

/// The command that opens `url` on `os`.
fn browser_command(
    os: &str,
    graphical: bool,
    url: &Url,
) -> io::Result<(&'static str, Vec<String>)> {
    // Only web URLs: the authorization endpoint is https (or loopback http), and an opener
    // handed another scheme could start any registered application.
    if !matches!(url.scheme(), "https" | "http") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not opening a {} URL in a browser", url.scheme()),
        ));
    }
    let url = url.as_str().to_owned();
    match os {
        "macos" => Ok(("open", vec![url])),
        // Not `cmd /c start`: cmd re-parses its command line, so `&` in the query would end the
        // command and `%name%` would expand variables. rundll32 takes the URL as it is.
        "windows" => Ok((
            "rundll32.exe",
            vec!["url.dll,FileProtocolHandler".into(), url],
        )),
        _ if !graphical => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no graphical session (DISPLAY and WAYLAND_DISPLAY are unset)",
        )),
        _ => Ok(("xdg-open", vec![url])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_command_per_platform_and_the_url_as_one_argument() {
        let url = Url::parse("https://as.example.com/authorize?a=1&b=%41").unwrap();
        let (program, args) = browser_command("linux", true, &url).unwrap();
        assert_eq!(
            (program, args.as_slice()),
            ("xdg-open", &[url.to_string()][..])
        );
        assert_eq!(browser_command("macos", false, &url).unwrap().0, "open");
        let (program, args) = browser_command("windows", false, &url).unwrap();
        assert_eq!(program, "rundll32.exe");
        assert_eq!(args[1], url.as_str());
    }

    #[test]
    fn no_browser_without_a_display_or_for_other_schemes() {
        let url = Url::parse("https://as.example.com/authorize").unwrap();
        let err = browser_command("linux", false, &url).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let file = Url::parse("file:///etc/passwd").unwrap();
        let err = browser_command("macos", true, &file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
