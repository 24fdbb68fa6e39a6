package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/vg"
)

// imageError says why data is not what name's extension says: an SVG is
// well-formed XML whose root element is <svg>, a PNG decodes.
func imageError(name string, data []byte) error {
	switch filepath.Ext(name) {
	case ".svg":
		d := xml.NewDecoder(bytes.NewReader(data))
		root := ""
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s is not well-formed XML: %w", name, err)
			}
			if se, ok := tok.(xml.StartElement); ok && root == "" {
				root = se.Name.Local
			}
		}
		if root != "svg" {
			return fmt.Errorf("%s: root element <%s>, not <svg>", name, root)
		}
	case ".png":
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s does not decode as PNG: %w", name, err)
		}
		if img.Bounds().Empty() {
			return fmt.Errorf("%s: an empty image", name)
		}
	default:
		return fmt.Errorf("%s: no check for this kind of file", name)
	}
	return nil
}

// TestImageErrorCatchesBrokenFiles proves the check can fail: the SVG that
// bench/plot.go used to write (a legend's "<->" unescaped), an HTML file and
// a truncated PNG.
func TestImageErrorCatchesBrokenFiles(t *testing.T) {
	for name, data := range map[string][]byte{
		"broken.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg"><text>Tachyon Go<->Go</text></svg>`),
		"html.svg":   []byte(`<html></html>`),
		"broken.png": {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0},
	} {
		assert.Error(t, imageError(name, data), name)
	}
}

func loadFixture[T any](t *testing.T, name string) *T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var v T
	require.NoError(t, json.Unmarshal(data, &v))
	return &v
}

func TestLatencyPlotRenders(t *testing.T) {
	r := loadFixture[results](t, "make-bench.json")
	p, err := latencyPlot(r)
	require.NoError(t, err)
	for _, name := range []string{"bench-latency.svg", "bench-latency.png"} {
		data, err := render(p, 8*vg.Inch, 5*vg.Inch, name)
		require.NoError(t, err)
		require.NoError(t, imageError(name, data))
		if strings.HasSuffix(name, ".svg") {
			// The legend names every transport, escaped.
			assert.Contains(t, string(data), "Tachyon Go&lt;-&gt;Go")
			assert.Contains(t, string(data), "Unix socket")
		}
	}
	// save writes what render renders.
	dir := t.TempDir()
	out := filepath.Join(dir, "latency.svg")
	require.NoError(t, save(p, 8*vg.Inch, 5*vg.Inch, out))
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NoError(t, imageError(out, data))
}
