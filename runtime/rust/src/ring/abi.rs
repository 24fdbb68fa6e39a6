//! The byte-level ABI of a ring segment, version 2 (`runtime/ABI.md`): the
//! offsets, the derived geometry (§3), the identity line's encoding and its
//! validation (§4, §6), names (§2) and subscriber keys (§7). Pure logic: no
//! system call, so it runs under Miri.

use super::error::{Error, Result};

/// ASCII `TACHRING` read as a little-endian u64.
pub const MAGIC: u64 = 0x474E_4952_4843_4154;
/// The ABI version this client speaks.
pub const ABI_VERSION: u32 = 2;
/// The fixed header: four 128-byte lines.
pub const HEADER_SIZE: u64 = 512;
/// Granularity of independently written regions (two cache lines).
pub const LINE_SIZE: u64 = 128;
/// One cache line: the slot granularity of the line layout.
pub const CACHE_LINE: u64 = 64;
/// One subscriber table entry.
pub const ENTRY_SIZE: u64 = 128;
/// The largest message a ring carries.
pub const MAX_MESSAGE_SIZE: u64 = 1 << 20;
/// The largest message alignment.
pub const MAX_ALIGN: u64 = 4096;
/// The largest slot count.
pub const MAX_CAPACITY: u64 = 1 << 30;
/// The largest subscriber table.
pub const MAX_SUBSCRIBERS: u64 = 1024;
/// The largest segment (1 TiB).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 40;
/// The longest ring name.
pub const MAX_NAME_LEN: usize = 255;

// Identity line (0x000-0x07F).
pub(crate) const OFF_MAGIC: usize = 0x00;
pub(crate) const OFF_VERSION: usize = 0x08;
pub(crate) const OFF_READY: usize = 0x0C;
pub(crate) const OFF_FINGERPRINT: usize = 0x10;
pub(crate) const OFF_TYPE_ID: usize = 0x18;
pub(crate) const OFF_MSG_SIZE: usize = 0x1C;
pub(crate) const OFF_MSG_ALIGN: usize = 0x20;
pub(crate) const OFF_SLOT_SIZE: usize = 0x24;
pub(crate) const OFF_SLOT_MSG_OFF: usize = 0x28;
pub(crate) const OFF_POLICY: usize = 0x2C;
pub(crate) const OFF_CAPACITY: usize = 0x30;
pub(crate) const OFF_MAX_SUBS: usize = 0x38;
pub(crate) const OFF_HEADER_SIZE: usize = 0x3C;
pub(crate) const OFF_SLEEPERS_OFF: usize = 0x40;
pub(crate) const OFF_TABLE_OFF: usize = 0x48;
pub(crate) const OFF_SLOTS_OFF: usize = 0x50;
pub(crate) const OFF_SEG_SIZE: usize = 0x58;
pub(crate) const OFF_LIVENESS_NS: usize = 0x60;
pub(crate) const OFF_CREATED_NS: usize = 0x68;
pub(crate) const OFF_BATCH: usize = 0x70;
pub(crate) const OFF_FLAGS: usize = 0x74;
pub(crate) const OFF_EVICT_OFF: usize = 0x78;

/// `flags` bit 0: the line slot layout.
pub(crate) const FLAG_LINE_SLOTS: u32 = 1 << 0;
/// `flags` bit 1: asymmetric fences.
pub(crate) const FLAG_ASYM_FENCES: u32 = 1 << 1;
const KNOWN_FLAGS: u32 = FLAG_LINE_SLOTS | FLAG_ASYM_FENCES;

// Producer hot line (0x080-0x0FF).
pub(crate) const OFF_TAIL: usize = 0x80;
pub(crate) const OFF_DROPPED_NEWEST: usize = 0x88;
pub(crate) const OFF_NOTIFY: usize = 0x90;

