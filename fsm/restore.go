package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Restore replaces all state with the snapshot read from rc, and closes rc.
// The snapshot is read and verified completely before anything changes: on
// error the FSM keeps its previous state and the error names the problem
// (wrapping ErrBadMagic, ErrUnsupportedVersion, ErrTruncated, ErrMalformed or
// ErrChecksum). Indexes (owners, expiry and will queues) are rebuilt from the
// restored records. Safe for concurrent use (serialized with the other
// writers); readers see the old state until the new one is complete.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.mu.Lock()
	f.work = st
	f.st.Store(st.publish())
	f.mu.Unlock()
	return nil
}

// snapReader reads the snapshot stream, keeping the CRC of what it consumed.
type snapReader struct {
	br  *bufio.Reader
	crc uint32
	off int64
	buf []byte
}

func (s *snapReader) truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s at offset %d", ErrTruncated, what, s.off)
	}
	return fmt.Errorf("fsm: reading %s at offset %d: %w", what, s.off, err)
}

func (s *snapReader) readByte(what string) (byte, error) {
	c, err := s.br.ReadByte()
	if err != nil {
		return 0, s.truncated(what, err)
	}
	s.crc = crc32.Update(s.crc, castagnoli, []byte{c})
	s.off++
	return c, nil
}

func (s *snapReader) readUvarint(what string) (uint64, error) {
	var v uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := s.readByte(what)
		if err != nil {
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: %s: varint overflow at offset %d", ErrMalformed, what, s.off)
}

// readFull reads n bytes into s.buf, growing it as data arrives so that a
// corrupt length cannot force a large allocation up front.
func (s *snapReader) readFull(n int, what string) ([]byte, error) {
	s.buf = s.buf[:0]
	for len(s.buf) < n {
		chunk := min(n-len(s.buf), 1<<20)
		start := len(s.buf)
		s.buf = append(s.buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(s.br, s.buf[start:]); err != nil {
			return nil, s.truncated(what, err)
		}
		s.crc = crc32.Update(s.crc, castagnoli, s.buf[start:])
		s.off += int64(chunk)
	}
	return s.buf, nil
}

// record reads one record's kind and body.
func (s *snapReader) record() (byte, []byte, error) {
	kind, err := s.readByte("record kind")
	if err != nil || kind == recEnd {
		return kind, nil, err
	}
	n, err := s.readUvarint("record length")
	if err != nil {
		return 0, nil, err
	}
	if n > maxRecordSize {
		return 0, nil, fmt.Errorf("%w: record of %d bytes at offset %d exceeds %d", ErrMalformed, n, s.off, maxRecordSize)
	}
	body, err := s.readFull(int(n), "record body")
	return kind, body, err
}

func readSnapshot(rc io.Reader) (*state, error) {
	s := &snapReader{br: bufio.NewReaderSize(rc, 64<<10)}
	magic, err := s.readFull(len(snapshotMagic), "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != snapshotMagic {
		return nil, fmt.Errorf("%w: %q", ErrBadMagic, magic)
	}
	v, err := s.readByte("version")
	if err != nil {
		return nil, err
	}
	if v != SnapshotVersion {
		return nil, fmt.Errorf("%w: snapshot version %d, want %d", ErrUnsupportedVersion, v, SnapshotVersion)
	}
	var counts [3]uint64
	for i, what := range []string{"session count", "retained count", "boot count"} {
		if counts[i], err = s.readUvarint(what); err != nil {
			return nil, err
		}
	}
	t := newTxn(emptyState())
	boots := map[bootKey]*bootEntry{}
	var got [3]uint64
	var lastKey string // records of a kind come in strictly increasing key order
	kinds := [3]byte{recSession, recRetained, recBoot}
	stage := 0
	for {
		kind, body, err := s.record()
		if err != nil {
			return nil, err
		}
		if kind == recEnd {
			break
		}
		for stage < 3 && kinds[stage] != kind {
			stage++
		}
		if stage == 3 {
			return nil, fmt.Errorf("%w: unknown or out-of-order record kind %q at offset %d", ErrMalformed, kind, s.off)
		}
		if got[stage] == counts[stage] {
			return nil, fmt.Errorf("%w: more %q records than the header's %d", ErrMalformed, kind, counts[stage])
		}
		got[stage]++
		r := &reader{b: body}
		switch kind {
		case recSession:
			ss := readSessionRecord(r)
			r.end("session record")
			if r.err == nil && got[stage] > 1 && ss.ClientID <= lastKey {
				r.fail(ErrMalformed, "session records out of order")
			}
			if r.err == nil {
				t.putSession(nil, ss)
				lastKey = ss.ClientID
			}
		case recRetained:
			m := readRetainedRecord(r)
			r.end("retained record")
			key := topicKey(m.Topic)
			if r.err == nil && got[stage] > 1 && key <= lastKey {
				r.fail(ErrMalformed, "retained records out of order")
			}
			if r.err == nil {
				t.putRetained(nil, m, key)
				lastKey = key
			}
		case recBoot:
			k, e := readBootRecord(r)
			r.end("boot record")
			if r.err == nil && boots[k] != nil {
				r.fail(ErrMalformed, "duplicate boot record")
			}
			boots[k] = e
		}
		if r.err != nil {
			return nil, fmt.Errorf("%q record ending at offset %d: %w", kind, s.off, r.err)
		}
	}
	if got != counts {
		return nil, fmt.Errorf("%w: records %v, header says %v", ErrTruncated, got, counts)
	}
	want := s.crc
	sum, err := s.readFull(4, "checksum")
	if err != nil {
		return nil, err
	}
	if have := binary.BigEndian.Uint32(sum); have != want {
		return nil, fmt.Errorf("%w: stored %08x, computed %08x", ErrChecksum, have, want)
	}
	if _, err := s.br.ReadByte(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("%w: data after the checksum at offset %d", ErrMalformed, s.off)
		}
		return nil, fmt.Errorf("fsm: reading past the checksum: %w", err)
	}
	t.boots = boots
	return t.state, nil
}
