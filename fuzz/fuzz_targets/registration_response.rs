#![no_main]
//! Fuzz target: see `mcp_oauth_fuzz::registration_response` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth_fuzz::registration_response(data));
