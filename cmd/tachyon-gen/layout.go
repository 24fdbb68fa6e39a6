package main

import (
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
	files, code, ok := parseFlags(env, fs, args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		fs.Usage()
		return exitUsage
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
(DIR/<stem>.layout.json) and fail when they drifted. Each change is reported as
BREAKING (peers built from the golden would misread bytes or be refused by a
ring) or compatible (e.g. a new message or enum member).`)
	golden := fs.String("golden", "", "`DIR` holding <stem>.layout.json golden files")
	files, code, ok := parseFlags(env, fs, args)
	if !ok {
		return code
	}
	if *golden == "" || len(files) == 0 {
		fs.Usage()
		return exitUsage
	}
	s, ok := env.load(files)
	if !ok {
		return exitError
	}
	failed := false
	for _, f := range s.Files {
		path := filepath.Join(*golden, f.Stem()+".layout.json")
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(env.stderr, "%s: no golden layout %s: %v\n", f.Path, path, err)
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
		failed = true
		breaking := 0
		for _, c := range changes {
			if c.Breaking {
				breaking++
			}
		}
		fmt.Fprintf(env.stderr, "%s: layout drifted from %s (%d breaking, %d compatible):\n", f.Path, path, breaking, len(changes)-breaking)
		for _, c := range changes {
			fmt.Fprintf(env.stderr, "  %s\n", c)
		}
		fmt.Fprintf(env.stderr, "  to accept: tachyon-gen layout --json %s > %s\n", f.Path, path)
	}
	if failed {
		return exitError
	}
	return exitOK
}
