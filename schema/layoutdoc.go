package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// LayoutDoc is the JSON document of `tachyon-gen layout --json` and of the
// golden layout files (golden/<stem>.layout.json). Its shape is a public
// contract (DESIGN.md §4): fields may be added, never renamed.
type LayoutDoc struct {
	Package  string      `json:"package"`
	Messages []StructDoc `json:"messages"`
	Structs  []StructDoc `json:"structs"`
	Enums    []EnumDoc   `json:"enums"`
	Flags    []EnumDoc   `json:"flags"`
	Consts   []ConstDoc  `json:"consts"`
}

// StructDoc describes one message or struct.
type StructDoc struct {
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	ID          *uint32    `json:"id,omitempty"`
	Size        int        `json:"size"`
	Align       int        `json:"align"`
	Fingerprint string     `json:"fingerprint"`
	Fields      []FieldDoc `json:"fields"`
}

// FieldDoc describes one field. Padding is not listed.
type FieldDoc struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Offset     int    `json:"offset"`
	Size       int    `json:"size"`
	Deprecated bool   `json:"deprecated,omitempty"`
}

// EnumDoc describes an enum (member values) or flags (member bit positions).
type EnumDoc struct {
	Name    string      `json:"name"`
	Type    string      `json:"type"`
	Size    int         `json:"size"`
	Members []MemberDoc `json:"members"`
}

// MemberDoc is one enum value or flag bit. Value is a JSON number.
type MemberDoc struct {
	Name  string      `json:"name"`
	Value json.Number `json:"value"`
}

// ConstDoc is one constant.
type ConstDoc struct {
	Name  string      `json:"name"`
	Type  string      `json:"type"`
	Value json.Number `json:"value"`
}

// NewLayoutDoc describes the declarations of the given files, which must
// share one package, in source order.
func NewLayoutDoc(files ...*File) *LayoutDoc {
	d := &LayoutDoc{Messages: []StructDoc{}, Structs: []StructDoc{}, Enums: []EnumDoc{}, Flags: []EnumDoc{}, Consts: []ConstDoc{}}
	for _, f := range files {
		d.Package = f.Package
		for _, s := range f.Structs {
			sd := StructDoc{Name: s.Name, Kind: s.Kind(), Size: s.Size, Align: s.Align,
				Fingerprint: FormatFingerprint(s.Fingerprint), Fields: []FieldDoc{}}
			for _, fl := range s.Fields {
				sd.Fields = append(sd.Fields, FieldDoc{Name: fl.Name, Type: fl.Type.String(), Offset: fl.Offset, Size: fl.Size(), Deprecated: fl.Deprecated})
			}
			if s.IsMessage {
				id := s.ID
				sd.ID = &id
				d.Messages = append(d.Messages, sd)
			} else {
				d.Structs = append(d.Structs, sd)
			}
		}
		for _, e := range f.Enums {
			d.Enums = append(d.Enums, EnumDoc{Name: e.Name, Type: e.Underlying.String(), Size: e.Underlying.Size(), Members: memberDocs(e.Members)})
		}
		for _, fl := range f.Flags {
			d.Flags = append(d.Flags, EnumDoc{Name: fl.Name, Type: fl.Underlying.String(), Size: fl.Underlying.Size(), Members: memberDocs(fl.Members)})
		}
		for _, k := range f.Consts {
			d.Consts = append(d.Consts, ConstDoc{Name: k.Name, Type: k.Type.String(), Value: json.Number(k.Value.String())})
		}
	}
	return d
}

func memberDocs(ms []*Member) []MemberDoc {
	out := []MemberDoc{}
	for _, m := range ms {
		out = append(out, MemberDoc{Name: m.Name, Value: json.Number(m.Value.String())})
	}
	return out
}

// FormatFingerprint renders a fingerprint as 0x followed by 16 hex digits.
func FormatFingerprint(fp uint64) string { return fmt.Sprintf("0x%016x", fp) }

// MarshalIndent renders the document as stable, indented JSON with a
// trailing newline.
func (d *LayoutDoc) MarshalIndent() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		panic(err) // every field is a plain value: encoding cannot fail
	}
	return buf.Bytes()
}