// Producer control line (0x100-0x17F): also the producer's liveness range.
pub(crate) const OFF_PROD_STATE: usize = 0x100;
pub(crate) const OFF_PROD_SLEEPING: usize = 0x104;
pub(crate) const OFF_PROD_PID: usize = 0x108;
pub(crate) const OFF_PROD_WAIT_ENTRY: usize = 0x10C;
pub(crate) const OFF_PROD_START_TIME: usize = 0x110;
pub(crate) const OFF_PROD_HEARTBEAT: usize = 0x118;
pub(crate) const OFF_PROD_WAIT_HEAD: usize = 0x120;
pub(crate) const OFF_PROD_SCAN_EPOCH: usize = 0x128;
pub(crate) const OFF_PROD_FENCES: usize = 0x130;
pub(crate) const PROD_LOCK_START: u64 = 0x100;
pub(crate) const PROD_LOCK_LEN: u64 = LINE_SIZE;

// Registry line (0x180-0x1FF).
pub(crate) const OFF_REG_EPOCH: usize = 0x180;
/// u32: one more than the highest entry index ever registered (monotonic);
/// the producer looks at entries and sleeper flags below it only.
pub(crate) const OFF_TABLE_HIGH: usize = 0x188;

// Subscriber entry fields, relative to the entry.
pub(crate) const ENT_HEAD: usize = 0x00;
pub(crate) const ENT_RECEIVED: usize = 0x08;
pub(crate) const ENT_DROPPED: usize = 0x10;
pub(crate) const ENT_HEARTBEAT: usize = 0x18;
pub(crate) const ENT_STATE: usize = 0x20;
pub(crate) const ENT_PID: usize = 0x24;
pub(crate) const ENT_GEN: usize = 0x28;
pub(crate) const ENT_MAX_LAG: usize = 0x30;
pub(crate) const ENT_START_TIME: usize = 0x38;
pub(crate) const ENT_JOIN: usize = 0x40;
pub(crate) const ENT_KEY: usize = 0x48;
pub(crate) const ENT_WAKE: usize = 0x50;
pub(crate) const ENT_FLAGS: usize = 0x54;
/// `entry_flags` bit 0: the owner cannot issue membarrier.
pub(crate) const ENT_FLAG_STRONG: u32 = 1 << 0;

// Values.
pub(crate) const READY_INIT: u32 = 0;
pub(crate) const READY_READY: u32 = 1;
pub(crate) const PROD_ACTIVE: u32 = 1;
pub(crate) const PROD_CLOSED: u32 = 2;
pub(crate) const ENT_FREE: u32 = 0;
pub(crate) const ENT_JOINING: u32 = 1;
pub(crate) const ENT_ACTIVE: u32 = 2;
pub(crate) const FENCES_STRONG: u32 = 1;

/// What a producer does when the ring is full. Chosen at creation and
/// stored in the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// The producer waits (bounded) until every unlimited subscriber made
    /// room.
    #[default]
    Block,
    /// The message being published is refused ([`Error::Full`]) and counted.
    DropNewest,
    /// The producer overwrites the oldest slot and never waits.
    DropOldest,
}

impl Policy {
    pub(crate) fn to_raw(self) -> u32 {
        match self {
            Policy::Block => 0,
            Policy::DropNewest => 1,
            Policy::DropOldest => 2,
        }
    }

    pub(crate) fn from_raw(v: u32) -> Option<Self> {
        match v {
            0 => Some(Policy::Block),
            1 => Some(Policy::DropNewest),
            2 => Some(Policy::DropOldest),
            _ => None,
        }
    }

    /// The policy's ABI.md spelling: `block`, `drop_newest`, `drop_oldest`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Block => "block",
            Policy::DropNewest => "drop_newest",
            Policy::DropOldest => "drop_oldest",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "block" => Ok(Policy::Block),
            "drop_newest" => Ok(Policy::DropNewest),
            "drop_oldest" => Ok(Policy::DropOldest),
            _ => Err(format!(
                "unknown policy {s:?} (block, drop_newest or drop_oldest)"
            )),
        }
    }
}

