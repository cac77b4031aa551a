//go:build !linux

package archive

import (
	"io"
	"io/fs"
	"os"
	"syscall"
)

// openRegular opens path for reading without following a symlink and
// fstats it.
func openRegular(path string) (io.ReadCloser, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
