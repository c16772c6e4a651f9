//! Bytes as lowercase hexadecimal text: the file names, key ids, fingerprints, hashes and lease
//! tokens the stores write. A leaf.

/// `bytes` in lowercase hexadecimal, two digits a byte (as Redis's `redis.sha1hex` writes).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_lowercase_digits_a_byte() {
        assert_eq!(super::lower_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(super::lower_hex(&[]), "");
    }
}
