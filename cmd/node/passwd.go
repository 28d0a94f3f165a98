package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/flockmq/flockmq/broker/auth"
)

// runPasswd runs `flockmq passwd`: it adds, changes (-b with the password
// as an argument, or read from standard input) or deletes (-D) a user of a
// Mosquitto password file, which it creates if missing. The hash is $7$
// (PBKDF2-SHA512), which mosquitto_passwd writes too. It returns the exit
// status: 0, 1 when the file could not be changed, 2 for a usage error.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flockmq passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	batch := fs.Bool("b", false, "take the password from the command line: flockmq passwd -b FILE USER PASSWORD")
	del := fs.Bool("D", false, "delete the user: flockmq passwd -D FILE USER")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: flockmq passwd [-b] FILE USER [PASSWORD]\n       flockmq passwd -D FILE USER\n\n"+
			"Adds or changes a user of a Mosquitto password file (created if missing), or deletes one.\n"+
			"Without -b the password is read from standard input.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	a := fs.Args()
	switch {
	case *del && len(a) == 2:
		if err := auth.DeletePassword(a[0], a[1]); err != nil {
			fmt.Fprintf(stderr, "flockmq passwd: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "deleted %s from %s\n", a[1], a[0])
		return 0
	case *del:
		fs.Usage()
		return 2
	case *batch && len(a) == 3:
		return setPassword(a[0], a[1], a[2], stdout, stderr)
	case !*batch && len(a) == 2:
		fmt.Fprint(stderr, "Password: ")
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			fmt.Fprintln(stderr, "\nflockmq passwd: no password on standard input")
			return 1
		}
		fmt.Fprintln(stderr)
		return setPassword(a[0], a[1], strings.TrimRight(line, "\r\n"), stdout, stderr)
	}
	fs.Usage()
	return 2
}

func setPassword(file, user, password string, stdout, stderr io.Writer) int {
	if password == "" {
		fmt.Fprintln(stderr, "flockmq passwd: the password is empty")
		return 1
	}
	if err := auth.SetPassword(file, user, password); err != nil {
		fmt.Fprintf(stderr, "flockmq passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "set the password of %s in %s\n", user, file)
	return 0
}
