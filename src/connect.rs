//! The `connect` example as a library function, so a test can drive it (placeholder; issue 4).
