//! The client's descriptive metadata (RFC 7591 §2): what an authorization server shows on its
//! consent page, sent at dynamic registration and published in the client ID metadata
//! document.

use serde_json::{json, Value};

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn full() -> ClientMetadata {
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
}