/// How a creator lays slots out (ABI.md §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SlotLayout {
    /// [`SlotLayout::Line`] when a stamp and the message fit in two cache
    /// lines, [`SlotLayout::Packed`] otherwise (the Go runtime's rule).
    #[default]
    Auto,
    /// Slots at the message's alignment (at least 8): least memory.
    Packed,
    /// Every slot starts on a cache line and spans whole lines.
    Line,
}

impl SlotLayout {
    /// Whether a message of this size and alignment gets line slots.
    #[must_use]
    pub fn is_line(self, msg_size: u64, msg_align: u64) -> bool {
        match self {
            SlotLayout::Packed => false,
            SlotLayout::Line => true,
            SlotLayout::Auto => msg_align.max(8) + msg_size <= 2 * CACHE_LINE,
        }
    }
}

/// A message type's wire identity, as a ring header records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The 64-bit layout fingerprint.
    pub fingerprint: u64,
    /// The message's `@id`.
    pub type_id: u32,
    /// Size in bytes.
    pub size: u64,
    /// Alignment in bytes.
    pub align: u64,
}

impl Identity {
    /// The identity of a generated message type.
    #[must_use]
    pub fn of<T: crate::Message>() -> Self {
        Identity {
            fingerprint: T::FINGERPRINT,
            type_id: T::TYPE_ID,
            size: T::SIZE as u64,
            align: T::ALIGN as u64,
        }
    }

    /// Compares a ring's identity (`self`) with the caller's (`want`) and
    /// names the first field that differs, with both values.
    pub(crate) fn check(&self, op: &'static str, ring: &str, want: &Identity) -> Result<()> {
        let mismatch = |field, got, want| Error::Mismatch {
            op,
            ring: ring.to_owned(),
            field,
            got,
            want,
        };
        if self.fingerprint != want.fingerprint {
            return Err(mismatch("fingerprint", self.fingerprint, want.fingerprint));
        }
        if self.type_id != want.type_id {
            return Err(mismatch(
                "type id",
                u64::from(self.type_id),
                u64::from(want.type_id),
            ));
        }
        if self.size != want.size {
            return Err(mismatch("message size", self.size, want.size));
        }
        if self.align != want.align {
            return Err(mismatch("message alignment", self.align, want.align));
        }
        Ok(())
    }
}

/// Every offset and size of a segment, derived from the primary fields
/// (ABI.md §3). Readers recompute it and compare it with the stored copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub msg_size: u64,
    pub msg_align: u64,
    pub line_slots: bool,
    pub slot_msg_off: u64,
    pub slot_size: u64,
    pub capacity: u64,
    pub mask: u64,
    pub max_subs: u64,
    pub sleepers_off: u64,
    pub evict_off: u64,
    pub table_off: u64,
    pub slots_off: u64,
    pub seg_size: u64,
}

fn round_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

