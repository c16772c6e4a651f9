//! RFC 8252 loopback redirect receiver (placeholder; issue 4).
