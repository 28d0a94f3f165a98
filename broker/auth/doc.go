// Package auth reads Mosquitto-compatible authentication and authorisation
// files: the password file written by mosquitto_passwd (PasswordFile) and
// the acl_file (ACL), with atomic edits of the password file (SetPassword,
// DeletePassword) and hot reload (Reloadable).
//
// The package is pure: bytes and paths in, decisions out; no sockets,
// goroutines or logging. Parsed values are immutable and safe for
// concurrent use. A file that cannot be parsed is refused as a whole with a
// *ParseError naming the file, the line and the offending token; Mosquitto
// itself skips or logs some of those lines, this package does not, so that
// an edit that would silently lock a user out (or let one in) is caught at
// load time.
//
// Where Mosquitto's own behaviour (checked against mosquitto 2.0.11)
// differs from the rules implemented here, the type's documentation says
// so.
package auth
