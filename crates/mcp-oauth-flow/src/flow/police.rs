//! The address policy, applied where every URL leaves the flow.
//!
//! Each URL the flow fetches or hands to the browser leaves through one of three actions,
//! [`Action::Send`], [`Action::Authorize`] and [`Action::ShowUserCode`] (RFC 8628's
//! verification URI), so the configured
//! [`UrlPolicy`](crate::url_policy::UrlPolicy) is applied to both right after each transition,
//! before the driver can see them: a URL that came from a challenge, from
//! `authorization_servers`, from metadata, from a stored token set or from the assertion-grant
//! configuration is judged the same way, and a state added later is covered without a check of
//! its own. A refusal ends the flow with the policy's error ([`ErrorKind::InsecureUrl`]
//! naming the URL and the rule) and no request is made.
//!
//! [`ErrorKind::InsecureUrl`]: crate::ErrorKind::InsecureUrl

use url::Url;

use super::{Action, Flow};
use crate::error::Error;

impl Flow {
    /// Ends the flow if a queued request or authorization URL breaks the policy; the other
    /// queued actions (a registration to save, say) stay.
    pub(super) fn police(&mut self) {
        let refused = self
            .out
            .iter()
            .find_map(|action| self.refusal(action).err());
        if let Some(error) = refused {
            // Only the store bookkeeping stays: every other action waits for an input (a
            // response, consent, a poll, an assertion, a stored client) that a finished flow
            // no longer takes.
            self.out.retain(|a| {
                matches!(
                    a,
                    Action::SaveClient(_) | Action::DropTokens | Action::DropClient { .. }
                )
            });
            self.fail(error);
        }
    }

    fn refusal(&self, action: &Action) -> Result<(), Error> {
        let policy = &self.config.url_policy;
        match action {
            Action::Send(sub) => {
                let raw = sub.request.uri().to_string();
                let what = sub.purpose.to_string();
                let url = Url::parse(&raw).map_err(|e| crate::url_policy::unusable_url(&raw, e))?;
                policy.check_url(&url, &self.server, &what)
            }
            Action::Authorize(request) => {
                policy.check_url(request.url(), &self.server, "authorization_endpoint")
            }
            // The user is sent there, on this machine or another (RFC 8628 §3.3): the same
            // rule as the authorization endpoint.
            Action::ShowUserCode(code) => {
                let check = |raw: &str, what: &str| {
                    let url =
                        Url::parse(raw).map_err(|e| crate::url_policy::unusable_url(raw, e))?;
                    policy.check_url(&url, &self.server, what)
                };
                check(&code.verification_uri, "verification_uri")?;
                match &code.verification_uri_complete {
                    Some(complete) => check(complete, "verification_uri_complete"),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}
