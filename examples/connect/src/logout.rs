//! `--logout`: revoke the tokens held for one server at its authorization server (RFC 7009)
//! and forget them, without a browser and without an MCP request.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;
use tower_mcp_oauth::{
    HeadlessAuthorizer, HttpClient, Logout, OAuthBody, OAuthLayer, RevokedToken, TokenStore,
    DEFAULT_MAX_RESPONSE_BYTES,
};

use crate::{client_config, open_store, ConnectError, Console, Options};

/// Revokes and forgets the tokens stored for `options.url`, printing each revocation's fate
/// to `console.err`. `Ok` means the local state is gone, revoked at the server or not. With
/// [`forget_client`](Options::forget_client) the client registration kept for the issuer
/// that granted them goes too, so the next login registers afresh.
///
/// ```no_run
/// use std::sync::Arc;
/// use connect::{logout, Options, Stdio};
/// # async fn example() -> Result<(), connect::ConnectError> {
/// let options = Options::new("http://127.0.0.1:3000/mcp");
/// let done = logout(&options, Arc::new(Stdio), connect::https_client()).await?;
/// assert!(done.resource.is_none() || done.revocations.len() >= 1);
/// # Ok(()) }
/// ```
pub async fn logout<C>(
    options: &Options,
    console: Arc<dyn Console>,
    client: Client<C, OAuthBody<Full<Bytes>>>,
) -> Result<Logout, ConnectError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let (store, store_dir) = open_store(options)?;
    // No authorization happens here: the redirect URI is never used.
    let config = client_config(options, "http://127.0.0.1/callback")?;
    let store = Arc::new(store);
    let layer = OAuthLayer::new(config, HeadlessAuthorizer::new()).token_store(Arc::clone(&store));
    let http = HttpClient::from_service(client, DEFAULT_MAX_RESPONSE_BYTES);
    let done = layer.logout(&options.url, &http).await?;
    let Some(resource) = &done.resource else {
        console.err(&format!(
            "No tokens stored for {} (in {}); nothing to do.",
            options.url,
            store_dir.display()
        ));
        if options.forget_client {
            // The issuer is known only from the tokens.
            console.err("The client registration is kept: without tokens its issuer is unknown.");
        }
        return Ok(done);
    };
    for revocation in &done.revocations {
        let which = match revocation.token {
            RevokedToken::Refresh => "refresh token",
            _ => "access token",
        };
        match &revocation.result {
            Ok(()) => console.err(&format!("{which}: revoked")),
            Err(e) => console.err(&format!("{which}: not revoked: {e:#}")),
        }
    }
    console.err(&format!("Forgot the tokens of {resource}."));
    if let (true, Some(issuer)) = (options.forget_client, &done.issuer) {
        // The tokens are gone already: a failure here leaves only the registration behind.
        store.remove_client(issuer).await?;
        console.err(&format!("Forgot the client registration at {issuer}."));
    }
    Ok(done)
}
