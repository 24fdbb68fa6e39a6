package ring

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest ring name (NAME_MAX of the shm filesystem).
const MaxNameLen = 255

// ValidateName reports whether name can name a ring segment: 1 to 255 bytes
// of ASCII letters, digits, '.', '_' and '-', not "." and without "..". The
// segment is /dev/shm/NAME; shm_open and Python's
// multiprocessing.shared_memory reach it as "/NAME" and "NAME".
func ValidateName(name string) error {
	bad := func(why string) error { return fmt.Errorf("ring name %q: %w: %s", name, ErrInvalidName, why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("%d bytes, longer than %d", len(name), MaxNameLen))
	case strings.Contains(name, "/"):
		return bad("contains '/'")
	case name == "." || strings.Contains(name, ".."):
		return bad("contains '..' or is '.'")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return bad(fmt.Sprintf("byte %#02x at %d; allowed are letters, digits, '.', '_', '-'", c, i))
		}
	}
	return nil
}
