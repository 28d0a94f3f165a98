package auth

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Reloadable holds the current value loaded from a file, swapped
// atomically by Reload: readers call Current on every check and never see a
// half-loaded file. PasswordSource and ACLSource are its two uses. Make one
// with NewReloadable (or NewPasswordSource, NewACLSource); the zero value
// holds nothing and cannot load.
type Reloadable[T any] struct {
	path string
	load func(path string) (*T, error)
	mu   sync.Mutex // serialises Reload
	cur  atomic.Pointer[T]
}

// PasswordSource is a hot-reloadable password file.
type PasswordSource = Reloadable[PasswordFile]

// ACLSource is a hot-reloadable acl_file.
type ACLSource = Reloadable[ACL]

// NewReloadable loads path with load and returns a Reloadable holding the
// result, or the loader's error.
func NewReloadable[T any](path string, load func(path string) (*T, error)) (*Reloadable[T], error) {
	r := &Reloadable[T]{path: path, load: load}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// NewPasswordSource loads the password file at path (LoadPasswordFile).
func NewPasswordSource(path string) (*PasswordSource, error) {
	return NewReloadable(path, LoadPasswordFile)
}

// NewACLSource loads the acl_file at path (LoadACLFile).
func NewACLSource(path string) (*ACLSource, error) {
	return NewReloadable(path, LoadACLFile)
}

// Current returns the value of the last successful load. Safe for
// concurrent use; the value is immutable.
func (r *Reloadable[T]) Current() *T { return r.cur.Load() }

// Path returns the file's path. Safe for concurrent use.
func (r *Reloadable[T]) Path() string { return r.path }

// Reload loads the file again and, if that succeeds, makes the result
// current. On failure the previous value stays current and the error (a
// *ParseError naming the file and line, for a syntax error) is returned.
// Safe for concurrent use; concurrent reloads are serialised.
func (r *Reloadable[T]) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.load == nil {
		return fmt.Errorf("auth: %s: Reloadable not made by NewReloadable", r.path)
	}
	v, err := r.load(r.path)
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("auth: loading %s returned nothing", r.path)
	}
	r.cur.Store(v)
	return nil
}
