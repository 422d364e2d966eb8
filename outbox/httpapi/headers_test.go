package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Custom header values are write-only: responses name the headers, and the
// receiver gets them.
func TestSubscriptionHeaderValuesAreWriteOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)
	const credential = "Bearer sk_live_h10_api_must_not_leak"

	created := b.createSubscription(t, map[string]any{
		"url": rcv.server.URL, "headers": map[string]string{"X-Tenant": "t-1", "Authorization": credential},
	})
	require.NotContains(t, created.raw, "sk_live_h10_api_must_not_leak")
	require.NotContains(t, created.body, "headers")
	require.Equal(t, []any{"Authorization", "X-Tenant"}, created.body["header_names"])
	id := created.str("id")

	reads := []*response{
		b.admin(t, "GET", "/v1/subscriptions/"+id, nil),
		b.admin(t, "GET", "/v1/subscriptions", nil),
		b.admin(t, "PATCH", "/v1/subscriptions/"+id, map[string]any{"description": "kept headers"}),
		b.admin(t, "POST", "/v1/subscriptions/"+id+"/disable", nil),
		b.admin(t, "POST", "/v1/subscriptions/"+id+"/enable", nil),
	}
	for _, r := range reads {
		require.Less(t, r.status, 300, r.raw)
		require.NotContains(t, r.raw, "sk_live_h10_api_must_not_leak")
		require.Contains(t, r.raw, `"header_names":["Authorization","X-Tenant"]`)
	}

	// The receiver gets the values.
	test := b.admin(t, "POST", "/v1/subscriptions/"+id+"/test", nil)
	require.Equal(t, true, test.body["delivered"], test.raw)
	got := receive(t, rcv)
	require.Equal(t, credential, got.Header.Get("Authorization"))
	require.Equal(t, "t-1", got.Header.Get("X-Tenant"))

	// PATCH with headers replaces them all; {} removes them.
	patched := b.admin(t, "PATCH", "/v1/subscriptions/"+id, map[string]any{"headers": map[string]string{"X-Api-Key": "k2_h10"}})
	require.Equal(t, http.StatusOK, patched.status, patched.raw)
	require.Equal(t, []any{"X-Api-Key"}, patched.body["header_names"])
	require.NotContains(t, patched.raw, "k2_h10")
	b.admin(t, "POST", "/v1/subscriptions/"+id+"/test", nil)
	got = receive(t, rcv)
	require.Equal(t, "k2_h10", got.Header.Get("X-Api-Key"))
	require.Empty(t, got.Header.Get("Authorization"))

	cleared := b.admin(t, "PATCH", "/v1/subscriptions/"+id, map[string]any{"headers": map[string]string{}})
	require.Equal(t, []any{}, cleared.body["header_names"])
	b.admin(t, "POST", "/v1/subscriptions/"+id+"/test", nil)
	require.Empty(t, receive(t, rcv).Header.Get("X-Api-Key"))

	bad := b.admin(t, "PATCH", "/v1/subscriptions/"+id, map[string]any{"headers": map[string]string{"Webhook-Id": "x"}})
	requireProblem(t, bad, http.StatusUnprocessableEntity)

	require.NotContains(t, b.logs.String(), "sk_live_h10_api_must_not_leak")
}

func receive(t *testing.T, rcv *receiver) *http.Request {
	t.Helper()
	select {
	case r := <-rcv.got:
		<-rcv.bodies
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got no request")
		return nil
	}
}
