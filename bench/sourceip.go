package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxSourceIPs bounds the addresses a --source-ips range may expand to.
const MaxSourceIPs = 1 << 16

// ErrSourceIPs is returned for an unparsable --source-ips value.
var ErrSourceIPs = errors.New("bench: bad source address list")

// ParseSourceIPs parses a comma-separated list of IP addresses and CIDR
// ranges ("10.0.0.1,10.0.1.0/30"). A range expands to its host addresses: for
// IPv4 prefixes shorter than /31, the network and broadcast addresses are
// skipped, except in 127.0.0.0/8 where every address is a usable loopback.
// Each local address gives a further ~28k ephemeral ports (the default
// ip_local_port_range) to one broker address, so ten addresses open 280k
// connections from one machine.
func ParseSourceIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrSourceIPs, part, err)
			}
			out = append(out, a)
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrSourceIPs, part, err)
		}
		p = p.Masked()
		hostBits := p.Addr().BitLen() - p.Bits()
		if hostBits > 16 {
			return nil, fmt.Errorf("%w: %q expands to more than %d addresses", ErrSourceIPs, part, MaxSourceIPs)
		}
		count, a := 1<<hostBits, p.Addr()
		if p.Addr().Is4() && hostBits >= 2 && !p.Addr().IsLoopback() {
			count, a = count-2, a.Next() // skip the network and broadcast addresses
		}
		for range count {
			out = append(out, a)
			a = a.Next()
		}
		if len(out) > MaxSourceIPs {
			return nil, fmt.Errorf("%w: more than %d addresses", ErrSourceIPs, MaxSourceIPs)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrSourceIPs)
	}
	return out, nil
}
