//! rmcp integration (placeholder; issue 4).
