package archive

import "testing"

func TestCompareNames(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"a", "a", 0}, {"a", "a/b", -1}, {"a/b", "a-c", -1}, {"a-c", "a/b", 1},
		{"a/b/c", "a/b", 1}, {"a/b", "a/c", -1}, {"srv/www", "etc/x", 1},
	} {
		if got := compareNames(tc.a, tc.b); got != tc.want {
			t.Errorf("compareNames(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
