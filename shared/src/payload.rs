//! An event's headers and body packed as one compressed blob: the DynamoDB event item stores
//! it as a single binary attribute, so a 1 KiB push event fits one write unit (item sizes count
//! every attribute name and value; `docs/aws-layout.md`, section `events`).
//!
//! Layout before compression: the headers as a JSON object, its length first (4 bytes, big
//! endian), then the body bytes as received. Compressed with deflate in a zlib frame: the
//! frame's 6 bytes carry an Adler-32 checksum, so a damaged blob is reported as
//! [`StoreError::Corrupt`] rather than decoded into wrong bytes.
//!
//! Cost, measured with the `payload` group of `shared/benches/micro.rs` (`cargo bench -p
//! hookhub-shared --bench micro -- payload`; criterion medians on the 2-core dev VM while other
//! builds ran, so upper bounds), push bodies with GitHub headers:
//!
//! | body | packed | pack | unpack |
//! | --- | --- | --- | --- |
//! | 1 KiB | 452 bytes | 27 µs | 11 µs |
//! | 64 KiB | 11.7 KB | 1.38 ms | 95 µs |
//!
//! Paid once per insert and per read of the event, against DynamoDB write units: the measured
//! cost model (`hookhub-bench cost`) went from 12 + 3 WRU (transaction, mark-enqueued update)
//! to 5 + 2 per 1 KiB webhook, and from 207 to 34 WRU in all per 64 KiB webhook.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use bytes::Bytes;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::ports::{StoreError, StoreResult};

/// Largest unpacked payload accepted: far above any stored event (bodies are limited to
/// 256 KiB, headers to a few KiB), so a damaged or hostile blob cannot inflate without bound.
const MAX_UNPACKED: u64 = 8 << 20;

/// Headers and body as one compressed blob.
pub fn pack(headers: &BTreeMap<String, String>, body: &[u8]) -> StoreResult<Vec<u8>> {
    let headers = serde_json::to_vec(headers)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode headers: {e}")))?;
    let headers_len = u32::try_from(headers.len())
        .map_err(|_| StoreError::Corrupt("headers over 4 GiB".into()))?;
    let mut encoder = ZlibEncoder::new(
        Vec::with_capacity(64 + body.len() / 2),
        Compression::default(),
    );
    let written = encoder
        .write_all(&headers_len.to_be_bytes())
        .and_then(|()| encoder.write_all(&headers))
        .and_then(|()| encoder.write_all(body));
    written
        .and_then(|()| encoder.finish())
        .map_err(|e| StoreError::Corrupt(format!("cannot compress payload: {e}")))
}

/// The headers and body [`pack`] stored; `Corrupt` for anything it did not produce.
pub fn unpack(packed: &[u8]) -> StoreResult<(BTreeMap<String, String>, Bytes)> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("event payload: {what}"));
    let mut raw = Vec::with_capacity(packed.len() * 3);
    ZlibDecoder::new(packed)
        .take(MAX_UNPACKED + 1)
        .read_to_end(&mut raw)
        .map_err(|e| corrupt(&format!("cannot decompress ({e})")))?;
    if raw.len() as u64 > MAX_UNPACKED {
        return Err(corrupt("larger than any stored event"));
    }
    let (len, rest) = raw
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("truncated"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > rest.len() {
        return Err(corrupt("truncated headers"));
    }
    let headers =
        serde_json::from_slice(&rest[..len]).map_err(|_| corrupt("headers are not a JSON map"))?;
    let body = Bytes::copy_from_slice(&rest[len..]);
    Ok((headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn round_trips_byte_identical() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let large: Vec<u8> = (0..256 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let cases: [(BTreeMap<String, String>, &[u8]); 4] = [
            (BTreeMap::new(), b""),
            (headers(&[("x-bin", "1")]), &binary),
            (headers(&[("x-big", "yes")]), &large),
            (
                headers(&[
                    ("x-name", "Zoë 🚀 東京"),
                    ("content-type", "text/plain; charset=utf-8"),
                ]),
                "héllo ✓".as_bytes(),
            ),
        ];
        for (h, body) in cases {
            let packed = pack(&h, body).unwrap();
            let (h2, body2) = unpack(&packed).unwrap();
            assert_eq!(h2, h);
            assert_eq!(&body2[..], body);
        }
    }

    #[test]
    fn damaged_payloads_are_corrupt_not_panics() {
        let good = pack(&headers(&[("a", "b")]), b"{\"hello\":\"world\"}").unwrap();
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        let mut bad_len = Vec::new();
        let mut e = ZlibEncoder::new(&mut bad_len, Compression::default());
        e.write_all(&[0, 0, 0, 99, b'{', b'}']).unwrap();
        e.finish().unwrap();
        let mut not_json = Vec::new();
        let mut e = ZlibEncoder::new(&mut not_json, Compression::default());
        e.write_all(&[0, 0, 0, 2, b'[', b']']).unwrap();
        e.finish().unwrap();
        let cases: [&[u8]; 6] = [
            b"",
            b"not zlib at all",
            &good[..good.len() - 3],
            &flipped,
            &bad_len,
            &not_json,
        ];
        for case in cases {
            assert!(
                matches!(unpack(case), Err(StoreError::Corrupt(_))),
                "{case:?}"
            );
        }
    }
}
