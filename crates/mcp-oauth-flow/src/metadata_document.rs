//! The client ID metadata document (draft-ietf-oauth-client-id-metadata-document §4.1): the
//! client's configuration and its RFC 7591 metadata as the JSON the application serves. Above
//! both `config` and `client_metadata`, which know nothing of it.

use serde_json::{json, Map, Value};

use crate::config::ClientConfig;
use crate::registration::application_type_for;

/// The client ID metadata document the application serves at
/// [`ClientConfig::client_metadata_document`] (draft-ietf-oauth-client-id-metadata-document
/// §4.1: RFC 7591 metadata whose `client_id` is the document's own URL), for a public client
/// (`token_endpoint_auth_method: none`) using the authorization code grant with refresh, and
/// the device code grant (RFC 8628 §3.4) when the configuration uses it
/// ([`ClientConfig::device_authorization`]): RFC 7591 §2 `grant_types` lists every grant the
/// client uses, and a server may refuse one it does not list.
/// `None` when no document URL is configured.
///
/// ```
/// use mcp_oauth_flow::{client::{client_metadata_document, ClientMetadata}, ClientConfig};
/// let config = ClientConfig::new("http://127.0.0.1:8976/callback")
///     .client_name("My Agent")
///     .client_metadata_document("https://agent.example.com/client.json")
///     .metadata(ClientMetadata::default().logo_uri("https://agent.example.com/logo.png"));
/// let document = client_metadata_document(&config).unwrap();
/// assert_eq!(document["client_id"], "https://agent.example.com/client.json");
/// assert_eq!(document["redirect_uris"][0], "http://127.0.0.1:8976/callback");
/// assert_eq!(document["logo_uri"], "https://agent.example.com/logo.png");
/// ```
pub fn client_metadata_document(config: &ClientConfig) -> Option<Value> {
    let url = config.client_metadata_document.as_deref()?;
    let application_type = config
        .application_type
        .clone()
        .unwrap_or_else(|| application_type_for(&config.redirect_uri).to_owned());
    let mut document = Map::new();
    document.insert("client_id".into(), json!(url));
    document.insert("client_name".into(), json!(config.client_name));
    document.insert("redirect_uris".into(), json!([config.redirect_uri]));
    let mut grant_types = vec!["authorization_code", "refresh_token"];
    if config.device_authorization {
        grant_types.push(crate::device::DEVICE_CODE_GRANT_TYPE);
    }
    document.insert("grant_types".into(), json!(grant_types));
    document.insert("response_types".into(), json!(["code"]));
    document.insert("token_endpoint_auth_method".into(), json!("none"));
    document.insert("application_type".into(), json!(application_type));
    Some(config.metadata.add_to(Value::Object(document)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_metadata::tests::full;

    #[test]
    fn the_metadata_document_names_itself_and_describes_a_public_client() {
        let none = ClientConfig::new("https://app.example.com/cb");
        assert_eq!(client_metadata_document(&none), None);
        let config = ClientConfig::new("https://app.example.com/cb")
            .client_name("App")
            .client_metadata_document("https://app.example.com/client.json")
            .metadata(full());
        let doc = client_metadata_document(&config).unwrap();
        assert_eq!(doc["client_id"], "https://app.example.com/client.json");
        assert_eq!(doc["client_name"], "App");
        assert_eq!(doc["redirect_uris"], json!(["https://app.example.com/cb"]));
        assert_eq!(doc["token_endpoint_auth_method"], "none");
        assert_eq!(doc["application_type"], "web");
        assert_eq!(doc["software_version"], "2.1");
        assert_eq!(doc["contacts"], json!(["a@c.example", "b@c.example"]));
        assert_eq!(
            doc["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );
    }

    #[test]
    fn a_client_that_uses_the_device_grant_lists_it() {
        let config = ClientConfig::new("http://127.0.0.1:8976/callback")
            .client_metadata_document("https://app.example.com/client.json")
            .device_authorization(true);
        let doc = client_metadata_document(&config).unwrap();
        assert_eq!(
            doc["grant_types"],
            json!([
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code"
            ])
        );
    }
}