// ParseLayoutDoc reads a layout document (a golden file).
func ParseLayoutDoc(data []byte) (*LayoutDoc, error) {
	var d LayoutDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Change is one difference between two layouts.
type Change struct {
	// Breaking is set when readers built from the old layout would misread
	// bytes written with the new one (or the fingerprint changed, so rings
	// refuse the attach).
	Breaking bool
	What     string
}

func (c Change) String() string {
	if c.Breaking {
		return "BREAKING: " + c.What
	}
	return "compatible: " + c.What
}

// Compare lists the differences from old to new, breaking ones first within
// each declaration.
func Compare(old, new *LayoutDoc) []Change {
	var out []Change
	add := func(breaking bool, format string, args ...any) {
		out = append(out, Change{Breaking: breaking, What: fmt.Sprintf(format, args...)})
	}
	if old.Package != new.Package {
		add(true, "package renamed %s -> %s (every fingerprint changes)", old.Package, new.Package)
	}
	compareStructs := func(kind string, olds, news []StructDoc) {
		byName := map[string]StructDoc{}
		for _, s := range news {
			byName[s.Name] = s
		}
		seen := map[string]bool{}
		for _, o := range olds {
			seen[o.Name] = true
			n, ok := byName[o.Name]
			if !ok {
				add(true, "%s %s removed", kind, o.Name)
				continue
			}
			if o.ID != nil && n.ID != nil && *o.ID != *n.ID {
				add(true, "%s %s: type id %d -> %d", kind, o.Name, *o.ID, *n.ID)
			}
			if o.Size != n.Size {
				add(true, "%s %s: size %d -> %d", kind, o.Name, o.Size, n.Size)
			}
			if o.Align != n.Align {
				add(true, "%s %s: alignment %d -> %d", kind, o.Name, o.Align, n.Align)
			}
			nf := map[string]FieldDoc{}
			for _, f := range n.Fields {
				nf[f.Name] = f
			}
			of := map[string]bool{}
			for _, f := range o.Fields {
				of[f.Name] = true
				g, ok := nf[f.Name]
				switch {
				case !ok:
					add(true, "%s %s: field %s removed (was %s at offset %d)", kind, o.Name, f.Name, f.Type, f.Offset)
				case g.Offset != f.Offset:
					add(true, "%s %s: field %s moved from offset %d to %d", kind, o.Name, f.Name, f.Offset, g.Offset)
				case g.Type != f.Type:
					add(true, "%s %s: field %s changed type %s -> %s", kind, o.Name, f.Name, f.Type, g.Type)
				case g.Deprecated != f.Deprecated:
					add(false, "%s %s: field %s deprecated=%v", kind, o.Name, f.Name, g.Deprecated)
				}
			}
			for _, f := range n.Fields {
				if !of[f.Name] {
					add(true, "%s %s: field %s added at offset %d", kind, o.Name, f.Name, f.Offset)
				}
			}
			if o.Fingerprint != n.Fingerprint {
				add(true, "%s %s: fingerprint %s -> %s (rings refuse old peers)", kind, o.Name, o.Fingerprint, n.Fingerprint)
			}
		}
		for _, n := range news {
			if !seen[n.Name] {
				add(false, "%s %s added", kind, n.Name)
			}
		}
	}
	compareStructs("message", old.Messages, new.Messages)
	compareStructs("struct", old.Structs, new.Structs)
	compareEnums := func(kind string, olds, news []EnumDoc) {
		byName := map[string]EnumDoc{}
		for _, e := range news {
			byName[e.Name] = e
		}
		for _, o := range olds {
			n, ok := byName[o.Name]
			if !ok {
				add(true, "%s %s removed", kind, o.Name)
				continue
			}
			if o.Type != n.Type {
				add(true, "%s %s: underlying type %s -> %s", kind, o.Name, o.Type, n.Type)
			}
			nm := map[string]json.Number{}
			for _, m := range n.Members {
				nm[m.Name] = m.Value
			}
			for _, m := range o.Members {
				v, ok := nm[m.Name]
				switch {
				case !ok:
					add(true, "%s %s: member %s removed", kind, o.Name, m.Name)
				case v != m.Value:
					add(true, "%s %s: member %s changed %s -> %s", kind, o.Name, m.Name, m.Value, v)
				}
				delete(nm, m.Name)
			}
			for _, m := range n.Members {
				if _, added := nm[m.Name]; added {
					add(false, "%s %s: member %s = %s added", kind, o.Name, m.Name, m.Value)
				}
			}
		}
		old := map[string]bool{}
		for _, o := range olds {
			old[o.Name] = true
		}
		for _, n := range news {
			if !old[n.Name] {
				add(false, "%s %s added", kind, n.Name)
			}
		}
	}
	compareEnums("enum", old.Enums, new.Enums)
	compareEnums("flags", old.Flags, new.Flags)
	oc := map[string]ConstDoc{}
	for _, k := range old.Consts {
		oc[k.Name] = k
	}
	for _, k := range new.Consts {
		if o, ok := oc[k.Name]; ok && (o.Value != k.Value || o.Type != k.Type) {
			add(false, "const %s: %s %s -> %s %s (layouts that use it are reported above)", k.Name, o.Type, o.Value, k.Type, k.Value)
		} else if !ok {
			add(false, "const %s added", k.Name)
		}
		delete(oc, k.Name)
	}
	for _, k := range old.Consts {
		if _, gone := oc[k.Name]; gone {
			add(false, "const %s removed", k.Name)
		}
	}
	return out
}
