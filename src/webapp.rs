//! The web-app example (axum) as a library module, so a test can drive it (placeholder; issue 4).
