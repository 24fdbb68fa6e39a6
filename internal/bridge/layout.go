package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

// Message is a message type as a layout document names it.
type Message struct {
	Name string // package.Message
	ring.Identity
}

// layoutDoc is the part of `tachyon-gen layout --json` the bridge reads.
type layoutDoc struct {
	Package  string `json:"package"`
	Messages []struct {
		Name        string `json:"name"`
		Kind        string `json:"kind"`
		ID          uint32 `json:"id"`
		Size        int    `json:"size"`
		Align       int    `json:"align"`
		Fingerprint string `json:"fingerprint"`
	} `json:"messages"`
}

// LoadLayout reads the messages of a `tachyon-gen layout --json` document (one
// package, or an array of them), so that the bridge knows message names and
// identities without linking the compiler.
func LoadLayout(path string) ([]Message, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var docs []layoutDoc
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		err = json.Unmarshal(b, &docs)
	} else {
		docs = make([]layoutDoc, 1)
		err = json.Unmarshal(b, &docs[0])
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a layout document (tachyon-gen layout --json): %w", path, err)
	}
	var out []Message
	for _, d := range docs {
		for _, m := range d.Messages {
			if m.Kind != "message" {
				continue
			}
			fp, err := strconv.ParseUint(strings.TrimPrefix(m.Fingerprint, "0x"), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: message %s.%s: fingerprint %q: %v", path, d.Package, m.Name, m.Fingerprint, err)
			}
			out = append(out, Message{Name: d.Package + "." + m.Name,
				Identity: ring.Identity{Fingerprint: fp, TypeID: m.ID, Size: m.Size, Align: m.Align}})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no messages", path)
	}
	return out, nil
}

// FindMessage returns the message of that name (package.Message, or Message
// alone when only one package declares it).
func FindMessage(msgs []Message, name, path string) (Message, error) {
	var found []Message
	var names []string
	for _, m := range msgs {
		names = append(names, m.Name)
		if m.Name == name || strings.HasSuffix(m.Name, "."+name) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Message{}, fmt.Errorf("%s: no message %q (it has %s)", path, name, strings.Join(names, ", "))
	}
	return Message{}, fmt.Errorf("%s: message name %q is ambiguous: give package.Message", path, name)
}

// MessageByFingerprint returns the message with that fingerprint.
func MessageByFingerprint(msgs []Message, fp uint64) (Message, bool) {
	for _, m := range msgs {
		if m.Fingerprint == fp {
			return m, true
		}
	}
	return Message{}, false
}
