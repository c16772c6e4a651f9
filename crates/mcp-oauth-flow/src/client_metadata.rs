//! The client's descriptive metadata (RFC 7591 §2): what an authorization server shows on its
//! consent page, sent at dynamic registration and published in the client ID metadata
//! document.

use serde_json::{json, Map, Value};

use crate::config::ClientConfig;
use crate::registration::application_type_for;

/// The RFC 7591 §2 metadata that describes the client to the user and the server's operator.
/// Every field is optional and sent only when set.
///
/// ```
/// use mcp_oauth_flow::client::ClientMetadata;
/// let metadata = ClientMetadata::default()
///     .client_uri("https://agent.example.com")
///     .contact("ops@example.com")
///     .software_version("1.4.2");
/// assert_eq!(metadata.contacts, ["ops@example.com"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// `client_uri`: the client's home page.
    pub client_uri: Option<String>,
    /// `logo_uri`: the client's logo.
    pub logo_uri: Option<String>,
    /// `tos_uri`: the client's terms of service.
    pub tos_uri: Option<String>,
    /// `policy_uri`: how the client uses the user's data.
    pub policy_uri: Option<String>,
    /// `contacts`: people responsible for the client, usually e-mail addresses.
    pub contacts: Vec<String>,
    /// `software_id`: identifies the client software across its deployments (a UUID, say).
    pub software_id: Option<String>,
    /// `software_version`: the version of that software.
    pub software_version: Option<String>,
}

impl ClientMetadata {
    /// Sets `client_uri`.
    pub fn client_uri(mut self, uri: impl Into<String>) -> Self {
        self.client_uri = Some(uri.into());
        self
    }

    /// Sets `logo_uri`.
    pub fn logo_uri(mut self, uri: impl Into<String>) -> Self {
        self.logo_uri = Some(uri.into());
        self
    }

    /// Sets `tos_uri`.
    pub fn tos_uri(mut self, uri: impl Into<String>) -> Self {
        self.tos_uri = Some(uri.into());
        self
    }

    /// Sets `policy_uri`.
    pub fn policy_uri(mut self, uri: impl Into<String>) -> Self {
        self.policy_uri = Some(uri.into());
        self
    }

    /// Adds one of the `contacts`.
    pub fn contact(mut self, contact: impl Into<String>) -> Self {
        self.contacts.push(contact.into());
        self
    }

    /// Sets `software_id`.
    pub fn software_id(mut self, id: impl Into<String>) -> Self {
        self.software_id = Some(id.into());
        self
    }

    /// Sets `software_version`.
    pub fn software_version(mut self, version: impl Into<String>) -> Self {
        self.software_version = Some(version.into());
        self
    }

    /// Adds the fields that are set to a metadata object (a registration request or a client
    /// ID metadata document), replacing any of the same name; the rest of it is untouched.
    ///
    /// ```
    /// use mcp_oauth_flow::client::ClientMetadata;
    /// let body = ClientMetadata::default().tos_uri("https://a.example/tos")
    ///     .add_to(serde_json::json!({"client_name": "Agent"}));
    /// assert_eq!(body, serde_json::json!({"client_name": "Agent", "tos_uri": "https://a.example/tos"}));
    /// ```
    pub fn add_to(&self, mut object: Value) -> Value {
        let Some(fields) = object.as_object_mut() else {
            return object;
        };
        let strings = [
            ("client_uri", &self.client_uri),
            ("logo_uri", &self.logo_uri),
            ("tos_uri", &self.tos_uri),
            ("policy_uri", &self.policy_uri),
            ("software_id", &self.software_id),
            ("software_version", &self.software_version),
        ];
        for (name, value) in strings {
            if let Some(value) = value {
                fields.insert(name.to_owned(), json!(value));
            }
        }
        if !self.contacts.is_empty() {
            fields.insert("contacts".to_owned(), json!(self.contacts));
        }
        object
    }
}

/// The client ID metadata document the application serves at
/// [`ClientConfig::client_metadata_document`] (draft-ietf-oauth-client-id-metadata-document
/// §4.1: RFC 7591 metadata whose `client_id` is the document's own URL), for a public client
/// (`token_endpoint_auth_method: none`) using the authorization code grant with refresh.
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
    document.insert(
        "grant_types".into(),
        json!(["authorization_code", "refresh_token"]),
    );
    document.insert("response_types".into(), json!(["code"]));
    document.insert("token_endpoint_auth_method".into(), json!("none"));
    document.insert("application_type".into(), json!(application_type));
    Some(config.metadata.add_to(Value::Object(document)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ClientMetadata {
        ClientMetadata::default()
            .client_uri("https://c.example")
            .logo_uri("https://c.example/logo.png")
            .tos_uri("https://c.example/tos")
            .policy_uri("https://c.example/privacy")
            .contact("a@c.example")
            .contact("b@c.example")
            .software_id("4NRB1-0XZABZI9E6-5SM3R")
            .software_version("2.1")
    }

    #[test]
    fn every_rfc_7591_field_is_added_when_set_and_only_then() {
        let body = full().add_to(json!({"client_name": "x", "tos_uri": "old"}));
        assert_eq!(
            body,
            json!({
                "client_name": "x",
                "client_uri": "https://c.example",
                "logo_uri": "https://c.example/logo.png",
                "tos_uri": "https://c.example/tos",
                "policy_uri": "https://c.example/privacy",
                "contacts": ["a@c.example", "b@c.example"],
                "software_id": "4NRB1-0XZABZI9E6-5SM3R",
                "software_version": "2.1",
            })
        );
        let untouched = json!({"client_name": "x"});
        assert_eq!(
            ClientMetadata::default().add_to(untouched.clone()),
            untouched
        );
        assert_eq!(full().add_to(json!([1])), json!([1]));
    }

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
    }
}
