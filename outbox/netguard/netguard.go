// Package netguard owns outboxd's defence against server-side request forgery:
// deciding which network addresses a webhook may reach, checking subscription URLs
// when they are written, and an HTTP client that re-checks every address when it
// dials, so DNS rebinding cannot turn an accepted hostname into a request to
// loopback, a private network or a cloud metadata service.
//
// A webhook goes only to a globally reachable unicast address. The blocked list
// follows IANA's IPv4 and IPv6 Special-Purpose Address Registries and IPv6
// Address Space registry; by family, and why:
//
//   - This machine and its networks: unspecified and "this network" (0.0.0.0/8,
//     ::/128; Linux connects 0.0.0.0 to the local host), loopback (127.0.0.0/8,
//     ::1), RFC 1918 private and IPv6 unique local (fc00::/7), carrier-grade NAT
//     shared space (100.64.0.0/10), link-local (169.254.0.0/16, which holds the
//     cloud metadata service 169.254.169.254, and fe80::/10) and the deprecated
//     site-local fec0::/10. These reach the daemon's own host or the networks
//     behind it: the targets of an SSRF attack.
//   - Not unicast: multicast (224.0.0.0/4, ff00::/8) and limited broadcast
//     (255.255.255.255).
//   - Not routed on the Internet: documentation (192.0.2.0/24, 198.51.100.0/24,
//     203.0.113.0/24, 2001:db8::/32, 3fff::/20), benchmarking (198.18.0.0/15,
//     2001:2::/48), reserved class E (240.0.0.0/4), discard-only and dummy
//     prefixes (100::/64, 100:0:0:1::/64), SRv6 segment identifiers (5f00::/16)
//     and every IPv6 address outside 2000::/3, the only space IANA allocates
//     for global unicast. Such an address reaches something only on a local
//     network, which is where it must not reach.
//   - IPv4 carried in IPv6: an IPv4-mapped address (::ffff:a.b.c.d) is the IPv4
//     address itself to the operating system, so it is unmapped and judged (and
//     allowed) as that address. The deprecated IPv4-compatible (::/96) and the
//     SIIT IPv4-translated (::ffff:0:a.b.c.d, RFC 2765 and 6145) forms, NAT64
//     (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16, with its relay anycast
//     192.88.99.0/24) and Teredo (2001::/32) are blocked whatever IPv4 address
//     they carry: a translator or relay on the path decides where they go, and
//     it may well turn them into a loopback or private IPv4 address.
//   - Protocol infrastructure that is not a webhook receiver, even where IANA
//     marks it globally reachable: the IETF protocol assignments 192.0.0.0/24
//     (DS-Lite, NAT64 discovery, PCP and TURN anycast) and 2001::/23 (PCP, TURN
//     and DNS-SD anycast, AMT, ORCHID and drone identifiers), the AS112 DNS
//     sinks (192.31.196.0/24, 192.175.48.0/24, 2001:4:112::/48,
//     2620:4f:8000::/48) and AMT relays (192.52.193.0/24). Anycast services like
//     PCP answer from the nearest box, often the local gateway.
//
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
	// The first prefix that contains an address gives the reason, so narrower
	// entries come before the ranges that hold them.
	list := []struct{ cidr, reason string }{
		{"0.0.0.0/8", "this-network"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "carrier-grade NAT"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (cloud metadata)"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.31.196.0/24", "AS112 DNS sink"},
		{"192.52.193.0/24", "AMT relay anycast"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private"},
		{"192.175.48.0/24", "AS112 DNS sink"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"255.255.255.255/32", "limited broadcast"},
		{"240.0.0.0/4", "reserved"},

		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::ffff:0:0:0/96", "IPv4-translated (SIIT)"},
		{"::/96", "IPv4-compatible (deprecated)"},
		{"64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::/48", "NAT64 (local use)"},
		{"100::/64", "discard-only"},
		{"100:0:0:1::/64", "dummy"},
		{"2001::/32", "Teredo"},
		{"2001:1::1/128", "PCP anycast"},
		{"2001:1::2/128", "TURN anycast"},
		{"2001:1::3/128", "DNS-SD SRP anycast"},
		{"2001:2::/48", "benchmarking"},
		{"2001:3::/32", "AMT"},
		{"2001:4:112::/48", "AS112 DNS sink"},
		{"2001:10::/28", "ORCHID (deprecated)"},
		{"2001:20::/28", "ORCHIDv2"},
		{"2001:30::/28", "drone remote ID (DET)"},
		{"2001::/23", "IETF protocol assignments"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"2620:4f:8000::/48", "AS112 DNS sink"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "SRv6 segment identifier"},
		{"fc00::/7", "unique local (private)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
		// Everything else outside 2000::/3, the global unicast space.
		{"::/3", "reserved"},
		{"4000::/2", "reserved"},
		{"8000::/1", "reserved"},
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
	return fmt.Sprintf("%s is %s %s address; outboxd does not send webhooks there unless it is in --allow-private-targets", target, article(e.Reason), e.Reason)
}

// article is "an" before a reason that starts with a vowel sound, else "a".
func article(word string) string {
	lower := strings.ToLower(word)
	switch {
	case strings.HasPrefix(lower, "uni"):
		return "a"
	case lower != "" && strings.ContainsRune("aeiou", rune(lower[0])):
		return "an"
	}
	return "a"
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
