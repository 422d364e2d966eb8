package netguard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/netguard"
)

// fakeDNS maps names to addresses; unknown names do not resolve.
func fakeDNS(names map[string]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		addr, ok := names[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []netip.Addr{netip.MustParseAddr(addr)}, nil
	}
}

var blockedTargets = []struct {
	name string
	url  string
}{
	{"Loopback", "http://127.0.0.1:8080/hook"},
	{"LoopbackOtherAddress", "http://127.1.2.3/hook"},
	{"Localhost", "http://localhost/hook"},
	{"LocalhostSubdomain", "http://api.localhost/hook"},
	{"Private10", "http://10.1.2.3/hook"},
	{"Private172", "http://172.16.0.1/hook"},
	{"Private192", "https://192.168.1.1/hook"},
	{"LinkLocal", "http://169.254.1.1/hook"},
	{"CloudMetadata", "http://169.254.169.254/latest/meta-data/"},
	{"CGNAT", "http://100.64.0.1/hook"},
	{"Unspecified", "http://0.0.0.0/hook"},
	{"Multicast", "http://224.0.0.1/hook"},
	{"Broadcast", "http://255.255.255.255/hook"},
	{"IPv6Loopback", "http://[::1]/hook"},
	{"IPv6Unspecified", "http://[::]/hook"},
	{"IPv6UniqueLocal", "http://[fd00::1]/hook"},
	{"IPv6AWSMetadata", "http://[fd00:ec2::254]/hook"},
	{"IPv6LinkLocal", "http://[fe80::1]/hook"},
	{"IPv4MappedLoopback", "http://[::ffff:127.0.0.1]/hook"},
	{"IPv4MappedMetadata", "http://[::ffff:169.254.169.254]/hook"},
	{"IPv4MappedPrivateHex", "http://[::ffff:a00:1]/hook"},
	{"IPv4TranslatedLoopback", "http://[::ffff:0:127.0.0.1]/hook"},
	{"IPv4TranslatedPublic", "http://[::ffff:0:8.8.8.8]/hook"},
	{"IPv4CompatibleLoopback", "http://[::127.0.0.1]/hook"},
	{"NAT64Loopback", "http://[64:ff9b::127.0.0.1]/hook"},
	{"NameResolvingToLoopback", "http://rebind.example/hook"},
	{"NameResolvingToMetadata", "http://metadata.example/hook"},
}

func guardWithDNS(allow ...string) *netguard.Guard {
	g := &netguard.Guard{LookupFunc: fakeDNS(map[string]string{
		"rebind.example":   "127.0.0.1",
		"metadata.example": "169.254.169.254",
		"public.example":   "93.184.216.34",
	})}
	for _, a := range allow {
		g.Allow = append(g.Allow, netip.MustParsePrefix(a))
	}
	return g
}

func TestValidateURLBlocksSpecialAddresses(t *testing.T) {
	t.Parallel()

	for _, tt := range blockedTargets {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := guardWithDNS().ValidateURL(context.Background(), tt.url)
			require.ErrorIs(t, err, netguard.ErrBlockedAddress)
			require.Contains(t, err.Error(), "--allow-private-targets")
		})
	}
}

