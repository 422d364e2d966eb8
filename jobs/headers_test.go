package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/signing"
)

// A subscription's custom header values are stored encrypted; the receiver gets
// them as they were given.
func TestDeliverySendsCustomHeaders(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	rcv := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL:     rcv.server.URL,
		Headers: map[string]string{"Authorization": "Bearer jobs_h10", "X-Tenant": "t\t1"},
	})
	event := outboxtest.Event(b.ctx, t, b.store, nil)

	req := rcv.next(t)
	require.Equal(t, event.ID, req.header.Get(signing.HeaderID))
	require.Equal(t, "Bearer jobs_h10", req.header.Get("Authorization"))
	require.Equal(t, "t\t1", req.header.Get("X-Tenant"))
}
