package netguard_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
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

func TestBlockedErrorMessage(t *testing.T) {
	t.Parallel()

	err := guardWithDNS().CheckAddr(netip.MustParseAddr("169.254.169.254"))
	var blocked *netguard.BlockedError
	require.True(t, errors.As(err, &blocked))
	require.Equal(t, "169.254.169.254 is a link-local (cloud metadata) address; outboxd does not send webhooks there unless it is in --allow-private-targets", err.Error())
	require.NoError(t, guardWithDNS().CheckAddr(netip.MustParseAddr("8.8.8.8")))
	require.NoError(t, guardWithDNS().CheckAddr(netip.MustParseAddr("2606:4700::1111")))
}