impl Geometry {
    /// Derives a segment's layout; the one place offsets are computed. The
    /// error says which primary field is out of range (without the
    /// `Corrupt`/`InvalidOptions` wrapper, which the caller chooses).
    pub fn compute(
        msg_size: u64,
        msg_align: u64,
        capacity: u64,
        max_subs: u64,
        line_slots: bool,
    ) -> std::result::Result<Self, String> {
        if msg_size == 0 || msg_size > MAX_MESSAGE_SIZE {
            return Err(format!(
                "message size {msg_size} outside [1, {MAX_MESSAGE_SIZE}]"
            ));
        }
        if !msg_align.is_power_of_two() || msg_align > MAX_ALIGN {
            return Err(format!(
                "message alignment {msg_align} is not a power of two <= {MAX_ALIGN}"
            ));
        }
        if !msg_size.is_multiple_of(msg_align) {
            return Err(format!(
                "message size {msg_size} is not a multiple of its alignment {msg_align}"
            ));
        }
        if !capacity.is_power_of_two() || !(2..=MAX_CAPACITY).contains(&capacity) {
            return Err(format!(
                "capacity {capacity} is not a power of two in [2, {MAX_CAPACITY}]"
            ));
        }
        if max_subs == 0 || max_subs > MAX_SUBSCRIBERS {
            return Err(format!(
                "subscriber table size {max_subs} outside [1, {MAX_SUBSCRIBERS}]"
            ));
        }
        let slot_msg_off = msg_align.max(8);
        let slot_align = if line_slots {
            msg_align.max(CACHE_LINE)
        } else {
            slot_msg_off
        };
        let slot_size = round_up(slot_msg_off + msg_size, slot_align);
        let sleepers_off = HEADER_SIZE;
        let evict_off = sleepers_off + round_up(4 * max_subs, LINE_SIZE);
        let table_off = evict_off + round_up(8 * max_subs, LINE_SIZE);
        let slots_off = round_up(table_off + ENTRY_SIZE * max_subs, msg_align.max(LINE_SIZE));
        // Bounded above: slot_size <= 2^20 + 2^13, capacity <= 2^30, so the
        // product fits a u64; the sum is checked against the segment limit.
        let slots = slot_size * capacity;
        if slots > MAX_SEGMENT_SIZE || slots_off + slots > MAX_SEGMENT_SIZE {
            return Err(format!(
                "segment of {capacity} slots of {slot_size} bytes exceeds {MAX_SEGMENT_SIZE} bytes"
            ));
        }
        Ok(Geometry {
            msg_size,
            msg_align,
            line_slots,
            slot_msg_off,
            slot_size,
            capacity,
            mask: capacity - 1,
            max_subs,
            sleepers_off,
            evict_off,
            table_off,
            slots_off,
            seg_size: slots_off + slots,
        })
    }

    /// Offset of subscriber entry `i`.
    pub fn entry_off(&self, i: usize) -> u64 {
        self.table_off + i as u64 * ENTRY_SIZE
    }
}

/// The decoded, validated identity line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub identity: Identity,
    pub policy: Policy,
    pub batch: u32,
    pub asym_fences: bool,
    pub liveness_ns: u64,
    pub created_ns: u64,
    pub geo: Geometry,
}

/// The little-endian u32 at `off` of `b`.
pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// The little-endian u64 at `off` of `b`.
pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Narrows a value the geometry bounds to a u32 field.
fn u32_of(v: u64) -> u32 {
    u32::try_from(v).expect("bounded by the geometry")
}

