package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The forwarding RPC carries a follower's proposal to the leader over the
// raft port (stream type 'F'). A request is one frame, [u32 length][payload];
// the answer is [u32 length][status][payload], status 0 for a result and 1
// for an error text. Calls on one connection are sequential; a small pool per
// address keeps connections for reuse.

const (
	maxForwardFrame = 64 << 20
	fwdOK           = 0
	fwdErr          = 1
)

// ErrRemote is wrapped around an error the leader returned.
var ErrRemote = errors.New("cluster: leader refused the proposal")

// forwardHandler serves forwarded proposals with apply until the peer hangs
// up or sends a bad frame.
func forwardHandler(apply func(req []byte) ([]byte, error)) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		w := bufio.NewWriter(c)
		for {
			req, err := readFrame(r)
			if err != nil {
				return
			}
			resp, aerr := apply(req)
			status := byte(fwdOK)
			if aerr != nil {
				status, resp = fwdErr, []byte(aerr.Error())
			}
			var hdr [5]byte
			binary.BigEndian.PutUint32(hdr[:4], uint32(len(resp)+1))
			hdr[4] = status
			if _, err := w.Write(hdr[:]); err != nil {
				return
			}
			if _, err := w.Write(resp); err != nil {
				return
			}
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxForwardFrame {
		return nil, fmt.Errorf("cluster: forwarded frame of %d bytes is over the limit", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// forwardPool keeps idle forwarding connections per address. Safe for
// concurrent use.
type forwardPool struct {
	auth *connAuth // the raft port's cluster key handshake; nil without a key

	mu   sync.Mutex
	idle map[string][]*fwdConn
}

type fwdConn struct {
	c net.Conn
	r *bufio.Reader
}

func newForwardPool(auth *connAuth) *forwardPool {
	return &forwardPool{auth: auth, idle: make(map[string][]*fwdConn)}
}

// call sends req to addr and returns the leader's answer.
func (p *forwardPool) call(addr string, req []byte, timeout time.Duration) ([]byte, error) {
	fc, err := p.get(addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = fc.c.SetDeadline(time.Now().Add(timeout))
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(req)), uint32(len(req)))
	frame = append(frame, req...)
	if _, err := fc.c.Write(frame); err != nil {
		fc.c.Close()
		return nil, err
	}
	resp, err := readFrame(fc.r)
	if err != nil {
		fc.c.Close()
		return nil, err
	}
	if len(resp) == 0 {
		fc.c.Close()
		return nil, errors.New("cluster: empty forwarding answer")
	}
	_ = fc.c.SetDeadline(time.Time{})
	p.put(addr, fc)
	if resp[0] == fwdErr {
		return nil, fmt.Errorf("%w: %s", ErrRemote, resp[1:])
	}
	return resp[1:], nil
}

func (p *forwardPool) get(addr string, timeout time.Duration) (*fwdConn, error) {
	p.mu.Lock()
	if l := p.idle[addr]; len(l) > 0 {
		fc := l[len(l)-1]
		p.idle[addr] = l[:len(l)-1]
		p.mu.Unlock()
		return fc, nil
	}
	p.mu.Unlock()
	c, err := dial(addr, streamForward, timeout, p.auth)
	if err != nil {
		return nil, err
	}
	return &fwdConn{c: c, r: bufio.NewReader(c)}, nil
}

func (p *forwardPool) put(addr string, fc *fwdConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle[addr]) >= 4 {
		fc.c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], fc)
}

// close drops every idle connection.
func (p *forwardPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, l := range p.idle {
		for _, fc := range l {
			fc.c.Close()
		}
		delete(p.idle, a)
	}
}
