package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// MaxMessageSize is the largest message (and struct) the layout accepts.
const MaxMessageSize = 1 << 20

// MaxAlign is the largest @align accepted: one page.
const MaxAlign = 4096

// MaxFileSize bounds a schema file; larger inputs are refused before parsing.
const MaxFileSize = 64 << 20

// Schema is the result of loading one or more .tsch files.
type Schema struct {
	// Files are the files named by the caller, in the order given.
	Files []*File
	// All holds every loaded file, imports included, each once, with every
	// file after the files it imports.
	All []*File
}

// Closure returns f and every file it imports, directly or not, imports
// first, each once.
func (f *File) Closure() []*File {
	var out []*File
	seen := map[*File]bool{}
	var visit func(*File)
	visit = func(x *File) {
		if seen[x] {
			return
		}
		seen[x] = true
		for _, imp := range x.Imports {
			visit(imp)
		}
		out = append(out, x)
	}
	visit(f)
	return out
}

// Loader loads schema files. The zero value reads from the OS file system.
type Loader struct {
	// ReadFile reads one file; nil means os.ReadFile.
	ReadFile func(path string) ([]byte, error)
}

// Load reads, parses, resolves, checks and lays out the named files and
// everything they import. Errors are returned as Diagnostics.
func Load(paths ...string) (*Schema, error) { return (&Loader{}).Load(paths...) }

// LoadSource compiles a single in-memory file (imports are read from disk
// relative to name). It is the entry point of tests and the fuzzer.
func LoadSource(name string, src []byte) (*Schema, error) {
	l := &Loader{ReadFile: func(p string) ([]byte, error) {
		if p == name {
			return src, nil
		}
		return os.ReadFile(p)
	}}
	return l.Load(name)
}

// Load is like the package-level Load, reading through l.ReadFile.
func (l *Loader) Load(paths ...string) (*Schema, error) {
	c := &compiler{
		loader:  l,
		dg:      &diagnoser{sources: map[string][]byte{}},
		byPath:  map[string]*loadedFile{},
		scopes:  map[string]map[string]*symbol{},
		ids:     map[string]map[uint32]*Struct{},
		layouts: map[*Struct]layoutState{},

		constResolving: map[*Const]bool{},
		alignPos:       map[*Struct]Position{},
	}
	s := c.run(paths)
	if len(c.dg.list) > 0 {
		return nil, c.dg.sorted()
	}
	return s, nil
}

type loadedFile struct {
	file     *File
	ast      *astFile
	comments []comment
	src      []byte
	state    int // 0 unvisited, 1 loading (on the import stack), 2 done
	closure  map[*File]bool
}

type symbol struct {
	decl Decl
	ast  any
	lf   *loadedFile
}

type layoutState int

const (
	layoutTodo layoutState = iota
	layoutActive
	layoutDone
)

type compiler struct {
	loader  *Loader
	dg      *diagnoser
	byPath  map[string]*loadedFile
	order   []*loadedFile
	scopes  map[string]map[string]*symbol // package -> name -> symbol
	ids     map[string]map[uint32]*Struct // package -> id -> message
	layouts map[*Struct]layoutState
	structs map[*Struct]*astStruct
	lfOf    map[*Struct]*loadedFile
	// fatal is set when a file could not be read, parsed or imported:
	// semantic checks on an incomplete package would only add noise.
	fatal bool
	// constResolving guards against constants defined in terms of themselves.
	constResolving map[*Const]bool
	// alignPos is where each struct's @align annotation is.
	alignPos map[*Struct]Position
}

func (c *compiler) readFile(path string) ([]byte, error) {
	if c.loader.ReadFile != nil {
		return c.loader.ReadFile(path)
	}
	return os.ReadFile(path)
}

func (c *compiler) run(paths []string) *Schema {
	s := &Schema{}
	if len(paths) == 0 {
		c.dg.errorf(Position{Filename: "tachyon-gen"}, "no input files")
		return nil
	}
	for _, p := range paths {
		lf := c.load(p, nil, Position{Filename: p})
		if lf != nil && lf.file != nil {
			s.Files = append(s.Files, lf.file)
		}
	}
	if c.fatal {
		return nil
	}
	for _, lf := range c.order {
		s.All = append(s.All, lf.file)
	}
	c.declare()
	c.resolveConsts()
	c.resolveEnums()
	c.resolveStructs()
	if len(c.dg.list) > 0 {
		return nil
	}
	for _, lf := range c.order {
		for _, st := range lf.file.Structs {
			st.Canonical = canonicalText(st)
			st.Fingerprint = fingerprintOf(st.Canonical)
		}
	}
	return s
}

// load parses path and, depth first, its imports. from is the importing
// file (nil for a command-line file) and at the position of the import.
func (c *compiler) load(path string, from *loadedFile, at Position) *loadedFile {
	key := filepath.Clean(path)
	if abs, err := filepath.Abs(key); err == nil {
		key = abs
	}
	if lf, ok := c.byPath[key]; ok {
		if lf.state == 1 {
			c.fatal = true
			c.dg.errorf(at, "import cycle: %s imports %s, which imports it back", from.file.Path, path)
			return nil
		}
		return lf
	}
	src, err := c.readFile(path)
	if err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			msg = "no such file"
		case errors.Is(err, fs.ErrPermission):
			msg = "permission denied"
		}
		c.fatal = true
		if from != nil {
			c.dg.errorf(at, "import %q not found: %s", filepath.Base(path), msg)
		} else {
			c.dg.errorf(Position{Filename: path}, "cannot read schema: %s", msg)
		}
		return nil
	}
	if len(src) > MaxFileSize {
		c.fatal = true
		c.dg.errorf(Position{Filename: path, Line: 1, Column: 1}, "file is %d bytes, above the %d byte limit for a schema", len(src), MaxFileSize)
		return nil
	}
	c.dg.sources[path] = src
	lf := &loadedFile{src: src, state: 1}
	c.byPath[key] = lf
	ast, comments := parseFile(c.dg, path, src)
	if ast == nil {
		c.fatal = true
		lf.state = 2
		return nil
	}
	lf.ast, lf.comments = ast, comments
	lf.file = &File{Path: path, Package: ast.Package.Name.Value}
	if !snakeRe.MatchString(ast.Package.Name.Value) {
		c.dg.errorf(toPosition(ast.Package.Name.Pos), "package name %q must be lower_snake_case", ast.Package.Name.Value)
	}
	for _, imp := range ast.Imports {
		ipos := toPosition(imp.Pos)
		target := imp.Path
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		if !strings.HasSuffix(target, ".tsch") {
			c.fatal = true
			c.dg.errorf(ipos, "import %q: schema files end in .tsch", imp.Path)
			continue
		}
		dep := c.load(target, lf, ipos)
		if dep == nil || dep.file == nil {
			continue
		}
		if dep.file.Package != lf.file.Package {
			c.fatal = true
			c.dg.errorf(ipos, "import %q declares package %s, not %s: cross-package imports are not supported yet", imp.Path, dep.file.Package, lf.file.Package)
			continue
		}
		lf.file.Imports = append(lf.file.Imports, dep.file)
	}
	lf.state = 2
	c.order = append(c.order, lf)
	return lf
}

var (
	pascalRe = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	snakeRe  = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	upperRe  = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)
)

func describe(p Position) string { return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column) }
