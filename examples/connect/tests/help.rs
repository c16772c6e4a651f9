//! `connect --help`: the usage line, then one line per flag saying what it does; every flag
//! the usage names is described, and every flag described is one the command line accepts.

mod support;

use connect::Options;
use support::Run;

/// The flags named in `text` (`--name`), in order, each once.
fn flags(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("--") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| *c == '-' || c.is_ascii_lowercase())
            .collect();
        if name.len() > 2 && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

#[tokio::test]
async fn help_describes_every_flag_on_a_line_of_its_own() {
    let (code, out, err) = Run::start(&["--help"]).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert!(err.is_empty(), "{err:#?}");
    let usage = &out[0];
    assert!(usage.starts_with("usage: connect <mcp-url>"), "{out:#?}");
    let described: Vec<(&str, &str)> = out[1..]
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("-"))
        .filter_map(|l| {
            let l = l.trim_start_matches("h, -");
            let (flag, what) = l.split_once("  ")?;
            let flag = flag.split_whitespace().next()?;
            Some((flag, what.trim()))
        })
        .collect();
    let usage_flags = flags(usage);
    assert!(usage_flags.len() >= 18, "{usage_flags:?}");
    for flag in &usage_flags {
        let line = described.iter().find(|(f, _)| format!("-{f}") == *flag);
        let (_, what) = line.unwrap_or_else(|| panic!("{flag} is not described: {out:#?}"));
        assert!(what.split_whitespace().count() >= 3, "{flag}: {what:?}");
    }
    for (flag, _) in &described {
        let flag = format!("-{flag}");
        if flag == "--help" {
            continue;
        }
        // Accepted by the parser: any complaint is about its value or company, never that
        // the option is unknown.
        let args = ["http://127.0.0.1:1/mcp".to_string(), flag.clone()];
        if let Err(e) = Options::parse(args) {
            assert!(!e.to_string().contains("unknown option"), "{flag}: {e}");
        }
    }
}

#[tokio::test]
async fn an_unknown_flag_prints_only_the_usage_and_exits_2() {
    let (code, out, err) = Run::start(&["http://127.0.0.1:1/mcp", "--nope"])
        .finish()
        .await;
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err, ["unknown option --nope", connect::USAGE]);
}

#[test]
fn refresh_scope_and_forget_client_parse() {
    let parse = |extra: &[&str]| {
        let mut args = vec!["http://127.0.0.1:1/mcp".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Options::parse(args)
    };
    for (name, policy) in [
        ("always", tower_mcp_oauth::RefreshScope::Always),
        ("never", tower_mcp_oauth::RefreshScope::Never),
        ("retry", tower_mcp_oauth::RefreshScope::RetryWithout),
    ] {
        let options = parse(&["--refresh-scope", name]).unwrap();
        let server = options.server_options().unwrap().unwrap();
        assert_eq!(server.compat().refresh_scope(), policy);
    }
    // After a preset, the flag wins.
    let options = parse(&["--preset", "github", "--refresh-scope", "always"]).unwrap();
    let server = options.server_options().unwrap().unwrap();
    assert_eq!(
        server.compat().refresh_scope(),
        tower_mcp_oauth::RefreshScope::Always
    );
    let error = parse(&["--refresh-scope", "sometimes"]).unwrap_err();
    assert!(
        error.to_string().contains("always, never or retry"),
        "{error}"
    );
    assert!(
        parse(&["--logout", "--forget-client"])
            .unwrap()
            .forget_client
    );
    let error = parse(&["--forget-client"]).unwrap_err();
    assert!(error
        .to_string()
        .starts_with("--forget-client needs --logout"));
}
