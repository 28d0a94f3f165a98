//go:build unix

package auth

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of old, if the process may (root,
// or the same owner); otherwise f keeps the process's.
func keepOwner(f *os.File, old fs.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		f.Chown(int(st.Uid), int(st.Gid))
	}
}
