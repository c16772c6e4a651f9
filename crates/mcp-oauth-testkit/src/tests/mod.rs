//! End-to-end tests of the kit through real sockets.

mod assertions;
mod client;
mod discovery;
mod flows;
mod quirks;
