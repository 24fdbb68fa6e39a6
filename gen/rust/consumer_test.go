package genrust_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	genrust "github.com/tachyon-io/tachyon/gen/rust"
	"github.com/tachyon-io/tachyon/schema"
)

// consumerSchemas are the schemas of the consumer crate: the examples, the
// corner cases of testdata and those every backend has.
var consumerSchemas = []string{"../../examples/Message.tsch", "../../examples/book.tsch", "testdata/hostile.tsch", "testdata/long.tsch",
	"../../schema/schematest/corners.tsch"}

// TestCargoConsumer is a user's crate, outside the checkout, made the way
// the README says: tachyon-ring as a path dependency, `tachyon-gen generate
// --rust-out src`, `mod message_tsch;`. In the 2024 edition it must pass
// `cargo clippy --all-targets -- -D warnings` (the generated modules, the
// hostile names and deprecations included), `cargo doc` with rustdoc
// warnings denied (a schema doc comment must not become a doctest or a
// broken link), and `cargo test`: tests/api.rs exercises the generated API
// (enums that keep unknown values, flag operators, text helpers, Bool,
// little-endian bytes, zero-copy views, escaped names), and the identities
// binary must print every message's tachyon_ring::Message constants as the
// schema model has them. A stale layout assertion and a use of a deprecated
// field must fail the build.
func TestCargoConsumer(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "tachyon-gen")
	out, err := exec.Command("go", "build", "-o", gen, "../../cmd/tachyon-gen").CombinedOutput()
	require.NoError(t, err, "%s", out)

	c := newCrate(t, "tachyon-consumer", "2024", "", "Cargo.lock")
	out, err = exec.Command(gen, append([]string{"generate", "--rust-out", filepath.Join(c.dir, "src")}, consumerSchemas...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	s, err := schema.Load(consumerSchemas...)
	require.NoError(t, err)
	var lib, idents, want strings.Builder
	lib.WriteString("//! A user's crate: the generated modules, declared as the README says.\n\n")
	idents.WriteString("//! Prints every message's identity through the Message trait.\n\n")
	idents.WriteString("fn print<M: tachyon_ring::Message>() {\n")
	idents.WriteString("    let (name, id, fp) = (M::NAME, M::TYPE_ID, M::FINGERPRINT);\n")
	idents.WriteString("    let (size, align) = (M::SIZE, M::ALIGN);\n")
	idents.WriteString("    println!(\"{name} id={id} fingerprint={fp:#018x} size={size} align={align}\");\n}\n\nfn main() {\n")
	for _, f := range s.All {
		fmt.Fprintf(&lib, "pub mod %s;\n", genrust.ModuleName(f))
		for _, m := range f.Messages() {
			fmt.Fprintf(&idents, "    print::<tachyon_consumer::%s::%s>();\n", genrust.ModuleName(f), genrust.Ident(m.Name))
			fmt.Fprintf(&want, "%s.%s id=%d fingerprint=0x%016x size=%d align=%d\n", f.Package, m.Name, m.ID, m.Fingerprint, m.Size, m.Align)
		}
	}
	idents.WriteString("}\n")
	c.write("src/lib.rs", lib.String())
	c.write("src/bin/identities.rs", idents.String())
	c.write("tests/api.rs", consumerAPITest)
	c.write("tests/ring.rs", consumerRingTest)

	rustfmt := lookTool(t, "rustfmt")
	for _, edition := range []string{"2021", "2024"} {
		paths, err := filepath.Glob(filepath.Join(c.dir, "src", "*_tsch.rs"))
		require.NoError(t, err)
		out, err := exec.Command(rustfmt, append([]string{"--check", "--edition", edition}, paths...)...).CombinedOutput()
		require.NoError(t, err, "rustfmt --edition %s:\n%s", edition, out)
	}
	c.mustCargo(nil, "clippy", "--all-targets", "--quiet", "--", "-D", "warnings")
	c.mustCargo([]string{"RUSTDOCFLAGS=-D warnings"}, "doc", "--no-deps", "--quiet")
	c.mustCargo(nil, "test", "--quiet")
	got := c.mustCargo(nil, "run", "--quiet", "--bin", "identities")
	require.Equal(t, want.String(), got, "Message constants differ from the schema model")

	t.Run("deprecated-field-warns", func(t *testing.T) {
		c.write("src/bin/deprecated.rs", "#![deny(deprecated)]\n\nfn main() {\n    let m = tachyon_consumer::book_tsch::Book::default();\n    println!(\"{}\", m.legacy);\n}\n")
		defer os.Remove(filepath.Join(c.dir, "src/bin/deprecated.rs"))
		out, err := c.cargo(nil, "check", "--quiet", "--bin", "deprecated")
		require.Error(t, err, "reading a @deprecated field must warn:\n%s", out)
		require.Contains(t, out, "use of deprecated field `tachyon_consumer::book_tsch::Book::legacy`")
	})
	t.Run("stale-layout-fails-to-compile", func(t *testing.T) {
		path := filepath.Join(c.dir, "src", "message_tsch.rs")
		good := c.read("src/message_tsch.rs")
		assertion := "assert!(offset_of!(Message, payload) == 16);"
		require.Contains(t, good, assertion)
		c.write("src/message_tsch.rs", strings.Replace(good, assertion, "assert!(offset_of!(Message, payload) == 24);", 1))
		defer os.WriteFile(path, []byte(good), 0o644)
		out, err := c.cargo(nil, "check", "--quiet", "--lib")
		require.Error(t, err, "a stale offset must not compile")
		require.Contains(t, out, "offset_of!(Message, payload) == 24")
	})
}

// consumerAPITest is tests/api.rs of the consumer crate.
const consumerAPITest = `//! The generated API as a user meets it.

use tachyon_consumer::book_tsch::{Book, Caps, Status, Tape, Trade};
use tachyon_consumer::common_tsch::{Level, Side};
use tachyon_consumer::hostile_tsch as h;
use tachyon_consumer::message_tsch::Message;
use tachyon_ring::zerocopy::{FromBytes, IntoBytes};
use tachyon_ring::Bool;

#[test]
fn seed_message_bytes_are_the_little_endian_layout() {
    // No padding, so every field is public and a struct literal works.
    let mut m = Message { seq: 0x0102_0304_0506_0708, timestamp_ns: 7, ..Default::default() };
    m.payload[47] = 0xaa;
    let bytes = m.as_bytes();
    assert_eq!(bytes.len(), Message::SIZE);
    assert_eq!(&bytes[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&bytes[8..16], &7u64.to_le_bytes());
    assert_eq!(bytes[63], 0xaa);
    assert_eq!(Message::read_from_bytes(bytes).unwrap(), m);
    assert!(Message::read_from_bytes(&bytes[1..]).is_err(), "a short buffer is an error");
    let view = Message::ref_from_bytes(bytes).unwrap();
    assert_eq!(view.seq, m.seq);
    let mut copy = [0u8; 64];
    m.write_to(&mut copy[..]).unwrap();
    assert_eq!(&copy[..], bytes);
}

#[test]
fn padding_is_zero_and_views_check_alignment() {
    let mut b = Book::default();
    b.seq = 1;
    b.status = Status::OPEN;
    assert!(b.as_bytes()[182..184].iter().all(|&x| x == 0), "padding is zeroed");
    let mut buf = vec![0u8; Book::SIZE + Book::ALIGN];
    let start = buf.as_ptr().align_offset(Book::ALIGN);
    buf[start..start + Book::SIZE].copy_from_slice(b.as_bytes());
    assert_eq!(Book::ref_from_bytes(&buf[start..start + Book::SIZE]).unwrap(), &b);
    assert!(Book::ref_from_bytes(&buf[start + 1..start + 1 + Book::SIZE]).is_err(), "misaligned");
    let view = Book::mut_from_bytes(&mut buf[start..start + Book::SIZE]).unwrap();
    view.seq = 2;
    assert_eq!(buf[start], 2, "writes through a view change the bytes");
}

#[test]
fn enums_keep_unknown_values() {
    let side = Side::read_from_bytes(&[7]).unwrap();
    assert!(!side.is_known());
    assert_eq!(side.name(), None);
    assert_eq!(side.to_string(), "Side(7)");
    assert_eq!(format!("{side:?}"), "Side(7)");
    assert_eq!(Side::ASK.to_string(), "ASK");
    assert_eq!(Side::try_from(2u8), Ok(Side::ASK));
    let err = Side::try_from(7u8).unwrap_err();
    assert_eq!(err.to_string(), "7 is not a value of enum market.Side");
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.to_string().contains("market.Side"));
    assert_eq!(u8::from(Side::BID), 1);
    assert_eq!(Status::try_from(-1i16), Ok(Status::HALTED));
    assert_eq!(Status::HALTED.0, -1);
    assert!(Status::CLOSED < Status::OPEN);
}

#[test]
fn flags_combine() {
    let mut c = Caps::SNAPSHOT | Caps::LAST;
    assert!(c.contains(Caps::SNAPSHOT) && !c.contains(Caps::IMPLIED));
    assert!(c.intersects(Caps::LAST | Caps::IMPLIED));
    c -= Caps::LAST;
    assert_eq!(c, Caps::SNAPSHOT);
    c |= Caps::IMPLIED;
    assert_eq!(c.bits(), 0x8000_0001);
    c ^= Caps::SNAPSHOT;
    assert_eq!(c, Caps::IMPLIED);
    c &= Caps::LAST;
    assert!(c.is_empty());
    c.set(Caps::LAST, true);
    c.toggle(Caps::SNAPSHOT);
    assert_eq!(c, Caps::SNAPSHOT | Caps::LAST);
    c.remove(Caps::SNAPSHOT);
    c.insert(Caps::IMPLIED);
    assert_eq!(c, Caps::LAST | Caps::IMPLIED);
    assert_eq!(!Caps::SNAPSHOT, Caps::LAST | Caps::IMPLIED);
    assert_eq!(Caps::all(), Caps::SNAPSHOT | Caps::LAST | Caps::IMPLIED);
    assert!(Caps::all().is_all());
    assert_eq!(Caps::from_bits(0x4), None);
    assert_eq!(Caps::from_bits(0x3), Some(Caps::SNAPSHOT | Caps::LAST));
    assert_eq!(Caps::from_bits_truncate(0x5), Caps::SNAPSHOT);
    let odd = Caps::from_bits_retain(0x7);
    assert_eq!(odd.bits(), 7, "undeclared bits are kept");
    assert_eq!(format!("{odd:?}"), "Caps(SNAPSHOT | LAST | 0x4)");
    assert_eq!(Caps::empty().to_string(), "0x0");
    assert_eq!(Caps::default(), Caps::empty());
    assert_eq!((Caps::all() - Caps::LAST).to_string(), "SNAPSHOT | IMPLIED");
}

#[test]
fn text_is_the_bytes_up_to_the_first_nul() {
    let mut b = Book::default();
    b.set_venue("XNAS");
    assert_eq!(b.venue_bytes(), b"XNAS");
    assert_eq!(b.venue_str(), Ok("XNAS"));
    assert_eq!(&b.venue, b"XNAS\0\0\0\0");
    b.set_venue("ABCDEFGHIJ");
    assert_eq!(&b.venue, b"ABCDEFGH", "truncated to 8 bytes");
    assert_eq!(b.venue_bytes(), b"ABCDEFGH", "all 8 bytes when there is no NUL");
    b.set_venue(b"A\0B");
    assert_eq!(b.venue_bytes(), b"A");
    assert_eq!(&b.venue, b"A\0B\0\0\0\0\0");
    b.set_venue([0xffu8]);
    assert!(b.venue_str().is_err());
    assert!(format!("{b:?}").contains("venue: \"\\xff\""), "{b:?}");
}

#[test]
fn bool_is_any_byte() {
    let mut bytes = [0u8; Trade::SIZE];
    bytes[13] = 2;
    let t = Trade::read_from_bytes(&bytes[..]).unwrap();
    assert!(t.late.get());
    assert_eq!(t.late, Bool::TRUE);
    assert_eq!(t.as_bytes()[13], 2, "the byte is kept as it was");
    let mut t = Trade::default();
    t.late = true.into();
    t.aggressor = Side::BID;
    assert_eq!(t.as_bytes()[12..14], [1, 1]);
}

#[test]
fn nested_structs_and_arrays() {
    let mut tape = Tape::default();
    let mut level = Level::default(); // padding is private: no struct literal
    level.price = -5;
    level.qty = 3;
    level.side = Side::ASK;
    tape.book.bids[4] = level;
    tape.heat[3][7] = 1.5;
    tape.type_ = 9;
    let back = Tape::read_from_bytes(tape.as_bytes()).unwrap();
    assert_eq!(back.book.bids[4].price, -5);
    assert_eq!(back.heat[3][7], 1.5);
    assert_eq!(back.type_, 9);
    assert_eq!(core::mem::size_of::<Tape>(), Tape::SIZE);
}

#[test]
fn hostile_names_and_extremes() {
    let mut u = h::Uses::default();
    u.type_ = 1;
    u.self_ = 2;
    u.super_ = 3;
    u.crate_ = 4;
    u.gen_ = 5;
    u.union = 6;
    u.me = h::Self_::default();
    u.opt = h::Option::SOME;
    u.ok = h::Ok::YES;
    u.flag = h::Bool { b: Bool::TRUE };
    u.set_as("abcd");
    assert_eq!(u.as_bytes_(), b"abcd");
    assert_eq!(u.as_bytes().len(), h::Uses::SIZE, "IntoBytes::as_bytes is not shadowed");
    u.set_read_from("xy");
    assert_eq!(u.read_from_bytes_(), b"xy");
    u.set_text("q");
    u.set_text_bytes("rs");
    u.set_text_str("t");
    u.set_text = 9;
    assert_eq!((u.text_bytes(), u.text_bytes_bytes(), u.text_str_bytes()), (&b"q"[..], &b"rs"[..], &b"t"[..]));
    assert_eq!(u.text_str(), Ok("q"));
    assert_eq!(u.unix, [[0; 3]; 2], "a 2-D char array is plain bytes");
    assert_eq!(h::Uses::read_from_bytes(u.as_bytes()).unwrap(), u);

    assert_eq!((h::NAME, h::SIZE, h::LOWEST, h::HIGHEST), (1, u64::MAX, i64::MIN, i64::MAX));
    assert_eq!((h::Kind::MIN.0, h::Kind::MAX.0), (i64::MIN, i64::MAX));
    assert_eq!(h::Kind::try_from(i64::MIN), Ok(h::Kind::MIN));
    assert_eq!(h::Kind::NAME.name(), Some("NAME"));
    assert_eq!((h::Tiny::LOW.0, h::Tiny::HIGH.0), (-128, 127));
    assert_eq!(h::Wide::TOP.0, u64::MAX);
    assert_eq!(h::Bits::HIGH.bits(), 1 << 63);
    assert_eq!(h::Bits::ALL.bits(), 2, "a member named ALL is not all()");
    assert_eq!(!h::Small::B, h::Small::A);
    assert_eq!(h::Single::TYPE_ID, u32::MAX);
    assert_eq!((h::Bytes::SIZE, h::Bytes::ALIGN), (6, 1));
    assert_eq!((h::Page::ALIGN, core::mem::align_of::<h::Page>()), (4096, 4096));
    assert_eq!(h::Huge::SIZE, 1 << 20);
    assert_eq!(core::mem::size_of::<h::Nested>(), h::Nested::SIZE);
}
`
