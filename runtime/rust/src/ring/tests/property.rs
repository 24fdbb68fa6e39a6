//! Property tests of header validation (ABI.md §6): arbitrary bytes, and
//! valid headers with random corruption, decoded in memory and attached
//! through real files — always an error or a consistent header, never a
//! panic or an out-of-bounds mapping. (A deterministic generator: the same
//! cases every run, no dependency.)

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;
use crate::ring::abi::*;
use crate::ring::{ErrorKind, SubscribeOptions, Subscriber};

/// Cases per property (Miri interprets every instruction: fewer there).
const CASES: usize = if cfg!(miri) { 300 } else { 20_000 };

/// splitmix64: a small, well-mixed deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A valid header of a random ring, as bytes.
fn valid(rng: &mut Rng) -> Vec<u8> {
    let align = 1u64 << rng.below(13);
    let size = align * (1 + rng.below(64.max(64 / align)));
    let capacity = 2u64 << rng.below(12);
    let geo = Geometry::compute(
        size.min(MAX_MESSAGE_SIZE),
        align,
        capacity,
        1 + rng.below(16),
        rng.below(2) == 1,
    )
    .unwrap_or_else(|_| Geometry::compute(64, 8, 8, 1, false).unwrap());
    let h = Header {
        identity: Identity {
            fingerprint: rng.next(),
            type_id: rng.next() as u32,
            size: geo.msg_size,
            align: geo.msg_align,
        },
        policy: Policy::from_raw(rng.below(3) as u32).unwrap(),
        batch: 1 + rng.below(geo.capacity / 2) as u32,
        asym_fences: rng.below(2) == 1,
        liveness_ns: 1 + rng.below(1 << 40),
        created_ns: rng.next(),
        geo,
    };
    let mut b = vec![0u8; HEADER_SIZE as usize];
    h.encode(&mut b);
    b[OFF_READY..OFF_READY + 4].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(Header::decode("valid", &b).unwrap(), h);
    b
}

/// Corrupts 1-4 random places: a byte, a word set to an extreme, a field
/// set to a neighbour of its value.
fn corrupt(rng: &mut Rng, b: &mut [u8]) {
    for _ in 0..1 + rng.below(4) {
        let off = rng.below(128) as usize;
        match rng.below(3) {
            0 => b[off] ^= 1 << rng.below(8),
            1 => {
                let o = off & !7;
                let v = [0, u64::MAX, 1 << 63, 1 << 40, rng.next()][rng.below(5) as usize];
                b[o..o + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let o = off & !3;
                let v = u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
                let w = if rng.below(2) == 0 {
                    v.wrapping_add(1)
                } else {
                    v.wrapping_sub(1)
                };
                b[o..o + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
    }
}

fn check_consistent(b: &[u8]) {
    if let Ok(h) = Header::decode("prop", b) {
        let g = Geometry::compute(
            h.geo.msg_size,
            h.geo.msg_align,
            h.geo.capacity,
            h.geo.max_subs,
            h.geo.line_slots,
        )
        .unwrap();
        assert_eq!(g, h.geo);
        assert!(g.seg_size <= MAX_SEGMENT_SIZE);
        assert!(g.slots_off + g.capacity * g.slot_size == g.seg_size);
        assert!(h.batch >= 1 && u64::from(h.batch) <= g.capacity / 2);
    }
}

#[test]
fn decode_never_panics_on_arbitrary_bytes() {
    let mut rng = Rng(1);
    for _ in 0..CASES {
        let len = [0, 1, 100, 511, 512, 600][rng.below(6) as usize];
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 16 && rng.below(2) == 0 {
            // Get past the magic and version checks half the time.
            b[..8].copy_from_slice(&MAGIC.to_le_bytes());
            b[8..12].copy_from_slice(&ABI_VERSION.to_le_bytes());
            b[12..16].copy_from_slice(&1u32.to_le_bytes());
        }
        check_consistent(&b);
    }
}

#[test]
fn decode_accepts_only_consistent_corruptions() {
    let mut rng = Rng(2);
    let mut refused = 0;
    for _ in 0..CASES {
        let mut b = valid(&mut rng);
        corrupt(&mut rng, &mut b);
        check_consistent(&b);
        refused += usize::from(Header::decode("prop", &b).is_err());
    }
    assert!(
        refused > CASES * 3 / 4,
        "only {refused} of {CASES} corruptions refused"
    );
}

#[test]
fn attach_over_arbitrary_header_bytes_is_an_error_not_a_crash() {
    let mut rng = Rng(3);
    for case in 0..300 {
        let name = Name::new("prop");
        let mut b = valid(&mut rng);
        if case % 4 != 0 {
            corrupt(&mut rng, &mut b);
        }
        // The file is the header plus a random amount of the rest: often
        // shorter than the segment the header describes.
        let seg = Header::decode("prop", &b)
            .map(|h| h.geo.seg_size)
            .unwrap_or(4096);
        let len = match rng.below(3) {
            0 => seg.min(1 << 24),
            1 => HEADER_SIZE + rng.below(seg.saturating_sub(HEADER_SIZE).max(1)),
            _ => rng.below(HEADER_SIZE),
        };
        let mut file = b.clone();
        file.resize(len as usize, 0);
        std::fs::write(name.path(), &file).unwrap();
        std::fs::set_permissions(name.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let opts = SubscribeOptions {
            ready_timeout: Duration::ZERO,
            ..SubscribeOptions::default()
        };
        match Subscriber::<Tick>::attach(&name, opts) {
            // Only a header that is valid, sized right and of Tick's
            // identity can be attached (the corruption hit a volatile
            // field).
            Ok(_) => assert!(Header::decode("prop", &b).is_ok() && len >= seg),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Corrupt
                        | ErrorKind::Version
                        | ErrorKind::NotReady
                        | ErrorKind::Mismatch
                ),
                "case {case}: {e}"
            ),
        }
        let _ = crate::ring::inspect(&name);
        std::fs::remove_file(name.path()).unwrap();
    }
}
