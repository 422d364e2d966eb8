// Package netguard owns outboxd's defence against server-side request forgery:
// deciding which network addresses a webhook may reach, checking subscription URLs
// when they are written, and an HTTP client that re-checks every address when it
// dials, so DNS rebinding cannot turn an accepted hostname into a request to
// loopback, a private network or a cloud metadata service.
//
// Blocked by default: unspecified, loopback, RFC 1918 private, link-local (which
// holds 169.254.169.254), CGNAT, IETF special-purpose, documentation, benchmarking,
// multicast and reserved IPv4 ranges; their IPv6 counterparts (loopback, ULA,
// link-local, site-local, multicast, documentation, discard, 6to4, Teredo, NAT64);
// and IPv4-mapped or IPv4-compatible IPv6 forms of any blocked IPv4 address.
// Guard.Allow, a list of CIDR prefixes, is the only way to reach such addresses;
// it is empty by default and meant for development and tests.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// blockedPrefixes are never dialled unless a Guard allows them explicitly.
var blockedPrefixes = func() []blockedPrefix {
	list := []struct{ cidr, reason string }{
		{"0.0.0.0/8", "this-network"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "carrier-grade NAT"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (cloud metadata)"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible"},
		{"64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::/48", "NAT64"},
		{"100::/64", "discard-only"},
		{"2001::/23", "IETF protocol assignments (Teredo)"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"3fff::/20", "documentation"},
		{"fc00::/7", "unique local (private)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	}
	prefixes := make([]blockedPrefix, len(list))
	for i, p := range list {
		prefixes[i] = blockedPrefix{prefix: netip.MustParsePrefix(p.cidr), reason: p.reason}
	}
	return prefixes
}()

type blockedPrefix struct {
	prefix netip.Prefix
	reason string
}

// BlockedError says an address may not be reached, and why.
type BlockedError struct {
	Host   string // the name or literal the URL used, when known
	Addr   netip.Addr
	Reason string
}

func (e *BlockedError) Error() string {
	target := e.Addr.String()
	if e.Host != "" && e.Host != target {
		target = fmt.Sprintf("%s (%s)", e.Host, e.Addr)
	}
	return fmt.Sprintf("%s is a %s address; outboxd does not send webhooks there unless it is in --allow-private-targets", target, e.Reason)
}

// ErrBlockedAddress matches every *BlockedError with errors.Is.
var ErrBlockedAddress = errors.New("blocked address")

func (e *BlockedError) Is(target error) bool { return target == ErrBlockedAddress }

// Guard decides which addresses webhooks may reach. The zero value blocks every
// special-purpose range and resolves names with the system resolver.
type Guard struct {
	// Allow lists prefixes that may be reached even though they are blocked by
	// default, for example 127.0.0.0/8 in development. Empty by default.
	Allow []netip.Prefix

	// LookupFunc resolves a host name. Defaults to net.DefaultResolver.LookupNetIP.
	// Tests set it to point names at chosen addresses.
	LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)
}

// ParsePrefixes parses a comma-separated CIDR list such as "127.0.0.0/8,::1/128".
// A bare address is taken as a single-address prefix.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for field := range strings.SplitSeq(list, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		if !strings.Contains(field, "/") {
			addr, err := netip.ParseAddr(field)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR prefix or an IP address", field)
			}
			prefixes = append(prefixes, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		prefix, err := netip.ParsePrefix(field)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix", field)
		}
		prefixes = append(prefixes, prefix.Masked())
	}
	return prefixes, nil
}

// CheckAddr returns a *BlockedError if addr may not be reached.
func (g *Guard) CheckAddr(addr netip.Addr) error {
	addr = addr.WithZone("")
	// An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it carries.
	addr = addr.Unmap()
	for _, allowed := range g.allow() {
		if allowed.Contains(addr) {
			return nil
		}
	}
	for _, blocked := range blockedPrefixes {
		if blocked.prefix.Contains(addr) {
			return &BlockedError{Addr: addr, Reason: blocked.reason}
		}
	}
	return nil
}

func (g *Guard) allow() []netip.Prefix {
	if g == nil {
		return nil
	}
	return g.Allow
}

func (g *Guard) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if g != nil && g.LookupFunc != nil {
		return g.LookupFunc(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// ValidateURL checks a webhook URL when it is written: an absolute http or https URL
// with a host, no user name or password, no fragment, and a host that is not (and
// does not resolve to) a blocked address. A name that does not resolve is accepted
// here: the dial-time check is what keeps requests safe, and it will refuse it then.
func (g *Guard) ValidateURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid URL: %w", errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return nil, errors.New("URL must have a host, like https://example.com/webhooks")
	case u.User != nil:
		return nil, errors.New("URL must not contain a user name or password; put credentials in a header")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("URL must not contain a fragment (#…)")
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("URL must have a host, like https://example.com/webhooks")
	}
	if port := u.Port(); port != "" {
		if n, err := parsePort(port); err != nil || n == 0 {
			return nil, fmt.Errorf("port %q is not valid", port)
		}
	}

	if addr, err := netip.ParseAddr(host); err == nil {
		if err := g.CheckAddr(addr); err != nil {
			return nil, err
		}
		return u, nil
	}
	if isLocalName(host) {
		addr := netip.MustParseAddr("127.0.0.1")
		if err := g.CheckAddr(addr); err != nil {
			return nil, &BlockedError{Host: host, Addr: addr, Reason: "loopback"}
		}
	}
	addrs, err := g.lookup(ctx, host)
	if err != nil {
		return u, nil //nolint:nilerr // unresolvable now; the dialer decides later
	}
	for _, addr := range addrs {
		if err := g.CheckAddr(addr); err != nil {
			var blocked *BlockedError
			if errors.As(err, &blocked) {
				blocked.Host = host
			}
			return nil, err
		}
	}
	return u, nil
}

func parsePort(s string) (int, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, errors.New("out of range")
		}
	}
	return n, nil
}

// isLocalName reports names that always mean this machine, whatever DNS says.
func isLocalName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// DialContext resolves address, keeps only the addresses the guard permits, and
// dials those, re-checking the socket's address just before connecting. It is the
// DialContext of the client NewClient builds.
func (g *Guard) DialContext(ctx context.Context, dialer *net.Dialer, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}

	var addrs []netip.Addr
	if addr, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{addr}
	} else {
		if isLocalName(host) {
			addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
		} else if addrs, err = g.lookup(ctx, host); err != nil {
			return nil, err
		}
	}

	var (
		permitted []netip.Addr
		firstErr  error
	)
	for _, addr := range addrs {
		if err := g.CheckAddr(addr); err != nil {
			if firstErr == nil {
				var blocked *BlockedError
				if errors.As(err, &blocked) {
					blocked.Host = host
				}
				firstErr = err
			}
			continue
		}
		permitted = append(permitted, addr)
	}
	if len(permitted) == 0 {
		if firstErr == nil {
			firstErr = fmt.Errorf("%s resolves to no address", host)
		}
		return nil, firstErr
	}

	d := *dialer
	d.Control = g.control
	var lastErr error
	for _, addr := range permitted {
		conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(addr, mustPort(port)).String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// control runs on the raw socket before connect: the last word on which address is reached.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	addrPort, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %q: unexpected address form", address)
	}
	return g.CheckAddr(addrPort.Addr())
}

func mustPort(port string) uint16 {
	n, err := parsePort(port)
	if err != nil {
		return 0
	}
	return uint16(n) //nolint:gosec // parsePort bounds it to 65535
}
