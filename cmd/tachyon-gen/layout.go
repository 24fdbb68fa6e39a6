package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tachyon-io/tachyon/schema"
)

func runLayout(env *cliEnv, args []string) int {
	fs := newFlags(env, "layout", `Print the canonical layout of every message and struct declared in the
named files: offset, size, field and type, with padding holes shown, like
pahole. With --json, print the layout document (the golden file format).`)
	asJSON := fs.Bool("json", false, "print the JSON layout document")
	files, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		return fs.usageError("need at least one FILE.tsch")
	}
	s, ok := env.load(files)
	if !ok {
		return exitError
	}
	if *asJSON {
		docs := layoutDocs(s.Files)
		if len(docs) == 1 {
			env.stdout.Write(docs[0].MarshalIndent())
			return exitOK
		}
		// Several packages: a JSON array of documents, one per package.
		fmt.Fprintln(env.stdout, "[")
		for i, d := range docs {
			env.stdout.Write([]byte(strings.TrimRight(string(d.MarshalIndent()), "\n")))
			if i < len(docs)-1 {
				fmt.Fprintln(env.stdout, ",")
			}
		}
		fmt.Fprintln(env.stdout, "\n]")
		return exitOK
	}
	for _, f := range s.Files {
		for _, st := range f.Structs {
			printLayoutTable(env.stdout, st)
		}
	}
	return exitOK
}

// layoutDocs groups the files by package, in first-seen order.
func layoutDocs(files []*schema.File) []*schema.LayoutDoc {
	var order []string
	byPkg := map[string][]*schema.File{}
	for _, f := range files {
		if _, ok := byPkg[f.Package]; !ok {
			order = append(order, f.Package)
		}
		byPkg[f.Package] = append(byPkg[f.Package], f)
	}
	var docs []*schema.LayoutDoc
	for _, p := range order {
		docs = append(docs, schema.NewLayoutDoc(byPkg[p]...))
	}
	return docs
}

