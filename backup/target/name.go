package target

import (
	"fmt"
	"strings"
)

// MaxNameLen bounds object names.
const MaxNameLen = 1024

// CheckName reports whether name is a valid object name: 1..1024 bytes,
// slash-separated, no leading or trailing slash, no empty, "." or ".."
// element, no NUL or backslash, and no element starting with ".custos-"
// (reserved for the local target's own files).
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("target: object name of %d bytes: want 1..%d", len(name), MaxNameLen)
	}
	if strings.ContainsAny(name, "\x00\\") {
		return fmt.Errorf("target: object name %q holds a NUL or a backslash", name)
	}
	for _, el := range strings.Split(name, "/") {
		switch {
		case el == "" || el == "." || el == "..":
			return fmt.Errorf("target: object name %q: empty, \".\" or \"..\" element (or a leading or trailing slash)", name)
		case strings.HasPrefix(el, ".custos-"):
			return fmt.Errorf("target: object name %q: elements starting with \".custos-\" are reserved", name)
		}
	}
	return nil
}
