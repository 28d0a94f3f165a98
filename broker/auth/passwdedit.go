package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// SetPassword sets user's password in the password file at path, creating
// the file if it does not exist: the user's line is replaced in place (a
// second line for the same user is dropped) or appended, every other line
// and comment is kept as it is. The hash is HashPassword's. The file is
// replaced atomically (a temporary file in the same directory, synced, then
// renamed over it) with mode 0600 and, when the caller may, the old file's
// owner; a symbolic link is followed and its target replaced. A file that
// does not parse is left alone and its *ParseError returned.
//
// Edits of one file are not serialised: a concurrent SetPassword,
// DeletePassword or mosquitto_passwd on the same file can lose an update.
func SetPassword(path, user, password string) error {
	if err := checkUsername(user); err != nil {
		return err
	}
	if len(password) > 65535 {
		return errors.New("auth: password longer than 65535 bytes")
	}
	if strings.IndexByte(password, 0) >= 0 {
		return errors.New("auth: password contains a NUL byte, which Mosquitto cannot compare")
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return editPasswordFile(path, user, user+":"+hash)
}

// DeletePassword removes user's lines from the password file at path,
// keeping every other line, with SetPassword's atomic replacement. It
// returns an error wrapping ErrUnknownUser if the file has no line for
// user, and one wrapping fs.ErrNotExist if there is no file.
func DeletePassword(path, user string) error {
	if err := checkUsername(user); err != nil {
		return err
	}
	return editPasswordFile(path, user, "")
}

// checkUsername returns an error wrapping ErrInvalidUsername if user cannot
// be written to a password file and read back as the same name.
func checkUsername(user string) error {
	var why string
	switch {
	case user == "":
		why = "empty"
	case len(user) > 65535:
		why = "longer than 65535 bytes"
	case !utf8.ValidString(user):
		why = "not valid UTF-8"
	case strings.ContainsAny(user, ":\n\r\x00"):
		why = "contains ':', a line break or NUL"
	case user[0] == '#':
		why = "starts with '#' (a comment)"
	case strings.Trim(user, blanks) != user:
		why = "starts or ends with a blank"
	default:
		return nil
	}
	return fmt.Errorf("%w %s: %s", ErrInvalidUsername, quote(user), why)
}

// editPasswordFile replaces user's line by newLine, or deletes it when
// newLine is empty, and writes the file back atomically.
func editPasswordFile(path, user, newLine string) error {
	target, err := filepath.EvalSymlinks(path)
	create := false
	if errors.Is(err, fs.ErrNotExist) && newLine != "" {
		target, create = path, true
	} else if err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	var data []byte
	var old fs.FileInfo
	if !create {
		if data, err = os.ReadFile(target); err != nil {
			return fmt.Errorf("auth: password file: %w", err)
		}
		if old, err = os.Stat(target); err != nil {
			return fmt.Errorf("auth: password file: %w", err)
		}
		if _, err := ParsePasswordFile(path, data); err != nil {
			return err
		}
	}
	lines := splitLines(data)
	out := lines[:0]
	found := false
	for i, raw := range lines {
		u, _, ok, _ := parsePasswordLine(path, i+1, raw)
		if !ok || u != user {
			out = append(out, raw)
			continue
		}
		if !found && newLine != "" {
			if strings.HasSuffix(raw, "\r") {
				out = append(out, newLine+"\r") // keep the file's line ends
			} else {
				out = append(out, newLine)
			}
		}
		found = true
	}
	if !found {
		if newLine == "" {
			return fmt.Errorf("%w %s in %s", ErrUnknownUser, quote(user), path)
		}
		out = append(out, newLine)
	}
	var b strings.Builder
	for _, l := range out {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return writeFileAtomic(target, []byte(b.String()), old)
}

// writeFileAtomic replaces the file at path by data, mode 0600, through a
// synced temporary file renamed over it; old, when not nil, is the file
// being replaced, whose owner is kept when the process may.
func writeFileAtomic(path string, data []byte, old fs.FileInfo) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if old != nil {
		keepOwner(f, old)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	// Make the rename durable; some file systems cannot sync a directory,
	// and the new file is in place either way.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
