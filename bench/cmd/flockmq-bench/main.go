// Command flockmq-bench is the FlockMQ load tool. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/flockmq/flockmq/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command and returns the exit status: 0 after a run or after
// the usage asked for with -h, -help, --help or help (as flockmq does), 1
// when the run failed, 2 for a command line it cannot use.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stderr)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if args[0] == "compare" {
		return runCompare(ctx, args[1:], stdout, stderr)
	}
	cfg, err := bench.ParseFlags(args[0], args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag package printed the scenario's flags
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg.Progress = stderr
	sum, err := bench.Run(ctx, cfg)
	if sum != nil {
		if werr := output(sum, cfg, stdout); werr != nil {
			fmt.Fprintln(stderr, werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func output(sum *bench.Summary, cfg bench.Config, stdout io.Writer) error {
	if cfg.Report != "" {
		if err := bench.WriteReportFile(cfg.Report, sum); err != nil {
			return err
		}
	}
	if cfg.JSON {
		return sum.WriteJSON(stdout)
	}
	sum.WriteText(stdout)
	return nil
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cc, err := bench.ParseCompare(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cc.Progress = stderr
	res, err := bench.Compare(ctx, cc)
	if res != nil {
		if cc.JSON {
			if werr := res.WriteJSON(stdout); werr != nil {
				fmt.Fprintln(stderr, werr)
				return 1
			}
		} else {
			res.WriteText(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: flockmq-bench <scenario> [flags]")
	fmt.Fprintln(w, "       flockmq-bench compare --target name=host:port ... [--rounds 3] [--json] -- <scenario> [flags]")
	fmt.Fprintln(w, "\nscenarios:")
	for _, s := range bench.Scenarios {
		fmt.Fprintf(w, "  %-9s %s\n", s, bench.ScenarioHelp[s])
	}
	fmt.Fprintln(w, "\nflockmq-bench <scenario> -h lists the flags.")
}