impl Header {
    /// The identity line's flags word.
    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if self.geo.line_slots {
            f |= FLAG_LINE_SLOTS;
        }
        if self.asym_fences {
            f |= FLAG_ASYM_FENCES;
        }
        f
    }

    /// Writes the identity line, all of it but `ready`, into `b` (at least
    /// 128 bytes).
    pub fn encode(&self, b: &mut [u8]) {
        let g = &self.geo;
        put_u64(b, OFF_MAGIC, MAGIC);
        put_u32(b, OFF_VERSION, ABI_VERSION);
        put_u64(b, OFF_FINGERPRINT, self.identity.fingerprint);
        put_u32(b, OFF_TYPE_ID, self.identity.type_id);
        put_u32(b, OFF_MSG_SIZE, u32_of(g.msg_size));
        put_u32(b, OFF_MSG_ALIGN, u32_of(g.msg_align));
        put_u32(b, OFF_SLOT_SIZE, u32_of(g.slot_size));
        put_u32(b, OFF_SLOT_MSG_OFF, u32_of(g.slot_msg_off));
        put_u32(b, OFF_POLICY, self.policy.to_raw());
        put_u64(b, OFF_CAPACITY, g.capacity);
        put_u32(b, OFF_MAX_SUBS, u32_of(g.max_subs));
        put_u32(b, OFF_HEADER_SIZE, u32_of(HEADER_SIZE));
        put_u64(b, OFF_SLEEPERS_OFF, g.sleepers_off);
        put_u64(b, OFF_TABLE_OFF, g.table_off);
        put_u64(b, OFF_SLOTS_OFF, g.slots_off);
        put_u64(b, OFF_SEG_SIZE, g.seg_size);
        put_u64(b, OFF_LIVENESS_NS, self.liveness_ns);
        put_u64(b, OFF_CREATED_NS, self.created_ns);
        put_u32(b, OFF_BATCH, self.batch);
        put_u32(b, OFF_FLAGS, self.flags());
        put_u64(b, OFF_EVICT_OFF, g.evict_off);
    }

    /// Validates a private copy of the header (ABI.md §6) and decodes it.
    /// Every stored offset is recomputed from the primary fields and
    /// compared; nothing is trusted. Never panics, whatever the bytes.
    pub fn decode(ring: &str, b: &[u8]) -> Result<Self> {
        let corrupt = |d: String| Error::corrupt(ring, d);
        if b.len() < HEADER_SIZE as usize {
            return Err(corrupt(format!(
                "header is {} bytes, want {HEADER_SIZE}",
                b.len()
            )));
        }
        let magic = le_u64(b, OFF_MAGIC);
        if magic != MAGIC {
            return Err(corrupt(format!("magic {magic:#018x}, want {MAGIC:#018x}")));
        }
        let version = le_u32(b, OFF_VERSION);
        if version != ABI_VERSION {
            return Err(Error::Version {
                ring: ring.to_owned(),
                got: version,
                want: ABI_VERSION,
            });
        }
        match le_u32(b, OFF_READY) {
            READY_READY => {}
            READY_INIT => {
                return Err(Error::NotReady {
                    ring: ring.to_owned(),
                    detail: "the creator has not stored ready yet".into(),
                })
            }
            r => return Err(corrupt(format!("ready word {r}, want {READY_READY}"))),
        }
        let flags = le_u32(b, OFF_FLAGS);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(corrupt(format!(
                "flags {flags:#x}, want only bits of {KNOWN_FLAGS:#x}"
            )));
        }
        let raw_policy = le_u32(b, OFF_POLICY);
        let policy = Policy::from_raw(raw_policy)
            .ok_or_else(|| corrupt(format!("policy {raw_policy}, want 0, 1 or 2")))?;
        let geo = Geometry::compute(
            u64::from(le_u32(b, OFF_MSG_SIZE)),
            u64::from(le_u32(b, OFF_MSG_ALIGN)),
            le_u64(b, OFF_CAPACITY),
            u64::from(le_u32(b, OFF_MAX_SUBS)),
            flags & FLAG_LINE_SLOTS != 0,
        )
        .map_err(corrupt)?;
        let batch = le_u32(b, OFF_BATCH);
        if batch == 0 || u64::from(batch) > geo.capacity / 2 {
            return Err(corrupt(format!(
                "batch {batch} outside [1, {}]",
                geo.capacity / 2
            )));
        }
        let liveness_ns = le_u64(b, OFF_LIVENESS_NS);
        if liveness_ns == 0 {
            return Err(corrupt("liveness timeout is 0".into()));
        }
        let derived: [(&str, u64, u64); 8] = [
            (
                "slot size",
                u64::from(le_u32(b, OFF_SLOT_SIZE)),
                geo.slot_size,
            ),
            (
                "slot message offset",
                u64::from(le_u32(b, OFF_SLOT_MSG_OFF)),
                geo.slot_msg_off,
            ),
            (
                "header size",
                u64::from(le_u32(b, OFF_HEADER_SIZE)),
                HEADER_SIZE,
            ),
            (
                "sleepers offset",
                le_u64(b, OFF_SLEEPERS_OFF),
                geo.sleepers_off,
            ),
            (
                "eviction table offset",
                le_u64(b, OFF_EVICT_OFF),
                geo.evict_off,
            ),
            ("table offset", le_u64(b, OFF_TABLE_OFF), geo.table_off),
            ("slots offset", le_u64(b, OFF_SLOTS_OFF), geo.slots_off),
            ("segment size", le_u64(b, OFF_SEG_SIZE), geo.seg_size),
        ];
        for (field, got, want) in derived {
            if got != want {
                return Err(corrupt(format!("{field} {got}, want {want}")));
            }
        }
        Ok(Header {
            identity: Identity {
                fingerprint: le_u64(b, OFF_FINGERPRINT),
                type_id: le_u32(b, OFF_TYPE_ID),
                size: geo.msg_size,
                align: geo.msg_align,
            },
            policy,
            batch,
            asym_fences: flags & FLAG_ASYM_FENCES != 0,
            liveness_ns,
            created_ns: le_u64(b, OFF_CREATED_NS),
            geo,
        })
    }
}

