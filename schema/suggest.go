package schema

import (
	"slices"
	"strings"
)

// suggest returns the candidate closest to name, for a "did you mean"
// hint, or "" when none is close: the same name in another case, or one at
// most a third of its length in edits away (at least one), counting a swap
// of two neighbours as one edit. Between equally close candidates, one
// with the same letters wins (u46: u64, not u16), then the first in order.
func suggest(name string, candidates []string) string {
	best, bestDist, bestAnagram := "", max(1, len(name)/3)+1, false
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	for _, c := range sorted {
		if c == name {
			continue
		}
		if strings.EqualFold(c, name) {
			return c
		}
		d, anagram := editDistance(name, c), sameLetters(name, c)
		if d < bestDist || best != "" && d == bestDist && anagram && !bestAnagram {
			best, bestDist, bestAnagram = c, d, anagram
		}
	}
	return best
}

func sameLetters(a, b string) bool {
	x, y := []byte(a), []byte(b)
	slices.Sort(x)
	slices.Sort(y)
	return string(x) == string(y)
}

// didYouMean renders suggest's answer as a message suffix.
func didYouMean(name string, candidates []string, prefix string) string {
	if s := suggest(name, candidates); s != "" {
		return "; did you mean " + prefix + s + "?"
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each cost one.
func editDistance(a, b string) int {
	// Three rows of the dynamic programme: i-2, i-1 and i.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
