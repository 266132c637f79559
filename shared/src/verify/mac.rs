//! The MAC side of verification, without heap allocation on the request path: MACs and decoded
//! signatures live in fixed stack buffers, and each secret's MAC is compared (in constant time)
//! as soon as it is computed, so a request pays for one HMAC plus a few hundred bytes of parsing.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::{HmacAlgorithm, Secrets, VerifyError};

/// The longest MAC of any supported algorithm (HMAC-SHA512).
pub(crate) const MAX_MAC_LEN: usize = 64;

/// A MAC, or a signature decoded from a header, of at most [`MAX_MAC_LEN`] bytes. No `Debug`:
/// an expected MAC is as good as a valid signature.
#[derive(Clone, Copy)]
pub(crate) struct MacBytes {
    bytes: [u8; MAX_MAC_LEN],
    len: usize,
}

impl MacBytes {
    /// Panics beyond [`MAX_MAC_LEN`] bytes.
    pub(crate) fn from_slice(slice: &[u8]) -> Self {
        let mut bytes = [0; MAX_MAC_LEN];
        bytes[..slice.len()].copy_from_slice(slice);
        MacBytes {
            bytes,
            len: slice.len(),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Constant-time equality (lengths are not secret).
    pub(crate) fn ct_eq(&self, other: &[u8]) -> bool {
        super::constant_time_eq(self.as_slice(), other)
    }
}

impl AsRef<[u8]> for MacBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// The callback [`hmac_fed`] hands its `feed`: call it with each piece of the signed content.
pub(crate) type Update<'a> = &'a mut dyn FnMut(&[u8]);

/// HMAC over the pieces `feed` hands to its `update` callback, in order, for signed content that
/// is not one slice (a template, Twilio's fields): nothing is concatenated. Monomorphised per
/// algorithm, so each MAC carries only its own state.
pub(crate) fn hmac_fed(
    algorithm: HmacAlgorithm,
    key: &[u8],
    feed: impl Fn(Update<'_>),
) -> MacBytes {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], feed: &dyn Fn(Update<'_>)) -> MacBytes {
        let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
        feed(&mut |part| mac.update(part));
        MacBytes::from_slice(&mac.finalize().into_bytes())
    }
    match algorithm {
        HmacAlgorithm::Sha256 => run::<Hmac<Sha256>>(key, &feed),
        HmacAlgorithm::Sha1 => run::<Hmac<Sha1>>(key, &feed),
        HmacAlgorithm::Sha512 => run::<Hmac<Sha512>>(key, &feed),
    }
}

/// HMAC over the concatenation of `parts`.
pub(crate) fn hmac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> MacBytes {
    hmac_fed(algorithm, key, |update| {
        parts.iter().for_each(|part| update(part))
    })
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> MacBytes {
    hmac(HmacAlgorithm::Sha256, key, parts)
}

/// Hex digit values by byte, 0xFF for bytes that are not hex digits (either case).
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        table[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Decodes a hex signature (either case); `None` when it is not hex of exactly `len` bytes.
/// A table lookup per digit: the `hex` crate's per-pair error handling cost as much as a
/// tenth of the MAC.
pub(crate) fn decode_hex(text: &[u8], len: usize) -> Option<MacBytes> {
    if len > MAX_MAC_LEN || text.len() != 2 * len {
        return None;
    }
    let mut bytes = [0; MAX_MAC_LEN];
    let mut invalid = 0;
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
        // Digits are below 16, so any non-digit leaves high bits set here.
        invalid |= high | low;
        *byte = high << 4 | low;
    }
    (invalid < 16).then_some(MacBytes { bytes, len })
}

/// Decodes a base64 signature (standard alphabet, padding optional); `None` when it is not
/// base64 of exactly `len` bytes.
pub(crate) fn decode_base64(text: &[u8], len: usize) -> Option<MacBytes> {
    // Room for any text that decodes to at most MAX_MAC_LEN bytes; longer text cannot match
    // and fails to decode here, which gives the same `None`.
    let mut buf = [0; MAX_MAC_LEN + 3];
    let decoded = STANDARD
        .decode_slice(text, &mut buf)
        .or_else(|_| STANDARD_NO_PAD.decode_slice(text, &mut buf))
        .ok()?;
    (decoded == len).then(|| MacBytes::from_slice(&buf[..len]))
}

/// The signatures a request carries, decoded. Senders list one or two; a few are kept on the
/// stack and any beyond spill to the heap.
pub(crate) struct Candidates {
    inline: [MacBytes; 4],
    count: usize,
    spilled: Vec<MacBytes>,
}

impl Candidates {
    pub(crate) fn new() -> Self {
        Candidates {
            inline: [MacBytes::from_slice(&[]); 4],
            count: 0,
            spilled: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, candidate: MacBytes) {
        match self.inline.get_mut(self.count) {
            Some(slot) => *slot = candidate,
            None => self.spilled.push(candidate),
        }
        self.count += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn iter(&self) -> impl Iterator<Item = &MacBytes> {
        self.inline[..self.count.min(self.inline.len())]
            .iter()
            .chain(&self.spilled)
    }

    /// Whether any candidate equals `expected`, each comparison in constant time.
    pub(crate) fn contains(&self, expected: &MacBytes) -> bool {
        self.iter().any(|c| expected.ct_eq(c.as_slice()))
    }
}

impl Extend<MacBytes> for Candidates {
    fn extend<I: IntoIterator<Item = MacBytes>>(&mut self, iter: I) {
        for candidate in iter {
            self.push(candidate);
        }
    }
}

/// `Ok` when any candidate matches the MAC of any secret, else `SignatureInvalid`. The MACs are
/// computed one secret at a time and stop at the first match.
pub(crate) fn require_match(
    candidates: &Candidates,
    secrets: &Secrets,
    mac: impl Fn(&[u8]) -> MacBytes,
) -> Result<(), VerifyError> {
    if secrets
        .iter()
        .any(|secret| candidates.contains(&mac(secret.expose().as_bytes())))
    {
        Ok(())
    } else {
        Err(VerifyError::SignatureInvalid)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::{decode_base64, decode_hex};

    #[test]
    fn decode_hex_agrees_with_the_hex_crate() {
        let good = "00ff7A9bC4".repeat(2);
        for text in [
            &good[..],
            &good[..19],
            "zz",
            "0g",
            "",
            "0x12",
            "  12",
            "12 ",
        ] {
            for len in [0, 1, 2, 10] {
                let expected = hex::decode(text).ok().filter(|b| b.len() == len);
                let decoded = decode_hex(text.as_bytes(), len).map(|m| m.as_slice().to_vec());
                assert_eq!(decoded, expected, "{text:?} as {len} bytes");
            }
        }
    }

    #[test]
    fn decode_base64_takes_padding_or_not() {
        let mac = [0xA5u8; 32];
        let padded = STANDARD.encode(mac);
        let bare = padded.trim_end_matches('=');
        for text in [&padded[..], bare] {
            let decoded = decode_base64(text.as_bytes(), 32).map(|m| m.as_slice().to_vec());
            assert_eq!(decoded.as_deref(), Some(&mac[..]));
        }
        assert!(decode_base64(padded.as_bytes(), 20).is_none());
        assert!(decode_base64(STANDARD.encode([1u8; 200]).as_bytes(), 64).is_none());
        assert!(decode_base64(b"not base64!", 32).is_none());
    }
}
