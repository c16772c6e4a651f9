//! End-to-end tests of the kit through real sockets.

mod client;
mod discovery;
mod flows;
mod quirks;