func TestValidateURLRejectsMalformed(t *testing.T) {
	t.Parallel()

	tests := []struct{ name, url, want string }{
		{"File", "file:///etc/passwd", `scheme must be http or https, not "file"`},
		{"Gopher", "gopher://example.com/", `scheme must be http or https, not "gopher"`},
		{"NoScheme", "example.com/hook", `scheme must be http or https, not ""`},
		{"NoHost", "https:///hook", "URL must have a host, like https://example.com/webhooks"},
		{"Opaque", "http:example.com", "URL must have a host, like https://example.com/webhooks"},
		{"Credentials", "https://user:pass@example.com/hook", "URL must not contain a user name or password; put credentials in a header"},
		{"UserOnly", "https://user@example.com/hook", "URL must not contain a user name or password; put credentials in a header"},
		{"Fragment", "https://public.example/hook#x", "URL must not contain a fragment (#…)"},
		{"BadPort", "https://public.example:99999/hook", `port "99999" is not valid`},
		{"Garbage", "http://[::1", "not a valid URL: missing ']' in host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := guardWithDNS().ValidateURL(context.Background(), tt.url)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestValidateURLAccepts(t *testing.T) {
	t.Parallel()

	for _, raw := range []string{
		"https://public.example/hook",
		"http://93.184.216.34:8080/hook?x=1",
		"https://unresolvable.example/hook", // the dialer decides when it is used
	} {
		u, err := guardWithDNS().ValidateURL(context.Background(), raw)
		require.NoError(t, err, raw)
		require.Equal(t, raw, u.String())
	}
}

func TestAllowListOpensOnlyItsPrefixes(t *testing.T) {
	t.Parallel()

	g := guardWithDNS("127.0.0.0/8")
	for _, raw := range []string{"http://127.0.0.1:9000/hook", "http://rebind.example/hook", "http://localhost/hook", "http://[::ffff:127.0.0.1]/"} {
		_, err := g.ValidateURL(context.Background(), raw)
		require.NoError(t, err, raw)
	}
	for _, raw := range []string{"http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]/"} {
		_, err := g.ValidateURL(context.Background(), raw)
		require.ErrorIs(t, err, netguard.ErrBlockedAddress, raw)
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()

	prefixes, err := netguard.ParsePrefixes(" 127.0.0.0/8, ::1 ,10.1.2.3/8")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
	}, prefixes)

	_, err = netguard.ParsePrefixes("127.0.0.0/33")
	require.EqualError(t, err, `"127.0.0.0/33" is not a CIDR prefix`)
	_, err = netguard.ParsePrefixes("localhost")
	require.EqualError(t, err, `"localhost" is not a CIDR prefix or an IP address`)
}

type receiverBundle struct {
	server *httptest.Server
	hits   *atomic.Int64
	port   string
}

func startReceiver(t *testing.T, handler http.HandlerFunc) *receiverBundle {
	t.Helper()
	hits := &atomic.Int64{}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(server.Close)
	u, err := url.Parse(server.URL)
	require.NoError(t, err)
	return &receiverBundle{server: server, hits: hits, port: u.Port()}
}

func TestClientChecksEveryDial(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *receiverBundle {
		t.Helper()
		return startReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	}

	t.Run("BlocksLoopbackByDefault", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		client := netguard.NewClient(guardWithDNS(), nil)
		for _, host := range []string{"127.0.0.1", "localhost", "rebind.example", "[::ffff:127.0.0.1]"} {
			resp, err := client.Get("http://" + host + ":" + bundle.port + "/")
			if resp != nil {
				resp.Body.Close()
			}
			require.ErrorIs(t, err, netguard.ErrBlockedAddress, host)
		}
		require.Zero(t, bundle.hits.Load(), "the receiver must never be contacted")
	})

	t.Run("DNSRebindingAfterValidation", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		answers := []string{"93.184.216.34", "127.0.0.1"} // public when validated, loopback when dialled
		var calls atomic.Int64
		g := &netguard.Guard{LookupFunc: func(context.Context, string) ([]netip.Addr, error) {
			n := min(int(calls.Add(1)), len(answers))
			return []netip.Addr{netip.MustParseAddr(answers[n-1])}, nil
		}}
		_, err := g.ValidateURL(context.Background(), "http://flip.example:"+bundle.port+"/")
		require.NoError(t, err)

		resp, err := netguard.NewClient(g, nil).Get("http://flip.example:" + bundle.port + "/")
		if resp != nil {
			resp.Body.Close()
		}
		require.ErrorIs(t, err, netguard.ErrBlockedAddress)
		require.Zero(t, bundle.hits.Load())
	})

	t.Run("AllowListReachesLoopback", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		client := netguard.NewClient(guardWithDNS("127.0.0.0/8"), nil)
		for _, host := range []string{"127.0.0.1", "rebind.example"} {
			resp, err := client.Get("http://" + host + ":" + bundle.port + "/")
			require.NoError(t, err, host)
			resp.Body.Close()
			require.Equal(t, http.StatusNoContent, resp.StatusCode)
		}
		require.EqualValues(t, 2, bundle.hits.Load())
	})

	t.Run("RedirectsAreNotFollowed", func(t *testing.T) {
		t.Parallel()
		var redirected atomic.Bool
		bundle := startReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				redirected.Store(true)
				return
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		})
		resp, err := netguard.NewClient(guardWithDNS("127.0.0.0/8"), nil).Get(bundle.server.URL + "/")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.False(t, redirected.Load())
	})

	t.Run("NoProxyFromEnvironment", func(t *testing.T) {
		t.Parallel()
		transport, ok := netguard.NewClient(nil, nil).Transport.(*http.Transport)
		require.True(t, ok)
		require.Nil(t, transport.Proxy)
	})
}

