#![no_main]
//! Fuzz target: see `mcp_oauth_fuzz::jwt_expiry` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth_fuzz::jwt_expiry(data));