// printLayoutTable prints one struct as a pahole-style table: offsets and
// sizes right-aligned, names and types left-aligned, holes shown in place.
func printLayoutTable(w io.Writer, s *schema.Struct) {
	head := fmt.Sprintf("%s %s.%s", s.Kind(), s.File.Package, s.Name)
	if s.IsMessage {
		head += fmt.Sprintf("  id=%d", s.ID)
	}
	fmt.Fprintf(w, "%s  size=%d align=%d fingerprint=%s  (%s)\n", head, s.Size, s.Align,
		schema.FormatFingerprint(s.Fingerprint), filepath.Base(s.File.Path))
	type row struct{ off, size, name, typ string }
	rows := []row{{"offset", "size", "field", "type"}}
	holes := 0
	for _, sl := range s.Slots() {
		if sl.Field == nil {
			holes++
			rows = append(rows, row{fmt.Sprint(sl.Offset), fmt.Sprint(sl.Size), fmt.Sprintf("/* padding: %d byte hole */", sl.Size), ""})
			continue
		}
		name := sl.Field.Name
		if sl.Field.Deprecated {
			name += " (deprecated)"
		}
		rows = append(rows, row{fmt.Sprint(sl.Offset), fmt.Sprint(sl.Size), name, sl.Field.Type.String()})
	}
	wo, ws, wn := 0, 0, 0
	for _, r := range rows {
		wo, ws, wn = max(wo, len(r.off)), max(ws, len(r.size)), max(wn, len(r.name))
	}
	for _, r := range rows {
		line := fmt.Sprintf("  %*s  %*s  %-*s  %s", wo, r.off, ws, r.size, wn, r.name, r.typ)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintf(w, "  /* size: %d, members: %d, holes: %d, padding bytes: %d */\n\n", s.Size, len(s.Fields), holes, s.Padding())
}

func runCheck(env *cliEnv, args []string) int {
	fs := newFlags(env, "check", `Compare the layouts of the named files with golden layout documents
(DIR/<stem>.layout.json, the format of layout --json) and report each change
as BREAKING (peers built from the golden would misread bytes or be refused by
a ring) or compatible (e.g. a new message or enum member).

Exit status: 0 when every layout matches its golden; 3 when the changes are
all compatible (0 with --allow-compatible); 4 when one is breaking; 1 when a
schema does not compile or a golden is missing or unreadable. With --update,
write (or refresh) the golden of every named file instead, and exit 0.`)
	golden := fs.String("golden", "", "`DIR` holding <stem>.layout.json golden files")
	allowCompatible := fs.Bool("allow-compatible", false, "exit 0 when every change is compatible")
	update := fs.Bool("update", false, "write or refresh the golden files from the schemas")
	files, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if *golden == "" || len(files) == 0 {
		return fs.usageError("need --golden DIR and at least one FILE.tsch")
	}
	if *update && *allowCompatible {
		return fs.usageError("--update writes the goldens whatever changed: drop --allow-compatible")
	}
	s, ok := env.load(files)
	if !ok {
		return exitError
	}
	if *update {
		return updateGoldens(env, *golden, s.Files)
	}
	failed, breaking, compatible := false, false, false
	for _, f := range s.Files {
		path := goldenPath(*golden, f)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(env.stderr, "%s: no golden layout %s\n  to create it: tachyon-gen check --golden %s --update %s\n", f.Path, path, *golden, f.Path)
			failed = true
			continue
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "%s: cannot read golden %s: %v\n", f.Path, path, err)
			failed = true
			continue
		}
		old, err := schema.ParseLayoutDoc(data)
		if err != nil {
			fmt.Fprintf(env.stderr, "%s: golden %s is not a layout document: %v\n", f.Path, path, err)
			failed = true
			continue
		}
		changes := schema.Compare(old, schema.NewLayoutDoc(f))
		if len(changes) == 0 {
			fmt.Fprintf(env.stdout, "%s: layout matches %s\n", f.Path, path)
			continue
		}
		n := 0
		for _, c := range changes {
			if c.Breaking {
				n++
			}
		}
		breaking = breaking || n > 0
		compatible = compatible || n < len(changes)
		verdict := ""
		if n == 0 && *allowCompatible {
			verdict = ", allowed by --allow-compatible"
		}
		fmt.Fprintf(env.stderr, "%s: layout drifted from %s (%d breaking, %d compatible%s):\n", f.Path, path, n, len(changes)-n, verdict)
		for _, c := range changes {
			fmt.Fprintf(env.stderr, "  %s\n", c)
		}
		fmt.Fprintf(env.stderr, "  to accept: tachyon-gen check --golden %s --update %s\n", *golden, f.Path)
	}
	switch {
	case failed:
		return exitError
	case breaking:
		return exitBreaking
	case compatible && !*allowCompatible:
		return exitCompatible
	}
	return exitOK
}

// goldenPath is where check keeps the golden layout of f.
func goldenPath(dir string, f *schema.File) string {
	return filepath.Join(dir, f.Stem()+".layout.json")
}

// updateGoldens writes the layout document of every file to its golden,
// saying what each write changed.
func updateGoldens(env *cliEnv, dir string, files []*schema.File) int {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return env.errorf("check --update: %v", err)
	}
	for _, f := range files {
		path := goldenPath(dir, f)
		doc := schema.NewLayoutDoc(f)
		data := doc.MarshalIndent()
		old, err := os.ReadFile(path)
		switch {
		case err == nil && bytes.Equal(old, data):
			fmt.Fprintf(env.stdout, "%s: %s is up to date\n", f.Path, path)
			continue
		case err == nil:
			fmt.Fprintf(env.stdout, "%s: refreshed %s\n", f.Path, path)
			if prev, err := schema.ParseLayoutDoc(old); err == nil {
				for _, c := range schema.Compare(prev, doc) {
					fmt.Fprintf(env.stdout, "  %s\n", c)
				}
			}
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(env.stdout, "%s: wrote %s\n", f.Path, path)
		default:
			return env.errorf("check --update: %v", err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return env.errorf("check --update: %v", err)
		}
	}
	return exitOK
}
