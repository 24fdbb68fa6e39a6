package gencpp_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tachyon-io/tachyon/schema"
)

// TestCMakeConsumer configures, builds and runs tests/cpp/consumer, a CMake
// project that adds this source tree with add_subdirectory, generates the
// example headers with tachyon_generate (which builds tachyon-gen with Go)
// and links tachyon::tachyon; it is built with g++ in C++17 and clang++ in
// C++20. The program's message identities must equal the schema model's.
func TestCMakeConsumer(t *testing.T) {
	if _, err := exec.LookPath("cmake"); err != nil {
		if testing.Short() {
			t.Skip("cmake not found (-short)")
		}
		t.Fatal("cmake not found: install it (Debian: apt-get install cmake)")
	}
	examples, err := filepath.Glob("../../examples/*.tsch")
	require.NoError(t, err)
	s, err := schema.Load(examples...)
	require.NoError(t, err)
	var want strings.Builder
	for _, name := range []string{"Message", "Book", "Tape"} {
		for _, f := range s.All {
			for _, m := range f.Messages() {
				if m.Name == name {
					fmt.Fprintf(&want, "%s id=%d size=%d fingerprint=%s\n", m.Name, m.ID, m.Size, schema.FormatFingerprint(m.Fingerprint))
				}
			}
		}
	}

	src, err := filepath.Abs("../../tests/cpp/consumer")
	require.NoError(t, err)
	for _, cfg := range []struct{ cxx, std string }{{"g++", "17"}, {"clang++", "20"}} {
		t.Run(cfg.cxx+"-c++"+cfg.std, func(t *testing.T) {
			if _, err := exec.LookPath(cfg.cxx); err != nil {
				t.Skipf("%s not found", cfg.cxx)
			}
			build := t.TempDir()
			for _, args := range [][]string{
				{"-S", src, "-B", build, "-DCMAKE_CXX_COMPILER=" + cfg.cxx, "-DCMAKE_CXX_STANDARD=" + cfg.std},
				{"--build", build},
			} {
				out, err := exec.Command("cmake", args...).CombinedOutput()
				require.NoError(t, err, "cmake %s:\n%s", strings.Join(args, " "), out)
			}
			out, err := exec.Command(filepath.Join(build, "consumer")).CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Equal(t, want.String(), string(out))
		})
	}
}
