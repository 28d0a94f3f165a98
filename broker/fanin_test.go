//go:build linux

package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/bench"
	"github.com/flockmq/flockmq/codec"
)

// testFanInNoLoss is issue 10's QoS 1 loss: eight QoS 1 publishers and one
// QoS 1 subscriber on a broker as `make run` starts it (raft store, two
// loops), at full speed for a few seconds. Publishers on the subscriber's
// loop and on the other one outpace it; every acknowledged message must be
// received, once and in order, and the subscriber must not be disconnected.
func testFanInNoLoss(t *testing.T, bin string) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ch := startChild(t, bin, "-loops", "2")
			cfg := bench.DefaultConfig()
			cfg.Scenario = "fanin"
			cfg.Hosts = []string{ch.Addr}
			cfg.Version, cfg.QoS = v, 1
			cfg.Clients = 8
			cfg.Duration = 3 * time.Second
			cfg.Drain = 20 * time.Second
			cfg.Interval = 0
			sum, err := bench.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			q := sum.Seq
			t.Logf("sent %d acked %d delivered %d of %d expected; lost %d duplicated %d reordered %d",
				sum.Pub.Sent, sum.Pub.Acked, sum.Pub.Delivered, sum.Pub.Expected, q.Lost, q.Duplicated, q.Late)
			if sum.Conn.Failed != 0 || sum.Conn.Dropped != 0 || len(sum.Errors) != 0 {
				t.Fatalf("connections %+v, errors %v", sum.Conn, sum.Errors)
			}
			if sum.Pub.Acked < 10_000 {
				t.Fatalf("only %d publishes acknowledged: the broker did not carry the load", sum.Pub.Acked)
			}
			if q.Lost != 0 || q.Duplicated != 0 || q.Late != 0 || sum.Pub.Delivered != sum.Pub.Acked {
				t.Fatalf("acknowledged %d, delivered %d: lost %d duplicated %d reordered %d",
					sum.Pub.Acked, sum.Pub.Delivered, q.Lost, q.Duplicated, q.Late)
			}
			if log := ch.Log.String(); strings.Contains(log, "slow consumer") {
				t.Fatalf("the subscriber was disconnected:\n%s", log)
			}
		})
	}
}
