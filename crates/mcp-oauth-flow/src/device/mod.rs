//! The device authorization grant (RFC 8628), for a user with no browser on this machine: the
//! client asks for a device code and a user code (§3.1, §3.2), shows the user code and a URL
//! (§3.3), and polls the token endpoint (§3.4) while the user approves on another device,
//! reading each refusal as "wait", "wait longer" or "stop" (§3.5).
//!
//! Pure functions only: the flow (`flow/device.rs`) strings them together, the driver shows the
//! code and sleeps between polls. `authorization` asks for the codes and reads them;
//! `polling` reads the token endpoint's answers to the polls.

mod authorization;
mod polling;

pub use authorization::{
    device_authorization_endpoint, device_authorization_request,
    parse_device_authorization_response, with_device_grant, DeviceAuthorization, UserCode,
    DEFAULT_INTERVAL, MAX_DEVICE_SECONDS,
};
pub use polling::{
    after_lost_poll, check_device_code_alive, poll_verdict, PollVerdict, MAX_LOST_POLL_INTERVAL,
    SLOW_DOWN_STEP,
};

// The token request module writes the grant, so the name lives there; it is public here, where
// a reader of the device grant looks for it.
pub use crate::token_request::DEVICE_CODE_GRANT_TYPE;
