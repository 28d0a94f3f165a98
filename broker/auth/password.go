package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Parameters of Mosquitto's password hashes.
const (
	// DefaultIterations is the PBKDF2 iteration count mosquitto_passwd uses
	// for $7$ hashes, and the one HashPassword uses.
	DefaultIterations = 101
	// MaxIterations bounds the iteration count accepted in a $7$ hash, so
	// that a hostile or mistyped file cannot make each CONNECT burn minutes
	// of CPU. Mosquitto itself accepts any count of at least 1.
	MaxIterations = 10_000_000

	saltLen = 12 // bytes; Mosquitto refuses other lengths
	hashLen = 64 // bytes: SHA-512 output, and the PBKDF2 key length
)

// Hash schemes, named by the "$N$" prefix of the hash field.
const (
	schemeSHA512 = 6 // $6$salt$hash: SHA-512(password || salt); not crypt(3)
	schemePBKDF2 = 7 // $7$iterations$salt$hash: PBKDF2-HMAC-SHA512
)

// PasswordFile is a parsed Mosquitto password file (the format written by
// mosquitto_passwd): lines "username:hash", where hash is
//
//	$6$<base64 salt>$<base64 hash>                hash = SHA-512(password || salt)
//	$7$<iterations>$<base64 salt>$<base64 hash>   hash = PBKDF2-HMAC-SHA512(password, salt, iterations, 64)
//
// with a 12-byte salt, a 64-byte hash and standard padded base64. Blank
// lines and lines starting with '#' (after leading blanks) are skipped;
// blanks around the username and the hash are ignored, as Mosquitto does.
//
// A username that appears on several lines takes the hash of the last one,
// as in mosquitto 2.0 (checked against 2.0.11). Unlike Mosquitto, which logs
// and skips a line without ':' or with a bad hash (locking that user out),
// the parser refuses the whole file with a *ParseError naming the line;
// plain-text passwords (a file not yet converted with mosquitto_passwd -U)
// are refused too.
//
// A PasswordFile is immutable and safe for concurrent use.
type PasswordFile struct {
	name  string
	users map[string]pwEntry
}

// pwEntry is one user's decoded hash.
type pwEntry struct {
	scheme     int
	iterations int // schemePBKDF2 only
	salt       []byte
	hash       []byte
}

// LoadPasswordFile reads and parses the password file at path. Syntax errors
// are *ParseError values naming path and the line.
func LoadPasswordFile(path string) (*PasswordFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: password file: %w", err)
	}
	return ParsePasswordFile(path, data)
}

// ParsePasswordFile parses the contents of a password file; name is used in
// error messages only. See PasswordFile for the format.
func ParsePasswordFile(name string, data []byte) (*PasswordFile, error) {
	p := &PasswordFile{name: name, users: make(map[string]pwEntry)}
	for i, raw := range splitLines(data) {
		lineNo := i + 1
		user, hash, ok, err := parsePasswordLine(name, lineNo, raw)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		e, msg := parseHash(hash)
		if msg != "" {
			return nil, parseErrorf(name, lineNo, "user %s: %s", quote(user), msg)
		}
		p.users[user] = e // the last line for a user wins, as in Mosquitto
	}
	return p, nil
}

// parsePasswordLine splits one line into username and hash field; ok is
// false for a blank or comment line.
func parsePasswordLine(name string, lineNo int, raw string) (user, hash string, ok bool, err error) {
	line := strings.Trim(raw, blanks)
	if line == "" || line[0] == '#' {
		return "", "", false, nil
	}
	if strings.IndexByte(line, 0) >= 0 {
		return "", "", false, parseErrorf(name, lineNo, "NUL byte in line")
	}
	user, hash, found := strings.Cut(line, ":")
	if !found {
		return "", "", false, parseErrorf(name, lineNo, "missing ':' between username and hash in %s", quote(line))
	}
	user = strings.TrimRight(user, blanks)
	hash = strings.TrimLeft(hash, blanks)
	if user == "" {
		return "", "", false, parseErrorf(name, lineNo, "empty username")
	}
	if len(user) > 65535 {
		return "", "", false, parseErrorf(name, lineNo, "username longer than 65535 bytes")
	}
	return user, hash, true, nil
}

