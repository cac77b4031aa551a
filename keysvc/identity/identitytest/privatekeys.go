// Package identitytest has helpers for tests about where key material lives.
package identitytest

import (
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PrivateKeyFiles lists every regular file under dir that holds a PEM
// private key block, as "path (block type)".
func PrivateKeyFiles(dir string) ([]string, error) {
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for {
			var b *pem.Block
			if b, data = pem.Decode(data); b == nil {
				return nil
			}
			if strings.Contains(b.Type, "PRIVATE KEY") {
				found = append(found, fmt.Sprintf("%s (%s)", p, b.Type))
			}
		}
	})
	return found, err
}
