//! Redis token store (placeholder; issue 4).
