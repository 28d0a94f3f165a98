package broker

import (
	"strconv"
	"time"
)

// sysLoop publishes the $SYS/broker/... topics every SysInterval, retained
// and local to this node (they do not go through the store).
func (b *Broker) sysLoop() {
	defer close(b.sysDone)
	t := time.NewTicker(b.cfg.SysInterval)
	defer t.Stop()
	b.publishSys()
	for {
		select {
		case <-b.sysStop:
			return
		case <-t.C:
			b.publishSys()
		}
	}
}

// SysTopics returns the current $SYS topics and values. Safe for concurrent use.
func (b *Broker) SysTopics() [][2]string {
	st := &b.stats
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	topics := [][2]string{
		{"$SYS/broker/version", "flockmq " + Version},
		{"$SYS/broker/uptime", strconv.FormatInt(int64(time.Since(b.started)/time.Second), 10) + " seconds"},
		{"$SYS/broker/clients/connected", i(st.ClientsConnected.Load())},
		{"$SYS/broker/clients/total", i(int64(b.sessionCount()))},
		{"$SYS/broker/connections/open", i(st.ConnectionsOpen.Load())},
		{"$SYS/broker/messages/received", u(st.MessagesReceived.Load())},
		{"$SYS/broker/messages/sent", u(st.MessagesSent.Load())},
		{"$SYS/broker/publish/messages/received", u(Sum(&st.PublishReceived))},
		{"$SYS/broker/publish/messages/sent", u(Sum(&st.PublishSent))},
		{"$SYS/broker/publish/messages/dropped", u(st.DroppedQoS0.Load() + st.DroppedQueueFull.Load() + st.DroppedTooLarge.Load() + st.DroppedExpired.Load())},
		{"$SYS/broker/bytes/received", u(st.BytesReceived.Load())},
		{"$SYS/broker/bytes/sent", u(st.BytesSent.Load())},
		{"$SYS/broker/subscriptions/count", i(int64(b.trie.Subscriptions()))},
		{"$SYS/broker/retained messages/count", i(int64(b.store.RetainedCount()))},
		{"$SYS/broker/store/messages/count", i(st.QueuedMessagesHeld.Load())},
	}
	if b.remote != nil {
		topics = append(topics, b.remote.SysTopics()...)
		topics = append(topics,
			[2]string{"$SYS/cluster/sessions/arrived", u(st.SessionsArrived.Load())},
			[2]string{"$SYS/cluster/sessions/state-lost", u(st.TakeoverStateLost.Load())})
	}
	return topics
}

func (b *Broker) sessionCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clients.len()
}

func (b *Broker) publishSys() {
	for _, kv := range b.SysTopics() {
		m := &Message{Topic: []byte(kv[0]), Payload: []byte(kv[1]), Retain: true}
		b.sysRetain(m)
		b.Publish(m)
	}
}

// sysRetain keeps the latest $SYS values retained on this node only: they
// describe this node, so they never go to the replicated store.
func (b *Broker) sysRetain(m *Message) {
	b.sysMu.Lock()
	if b.sysRetained == nil {
		b.sysRetained = make(map[string]*Message)
	}
	b.sysRetained[string(m.Topic)] = m
	b.sysMu.Unlock()
}

// matchSys calls fn for the node-local $SYS values matching filter.
func (b *Broker) matchSys(filter []byte, fn func(*Message)) {
	if len(filter) == 0 || filter[0] != '$' {
		return // leading wildcards never match $ topics [MQTT-4.7.2-1]
	}
	b.sysMu.Lock()
	var found []*Message
	for _, m := range b.sysRetained {
		if topicMatch(filter, m.Topic) {
			found = append(found, m)
		}
	}
	b.sysMu.Unlock()
	for _, m := range found {
		fn(m)
	}
}
