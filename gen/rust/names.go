package genrust

import "github.com/tachyon-io/tachyon/schema"

// keywords are Rust's strict and reserved keywords in every edition (2015 to
// 2024): the identifiers a raw identifier exists for. Weak keywords (union,
// macro_rules, raw, safe) are ordinary identifiers where a schema name can
// appear and are kept.
var keywords = setOf(
	// Strict, 2015.
	"as", "break", "const", "continue", "crate", "else", "enum", "extern",
	"false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod",
	"move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct",
	"super", "trait", "true", "type", "unsafe", "use", "where", "while",
	// Strict since 2018.
	"async", "await", "dyn",
	// Reserved.
	"abstract", "become", "box", "do", "final", "macro", "override", "priv",
	"typeof", "unsized", "virtual", "yield", "try", "gen",
)

// Ident is the Rust spelling of a schema name (declaration, field, member or
// constant): the name itself or, when it is a Rust keyword, the name with a
// trailing underscore (type -> type_, Self -> Self_). Raw identifiers are not
// used because self, super, crate and Self cannot be written raw; a suffix
// works for every keyword, and IDL names never end in an underscore, so an
// escaped name cannot collide with another schema name.
func Ident(name string) string {
	if keywords[name] {
		return name + "_"
	}
	return name
}

// traitMethods are the methods a generated struct has through the traits it
// derives or implements (zerocopy's FromBytes, FromZeros, TryFromBytes,
// IntoBytes, KnownLayout; Clone, PartialEq, Hash, Debug, Default; and
// tachyon_ring::Message). An inherent method of the same name would shadow
// the trait's, so a text helper never takes one of these names.
var traitMethods = setOf(
	"as_bytes", "as_mut_bytes", "write_to", "write_to_prefix", "write_to_suffix",
	"read_from_bytes", "read_from_prefix", "read_from_suffix", "read_from_io", "write_to_io",
	"ref_from_bytes", "ref_from_prefix", "ref_from_suffix",
	"mut_from_bytes", "mut_from_prefix", "mut_from_suffix",
	"ref_from_bytes_with_elems", "ref_from_prefix_with_elems", "ref_from_suffix_with_elems",
	"mut_from_bytes_with_elems", "mut_from_prefix_with_elems", "mut_from_suffix_with_elems",
	"try_ref_from_bytes", "try_ref_from_prefix", "try_ref_from_suffix",
	"try_mut_from_bytes", "try_mut_from_prefix", "try_mut_from_suffix",
	"try_read_from_bytes", "try_read_from_prefix", "try_read_from_suffix",
	"try_ref_from_bytes_with_elems", "try_ref_from_prefix_with_elems", "try_ref_from_suffix_with_elems",
	"try_mut_from_bytes_with_elems", "try_mut_from_prefix_with_elems", "try_mut_from_suffix_with_elems",
	"is_bit_valid", "zero", "new_zeroed", "new_box_zeroed", "new_box_zeroed_with_elems",
	"new_vec_zeroed", "extend_vec_zeroed", "insert_vec_zeroed", "new_zeroed_with_elems",
	"size_for_metadata", "only_derive_is_allowed_to_implement_this_trait",
	"clone", "clone_from", "eq", "ne", "hash", "hash_slice", "fmt", "default",
	"to_owned", "clone_into", "into", "try_into", "from", "try_from", "type_id", "borrow", "borrow_mut",
)

// textHelpers are the names of the accessors of a [N]char field:
// <name>_bytes(), <name>_str() and set_<name>().
type textHelpers struct{ bytes, str, set string }

// memberNames derives the Rust names of a struct's fields and text helpers
// once, so that every use agrees. Fields live in their own namespace, so only
// the helpers can collide: with each other (a field x_bytes and a field x
// both want set_x_bytes / x_bytes...) or with a trait method (a text field
// named as wants as_bytes). A helper whose name is taken gets trailing
// underscores until it is free.
type memberNames struct {
	fields  map[*schema.Field]string
	helpers map[*schema.Field]textHelpers
}

func newMemberNames(s *schema.Struct) *memberNames {
	n := &memberNames{fields: map[*schema.Field]string{}, helpers: map[*schema.Field]textHelpers{}}
	taken := map[string]bool{}
	for m := range traitMethods {
		taken[m] = true
	}
	free := func(name string) string {
		for taken[name] {
			name += "_"
		}
		taken[name] = true
		return name
	}
	for _, f := range s.Fields {
		n.fields[f] = Ident(f.Name)
	}
	for _, f := range s.Fields {
		if f.Type.IsText() {
			n.helpers[f] = textHelpers{bytes: free(f.Name + "_bytes"), str: free(f.Name + "_str"), set: free("set_" + f.Name)}
		}
	}
	return n
}

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
