//go:build !unix

package secmem

import "errors"

func alloc(int) ([]byte, bool, error) { return nil, false, errors.New("secmem: no mmap here") }
func free([]byte, bool)               {}
