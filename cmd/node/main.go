// Command flockmq runs one FlockMQ node: an MQTT broker on gnet event loops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flockmq/flockmq/admin"
	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cluster"
	"github.com/flockmq/flockmq/eventloop"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(runCtl(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "passwd" {
		os.Exit(runPasswd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run starts the node and blocks until SIGINT or SIGTERM; it returns the
// process exit status.
func run(args []string, env func(string) string, stderr io.Writer) int {
	cfg, err := loadConfig(args, env, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "flockmq: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "flockmq: log level %q is not debug, info, warn or error\n", cfg.LogLevel)
		return 2
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.LogFormat == "json" {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)

	// Catch the signals from the start: a SIGTERM that arrives while raft
	// waits for a leader, or once clients can connect, must take the orderly
	// path below, not the default action (death without DISCONNECT 0x8B and
	// with a non-zero status). One that came early is handled once serving.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	// POST /api/v1/node/leave (flockmq ctl leave) takes the same path.
	stopReq := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopReq) }) }

	// The admin listener is bound first: its port is gossiped to the other
	// nodes, and a port taken is a start-up failure like any other.
	var adminLn net.Listener
	if cfg.AdminListen != "" {
		adminLn, err = net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			fmt.Fprintf(stderr, "flockmq: admin listen on %s: %v\n", cfg.AdminListen, err)
			return 1
		}
		defer adminLn.Close()
	}

	opts := []broker.Option{broker.WithLogger(log)}
	sec, err := newSecurity(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "flockmq: %v\n", err)
		return 2
	}
	opts = append(opts, sec.options()...)
	var node *cluster.Node
	var cl *cluster.Cluster
	if cfg.Store == "raft" {
		peers, _ := cluster.ParsePeers(cfg.RaftPeers) // validated by loadConfig
		// A node given seeds to join bootstraps through gossip
		// (bootstrap-expect) or waits for the leader to add it.
		gossipExpect := 0
		noBootstrap := !cfg.Bootstrap
		if len(cfg.Join) > 0 && len(peers) == 0 {
			gossipExpect, noBootstrap = cfg.Expect, true
		}
		var key []byte
		if cfg.ClusterKey != "" {
			key, _ = cluster.ParseClusterKey(cfg.ClusterKey) // validated by loadConfig
		}
		node, err = cluster.StartNode(cluster.NodeConfig{ID: cfg.NodeID, DataDir: cfg.DataDir,
			RaftBind: cfg.RaftBind, RaftAdvertise: cfg.RaftAdvertise, Peers: peers,
			BootstrapExpect: len(peers), NoBootstrap: noBootstrap, Key: key, Logger: log})
		if err != nil {
			fmt.Fprintf(stderr, "flockmq: %v\n", err)
			return 1
		}
		defer node.Close()
		if cfg.NetsplitCleanSessions {
			node.AllowNetsplitCleanSessions()
		}
		if cfg.clustered() {
			cl, err = cluster.NewCluster(cluster.ClusterConfig{Node: node, BindAddr: cfg.ClusterBind,
				AdvertiseAddr: cfg.ClusterAdvertise, GossipPort: cfg.GossipPort, PeerPort: cfg.PeerPort,
				Join: cfg.Join, BootstrapExpect: gossipExpect, DeadGrace: cfg.DeadGrace, QuorumFence: cfg.QuorumFence,
				Version: broker.Version, AdminAddr: adminAdvertise(adminLn, cfg), Logger: log})
			if err != nil {
				fmt.Fprintf(stderr, "flockmq: %v\n", err)
				return 1
			}
			defer cl.Close()
			opts = append(opts, broker.WithRemote(cl))
		}
		opts = append(opts, broker.WithStore(node.Store()))
	}
	if cfg.PprofListen != "" {
		_, stop, err := servePprof(cfg.PprofListen, log)
		if err != nil {
			fmt.Fprintf(stderr, "flockmq: %v\n", err)
			return 1
		}
		defer stop()
	}
	b, err := broker.New(cfg.Broker, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "flockmq: %v\n", err)
		return 2
	}
	if cl != nil {
		if err := cl.Start(b); err != nil {
			fmt.Fprintf(stderr, "flockmq: %v\n", err)
			_ = b.Shutdown(time.Second)
			return 1
		}
	}
	// The admin endpoint serves from here on: /healthz answers while raft
	// waits for a leader, and /readyz says why the node is not ready.
	var serving atomic.Bool // the MQTT listener is up and no signal came
	if adminLn != nil {
		adm, err := admin.New(admin.Config{Token: cfg.AdminToken, Pprof: cfg.AdminPprof, Logger: log,
			Advertise: adminAdvertise(adminLn, cfg)},
			admin.Node{Broker: b, Raft: node, Cluster: cl, Serving: serving.Load, Stop: stop})
		if err != nil {
			fmt.Fprintf(stderr, "flockmq: %v\n", err)
			return 1
		}
		adm.Serve(adminLn)
		defer adm.Close()
	}
	if node != nil {
		if err := node.WaitReady(15 * time.Second); err != nil {
			// Serve anyway: without a leader, sessions that need the registry
			// are refused with Server Unavailable until one is elected.
			log.Warn("serving before raft has a leader", "err", err)
		}
		log.Info("raft ready", "node", node.ID(), "data", cfg.DataDir)
		node.Run(b)
	}
	// SIGHUP reloads the password file, the ACL file and the certificates;
	// one that comes before the listeners are up waits for them.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv := eventloop.NewServer(b, cfg.Listen, eventloop.Options{Loops: cfg.Loops, Logger: log,
		MaxPartialPacketBytes: int64(cfg.PartialBytes), ProxyProtocol: cfg.ProxyProtocol})
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "flockmq: %v\n", err)
		_ = b.Shutdown(time.Second) // stops the $SYS publisher
		return 1
	}
	std, err := serveStd(b, cfg, sec, log)
	if err != nil {
		fmt.Fprintf(stderr, "flockmq: %v\n", err)
		_ = b.Shutdown(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Stop(ctx)
		cancel()
		return 1
	}
	go func() {
		for range hup {
			sec.reload()
		}
	}()
	log.Info("flockmq serving MQTT", "listen", srv.Addr().String(), "version", broker.Version)
	serving.Store(true)

	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case <-stopReq:
		log.Info("shutting down", "requested", "admin API (leave)")
	}
	serving.Store(false)
	if cl != nil {
		// Leave first: leadership moves on and the other nodes drop this
		// node's routes before its clients go.
		cl.Leave(3 * time.Second)
	}
	// Stop accepting is implied by closing every client first: v5 clients get
	// DISCONNECT 0x8B, then the engine stops.
	if err := b.Shutdown(5 * time.Second); err != nil {
		log.Warn("shutdown", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		log.Warn("engine stop", "err", err)
	}
	if std != nil {
		if err := std.Stop(ctx); err != nil {
			log.Warn("TLS and WebSocket listeners stop", "err", err)
		}
	}
	log.Info("stopped")
	return 0
}

// adminAdvertise is the admin address gossiped to the other nodes: the bound
// port on the bound host, or on the cluster's address when the admin
// endpoint listens on every interface.
func adminAdvertise(ln net.Listener, cfg nodeConfig) string {
	if ln == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = cfg.ClusterAdvertise
		if host == "" {
			host = cfg.ClusterBind
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return "" // no address to tell: the bound one stands
		}
	}
	return net.JoinHostPort(host, port)
}
