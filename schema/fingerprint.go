package schema

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// FingerprintVersion names the canonical text format. Changing the format
// changes every fingerprint, so it is versioned like a wire format.
const FingerprintVersion = "tachyon-layout/1"

// canonicalText renders the layout of a struct or message as the text its
// fingerprint hashes. The format (docs/FINGERPRINT.md):
//
//	tachyon-layout/1
//	message market.Message id=1 size=64 align=8
//	field seq u64 offset=0 size=8
//	...
//	struct market.Level size=16 align=8
//	field price i64 offset=0 size=8
//	enum market.Side u8
//
// The root comes first; every struct, enum and flags type it uses, directly or
// through arrays, follows once, in order of first use. Doc comments, member
// lists of enums and flags and @deprecated do not move a byte and are left out.
func canonicalText(root *Struct) string {
	var b strings.Builder
	b.WriteString(FingerprintVersion + "\n")
	done := map[any]bool{}
	queue := []any{root}
	for len(queue) > 0 {
		item := queue[0]
		queue = queue[1:]
		if done[item] {
			continue
		}
		done[item] = true
		switch x := item.(type) {
		case *Struct:
			if x.IsMessage && x == root {
				fmt.Fprintf(&b, "message %s.%s id=%d size=%d align=%d\n", x.File.Package, x.Name, x.ID, x.Size, x.Align)
			} else {
				fmt.Fprintf(&b, "struct %s.%s size=%d align=%d\n", x.File.Package, x.Name, x.Size, x.Align)
			}
			for _, f := range x.Fields {
				fmt.Fprintf(&b, "field %s %s offset=%d size=%d\n", f.Name, qualified(f.Type), f.Offset, f.Size())
				switch in := f.Type.Innermost(); in.Kind {
				case KindStruct:
					queue = append(queue, in.Struct)
				case KindEnum:
					queue = append(queue, in.Enum)
				case KindFlags:
					queue = append(queue, in.Flags)
				}
			}
		case *Enum:
			fmt.Fprintf(&b, "enum %s.%s %s\n", x.File.Package, x.Name, x.Underlying)
		case *Flags:
			fmt.Fprintf(&b, "flags %s.%s %s\n", x.File.Package, x.Name, x.Underlying)
		}
	}
	return b.String()
}

// qualified spells a type with package-qualified declared names.
func qualified(t *Type) string {
	var b strings.Builder
	for _, n := range t.Dims() {
		fmt.Fprintf(&b, "[%d]", n)
	}
	in := t.Innermost()
	switch in.Kind {
	case KindPrimitive:
		b.WriteString(in.Primitive.String())
	case KindEnum:
		b.WriteString(in.Enum.File.Package + "." + in.Enum.Name)
	case KindFlags:
		b.WriteString(in.Flags.File.Package + "." + in.Flags.Name)
	case KindStruct:
		b.WriteString(in.Struct.File.Package + "." + in.Struct.Name)
	}
	return b.String()
}

// fingerprintOf is the first 8 bytes of SHA-256 of the canonical text, read
// big-endian.
func fingerprintOf(canonical string) uint64 {
	sum := sha256.Sum256([]byte(canonical))
	return binary.BigEndian.Uint64(sum[:8])
}
