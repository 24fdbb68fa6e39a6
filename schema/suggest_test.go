package schema

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSuggest(t *testing.T) {
	prims := []string{"bool", "char", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "Side", "Level"}
	for name, want := range map[string]string{
		"u46": "u64", "Sdie": "Side", "side": "Side", "Levle": "Level", "boo": "bool",
		"uint64": "", "Foo": "", "string": "", "ab": "",
	} {
		assert.Equal(t, want, suggest(name, prims), name)
	}
	assert.Equal(t, "align", suggest("aling", []string{"id", "align", "deprecated"}))
	assert.Equal(t, "deprecated", suggest("depreciated", []string{"id", "align", "deprecated"}))
	assert.Equal(t, "", suggest("packed", []string{"id", "align", "deprecated"}))
	assert.Equal(t, 1, editDistance("ab", "ba"))
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
	assert.Equal(t, 0, editDistance("", ""))
}
