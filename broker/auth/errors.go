package auth

import (
	"errors"
	"fmt"
)

// ErrSyntax is matched (errors.Is) by every *ParseError.
var ErrSyntax = errors.New("auth: syntax error")

// ErrUnknownUser is returned (wrapped) by DeletePassword when the file has
// no line for the user.
var ErrUnknownUser = errors.New("auth: unknown user")

// ErrInvalidUsername is returned (wrapped) by SetPassword and
// DeletePassword for a username that cannot be stored in a password file.
var ErrInvalidUsername = errors.New("auth: invalid username")

// ParseError reports a problem at one line of a password or ACL file. Its
// message has the form "auth: FILE:LINE: PROBLEM", the problem quoting the
// offending token.
type ParseError struct {
	File string // the name given to the parser (the path for the loaders)
	Line int    // 1-based line number
	Msg  string // what is wrong, quoting the bad token
}

// Error implements error.
func (e *ParseError) Error() string {
	return fmt.Sprintf("auth: %s:%d: %s", e.File, e.Line, e.Msg)
}

// Unwrap makes errors.Is(err, ErrSyntax) true.
func (e *ParseError) Unwrap() error { return ErrSyntax }

// parseErrorf builds a *ParseError.
func parseErrorf(file string, line int, format string, args ...any) *ParseError {
	return &ParseError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}
