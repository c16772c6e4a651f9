//! Web-app start/complete API (placeholder; issue 4).
