package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
)

// raw sends a request with exactly the given headers (no defaults added).
func raw(t *testing.T, b *apiBundle, method, path, body string, header http.Header) *response {
	t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, b.server.URL+path, reader)
	require.NoError(t, err)
	for name, values := range header {
		req.Header[name] = values
	}
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := &response{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		_ = json.Unmarshal(data, &out.body)
	}
	return out
}

func basicHeader(t *testing.T, extra map[string]string) http.Header {
	t.Helper()
	req, err := http.NewRequest("GET", "/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", adminToken)
	for name, value := range extra {
		req.Header.Set(name, value)
	}
	return req.Header
}

// The repros: with basic auth cached in a browser, a page on another site
// deleted and re-sent deliveries through the River UI's API with a text/plain
// POST, and the API created a subscription from a body without a content type.
func TestCrossOriginWritesAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)
	b.createSubscription(t, map[string]any{"url": rcv.server.URL})
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.completed"}).status)
	rows := b.waitFinal(t, 1)
	jobID := strconv.FormatInt(rows[0].ID, 10)
	<-rcv.got
	ids := `{"ids":["` + jobID + `"]}`

	for _, attack := range []map[string]string{
		{"Origin": "http://evil.example", "Content-Type": "text/plain"},
		{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
		{"Origin": "http://a.127.0.0.1", "Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"},
		{"Origin": "null", "Content-Type": "text/plain"},
	} {
		for _, path := range []string{"/riverui/api/jobs/delete", "/riverui/api/jobs/retry"} {
			r := raw(t, b, "POST", path, ids, basicHeader(t, attack))
			requireProblem(t, r, http.StatusForbidden)
			require.Contains(t, r.str("detail"), "cross-origin", r.raw)
		}
		r := raw(t, b, "POST", "/v1/subscriptions", `{"url":"`+rcv.server.URL+`"}`, basicHeader(t, attack))
		requireProblem(t, r, http.StatusForbidden)
	}
	delivery, err := b.store.DeliveryGet(b.ctx, rows[0].ID)
	require.NoError(t, err, "the delivery record was not deleted")
	require.Equal(t, outbox.DeliveryDelivered, delivery.State, "nor sent again")
	require.Equal(t, 1, delivery.Attempt)
	require.Len(t, b.admin(t, "GET", "/v1/subscriptions", nil).list(), 1, "no subscription was created")

	// The River UI itself (same origin, as a browser sends it) and clients that are
	// not browsers (no Origin, no Sec-Fetch-Site) still work.
	sameOrigin := basicHeader(t, map[string]string{"Origin": b.server.URL, "Content-Type": "text/plain;charset=UTF-8"})
	r := raw(t, b, "POST", "/riverui/api/jobs/retry", ids, sameOrigin)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	sameOrigin.Set("Sec-Fetch-Site", "same-origin")
	sameOrigin.Set("Origin", b.server.URL)
	rows = b.waitFinal(t, 1)
	require.Equal(t, http.StatusOK, raw(t, b, "POST", "/riverui/api/jobs/delete", ids, sameOrigin).status)
	_, err = b.store.DeliveryGet(b.ctx, rows[0].ID)
	require.ErrorIs(t, err, outbox.ErrNotFound)

	curl := basicHeader(t, map[string]string{"Content-Type": "application/json"})
	require.Equal(t, http.StatusCreated, raw(t, b, "POST", "/v1/subscriptions", `{"url":"`+rcv.server.URL+`"}`, curl).status)
	// A user typing a URL (Sec-Fetch-Site: none) is not another site.
	curl.Set("Sec-Fetch-Site", "none")
	require.Equal(t, http.StatusCreated, raw(t, b, "POST", "/v1/subscriptions", `{"url":"`+rcv.server.URL+`"}`, curl).status)
}

// Writes with a body must say it is JSON, so that no HTML form or "simple"
// cross-site request can reach the API; writes without a body need no type.
func TestAPIWritesNeedJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)
	sub := b.createSubscription(t, map[string]any{"url": rcv.server.URL}).str("id")
	bearer := func(contentType string) http.Header {
		h := http.Header{"Authorization": {"Bearer " + adminToken}}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		return h
	}
	body := `{"url":"` + rcv.server.URL + `"}`

	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "application/json-patch+json"} {
		r := raw(t, b, "POST", "/v1/subscriptions", body, bearer(ct))
		requireProblem(t, r, http.StatusUnsupportedMediaType)
		require.Contains(t, r.str("detail"), "application/json", r.raw)
		requireProblem(t, raw(t, b, "PATCH", "/v1/subscriptions/"+sub, `{"description":"x"}`, bearer(ct)), http.StatusUnsupportedMediaType)
		requireProblem(t, raw(t, b, "POST", "/v1/events", `{"type":"a.b"}`, bearer(ct)), http.StatusUnsupportedMediaType)
		requireProblem(t, raw(t, b, "PUT", "/v1/agents/a/webhook", `{"webhook_url":"`+rcv.server.URL+`"}`, bearer(ct)), http.StatusUnsupportedMediaType)
		requireProblem(t, raw(t, b, "POST", "/v1/subscriptions/"+sub+"/recover", `{"since":"2020-01-01T00:00:00Z"}`, bearer(ct)), http.StatusUnsupportedMediaType)
		requireProblem(t, raw(t, b, "POST", "/v1/subscriptions/"+sub+"/secret/rotate", `{"grace":"1h"}`, bearer(ct)), http.StatusUnsupportedMediaType)
	}
	require.Len(t, b.admin(t, "GET", "/v1/subscriptions", nil).list(), 1, "nothing was created")
	require.Equal(t, http.StatusCreated, raw(t, b, "POST", "/v1/subscriptions", body, bearer("application/json; charset=utf-8")).status)
	require.Equal(t, http.StatusCreated, raw(t, b, "POST", "/v1/subscriptions", body, bearer("Application/JSON")).status)

	// Writes without a body work from curl without a content type.
	for _, path := range []string{"/disable", "/enable", "/secret/rotate"} {
		r := raw(t, b, "POST", "/v1/subscriptions/"+sub+path, "", bearer(""))
		require.Equal(t, http.StatusOK, r.status, "%s: %s", path, r.raw)
	}
	require.Equal(t, http.StatusNoContent, raw(t, b, "DELETE", "/v1/subscriptions/"+sub, "", bearer("")).status)
}
