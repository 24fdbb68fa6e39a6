package gencpp_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	gencpp "github.com/tachyon-io/tachyon/gen/cpp"
	"github.com/tachyon-io/tachyon/schema"
)

// hostileMain exercises testdata/hostile.tsch: escaped names, extreme
// values, out-of-order declarations, helper names that meet field names.
const hostileMain = `#include "hostile.tsch.hpp"

#include <cstdint>
#include <limits>

static_assert(class_::INT8_MAX_ == 127);
static_assert(class_::NULL_ == std::numeric_limits<std::uint64_t>::max());
static_assert(class_::LOWEST == std::numeric_limits<std::int64_t>::min());
static_assert(static_cast<std::int64_t>(class_::Kind::EOF_) == std::numeric_limits<std::int64_t>::min());
static_assert(static_cast<std::uint64_t>(class_::Bits::HIGH) == std::uint64_t{1} << 63);
static_assert(static_cast<std::uint8_t>(~class_::Small::B) == 0x7f);
static_assert(class_::to_string(class_::Kind::TOP) == "TOP");
static_assert(class_::Uses::kAlign == 16 && alignof(class_::Uses) == 16);

int main() {
    class_::Uses u{};
    u.set_text_("abcdef");
    u.set_n("x");
    u.set_text_view("xyz");
    u.set_text = 1;
    u.errno_ = 2;
    u.linux_ = 3;
    u.std_ = 4;
    u.unix_[1][2] = 'z';
    u.int8_t = -1;  // not a macro, not a keyword: kept
    u.bits |= class_::Bits::HIGH;
    const bool ok = u.text_view_() == "abcd" && u.n_view() == "x" && u.text_view_view() == "xyz" &&
                    class_::has(u.bits, class_::Bits::HIGH) && !class_::has(u.bits, class_::Bits::LOW);
    return ok ? 0 : 1;
}
`

// TestHostileNames compiles and runs hostileMain on every compiler and
// standard.
func TestHostileNames(t *testing.T) {
	s, err := schema.Load("testdata/hostile.tsch")
	require.NoError(t, err)
	hdr, err := gencpp.Generate(s.Files[0])
	require.NoError(t, err)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, gencpp.FileName(s.Files[0])), hdr)
	writeFile(t, filepath.Join(dir, "main.cpp"), []byte(hostileMain))
	for _, cfg := range compilerConfigs {
		t.Run(cfg.cxx+"-"+cfg.std, func(t *testing.T) {
			if _, err := exec.LookPath(cfg.cxx); err != nil {
				t.Skipf("%s not found", cfg.cxx)
			}
			exe := filepath.Join(dir, cfg.cxx+"-"+cfg.std)
			args := append([]string{"-std=" + cfg.std}, cxxFlags...)
			out, err := exec.Command(cfg.cxx, append(args, "-I", dir, filepath.Join(dir, "main.cpp"), "-o", exe)...).CombinedOutput()
			require.NoError(t, err, "%s\n%s", out, hdr)
			out, err = exec.Command(exe).CombinedOutput()
			require.NoError(t, err, "%s", out)
		})
	}
}

// TestStaleLayoutFailsToCompile proves the static_asserts bite: a header
// whose recorded offset disagrees with the compiler does not build.
func TestStaleLayoutFailsToCompile(t *testing.T) {
	s, err := schema.Load("../../examples/Message.tsch")
	require.NoError(t, err)
	hdr, err := gencpp.Generate(s.Files[0])
	require.NoError(t, err)
	good := "static_assert(offsetof(Message, payload) == 16);"
	require.Contains(t, string(hdr), good)
	stale := strings.Replace(string(hdr), good, "static_assert(offsetof(Message, payload) == 24);", 1)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "stale.hpp"), []byte(stale))
	out, err := exec.Command("g++", "-std=c++17", "-fsyntax-only", "-x", "c++", filepath.Join(dir, "stale.hpp")).CombinedOutput()
	require.Error(t, err, "a stale offset must not compile")
	require.Contains(t, string(out), "static assertion failed")
}
