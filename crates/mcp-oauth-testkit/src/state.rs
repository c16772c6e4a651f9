//! Shared state of one testkit: records, overrides, clients, codes and tokens.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::codec::random_hex;
use crate::config::TestkitConfig;
use crate::discovery::Site;
use crate::record::{CannedResponse, RecordedRequest, ServerRole};

/// Authentication method of a public client.
pub(crate) const AUTH_NONE: &str = "none";
/// Authentication method with the secret in a Basic header.
pub(crate) const AUTH_BASIC: &str = "client_secret_basic";
/// Authentication method with the secret in the form body.
pub(crate) const AUTH_POST: &str = "client_secret_post";

/// Everything both servers of one testkit share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: TestkitConfig,
    pub(crate) site: Site,
    pub(crate) state: Mutex<State>,
}

impl Shared {
    /// Locks the state (a poisoned lock is still used: a panicking test must not cascade).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A client the authorization server knows.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pub(crate) secret: Option<String>,
    /// Allowed redirect URIs; empty means any.
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) auth_method: String,
}

/// An issued, not yet redeemed authorization code.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: String,
    pub(crate) challenge_method: String,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    /// The `prompt` parameter of the authorization request.
    pub(crate) prompt: Option<String>,
    /// Every parameter of the authorization request, for the imitations of real servers.
    pub(crate) params: Vec<(String, String)>,
}

/// An issued access token.
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) expires_at: Instant,
    pub(crate) revoked: bool,
    pub(crate) grant: u64,
}

/// An issued refresh token.
#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub(crate) client_id: String,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) grant: u64,
    /// False once rotated away or revoked with its grant.
    pub(crate) active: bool,
}

/// The mutable part of a testkit.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) records: Vec<RecordedRequest>,
    pub(crate) overrides: HashMap<(ServerRole, String), CannedResponse>,
    /// Injected faults: the first whose step matches answers the request.
    pub(crate) faults: Vec<(crate::fault::Step, crate::fault::Fault)>,
    /// `authorization_servers[0]` of the PRM.
    pub(crate) prm_authorization_server: String,
    /// When set, the PRM's whole `authorization_servers` list instead (see
    /// `Testkit::set_prm_authorization_servers`).
    pub(crate) prm_authorization_servers: Option<Vec<String>>,
    pub(crate) clients: HashMap<String, Client>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) access_tokens: HashMap<String, AccessToken>,
    pub(crate) refresh_tokens: HashMap<String, RefreshToken>,
    /// Client assertion `jti`s already used.
    pub(crate) seen_jtis: SeenJtis,
    /// DPoP `jti`s seen and token bindings (RFC 9449), when the servers do DPoP.
    pub(crate) dpop: DpopLedger,
    /// Device codes issued (RFC 8628).
    pub(crate) device_codes: DeviceCodes,
    counter: u64,
}

impl State {
    pub(crate) fn new(config: &TestkitConfig, site: &Site) -> State {
        let mut clients = HashMap::new();
        if let Some((id, secret)) = &config.preregistered_client {
            let auth_method = if config.client_public_key.is_some() {
                AUTH_PRIVATE_KEY_JWT
            } else if secret.is_some() {
                AUTH_BASIC
            } else {
                AUTH_NONE
            };
            clients.insert(
                id.clone(),
                Client {
                    secret: secret.clone(),
                    redirect_uris: Vec::new(),
                    auth_method: auth_method.to_owned(),
                },
            );
        }
        State {
            records: Vec::new(),
            overrides: HashMap::new(),
            faults: Vec::new(),
            prm_authorization_server: site.issuer.clone(),
            prm_authorization_servers: None,
            clients,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            seen_jtis: Default::default(),
            dpop: Default::default(),
            device_codes: Default::default(),
            counter: 0,
        }
    }

    /// The next value of the counter (starts at 1).
    pub(crate) fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A fresh random string.
    pub(crate) fn random(&mut self) -> String {
        let n = self.next_id();
        random_hex(n)
    }

