package bench

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrFileLimit is returned when a run needs more open files than the
// process may have.
var ErrFileLimit = errors.New("bench: open-file limit too low")

// FileLimit returns the soft and hard RLIMIT_NOFILE of the process.
func FileLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("bench: getrlimit: %w", err)
	}
	return rl.Cur, rl.Max, nil
}

// openFiles counts the descriptors open now, plus two for the Go poller (an
// epoll descriptor and an eventfd) when it is not open yet; 10 when /proc
// is not there.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 10
	}
	n := len(ents) - 1 // the directory being read
	poller := false
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		poller = poller || l == "anon_inode:[eventpoll]"
	}
	if !poller {
		n += 2
	}
	return n
}

// filesReserved is a run's open files besides its connections: those
// counted by openFiles at its start (stdio, the cgroup files the Go runtime
// keeps, the Go poller, inherited ones); an epoll descriptor and an eventfd
// per gnet loop; and a second descriptor per dialer while gnet duplicates a
// new socket. /proc reads happen while no dialer runs.
func filesReserved(cfg *Config, open int) int {
	return open + 2*cfg.Loops + cfg.Dialers
}

// checkFileLimit returns an ErrFileLimit error when cfg's connections and
// the files it reserves, open of them open already, do not fit under the
// soft limit.
func checkFileLimit(cfg *Config, soft, hard uint64, open int) error {
	conns := cfg.Connections()
	reserved := filesReserved(cfg, open)
	need := uint64(conns + reserved)
	if need <= soft {
		return nil
	}
	room := int64(soft) - int64(reserved) - int64(conns-cfg.Clients) // beside the -c ones
	if cfg.Scenario == "pairs" || cfg.Scenario == "latency" {
		room = (int64(soft) - int64(reserved)) / 2
	}
	return fmt.Errorf("%w: %s -c %d opens %d connections and needs about %d open files (one per connection, "+
		"%d for the tool itself with --loops %d and --dialers %d), but the open-file limit (ulimit -n) is %d, hard limit %d. "+
		"Use -c %d at most, fewer --dialers, or split the load over several tool processes (each has its own limit)",
		ErrFileLimit, cfg.Scenario, cfg.Clients, conns, need, reserved, cfg.Loops, cfg.Dialers, soft, hard, max(room, 0))
}
