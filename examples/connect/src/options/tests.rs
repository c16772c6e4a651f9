//! The command line's parsing: every option, and each usage error.

use super::*;

fn parse(args: &[&str]) -> Result<Options, UsageError> {
    Options::parse(args.iter().map(|s| s.to_string()))
}

#[test]
fn every_option() {
    let o = parse(&[
        "--port",
        "8976",
        "http://127.0.0.1:1/mcp",
        "--no-browser",
        "--localhost",
        "--client-id",
        "cli",
        "--client-secret",
        "s3cret",
        "--issuer",
        "https://as.example.com",
        "--store",
        "/tmp/x",
        "--timeout",
        "7",
        "--authorize-param",
        "access_type=offline",
        "--token-param",
        "resource=",
        "--token-param",
        "audience=https://api.example.com/a=b",
        "--require-refresh-token",
        "--logout",
        "--status",
        "--request-timeout",
        "1.5",
    ])
    .unwrap();
    assert!(o.logout && o.status);
    assert_eq!(
        o.authorize_params,
        [("access_type".to_owned(), Some("offline".to_owned()))]
    );
    assert_eq!(
        o.token_params,
        [
            ("resource".to_owned(), None),
            (
                "audience".to_owned(),
                Some("https://api.example.com/a=b".to_owned())
            )
        ]
    );
    assert!(o.require_refresh_token);
    assert_eq!(o.issuer.as_deref(), Some("https://as.example.com"));
    assert_eq!(o.url, "http://127.0.0.1:1/mcp");
    assert!(!o.open_browser && o.localhost);
    assert_eq!(o.port, 8976);
    assert_eq!(o.client_id.as_deref(), Some("cli"));
    assert_eq!(o.store_dir, Some(PathBuf::from("/tmp/x")));
    assert_eq!(o.callback_timeout, Duration::from_secs(7));
    assert_eq!(o.request_timeout, Duration::from_millis(1500));
    let debug = format!("{o:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[test]
fn mistakes_are_usage_errors() {
    for (args, why) in [
        (&[][..], "missing"),
        (&["u", "--port"][..], "needs a value"),
        (&["u", "--port", "70000"][..], "takes a number"),
        (&["u", "--timeout", "0"][..], "at least 1"),
        (&["u", "--request-timeout", "0"][..], "positive"),
        (&["u", "--request-timeout", "-1"][..], "positive"),
        (&["u", "--request-timeout", "x"][..], "takes a number"),
        (&["u", "--bogus"][..], "unknown option"),
        (&["u", "v"][..], "unexpected argument"),
        (&["u", "--client-secret", "s"][..], "needs --client-id"),
        (
            &["u", "--client-id", "c", "--client-secret", "s"][..],
            "needs --issuer",
        ),
        (
            &["u", "--issuer", "https://as.example"][..],
            "needs --client-id",
        ),
        (&["u", "--token-param", "resource"][..], "needs K=V"),
        (&["u", "--authorize-param", "=v"][..], "needs K=V"),
        (&["u", "--preset", "salesforce"][..], "one of entra, auth0"),
        (&["u", "--preset", "auth0"][..], "needs --audience"),
        (&["u", "--preset"][..], "needs a value"),
        (
            &["http://127.0.0.1:1/mcp", "--authorize-param", "state=x"][..],
            "state",
        ),
        (
            &["http://127.0.0.1:1/mcp", "--token-param", "code_verifier="][..],
            "code_verifier",
        ),
    ] {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(err.ends_with(USAGE));
    }
}

#[test]
fn presets_by_name_with_auth0_s_audience_from_either_flag() {
    let preset = |args: &[&str]| parse(args).unwrap().preset;
    assert_eq!(preset(&["u"]), None);
    assert_eq!(preset(&["u", "--preset", "entra"]), Some(Preset::EntraId));
    assert_eq!(preset(&["u", "--preset", "GitHub"]), Some(Preset::GitHub));
    let auth0 = |audience: &str| {
        Some(Preset::Auth0 {
            audience: audience.into(),
        })
    };
    assert_eq!(
        preset(&["u", "--preset", "auth0", "--audience", "https://a"]),
        auth0("https://a")
    );
    assert_eq!(
        preset(&[
            "u",
            "--token-param",
            "audience=https://t",
            "--preset",
            "auth0"
        ]),
        auth0("https://t")
    );
    // --audience alone is the switch, without a preset.
    let o = parse(&["http://127.0.0.1:1/mcp", "--audience", "https://a"]).unwrap();
    assert_eq!(o.preset, None);
    let server = o.server_options().unwrap().unwrap();
    assert_eq!(server.compat().audience(), Some("https://a"));
}

#[test]
fn store_dir_follows_xdg() {
    let os = |s: &str| Some(OsString::from(s));
    assert_eq!(
        store_dir_from(os("/state"), os("/home/u")),
        Some(PathBuf::from("/state/tower-mcp-oauth"))
    );
    for ignored in [None, os(""), os("relative/state")] {
        assert_eq!(
            store_dir_from(ignored, os("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/tower-mcp-oauth"))
        );
    }
    assert_eq!(store_dir_from(None, None), None);
}
