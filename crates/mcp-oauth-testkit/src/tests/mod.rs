//! End-to-end tests of the kit through real sockets.

mod assertions;
mod client;
mod discovery;
mod dpop;
mod flows;
mod imitations;
mod quirks;
