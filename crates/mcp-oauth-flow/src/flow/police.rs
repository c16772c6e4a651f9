//! The address policy, applied where every URL leaves the flow.
//!
//! Each URL the flow fetches or hands to the browser leaves through one of two actions,
//! [`Action::Send`] and [`Action::Authorize`], so the configured
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
            self.out
                .retain(|a| !matches!(a, Action::Send(_) | Action::Authorize(_)));
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
            _ => Ok(()),
        }
    }
}