    /// A known client, or a client id metadata document URL when those are supported.
    pub(crate) fn client(&self, client_id: &str, cimd_supported: bool) -> Option<Client> {
        if let Some(client) = self.clients.get(client_id) {
            return Some(client.clone());
        }
        let is_cimd = cimd_supported
            && client_id.starts_with("https://")
            && url::Url::parse(client_id).is_ok();
        is_cimd.then(|| Client {
            secret: None,
            redirect_uris: Vec::new(),
            auth_method: AUTH_NONE.to_owned(),
        })
    }

    /// Issues an access token of `grant`.
    pub(crate) fn issue_access_token(
        &mut self,
        scope: Option<String>,
        resource: Option<String>,
        grant: u64,
        lifetime: Duration,
    ) -> String {
        let n = self.next_id();
        let token = format!("at-{n}-{}", self.random());
        let expires_at = Instant::now() + lifetime;
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                scope,
                resource,
                expires_at,
                revoked: false,
                grant,
            },
        );
        token
    }

    /// Issues a refresh token of `grant`.
    pub(crate) fn issue_refresh_token(
        &mut self,
        client_id: &str,
        scope: Option<String>,
        resource: Option<String>,
        grant: u64,
    ) -> String {
        let n = self.next_id();
        let token = format!("rt-{n}-{}", self.random());
        let entry = RefreshToken {
            client_id: client_id.to_owned(),
            scope,
            resource,
            grant,
            active: true,
        };
        self.refresh_tokens.insert(token.clone(), entry);
        token
    }

    /// Revokes every access and refresh token of a grant.
    pub(crate) fn revoke_grant(&mut self, grant: u64) {
        for token in self.access_tokens.values_mut().filter(|t| t.grant == grant) {
            token.revoked = true;
        }
        for token in self
            .refresh_tokens
            .values_mut()
            .filter(|t| t.grant == grant)
        {
            token.active = false;
        }
    }
}

/// Every live testkit of the process, so that a resource server whose PRM names another
/// testkit's issuer (AS migration) can validate that one's tokens.
fn registry() -> &'static Mutex<Vec<Weak<Shared>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Weak<Shared>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

/// Adds a testkit to the process registry (and forgets dropped ones).
pub(crate) fn register(shared: &Arc<Shared>) {
    let mut all = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    all.retain(|weak| weak.strong_count() > 0);
    all.push(Arc::downgrade(shared));
}

/// The live testkit whose issuer is `issuer` (trailing `/` ignored).
impl State {
    /// The PRM's `authorization_servers`: the list set, else the one server.
    pub(crate) fn listed_authorization_servers(&self) -> Vec<String> {
        self.prm_authorization_servers
            .clone()
            .unwrap_or_else(|| vec![self.prm_authorization_server.clone()])
    }
}

pub(crate) fn find_by_issuer(issuer: &str) -> Option<Arc<Shared>> {
    let issuer = issuer.trim_end_matches('/');
    let all = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    all.iter()
        .filter_map(Weak::upgrade)
        .find(|shared| shared.site.issuer == issuer)
}

/// The authentication method of a client with a public key.
pub(crate) const AUTH_PRIVATE_KEY_JWT: &str = "private_key_jwt";

/// The `jti`s of client assertions already used (RFC 7523 §3 item 7: a server may refuse a
/// replay).
pub(crate) type SeenJtis = HashSet<String>;

/// What the servers remember about DPoP: `jti`s seen (replay), and which key each token is
/// bound to (by thumbprint).
#[derive(Debug, Default)]
pub(crate) struct DpopLedger {
    pub(crate) jtis: HashSet<String>,
    pub(crate) access: HashMap<String, String>,
    pub(crate) refresh: HashMap<String, String>,
    pub(crate) challenges: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Pending,
    Approved,
    Denied,
}

/// One issued device code.
#[derive(Clone, Debug)]
pub(crate) struct DeviceCode {
    pub(crate) client_id: String,
    pub(crate) user_code: String,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) expires_at: Instant,
    pub(crate) polls: u32,
    pub(crate) decision: Decision,
}

/// The device codes of a testkit, by `device_code`.
pub(crate) type DeviceCodes = HashMap<String, DeviceCode>;
