package broker

import (
	"time"

	"github.com/flockmq/flockmq/codec"
)

// RestoredSession is a persistent session of this node read back from the
// store after a restart, before its client reconnects.
type RestoredSession struct {
	ClientID       string
	Epoch          uint64
	Expiry         uint32    // session expiry interval, seconds
	DisconnectedAt time.Time // when its last connection ended
	Subs           []PersistedSub
}

// parkLoop is a loop run by a goroutine of its own: it owns sessions that
// have no connection yet (restored after a restart) until a client claims
// them and they move to the client's loop.
type parkLoop struct {
	l    *Loop
	work chan func()
	stop chan struct{}
	done chan struct{}
}

func (b *Broker) startPark() *parkLoop {
	p := &parkLoop{work: make(chan func(), 1024), stop: make(chan struct{}), done: make(chan struct{})}
	p.l = b.NewLoop(func(f func()) bool {
		select {
		case p.work <- f:
			return true
		case <-p.stop:
			return false
		}
	})
	go func() {
		defer close(p.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case f := <-p.work:
				f()
			case <-tick.C:
				p.l.Tick()
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

// parked returns the loop that holds sessions without a connection
// (restored, adopted), started on first use; nil once the broker shut down.
func (b *Broker) parked() *parkLoop {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	if b.parkStopped {
		return nil
	}
	b.mu.Lock()
	p := b.park
	b.mu.Unlock()
	if p == nil {
		p = b.startPark() // registers a loop, which takes b.mu
		b.mu.Lock()
		b.park = p
		b.mu.Unlock()
	}
	return p
}

// AdoptClaim keeps the session of a claim that was reported failed (no raft
// leader took it in time, and its connection was refused) and that a new
// leader committed after all: the registry names this node as the owner. It
// is handled as the orphan of that connection (see parkOrphan): parked with
// the expiry req asked for, with its subscriptions (res.Persisted) and, when
// it resumed a session of another node, that node's state. Safe for
// concurrent use; it must not block (the raft apply path calls it).
func (b *Broker) AdoptClaim(req ClaimRequest, res ClaimResult) {
	adopt := func(l *Loop) {
		l.now = time.Now().UnixNano()
		c := &Client{l: l, closed: true, version: codec.Version(req.ProtocolVersion)}
		c.finishConnect(res, nil, connackInfo{clientID: req.ClientID, expiry: req.Expiry, cleanStart: req.CleanStart})
		l.Flush()
	}
	b.mu.Lock()
	old := b.clients.get(req.ClientID)
	b.mu.Unlock()
	if old != nil {
		b.onOwner(old, func(l *Loop) {
			if old.epoch > res.Epoch {
				return // a newer claim of this node holds the session
			}
			adopt(l)
		})
		return
	}
	p := b.parked()
	if p == nil {
		return // shut down
	}
	p.l.exec(func() { adopt(p.l) })
}

// RestoreSessions installs sessions read back from the store as offline
// sessions: their subscriptions match at once, so messages for them queue
// until their clients reconnect. Sessions whose expiry has passed are
// skipped. Safe for concurrent use; call it once, before serving clients.
func (b *Broker) RestoreSessions(list []RestoredSession) {
	if len(list) == 0 {
		return
	}
	p := b.parked()
	if p == nil {
		return // shut down
	}
	done := make(chan struct{})
	p.l.exec(func() {
		defer close(done)
		l := p.l
		l.now = time.Now().UnixNano()
		for _, rs := range list {
			left := time.Duration(rs.Expiry) * time.Second
			if rs.Expiry != 0xFFFFFFFF {
				left -= time.Since(rs.DisconnectedAt)
				if rs.Expiry == 0 || left <= 0 {
					continue
				}
			}
			b.mu.Lock()
			if b.clients.get(rs.ClientID) != nil {
				b.mu.Unlock()
				continue // a client got there first
			}
			s := b.newSession(rs.ClientID, l)
			s.epoch, s.expiry = rs.Epoch, rs.Expiry
			b.clients.put(s)
			b.mu.Unlock()
			l.installPersisted(s, rs.Subs)
			if rs.Expiry != 0xFFFFFFFF {
				l.armExpiryAfter(s, left)
			}
		}
	})
	<-done
}

// stopPark ends the park loop's goroutine.
func (b *Broker) stopPark() {
	b.parkMu.Lock()
	b.parkStopped = true
	b.parkMu.Unlock()
	b.mu.Lock()
	p := b.park
	b.mu.Unlock()
	if p != nil {
		close(p.stop)
		<-p.done
	}
}