// specialAddresses are one address of every range the guard blocks, after the
// IANA IPv4 and IPv6 Special-Purpose Address Registries, with the reason each is
// reported with.
var specialAddresses = []struct{ addr, reason string }{
	{"0.0.0.0", "this-network"},
	{"0.1.2.3", "this-network"},
	{"10.1.2.3", "private"},
	{"100.64.0.1", "carrier-grade NAT"},
	{"100.127.255.254", "carrier-grade NAT"},
	{"127.0.0.1", "loopback"},
	{"127.255.255.254", "loopback"},
	{"169.254.169.254", "link-local (cloud metadata)"},
	{"172.16.0.1", "private"},
	{"172.31.255.254", "private"},
	{"192.0.0.1", "IETF protocol assignments"},
	{"192.0.0.8", "IETF protocol assignments"},
	{"192.0.0.9", "IETF protocol assignments"},
	{"192.0.0.10", "IETF protocol assignments"},
	{"192.0.0.170", "IETF protocol assignments"},
	{"192.0.0.171", "IETF protocol assignments"},
	{"192.0.2.1", "documentation"},
	{"192.31.196.1", "AS112 DNS sink"},
	{"192.52.193.1", "AMT relay anycast"},
	{"192.88.99.1", "6to4 relay anycast"},
	{"192.168.1.1", "private"},
	{"192.175.48.1", "AS112 DNS sink"},
	{"198.18.0.1", "benchmarking"},
	{"198.19.255.254", "benchmarking"},
	{"198.51.100.1", "documentation"},
	{"203.0.113.1", "documentation"},
	{"224.0.0.1", "multicast"},
	{"239.255.255.250", "multicast"},
	{"240.0.0.1", "reserved"},
	{"255.255.255.254", "reserved"},
	{"255.255.255.255", "limited broadcast"},

	{"::", "unspecified"},
	{"::1", "loopback"},
	{"::ffff:127.0.0.1", "loopback"},
	{"::ffff:169.254.169.254", "link-local (cloud metadata)"},
	{"::ffff:0:127.0.0.1", "IPv4-translated (SIIT)"},
	{"::ffff:0:10.0.0.1", "IPv4-translated (SIIT)"},
	{"::ffff:0:8.8.8.8", "IPv4-translated (SIIT)"},
	{"::127.0.0.1", "IPv4-compatible (deprecated)"},
	{"::8.8.8.8", "IPv4-compatible (deprecated)"},
	{"64:ff9b::127.0.0.1", "NAT64"},
	{"64:ff9b::8.8.8.8", "NAT64"},
	{"64:ff9b:1::10.0.0.1", "NAT64 (local use)"},
	{"100::1", "discard-only"},
	{"100:0:0:1::1", "dummy"},
	{"2001::1", "Teredo"},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
	{"2001:1::1", "PCP anycast"},
	{"2001:1::2", "TURN anycast"},
	{"2001:1::3", "DNS-SD SRP anycast"},
	{"2001:1::4", "IETF protocol assignments"},
	{"2001:2::1", "benchmarking"},
	{"2001:3::1", "AMT"},
	{"2001:4:112::1", "AS112 DNS sink"},
	{"2001:10::1", "ORCHID (deprecated)"},
	{"2001:20::1", "ORCHIDv2"},
	{"2001:30::1", "drone remote ID (DET)"},
	{"2001:1ff::1", "IETF protocol assignments"},
	{"2001:db8::1", "documentation"},
	{"2002:7f00:1::1", "6to4"},
	{"2620:4f:8000::1", "AS112 DNS sink"},
	{"3fff::1", "documentation"},
	{"3fff:fff::1", "documentation"},
	{"5f00::1", "SRv6 segment identifier"},
	{"fc00::1", "unique local (private)"},
	{"fd00:ec2::254", "unique local (private)"},
	{"fe80::1", "link-local"},
	{"fec0::1", "site-local (deprecated)"},
	{"ff02::1", "multicast"},
	{"400::1", "reserved"},
	{"1000::1", "reserved"},
	{"4000::1", "reserved"},
	{"8000::1", "reserved"},
	{"fe00::1", "reserved"},
}

