// Command mochi runs the mochi-mqtt broker with its default options and an
// allow-all auth hook, as a peer for `make bench-compare`. It has its own
// go.mod so that mochi's dependencies stay out of the FlockMQ module.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

const mochiModule = "github.com/mochi-mqtt/server/v2"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run serves until SIGINT or SIGTERM and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mochi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1883", "MQTT over TCP listen `address`")
	version := fs.Bool("version", false, "print the mochi-mqtt version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, mochiVersion())
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Catch the signals before serving, so that a SIGTERM that arrives once
	// clients can connect takes the orderly path.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	srv := mqtt.New(&mqtt.Options{Logger: log}) // defaults for everything else
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		fmt.Fprintf(stderr, "mochi: %v\n", err)
		return 1
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *listen})); err != nil {
		fmt.Fprintf(stderr, "mochi: %v\n", err)
		return 1
	}
	if err := srv.Serve(); err != nil {
		fmt.Fprintf(stderr, "mochi: %v\n", err)
		return 1
	}
	<-sig
	if err := srv.Close(); err != nil {
		fmt.Fprintf(stderr, "mochi: close: %v\n", err)
		return 1
	}
	return 0
}

// mochiVersion is the mochi-mqtt module version this binary was built with.
func mochiVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == mochiModule {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}