/// Checks that `name` can name a ring segment (ABI.md §2): 1 to 255 bytes
/// of `[A-Za-z0-9._-]`, not `.`, without `..` (and so without `/`).
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |detail: String| Error::InvalidName {
        name: name.to_owned(),
        detail,
    };
    if name.is_empty() {
        return Err(bad("empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(format!(
            "{} bytes, longer than {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if name == "." || name.contains("..") {
        return Err(bad("contains '..' or is '.'".into()));
    }
    if let Some((i, c)) = name
        .bytes()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-'))
    {
        return Err(bad(format!(
            "byte {c:#04x} at {i}; allowed are letters, digits, '.', '_', '-'"
        )));
    }
    Ok(())
}

/// The key a named (durable) subscriber stores in its entry (ABI.md §7):
/// FNV-1a 64 of the UTF-8 name, 1 if that is 0; 0 for an anonymous one.
#[must_use]
pub fn subscriber_key(name: &str) -> u64 {
    if name.is_empty() {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// `x - y`, or 0 when `y > x`.
pub(crate) fn sat(x: u64, y: u64) -> u64 {
    x.saturating_sub(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(line: bool, asym: bool) -> Header {
        Header {
            identity: Identity {
                fingerprint: 0x7ac4_9e0f_1d2b_3c4d,
                type_id: 1,
                size: 64,
                align: 8,
            },
            policy: Policy::Block,
            batch: 2,
            asym_fences: asym,
            liveness_ns: 2_000_000_000,
            created_ns: 123,
            geo: Geometry::compute(64, 8, 8, 2, line).unwrap(),
        }
    }

    fn encoded(h: &Header) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE as usize];
        h.encode(&mut b);
        b[OFF_READY..OFF_READY + 4].copy_from_slice(&READY_READY.to_le_bytes());
        b
    }

    #[test]
    fn geometry_matches_the_abi_formulas() {
        // The Tick vector's ring: 72-byte packed slots after 2 entries.
        let g = Geometry::compute(64, 8, 8, 2, false).unwrap();
        assert_eq!((g.slot_msg_off, g.slot_size), (8, 72));
        assert_eq!((g.sleepers_off, g.evict_off, g.table_off), (512, 640, 768));
        assert_eq!((g.slots_off, g.seg_size), (1024, 1024 + 8 * 72));
        // Line slots round a 16-byte message up to one line, a 64-byte
        // one up to two.
        assert_eq!(Geometry::compute(16, 8, 4, 1, true).unwrap().slot_size, 64);
        assert_eq!(Geometry::compute(64, 8, 4, 1, true).unwrap().slot_size, 128);
        // @align(64): the message at +64, slots aligned to 64 in both layouts.
        let b = Geometry::compute(64, 64, 4, 1, false).unwrap();
        assert_eq!((b.slot_msg_off, b.slot_size), (64, 128));
        // Auto: line slots up to two whole lines, packed beyond.
        assert!(SlotLayout::Auto.is_line(56, 8));
        assert!(SlotLayout::Auto.is_line(64, 8));
        assert!(SlotLayout::Auto.is_line(120, 8));
        assert!(!SlotLayout::Auto.is_line(128, 8));
        assert!(SlotLayout::Auto.is_line(64, 64));
        assert!(!SlotLayout::Auto.is_line(128, 64));
        assert!(SlotLayout::Auto.is_line(120, 4));
        assert!(!SlotLayout::Auto.is_line(124, 4));
    }

    #[test]
    fn geometry_refuses_out_of_range() {
        for (size, align, cap, subs) in [
            (0, 8, 8, 1),
            (MAX_MESSAGE_SIZE + 8, 8, 8, 1),
            (64, 3, 8, 1),
            (12, 8, 8, 1),
            (64, 8, 1, 1),
            (64, 8, 6, 1),
            (64, 8, MAX_CAPACITY * 2, 1),
            (64, 8, 8, 0),
            (64, 8, 8, MAX_SUBSCRIBERS + 1),
            (MAX_MESSAGE_SIZE, 8, MAX_CAPACITY, 1),
        ] {
            assert!(
                Geometry::compute(size, align, cap, subs, false).is_err(),
                "{size} {align} {cap} {subs}"
            );
        }
    }

    #[test]
    fn header_round_trips() {
        for (line, asym) in [(false, false), (true, false), (false, true), (true, true)] {
            let h = header(line, asym);
            assert_eq!(Header::decode("r", &encoded(&h)).unwrap(), h);
        }
    }

    #[test]
    fn decode_names_the_bad_field() {
        let good = encoded(&header(false, false));
        let cases: [(usize, &[u8], &str); 8] = [
            (OFF_MAGIC, b"NOTARING", "magic"),
            (OFF_READY, &7u32.to_le_bytes(), "ready word 7"),
            (OFF_FLAGS, &4u32.to_le_bytes(), "flags 0x4"),
            (OFF_POLICY, &3u32.to_le_bytes(), "policy 3"),
            (OFF_BATCH, &5u32.to_le_bytes(), "batch 5 outside [1, 4]"),
            (
                OFF_LIVENESS_NS,
                &0u64.to_le_bytes(),
                "liveness timeout is 0",
            ),
            (
                OFF_SLOTS_OFF,
                &4096u64.to_le_bytes(),
                "slots offset 4096, want 1024",
            ),
            (OFF_CAPACITY, &6u64.to_le_bytes(), "capacity 6"),
        ];
        for (off, bytes, want) in cases {
            let mut b = good.clone();
            b[off..off + bytes.len()].copy_from_slice(bytes);
            let err = Header::decode("r", &b).unwrap_err();
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
        let mut b = good.clone();
        b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&1u32.to_le_bytes());
        let err = Header::decode("r", &b).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Version {
                    got: 1,
                    want: 2,
                    ..
                }
            ),
            "{err}"
        );
        let mut b = good;
        b[OFF_READY..OFF_READY + 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            Header::decode("r", &b),
            Err(Error::NotReady { .. })
        ));
    }

    #[test]
    fn identity_mismatch_names_both() {
        let ring = Identity {
            fingerprint: 1,
            type_id: 2,
            size: 64,
            align: 8,
        };
        let mut want = ring;
        assert!(ring.check("attach", "r", &want).is_ok());
        want.align = 16;
        let e = ring.check("attach", "r", &want).unwrap_err();
        assert_eq!(
            e.to_string(),
            "attach \"r\": message type mismatch: message alignment 0x8, want 0x10"
        );
    }

    #[test]
    fn names() {
        for ok in ["a", "tachyon-1.x_Y", &"n".repeat(255)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", ".", "a..b", "a/b", "sp ace", "é", &"n".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_fnv1a() {
        assert_eq!(subscriber_key(""), 0);
        // FNV-1a 64 of "a" (the published test vector).
        assert_eq!(subscriber_key("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