// publicAddresses sit next to blocked ranges and must stay reachable.
var publicAddresses = []string{
	"1.1.1.1", "8.8.8.8", "93.184.216.34",
	"9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
	"169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
	"192.0.1.1", "192.0.3.1", "192.31.195.1", "192.31.197.1", "192.52.192.1", "192.52.194.1",
	"192.88.98.1", "192.88.100.1", "192.167.255.255", "192.169.0.0", "192.175.47.1", "192.175.49.1",
	"198.17.255.255", "198.20.0.0", "198.51.99.1", "198.51.101.1", "203.0.112.1", "203.0.114.1",
	"223.255.255.255",
	"2606:4700::1111", "2001:4860:4860::8888", "2001:200::1", "2a00:1450:4001::1",
	"2620:4f:7fff::1", "2620:4f:8001::1", "2001:db9::1", "2003::1", "3ffe:ffff::1",
}

func TestSpecialPurposeAddresses(t *testing.T) {
	t.Parallel()

	g := &netguard.Guard{}
	for _, tt := range specialAddresses {
		err := g.CheckAddr(netip.MustParseAddr(tt.addr))
		var blocked *netguard.BlockedError
		require.True(t, errors.As(err, &blocked), "%s must be blocked", tt.addr)
		require.Equal(t, tt.reason, blocked.Reason, tt.addr)
	}
	for _, addr := range publicAddresses {
		require.NoError(t, g.CheckAddr(netip.MustParseAddr(addr)), addr)
	}
}

// Every special address is refused when a URL is written, whether the URL names
// it or names a host that resolves to it, and again when a request dials it; the
// receiver behind it is never reached.
func TestSpecialPurposeAddressesOnWriteAndDial(t *testing.T) {
	t.Parallel()

	// Each name resolves to one special address.
	names := map[string]string{}
	hostOf := func(addr string) string {
		if strings.Contains(addr, ":") {
			return "[" + addr + "]"
		}
		return addr
	}
	for i, tt := range specialAddresses {
		names[fmt.Sprintf("special-%d.example", i)] = tt.addr
	}
	g := &netguard.Guard{LookupFunc: fakeDNS(names)}
	bundle := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	client := netguard.NewClient(g, nil)

	for i, tt := range specialAddresses {
		name := fmt.Sprintf("special-%d.example", i)
		for _, host := range []string{hostOf(tt.addr), name} {
			raw := "http://" + host + ":" + bundle.port + "/hook"
			_, err := g.ValidateURL(context.Background(), raw)
			require.ErrorIs(t, err, netguard.ErrBlockedAddress, "on write: %s", raw)
			require.Contains(t, err.Error(), tt.reason, raw)

			resp, err := client.Get(raw)
			if resp != nil {
				resp.Body.Close()
			}
			require.ErrorIs(t, err, netguard.ErrBlockedAddress, "on dial: %s", raw)
		}
	}
	require.Zero(t, bundle.hits.Load(), "the receiver must never be contacted")
}

// The dialer's last check, on the socket's address just before connect, refuses
// the IPv4-translated form too (it is what stops an address that reached the
// dialer some other way).
func TestDialerRefusesTranslatedAddress(t *testing.T) {
	t.Parallel()

	bundle := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	g := &netguard.Guard{}
	for _, addr := range []string{"[::ffff:0:127.0.0.1]", "[::ffff:0:7f00:1]", "[0:0:0:0:ffff:0:127.0.0.1]"} {
		_, err := g.DialContext(context.Background(), &net.Dialer{}, "tcp", addr+":"+bundle.port)
		require.ErrorIs(t, err, netguard.ErrBlockedAddress, addr)
		require.Contains(t, err.Error(), "an IPv4-translated (SIIT) address", addr)
	}
	require.Zero(t, bundle.hits.Load())
}

func TestBlockedErrorMessage(t *testing.T) {
	t.Parallel()

	err := guardWithDNS().CheckAddr(netip.MustParseAddr("169.254.169.254"))
	var blocked *netguard.BlockedError
	require.True(t, errors.As(err, &blocked))
	require.Equal(t, "169.254.169.254 is a link-local (cloud metadata) address; outboxd does not send webhooks there unless it is in --allow-private-targets", err.Error())
	require.NoError(t, guardWithDNS().CheckAddr(netip.MustParseAddr("8.8.8.8")))
	require.NoError(t, guardWithDNS().CheckAddr(netip.MustParseAddr("2606:4700::1111")))
}
