package admin

import (
	"net/http"
	"sync"
	"time"

	"github.com/flockmq/flockmq/broker"
)

// rates samples the broker's counters every rateEvery and keeps the last
// rateSamples, for the dashboard's charts: the page draws the recent past
// at once instead of starting empty.
type rates struct {
	b       *broker.Broker
	mu      sync.Mutex
	samples []rateSample // oldest first
	prev    rawCounters
	quit    chan struct{}
	once    sync.Once
}

const (
	rateEvery   = 5 * time.Second
	rateSamples = 180 // 15 minutes
)

type rateSample struct {
	Time        time.Time `json:"time"`
	Connections int64     `json:"connections"`
	Clients     int64     `json:"clients"`
	MsgsIn      float64   `json:"messages_in_per_second"`
	MsgsOut     float64   `json:"messages_out_per_second"`
	BytesIn     float64   `json:"bytes_in_per_second"`
	BytesOut    float64   `json:"bytes_out_per_second"`
	Dropped     float64   `json:"dropped_per_second"`
}

type rawCounters struct {
	at                             time.Time
	msgsIn, msgsOut, bytesIn, bOut uint64
	dropped                        uint64
}

func newRates(b *broker.Broker) *rates {
	r := &rates{b: b, quit: make(chan struct{})}
	r.prev = r.read()
	return r
}

func (r *rates) read() rawCounters {
	st := r.b.Stats()
	return rawCounters{at: time.Now(), msgsIn: broker.Sum(&st.PublishReceived), msgsOut: broker.Sum(&st.PublishSent),
		bytesIn: st.BytesReceived.Load(), bOut: st.BytesSent.Load(),
		dropped: st.DroppedQoS0.Load() + st.DroppedQueueFull.Load() + st.DroppedExpired.Load() + st.DroppedTooLarge.Load()}
}

func (r *rates) run() {
	t := time.NewTicker(rateEvery)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
			r.sample()
		}
	}
}

func (r *rates) stop() { r.once.Do(func() { close(r.quit) }) }

// sample adds the rates since the previous sample.
func (r *rates) sample() {
	cur := r.read()
	st := r.b.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := cur.at.Sub(r.prev.at).Seconds()
	if secs <= 0 {
		return
	}
	per := func(a, b uint64) float64 { return float64(a-min(b, a)) / secs }
	r.samples = append(r.samples, rateSample{Time: cur.at.UTC().Truncate(time.Millisecond),
		Connections: st.ConnectionsOpen.Load(), Clients: st.ClientsConnected.Load(),
		MsgsIn: per(cur.msgsIn, r.prev.msgsIn), MsgsOut: per(cur.msgsOut, r.prev.msgsOut),
		BytesIn: per(cur.bytesIn, r.prev.bytesIn), BytesOut: per(cur.bOut, r.prev.bOut),
		Dropped: per(cur.dropped, r.prev.dropped)})
	if len(r.samples) > rateSamples {
		r.samples = append(r.samples[:0], r.samples[len(r.samples)-rateSamples:]...)
	}
	r.prev = cur
}

func (s *Server) getRates(w http.ResponseWriter, _ *http.Request) error {
	s.rate.mu.Lock()
	out := append([]rateSample{}, s.rate.samples...)
	s.rate.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"interval_seconds": rateEvery.Seconds(), "data": out})
	return nil
}