// parseHash decodes a "$6$..." or "$7$..." hash field. msg is empty on
// success and otherwise says what is wrong.
func parseHash(h string) (e pwEntry, msg string) {
	if h == "" {
		return e, "empty password hash"
	}
	if h[0] != '$' {
		return e, fmt.Sprintf("password hash %s does not start with '$' (a plain-text password? convert the file with mosquitto_passwd -U)", quote(h))
	}
	f := strings.Split(h[1:], "$")
	switch f[0] {
	case "6":
		if len(f) != 3 {
			return e, fmt.Sprintf("hash %s: want $6$<salt>$<hash>", quote(h))
		}
		e.scheme = schemeSHA512
		f = f[1:]
	case "7":
		if len(f) != 4 {
			return e, fmt.Sprintf("hash %s: want $7$<iterations>$<salt>$<hash>", quote(h))
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || f[1][0] < '0' || f[1][0] > '9' || n < 1 || n > MaxIterations {
			return e, fmt.Sprintf("iteration count %s is not an integer from 1 to %d", quote(f[1]), MaxIterations)
		}
		e.scheme = schemePBKDF2
		e.iterations = n
		f = f[2:]
	default:
		return e, fmt.Sprintf("unknown hash type %s (want $6$ or $7$)", quote("$"+f[0]+"$"))
	}
	salt, err := base64.StdEncoding.DecodeString(f[0])
	if err != nil || len(salt) != saltLen {
		return e, fmt.Sprintf("salt %s is not %d bytes of base64", quote(f[0]), saltLen)
	}
	sum, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(sum) != hashLen {
		return e, fmt.Sprintf("hash %s is not %d bytes of base64", quote(f[1]), hashLen)
	}
	e.salt, e.hash = salt, sum
	return e, ""
}

// digest hashes password with e's scheme and parameters. It returns nil if
// the hash cannot be computed (PBKDF2 refuses its input in FIPS-only mode).
func (e *pwEntry) digest(password []byte) []byte {
	switch e.scheme {
	case schemeSHA512:
		h := sha512.New()
		h.Write(password)
		h.Write(e.salt)
		return h.Sum(nil)
	case schemePBKDF2:
		key, err := pbkdf2.Key(sha512.New, string(password), e.salt, e.iterations, hashLen)
		if err != nil {
			return nil
		}
		return key
	}
	return nil
}

// dummyEntry is hashed against when the username is unknown, so that an
// unknown user costs about as much as a known one with default parameters.
// Never modified.
var dummyEntry = pwEntry{scheme: schemePBKDF2, iterations: DefaultIterations, salt: make([]byte, saltLen), hash: make([]byte, hashLen)}

// Check reports whether password is the password of username. The hash is
// compared in constant time; an unknown username costs one default-strength
// hash too, so the reply time does not tell which users exist. A nil
// PasswordFile refuses everyone. Safe for concurrent use.
func (p *PasswordFile) Check(username, password []byte) bool {
	if p == nil {
		return false
	}
	e, ok := p.users[string(username)]
	if !ok {
		d := dummyEntry
		subtle.ConstantTimeCompare(d.digest(password), d.hash)
		return false
	}
	return subtle.ConstantTimeCompare(e.digest(password), e.hash) == 1
}

// Has reports whether the file has a line for username. Safe for concurrent
// use.
func (p *PasswordFile) Has(username string) bool {
	if p == nil {
		return false
	}
	_, ok := p.users[username]
	return ok
}

// Users returns the usernames in the file, sorted. Safe for concurrent use.
func (p *PasswordFile) Users() []string {
	if p == nil {
		return nil
	}
	out := make([]string, 0, len(p.users))
	for u := range p.users {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// HashPassword returns a password-file hash of password in Mosquitto's
// default scheme: "$7$101$<salt>$<hash>", PBKDF2-HMAC-SHA512 with
// DefaultIterations rounds, a random 12-byte salt and a 64-byte key, as
// mosquitto_passwd writes.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	return hashPBKDF2(password, salt, DefaultIterations)
}

// hashPBKDF2 formats a $7$ hash of password with the given salt and
// iteration count.
func hashPBKDF2(password string, salt []byte, iterations int) (string, error) {
	key, err := pbkdf2.Key(sha512.New, password, salt, iterations, hashLen)
	if err != nil {
		return "", fmt.Errorf("auth: pbkdf2: %w", err)
	}
	enc := base64.StdEncoding
	return "$7$" + strconv.Itoa(iterations) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key), nil
}
